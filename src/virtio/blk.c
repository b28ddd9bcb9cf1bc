/* virtio-blk: parses each chain into a request, hands it to io_uring, and
 * completes it from the backend's completion eventfd on the I/O thread. A
 * malformed request gets VIRTIO_BLK_S_IOERR; one that cannot even carry a
 * status breaks the queue (NEEDS_RESET). Shutdown and reset drain in-flight I/O. */
#include "virtio/blk.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backend/block_file.h"
#include "util/iov.h"
#include "util/log.h"

#define BLK_QUEUE_SIZE 256
#define BLK_REQUESTS_PER_KICK 64
#define BLK_MAX_DISCARD_SECTORS (1U << 22)   /* 2 GiB per discard or write-zeroes */
#define BLK_DISCARD_ALIGNMENT 8              /* sectors: 4 KiB, the host page size */

struct virtio_blk;

struct blk_io {
	struct block_io io;          /* first: the backend hands this back */
	struct virtio_blk *blk;
	unsigned int queue;
	bool retried;                /* write-zeroes already fell back to punching a hole */
	struct virtq_elem elem;
	struct iovec iov[VIRTIO_BLK_SEG_MAX + 2];
	struct virtio_blk_request req;
	struct virtio_blk_discard_write_zeroes range;
};

struct virtio_blk {
	struct virtio_dev vdev;      /* first: the transport hands us this */
	struct virtio_device_ops ops;
	struct block_file file;
	char id[VIRTIO_BLK_ID_BYTES];
	struct virtio_blk_config config;
	struct blk_io *ios[VIRTIO_MAX_QUEUES];   /* BLK_QUEUE_SIZE per queue */
	/* Free slots of each queue's ios, as a stack: taking one is O(1) on the request path. */
	struct blk_io **free_ios[VIRTIO_MAX_QUEUES];
	unsigned int nr_free[VIRTIO_MAX_QUEUES];
	bool pushed[VIRTIO_MAX_QUEUES];
	bool starved[VIRTIO_MAX_QUEUES];         /* stopped popping for lack of a free blk_io */
	bool resetting;                          /* draining: the rings are no longer ours */
};

enum virtio_blk_parse_result virtio_blk_parse(const struct iovec *iov, unsigned int out_num, unsigned int in_num,
					      struct virtio_blk_request *req)
{
	const struct iovec *in = iov + out_num;
	struct virtio_blk_outhdr hdr;
	uint64_t out_total = iov_total(iov, out_num), in_total;
	unsigned int max = sizeof(req->data) / sizeof(req->data[0]);

	/* The status is the last byte of the last writable buffer (5.2.6). */
	if (in_num == 0 || in[in_num - 1].iov_len == 0)
		return VIRTIO_BLK_NO_STATUS;
	req->status = (uint8_t *)in[in_num - 1].iov_base + in[in_num - 1].iov_len - 1;
	in_total = iov_total(in, in_num) - 1;
	if (out_total < sizeof(hdr))
		return VIRTIO_BLK_BAD_REQUEST;
	/* No assumption about framing: the header may be split across buffers. */
	iov_to_buf(iov, out_num, &hdr, sizeof(hdr));
	req->type = le32toh(hdr.type);
	req->sector = le64toh(hdr.sector);

	switch (req->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_GET_ID:
		req->data_len = in_total;
		req->data_num = iov_slice(in, in_num, 0, in_total, req->data, max);
		break;
	case VIRTIO_BLK_T_OUT:
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		req->data_len = out_total - sizeof(hdr);
		req->data_num = iov_slice(iov, out_num, sizeof(hdr), req->data_len, req->data, max);
		break;
	default:
		req->data_len = 0;
		req->data_num = 0;
		break;
	}
	if (iov_total(req->data, req->data_num) != req->data_len)
		return VIRTIO_BLK_BAD_REQUEST;  /* more segments than seg_max allows */
	return VIRTIO_BLK_PARSED;
}

static void release(struct blk_io *bio)
{
	struct virtio_blk *blk = bio->blk;

	blk->free_ios[bio->queue][blk->nr_free[bio->queue]++] = bio;
}

/* Finish one request: status, used ring, and free the slot. */
static void finish(struct blk_io *bio, uint8_t status, uint32_t written)
{
	struct virtio_blk *blk = bio->blk;

	release(bio);
	if (blk->resetting)
		return;
	*bio->req.status = status;
	virtq_push(&blk->vdev.vq[bio->queue], bio->elem.head, written + 1);
	blk->pushed[bio->queue] = true;
}

static void io_complete(struct block_io *io, int result)
{
	struct blk_io *bio = (struct blk_io *)io;
	bool ok = result >= 0;
	uint32_t written = 0;

	/* Some file systems (tmpfs) cannot zero a range in place; a punched hole
	 * in a file reads back as zeroes too, which is all the guest asked for. */
	if (result == -EOPNOTSUPP && bio->req.type == VIRTIO_BLK_T_WRITE_ZEROES && !bio->retried) {
		bio->retried = true;
		if (block_file_discard(&bio->blk->file, &bio->io, le64toh(bio->range.sector) * VIRTIO_BLK_SECTOR,
				       (uint64_t)le32toh(bio->range.num_sectors) * VIRTIO_BLK_SECTOR) == 0) {
			block_file_submit(&bio->blk->file);
			return;
		}
	}

	if (bio->req.type == VIRTIO_BLK_T_IN && ok) {
		/* A short read past the end of a file that shrank: report it, don't pretend. */
		ok = (uint64_t)result == bio->req.data_len;
		written = (uint32_t)result;
	} else if (bio->req.type == VIRTIO_BLK_T_OUT && ok) {
		ok = (uint64_t)result == bio->req.data_len;
	}
	if (!ok)
		log_warn("virtio-blk: request type %u at sector %llu failed: %s", bio->req.type,
			 (unsigned long long)bio->req.sector, result < 0 ? strerror(-result) : "short transfer");
	finish(bio, ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR, written);
}

static bool in_range(const struct virtio_blk *blk, uint64_t sector, uint64_t bytes)
{
	uint64_t sectors = blk->file.size / VIRTIO_BLK_SECTOR;

	return bytes % VIRTIO_BLK_SECTOR == 0 && sector <= sectors && bytes / VIRTIO_BLK_SECTOR <= sectors - sector;
}

/* Start one parsed request; returns the status to answer at once, or -1 when queued. */
static int start(struct virtio_blk *blk, struct blk_io *bio)
{
	struct virtio_blk_request *req = &bio->req;
	uint64_t sectors;
	int err;

	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		if (!in_range(blk, req->sector, req->data_len))
			return VIRTIO_BLK_S_IOERR;
		err = block_file_readv(&blk->file, &bio->io, req->data, req->data_num, req->sector * VIRTIO_BLK_SECTOR);
		break;
	case VIRTIO_BLK_T_OUT:
		if (blk->file.read_only || !in_range(blk, req->sector, req->data_len))
			return VIRTIO_BLK_S_IOERR;
		err = block_file_writev(&blk->file, &bio->io, req->data, req->data_num, req->sector * VIRTIO_BLK_SECTOR);
		break;
	case VIRTIO_BLK_T_FLUSH:
		if (blk->file.read_only)
			return VIRTIO_BLK_S_OK;
		err = block_file_flush(&blk->file, &bio->io);
		break;
	case VIRTIO_BLK_T_GET_ID:
		finish(bio, VIRTIO_BLK_S_OK,
		       (uint32_t)iov_from_buf(req->data, req->data_num, blk->id, VIRTIO_BLK_ID_BYTES));
		return -1;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		/* We offer one segment per request (max_*_seg = 1). */
		if (blk->file.read_only || req->data_len != sizeof(bio->range))
			return VIRTIO_BLK_S_IOERR;
		iov_to_buf(req->data, req->data_num, &bio->range, sizeof(bio->range));
		sectors = le32toh(bio->range.num_sectors);
		if (sectors > BLK_MAX_DISCARD_SECTORS ||
		    !in_range(blk, le64toh(bio->range.sector), sectors * VIRTIO_BLK_SECTOR))
			return VIRTIO_BLK_S_IOERR;
		if (req->type == VIRTIO_BLK_T_DISCARD)
			err = block_file_discard(&blk->file, &bio->io, le64toh(bio->range.sector) * VIRTIO_BLK_SECTOR,
						 sectors * VIRTIO_BLK_SECTOR);
		else
			err = block_file_write_zeroes(&blk->file, &bio->io,
						      le64toh(bio->range.sector) * VIRTIO_BLK_SECTOR,
						      sectors * VIRTIO_BLK_SECTOR,
						      le32toh(bio->range.flags) & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
		break;
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
	return err ? VIRTIO_BLK_S_IOERR : -1;
}

static struct blk_io *take_free(struct virtio_blk *blk, unsigned int q)
{
	return blk->nr_free[q] ? blk->free_ios[q][--blk->nr_free[q]] : NULL;
}

static void notify_pushed(struct virtio_blk *blk)
{
	for (unsigned int q = 0; q < blk->ops.num_queues; q++) {
		if (blk->pushed[q]) {
			blk->pushed[q] = false;
			virtio_dev_notify(&blk->vdev, q);
		}
	}
}

static bool blk_kick(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_blk *blk = (struct virtio_blk *)vdev;
	struct virtq *vq = &vdev->vq[q];
	bool more = false;

	blk->starved[q] = false;
	for (unsigned int n = 0; n < BLK_REQUESTS_PER_KICK; n++) {
		struct blk_io *bio = take_free(blk, q);
		int status;

		if (!bio) {
			blk->starved[q] = true;  /* a completion will call us again */
			break;
		}
		if (virtq_pop(vq, &bio->elem) <= 0) {
			release(bio);
			break;
		}
		bio->retried = false;
		switch (virtio_blk_parse(bio->elem.iov, bio->elem.out_num, bio->elem.in_num, &bio->req)) {
		case VIRTIO_BLK_NO_STATUS:
			release(bio);
			vdev->set_needs_reset(vdev);
			return false;
		case VIRTIO_BLK_BAD_REQUEST:
			finish(bio, VIRTIO_BLK_S_IOERR, 0);
			continue;
		case VIRTIO_BLK_PARSED:
			break;
		}
		status = start(blk, bio);
		if (status >= 0)
			finish(bio, (uint8_t)status, 0);
		if (n + 1 == BLK_REQUESTS_PER_KICK)
			more = true;
	}
	block_file_submit(&blk->file);
	/* Page-cache hits complete during the submit: answer them now, in the
	 * same interrupt, rather than after another trip through the event loop. */
	block_file_reap(&blk->file);
	notify_pushed(blk);
	return more || (blk->starved[q] && blk->nr_free[q]);
}

static void blk_event_ready(struct virtio_dev *vdev, unsigned int index)
{
	struct virtio_blk *blk = (struct virtio_blk *)vdev;

	(void)index;
	block_file_reap(&blk->file);
	notify_pushed(blk);
	for (unsigned int q = 0; q < blk->ops.num_queues; q++)
		if (blk->starved[q] && vdev->vq_ready[q])
			blk_kick(vdev, q);
}

static unsigned int blk_event_fds(struct virtio_dev *vdev, int *fds, unsigned int max)
{
	(void)max;
	fds[0] = ((struct virtio_blk *)vdev)->file.event_fd;  /* reaping reads it: edge-triggered is fine */
	return 1;
}

static void blk_reset(struct virtio_dev *vdev)
{
	struct virtio_blk *blk = (struct virtio_blk *)vdev;

	/* In-flight I/O still writes into guest buffers: let it land, answer nothing. */
	blk->resetting = true;
	block_file_drain(&blk->file);
	blk->resetting = false;
	/* Every slot came back through finish() while draining. */
	for (unsigned int q = 0; q < blk->ops.num_queues; q++)
		blk->pushed[q] = blk->starved[q] = false;
}

/* Unlike reset, answer every in-flight request: a vhost-user frontend that
 * stops a ring (GET_VRING_BASE) resumes it at last_avail_idx, so anything
 * popped before that must reach the used ring now or never. A write-zeroes
 * that falls back to a discard resubmits from its completion; the drain
 * waits for that too. Starved queues are not kicked: no new requests. */
static void blk_drain(struct virtio_dev *vdev)
{
	struct virtio_blk *blk = (struct virtio_blk *)vdev;

	block_file_drain(&blk->file);
	notify_pushed(blk);
}

static void blk_config_read(struct virtio_dev *vdev, uint32_t offset, void *buf, uint32_t len)
{
	struct virtio_blk *blk = (struct virtio_blk *)vdev;

	memcpy(buf, (uint8_t *)&blk->config + offset, len);
}

struct virtio_dev *virtio_blk_create(const struct virtio_blk_options *opts)
{
	struct virtio_blk *blk = calloc(1, sizeof(*blk));
	const char *why = NULL;
	int err;

	if (!blk)
		return NULL;
	err = block_file_open(&blk->file, opts->path, opts->read_only, 2 * BLK_QUEUE_SIZE, &why);
	if (err) {
		log_error("%s: '%s': %s: %s", opts->option ? opts->option : "--disk", opts->path, why, strerror(-err));
		free(blk);
		return NULL;
	}
	strncpy(blk->id, opts->id ? opts->id : "", sizeof(blk->id));  /* not NUL-terminated at 20 chars, by spec */
	blk->ops = (struct virtio_device_ops){
		.name = "virtio-blk",
		.type = VIRTIO_ID_BLOCK,
		.features = (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
			    (1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_BLK_F_DISCARD) |
			    (1ULL << VIRTIO_BLK_F_WRITE_ZEROES) | (opts->read_only ? 1ULL << VIRTIO_BLK_F_RO : 0) |
			    (opts->queues > 1 ? 1ULL << VIRTIO_BLK_F_MQ : 0),
		.num_queues = (uint16_t)opts->queues,
		.queue_size = BLK_QUEUE_SIZE,
		.config_size = sizeof(struct virtio_blk_config),
		.config_read = blk_config_read,
		.queue_kick = blk_kick,
		.reset = blk_reset,
		.drain = blk_drain,
		.event_fds = blk_event_fds,
		.event_ready = blk_event_ready,
	};
	blk->config = (struct virtio_blk_config){
		.capacity = htole64(blk->file.size / VIRTIO_BLK_SECTOR),
		.seg_max = htole32(VIRTIO_BLK_SEG_MAX),
		.blk_size = htole32(VIRTIO_BLK_SECTOR),
		.num_queues = htole16((uint16_t)opts->queues),
		.max_discard_sectors = htole32(BLK_MAX_DISCARD_SECTORS),
		.max_discard_seg = htole32(1),
		.discard_sector_alignment = htole32(BLK_DISCARD_ALIGNMENT),
		.max_write_zeroes_sectors = htole32(BLK_MAX_DISCARD_SECTORS),
		.max_write_zeroes_seg = htole32(1),
		.write_zeroes_may_unmap = 1,
	};
	for (unsigned int q = 0; q < opts->queues; q++) {
		blk->ios[q] = calloc(BLK_QUEUE_SIZE, sizeof(struct blk_io));
		blk->free_ios[q] = calloc(BLK_QUEUE_SIZE, sizeof(struct blk_io *));
		if (!blk->ios[q] || !blk->free_ios[q]) {
			virtio_blk_destroy(&blk->vdev);
			return NULL;
		}
		for (unsigned int i = 0; i < BLK_QUEUE_SIZE; i++) {
			struct blk_io *bio = &blk->ios[q][i];

			bio->io.complete = io_complete;
			bio->blk = blk;
			bio->queue = q;
			virtq_elem_init(&bio->elem, bio->iov, VIRTIO_BLK_SEG_MAX + 2);
			release(bio);
		}
	}
	blk->vdev.ops = &blk->ops;
	pthread_mutex_init(&blk->vdev.lock, NULL);
	return &blk->vdev;
}

void virtio_blk_destroy(struct virtio_dev *vdev)
{
	struct virtio_blk *blk = (struct virtio_blk *)vdev;

	block_file_close(&blk->file);  /* drains: completions still land in guest RAM */
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		free(blk->ios[q]);
		free(blk->free_ios[q]);
	}
	pthread_mutex_destroy(&vdev->lock);
	free(blk);
}
