/* virtio-net through the test driver over an in-memory backend: transmit,
 * receive with and without mergeable buffers (num_buffers, GSO-sized frames),
 * a guest with no receive buffers, the control queue (queue pairs, MAC,
 * offloads), malformed chains, queue pairs running apart, and single queues
 * reset and resized (VIRTIO_F_RING_RESET, what ethtool -G does). */
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_pci.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "util/iov.h"
#include "virtio/net.h"
#include "virtio_driver.h"

#define RAM_SIZE (16ULL << 20)
#define QSIZE 64
#define MAX_FRAMES 4
#define FRAME_BYTES (NET_HDR_LEN + NET_MAX_GSO_FRAME)

/* A backend that keeps frames in memory: what the "host" sends waits in
 * pending[], what the guest sends lands in sent. */
struct fake_backend {
	struct net_backend be;
	int event_fd;
	uint8_t pending[MAX_FRAMES][FRAME_BYTES];
	size_t pending_len[MAX_FRAMES];
	unsigned int head, tail;
	uint8_t sent[FRAME_BYTES];
	size_t sent_len;
	unsigned int sent_count, pairs;
	unsigned int flushes;     /* ends of transmit bursts */
	unsigned int flood;       /* this many more 60-byte frames, produced on demand */
	uint64_t guest_offloads;
	struct net_ring offload[2][2];   /* what start_offload was given, per pair */
	bool offload_running[2];
	unsigned int offload_stops;
};

static struct fake_backend *fake;
static struct vtd d;
static struct virtio_dev *net;

static int fake_send(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	(void)be;
	(void)qp;
	fake->sent_len = iov_to_buf(iov, n, fake->sent, sizeof(fake->sent));
	fake->sent_count++;
	return 0;
}

static void fake_flush(struct net_backend *be, unsigned int qp)
{
	(void)be;
	(void)qp;
	fake->flushes++;
}

static ssize_t fake_recv(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	unsigned int slot = fake->head % MAX_FRAMES;

	(void)be;
	(void)qp;
	if (fake->flood) {
		static const uint8_t frame[NET_HDR_LEN + 60];

		fake->flood--;
		return (ssize_t)iov_from_buf(iov, n, frame, sizeof(frame));
	}
	if (fake->head == fake->tail)
		return -EAGAIN;
	fake->head++;
	/* Like a tap's readv: what does not fit is cut off. */
	return (ssize_t)iov_from_buf(iov, n, fake->pending[slot], fake->pending_len[slot]);
}

static int fake_rx_fd(struct net_backend *be, unsigned int qp)
{
	(void)be;
	(void)qp;
	return fake->event_fd;
}

static int fake_set_guest_offloads(struct net_backend *be, uint64_t features)
{
	(void)be;
	fake->guest_offloads = features;
	return 0;
}

static int fake_set_queue_pairs(struct net_backend *be, unsigned int n)
{
	(void)be;
	fake->pairs = n;
	return 0;
}

static int fake_start_offload(struct net_backend *be, unsigned int qp, const struct guest_mem *mem,
			      uint64_t features, const struct net_ring rings[2])
{
	(void)be, (void)mem, (void)features;
	memcpy(fake->offload[qp], rings, sizeof(fake->offload[qp]));
	fake->offload_running[qp] = true;
	return 0;
}

static void fake_stop_offload(struct net_backend *be, unsigned int qp, const struct net_ring rings[2])
{
	(void)be, (void)rings;
	fake->offload_running[qp] = false;
	fake->offload_stops++;
}

static void fake_destroy(struct net_backend *be)
{
	(void)be;
	close(fake->event_fd);
	free(fake);
	fake = NULL;
}

static const struct net_backend_ops fake_ops = {
	.name = "fake",
	.send = fake_send,
	.flush = fake_flush,
	.recv = fake_recv,
	.rx_fd = fake_rx_fd,
	.set_guest_offloads = fake_set_guest_offloads,
	.set_queue_pairs = fake_set_queue_pairs,
	.start_offload = fake_start_offload,
	.stop_offload = fake_stop_offload,
	.destroy = fake_destroy,
};

/* The "host" has a frame of len bytes (after the header) for the guest. */
static void host_sends(size_t len, uint8_t fill)
{
	unsigned int slot = fake->tail % MAX_FRAMES;

	memset(fake->pending[slot], 0, NET_HDR_LEN);
	memset(fake->pending[slot] + NET_HDR_LEN, fill, len);
	fake->pending_len[slot] = NET_HDR_LEN + len;
	fake->tail++;
}

static void make_device(unsigned int pairs, uint64_t backend_offloads, unsigned int mtu)
{
	struct virtio_net_options opts = { .queue_pairs = pairs, .mac = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 } };

	fake = calloc(1, sizeof(*fake));
	assert_non_null(fake);
	fake->be = (struct net_backend){ .ops = &fake_ops, .queue_pairs = pairs, .offloads = backend_offloads,
					 .mtu = mtu };
	fake->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	opts.backend = &fake->be;
	net = virtio_net_create(&opts);
	assert_non_null(net);
	vtd_init(&d, net, RAM_SIZE);
}

/* Negotiate features, set up every queue (vector = queue index), DRIVER_OK. */
static void start(uint64_t features)
{
	uint16_t queues = net->ops->num_queues;

	assert_true(vtd_negotiate(&d, features | (1ULL << VIRTIO_F_VERSION_1)));
	for (uint16_t q = 0; q < queues; q++)
		vtd_setup_queue(&d, q, QSIZE, q);
	vtd_driver_ok(&d);
}

static int setup(void **state)
{
	(void)state;
	make_device(2, (1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |
			       (1ULL << VIRTIO_NET_F_GUEST_TSO4), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vtd_destroy(&d);
	virtio_net_destroy(net);
	return 0;
}

/* The I/O thread's view: the backend's fd fired for queue pair qp. */
static void backend_ready(unsigned int qp)
{
	pthread_mutex_t *lock = virtio_group_lock(net, net->event_group[qp]);

	pthread_mutex_lock(lock);
	net->ops->event_ready(net, qp);
	pthread_mutex_unlock(lock);
}

static uint16_t offer_rx(unsigned int qp, uint32_t len)
{
	struct vtd_buf buf = { vtd_alloc(&d, len), len, true };

	return vtd_offer(&d, 2 * qp, &buf, 1);
}

static uint8_t control(uint8_t class, uint8_t cmd, const void *data, uint32_t len)
{
	uint16_t ctrl = net->ops->num_queues - 1;
	uint64_t hdr = vtd_alloc(&d, 2), payload = vtd_alloc(&d, len ? len : 1), ack = vtd_alloc(&d, 1);
	struct vtd_buf bufs[3] = { { hdr, 2, false }, { payload, len, false }, { ack, 1, true } };
	uint32_t id, used_len;

	((uint8_t *)vtd_ptr(&d, hdr))[0] = class;
	((uint8_t *)vtd_ptr(&d, hdr))[1] = cmd;
	if (len)
		memcpy(vtd_ptr(&d, payload), data, len);
	*(uint8_t *)vtd_ptr(&d, ack) = 0xEE;
	if (len)
		vtd_offer(&d, ctrl, bufs, 3);
	else
		vtd_offer(&d, ctrl, (struct vtd_buf[]){ bufs[0], bufs[2] }, 2);
	vtd_kick(&d, ctrl);
	assert_true(vtd_next_used(&d, ctrl, &id, &used_len));
	assert_int_equal(used_len, 1);
	return *(uint8_t *)vtd_ptr(&d, ack);
}

static uint8_t rd_config8(struct vtd *dev, unsigned int offset)
{
	return (uint8_t)vtd_read(dev, VIRTIO_PCI_DEVICE_OFFSET + offset, 1);
}

static void test_config_and_features(void **state)
{
	uint64_t offered = vtd_device_features(&d);

	(void)state;
	assert_int_equal(rd_config8(&d, 0), 0x52);
	assert_int_equal(rd_config8(&d, 5), 0x56);
	assert_int_equal(vtd_read(&d, VIRTIO_PCI_DEVICE_OFFSET + 6, 2), VIRTIO_NET_S_LINK_UP);
	assert_int_equal(vtd_read(&d, VIRTIO_PCI_DEVICE_OFFSET + 8, 2), 2);  /* max_virtqueue_pairs */
	assert_true(offered & (1ULL << VIRTIO_NET_F_MQ));
	assert_true(offered & (1ULL << VIRTIO_NET_F_MRG_RXBUF));
	assert_true(offered & (1ULL << VIRTIO_NET_F_CTRL_GUEST_OFFLOADS));
	assert_true(offered & (1ULL << VIRTIO_NET_F_GUEST_TSO4));
	/* Offloads the backend cannot carry are not offered. */
	assert_false(offered & (1ULL << VIRTIO_NET_F_HOST_TSO6));
	assert_false(offered & (1ULL << VIRTIO_NET_F_MTU));  /* a tap's MTU is the host's to set */
	assert_int_equal(net->ops->num_queues, 5);
}

/* A backend that sets its link's MTU (user networking): the guest is told
 * (VIRTIO_NET_F_MTU, config mtu), and a frame of that size is received whole
 * over mergeable buffers, without GSO being negotiated. */
static void test_backend_mtu(void **state)
{
	const uint32_t buf_len = 4096, frame = 14 + 65520;
	uint32_t id, len, total = 0;

	(void)state;
	teardown(state);
	make_device(1, 0, 65520);
	assert_true(vtd_device_features(&d) & (1ULL << VIRTIO_NET_F_MTU));
	assert_int_equal(vtd_read(&d, VIRTIO_PCI_DEVICE_OFFSET + offsetof(struct virtio_net_config, mtu), 2), 65520);
	start((1ULL << VIRTIO_NET_F_MRG_RXBUF) | (1ULL << VIRTIO_NET_F_MTU));
	for (int i = 0; i < 16; i++)
		offer_rx(0, buf_len);
	host_sends(frame, 0x55);
	backend_ready(0);
	assert_false(vtd_next_used(&d, 0, &id, &len));  /* 16 buffers are short of a maximal frame */
	offer_rx(0, buf_len);
	vtd_kick(&d, 0);
	while (vtd_next_used(&d, 0, &id, &len))
		total += len;
	assert_int_equal(total, NET_HDR_LEN + frame);
}

/* A driver that did not learn the MTU (no F_MTU) and posts one 1.5 KiB
 * buffer per frame (no mergeable buffers) still receives: the device does
 * not wait for room for a 64 KiB frame the driver never expects. */
static void test_backend_mtu_unknown_to_driver(void **state)
{
	uint32_t id, len;

	(void)state;
	teardown(state);
	make_device(1, 0, 65520);
	start(0);
	offer_rx(0, NET_HDR_LEN + NET_MAX_FRAME);
	host_sends(100, 0x66);
	backend_ready(0);
	assert_true(vtd_next_used(&d, 0, &id, &len));
	assert_int_equal(len, NET_HDR_LEN + 100);
}

static void test_transmit_passes_header_and_frame(void **state)
{
	uint64_t hdr = vtd_alloc(&d, NET_HDR_LEN), data = vtd_alloc(&d, 100);
	struct vtd_buf bufs[2] = { { hdr, NET_HDR_LEN, false }, { data, 100, false } };
	uint32_t id, len;

	(void)state;
	start(1ULL << VIRTIO_NET_F_CSUM);
	memset(vtd_ptr(&d, hdr), 0, NET_HDR_LEN);
	((struct virtio_net_hdr_v1 *)vtd_ptr(&d, hdr))->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	memset(vtd_ptr(&d, data), 0xAB, 100);
	vtd_offer(&d, 1, bufs, 2);
	vtd_kick(&d, 1);
	assert_true(vtd_next_used(&d, 1, &id, &len));
	assert_int_equal(len, 0);
	assert_int_equal(fake->sent_count, 1);
	assert_int_equal(fake->sent_len, NET_HDR_LEN + 100);
	assert_int_equal(fake->sent[0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(fake->sent[NET_HDR_LEN + 99], 0xAB);
	assert_true(vtd_interrupted(&d, 1));
	assert_int_equal(virtio_net_stats(net, 0).tx_frames, 1);
	assert_int_equal(virtio_net_stats(net, 0).tx_bytes, 100);
}

/* Frames offered together go out in one burst: one flush after the last. */
static void test_transmit_burst_flushes_once(void **state)
{
	uint64_t gpa = vtd_alloc(&d, 3 * (NET_HDR_LEN + 64));
	uint32_t id, len;

	(void)state;
	start(0);
	memset(vtd_ptr(&d, gpa), 0, 3 * (NET_HDR_LEN + 64));
	for (unsigned int i = 0; i < 3; i++) {
		struct vtd_buf buf = { gpa + i * (NET_HDR_LEN + 64), NET_HDR_LEN + 64, false };

		vtd_offer(&d, 1, &buf, 1);
	}
	vtd_kick(&d, 1);
	for (unsigned int i = 0; i < 3; i++)
		assert_true(vtd_next_used(&d, 1, &id, &len));
	assert_int_equal(fake->sent_count, 3);
	assert_int_equal(fake->flushes, 1);
	vtd_kick(&d, 1);  /* nothing new: no burst */
	assert_int_equal(fake->flushes, 1);
}

static void test_transmit_drops_malformed_chains(void **state)
{
	uint64_t a = vtd_alloc(&d, 64);
	struct vtd_buf short_chain = { a, NET_HDR_LEN - 1, false };
	struct vtd_buf writable[2] = { { a, NET_HDR_LEN, false }, { a + 32, 16, true } };
	uint32_t id, len;

	(void)state;
	start(0);
	vtd_offer(&d, 1, &short_chain, 1);
	vtd_offer(&d, 1, writable, 2);
	vtd_kick(&d, 1);
	assert_true(vtd_next_used(&d, 1, &id, &len));
	assert_true(vtd_next_used(&d, 1, &id, &len));
	assert_int_equal(fake->sent_count, 0);
	assert_int_equal(virtio_net_stats(net, 0).tx_dropped, 2);
	assert_false(vtd_read(&d, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_receive_one_chain_per_frame(void **state)
{
	uint32_t id, len;
	uint16_t head;

	(void)state;
	start(0);
	head = offer_rx(0, NET_HDR_LEN + NET_MAX_FRAME);
	host_sends(60, 0x11);
	backend_ready(0);
	assert_true(vtd_next_used(&d, 0, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, NET_HDR_LEN + 60);
	assert_true(vtd_interrupted(&d, 0));
	assert_int_equal(virtio_net_stats(net, 0).rx_frames, 1);
}

static void test_receive_waits_for_buffers(void **state)
{
	uint32_t id, len;

	(void)state;
	start(1ULL << VIRTIO_NET_F_MRG_RXBUF);
	host_sends(1000, 0x22);
	backend_ready(0);  /* no buffers yet: the frame stays with the backend */
	assert_false(vtd_next_used(&d, 0, &id, &len));
	/* A buffer too small for the largest frame is not used either. */
	offer_rx(0, 512);
	vtd_kick(&d, 0);
	assert_false(vtd_next_used(&d, 0, &id, &len));
	offer_rx(0, 1536);
	vtd_kick(&d, 0);  /* the guest's refill kick delivers it */
	assert_true(vtd_next_used(&d, 0, &id, &len));
	assert_int_equal(len, 512);
	assert_true(vtd_next_used(&d, 0, &id, &len));
	assert_int_equal(len, NET_HDR_LEN + 1000 - 512);
	assert_int_equal(fake->head, 1);
}

/* A 20000-byte TSO frame over 4 KiB mergeable buffers: num_buffers says how
 * many it took, and the buffers it did not need stay available. */
static void test_receive_merges_buffers(void **state)
{
	const uint32_t buf_len = 4096, frame = 20000;
	uint64_t first = 0;
	uint32_t id, len, total = 0, used = 0;
	struct virtio_net_hdr_v1 hdr;

	(void)state;
	start((1ULL << VIRTIO_NET_F_MRG_RXBUF) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |
	      (1ULL << VIRTIO_NET_F_GUEST_TSO4));
	assert_true(fake->guest_offloads & (1ULL << VIRTIO_NET_F_GUEST_TSO4));
	for (int i = 0; i < 20; i++) {
		struct vtd_buf buf = { vtd_alloc(&d, buf_len), buf_len, true };

		if (i == 0)
			first = buf.gpa;
		vtd_offer(&d, 0, &buf, 1);
	}
	host_sends(frame, 0x33);
	backend_ready(0);
	while (vtd_next_used(&d, 0, &id, &len)) {
		total += len;
		used++;
	}
	assert_int_equal(total, NET_HDR_LEN + frame);
	assert_int_equal(used, (NET_HDR_LEN + frame + buf_len - 1) / buf_len);
	memcpy(&hdr, vtd_ptr(&d, first), sizeof(hdr));
	assert_int_equal(hdr.num_buffers, used);
	/* The 15 buffers left are less than a maximal frame needs: the next
	 * frame waits for the guest's refill (and its kick). */
	host_sends(100, 0x44);
	backend_ready(0);
	assert_false(vtd_next_used(&d, 0, &id, &len));
	for (unsigned int i = 0; i < used; i++) {
		struct vtd_buf buf = { vtd_alloc(&d, buf_len), buf_len, true };

		vtd_offer(&d, 0, &buf, 1);
	}
	vtd_kick(&d, 0);
	assert_true(vtd_next_used(&d, 0, &id, &len));
	assert_int_equal(len, NET_HDR_LEN + 100);
}

/* More frames than one call may take: the call stops at its budget and
 * requeues the RX queue's kick, since an edge-triggered backend fd will not
 * fire again for frames already waiting. */
static void test_receive_budget_requeues(void **state)
{
	uint64_t kicks = 0;
	unsigned int delivered = 0;
	uint32_t id, len;

	(void)state;
	assert_true(vtd_negotiate(&d, 1ULL << VIRTIO_F_VERSION_1));
	vtd_setup_queue(&d, 0, 256, 0);
	for (uint16_t q = 1; q < net->ops->num_queues; q++)
		vtd_setup_queue(&d, q, QSIZE, q);
	vtd_driver_ok(&d);
	for (int i = 0; i < 256; i++)
		offer_rx(0, NET_HDR_LEN + NET_MAX_FRAME);
	fake->flood = 300;
	backend_ready(0);
	while (vtd_next_used(&d, 0, &id, &len))
		delivered++;
	assert_int_equal(delivered, 256);
	assert_int_equal(fake->flood, 300 - 256);
	assert_int_equal(read(d.vp.queues[0].kick_fd, &kicks, sizeof(kicks)), sizeof(kicks));
	assert_int_equal(kicks, 1);
	/* The requeued kick, after a refill, takes the rest. */
	for (int i = 0; i < 64; i++)
		offer_rx(0, NET_HDR_LEN + NET_MAX_FRAME);
	vtd_kick(&d, 0);
	while (vtd_next_used(&d, 0, &id, &len))
		delivered++;
	assert_int_equal(fake->flood, 0);
	assert_int_equal(delivered, 300);
}

static void test_control_queue(void **state)
{
	static const uint8_t mac[6] = { 0x02, 0, 0, 0, 0, 0x42 };
	uint16_t pairs;
	uint64_t offloads = 0;

	(void)state;
	start((1ULL << VIRTIO_NET_F_CTRL_VQ) | (1ULL << VIRTIO_NET_F_MQ) | (1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR) |
	      (1ULL << VIRTIO_NET_F_CTRL_RX) | (1ULL << VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) |
	      (1ULL << VIRTIO_NET_F_GUEST_CSUM));
	assert_int_equal(fake->pairs, 1);  /* reset detached the second pair */
	pairs = htole16(2);
	assert_int_equal(control(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2), VIRTIO_NET_OK);
	assert_int_equal(fake->pairs, 2);
	pairs = htole16(3);
	assert_int_equal(control(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2), VIRTIO_NET_ERR);
	pairs = 0;
	assert_int_equal(control(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2), VIRTIO_NET_ERR);
	assert_int_equal(control(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 6), VIRTIO_NET_OK);
	assert_int_equal(rd_config8(&d, 5), 0x42);
	assert_int_equal(control(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, "\1", 1), VIRTIO_NET_OK);
	/* Offloads: off is fine, a bit never negotiated (TSO4) is refused. */
	assert_int_equal(control(VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &offloads, 8),
			 VIRTIO_NET_OK);
	assert_int_equal(fake->guest_offloads, 0);
	offloads = htole64(1ULL << VIRTIO_NET_F_GUEST_TSO4);
	assert_int_equal(control(VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, &offloads, 8),
			 VIRTIO_NET_ERR);
	assert_int_equal(control(0x7F, 0, NULL, 0), VIRTIO_NET_ERR);
	/* A reset puts the configured MAC back and goes down to one pair. */
	vtd_write(&d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(rd_config8(&d, 5), 0x56);
	assert_int_equal(fake->pairs, 1);
}

static void test_control_without_ack_byte_needs_reset(void **state)
{
	uint16_t ctrl;
	uint64_t a = vtd_alloc(&d, 8);
	struct vtd_buf only_out = { a, 8, false };

	(void)state;
	start(1ULL << VIRTIO_NET_F_CTRL_VQ);
	ctrl = net->ops->num_queues - 1;
	vtd_offer(&d, ctrl, &only_out, 1);
	vtd_kick(&d, ctrl);
	assert_true(vtd_read(&d, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* vhost's shape: at DRIVER_OK each pair's rings go to the backend with the
 * kick eventfds (no longer watched by kvio) and the vectors' irqfds; kvio then
 * leaves the rings alone, and a reset takes them back. */
static void test_offload_hands_rings_over(void **state)
{
	struct vtd_buf tx = { vtd_alloc(&d, NET_HDR_LEN + 60), NET_HDR_LEN + 60, false };
	uint32_t id, len;

	(void)state;
	fake->be.has_offload = true;
	start(1ULL << VIRTIO_NET_F_MRG_RXBUF);
	for (unsigned int qp = 0; qp < 2; qp++) {
		assert_true(fake->offload_running[qp]);
		for (unsigned int i = 0; i < 2; i++) {
			unsigned int q = 2 * qp + i;

			assert_ptr_equal(fake->offload[qp][i].vq, &net->vq[q]);
			assert_int_equal(fake->offload[qp][i].kick_fd, d.vp.queues[q].kick_fd);
			assert_int_equal(fake->offload[qp][i].call_fd, d.vp.msix[q].fd);
			assert_true(d.kick_unwatched[q]);
		}
	}
	assert_false(d.kick_unwatched[4]);  /* the control queue stays with kvio */
	vtd_offer(&d, 1, &tx, 1);
	vtd_kick(&d, 1);
	assert_int_equal(fake->sent_count, 0);
	assert_false(vtd_next_used(&d, 1, &id, &len));
	host_sends(60, 0xAB);
	offer_rx(0, 2048);
	backend_ready(0);
	assert_false(vtd_next_used(&d, 0, &id, &len));
	/* Reset: the backend stops, kvio watches the kicks again. */
	vtd_write(&d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(fake->offload_stops, 2);
	assert_false(fake->offload_running[0] || fake->offload_running[1]);
	for (unsigned int q = 0; q < 4; q++)
		assert_false(d.kick_unwatched[q]);
}

/* Without MSI-X there is no irqfd to hand over: kvio keeps the data path. */
static void test_offload_needs_msix(void **state)
{
	struct vtd_buf tx = { vtd_alloc(&d, NET_HDR_LEN + 60), NET_HDR_LEN + 60, false };

	(void)state;
	fake->be.has_offload = true;
	pci_device_config_write(&d.vp.pci, 0x40 + PCI_MSIX_FLAGS, 0, 2);
	start(0);
	assert_false(fake->offload_running[0] || fake->offload_running[1]);
	assert_false(d.kick_unwatched[0] || d.kick_unwatched[1]);
	vtd_offer(&d, 1, &tx, 1);
	vtd_kick(&d, 1);
	assert_int_equal(fake->sent_count, 1);
}

static void *pair1_thread_kicks_tx(void *arg)
{
	(void)arg;
	virtio_pci_handle_kick(&d.vp, 3);
	return NULL;
}

/* Join t within a few seconds; false if it is still blocked. */
static bool joined_in_time(pthread_t t)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5;
	return pthread_timedjoin_np(t, NULL, &deadline) == 0;
}

/* Each queue pair is a queue group with its own lock (and, under KVM, its own
 * I/O thread): pair 1 transmits while the device lock is held elsewhere (a
 * vCPU in a register access, or pair 0's thread at work). */
static void test_pairs_run_apart(void **state)
{
	struct vtd_buf tx = { vtd_alloc(&d, NET_HDR_LEN + 60), NET_HDR_LEN + 60, false };
	uint16_t pairs = htole16(2);
	uint32_t id, len;
	pthread_t t;
	bool in_time;

	(void)state;
	assert_int_equal(net->nr_groups, 2);
	assert_int_equal(net->queue_group[0], 0);
	assert_int_equal(net->queue_group[1], 0);
	assert_int_equal(net->queue_group[2], 1);
	assert_int_equal(net->queue_group[3], 1);
	assert_int_equal(net->queue_group[4], 0);  /* control */
	assert_int_equal(net->event_group[1], 1);
	start((1ULL << VIRTIO_NET_F_CTRL_VQ) | (1ULL << VIRTIO_NET_F_MQ));
	assert_int_equal(control(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2), VIRTIO_NET_OK);
	vtd_offer(&d, 3, &tx, 1);
	pthread_mutex_lock(&net->lock);
	assert_int_equal(pthread_create(&t, NULL, pair1_thread_kicks_tx, NULL), 0);
	in_time = joined_in_time(t);
	pthread_mutex_unlock(&net->lock);
	if (!in_time)
		pthread_join(t, NULL);
	assert_true(in_time);
	assert_true(vtd_next_used(&d, 3, &id, &len));
	assert_int_equal(fake->sent_count, 1);
	assert_int_equal(virtio_net_stats(net, 1).tx_frames, 1);
}

static bool reset_done;

static void *vcpu_thread_resets_device(void *arg)
{
	(void)arg;
	vtd_write(&d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	__atomic_store_n(&reset_done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* The other way round: a reset (control plane) waits until pair 1's data
 * path is out of its group, so it never tears queues down under it. */
static void test_reset_waits_for_pairs(void **state)
{
	pthread_t t;
	struct timespec pause = { 0, 100 * 1000 * 1000 };

	(void)state;
	start(1ULL << VIRTIO_NET_F_MQ);
	reset_done = false;
	pthread_mutex_lock(&net->group_lock[1]);
	assert_int_equal(pthread_create(&t, NULL, vcpu_thread_resets_device, NULL), 0);
	nanosleep(&pause, NULL);
	assert_false(__atomic_load_n(&reset_done, __ATOMIC_ACQUIRE));
	pthread_mutex_unlock(&net->group_lock[1]);
	assert_true(joined_in_time(t));
	assert_int_equal(vtd_read(&d, VIRTIO_PCI_COMMON_STATUS, 1), 0);
}

/* One frame of len bytes (after the header) from the guest on queue 1, kicked. */
static void guest_sends(uint32_t len, uint8_t fill)
{
	uint64_t gpa = vtd_alloc(&d, NET_HDR_LEN + len);
	struct vtd_buf buf = { gpa, NET_HDR_LEN + len, false };

	memset(vtd_ptr(&d, gpa), 0, NET_HDR_LEN);
	memset(vtd_ptr(&d, gpa + NET_HDR_LEN), fill, len);
	vtd_offer(&d, 1, &buf, 1);
	vtd_kick(&d, 1);
}

static uint64_t read_queue_reg(unsigned int q, uint64_t reg, unsigned int size)
{
	vtd_write(&d, VIRTIO_PCI_COMMON_Q_SELECT, q, 2);
	return vtd_read(&d, reg, size);
}

static void test_ring_reset_offered_unless_vhost(void **state)
{
	(void)state;
	assert_true(vtd_device_features(&d) & (1ULL << VIRTIO_F_RING_RESET));
	/* vhost owns whole pairs' rings: kvio cannot restart one, so it does not offer it. */
	fake->be.has_offload = true;
	vtd_write(&d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_false(vtd_device_features(&d) & (1ULL << VIRTIO_F_RING_RESET));
	assert_false(vtd_negotiate(&d, (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_RING_RESET)));
}

/* Linux's ethtool -G: reset the RX and TX queues of a running device, give
 * them smaller rings elsewhere, enable them again. Nothing moves on the old
 * rings meanwhile, the other queues carry on, and frames then flow (and wrap)
 * in the new rings, the one that waited in the backend first. */
static void test_ring_reset_resizes_rx_and_tx(void **state)
{
	const uint16_t small = 16;
	uint32_t id, len;
	uint16_t head;
	uint64_t kicks = 0, buf;
	unsigned int got = 0;

	(void)state;
	start((1ULL << VIRTIO_F_RING_RESET) | (1ULL << VIRTIO_RING_F_EVENT_IDX));
	assert_true(net->features & (1ULL << VIRTIO_F_RING_RESET));
	offer_rx(0, NET_HDR_LEN + NET_MAX_FRAME);
	host_sends(60, 0x11);
	backend_ready(0);
	assert_true(vtd_next_used(&d, 0, &id, &len));
	guest_sends(100, 0x21);
	assert_true(vtd_next_used(&d, 1, &id, &len));
	assert_int_equal(fake->sent_count, 1);
	assert_true(vtd_interrupted(&d, 0) && vtd_interrupted(&d, 1));

	assert_true(vtd_reset_queue(&d, 0));
	assert_true(vtd_reset_queue(&d, 1));
	for (unsigned int q = 0; q < 2; q++) {
		assert_int_equal(read_queue_reg(q, VIRTIO_PCI_COMMON_Q_RESET, 2), 0);
		assert_int_equal(read_queue_reg(q, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
		assert_int_equal(read_queue_reg(q, VIRTIO_PCI_COMMON_Q_SIZE, 2), net->ops->queue_size);
		assert_int_equal(read_queue_reg(q, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
		assert_int_equal(read_queue_reg(q, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
		assert_int_equal(read_queue_reg(q, VIRTIO_PCI_COMMON_Q_USEDLO, 4), 0);
		assert_false(net->vq_ready[q]);
	}
	for (unsigned int q = 2; q < net->ops->num_queues; q++)
		assert_int_equal(read_queue_reg(q, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	/* The old rings are dead: buffers offered there are neither used nor sent, and no interrupt comes. */
	offer_rx(0, NET_HDR_LEN + NET_MAX_FRAME);
	vtd_kick(&d, 0);
	host_sends(60, 0x12);
	backend_ready(0);
	assert_false(vtd_next_used(&d, 0, &id, &len));
	guest_sends(100, 0x22);
	assert_false(vtd_next_used(&d, 1, &id, &len));
	assert_int_equal(fake->sent_count, 1);
	assert_int_equal(fake->head, 1);  /* the 0x12 frame waits in the backend */
	assert_false(vtd_interrupted(&d, 0) || vtd_interrupted(&d, 1));

	vtd_setup_queue_at(&d, 0, small, 0, vtd_alloc(&d, 4096));
	vtd_setup_queue_at(&d, 1, small, 1, vtd_alloc(&d, 4096));
	assert_int_equal(read_queue_reg(0, VIRTIO_PCI_COMMON_Q_SIZE, 2), small);
	assert_int_equal(read_queue_reg(0, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	assert_int_equal(read_queue_reg(1, VIRTIO_PCI_COMMON_Q_MSIX, 2), 1);
	assert_false(vtd_read(&d, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* Enabling a queue of a running device kicks it once, as the I/O thread will see. */
	assert_int_equal(read(d.vp.queues[0].kick_fd, &kicks, sizeof(kicks)), sizeof(kicks));
	assert_int_equal(kicks, 1);

	/* The frame that waited lands in the new ring, then 15 more fill it, 8 more wrap it. */
	buf = vtd_alloc(&d, NET_HDR_LEN + NET_MAX_FRAME);
	head = vtd_offer(&d, 0, &(struct vtd_buf){ buf, NET_HDR_LEN + NET_MAX_FRAME, true }, 1);
	for (unsigned int i = 1; i < small; i++)
		offer_rx(0, NET_HDR_LEN + NET_MAX_FRAME);
	vtd_kick(&d, 0);
	assert_true(vtd_next_used(&d, 0, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, NET_HDR_LEN + 60);
	assert_int_equal(((uint8_t *)vtd_ptr(&d, buf))[NET_HDR_LEN], 0x12);
	assert_true(vtd_interrupted(&d, 0));
	fake->flood = small - 1;
	backend_ready(0);
	while (vtd_next_used(&d, 0, &id, &len))
		got++;
	assert_int_equal(got, small - 1);
	for (unsigned int i = 0; i < 8; i++)
		offer_rx(0, NET_HDR_LEN + NET_MAX_FRAME);
	fake->flood = 8;
	vtd_kick(&d, 0);
	while (vtd_next_used(&d, 0, &id, &len))
		got++;
	assert_int_equal(got, small - 1 + 8);
	assert_int_equal(fake->flood, 0);

	/* TX: more frames than the new ring holds, one kick each. */
	for (unsigned int i = 0; i < small + 4; i++) {
		guest_sends(200, (uint8_t)i);
		assert_true(vtd_next_used(&d, 1, &id, &len));
	}
	assert_int_equal(fake->sent_count, 1 + small + 4);
	assert_int_equal(fake->sent_len, NET_HDR_LEN + 200);
	assert_int_equal(fake->sent[NET_HDR_LEN], small + 3);
	assert_true(vtd_interrupted(&d, 1));
	assert_false(vtd_read(&d, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* The control queue may be reset and resized too; commands then use the new ring. */
static void test_ring_reset_control_queue(void **state)
{
	static const uint8_t mac[6] = { 0x02, 0, 0, 0, 0, 0x77 };
	uint16_t ctrl;

	(void)state;
	start((1ULL << VIRTIO_F_RING_RESET) | (1ULL << VIRTIO_NET_F_CTRL_VQ) | (1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR));
	ctrl = net->ops->num_queues - 1;
	assert_int_equal(control(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, "\1", 1), VIRTIO_NET_OK);
	assert_true(vtd_reset_queue(&d, ctrl));
	vtd_setup_queue_at(&d, ctrl, 8, ctrl, vtd_alloc(&d, 4096));
	for (int i = 0; i < 10; i++)
		assert_int_equal(control(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 6), VIRTIO_NET_OK);
	assert_int_equal(rd_config8(&d, 5), 0x77);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_config_and_features),
		T(test_backend_mtu),
		T(test_backend_mtu_unknown_to_driver),
		T(test_transmit_passes_header_and_frame),
		T(test_transmit_burst_flushes_once),
		T(test_transmit_drops_malformed_chains),
		T(test_receive_one_chain_per_frame),
		T(test_receive_waits_for_buffers),
		T(test_receive_merges_buffers),
		T(test_receive_budget_requeues),
		T(test_control_queue),
		T(test_control_without_ack_byte_needs_reset),
		T(test_offload_hands_rings_over),
		T(test_offload_needs_msix),
		T(test_pairs_run_apart),
		T(test_reset_waits_for_pairs),
		T(test_ring_reset_offered_unless_vhost),
		T(test_ring_reset_resizes_rx_and_tx),
		T(test_ring_reset_control_queue),
	};

	return cmocka_run_group_tests_name("virtio_net", tests, NULL, NULL);
}
