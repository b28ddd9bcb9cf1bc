/* libFuzzer target for virtio-blk request parsing: the input decides how a
 * chain is cut into readable and writable buffers and what the header says.
 * Parsed data and status must lie inside the chain's own buffers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/blk.h"

#define MAX_BUFFERS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t chain[4096];
static struct virtio_blk_request req;

static bool inside_chain(const void *p, size_t len)
{
	const uint8_t *b = p;

	return b >= chain && b + len <= chain + sizeof(chain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct iovec iov[MAX_BUFFERS];
	unsigned int n, out_num, off = 0;

	if (size < 2 + MAX_BUFFERS)
		return 0;
	n = 1 + data[0] % MAX_BUFFERS;
	out_num = data[1] % (n + 1);
	/* Buffer lengths come from the input; their bytes come from the rest of it. */
	for (unsigned int i = 0; i < n; i++) {
		unsigned int len = data[2 + i] * 8u % 600u;

		if (off + len > sizeof(chain))
			len = (unsigned int)sizeof(chain) - off;
		iov[i].iov_base = chain + off;
		iov[i].iov_len = len;
		off += len;
	}
	memset(chain, 0, sizeof(chain));
	memcpy(chain, data + 2 + MAX_BUFFERS, size - 2 - MAX_BUFFERS < sizeof(chain) ? size - 2 - MAX_BUFFERS
										    : sizeof(chain));
	switch (virtio_blk_parse(iov, out_num, n - out_num, &req)) {
	case VIRTIO_BLK_NO_STATUS:
		break;
	case VIRTIO_BLK_BAD_REQUEST:
		if (!inside_chain(req.status, 1))
			abort();
		break;
	case VIRTIO_BLK_PARSED: {
		uint64_t total = 0;

		if (!inside_chain(req.status, 1))
			abort();
		for (unsigned int i = 0; i < req.data_num; i++) {
			if (!inside_chain(req.data[i].iov_base, req.data[i].iov_len))
				abort();
			/* The status byte is never handed out as data. */
			if ((uint8_t *)req.data[i].iov_base <= req.status &&
			    req.status < (uint8_t *)req.data[i].iov_base + req.data[i].iov_len)
				abort();
			total += req.data[i].iov_len;
		}
		if (total != req.data_len)
			abort();
		break;
	}
	}
	return 0;
}
