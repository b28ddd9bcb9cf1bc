/* kvio-blkd's core: src/virtio/blk.c's device, hosted behind the vhost-user
 * backend library. blkd is to the device what virtio-pci is in kvio:
 *
 *   transport duty          virtio-pci (in kvio)       blkd (here)
 *   queue q's virtq         vdev->vq[q]                vdev->vq[q], built there by the
 *                                                      library (ops->ring_vq)
 *   vq_ready[q]             queue_enable               ring q started, device not broken
 *   queue_kick              kick ioeventfd             kick eventfd, via the library
 *   used_notify             MSI-X / INTx               call eventfd (vhost_user_backend_notify,
 *                                                      EVENT_IDX aware)
 *   requeue                 kick itself                an eventfd of blkd's own
 *   event_fds/event_ready   the I/O thread             blkd's epoll loop
 *   driver_ok               status DRIVER_OK           the first ring started
 *   reset                   status 0                   the last ring stopped, or the
 *                                                      frontend left
 *   set_needs_reset         NEEDS_RESET + interrupt    stop serving every ring (see below)
 *   config_read             device config BAR          GET_CONFIG
 *
 * Everything runs on one thread; the device lock is taken around every call
 * into the device anyway, as its contract says. */
#include "blkd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"
#include "vhost/vhost_user_backend.h"
#include "virtio/blk.h"

/* What any virtio transport adds to the device's own bits; the library adds
 * VHOST_USER_F_PROTOCOL_FEATURES. */
#define TRANSPORT_FEATURES \
	((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC))
/* GET_QUEUE_NUM answers the number of virtqueues, as libvhost-user's and
 * QEMU's storage daemon's blk exports do. No INFLIGHT_SHMFD: requests in
 * flight are answered before a ring stops, never carried across. */
#define PROTOCOL_FEATURES                                                                              \
	((1ULL << VHOST_USER_PROTOCOL_F_MQ) | (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
	 (1ULL << VHOST_USER_PROTOCOL_F_CONFIG))

enum handler_kind { H_LISTEN, H_SOCKET, H_KICK, H_EVENT, H_REQUEUE };

struct blkd_handler {
	struct event_handler h;
	enum handler_kind kind;
	struct blkd *d;
	unsigned int index;  /* the queue (H_KICK) or the device's event (H_EVENT) */
	bool registered;
};

struct blkd {
	struct event_loop loop;
	struct virtio_dev *vdev;
	struct vhost_user_device_ops be_ops;
	struct vhost_user_backend *be;  /* NULL: no frontend */
	unsigned int nqueues;
	int listen_fd;
	int requeue_fd;
	uint64_t requeue_pending;       /* bit q: run queue q's kick again */
	bool running[VIRTIO_MAX_QUEUES];  /* the library runs ring q */
	bool started;                   /* driver_ok ran; reset not yet */
	bool needs_reset;               /* the device gave up until the next reset */
	struct blkd_handler listen, sock, requeue, kick[VIRTIO_MAX_QUEUES], event[VIRTIO_MAX_EVENT_FDS];
	unsigned int nr_events;
};

static void handler_add(struct blkd *d, struct blkd_handler *h, int fd)
{
	h->h.fd = fd;
	if (event_loop_add(&d->loop, &h->h, EPOLLIN) == 0)
		h->registered = true;
	else
		log_warn("cannot watch fd %d: %s", fd, strerror(errno));
}

static void handler_remove(struct blkd *d, struct blkd_handler *h)
{
	if (h->registered)
		event_loop_remove(&d->loop, &h->h);
	h->registered = false;
}

/* --- the transport's hooks, as the device calls them (device lock held) --- */

static void used_notify(struct virtio_dev *vdev, unsigned int q)
{
	struct blkd *d = vdev->transport;

	if (d->be)
		vhost_user_backend_notify(d->be, q);
}

static void requeue(struct virtio_dev *vdev, unsigned int q)
{
	struct blkd *d = vdev->transport;

	d->requeue_pending |= 1ULL << q;
	if (eventfd_write(d->requeue_fd, 1) < 0)
		log_warn("requeue eventfd: %s", strerror(errno));
}

/* NEEDS_RESET has no way to the guest here: vhost-user carries device
 * status only with the backend->frontend channel (BACKEND_REQ), which blkd
 * does not speak. So blkd does what the bit means: the device serves no ring
 * until it is reset, as virtio-pci ignores kicks after setting it. Requests
 * already in flight still complete. The connection stays up, so the frontend's
 * next reset (GET_VRING_BASE on every ring, as kvio and QEMU send when the
 * guest resets the device) recovers it with the index the device reached;
 * closing instead would leave kvio without reconnect= no disk at all, and
 * one with it (or QEMU's reconnect) restarting at the same chain. */
static void set_needs_reset(struct virtio_dev *vdev)
{
	struct blkd *d = vdev->transport;

	if (d->needs_reset)
		return;
	log_warn("the device needs a reset: no ring is served until the frontend stops them or leaves");
	d->needs_reset = true;
	for (unsigned int q = 0; q < d->nqueues; q++)
		vdev->vq_ready[q] = false;
}

static void config_changed(struct virtio_dev *vdev)
{
	(void)vdev;
	/* Needs the backend->frontend channel too; virtio-blk never changes its config on its own. */
	log_warn("the device's configuration changed, and vhost-user has no way to tell the frontend");
}

/* --- running the device --- */

/* Queue q's kick, as virtio-pci's handle_kick runs it. */
static void run_queue(struct blkd *d, unsigned int q)
{
	struct virtio_dev *vdev = d->vdev;

	pthread_mutex_lock(&vdev->lock);
	if (vdev->vq_ready[q] && vdev->ops->queue_kick(vdev, q))
		requeue(vdev, q);  /* over budget: other work first, then more */
	pthread_mutex_unlock(&vdev->lock);
}

/* After the device ran outside a kick (a completion kicked a starved queue,
 * or a requeue): a ring the guest broke ends the connection, as the library
 * does for kicks. Returns whether it did. */
static bool reap_broken(struct blkd *d)
{
	for (unsigned int q = 0; d->be && q < d->nqueues; q++) {
		if (d->running[q] && virtq_is_broken(&d->vdev->vq[q])) {
			log_warn("vring %u broken by the guest: %s", q, d->vdev->vq[q].broken_reason);
			blkd_disconnect(d);
			return true;
		}
	}
	return false;
}

/* Every ring stopped or the frontend left: the device goes back to its
 * initial state, as at a guest reset (nothing is in flight any more). */
static void device_reset(struct blkd *d)
{
	struct virtio_dev *vdev = d->vdev;

	if (d->started && vdev->ops->reset)
		vdev->ops->reset(vdev);
	d->started = false;
	d->needs_reset = false;
	vdev->features = 0;
}

/* --- the library's device ops --- */

static struct virtq *ring_vq(void *dev, unsigned int q)
{
	struct blkd *d = dev;

	return &d->vdev->vq[q];
}

static void ring_started(void *dev, unsigned int q)
{
	struct blkd *d = dev;
	struct virtio_dev *vdev = d->vdev;

	pthread_mutex_lock(&vdev->lock);
	/* SET_FEATURES stops every ring, so the acked bits are final for this one. */
	vdev->features = vhost_user_backend_features(d->be) & ~(1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
	d->running[q] = true;
	vdev->vq_ready[q] = !d->needs_reset;
	/* Not "every ring": a frontend starts only the rings its guest set up
	 * (kvio and QEMU skip the rest), so the first one marks DRIVER_OK. */
	if (!d->started) {
		d->started = true;
		if (vdev->ops->driver_ok)
			vdev->ops->driver_ok(vdev);
	}
	/* Buffers the guest made available before the ring (re)started have
	 * seen no kick we watched: look once. */
	requeue(vdev, q);
	pthread_mutex_unlock(&vdev->lock);
	handler_add(d, &d->kick[q], vhost_user_backend_kick_fd(d->be, q));
}

/* Ring q stops: GET_VRING_BASE, the frontend re-binding it or leaving. The
 * library reads the index to hand back (or resume from) after this returns,
 * so every request popped from any ring is answered now: the frontend then
 * finds the used rings complete up to that index, and blkd writes nothing
 * into guest memory once every ring has stopped (the spec's suspended device). */
static void ring_stopped(void *dev, unsigned int q)
{
	struct blkd *d = dev;
	struct virtio_dev *vdev = d->vdev;
	bool any = false;

	handler_remove(d, &d->kick[q]);
	pthread_mutex_lock(&vdev->lock);
	if (vdev->ops->drain)
		vdev->ops->drain(vdev);
	d->running[q] = false;
	vdev->vq_ready[q] = false;
	d->requeue_pending &= ~(1ULL << q);
	for (unsigned int i = 0; i < d->nqueues; i++)
		any |= d->running[i];
	if (!any) {
		device_reset(d);
	} else {
		/* Draining freed slots a starved queue waits for: let it look again. */
		for (unsigned int i = 0; i < d->nqueues; i++)
			if (vdev->vq_ready[i])
				requeue(vdev, i);
	}
	pthread_mutex_unlock(&vdev->lock);
}

static int ring_kick(void *dev, unsigned int q)
{
	run_queue(dev, q);
	return 0;  /* the library checks the ring for damage itself */
}

/* The device's config space; bytes past it read as zero, as virtio-pci's
 * device config window does. */
static int get_config(void *dev, uint32_t offset, void *buf, uint32_t len)
{
	struct blkd *d = dev;
	struct virtio_dev *vdev = d->vdev;
	uint32_t size = vdev->ops->config_size;
	uint32_t n = offset < size ? (len < size - offset ? len : size - offset) : 0;

	memset(buf, 0, len);
	if (n) {
		pthread_mutex_lock(&vdev->lock);
		vdev->ops->config_read(vdev, offset, buf, n);
		pthread_mutex_unlock(&vdev->lock);
	}
	return 0;
}

/* --- connections --- */

void blkd_disconnect(struct blkd *d)
{
	if (!d->be)
		return;
	handler_remove(d, &d->sock);
	/* Stops every running ring: ring_stopped answers what is in flight and
	 * resets the device after the last one. */
	vhost_user_backend_free(d->be);
	d->be = NULL;
	pthread_mutex_lock(&d->vdev->lock);
	device_reset(d);
	d->requeue_pending = 0;
	pthread_mutex_unlock(&d->vdev->lock);
	log_info("frontend disconnected");
	if (d->listen_fd >= 0)
		handler_add(d, &d->listen, d->listen_fd);  /* the next frontend may come */
}

int blkd_connect(struct blkd *d, int sock)
{
	int flags;

	if (d->be)
		return -EBUSY;
	/* The library wants it non-blocking: a stalled frontend times out mid-message. */
	flags = fcntl(sock, F_GETFL);
	if (flags < 0 || fcntl(sock, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	d->be = vhost_user_backend_new(sock, &d->be_ops, d, "frontend");
	if (!d->be)
		return -ENOMEM;
	handler_remove(d, &d->listen);  /* later frontends wait in the backlog */
	handler_add(d, &d->sock, sock);
	log_info("frontend connected");
	return 0;
}

bool blkd_connected(const struct blkd *d)
{
	return d->be != NULL;
}

int blkd_listen(struct blkd *d, int listen_fd)
{
	if (d->listen_fd >= 0)
		return -EBUSY;
	d->listen_fd = listen_fd;
	if (!d->be)
		handler_add(d, &d->listen, listen_fd);
	return d->be || d->listen.registered ? 0 : -EIO;
}

static void on_requeue(struct blkd *d)
{
	uint64_t pending, count;

	if (read(d->requeue_fd, &count, sizeof(count)) < 0) {
		/* EAGAIN: the bits below say what to do anyway. */
	}
	pending = d->requeue_pending;
	d->requeue_pending = 0;
	for (unsigned int q = 0; q < d->nqueues && d->be; q++) {
		if (pending & (1ULL << q))
			run_queue(d, q);
	}
	reap_broken(d);
}

static void on_device_event(struct blkd *d, unsigned int index)
{
	struct virtio_dev *vdev = d->vdev;

	pthread_mutex_lock(&vdev->lock);
	vdev->ops->event_ready(vdev, index);
	pthread_mutex_unlock(&vdev->lock);
	reap_broken(d);
}

static void handler_ready(struct event_handler *h, uint32_t events)
{
	struct blkd_handler *bh = (struct blkd_handler *)h;
	struct blkd *d = bh->d;
	int err, sock;

	(void)events;
	if (!bh->registered)
		return;  /* unwatched earlier in this batch of events */
	switch (bh->kind) {
	case H_LISTEN:
		sock = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (sock >= 0 && blkd_connect(d, sock)) {
			log_warn("cannot take the frontend");
			close(sock);
		}
		break;
	case H_SOCKET:
		/* On an error the library has logged the reason, in one line. */
		err = vhost_user_backend_handle(d->be);
		if (err && err != -EAGAIN)
			blkd_disconnect(d);
		break;
	case H_KICK:
		if (vhost_user_backend_kick(d->be, bh->index))
			blkd_disconnect(d);
		break;
	case H_EVENT:
		on_device_event(d, bh->index);
		break;
	case H_REQUEUE:
		on_requeue(d);
		break;
	}
}

struct event_loop *blkd_loop(struct blkd *d)
{
	return &d->loop;
}

int blkd_poll(struct blkd *d, int timeout_ms)
{
	return event_loop_run_once(&d->loop, timeout_ms);
}

static void init_handler(struct blkd_handler *h, enum handler_kind kind, struct blkd *d, unsigned int index)
{
	*h = (struct blkd_handler){ .h = { .fd = -1, .ready = handler_ready }, .kind = kind, .d = d, .index = index };
}

struct blkd *blkd_new(const struct blkd_options *opts)
{
	struct virtio_blk_options blk_opts = {
		.path = opts->image, .read_only = opts->read_only, .id = opts->id, .queues = opts->queues,
		.option = opts->option,
	};
	int fds[VIRTIO_MAX_EVENT_FDS];
	struct virtio_dev *vdev;
	struct blkd *d;

	if (opts->queues < 1 || opts->queues > BLKD_MAX_QUEUES)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->listen_fd = d->requeue_fd = -1;
	if (event_loop_init(&d->loop)) {
		free(d);
		return NULL;
	}
	vdev = d->vdev = virtio_blk_create(&blk_opts);
	if (!vdev)
		goto fail;
	d->nqueues = vdev->ops->num_queues;
	vdev->transport = d;
	vdev->used_notify = used_notify;
	vdev->set_needs_reset = set_needs_reset;
	vdev->requeue = requeue;
	vdev->config_changed = config_changed;
	d->be_ops = (struct vhost_user_device_ops){
		.features = vdev->ops->features | TRANSPORT_FEATURES,
		.protocol_features = PROTOCOL_FEATURES,
		.num_queues = d->nqueues,
		.queue_size_max = vdev->ops->queue_size,
		.ring_started = ring_started,
		.ring_stopped = ring_stopped,
		.kick = ring_kick,
		.ring_vq = ring_vq,
		.get_config = get_config,
	};

	init_handler(&d->listen, H_LISTEN, d, 0);
	init_handler(&d->sock, H_SOCKET, d, 0);
	init_handler(&d->requeue, H_REQUEUE, d, 0);
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		init_handler(&d->kick[q], H_KICK, d, q);
	d->requeue_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->requeue_fd < 0)
		goto fail;
	handler_add(d, &d->requeue, d->requeue_fd);
	if (!d->requeue.registered)
		goto fail;
	/* The device's own fds (io_uring completions), watched for good. */
	d->nr_events = vdev->ops->event_fds ? vdev->ops->event_fds(vdev, fds, VIRTIO_MAX_EVENT_FDS) : 0;
	for (unsigned int i = 0; i < d->nr_events; i++) {
		init_handler(&d->event[i], H_EVENT, d, i);
		handler_add(d, &d->event[i], fds[i]);
		if (!d->event[i].registered)
			goto fail;
	}
	return d;
fail:
	blkd_free(d);
	return NULL;
}

void blkd_free(struct blkd *d)
{
	if (!d)
		return;
	blkd_disconnect(d);
	handler_remove(d, &d->listen);
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	for (unsigned int i = 0; i < d->nr_events; i++)
		handler_remove(d, &d->event[i]);
	handler_remove(d, &d->requeue);
	if (d->requeue_fd >= 0)
		close(d->requeue_fd);
	if (d->vdev)
		virtio_blk_destroy(d->vdev);  /* drains: nothing is in flight by now anyway */
	event_loop_destroy(&d->loop);
	free(d);
}
