/* user backend: libslirp's TCP/IP stack in the VMM, with QEMU's -netdev user
 * defaults (10.0.2.0/24, DHCP, DNS forwarding, hostfwd), needing no root. */
#include "backend/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libslirp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "util/iov.h"
#include "util/log.h"

/*
 * Threads. libslirp is not thread-safe, and two threads call into it: kvio's
 * I/O thread (send -> slirp_input) and this backend's own thread, which polls
 * slirp's host sockets and runs its timers. One mutex, `lock`, is held by
 * whichever of them is inside slirp, so all of slirp's callbacks run under it
 * too; the slirp thread drops it only while it sleeps in poll(). That is
 * simpler than queueing guest frames over to the slirp thread: no copy, no
 * second queue, and a frame's effects (a reply, a new socket) exist when send
 * returns. Anything slirp_input changes that the sleeping poll() should see
 * (a new socket, a socket that now has data to write, an earlier timer) is
 * handled by kicking `wake_fd`, which is in every poll set.
 *
 * Frames slirp emits go to a bounded queue under a second mutex, `rx_lock`
 * (taken inside `lock`, never the other way round), which recv drains.
 *
 * slirp writes to host sockets with send() and no MSG_NOSIGNAL, from either
 * thread (slirp_input may write guest data at once): a peer that went away
 * raises SIGPIPE, which kvio ignores process-wide (vm_run). The slirp thread
 * also blocks every signal but SIGSYS, leaving them to the threads that handle them.
 */

/* A guest that stops reading meets a full ring, like a real NIC's. */
#define USER_RX_SLOTS 256
#define USER_POLLFDS_MIN 16

static const uint8_t zero_hdr[NET_HDR_LEN];

struct user_timer {
	SlirpTimerCb cb;
	void *cb_opaque;
	int64_t expire_ms;  /* CLOCK_MONOTONIC; -1 when not armed */
	struct user_timer *next;
};

/* A frame as recv hands it over: a zeroed virtio-net header, then the frame. */
struct user_frame {
	size_t len;  /* header included */
	uint8_t data[NET_HDR_LEN + NET_MAX_FRAME];
};

struct net_user {
	struct net_backend be;

	pthread_mutex_t lock;  /* slirp, the timers, wake_pending, stopping */
	Slirp *slirp;
	struct user_timer *timers;
	int wake_fd;
	bool wake_pending;     /* wake_fd written since the slirp thread last looked */
	bool wake_after_burst; /* frames went into slirp: wake its thread once the burst is over */
	bool stopping;
	bool thread_started;
	pthread_t thread;
	/* Owned by the slirp thread alone: rebuilt before every poll(). */
	struct pollfd *pfds;
	unsigned int nr_pfds, max_pfds;

	pthread_mutex_t rx_lock;  /* everything rx_ */
	int rx_fd;
	bool rx_signalled;        /* rx_fd's counter is nonzero */
	unsigned int rx_head, rx_count;
	uint64_t rx_dropped_full, rx_dropped_oversize, rx_dropped_small_buffer;
	bool rx_drop_logged;
	struct user_frame *rx;

	uint64_t tx_dropped;      /* I/O thread only */
	bool tx_drop_logged;
};

/* Set on a slirp thread: its own callbacks need not kick it awake. */
static __thread struct net_user *loop_owner;

static void signal_fd(int fd)
{
	uint64_t one = 1;

	/* Only EAGAIN (counter at its maximum) can fail here, and then the fd is readable anyway. */
	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("user network: eventfd write: %s", strerror(errno));
}

static void drain_fd(int fd)
{
	uint64_t count;

	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("user network: eventfd read: %s", strerror(errno));
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* With lock held: make the slirp thread rebuild its poll set and timeout soon. */
static void kick(struct net_user *u)
{
	if (loop_owner == u || u->wake_pending)
		return;  /* it will look again before sleeping, or a kick is already on its way */
	u->wake_pending = true;
	signal_fd(u->wake_fd);
}

/* With rx_lock held: tell the I/O thread frames wait, once per empty -> non-empty cycle. */
static void signal_rx(struct net_user *u)
{
	if (!u->rx_signalled) {
		u->rx_signalled = true;
		signal_fd(u->rx_fd);
	}
}

/* slirp callbacks: all run with lock held. */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct net_user *u = opaque;
	bool log_drop = false;

	pthread_mutex_lock(&u->rx_lock);
	if (len > NET_MAX_FRAME) {
		u->rx_dropped_oversize++;
		log_drop = !u->rx_drop_logged;
	} else if (u->rx_count == USER_RX_SLOTS) {
		u->rx_dropped_full++;
		log_drop = !u->rx_drop_logged;
	} else {
		struct user_frame *f = &u->rx[(u->rx_head + u->rx_count) % USER_RX_SLOTS];

		memcpy(f->data, zero_hdr, NET_HDR_LEN);
		memcpy(f->data + NET_HDR_LEN, buf, len);
		f->len = NET_HDR_LEN + len;
		u->rx_count++;
		/* From the slirp thread, once its round is over (or the queue is
		 * half full): woken at the first frame of a burst, the I/O thread
		 * would race the rest of it, taking a frame or two (and giving the
		 * guest an interrupt) at a time. */
		if (loop_owner != u || u->rx_count >= USER_RX_SLOTS / 2)
			signal_rx(u);
	}
	if (log_drop)
		u->rx_drop_logged = true;
	pthread_mutex_unlock(&u->rx_lock);
	if (log_drop)
		log_warn("user network: dropping frames towards the guest (queue full or frame too large)");
	/* A dropped frame is not an I/O error: TCP retransmits, like on a lossy wire. */
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	(void)opaque;
	log_debug("user network: guest error: %s", msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	(void)opaque;
	return now_ns();
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct net_user *u = opaque;
	struct user_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	*t = (struct user_timer){ .cb = cb, .cb_opaque = cb_opaque, .expire_ms = -1, .next = u->timers };
	u->timers = t;
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct net_user *u = opaque;

	for (struct user_timer **p = &u->timers; *p; p = &(*p)->next) {
		if (*p == timer) {
			*p = (*p)->next;
			free(timer);
			return;
		}
	}
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct net_user *u = opaque;

	if (!timer)
		return;
	((struct user_timer *)timer)->expire_ms = expire_ms;
	kick(u);  /* the sleeping poll() may have a later timeout */
}

static void cb_register_poll_fd(int fd, void *opaque)
{
	(void)fd;
	kick(opaque);  /* the poll set is rebuilt each round; a sleeping one must see the new socket */
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void cb_notify(void *opaque)
{
	kick(opaque);
}

static const SlirpCb user_callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_new = cb_timer_new,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_register_poll_fd,
	.unregister_poll_fd = cb_unregister_poll_fd,
	.notify = cb_notify,
};

/* The slirp thread. */

static int add_poll(int fd, int events, void *opaque)
{
	struct net_user *u = opaque;
	short ev = 0;

	if (u->nr_pfds == u->max_pfds) {
		struct pollfd *bigger = realloc(u->pfds, 2 * u->max_pfds * sizeof(*bigger));

		if (!bigger)
			return -1;  /* slirp skips a socket without an index: it waits a round */
		u->pfds = bigger;
		u->max_pfds *= 2;
	}
	if (events & SLIRP_POLL_IN)
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI)
		ev |= POLLPRI;
	u->pfds[u->nr_pfds] = (struct pollfd){ .fd = fd, .events = ev };
	return (int)u->nr_pfds++;
}

static int get_revents(int idx, void *opaque)
{
	struct net_user *u = opaque;
	short rev;
	int events = 0;

	if (idx < 0 || (unsigned int)idx >= u->nr_pfds)
		return 0;
	rev = u->pfds[idx].revents;
	if (rev & POLLIN)
		events |= SLIRP_POLL_IN;
	if (rev & POLLOUT)
		events |= SLIRP_POLL_OUT;
	if (rev & POLLPRI)
		events |= SLIRP_POLL_PRI;
	if (rev & (POLLERR | POLLNVAL))
		events |= SLIRP_POLL_ERR;
	if (rev & POLLHUP)
		events |= SLIRP_POLL_HUP;
	return events;
}

/* Milliseconds until the earliest armed timer, UINT32_MAX for none. */
static uint32_t timers_timeout(struct net_user *u, int64_t now_ms)
{
	int64_t best = -1;

	for (struct user_timer *t = u->timers; t; t = t->next)
		if (t->expire_ms >= 0 && (best < 0 || t->expire_ms < best))
			best = t->expire_ms;
	if (best < 0)
		return UINT32_MAX;
	if (best <= now_ms)
		return 0;
	return best - now_ms > INT_MAX ? INT_MAX : (uint32_t)(best - now_ms);
}

static void timers_run(struct net_user *u, int64_t now_ms)
{
	/* A callback may re-arm or free any timer, so rescan after each; the
	 * bound keeps a timer re-armed in the past from spinning here. */
	for (unsigned int fired = 0; fired < 64; fired++) {
		struct user_timer *t = u->timers;

		while (t && !(t->expire_ms >= 0 && t->expire_ms <= now_ms))
			t = t->next;
		if (!t)
			return;
		t->expire_ms = -1;
		t->cb(t->cb_opaque);
	}
}

static void *user_thread(void *arg)
{
	struct net_user *u = arg;

	/* Named from inside: naming another thread opens /proc/self/task/TID/comm,
	 * which the seccomp filter (core/sandbox.c) does not allow. */
	pthread_setname_np(pthread_self(), "kvio-slirp");
	loop_owner = u;
	pthread_mutex_lock(&u->lock);
	while (!u->stopping) {
		uint32_t timeout = timers_timeout(u, now_ns() / 1000000);
		int ready;

		/* Cleared before the poll set is built: a kick from here on means something this set misses. */
		if (u->wake_pending) {
			u->wake_pending = false;
			drain_fd(u->wake_fd);
		}
		u->pfds[0] = (struct pollfd){ .fd = u->wake_fd, .events = POLLIN };
		u->nr_pfds = 1;
		slirp_pollfds_fill(u->slirp, &timeout, add_poll, u);
		pthread_mutex_unlock(&u->lock);

		ready = poll(u->pfds, u->nr_pfds, timeout > INT_MAX ? -1 : (int)timeout);
		if (ready < 0 && errno != EINTR)
			log_warn("user network: poll: %s", strerror(errno));

		/* Sockets slirp_input opened or closed meanwhile are safe: slirp only
		 * asks for the indexes it handed out in this round's fill. */
		pthread_mutex_lock(&u->lock);
		slirp_pollfds_poll(u->slirp, ready < 0, get_revents, u);
		timers_run(u, now_ns() / 1000000);
		/* Frames left unsignalled this round (signal_rx is a no-op for the rest). */
		pthread_mutex_lock(&u->rx_lock);
		if (u->rx_count)
			signal_rx(u);
		pthread_mutex_unlock(&u->rx_lock);
	}
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

/* Backend ops, on kvio's I/O thread. */

static void tx_drop(struct net_user *u, const char *what)
{
	u->tx_dropped++;
	if (!u->tx_drop_logged) {
		u->tx_drop_logged = true;
		log_warn("user network: dropping a frame from the guest: %s", what);
	}
}

static int user_send(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	struct net_user *u = (struct net_user *)be;
	uint8_t buf[NET_HDR_LEN + NET_MAX_FRAME];
	struct virtio_net_hdr_v1 hdr;
	uint64_t total = iov_total(iov, n);

	(void)qp;
	if (total < NET_HDR_LEN + 14) {
		tx_drop(u, "shorter than a header and an Ethernet header");
		return -EINVAL;
	}
	if (total > sizeof(buf)) {
		tx_drop(u, "larger than the MTU");
		return -EMSGSIZE;
	}
	iov_to_buf(iov, n, buf, (size_t)total);
	memcpy(&hdr, buf, sizeof(hdr));
	/* No offloads were offered, so a header asking for one is a broken guest. */
	if ((hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || hdr.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
		tx_drop(u, "it asks for an offload that was not offered");
		return -EINVAL;
	}
	pthread_mutex_lock(&u->lock);
	slirp_input(u->slirp, buf + NET_HDR_LEN, (int)(total - NET_HDR_LEN));
	/* Whatever the frame changed (sockets, what they wait for, TCP timers)
	 * needs a fresh poll set, but once per burst: a wakeup per frame has
	 * the slirp thread fight this one for the lock at every frame. */
	u->wake_after_burst = true;
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static void user_flush(struct net_backend *be, unsigned int qp)
{
	struct net_user *u = (struct net_user *)be;

	(void)qp;
	pthread_mutex_lock(&u->lock);
	if (u->wake_after_burst) {
		u->wake_after_burst = false;
		kick(u);
	}
	pthread_mutex_unlock(&u->lock);
}

static ssize_t user_recv(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	struct net_user *u = (struct net_user *)be;
	uint64_t room = iov_total(iov, n);
	ssize_t ret = -EAGAIN;

	(void)qp;
	pthread_mutex_lock(&u->rx_lock);
	while (u->rx_count) {
		struct user_frame *f = &u->rx[u->rx_head];

		u->rx_head = (u->rx_head + 1) % USER_RX_SLOTS;
		u->rx_count--;
		if (f->len > room) {
			u->rx_dropped_small_buffer++;
			continue;
		}
		ret = (ssize_t)iov_from_buf(iov, n, f->data, f->len);
		break;
	}
	/* Reset the counter only when the queue is seen empty, under the lock
	 * send_packet signals under: a frame queued later writes it again, so
	 * the edge-triggered reader cannot miss it. */
	if (ret == -EAGAIN && u->rx_signalled) {
		u->rx_signalled = false;
		drain_fd(u->rx_fd);
	}
	pthread_mutex_unlock(&u->rx_lock);
	return ret;
}

static int user_rx_fd(struct net_backend *be, unsigned int qp)
{
	(void)qp;
	return ((struct net_user *)be)->rx_fd;
}

static void user_destroy(struct net_backend *be)
{
	struct net_user *u = (struct net_user *)be;

	if (u->thread_started) {
		pthread_mutex_lock(&u->lock);
		u->stopping = true;
		kick(u);
		pthread_mutex_unlock(&u->lock);
		pthread_join(u->thread, NULL);
	}
	if (u->slirp)
		slirp_cleanup(u->slirp);
	while (u->timers) {
		struct user_timer *t = u->timers;

		u->timers = t->next;
		free(t);
	}
	if (u->wake_fd >= 0)
		close(u->wake_fd);
	if (u->rx_fd >= 0)
		close(u->rx_fd);
	if (u->rx_dropped_full || u->rx_dropped_oversize || u->rx_dropped_small_buffer || u->tx_dropped)
		log_debug("user network: dropped %llu frames to the guest (queue full %llu, too large %llu, "
			  "buffer too small %llu), %llu from it",
			  (unsigned long long)(u->rx_dropped_full + u->rx_dropped_oversize + u->rx_dropped_small_buffer),
			  (unsigned long long)u->rx_dropped_full, (unsigned long long)u->rx_dropped_oversize,
			  (unsigned long long)u->rx_dropped_small_buffer, (unsigned long long)u->tx_dropped);
	pthread_mutex_destroy(&u->lock);
	pthread_mutex_destroy(&u->rx_lock);
	free(u->pfds);
	free(u->rx);
	free(u);
}

static const struct net_backend_ops user_ops = {
	.name = "user",
	.send = user_send,
	.flush = user_flush,
	.recv = user_recv,
	.rx_fd = user_rx_fd,
	.destroy = user_destroy,
};

static struct in_addr ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	return (struct in_addr){ .s_addr = htonl((uint32_t)a << 24 | (uint32_t)b << 16 | (uint32_t)c << 8 | d) };
}

static struct in6_addr ip6(uint16_t first, uint16_t last)
{
	struct in6_addr a = { 0 };

	a.s6_addr[0] = (uint8_t)(first >> 8);
	a.s6_addr[1] = (uint8_t)first;
	a.s6_addr[14] = (uint8_t)(last >> 8);
	a.s6_addr[15] = (uint8_t)last;
	return a;
}

/* Names the failing rule in *why, which must outlive the backend: one
 * buffer per thread is enough for a message the caller prints at once. */
static const char *hostfwd_why(const struct net_hostfwd *f, const char *what)
{
	static __thread char buf[160];
	char host[INET_ADDRSTRLEN], guest[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &f->host_addr, host, sizeof(host));
	inet_ntop(AF_INET, &f->guest_addr, guest, sizeof(guest));
	snprintf(buf, sizeof(buf), "hostfwd=%s:%s:%u-%s:%u: %s", f->udp ? "udp" : "tcp",
		 f->host_addr ? host : "", f->host_port, f->guest_addr ? guest : "", f->guest_port, what);
	return buf;
}

struct net_backend *net_user_open(const struct net_hostfwd *fwds, unsigned int nr_fwds, const char **why)
{
	/* QEMU's -netdev user defaults, so guides written for QEMU apply as they are. */
	const struct in_addr network = ip4(10, 0, 2, 0), netmask = ip4(255, 255, 255, 0);
	const struct in_addr dhcp_start = ip4(10, 0, 2, 15);
	const SlirpConfig cfg = {
		.version = 4,
		.in_enabled = true,
		.vnetwork = network,
		.vnetmask = netmask,
		.vhost = ip4(10, 0, 2, 2),
		.vdhcp_start = dhcp_start,
		.vnameserver = ip4(10, 0, 2, 3),
		/* IPv6 on, like QEMU: fec0::/64, host fec0::2, DNS fec0::3, router advertisements. */
		.in6_enabled = true,
		.vprefix_addr6 = ip6(0xfec0, 0),
		.vprefix_len = 64,
		.vhost6 = ip6(0xfec0, 2),
		.vnameserver6 = ip6(0xfec0, 3),
	};
	struct net_user *u = calloc(1, sizeof(*u));
	sigset_t all, old;
	int err;

	if (!u) {
		*why = "out of memory";
		errno = ENOMEM;
		return NULL;
	}
	u->be = (struct net_backend){ .ops = &user_ops, .queue_pairs = 1, .offloads = 0 };
	u->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	u->rx_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&u->lock, NULL);
	pthread_mutex_init(&u->rx_lock, NULL);
	if (u->wake_fd < 0 || u->rx_fd < 0) {
		*why = "cannot create an eventfd";
		goto fail;
	}
	u->max_pfds = USER_POLLFDS_MIN;
	u->pfds = calloc(u->max_pfds, sizeof(*u->pfds));
	u->rx = calloc(USER_RX_SLOTS, sizeof(*u->rx));
	if (!u->pfds || !u->rx) {
		errno = ENOMEM;
		*why = "out of memory";
		goto fail;
	}
	u->slirp = slirp_new(&cfg, &user_callbacks, u);
	if (!u->slirp) {
		errno = ENOMEM;
		*why = "cannot start libslirp";
		goto fail;
	}
	for (unsigned int i = 0; i < nr_fwds; i++) {
		const struct net_hostfwd *f = &fwds[i];
		/* Like QEMU: host address 0 listens on all addresses, guest address 0 is the first DHCP lease. */
		struct in_addr host = { .s_addr = f->host_addr };
		struct in_addr guest = { .s_addr = f->guest_addr ? f->guest_addr : dhcp_start.s_addr };

		if ((guest.s_addr & netmask.s_addr) != network.s_addr) {
			errno = EINVAL;
			*why = hostfwd_why(f, "the guest address is not in 10.0.2.0/24");
			goto fail;
		}
		errno = 0;
		if (slirp_add_hostfwd(u->slirp, f->udp, host, f->host_port, guest, f->guest_port) < 0) {
			if (!errno)
				errno = EADDRINUSE;
			*why = hostfwd_why(f, "cannot listen on the host address and port");
			goto fail;
		}
	}
	/* Signals stay with the threads that handle them; SIGSYS stays open, as
	 * the seccomp filter's trap must reach its handler on this thread too. */
	sigfillset(&all);
	sigdelset(&all, SIGSYS);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&u->thread, NULL, user_thread, u);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		errno = err;
		*why = "cannot start the user network thread";
		goto fail;
	}
	u->thread_started = true;
	return &u->be;
fail:
	err = errno;
	user_destroy(&u->be);
	errno = err;
	return NULL;
}
