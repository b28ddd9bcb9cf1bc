/* libFuzzer target for kvio's vhost-user frontend (src/vhost/vhost_user_frontend.c):
 * the input encodes what a hostile backend writes on the socket (the records
 * below), all of it before it reads a single request, then shuts down its
 * sending side, so every read the frontend makes ends (in data or
 * end-of-file) and no input can hang it. The frontend then runs what a device does with a backend:
 * negotiation, SET_FEATURES, the memory table (a memfd guest RAM), a ring
 * started, disabled, enabled and stopped, config space read; every request is
 * made whatever the one before returned, so the rest of the input answers it.
 *
 * Input: [mode][fds][fd record] then records, each adding to the backend's bytes:
 *  0x00-0x7f [size] payload...: a reply header, request = the tag, flags
 *    VERSION|REPLY, size as given, then that many payload bytes (the
 *    shortcut to well-formed replies: the fuzzer only has to find the id and
 *    the size);
 *  0x80-0xbf [flags] [size] payload...: the same with request = tag - 0x80 and any flags;
 *  0xc0-0xff [len] bytes...: len raw bytes (anything: half a header, a header
 *    announcing more than any payload, a whole stream written by hand).
 *  An input ending inside a record cuts the stream short there.
 *  mode bit 0 set: the frontend connects by path (vhost_user_frontend_connect,
 *    the full negotiation): a helper thread accepts on a UNIX socket in a
 *    temporary directory, writes the bytes, shuts down its sending side and
 *    reads the requests until the frontend hangs up.
 *  mode bit 0 clear: no thread and no negotiation. The frontend's connect
 *    only works on a path, so the target sets fe.sock to one end of a
 *    socketpair right after vhost_user_frontend_init, and fe.features /
 *    fe.protocol_features as negotiation would have (mode bit 1: the
 *    PROTOCOL_FEATURES bit offered; bits 2-4: REPLY_ACK, MQ, CONFIG agreed);
 *    the bytes are written into the other end before the first request.
 *  fds: low nibble mod 10 eventfds (9 is more than a message may carry)
 *    attached to the first byte of record number "fd record"; high nibble
 *    picks the GET_CONFIG length (4 + 16 * n bytes; 15: 257, one too many).
 * The frontend must not crash (ASan, UBSan), must leave *next_avail and the
 * config buffer alone when it fails, and must keep no descriptor it was sent
 * (counted after every input). */
#include <dirent.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/guest_mem.h"
#include "util/log.h"
#include "vhost/vhost_user.h"
#include "vhost/vhost_user_frontend.h"
#include "virtio/queue.h"

#define RAM_SIZE (1u << 20)
#define QSIZE 16
#define STREAM_MAX (64u << 10)  /* fits in the socket buffer, so writing it never blocks */
#define FEATURES ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) | \
		  (1ULL << VIRTIO_RING_F_INDIRECT_DESC))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool ready;
static struct guest_mem mem;
static struct virtq vq;
static char dir[64], sock_path[108];
static int listen_fd = -1;
static unsigned int baseline_fds;

/* The backend's side of one input. */
struct backend {
	int sock;
	uint8_t bytes[STREAM_MAX];
	size_t len, fd_offset;
	unsigned int nfds;
};

static struct backend backend;

static void put(struct backend *b, const void *bytes, size_t len)
{
	if (len > STREAM_MAX - b->len)
		len = STREAM_MAX - b->len;
	memcpy(b->bytes + b->len, bytes, len);
	b->len += len;
}

/* Turn the records into the byte stream; fds go with record number fd_record. */
static void build_stream(struct backend *b, const uint8_t *data, size_t size, unsigned int fd_record)
{
	size_t at = 0;

	b->len = 0;
	b->fd_offset = SIZE_MAX;
	for (unsigned int record = 0; at < size && b->len < STREAM_MAX; record++) {
		uint8_t tag = data[at++];
		size_t len;

		if (record == fd_record)
			b->fd_offset = b->len;
		if (tag < 0xc0) {
			struct vhost_user_hdr hdr = { .request = tag & 0x7f,
						      .flags = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY };

			if (tag >= 0x80 && at < size)
				hdr.flags = data[at++];
			if (at < size)
				hdr.size = data[at++];
			put(b, &hdr, sizeof(hdr));
			len = hdr.size;
		} else {
			len = at < size ? data[at++] : 0;
		}
		if (len > size - at)
			len = size - at;
		put(b, data + at, len);
		at += len;
	}
}

/* Descriptors of the kinds this target deals in (libFuzzer's own threads open
 * files now and then, never these): eventfds, sockets, the guest RAM memfd. */
static unsigned int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned int n = 0;

	if (!d)
		abort();
	while ((e = readdir(d))) {
		char link[64];
		ssize_t len = readlinkat(dirfd(d), e->d_name, link, sizeof(link) - 1);

		if (len <= 0)
			continue;
		link[len] = 0;
		if (!strncmp(link, "anon_inode:[eventfd]", 20) || !strncmp(link, "socket:", 7) ||
		    strstr(link, "memfd:kvio-guest-ram"))
			n++;
	}
	closedir(d);
	return n;
}

static void cleanup(void)
{
	if (listen_fd >= 0)
		close(listen_fd);
	unlink(sock_path);
	rmdir(dir);
}

static void init(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	log_set_level(getenv("FUZZ_VERBOSE") ? LOG_DEBUG : LOG_ERROR);
	if (guest_mem_create(&mem, RAM_SIZE, true))
		abort();
	if (virtq_init(&vq, &mem, QSIZE, 0x1000, 0x2000, 0x3000, true, true))
		abort();
	snprintf(dir, sizeof(dir), "/tmp/kvio-fuzz-vuf-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(sock_path, sizeof(sock_path), "%s/backend.sock", dir);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock_path);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(listen_fd, 4) < 0)
		abort();
	atexit(cleanup);
	baseline_fds = count_fds();
	ready = true;
}

static void send_part(int sock, const uint8_t *bytes, size_t len, unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 10)];
		struct cmsghdr align;
	} ctrl;
	int fds[10];
	struct iovec iov = { .iov_base = (void *)bytes, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (!len)
		return;
	memset(&ctrl, 0, sizeof(ctrl));
	for (unsigned int i = 0; i < nfds; i++)
		if ((fds[i] = eventfd(0, EFD_CLOEXEC)) < 0)
			abort();
	if (nfds) {
		struct cmsghdr *c;

		mh.msg_control = ctrl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	/* The frontend may have hung up already (path mode): no SIGPIPE. */
	(void)sendmsg(sock, &mh, MSG_NOSIGNAL);
	for (unsigned int i = 0; i < nfds; i++)
		close(fds[i]);  /* in flight they belong to the socket; the frontend must close its copies */
}

/* All the bytes, the fds riding on the byte at fd_offset; then end-of-file. */
static void backend_write(const struct backend *b)
{
	size_t split = b->fd_offset < b->len ? b->fd_offset : b->len;

	send_part(b->sock, b->bytes, split, 0);
	send_part(b->sock, b->bytes + split, b->len - split, b->nfds);
	shutdown(b->sock, SHUT_WR);
}

/* Path mode: accept the frontend, write, then read its requests until it hangs up. */
static void *backend_thread(void *arg)
{
	struct backend *b = arg;
	struct pollfd p = { .fd = listen_fd, .events = POLLIN };
	uint8_t sink[4096];

	/* The frontend connects right away; if it could not, give up soon. */
	if (poll(&p, 1, 2000) != 1)
		return NULL;
	b->sock = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (b->sock < 0)
		return NULL;
	backend_write(b);
	/* Requests carry the memfd (SET_MEM_TABLE) and eventfds: recvmsg without
	 * control space drops them; the kernel closes what it drops. */
	while (recv(b->sock, sink, sizeof(sink), 0) > 0)
		;
	close(b->sock);
	return NULL;
}

static void check(int err)
{
	if (err > 0)
		abort();  /* 0 or -errno only */
}

/* What a device does with a connected backend. */
static void run_requests(struct vhost_user_frontend *fe, uint32_t config_len)
{
	int kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	uint8_t config[VHOST_USER_CONFIG_MAX];  /* 257 bytes asked: writing them all would overflow (ASan) */
	uint16_t next_avail;
	int err;

	if (kick < 0 || call < 0)
		abort();
	check(vhost_user_frontend_set_features(fe, FEATURES | (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)));
	check(vhost_user_frontend_set_mem_table(fe, &mem));
	check(vhost_user_frontend_start_ring(fe, 0, &vq, kick, call));
	check(vhost_user_frontend_enable_ring(fe, 0, false));
	check(vhost_user_frontend_enable_ring(fe, 0, true));

	memset(config, 0xEE, sizeof(config));
	err = vhost_user_frontend_get_config(fe, 0, config, config_len);
	check(err);
	for (unsigned int i = err ? 0 : config_len; i < sizeof(config); i++)
		if (config[i] != 0xEE)
			abort();  /* written where it had no business, or on failure */

	next_avail = 0xBEEF;
	err = vhost_user_frontend_stop_ring(fe, 0, &next_avail);
	check(err);
	if (err && next_avail != 0xBEEF)
		abort();
	next_avail = 0xBEEF;
	err = vhost_user_frontend_stop_ring(fe, 1, &next_avail);
	check(err);
	if (err && next_avail != 0xBEEF)
		abort();
	close(kick);
	close(call);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vhost_user_frontend fe;
	struct backend *b = &backend;
	uint8_t mode;
	uint32_t config_len;

	if (!ready)
		init();
	if (size < 3)
		return 0;
	mode = data[0];
	b->nfds = (data[1] & 0xF) % 10;
	config_len = (data[1] >> 4) == 0xF ? VHOST_USER_CONFIG_MAX + 1 : 4 + 16u * (data[1] >> 4);  /* 257: refused */
	build_stream(b, data + 3, size - 3, data[2]);

	if (mode & 1) {
		pthread_t thread;
		const char *why;

		b->sock = -1;
		vhost_user_frontend_init(&fe, sock_path);
		if (pthread_create(&thread, NULL, backend_thread, b))
			abort();
		if (vhost_user_frontend_connect(&fe, &why) == 0) {
			if (!vhost_user_frontend_connected(&fe) || fe.max_queues > 0xFFFF)
				abort();
			run_requests(&fe, config_len);
		} else if (vhost_user_frontend_connected(&fe)) {
			abort();  /* a failed connect leaves no connection */
		}
		vhost_user_frontend_close(&fe);
		pthread_join(thread, NULL);
	} else {
		int sv[2], sndbuf = 4 * STREAM_MAX;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			abort();
		setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		b->sock = sv[1];
		backend_write(b);
		/* What vhost_user_frontend_connect would have set up; the path is never used. */
		vhost_user_frontend_init(&fe, "fuzz-socketpair");
		fe.sock = sv[0];
		fe.features = FEATURES | ((mode & 2) ? 1ULL << VHOST_USER_F_PROTOCOL_FEATURES : 0);
		fe.protocol_features = ((mode & 4) ? 1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK : 0) |
				       ((mode & 8) ? 1ULL << VHOST_USER_PROTOCOL_F_MQ : 0) |
				       ((mode & 16) ? 1ULL << VHOST_USER_PROTOCOL_F_CONFIG : 0);
		run_requests(&fe, config_len);
		vhost_user_frontend_close(&fe);  /* closes sv[0] */
		close(sv[1]);  /* with the requests unread, and any fd they carried */
	}
	if (count_fds() != baseline_fds)
		abort();  /* the frontend kept a descriptor */
	return 0;
}
