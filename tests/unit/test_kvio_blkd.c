/* kvio-blkd's core (tools/blkd.c) with the test frontend, on a real image
 * file with io_uring: the config space over GET_CONFIG, every request type
 * through the rings, read-only images, malformed requests, a device that
 * needs a reset, GET_VRING_BASE and disconnects with requests in flight,
 * EVENT_IDX interrupts, the kick budget, multiqueue, malformed messages and
 * rings, one frontend at a time, fifty reconnections without a leak, and
 * kvio's own vhost-user-blk frontend end to end. */
#include "unit.h"

#include <errno.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tools/blkd.h"
#include "tools/unix_listen.h"
#include "util/log.h"
#include "virtio/blk.h"
#include "virtio/vhost_user_blk.h"
#include "vhost_user_frontend.h"
#include "virtio_driver.h"

#define RAM_SIZE (8ULL << 20)
#define DISK_SIZE (4ULL << 20)
#define QSIZE 256
#define SECTORS (DISK_SIZE / 512)
#define FEATURES                                                                                        \
	((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | \
	 (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) |     \
	 (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES))
#define PROTOCOL                                                                                     \
	((1ULL << VHOST_USER_PROTOCOL_F_MQ) | (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
	 (1ULL << VHOST_USER_PROTOCOL_F_CONFIG))

static char image[] = "/tmp/kvio-test-blkd-XXXXXX";
static struct blkd *d;
static struct vuf f;
static bool fe_up;

static int pump(void *ctx)
{
	(void)ctx;
	for (unsigned int i = 0; i < 10000 && blkd_poll(d, 0) > 0; i++)
		;
	return 0;
}

static void open_daemon(bool read_only, unsigned int queues)
{
	struct blkd_options opts = { .image = image, .read_only = read_only, .queues = queues, .id = "blkd-serial" };

	d = blkd_new(&opts);
	assert_non_null(d);
}

static void connect_frontend(unsigned int queues)
{
	vuf_init(&f, RAM_SIZE, 0);
	assert_int_equal(blkd_connect(d, f.peer), 0);
	f.peer = -1;
	f.pump = pump;
	assert_int_equal(vuf_start(&f, FEATURES, PROTOCOL, queues, QSIZE), 0);
	assert_true(blkd_connected(d));
	fe_up = true;
}

/* The frontend hangs up; blkd notices on its next turn. */
static void hang_up(void)
{
	close(f.sock);
	f.sock = -1;
	pump(NULL);
	assert_false(blkd_connected(d));
}

static void close_frontend(void)
{
	if (fe_up)
		vuf_destroy(&f);
	fe_up = false;
}

static int setup(void **state)
{
	int fd = mkstemp(image);

	(void)state;
	if (fd < 0 || ftruncate(fd, DISK_SIZE) < 0)
		return -1;
	close(fd);
	open_daemon(false, 1);
	connect_frontend(1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	blkd_free(d);
	close_frontend();
	unlink(image);
	strcpy(image, "/tmp/kvio-test-blkd-XXXXXX");
	return 0;
}

/* Run blkd until queue q has a used element (completions come from io_uring
 * in their own time). */
static bool wait_used(unsigned int q, uint32_t *id, uint32_t *len)
{
	for (int tries = 0; tries < 200; tries++) {
		if (vuf_next_used(&f, q, id, len))
			return true;
		blkd_poll(d, 10);
		pump(NULL);
	}
	return false;
}

/* Offer one request (header, data if any, status byte) without kicking. */
static uint16_t offer(unsigned int q, uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t data_len,
		      bool data_writable, uint64_t *status_gpa)
{
	uint64_t hdr = vuf_alloc(&f, sizeof(struct virtio_blk_outhdr)), status = vuf_alloc(&f, 1);
	struct virtio_blk_outhdr *h = vuf_ptr(&f, hdr);
	struct vuf_buf bufs[3] = { { hdr, sizeof(*h), false } };
	unsigned int n = 1;

	*h = (struct virtio_blk_outhdr){ .type = type, .sector = sector };
	*(uint8_t *)vuf_ptr(&f, status) = 0xEE;
	if (data_len)
		bufs[n++] = (struct vuf_buf){ data_gpa, data_len, data_writable };
	bufs[n++] = (struct vuf_buf){ status, 1, true };
	*status_gpa = status;
	return vuf_offer(&f, q, bufs, n);
}

/* One request, kicked and waited for; returns its status byte. */
static uint8_t request(unsigned int q, uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t data_len,
		       bool data_writable, uint32_t *used_len)
{
	uint64_t status;
	uint16_t head = offer(q, type, sector, data_gpa, data_len, data_writable, &status);
	uint32_t id, len;

	vuf_kick(&f, q);
	assert_true(wait_used(q, &id, &len));
	assert_int_equal(id, head);
	if (used_len)
		*used_len = len;
	return *(uint8_t *)vuf_ptr(&f, status);
}

static uint16_t used_idx(unsigned int q)
{
	return __atomic_load_n(&((struct vring_used *)vuf_ptr(&f, f.q[q].used))->idx, __ATOMIC_ACQUIRE);
}

static void read_host(uint64_t offset, void *buf, size_t len)
{
	FILE *file = fopen(image, "rb");

	assert_non_null(file);
	assert_int_equal(fseek(file, (long)offset, SEEK_SET), 0);
	assert_int_equal(fread(buf, 1, len, file), len);
	fclose(file);
}

static void test_features_and_config(void **state)
{
	uint64_t features = vuf_get_u64(&f, VHOST_USER_GET_FEATURES);
	struct virtio_blk_config config;
	uint8_t tail[16], zero[16] = { 0 };
	uint32_t seg_max;

	(void)state;
	assert_int_equal(features & FEATURES, FEATURES);
	assert_true(features & (1ULL << VHOST_USER_F_PROTOCOL_FEATURES));
	assert_false(features & (1ULL << VIRTIO_BLK_F_RO));
	assert_false(features & (1ULL << VIRTIO_BLK_F_MQ));
	assert_int_equal(vuf_get_u64(&f, VHOST_USER_GET_PROTOCOL_FEATURES), PROTOCOL);
	assert_int_equal(vuf_get_u64(&f, VHOST_USER_GET_QUEUE_NUM), 1);

	memset(&config, 0xAA, sizeof(config));
	assert_int_equal(vuf_get_config(&f, 0, &config, sizeof(config)), 0);
	assert_int_equal(config.capacity, SECTORS);
	assert_int_equal(config.seg_max, VIRTIO_BLK_SEG_MAX);
	assert_int_equal(config.blk_size, 512);
	assert_int_equal(config.num_queues, 1);
	assert_int_equal(config.max_discard_sectors, 1U << 22);
	assert_int_equal(config.max_discard_seg, 1);
	assert_int_equal(config.max_write_zeroes_seg, 1);
	assert_int_equal(config.write_zeroes_may_unmap, 1);
	/* A piece of it, and bytes past its end (zero, as virtio-pci reads them). */
	assert_int_equal(vuf_get_config(&f, offsetof(struct virtio_blk_config, seg_max), &seg_max, 4), 0);
	assert_int_equal(seg_max, VIRTIO_BLK_SEG_MAX);
	memset(tail, 0xAA, sizeof(tail));
	assert_int_equal(vuf_get_config(&f, sizeof(config) - 4, tail, sizeof(tail)), 0);
	assert_memory_equal(tail + 4, zero, sizeof(tail) - 4);
	assert_true(blkd_connected(d));
}

static void test_write_read_flush(void **state)
{
	uint64_t out = vuf_alloc(&f, 8192), in = vuf_alloc(&f, 8192);
	uint8_t host[8192];
	uint32_t len;

	(void)state;
	for (int i = 0; i < 8192; i++)
		((uint8_t *)vuf_ptr(&f, out))[i] = (uint8_t)(i * 7);
	assert_int_equal(request(0, VIRTIO_BLK_T_OUT, 16, out, 8192, false, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1);
	assert_true(vuf_interrupted(&f, 0));
	assert_int_equal(request(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 16, in, 8192, true, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 8193);
	assert_memory_equal(vuf_ptr(&f, in), vuf_ptr(&f, out), 8192);
	/* And it is in the image, at sector 16. */
	read_host(16 * 512, host, sizeof(host));
	assert_memory_equal(host, vuf_ptr(&f, out), 8192);
}

static void test_get_id(void **state)
{
	uint64_t in = vuf_alloc(&f, VIRTIO_BLK_ID_BYTES);
	uint32_t len;

	(void)state;
	memset(vuf_ptr(&f, in), 0xFF, VIRTIO_BLK_ID_BYTES);
	assert_int_equal(request(0, VIRTIO_BLK_T_GET_ID, 0, in, VIRTIO_BLK_ID_BYTES, true, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, VIRTIO_BLK_ID_BYTES + 1);
	assert_string_equal(vuf_ptr(&f, in), "blkd-serial");
}

static void test_bad_requests(void **state)
{
	uint64_t buf = vuf_alloc(&f, 4096), hdr = vuf_alloc(&f, 16), status = vuf_alloc(&f, 1);
	struct vuf_buf short_header[2] = { { hdr, 8, false }, { status, 1, true } };
	uint32_t id, len;

	(void)state;
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, SECTORS - 1, buf, 1024, true, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(0, VIRTIO_BLK_T_OUT, ~0ULL / 512, buf, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 0, buf, 100, true, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(0, 99, 0, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
	*(uint8_t *)vuf_ptr(&f, status) = 0xEE;
	vuf_offer(&f, 0, short_header, 2);
	vuf_kick(&f, 0);
	assert_true(wait_used(0, &id, &len));
	assert_int_equal(*(uint8_t *)vuf_ptr(&f, status), VIRTIO_BLK_S_IOERR);
	/* None of it hurt the device or the connection. */
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 0, buf, 512, true, NULL), VIRTIO_BLK_S_OK);
	assert_true(blkd_connected(d));
}

static void test_discard_and_write_zeroes(void **state)
{
	uint64_t data = vuf_alloc(&f, 64 << 10), seg = vuf_alloc(&f, 16);
	struct virtio_blk_discard_write_zeroes *range = vuf_ptr(&f, seg);
	uint8_t host[4096], zero[4096] = { 0 };

	(void)state;
	memset(vuf_ptr(&f, data), 0x5A, 64 << 10);
	assert_int_equal(request(0, VIRTIO_BLK_T_OUT, 0, data, 64 << 10, false, NULL), VIRTIO_BLK_S_OK);
	*range = (struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = 8 };
	assert_int_equal(request(0, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false, NULL), VIRTIO_BLK_S_OK);
	read_host(0, host, sizeof(host));
	assert_memory_equal(host, zero, sizeof(host));  /* a punched hole reads as zeroes */
	*range = (struct virtio_blk_discard_write_zeroes){ .sector = 64, .num_sectors = 8 };
	assert_int_equal(request(0, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, false, NULL), VIRTIO_BLK_S_OK);
	memset(vuf_ptr(&f, data), 1, 4096);
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 64, data, 4096, true, NULL), VIRTIO_BLK_S_OK);
	assert_memory_equal(vuf_ptr(&f, data), zero, 4096);
	read_host(8 * 512, host, 512);  /* outside both ranges: untouched */
	assert_int_equal(host[0], 0x5A);
	/* A range past the end is refused. */
	*range = (struct virtio_blk_discard_write_zeroes){ .sector = SECTORS - 4, .num_sectors = 8 };
	assert_int_equal(request(0, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false, NULL), VIRTIO_BLK_S_IOERR);
}

static void test_read_only(void **state)
{
	uint64_t buf, seg;

	(void)state;
	blkd_free(d);
	close_frontend();
	open_daemon(true, 1);
	connect_frontend(1);
	assert_true(vuf_get_u64(&f, VHOST_USER_GET_FEATURES) & (1ULL << VIRTIO_BLK_F_RO));
	buf = vuf_alloc(&f, 512);
	seg = vuf_alloc(&f, 16);
	memset(vuf_ptr(&f, buf), 'w', 512);
	assert_int_equal(request(0, VIRTIO_BLK_T_OUT, 0, buf, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	*(struct virtio_blk_discard_write_zeroes *)vuf_ptr(&f, seg) =
		(struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = 8 };
	assert_int_equal(request(0, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(0, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, false, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 0, buf, 512, true, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(((uint8_t *)vuf_ptr(&f, buf))[0], 0);  /* the write never happened */
	assert_int_equal(request(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
}

/* Requests popped before GET_VRING_BASE are all answered before its reply,
 * which carries the device's own index; the ring then resumes from it. */
static void test_vring_base_is_device_index(void **state)
{
	uint64_t data = vuf_alloc(&f, 5 * 4096), status[5];
	uint16_t head[5];
	uint32_t id, len;
	int base;

	(void)state;
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 0, data, 512, true, NULL), VIRTIO_BLK_S_OK);
	for (unsigned int i = 0; i < 4; i++) {
		memset(vuf_ptr(&f, data + i * 4096), 'a' + i, 4096);
		head[i] = offer(0, VIRTIO_BLK_T_OUT, 8 * i, data + i * 4096, 4096, false, &status[i]);
	}
	head[4] = offer(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, &status[4]);
	/* The kick alone: blkd submits everything and returns. */
	f.pump = NULL;
	vuf_kick(&f, 0);
	assert_true(blkd_poll(d, 100) > 0);
	f.pump = pump;
	base = vuf_get_vring_base(&f, 0);
	assert_int_equal(base, 6);
	assert_int_equal(used_idx(0), 6);
	/* In whatever order io_uring finished them. */
	for (unsigned int i = 0; i < 5; i++) {
		bool found = false;

		assert_true(vuf_next_used(&f, 0, &id, &len));
		for (unsigned int j = 0; j < 5; j++)
			found |= id == head[j];
		assert_true(found);
		assert_int_equal(*(uint8_t *)vuf_ptr(&f, status[i]), VIRTIO_BLK_S_OK);
	}
	/* Stopped: a kick now is not served. */
	offer(0, VIRTIO_BLK_T_IN, 0, data, 512, true, &status[0]);
	vuf_kick(&f, 0);
	assert_int_equal(used_idx(0), 6);
	/* Resumed where the device stopped: the request waiting is served. */
	assert_int_equal(vuf_restart_ring(&f, 0, (uint16_t)base), 0);
	assert_true(wait_used(0, &id, &len));
	assert_int_equal(*(uint8_t *)vuf_ptr(&f, status[0]), VIRTIO_BLK_S_OK);
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 8, data, 4096, true, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(((uint8_t *)vuf_ptr(&f, data))[0], 'b');
	assert_int_equal(vuf_get_vring_base(&f, 0), 8);
}

/* The frontend leaves with requests in flight: they complete (data in the
 * image, status and used element in guest memory) before the device resets. */
static void test_disconnect_answers_inflight(void **state)
{
	const unsigned int n = 8;
	uint64_t data = vuf_alloc(&f, n * 4096), status[9];
	uint8_t host[4096];
	uint32_t id, len;

	(void)state;
	for (unsigned int i = 0; i < n; i++) {
		memset(vuf_ptr(&f, data + i * 4096), 'A' + i, 4096);
		offer(0, VIRTIO_BLK_T_OUT, 8 * i, data + i * 4096, 4096, false, &status[i]);
	}
	offer(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, &status[n]);
	f.pump = NULL;
	vuf_kick(&f, 0);
	assert_true(blkd_poll(d, 100) > 0);
	hang_up();
	assert_int_equal(used_idx(0), n + 1);
	for (unsigned int i = 0; i <= n; i++) {
		assert_true(vuf_next_used(&f, 0, &id, &len));
		assert_int_equal(*(uint8_t *)vuf_ptr(&f, status[i]), VIRTIO_BLK_S_OK);
	}
	for (unsigned int i = 0; i < n; i++) {
		read_host(i * 4096, host, sizeof(host));
		assert_int_equal(host[0], 'A' + i);
		assert_int_equal(host[4095], 'A' + i);
	}
	/* The next frontend finds a fresh device. */
	close_frontend();
	connect_frontend(1);
	data = vuf_alloc(&f, 4096);
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 8, data, 4096, true, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(((uint8_t *)vuf_ptr(&f, data))[0], 'B');
}

/* A chain without a status byte cannot be answered: the device needs a
 * reset, so blkd serves nothing more until the frontend stops the ring; then
 * the ring works again. The connection stays. */
static void test_needs_reset_stops_until_reset(void **state)
{
	uint64_t hdr = vuf_alloc(&f, 16), buf = vuf_alloc(&f, 512), status;
	struct vuf_buf no_status[1] = { { hdr, 16, false } };

	(void)state;
	*(struct virtio_blk_outhdr *)vuf_ptr(&f, hdr) = (struct virtio_blk_outhdr){ .type = VIRTIO_BLK_T_IN };
	vuf_offer(&f, 0, no_status, 1);
	vuf_kick(&f, 0);
	offer(0, VIRTIO_BLK_T_IN, 0, buf, 512, true, &status);
	vuf_kick(&f, 0);
	blkd_poll(d, 50);
	pump(NULL);
	assert_int_equal(used_idx(0), 0);
	assert_true(blkd_connected(d));
	assert_int_equal(vuf_get_vring_base(&f, 0), 1);  /* the bad chain was taken, the next one not */
	/* The frontend resets the device: new rings, index 0. */
	assert_int_equal(vuf_setup_ring(&f, 0, QSIZE), 0);
	assert_int_equal(vuf_set_state(&f, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 0, buf, 512, true, NULL), VIRTIO_BLK_S_OK);
}

/* With EVENT_IDX the call eventfd fires only where the driver asked for it. */
static void test_event_idx_interrupts(void **state)
{
	uint64_t buf = vuf_alloc(&f, 512), status;
	uint16_t *used_event = (uint16_t *)vuf_ptr(&f, f.q[0].avail + 4 + 2ULL * QSIZE);
	uint32_t id, len;

	(void)state;
	/* The driver has seen nothing yet and asks at the first used buffer. */
	offer(0, VIRTIO_BLK_T_IN, 0, buf, 512, true, &status);
	vuf_kick(&f, 0);
	while (used_idx(0) < 1)
		blkd_poll(d, 10);
	assert_true(vuf_interrupted(&f, 0));
	/* It has not looked since (used_event still 0): no interrupt for the second. */
	offer(0, VIRTIO_BLK_T_IN, 0, buf, 512, true, &status);
	vuf_kick(&f, 0);
	while (used_idx(0) < 2)
		blkd_poll(d, 10);
	assert_false(vuf_interrupted(&f, 0));
	/* It catches up (used_event = 2): the third interrupts again. */
	assert_true(vuf_next_used(&f, 0, &id, &len));
	assert_true(vuf_next_used(&f, 0, &id, &len));
	assert_int_equal(*used_event, 2);
	offer(0, VIRTIO_BLK_T_IN, 0, buf, 512, true, &status);
	vuf_kick(&f, 0);
	while (used_idx(0) < 3)
		blkd_poll(d, 10);
	assert_true(vuf_interrupted(&f, 0));
}

/* More requests than one kick's budget (64): the rest follow on blkd's own
 * requeue, without another kick. Two descriptors each: the status shares the
 * data buffer's last byte. */
static void test_kick_budget_requeues(void **state)
{
	const unsigned int n = 100;
	uint64_t hdrs = vuf_alloc(&f, n * 16), data = vuf_alloc(&f, n * 513);
	uint32_t id, len;

	(void)state;
	for (unsigned int i = 0; i < n; i++) {
		struct vuf_buf bufs[2] = { { hdrs + i * 16, 16, false }, { data + i * 513, 513, true } };

		*(struct virtio_blk_outhdr *)vuf_ptr(&f, hdrs + i * 16) =
			(struct virtio_blk_outhdr){ .type = VIRTIO_BLK_T_IN, .sector = i };
		((uint8_t *)vuf_ptr(&f, data + i * 513))[512] = 0xEE;
		vuf_offer(&f, 0, bufs, 2);
	}
	vuf_kick(&f, 0);
	for (unsigned int i = 0; i < n; i++) {
		assert_true(wait_used(0, &id, &len));
		assert_int_equal(len, 513);
	}
	for (unsigned int i = 0; i < n; i++)
		assert_int_equal(((uint8_t *)vuf_ptr(&f, data + i * 513))[512], VIRTIO_BLK_S_OK);
}

static void test_multiqueue(void **state)
{
	struct virtio_blk_config config;
	uint64_t buf;

	(void)state;
	blkd_free(d);
	close_frontend();
	open_daemon(false, 2);
	connect_frontend(2);
	assert_true(vuf_get_u64(&f, VHOST_USER_GET_FEATURES) & (1ULL << VIRTIO_BLK_F_MQ));
	assert_int_equal(vuf_get_u64(&f, VHOST_USER_GET_QUEUE_NUM), 2);
	assert_int_equal(vuf_get_config(&f, 0, &config, sizeof(config)), 0);
	assert_int_equal(config.num_queues, 2);
	buf = vuf_alloc(&f, 512);
	assert_int_equal(request(1, VIRTIO_BLK_T_IN, 0, buf, 512, true, NULL), VIRTIO_BLK_S_OK);
	assert_true(vuf_interrupted(&f, 1));
	assert_false(vuf_interrupted(&f, 0));
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 0, buf, 512, true, NULL), VIRTIO_BLK_S_OK);
	/* Stopping one ring leaves the other running. */
	assert_int_equal(vuf_get_vring_base(&f, 0), 1);
	assert_int_equal(request(1, VIRTIO_BLK_T_IN, 0, buf, 512, true, NULL), VIRTIO_BLK_S_OK);
}

/* A malformed message or memory table ends the connection; the next
 * frontend is served as usual. */
static void test_malformed_messages_close(void **state)
{
	struct vhost_user_mem_table table;
	uint64_t buf;

	(void)state;
	vuf_set_state(&f, VHOST_USER_SET_VRING_NUM, 5, 64);  /* no such ring */
	assert_false(blkd_connected(d));
	close_frontend();

	connect_frontend(1);
	vuf_mem_table(&f, &table);
	table.regions[0].memory_size = RAM_SIZE * 2;  /* past the end of the memfd */
	vuf_send(&f, VHOST_USER_SET_MEM_TABLE, 0, &table, 8 + sizeof(table.regions[0]), &f.memfd, 1);
	assert_false(blkd_connected(d));
	close_frontend();

	connect_frontend(1);
	buf = vuf_alloc(&f, 512);
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 0, buf, 512, true, NULL), VIRTIO_BLK_S_OK);
}

/* A guest that breaks its ring's rules loses the connection. */
static void test_broken_ring_closes(void **state)
{
	struct vring_avail *avail = vuf_ptr(&f, f.q[0].avail);

	(void)state;
	avail->idx = QSIZE + 5;  /* more buffers than the ring holds */
	vuf_kick(&f, 0);
	assert_false(blkd_connected(d));
}

/* Over a real socket: a second frontend waits until the first leaves. */
static void test_one_frontend_at_a_time(void **state)
{
	char path[64];
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct vhost_user_msg reply;
	struct vuf second;
	const char *why;
	int fd;

	(void)state;
	assert_int_equal(blkd_connect(d, -1), -EBUSY);
	snprintf(path, sizeof(path), "%s.sock", image);
	fd = unix_listen(path, &why);
	assert_true(fd >= 0);
	assert_int_equal(blkd_listen(d, fd), 0);
	vuf_init(&second, RAM_SIZE, 0);
	close(second.peer);
	second.peer = -1;
	close(second.sock);
	second.sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(addr.sun_path, path);
	assert_int_equal(connect(second.sock, (struct sockaddr *)&addr, sizeof(addr)), 0);
	second.pump = pump;
	vuf_send(&second, VHOST_USER_GET_FEATURES, 0, NULL, 0, NULL, 0);
	assert_int_equal(vuf_reply(&second, &reply), -EAGAIN);  /* waiting in the backlog */
	close(f.sock);
	f.sock = -1;
	pump(NULL);  /* the first one leaves; the second is accepted and answered */
	assert_true(blkd_connected(d));
	assert_int_equal(vuf_reply(&second, &reply), 0);
	assert_int_equal(reply.hdr.request, VHOST_USER_GET_FEATURES);
	assert_true(reply.payload.u64 & (1ULL << VIRTIO_F_VERSION_1));
	vuf_destroy(&second);
	pump(NULL);
	assert_false(blkd_connected(d));
	unlink(path);
}

/* Frontends come and go fifty times, some with requests in flight; each is
 * served, and no descriptor is left behind. */
static void test_reconnect_no_leaks(void **state)
{
	unsigned int before;

	(void)state;
	hang_up();
	close_frontend();
	before = vuf_count_fds();
	for (unsigned int i = 0; i < 50; i++) {
		uint64_t buf, status;

		connect_frontend(1);
		buf = vuf_alloc(&f, 4096);
		memset(vuf_ptr(&f, buf), (int)i, 4096);
		assert_int_equal(request(0, VIRTIO_BLK_T_OUT, 8 * i, buf, 4096, false, NULL), VIRTIO_BLK_S_OK);
		if (i % 2) {
			offer(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, &status);
			f.pump = NULL;
			vuf_kick(&f, 0);
			blkd_poll(d, 0);
		}
		hang_up();
		close_frontend();
	}
	assert_int_equal(vuf_count_fds(), before);
	connect_frontend(1);
}

/* --- kvio's own vhost-user-blk device (src/virtio/vhost_user_blk.c) as the frontend --- */

static bool loop_stop;

/* kvio's frontend waits for each reply, so blkd runs on a thread of its own meanwhile. */
static void *run_blkd(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&loop_stop, __ATOMIC_ACQUIRE))
		blkd_poll(d, 20);
	return NULL;
}

static uint8_t vtd_request(struct vtd *vd, uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t data_len,
			   bool data_writable)
{
	uint64_t hdr = vtd_alloc(vd, sizeof(struct virtio_blk_outhdr)), status = vtd_alloc(vd, 1);
	struct vtd_buf bufs[3] = { { hdr, sizeof(struct virtio_blk_outhdr), false } };
	unsigned int n = 1;
	uint32_t id = UINT32_MAX, len;
	uint16_t head;

	*(struct virtio_blk_outhdr *)vtd_ptr(vd, hdr) = (struct virtio_blk_outhdr){ .type = type, .sector = sector };
	*(uint8_t *)vtd_ptr(vd, status) = 0xEE;
	if (data_len)
		bufs[n++] = (struct vtd_buf){ data_gpa, data_len, data_writable };
	bufs[n++] = (struct vtd_buf){ status, 1, true };
	head = vtd_offer(vd, 0, bufs, n);
	vtd_kick(vd, 0);
	for (int tries = 0; tries < 5000 && !vtd_next_used(vd, 0, &id, &len); tries++)
		usleep(1000);
	assert_int_equal(id, head);
	return *(uint8_t *)vtd_ptr(vd, status);
}

static void vtd_start(struct vtd *vd)
{
	uint64_t features = vtd_device_features(vd);

	assert_true(features & (1ULL << VIRTIO_F_VERSION_1));
	assert_true(features & (1ULL << VIRTIO_BLK_F_FLUSH));
	assert_true(features & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_false(features & (1ULL << VIRTIO_BLK_F_RO));
	assert_true(vtd_negotiate(vd, features));
	memset(vtd_ptr(vd, 0x10000), 0, 0x10000);  /* fresh rings, as a driver allocates them */
	vtd_setup_queue(vd, 0, QSIZE, 0);
	vtd_driver_ok(vd);
	assert_true(vd->kick_unwatched[0]);  /* handed to blkd */
}

/* What kvio does with --disk vhost-user=SOCK, against blkd: the config
 * space, requests at DRIVER_OK, a device reset (GET_VRING_BASE) and a restart. */
static void test_kvio_frontend(void **state)
{
	char path[64];
	const char *why;
	struct virtio_dev *vdev;
	struct vtd vd;
	pthread_t thread;
	uint64_t out, in;
	uint32_t capacity;
	int fd;

	(void)state;
	hang_up();
	close_frontend();
	snprintf(path, sizeof(path), "%s.sock", image);
	fd = unix_listen(path, &why);
	assert_true(fd >= 0);
	assert_int_equal(blkd_listen(d, fd), 0);
	loop_stop = false;
	assert_int_equal(pthread_create(&thread, NULL, run_blkd, NULL), 0);

	vdev = vhost_user_blk_create(path, 1);
	assert_non_null(vdev);
	vtd_init(&vd, vdev, RAM_SIZE);
	capacity = (uint32_t)vtd_read(&vd, VIRTIO_PCI_DEVICE_OFFSET, 4);
	assert_int_equal(capacity, SECTORS);
	assert_int_equal(vtd_read(&vd, VIRTIO_PCI_DEVICE_OFFSET + offsetof(struct virtio_blk_config, seg_max), 4),
			 VIRTIO_BLK_SEG_MAX);
	vtd_start(&vd);
	out = vtd_alloc(&vd, 4096);
	in = vtd_alloc(&vd, 4096);
	memset(vtd_ptr(&vd, out), 'v', 4096);
	assert_int_equal(vtd_request(&vd, VIRTIO_BLK_T_OUT, 24, out, 4096, false), VIRTIO_BLK_S_OK);
	assert_true(vtd_interrupted(&vd, 0));  /* blkd signalled the vector's irqfd */
	assert_int_equal(vtd_request(&vd, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	/* The guest resets the device: kvio takes the rings back, then hands new ones over. */
	vtd_write(&vd, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_false(vd.kick_unwatched[0]);
	vtd_start(&vd);
	assert_int_equal(vtd_request(&vd, VIRTIO_BLK_T_IN, 24, in, 4096, true), VIRTIO_BLK_S_OK);
	assert_memory_equal(vtd_ptr(&vd, in), vtd_ptr(&vd, out), 4096);

	vtd_write(&vd, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	vtd_destroy(&vd);
	vhost_user_blk_destroy(vdev);
	__atomic_store_n(&loop_stop, true, __ATOMIC_RELEASE);
	pthread_join(thread, NULL);
	pump(NULL);
	assert_false(blkd_connected(d));
	unlink(path);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_features_and_config),
		T(test_write_read_flush),
		T(test_get_id),
		T(test_bad_requests),
		T(test_discard_and_write_zeroes),
		T(test_read_only),
		T(test_vring_base_is_device_index),
		T(test_disconnect_answers_inflight),
		T(test_needs_reset_stops_until_reset),
		T(test_event_idx_interrupts),
		T(test_kick_budget_requeues),
		T(test_multiqueue),
		T(test_malformed_messages_close),
		T(test_broken_ring_closes),
		T(test_one_frontend_at_a_time),
		T(test_reconnect_no_leaks),
		T(test_kvio_frontend),
	};

	log_set_level(LOG_ERROR);  /* not every connect, disconnect and refused request */
	return cmocka_run_group_tests_name("kvio_blkd", tests, NULL, NULL);
}
