/* The Internet checksum (RFC 1071): 16-bit ones' complement sums of
 * big-endian words, for the places that finish or recompute checksums in
 * software (kvio-switch for peers without checksum offload). */
#ifndef KVIO_UTIL_CSUM_H
#define KVIO_UTIL_CSUM_H

#include <stddef.h>
#include <stdint.h>

/* Add len bytes to sum (a folded, not complemented sum) and return the new
 * folded sum. Blocks summed one after the other line up as one range only if
 * each but the last has an even length: an odd one pads its last byte. */
uint16_t csum_add(uint16_t sum, const void *buf, size_t len);

/* Add one 16-bit word (host order) to sum. */
static inline uint16_t csum_add16(uint16_t sum, uint16_t word)
{
	uint32_t s = (uint32_t)sum + word;

	return (uint16_t)((s & 0xffff) + (s >> 16));
}

#endif
