/* virtio-blk (VIRTIO 1.x 5.2) over the io_uring block backend. */
#ifndef KVIO_VIRTIO_BLK_H
#define KVIO_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/device.h"

/* Data segments per request: the queue size less the header and status, so a
 * 1 MiB guest request of 4 KiB pages travels as one request (as with QEMU). */
#define VIRTIO_BLK_SEG_MAX 254
#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_SECTOR 512

struct virtio_blk_options {
	const char *path;
	bool read_only;
	const char *id;           /* serial the guest reads with GET_ID; may be empty */
	unsigned int queues;
	const char *option;       /* the option that named path, for error lines: "--disk" if NULL */
};

/* NULL on failure, with the reason logged naming the path. */
struct virtio_dev *virtio_blk_create(const struct virtio_blk_options *opts);
void virtio_blk_destroy(struct virtio_dev *vdev);

/* A request as the guest framed it: exposed so the fuzzer can drive the parser. */
enum virtio_blk_parse_result {
	VIRTIO_BLK_PARSED,         /* well formed: do it */
	VIRTIO_BLK_BAD_REQUEST,    /* answer VIRTIO_BLK_S_IOERR */
	VIRTIO_BLK_NO_STATUS,      /* no writable status byte: cannot even answer */
};

struct virtio_blk_request {
	uint32_t type;
	uint64_t sector;
	uint8_t *status;
	unsigned int data_num;
	uint64_t data_len;
	struct iovec data[VIRTIO_BLK_SEG_MAX + 2];
};

enum virtio_blk_parse_result virtio_blk_parse(const struct iovec *iov, unsigned int out_num, unsigned int in_num,
					      struct virtio_blk_request *req);

#endif
