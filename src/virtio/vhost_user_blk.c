/* virtio-blk served by a vhost-user-blk backend process (kvio-blkd, QEMU's
 * storage daemon, SPDK): kvio keeps the PCI face and the configuration space
 * it reads from the backend; at DRIVER_OK every queue's ring, kick ioeventfd
 * and MSI-X irqfd go to the backend, which does the I/O in guest memory. */
#include "virtio/vhost_user_blk.h"

#include <errno.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "vhost/vhost_user.h"
#include "vhost/vhost_user_frontend.h"

#define VU_BLK_QUEUE_SIZE 256
#define TRANSPORT_BITS                                                                                \
	((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC))
/* The virtio-blk bits kvio passes on from the backend to the guest. */
#define BLK_BITS                                                                                      \
	((1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_GEOMETRY) | \
	 (1ULL << VIRTIO_BLK_F_RO) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) |         \
	 (1ULL << VIRTIO_BLK_F_TOPOLOGY) | (1ULL << VIRTIO_BLK_F_CONFIG_WCE) | (1ULL << VIRTIO_BLK_F_MQ) |    \
	 (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES))

struct vhost_user_blk {
	struct virtio_dev vdev;  /* first: the transport hands us this */
	struct virtio_device_ops ops;
	struct vhost_user_frontend fe;
	struct virtio_blk_config config;  /* as the backend reported it at start */
	bool running[VIRTIO_MAX_QUEUES];
	bool refused_logged;
};

static void vu_blk_config_read(struct virtio_dev *vdev, uint32_t offset, void *buf, uint32_t len)
{
	struct vhost_user_blk *blk = (struct vhost_user_blk *)vdev;

	memcpy(buf, (uint8_t *)&blk->config + offset, len);
}

/* Runs only for a queue kvio could not hand over (MSI-X off): kvio has no
 * way to do the I/O itself, so the device asks for a reset, once. */
static bool vu_blk_kick(struct virtio_dev *vdev, unsigned int q)
{
	struct vhost_user_blk *blk = (struct vhost_user_blk *)vdev;

	if (!blk->refused_logged)
		log_warn("vhost-user-blk %s: queue %u kicked but not handed to the backend (it needs MSI-X)", blk->fe.path,
			 q);
	blk->refused_logged = true;
	vdev->set_needs_reset(vdev);
	return false;
}

static void stop_rings(struct vhost_user_blk *blk)
{
	struct virtio_dev *vdev = &blk->vdev;

	for (unsigned int q = 0; q < blk->ops.num_queues; q++) {
		struct virtq *vq = &vdev->vq[q];
		uint16_t next_avail;

		if (!blk->running[q])
			continue;
		blk->running[q] = false;
		vq->used_idx = le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
		/* A backend that is gone cannot say: its unfinished requests are lost with it. */
		vq->last_avail_idx = vhost_user_frontend_stop_ring(&blk->fe, q, &next_avail) ? vq->used_idx : next_avail;
		vq->signalled_used_valid = false;
		vdev->reclaim_queue(vdev, q);
	}
}

static int start_rings(struct vhost_user_blk *blk)
{
	struct virtio_dev *vdev = &blk->vdev;
	int err;

	err = vhost_user_frontend_set_features(&blk->fe, vdev->features | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES));
	if (!err)
		err = vhost_user_frontend_set_mem_table(&blk->fe, vdev->vq[0].mem);
	for (unsigned int q = 0; q < blk->ops.num_queues && !err; q++) {
		int kick_fd, call_fd;

		if (!vdev->vq_ready[q])
			continue;
		err = vdev->offload_queue(vdev, q, &kick_fd, &call_fd);
		if (!err) {
			err = vhost_user_frontend_start_ring(&blk->fe, q, &vdev->vq[q], kick_fd, call_fd);
			blk->running[q] = !err;
			if (err)
				vdev->reclaim_queue(vdev, q);
		}
	}
	return err;
}

/* The backend went away: its rings are gone, so the device asks the driver
 * for a reset (NEEDS_RESET). kvio does not reconnect a disk: every later
 * DRIVER_OK fails the same way until kvio is started again. */
static void vu_blk_backend_changed(void *ctx, bool up)
{
	struct vhost_user_blk *blk = ctx;
	struct virtio_dev *vdev = &blk->vdev;

	if (up)
		return;
	pthread_mutex_lock(&vdev->lock);
	stop_rings(blk);
	vdev->set_needs_reset(vdev);
	pthread_mutex_unlock(&vdev->lock);
}

static void vu_blk_driver_ok(struct virtio_dev *vdev)
{
	struct vhost_user_blk *blk = (struct vhost_user_blk *)vdev;
	int err;

	if (!vdev->vq_ready[0])
		return;
	/* Watched from the first DRIVER_OK on, when the transport is attached. */
	if (!blk->fe.watching && vhost_user_frontend_watch(&blk->fe, 0, vu_blk_backend_changed, blk))
		log_warn("vhost-user-blk %s: no watcher thread: a backend that leaves goes unnoticed", blk->fe.path);
	err = start_rings(blk);
	if (err) {
		log_warn("vhost-user-blk %s: cannot hand the queues over: %s", blk->fe.path, strerror(-err));
		stop_rings(blk);
		vdev->set_needs_reset(vdev);
	}
}

static void vu_blk_reset(struct virtio_dev *vdev)
{
	stop_rings((struct vhost_user_blk *)vdev);
}

static void vu_blk_quiesce(struct virtio_dev *vdev)
{
	vhost_user_frontend_unwatch(&((struct vhost_user_blk *)vdev)->fe);
}

struct virtio_dev *vhost_user_blk_create(const char *path, unsigned int queues)
{
	struct vhost_user_blk *blk = calloc(1, sizeof(*blk));
	const char *why = "out of memory";
	int err = -ENOMEM;

	if (!blk)
		goto fail;
	vhost_user_frontend_init(&blk->fe, path);
	err = vhost_user_frontend_connect(&blk->fe, &why);
	if (!err && (blk->fe.features & TRANSPORT_BITS) != TRANSPORT_BITS) {
		why = "the backend lacks VIRTIO_F_VERSION_1, EVENT_IDX or INDIRECT_DESC, which kvio always offers";
		err = -ENOTSUP;
	}
	if (!err && queues > 1 && (!(blk->fe.features & (1ULL << VIRTIO_BLK_F_MQ)) || blk->fe.max_queues < queues)) {
		why = "the backend has fewer queues than queues= asks for";
		err = -ENOTSUP;
	}
	if (!err) {
		why = "GET_CONFIG failed (the backend needs the CONFIG protocol feature)";
		err = vhost_user_frontend_get_config(&blk->fe, 0, &blk->config, sizeof(blk->config));
	}
	if (err)
		goto fail;
	if (queues > 1)
		blk->config.num_queues = htole16((uint16_t)queues);
	blk->ops = (struct virtio_device_ops){
		.name = "vhost-user-blk",
		.type = VIRTIO_ID_BLOCK,
		.features = blk->fe.features & BLK_BITS & (queues > 1 ? ~0ULL : ~(1ULL << VIRTIO_BLK_F_MQ)),
		.num_queues = (uint16_t)queues,
		.queue_size = VU_BLK_QUEUE_SIZE,
		.config_size = sizeof(blk->config),
		.config_read = vu_blk_config_read,
		.queue_kick = vu_blk_kick,
		.driver_ok = vu_blk_driver_ok,
		.reset = vu_blk_reset,
		.quiesce = vu_blk_quiesce,
	};
	blk->vdev.ops = &blk->ops;
	pthread_mutex_init(&blk->vdev.lock, NULL);
	return &blk->vdev;
fail:
	log_error("--disk vhost-user=%s: %s: %s", path, why, strerror(-err));
	if (blk)
		vhost_user_frontend_close(&blk->fe);
	free(blk);
	return NULL;
}

void vhost_user_blk_destroy(struct virtio_dev *vdev)
{
	struct vhost_user_blk *blk = (struct vhost_user_blk *)vdev;

	/* kvio is going away: stop the rings (GET_VRING_BASE), so the backend
	 * completes the requests in flight before the socket closes. */
	for (unsigned int q = 0; q < blk->ops.num_queues; q++) {
		uint16_t next_avail;

		if (blk->running[q] && vhost_user_frontend_stop_ring(&blk->fe, q, &next_avail))
			break;  /* the backend is gone or out of step */
	}
	vhost_user_frontend_close(&blk->fe);
	pthread_mutex_destroy(&vdev->lock);
	free(blk);
}
