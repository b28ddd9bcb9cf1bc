/* The test frontend behind tests/unit/vhost_user_frontend.h. */
#include "vhost_user_frontend.h"

#include <dirent.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define RING_AREA 0x10000ULL  /* queue q's rings start at RING_AREA * (q + 1) */

void vuf_init(struct vuf *f, uint64_t ram_size, uint64_t mmap_offset)
{
	int sv[2];

	memset(f, 0, sizeof(*f));
	f->ram_size = ram_size;
	f->mmap_offset = mmap_offset;
	f->next_data = VUF_DATA_START;
	f->memfd = memfd_create("vuf-ram", MFD_CLOEXEC);
	if (f->memfd < 0 || ftruncate(f->memfd, (off_t)(mmap_offset + ram_size)) < 0)
		abort();
	f->map = mmap(NULL, mmap_offset + ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	if (f->map == MAP_FAILED)
		abort();
	f->ram = f->map + mmap_offset;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	f->sock = sv[0];
	f->peer = sv[1];
	for (unsigned int q = 0; q < VUF_MAX_QUEUES; q++)
		f->q[q].kick = f->q[q].call = -1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void vuf_destroy(struct vuf *f)
{
	close_fd(&f->sock);
	close_fd(&f->peer);
	close_fd(&f->memfd);
	for (unsigned int q = 0; q < VUF_MAX_QUEUES; q++) {
		close_fd(&f->q[q].kick);
		close_fd(&f->q[q].call);
	}
	munmap(f->map, f->mmap_offset + f->ram_size);
}

int vuf_send(struct vuf *f, uint32_t request, uint32_t flags, const void *payload, uint32_t size, const int *fds,
	     unsigned int nfds)
{
	struct vhost_user_msg msg = { .hdr = { .request = request, .flags = flags | VHOST_USER_VERSION, .size = size } };
	int err;

	if (size)
		memcpy(&msg.payload, payload, size);
	err = vhost_user_send(f->sock, &msg, fds, nfds);
	f->pump_err = f->pump ? f->pump(f->ctx) : 0;
	return err;
}

int vuf_reply(struct vuf *f, struct vhost_user_msg *reply)
{
	struct pollfd p = { .fd = f->sock, .events = POLLIN };
	int fds[VHOST_USER_MAX_FDS];
	unsigned int nfds;
	const char *why;
	int err;

	if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
		return -EAGAIN;
	err = vhost_user_recv(f->sock, reply, fds, &nfds, &why);
	if (!err && !(reply->hdr.flags & VHOST_USER_FLAG_REPLY))
		return -EPROTO;
	return err;
}

uint64_t vuf_get_u64(struct vuf *f, uint32_t request)
{
	struct vhost_user_msg reply;

	if (vuf_send(f, request, 0, NULL, 0, NULL, 0) || vuf_reply(f, &reply) || reply.hdr.request != request ||
	    reply.hdr.size != sizeof(uint64_t))
		abort();
	return reply.payload.u64;
}

int vuf_set_u64(struct vuf *f, uint32_t request, uint64_t value)
{
	int err = vuf_send(f, request, 0, &value, sizeof(value), NULL, 0);

	return err ? err : f->pump_err;
}

int vuf_set_state(struct vuf *f, uint32_t request, unsigned int index, unsigned int num)
{
	struct vhost_vring_state s = { .index = index, .num = num };
	int err = vuf_send(f, request, 0, &s, sizeof(s), NULL, 0);

	return err ? err : f->pump_err;
}

int vuf_get_config(struct vuf *f, uint32_t offset, void *buf, uint32_t len)
{
	struct vhost_user_config c = { .offset = offset, .size = len };
	struct vhost_user_msg reply;
	int err;

	if (len > VHOST_USER_CONFIG_MAX)
		return -EINVAL;
	err = vuf_send(f, VHOST_USER_GET_CONFIG, 0, &c, VHOST_USER_CONFIG_HDR_SIZE + len, NULL, 0);
	if (!err)
		err = vuf_reply(f, &reply);
	if (err)
		return err;
	if (reply.hdr.request != VHOST_USER_GET_CONFIG)
		return -EPROTO;
	if (reply.hdr.size == 0)
		return -EIO;
	if (reply.hdr.size != VHOST_USER_CONFIG_HDR_SIZE + len || reply.payload.config.offset != offset ||
	    reply.payload.config.size != len)
		return -EPROTO;
	memcpy(buf, reply.payload.config.payload, len);
	return 0;
}

int vuf_get_vring_base(struct vuf *f, unsigned int q)
{
	struct vhost_vring_state s = { .index = q };
	struct vhost_user_msg reply;
	int err = vuf_send(f, VHOST_USER_GET_VRING_BASE, 0, &s, sizeof(s), NULL, 0);

	if (!err)
		err = vuf_reply(f, &reply);
	if (err)
		return err;
	if (reply.hdr.request != VHOST_USER_GET_VRING_BASE || reply.hdr.size != sizeof(s) ||
	    reply.payload.state.index != q)
		return -EPROTO;
	return (int)reply.payload.state.num;
}

void vuf_mem_table(const struct vuf *f, struct vhost_user_mem_table *table)
{
	memset(table, 0, sizeof(*table));
	table->nregions = 1;
	table->regions[0] = (struct vhost_user_mem_region){
		.guest_phys_addr = 0, .memory_size = f->ram_size, .userspace_addr = (uintptr_t)f->ram,
		.mmap_offset = f->mmap_offset,
	};
}

int vuf_send_mem_table(struct vuf *f)
{
	struct vhost_user_mem_table table;
	int err;

	vuf_mem_table(f, &table);
	err = vuf_send(f, VHOST_USER_SET_MEM_TABLE, 0, &table, 8 + sizeof(table.regions[0]), &f->memfd, 1);
	return err ? err : f->pump_err;
}

static uint64_t user_addr(const struct vuf *f, uint64_t gpa)
{
	return (uintptr_t)f->ram + gpa;
}

int vuf_setup_ring(struct vuf *f, unsigned int q, uint16_t size)
{
	struct vuf_queue *vq = &f->q[q];
	uint64_t base = RING_AREA * (q + 1);
	struct vhost_vring_addr addr;
	uint64_t u;
	int err;

	close_fd(&vq->kick);
	close_fd(&vq->call);
	memset(vq, 0, sizeof(*vq));
	memset(f->ram + base, 0, RING_AREA);
	vq->size = size;
	vq->desc = base;
	vq->avail = base + 16ULL * size;
	vq->used = (vq->avail + 6 + 2ULL * size + 3) & ~3ULL;
	vq->kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	vq->call = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	addr = (struct vhost_vring_addr){ .index = q, .desc_user_addr = user_addr(f, vq->desc),
					  .avail_user_addr = user_addr(f, vq->avail),
					  .used_user_addr = user_addr(f, vq->used) };
	if ((err = vuf_set_state(f, VHOST_USER_SET_VRING_NUM, q, size)) ||
	    (err = vuf_set_state(f, VHOST_USER_SET_VRING_BASE, q, 0)))
		return err;
	if ((err = vuf_send(f, VHOST_USER_SET_VRING_ADDR, 0, &addr, sizeof(addr), NULL, 0)) || (err = f->pump_err))
		return err;
	u = q;
	if ((err = vuf_send(f, VHOST_USER_SET_VRING_KICK, 0, &u, sizeof(u), &vq->kick, 1)) || (err = f->pump_err))
		return err;
	if ((err = vuf_send(f, VHOST_USER_SET_VRING_CALL, 0, &u, sizeof(u), &vq->call, 1)) || (err = f->pump_err))
		return err;
	return 0;
}

int vuf_restart_ring(struct vuf *f, unsigned int q, uint16_t base)
{
	struct vuf_queue *vq = &f->q[q];
	struct vhost_vring_addr addr = { .index = q, .desc_user_addr = user_addr(f, vq->desc),
					 .avail_user_addr = user_addr(f, vq->avail),
					 .used_user_addr = user_addr(f, vq->used) };
	uint64_t u = q;
	int err;

	if ((err = vuf_set_state(f, VHOST_USER_SET_VRING_NUM, q, vq->size)))
		return err;
	if ((err = vuf_send(f, VHOST_USER_SET_VRING_ADDR, 0, &addr, sizeof(addr), NULL, 0)) || (err = f->pump_err))
		return err;
	if ((err = vuf_set_state(f, VHOST_USER_SET_VRING_BASE, q, base)))
		return err;
	if ((err = vuf_send(f, VHOST_USER_SET_VRING_CALL, 0, &u, sizeof(u), &vq->call, 1)) || (err = f->pump_err))
		return err;
	if ((err = vuf_send(f, VHOST_USER_SET_VRING_KICK, 0, &u, sizeof(u), &vq->kick, 1)) || (err = f->pump_err))
		return err;
	return vuf_set_state(f, VHOST_USER_SET_VRING_ENABLE, q, 1);
}

int vuf_start(struct vuf *f, uint64_t features, uint64_t protocol_features, unsigned int nqueues, uint16_t size)
{
	int err;

	if (!(vuf_get_u64(f, VHOST_USER_GET_FEATURES) & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)))
		return -ENOTSUP;
	(void)vuf_get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES);
	if ((err = vuf_set_u64(f, VHOST_USER_SET_FEATURES, features | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES))) ||
	    (err = vuf_set_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, protocol_features)))
		return err;
	if ((err = vuf_send(f, VHOST_USER_SET_OWNER, 0, NULL, 0, NULL, 0)) || (err = f->pump_err))
		return err;
	if ((err = vuf_send_mem_table(f)))
		return err;
	for (unsigned int q = 0; q < nqueues; q++) {
		if ((err = vuf_setup_ring(f, q, size)) || (err = vuf_set_state(f, VHOST_USER_SET_VRING_ENABLE, q, 1)))
			return err;
	}
	return 0;
}

uint64_t vuf_alloc(struct vuf *f, uint32_t len)
{
	uint64_t gpa = f->next_data;

	f->next_data = (f->next_data + len + 63) & ~63ULL;
	if (f->next_data > f->ram_size)
		abort();
	return gpa;
}

void *vuf_ptr(struct vuf *f, uint64_t gpa)
{
	return f->ram + gpa;
}

uint16_t vuf_offer(struct vuf *f, unsigned int q, const struct vuf_buf *bufs, unsigned int n)
{
	struct vuf_queue *vq = &f->q[q];
	struct vring_desc *table = vuf_ptr(f, vq->desc);
	struct vring_avail *avail = vuf_ptr(f, vq->avail);
	uint16_t head = vq->next_desc;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t at = (uint16_t)((head + i) % vq->size);

		table[at] = (struct vring_desc){
			.addr = bufs[i].gpa, .len = bufs[i].len,
			.flags = (uint16_t)((bufs[i].writable ? VRING_DESC_F_WRITE : 0) | (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
			.next = (uint16_t)((at + 1) % vq->size),
		};
	}
	vq->next_desc = (uint16_t)((head + n) % vq->size);
	avail->ring[vq->avail_idx % vq->size] = head;
	__atomic_store_n(&avail->idx, ++vq->avail_idx, __ATOMIC_RELEASE);
	return head;
}

void vuf_kick(struct vuf *f, unsigned int q)
{
	uint64_t one = 1;

	if (write(f->q[q].kick, &one, sizeof(one)) != sizeof(one))
		abort();
	f->pump_err = f->pump ? f->pump(f->ctx) : 0;
}

bool vuf_next_used(struct vuf *f, unsigned int q, uint32_t *id, uint32_t *len)
{
	struct vuf_queue *vq = &f->q[q];
	struct vring_used *used = vuf_ptr(f, vq->used);

	if (__atomic_load_n(&used->idx, __ATOMIC_ACQUIRE) == vq->used_seen)
		return false;
	*id = used->ring[vq->used_seen % vq->size].id;
	*len = used->ring[vq->used_seen % vq->size].len;
	vq->used_seen++;
	/* As a driver with EVENT_IDX: interrupt me at the next used buffer. */
	((struct vring_avail *)vuf_ptr(f, vq->avail))->ring[vq->size] = vq->used_seen;
	return true;
}

bool vuf_interrupted(struct vuf *f, unsigned int q)
{
	uint64_t count;

	return read(f->q[q].call, &count, sizeof(count)) == sizeof(count);
}

unsigned int vuf_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned int n = 0;

	if (!d)
		abort();
	while (readdir(d))
		n++;
	closedir(d);
	return n;  /* includes ".", ".." and the directory's own fd: constant, so fine for comparisons */
}
