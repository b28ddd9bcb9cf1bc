/* virtio-console through the test driver: guest output reaches the host fd,
 * host input lands in the buffers the guest posted. */
#include "unit.h"

#include <linux/virtio_config.h>
#include <string.h>
#include <unistd.h>

#include "virtio/console.h"
#include "virtio_driver.h"

#define RAM_SIZE (4ULL << 20)
enum { RECEIVEQ, TRANSMITQ };

static struct vtd d;
static struct virtio_dev *con;
static int out[2];

static int setup(void **state)
{
	(void)state;
	if (pipe(out))
		return -1;
	con = virtio_console_create(out[1]);
	vtd_init(&d, con, RAM_SIZE);
	assert_true(vtd_negotiate(&d, 1ULL << VIRTIO_F_VERSION_1));
	vtd_setup_queue(&d, RECEIVEQ, 16, 0);
	vtd_setup_queue(&d, TRANSMITQ, 16, 1);
	vtd_driver_ok(&d);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vtd_destroy(&d);
	virtio_console_destroy(con);
	close(out[0]);
	close(out[1]);
	return 0;
}

static void test_guest_output_reaches_host(void **state)
{
	uint64_t a = vtd_alloc(&d, 6), b = vtd_alloc(&d, 6);
	struct vtd_buf chain[2] = { { a, 6, false }, { b, 6, false } };
	char host[16] = { 0 };
	uint32_t id, len;

	(void)state;
	memcpy(vtd_ptr(&d, a), "hello ", 6);
	memcpy(vtd_ptr(&d, b), "world\n", 6);
	vtd_offer(&d, TRANSMITQ, chain, 2);
	vtd_kick(&d, TRANSMITQ);
	assert_int_equal(read(out[0], host, sizeof(host)), 12);
	assert_string_equal(host, "hello world\n");
	assert_true(vtd_next_used(&d, TRANSMITQ, &id, &len));
	assert_int_equal(len, 0);
	assert_true(vtd_interrupted(&d, 1));
}

static void test_host_input_fills_posted_buffers(void **state)
{
	uint64_t a = vtd_alloc(&d, 4), b = vtd_alloc(&d, 64);
	struct vtd_buf small = { a, 4, true }, big = { b, 64, true };
	uint32_t id, len;

	(void)state;
	vtd_offer(&d, RECEIVEQ, &small, 1);
	vtd_offer(&d, RECEIVEQ, &big, 1);
	vtd_kick(&d, RECEIVEQ);
	virtio_console_input(con, (const uint8_t *)"ls -l\n", 6);
	assert_true(vtd_next_used(&d, RECEIVEQ, &id, &len));
	assert_int_equal(len, 4);
	assert_memory_equal(vtd_ptr(&d, a), "ls -", 4);
	assert_true(vtd_next_used(&d, RECEIVEQ, &id, &len));
	assert_int_equal(len, 2);
	assert_memory_equal(vtd_ptr(&d, b), "l\n", 2);
	assert_true(vtd_interrupted(&d, 0));
}

static void test_closed_input_does_not_block(void **state)
{
	uint32_t id, len;

	(void)state;
	/* No buffers posted: input would wait for the guest, unless shutting down. */
	virtio_console_close_input(con);
	virtio_console_input(con, (const uint8_t *)"x", 1);
	assert_false(vtd_next_used(&d, RECEIVEQ, &id, &len));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_guest_output_reaches_host),
		T(test_host_input_fills_posted_buffers),
		T(test_closed_input_does_not_block),
	};

	return cmocka_run_group_tests_name("virtio_console", tests, NULL, NULL);
}
