/* vhost-user frontend: the requests kvio sends a backend process, each with
 * its reply (GET_*) or, with REPLY_ACK, its acknowledgement, so a refusal
 * shows up where it happened. The peer is untrusted: every reply goes through
 * the codec's checks, and one that never comes is a timeout, not a hang. */
#include "vhost/vhost_user_frontend.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/log.h"
#include "vhost/vhost_user.h"

#define WANTED_PROTOCOL_FEATURES                                                                     \
	((1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK) | (1ULL << VHOST_USER_PROTOCOL_F_MQ) |            \
	 (1ULL << VHOST_USER_PROTOCOL_F_CONFIG))

void vhost_user_frontend_init(struct vhost_user_frontend *fe, const char *path)
{
	memset(fe, 0, sizeof(*fe));
	fe->sock = -1;
	fe->stop_fd = -1;
	snprintf(fe->path, sizeof(fe->path), "%s", path);
	pthread_mutex_init(&fe->lock, NULL);
}

bool vhost_user_frontend_connected(const struct vhost_user_frontend *fe)
{
	return __atomic_load_n(&fe->sock, __ATOMIC_RELAXED) >= 0;
}

int vhost_user_frontend_fd(const struct vhost_user_frontend *fe)
{
	return fe->sock;
}

static bool has_protocol(const struct vhost_user_frontend *fe, unsigned int bit)
{
	return fe->protocol_features & (1ULL << bit);
}

static void set_payload_size(struct vhost_user_msg *msg, size_t size)
{
	msg->hdr.flags = VHOST_USER_VERSION;
	msg->hdr.size = (uint32_t)size;
}

/* Send msg; then read the reply into *reply (GET requests), or, when
 * REPLY_ACK is on, ask for an acknowledgement and check it. Caller holds the lock. */
static int transact(struct vhost_user_frontend *fe, struct vhost_user_msg *msg, const int *fds, unsigned int nfds,
		    struct vhost_user_msg *reply)
{
	struct vhost_user_msg ack;
	int got_fds[VHOST_USER_MAX_FDS];
	unsigned int nr_got = 0;
	const char *why = "";
	uint32_t request = msg->hdr.request;
	int err;

	if (fe->sock < 0)
		return -ENOTCONN;
	if (!reply && has_protocol(fe, VHOST_USER_PROTOCOL_F_REPLY_ACK)) {
		msg->hdr.flags |= VHOST_USER_FLAG_NEED_REPLY;
		reply = &ack;
	}
	err = vhost_user_send(fe->sock, msg, fds, nfds);
	if (err) {
		log_warn("vhost-user %s: %s: %s", fe->path, vhost_user_request_name(request), strerror(-err));
		shutdown(fe->sock, SHUT_RDWR);  /* maybe half sent: as below */
		return err;
	}
	if (!reply)
		return 0;
	err = vhost_user_recv(fe->sock, reply, got_fds, &nr_got, &why);
	for (unsigned int i = 0; i < nr_got; i++)
		close(got_fds[i]);  /* no reply kvio asks for carries a descriptor */
	if (err == -EAGAIN)
		err = -ETIMEDOUT;  /* SO_RCVTIMEO ran out: the backend stopped answering */
	if (!err && (reply->hdr.request != request || !(reply->hdr.flags & VHOST_USER_FLAG_REPLY) || nr_got)) {
		why = "the reply does not answer the request";
		err = -EPROTO;
	}
	if (err) {
		log_warn("vhost-user %s: %s: %s%s%s", fe->path, vhost_user_request_name(request), strerror(-err),
			 *why ? ": " : "", why);
		/* Out of step with the backend (a late or malformed reply may still
		 * be in the stream): drop the connection. shutdown, not close, so
		 * the watcher, polling this fd, sees the hang-up and takes over. */
		shutdown(fe->sock, SHUT_RDWR);
		return err;
	}
	if (reply == &ack && ack.payload.u64) {
		log_warn("vhost-user %s: the backend refused %s", fe->path, vhost_user_request_name(request));
		return -EIO;
	}
	return 0;
}

static int get_u64(struct vhost_user_frontend *fe, enum vhost_user_request request, uint64_t *value)
{
	struct vhost_user_msg msg = { .hdr.request = request }, reply;
	int err;

	set_payload_size(&msg, 0);
	err = transact(fe, &msg, NULL, 0, &reply);
	if (!err)
		*value = reply.payload.u64;
	return err;
}

static int set_u64(struct vhost_user_frontend *fe, enum vhost_user_request request, uint64_t value, int fd)
{
	struct vhost_user_msg msg = { .hdr.request = request, .payload.u64 = value };

	set_payload_size(&msg, sizeof(msg.payload.u64));
	return transact(fe, &msg, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0, NULL);
}

static int set_state(struct vhost_user_frontend *fe, enum vhost_user_request request, unsigned int index,
		     unsigned int num)
{
	struct vhost_user_msg msg = { .hdr.request = request, .payload.state = { .index = index, .num = num } };

	set_payload_size(&msg, sizeof(msg.payload.state));
	return transact(fe, &msg, NULL, 0, NULL);
}

static int open_socket(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval timeout = { .tv_sec = VHOST_USER_REPLY_TIMEOUT_S };
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (sock < 0)
		return -errno;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) ||
	    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) ||
	    connect(sock, (struct sockaddr *)&addr, sizeof(addr))) {
		int err = -errno;

		close(sock);
		return err;
	}
	return sock;
}

static int negotiate(struct vhost_user_frontend *fe, const char **why)
{
	uint64_t offered;
	int err;

	*why = "GET_FEATURES failed";
	err = get_u64(fe, VHOST_USER_GET_FEATURES, &fe->features);
	if (err)
		return err;
	if (fe->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)) {
		*why = "protocol feature negotiation failed";
		err = get_u64(fe, VHOST_USER_GET_PROTOCOL_FEATURES, &offered);
		if (!err)
			err = set_u64(fe, VHOST_USER_SET_PROTOCOL_FEATURES, offered & WANTED_PROTOCOL_FEATURES, -1);
		if (err)
			return err;
		/* From here on, REPLY_ACK (if agreed) applies to every request. */
		fe->protocol_features = offered & WANTED_PROTOCOL_FEATURES;
	}
	if (has_protocol(fe, VHOST_USER_PROTOCOL_F_MQ)) {
		uint64_t queues;

		*why = "GET_QUEUE_NUM failed";
		err = get_u64(fe, VHOST_USER_GET_QUEUE_NUM, &queues);
		if (err)
			return err;
		fe->max_queues = queues > 0xFFFF ? 0xFFFF : (unsigned int)queues;
	}
	*why = "SET_OWNER failed";
	{
		struct vhost_user_msg msg = { .hdr.request = VHOST_USER_SET_OWNER };

		set_payload_size(&msg, 0);
		return transact(fe, &msg, NULL, 0, NULL);
	}
}

int vhost_user_frontend_connect(struct vhost_user_frontend *fe, const char **why)
{
	int err;

	pthread_mutex_lock(&fe->lock);
	if (fe->sock >= 0) {
		close(fe->sock);
		__atomic_store_n(&fe->sock, -1, __ATOMIC_RELAXED);
	}
	fe->features = fe->protocol_features = 0;
	fe->max_queues = 0;
	err = open_socket(fe->path);
	if (err < 0) {
		*why = "cannot connect to its socket";
	} else {
		__atomic_store_n(&fe->sock, err, __ATOMIC_RELAXED);
		err = negotiate(fe, why);
		if (err) {
			close(fe->sock);
			__atomic_store_n(&fe->sock, -1, __ATOMIC_RELAXED);
		}
	}
	pthread_mutex_unlock(&fe->lock);
	return err;
}

void vhost_user_frontend_disconnect(struct vhost_user_frontend *fe)
{
	pthread_mutex_lock(&fe->lock);
	if (fe->sock >= 0)
		close(fe->sock);
	__atomic_store_n(&fe->sock, -1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&fe->lock);
}

int vhost_user_frontend_set_features(struct vhost_user_frontend *fe, uint64_t features)
{
	int err;

	pthread_mutex_lock(&fe->lock);  /* a reconnect rewrites fe->features under it */
	err = set_u64(fe, VHOST_USER_SET_FEATURES, features & fe->features, -1);
	pthread_mutex_unlock(&fe->lock);
	return err;
}

int vhost_user_frontend_set_mem_table(struct vhost_user_frontend *fe, const struct guest_mem *mem)
{
	struct vhost_user_msg msg = { .hdr.request = VHOST_USER_SET_MEM_TABLE };
	int fds[VHOST_USER_MAX_REGIONS];
	int err;

	if (mem->fd < 0 || mem->nr_regions == 0 || mem->nr_regions > VHOST_USER_MAX_REGIONS)
		return -EINVAL;  /* guest RAM must be a memfd to be shared */
	msg.payload.mem.nregions = mem->nr_regions;
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		msg.payload.mem.regions[i] = (struct vhost_user_mem_region){
			.guest_phys_addr = mem->regions[i].gpa,
			.memory_size = mem->regions[i].size,
			.userspace_addr = (uintptr_t)mem->regions[i].host,
			.mmap_offset = mem->regions[i].fd_offset,
		};
		fds[i] = mem->fd;
	}
	set_payload_size(&msg, offsetof(struct vhost_user_mem_table, regions) +
				       mem->nr_regions * sizeof(struct vhost_user_mem_region));
	pthread_mutex_lock(&fe->lock);
	err = transact(fe, &msg, fds, mem->nr_regions, NULL);
	pthread_mutex_unlock(&fe->lock);
	return err;
}

/* GET_VRING_BASE: stops ring index. Caller holds the lock. */
static int get_vring_base(struct vhost_user_frontend *fe, unsigned int index, uint16_t *next_avail)
{
	struct vhost_user_msg msg = { .hdr.request = VHOST_USER_GET_VRING_BASE, .payload.state = { .index = index } },
			      reply;
	int err;

	set_payload_size(&msg, sizeof(msg.payload.state));
	err = transact(fe, &msg, NULL, 0, &reply);
	if (!err && reply.payload.state.index != index)
		err = -EPROTO;
	if (!err)
		*next_avail = (uint16_t)reply.payload.state.num;
	return err;
}

int vhost_user_frontend_start_ring(struct vhost_user_frontend *fe, unsigned int index, const struct virtq *vq,
				   int kick_fd, int call_fd)
{
	struct vhost_user_msg addr = {
		.hdr.request = VHOST_USER_SET_VRING_ADDR,
		.payload.addr = {
			.index = index,
			.desc_user_addr = (uintptr_t)vq->desc,
			.avail_user_addr = (uintptr_t)vq->avail,
			.used_user_addr = (uintptr_t)vq->used,
		},
	};
	int err;

	set_payload_size(&addr, sizeof(addr.payload.addr));
	pthread_mutex_lock(&fe->lock);
	err = set_state(fe, VHOST_USER_SET_VRING_NUM, index, vq->size);
	if (!err)
		err = transact(fe, &addr, NULL, 0, NULL);
	if (!err)
		err = set_state(fe, VHOST_USER_SET_VRING_BASE, index, vq->last_avail_idx);
	if (!err)
		err = set_u64(fe, VHOST_USER_SET_VRING_CALL, index, call_fd);
	if (!err) {
		uint16_t unused;

		err = set_u64(fe, VHOST_USER_SET_VRING_KICK, index, kick_fd);
		/* With protocol features a ring starts disabled until SET_VRING_ENABLE. */
		if (!err && (fe->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES)))
			err = set_state(fe, VHOST_USER_SET_VRING_ENABLE, index, 1);
		/* Once it has the kick fd the backend may count the ring as its
		 * own (started, if disabled): a refusal from there on would leave
		 * it holding a ring kvio thinks stopped, so take it back as a stop
		 * does. Never enabled, the ring moved nothing: its index stays the
		 * caller's. Other failures dropped the connection, rings and all. */
		if (err == -EIO)
			(void)get_vring_base(fe, index, &unused);
	}
	pthread_mutex_unlock(&fe->lock);
	return err;
}

int vhost_user_frontend_enable_ring(struct vhost_user_frontend *fe, unsigned int index, bool enable)
{
	int err = 0;

	pthread_mutex_lock(&fe->lock);
	if (fe->features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES))
		err = set_state(fe, VHOST_USER_SET_VRING_ENABLE, index, enable);
	pthread_mutex_unlock(&fe->lock);
	return err;
}

int vhost_user_frontend_stop_ring(struct vhost_user_frontend *fe, unsigned int index, uint16_t *next_avail)
{
	int err;

	pthread_mutex_lock(&fe->lock);
	err = get_vring_base(fe, index, next_avail);
	pthread_mutex_unlock(&fe->lock);
	return err;
}

int vhost_user_frontend_get_config(struct vhost_user_frontend *fe, uint32_t offset, void *buf, uint32_t len)
{
	struct vhost_user_msg msg = { .hdr.request = VHOST_USER_GET_CONFIG }, reply;
	int err;

	if (!has_protocol(fe, VHOST_USER_PROTOCOL_F_CONFIG))
		return -ENOTSUP;
	if (len > VHOST_USER_CONFIG_MAX)
		return -EINVAL;
	msg.payload.config.offset = offset;
	msg.payload.config.size = len;
	set_payload_size(&msg, VHOST_USER_CONFIG_HDR_SIZE + len);
	pthread_mutex_lock(&fe->lock);
	err = transact(fe, &msg, NULL, 0, &reply);
	pthread_mutex_unlock(&fe->lock);
	if (!err && (reply.payload.config.offset != offset || reply.payload.config.size != len ||
		     reply.hdr.size != VHOST_USER_CONFIG_HDR_SIZE + len))
		err = -EPROTO;
	if (!err)
		memcpy(buf, reply.payload.config.payload, len);
	return err;
}

/* Wait until the backend hangs up (true), or the stop fd fires (false). */
static bool wait_for_hangup(struct vhost_user_frontend *fe)
{
	struct pollfd fds[2] = { { .events = POLLRDHUP }, { .fd = fe->stop_fd, .events = POLLIN } };

	pthread_mutex_lock(&fe->lock);
	fds[0].fd = fe->sock;  /* only this thread replaces it */
	pthread_mutex_unlock(&fe->lock);
	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("vhost-user %s: watcher: poll: %s", fe->path, strerror(errno));
			return false;
		}
		if (fds[1].revents)
			return false;
		if (fds[0].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
			return true;
	}
}

/* Sleep seconds; false if the stop fd fired meanwhile. */
static bool sleep_unless_stopped(struct vhost_user_frontend *fe, unsigned int seconds)
{
	struct pollfd stop = { .fd = fe->stop_fd, .events = POLLIN };

	return poll(&stop, 1, (int)seconds * 1000) == 0;
}

static void *watch(void *arg)
{
	struct vhost_user_frontend *fe = arg;

	for (;;) {
		const char *why = "";

		if (vhost_user_frontend_connected(fe)) {
			if (!wait_for_hangup(fe))
				return NULL;
			log_warn("vhost-user %s: the backend went away%s", fe->path,
				 fe->reconnect_s ? "; reconnecting" : "");
			vhost_user_frontend_disconnect(fe);
			fe->changed(fe->ctx, false);
		}
		if (!fe->reconnect_s)
			return NULL;
		do {
			if (!sleep_unless_stopped(fe, fe->reconnect_s))
				return NULL;
		} while (vhost_user_frontend_connect(fe, &why));
		log_info("vhost-user %s: the backend is back", fe->path);
		fe->changed(fe->ctx, true);
	}
}

int vhost_user_frontend_watch(struct vhost_user_frontend *fe, unsigned int reconnect_s,
			      void (*changed)(void *ctx, bool up), void *ctx)
{
	int err;

	fe->reconnect_s = reconnect_s;
	fe->changed = changed;
	fe->ctx = ctx;
	fe->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (fe->stop_fd < 0)
		return -errno;
	err = pthread_create(&fe->watcher, NULL, watch, fe);
	fe->watching = !err;
	return -err;
}

void vhost_user_frontend_unwatch(struct vhost_user_frontend *fe)
{
	uint64_t one = 1;

	if (fe->watching) {
		if (write(fe->stop_fd, &one, sizeof(one)) < 0)
			log_warn("vhost-user %s: cannot stop the watcher: %s", fe->path, strerror(errno));
		pthread_join(fe->watcher, NULL);
		fe->watching = false;
	}
	if (fe->stop_fd >= 0)
		close(fe->stop_fd);
	fe->stop_fd = -1;
}

void vhost_user_frontend_close(struct vhost_user_frontend *fe)
{
	vhost_user_frontend_unwatch(fe);
	vhost_user_frontend_disconnect(fe);
	pthread_mutex_destroy(&fe->lock);
}
