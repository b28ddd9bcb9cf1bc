/* virtio-balloon through the test driver over memfd guest RAM (as kvio's):
 * inflated and reported pages become holes in the memfd, deflating needs
 * nothing, the target raises the configuration interrupt, statistics come and
 * go on the stats queue, the queue indices follow the negotiated features,
 * and hostile requests are refused without touching anything else. */
#include "unit.h"

#include <errno.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "virtio/balloon.h"
#include "virtio_driver.h"

#define RAM_SIZE (64ULL << 20)
/* RAM on both sides of the PCI hole: 3 GiB below, 16 MiB from 4 GiB (sparse). */
#define BIG_RAM_SIZE (GUEST_PCI_HOLE_START + (16ULL << 20))
#define PAGE 4096ULL
#define CONFIG_VECTOR 7
#define PAGES_AT (16ULL << 20)  /* test pages from 16 MiB up, away from rings and buffers */

#define STATS_VQ (1ULL << VIRTIO_BALLOON_F_STATS_VQ)
#define REPORTING (1ULL << VIRTIO_BALLOON_F_REPORTING)
#define DEFLATE_ON_OOM (1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM)
#define BASE_FEATURES (1ULL << VIRTIO_F_VERSION_1)

enum { INFLATEQ, DEFLATEQ };

static struct guest_mem mem;
static struct virtio_dev *balloon;
static struct vtd d;

struct hook_calls {
	unsigned int count;
	uint64_t last;
};
static struct hook_calls hook_calls;

static void actual_hook(void *ctx, uint64_t bytes)
{
	struct hook_calls *calls = ctx;

	calls->count++;
	calls->last = bytes;
}

static void open_device_on(uint64_t ram_size, bool deflate_on_oom, bool shared_ram)
{
	struct virtio_balloon_options opts = { .deflate_on_oom = deflate_on_oom };

	assert_int_equal(guest_mem_create(&mem, ram_size, shared_ram), 0);
	balloon = virtio_balloon_create(&mem, &opts);
	assert_non_null(balloon);
	vtd_init_mem(&d, balloon, &mem);
	memset(&hook_calls, 0, sizeof(hook_calls));
	virtio_balloon_set_actual_hook(balloon, actual_hook, &hook_calls);
}

static void open_device(uint64_t ram_size, bool deflate_on_oom)
{
	open_device_on(ram_size, deflate_on_oom, true);
}

static int setup_anonymous_ram(void **state)
{
	(void)state;
	open_device_on(RAM_SIZE, false, false);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vtd_destroy(&d);
	virtio_balloon_destroy(balloon);
	guest_mem_destroy(&mem);
	return 0;
}

static void config_vector(uint16_t vector)
{
	vtd_write(&d, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16ULL * vector + 0, 0xFEE00000, 4);
	vtd_write(&d, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16ULL * vector + 8, 0x40 + vector, 4);
	vtd_write(&d, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16ULL * vector + 12, 0, 4);
	vtd_write(&d, VIRTIO_PCI_COMMON_MSIX, vector, 2);
}

/* Set up queue q on vector q over zeroed rings (as a driver allocates them:
 * a test that brings the device up again must not see the last run's used
 * index), which are then in the memfd, so that they do not count as pages
 * the device took or gave back. */
static void setup_queue(unsigned int q)
{
	uint64_t end;

	vtd_setup_queue(&d, q, 128, (uint16_t)q);
	end = d.q[q].used + 6 + 8 * 128;
	memset(vtd_ptr(&d, d.q[q].desc), 0, end - d.q[q].desc);
}

/* Negotiate, set up queues 0..nr_queues-1, DRIVER_OK. */
static void bring_up(uint64_t features, unsigned int nr_queues)
{
	assert_true(vtd_negotiate(&d, BASE_FEATURES | features));
	config_vector(CONFIG_VECTOR);
	for (unsigned int q = 0; q < nr_queues; q++)
		setup_queue(q);
	vtd_driver_ok(&d);
}

static int setup(void **state)
{
	(void)state;
	open_device(RAM_SIZE, false);
	return 0;
}

static uint8_t *host(uint64_t gpa, uint64_t len)
{
	void *p = NULL;

	assert_int_equal(guest_mem_translate(&mem, gpa, len, &p), 0);
	return p;
}

static void fill(uint64_t gpa, uint64_t len, uint8_t byte)
{
	memset(host(gpa, len), byte, len);
}

/* Every page of memfd range [off, off + len) is a hole (does not read a byte). */
static bool all_hole(uint64_t off, uint64_t len)
{
	off_t data = lseek(mem.fd, (off_t)off, SEEK_DATA);

	return (data < 0 && errno == ENXIO) || (data >= 0 && (uint64_t)data >= off + len);
}

/* Every page of memfd range [off, off + len) holds data. */
static bool all_data(uint64_t off, uint64_t len)
{
	for (uint64_t at = off; at < off + len; at += PAGE) {
		if (lseek(mem.fd, (off_t)at, SEEK_DATA) != (off_t)at)
			return false;
	}
	return true;
}

static uint64_t memfd_bytes(void)
{
	struct stat st;

	assert_int_equal(fstat(mem.fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* A readable array of page frame numbers in guest RAM. */
static struct vtd_buf put_pfns(const uint32_t *pfns, unsigned int n)
{
	struct vtd_buf b = { vtd_alloc(&d, n * 4), n * 4, false };

	memcpy(vtd_ptr(&d, b.gpa), pfns, n * 4);
	return b;
}

static void offer(unsigned int q, struct vtd_buf b)
{
	vtd_offer(&d, q, &b, 1);
	vtd_kick(&d, q);
}

static void send_pfns(unsigned int q, const uint32_t *pfns, unsigned int n)
{
	offer(q, put_pfns(pfns, n));
}

static void expect_used(unsigned int q)
{
	uint32_t id, len;

	assert_true(vtd_next_used(&d, q, &id, &len));
	assert_int_equal(len, 0);
	assert_true(vtd_interrupted(&d, (uint16_t)q));
}

static bool needs_reset(void)
{
	return vtd_read(&d, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET;
}

static uint32_t config_read32(unsigned int offset)
{
	return (uint32_t)vtd_read(&d, VIRTIO_PCI_DEVICE_OFFSET + offset, 4);
}

static void test_features_queues_and_config(void **state)
{
	uint64_t features = vtd_device_features(&d);

	(void)state;
	assert_true(features & STATS_VQ);
	assert_true(features & REPORTING);
	assert_false(features & DEFLATE_ON_OOM);  /* only with --balloon-deflate-on-oom */
	assert_false(features & (1ULL << VIRTIO_BALLOON_F_FREE_PAGE_HINT));
	assert_false(features & (1ULL << VIRTIO_BALLOON_F_MUST_TELL_HOST));
	assert_false(features & (1ULL << VIRTIO_BALLOON_F_PAGE_POISON));
	assert_int_equal(vtd_read(&d, VIRTIO_PCI_COMMON_NUMQ, 2), 4);
	vtd_write(&d, VIRTIO_PCI_COMMON_Q_SELECT, 3, 2);
	assert_int_equal(vtd_read(&d, VIRTIO_PCI_COMMON_Q_SIZE, 2), 128);
	assert_int_equal(config_read32(0), 0);  /* num_pages */
	assert_int_equal(config_read32(4), 0);  /* actual */
	/* Only num_pages and actual: the fields of features not offered are not there. */
	assert_int_equal(config_read32(8), 0);
	/* A bit never offered is refused at FEATURES_OK. */
	assert_false(vtd_negotiate(&d, BASE_FEATURES | (1ULL << VIRTIO_BALLOON_F_FREE_PAGE_HINT)));
}

static void test_deflate_on_oom_is_an_option(void **state)
{
	(void)state;
	teardown(NULL);
	open_device(RAM_SIZE, true);
	assert_true(vtd_device_features(&d) & DEFLATE_ON_OOM);
	assert_true(vtd_negotiate(&d, BASE_FEATURES | DEFLATE_ON_OOM | STATS_VQ));
}

static void test_inflate_punches_pages_out_of_the_memfd(void **state)
{
	uint32_t pfns[8];
	uint64_t before;
	struct virtio_balloon_counters c;
	struct vtd_buf request;

	(void)state;
	bring_up(STATS_VQ | REPORTING, 4);
	fill(PAGES_AT, 16 * PAGE, 0xAB);
	assert_true(all_data(PAGES_AT, 16 * PAGE));
	/* Pages 0-3 in any order (one range), then 6, then 8 and 9 (one range). */
	pfns[0] = (uint32_t)(PAGES_AT / PAGE) + 1;
	pfns[1] = (uint32_t)(PAGES_AT / PAGE) + 0;  /* not contiguous after 1: a new range */
	pfns[2] = (uint32_t)(PAGES_AT / PAGE) + 1;  /* duplicates are harmless */
	pfns[3] = (uint32_t)(PAGES_AT / PAGE) + 2;
	pfns[4] = (uint32_t)(PAGES_AT / PAGE) + 3;
	pfns[5] = (uint32_t)(PAGES_AT / PAGE) + 6;
	pfns[6] = (uint32_t)(PAGES_AT / PAGE) + 8;
	pfns[7] = (uint32_t)(PAGES_AT / PAGE) + 9;
	request = put_pfns(pfns, 8);
	before = memfd_bytes();
	offer(INFLATEQ, request);
	expect_used(INFLATEQ);
	assert_true(all_hole(PAGES_AT, 4 * PAGE));
	assert_true(all_data(PAGES_AT + 4 * PAGE, 2 * PAGE));
	assert_true(all_hole(PAGES_AT + 6 * PAGE, PAGE));
	assert_true(all_data(PAGES_AT + 7 * PAGE, PAGE));
	assert_true(all_hole(PAGES_AT + 8 * PAGE, 2 * PAGE));
	assert_true(all_data(PAGES_AT + 10 * PAGE, 6 * PAGE));
	assert_int_equal(before - memfd_bytes(), 7 * PAGE);
	c = virtio_balloon_counters(balloon);
	assert_int_equal(c.discarded_bytes, 8 * PAGE);  /* page 1 twice */
	/* 1 | 0,1,2,3 | 6 | 8,9: pages contiguous in the memfd go in one call. */
	assert_int_equal(c.discard_calls, 4);
	assert_int_equal(c.refused_pfns, 0);
	/* The neighbours kept their contents; a ballooned page reads back as zero. */
	assert_int_equal(host(PAGES_AT + 4 * PAGE, PAGE)[0], 0xAB);
	assert_int_equal(host(PAGES_AT + 7 * PAGE, PAGE)[PAGE - 1], 0xAB);
	assert_int_equal(host(PAGES_AT, PAGE)[0], 0);
	assert_false(needs_reset());
}

/* Without vhost-user, guest RAM is anonymous memory: inflated pages are
 * dropped with MADV_DONTNEED (no longer resident, read back as zero). */
static bool resident(uint64_t gpa)
{
	unsigned char vec = 0;
	uint8_t *p = host(gpa, PAGE);

	assert_int_equal(mincore(p, PAGE, &vec), 0);
	return vec & 1;
}

static void test_inflate_on_anonymous_ram(void **state)
{
	uint32_t pfns[3] = { (uint32_t)(PAGES_AT / PAGE) + 2, (uint32_t)(PAGES_AT / PAGE) + 3,
			     (uint32_t)(PAGES_AT / PAGE) + 7 };
	struct virtio_balloon_counters c;

	(void)state;
	assert_int_equal(mem.fd, -1);
	bring_up(STATS_VQ | REPORTING, 4);
	fill(PAGES_AT, 16 * PAGE, 0xCD);
	offer(INFLATEQ, put_pfns(pfns, 3));
	expect_used(INFLATEQ);
	assert_false(resident(PAGES_AT + 2 * PAGE));
	assert_false(resident(PAGES_AT + 3 * PAGE));
	assert_false(resident(PAGES_AT + 7 * PAGE));
	assert_true(resident(PAGES_AT + 4 * PAGE));
	assert_int_equal(host(PAGES_AT + 2 * PAGE, PAGE)[0], 0);
	assert_int_equal(host(PAGES_AT + 7 * PAGE, PAGE)[PAGE - 1], 0);
	assert_int_equal(host(PAGES_AT + 4 * PAGE, PAGE)[0], 0xCD);
	assert_int_equal(host(PAGES_AT + 6 * PAGE, PAGE)[PAGE - 1], 0xCD);
	c = virtio_balloon_counters(balloon);
	assert_int_equal(c.discarded_bytes, 3 * PAGE);
	assert_int_equal(c.discard_calls, 2);
	assert_false(needs_reset());
}

static void test_deflate_and_actual(void **state)
{
	uint32_t pfns[4];
	uint32_t actual = 4;

	(void)state;
	bring_up(STATS_VQ | REPORTING, 4);
	fill(PAGES_AT, 4 * PAGE, 0x11);
	for (unsigned int i = 0; i < 4; i++)
		pfns[i] = (uint32_t)(PAGES_AT / PAGE) + i;
	send_pfns(INFLATEQ, pfns, 4);
	expect_used(INFLATEQ);
	/* The driver updates actual after the device used the request. */
	vtd_write(&d, VIRTIO_PCI_DEVICE_OFFSET + 4, actual, 4);
	assert_int_equal(virtio_balloon_actual(balloon), 4 * PAGE);
	assert_int_equal(hook_calls.count, 1);
	assert_int_equal(hook_calls.last, 4 * PAGE);
	assert_int_equal(config_read32(4), 4);
	/* Deflate: nothing to do for the memfd; the guest's next touch faults in a zero page. */
	send_pfns(DEFLATEQ, pfns, 2);
	expect_used(DEFLATEQ);
	assert_true(all_hole(PAGES_AT, 2 * PAGE));
	fill(PAGES_AT, 2 * PAGE, 0x22);
	assert_true(all_data(PAGES_AT, 2 * PAGE));
	vtd_write(&d, VIRTIO_PCI_DEVICE_OFFSET + 4, 2, 4);
	assert_int_equal(virtio_balloon_actual(balloon), 2 * PAGE);
	assert_int_equal(hook_calls.count, 2);
	/* The same value again is no change. */
	vtd_write(&d, VIRTIO_PCI_DEVICE_OFFSET + 4, 2, 4);
	assert_int_equal(hook_calls.count, 2);
	assert_int_equal(virtio_balloon_counters(balloon).refused_pfns, 0);
}

static void test_actual_is_taken_whole(void **state)
{
	(void)state;
	bring_up(0, 2);
	/* Byte by byte, least significant first, as legacy drivers wrote it:
	 * nothing is taken before the most significant byte. */
	vtd_write(&d, VIRTIO_PCI_DEVICE_OFFSET + 4, 0x34, 1);
	vtd_write(&d, VIRTIO_PCI_DEVICE_OFFSET + 5, 0x12, 1);
	vtd_write(&d, VIRTIO_PCI_DEVICE_OFFSET + 6, 0x00, 1);
	assert_int_equal(hook_calls.count, 0);
	vtd_write(&d, VIRTIO_PCI_DEVICE_OFFSET + 7, 0x00, 1);
	assert_int_equal(hook_calls.count, 1);
	assert_int_equal(virtio_balloon_actual(balloon), 0x1234 * PAGE);
	/* num_pages is the host's: a driver write leaves it. */
	vtd_write(&d, VIRTIO_PCI_DEVICE_OFFSET + 0, 999, 4);
	assert_int_equal(config_read32(0), 0);
	/* An actual beyond guest RAM is reported as all of it, not more. */
	vtd_write(&d, VIRTIO_PCI_DEVICE_OFFSET + 4, 0xFFFFFFFF, 4);
	assert_int_equal(virtio_balloon_actual(balloon), RAM_SIZE);
	assert_int_equal(hook_calls.last, RAM_SIZE);
}

static void test_target_raises_the_config_interrupt(void **state)
{
	uint32_t generation;

	(void)state;
	/* Before DRIVER_OK the value is there to read, without an interrupt. */
	assert_true(vtd_negotiate(&d, BASE_FEATURES | STATS_VQ));
	config_vector(CONFIG_VECTOR);
	assert_int_equal(virtio_balloon_set_target(balloon, 8 * PAGE), 0);
	assert_false(vtd_interrupted(&d, CONFIG_VECTOR));
	assert_int_equal(config_read32(0), 8);
	for (unsigned int q = 0; q < 3; q++)
		setup_queue(q);
	vtd_driver_ok(&d);

	generation = (uint32_t)vtd_read(&d, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
	assert_int_equal(virtio_balloon_set_target(balloon, 32ULL << 20), 0);
	assert_true(vtd_interrupted(&d, CONFIG_VECTOR));
	assert_int_not_equal(vtd_read(&d, VIRTIO_PCI_COMMON_CFGGENERATION, 1), generation);
	assert_int_equal(config_read32(0), (32ULL << 20) / PAGE);
	assert_int_equal(virtio_balloon_target(balloon), 32ULL << 20);
	/* Rounded down to whole pages; 0 deflates; more than RAM is refused. */
	assert_int_equal(virtio_balloon_set_target(balloon, 3 * PAGE + 100), 0);
	assert_int_equal(config_read32(0), 3);
	assert_int_equal(virtio_balloon_set_target(balloon, 0), 0);
	assert_int_equal(config_read32(0), 0);
	assert_true(vtd_interrupted(&d, CONFIG_VECTOR));
	assert_int_equal(virtio_balloon_set_target(balloon, RAM_SIZE + PAGE), -EINVAL);
	assert_false(vtd_interrupted(&d, CONFIG_VECTOR));
	assert_int_equal(config_read32(0), 0);
	assert_int_equal(virtio_balloon_set_target(balloon, RAM_SIZE), 0);
	assert_int_equal(config_read32(0), RAM_SIZE / PAGE);
}

static void test_reset_keeps_target_clears_actual(void **state)
{
	(void)state;
	bring_up(STATS_VQ, 3);
	assert_int_equal(virtio_balloon_set_target(balloon, 16 * PAGE), 0);
	vtd_write(&d, VIRTIO_PCI_DEVICE_OFFSET + 4, 16, 4);
	assert_int_equal(hook_calls.count, 1);
	vtd_write(&d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(config_read32(0), 16);
	assert_int_equal(config_read32(4), 0);
	assert_int_equal(virtio_balloon_actual(balloon), 0);
	assert_int_equal(hook_calls.count, 2);  /* BALLOON_CHANGE: the balloon is empty again */
	assert_int_equal(hook_calls.last, 0);
	/* Reset with actual already 0: no change, no call. */
	vtd_write(&d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(hook_calls.count, 2);
	/* No stats queue until a driver negotiates one again. */
	assert_int_equal(virtio_balloon_request_stats(balloon), -ENOTSUP);
}

struct stat_entry {
	uint16_t tag;
	uint64_t value;
} __attribute__((packed));

/* Write n entries at gpa (10 bytes each, packed) and return the byte count. */
static uint32_t put_stats(uint64_t gpa, const struct stat_entry *entries, unsigned int n)
{
	memcpy(vtd_ptr(&d, gpa), entries, n * sizeof(*entries));
	return n * (uint32_t)sizeof(*entries);
}

static void test_stats_buffer_parsed_and_returned(void **state)
{
	const struct stat_entry first[] = {
		{ VIRTIO_BALLOON_S_MEMFREE, 1000 }, { VIRTIO_BALLOON_S_MEMTOT, 64 << 20 },
		{ 200, 7 },                          /* unknown: ignored */
		{ 12, 5 },                           /* Linux 6.12's ASYNC_SCAN: kept */
		{ VIRTIO_BALLOON_S_AVAIL, 3000 },
	};
	const struct stat_entry second[] = { { VIRTIO_BALLOON_S_MEMFREE, 2000 }, { VIRTIO_BALLOON_S_SWAP_IN, 1 } };
	struct virtio_balloon_stats s;
	uint64_t a = vtd_alloc(&d, 64), b = vtd_alloc(&d, 64);
	uint32_t len = put_stats(a, first, 5), id;
	/* Split across two buffers mid-entry, and a trailing partial entry (ignored). */
	struct vtd_buf chain[2] = { { a, 23, false }, { a + 23, len - 23 + 4, false } };

	(void)state;
	/* Linux posts its first buffer and kicks before DRIVER_OK. */
	assert_true(vtd_negotiate(&d, BASE_FEATURES | STATS_VQ));
	config_vector(CONFIG_VECTOR);
	for (unsigned int q = 0; q < 3; q++)
		setup_queue(q);
	assert_int_equal(virtio_balloon_request_stats(balloon), -EAGAIN);
	vtd_offer(&d, 2, chain, 2);
	vtd_kick(&d, 2);  /* dropped by the transport: no DRIVER_OK yet */
	assert_true(virtio_balloon_stats(balloon, &s));
	assert_int_equal(s.generation, 0);
	vtd_driver_ok(&d);  /* the device takes the buffer now */
	assert_true(virtio_balloon_stats(balloon, &s));
	assert_int_equal(s.generation, 1);
	assert_true(s.last_update > 0);
	assert_int_equal(s.valid, (1U << VIRTIO_BALLOON_S_MEMFREE) | (1U << VIRTIO_BALLOON_S_MEMTOT) | (1U << 12) |
					  (1U << VIRTIO_BALLOON_S_AVAIL));
	assert_int_equal(s.value[VIRTIO_BALLOON_S_MEMFREE], 1000);
	assert_int_equal(s.value[VIRTIO_BALLOON_S_MEMTOT], 64 << 20);
	assert_int_equal(s.value[VIRTIO_BALLOON_S_AVAIL], 3000);
	assert_int_equal(s.value[12], 5);
	/* The device keeps the buffer until the host asks for an update. */
	assert_false(vtd_next_used(&d, 2, &id, &len));
	assert_int_equal(virtio_balloon_request_stats(balloon), 0);
	assert_true(vtd_next_used(&d, 2, &id, &len));
	assert_int_equal(len, 0);
	assert_true(vtd_interrupted(&d, 2));
	assert_int_equal(virtio_balloon_request_stats(balloon), -EAGAIN);  /* the guest has not answered */
	/* The guest answers with a fresh buffer: the latest values replace the old. */
	struct vtd_buf one = { b, put_stats(b, second, 2), false };
	vtd_offer(&d, 2, &one, 1);
	vtd_kick(&d, 2);
	assert_true(virtio_balloon_stats(balloon, &s));
	assert_int_equal(s.generation, 2);
	assert_int_equal(s.valid, (1U << VIRTIO_BALLOON_S_MEMFREE) | (1U << VIRTIO_BALLOON_S_SWAP_IN));
	assert_int_equal(s.value[VIRTIO_BALLOON_S_MEMFREE], 2000);
	assert_int_equal(s.value[VIRTIO_BALLOON_S_MEMTOT], 0);
	assert_false(vtd_next_used(&d, 2, &id, &len));
	assert_false(needs_reset());
}

static void test_stats_hostile_buffers(void **state)
{
	const struct stat_entry entries[] = { { VIRTIO_BALLOON_S_MEMFREE, 42 } };
	struct virtio_balloon_stats s;
	uint64_t a = vtd_alloc(&d, 64), w = vtd_alloc(&d, 64);
	struct vtd_buf with_writable[2] = { { a, put_stats(a, entries, 1), false }, { w, 64, true } };
	struct vtd_buf big = { vtd_alloc(&d, 4096), 4096, false };
	uint32_t id, len;

	(void)state;
	bring_up(STATS_VQ, 3);
	memset(vtd_ptr(&d, w), 0x5A, 64);
	/* A writable buffer is not written; the readable part is read. */
	vtd_offer(&d, 2, with_writable, 2);
	vtd_kick(&d, 2);
	assert_true(virtio_balloon_stats(balloon, &s));
	assert_int_equal(s.value[VIRTIO_BALLOON_S_MEMFREE], 42);
	assert_int_equal(((uint8_t *)vtd_ptr(&d, w))[0], 0x5A);
	/* A second buffer while the device holds one (the spec allows one):
	 * the older goes back, the newer is kept. A big buffer is read only as
	 * far as BALLOON_MAX_STAT_ENTRIES. */
	memset(vtd_ptr(&d, big.gpa), 0, big.len);
	vtd_offer(&d, 2, &big, 1);
	vtd_kick(&d, 2);
	assert_true(vtd_next_used(&d, 2, &id, &len));
	assert_false(vtd_next_used(&d, 2, &id, &len));
	assert_true(virtio_balloon_stats(balloon, &s));
	assert_int_equal(s.generation, 2);
	assert_int_equal(s.valid, 1U << 0);  /* tag 0 (SWAP_IN) = 0, the zeroed entries */
	assert_int_equal(virtio_balloon_request_stats(balloon), 0);
	assert_true(vtd_next_used(&d, 2, &id, &len));
	assert_false(needs_reset());
}

static void test_stats_without_the_feature(void **state)
{
	struct virtio_balloon_stats s;

	(void)state;
	bring_up(REPORTING, 3);
	assert_false(virtio_balloon_stats(balloon, &s));
	assert_int_equal(virtio_balloon_request_stats(balloon), -ENOTSUP);
	assert_int_equal(virtio_balloon_refresh_stats(balloon, 10, &s), -ENOTSUP);
}

struct answer {
	uint64_t gpa;
	uint32_t len;
};

/* The guest side of a refresh: wait for the device to give the buffer back, answer. */
static void *guest_answers(void *arg)
{
	struct answer *a = arg;
	struct vtd_buf buf = { a->gpa, a->len, false };
	uint32_t id, len;

	for (int i = 0; i < 5000; i++) {
		pthread_mutex_lock(&balloon->lock);
		bool used = vtd_next_used(&d, 2, &id, &len);
		pthread_mutex_unlock(&balloon->lock);
		if (used) {
			vtd_offer(&d, 2, &buf, 1);
			vtd_kick(&d, 2);
			return NULL;
		}
		usleep(1000);
	}
	return NULL;
}

static void test_stats_refresh_on_demand(void **state)
{
	const struct stat_entry first[] = { { VIRTIO_BALLOON_S_MEMFREE, 1 } };
	const struct stat_entry second[] = { { VIRTIO_BALLOON_S_MEMFREE, 2 } };
	struct answer answer = { vtd_alloc(&d, 16), 0 };
	struct virtio_balloon_stats s;
	uint64_t a = vtd_alloc(&d, 16);
	struct vtd_buf buf = { a, put_stats(a, first, 1), false };
	pthread_t guest;

	(void)state;
	bring_up(STATS_VQ, 3);
	vtd_offer(&d, 2, &buf, 1);
	vtd_kick(&d, 2);
	answer.len = put_stats(answer.gpa, second, 1);
	assert_int_equal(pthread_create(&guest, NULL, guest_answers, &answer), 0);
	assert_int_equal(virtio_balloon_refresh_stats(balloon, 5000, &s), 0);
	assert_int_equal(pthread_join(guest, NULL), 0);
	assert_int_equal(s.value[VIRTIO_BALLOON_S_MEMFREE], 2);
	assert_int_equal(s.generation, 2);
	/* A guest that does not answer: the previous report, after the timeout. */
	assert_int_equal(virtio_balloon_refresh_stats(balloon, 20, &s), -ETIMEDOUT);
	assert_int_equal(s.value[VIRTIO_BALLOON_S_MEMFREE], 2);
	assert_int_equal(s.generation, 2);
}

static void test_stats_periodic_request(void **state)
{
	const struct stat_entry entries[] = { { VIRTIO_BALLOON_S_MEMFREE, 1 } };
	uint64_t a = vtd_alloc(&d, 16);
	struct vtd_buf buf = { a, put_stats(a, entries, 1), false };
	int fd;
	struct pollfd p;
	uint32_t id, len;

	(void)state;
	bring_up(STATS_VQ, 3);
	vtd_offer(&d, 2, &buf, 1);
	vtd_kick(&d, 2);
	assert_int_equal(balloon->ops->event_fds(balloon, &fd, 1), 1);
	assert_int_equal(virtio_balloon_set_stats_interval(balloon, 1), 0);
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 3000), 1);
	/* What the I/O thread does when the timer fires. */
	pthread_mutex_lock(&balloon->lock);
	balloon->ops->event_ready(balloon, 0);
	pthread_mutex_unlock(&balloon->lock);
	assert_true(vtd_next_used(&d, 2, &id, &len));
	assert_true(vtd_interrupted(&d, 2));
	assert_int_equal(virtio_balloon_set_stats_interval(balloon, 0), 0);
	assert_int_equal(poll(&p, 1, 0), 0);  /* drained, and stopped */
}

static void test_reporting_frees_pages(void **state)
{
	uint64_t base = PAGES_AT;
	/* A 2 MiB block (what Linux reports), and a range that starts and ends
	 * mid-page: only the whole pages inside it go. */
	struct vtd_buf chain[2] = { { base, 2 << 20, true }, { base + (4 << 20) + 100, 3 * PAGE, true } };
	struct vtd_buf readable = { base + (8 << 20), PAGE, false };
	uint64_t before;

	(void)state;
	bring_up(STATS_VQ | REPORTING, 4);
	fill(base, 10 << 20, 0x77);
	before = memfd_bytes();
	vtd_offer(&d, 3, chain, 2);
	vtd_kick(&d, 3);
	expect_used(3);
	assert_true(all_hole(base, 2 << 20));
	assert_true(all_data(base + (2 << 20), PAGE));
	assert_true(all_data(base + (4 << 20), PAGE));          /* the partial first page stays */
	assert_true(all_hole(base + (4 << 20) + PAGE, 2 * PAGE));
	assert_true(all_data(base + (4 << 20) + 3 * PAGE, PAGE)); /* the partial last page stays */
	assert_int_equal(before - memfd_bytes(), (2 << 20) + 2 * PAGE);
	/* A readable buffer is the wrong direction for a report: ignored, returned. */
	vtd_offer(&d, 3, &readable, 1);
	vtd_kick(&d, 3);
	expect_used(3);
	assert_true(all_data(base + (8 << 20), PAGE));
	assert_false(needs_reset());
}

/* Offer one writable page on q and kick; what q does with it says which queue q is. */
static void offer_page(unsigned int q, uint64_t gpa)
{
	struct vtd_buf b = { gpa, PAGE, true };

	fill(gpa, PAGE, 0x33);
	vtd_offer(&d, q, &b, 1);
	vtd_kick(&d, q);
}

/* Linux numbers the queues that exist one after the other: reporting_vq
 * is queue 2 + STATS_VQ (+ FREE_PAGE_HINT, never offered here), by what was
 * negotiated. */
static void test_queue_indices_follow_negotiated_features(void **state)
{
	struct virtio_balloon_stats s;
	uint32_t id, len;

	(void)state;
	/* Both: 2 stats, 3 reporting. */
	bring_up(STATS_VQ | REPORTING, 4);
	offer_page(3, PAGES_AT);
	expect_used(3);
	assert_true(all_hole(PAGES_AT, PAGE));
	offer_page(2, PAGES_AT + PAGE);  /* a (writable, so empty) stats buffer: held */
	assert_false(vtd_next_used(&d, 2, &id, &len));
	assert_true(all_data(PAGES_AT + PAGE, PAGE));
	assert_true(virtio_balloon_stats(balloon, &s));
	assert_int_equal(s.generation, 1);

	/* Reporting without stats: Linux reports on queue 2. A driver numbering
	 * by what is offered (QEMU's layout) would report on 3: served too. */
	bring_up(REPORTING, 4);
	offer_page(2, PAGES_AT + 2 * PAGE);
	expect_used(2);
	assert_true(all_hole(PAGES_AT + 2 * PAGE, PAGE));
	offer_page(3, PAGES_AT + 3 * PAGE);
	expect_used(3);
	assert_true(all_hole(PAGES_AT + 3 * PAGE, PAGE));
	assert_int_equal(virtio_balloon_request_stats(balloon), -ENOTSUP);

	/* Stats without reporting: 2 is stats, 3 nothing. */
	bring_up(STATS_VQ, 4);
	offer_page(2, PAGES_AT + 4 * PAGE);
	assert_false(vtd_next_used(&d, 2, &id, &len));
	assert_true(all_data(PAGES_AT + 4 * PAGE, PAGE));
	assert_int_equal(virtio_balloon_request_stats(balloon), 0);
	offer_page(3, PAGES_AT + 5 * PAGE);
	assert_false(vtd_next_used(&d, 3, &id, &len));
	assert_true(all_data(PAGES_AT + 5 * PAGE, PAGE));

	/* Neither: inflate and deflate only. */
	bring_up(0, 4);
	offer_page(2, PAGES_AT + 6 * PAGE);
	offer_page(3, PAGES_AT + 7 * PAGE);
	assert_false(vtd_next_used(&d, 2, &id, &len));
	assert_false(vtd_next_used(&d, 3, &id, &len));
	assert_true(all_data(PAGES_AT + 6 * PAGE, 2 * PAGE));
	assert_false(needs_reset());
}

static void test_hostile_page_numbers(void **state)
{
	const uint64_t high = GUEST_HIGH_RAM_START, low_end = GUEST_PCI_HOLE_START;
	uint32_t pfns[] = {
		(uint32_t)(low_end / PAGE),                       /* first page of the PCI hole */
		(uint32_t)((low_end + (512ULL << 20)) / PAGE),    /* inside the hole */
		(uint32_t)((high + (16ULL << 20)) / PAGE),        /* just past the end of RAM */
		0xFFFFFFFF,                                       /* 16 TiB */
		(uint32_t)(low_end / PAGE) - 1,                   /* the last page below the hole: fine */
		(uint32_t)(high / PAGE),                          /* the first page above it: fine */
	};
	struct virtio_balloon_counters c;

	(void)state;
	teardown(NULL);
	open_device(BIG_RAM_SIZE, false);
	bring_up(STATS_VQ | REPORTING, 4);
	/* In the memfd, RAM from 4 GiB sits right after the 3 GiB below the
	 * hole: a page number in the hole taken as a memfd offset would hit it. */
	fill(high, 8 * PAGE, 0xC4);
	fill(low_end - PAGE, PAGE, 0xC3);
	send_pfns(INFLATEQ, pfns, 6);
	expect_used(INFLATEQ);
	c = virtio_balloon_counters(balloon);
	assert_int_equal(c.refused_pfns, 4);
	assert_int_equal(c.discarded_bytes, 2 * PAGE);
	/* The two good pages are one range in the memfd: one call. */
	assert_int_equal(c.discard_calls, 1);
	assert_true(all_hole(low_end - PAGE, 2 * PAGE));           /* memfd offsets 3G - 4K .. 3G + 4K */
	assert_true(all_data(low_end + PAGE, 7 * PAGE));           /* the rest of the high pages */
	assert_int_equal(host(high + PAGE, PAGE)[0], 0xC4);
	assert_false(needs_reset());
}

static void test_hostile_requests_refused_whole(void **state)
{
	uint32_t pfns[1025];
	uint64_t a = vtd_alloc(&d, 8);
	struct vtd_buf odd = { a, 6, false };                      /* one page number and a half */
	struct vtd_buf with_writable[2] = { { a, 4, false }, { a + 4, 4, true } };

	(void)state;
	bring_up(STATS_VQ | REPORTING, 4);
	fill(PAGES_AT, 4 * PAGE, 0x99);
	pfns[0] = (uint32_t)(PAGES_AT / PAGE);
	memcpy(vtd_ptr(&d, a), pfns, 4);
	memset((uint8_t *)vtd_ptr(&d, a) + 4, 0xEE, 4);
	vtd_offer(&d, INFLATEQ, &odd, 1);
	vtd_kick(&d, INFLATEQ);
	expect_used(INFLATEQ);
	assert_true(all_data(PAGES_AT, PAGE));  /* refused whole, the good first number too */
	/* More page numbers than any driver sends in one request: refused whole. */
	for (unsigned int i = 0; i < 1025; i++)
		pfns[i] = (uint32_t)(PAGES_AT / PAGE) + (i % 4);
	send_pfns(INFLATEQ, pfns, 1025);
	expect_used(INFLATEQ);
	assert_true(all_data(PAGES_AT, 4 * PAGE));
	assert_int_equal(virtio_balloon_counters(balloon).refused_requests, 2);
	/* A writable buffer in an inflate request: ignored (not written), the
	 * readable page numbers served. */
	vtd_offer(&d, INFLATEQ, with_writable, 2);
	vtd_kick(&d, INFLATEQ);
	expect_used(INFLATEQ);
	assert_true(all_hole(PAGES_AT, PAGE));
	assert_int_equal(((uint8_t *)vtd_ptr(&d, a))[4], 0xEE);
	/* An empty request is nothing to do. */
	send_pfns(DEFLATEQ, pfns, 0);
	expect_used(DEFLATEQ);
	assert_false(needs_reset());
}

/* Chains that break the ring rules break the queue: NEEDS_RESET, nothing punched. */
static void test_huge_chain_needs_reset(void **state)
{
	uint64_t table = vtd_alloc(&d, 200 * sizeof(struct vring_desc));
	struct vring_desc *t = vtd_ptr(&d, table);
	struct vring_desc *desc;
	struct vring_avail *avail;
	uint64_t before;

	(void)state;
	assert_true(vtd_negotiate(&d, BASE_FEATURES | STATS_VQ | REPORTING | (1ULL << VIRTIO_RING_F_INDIRECT_DESC)));
	config_vector(CONFIG_VECTOR);
	for (unsigned int q = 0; q < 4; q++)
		setup_queue(q);
	vtd_driver_ok(&d);
	fill(PAGES_AT, 200 * PAGE, 0x42);
	/* A report of 200 pages through an indirect table: more buffers than
	 * any report carries (Linux: 32) and than the device takes (128). */
	for (unsigned int i = 0; i < 200; i++)
		t[i] = (struct vring_desc){ .addr = PAGES_AT + i * PAGE, .len = PAGE,
					    .flags = VRING_DESC_F_WRITE | (i < 199 ? VRING_DESC_F_NEXT : 0),
					    .next = (uint16_t)(i + 1) };
	desc = vtd_ptr(&d, d.q[3].desc);
	avail = vtd_ptr(&d, d.q[3].avail);
	desc[0] = (struct vring_desc){ .addr = table, .len = 200 * sizeof(struct vring_desc),
				       .flags = VRING_DESC_F_INDIRECT };
	avail->ring[0] = 0;
	__atomic_store_n(&avail->idx, 1, __ATOMIC_RELEASE);
	before = memfd_bytes();
	vtd_kick(&d, 3);
	assert_true(needs_reset());
	assert_true(vtd_interrupted(&d, CONFIG_VECTOR));
	assert_int_equal(memfd_bytes(), before);
	assert_int_equal(virtio_balloon_counters(balloon).discarded_bytes, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_features_queues_and_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deflate_on_oom_is_an_option, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inflate_punches_pages_out_of_the_memfd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inflate_on_anonymous_ram, setup_anonymous_ram, teardown),
		cmocka_unit_test_setup_teardown(test_deflate_and_actual, setup, teardown),
		cmocka_unit_test_setup_teardown(test_actual_is_taken_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_raises_the_config_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_keeps_target_clears_actual, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_buffer_parsed_and_returned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_hostile_buffers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_without_the_feature, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_refresh_on_demand, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_periodic_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reporting_frees_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_indices_follow_negotiated_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_page_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_requests_refused_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_chain_needs_reset, setup, teardown),
	};

	return cmocka_run_group_tests_name("virtio-balloon", tests, NULL, NULL);
}
