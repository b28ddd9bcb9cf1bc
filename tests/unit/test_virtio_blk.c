/* virtio-blk through the test driver, on a real image file with io_uring:
 * every request type, read-only disks, bounds, malformed chains, a host I/O
 * error, multiqueue, discard really freeing the file's blocks, and all that
 * under kvio's seccomp filter. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/block_file.h"
#include "config.h"
#include "core/sandbox.h"
#include "virtio/blk.h"
#include "virtio_driver.h"

#define RAM_SIZE (8ULL << 20)
#define DISK_SIZE (4ULL << 20)
#define QSIZE 64

static char image[] = "/tmp/kvio-test-blk-XXXXXX";
static struct vtd d;
static struct virtio_dev *blk;

static void open_disk(bool read_only, unsigned int queues, const char *id)
{
	struct virtio_blk_options opts = { .path = image, .read_only = read_only, .id = id, .queues = queues };

	blk = virtio_blk_create(&opts);
	assert_non_null(blk);
	vtd_init(&d, blk, RAM_SIZE);
	assert_true(vtd_negotiate(&d, vtd_device_features(&d)));
	for (unsigned int q = 0; q < queues; q++)
		vtd_setup_queue(&d, q, QSIZE, (uint16_t)q);
	vtd_driver_ok(&d);
}

static int setup(void **state)
{
	int fd = mkstemp(image);

	(void)state;
	if (fd < 0 || ftruncate(fd, DISK_SIZE) < 0)
		return -1;
	close(fd);
	open_disk(false, 1, "test-serial");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vtd_destroy(&d);
	virtio_blk_destroy(blk);
	unlink(image);
	strcpy(image, "/tmp/kvio-test-blk-XXXXXX");
	return 0;
}

/* Wait for the backend's completions and run them as the I/O thread would. */
static bool wait_used(unsigned int q, uint32_t *id, uint32_t *len)
{
	for (int tries = 0; tries < 100; tries++) {
		struct pollfd p = { .events = POLLIN };

		assert_int_equal(blk->ops->event_fds(blk, &p.fd, 1), 1);

		if (vtd_next_used(&d, q, id, len))
			return true;
		poll(&p, 1, 50);
		pthread_mutex_lock(&blk->lock);
		blk->ops->event_ready(blk, 0);
		pthread_mutex_unlock(&blk->lock);
	}
	return false;
}

/* One request: header, then out data or in data, then the status byte. */
static uint8_t request(unsigned int q, uint32_t type, uint64_t sector, uint64_t data_gpa, uint32_t data_len,
		       bool data_writable, uint32_t *used_len)
{
	uint64_t hdr = vtd_alloc(&d, sizeof(struct virtio_blk_outhdr)), status = vtd_alloc(&d, 1);
	struct virtio_blk_outhdr *h = vtd_ptr(&d, hdr);
	struct vtd_buf bufs[3] = { { hdr, sizeof(*h), false } };
	unsigned int n = 1;
	uint32_t id, len;
	uint16_t head;

	*h = (struct virtio_blk_outhdr){ .type = type, .sector = sector };
	*(uint8_t *)vtd_ptr(&d, status) = 0xEE;
	if (data_len)
		bufs[n++] = (struct vtd_buf){ data_gpa, data_len, data_writable };
	bufs[n++] = (struct vtd_buf){ status, 1, true };
	head = vtd_offer(&d, q, bufs, n);
	vtd_kick(&d, q);
	assert_true(wait_used(q, &id, &len));
	assert_int_equal(id, head);
	if (used_len)
		*used_len = len;
	return *(uint8_t *)vtd_ptr(&d, status);
}

static void test_config_and_features(void **state)
{
	struct virtio_blk_config config;
	uint64_t features = vtd_device_features(&d);

	(void)state;
	for (unsigned int i = 0; i < sizeof(config); i++)
		((uint8_t *)&config)[i] = (uint8_t)vtd_read(&d, VIRTIO_PCI_DEVICE_OFFSET + i, 1);
	assert_int_equal(config.capacity, DISK_SIZE / 512);
	assert_int_equal(config.seg_max, VIRTIO_BLK_SEG_MAX);
	assert_int_equal(config.max_discard_seg, 1);
	assert_true(features & (1ULL << VIRTIO_BLK_F_FLUSH));
	assert_true(features & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_true(features & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
	assert_false(features & (1ULL << VIRTIO_BLK_F_RO));
	assert_false(features & (1ULL << VIRTIO_BLK_F_MQ));
}

static void test_write_read_flush(void **state)
{
	uint64_t out = vtd_alloc(&d, 4096), in = vtd_alloc(&d, 4096);
	uint32_t len;
	char host[16];
	FILE *f;

	(void)state;
	memset(vtd_ptr(&d, out), 'k', 4096);
	assert_int_equal(request(0, VIRTIO_BLK_T_OUT, 8, out, 4096, false, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1);
	assert_int_equal(request(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 8, in, 4096, true, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 4097);
	assert_memory_equal(vtd_ptr(&d, in), vtd_ptr(&d, out), 4096);
	/* And it is in the host file, at sector 8. */
	f = fopen(image, "rb");
	fseek(f, 8 * 512, SEEK_SET);
	assert_int_equal(fread(host, 1, sizeof(host), f), sizeof(host));
	fclose(f);
	assert_memory_equal(host, "kkkkkkkkkkkkkkkk", 16);
	assert_true(vtd_interrupted(&d, 0));
}

static void test_get_id(void **state)
{
	uint64_t in = vtd_alloc(&d, VIRTIO_BLK_ID_BYTES);

	(void)state;
	assert_int_equal(request(0, VIRTIO_BLK_T_GET_ID, 0, in, VIRTIO_BLK_ID_BYTES, true, NULL), VIRTIO_BLK_S_OK);
	assert_string_equal(vtd_ptr(&d, in), "test-serial");
}

static void test_out_of_range_and_unaligned(void **state)
{
	uint64_t buf = vtd_alloc(&d, 4096);

	(void)state;
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, DISK_SIZE / 512 - 1, buf, 1024, true, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(0, VIRTIO_BLK_T_OUT, ~0ULL / 512, buf, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 0, buf, 100, true, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(0, 99, 0, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
	/* The device is still fine afterwards. */
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 0, buf, 512, true, NULL), VIRTIO_BLK_S_OK);
}

static void test_read_only_disk(void **state)
{
	uint64_t buf = vtd_alloc(&d, 512);

	(void)state;
	vtd_destroy(&d);
	virtio_blk_destroy(blk);
	open_disk(true, 1, "");
	assert_true(vtd_device_features(&d) & (1ULL << VIRTIO_BLK_F_RO));
	buf = vtd_alloc(&d, 512);
	assert_int_equal(request(0, VIRTIO_BLK_T_OUT, 0, buf, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 0, buf, 512, true, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
}

static uint64_t allocated_blocks(void)
{
	struct stat st;

	assert_int_equal(stat(image, &st), 0);
	return (uint64_t)st.st_blocks;
}

static void test_discard_frees_blocks_and_write_zeroes(void **state)
{
	uint64_t data = vtd_alloc(&d, 1 << 20), seg = vtd_alloc(&d, 16);
	struct virtio_blk_discard_write_zeroes *range = vtd_ptr(&d, seg);
	uint64_t before;

	(void)state;
	memset(vtd_ptr(&d, data), 0x5A, 1 << 20);
	assert_int_equal(request(0, VIRTIO_BLK_T_OUT, 0, data, 1 << 20, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	before = allocated_blocks();
	*range = (struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = 1024 };
	assert_int_equal(request(0, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false, NULL), VIRTIO_BLK_S_OK);
	assert_true(allocated_blocks() + 512 * 1024 / 512 / 2 <= before);  /* at least half a MiB freed */
	*range = (struct virtio_blk_discard_write_zeroes){ .sector = 1024, .num_sectors = 8 };
	assert_int_equal(request(0, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, false, NULL), VIRTIO_BLK_S_OK);
	memset(vtd_ptr(&d, data), 1, 4096);
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 1024, data, 4096, true, NULL), VIRTIO_BLK_S_OK);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(((uint8_t *)vtd_ptr(&d, data))[i], 0);
	/* A range past the end is refused. */
	*range = (struct virtio_blk_discard_write_zeroes){ .sector = DISK_SIZE / 512 - 4, .num_sectors = 8 };
	assert_int_equal(request(0, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false, NULL), VIRTIO_BLK_S_IOERR);
}

static void test_host_error_fails_one_request(void **state)
{
	uint64_t buf = vtd_alloc(&d, 4096);

	(void)state;
	/* The image shrinks under us: a read past its new end is a short read. */
	assert_int_equal(truncate(image, DISK_SIZE / 2), 0);
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, DISK_SIZE / 512 - 8, buf, 4096, true, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(0, VIRTIO_BLK_T_IN, 0, buf, 4096, true, NULL), VIRTIO_BLK_S_OK);
}

static void test_malformed_requests(void **state)
{
	uint64_t hdr = vtd_alloc(&d, 16), status = vtd_alloc(&d, 1);
	struct vtd_buf short_header[2] = { { hdr, 8, false }, { status, 1, true } };
	struct vtd_buf no_status[1] = { { hdr, 16, false } };
	uint32_t id, len;

	(void)state;
	*(uint8_t *)vtd_ptr(&d, status) = 0xEE;
	vtd_offer(&d, 0, short_header, 2);
	vtd_kick(&d, 0);
	assert_true(wait_used(0, &id, &len));
	assert_int_equal(*(uint8_t *)vtd_ptr(&d, status), VIRTIO_BLK_S_IOERR);
	/* Without a writable byte there is no way to answer: the device needs a reset. */
	vtd_offer(&d, 0, no_status, 1);
	vtd_kick(&d, 0);
	assert_true(vtd_read(&d, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_multiqueue(void **state)
{
	uint64_t buf;

	(void)state;
	vtd_destroy(&d);
	virtio_blk_destroy(blk);
	open_disk(false, 2, "");
	assert_true(vtd_device_features(&d) & (1ULL << VIRTIO_BLK_F_MQ));
	assert_int_equal(vtd_read(&d, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
	buf = vtd_alloc(&d, 512);
	assert_int_equal(request(1, VIRTIO_BLK_T_IN, 0, buf, 512, true, NULL), VIRTIO_BLK_S_OK);
	assert_true(vtd_interrupted(&d, 1));
	assert_false(vtd_interrupted(&d, 0));
}

static void test_parser_splits_header_across_buffers(void **state)
{
	uint8_t hdr[16] = { VIRTIO_BLK_T_IN, 0, 0, 0, 0, 0, 0, 0, 7 }, data[512], status;
	struct iovec iov[4] = { { hdr, 3 }, { hdr + 3, 13 }, { data, 512 }, { &status, 1 } };
	struct virtio_blk_request req;

	(void)state;
	assert_int_equal(virtio_blk_parse(iov, 2, 2, &req), VIRTIO_BLK_PARSED);
	assert_int_equal(req.type, VIRTIO_BLK_T_IN);
	assert_int_equal(req.sector, 7);
	assert_int_equal(req.data_len, 512);
	assert_ptr_equal(req.status, &status);
	/* Status folded into the data buffer's last byte. */
	iov[2].iov_len = 513;
	assert_int_equal(virtio_blk_parse(iov, 2, 1, &req), VIRTIO_BLK_PARSED);
	assert_int_equal(req.data_len, 512);
	assert_ptr_equal(req.status, data + 512);
}

/* Requests as in the tests above, then a device reset (which drains the
 * ring) and the teardown, under kvio's seccomp filter for --disk
 * (core/sandbox.c), installed after the disk is open, as vm_run does. In a
 * child, so this process stays unfiltered; a syscall the filter lacks ends it
 * with exit 31 and a line naming the call. */
static void test_requests_under_seccomp(void **state)
{
	static struct vm_config cfg;
	int status;
	pid_t pid;

	(void)state;
	cfg.nr_disks = 1;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint64_t data = vtd_alloc(&d, 4096), seg = vtd_alloc(&d, 16);
		struct virtio_blk_discard_write_zeroes *range = vtd_ptr(&d, seg);

		/* A failed assert aborts the child instead of jumping back into the parent's test. */
		setenv("CMOCKA_TEST_ABORT", "1", 1);
		if (sandbox_install(&cfg))
			_exit(101);
		memset(vtd_ptr(&d, data), 'k', 4096);
		assert_int_equal(request(0, VIRTIO_BLK_T_OUT, 8, data, 4096, false, NULL), VIRTIO_BLK_S_OK);
		assert_int_equal(request(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
		assert_int_equal(request(0, VIRTIO_BLK_T_IN, 8, data, 4096, true, NULL), VIRTIO_BLK_S_OK);
		*range = (struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = 8 };
		assert_int_equal(request(0, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false, NULL), VIRTIO_BLK_S_OK);
		assert_int_equal(request(0, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, false, NULL), VIRTIO_BLK_S_OK);
		/* In flight during the reset: the drain waits for it. */
		vtd_offer(&d, 0, (struct vtd_buf[]){ { vtd_alloc(&d, 16), 16, false }, { vtd_alloc(&d, 1), 1, true } }, 2);
		vtd_kick(&d, 0);
		vtd_write(&d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
		vtd_destroy(&d);
		virtio_blk_destroy(blk);
		exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("under seccomp: status %#x (its stderr is above)", status);
}

/* The backend's ring takes only its operations on the image: another fd, a
 * fixed file it does not have, or an operation off its list, is refused. */
static void submit_and_expect(struct block_file *bf, struct io_uring_sqe *sqe, int expected)
{
	struct io_uring_cqe *cqe;

	io_uring_sqe_set_data(sqe, NULL);
	assert_int_equal(io_uring_submit(&bf->ring), 1);
	assert_int_equal(io_uring_wait_cqe(&bf->ring, &cqe), 0);
	assert_int_equal(cqe->res, expected);
	io_uring_cqe_seen(&bf->ring, cqe);
}

static void test_io_uring_is_restricted_to_the_image(void **state)
{
	struct block_file bf;
	const char *why = NULL;
	char buf[16];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	int other = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
	struct io_uring_sqe *sqe;

	(void)state;
	assert_true(other >= 0);
	assert_int_equal(block_file_open(&bf, image, false, 8, &why), 0);
	sqe = io_uring_get_sqe(&bf.ring);
	io_uring_prep_readv(sqe, other, &iov, 1, 0);  /* a plain fd, not the registered image */
	submit_and_expect(&bf, sqe, -EACCES);
	sqe = io_uring_get_sqe(&bf.ring);
	io_uring_prep_readv(sqe, 0, &iov, 1, 0);
	sqe->flags |= IOSQE_FIXED_FILE;  /* the image: allowed */
	submit_and_expect(&bf, sqe, (int)sizeof(buf));
	sqe = io_uring_get_sqe(&bf.ring);
	io_uring_prep_openat(sqe, AT_FDCWD, "/etc/hostname", O_RDONLY, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	submit_and_expect(&bf, sqe, -EACCES);
	sqe = io_uring_get_sqe(&bf.ring);
	io_uring_prep_send(sqe, 0, buf, sizeof(buf), 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	submit_and_expect(&bf, sqe, -EACCES);
	block_file_close(&bf);
	close(other);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_config_and_features),
		T(test_write_read_flush),
		T(test_get_id),
		T(test_out_of_range_and_unaligned),
		T(test_read_only_disk),
		T(test_discard_frees_blocks_and_write_zeroes),
		T(test_host_error_fails_one_request),
		T(test_malformed_requests),
		T(test_multiqueue),
		T(test_requests_under_seccomp),
		T(test_io_uring_is_restricted_to_the_image),
		cmocka_unit_test(test_parser_splits_header_across_buffers),
	};

	return cmocka_run_group_tests_name("virtio_blk", tests, NULL, NULL);
}
