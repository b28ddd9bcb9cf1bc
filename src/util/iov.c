/* iovec helpers: one copy of the loops every device needs. */
#include "util/iov.h"

#include <string.h>

uint64_t iov_total(const struct iovec *iov, unsigned int n)
{
	uint64_t total = 0;

	for (unsigned int i = 0; i < n; i++)
		total += iov[i].iov_len;
	return total;
}

size_t iov_to_buf(const struct iovec *iov, unsigned int n, void *buf, size_t len)
{
	uint8_t *p = buf;

	for (unsigned int i = 0; i < n && len; i++) {
		size_t take = iov[i].iov_len < len ? iov[i].iov_len : len;

		memcpy(p, iov[i].iov_base, take);
		p += take;
		len -= take;
	}
	return (size_t)(p - (uint8_t *)buf);
}

size_t iov_from_buf(const struct iovec *iov, unsigned int n, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	for (unsigned int i = 0; i < n && len; i++) {
		size_t take = iov[i].iov_len < len ? iov[i].iov_len : len;

		memcpy(iov[i].iov_base, p, take);
		p += take;
		len -= take;
	}
	return (size_t)(p - (const uint8_t *)buf);
}

unsigned int iov_slice(const struct iovec *iov, unsigned int n, uint64_t skip, uint64_t len, struct iovec *dst,
		       unsigned int max)
{
	unsigned int out = 0;

	for (unsigned int i = 0; i < n && len; i++) {
		uint64_t take;

		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		take = iov[i].iov_len - skip < len ? iov[i].iov_len - skip : len;
		if (out == max)
			break;
		dst[out].iov_base = (uint8_t *)iov[i].iov_base + skip;
		dst[out].iov_len = take;
		out++;
		len -= take;
		skip = 0;
	}
	return out;
}
