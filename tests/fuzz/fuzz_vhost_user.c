/* libFuzzer target for the vhost-user backend library: the input is a
 * frontend's side of a connection. Up to 4 KiB of it first fill the start of
 * a 64 KiB memfd (guest RAM, so rings and buffers can hold anything); then
 * come records of [fd count][12-byte header][payload], each checked by
 * vhost_user_msg_check and applied by vhost_user_backend_process, as
 * vhost_user_recv would hand them over. The fds are what a frontend could
 * pass: dups of the memfd for memory requests, eventfds for the rest. After
 * every message each running ring is kicked, so the device pops from rings
 * the input laid out. The backend must stay inside what it mapped (ASan),
 * never abort, and close every fd it was given (counted after each input). */
#include <dirent.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"
#include "vhost/vhost_user_backend.h"

#define RAM_SIZE 0x10000u
#define RAM_PREFIX_MAX 4096u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static uint8_t *ram;
static unsigned int baseline_fds;
static struct vhost_user_backend *be;

/* Descriptors of the kinds this target hands out (libFuzzer's own threads
 * open files now and then, never these): eventfds, sockets, the memfd. */
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
		    strstr(link, "memfd:fuzz-ram"))
			n++;
	}
	closedir(d);
	return n;
}

static void ring_started(void *dev, unsigned int q)
{
	(void)dev, (void)q;
}

static void ring_stopped(void *dev, unsigned int q)
{
	(void)dev, (void)q;
}

/* Take every chain, write into its writable buffers, give it back. */
static int kick(void *dev, unsigned int q)
{
	struct virtq *vq = vhost_user_backend_vq(be, q);
	struct iovec iov[64];
	struct virtq_elem elem;

	(void)dev;
	virtq_elem_init(&elem, iov, 64);
	for (unsigned int n = 0; n < 2 * VIRTQ_MAX_SIZE && virtq_pop(vq, &elem) == 1; n++) {
		for (unsigned int i = elem.out_num; i < elem.out_num + elem.in_num; i++)
			memset(iov[i].iov_base, 0xA5, iov[i].iov_len);
		virtq_push(vq, elem.head, elem.in_len);
	}
	vhost_user_backend_notify(be, q);
	return 0;
}

static int get_config(void *dev, uint32_t offset, void *buf, uint32_t len)
{
	(void)dev;
	memset(buf, (int)offset, len);
	return offset & 1 ? -EINVAL : 0;
}

static int set_config(void *dev, uint32_t offset, const void *buf, uint32_t len, uint32_t flags)
{
	(void)dev, (void)buf, (void)len, (void)flags;
	return offset & 1 ? -EPERM : 0;
}

static const struct vhost_user_device_ops ops = {
	.features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC),
	.protocol_features = (1ULL << VHOST_USER_PROTOCOL_F_MQ) | (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
			     (1ULL << VHOST_USER_PROTOCOL_F_CONFIG),
	.num_queues = 2,
	.queue_size_max = 256,
	.ring_started = ring_started,
	.ring_stopped = ring_stopped,
	.kick = kick,
	.get_config = get_config,
	.set_config = set_config,
};

static void init(void)
{
	log_set_level(getenv("FUZZ_VERBOSE") ? LOG_DEBUG : LOG_ERROR);
	memfd = memfd_create("fuzz-ram", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, RAM_SIZE) < 0)
		abort();
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (ram == MAP_FAILED)
		abort();
	baseline_fds = count_fds();
}

static bool memory_request(uint32_t request)
{
	return request == VHOST_USER_SET_MEM_TABLE || request == VHOST_USER_ADD_MEM_REG ||
	       request == VHOST_USER_SET_LOG_BASE;
}

static void drain(int sock)
{
	uint8_t buf[512];

	while (recv(sock, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t prefix, at;
	int sv[2];

	if (memfd < 0)
		init();
	if (size < 2)
		return 0;
	prefix = (data[0] | (size_t)data[1] << 8) % (RAM_PREFIX_MAX + 1);
	if (prefix > size - 2)
		prefix = size - 2;
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data + 2, prefix);
	at = 2 + prefix;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	be = vhost_user_backend_new(sv[1], &ops, NULL, "fuzz");
	if (!be)
		abort();

	while (size - at >= 1 + sizeof(struct vhost_user_hdr)) {
		struct vhost_user_msg msg;
		int fds[VHOST_USER_MAX_FDS];
		unsigned int nfds = data[at++] % (VHOST_USER_MAX_FDS + 2);
		size_t len;
		const char *why;

		memset(&msg, 0, sizeof(msg));
		memcpy(&msg.hdr, data + at, sizeof(msg.hdr));
		at += sizeof(msg.hdr);
		len = msg.hdr.size < size - at ? msg.hdr.size : size - at;
		if (len > VHOST_USER_PAYLOAD_MAX)
			len = VHOST_USER_PAYLOAD_MAX;
		memcpy(&msg.payload, data + at, len);
		at += len;
		/* What vhost_user_recv would do: refuse, and the connection ends. */
		if (vhost_user_msg_check(&msg, nfds, &why)) {
			log_debug("fuzz: %s refused: %s", vhost_user_request_name(msg.hdr.request), why);
			break;
		}
		for (unsigned int i = 0; i < nfds; i++) {
			fds[i] = memory_request(msg.hdr.request) ? dup(memfd) : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (fds[i] < 0)
				abort();
		}
		if (vhost_user_backend_process(be, &msg, fds, nfds))
			break;
		drain(sv[0]);
		for (unsigned int q = 0; q < ops.num_queues; q++) {
			int kick_fd = vhost_user_backend_kick_fd(be, q);

			if (kick_fd >= 0 && eventfd_write(kick_fd, 1) == 0 && vhost_user_backend_kick(be, q))
				break;
		}
	}

	vhost_user_backend_free(be);
	be = NULL;
	close(sv[0]);
	if (count_fds() != baseline_fds)
		abort();  /* the backend kept an fd it was given */
	return 0;
}
