/* The device side of vhost-user, for backend processes (tools/kvio-switch):
 * one struct vhost_user_backend per frontend connection applies the
 * frontend's messages (features, memory table, rings, eventfds) and hands the
 * device ready-to-use virtqueues (src/virtio/queue.h) over the frontend's
 * guest memory. No event loop of its own: the device watches the socket and
 * the kick fds it is told about, and calls in when they are readable.
 * The frontend is untrusted: anything malformed is logged in one line and
 * makes the calls below fail, after which the device frees the connection. */
#ifndef KVIO_VHOST_VHOST_USER_BACKEND_H
#define KVIO_VHOST_VHOST_USER_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "vhost/vhost_user.h"
#include "virtio/queue.h"

#define VHOST_USER_BACKEND_MAX_QUEUES 32

/* What the device offers and how it is told about its rings. dev is the
 * pointer given to vhost_user_backend_new. */
struct vhost_user_device_ops {
	uint64_t features;           /* virtio bits offered; VHOST_USER_F_PROTOCOL_FEATURES is added */
	uint64_t protocol_features;  /* offered among MQ, REPLY_ACK, CONFIG (only with get_config) */
	unsigned int num_queues;     /* 1..VHOST_USER_BACKEND_MAX_QUEUES */
	uint16_t queue_size_max;     /* a power of two, at most VIRTQ_MAX_SIZE */
	/* Ring q runs: vhost_user_backend_vq and _kick_fd now return it and its
	 * kick eventfd, which the device watches until ring_stopped. */
	void (*ring_started)(void *dev, unsigned int q);
	/* Ring q stopped (or is about to be re-bound): stop watching its kick fd.
	 * The ring is still bound when this runs (notify works), and its
	 * last_avail_idx is read afterwards: a device that finishes in-flight
	 * requests here hands back an index with every request before it used. */
	void (*ring_stopped)(void *dev, unsigned int q);
	/* The guest kicked ring q: pop, push, then vhost_user_backend_notify.
	 * Returns 0, or -errno to end the connection. */
	int (*kick)(void *dev, unsigned int q);
	/* Optional: where ring q's struct virtq lives, for a device model that
	 * has its own (struct virtio_dev's vq[q]): the library sets the ring up
	 * in that storage when it starts and reads the index the device reached
	 * from it when it stops (GET_VRING_BASE), so there is one virtq per ring
	 * and nothing to copy back and forth. The storage must stay valid for the
	 * connection's life; the library touches it only while the ring runs.
	 * NULL: the library keeps the virtq itself. */
	struct virtq *(*ring_vq)(void *dev, unsigned int q);
	/* Optional: read len bytes of config space at offset (offset + len <= 256). Returns 0 or -errno. */
	int (*get_config)(void *dev, uint32_t offset, void *buf, uint32_t len);
	/* Optional: write them; flags as in the message (spec: 0 = driver write, 1 = migration). */
	int (*set_config)(void *dev, uint32_t offset, const void *buf, uint32_t len, uint32_t flags);
};

struct vhost_user_backend;

/* A connection on sock (owned from here on: freed closes it). name prefixes
 * log lines ("port0"). NULL on allocation failure or bad ops. */
struct vhost_user_backend *vhost_user_backend_new(int sock, const struct vhost_user_device_ops *ops, void *dev,
						  const char *name);
/* Stop every ring (ring_stopped for each running one), unmap the memory
 * table, close every fd the frontend sent and the socket. */
void vhost_user_backend_free(struct vhost_user_backend *be);

/* The socket is readable: receive one message and apply it. Returns 0;
 * -EAGAIN if nothing was waiting; -ECONNRESET when the frontend closed
 * the connection; another -errno (logged) when it broke the protocol or the
 * socket failed. On any error but -EAGAIN the caller frees the connection.
 * Make the socket non-blocking: a message, once begun, then has to arrive
 * whole within VHOST_USER_IO_TIMEOUT_MS, so a stalling frontend cannot hang
 * the device's event loop. */
int vhost_user_backend_handle(struct vhost_user_backend *be);

/* Apply one message that passed vhost_user_msg_check, with its fds (owned
 * from here on). What _handle does after receiving; fuzzers call it directly.
 * Returns 0 or -errno as _handle. */
int vhost_user_backend_process(struct vhost_user_backend *be, const struct vhost_user_msg *msg, int *fds,
			       unsigned int nfds);

/* Ring q's kick fd is readable: consume the kick and run ops->kick. Returns
 * 0, or -errno (logged) when the kick fd failed, the device failed or the
 * guest broke the ring: the caller frees the connection. */
int vhost_user_backend_kick(struct vhost_user_backend *be, unsigned int q);

/* After pushing used buffers on ring q: signal its call eventfd if the
 * driver wants an interrupt now (virtq_should_notify: EVENT_IDX aware). */
void vhost_user_backend_notify(struct vhost_user_backend *be, unsigned int q);

/* Ring q's virtqueue and kick fd while it runs; NULL / -1 otherwise. */
struct virtq *vhost_user_backend_vq(struct vhost_user_backend *be, unsigned int q);
int vhost_user_backend_kick_fd(const struct vhost_user_backend *be, unsigned int q);

/* The virtio features the frontend acked (SET_FEATURES), 0 before. */
uint64_t vhost_user_backend_features(const struct vhost_user_backend *be);
int vhost_user_backend_socket(const struct vhost_user_backend *be);

#endif
