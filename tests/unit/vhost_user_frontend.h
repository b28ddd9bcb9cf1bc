/* A vhost-user frontend for tests: guest RAM in a memfd, the handshake a VMM
 * does (features, memory table, rings, kick and call eventfds) over a
 * socketpair, and the driver's side of split rings in that RAM, so backends
 * (the library, kvio-switch) are tested without a VM or a second process. */
#ifndef KVIO_TESTS_VHOST_USER_FRONTEND_H
#define KVIO_TESTS_VHOST_USER_FRONTEND_H

#include <stdbool.h>
#include <stdint.h>

#include "vhost/vhost_user.h"

#define VUF_MAX_QUEUES 4
#define VUF_DATA_START 0x100000ULL   /* buffers are allocated from here up; rings live below */

struct vuf_buf {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

struct vuf_queue {
	uint16_t size, avail_idx, next_desc, used_seen;
	uint64_t desc, avail, used;   /* guest-physical */
	int kick, call;               /* the frontend's ends of the eventfds */
};

struct vuf {
	int sock;        /* the frontend's end */
	int peer;        /* the backend's end, until the test hands it over (then -1) */
	int memfd;
	uint8_t *map;    /* the whole memfd */
	uint8_t *ram;    /* guest-physical 0, mmap_offset bytes into the memfd */
	uint64_t ram_size, mmap_offset;
	uint64_t next_data;
	struct vuf_queue q[VUF_MAX_QUEUES];
	/* Runs the backend until it has handled what was sent; returns its last error. */
	int (*pump)(void *ctx);
	void *ctx;
	int pump_err;
};

/* RAM of ram_size bytes at file offset mmap_offset of a fresh memfd. */
void vuf_init(struct vuf *f, uint64_t ram_size, uint64_t mmap_offset);
void vuf_destroy(struct vuf *f);

/* Send a request (payload of size bytes, fds attached), then pump. Returns
 * what sending returned; the backend's verdict is in f->pump_err. */
int vuf_send(struct vuf *f, uint32_t request, uint32_t flags, const void *payload, uint32_t size, const int *fds,
	     unsigned int nfds);
/* The backend's reply, if one is waiting (-EAGAIN otherwise). */
int vuf_reply(struct vuf *f, struct vhost_user_msg *reply);
/* A GET_* request whose reply is a u64: aborts the test if none comes. */
uint64_t vuf_get_u64(struct vuf *f, uint32_t request);
int vuf_set_u64(struct vuf *f, uint32_t request, uint64_t value);
int vuf_set_state(struct vuf *f, uint32_t request, unsigned int index, unsigned int num);

/* GET_CONFIG (needs the CONFIG protocol feature): len bytes at offset into
 * buf. Returns 0, -EIO for the spec's empty "failed" reply, or another
 * -errno when no fitting reply came. */
int vuf_get_config(struct vuf *f, uint32_t offset, void *buf, uint32_t len);
/* GET_VRING_BASE: stops ring q; returns the index the backend reached, or
 * -errno when no fitting reply came. */
int vuf_get_vring_base(struct vuf *f, unsigned int q);

/* The one-region table describing f's RAM. */
void vuf_mem_table(const struct vuf *f, struct vhost_user_mem_table *table);
int vuf_send_mem_table(struct vuf *f);
/* Lay out queue q (size entries) in RAM and send NUM, BASE, ADDR, KICK and CALL. */
int vuf_setup_ring(struct vuf *f, unsigned int q, uint16_t size);
/* Start queue q again on its rings as they are (NUM, ADDR, BASE = base,
 * CALL, KICK, ENABLE), as a VMM resuming a stopped ring does. */
int vuf_restart_ring(struct vuf *f, unsigned int q, uint16_t base);
/* What a VMM does at start: features (PROTOCOL_FEATURES added), protocol
 * features, owner, memory table, nqueues rings, each enabled. Returns the
 * first failure seen (f->pump_err or a send error), else 0. */
int vuf_start(struct vuf *f, uint64_t features, uint64_t protocol_features, unsigned int nqueues, uint16_t size);

uint64_t vuf_alloc(struct vuf *f, uint32_t len);
void *vuf_ptr(struct vuf *f, uint64_t gpa);
/* Offer a chain on queue q; returns its head. */
uint16_t vuf_offer(struct vuf *f, unsigned int q, const struct vuf_buf *bufs, unsigned int n);
/* Signal queue q's kick eventfd (and pump). */
void vuf_kick(struct vuf *f, unsigned int q);
bool vuf_next_used(struct vuf *f, unsigned int q, uint32_t *id, uint32_t *len);
/* Was q's call eventfd signalled since the last look? */
bool vuf_interrupted(struct vuf *f, unsigned int q);

/* Open descriptors in this process (/proc/self/fd), for leak checks. */
unsigned int vuf_count_fds(void);

#endif
