/* vhost-user, device side. One switch dispatches each request to a handler;
 * handlers never touch a running ring in place: they stop it, change it, and
 * update_rings() starts every ring whose setup is complete (spec "Ring
 * states": size, addresses and kick fd known, enabled when
 * VHOST_USER_F_PROTOCOL_FEATURES was negotiated). REPLY_ACK is answered in
 * one place, and the first malformed message leaves the connection broken
 * for good (the caller then frees it): a hostile frontend gets a log line,
 * never a crash. */
#include "vhost/vhost_user_backend.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

struct ring {
	struct virtq *vq;      /* valid while running: &own, or the device's (ops->ring_vq) */
	struct virtq own;
	uint16_t num;          /* 0 until SET_VRING_NUM */
	uint16_t base;         /* the avail index to resume from when (re)started */
	bool has_addr;
	uint64_t desc_user, avail_user, used_user;  /* frontend user addresses */
	int kick_fd, call_fd, err_fd;
	bool enabled;          /* SET_VRING_ENABLE */
	bool running;          /* bound to guest memory and handed to the device */
};

struct mapping {
	void *addr;
	size_t len;
};

struct vhost_user_backend {
	int sock;
	const struct vhost_user_device_ops *ops;
	void *dev;
	char name[32];
	bool broken;
	uint64_t features;           /* acked by SET_FEATURES */
	uint64_t protocol_features;  /* acked by SET_PROTOCOL_FEATURES */
	struct guest_mem mem;        /* the table's regions as the virtq core sees them; nr_regions 0: none */
	struct vhost_user_mem_table table;
	struct mapping maps[VHOST_USER_MAX_REGIONS];
	struct ring rings[];
};

/* A handler's outcome beyond 0/-errno: why it failed, and the reply it built. */
struct result {
	const char *why;
	bool has_reply;     /* reply holds the request's explicit reply body */
	bool soft_failure;  /* refused, but the connection stays usable (REPLY_ACK says 1) */
	struct vhost_user_msg reply;
};

static int fail(struct result *res, int err, const char *why)
{
	res->why = why;
	return err;
}

static uint64_t offered_features(const struct vhost_user_backend *be)
{
	return be->ops->features | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
}

static uint64_t offered_protocol_features(const struct vhost_user_backend *be)
{
	uint64_t supported = (1ULL << VHOST_USER_PROTOCOL_F_MQ) | (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK);

	if (be->ops->get_config)
		supported |= 1ULL << VHOST_USER_PROTOCOL_F_CONFIG;
	return be->ops->protocol_features & supported;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Take a received eventfd. Non-blocking: a frontend that passed something
 * else (a pipe, a full counter) must not be able to block the device. */
static void take_fd(int *slot, int *fd)
{
	int flags = fcntl(*fd, F_GETFL);

	if (flags >= 0)
		(void)fcntl(*fd, F_SETFL, flags | O_NONBLOCK);
	close_fd(slot);
	*slot = *fd;
	*fd = -1;
}

static void ring_stop(struct vhost_user_backend *be, unsigned int q)
{
	struct ring *r = &be->rings[q];

	if (!r->running)
		return;
	be->ops->ring_stopped(be->dev, q);
	r->base = r->vq->last_avail_idx;
	r->running = false;
}

static void stop_all(struct vhost_user_backend *be)
{
	for (unsigned int q = 0; q < be->ops->num_queues; q++)
		ring_stop(be, q);
}

/* Back to the state of a new connection (enabled aside): after
 * GET_VRING_BASE the frontend sets the ring up again from scratch. */
static void ring_reset(struct vhost_user_backend *be, unsigned int q)
{
	struct ring *r = &be->rings[q];

	ring_stop(be, q);
	close_fd(&r->kick_fd);
	close_fd(&r->call_fd);
	close_fd(&r->err_fd);
	r->num = 0;
	r->base = 0;
	r->has_addr = false;
}

/* Frontend user address -> guest-physical, through the region holding it. */
static int user_to_gpa(const struct vhost_user_backend *be, uint64_t user, uint64_t *gpa)
{
	for (unsigned int i = 0; i < be->mem.nr_regions; i++) {
		const struct vhost_user_mem_region *r = &be->table.regions[i];

		if (user >= r->userspace_addr && user - r->userspace_addr < r->memory_size) {
			*gpa = r->guest_phys_addr + (user - r->userspace_addr);
			return 0;
		}
	}
	return -EFAULT;
}

static bool ring_ready(const struct vhost_user_backend *be, const struct ring *r)
{
	if (!r->num || !r->has_addr || r->kick_fd < 0 || !be->mem.nr_regions)
		return false;
	return r->enabled || !(be->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES));
}

static int ring_start(struct vhost_user_backend *be, unsigned int q, struct result *res)
{
	struct ring *r = &be->rings[q];
	uint64_t desc, avail, used;

	if (user_to_gpa(be, r->desc_user, &desc) || user_to_gpa(be, r->avail_user, &avail) ||
	    user_to_gpa(be, r->used_user, &used))
		return fail(res, -EFAULT, "vring address outside the memory table");
	r->vq = be->ops->ring_vq ? be->ops->ring_vq(be->dev, q) : &r->own;
	if (virtq_init(r->vq, &be->mem, r->num, desc, avail, used,
		       be->features & (1ULL << VIRTIO_RING_F_EVENT_IDX),
		       be->features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC)))
		return fail(res, -EFAULT, "vring misaligned or not inside one memory region");
	/* Resume where the frontend says; everything used so far is in used->idx. */
	r->vq->last_avail_idx = r->base;
	r->vq->used_idx = le16toh(__atomic_load_n(&r->vq->used->idx, __ATOMIC_ACQUIRE));
	r->running = true;
	be->ops->ring_started(be->dev, q);
	return 0;
}

static int update_rings(struct vhost_user_backend *be, struct result *res)
{
	for (unsigned int q = 0; q < be->ops->num_queues; q++) {
		struct ring *r = &be->rings[q];
		bool ready = ring_ready(be, r);

		if (r->running && !ready)
			ring_stop(be, q);
		else if (!r->running && ready && ring_start(be, q, res))
			return -EFAULT;
	}
	return 0;
}

static void unmap_all(struct mapping *maps)
{
	for (unsigned int i = 0; i < VHOST_USER_MAX_REGIONS; i++) {
		if (maps[i].addr)
			munmap(maps[i].addr, maps[i].len);
		maps[i] = (struct mapping){ 0 };
	}
}

/* Map region r of a new table from fd. mmap wants a page-aligned (on
 * hugetlbfs: huge-page-aligned) file offset, so the mapping starts below
 * mmap_offset and the region begins delta bytes into it. */
static int map_region(const struct vhost_user_mem_region *r, int fd, struct mapping *map,
		      struct guest_mem_region *out, struct result *res)
{
	uint64_t align = (uint64_t)sysconf(_SC_PAGESIZE), delta;
	struct stat st;
	void *addr;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return fail(res, -EINVAL, "memory region fd is not a file (memfd, shm or hugetlbfs)");
	/* Pages past the end of the file would fault with SIGBUS when touched. */
	if ((uint64_t)st.st_size < r->mmap_offset + r->memory_size)
		return fail(res, -EINVAL, "memory region extends past the end of its file");
	if (st.st_blksize > 0 && (uint64_t)st.st_blksize > align && !(st.st_blksize & (st.st_blksize - 1)))
		align = (uint64_t)st.st_blksize;
	delta = r->mmap_offset & (align - 1);
	addr = mmap(NULL, delta + r->memory_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd,
		    (off_t)(r->mmap_offset - delta));
	if (addr == MAP_FAILED)
		return fail(res, -errno, "cannot map a memory region");
	*map = (struct mapping){ .addr = addr, .len = delta + r->memory_size };
	*out = (struct guest_mem_region){
		.gpa = r->guest_phys_addr, .size = r->memory_size, .host = (uint8_t *)addr + delta,
		.fd_offset = r->mmap_offset,
	};
	return 0;
}

static int set_mem_table(struct vhost_user_backend *be, const struct vhost_user_mem_table *table, int *fds,
			 struct result *res)
{
	struct mapping maps[VHOST_USER_MAX_REGIONS] = { 0 };
	struct guest_mem mem = { .fd = -1 };
	int err = vhost_user_mem_table_check(table, &res->why);

	if (err)
		return err;
	for (uint32_t i = 0; i < table->nregions; i++) {
		err = map_region(&table->regions[i], fds[i], &maps[i], &mem.regions[i], res);
		if (err) {
			unmap_all(maps);
			return err;
		}
		mem.nr_regions = i + 1;
	}
	/* The fds are closed by the caller: the mappings keep the memory. Rings
	 * restart on the new table in update_rings. */
	stop_all(be);
	unmap_all(be->maps);
	memcpy(be->maps, maps, sizeof(maps));
	be->mem = mem;
	be->table = *table;
	return 0;
}

static int ring_index(const struct vhost_user_backend *be, uint64_t index, struct result *res)
{
	if (index >= be->ops->num_queues)
		return fail(res, -EINVAL, "no such vring");
	return 0;
}

static int set_vring_addr(struct vhost_user_backend *be, const struct vhost_vring_addr *a, struct result *res)
{
	struct ring *r;
	uint64_t gpa;

	if (ring_index(be, a->index, res))
		return -EINVAL;
	if (a->flags)
		return fail(res, -EINVAL, "vring logging not negotiated");
	if (!be->mem.nr_regions)
		return fail(res, -EINVAL, "vring addresses before any memory table");
	if (user_to_gpa(be, a->desc_user_addr, &gpa) || user_to_gpa(be, a->avail_user_addr, &gpa) ||
	    user_to_gpa(be, a->used_user_addr, &gpa))
		return fail(res, -EFAULT, "vring address outside the memory table");
	r = &be->rings[a->index];
	ring_stop(be, a->index);
	r->desc_user = a->desc_user_addr;
	r->avail_user = a->avail_user_addr;
	r->used_user = a->used_user_addr;
	r->has_addr = true;
	return 0;
}

static int set_vring_fd(struct vhost_user_backend *be, const struct vhost_user_msg *msg, int *fds,
			struct result *res)
{
	unsigned int q = (unsigned int)(msg->payload.u64 & VHOST_USER_VRING_INDEX_MASK);
	bool nofd = msg->payload.u64 & VHOST_USER_VRING_NOFD;
	struct ring *r;

	if (ring_index(be, q, res))
		return -EINVAL;
	r = &be->rings[q];
	switch (msg->hdr.request) {
	case VHOST_USER_SET_VRING_KICK:
		if (nofd)
			return fail(res, -EINVAL, "polling for kicks not supported");
		ring_stop(be, q);  /* the device watches the old fd */
		take_fd(&r->kick_fd, &fds[0]);
		return 0;
	case VHOST_USER_SET_VRING_CALL:
		if (nofd)
			close_fd(&r->call_fd);
		else
			take_fd(&r->call_fd, &fds[0]);
		return 0;
	default:
		if (nofd)
			close_fd(&r->err_fd);
		else
			take_fd(&r->err_fd, &fds[0]);
		return 0;
	}
}

static int get_config(struct vhost_user_backend *be, const struct vhost_user_config *c, struct result *res)
{
	struct vhost_user_config *out = &res->reply.payload.config;

	if (!(be->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_CONFIG)))
		return fail(res, -EINVAL, "config access not negotiated");
	if ((uint64_t)c->offset + c->size > VHOST_USER_CONFIG_MAX)
		return fail(res, -EINVAL, "config access beyond the config space");
	res->has_reply = true;
	*out = (struct vhost_user_config){ .offset = c->offset, .size = c->size, .flags = c->flags };
	/* The spec's way to say "failed" is an empty reply. */
	res->reply.hdr.size = be->ops->get_config(be->dev, c->offset, out->payload, c->size)
				      ? 0 : VHOST_USER_CONFIG_HDR_SIZE + c->size;
	return 0;
}

static int set_config(struct vhost_user_backend *be, const struct vhost_user_config *c, struct result *res)
{
	if (!(be->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_CONFIG)) || !be->ops->set_config)
		return fail(res, -EINVAL, "config writes not supported");
	if ((uint64_t)c->offset + c->size > VHOST_USER_CONFIG_MAX)
		return fail(res, -EINVAL, "config access beyond the config space");
	if (be->ops->set_config(be->dev, c->offset, c->payload, c->size, c->flags)) {
		res->soft_failure = true;
		res->why = "the device refused the config write";
	}
	return 0;
}

static void reply_u64(struct result *res, uint64_t value)
{
	res->has_reply = true;
	res->reply.hdr.size = sizeof(uint64_t);
	res->reply.payload.u64 = value;
}

static int dispatch(struct vhost_user_backend *be, const struct vhost_user_msg *msg, int *fds, struct result *res)
{
	const struct vhost_vring_state *state = &msg->payload.state;
	uint64_t u64 = msg->payload.u64;

	switch (msg->hdr.request) {
	case VHOST_USER_GET_FEATURES:
		reply_u64(res, offered_features(be));
		return 0;
	case VHOST_USER_SET_FEATURES:
		if (u64 & ~offered_features(be))
			return fail(res, -EINVAL, "feature bits never offered");
		stop_all(be);  /* rings restart with the new ring features */
		be->features = u64;
		return 0;
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		reply_u64(res, offered_protocol_features(be));
		return 0;
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		if (u64 & ~offered_protocol_features(be))
			return fail(res, -EINVAL, "protocol feature bits never offered");
		be->protocol_features = u64;
		return 0;
	case VHOST_USER_SET_OWNER:
		return 0;
	case VHOST_USER_RESET_OWNER:
		/* Deprecated; the spec suggests disabling every ring. */
		for (unsigned int q = 0; q < be->ops->num_queues; q++) {
			ring_reset(be, q);
			be->rings[q].enabled = false;
		}
		return 0;
	case VHOST_USER_SET_MEM_TABLE:
		return set_mem_table(be, &msg->payload.mem, fds, res);
	case VHOST_USER_SET_VRING_NUM:
		if (ring_index(be, state->index, res))
			return -EINVAL;
		if (state->num == 0 || state->num > be->ops->queue_size_max || (state->num & (state->num - 1)))
			return fail(res, -EINVAL, "vring size not a power of two up to the maximum");
		ring_stop(be, state->index);
		be->rings[state->index].num = (uint16_t)state->num;
		return 0;
	case VHOST_USER_SET_VRING_ADDR:
		return set_vring_addr(be, &msg->payload.addr, res);
	case VHOST_USER_SET_VRING_BASE:
		if (ring_index(be, state->index, res))
			return -EINVAL;
		if (state->num > UINT16_MAX)
			return fail(res, -EINVAL, "vring base beyond a split ring's index");
		ring_stop(be, state->index);
		be->rings[state->index].base = (uint16_t)state->num;
		return 0;
	case VHOST_USER_GET_VRING_BASE:
		if (ring_index(be, state->index, res))
			return -EINVAL;
		ring_stop(be, state->index);
		res->has_reply = true;
		res->reply.hdr.size = sizeof(*state);
		res->reply.payload.state = (struct vhost_vring_state){ .index = state->index,
									.num = be->rings[state->index].base };
		ring_reset(be, state->index);
		return 0;
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		return set_vring_fd(be, msg, fds, res);
	case VHOST_USER_GET_QUEUE_NUM:
		reply_u64(res, be->ops->num_queues);
		return 0;
	case VHOST_USER_SET_VRING_ENABLE:
		if (ring_index(be, state->index, res))
			return -EINVAL;
		if (state->num > 1)
			return fail(res, -EINVAL, "vring enable neither 0 nor 1");
		be->rings[state->index].enabled = state->num;
		return 0;
	case VHOST_USER_GET_CONFIG:
		return get_config(be, &msg->payload.config, res);
	case VHOST_USER_SET_CONFIG:
		return set_config(be, &msg->payload.config, res);
	case VHOST_USER_GET_MAX_MEM_SLOTS:
		reply_u64(res, VHOST_USER_MAX_REGIONS);
		return 0;
	default:
		/* SET_LOG_*, SEND_RARP, NET_SET_MTU, ADD/REM_MEM_REG: their protocol
		 * features are never offered. */
		return fail(res, -EINVAL, "request not negotiated");
	}
}

int vhost_user_backend_process(struct vhost_user_backend *be, const struct vhost_user_msg *msg, int *fds,
			       unsigned int nfds)
{
	struct result res = { 0 };
	const char *name = vhost_user_request_name(msg->hdr.request);
	bool ack = (msg->hdr.flags & VHOST_USER_FLAG_NEED_REPLY) &&
		   (be->protocol_features & (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK));
	int err;

	if (be->broken)
		err = fail(&res, -EPROTO, "connection already broken");
	else if (msg->hdr.flags & VHOST_USER_FLAG_REPLY)
		err = fail(&res, -EPROTO, "a reply where a request belongs");
	else
		err = dispatch(be, msg, fds, &res);
	for (unsigned int i = 0; i < nfds; i++)
		close_fd(&fds[i]);
	if (!err)
		err = update_rings(be, &res);

	if (!err && res.has_reply) {
		ack = false;
	} else if (ack) {
		/* REPLY_ACK: 0 for success, anything else for failure. */
		res.reply.hdr.size = sizeof(uint64_t);
		res.reply.payload.u64 = err || res.soft_failure;
	}
	if ((!err && res.has_reply) || ack) {
		int sent;

		res.reply.hdr.request = msg->hdr.request;
		res.reply.hdr.flags = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY;
		sent = vhost_user_send(be->sock, &res.reply, NULL, 0);
		if (sent && !err)
			err = fail(&res, sent, "cannot send the reply");
	}
	if (res.soft_failure && !err)
		log_warn("%s: vhost-user %s refused: %s", be->name, name, res.why);
	if (err) {
		if (!be->broken)
			log_warn("%s: vhost-user %s refused: %s", be->name, name, res.why);
		be->broken = true;
	}
	return err;
}

int vhost_user_backend_handle(struct vhost_user_backend *be)
{
	struct vhost_user_msg msg = { .hdr.request = 0 };
	int fds[VHOST_USER_MAX_FDS];
	unsigned int nfds;
	const char *why;
	int err;

	if (be->broken)
		return -EPROTO;
	err = vhost_user_recv(be->sock, &msg, fds, &nfds, &why);
	if (err == -EAGAIN || err == -ECONNRESET)
		return err;
	if (err) {
		if (err == -EPROTO)
			log_warn("%s: vhost-user request %u (%s) refused: %s", be->name, msg.hdr.request,
				 vhost_user_request_name(msg.hdr.request), why);
		else
			log_warn("%s: vhost-user socket: %s (%s)", be->name, why, strerror(-err));
		be->broken = true;
		return err;
	}
	return vhost_user_backend_process(be, &msg, fds, nfds);
}

int vhost_user_backend_kick(struct vhost_user_backend *be, unsigned int q)
{
	struct ring *r;
	uint64_t count;
	ssize_t n;
	int err;

	if (be->broken)
		return -EPROTO;
	if (q >= be->ops->num_queues || !be->rings[q].running)
		return 0;  /* a kick for a ring stopped since the fd became readable */
	r = &be->rings[q];
	do {
		n = read(r->kick_fd, &count, sizeof(count));
	} while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n != sizeof(count)) {
		log_warn("%s: vring %u: kick fd is not a usable eventfd", be->name, q);
		be->broken = true;
		return -EIO;
	}
	err = be->ops->kick(be->dev, q);
	if (virtq_is_broken(r->vq)) {
		log_warn("%s: vring %u broken by the guest: %s", be->name, q, r->vq->broken_reason);
		err = -EPROTO;
	}
	if (err)
		be->broken = true;
	return err;
}

void vhost_user_backend_notify(struct vhost_user_backend *be, unsigned int q)
{
	static const uint64_t one = 1;
	struct ring *r;
	ssize_t n;

	if (q >= be->ops->num_queues || !be->rings[q].running)
		return;
	r = &be->rings[q];
	if (r->call_fd < 0 || !virtq_should_notify(r->vq))
		return;
	/* EAGAIN: the counter is saturated, so an interrupt is pending anyway. */
	do {
		n = write(r->call_fd, &one, sizeof(one));
	} while (n < 0 && errno == EINTR);
}

struct virtq *vhost_user_backend_vq(struct vhost_user_backend *be, unsigned int q)
{
	return q < be->ops->num_queues && be->rings[q].running ? be->rings[q].vq : NULL;
}

int vhost_user_backend_kick_fd(const struct vhost_user_backend *be, unsigned int q)
{
	return q < be->ops->num_queues && be->rings[q].running ? be->rings[q].kick_fd : -1;
}

uint64_t vhost_user_backend_features(const struct vhost_user_backend *be)
{
	return be->features;
}

int vhost_user_backend_socket(const struct vhost_user_backend *be)
{
	return be->sock;
}

struct vhost_user_backend *vhost_user_backend_new(int sock, const struct vhost_user_device_ops *ops, void *dev,
						  const char *name)
{
	struct vhost_user_backend *be;
	uint16_t qmax = ops->queue_size_max;

	if (!ops->num_queues || ops->num_queues > VHOST_USER_BACKEND_MAX_QUEUES || !qmax || qmax > VIRTQ_MAX_SIZE ||
	    (qmax & (qmax - 1)) || !ops->ring_started || !ops->ring_stopped || !ops->kick)
		return NULL;
	be = calloc(1, sizeof(*be) + ops->num_queues * sizeof(be->rings[0]));
	if (!be)
		return NULL;
	be->sock = sock;
	be->ops = ops;
	be->dev = dev;
	be->mem.fd = -1;
	snprintf(be->name, sizeof(be->name), "%s", name);
	for (unsigned int q = 0; q < ops->num_queues; q++)
		be->rings[q].kick_fd = be->rings[q].call_fd = be->rings[q].err_fd = -1;
	return be;
}

void vhost_user_backend_free(struct vhost_user_backend *be)
{
	if (!be)
		return;
	for (unsigned int q = 0; q < be->ops->num_queues; q++)
		ring_reset(be, q);
	unmap_all(be->maps);
	if (be->sock >= 0)
		close(be->sock);
	free(be);
}
