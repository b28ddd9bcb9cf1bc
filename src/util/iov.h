/* Copies between flat buffers and iovec lists, as device models need them. */
#ifndef KVIO_UTIL_IOV_H
#define KVIO_UTIL_IOV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

uint64_t iov_total(const struct iovec *iov, unsigned int n);
/* Copy up to len bytes out of / into iov[0..n); return how many were copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned int n, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned int n, const void *buf, size_t len);
/* Describe the [skip, skip + len) bytes of iov[0..n) in dst (at most max entries). */
unsigned int iov_slice(const struct iovec *iov, unsigned int n, uint64_t skip, uint64_t len, struct iovec *dst,
		       unsigned int max);

#endif
