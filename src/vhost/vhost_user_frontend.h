/* kvio's side of a vhost-user connection: it shares guest RAM with a backend
 * process by fd and hands it virtqueues (ring addresses, indices, the guest's
 * kick eventfd and the MSI-X irqfd), so the data path runs there, not in kvio. */
#ifndef KVIO_VHOST_VHOST_USER_FRONTEND_H
#define KVIO_VHOST_VHOST_USER_FRONTEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/guest_mem.h"
#include "virtio/queue.h"

struct vhost_user_frontend {
	int sock;                     /* -1 while not connected */
	char path[108];
	uint64_t features;            /* what the backend offers (GET_FEATURES) */
	uint64_t protocol_features;   /* what both sides speak */
	unsigned int max_queues;      /* GET_QUEUE_NUM with MQ, else unknown (0) */
	pthread_mutex_t lock;         /* one request and its reply at a time */
	/* The watcher thread: notices the backend hanging up and reconnects. */
	pthread_t watcher;
	bool watching;
	int stop_fd;                  /* eventfd that ends the watcher */
	unsigned int reconnect_s;
	void (*changed)(void *ctx, bool up);
	void *ctx;
};

/* A backend that stops answering for this long counts as gone. */
#define VHOST_USER_REPLY_TIMEOUT_S 5

void vhost_user_frontend_init(struct vhost_user_frontend *fe, const char *path);
/* Connect and negotiate: GET_FEATURES, the protocol features kvio uses when
 * the backend speaks them (REPLY_ACK, MQ, CONFIG), GET_QUEUE_NUM, SET_OWNER.
 * Returns 0, or -errno with *why set. Any failed exchange later drops the
 * connection (the stream may be out of step), which the watcher notices. */
int vhost_user_frontend_connect(struct vhost_user_frontend *fe, const char **why);
void vhost_user_frontend_disconnect(struct vhost_user_frontend *fe);
/* Watch the connection from a thread of its own: when the backend hangs up,
 * disconnect and call changed(ctx, false); with reconnect_s > 0, try again
 * every that many seconds and call changed(ctx, true) once connected (the
 * caller then sets its rings up again). Until that call has done so, a new
 * connection is connected but not the caller's to start rings on: the
 * caller tells the two apart (net_vhost_user.c). Returns 0 or -errno. */
int vhost_user_frontend_watch(struct vhost_user_frontend *fe, unsigned int reconnect_s,
			      void (*changed)(void *ctx, bool up), void *ctx);
/* Stop the watcher (no more changed() calls after this returns). */
void vhost_user_frontend_unwatch(struct vhost_user_frontend *fe);
/* Stop the watcher, disconnect, release everything. */
void vhost_user_frontend_close(struct vhost_user_frontend *fe);
bool vhost_user_frontend_connected(const struct vhost_user_frontend *fe);
/* The socket, for a watcher that wants to notice the backend going away. */
int vhost_user_frontend_fd(const struct vhost_user_frontend *fe);

/* The negotiated virtio features for the data path; only the bits the
 * backend offered are sent (callers add VHOST_USER_F_PROTOCOL_FEATURES,
 * which then stays if the backend offered it). */
int vhost_user_frontend_set_features(struct vhost_user_frontend *fe, uint64_t features);
/* Guest RAM, region by region, with the memfd behind it. */
int vhost_user_frontend_set_mem_table(struct vhost_user_frontend *fe, const struct guest_mem *mem);
/* Ring index's layout and indices come from vq; kick_fd is what the guest's
 * notify writes signal, call_fd interrupts the guest. A ring the backend
 * refuses once it has the kick fd is stopped again (GET_VRING_BASE). */
int vhost_user_frontend_start_ring(struct vhost_user_frontend *fe, unsigned int index, const struct virtq *vq,
				   int kick_fd, int call_fd);
/* Stop ring index; *next_avail is where the backend stopped (GET_VRING_BASE). */
int vhost_user_frontend_stop_ring(struct vhost_user_frontend *fe, unsigned int index, uint16_t *next_avail);
/* With protocol features: let the backend use (or not) a started ring. */
int vhost_user_frontend_enable_ring(struct vhost_user_frontend *fe, unsigned int index, bool enable);
/* With the CONFIG protocol feature: len bytes of device config space at offset. */
int vhost_user_frontend_get_config(struct vhost_user_frontend *fe, uint32_t offset, void *buf, uint32_t len);

#endif
