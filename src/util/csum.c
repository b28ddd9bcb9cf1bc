/* Internet checksum: summed four bytes at a time in host order and folded
 * once; ones' complement sums do not care about byte order, so one swap at
 * the end gives the sum of big-endian words (RFC 1071, 2.B). */
#include "util/csum.h"

#include <endian.h>
#include <string.h>

static uint16_t fold(uint64_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

uint16_t csum_add(uint16_t sum, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t s = 0;
	uint16_t folded;

	for (; len >= 4; p += 4, len -= 4) {
		uint32_t w;

		memcpy(&w, p, 4);
		s += w;
	}
	if (len >= 2) {
		uint16_t w;

		memcpy(&w, p, 2);
		s += w;
		p += 2;
		len -= 2;
	}
	if (len) {
		uint8_t last[2] = { p[0], 0 };  /* the odd byte is the high half of a padded word */
		uint16_t w;

		memcpy(&w, last, 2);
		s += w;
	}
	folded = be16toh(fold(s));
	return csum_add16(sum, folded);
}

uint16_t csum_add_at(uint16_t sum, const void *buf, size_t len, size_t pos)
{
	uint16_t block = csum_add(0, buf, len);

	if (pos & 1)
		block = (uint16_t)(block << 8 | block >> 8);
	return csum_add16(sum, block);
}
