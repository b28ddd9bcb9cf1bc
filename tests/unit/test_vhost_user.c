/* vhost-user: the message codec over socketpairs (round trips with fds and
 * every refusal), the memory table check, and the backend library driven by
 * the test frontend: negotiation, REPLY_ACK, memory tables (unaligned mmap
 * offsets, two regions, hostile fds), rings started, kicked, stopped and
 * resumed, config space, and no fd left behind across reconnections. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/iov.h"
#include "vhost/vhost_user.h"
#include "vhost/vhost_user_backend.h"
#include "vhost_user_frontend.h"

#define RAM_SIZE (4ULL << 20)
#define QSIZE 16
#define PROTO_ALL ((1ULL << VHOST_USER_PROTOCOL_F_MQ) | (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
		   (1ULL << VHOST_USER_PROTOCOL_F_CONFIG))
#define FEATURES ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) | \
		  (1ULL << VIRTIO_RING_F_INDIRECT_DESC))

/* --- codec --- */

static int sv[2];

static int codec_setup(void **state)
{
	(void)state;
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
}

static int codec_teardown(void **state)
{
	(void)state;
	close(sv[0]);
	close(sv[1]);
	return 0;
}

static struct vhost_user_msg make_msg(uint32_t request, uint32_t size)
{
	struct vhost_user_msg m;

	memset(&m, 0, sizeof(m));
	m.hdr = (struct vhost_user_hdr){ .request = request, .flags = VHOST_USER_VERSION, .size = size };
	return m;
}

/* Send raw bytes with n fds attached, bypassing vhost_user_send's own checks. */
static void send_raw(int sock, const void *buf, size_t len, const int *fds, unsigned int n)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} ctrl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	memset(&ctrl, 0, sizeof(ctrl));
	if (n) {
		struct cmsghdr *c;

		mh.msg_control = ctrl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	}
	assert_int_equal(sendmsg(sock, &mh, 0), (ssize_t)len);
}

/* m as it goes on the wire (the header directly followed by the payload), sent raw. */
static void send_msg_raw(int sock, const struct vhost_user_msg *m, size_t len, const int *fds, unsigned int n)
{
	uint8_t wire[sizeof(m->hdr) + VHOST_USER_PAYLOAD_MAX];

	memcpy(wire, &m->hdr, sizeof(m->hdr));
	memcpy(wire + sizeof(m->hdr), &m->payload, VHOST_USER_PAYLOAD_MAX);
	send_raw(sock, wire, len, fds, n);
}

static void expect_refused(int err, const char *why, const char *reason)
{
	assert_int_equal(err, -EPROTO);
	if (!strstr(why, reason))
		fail_msg("refused because \"%s\", expected \"%s\"", why, reason);
}

/* Send m with fds, receive it on the other end and expect a refusal; no fd stays open. */
static void expect_recv_refused(struct vhost_user_msg *m, const int *fds, unsigned int n, const char *reason)
{
	struct vhost_user_msg got;
	int rfds[VHOST_USER_MAX_FDS];
	unsigned int before = vuf_count_fds(), nfds = 99;
	const char *why = NULL;
	int err;

	send_msg_raw(sv[0], m, sizeof(m->hdr) + m->hdr.size, fds, n);
	err = vhost_user_recv(sv[1], &got, rfds, &nfds, &why);
	expect_refused(err, why, reason);
	assert_int_equal(nfds, 0);
	assert_int_equal(vuf_count_fds(), before);
}

static bool same_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

static void test_roundtrip_with_fds(void **state)
{
	struct vhost_user_msg m = make_msg(VHOST_USER_SET_MEM_TABLE, 8 + 2 * sizeof(struct vhost_user_mem_region));
	struct vhost_user_msg got;
	int fds[2] = { memfd_create("a", MFD_CLOEXEC), memfd_create("b", MFD_CLOEXEC) };
	int rfds[VHOST_USER_MAX_FDS];
	unsigned int nfds;
	const char *why;

	(void)state;
	m.payload.mem.nregions = 2;
	m.payload.mem.regions[0] = (struct vhost_user_mem_region){ 0, 0x1000, 0x7f0000000000, 0 };
	m.payload.mem.regions[1] = (struct vhost_user_mem_region){ 0x100000000, 0x2000, 0x7f0000100000, 0x1000 };
	assert_int_equal(vhost_user_send(sv[0], &m, fds, 2), 0);
	assert_int_equal(vhost_user_recv(sv[1], &got, rfds, &nfds, &why), 0);
	assert_int_equal(nfds, 2);
	assert_memory_equal(&got.hdr, &m.hdr, sizeof(m.hdr));
	assert_memory_equal(&got.payload, &m.payload, m.hdr.size);
	assert_true(same_file(fds[0], rfds[0]));
	assert_true(same_file(fds[1], rfds[1]));
	assert_true(fcntl(rfds[0], F_GETFD) & FD_CLOEXEC);
	for (unsigned int i = 0; i < 2; i++) {
		close(fds[i]);
		close(rfds[i]);
	}
}

static void test_roundtrip_payloads(void **state)
{
	struct vhost_user_msg m[4] = {
		make_msg(VHOST_USER_SET_FEATURES, 8), make_msg(VHOST_USER_SET_VRING_BASE, 8),
		make_msg(VHOST_USER_SET_VRING_ADDR, sizeof(struct vhost_vring_addr)),
		make_msg(VHOST_USER_SET_CONFIG, VHOST_USER_CONFIG_HDR_SIZE + 6),
	};
	struct vhost_user_msg got;
	int rfds[VHOST_USER_MAX_FDS];
	unsigned int nfds;
	const char *why;

	(void)state;
	m[0].payload.u64 = 0x123456789abcdefULL;
	m[1].payload.state = (struct vhost_vring_state){ .index = 1, .num = 0xfffe };
	m[2].payload.addr = (struct vhost_vring_addr){ .index = 1, .desc_user_addr = 1, .used_user_addr = 2,
						       .avail_user_addr = 3, .log_guest_addr = 4 };
	m[3].payload.config = (struct vhost_user_config){ .offset = 2, .size = 6, .payload = "abcdef" };
	for (unsigned int i = 0; i < 4; i++) {
		assert_int_equal(vhost_user_send(sv[0], &m[i], NULL, 0), 0);
		assert_int_equal(vhost_user_recv(sv[1], &got, rfds, &nfds, &why), 0);
		assert_int_equal(nfds, 0);
		assert_memory_equal(&got.hdr, &m[i].hdr, sizeof(m[i].hdr));
		assert_memory_equal(&got.payload, &m[i].payload, m[i].hdr.size);
	}
	/* A reply whose body the request defines, and a REPLY_ACK. */
	m[0] = make_msg(VHOST_USER_GET_VRING_BASE, 8);
	m[0].hdr.flags |= VHOST_USER_FLAG_REPLY;
	assert_int_equal(vhost_user_send(sv[0], &m[0], NULL, 0), 0);
	assert_int_equal(vhost_user_recv(sv[1], &got, rfds, &nfds, &why), 0);
	m[0] = make_msg(VHOST_USER_SET_MEM_TABLE, 8);
	m[0].hdr.flags |= VHOST_USER_FLAG_REPLY;
	assert_int_equal(vhost_user_send(sv[0], &m[0], NULL, 0), 0);
	assert_int_equal(vhost_user_recv(sv[1], &got, rfds, &nfds, &why), 0);
}

/* The stream may deliver a message in pieces: header split, payload later. */
static void test_short_reads(void **state)
{
	struct vhost_user_msg m = make_msg(VHOST_USER_SET_FEATURES, 8), got;
	uint8_t bytes[20];
	int rfds[VHOST_USER_MAX_FDS];
	unsigned int nfds;
	const char *why;

	(void)state;
	m.payload.u64 = 42;
	memcpy(bytes, &m.hdr, 12);
	memcpy(bytes + 12, &m.payload, 8);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	assert_int_equal(vhost_user_recv(sv[1], &got, rfds, &nfds, &why), -EAGAIN);
	send_raw(sv[0], bytes, 5, NULL, 0);
	if (fork() == 0) {
		struct timespec t = { 0, 20 * 1000 * 1000 };

		nanosleep(&t, NULL);
		send_raw(sv[0], bytes + 5, 10, NULL, 0);
		nanosleep(&t, NULL);
		send_raw(sv[0], bytes + 15, 5, NULL, 0);
		_exit(0);
	}
	assert_int_equal(vhost_user_recv(sv[1], &got, rfds, &nfds, &why), 0);
	assert_int_equal(got.payload.u64, 42);
	wait(NULL);
}

static void test_refuse_bad_version(void **state)
{
	struct vhost_user_msg m = make_msg(VHOST_USER_GET_FEATURES, 0);

	(void)state;
	m.hdr.flags = 2;
	expect_recv_refused(&m, NULL, 0, "version");
	m.hdr.flags = VHOST_USER_VERSION | (1u << 7);
	expect_recv_refused(&m, NULL, 0, "unknown header flags");
}

static void test_refuse_size_over_union(void **state)
{
	struct vhost_user_msg m = make_msg(VHOST_USER_SET_FEATURES, VHOST_USER_PAYLOAD_MAX + 1);
	struct vhost_user_msg got;
	int rfds[VHOST_USER_MAX_FDS];
	unsigned int nfds;
	const char *why;
	int err;

	(void)state;
	send_raw(sv[0], &m.hdr, sizeof(m.hdr), NULL, 0);
	err = vhost_user_recv(sv[1], &got, rfds, &nfds, &why);
	expect_refused(err, why, "larger than any message");
}

static void test_refuse_wrong_payload_size(void **state)
{
	struct vhost_user_msg m = make_msg(VHOST_USER_SET_FEATURES, 4);

	(void)state;
	expect_recv_refused(&m, NULL, 0, "wrong payload size");
	m = make_msg(VHOST_USER_GET_FEATURES, 8);
	expect_recv_refused(&m, NULL, 0, "wrong payload size");
	m = make_msg(VHOST_USER_SET_VRING_ADDR, 32);
	expect_recv_refused(&m, NULL, 0, "wrong payload size");
	m = make_msg(VHOST_USER_SET_CONFIG, VHOST_USER_CONFIG_HDR_SIZE + 4);
	m.payload.config.size = 5;
	expect_recv_refused(&m, NULL, 0, "does not match");
	m = make_msg(VHOST_USER_SET_CONFIG, 8);
	expect_recv_refused(&m, NULL, 0, "shorter than its header");
	m = make_msg(VHOST_USER_SET_MEM_TABLE, 8 + 32);
	m.payload.mem.nregions = 2;
	expect_recv_refused(&m, NULL, 0, "does not match its region count");
	m = make_msg(77, 0);
	expect_recv_refused(&m, NULL, 0, "unknown request");
	/* Replies: a wrong body size, and fds on a reply. */
	m = make_msg(VHOST_USER_GET_FEATURES, 4);
	m.hdr.flags |= VHOST_USER_FLAG_REPLY;
	expect_recv_refused(&m, NULL, 0, "wrong payload size for the reply");
}

static void test_refuse_too_many_fds(void **state)
{
	struct vhost_user_msg m = make_msg(VHOST_USER_SET_MEM_TABLE, 8 + 8 * 32);
	int fds[9];

	(void)state;
	m.payload.mem.nregions = 8;
	for (unsigned int i = 0; i < 9; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	expect_recv_refused(&m, fds, 9, "more than 8 fds");
	for (unsigned int i = 0; i < 9; i++)
		close(fds[i]);
	assert_int_equal(vhost_user_send(sv[0], &m, fds, 9), -EINVAL);
}

static void test_refuse_missing_fd(void **state)
{
	struct vhost_user_msg m = make_msg(VHOST_USER_SET_VRING_KICK, 8), got;
	int efd = eventfd(0, EFD_CLOEXEC), rfds[VHOST_USER_MAX_FDS];
	unsigned int nfds;
	const char *why;

	(void)state;
	expect_recv_refused(&m, NULL, 0, "fd missing");
	m = make_msg(VHOST_USER_SET_MEM_TABLE, 8 + 2 * 32);
	m.payload.mem.nregions = 2;
	expect_recv_refused(&m, &efd, 1, "fd missing");
	m = make_msg(VHOST_USER_SET_LOG_FD, 0);
	expect_recv_refused(&m, NULL, 0, "fd missing");
	/* Bit 8 says "no fd": then none may come, and none need. */
	m = make_msg(VHOST_USER_SET_VRING_CALL, 8);
	m.payload.u64 = 1 | VHOST_USER_VRING_NOFD;
	expect_recv_refused(&m, &efd, 1, "fd attached where none belongs");
	assert_int_equal(vhost_user_send(sv[0], &m, NULL, 0), 0);
	assert_int_equal(vhost_user_recv(sv[1], &got, rfds, &nfds, &why), 0);
	m.payload.u64 = 1 | (1u << 9);
	expect_recv_refused(&m, NULL, 0, "unknown bits");
	close(efd);
}

static void test_refuse_fd_where_forbidden(void **state)
{
	struct vhost_user_msg m = make_msg(VHOST_USER_SET_FEATURES, 8);
	int fds[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };

	(void)state;
	expect_recv_refused(&m, fds, 1, "fd attached where none belongs");
	m = make_msg(VHOST_USER_SET_VRING_KICK, 8);
	expect_recv_refused(&m, fds, 2, "more fds than the request carries");
	m = make_msg(VHOST_USER_GET_FEATURES, 8);
	m.hdr.flags |= VHOST_USER_FLAG_REPLY;
	expect_recv_refused(&m, fds, 1, "fd attached to a reply");
	close(fds[0]);
	close(fds[1]);
}

static void test_peer_closes(void **state)
{
	struct vhost_user_msg m = make_msg(VHOST_USER_SET_FEATURES, 8), got;
	int efd = eventfd(0, EFD_CLOEXEC), rfds[VHOST_USER_MAX_FDS];
	unsigned int before, nfds;
	const char *why;
	int err;

	(void)state;
	/* Mid-message, with an fd already received: refused, the fd closed. */
	send_msg_raw(sv[0], &m, sizeof(m.hdr) + 3, &efd, 1);
	close(efd);
	shutdown(sv[0], SHUT_WR);
	before = vuf_count_fds();
	err = vhost_user_recv(sv[1], &got, rfds, &nfds, &why);
	expect_refused(err, why, "closed mid-message");
	assert_int_equal(vuf_count_fds(), before);
	/* Between messages: a plain disconnect. */
	assert_int_equal(vhost_user_recv(sv[1], &got, rfds, &nfds, &why), -ECONNRESET);
}

static void test_peer_stalls(void **state)
{
	struct vhost_user_msg m = make_msg(VHOST_USER_SET_FEATURES, 8), got;
	int rfds[VHOST_USER_MAX_FDS];
	unsigned int nfds;
	const char *why;

	(void)state;
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	send_msg_raw(sv[0], &m, sizeof(m.hdr) + 2, NULL, 0);
	assert_int_equal(vhost_user_recv(sv[1], &got, rfds, &nfds, &why), -ETIMEDOUT);
	assert_non_null(strstr(why, "stalled"));
}

static void test_mem_table_check(void **state)
{
	struct vhost_user_mem_table t = { .nregions = 2 };
	const char *why;

	(void)state;
	t.regions[0] = (struct vhost_user_mem_region){ 0, 0x10000, 0x10000000, 0 };
	t.regions[1] = (struct vhost_user_mem_region){ 0x100000, 0x10000, 0x20000000, 0x10000 };
	assert_int_equal(vhost_user_mem_table_check(&t, &why), 0);

	t.regions[1].guest_phys_addr = 0xffff;
	assert_int_equal(vhost_user_mem_table_check(&t, &why), -EINVAL);
	assert_non_null(strstr(why, "overlap in guest-physical"));
	t.regions[1].guest_phys_addr = 0x10000;  /* adjacent is fine */
	assert_int_equal(vhost_user_mem_table_check(&t, &why), 0);
	t.regions[1].userspace_addr = 0x1000ffff;
	assert_int_equal(vhost_user_mem_table_check(&t, &why), -EINVAL);
	assert_non_null(strstr(why, "overlap in the frontend"));
	t.regions[1].userspace_addr = 0x20000000;
	t.regions[1].memory_size = 0;
	assert_int_equal(vhost_user_mem_table_check(&t, &why), -EINVAL);
	assert_non_null(strstr(why, "size zero"));
	t.regions[1].memory_size = 0x10000;
	t.regions[1].guest_phys_addr = ~0ULL - 0x100;
	assert_int_equal(vhost_user_mem_table_check(&t, &why), -EINVAL);
	assert_non_null(strstr(why, "guest addresses wrap"));
	t.regions[1].guest_phys_addr = 0x100000;
	t.regions[1].userspace_addr = ~0ULL - 0xfffe;
	assert_int_equal(vhost_user_mem_table_check(&t, &why), -EINVAL);
	assert_non_null(strstr(why, "user addresses wrap"));
	t.regions[1].userspace_addr = 0x20000000;
	t.regions[1].mmap_offset = (uint64_t)INT64_MAX;
	assert_int_equal(vhost_user_mem_table_check(&t, &why), -EINVAL);
	assert_non_null(strstr(why, "mmap range"));
	t.regions[1].mmap_offset = 0;
	t.nregions = 0;
	assert_int_equal(vhost_user_mem_table_check(&t, &why), -EINVAL);
	t.nregions = 9;
	assert_int_equal(vhost_user_mem_table_check(&t, &why), -EINVAL);
	assert_non_null(strstr(why, "more than 8"));
}

/* --- backend --- */

struct fake_dev {
	struct vhost_user_backend *be;
	struct vuf f;
	bool running[2];
	unsigned int started, stopped, kicks;
	uint8_t config[VHOST_USER_CONFIG_MAX];
	int set_config_ret;
	uint8_t last_out[64];
};

static struct fake_dev dev;

static void dev_ring_started(void *ctx, unsigned int q)
{
	struct fake_dev *d = ctx;

	assert_non_null(vhost_user_backend_vq(d->be, q));
	assert_true(vhost_user_backend_kick_fd(d->be, q) >= 0);
	d->running[q] = true;
	d->started++;
}

static void dev_ring_stopped(void *ctx, unsigned int q)
{
	struct fake_dev *d = ctx;

	d->running[q] = false;
	d->stopped++;
}

/* Echo: what the driver wrote comes back in its writable buffers, reversed. */
static int dev_kick(void *ctx, unsigned int q)
{
	struct fake_dev *d = ctx;
	struct virtq *vq = vhost_user_backend_vq(d->be, q);
	struct iovec iov[16];
	struct virtq_elem elem;

	d->kicks++;
	virtq_elem_init(&elem, iov, 16);
	while (virtq_pop(vq, &elem) == 1) {
		uint8_t buf[64], rev[64];
		size_t n = iov_to_buf(elem.iov, elem.out_num, buf, sizeof(buf));

		memcpy(d->last_out, buf, n);
		for (size_t i = 0; i < n; i++)
			rev[i] = buf[n - 1 - i];
		n = iov_from_buf(elem.iov + elem.out_num, elem.in_num, rev, n);
		virtq_push(vq, elem.head, (uint32_t)n);
	}
	vhost_user_backend_notify(d->be, q);
	return 0;
}

static int dev_get_config(void *ctx, uint32_t offset, void *buf, uint32_t len)
{
	struct fake_dev *d = ctx;

	memcpy(buf, d->config + offset, len);
	return 0;
}

static int dev_set_config(void *ctx, uint32_t offset, const void *buf, uint32_t len, uint32_t flags)
{
	struct fake_dev *d = ctx;

	(void)flags;
	if (d->set_config_ret)
		return d->set_config_ret;
	memcpy(d->config + offset, buf, len);
	return 0;
}

static const struct vhost_user_device_ops dev_ops = {
	.features = FEATURES,
	.protocol_features = PROTO_ALL,
	.num_queues = 2,
	.queue_size_max = 256,
	.ring_started = dev_ring_started,
	.ring_stopped = dev_ring_stopped,
	.kick = dev_kick,
	.get_config = dev_get_config,
	.set_config = dev_set_config,
};

static int pump_backend(void *ctx)
{
	struct fake_dev *d = ctx;

	return vhost_user_backend_handle(d->be);
}

static void connect_dev(struct fake_dev *d, uint64_t mmap_offset)
{
	memset(d, 0, sizeof(*d));
	vuf_init(&d->f, RAM_SIZE, mmap_offset);
	fcntl(d->f.peer, F_SETFL, O_NONBLOCK);
	d->be = vhost_user_backend_new(d->f.peer, &dev_ops, d, "test");
	assert_non_null(d->be);
	d->f.peer = -1;
	d->f.pump = pump_backend;
	d->f.ctx = d;
}

static void disconnect_dev(struct fake_dev *d)
{
	vhost_user_backend_free(d->be);
	d->be = NULL;
	vuf_destroy(&d->f);
}

static int backend_setup(void **state)
{
	(void)state;
	connect_dev(&dev, 0);
	return 0;
}

static int backend_teardown(void **state)
{
	(void)state;
	disconnect_dev(&dev);
	return 0;
}

/* One request-response through the echo device on queue q. */
static void expect_echo(struct fake_dev *d, unsigned int q, const char *text)
{
	struct vuf *f = &d->f;
	uint64_t out = vuf_alloc(f, 16), in = vuf_alloc(f, 16);
	struct vuf_buf bufs[2] = { { out, (uint32_t)strlen(text), false }, { in, 16, true } };
	uint32_t id, len;
	uint16_t head;

	memcpy(vuf_ptr(f, out), text, strlen(text));
	head = vuf_offer(f, q, bufs, 2);
	vuf_kick(f, q);
	assert_int_equal(vhost_user_backend_kick(d->be, q), 0);
	assert_true(vuf_next_used(f, q, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, strlen(text));
	for (size_t i = 0; i < len; i++)
		assert_int_equal(((char *)vuf_ptr(f, in))[i], text[len - 1 - i]);
	assert_true(vuf_interrupted(f, q));
}

static void test_negotiation(void **state)
{
	struct vuf *f = &dev.f;
	struct vhost_user_msg reply;
	uint64_t u = 1ULL << VIRTIO_NET_F_MRG_RXBUF;

	(void)state;
	assert_int_equal(vuf_get_u64(f, VHOST_USER_GET_FEATURES), FEATURES | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES));
	assert_int_equal(vuf_get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES), PROTO_ALL);
	assert_int_equal(vuf_get_u64(f, VHOST_USER_GET_QUEUE_NUM), 2);
	assert_int_equal(vuf_get_u64(f, VHOST_USER_GET_MAX_MEM_SLOTS), VHOST_USER_MAX_REGIONS);
	assert_int_equal(vuf_set_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, PROTO_ALL), 0);
	/* REPLY_ACK: 0 for a request that worked. */
	assert_int_equal(vuf_send(f, VHOST_USER_SET_OWNER, VHOST_USER_FLAG_NEED_REPLY, NULL, 0, NULL, 0), 0);
	assert_int_equal(f->pump_err, 0);
	assert_int_equal(vuf_reply(f, &reply), 0);
	assert_int_equal(reply.hdr.request, VHOST_USER_SET_OWNER);
	assert_int_equal(reply.payload.u64, 0);
	/* A bit never offered: refused with a non-zero ack, and the connection is broken for good. */
	assert_int_equal(vuf_send(f, VHOST_USER_SET_FEATURES, VHOST_USER_FLAG_NEED_REPLY, &u, sizeof(u), NULL, 0), 0);
	assert_int_equal(f->pump_err, -EINVAL);
	assert_int_equal(vuf_reply(f, &reply), 0);
	assert_int_not_equal(reply.payload.u64, 0);
	assert_int_equal(vuf_send(f, VHOST_USER_GET_FEATURES, 0, NULL, 0, NULL, 0), 0);
	assert_int_equal(f->pump_err, -EPROTO);
	assert_int_equal(vuf_reply(f, &reply), -EAGAIN);
}

static void test_protocol_features_refused(void **state)
{
	(void)state;
	assert_int_equal(vuf_set_u64(&dev.f, VHOST_USER_SET_PROTOCOL_FEATURES, 1ULL << VHOST_USER_PROTOCOL_F_RARP),
			 -EINVAL);
}

static void test_ring_runs(void **state)
{
	struct vhost_user_msg reply;
	struct vhost_vring_state s = { .index = 1 };

	(void)state;
	assert_int_equal(vuf_start(&dev.f, FEATURES, PROTO_ALL, 2, QSIZE), 0);
	assert_true(dev.running[0] && dev.running[1]);
	expect_echo(&dev, 1, "hello");
	expect_echo(&dev, 1, "world!");
	expect_echo(&dev, 0, "q0");
	/* GET_VRING_BASE stops the ring and says where to resume. */
	assert_int_equal(vuf_send(&dev.f, VHOST_USER_GET_VRING_BASE, 0, &s, sizeof(s), NULL, 0), 0);
	assert_int_equal(dev.f.pump_err, 0);
	assert_int_equal(vuf_reply(&dev.f, &reply), 0);
	assert_int_equal(reply.payload.state.index, 1);
	assert_int_equal(reply.payload.state.num, 2);
	assert_false(dev.running[1]);
	assert_null(vhost_user_backend_vq(dev.be, 1));
	/* A kick for a stopped ring is ignored. */
	assert_int_equal(vhost_user_backend_kick(dev.be, 1), 0);
}

/* With PROTOCOL_FEATURES a ring waits for SET_VRING_ENABLE; disabling stops
 * it and enabling resumes at the same index. */
static void test_ring_enable(void **state)
{
	struct vuf *f = &dev.f;

	(void)state;
	assert_int_equal(vuf_set_u64(f, VHOST_USER_SET_FEATURES, FEATURES | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)), 0);
	assert_int_equal(vuf_send_mem_table(f), 0);
	assert_int_equal(vuf_setup_ring(f, 0, QSIZE), 0);
	assert_false(dev.running[0]);
	assert_int_equal(vuf_set_state(f, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	assert_true(dev.running[0]);
	expect_echo(&dev, 0, "one");
	assert_int_equal(vuf_set_state(f, VHOST_USER_SET_VRING_ENABLE, 0, 0), 0);
	assert_false(dev.running[0]);
	assert_int_equal(vuf_set_state(f, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	expect_echo(&dev, 0, "two");
	assert_int_equal(vuf_set_state(f, VHOST_USER_SET_VRING_ENABLE, 0, 2), -EINVAL);
}

/* Without PROTOCOL_FEATURES a ring runs as soon as it is set up. */
static void test_ring_without_protocol_features(void **state)
{
	(void)state;
	assert_int_equal(vuf_set_u64(&dev.f, VHOST_USER_SET_FEATURES, FEATURES), 0);
	assert_int_equal(vuf_send_mem_table(&dev.f), 0);
	assert_int_equal(vuf_setup_ring(&dev.f, 1, QSIZE), 0);
	assert_true(dev.running[1]);
	expect_echo(&dev, 1, "legacy");
}

/* The region starts 0x800 bytes into its file: mmap needs a page-aligned offset. */
static void test_unaligned_mmap_offset(void **state)
{
	(void)state;
	disconnect_dev(&dev);
	connect_dev(&dev, 0x800);
	assert_int_equal(vuf_start(&dev.f, FEATURES, PROTO_ALL, 2, QSIZE), 0);
	expect_echo(&dev, 0, "offset");
	expect_echo(&dev, 1, "by 2 KiB");
}

/* Two regions; the ring sits in the second, at a high guest address the
 * frontend maps at yet another user address. */
static void test_two_regions(void **state)
{
	struct vuf *f = &dev.f;
	struct vhost_user_mem_table t = { .nregions = 2 };
	const uint64_t half = RAM_SIZE / 2, high = 0x100000000ULL;
	int fds[2] = { f->memfd, f->memfd };
	struct vhost_vring_addr a = { .index = 0 };
	uint64_t u = 0, desc = half + 0x1000;
	struct vring_desc *table = (struct vring_desc *)(f->ram + desc);
	struct vring_avail *avail = (struct vring_avail *)(f->ram + desc + 16 * QSIZE);
	struct vring_used *used = (struct vring_used *)(f->ram + desc + 0x1000);
	uint64_t buf = high + 0x8000;

	(void)state;
	t.regions[0] = (struct vhost_user_mem_region){ 0, half, (uintptr_t)f->ram, 0 };
	t.regions[1] = (struct vhost_user_mem_region){ high, half, (uintptr_t)f->ram + half, half };
	assert_int_equal(vuf_set_u64(f, VHOST_USER_SET_FEATURES, FEATURES), 0);
	assert_int_equal(vuf_send(f, VHOST_USER_SET_MEM_TABLE, 0, &t, 8 + 2 * 32, fds, 2), 0);
	assert_int_equal(f->pump_err, 0);
	assert_int_equal(vuf_set_state(f, VHOST_USER_SET_VRING_NUM, 0, QSIZE), 0);
	a.desc_user_addr = (uintptr_t)table;
	a.avail_user_addr = (uintptr_t)avail;
	a.used_user_addr = (uintptr_t)used;
	assert_int_equal(vuf_send(f, VHOST_USER_SET_VRING_ADDR, 0, &a, sizeof(a), NULL, 0), 0);
	assert_int_equal(f->pump_err, 0);
	f->q[0].kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_int_equal(vuf_send(f, VHOST_USER_SET_VRING_KICK, 0, &u, 8, &f->q[0].kick, 1), 0);
	assert_true(dev.running[0]);
	/* A driver's chain whose buffers are in the high region too. */
	memcpy(f->ram + half + 0x8000, "hi", 2);
	table[0] = (struct vring_desc){ .addr = buf, .len = 2, .flags = VRING_DESC_F_NEXT, .next = 1 };
	table[1] = (struct vring_desc){ .addr = buf + 0x100, .len = 8, .flags = VRING_DESC_F_WRITE };
	avail->ring[0] = 0;
	avail->idx = 1;
	assert_int_equal(write(f->q[0].kick, &(uint64_t){ 1 }, 8), 8);
	assert_int_equal(vhost_user_backend_kick(dev.be, 0), 0);
	assert_int_equal(used->idx, 1);
	assert_int_equal(used->ring[0].len, 2);
	assert_memory_equal(f->ram + half + 0x8100, "ih", 2);
}

static void test_vring_addr_outside_table(void **state)
{
	struct vuf *f = &dev.f;
	struct vhost_vring_addr a = { .index = 0, .desc_user_addr = (uintptr_t)f->ram,
				      .avail_user_addr = (uintptr_t)f->ram + RAM_SIZE, .used_user_addr = (uintptr_t)f->ram };

	(void)state;
	assert_int_equal(vuf_send_mem_table(f), 0);
	assert_int_equal(vuf_send(f, VHOST_USER_SET_VRING_ADDR, 0, &a, sizeof(a), NULL, 0), 0);
	assert_int_equal(f->pump_err, -EFAULT);
}

static void test_vring_addr_before_table(void **state)
{
	struct vhost_vring_addr a = { .index = 0 };

	(void)state;
	assert_int_equal(vuf_send(&dev.f, VHOST_USER_SET_VRING_ADDR, 0, &a, sizeof(a), NULL, 0), 0);
	assert_int_equal(dev.f.pump_err, -EINVAL);
}

/* The ring's start translates, but its end runs past the region. */
static void test_ring_crosses_region_end(void **state)
{
	struct vuf *f = &dev.f;
	struct vhost_vring_addr a = { .index = 0, .desc_user_addr = (uintptr_t)f->ram + RAM_SIZE - 16,
				      .avail_user_addr = (uintptr_t)f->ram, .used_user_addr = (uintptr_t)f->ram + 0x1000 };
	uint64_t u = 0;
	int kick = eventfd(0, EFD_CLOEXEC);

	(void)state;
	assert_int_equal(vuf_set_u64(f, VHOST_USER_SET_FEATURES, FEATURES), 0);
	assert_int_equal(vuf_send_mem_table(f), 0);
	assert_int_equal(vuf_set_state(f, VHOST_USER_SET_VRING_NUM, 0, QSIZE), 0);
	assert_int_equal(vuf_send(f, VHOST_USER_SET_VRING_ADDR, 0, &a, sizeof(a), NULL, 0), 0);
	assert_int_equal(f->pump_err, 0);
	assert_int_equal(vuf_send(f, VHOST_USER_SET_VRING_KICK, 0, &u, 8, &kick, 1), 0);
	assert_int_equal(f->pump_err, -EFAULT);
	assert_false(dev.running[0]);
	close(kick);
}

static void test_ring_size_refused(void **state)
{
	static const unsigned int bad[] = { 0, 3, 100, 512, 65536 };

	(void)state;
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		disconnect_dev(&dev);
		connect_dev(&dev, 0);
		assert_int_equal(vuf_set_state(&dev.f, VHOST_USER_SET_VRING_NUM, 0, bad[i]), -EINVAL);
	}
	disconnect_dev(&dev);
	connect_dev(&dev, 0);
	assert_int_equal(vuf_set_state(&dev.f, VHOST_USER_SET_VRING_NUM, 0, 256), 0);
	assert_int_equal(vuf_set_state(&dev.f, VHOST_USER_SET_VRING_NUM, 2, 16), -EINVAL);
}

static void test_vring_base_refused(void **state)
{
	(void)state;
	assert_int_equal(vuf_set_state(&dev.f, VHOST_USER_SET_VRING_BASE, 0, 0x10000), -EINVAL);
}

/* A memory fd shorter than the region would SIGBUS the backend when touched. */
static void test_region_past_end_of_file(void **state)
{
	struct vhost_user_mem_table t;

	(void)state;
	vuf_mem_table(&dev.f, &t);
	t.regions[0].memory_size += 0x1000;
	assert_int_equal(vuf_send(&dev.f, VHOST_USER_SET_MEM_TABLE, 0, &t, 8 + 32, &dev.f.memfd, 1), 0);
	assert_int_equal(dev.f.pump_err, -EINVAL);
}

static void test_region_fd_not_a_file(void **state)
{
	struct vhost_user_mem_table t;
	int efd = eventfd(0, EFD_CLOEXEC);

	(void)state;
	vuf_mem_table(&dev.f, &t);
	assert_int_equal(vuf_send(&dev.f, VHOST_USER_SET_MEM_TABLE, 0, &t, 8 + 32, &efd, 1), 0);
	assert_int_equal(dev.f.pump_err, -EINVAL);
	close(efd);
}

static void test_overlapping_table_refused(void **state)
{
	struct vhost_user_mem_table t;
	int fds[2] = { dev.f.memfd, dev.f.memfd };

	(void)state;
	vuf_mem_table(&dev.f, &t);
	t.nregions = 2;
	t.regions[1] = t.regions[0];
	t.regions[1].userspace_addr += RAM_SIZE;
	assert_int_equal(vuf_send(&dev.f, VHOST_USER_SET_MEM_TABLE, 0, &t, 8 + 64, fds, 2), 0);
	assert_int_equal(dev.f.pump_err, -EINVAL);
}

/* A new memory table while rings run: they stop, move to it and go on. */
static void test_mem_table_replaced_while_running(void **state)
{
	(void)state;
	assert_int_equal(vuf_start(&dev.f, FEATURES, PROTO_ALL, 2, QSIZE), 0);
	expect_echo(&dev, 1, "before");
	assert_int_equal(vuf_send_mem_table(&dev.f), 0);
	assert_true(dev.running[1]);
	expect_echo(&dev, 1, "after");
	assert_int_equal(dev.started, 4);
	assert_int_equal(dev.stopped, 2);
}

static void test_kick_fd_not_an_eventfd(void **state)
{
	struct vuf *f = &dev.f;
	int pipefd[2];
	uint64_t u = 0;

	(void)state;
	assert_int_equal(vuf_start(f, FEATURES, PROTO_ALL, 1, QSIZE), 0);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	assert_int_equal(vuf_send(f, VHOST_USER_SET_VRING_KICK, 0, &u, 8, &pipefd[0], 1), 0);
	assert_true(dev.running[0]);
	close(pipefd[1]);  /* the read end now reads 0 bytes forever */
	assert_int_equal(vhost_user_backend_kick(dev.be, 0), -EIO);
	close(pipefd[0]);
}

static void test_config_space(void **state)
{
	struct vuf *f = &dev.f;
	struct vhost_user_config c = { .offset = 4, .size = 4 };
	struct vhost_user_msg reply;

	(void)state;
	memcpy(dev.config, "0123456789", 10);
	assert_int_equal(vuf_set_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, PROTO_ALL), 0);
	assert_int_equal(vuf_send(f, VHOST_USER_GET_CONFIG, 0, &c, VHOST_USER_CONFIG_HDR_SIZE + 4, NULL, 0), 0);
	assert_int_equal(vuf_reply(f, &reply), 0);
	assert_int_equal(reply.hdr.size, VHOST_USER_CONFIG_HDR_SIZE + 4);
	assert_memory_equal(reply.payload.config.payload, "4567", 4);
	c = (struct vhost_user_config){ .offset = 0, .size = 2, .payload = "ab" };
	assert_int_equal(vuf_send(f, VHOST_USER_SET_CONFIG, 0, &c, VHOST_USER_CONFIG_HDR_SIZE + 2, NULL, 0), 0);
	assert_int_equal(f->pump_err, 0);
	assert_memory_equal(dev.config, "ab23", 4);
	/* The device refuses a write: a non-zero ack, but the connection lives on. */
	dev.set_config_ret = -EPERM;
	assert_int_equal(vuf_send(f, VHOST_USER_SET_CONFIG, VHOST_USER_FLAG_NEED_REPLY, &c,
				  VHOST_USER_CONFIG_HDR_SIZE + 2, NULL, 0), 0);
	assert_int_equal(f->pump_err, 0);
	assert_int_equal(vuf_reply(f, &reply), 0);
	assert_int_not_equal(reply.payload.u64, 0);
	/* Beyond the 256-byte space: refused. */
	c = (struct vhost_user_config){ .offset = 250, .size = 8 };
	assert_int_equal(vuf_send(f, VHOST_USER_GET_CONFIG, 0, &c, VHOST_USER_CONFIG_HDR_SIZE + 8, NULL, 0), 0);
	assert_int_equal(f->pump_err, -EINVAL);
}

static void test_config_not_negotiated(void **state)
{
	struct vhost_user_config c = { .offset = 0, .size = 4 };

	(void)state;
	assert_int_equal(vuf_send(&dev.f, VHOST_USER_GET_CONFIG, 0, &c, VHOST_USER_CONFIG_HDR_SIZE + 4, NULL, 0), 0);
	assert_int_equal(dev.f.pump_err, -EINVAL);
}

static void test_unnegotiated_requests_refused(void **state)
{
	uint64_t mtu = 1500;

	(void)state;
	assert_int_equal(vuf_set_u64(&dev.f, VHOST_USER_NET_SET_MTU, mtu), -EINVAL);
}

static void test_reply_from_frontend_refused(void **state)
{
	uint64_t u = 0;

	(void)state;
	assert_int_equal(vuf_send(&dev.f, VHOST_USER_SET_FEATURES, VHOST_USER_FLAG_REPLY, &u, 8, NULL, 0), 0);
	assert_int_equal(dev.f.pump_err, -EPROTO);
}

static void test_frontend_disconnects(void **state)
{
	(void)state;
	close(dev.f.sock);
	dev.f.sock = -1;
	assert_int_equal(vhost_user_backend_handle(dev.be), -ECONNRESET);
}

/* Fifty connections, each with a memory table and running rings, then gone:
 * every mapping and fd the backend took is released. */
static void test_no_fd_leaks(void **state)
{
	unsigned int before;

	(void)state;
	disconnect_dev(&dev);
	before = vuf_count_fds();
	for (unsigned int i = 0; i < 50; i++) {
		connect_dev(&dev, i % 2 ? 0x800 : 0);
		assert_int_equal(vuf_start(&dev.f, FEATURES, PROTO_ALL, 2, QSIZE), 0);
		expect_echo(&dev, 1, "leak?");
		if (i % 3 == 0)
			assert_int_equal(vuf_send_mem_table(&dev.f), 0);
		disconnect_dev(&dev);
	}
	assert_int_equal(vuf_count_fds(), before);
	connect_dev(&dev, 0);
}

#define C(f) cmocka_unit_test_setup_teardown(f, codec_setup, codec_teardown)
#define B(f) cmocka_unit_test_setup_teardown(f, backend_setup, backend_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		C(test_roundtrip_with_fds),
		C(test_roundtrip_payloads),
		C(test_short_reads),
		C(test_refuse_bad_version),
		C(test_refuse_size_over_union),
		C(test_refuse_wrong_payload_size),
		C(test_refuse_too_many_fds),
		C(test_refuse_missing_fd),
		C(test_refuse_fd_where_forbidden),
		C(test_peer_closes),
		C(test_peer_stalls),
		cmocka_unit_test(test_mem_table_check),
		B(test_negotiation),
		B(test_protocol_features_refused),
		B(test_ring_runs),
		B(test_ring_enable),
		B(test_ring_without_protocol_features),
		B(test_unaligned_mmap_offset),
		B(test_two_regions),
		B(test_vring_addr_outside_table),
		B(test_vring_addr_before_table),
		B(test_ring_crosses_region_end),
		B(test_ring_size_refused),
		B(test_vring_base_refused),
		B(test_region_past_end_of_file),
		B(test_region_fd_not_a_file),
		B(test_overlapping_table_refused),
		B(test_mem_table_replaced_while_running),
		B(test_kick_fd_not_an_eventfd),
		B(test_config_space),
		B(test_config_not_negotiated),
		B(test_unnegotiated_requests_refused),
		B(test_reply_from_frontend_refused),
		B(test_frontend_disconnects),
		B(test_no_fd_leaks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
