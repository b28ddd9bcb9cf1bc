/* Split virtqueues (VIRTIO 1.x, 2.7): the device side of the rings. One audited
 * module: every index, length and address the guest supplies is checked here.
 * No KVM dependency, so vhost-user backends in other processes reuse it as is. */
#ifndef KVIO_VIRTIO_QUEUE_H
#define KVIO_VIRTIO_QUEUE_H

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/guest_mem.h"

#define VIRTQ_MAX_SIZE 1024
/* Most buffers one chain may carry (direct or through an indirect table). */
#define VIRTQ_MAX_IOV 1024
/* Bytes one chain may describe: no sane request is larger; a loop-free chain
 * of huge descriptors must still not overflow 32-bit lengths downstream. */
#define VIRTQ_MAX_CHAIN_BYTES (256ULL << 20)

struct virtq {
	const struct guest_mem *mem;
	uint16_t size;                 /* a power of two, at most VIRTQ_MAX_SIZE */
	struct vring_desc *desc;       /* host pointers into guest RAM, bounds-checked at setup */
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail_idx;       /* next avail ring slot the device consumes */
	uint16_t used_idx;             /* what the device last published in used->idx */
	uint16_t signalled_used;       /* used_idx when the guest was last interrupted */
	bool signalled_used_valid;
	bool event_idx;                /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;                 /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	bool kicks_disabled;           /* between virtq_disable_kicks and virtq_enable_kicks */
	bool broken;                   /* guest broke the rules: the device needs a reset */
	const char *broken_reason;
};

/* One request: readable (out) buffers first, then writable (in) buffers.
 * The device supplies the iovec array and says how many entries it holds, so
 * each device bounds its own chains (virtio-blk by the seg_max it offers). */
struct virtq_elem {
	uint16_t head;
	unsigned int out_num;
	unsigned int in_num;
	uint32_t out_len;              /* sum of the out buffers' lengths */
	uint32_t in_len;               /* sum of the in buffers' lengths */
	unsigned int max_iov;          /* at most VIRTQ_MAX_IOV */
	struct iovec *iov;             /* out_num readable, then in_num writable */
};

static inline void virtq_elem_init(struct virtq_elem *elem, struct iovec *iov, unsigned int max_iov)
{
	elem->iov = iov;
	elem->max_iov = max_iov < VIRTQ_MAX_IOV ? max_iov : VIRTQ_MAX_IOV;
}

/* Set up a queue whose rings are at the given guest addresses. Returns 0,
 * or -EINVAL (bad size or alignment) / -EFAULT (a ring outside guest RAM). */
int virtq_init(struct virtq *vq, const struct guest_mem *mem, uint16_t size, uint64_t desc_gpa,
	       uint64_t avail_gpa, uint64_t used_gpa, bool event_idx, bool indirect);

/* Take the next available chain. Returns 1 with elem filled in, 0 when the
 * ring is empty, -1 when the queue is (or just became) broken. An empty ring
 * has asked the guest for a kick at its next buffer (unless kicks are
 * disabled), race-free: a caller may sleep until then. */
int virtq_pop(struct virtq *vq, struct virtq_elem *elem);

/* Give back the last n chains taken by virtq_pop (not pushed): the next pops
 * return them again. For devices that take buffers speculatively (net RX). */
void virtq_unpop(struct virtq *vq, uint16_t n);

/* Return a chain to the guest with len bytes written into its in buffers. */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t len);

/* After pushing: should the guest be interrupted (EVENT_IDX or NO_INTERRUPT aware)? */
bool virtq_should_notify(struct virtq *vq);

/* Device-to-driver kick suppression around a processing loop: disable while
 * draining, re-enable when done. enable returns true if buffers arrived in
 * the meantime (the caller must drain again, or a kick would be lost). */
void virtq_disable_kicks(struct virtq *vq);
bool virtq_enable_kicks(struct virtq *vq);

/* virtq_pop for a device that drains the queue each time it looks, as a NIC
 * does: the guest does not kick while chains are left (each kick is a guest
 * exit). Returns as virtq_pop; on 0, kicks are on again and the ring was
 * looked at once more after that, so the caller may sleep until a kick. */
int virtq_pop_quiet(struct virtq *vq, struct virtq_elem *elem);

/* True once the guest violated the ring protocol; sticky until re-init. */
static inline bool virtq_is_broken(const struct virtq *vq)
{
	return vq->broken;
}

#endif
