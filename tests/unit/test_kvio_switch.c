/* kvio-switch's core (tools/switch.c) with test frontends on its ports:
 * flooding, learning, unicast, drops without RX buffers, mergeable RX
 * buffers, the uplink, the TX budget, a port whose guest breaks its ring,
 * and fifty reconnections without a leaked fd; then offloads: TSO frames
 * and partial checksums passed as they are between ports that negotiated
 * them, checksums finished and TCPv4/v6 frames segmented for a port that did
 * not (checked against checksums computed here), hostile headers dropped,
 * and the uplink's offloads both ways. */
#include "unit.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "tools/switch.h"
#include "util/iov.h"
#include "util/log.h"
#include "vhost_user_frontend.h"

#define RAM_SIZE (4ULL << 20)
#define QSIZE 512
#define NPORTS 3
#define HDR sizeof(struct virtio_net_hdr_v1)
#define FEATURES ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_NET_F_MRG_RXBUF) | \
		  (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC))
#define OFFLOADS ((1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_HOST_TSO4) | \
		  (1ULL << VIRTIO_NET_F_HOST_TSO6) | (1ULL << VIRTIO_NET_F_HOST_ECN) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) | \
		  (1ULL << VIRTIO_NET_F_GUEST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_ECN))
/* The largest frame a port may send: 64 KiB less one of IP packet, Ethernet and VLAN headers. */
#define FRAME_MAX (65535 + 14 + 4)
#define RXQ VSWITCH_RXQ
#define TXQ VSWITCH_TXQ

static const uint8_t mac_a[6] = { 0x52, 0x54, 0, 0, 0, 0xa };
static const uint8_t mac_b[6] = { 0x52, 0x54, 0, 0, 0, 0xb };
static const uint8_t mac_c[6] = { 0x52, 0x54, 0, 0, 0, 0xc };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static struct vswitch *sw;
static struct vuf fe[NPORTS];
static bool fe_up[NPORTS];
static uint64_t port_features[NPORTS];  /* what connect_port acks */

static int pump_switch(void *ctx)
{
	(void)ctx;
	for (unsigned int i = 0; i < 10000 && vswitch_poll(sw, 0) > 0; i++)
		;
	return 0;
}

static void connect_port(unsigned int port)
{
	struct vuf *f = &fe[port];

	vuf_init(f, RAM_SIZE, 0);
	assert_int_equal(vswitch_connect(sw, port, f->peer), 0);
	f->peer = -1;
	f->pump = pump_switch;
	assert_int_equal(vuf_start(f, port_features[port], 1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK, 2, QSIZE), 0);
	assert_true(vswitch_connected(sw, port));
	fe_up[port] = true;
}

static void disconnect_port(unsigned int port)
{
	vuf_destroy(&fe[port]);
	fe_up[port] = false;
	pump_switch(NULL);
	assert_false(vswitch_connected(sw, port));
}

/* --- a fake uplink: frames handed to it are kept, frames it has are queued --- */

#define UPLINK_FRAMES 16
#define UPLINK_FRAME_SIZE (HDR + FRAME_MAX + 64)

struct fake_uplink {
	struct net_backend be;
	int efd;
	uint8_t sent[UPLINK_FRAMES][UPLINK_FRAME_SIZE];
	size_t sent_len[UPLINK_FRAMES];
	unsigned int nsent;
	uint8_t queued[UPLINK_FRAMES][UPLINK_FRAME_SIZE];
	size_t queued_len[UPLINK_FRAMES];
	unsigned int nqueued;
	uint64_t guest_offloads;   /* what set_guest_offloads was told */
	unsigned int offload_calls;
	bool refuse_offloads;      /* set_guest_offloads fails */
	bool destroyed;
};

static struct fake_uplink uplink;

static int uplink_send(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	(void)be, (void)qp;
	if (uplink.nsent == UPLINK_FRAMES)
		return -EAGAIN;
	uplink.sent_len[uplink.nsent] = iov_to_buf(iov, n, uplink.sent[uplink.nsent], UPLINK_FRAME_SIZE);
	uplink.nsent++;
	return 0;
}

static ssize_t uplink_recv(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	uint64_t count;
	size_t len;

	(void)be, (void)qp;
	if (!uplink.nqueued) {
		if (read(uplink.efd, &count, sizeof(count)) < 0) {
			/* already clear */
		}
		return -EAGAIN;
	}
	len = uplink.queued_len[--uplink.nqueued];
	return (ssize_t)iov_from_buf(iov, n, uplink.queued[uplink.nqueued], len);  /* cut short as a tap would */
}

static int uplink_rx_fd(struct net_backend *be, unsigned int qp)
{
	(void)be, (void)qp;
	return uplink.efd;
}

static void uplink_destroy(struct net_backend *be)
{
	(void)be;
	close(uplink.efd);
	uplink.destroyed = true;
}

static int uplink_set_guest_offloads(struct net_backend *be, uint64_t features)
{
	(void)be;
	uplink.guest_offloads = features;
	uplink.offload_calls++;
	return uplink.refuse_offloads ? -EINVAL : 0;
}

static const struct net_backend_ops uplink_ops = {
	.name = "fake", .send = uplink_send, .recv = uplink_recv, .rx_fd = uplink_rx_fd, .destroy = uplink_destroy,
};

/* A tap's: offloaded frames both ways. */
static const struct net_backend_ops uplink_offload_ops = {
	.name = "fake-tap", .send = uplink_send, .recv = uplink_recv, .rx_fd = uplink_rx_fd,
	.set_guest_offloads = uplink_set_guest_offloads, .destroy = uplink_destroy,
};

static void attach_uplink(const struct net_backend_ops *ops, uint64_t offloads, bool refuse_offloads)
{
	memset(&uplink, 0, sizeof(uplink));
	uplink.refuse_offloads = refuse_offloads;
	uplink.be = (struct net_backend){ .ops = ops, .queue_pairs = 1, .offloads = offloads };
	uplink.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_int_equal(vswitch_set_uplink(sw, &uplink.be), 0);
}

/* --- frames --- */

static size_t make_frame(uint8_t *buf, const uint8_t *dst, const uint8_t *src, size_t payload, uint8_t seed)
{
	memcpy(buf, dst, 6);
	memcpy(buf + 6, src, 6);
	buf[12] = 0x08;
	buf[13] = 0x00;
	for (size_t i = 0; i < payload; i++)
		buf[14 + i] = (uint8_t)(seed + i);
	return 14 + payload;
}

/* The guest on port sends a frame: header then frame in one readable buffer. */
static void send_frame(unsigned int port, const uint8_t *dst, const uint8_t *src, size_t payload, uint8_t seed,
		       bool kick)
{
	struct vuf *f = &fe[port];
	uint64_t gpa = vuf_alloc(f, (uint32_t)(HDR + 14 + payload));
	uint8_t *p = vuf_ptr(f, gpa);
	struct vuf_buf buf;

	memset(p, 0, HDR);
	buf = (struct vuf_buf){ gpa, (uint32_t)(HDR + make_frame(p + HDR, dst, src, payload, seed)), false };
	vuf_offer(f, TXQ, &buf, 1);
	if (kick)
		vuf_kick(f, TXQ);
}

/* RX buffers the guest on port posts; returns the first one's address. */
static uint64_t post_rx(unsigned int port, unsigned int n, uint32_t len)
{
	uint64_t first = 0;

	for (unsigned int i = 0; i < n; i++) {
		uint64_t gpa = vuf_alloc(&fe[port], len);
		struct vuf_buf buf = { gpa, len, true };

		if (i == 0)
			first = gpa;
		vuf_offer(&fe[port], RXQ, &buf, 1);
	}
	return first;
}

/* The next frame the guest on port received, in one buffer at gpa: check
 * the header (num_buffers 1) and the frame. */
static void expect_rx(unsigned int port, uint64_t gpa, const uint8_t *dst, const uint8_t *src, size_t payload,
		      uint8_t seed)
{
	uint8_t want[1600];
	size_t len = make_frame(want, dst, src, payload, seed);
	const struct virtio_net_hdr_v1 *hdr = vuf_ptr(&fe[port], gpa);
	uint32_t id, used_len;

	assert_true(vuf_next_used(&fe[port], RXQ, &id, &used_len));
	assert_int_equal(used_len, HDR + len);
	assert_int_equal(hdr->num_buffers, 1);
	assert_int_equal(hdr->flags, 0);
	assert_int_equal(hdr->gso_type, VIRTIO_NET_HDR_GSO_NONE);
	assert_memory_equal((const uint8_t *)hdr + HDR, want, len);
}

static void expect_nothing(unsigned int port)
{
	uint32_t id, len;

	assert_false(vuf_next_used(&fe[port], RXQ, &id, &len));
}

static int setup(void **state)
{
	(void)state;
	for (unsigned int i = 0; i < NPORTS; i++)
		port_features[i] = FEATURES;
	sw = vswitch_new(NPORTS);
	assert_non_null(sw);
	for (unsigned int i = 0; i < NPORTS; i++)
		connect_port(i);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vswitch_free(sw);
	for (unsigned int i = 0; i < NPORTS; i++) {
		if (fe_up[i])
			vuf_destroy(&fe[i]);
		fe_up[i] = false;
	}
	return 0;
}

static void test_broadcast_floods(void **state)
{
	uint64_t rx[NPORTS];
	uint32_t id, len;

	(void)state;
	for (unsigned int i = 0; i < NPORTS; i++)
		rx[i] = post_rx(i, 1, 1536);
	send_frame(0, bcast, mac_a, 46, 1, true);
	expect_rx(1, rx[1], bcast, mac_a, 46, 1);
	expect_rx(2, rx[2], bcast, mac_a, 46, 1);
	expect_nothing(0);  /* never back where it came from */
	assert_true(vuf_interrupted(&fe[1], RXQ));
	/* The TX chain went back to its guest, with an interrupt. */
	assert_true(vuf_next_used(&fe[0], TXQ, &id, &len));
	assert_int_equal(len, 0);
	assert_true(vuf_interrupted(&fe[0], TXQ));
	assert_int_equal(vswitch_counters(sw, 0)->tx_frames, 1);
	assert_int_equal(vswitch_counters(sw, 0)->tx_bytes, 60);
	assert_int_equal(vswitch_counters(sw, 1)->rx_frames, 1);
	assert_int_equal(vswitch_counters(sw, 2)->rx_bytes, 60);
}

static void test_learned_mac_unicast(void **state)
{
	uint64_t rx0 = post_rx(0, 2, 1536), rx1 = post_rx(1, 2, 1536), rx2 = post_rx(2, 2, 1536);

	(void)state;
	(void)rx0;
	/* B speaks from port 1 (a broadcast everyone sees)... */
	send_frame(1, bcast, mac_b, 50, 2, true);
	expect_rx(2, rx2, bcast, mac_b, 50, 2);
	/* ...so a frame to B goes to port 1 alone. */
	send_frame(0, mac_b, mac_a, 60, 3, true);
	expect_rx(0, rx0, bcast, mac_b, 50, 2);
	expect_rx(1, rx1, mac_b, mac_a, 60, 3);
	expect_nothing(2);
	expect_nothing(0);
	/* And A, learned on port 0, gets its answer alone. */
	send_frame(1, mac_a, mac_b, 70, 4, true);
	expect_rx(0, rx0 + 1536, mac_a, mac_b, 70, 4);
	expect_nothing(2);
}

static void test_unknown_unicast_floods(void **state)
{
	uint64_t rx1 = post_rx(1, 1, 1536), rx2 = post_rx(2, 1, 1536);

	(void)state;
	send_frame(0, mac_c, mac_a, 46, 5, true);
	expect_rx(1, rx1, mac_c, mac_a, 46, 5);
	expect_rx(2, rx2, mac_c, mac_a, 46, 5);
}

static void test_no_rx_buffers_drops(void **state)
{
	uint64_t rx2 = post_rx(2, 1, 1536);

	(void)state;
	send_frame(0, bcast, mac_a, 46, 6, true);
	expect_nothing(1);
	expect_rx(2, rx2, bcast, mac_a, 46, 6);
	assert_int_equal(vswitch_counters(sw, 1)->drops, 1);
	assert_int_equal(vswitch_counters(sw, 1)->rx_frames, 0);
	assert_int_equal(vswitch_counters(sw, 2)->drops, 0);
	/* A frame too big for what port 2 has left is dropped whole: its buffer stays. */
	rx2 = post_rx(2, 1, 64);
	send_frame(0, bcast, mac_a, 200, 7, true);
	expect_nothing(2);
	assert_int_equal(vswitch_counters(sw, 2)->drops, 1);
	send_frame(0, bcast, mac_a, 30, 8, true);
	expect_rx(2, rx2, bcast, mac_a, 30, 8);
}

/* With MRG_RXBUF a frame spans as many buffers as it needs; num_buffers says how many. */
static void test_mergeable_rx_buffers(void **state)
{
	uint64_t rx = post_rx(1, 3, 64);
	uint8_t want[200], got[200];
	size_t len = make_frame(want, bcast, mac_a, 136, 9);  /* 150 bytes + 12 of header: 64 + 64 + 34 */
	const struct virtio_net_hdr_v1 *hdr = vuf_ptr(&fe[1], rx);
	uint32_t id, used_len;

	(void)state;
	send_frame(0, bcast, mac_a, 136, 9, true);
	for (unsigned int i = 0; i < 3; i++) {
		assert_true(vuf_next_used(&fe[1], RXQ, &id, &used_len));
		assert_int_equal(used_len, i < 2 ? 64 : 34);
	}
	assert_int_equal(hdr->num_buffers, 3);
	memcpy(got, (uint8_t *)vuf_ptr(&fe[1], rx) + HDR, 64 - HDR);
	memcpy(got + 64 - HDR, vuf_ptr(&fe[1], rx + 64), 64);
	memcpy(got + 128 - HDR, vuf_ptr(&fe[1], rx + 128), 34);
	assert_memory_equal(got, want, len);
}

static void test_uplink(void **state)
{
	uint64_t rx0, rx1;

	(void)state;
	attach_uplink(&uplink_ops, 0, false);
	/* A port's broadcast reaches the uplink, with a plain header. */
	send_frame(0, bcast, mac_a, 46, 10, true);
	assert_int_equal(uplink.nsent, 1);
	assert_int_equal(uplink.sent_len[0], HDR + 60);
	assert_int_equal(uplink.sent[0][0], 0);
	assert_memory_equal(uplink.sent[0] + HDR, bcast, 6);
	assert_int_equal(vswitch_counters(sw, NPORTS)->rx_frames, 1);
	/* The host answers A: only port 0 gets it, and the host's MAC is learned on the uplink. */
	rx0 = post_rx(0, 1, 1536);
	rx1 = post_rx(1, 1, 1536);
	memset(uplink.queued[0], 0, HDR);
	uplink.queued_len[0] = HDR + make_frame(uplink.queued[0] + HDR, mac_a, mac_c, 46, 11);
	uplink.nqueued = 1;
	assert_int_equal(eventfd_write(uplink.efd, 1), 0);
	pump_switch(NULL);
	expect_rx(0, rx0, mac_a, mac_c, 46, 11);
	expect_nothing(1);
	assert_int_equal(vswitch_counters(sw, NPORTS)->tx_frames, 1);
	send_frame(1, mac_c, mac_b, 46, 12, true);
	assert_int_equal(uplink.nsent, 2);
	expect_nothing(0);
	(void)rx1;
}

/* More TX chains than one kick may take: the rest follow on the next turns. */
static void test_tx_budget(void **state)
{
	uint64_t rx = post_rx(1, 300, 128);
	uint32_t id, len;

	(void)state;
	for (unsigned int i = 0; i < 300; i++)
		send_frame(0, mac_b, mac_a, 46, (uint8_t)i, i == 299);
	for (unsigned int i = 0; i < 300; i++) {
		assert_true(vuf_next_used(&fe[1], RXQ, &id, &len));
		assert_int_equal(len, HDR + 60);
	}
	assert_int_equal(((uint8_t *)vuf_ptr(&fe[1], rx + 299 * 128))[HDR + 14], 299 % 256);
	assert_int_equal(vswitch_counters(sw, 0)->tx_frames, 300);
}

/* A guest that corrupts its RX ring loses its port; the others go on. */
static void test_broken_rx_ring_disconnects(void **state)
{
	struct vring_avail *avail = vuf_ptr(&fe[1], fe[1].q[RXQ].avail);
	uint64_t rx2 = post_rx(2, 1, 1536);

	(void)state;
	avail->idx = QSIZE + 5;  /* more buffers than the ring holds */
	send_frame(0, bcast, mac_a, 46, 13, true);
	assert_false(vswitch_connected(sw, 1));
	expect_rx(2, rx2, bcast, mac_a, 46, 13);
	fe_up[1] = false;
	vuf_destroy(&fe[1]);
}

/* A guest that sends garbage on its TX ring is dropped, and so is its port. */
static void test_runt_and_broken_tx(void **state)
{
	struct vuf_buf runt = { vuf_alloc(&fe[0], 16), 16, false };

	(void)state;
	vuf_offer(&fe[0], TXQ, &runt, 1);
	vuf_kick(&fe[0], TXQ);
	assert_int_equal(vswitch_counters(sw, 0)->drops, 1);
	assert_true(vswitch_connected(sw, 0));
	runt.gpa = RAM_SIZE;  /* outside guest RAM */
	vuf_offer(&fe[0], TXQ, &runt, 1);
	vuf_kick(&fe[0], TXQ);
	assert_false(vswitch_connected(sw, 0));
}

/* Frontends come and go fifty times; the port serves each, and nothing leaks. */
static void test_reconnect_no_leaks(void **state)
{
	unsigned int before;

	(void)state;
	disconnect_port(1);
	before = vuf_count_fds();
	for (unsigned int i = 0; i < 50; i++) {
		uint64_t rx;

		connect_port(1);
		rx = post_rx(1, 1, 1536);
		send_frame(0, bcast, mac_a, 46, (uint8_t)i, true);
		expect_rx(1, rx, bcast, mac_a, 46, (uint8_t)i);
		if (i % 2)
			send_frame(1, bcast, mac_b, 46, 0, true);  /* leaves a learned MAC behind */
		disconnect_port(1);
	}
	assert_int_equal(vuf_count_fds(), before);
	connect_port(1);
}

static void test_second_frontend_refused_while_busy(void **state)
{
	(void)state;
	assert_int_equal(vswitch_connect(sw, 0, -1), -EBUSY);
	assert_int_equal(vswitch_connect(sw, NPORTS, -1), -EINVAL);
}

/* --- offloads --- */

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80
#define TCP_HLEN 32        /* 20 bytes and a timestamp option (NOP, NOP, TS) */
#define OFFLOAD_FEATURES (FEATURES | OFFLOADS)
#define SEG_IP_ID 0x4242

/* A TCP frame as build_tcp makes it, and where its headers are. */
struct tcp_pkt {
	bool v6, vlan, hbh;  /* IPv6, a VLAN tag, an IPv6 hop-by-hop header */
	size_t payload;
	uint32_t seq;
	uint8_t flags, seed;
	size_t len, l3, l4, hdr;
};

static const uint8_t ip4_src[4] = { 10, 0, 0, 1 }, ip4_dst[4] = { 10, 0, 0, 2 };
static const uint8_t ip6_src[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
static const uint8_t ip6_dst[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 };

static void be16_at(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void be32_at(uint8_t *p, uint32_t v)
{
	be16_at(p, (uint16_t)(v >> 16));
	be16_at(p + 2, (uint16_t)v);
}

static uint16_t be16_of(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32_of(const uint8_t *p)
{
	return (uint32_t)be16_of(p) << 16 | be16_of(p + 2);
}

/* The Internet checksum the plain way, one big-endian word at a time: the
 * reference the switch's software checksums are held against. */
static uint64_t ref_sum(uint64_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i += 2)
		sum += (uint32_t)p[i] << 8 | (i + 1 < len ? p[i + 1] : 0);
	return sum;
}

static uint16_t ref_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* The pseudo-header's sum for a TCP segment of tcp_len bytes. */
static uint64_t ref_pseudo(const uint8_t *f, const struct tcp_pkt *t, size_t tcp_len)
{
	if (t->v6)
		return ref_sum(0, f + t->l3 + 8, 32) + (tcp_len >> 16) + (tcp_len & 0xffff) + 6;
	return ref_sum(0, f + t->l3 + 12, 8) + 6 + tcp_len;
}

/* TCP's checksum of the frame f of len bytes, its own field taken as zero. */
static uint16_t ref_tcp_csum(const uint8_t *f, size_t len, const struct tcp_pkt *t)
{
	uint64_t sum = ref_pseudo(f, t, len - t->l4);

	sum = ref_sum(sum, f + t->l4, 16);
	sum = ref_sum(sum, f + t->l4 + 18, len - t->l4 - 18);
	return (uint16_t)~ref_fold(sum);
}

static uint16_t ref_ip4_csum(const uint8_t *ip)
{
	return (uint16_t)~ref_fold(ref_sum(ref_sum(0, ip, 10), ip + 12, 8));
}

static uint8_t payload_byte(const struct tcp_pkt *t, size_t i)
{
	return (uint8_t)(t->seed + i * 7 + (i >> 8));
}

/* An Ethernet/[VLAN]/IPv4 or IPv6[+hop-by-hop]/TCP frame with every checksum right. */
static void build_tcp(uint8_t *f, const uint8_t *dst, const uint8_t *src, struct tcp_pkt *t)
{
	size_t o = 12;
	uint8_t *tcp;

	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	if (t->vlan) {
		be16_at(f + o, 0x8100);
		be16_at(f + o + 2, 5);
		o += 4;
	}
	be16_at(f + o, t->v6 ? 0x86dd : 0x0800);
	t->l3 = o + 2;
	if (t->v6) {
		memset(f + t->l3, 0, 8);
		f[t->l3] = 0x60;
		f[t->l3 + 6] = t->hbh ? 0 : 6;
		f[t->l3 + 7] = 64;
		memcpy(f + t->l3 + 8, ip6_src, 16);
		memcpy(f + t->l3 + 24, ip6_dst, 16);
		t->l4 = t->l3 + 40;
		if (t->hbh) {
			static const uint8_t hbh[8] = { 6, 0, 1, 4, 0, 0, 0, 0 };  /* PadN */

			memcpy(f + t->l4, hbh, 8);
			t->l4 += 8;
		}
	} else {
		memset(f + t->l3, 0, 20);
		f[t->l3] = 0x45;
		be16_at(f + t->l3 + 4, SEG_IP_ID);
		be16_at(f + t->l3 + 6, 0x4000);  /* DF */
		f[t->l3 + 8] = 64;
		f[t->l3 + 9] = 6;
		memcpy(f + t->l3 + 12, ip4_src, 4);
		memcpy(f + t->l3 + 16, ip4_dst, 4);
		t->l4 = t->l3 + 20;
	}
	tcp = f + t->l4;
	memset(tcp, 0, TCP_HLEN);
	be16_at(tcp, 40000);
	be16_at(tcp + 2, 5201);
	be32_at(tcp + 4, t->seq);
	be32_at(tcp + 8, 0x01020304);
	tcp[12] = (TCP_HLEN / 4) << 4;
	tcp[13] = t->flags;
	be16_at(tcp + 14, 0xfff0);
	tcp[20] = 1, tcp[21] = 1, tcp[22] = 8, tcp[23] = 10;
	be32_at(tcp + 24, 0xa1b2c3d4);
	be32_at(tcp + 28, 0x11223344);
	t->hdr = t->l4 + TCP_HLEN;
	for (size_t i = 0; i < t->payload; i++)
		f[t->hdr + i] = payload_byte(t, i);
	t->len = t->hdr + t->payload;
	if (t->v6) {
		be16_at(f + t->l3 + 4, (uint16_t)(t->len - t->l3 - 40));
	} else {
		be16_at(f + t->l3 + 2, (uint16_t)(t->len - t->l3));
		be16_at(f + t->l3 + 10, ref_ip4_csum(f + t->l3));
	}
	be16_at(tcp + 16, ref_tcp_csum(f, t->len, t));
}

/* Leave only the pseudo-header's sum in TCP's checksum, as a driver does for
 * NEEDS_CSUM; returns the header that says so. */
static struct virtio_net_hdr_v1 make_partial(uint8_t *f, const struct tcp_pkt *t)
{
	be16_at(f + t->l4 + 16, ref_fold(ref_pseudo(f, t, t->len - t->l4)));
	return (struct virtio_net_hdr_v1){
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
		.csum_start = htole16((uint16_t)t->l4),
		.csum_offset = htole16(16),
	};
}

static struct virtio_net_hdr_v1 make_tso(uint8_t *f, const struct tcp_pkt *t, uint16_t mss)
{
	struct virtio_net_hdr_v1 vh = make_partial(f, t);

	vh.gso_type = t->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
	if (t->flags & TCP_CWR)
		vh.gso_type |= VIRTIO_NET_HDR_GSO_ECN;
	vh.gso_size = htole16(mss);
	vh.hdr_len = htole16((uint16_t)t->hdr);
	return vh;
}

/* The guest on port sends header and frame as a driver does: the header in
 * a descriptor of its own, the frame in pieces of 4000 bytes. */
static void send_pkt(unsigned int port, const struct virtio_net_hdr_v1 *vh, const uint8_t *frame, size_t len)
{
	struct vuf *f = &fe[port];
	struct vuf_buf bufs[32];
	unsigned int n = 0;

	bufs[n] = (struct vuf_buf){ vuf_alloc(f, HDR), HDR, false };
	memcpy(vuf_ptr(f, bufs[n].gpa), vh, HDR);
	n++;
	for (size_t at = 0; at < len; at += 4000, n++) {
		uint32_t piece = (uint32_t)(len - at < 4000 ? len - at : 4000);

		assert_true(n < 32);
		bufs[n] = (struct vuf_buf){ vuf_alloc(f, piece), piece, false };
		memcpy(vuf_ptr(f, bufs[n].gpa), frame + at, piece);
	}
	vuf_offer(f, TXQ, bufs, n);
	vuf_kick(f, TXQ);
}

/* The next frame the guest on port received, over as many buffers as its
 * num_buffers says: its header in *vh, the frame in buf. Returns the
 * frame's length, or -1 if there is none. */
static long recv_pkt(unsigned int port, struct virtio_net_hdr_v1 *vh, uint8_t *buf, size_t size)
{
	struct vuf *f = &fe[port];
	const struct vring_desc *desc = vuf_ptr(f, f->q[RXQ].desc);
	unsigned int nbufs = 1;
	size_t got = 0;

	for (unsigned int i = 0; i < nbufs; i++) {
		const uint8_t *p;
		uint32_t id, len;

		if (!vuf_next_used(f, RXQ, &id, &len)) {
			assert_int_equal(i, 0);  /* num_buffers promised more */
			return -1;
		}
		p = vuf_ptr(f, desc[id].addr);
		if (i == 0) {
			assert_true(len >= HDR);
			memcpy(vh, p, HDR);
			nbufs = le16toh(vh->num_buffers);
			assert_true(nbufs >= 1);
			p += HDR;
			len -= HDR;
		}
		assert_true(got + len <= size);
		memcpy(buf + got, p, len);
		got += len;
	}
	return (long)got;
}

static void assert_hdr_equal(const struct virtio_net_hdr_v1 *got, const struct virtio_net_hdr_v1 *want)
{
	assert_int_equal(got->flags, want->flags);
	assert_int_equal(got->gso_type, want->gso_type);
	assert_int_equal(le16toh(got->hdr_len), le16toh(want->hdr_len));
	assert_int_equal(le16toh(got->gso_size), le16toh(want->gso_size));
	assert_int_equal(le16toh(got->csum_start), le16toh(want->csum_start));
	assert_int_equal(le16toh(got->csum_offset), le16toh(want->csum_offset));
}

/* The header of the i-th frame the fake uplink got (unaligned in its buffer). */
static const struct virtio_net_hdr_v1 *sent_hdr(unsigned int i)
{
	static struct virtio_net_hdr_v1 vh;

	memcpy(&vh, uplink.sent[i], sizeof(vh));
	return &vh;
}

static void assert_hdr_zero(const struct virtio_net_hdr_v1 *got)
{
	const struct virtio_net_hdr_v1 zero = { 0 };

	assert_hdr_equal(got, &zero);
}

/* Check that what port got are frame's TCP segments (mss payload bytes
 * each): headers as the original's but for IP length, ID (IPv4) and
 * checksum, TCP sequence number, flags and checksum, which are checked
 * against values computed here; and the payload, in order. Returns the
 * number of segments. */
static unsigned int expect_segments(unsigned int port, const uint8_t *frame, const struct tcp_pkt *t, size_t mss)
{
	static uint8_t seg[FRAME_MAX];
	struct virtio_net_hdr_v1 vh;
	unsigned int want = (unsigned int)((t->payload + mss - 1) / mss), i;
	size_t done = 0;
	long len;

	for (i = 0; (len = recv_pkt(port, &vh, seg, sizeof(seg))) >= 0; i++) {
		size_t chunk = t->payload - done < mss ? t->payload - done : mss;
		uint8_t flags = frame[t->l4 + 13];

		assert_true(i < want);
		assert_int_equal(le16toh(vh.num_buffers), 1);
		assert_hdr_zero(&vh);
		assert_int_equal(len, t->hdr + chunk);
		/* Ethernet, VLAN, the IP header's fixed fields and TCP's ports and ack as they were. */
		assert_memory_equal(seg, frame, t->l3);
		if (t->v6) {
			assert_int_equal(be16_of(seg + t->l3 + 4), len - t->l3 - 40);
			assert_memory_equal(seg + t->l3 + 6, frame + t->l3 + 6, t->l4 - t->l3 - 6);
		} else {
			assert_int_equal(be16_of(seg + t->l3 + 2), len - t->l3);
			assert_int_equal(be16_of(seg + t->l3 + 4), (uint16_t)(SEG_IP_ID + i));
			assert_memory_equal(seg + t->l3 + 6, frame + t->l3 + 6, 4);
			assert_memory_equal(seg + t->l3 + 12, frame + t->l3 + 12, 8);
			assert_int_equal(be16_of(seg + t->l3 + 10), ref_ip4_csum(seg + t->l3));
		}
		assert_memory_equal(seg + t->l4, frame + t->l4, 4);
		assert_int_equal(be32_of(seg + t->l4 + 4), (uint32_t)(t->seq + done));
		assert_memory_equal(seg + t->l4 + 8, frame + t->l4 + 8, 5);
		if (i > 0)
			flags &= (uint8_t)~TCP_CWR;
		if (i + 1 < want)
			flags &= (uint8_t)~(TCP_FIN | TCP_PSH);
		assert_int_equal(seg[t->l4 + 13], flags);
		assert_memory_equal(seg + t->l4 + 14, frame + t->l4 + 14, 2);
		assert_memory_equal(seg + t->l4 + 18, frame + t->l4 + 18, TCP_HLEN - 18);
		assert_int_equal(be16_of(seg + t->l4 + 16), ref_tcp_csum(seg, (size_t)len, t));
		/* And a receiver's check: everything sums to all ones. */
		assert_int_equal(ref_fold(ref_sum(ref_pseudo(seg, t, (size_t)len - t->l4), seg + t->l4, (size_t)len - t->l4)),
				 0xffff);
		assert_memory_equal(seg + t->hdr, frame + t->hdr + done, chunk);
		done += chunk;
	}
	assert_int_equal(done, t->payload);
	return i;
}

/* Ports 0 and 1 negotiate every offload, port 2 none. */
static int setup_offloads(void **state)
{
	(void)state;
	port_features[0] = port_features[1] = OFFLOAD_FEATURES;
	port_features[2] = FEATURES;
	sw = vswitch_new(NPORTS);
	assert_non_null(sw);
	for (unsigned int i = 0; i < NPORTS; i++)
		connect_port(i);
	return 0;
}

static uint8_t frame_buf[FRAME_MAX + 64], rx_buf[FRAME_MAX + 64];

static void test_offloads_offered(void **state)
{
	(void)state;
	assert_int_equal(vuf_get_u64(&fe[0], VHOST_USER_GET_FEATURES) & OFFLOAD_FEATURES, OFFLOAD_FEATURES);
}

/* A 20 KiB TSO frame between two ports that negotiated TSO: the same header
 * and bytes arrive, over several mergeable buffers; nothing computed. */
static void test_tso_frame_passes_as_is(void **state)
{
	struct tcp_pkt t = { .payload = 20 * 1024, .seq = 1000, .flags = TCP_ACK | TCP_PSH, .seed = 3 };
	struct virtio_net_hdr_v1 vh, got;
	long len;

	(void)state;
	send_frame(1, bcast, mac_b, 46, 0, true);  /* B is on port 1 */
	post_rx(1, 16, 2048);
	post_rx(2, 16, 2048);
	build_tcp(frame_buf, mac_b, mac_a, &t);
	vh = make_tso(frame_buf, &t, 1448);
	send_pkt(0, &vh, frame_buf, t.len);
	len = recv_pkt(1, &got, rx_buf, sizeof(rx_buf));
	assert_int_equal(len, t.len);
	assert_hdr_equal(&got, &vh);
	assert_int_equal(le16toh(got.num_buffers), (HDR + t.len + 2047) / 2048);
	assert_true(le16toh(got.num_buffers) > 1);
	assert_memory_equal(rx_buf, frame_buf, t.len);
	expect_nothing(1);
	expect_nothing(2);
	assert_int_equal(vswitch_counters(sw, 0)->tx_frames, 1);
	assert_int_equal(vswitch_counters(sw, 0)->tx_bytes, t.len);
	assert_int_equal(vswitch_counters(sw, 1)->rx_frames, 1);
	assert_int_equal(vswitch_counters(sw, 1)->rx_bytes, t.len);
	assert_int_equal(vswitch_counters(sw, 1)->csum_sw, 0);
	assert_int_equal(vswitch_counters(sw, 1)->segmented, 0);
	assert_int_equal(vswitch_counters(sw, 0)->invalid, 0);
}

/* A NEEDS_CSUM frame flooded: as it is to the port with GUEST_CSUM; to the
 * one without, flags 0 and the checksum a full frame has (an odd length,
 * so the last byte is padded). */
static void test_csum_finished_for_port_without_guest_csum(void **state)
{
	struct tcp_pkt t = { .payload = 1001, .seq = 77, .flags = TCP_ACK, .seed = 9 };
	static uint8_t whole[2048];
	struct virtio_net_hdr_v1 vh, got;
	long len;

	(void)state;
	post_rx(1, 1, 2048);
	post_rx(2, 1, 2048);
	build_tcp(whole, mac_c, mac_a, &t);
	memcpy(frame_buf, whole, t.len);
	vh = make_partial(frame_buf, &t);
	assert_int_not_equal(be16_of(frame_buf + t.l4 + 16), be16_of(whole + t.l4 + 16));
	send_pkt(0, &vh, frame_buf, t.len);

	len = recv_pkt(1, &got, rx_buf, sizeof(rx_buf));
	assert_int_equal(len, t.len);
	assert_hdr_equal(&got, &vh);
	assert_memory_equal(rx_buf, frame_buf, t.len);  /* the partial sum still in it */

	len = recv_pkt(2, &got, rx_buf, sizeof(rx_buf));
	assert_int_equal(len, t.len);
	assert_hdr_zero(&got);
	assert_int_equal(be16_of(rx_buf + t.l4 + 16), ref_tcp_csum(frame_buf, t.len, &t));
	assert_memory_equal(rx_buf, whole, t.len);
	assert_int_equal(vswitch_counters(sw, 2)->csum_sw, 1);
	assert_int_equal(vswitch_counters(sw, 1)->csum_sw, 0);
	assert_int_equal(vswitch_counters(sw, 2)->rx_bytes, t.len);
}

/* A TCPv4 TSO frame (ECN, its sequence numbers wrapping, FIN at the end)
 * flooded: as it is to the port with TSO and ECN, in 14 segments with every
 * field right to the port without. */
static void test_tso4_segmented_for_port_without_tso(void **state)
{
	struct tcp_pkt t = { .payload = 20000, .seq = 0xffffd000, .flags = TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR,
			     .seed = 5 };
	struct virtio_net_hdr_v1 vh, got;

	(void)state;
	post_rx(1, 16, 2048);
	post_rx(2, 16, 2048);
	build_tcp(frame_buf, bcast, mac_a, &t);
	vh = make_tso(frame_buf, &t, 1448);
	assert_int_equal(vh.gso_type, VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN);
	send_pkt(0, &vh, frame_buf, t.len);
	assert_int_equal(recv_pkt(1, &got, rx_buf, sizeof(rx_buf)), t.len);
	assert_hdr_equal(&got, &vh);
	assert_int_equal(expect_segments(2, frame_buf, &t, 1448), 14);
	assert_int_equal(vswitch_counters(sw, 2)->rx_frames, 14);
	assert_int_equal(vswitch_counters(sw, 2)->rx_bytes, 14 * t.hdr + t.payload);
	assert_int_equal(vswitch_counters(sw, 2)->segmented, 1);
	assert_int_equal(vswitch_counters(sw, 2)->drops, 0);
	assert_int_equal(vswitch_counters(sw, 1)->segmented, 0);
}

/* TCPv6 under a VLAN tag with a hop-by-hop header: payload length, sequence
 * numbers and checksums over IPv6's pseudo-header. */
static void test_tso6_segmented_for_port_without_tso(void **state)
{
	struct tcp_pkt t = { .v6 = true, .vlan = true, .hbh = true, .payload = 9000, .seq = 12345,
			     .flags = TCP_ACK | TCP_PSH, .seed = 11 };
	struct virtio_net_hdr_v1 vh, got;

	(void)state;
	post_rx(1, 8, 2048);
	post_rx(2, 8, 2048);
	build_tcp(frame_buf, bcast, mac_a, &t);
	vh = make_tso(frame_buf, &t, 1440);
	send_pkt(0, &vh, frame_buf, t.len);
	assert_int_equal(recv_pkt(1, &got, rx_buf, sizeof(rx_buf)), t.len);
	assert_hdr_equal(&got, &vh);
	assert_memory_equal(rx_buf, frame_buf, t.len);
	assert_int_equal(expect_segments(2, frame_buf, &t, 1440), 7);
	assert_int_equal(vswitch_counters(sw, 2)->segmented, 1);
}

/* Segments stop where the receiver's ring runs out: one drop for the frame. */
static void test_segments_stop_when_rx_ring_full(void **state)
{
	struct tcp_pkt t = { .payload = 20000, .seq = 1, .flags = TCP_ACK, .seed = 1 };
	struct virtio_net_hdr_v1 vh, got;
	unsigned int n = 0;

	(void)state;
	post_rx(2, 5, 2048);
	build_tcp(frame_buf, mac_c, mac_a, &t);
	vh = make_tso(frame_buf, &t, 1448);
	send_pkt(0, &vh, frame_buf, t.len);
	while (recv_pkt(2, &got, rx_buf, sizeof(rx_buf)) >= 0)
		n++;
	assert_int_equal(n, 5);
	assert_int_equal(vswitch_counters(sw, 2)->drops, 1);
	assert_int_equal(vswitch_counters(sw, 2)->segmented, 0);
	assert_int_equal(vswitch_counters(sw, 1)->drops, 1);  /* no buffers at all there */
	/* With room again, the next frame goes whole. */
	post_rx(2, 16, 2048);
	send_pkt(0, &vh, frame_buf, t.len);
	assert_int_equal(expect_segments(2, frame_buf, &t, 1448), 14);
}

/* The largest frame a guest may send (a 65535-byte IP packet under a VLAN
 * tag) goes through both ways; one byte more is refused and counted. */
static void test_largest_tso_frame(void **state)
{
	struct tcp_pkt t = { .vlan = true, .seq = 99, .flags = TCP_ACK, .seed = 2 };
	struct virtio_net_hdr_v1 vh, got;

	(void)state;
	t.payload = 65535 - 20 - TCP_HLEN;
	post_rx(1, 20, 4096);
	post_rx(2, 48, 2048);
	build_tcp(frame_buf, bcast, mac_a, &t);
	assert_int_equal(t.len, FRAME_MAX);
	vh = make_tso(frame_buf, &t, 1448);
	send_pkt(0, &vh, frame_buf, t.len);
	assert_int_equal(recv_pkt(1, &got, rx_buf, sizeof(rx_buf)), FRAME_MAX);
	assert_memory_equal(rx_buf, frame_buf, FRAME_MAX);
	assert_int_equal(expect_segments(2, frame_buf, &t, 1448), 46);
	frame_buf[FRAME_MAX] = 0;
	send_pkt(0, &vh, frame_buf, FRAME_MAX + 1);
	expect_nothing(1);
	expect_nothing(2);
	assert_int_equal(vswitch_counters(sw, 0)->invalid, 1);
	assert_int_equal(vswitch_counters(sw, 0)->drops, 1);
	assert_int_equal(vswitch_counters(sw, 0)->tx_frames, 1);
}

/* Headers a hostile guest may send: each frame is dropped and counted, no
 * port sees it, the sender stays connected (and ASan sees no stray access). */
static void test_hostile_headers_dropped(void **state)
{
	struct tcp_pkt t4 = { .payload = 3000, .seq = 5, .flags = TCP_ACK, .seed = 4 };
	struct tcp_pkt t6 = { .v6 = true, .hbh = true, .payload = 3000, .seq = 5, .flags = TCP_ACK, .seed = 4 };
	static uint8_t f4[4096], f6[4096];
	struct virtio_net_hdr_v1 tso4, tso6, vh, got;
	unsigned int cases = 0;
	long len;

	(void)state;
	post_rx(1, 4, 4096);
	post_rx(2, 8, 2048);
	build_tcp(f4, bcast, mac_a, &t4);
	build_tcp(f6, bcast, mac_a, &t6);
	tso4 = make_tso(f4, &t4, 1000);
	tso6 = make_tso(f6, &t6, 1000);

#define REFUSED(hdr, frame, frame_len)                     \
	do {                                               \
		send_pkt(0, &(hdr), (frame), (frame_len)); \
		cases++;                                   \
	} while (0)
	/* Checksum fields outside the frame. */
	vh = (struct virtio_net_hdr_v1){ .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = htole16((uint16_t)t4.len) };
	REFUSED(vh, f4, t4.len);
	vh.csum_start = htole16((uint16_t)(t4.len - 10));
	vh.csum_offset = htole16(9);  /* field's last byte one past the end */
	REFUSED(vh, f4, t4.len);
	vh.csum_start = htole16(0xffff);
	vh.csum_offset = htole16(0xffff);
	REFUSED(vh, f4, t4.len);
	/* Unknown gso_type, flags; ECN without GSO; hdr_len past the end. */
	vh = tso4;
	vh.gso_type = VIRTIO_NET_HDR_GSO_UDP;
	REFUSED(vh, f4, t4.len);
	vh.gso_type = 5;  /* GSO_UDP_L4, newer than these headers */
	REFUSED(vh, f4, t4.len);
	vh.gso_type = 0x7f;
	REFUSED(vh, f4, t4.len);
	vh = tso4;
	vh.flags |= 0x04;
	REFUSED(vh, f4, t4.len);
	vh = (struct virtio_net_hdr_v1){ .gso_type = VIRTIO_NET_HDR_GSO_ECN };
	REFUSED(vh, f4, t4.len);
	vh = tso4;
	vh.hdr_len = htole16((uint16_t)(t4.len + 1));
	REFUSED(vh, f4, t4.len);
	/* GSO with gso_size 0, without NEEDS_CSUM, with the checksum field elsewhere than TCP's. */
	vh = tso4;
	vh.gso_size = 0;
	REFUSED(vh, f4, t4.len);
	vh = tso4;
	vh.flags = 0;
	REFUSED(vh, f4, t4.len);
	vh = tso4;
	vh.csum_start = htole16((uint16_t)(t4.l4 + 2));
	REFUSED(vh, f4, t4.len);
	vh = tso4;
	vh.csum_offset = htole16(6);
	REFUSED(vh, f4, t4.len);
	/* A GSO type that is not what the frame carries. */
	vh = tso4;
	vh.csum_start = tso6.csum_start;
	REFUSED(vh, f6, t6.len);
	vh = tso6;
	vh.csum_start = tso4.csum_start;
	REFUSED(vh, f4, t4.len);
	/* Headers cut short: TCP's, IPv4's options, an IPv6 extension header. */
	vh = tso4;
	vh.hdr_len = 0;
	REFUSED(vh, f4, t4.l4 + 18);
	f4[t4.l3] = 0x4f;  /* 60 bytes of IPv4 header */
	REFUSED(tso4, f4, t4.l3 + 40);
	f4[t4.l3] = 0x45;
	f6[t6.l4 - 7] = 0xff;  /* a 2 KiB hop-by-hop header */
	vh = tso6;
	vh.hdr_len = 0;
	REFUSED(vh, f6, t6.len);
	f6[t6.l4 - 7] = 0;
	/* TCP's data offset below 5 words. */
	f4[t4.l4 + 12] = 0x40;
	REFUSED(tso4, f4, t4.len);
	f4[t4.l4 + 12] = (TCP_HLEN / 4) << 4;
	/* An IPv4 fragment. */
	f4[t4.l3 + 6] = 0x20;
	REFUSED(tso4, f4, t4.len);
	f4[t4.l3 + 6] = 0x40;
#undef REFUSED

	expect_nothing(1);
	expect_nothing(2);
	assert_true(vswitch_connected(sw, 0));
	assert_int_equal(vswitch_counters(sw, 0)->invalid, cases);
	assert_int_equal(vswitch_counters(sw, 0)->drops, cases);
	assert_int_equal(vswitch_counters(sw, 0)->tx_frames, 0);
	assert_int_equal(vswitch_counters(sw, 1)->rx_frames + vswitch_counters(sw, 2)->rx_frames, 0);

	/* The checksum field may end exactly at the frame's end. */
	vh = (struct virtio_net_hdr_v1){ .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
					 .csum_start = htole16((uint16_t)(t4.len - 11)), .csum_offset = htole16(9) };
	send_pkt(0, &vh, f4, t4.len);
	assert_int_equal(recv_pkt(1, &got, rx_buf, sizeof(rx_buf)), t4.len);
	assert_hdr_equal(&got, &vh);
	len = recv_pkt(2, &got, rx_buf, sizeof(rx_buf));
	assert_int_equal(len, t4.len);
	assert_hdr_zero(&got);
	/* The sum over [csum_start, end), the field as it was, complemented, stored at the field. */
	assert_int_equal(be16_of(rx_buf + t4.len - 2), (uint16_t)~ref_fold(ref_sum(0, f4 + t4.len - 11, 11)));
	assert_memory_equal(rx_buf, f4, t4.len - 2);
	/* And the well-formed ones go through. */
	send_pkt(0, &tso4, f4, t4.len);
	assert_int_equal(recv_pkt(1, &got, rx_buf, sizeof(rx_buf)), t4.len);
	assert_int_equal(expect_segments(2, f4, &t4, 1000), 3);
	send_pkt(0, &tso6, f6, t6.len);
	assert_int_equal(recv_pkt(1, &got, rx_buf, sizeof(rx_buf)), t6.len);
	assert_int_equal(expect_segments(2, f6, &t6, 1000), 3);
}

/* A port sends only the offloads it negotiated; DATA_VALID from a driver means nothing and is not passed on. */
static void test_offloads_not_negotiated_refused(void **state)
{
	struct tcp_pkt t = { .payload = 3000, .seq = 5, .flags = TCP_ACK, .seed = 4 };
	struct virtio_net_hdr_v1 vh, got;

	(void)state;
	post_rx(0, 2, 4096);
	post_rx(1, 2, 4096);
	build_tcp(frame_buf, bcast, mac_c, &t);
	vh = make_tso(frame_buf, &t, 1000);
	send_pkt(2, &vh, frame_buf, t.len);
	vh.gso_type = VIRTIO_NET_HDR_GSO_NONE;
	vh.gso_size = 0;
	send_pkt(2, &vh, frame_buf, t.len);
	expect_nothing(0);
	expect_nothing(1);
	assert_int_equal(vswitch_counters(sw, 2)->invalid, 2);
	assert_true(vswitch_connected(sw, 2));

	build_tcp(frame_buf, bcast, mac_a, &t);
	vh = (struct virtio_net_hdr_v1){ .flags = VIRTIO_NET_HDR_F_DATA_VALID };
	send_pkt(0, &vh, frame_buf, t.len);
	assert_int_equal(recv_pkt(1, &got, rx_buf, sizeof(rx_buf)), t.len);
	assert_hdr_zero(&got);
	assert_int_equal(vswitch_counters(sw, 0)->invalid, 0);
}

/* An uplink that carries offloads (a tap): asked for offloaded frames once,
 * given TSO frames as they are, and its own TSO frames and DATA_VALID pass
 * to ports that take them, segmented or stripped for the one that does not. */
static void test_uplink_offloads(void **state)
{
	const uint64_t tap_offloads = OFFLOADS;
	const uint64_t guest_bits = (1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) |
				    (1ULL << VIRTIO_NET_F_GUEST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_ECN);
	struct tcp_pkt t = { .payload = 20000, .seq = 42, .flags = TCP_ACK | TCP_PSH, .seed = 8 };
	struct tcp_pkt t6 = { .v6 = true, .payload = 10000, .seq = 4242, .flags = TCP_ACK, .seed = 6 };
	struct virtio_net_hdr_v1 vh, got;

	(void)state;
	attach_uplink(&uplink_offload_ops, tap_offloads, false);
	assert_int_equal(uplink.offload_calls, 1);
	assert_int_equal(uplink.guest_offloads, guest_bits);

	/* From a port: the tap gets the TSO frame whole, header and all. */
	post_rx(1, 16, 2048);
	post_rx(2, 16, 2048);
	build_tcp(frame_buf, bcast, mac_a, &t);
	vh = make_tso(frame_buf, &t, 1448);
	send_pkt(0, &vh, frame_buf, t.len);
	assert_int_equal(uplink.nsent, 1);
	assert_int_equal(uplink.sent_len[0], HDR + t.len);
	assert_hdr_equal(sent_hdr(0), &vh);
	assert_memory_equal(uplink.sent[0] + HDR, frame_buf, t.len);
	assert_int_equal(recv_pkt(1, &got, rx_buf, sizeof(rx_buf)), t.len);
	assert_int_equal(expect_segments(2, frame_buf, &t, 1448), 14);

	/* From the tap: a TCPv6 TSO frame. */
	post_rx(0, 8, 2048);
	post_rx(2, 8, 2048);
	build_tcp(uplink.queued[0] + HDR, bcast, mac_c, &t6);
	vh = make_tso(uplink.queued[0] + HDR, &t6, 1400);
	memcpy(uplink.queued[0], &vh, HDR);
	uplink.queued_len[0] = HDR + t6.len;
	uplink.nqueued = 1;
	assert_int_equal(eventfd_write(uplink.efd, 1), 0);
	pump_switch(NULL);
	assert_int_equal(recv_pkt(0, &got, rx_buf, sizeof(rx_buf)), t6.len);
	assert_hdr_equal(&got, &vh);
	assert_memory_equal(rx_buf, uplink.queued[0] + HDR, t6.len);
	assert_int_equal(recv_pkt(1, &got, rx_buf, sizeof(rx_buf)), t6.len);
	assert_int_equal(expect_segments(2, uplink.queued[0] + HDR, &t6, 1400), 8);
	assert_int_equal(vswitch_counters(sw, NPORTS)->tx_frames, 1);
	assert_int_equal(vswitch_counters(sw, NPORTS)->invalid, 0);

	/* DATA_VALID from the tap: kept for ports with GUEST_CSUM only. */
	t.payload = 100;
	build_tcp(uplink.queued[0] + HDR, bcast, mac_c, &t);
	vh = (struct virtio_net_hdr_v1){ .flags = VIRTIO_NET_HDR_F_DATA_VALID };
	memcpy(uplink.queued[0], &vh, HDR);
	uplink.queued_len[0] = HDR + t.len;
	uplink.nqueued = 1;
	assert_int_equal(eventfd_write(uplink.efd, 1), 0);
	pump_switch(NULL);
	assert_int_equal(recv_pkt(0, &got, rx_buf, sizeof(rx_buf)), t.len);
	assert_int_equal(got.flags, VIRTIO_NET_HDR_F_DATA_VALID);
	assert_int_equal(recv_pkt(2, &got, rx_buf, sizeof(rx_buf)), t.len);
	assert_hdr_zero(&got);
}

/* An uplink without offloads gets segments and finished checksums, and may
 * not send offloaded frames itself; one too large for the switch is refused. */
static void test_uplink_without_offloads(void **state)
{
	struct tcp_pkt t = { .payload = 20000, .seq = 42, .flags = TCP_ACK | TCP_PSH, .seed = 8 };
	struct virtio_net_hdr_v1 vh;

	(void)state;
	attach_uplink(&uplink_ops, 0, false);
	build_tcp(frame_buf, bcast, mac_a, &t);
	vh = make_tso(frame_buf, &t, 1448);
	send_pkt(2, &(struct virtio_net_hdr_v1){ 0 }, frame_buf, 60);  /* A plain frame from port 2 first */
	uplink.nsent = 0;
	send_pkt(0, &vh, frame_buf, t.len);
	assert_int_equal(uplink.nsent, 14);
	for (unsigned int i = 0; i < 14; i++) {
		size_t chunk = i < 13 ? 1448 : t.payload - 13 * 1448;
		const uint8_t *seg = uplink.sent[i] + HDR;

		assert_int_equal(uplink.sent_len[i], HDR + t.hdr + chunk);
		assert_hdr_zero(sent_hdr(i));
		assert_int_equal(be16_of(seg + t.l4 + 16), ref_tcp_csum(seg, t.hdr + chunk, &t));
		assert_memory_equal(seg + t.hdr, frame_buf + t.hdr + i * 1448, chunk);
	}
	assert_int_equal(vswitch_counters(sw, NPORTS)->segmented, 1);

	t.payload = 501;
	build_tcp(frame_buf, bcast, mac_a, &t);
	memcpy(rx_buf, frame_buf, t.len);
	vh = make_partial(frame_buf, &t);
	send_pkt(0, &vh, frame_buf, t.len);
	assert_int_equal(uplink.nsent, 15);
	assert_hdr_zero(sent_hdr(14));
	assert_memory_equal(uplink.sent[14] + HDR, rx_buf, t.len);
	assert_int_equal(vswitch_counters(sw, NPORTS)->csum_sw, 1);

	/* The uplink was not asked for offloaded frames: one it sends anyway is refused. */
	memcpy(uplink.queued[0], &vh, HDR);
	memcpy(uplink.queued[0] + HDR, frame_buf, t.len);
	uplink.queued_len[0] = HDR + t.len;
	/* And one too large for any port. */
	memset(uplink.queued[1], 0, HDR + FRAME_MAX + 1);
	memcpy(uplink.queued[1] + HDR, bcast, 6);
	uplink.queued_len[1] = HDR + FRAME_MAX + 1;
	uplink.nqueued = 2;
	post_rx(1, 20, 4096);
	assert_int_equal(eventfd_write(uplink.efd, 1), 0);
	pump_switch(NULL);
	expect_nothing(1);
	assert_int_equal(vswitch_counters(sw, NPORTS)->invalid, 2);
	assert_int_equal(vswitch_counters(sw, NPORTS)->drops, 2);
}

/* A tap that cannot be told to hand over offloaded frames: it still takes
 * them, but one it sends anyway is refused. */
static void test_uplink_refusing_offloads(void **state)
{
	struct tcp_pkt t = { .payload = 5000, .seq = 42, .flags = TCP_ACK, .seed = 8 };
	struct virtio_net_hdr_v1 vh;

	(void)state;
	attach_uplink(&uplink_offload_ops, OFFLOADS, true);
	assert_int_equal(uplink.offload_calls, 1);
	build_tcp(frame_buf, bcast, mac_a, &t);
	vh = make_tso(frame_buf, &t, 1448);
	send_pkt(0, &vh, frame_buf, t.len);
	assert_int_equal(uplink.nsent, 1);
	assert_hdr_equal(sent_hdr(0), &vh);

	memcpy(uplink.queued[0], &vh, HDR);
	memcpy(uplink.queued[0] + HDR, frame_buf, t.len);
	uplink.queued_len[0] = HDR + t.len;
	uplink.nqueued = 1;
	post_rx(1, 8, 2048);
	assert_int_equal(eventfd_write(uplink.efd, 1), 0);
	pump_switch(NULL);
	expect_nothing(1);
	assert_int_equal(vswitch_counters(sw, NPORTS)->invalid, 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define TO(f) cmocka_unit_test_setup_teardown(f, setup_offloads, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_broadcast_floods),
		T(test_learned_mac_unicast),
		T(test_unknown_unicast_floods),
		T(test_no_rx_buffers_drops),
		T(test_mergeable_rx_buffers),
		T(test_uplink),
		T(test_tx_budget),
		T(test_broken_rx_ring_disconnects),
		T(test_runt_and_broken_tx),
		T(test_reconnect_no_leaks),
		T(test_second_frontend_refused_while_busy),
		TO(test_offloads_offered),
		TO(test_tso_frame_passes_as_is),
		TO(test_csum_finished_for_port_without_guest_csum),
		TO(test_tso4_segmented_for_port_without_tso),
		TO(test_tso6_segmented_for_port_without_tso),
		TO(test_segments_stop_when_rx_ring_full),
		TO(test_largest_tso_frame),
		TO(test_hostile_headers_dropped),
		TO(test_offloads_not_negotiated_refused),
		TO(test_uplink_offloads),
		TO(test_uplink_without_offloads),
		TO(test_uplink_refusing_offloads),
	};

	log_set_level(LOG_WARN);  /* not every connect and disconnect */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
