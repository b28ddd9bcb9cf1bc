/* The user (libslirp) network backend driven as a guest would, with no VM:
 * ARP, DHCP, IPv6 router advertisement, hostfwd (TCP both ways, UDP), a guest
 * reaching the host's loopback through 10.0.2.2, dropped frames, the bounded
 * receive queue and its push-back on host sockets. slirp runs in an event
 * loop this file turns, as kvio's I/O thread would. Only 127.0.0.1 and
 * slirp's own 10.0.2.x are ever contacted. */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/net.h"
#include "config.h"
#include "core/sandbox.h"
#include "tools/offload.h"
#include "util/event_loop.h"

#define WAIT_MS 3000
#define GUEST_IP 0x0a00020f  /* 10.0.2.15 */
#define HOST_IP 0x0a000202   /* 10.0.2.2 */
#define DNS_IP 0x0a000203    /* 10.0.2.3 */
#define LOOPBACK 0x7f000001

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t slirp_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
static const uint8_t broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t zero_hdr[NET_HDR_LEN];

static struct net_backend *be;
static uint8_t rx_hdr_flags;  /* what wait_frame expects in each frame's header */
static struct event_loop loop;  /* where slirp's host sockets are watched */

struct frame {
	uint8_t b[NET_ETH_OVERHEAD + CONFIG_MAX_MTU];
	size_t len;
};

/* Byte helpers: frames are built and parsed big-endian, with no alignment assumptions. */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t eth(uint8_t *f, const uint8_t *dst, uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, guest_mac, 6);
	put16(f + 12, type);
	return 14;
}

/* An IPv4 packet with its transport header and payload already at f + 34;
 * fills the IP header and the UDP/TCP checksum (pseudo-header included). */
static size_t ipv4(uint8_t *f, const uint8_t *dst_mac, uint8_t proto, uint32_t src, uint32_t dst, size_t l4_len)
{
	uint8_t *ip = f + 14, *l4 = f + 34, pseudo[12];
	size_t csum_at = proto == IPPROTO_TCP ? 16 : 6;

	eth(f, dst_mac, 0x0800);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + l4_len));
	put16(ip + 4, 0x1234);
	ip[8] = 64;
	ip[9] = proto;
	put32(ip + 12, src);
	put32(ip + 16, dst);
	put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
	put32(pseudo, src);
	put32(pseudo + 4, dst);
	pseudo[8] = 0;
	pseudo[9] = proto;
	put16(pseudo + 10, (uint16_t)l4_len);
	put16(l4 + csum_at, 0);
	put16(l4 + csum_at, csum_fold(csum_add(csum_add(0, pseudo, 12), l4, l4_len)));
	return 34 + l4_len;
}

static size_t udp(uint8_t *f, const uint8_t *dst_mac, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
		  const void *payload, size_t len)
{
	uint8_t *u = f + 34;

	put16(u, sport);
	put16(u + 2, dport);
	put16(u + 4, (uint16_t)(8 + len));
	memcpy(u + 8, payload, len);
	return ipv4(f, dst_mac, IPPROTO_UDP, src, dst, 8 + len);
}

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_PSH 0x08
#define TCP_ACK 0x10

static size_t tcp(uint8_t *f, uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
		  uint8_t flags, const void *payload, size_t len)
{
	uint8_t *t = f + 34;

	memset(t, 0, 20);
	put16(t, sport);
	put16(t + 2, dport);
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = 5 << 4;
	t[13] = flags;
	put16(t + 14, 65535);
	if (len)
		memcpy(t + 20, payload, len);
	return ipv4(f, slirp_mac, IPPROTO_TCP, GUEST_IP, dst, 20 + len);
}

static size_t arp(uint8_t *f, const uint8_t *dst_mac, uint16_t op, const uint8_t *target_mac, uint32_t target_ip)
{
	uint8_t *a = f + 14;

	memset(f, 0, 60);  /* padded to Ethernet's minimum */
	eth(f, dst_mac, 0x0806);
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, guest_mac, 6);
	put32(a + 14, GUEST_IP);
	memcpy(a + 18, target_mac, 6);
	put32(a + 24, target_ip);
	return 60;
}

/* Hands a frame to the backend the way virtio-net does: header and frame in
 * separate buffers, then the end of a burst (of one). */
static int send_frame(const void *frame, size_t len)
{
	struct iovec iov[2] = { { (void *)zero_hdr, NET_HDR_LEN }, { (void *)frame, len } };
	int err = be->ops->send(be, 0, iov, 2);

	be->ops->flush(be, 0);
	return err;
}

/* Frame parsers: each says whether a received frame is the one a test waits for. */
typedef bool (*match_fn)(const struct frame *f, const void *arg);

static bool is_ipv4(const struct frame *f, uint8_t proto)
{
	return f->len >= 34 && get16(f->b + 12) == 0x0800 && (f->b[14] & 0xf0) == 0x40 && f->b[23] == proto;
}

static const uint8_t *l4(const struct frame *f)
{
	return f->b + 14 + (f->b[14] & 0x0f) * 4;
}

static size_t l4_len(const struct frame *f)
{
	return get16(f->b + 16) - (size_t)(f->b[14] & 0x0f) * 4;
}

static bool is_arp(const struct frame *f, uint16_t op)
{
	return f->len >= 42 && get16(f->b + 12) == 0x0806 && get16(f->b + 20) == op;
}

static bool match_arp_reply(const struct frame *f, const void *arg)
{
	(void)arg;
	return is_arp(f, 2) && get32(f->b + 28) == HOST_IP;
}

static bool match_udp_to(const struct frame *f, const void *arg)
{
	return is_ipv4(f, IPPROTO_UDP) && get16(l4(f) + 2) == *(const uint16_t *)arg;
}

static bool match_tcp_to(const struct frame *f, const void *arg)
{
	return is_ipv4(f, IPPROTO_TCP) && get16(l4(f) + 2) == *(const uint16_t *)arg;
}

static bool match_tcp_payload(const struct frame *f, const void *arg)
{
	const uint8_t *t = l4(f);
	size_t hlen = (size_t)(t[12] >> 4) * 4;

	return is_ipv4(f, IPPROTO_TCP) && l4_len(f) == hlen + strlen(arg) && !memcmp(t + hlen, arg, strlen(arg));
}

/* Receives frames until match accepts one (into *out), answering slirp's ARP
 * requests for the guest on the way, as the guest's stack would. False after ms. */
static bool wait_frame(match_fn match, const void *arg, struct frame *out, int ms)
{
	int64_t deadline = now_ms() + ms;
	uint8_t hdr[NET_HDR_LEN];

	for (;;) {
		/* The header split over two buffers, as a guest's descriptors may split it. */
		struct iovec iov[3] = { { hdr, 5 }, { hdr + 5, NET_HDR_LEN - 5 }, { out->b, sizeof(out->b) } };
		ssize_t n = be->ops->recv(be, 0, iov, 3);

		if (n == -EAGAIN) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return false;
			assert_true(event_loop_run_once(&loop, (int)left) >= 0);
			continue;
		}
		assert_true(n >= (ssize_t)(NET_HDR_LEN + 14));
		assert_int_equal(hdr[0], rx_hdr_flags);  /* flags, then nothing the guest must act on */
		assert_memory_equal(hdr + 1, zero_hdr + 1, NET_HDR_LEN - 1);
		out->len = (size_t)n - NET_HDR_LEN;
		if (is_arp(out, 1) && get32(out->b + 38) == GUEST_IP) {
			uint8_t reply[60];

			assert_int_equal(send_frame(reply, arp(reply, out->b + 6, 2, out->b + 22, get32(out->b + 28))), 0);
			continue;
		}
		if (match(out, arg))
			return true;
	}
}

/* Turns the loop until a host socket is readable; false after ms. */
static bool wait_host_readable(int fd, int ms)
{
	int64_t deadline = now_ms() + ms;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (poll(&p, 1, 0) == 0) {
		int64_t left = deadline - now_ms();

		if (left <= 0)
			return false;
		assert_true(event_loop_run_once(&loop, left < 10 ? (int)left : 10) >= 0);
	}
	return true;
}

/* Tells slirp the guest's MAC, as a guest's first ARP does, and checks the reply. */
static void guest_arp(struct frame *reply)
{
	uint8_t req[60];
	static const uint8_t unknown[6];

	assert_int_equal(send_frame(req, arp(req, broadcast, 1, unknown, HOST_IP)), 0);
	assert_true(wait_frame(match_arp_reply, NULL, reply, WAIT_MS));
}

/* A port on 127.0.0.1 nothing listens on right now (the kernel's next ephemeral one). */
static uint16_t free_port(int type)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(LOOPBACK) };
	socklen_t alen = sizeof(a);
	int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);

	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);
	close(s);
	return ntohs(a.sin_port);
}

static struct net_backend *open_user_mtu(const struct net_hostfwd *fwds, unsigned int n, unsigned int mtu)
{
	const char *why = NULL;

	be = net_user_open(fwds, n, mtu, &loop, &why);
	if (!be)
		fail_msg("net_user_open: %s: %s", why, strerror(errno));
	return be;
}

static struct net_backend *open_user(const struct net_hostfwd *fwds, unsigned int n)
{
	return open_user_mtu(fwds, n, 1500);
}

static int teardown(void **state)
{
	(void)state;
	if (be)
		be->ops->destroy(be);
	be = NULL;
	rx_hdr_flags = 0;
	return 0;
}

static void test_shape(void **state)
{
	(void)state;
	open_user(NULL, 0);
	assert_int_equal(be->queue_pairs, 1);
	assert_int_equal(be->offloads, (1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_TSO4));
	assert_string_equal(be->ops->name, "user");
	assert_true(be->ops->rx_fd(be, 0) >= 0);
}

static void test_arp_reply(void **state)
{
	struct frame f;
	const uint8_t *a = f.b + 14;

	(void)state;
	open_user(NULL, 0);
	guest_arp(&f);
	assert_memory_equal(f.b, guest_mac, 6);          /* to the guest */
	assert_memory_equal(f.b + 6, slirp_mac, 6);      /* from slirp */
	assert_memory_equal(a + 8, slirp_mac, 6);        /* 10.0.2.2 is at slirp's MAC */
	assert_int_equal(get32(a + 14), HOST_IP);
	assert_memory_equal(a + 18, guest_mac, 6);
	assert_int_equal(get32(a + 24), GUEST_IP);
}

/* Finds DHCP option code in a BOOTP reply's options; its length in *len. */
static const uint8_t *dhcp_option(const uint8_t *opt, size_t room, uint8_t code, size_t *len)
{
	for (size_t i = 0; i < room && opt[i] != 255;) {
		if (opt[i] == 0) {
			i++;
			continue;
		}
		if (i + 2 > room || i + 2 + opt[i + 1] > room)
			break;
		if (opt[i] == code) {
			*len = opt[i + 1];
			return opt + i + 2;
		}
		i += 2 + (size_t)opt[i + 1];
	}
	return NULL;
}

static void test_dhcp_offer(void **state)
{
	uint8_t bootp[548] = { 0 }, frame[NET_MAX_FRAME];
	static const uint8_t options[] = { 99, 130, 83, 99, 53, 1, 1, 55, 3, 1, 3, 6, 255 };
	uint16_t client_port = 68;
	const uint8_t *b, *opt;
	struct frame f;
	size_t len;

	(void)state;
	open_user(NULL, 0);
	bootp[0] = 1;   /* BOOTREQUEST */
	bootp[1] = 1;   /* Ethernet */
	bootp[2] = 6;
	put32(bootp + 4, 0xdeadbeef);
	memcpy(bootp + 28, guest_mac, 6);
	memcpy(bootp + 236, options, sizeof(options));
	assert_int_equal(send_frame(frame, udp(frame, broadcast, 0, 68, 0xffffffff, 67, bootp, sizeof(bootp))), 0);

	assert_true(wait_frame(match_udp_to, &client_port, &f, WAIT_MS));
	/* A client without an address may only take broadcasts; slirp sends the offer so. */
	assert_true(!memcmp(f.b, broadcast, 6) || !memcmp(f.b, guest_mac, 6));
	assert_int_equal(get32(f.b + 26), HOST_IP);      /* from the DHCP server, 10.0.2.2 */
	assert_int_equal(get16(l4(&f)), 67);
	b = l4(&f) + 8;
	assert_true(l4_len(&f) >= 8 + 240);
	assert_int_equal(b[0], 2);                        /* BOOTREPLY */
	assert_int_equal(get32(b + 4), 0xdeadbeef);
	assert_int_equal(get32(b + 16), GUEST_IP);        /* yiaddr: the first lease */
	assert_memory_equal(b + 28, guest_mac, 6);
	assert_int_equal(get32(b + 236), 0x63825363);
	opt = dhcp_option(b + 240, l4_len(&f) - 8 - 240, 53, &len);
	assert_non_null(opt);
	assert_int_equal(len, 1);
	assert_int_equal(opt[0], 2);                      /* DHCPOFFER */
	opt = dhcp_option(b + 240, l4_len(&f) - 8 - 240, 1, &len);
	assert_true(opt && len == 4 && get32(opt) == 0xffffff00);
	opt = dhcp_option(b + 240, l4_len(&f) - 8 - 240, 3, &len);
	assert_true(opt && len >= 4 && get32(opt) == HOST_IP);
	opt = dhcp_option(b + 240, l4_len(&f) - 8 - 240, 6, &len);
	assert_true(opt && len >= 4 && get32(opt) == DNS_IP);
}

/* A host connection through a hostfwd rule reaches the "guest" as a SYN; after
 * the guest's SYN-ACK, bytes flow both ways. */
static void test_hostfwd_tcp(void **state)
{
	struct net_hostfwd fwd = { .host_addr = htonl(LOOPBACK), .host_port = free_port(SOCK_STREAM),
				   .guest_port = 2222 };  /* guest address 0: 10.0.2.15 */
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(LOOPBACK),
				  .sin_port = htons(fwd.host_port) };
	uint16_t guest_port = 2222, peer_port;
	uint32_t peer_ip, peer_seq;
	uint8_t frame[NET_MAX_FRAME];
	struct frame f;
	const uint8_t *t;
	char got[8] = { 0 };
	int s;

	(void)state;
	open_user(&fwd, 1);
	guest_arp(&f);
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(connect(s, (struct sockaddr *)&to, sizeof(to)), 0);

	assert_true(wait_frame(match_tcp_to, &guest_port, &f, WAIT_MS));
	t = l4(&f);
	assert_memory_equal(f.b, guest_mac, 6);
	assert_int_equal(get32(f.b + 30), GUEST_IP);
	assert_int_equal(t[13] & (TCP_SYN | TCP_ACK), TCP_SYN);
	peer_ip = get32(f.b + 26);
	peer_port = get16(t);
	peer_seq = get32(t + 4) + 1;

	assert_int_equal(send_frame(frame, tcp(frame, peer_ip, 2222, peer_port, 1000, peer_seq, TCP_SYN | TCP_ACK,
					       NULL, 0)), 0);
	assert_int_equal(write(s, "hello", 5), 5);
	assert_true(wait_frame(match_tcp_payload, "hello", &f, WAIT_MS));
	assert_int_equal(get16(l4(&f) + 2), 2222);
	assert_int_equal(get32(l4(&f) + 4), peer_seq);
	assert_int_equal(get32(l4(&f) + 8), 1001);

	assert_int_equal(send_frame(frame, tcp(frame, peer_ip, 2222, peer_port, 1001, peer_seq + 5,
					       TCP_PSH | TCP_ACK, "world", 5)), 0);
	assert_true(wait_host_readable(s, WAIT_MS));
	assert_int_equal(read(s, got, sizeof(got)), 5);
	assert_string_equal(got, "world");
	close(s);
}

static void test_hostfwd_udp(void **state)
{
	struct net_hostfwd fwd = { .udp = true, .host_addr = htonl(LOOPBACK), .host_port = free_port(SOCK_DGRAM),
				   .guest_addr = htonl(GUEST_IP), .guest_port = 5000 };
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(LOOPBACK),
				  .sin_port = htons(fwd.host_port) };
	uint16_t guest_port = 5000;
	struct frame f;
	int s;

	(void)state;
	open_user(&fwd, 1);
	guest_arp(&f);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(sendto(s, "ping", 4, 0, (struct sockaddr *)&to, sizeof(to)), 4);
	assert_true(wait_frame(match_udp_to, &guest_port, &f, WAIT_MS));
	assert_int_equal(get32(f.b + 30), GUEST_IP);
	assert_int_equal(l4_len(&f), 8 + 4);
	assert_memory_equal(l4(&f) + 8, "ping", 4);
	close(s);
}

/* The link's MTU is slirp's: at 65520 an 8000-byte datagram crosses in one
 * frame each way; at 1500 it reaches the guest in fragments, and the guest's
 * frame longer than the link is refused. */
static void test_link_mtu(void **state)
{
	struct net_hostfwd fwd = { .udp = true, .host_addr = htonl(LOOPBACK), .host_port = free_port(SOCK_DGRAM),
				   .guest_addr = htonl(GUEST_IP), .guest_port = 5000 };
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(LOOPBACK),
				  .sin_port = htons(fwd.host_port) };
	static uint8_t payload[8000], reply[NET_ETH_OVERHEAD + 8100], got[8100];
	static struct frame f;
	uint16_t guest_port = 5000;
	int s;

	(void)state;
	memset(payload, 0x5a, sizeof(payload));
	open_user_mtu(&fwd, 1, CONFIG_MAX_MTU);
	assert_int_equal(be->mtu, CONFIG_MAX_MTU);
	guest_arp(&f);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(sendto(s, payload, sizeof(payload), 0, (struct sockaddr *)&to, sizeof(to)), sizeof(payload));
	assert_true(wait_frame(match_udp_to, &guest_port, &f, WAIT_MS));
	assert_int_equal(get16(f.b + 20) & 0x3fff, 0);  /* not a fragment */
	assert_int_equal(l4_len(&f), 8 + sizeof(payload));
	assert_memory_equal(l4(&f) + 8, payload, sizeof(payload));
	/* The guest answers the forwarded peer as large: the host socket gets it whole. */
	assert_int_equal(send_frame(reply, udp(reply, slirp_mac, GUEST_IP, 5000, get32(f.b + 26), get16(l4(&f)),
					       payload, sizeof(payload))), 0);
	assert_true(wait_host_readable(s, WAIT_MS));
	assert_int_equal(recv(s, got, sizeof(got), 0), sizeof(payload));
	close(s);
	teardown(state);

	fwd.host_port = free_port(SOCK_DGRAM);
	to.sin_port = htons(fwd.host_port);
	open_user(&fwd, 1);
	guest_arp(&f);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(sendto(s, payload, sizeof(payload), 0, (struct sockaddr *)&to, sizeof(to)), sizeof(payload));
	assert_true(wait_frame(match_udp_to, &guest_port, &f, WAIT_MS));
	assert_true(get16(f.b + 20) & 0x2000);  /* more fragments follow */
	assert_true(f.len <= NET_MAX_FRAME);
	assert_int_equal(send_frame(reply, udp(reply, slirp_mac, GUEST_IP, 5000, get32(f.b + 26), 9,
					       payload, sizeof(payload))), -EMSGSIZE);
	close(s);
}

/* IPv4 header and TCP/UDP checksums, pseudo-header included, as the guest would check them. */
static bool checksums_valid(const struct frame *f)
{
	const uint8_t *ip = f->b + 14;
	uint8_t pseudo[12];

	put32(pseudo, get32(ip + 12));
	put32(pseudo + 4, get32(ip + 16));
	pseudo[8] = 0;
	pseudo[9] = ip[9];
	put16(pseudo + 10, (uint16_t)l4_len(f));
	return csum_fold(csum_add(0, ip, (size_t)(ip[0] & 0x0f) * 4)) == 0 &&
	       csum_fold(csum_add(csum_add(0, pseudo, 12), l4(f), l4_len(f))) == 0;
}

/* A guest that takes checksums the device vouches for (GUEST_CSUM) gets
 * slirp's frames marked DATA_VALID, and they are; one that turns it off
 * (ethtool -K rx off: the control queue's GUEST_OFFLOADS_SET) gets them unmarked. */
static void test_marks_checksums_valid_when_the_guest_takes_them(void **state)
{
	struct net_hostfwd fwds[2] = {
		{ .host_addr = htonl(LOOPBACK), .host_port = free_port(SOCK_STREAM), .guest_port = 2222 },
		{ .udp = true, .host_addr = htonl(LOOPBACK), .host_port = free_port(SOCK_DGRAM), .guest_port = 5000 },
	};
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(LOOPBACK) };
	uint16_t tcp_port = 2222, udp_port = 5000;
	struct frame f;
	int t, u;

	(void)state;
	open_user(fwds, 2);
	assert_int_equal(be->ops->set_guest_offloads(be, 1ULL << VIRTIO_NET_F_GUEST_CSUM), 0);
	rx_hdr_flags = VIRTIO_NET_HDR_F_DATA_VALID;
	guest_arp(&f);

	t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(t >= 0);
	to.sin_port = htons(fwds[0].host_port);
	assert_int_equal(connect(t, (struct sockaddr *)&to, sizeof(to)), 0);
	assert_true(wait_frame(match_tcp_to, &tcp_port, &f, WAIT_MS));
	assert_true(checksums_valid(&f));

	u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(u >= 0);
	to.sin_port = htons(fwds[1].host_port);
	assert_int_equal(sendto(u, "ping", 4, 0, (struct sockaddr *)&to, sizeof(to)), 4);
	assert_true(wait_frame(match_udp_to, &udp_port, &f, WAIT_MS));
	assert_true(checksums_valid(&f));

	assert_int_equal(be->ops->set_guest_offloads(be, 0), 0);
	rx_hdr_flags = 0;
	assert_int_equal(sendto(u, "pong", 4, 0, (struct sockaddr *)&to, sizeof(to)), 4);
	assert_true(wait_frame(match_udp_to, &udp_port, &f, WAIT_MS));
	assert_memory_equal(l4(&f) + 8, "pong", 4);
	close(u);
	close(t);
}

/* Accepts hostfwd's connection to the guest's port 2222 as the guest would
 * (SYN+ACK, sequence number 1000, window 65535): the peer's address and
 * port, and the sequence number of its first data byte. */
static void accept_hostfwd(uint32_t *peer_ip, uint16_t *peer_port, uint32_t *peer_seq)
{
	uint16_t guest_port = 2222;
	uint8_t frame[NET_MAX_FRAME];
	struct frame f;

	assert_true(wait_frame(match_tcp_to, &guest_port, &f, WAIT_MS));
	assert_int_equal(l4(&f)[13] & (TCP_SYN | TCP_ACK), TCP_SYN);
	*peer_ip = get32(f.b + 26);
	*peer_port = get16(l4(&f));
	*peer_seq = get32(l4(&f) + 4) + 1;
	assert_int_equal(send_frame(frame, tcp(frame, *peer_ip, 2222, *peer_port, 1000, *peer_seq,
					       TCP_SYN | TCP_ACK, NULL, 0)), 0);
}

/* A guest that takes TSO frames (GUEST_TSO4) gets the segments slirp cuts
 * 40000 bytes into at a 1500-byte MTU merged into few GSO frames, each one
 * that kvio-switch's checks pass (segment size 1460, NEEDS_CSUM), with the
 * bytes in order; one that turns TSO off (ethtool -K lro off) gets plain
 * segments marked DATA_VALID again. */
static void test_merges_tcp_segments_for_a_tso_guest(void **state)
{
	struct net_hostfwd fwd = { .host_addr = htonl(LOOPBACK), .host_port = free_port(SOCK_STREAM),
				   .guest_port = 2222 };
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(LOOPBACK),
				  .sin_port = htons(fwd.host_port) };
	static uint8_t sent[40000], got[sizeof(sent)], buf[NET_HDR_LEN + NET_MAX_GSO_FRAME], ack[NET_MAX_FRAME];
	const uint64_t csum = 1ULL << VIRTIO_NET_F_GUEST_CSUM, tso4 = 1ULL << VIRTIO_NET_F_GUEST_TSO4;
	uint32_t peer_ip, peer_seq;
	uint16_t peer_port;
	struct frame f;
	int s;

	(void)state;
	open_user(&fwd, 1);
	assert_true(be->offloads & tso4);
	assert_int_equal(be->ops->set_guest_offloads(be, csum | tso4), 0);
	rx_hdr_flags = VIRTIO_NET_HDR_F_DATA_VALID;
	guest_arp(&f);
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(connect(s, (struct sockaddr *)&to, sizeof(to)), 0);
	accept_hostfwd(&peer_ip, &peer_port, &peer_seq);
	for (size_t i = 0; i < sizeof(sent); i++)
		sent[i] = (uint8_t)(i * 7 + i / 251);

	for (int round = 0; round < 2; round++) {
		unsigned int frames = 0, gso_frames = 0;
		size_t have = 0;
		int64_t deadline = now_ms() + WAIT_MS;

		assert_int_equal(write(s, sent, sizeof(sent)), (ssize_t)sizeof(sent));
		while (have < sizeof(sent)) {
			struct iovec iov = { buf, sizeof(buf) };
			ssize_t n = be->ops->recv(be, 0, &iov, 1);
			struct virtio_net_hdr_v1 vh;
			const uint8_t *t, *e = buf + NET_HDR_LEN;
			size_t data, len;
			const char *why = NULL;

			if (n == -EAGAIN) {
				assert_true(now_ms() < deadline);
				assert_true(event_loop_run_once(&loop, 10) >= 0);
				continue;
			}
			assert_true(n >= (ssize_t)(NET_HDR_LEN + 54));
			len = (size_t)n - NET_HDR_LEN;
			memcpy(&vh, buf, sizeof(vh));
			t = e + 34;
			assert_int_equal(get16(e + 12), 0x0800);
			assert_int_equal(get16(t + 2), 2222);
			data = len - 34 - (size_t)(t[12] >> 4) * 4;
			if (!data)
				continue;  /* an ACK of the handshake */
			assert_int_equal(get32(t + 4), peer_seq + (uint32_t)have);
			assert_true(have + data <= sizeof(sent));
			memcpy(got + have, t + (t[12] >> 4) * 4, data);
			have += data;
			frames++;
			/* Acknowledged as it comes, as a guest does: slirp's window opens from one segment. */
			assert_int_equal(send_frame(ack, tcp(ack, peer_ip, 2222, peer_port, 1001, peer_seq + (uint32_t)have,
							     TCP_ACK, NULL, 0)), 0);
			if (round == 0 && vh.gso_type == VIRTIO_NET_HDR_GSO_TCPV4) {
				gso_frames++;
				assert_true(le16toh(vh.gso_size) >= 1400 && le16toh(vh.gso_size) <= 1460);
				assert_int_equal(vh.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
				assert_int_equal(offload_check(&vh, e, len, OFFLOAD_CSUM | OFFLOAD_TSO4, &why), 0);
			} else {
				assert_int_equal(vh.gso_type, VIRTIO_NET_HDR_GSO_NONE);
				assert_int_equal(vh.flags, VIRTIO_NET_HDR_F_DATA_VALID);
				assert_true(len <= NET_MAX_FRAME);
			}
		}
		assert_memory_equal(got, sent, sizeof(sent));
		if (round == 0) {
			/* At least 28 segments of at most 1460 bytes, in fewer frames. */
			assert_true(gso_frames >= 1);
			assert_true(frames <= 20);
			assert_int_equal(be->ops->set_guest_offloads(be, csum), 0);
		} else {
			assert_true(frames >= 28);
		}
		peer_seq += sizeof(sent);
	}
	close(s);
}

/* The guest connects out to 10.0.2.2:PORT and reaches the host's 127.0.0.1:PORT
 * (QEMU's default): slirp_input opens a socket, which the loop's next wait watches. */
static void test_guest_connects_to_host_loopback(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(LOOPBACK) };
	socklen_t alen = sizeof(a);
	uint16_t guest_port = 40000, port;
	uint8_t frame[NET_MAX_FRAME];
	struct frame f;
	int ls, s;

	(void)state;
	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(ls >= 0);
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(ls, 1), 0);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
	port = ntohs(a.sin_port);
	open_user(NULL, 0);
	guest_arp(&f);

	assert_int_equal(send_frame(frame, tcp(frame, HOST_IP, guest_port, port, 5000, 0, TCP_SYN, NULL, 0)), 0);
	assert_true(wait_frame(match_tcp_to, &guest_port, &f, WAIT_MS));
	assert_int_equal(l4(&f)[13] & (TCP_SYN | TCP_ACK), TCP_SYN | TCP_ACK);
	assert_int_equal(get32(f.b + 26), HOST_IP);
	assert_int_equal(get16(l4(&f)), port);
	assert_int_equal(get32(l4(&f) + 8), 5001);
	assert_true(wait_host_readable(ls, WAIT_MS));
	s = accept(ls, NULL, NULL);
	assert_true(s >= 0);
	close(s);
	close(ls);
}

static bool match_router_advert(const struct frame *f, const void *arg)
{
	(void)arg;
	return f->len >= 54 + 16 && get16(f->b + 12) == 0x86dd && f->b[20] == 58 && f->b[54] == 134;
}

/* IPv6 is on with QEMU's defaults: a router solicitation gets fec0::/64 advertised. */
static void test_ipv6_router_advert(void **state)
{
	static const uint8_t all_routers_mac[6] = { 0x33, 0x33, 0, 0, 0, 2 };
	uint8_t rs[14 + 40 + 8] = { 0 }, pseudo[40] = { 0 }, *ip = rs + 14, *icmp = rs + 54;
	const uint8_t *opt, *end;
	struct frame f;

	(void)state;
	open_user(NULL, 0);
	eth(rs, all_routers_mac, 0x86dd);
	ip[0] = 0x60;
	put16(ip + 4, 8);
	ip[6] = 58;    /* ICMPv6 */
	ip[7] = 255;   /* NDP insists: never forwarded */
	ip[8] = 0xfe;  /* fe80::5054:ff:fe12:3456, from the guest's MAC */
	ip[9] = 0x80;
	memcpy(ip + 16, "\x50\x54\x00\xff\xfe\x12\x34\x56", 8);
	ip[24] = 0xff;  /* ff02::2, all routers */
	ip[25] = 0x02;
	ip[39] = 2;
	icmp[0] = 133;  /* router solicitation */
	memcpy(pseudo, ip + 8, 32);
	put32(pseudo + 32, 8);
	pseudo[39] = 58;
	put16(icmp + 2, csum_fold(csum_add(csum_add(0, pseudo, 40), icmp, 8)));
	assert_int_equal(send_frame(rs, sizeof(rs)), 0);

	assert_true(wait_frame(match_router_advert, NULL, &f, WAIT_MS));
	assert_int_equal(get16(f.b + 22), 0xfe80);  /* from the router's link-local address */
	/* Options follow the 16-byte advertisement: find the prefix information (type 3). */
	opt = f.b + 54 + 16;
	end = f.b + 54 + get16(f.b + 18);
	assert_true(end <= f.b + f.len);
	while (opt + 2 <= end && opt[1] && opt[0] != 3)
		opt += opt[1] * 8;
	assert_true(opt + 32 <= end && opt[0] == 3);
	assert_int_equal(opt[2], 64);
	assert_memory_equal(opt + 16, "\xfe\xc0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
}

static void test_hostfwd_port_in_use(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(LOOPBACK) };
	socklen_t alen = sizeof(a);
	struct net_hostfwd fwds[2] = {
		{ .host_addr = htonl(LOOPBACK), .host_port = free_port(SOCK_STREAM), .guest_port = 80 },
		{ .host_addr = htonl(LOOPBACK), .guest_port = 22 },
	};
	const char *why = NULL;
	char expect[64];
	int ls;

	(void)state;
	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(ls >= 0);
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(ls, 1), 0);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
	fwds[1].host_port = ntohs(a.sin_port);

	errno = 0;
	assert_null(net_user_open(fwds, 2, 1500, &loop, &why));
	assert_int_equal(errno, EADDRINUSE);
	assert_non_null(why);
	snprintf(expect, sizeof(expect), "hostfwd=tcp:127.0.0.1:%u-:22", fwds[1].host_port);
	if (!strstr(why, expect))
		fail_msg("why is '%s', expected it to name '%s'", why, expect);
	close(ls);

	/* The first rule's listener went with the failed backend: its port is free again. */
	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sin_port = htons(fwds[0].host_port);
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	close(ls);
}

static void test_hostfwd_guest_outside_network(void **state)
{
	struct net_hostfwd fwd = { .host_addr = htonl(LOOPBACK), .host_port = free_port(SOCK_STREAM),
				   .guest_addr = htonl(0xc0a80001), .guest_port = 22 };
	const char *why = NULL;

	(void)state;
	assert_null(net_user_open(&fwd, 1, 1500, &loop, &why));
	assert_non_null(strstr(why, "192.168.0.1:22"));
	assert_non_null(strstr(why, "10.0.2.0/24"));
}

/* Frames a correct guest never sends are dropped without reaching slirp; the
 * backend keeps working. */
static void test_drops_malformed_frames(void **state)
{
	uint8_t req[60], big[NET_MAX_FRAME + 10] = { 0 };
	static const uint8_t unknown[6];
	struct virtio_net_hdr_v1 hdr = { 0 };
	struct iovec iov[2] = { { &hdr, NET_HDR_LEN }, { req, sizeof(req) } };
	struct iovec short_hdr = { &hdr, NET_HDR_LEN - 1 };
	struct frame f;

	(void)state;
	open_user(NULL, 0);
	arp(req, broadcast, 1, unknown, HOST_IP);

	assert_int_equal(be->ops->send(be, 0, &short_hdr, 1), -EINVAL);
	assert_int_equal(be->ops->send(be, 0, iov, 0), -EINVAL);
	iov[1].iov_len = 13;  /* a header and not even an Ethernet header */
	assert_int_equal(be->ops->send(be, 0, iov, 2), -EINVAL);
	iov[1].iov_len = sizeof(req);
	hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	assert_int_equal(be->ops->send(be, 0, iov, 2), -EINVAL);
	hdr.flags = 0;
	hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	hdr.gso_size = 1448;
	assert_int_equal(be->ops->send(be, 0, iov, 2), -EINVAL);
	hdr = (struct virtio_net_hdr_v1){ 0 };
	memcpy(big, req, sizeof(req));
	iov[1] = (struct iovec){ big, sizeof(big) };
	assert_int_equal(be->ops->send(be, 0, iov, 2), -EMSGSIZE);
	/* None of those ARP requests got through. */
	assert_false(wait_frame(match_arp_reply, NULL, &f, 200));

	/* A reply that does not fit the buffers offered is dropped, not cut. */
	assert_int_equal(send_frame(req, sizeof(req)), 0);
	{
		struct pollfd p = { .fd = be->ops->rx_fd(be, 0), .events = POLLIN };
		uint8_t small[NET_HDR_LEN + 20];
		struct iovec s = { small, sizeof(small) };

		assert_int_equal(poll(&p, 1, WAIT_MS), 1);
		assert_int_equal(be->ops->recv(be, 0, &s, 1), -EAGAIN);
	}
	guest_arp(&f);
}

/* A guest that stops taking frames meets a bounded queue, like a full NIC ring;
 * once it drains the queue, traffic flows again. */
static void test_receive_queue_is_bounded(void **state)
{
	static const uint8_t unknown[6];
	uint8_t req[60], buf[NET_HDR_LEN + NET_MAX_FRAME];
	struct iovec iov = { buf, sizeof(buf) };
	unsigned int queued = 0;
	struct frame f;

	(void)state;
	open_user(NULL, 0);
	arp(req, broadcast, 1, unknown, HOST_IP);
	/* slirp answers an ARP request within slirp_input, so all replies are queued when send returns. */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(send_frame(req, sizeof(req)), 0);
	while (be->ops->recv(be, 0, &iov, 1) > 0)
		queued++;
	assert_true(queued >= 100 && queued < 1000);
	guest_arp(&f);
}

/* While more than half the queue waits for the guest, slirp leaves its host
 * sockets unread (TCP's window pushes back on the host peer instead of frames
 * being dropped); once the guest takes the frames, it reads them again. */
static void test_full_queue_pushes_back_on_host_sockets(void **state)
{
	struct net_hostfwd fwd = { .udp = true, .host_addr = htonl(LOOPBACK), .host_port = free_port(SOCK_DGRAM),
				   .guest_addr = htonl(GUEST_IP), .guest_port = 5000 };
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(LOOPBACK),
				  .sin_port = htons(fwd.host_port) };
	static const uint8_t unknown[6];
	uint16_t guest_port = 5000;
	uint8_t req[60];
	struct frame f;
	unsigned int arp_replies = 0, others = 0;
	int s;

	(void)state;
	open_user(&fwd, 1);
	guest_arp(&f);
	arp(req, broadcast, 1, unknown, HOST_IP);
	for (int i = 0; i < 200; i++)  /* answered within slirp_input: 200 frames wait */
		assert_int_equal(send_frame(req, sizeof(req)), 0);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(sendto(s, "ping", 4, 0, (struct sockaddr *)&to, sizeof(to)), 4);
	for (int i = 0; i < 3; i++)
		assert_true(event_loop_run_once(&loop, 50) >= 0);
	for (;;) {
		uint8_t hdr[NET_HDR_LEN];
		struct iovec iov[2] = { { hdr, sizeof(hdr) }, { f.b, sizeof(f.b) } };
		ssize_t n = be->ops->recv(be, 0, iov, 2);

		if (n == -EAGAIN)
			break;
		assert_true(n >= (ssize_t)(NET_HDR_LEN + 14));
		f.len = (size_t)n - NET_HDR_LEN;
		if (is_arp(&f, 2))
			arp_replies++;
		else
			others++;
	}
	assert_int_equal(arp_replies, 200);
	assert_int_equal(others, 0);  /* the datagram still waits in the host socket */
	assert_true(wait_frame(match_udp_to, &guest_port, &f, WAIT_MS));
	assert_memory_equal(l4(&f) + 8, "ping", 4);
	close(s);
}

/* rx_fd is readable exactly while frames wait: edge-triggered readers see every new batch. */
static void test_rx_fd_resets_and_rearms(void **state)
{
	struct pollfd p;
	struct frame f;
	uint8_t buf[NET_HDR_LEN + NET_MAX_FRAME];
	struct iovec iov = { buf, sizeof(buf) };

	(void)state;
	open_user(NULL, 0);
	p = (struct pollfd){ .fd = be->ops->rx_fd(be, 0), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 0), 0);
	for (int round = 0; round < 3; round++) {
		guest_arp(&f);
		assert_int_equal(be->ops->recv(be, 0, &iov, 1), -EAGAIN);
		assert_int_equal(poll(&p, 1, 0), 0);
	}
}

#define T(f) cmocka_unit_test_teardown(f, teardown)

#define NET_USER_TESTS                                   \
	T(test_shape),                                   \
	T(test_arp_reply),                               \
	T(test_dhcp_offer),                              \
	T(test_hostfwd_tcp),                             \
	T(test_hostfwd_udp),                             \
	T(test_marks_checksums_valid_when_the_guest_takes_them), \
	T(test_merges_tcp_segments_for_a_tso_guest),     \
	T(test_link_mtu),                                \
	T(test_guest_connects_to_host_loopback),         \
	T(test_ipv6_router_advert),                      \
	T(test_hostfwd_port_in_use),                     \
	T(test_hostfwd_guest_outside_network),           \
	T(test_drops_malformed_frames),                  \
	T(test_rx_fd_resets_and_rearms),                 \
	T(test_receive_queue_is_bounded),                \
	T(test_full_queue_pushes_back_on_host_sockets)

/* The tests above once more in a child under kvio's seccomp filter for
 * --net user (core/sandbox.c), so that what libslirp does in the loop and
 * in slirp_input is on the list. Stricter than kvio, which starts the backend
 * before the filter. The child's output is shown only if it fails. */
static void test_all_under_seccomp(void **state)
{
	static const struct CMUnitTest tests[] = { NET_USER_TESTS };
	static char log[1 << 16];
	static struct vm_config cfg;
	size_t got = 0;
	int pipefd[2], status;
	ssize_t n;
	pid_t pid;

	(void)state;
	fflush(stdout);
	fflush(stderr);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		dup2(pipefd[1], STDERR_FILENO);
		cfg.nr_nics = 1;
		cfg.nics[0].backend = NET_BACKEND_USER;
		if (sandbox_install(&cfg))
			_exit(101);
		exit(cmocka_run_group_tests_name("net_user under seccomp", tests, NULL, NULL) ? 1 : 0);
	}
	close(pipefd[1]);
	while ((n = read(pipefd[0], log + got, sizeof(log) - 1 - got)) > 0)
		got += (size_t)n;
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("under seccomp: status %#x:\n%s", status, log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		NET_USER_TESTS,
		cmocka_unit_test(test_all_under_seccomp),
	};

	/* As kvio does: a host peer that went away must not kill the process when slirp writes to it. */
	signal(SIGPIPE, SIG_IGN);
	if (event_loop_init(&loop)) {
		perror("event_loop_init");
		return 1;
	}
	return cmocka_run_group_tests_name("net_user", tests, NULL, NULL);
}
