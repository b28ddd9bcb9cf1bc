/* vhost-user network backend: another process (kvio-switch, DPDK) runs the
 * queue pairs' rings in guest memory it maps by fd; kvio only sets them up,
 * tears them down and keeps the control queue. When the backend goes away
 * the NIC's link goes down; with reconnect=, it comes back and the rings
 * resume where the guest's used rings say they stood, unless what answers
 * now lacks what the guest uses. */
#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/net.h"
#include "util/guest_mem.h"
#include "util/log.h"
#include "vhost/vhost_user.h"
#include "vhost/vhost_user_frontend.h"
#include "virtio/queue.h"

/* What kvio's transport offers every guest: the backend must run rings that way. */
#define TRANSPORT_BITS                                                                                \
	((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC))

struct net_vhost_user {
	struct net_backend be;
	struct vhost_user_frontend fe;
	unsigned int queue_pairs, active_pairs;
	/* What started rings look like, for a resume after a reconnect. Under
	 * the NIC's locks (start/stop/resume run there). */
	struct net_ring rings[2 * NET_MAX_QUEUE_PAIRS];
	bool running[2 * NET_MAX_QUEUE_PAIRS];
	const struct guest_mem *mem;
	uint64_t features;
	bool session_set_up;    /* features and memory table sent on this connection */
	bool shortfall_logged;  /* this connection's backend_runs_guest() refusal */
	/* Rings go to a connection only once the NIC has taken it up (its
	 * link-up runs resume_offload under the NIC's locks, which sets this):
	 * a DRIVER_OK between the watcher's reconnect and that link-up leaves
	 * the rings to the link-up, so they start once, with the new backend's
	 * features read. The watcher clears it before it tells the NIC the
	 * backend left, hence before any reconnect; the rest is under the
	 * NIC's locks. No lock of its own: the frontend's stays innermost. */
	bool connection_ready;
	unsigned int reconnect_s;
};

static bool connection_usable(const struct net_vhost_user *vu)
{
	return __atomic_load_n(&vu->connection_ready, __ATOMIC_RELAXED) && vhost_user_frontend_connected(&vu->fe);
}

static unsigned int running_rings(const struct net_vhost_user *vu)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < 2 * vu->queue_pairs; i++)
		n += vu->running[i];
	return n;
}

/* Frames only move in the backend process; these run only for a pair kvio
 * could not hand over (a driver without MSI-X), which then carries nothing. */
static int vu_send(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	(void)be, (void)qp, (void)iov, (void)n;
	return -ENOTCONN;
}

static ssize_t vu_recv(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	(void)be, (void)qp, (void)iov, (void)n;
	return -EAGAIN;
}

static int enable_pair(struct net_vhost_user *vu, unsigned int qp, bool enable)
{
	int err = 0;

	for (unsigned int i = 2 * qp; i < 2 * qp + 2 && !err; i++)
		if (vu->running[i])
			err = vhost_user_frontend_enable_ring(&vu->fe, i, enable);
	return err;
}

static int vu_set_queue_pairs(struct net_backend *be, unsigned int n)
{
	struct net_vhost_user *vu = (struct net_vhost_user *)be;
	int err = 0;

	vu->active_pairs = n;
	if (!connection_usable(vu))
		return 0;  /* the link-up's resume applies it */
	for (unsigned int qp = 0; qp < vu->queue_pairs && !err; qp++)
		err = enable_pair(vu, qp, qp < n);
	return err == -ENOTCONN ? 0 : err;  /* applied again on reconnect */
}

static int start_ring(struct net_vhost_user *vu, unsigned int index)
{
	const struct net_ring *ring = &vu->rings[index];

	return vhost_user_frontend_start_ring(&vu->fe, index, ring->vq, ring->kick_fd, ring->call_fd);
}

/* After a reconnect the socket may lead to another program: it must run the
 * rings as the guest set them up (ring features the first backend offered
 * and the guest took) and have every queue pair kvio offered the guest. */
static bool backend_runs_guest(struct net_vhost_user *vu)
{
	uint64_t lacking = vu->features & vu->be.ring_features & ~vu->fe.features;
	char what[80];

	if (lacking)
		snprintf(what, sizeof(what), "ring features the guest uses (0x%" PRIx64 ")", lacking);
	else if (vu->queue_pairs > 1 && vu->fe.max_queues < vu->queue_pairs)
		snprintf(what, sizeof(what), "the %u queue pairs the guest has (MQ)", vu->queue_pairs);
	else
		return true;
	if (!vu->shortfall_logged)
		log_warn("vhost-user %s: the backend lacks %s: its rings stay stopped", vu->fe.path, what);
	vu->shortfall_logged = true;
	return false;
}

/* Features and memory table, once per connection, before the first ring. */
static int set_up_session(struct net_vhost_user *vu)
{
	int err;

	if (vu->session_set_up)
		return 0;
	if (!backend_runs_guest(vu))
		return -EPROTONOSUPPORT;  /* not -ENOTSUP: the NIC reads that as "no MSI-X" */
	err = vhost_user_frontend_set_features(&vu->fe, vu->features | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES));
	if (!err)
		err = vhost_user_frontend_set_mem_table(&vu->fe, vu->mem);
	vu->session_set_up = !err;
	return err;
}

static void link_changed(void *ctx, bool up)
{
	struct net_vhost_user *vu = ctx;

	if (!up)
		__atomic_store_n(&vu->connection_ready, false, __ATOMIC_RELAXED);
	/* The NIC resumes the rings under its locks before it raises the link. */
	if (vu->be.link_changed)
		vu->be.link_changed(vu->be.link_ctx, up);
}

static void vu_stop_offload(struct net_backend *be, unsigned int qp, const struct net_ring rings[2]);

static int vu_start_offload(struct net_backend *be, unsigned int qp, const struct guest_mem *mem, uint64_t features,
			    const struct net_ring rings[2])
{
	struct net_vhost_user *vu = (struct net_vhost_user *)be;
	int err;

	if (qp >= vu->queue_pairs)
		return -EINVAL;
	/* Watched from the first hand-over on: the NIC is attached by then, so
	 * its link callback and the transport it uses exist. */
	if (!vu->fe.watching && vhost_user_frontend_watch(&vu->fe, vu->reconnect_s, link_changed, vu))
		log_warn("vhost-user %s: no watcher thread: a backend that leaves goes unnoticed", vu->fe.path);
	if (!connection_usable(vu))
		return -ENOTCONN;
	if (!running_rings(vu)) {
		vu->session_set_up = false;  /* a new driver: its features, maybe another layout */
		vu->mem = mem;
		vu->features = features;
	}
	err = set_up_session(vu);
	for (unsigned int i = 0; i < 2 && !err; i++) {
		vu->rings[2 * qp + i] = rings[i];
		err = start_ring(vu, 2 * qp + i);
		vu->running[2 * qp + i] = !err;
	}
	if (!err && qp >= vu->active_pairs)
		err = enable_pair(vu, qp, false);
	/* A pair that fails to start goes back to kvio (the NIC reclaims its
	 * queues): the backend must not go on running a ring of it that did. */
	if (err)
		vu_stop_offload(be, qp, rings);
	return err;
}

/* Where ring i stands when the backend cannot say (it is gone): every buffer
 * it had taken but not used is given up, which for a NIC is a dropped frame. */
static void rewind_to_used(struct virtq *vq)
{
	vq->used_idx = le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
	vq->last_avail_idx = vq->used_idx;
	vq->signalled_used_valid = false;
}

static void vu_stop_offload(struct net_backend *be, unsigned int qp, const struct net_ring rings[2])
{
	struct net_vhost_user *vu = (struct net_vhost_user *)be;

	for (unsigned int i = 0; i < 2; i++) {
		unsigned int index = 2 * qp + i;
		struct virtq *vq = rings[i].vq;
		uint16_t next_avail;

		if (!vu->running[index])
			continue;
		vu->running[index] = false;
		/* Not usable: the ring ran on a connection that is gone. */
		if (!connection_usable(vu) || vhost_user_frontend_stop_ring(&vu->fe, index, &next_avail)) {
			rewind_to_used(vq);
			continue;
		}
		vq->last_avail_idx = next_avail;
		vq->used_idx = le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
		vq->signalled_used_valid = false;
	}
}

static int vu_resume_offload(struct net_backend *be)
{
	struct net_vhost_user *vu = (struct net_vhost_user *)be;
	int err = 0;

	__atomic_store_n(&vu->connection_ready, true, __ATOMIC_RELAXED);
	vu->shortfall_logged = false;
	if (!running_rings(vu))
		return 0;  /* nothing was running: the next DRIVER_OK sets everything up */
	vu->session_set_up = false;
	err = set_up_session(vu);
	for (unsigned int i = 0; i < 2 * vu->queue_pairs && !err; i++) {
		if (!vu->running[i])
			continue;
		rewind_to_used(vu->rings[i].vq);
		err = start_ring(vu, i);
	}
	for (unsigned int qp = vu->active_pairs; qp < vu->queue_pairs && !err; qp++)
		err = enable_pair(vu, qp, false);
	return err;
}

static void vu_quiesce(struct net_backend *be)
{
	vhost_user_frontend_unwatch(&((struct net_vhost_user *)be)->fe);
}

static void vu_destroy(struct net_backend *be)
{
	struct net_vhost_user *vu = (struct net_vhost_user *)be;

	/* kvio is going away: stop the rings as a reset would (GET_VRING_BASE),
	 * so the backend finishes with guest memory before the socket closes. */
	for (unsigned int i = 0; i < 2 * vu->queue_pairs; i++) {
		uint16_t next_avail;

		if (vu->running[i] && vhost_user_frontend_stop_ring(&vu->fe, i, &next_avail))
			break;  /* the backend is gone or out of step: nothing more to ask it */
	}
	vhost_user_frontend_close(&vu->fe);
	free(vu);
}

static const struct net_backend_ops vhost_user_ops = {
	.name = "vhost-user",
	.send = vu_send,
	.recv = vu_recv,
	.set_queue_pairs = vu_set_queue_pairs,
	.start_offload = vu_start_offload,
	.stop_offload = vu_stop_offload,
	.resume_offload = vu_resume_offload,
	.quiesce = vu_quiesce,
	.destroy = vu_destroy,
};

struct net_backend *net_vhost_user_open(const char *path, unsigned int queue_pairs, unsigned int reconnect_s,
					const char **why)
{
	const uint64_t data_path_bits =
		(1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) |
		(1ULL << VIRTIO_NET_F_GUEST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_ECN) | (1ULL << VIRTIO_NET_F_GUEST_UFO) |
		(1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_HOST_TSO6) | (1ULL << VIRTIO_NET_F_HOST_ECN) |
		(1ULL << VIRTIO_NET_F_HOST_UFO) | (1ULL << VIRTIO_NET_F_MRG_RXBUF);
	struct net_vhost_user *vu = calloc(1, sizeof(*vu));
	int err;

	if (!vu) {
		*why = "out of memory";
		errno = ENOMEM;
		return NULL;
	}
	vhost_user_frontend_init(&vu->fe, path);
	vu->reconnect_s = reconnect_s;
	vu->queue_pairs = vu->active_pairs = queue_pairs;
	err = vhost_user_frontend_connect(&vu->fe, why);
	vu->connection_ready = !err;  /* no NIC yet: its first DRIVER_OK takes it up */
	if (!err && (vu->fe.features & TRANSPORT_BITS) != TRANSPORT_BITS) {
		*why = "the backend lacks VIRTIO_F_VERSION_1, EVENT_IDX or INDIRECT_DESC, which kvio always offers";
		err = -ENOTSUP;
	}
	/* GET_QUEUE_NUM counts queue pairs for a net backend (DPDK, QEMU). */
	if (!err && queue_pairs > 1 && vu->fe.max_queues < queue_pairs) {
		*why = "the backend has fewer queue pairs than queues= asks for (or no MQ protocol feature)";
		err = -ENOTSUP;
	}
	vu->be = (struct net_backend){
		.ops = &vhost_user_ops,
		.queue_pairs = queue_pairs,
		.offloads = vu->fe.features & data_path_bits & ~(1ULL << VIRTIO_NET_F_MRG_RXBUF),
		.has_offload = true,
		.ring_features = (vu->fe.features & data_path_bits) | TRANSPORT_BITS,
	};
	if (err) {
		vu_destroy(&vu->be);
		errno = -err;
		return NULL;
	}
	return &vu->be;
}
