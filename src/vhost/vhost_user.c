/* vhost-user messages on a UNIX stream socket: a 12-byte header, the payload,
 * and up to 8 descriptors in SCM_RIGHTS ancillary data. The peer may be
 * hostile: every received message is bounded by the payload union and checked
 * against what its request carries before anyone looks inside. */
#include "vhost/vhost_user.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum fd_rule {
	FDS_NONE,        /* no descriptor */
	FDS_ONE,         /* exactly one */
	FDS_OPTIONAL,    /* none or one (REM_MEM_REG: the spec tolerates a stray one) */
	FDS_PER_REGION,  /* one per memory region */
	FDS_VRING,       /* one, unless the u64 says "no fd" (bit 8) */
};

enum size_rule {
	SIZE_EXACT,      /* exactly size bytes */
	SIZE_MEM_TABLE,  /* 8 bytes, then nregions regions */
	SIZE_LOG,        /* a u64 (old frontends) or the log description */
	SIZE_CONFIG,     /* 12 bytes, then config.size bytes */
};

struct request_info {
	const char *name;
	uint8_t size_rule;
	uint8_t fd_rule;
	uint16_t size;        /* SIZE_EXACT: the request's payload */
	uint16_t reply_size;  /* the reply's payload: an explicit body, or the REPLY_ACK u64 */
};

#define U64 sizeof(uint64_t)
#define STATE sizeof(struct vhost_vring_state)
#define REQ(id, rule, fds, sz, reply) [VHOST_USER_##id] = { #id, rule, fds, sz, reply }

/* Spec "Front-end message types": request and reply payloads, and which requests carry fds. */
static const struct request_info requests[VHOST_USER_REQUEST_MAX] = {
	REQ(GET_FEATURES, SIZE_EXACT, FDS_NONE, 0, U64),
	REQ(SET_FEATURES, SIZE_EXACT, FDS_NONE, U64, U64),
	REQ(SET_OWNER, SIZE_EXACT, FDS_NONE, 0, U64),
	REQ(RESET_OWNER, SIZE_EXACT, FDS_NONE, 0, U64),
	REQ(SET_MEM_TABLE, SIZE_MEM_TABLE, FDS_PER_REGION, 0, U64),
	REQ(SET_LOG_BASE, SIZE_LOG, FDS_OPTIONAL, 0, U64),
	REQ(SET_LOG_FD, SIZE_EXACT, FDS_ONE, 0, U64),
	REQ(SET_VRING_NUM, SIZE_EXACT, FDS_NONE, STATE, U64),
	REQ(SET_VRING_ADDR, SIZE_EXACT, FDS_NONE, sizeof(struct vhost_vring_addr), U64),
	REQ(SET_VRING_BASE, SIZE_EXACT, FDS_NONE, STATE, U64),
	REQ(GET_VRING_BASE, SIZE_EXACT, FDS_NONE, STATE, STATE),
	REQ(SET_VRING_KICK, SIZE_EXACT, FDS_VRING, U64, U64),
	REQ(SET_VRING_CALL, SIZE_EXACT, FDS_VRING, U64, U64),
	REQ(SET_VRING_ERR, SIZE_EXACT, FDS_VRING, U64, U64),
	REQ(GET_PROTOCOL_FEATURES, SIZE_EXACT, FDS_NONE, 0, U64),
	REQ(SET_PROTOCOL_FEATURES, SIZE_EXACT, FDS_NONE, U64, U64),
	REQ(GET_QUEUE_NUM, SIZE_EXACT, FDS_NONE, 0, U64),
	REQ(SET_VRING_ENABLE, SIZE_EXACT, FDS_NONE, STATE, U64),
	REQ(SEND_RARP, SIZE_EXACT, FDS_NONE, U64, U64),
	REQ(NET_SET_MTU, SIZE_EXACT, FDS_NONE, U64, U64),
	REQ(GET_CONFIG, SIZE_CONFIG, FDS_NONE, 0, 0),
	REQ(SET_CONFIG, SIZE_CONFIG, FDS_NONE, 0, U64),
	REQ(GET_MAX_MEM_SLOTS, SIZE_EXACT, FDS_NONE, 0, U64),
	REQ(ADD_MEM_REG, SIZE_EXACT, FDS_ONE, sizeof(struct vhost_user_mem_single), U64),
	REQ(REM_MEM_REG, SIZE_EXACT, FDS_OPTIONAL, sizeof(struct vhost_user_mem_single), U64),
};

static const struct request_info *request_info(uint32_t request)
{
	if (request >= VHOST_USER_REQUEST_MAX || !requests[request].name)
		return NULL;
	return &requests[request];
}

const char *vhost_user_request_name(uint32_t request)
{
	const struct request_info *info = request_info(request);

	return info ? info->name : "unknown";
}

static int refuse(const char **why, const char *reason)
{
	*why = reason;
	return -EPROTO;
}

static int invalid(const char **why, const char *reason)
{
	*why = reason;
	return -EINVAL;
}

static int check_config_size(const struct vhost_user_msg *msg, const char **why)
{
	uint32_t size = msg->hdr.size;

	if (size < VHOST_USER_CONFIG_HDR_SIZE)
		return refuse(why, "config payload shorter than its header");
	if (msg->payload.config.size > VHOST_USER_CONFIG_MAX)
		return refuse(why, "config access larger than 256 bytes");
	if (size != VHOST_USER_CONFIG_HDR_SIZE + msg->payload.config.size)
		return refuse(why, "config payload size does not match its size field");
	return 0;
}

static int check_request(const struct vhost_user_msg *msg, const struct request_info *info, unsigned int nfds,
			 const char **why)
{
	uint32_t size = msg->hdr.size;
	unsigned int want_fds = 0;

	switch (info->size_rule) {
	case SIZE_EXACT:
		if (size != info->size)
			return refuse(why, "wrong payload size for the request");
		break;
	case SIZE_MEM_TABLE:
		if (size < offsetof(struct vhost_user_mem_table, regions))
			return refuse(why, "memory table shorter than its header");
		if (msg->payload.mem.nregions > VHOST_USER_MAX_REGIONS)
			return refuse(why, "memory table with more than 8 regions");
		if (size != offsetof(struct vhost_user_mem_table, regions) +
				    msg->payload.mem.nregions * sizeof(struct vhost_user_mem_region))
			return refuse(why, "memory table size does not match its region count");
		break;
	case SIZE_LOG:
		if (size != U64 && size != sizeof(struct vhost_user_log))
			return refuse(why, "wrong payload size for the request");
		break;
	case SIZE_CONFIG:
		if (check_config_size(msg, why))
			return -EPROTO;
		break;
	}

	switch (info->fd_rule) {
	case FDS_NONE:
		break;
	case FDS_ONE:
		want_fds = 1;
		break;
	case FDS_OPTIONAL:
		want_fds = nfds ? 1 : 0;
		break;
	case FDS_PER_REGION:
		want_fds = msg->payload.mem.nregions;
		break;
	case FDS_VRING:
		if (msg->payload.u64 & ~(uint64_t)(VHOST_USER_VRING_INDEX_MASK | VHOST_USER_VRING_NOFD))
			return refuse(why, "unknown bits in a vring fd message");
		want_fds = (msg->payload.u64 & VHOST_USER_VRING_NOFD) ? 0 : 1;
		break;
	}
	if (nfds > want_fds)
		return refuse(why, want_fds ? "more fds than the request carries" : "fd attached where none belongs");
	if (nfds < want_fds)
		return refuse(why, "fd missing where the request needs one");
	return 0;
}

static int check_reply(const struct vhost_user_msg *msg, const struct request_info *info, unsigned int nfds,
		       const char **why)
{
	if (nfds)
		return refuse(why, "fd attached to a reply");
	if (msg->hdr.flags & VHOST_USER_FLAG_NEED_REPLY)
		return refuse(why, "a reply asking for a reply");
	if (msg->hdr.request == VHOST_USER_GET_CONFIG) {
		/* An empty reply is how a backend says it failed. */
		return msg->hdr.size == 0 ? 0 : check_config_size(msg, why);
	}
	if (msg->hdr.size != info->reply_size)
		return refuse(why, "wrong payload size for the reply");
	return 0;
}

int vhost_user_msg_check(const struct vhost_user_msg *msg, unsigned int nfds, const char **why)
{
	const struct request_info *info = request_info(msg->hdr.request);
	uint32_t flags = msg->hdr.flags;

	if ((flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION)
		return refuse(why, "unsupported protocol version");
	if (flags & ~(VHOST_USER_VERSION_MASK | VHOST_USER_FLAG_REPLY | VHOST_USER_FLAG_NEED_REPLY))
		return refuse(why, "unknown header flags");
	if (msg->hdr.size > VHOST_USER_PAYLOAD_MAX)
		return refuse(why, "payload larger than any message");
	if (!info)
		return refuse(why, "unknown request");
	if (nfds > VHOST_USER_MAX_FDS)
		return refuse(why, "more than 8 fds attached");
	return (flags & VHOST_USER_FLAG_REPLY) ? check_reply(msg, info, nfds, why) : check_request(msg, info, nfds, why);
}

/* The last byte of [base, base + size), or false if the range wraps. */
static bool range_last(uint64_t base, uint64_t size, uint64_t *last)
{
	if (size == 0 || size - 1 > UINT64_MAX - base)
		return false;
	*last = base + (size - 1);
	return true;
}

static bool overlap(uint64_t a, uint64_t a_last, uint64_t b, uint64_t b_last)
{
	return a <= b_last && b <= a_last;
}

int vhost_user_mem_table_check(const struct vhost_user_mem_table *table, const char **why)
{
	uint64_t gpa_last[VHOST_USER_MAX_REGIONS], user_last[VHOST_USER_MAX_REGIONS];
	uint32_t n = table->nregions;

	if (n == 0)
		return invalid(why, "empty memory table");
	if (n > VHOST_USER_MAX_REGIONS)
		return invalid(why, "memory table with more than 8 regions");
	for (uint32_t i = 0; i < n; i++) {
		const struct vhost_user_mem_region *r = &table->regions[i];
		uint64_t unused;

		if (r->memory_size == 0)
			return invalid(why, "memory region of size zero");
		if (!range_last(r->guest_phys_addr, r->memory_size, &gpa_last[i]))
			return invalid(why, "memory region's guest addresses wrap around");
		if (!range_last(r->userspace_addr, r->memory_size, &user_last[i]))
			return invalid(why, "memory region's user addresses wrap around");
		/* mmap takes a signed 64-bit offset. */
		if (!range_last(r->mmap_offset, r->memory_size, &unused) || unused > (uint64_t)INT64_MAX)
			return invalid(why, "memory region's mmap range beyond any file");
		for (uint32_t j = 0; j < i; j++) {
			const struct vhost_user_mem_region *o = &table->regions[j];

			if (overlap(r->guest_phys_addr, gpa_last[i], o->guest_phys_addr, gpa_last[j]))
				return invalid(why, "memory regions overlap in guest-physical space");
			if (overlap(r->userspace_addr, user_last[i], o->userspace_addr, user_last[j]))
				return invalid(why, "memory regions overlap in the frontend's address space");
		}
	}
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The socket would block in the middle of a message: wait for it, but no
 * later than VHOST_USER_IO_TIMEOUT_MS after the first wait of this message. */
static int wait_socket(int sock, short events, int64_t *deadline)
{
	struct pollfd p = { .fd = sock, .events = events };
	int64_t now = now_ms();
	int n;

	if (*deadline == 0)
		*deadline = now + VHOST_USER_IO_TIMEOUT_MS;
	if (now >= *deadline)
		return -ETIMEDOUT;
	n = poll(&p, 1, (int)(*deadline - now));
	if (n < 0 && errno != EINTR)
		return -errno;
	return 0;
}

int vhost_user_send(int sock, const struct vhost_user_msg *msg, const int *fds, unsigned int nfds)
{
	uint8_t buf[sizeof(msg->hdr) + VHOST_USER_PAYLOAD_MAX];
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
		struct cmsghdr align;
	} ctrl;
	size_t total, sent = 0;
	int64_t deadline = 0;

	if (nfds > VHOST_USER_MAX_FDS || msg->hdr.size > VHOST_USER_PAYLOAD_MAX)
		return -EINVAL;
	total = sizeof(msg->hdr) + msg->hdr.size;
	memcpy(buf, &msg->hdr, sizeof(msg->hdr));
	memcpy(buf + sizeof(msg->hdr), &msg->payload, msg->hdr.size);
	memset(&ctrl, 0, sizeof(ctrl));
	while (sent < total) {
		struct iovec iov = { .iov_base = buf + sent, .iov_len = total - sent };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		/* The fds travel with the first byte only. */
		if (sent == 0 && nfds) {
			struct cmsghdr *c;

			mh.msg_control = ctrl.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			int err = -errno;

			if (err == -EAGAIN)
				err = wait_socket(sock, POLLOUT, &deadline);
			if (err && err != -EINTR)
				return err;
			continue;
		}
		sent += (size_t)n;
	}
	return 0;
}

/* One recvmsg into buf, collecting any descriptors that came along. More than
 * VHOST_USER_MAX_FDS in all (or a truncated control message, whose extra fds
 * the kernel already closed) sets *too_many; the extra fds are closed. */
static ssize_t recv_some(int sock, void *buf, size_t len, int flags, int *fds, unsigned int *nfds, bool *too_many)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
		struct cmsghdr align;
	} ctrl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf, .msg_controllen = sizeof(ctrl.buf) };
	ssize_t n;

	do {
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t count;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
			continue;
		count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (*nfds < VHOST_USER_MAX_FDS) {
				fds[(*nfds)++] = fd;
			} else {
				close(fd);
				*too_many = true;
			}
		}
	}
	if (mh.msg_flags & MSG_CTRUNC)
		*too_many = true;
	return n;
}

/* Read exactly len bytes (the stream may deliver them in pieces). Only at a
 * message boundary does "nothing to read" mean -EAGAIN (or, on a blocking
 * socket, a wait of the socket's own timeout); once a message has begun, its
 * rest must arrive before the deadline, however the peer trickles it, so
 * those reads never block and the waits are ours. */
static int recv_exact(int sock, void *buf, size_t len, bool at_boundary, int64_t *deadline, int *fds,
		      unsigned int *nfds, bool *too_many, const char **why)
{
	size_t got = 0;

	while (got < len) {
		bool started = !at_boundary || got > 0;
		ssize_t n = recv_some(sock, (uint8_t *)buf + got, len - got, started ? MSG_DONTWAIT : 0, fds, nfds,
				      too_many);

		if (n == 0) {
			/* A message cut short is malformed; a close between messages is not. */
			*why = started ? "peer closed mid-message" : "peer closed the connection";
			return started ? -EPROTO : -ECONNRESET;
		}
		if (n == -EAGAIN && !started) {
			*why = "no message waiting";
			return -EAGAIN;
		}
		if (n == -EAGAIN)
			n = wait_socket(sock, POLLIN, deadline);
		if (n < 0) {
			*why = n == -ETIMEDOUT ? "peer stalled mid-message" : "socket error";
			return (int)n;
		}
		got += (size_t)n;
	}
	return 0;
}

int vhost_user_recv(int sock, struct vhost_user_msg *msg, int *fds, unsigned int *nfds, const char **why)
{
	bool too_many = false;
	int64_t deadline = 0;
	int err;

	*nfds = 0;
	err = recv_exact(sock, &msg->hdr, sizeof(msg->hdr), true, &deadline, fds, nfds, &too_many, why);
	if (err)
		goto fail;
	if (msg->hdr.size > VHOST_USER_PAYLOAD_MAX) {
		err = refuse(why, "payload larger than any message");
		goto fail;
	}
	err = recv_exact(sock, &msg->payload, msg->hdr.size, false, &deadline, fds, nfds, &too_many, why);
	if (err)
		goto fail;
	if (too_many) {
		err = refuse(why, "more than 8 fds attached");
		goto fail;
	}
	/* Bytes past size keep whatever they held: clear them so no check reads stale data. */
	memset((uint8_t *)&msg->payload + msg->hdr.size, 0, VHOST_USER_PAYLOAD_MAX - msg->hdr.size);
	err = vhost_user_msg_check(msg, *nfds, why);
	if (err)
		goto fail;
	return 0;
fail:
	for (unsigned int i = 0; i < *nfds; i++)
		close(fds[i]);
	*nfds = 0;
	return err;
}
