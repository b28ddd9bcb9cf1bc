/* Split virtqueue, device side. The guest writes these rings concurrently and
 * may be hostile: every descriptor is copied before it is checked, chains are
 * bounded by the queue size, and any violation breaks the queue (the device
 * then reports NEEDS_RESET) instead of crashing, hanging or reading outside RAM. */
#include "virtio/queue.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "util/log.h"

static uint16_t *used_event_ptr(const struct virtq *vq)
{
	return (uint16_t *)&vq->avail->ring[vq->size];
}

static uint16_t *avail_event_ptr(const struct virtq *vq)
{
	return (uint16_t *)&vq->used->ring[vq->size];
}

/* Map a whole ring, checking it lies inside guest RAM and is aligned. */
static int map_ring(const struct guest_mem *mem, uint64_t gpa, uint64_t len, uint64_t align, void **host)
{
	if (gpa & (align - 1))
		return -EINVAL;
	return guest_mem_translate(mem, gpa, len, host);
}

int virtq_init(struct virtq *vq, const struct guest_mem *mem, uint16_t size, uint64_t desc_gpa,
	       uint64_t avail_gpa, uint64_t used_gpa, bool event_idx, bool indirect)
{
	void *desc, *avail, *used;
	int err;

	memset(vq, 0, sizeof(*vq));
	if (size == 0 || size > VIRTQ_MAX_SIZE || (size & (size - 1)))
		return -EINVAL;
	/* Sizes and alignments from VIRTIO 1.x 2.7: event fields included always. */
	err = map_ring(mem, desc_gpa, 16ULL * size, 16, &desc);
	if (!err)
		err = map_ring(mem, avail_gpa, 6 + 2ULL * size, 2, &avail);
	if (!err)
		err = map_ring(mem, used_gpa, 6 + 8ULL * size, 4, &used);
	if (err)
		return err;
	vq->mem = mem;
	vq->size = size;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	vq->event_idx = event_idx;
	vq->indirect = indirect;
	/* A freshly enabled queue starts at index 0 on both rings (VIRTIO 1.x 2.7). */
	return 0;
}

static int set_broken(struct virtq *vq, const char *reason)
{
	if (!vq->broken) {
		vq->broken = true;
		vq->broken_reason = reason;
		log_warn("virtqueue broken by the guest: %s", reason);
	}
	return -1;
}

/* Append one descriptor's buffer to elem, translating and bounding it. */
static int add_buffer(struct virtq *vq, struct virtq_elem *elem, const struct vring_desc *d, uint64_t *total)
{
	uint64_t addr = le64toh(d->addr);
	uint32_t len = le32toh(d->len);
	bool writable = le16toh(d->flags) & VRING_DESC_F_WRITE;
	unsigned int n = elem->out_num + elem->in_num;
	void *host;

	if (n >= elem->max_iov)
		return set_broken(vq, "chain has too many buffers");
	if (!writable && elem->in_num)
		return set_broken(vq, "readable buffer after a writable one");
	*total += len;
	if (*total > VIRTQ_MAX_CHAIN_BYTES)
		return set_broken(vq, "chain too long in bytes");
	if (guest_mem_translate(vq->mem, addr, len, &host))
		return set_broken(vq, "buffer outside guest RAM");
	elem->iov[n].iov_base = host;
	elem->iov[n].iov_len = len;
	if (writable) {
		elem->in_num++;
		elem->in_len += len;
	} else {
		elem->out_num++;
		elem->out_len += len;
	}
	return 0;
}

/* Walk an indirect table: its own bounded chain, which may not nest. */
static int walk_indirect(struct virtq *vq, struct virtq_elem *elem, const struct vring_desc *outer,
			 uint64_t *total)
{
	uint64_t addr = le64toh(outer->addr);
	uint32_t len = le32toh(outer->len);
	const struct vring_desc *table;
	unsigned int count, i = 0, seen = 0;
	void *host;

	if (!vq->indirect)
		return set_broken(vq, "indirect descriptor not negotiated");
	if (le16toh(outer->flags) & VRING_DESC_F_NEXT)
		return set_broken(vq, "indirect descriptor with NEXT set");
	if (len == 0 || len % sizeof(struct vring_desc) || len / sizeof(struct vring_desc) > VIRTQ_MAX_IOV)
		return set_broken(vq, "bad indirect table length");
	if (guest_mem_translate(vq->mem, addr, len, &host))
		return set_broken(vq, "indirect table outside guest RAM");
	table = host;
	count = len / sizeof(struct vring_desc);
	for (;;) {
		struct vring_desc d;
		uint16_t flags;

		if (++seen > count)
			return set_broken(vq, "loop in indirect table");
		memcpy(&d, &table[i], sizeof(d));
		flags = le16toh(d.flags);
		if (flags & VRING_DESC_F_INDIRECT)
			return set_broken(vq, "indirect descriptor inside an indirect table");
		if (add_buffer(vq, elem, &d, total))
			return -1;
		if (!(flags & VRING_DESC_F_NEXT))
			return 0;
		i = le16toh(d.next);
		if (i >= count)
			return set_broken(vq, "indirect next index out of range");
	}
}

int virtq_pop(struct virtq *vq, struct virtq_elem *elem)
{
	uint16_t avail_idx, head, i;
	unsigned int seen = 0;
	uint64_t total = 0;

	if (vq->broken)
		return -1;
	/* Acquire: the ring entry and descriptors below were written before idx. */
	avail_idx = le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE));
	if (avail_idx == vq->last_avail_idx) {
		if (!vq->event_idx || vq->kicks_disabled)
			return 0;
		/* Empty: before the caller goes to sleep waiting for a kick, publish
		 * "kick me at the next buffer" and look again. Without the full
		 * barrier our avail_event store can sit in the store buffer while
		 * we read the old idx, the guest reads the old avail_event and skips
		 * the kick: both sides wait forever (the lost-wakeup race). */
		__atomic_store_n(avail_event_ptr(vq), htole16(vq->last_avail_idx), __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE));
		if (avail_idx == vq->last_avail_idx)
			return 0;
	}
	if ((uint16_t)(avail_idx - vq->last_avail_idx) > vq->size)
		return set_broken(vq, "avail index moved by more than the queue size");

	head = le16toh(__atomic_load_n(&vq->avail->ring[vq->last_avail_idx & (vq->size - 1)], __ATOMIC_RELAXED));
	if (head >= vq->size)
		return set_broken(vq, "head index out of range");
	elem->head = head;
	elem->out_num = elem->in_num = 0;
	elem->out_len = elem->in_len = 0;

	for (i = head;;) {
		struct vring_desc d;
		uint16_t flags;

		/* A chain visits each descriptor at most once, or it loops. */
		if (++seen > vq->size)
			return set_broken(vq, "loop in descriptor chain");
		memcpy(&d, &vq->desc[i], sizeof(d));  /* one snapshot: the guest may rewrite it */
		flags = le16toh(d.flags);
		if (flags & VRING_DESC_F_INDIRECT) {
			if (walk_indirect(vq, elem, &d, &total))
				return -1;
			break;
		}
		if (add_buffer(vq, elem, &d, &total))
			return -1;
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		i = le16toh(d.next);
		if (i >= vq->size)
			return set_broken(vq, "next index out of range");
	}
	vq->last_avail_idx++;
	if (vq->event_idx && !vq->kicks_disabled) {
		/* Ask for a kick only when the guest adds past what we have consumed. */
		__atomic_store_n(avail_event_ptr(vq), htole16(vq->last_avail_idx), __ATOMIC_RELAXED);
	}
	return 1;
}

void virtq_unpop(struct virtq *vq, uint16_t n)
{
	vq->last_avail_idx = (uint16_t)(vq->last_avail_idx - n);
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
	struct vring_used_elem *e;

	if (vq->broken)
		return;
	e = &vq->used->ring[vq->used_idx & (vq->size - 1)];
	__atomic_store_n(&e->id, htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, htole32(len), __ATOMIC_RELAXED);
	vq->used_idx++;
	/* Release: the element must be visible before the index that publishes it. */
	__atomic_store_n(&vq->used->idx, htole16(vq->used_idx), __ATOMIC_RELEASE);
}

bool virtq_should_notify(struct virtq *vq)
{
	uint16_t old, event;
	bool notify;

	if (vq->broken)
		return false;
	/* Full barrier: our used->idx store must be visible before we read the
	 * guest's suppression state, or both sides could decide to sleep. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(le16toh(__atomic_load_n(&vq->avail->flags, __ATOMIC_RELAXED)) & VRING_AVAIL_F_NO_INTERRUPT);

	old = vq->signalled_used;
	event = le16toh(__atomic_load_n(used_event_ptr(vq), __ATOMIC_RELAXED));
	notify = !vq->signalled_used_valid || vring_need_event(event, vq->used_idx, old);
	vq->signalled_used = vq->used_idx;
	vq->signalled_used_valid = true;
	return notify;
}

void virtq_disable_kicks(struct virtq *vq)
{
	/* With EVENT_IDX the guest kicks only when it passes avail_event; leaving
	 * avail_event behind is enough. Without it, the flag says "don't kick". */
	vq->kicks_disabled = true;
	if (!vq->event_idx)
		__atomic_store_n(&vq->used->flags, htole16(VRING_USED_F_NO_NOTIFY), __ATOMIC_RELAXED);
}

bool virtq_enable_kicks(struct virtq *vq)
{
	if (vq->broken)
		return false;
	vq->kicks_disabled = false;
	if (vq->event_idx)
		__atomic_store_n(avail_event_ptr(vq), htole16(vq->last_avail_idx), __ATOMIC_RELAXED);
	else
		__atomic_store_n(&vq->used->flags, 0, __ATOMIC_RELAXED);
	/* Full barrier: publish "kick me" before re-reading avail->idx, so a buffer
	 * added just before is seen here or its kick reaches us. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_RELAXED)) != vq->last_avail_idx;
}

int virtq_pop_quiet(struct virtq *vq, struct virtq_elem *elem)
{
	int ret;

	if (!vq->kicks_disabled)
		virtq_disable_kicks(vq);
	ret = virtq_pop(vq, elem);
	/* Empty: a chain added before "kick me" was visible brings no kick, so
	 * look once more. Once, not until quiet: a guest adding as fast as we
	 * take stays the caller's loop's business, under its budget. */
	if (ret == 0 && virtq_enable_kicks(vq)) {
		virtq_disable_kicks(vq);
		ret = virtq_pop(vq, elem);
		if (ret == 0)
			virtq_enable_kicks(vq);
	}
	return ret;
}
