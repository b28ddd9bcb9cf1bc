/* user backend: libslirp's TCP/IP stack in the VMM, with QEMU's -netdev user
 * defaults (10.0.2.0/24, DHCP, DNS forwarding, hostfwd), needing no root. */
#include "backend/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libslirp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "backend/net_coalesce.h"
#include "config.h"
#include "util/event_loop.h"
#include "util/iov.h"
#include "util/log.h"

/*
 * Threads. libslirp runs on the I/O thread that serves the NIC's queue pair:
 * its host sockets join that thread's wait (an event_loop hook fills them in
 * before each wait, and hands slirp what they got after it), so a frame slirp
 * builds from host data goes into the guest's ring on the thread that read it,
 * as in QEMU's main loop. An earlier design ran slirp on a thread of its own:
 * the same throughput, but the hand-off (a second lock, a wakeup per round)
 * cost more host CPU per byte than the one thread now does.
 *
 * libslirp is not thread-safe, and e1000 transmits from a vCPU thread too (an
 * MMIO exit runs slirp_input): `lock` is held by whoever is inside slirp, so
 * slirp's callbacks run under it. When slirp_input on another thread changes
 * what the wait should watch (a new socket, data to write, an earlier timer),
 * `wake` tells the loop to fill in its fds again.
 *
 * Frames slirp emits go to a bounded queue, which recv drains. While it is
 * more than half full, slirp's sockets leave the wait: a guest that stops
 * taking frames makes slirp stop reading from the host, and TCP's flow
 * control pushes back on the host peer, instead of frames being dropped.
 *
 * slirp writes to host sockets with send() and no MSG_NOSIGNAL: a peer that
 * went away raises SIGPIPE, which kvio ignores process-wide (vm_run).
 */

/* A guest that stops reading meets a full ring, like a real NIC's. */
#define USER_RX_SLOTS 256

struct user_timer {
	SlirpTimerCb cb;
	void *cb_opaque;
	int64_t expire_ms;  /* CLOCK_MONOTONIC; -1 when not armed */
	struct user_timer *next;
};

/* A frame as recv hands it over: a virtio-net header, then the frame. Each
 * slot's buffer grows to the largest frame it has held, so a queue of small
 * frames costs small buffers whatever the MTU. */
struct user_frame {
	size_t len;  /* header included */
	size_t cap;
	uint8_t *data;
};

struct net_user {
	struct net_backend be;
	struct event_loop *loop;  /* the I/O thread's, where slirp's sockets are watched */
	struct event_hook hook;
	struct event_handler wake;
	bool wake_watched;

	pthread_mutex_t lock;  /* everything below but tx_ */
	Slirp *slirp;
	struct user_timer *timers;
	/* slirp reads the clock for every frame it sends (and where the host
	 * has no vDSO clock, such as a nested guest on HPET, each read is a
	 * syscall and an emulated device access): it gets the time read once
	 * after each wait of the loop, as a kernel's jiffies, which its
	 * millisecond timers cannot tell from the exact time. */
	int64_t clock_ns;
	bool clock_valid;
	bool polling;          /* this round's wait watches slirp's fds: check hands slirp their revents */
	bool wake_pending;     /* wake written since the loop last filled in slirp's fds */
	bool wake_after_burst; /* frames went into slirp: kick once the burst is over */
	/* The guest takes checksums a device vouches for (VIRTIO_NET_F_GUEST_CSUM):
	 * every frame slirp builds carries checksums it computed, so each goes
	 * marked DATA_VALID and the guest's stack does not sum the data again. */
	bool mark_valid;
	/* The guest takes TSO frames (VIRTIO_NET_F_GUEST_TSO4): a TCP segment
	 * that continues the last frame queued joins it (net_coalesce.h). Only
	 * frames already waiting merge, so no frame waits longer for it. */
	bool coalesce;
	uint64_t rx_coalesced;  /* segments merged into the frame before them */

	int rx_fd;
	bool rx_signalled;     /* rx_fd's counter is nonzero */
	unsigned int rx_head, rx_count;
	uint64_t rx_dropped_full, rx_dropped_oversize, rx_dropped_small_buffer;
	bool rx_drop_logged;
	struct user_frame *rx;

	size_t max_frame;         /* Ethernet frame for the MTU, VLAN tag included */
	uint8_t *tx_buf;          /* NET_HDR_LEN + max_frame; the NIC serializes its transmits */
	uint64_t tx_dropped;
	bool tx_drop_logged;
};

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

/* With lock held: make the loop fill in slirp's fds and timeout again. On
 * the loop's own thread that happens anyway before it next waits. */
static void kick(struct net_user *u)
{
	if (event_loop_current() == u->loop || u->wake_pending)
		return;
	u->wake_pending = true;
	signal_fd(u->wake.fd);
}

static bool grow_frame(struct user_frame *f, size_t size)
{
	uint8_t *data = realloc(f->data, size);

	if (!data)
		return false;
	f->data = data;
	f->cap = size;
	return true;
}

/* slirp callbacks: all run with lock held. */

/* With lock held: merge frame into the last one queued, if it continues it. */
static bool coalesce(struct net_user *u, const void *buf, size_t len)
{
	struct user_frame *last;
	size_t merged;

	if (!u->coalesce || !u->rx_count)
		return false;
	last = &u->rx[(u->rx_head + u->rx_count - 1) % USER_RX_SLOTS];
	merged = net_coalesce_size(last->data, last->len, buf, len);
	if (!merged || (merged > last->cap && !grow_frame(last, merged)))
		return false;
	last->len = net_coalesce_merge(last->data, last->len, buf, len);
	u->rx_coalesced++;
	return true;
}

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct net_user *u = opaque;
	struct user_frame *f = &u->rx[(u->rx_head + u->rx_count) % USER_RX_SLOTS];
	bool log_drop = false;

	if (coalesce(u, buf, len))
		return (ssize_t)len;
	if (len > u->max_frame) {
		u->rx_dropped_oversize++;
		log_drop = !u->rx_drop_logged;
	} else if (u->rx_count == USER_RX_SLOTS) {
		u->rx_dropped_full++;
		log_drop = !u->rx_drop_logged;
	} else if (f->cap < NET_HDR_LEN + len && !grow_frame(f, NET_HDR_LEN + len)) {
		u->rx_dropped_full++;  /* out of memory: the frame is lost as on a full queue */
		log_drop = !u->rx_drop_logged;
	} else {
		struct virtio_net_hdr_v1 hdr = { .flags = u->mark_valid ? VIRTIO_NET_HDR_F_DATA_VALID : 0 };

		memcpy(f->data, &hdr, NET_HDR_LEN);
		memcpy(f->data + NET_HDR_LEN, buf, len);
		f->len = NET_HDR_LEN + len;
		u->rx_count++;
		/* Once per empty -> non-empty cycle. On the loop's thread the NIC's
		 * handler runs after the hook, so it takes the whole round's frames. */
		if (!u->rx_signalled) {
			u->rx_signalled = true;
			signal_fd(u->rx_fd);
		}
	}
	if (log_drop) {
		u->rx_drop_logged = true;
		log_warn("user network: dropping frames towards the guest (queue full or frame too large)");
	}
	/* A dropped frame is not an I/O error: TCP retransmits, like on a lossy wire. */
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	(void)opaque;
	log_debug("user network: guest error: %s", msg);
}

/* With lock held: the time as of the loop's last wakeup. */
static int64_t clock_now(struct net_user *u)
{
	if (!u->clock_valid) {
		u->clock_ns = now_ns();
		u->clock_valid = true;
	}
	return u->clock_ns;
}

static int64_t cb_clock_get_ns(void *opaque)
{
	return clock_now(opaque);
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
	kick(u);  /* the wait may have a later timeout */
}

static void cb_register_poll_fd(int fd, void *opaque)
{
	(void)fd;
	kick(opaque);  /* the wait must watch the new socket */
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

/* slirp in the I/O thread's loop. */

static int add_poll(int fd, int events, void *opaque)
{
	struct net_user *u = opaque;
	short ev = 0;

	if (events & SLIRP_POLL_IN)
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI)
		ev |= POLLPRI;
	return event_loop_poll_fd(u->loop, fd, ev);  /* -1: slirp skips the socket this round */
}

static int get_revents(int idx, void *opaque)
{
	struct net_user *u = opaque;
	short rev = event_loop_revents(u->loop, idx);
	int events = 0;

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

static struct net_user *hook_user(struct event_hook *hook)
{
	return (struct net_user *)((char *)hook - offsetof(struct net_user, hook));
}

static void loop_prepare(struct event_hook *hook, int *timeout_ms)
{
	struct net_user *u = hook_user(hook);

	pthread_mutex_lock(&u->lock);
	u->wake_pending = false;  /* from here on a kick means something this round's fds miss */
	u->polling = u->rx_count <= USER_RX_SLOTS / 2;
	if (u->polling) {
		/* The time read after the last wait, older only by what the
		 * handlers did since: a timer fires that much late at worst. */
		uint32_t timeout = timers_timeout(u, clock_now(u) / 1000000);

		slirp_pollfds_fill(u->slirp, &timeout, add_poll, u);
		if (timeout <= INT_MAX && (*timeout_ms < 0 || (int)timeout < *timeout_ms))
			*timeout_ms = (int)timeout;
	}
	u->clock_valid = false;  /* the loop waits next */
	pthread_mutex_unlock(&u->lock);
}

static void loop_check(struct event_hook *hook, bool wait_failed)
{
	struct net_user *u = hook_user(hook);

	pthread_mutex_lock(&u->lock);
	u->clock_valid = false;  /* another thread may have read it during the wait */
	/* Sockets slirp_input opened or closed since the fill are safe: slirp
	 * only asks for the indexes it handed out in that fill. */
	if (u->polling) {
		slirp_pollfds_poll(u->slirp, wait_failed, get_revents, u);
		timers_run(u, clock_now(u) / 1000000);
	}
	pthread_mutex_unlock(&u->lock);
}

static void wake_ready(struct event_handler *handler, uint32_t events)
{
	(void)events;
	drain_fd(handler->fd);  /* the loop fills in slirp's fds again before it next waits */
}

/* Backend ops: on the loop's thread, or (e1000 transmit) a vCPU's. */

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
	uint8_t *buf = u->tx_buf;
	struct virtio_net_hdr_v1 hdr;
	uint64_t total = iov_total(iov, n);

	(void)qp;
	if (total < NET_HDR_LEN + 14) {
		tx_drop(u, "shorter than a header and an Ethernet header");
		return -EINVAL;
	}
	if (total > NET_HDR_LEN + u->max_frame) {
		tx_drop(u, "larger than the MTU");
		return -EMSGSIZE;
	}
	iov_to_buf(iov, n, buf, (size_t)total);
	memcpy(&hdr, buf, sizeof(hdr));
	/* No transmit offloads were offered, so a header asking for one is a broken guest. */
	if ((hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || hdr.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
		tx_drop(u, "it asks for an offload that was not offered");
		return -EINVAL;
	}
	pthread_mutex_lock(&u->lock);
	slirp_input(u->slirp, buf + NET_HDR_LEN, (int)(total - NET_HDR_LEN));
	/* Whatever the frame changed (sockets, what they wait for, TCP timers)
	 * needs the loop to fill in slirp's fds again, but once per burst: a
	 * wakeup per frame has it fight a vCPU thread for the lock. kick knows
	 * when no wakeup is needed at all (on the loop's own thread). */
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
	pthread_mutex_lock(&u->lock);
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
	pthread_mutex_unlock(&u->lock);
	return ret;
}

static int user_set_guest_offloads(struct net_backend *be, uint64_t guest_features)
{
	struct net_user *u = (struct net_user *)be;

	pthread_mutex_lock(&u->lock);
	u->mark_valid = guest_features & (1ULL << VIRTIO_NET_F_GUEST_CSUM);
	u->coalesce = u->mark_valid && (guest_features & (1ULL << VIRTIO_NET_F_GUEST_TSO4));
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static int user_rx_fd(struct net_backend *be, unsigned int qp)
{
	(void)qp;
	return ((struct net_user *)be)->rx_fd;
}

static void user_destroy(struct net_backend *be)
{
	struct net_user *u = (struct net_user *)be;

	/* The loop is not running by now (net_user_open's contract). */
	event_loop_remove_hook(u->loop, &u->hook);
	if (u->wake_watched)
		event_loop_remove(u->loop, &u->wake);
	if (u->slirp)
		slirp_cleanup(u->slirp);
	while (u->timers) {
		struct user_timer *t = u->timers;

		u->timers = t->next;
		free(t);
	}
	if (u->wake.fd >= 0)
		close(u->wake.fd);
	if (u->rx_fd >= 0)
		close(u->rx_fd);
	if (u->rx_dropped_full || u->rx_dropped_oversize || u->rx_dropped_small_buffer || u->tx_dropped)
		log_debug("user network: dropped %llu frames to the guest (queue full %llu, too large %llu, "
			  "buffer too small %llu), %llu from it",
			  (unsigned long long)(u->rx_dropped_full + u->rx_dropped_oversize + u->rx_dropped_small_buffer),
			  (unsigned long long)u->rx_dropped_full, (unsigned long long)u->rx_dropped_oversize,
			  (unsigned long long)u->rx_dropped_small_buffer, (unsigned long long)u->tx_dropped);
	if (u->rx_coalesced)
		log_debug("user network: %llu TCP segments merged into the frames before them",
			  (unsigned long long)u->rx_coalesced);
	pthread_mutex_destroy(&u->lock);
	for (unsigned int i = 0; u->rx && i < USER_RX_SLOTS; i++)
		free(u->rx[i].data);
	free(u->rx);
	free(u->tx_buf);
	free(u);
}

static const struct net_backend_ops user_ops = {
	.name = "user",
	.send = user_send,
	.flush = user_flush,
	.recv = user_recv,
	.rx_fd = user_rx_fd,
	.set_guest_offloads = user_set_guest_offloads,
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

struct net_backend *net_user_open(const struct net_hostfwd *fwds, unsigned int nr_fwds, unsigned int mtu,
				  struct event_loop *loop, const char **why)
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
		.if_mtu = mtu,
		.if_mru = mtu,
	};
	struct net_user *u = calloc(1, sizeof(*u));
	int err;

	if (!u) {
		*why = "out of memory";
		errno = ENOMEM;
		return NULL;
	}
	u->be = (struct net_backend){ .ops = &user_ops, .queue_pairs = 1, .mtu = mtu,
				      .offloads = (1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) };
	u->max_frame = NET_ETH_OVERHEAD + mtu;
	u->loop = loop;
	u->hook = (struct event_hook){ .prepare = loop_prepare, .check = loop_check };
	u->wake = (struct event_handler){ .fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), .ready = wake_ready };
	u->rx_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&u->lock, NULL);
	if (u->wake.fd < 0 || u->rx_fd < 0) {
		*why = "cannot create an eventfd";
		goto fail;
	}
	u->rx = calloc(USER_RX_SLOTS, sizeof(*u->rx));
	u->tx_buf = malloc(NET_HDR_LEN + u->max_frame);
	if (!u->rx || !u->tx_buf) {
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
	err = event_loop_add(loop, &u->wake, EPOLLIN);
	if (err) {
		errno = -err;
		*why = "cannot watch its wakeup eventfd";
		goto fail;
	}
	u->wake_watched = true;
	if (event_loop_add_hook(loop, &u->hook)) {
		errno = ENOMEM;
		*why = "out of memory";
		goto fail;
	}
	return &u->be;
fail:
	err = errno;
	user_destroy(&u->be);
	errno = err;
	return NULL;
}
