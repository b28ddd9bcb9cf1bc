/* The Internet checksum (RFC 1071): 16-bit ones' complement sums of
 * big-endian words, for the places that finish or recompute checksums in
 * software (kvio-switch for peers without checksum offload, the e1000's
 * checksum and TSO offloads). */
#ifndef KVIO_UTIL_CSUM_H
#define KVIO_UTIL_CSUM_H

#include <stddef.h>
#include <stdint.h>

/* Add len bytes to sum (a folded, not complemented sum) and return the new
 * folded sum. Blocks summed one after the other line up as one range only if
 * each but the last has an even length: an odd one pads its last byte (the
 * block after it goes in with csum_add_at). */
uint16_t csum_add(uint16_t sum, const void *buf, size_t len);

/* csum_add for a block that starts pos bytes into the checksummed range,
 * whatever came before it: at an odd pos its bytes pair up the other way
 * round, so its sum goes in byte-swapped. */
uint16_t csum_add_at(uint16_t sum, const void *buf, size_t len, size_t pos);

/* Add one 16-bit word (host order) to sum. */
static inline uint16_t csum_add16(uint16_t sum, uint16_t word)
{
	uint32_t s = (uint32_t)sum + word;

	return (uint16_t)((s & 0xffff) + (s >> 16));
}

/* Add a 32-bit value (host order) as two 16-bit words, as a length too long
 * for one word goes into a pseudo-header sum. */
static inline uint16_t csum_add32(uint16_t sum, uint32_t word)
{
	return csum_add16(csum_add16(sum, (uint16_t)(word >> 16)), (uint16_t)word);
}

#endif
