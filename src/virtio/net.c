/* virtio-net (VIRTIO 1.x 5.1): receive and transmit queue pairs plus the
 * control queue, over any network backend. Frames move between guest buffers
 * and the backend without a copy: the popped chains' iovecs go straight to the
 * backend's readv/writev, virtio-net header included. Each queue pair is a
 * queue group of its own (its own lock, and I/O thread under KVM); the
 * control queue, which reaches into every pair, runs in group 0 with all of
 * them held. */
#include "virtio/net.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <stdlib.h>
#include <string.h>

#include "util/iov.h"
#include "util/log.h"

#define NET_QUEUE_SIZE 256
#define NET_TX_FRAMES_PER_KICK 256
#define NET_RX_FRAMES_PER_CALL 256
#define NET_TX_MAX_IOV 64      /* header + linear part + MAX_SKB_FRAGS, with room to spare */
#define NET_RX_MAX_IOV 1024    /* IOV_MAX: one frame spread over many mergeable buffers */
#define NET_RX_MAX_CHAINS 256
#define NET_CTRL_MAX_IOV 8

_Static_assert(NET_MAX_QUEUE_PAIRS <= VIRTIO_MAX_QUEUE_GROUPS && NET_MAX_QUEUE_PAIRS <= VIRTIO_MAX_EVENT_FDS,
	       "a queue pair is a queue group, and its backend queue an event fd");

struct net_queue_pair {
	struct virtq_elem tx_elem;
	struct iovec tx_iov[NET_TX_MAX_IOV];
	struct virtq_elem rx_elems[NET_RX_MAX_CHAINS];
	struct iovec rx_iov[NET_RX_MAX_IOV];
	struct virtio_net_stats stats;
	bool recv_error_logged;
};

struct virtio_net {
	struct virtio_dev vdev;  /* first: the transport hands us this */
	struct virtio_device_ops ops;
	struct virtio_net_config config;
	uint8_t mac[6];          /* the configured address, restored on reset */
	struct net_backend *be;
	unsigned int queue_pairs, active_pairs;
	struct net_queue_pair *qps;
	struct virtq_elem ctrl_elem;
	struct iovec ctrl_iov[NET_CTRL_MAX_IOV];
	bool offloaded[NET_MAX_QUEUE_PAIRS];  /* the backend's data path (vhost) runs this pair */
	bool driver_ok;
	bool offload_refused_logged;
};

static unsigned int rx_queue(unsigned int qp) { return 2 * qp; }
static unsigned int tx_queue(unsigned int qp) { return 2 * qp + 1; }
static unsigned int ctrl_queue(const struct virtio_net *net) { return 2 * net->queue_pairs; }

static bool negotiated(const struct virtio_net *net, unsigned int bit)
{
	return net->vdev.features & (1ULL << bit);
}

/* Room a receive must have: the largest frame the backend may hand us now. */
static size_t rx_room_needed(const struct virtio_net *net)
{
	bool gso = negotiated(net, VIRTIO_NET_F_GUEST_TSO4) || negotiated(net, VIRTIO_NET_F_GUEST_TSO6) ||
		   negotiated(net, VIRTIO_NET_F_GUEST_UFO);

	/* A link MTU above 1500 counts only for a driver that learnt it (F_MTU):
	 * for another, frames over 1500 bytes are dropped, not waited for. */
	size_t frame = negotiated(net, VIRTIO_NET_F_MTU) && net->be->mtu > 1500 ? NET_ETH_OVERHEAD + net->be->mtu
										 : NET_MAX_FRAME;

	_Static_assert(NET_ETH_OVERHEAD + CONFIG_MAX_MTU <= NET_MAX_GSO_FRAME, "a GSO frame's room covers any MTU");
	return NET_HDR_LEN + (gso ? NET_MAX_GSO_FRAME : frame);
}

/* Move frames from the backend into the guest's receive buffers until the
 * backend runs dry, the guest's buffers run out (its next refill kicks us), or
 * the budget is spent (then we come back through the queue's kick). */
static void receive(struct virtio_net *net, unsigned int qp)
{
	struct virtio_dev *vdev = &net->vdev;
	struct net_queue_pair *q = &net->qps[qp];
	struct virtq *vq = &vdev->vq[rx_queue(qp)];
	bool mergeable = negotiated(net, VIRTIO_NET_F_MRG_RXBUF), pushed = false;
	size_t need = rx_room_needed(net);

	if (!vdev->vq_ready[rx_queue(qp)] || qp >= net->active_pairs || net->offloaded[qp])
		return;
	for (unsigned int frame = 0;; frame++) {
		unsigned int chains = 0, niov = 0, used = 0;
		size_t room = 0, left;
		ssize_t len;

		if (frame == NET_RX_FRAMES_PER_CALL) {
			/* Frames may still wait, and an edge-triggered fd will not say so again. */
			vdev->requeue(vdev, rx_queue(qp));
			break;
		}

		/* Take buffers for the largest possible frame; give back what it does not use. */
		while (room < need && chains < NET_RX_MAX_CHAINS && niov < NET_RX_MAX_IOV) {
			struct virtq_elem *elem = &q->rx_elems[chains];
			int ret;

			virtq_elem_init(elem, q->rx_iov + niov, NET_RX_MAX_IOV - niov);
			/* Kicks only when short of buffers: a refill we do not wait for is no news. */
			ret = virtq_pop_quiet(vq, elem);
			if (ret < 0 || (ret > 0 && elem->out_num)) {
				if (ret > 0)
					log_warn("virtio-net: receive buffer the device may not write");
				vdev->set_needs_reset(vdev);
				return;
			}
			if (ret == 0)
				break;
			chains++;
			niov += elem->in_num;
			room += elem->in_len;
			if (!mergeable)
				break;  /* without mergeable buffers, a frame gets one chain */
		}
		/* Short of room: wait for the guest's refill, unless it has nothing
		 * more to give (a tiny queue, or tiny buffers filling it), where
		 * waiting would never end and only an oversized frame gets cut. */
		if (chains == 0 || (room < need && chains < vq->size && chains < NET_RX_MAX_CHAINS &&
				    niov < NET_RX_MAX_IOV)) {
			virtq_unpop(vq, (uint16_t)chains);
			break;
		}
		len = net->be->ops->recv(net->be, qp, q->rx_iov, niov);
		if (len < (ssize_t)NET_HDR_LEN) {
			virtq_unpop(vq, (uint16_t)chains);
			if (len >= 0) {
				q->stats.rx_dropped++;
				continue;
			}
			if (len != -EAGAIN && !q->recv_error_logged) {
				log_warn("virtio-net: %s receive: %s", net->be->ops->name, strerror((int)-len));
				q->recv_error_logged = true;
			}
			break;
		}
		for (left = (size_t)len; used < chains && left; used++)
			left -= left < q->rx_elems[used].in_len ? left : q->rx_elems[used].in_len;
		if (mergeable) {
			/* num_buffers sits at the end of the header, which may span buffers. */
			uint16_t num_buffers = htole16((uint16_t)used);
			struct iovec at[2];
			unsigned int n = iov_slice(q->rx_iov, niov, offsetof(struct virtio_net_hdr_v1, num_buffers),
						   sizeof(num_buffers), at, 2);

			iov_from_buf(at, n, &num_buffers, sizeof(num_buffers));
		}
		left = (size_t)len;
		for (unsigned int i = 0; i < used; i++) {
			uint32_t part = left < q->rx_elems[i].in_len ? (uint32_t)left : q->rx_elems[i].in_len;

			virtq_push(vq, q->rx_elems[i].head, part);
			left -= part;
		}
		virtq_unpop(vq, (uint16_t)(chains - used));
		q->stats.rx_frames++;
		q->stats.rx_bytes += (uint64_t)len - NET_HDR_LEN;
		pushed = true;
	}
	if (pushed)
		virtio_dev_notify(vdev, rx_queue(qp));
}

static bool transmit(struct virtio_net *net, unsigned int qp)
{
	struct virtio_dev *vdev = &net->vdev;
	struct net_queue_pair *q = &net->qps[qp];
	struct virtq *vq = &vdev->vq[tx_queue(qp)];
	bool pushed = false, more = false;

	if (net->offloaded[qp])
		return false;
	for (unsigned int frame = 0;; frame++) {
		int ret;

		if (frame == NET_TX_FRAMES_PER_KICK) {
			more = true;
			break;
		}
		ret = virtq_pop_quiet(vq, &q->tx_elem);  /* no kicks while we drain */
		if (ret < 0) {
			vdev->set_needs_reset(vdev);
			break;
		}
		if (ret == 0)
			break;
		if (q->tx_elem.in_num || q->tx_elem.out_len < NET_HDR_LEN ||
		    q->tx_elem.out_len > NET_HDR_LEN + NET_MAX_GSO_FRAME ||
		    net->be->ops->send(net->be, qp, q->tx_elem.iov, q->tx_elem.out_num)) {
			q->stats.tx_dropped++;
		} else {
			q->stats.tx_frames++;
			q->stats.tx_bytes += q->tx_elem.out_len - NET_HDR_LEN;
		}
		virtq_push(vq, q->tx_elem.head, 0);
		pushed = true;
	}
	if (pushed) {
		if (net->be->ops->flush)
			net->be->ops->flush(net->be, qp);
		virtio_dev_notify(vdev, tx_queue(qp));
	}
	return more;
}

static uint8_t set_queue_pairs(struct virtio_net *net, const struct iovec *data, unsigned int n, size_t len)
{
	struct virtio_net_ctrl_mq mq;
	unsigned int pairs;

	if (!negotiated(net, VIRTIO_NET_F_MQ) || len != sizeof(mq))
		return VIRTIO_NET_ERR;
	iov_to_buf(data, n, &mq, sizeof(mq));
	pairs = le16toh(mq.virtqueue_pairs);
	if (pairs < 1 || pairs > net->queue_pairs)
		return VIRTIO_NET_ERR;
	if (net->be->ops->set_queue_pairs && net->be->ops->set_queue_pairs(net->be, pairs))
		return VIRTIO_NET_ERR;
	net->active_pairs = pairs;
	/* Frames may already wait on queues that were idle (edge-triggered: no new event). */
	for (unsigned int qp = 0; qp < pairs; qp++)
		receive(net, qp);
	return VIRTIO_NET_OK;
}

static uint8_t set_guest_offloads(struct virtio_net *net, const struct iovec *data, unsigned int n, size_t len)
{
	const uint64_t guest_bits = (1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) |
				    (1ULL << VIRTIO_NET_F_GUEST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_ECN) |
				    (1ULL << VIRTIO_NET_F_GUEST_UFO);
	uint64_t offloads;

	if (!negotiated(net, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) || len != sizeof(offloads))
		return VIRTIO_NET_ERR;
	iov_to_buf(data, n, &offloads, sizeof(offloads));
	offloads = le64toh(offloads);
	/* Only what was negotiated may be switched on again. */
	if (offloads & ~(net->vdev.features & guest_bits))
		return VIRTIO_NET_ERR;
	return net->be->ops->set_guest_offloads(net->be, offloads) ? VIRTIO_NET_ERR : VIRTIO_NET_OK;
}

static uint8_t control_command(struct virtio_net *net, uint8_t class, uint8_t cmd, const struct iovec *data,
			       unsigned int n, size_t len)
{
	switch (class) {
	case VIRTIO_NET_CTRL_RX:
		/* kvio does not filter: every mode the guest asks for is what it gets. */
		return cmd <= VIRTIO_NET_CTRL_RX_ALLMULTI && len == 1 ? VIRTIO_NET_OK : VIRTIO_NET_ERR;
	case VIRTIO_NET_CTRL_MAC:
		if (cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET)
			return VIRTIO_NET_OK;
		if (cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET && len == sizeof(net->config.mac)) {
			iov_to_buf(data, n, net->config.mac, sizeof(net->config.mac));
			return VIRTIO_NET_OK;
		}
		return VIRTIO_NET_ERR;
	case VIRTIO_NET_CTRL_MQ:
		return cmd == VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET ? set_queue_pairs(net, data, n, len) : VIRTIO_NET_ERR;
	case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
		return cmd == VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET ? set_guest_offloads(net, data, n, len)
								  : VIRTIO_NET_ERR;
	default:
		return VIRTIO_NET_ERR;
	}
}

/* Control requests: a class/command header and data the driver wrote, then
 * one byte for our answer. */
static void control(struct virtio_net *net)
{
	struct virtio_dev *vdev = &net->vdev;
	struct virtq *vq = &vdev->vq[ctrl_queue(net)];
	struct virtq_elem *elem = &net->ctrl_elem;
	bool pushed = false;

	for (unsigned int i = 0; i < NET_QUEUE_SIZE; i++) {
		struct virtio_net_ctrl_hdr hdr;
		struct iovec data[NET_CTRL_MAX_IOV], ack[1];
		unsigned int ndata;
		uint8_t status;
		int ret = virtq_pop(vq, elem);

		if (ret < 0 || (ret > 0 && (elem->out_len < sizeof(hdr) || elem->in_len < 1))) {
			vdev->set_needs_reset(vdev);
			break;
		}
		if (ret == 0)
			break;
		iov_to_buf(elem->iov, elem->out_num, &hdr, sizeof(hdr));
		ndata = iov_slice(elem->iov, elem->out_num, sizeof(hdr), elem->out_len - sizeof(hdr), data,
				  NET_CTRL_MAX_IOV);
		status = control_command(net, hdr.class, hdr.cmd, data, ndata, elem->out_len - sizeof(hdr));
		iov_slice(elem->iov + elem->out_num, elem->in_num, elem->in_len - 1, 1, ack, 1);
		iov_from_buf(ack, 1, &status, 1);
		virtq_push(vq, elem->head, 1);
		pushed = true;
	}
	if (pushed)
		virtio_dev_notify(vdev, ctrl_queue(net));
}

static bool net_kick(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_net *net = (struct virtio_net *)vdev;

	if (q == ctrl_queue(net)) {
		virtio_lock_groups(vdev);
		control(net);
		virtio_unlock_groups(vdev);
		return false;
	}
	if (q % 2)
		return transmit(net, q / 2);
	receive(net, q / 2);  /* the guest added receive buffers */
	return false;
}

static unsigned int net_event_fds(struct virtio_dev *vdev, int *fds, unsigned int max)
{
	struct virtio_net *net = (struct virtio_net *)vdev;
	unsigned int n = 0;

	if (!net->be->ops->rx_fd)
		return 0;  /* frames never pass through kvio (vhost-user) */
	for (; n < net->queue_pairs && n < max; n++)
		fds[n] = net->be->ops->rx_fd(net->be, n);
	return n;
}

static void net_event_ready(struct virtio_dev *vdev, unsigned int qp)
{
	struct virtio_net *net = (struct virtio_net *)vdev;

	if (qp < net->queue_pairs)
		receive(net, qp);
}

static void offload_rings(struct virtio_net *net, unsigned int qp, struct net_ring rings[2])
{
	rings[0] = (struct net_ring){ .vq = &net->vdev.vq[rx_queue(qp)], .kick_fd = -1, .call_fd = -1 };
	rings[1] = (struct net_ring){ .vq = &net->vdev.vq[tx_queue(qp)], .kick_fd = -1, .call_fd = -1 };
}

/* Give queue pair qp's rings to the backend's own data path (vhost-net): from
 * then on guest kicks and interrupts bypass kvio entirely. */
static int start_offload(struct virtio_net *net, unsigned int qp)
{
	struct virtio_dev *vdev = &net->vdev;
	unsigned int queues[2] = { rx_queue(qp), tx_queue(qp) };
	struct net_ring rings[2];
	int err = 0;

	offload_rings(net, qp, rings);
	for (unsigned int i = 0; i < 2 && !err; i++) {
		if (!vdev->vq_ready[queues[i]]) {
			err = -ENOTSUP;  /* a pair the driver did not set up stays with kvio */
			continue;
		}
		/* Handed over asking for kicks: the other side waits for one before it looks. */
		virtq_enable_kicks(rings[i].vq);
		err = vdev->offload_queue(vdev, queues[i], &rings[i].kick_fd, &rings[i].call_fd);
	}
	if (!err)
		err = net->be->ops->start_offload(net->be, qp, rings[0].vq->mem, vdev->features, rings);
	if (err) {
		vdev->reclaim_queue(vdev, queues[0]);
		vdev->reclaim_queue(vdev, queues[1]);
		return err;
	}
	net->offloaded[qp] = true;
	return 0;
}

static void stop_offload(struct virtio_net *net, unsigned int qp)
{
	struct net_ring rings[2];

	if (!net->offloaded[qp])
		return;
	offload_rings(net, qp, rings);
	net->be->ops->stop_offload(net->be, qp, rings);
	net->offloaded[qp] = false;
	net->vdev.reclaim_queue(&net->vdev, rx_queue(qp));
	net->vdev.reclaim_queue(&net->vdev, tx_queue(qp));
}

static void net_driver_ok(struct virtio_dev *vdev)
{
	struct virtio_net *net = (struct virtio_net *)vdev;
	unsigned int offloaded = 0;

	net->driver_ok = true;
	if (net->be->ops->set_guest_offloads)
		net->be->ops->set_guest_offloads(net->be, vdev->features);
	for (unsigned int qp = 0; qp < net->queue_pairs && net->be->has_offload; qp++) {
		int err = start_offload(net, qp);

		if (!err) {
			offloaded++;
		} else if (!net->offload_refused_logged) {
			/* A backend without a frame path of its own (vhost-user) has
			 * nothing for kvio to move frames through meanwhile. */
			log_info("virtio-net: queue pair %u %s %s: %s%s", qp,
				 net->be->ops->rx_fd ? "stays in kvio, not in the data path of"
						     : "carries no frames until it goes to",
				 net->be->ops->name, strerror(-err),
				 err == -ENOTSUP ? " (it needs MSI-X, which the driver did not enable)" : "");
			net->offload_refused_logged = true;
		}
	}
	/* The backend's fds are the outside data path's now: stop waking up for them. */
	if (offloaded == net->queue_pairs && vdev->watch_events)
		vdev->watch_events(vdev, false);
	for (unsigned int qp = 0; qp < net->active_pairs; qp++)
		receive(net, qp);
}

static void net_reset(struct virtio_dev *vdev)
{
	struct virtio_net *net = (struct virtio_net *)vdev;
	bool all_offloaded = net->queue_pairs > 0;

	net->driver_ok = false;
	for (unsigned int qp = 0; qp < net->queue_pairs; qp++) {
		all_offloaded &= net->offloaded[qp];
		stop_offload(net, qp);
	}
	if (all_offloaded && vdev->watch_events)
		vdev->watch_events(vdev, true);

	/* vhost runs whole pairs outside kvio; kvio cannot restart one of its rings alone. */
	vdev->ring_reset = !net->be->has_offload;
	net->active_pairs = 1;
	if (net->queue_pairs > 1 && net->be->ops->set_queue_pairs)
		net->be->ops->set_queue_pairs(net->be, 1);
	if (net->be->ops->set_guest_offloads)
		net->be->ops->set_guest_offloads(net->be, 0);
	memcpy(net->config.mac, net->mac, sizeof(net->mac));
}

/* The driver reset queue q alone (VIRTIO_F_RING_RESET), as Linux does to
 * resize rings (ethtool -G). Nothing of q is in flight here: receive, transmit
 * and control finish or give back every chain they take within one call, and
 * a frame merged over several buffers is pushed whole or not at all. Frames
 * waiting in the backend stay there for q's new ring: enabling q again kicks
 * it, which drains the backend as the guest's refill kick would. */
static void net_queue_reset(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_net *net = (struct virtio_net *)vdev;

	/* Not offered with vhost (ring_reset), and the transport refuses offloaded queues. */
	if (q < ctrl_queue(net) && net->offloaded[q / 2])
		log_warn("virtio-net: queue %u reset while the backend runs it", q);
}

/* The backend's link went down or came back (a vhost-user backend process
 * left, or returned): the rings it ran resume, and the driver sees the link
 * state change through a configuration interrupt. Runs on the backend's thread. */
static void net_link_changed(void *ctx, bool up)
{
	struct virtio_net *net = ctx;
	struct virtio_dev *vdev = &net->vdev;
	int err = 0;

	pthread_mutex_lock(&vdev->lock);
	virtio_lock_groups(vdev);
	if (up && net->be->ops->resume_offload)
		err = net->be->ops->resume_offload(net->be);
	/* Pairs the backend was down for at DRIVER_OK go to it now. */
	for (unsigned int qp = 0; up && !err && net->driver_ok && qp < net->queue_pairs; qp++) {
		if (!net->offloaded[qp])
			err = start_offload(net, qp);
		if (err == -ENOTSUP)
			err = 0;  /* a pair the driver set up without MSI-X stays as it was */
	}
	if (err)
		log_warn("virtio-net: %s: cannot resume: %s", net->be->ops->name, strerror(-err));
	net->config.status = htole16(up && !err ? VIRTIO_NET_S_LINK_UP : 0);
	vdev->config_changed(vdev);
	virtio_unlock_groups(vdev);
	pthread_mutex_unlock(&vdev->lock);
}

static void net_quiesce(struct virtio_dev *vdev)
{
	struct virtio_net *net = (struct virtio_net *)vdev;

	if (net->be->ops->quiesce)
		net->be->ops->quiesce(net->be);
}

static void net_config_read(struct virtio_dev *vdev, uint32_t offset, void *buf, uint32_t len)
{
	struct virtio_net *net = (struct virtio_net *)vdev;

	memcpy(buf, (uint8_t *)&net->config + offset, len);
}

static void net_config_write(struct virtio_dev *vdev, uint32_t offset, const void *buf, uint32_t len)
{
	struct virtio_net *net = (struct virtio_net *)vdev;

	/* Only the MAC is writable, for drivers without VIRTIO_NET_F_CTRL_MAC_ADDR. */
	if (offset + len <= sizeof(net->config.mac))
		memcpy(net->config.mac + offset, buf, len);
}

struct virtio_dev *virtio_net_create(const struct virtio_net_options *opts)
{
	struct virtio_net *net;
	uint64_t features = (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) |
			    (1ULL << VIRTIO_NET_F_MRG_RXBUF) | (1ULL << VIRTIO_NET_F_CTRL_VQ) |
			    (1ULL << VIRTIO_NET_F_CTRL_RX) | (1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR);

	if (opts->queue_pairs < 1 || opts->queue_pairs > NET_MAX_QUEUE_PAIRS ||
	    opts->queue_pairs > opts->backend->queue_pairs || 2 * opts->queue_pairs + 1 > VIRTIO_MAX_QUEUES)
		return NULL;
	net = calloc(1, sizeof(*net));
	if (!net)
		return NULL;
	net->qps = calloc(opts->queue_pairs, sizeof(*net->qps));
	if (!net->qps) {
		free(net);
		return NULL;
	}
	for (unsigned int qp = 0; qp < opts->queue_pairs; qp++)
		virtq_elem_init(&net->qps[qp].tx_elem, net->qps[qp].tx_iov, NET_TX_MAX_IOV);
	virtq_elem_init(&net->ctrl_elem, net->ctrl_iov, NET_CTRL_MAX_IOV);
	net->be = opts->backend;
	net->queue_pairs = net->active_pairs = opts->queue_pairs;
	memcpy(net->mac, opts->mac, sizeof(net->mac));
	if (opts->queue_pairs > 1)
		features |= 1ULL << VIRTIO_NET_F_MQ;
	/* The backend's link MTU becomes the guest's (Linux sets eth0's MTU from it). */
	if (net->be->mtu)
		features |= 1ULL << VIRTIO_NET_F_MTU;
	features |= net->be->offloads;
	/* A data path outside kvio runs only the bits it knows; the control
	 * queue and config space stay kvio's. */
	if (net->be->has_offload && net->be->ring_features)
		features &= net->be->ring_features | (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) |
			    (1ULL << VIRTIO_NET_F_CTRL_VQ) | (1ULL << VIRTIO_NET_F_CTRL_RX) |
			    (1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR) | (1ULL << VIRTIO_NET_F_MQ);
	if (net->be->ops->set_guest_offloads && (net->be->offloads & (1ULL << VIRTIO_NET_F_GUEST_CSUM)))
		features |= 1ULL << VIRTIO_NET_F_CTRL_GUEST_OFFLOADS;
	net->ops = (struct virtio_device_ops){
		.name = "virtio-net",
		.type = VIRTIO_ID_NET,
		.features = features,
		.num_queues = (uint16_t)(2 * opts->queue_pairs + 1),
		.queue_size = NET_QUEUE_SIZE,
		/* mtu is there only with VIRTIO_NET_F_MTU. */
		.config_size = net->be->mtu ? offsetof(struct virtio_net_config, mtu) + sizeof(net->config.mtu)
					    : offsetof(struct virtio_net_config, mtu),
		.config_read = net_config_read,
		.config_write = net_config_write,
		.queue_kick = net_kick,
		.driver_ok = net_driver_ok,
		.reset = net_reset,
		.queue_reset = net_queue_reset,
		.quiesce = net_quiesce,
		.event_fds = net_event_fds,
		.event_ready = net_event_ready,
	};
	net->config.status = htole16(VIRTIO_NET_S_LINK_UP);
	net->config.max_virtqueue_pairs = htole16((uint16_t)opts->queue_pairs);
	net->config.mtu = htole16((uint16_t)net->be->mtu);
	net->vdev.ops = &net->ops;
	net->be->link_changed = net_link_changed;
	net->be->link_ctx = net;
	net->vdev.nr_groups = opts->queue_pairs;
	for (unsigned int qp = 0; qp < opts->queue_pairs; qp++) {
		net->vdev.queue_group[rx_queue(qp)] = net->vdev.queue_group[tx_queue(qp)] = (uint8_t)qp;
		net->vdev.event_group[qp] = (uint8_t)qp;  /* the backend's queue qp */
	}
	pthread_mutex_init(&net->vdev.lock, NULL);
	net_reset(&net->vdev);
	return &net->vdev;
}

void virtio_net_destroy(struct virtio_dev *vdev)
{
	struct virtio_net *net = (struct virtio_net *)vdev;

	net->be->ops->destroy(net->be);
	pthread_mutex_destroy(&vdev->lock);
	free(net->qps);
	free(net);
}

struct virtio_net_stats virtio_net_stats(struct virtio_dev *vdev, unsigned int qp)
{
	struct virtio_net *net = (struct virtio_net *)vdev;
	struct virtio_net_stats none = { 0 };

	return qp < net->queue_pairs ? net->qps[qp].stats : none;
}
