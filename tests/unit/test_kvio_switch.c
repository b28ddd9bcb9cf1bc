/* kvio-switch's core (tools/switch.c) with test frontends on its ports:
 * flooding, learning, unicast, drops without RX buffers, mergeable RX
 * buffers, the uplink, the TX budget, a port whose guest breaks its ring,
 * and fifty reconnections without a leaked fd. */
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
#define RXQ VSWITCH_RXQ
#define TXQ VSWITCH_TXQ

static const uint8_t mac_a[6] = { 0x52, 0x54, 0, 0, 0, 0xa };
static const uint8_t mac_b[6] = { 0x52, 0x54, 0, 0, 0, 0xb };
static const uint8_t mac_c[6] = { 0x52, 0x54, 0, 0, 0, 0xc };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static struct vswitch *sw;
static struct vuf fe[NPORTS];
static bool fe_up[NPORTS];

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
	assert_int_equal(vuf_start(f, FEATURES, 1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK, 2, QSIZE), 0);
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

#define UPLINK_FRAMES 8

struct fake_uplink {
	struct net_backend be;
	int efd;
	uint8_t sent[UPLINK_FRAMES][256];
	size_t sent_len[UPLINK_FRAMES];
	unsigned int nsent;
	uint8_t queued[UPLINK_FRAMES][256];
	size_t queued_len[UPLINK_FRAMES];
	unsigned int nqueued;
	bool destroyed;
};

static struct fake_uplink uplink;

static int uplink_send(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	(void)be, (void)qp;
	if (uplink.nsent == UPLINK_FRAMES)
		return -EAGAIN;
	uplink.sent_len[uplink.nsent] = iov_to_buf(iov, n, uplink.sent[uplink.nsent], 256);
	uplink.nsent++;
	return 0;
}

static ssize_t uplink_recv(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	uint64_t count;
	size_t len;

	(void)be, (void)qp, (void)n;
	if (!uplink.nqueued) {
		if (read(uplink.efd, &count, sizeof(count)) < 0) {
			/* already clear */
		}
		return -EAGAIN;
	}
	len = uplink.queued_len[--uplink.nqueued];
	memcpy(iov[0].iov_base, uplink.queued[uplink.nqueued], len);
	return (ssize_t)len;
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

static const struct net_backend_ops uplink_ops = {
	.name = "fake", .send = uplink_send, .recv = uplink_recv, .rx_fd = uplink_rx_fd, .destroy = uplink_destroy,
};

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
	memset(&uplink, 0, sizeof(uplink));
	uplink.be = (struct net_backend){ .ops = &uplink_ops, .queue_pairs = 1 };
	uplink.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_int_equal(vswitch_set_uplink(sw, &uplink.be), 0);
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

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

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
	};

	log_set_level(LOG_WARN);  /* not every connect and disconnect */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
