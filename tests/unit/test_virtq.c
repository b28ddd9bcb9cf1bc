/* The split virtqueue against a fake guest memory: normal chains, indirect
 * tables, notification suppression with index wrap-around, and every hostile
 * ring the guest can write. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/queue.h"

#define RAM_SIZE (1 << 20)
#define QSIZE 8
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define INDIRECT_GPA 0x4000
#define DATA_GPA 0x10000

static struct guest_mem mem;
static uint8_t *ram;
static struct virtq vq;
static struct virtq_elem elem;
static struct iovec iov[VIRTQ_MAX_IOV];

static struct vring_desc *desc_table(void)
{
	return (struct vring_desc *)(ram + DESC_GPA);
}

static struct vring_avail *avail_ring(void)
{
	return (struct vring_avail *)(ram + AVAIL_GPA);
}

static struct vring_used *used_ring(void)
{
	return (struct vring_used *)(ram + USED_GPA);
}

static void set_desc(struct vring_desc *table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	table[i] = (struct vring_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

/* What a driver does to offer the chain starting at head. */
static void offer(uint16_t head)
{
	struct vring_avail *avail = avail_ring();

	avail->ring[avail->idx % QSIZE] = head;
	avail->idx++;
}

static int setup(void **state)
{
	(void)state;
	ram = calloc(1, RAM_SIZE);
	guest_mem_layout(&mem, ram, RAM_SIZE, -1);
	virtq_elem_init(&elem, iov, VIRTQ_MAX_IOV);
	assert_int_equal(virtq_init(&vq, &mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, false, true), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(ram);
	return 0;
}

static void expect_broken(const char *reason)
{
	assert_int_equal(virtq_pop(&vq, &elem), -1);
	assert_true(virtq_is_broken(&vq));
	assert_non_null(strstr(vq.broken_reason, reason));
	/* Sticky: nothing more is popped, pushed or signalled. */
	assert_int_equal(virtq_pop(&vq, &elem), -1);
	virtq_push(&vq, 0, 0);
	assert_int_equal(used_ring()->idx, 0);
	assert_false(virtq_should_notify(&vq));
}

static void test_init_checks_rings(void **state)
{
	struct virtq q;

	(void)state;
	assert_int_equal(virtq_init(&q, &mem, 6, DESC_GPA, AVAIL_GPA, USED_GPA, false, false), -EINVAL);
	assert_int_equal(virtq_init(&q, &mem, 2048, DESC_GPA, AVAIL_GPA, USED_GPA, false, false), -EINVAL);
	assert_int_equal(virtq_init(&q, &mem, QSIZE, DESC_GPA + 8, AVAIL_GPA, USED_GPA, false, false), -EINVAL);
	assert_int_equal(virtq_init(&q, &mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA + 2, false, false), -EINVAL);
	assert_int_equal(virtq_init(&q, &mem, QSIZE, RAM_SIZE - 16, AVAIL_GPA, USED_GPA, false, false), -EFAULT);
	assert_int_equal(virtq_init(&q, &mem, QSIZE, DESC_GPA, RAM_SIZE - 6, USED_GPA, false, false), -EFAULT);
	assert_int_equal(virtq_init(&q, &mem, QSIZE, DESC_GPA, AVAIL_GPA, ~0ULL - 3, false, false), -EFAULT);
}

static void test_pop_chain_and_push(void **state)
{
	(void)state;
	assert_int_equal(virtq_pop(&vq, &elem), 0);
	set_desc(desc_table(), 3, DATA_GPA, 16, VRING_DESC_F_NEXT, 5);
	set_desc(desc_table(), 5, DATA_GPA + 16, 100, VRING_DESC_F_NEXT, 1);
	set_desc(desc_table(), 1, DATA_GPA + 200, 1, VRING_DESC_F_WRITE, 0);
	offer(3);
	assert_int_equal(virtq_pop(&vq, &elem), 1);
	assert_int_equal(elem.head, 3);
	assert_int_equal(elem.out_num, 2);
	assert_int_equal(elem.in_num, 1);
	assert_int_equal(elem.out_len, 116);
	assert_int_equal(elem.in_len, 1);
	assert_ptr_equal(elem.iov[0].iov_base, ram + DATA_GPA);
	assert_ptr_equal(elem.iov[2].iov_base, ram + DATA_GPA + 200);
	assert_int_equal(virtq_pop(&vq, &elem), 0);

	virtq_push(&vq, 3, 1);
	assert_int_equal(used_ring()->idx, 1);
	assert_int_equal(used_ring()->ring[0].id, 3);
	assert_int_equal(used_ring()->ring[0].len, 1);
	assert_true(virtq_should_notify(&vq));
	avail_ring()->flags = VRING_AVAIL_F_NO_INTERRUPT;
	assert_false(virtq_should_notify(&vq));
}

static void test_indirect_table(void **state)
{
	struct vring_desc *table = (struct vring_desc *)(ram + INDIRECT_GPA);

	(void)state;
	set_desc(table, 0, DATA_GPA, 16, VRING_DESC_F_NEXT, 2);
	set_desc(table, 2, DATA_GPA + 64, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	set_desc(table, 1, DATA_GPA + 1024, 1, VRING_DESC_F_WRITE, 0);
	set_desc(desc_table(), 0, INDIRECT_GPA, 3 * sizeof(struct vring_desc), VRING_DESC_F_INDIRECT, 0);
	offer(0);
	assert_int_equal(virtq_pop(&vq, &elem), 1);
	assert_int_equal(elem.out_num, 1);
	assert_int_equal(elem.in_num, 2);
	assert_int_equal(elem.in_len, 513);
}

static void test_ring_wraps_past_65535(void **state)
{
	(void)state;
	/* Indices are free-running 16-bit counters: start just below the wrap. */
	vq.last_avail_idx = vq.used_idx = 65534;
	avail_ring()->idx = 65534;
	set_desc(desc_table(), 0, DATA_GPA, 8, VRING_DESC_F_WRITE, 0);
	for (int i = 0; i < 4; i++) {
		offer(0);
		assert_int_equal(virtq_pop(&vq, &elem), 1);
		virtq_push(&vq, 0, 8);
	}
	assert_int_equal(vq.last_avail_idx, 2);
	assert_int_equal(used_ring()->idx, 2);
	assert_int_equal(used_ring()->ring[1].id, 0);
}

static void test_event_idx_suppression(void **state)
{
	struct virtq q;
	uint16_t *used_event = (uint16_t *)&avail_ring()->ring[QSIZE];
	uint16_t *avail_event = (uint16_t *)&used_ring()->ring[QSIZE];

	(void)state;
	assert_int_equal(virtq_init(&q, &mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, true, false), 0);
	/* Around the wrap: the guest wants an interrupt once used passes 65535. */
	q.last_avail_idx = q.used_idx = 65533;
	avail_ring()->idx = 65533;
	set_desc(desc_table(), 0, DATA_GPA, 8, VRING_DESC_F_WRITE, 0);
	*used_event = 65535;
	for (uint16_t n = 0; n < 4; n++) {
		offer(0);
		assert_int_equal(virtq_pop(&q, &elem), 1);
		assert_int_equal(*avail_event, (uint16_t)(65534 + n));  /* kick me when you pass this */
		virtq_push(&q, 0, 8);
		/* First push always signals; then only when used_idx crosses used_event + 1. */
		if (n == 0)
			assert_true(virtq_should_notify(&q));
		else if (n == 2)
			assert_true(virtq_should_notify(&q));    /* used_idx 65535 -> 0 passes 65535 */
		else
			assert_false(virtq_should_notify(&q));
	}
	/* Kick suppression: after re-enabling, buffers already waiting are reported. */
	virtq_disable_kicks(&q);
	offer(0);
	assert_true(virtq_enable_kicks(&q));
	assert_int_equal(*avail_event, q.last_avail_idx);
}

/* An empty pop asks for a kick at the next buffer, and unpop gives chains back. */
static void test_empty_pop_asks_for_a_kick(void **state)
{
	struct virtq q;
	uint16_t *avail_event = (uint16_t *)&used_ring()->ring[QSIZE];

	(void)state;
	assert_int_equal(virtq_init(&q, &mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, true, false), 0);
	set_desc(desc_table(), 0, DATA_GPA, 8, VRING_DESC_F_WRITE, 0);
	set_desc(desc_table(), 1, DATA_GPA, 8, VRING_DESC_F_WRITE, 0);
	offer(0);
	offer(1);
	assert_int_equal(virtq_pop(&q, &elem), 1);
	assert_int_equal(virtq_pop(&q, &elem), 1);
	assert_int_equal(elem.head, 1);
	virtq_unpop(&q, 2);
	*avail_event = 0xBEEF;
	assert_int_equal(virtq_pop(&q, &elem), 1);
	assert_int_equal(elem.head, 0);
	assert_int_equal(virtq_pop(&q, &elem), 1);
	assert_int_equal(virtq_pop(&q, &elem), 0);
	assert_int_equal(*avail_event, 2);
	/* While kicks are disabled (the device polls), an empty pop leaves avail_event alone. */
	virtq_disable_kicks(&q);
	*avail_event = 0xBEEF;
	assert_int_equal(virtq_pop(&q, &elem), 0);
	assert_int_equal(*avail_event, 0xBEEF);
	assert_false(virtq_enable_kicks(&q));
	assert_int_equal(*avail_event, 2);
}

/* A draining device: the guest, adding while chains are left, is not asked to
 * kick (the driver's own test, vring_need_event); once the ring is empty it is. */
static void test_quiet_pop_asks_for_a_kick_only_when_empty(void **state)
{
	struct virtq q;
	uint16_t *avail_event = (uint16_t *)&used_ring()->ring[QSIZE];

	(void)state;
	assert_int_equal(virtq_init(&q, &mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, true, false), 0);
	for (uint16_t i = 0; i < 3; i++) {
		set_desc(desc_table(), i, DATA_GPA, 8, VRING_DESC_F_WRITE, 0);
		offer(i);
	}
	*avail_event = 0;
	assert_int_equal(virtq_pop_quiet(&q, &elem), 1);
	assert_int_equal(virtq_pop_quiet(&q, &elem), 1);
	assert_int_equal(*avail_event, 0);
	offer(0);  /* the guest's add 3 -> 4 */
	assert_false(vring_need_event(*avail_event, 4, 3));
	assert_int_equal(virtq_pop_quiet(&q, &elem), 1);
	assert_int_equal(virtq_pop_quiet(&q, &elem), 1);
	assert_int_equal(elem.head, 0);
	assert_int_equal(virtq_pop_quiet(&q, &elem), 0);
	assert_int_equal(*avail_event, 4);
	offer(1);  /* 4 -> 5 */
	assert_true(vring_need_event(*avail_event, 5, 4));
	/* Taken speculatively and given back (net receive, short of room): the
	 * request for a kick made at the empty ring stands. */
	assert_int_equal(virtq_pop_quiet(&q, &elem), 1);
	assert_int_equal(virtq_pop_quiet(&q, &elem), 0);
	virtq_unpop(&q, 1);
	assert_int_equal(*avail_event, 5);
	offer(2);  /* 5 -> 6 */
	assert_true(vring_need_event(*avail_event, 6, 5));
}

static void test_quiet_pop_without_event_idx(void **state)
{
	(void)state;
	set_desc(desc_table(), 0, DATA_GPA, 8, VRING_DESC_F_WRITE, 0);
	offer(0);
	assert_int_equal(virtq_pop_quiet(&vq, &elem), 1);
	assert_int_equal(used_ring()->flags, VRING_USED_F_NO_NOTIFY);
	assert_int_equal(virtq_pop_quiet(&vq, &elem), 0);
	assert_int_equal(used_ring()->flags, 0);
}

static void test_kick_flag_without_event_idx(void **state)
{
	(void)state;
	virtq_disable_kicks(&vq);
	assert_int_equal(used_ring()->flags, VRING_USED_F_NO_NOTIFY);
	assert_false(virtq_enable_kicks(&vq));
	assert_int_equal(used_ring()->flags, 0);
}

static void test_avail_index_jump(void **state)
{
	(void)state;
	avail_ring()->idx = QSIZE + 1;
	expect_broken("avail index");
}

static void test_head_out_of_range(void **state)
{
	(void)state;
	offer(QSIZE);
	expect_broken("head index");
}

static void test_next_out_of_range(void **state)
{
	(void)state;
	set_desc(desc_table(), 0, DATA_GPA, 8, VRING_DESC_F_NEXT, QSIZE + 3);
	offer(0);
	expect_broken("next index");
}

static void test_loop_in_chain(void **state)
{
	(void)state;
	set_desc(desc_table(), 0, DATA_GPA, 8, VRING_DESC_F_NEXT, 1);
	set_desc(desc_table(), 1, DATA_GPA, 8, VRING_DESC_F_NEXT, 0);
	offer(0);
	expect_broken("loop");
}

static void test_buffer_outside_ram(void **state)
{
	(void)state;
	set_desc(desc_table(), 0, RAM_SIZE - 4, 8, 0, 0);
	offer(0);
	expect_broken("outside guest RAM");
}

static void test_address_wraps(void **state)
{
	(void)state;
	set_desc(desc_table(), 0, ~0ULL - 2, 8, 0, 0);
	offer(0);
	expect_broken("outside guest RAM");
}

static void test_chain_bytes_capped(void **state)
{
	struct guest_mem big;

	(void)state;
	/* Each buffer lies inside a (pretend) large RAM, but together they claim
	 * more than any request may. Translation only computes pointers, so a
	 * layout bigger than the buffer behind it is safe here. */
	guest_mem_layout(&big, ram, 2 * VIRTQ_MAX_CHAIN_BYTES, -1);
	assert_int_equal(virtq_init(&vq, &big, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, false, false), 0);
	for (uint16_t i = 0; i < QSIZE; i++)
		set_desc(desc_table(), i, 0, (uint32_t)(VIRTQ_MAX_CHAIN_BYTES / 4),
			 i + 1 < QSIZE ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	offer(0);
	expect_broken("too long");
}

static void test_read_after_write(void **state)
{
	(void)state;
	set_desc(desc_table(), 0, DATA_GPA, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(desc_table(), 1, DATA_GPA, 8, 0, 0);
	offer(0);
	expect_broken("readable buffer after a writable one");
}

static void test_indirect_not_negotiated(void **state)
{
	(void)state;
	assert_int_equal(virtq_init(&vq, &mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, false, false), 0);
	set_desc(desc_table(), 0, INDIRECT_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	offer(0);
	expect_broken("not negotiated");
}

static void test_nested_indirect(void **state)
{
	struct vring_desc *table = (struct vring_desc *)(ram + INDIRECT_GPA);

	(void)state;
	set_desc(table, 0, INDIRECT_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	set_desc(desc_table(), 0, INDIRECT_GPA, 16, VRING_DESC_F_INDIRECT, 0);
	offer(0);
	expect_broken("inside an indirect table");
}

static void test_indirect_bad_length(void **state)
{
	(void)state;
	set_desc(desc_table(), 0, INDIRECT_GPA, 24, VRING_DESC_F_INDIRECT, 0);
	offer(0);
	expect_broken("indirect table length");
}

static void test_indirect_with_next(void **state)
{
	(void)state;
	set_desc(desc_table(), 0, INDIRECT_GPA, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	offer(0);
	expect_broken("NEXT");
}

static void test_indirect_loop(void **state)
{
	struct vring_desc *table = (struct vring_desc *)(ram + INDIRECT_GPA);

	(void)state;
	set_desc(table, 0, DATA_GPA, 8, VRING_DESC_F_NEXT, 1);
	set_desc(table, 1, DATA_GPA, 8, VRING_DESC_F_NEXT, 0);
	set_desc(desc_table(), 0, INDIRECT_GPA, 2 * sizeof(struct vring_desc), VRING_DESC_F_INDIRECT, 0);
	offer(0);
	expect_broken("loop in indirect");
}

static void test_chain_longer_than_device_accepts(void **state)
{
	(void)state;
	virtq_elem_init(&elem, iov, 2);
	set_desc(desc_table(), 0, DATA_GPA, 8, VRING_DESC_F_NEXT, 1);
	set_desc(desc_table(), 1, DATA_GPA, 8, VRING_DESC_F_NEXT, 2);
	set_desc(desc_table(), 2, DATA_GPA, 8, 0, 0);
	offer(0);
	expect_broken("too many buffers");
}

static void test_indirect_outside_ram(void **state)
{
	(void)state;
	set_desc(desc_table(), 0, RAM_SIZE - 16, 32, VRING_DESC_F_INDIRECT, 0);
	offer(0);
	expect_broken("indirect table outside");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_init_checks_rings),
		T(test_pop_chain_and_push),
		T(test_indirect_table),
		T(test_ring_wraps_past_65535),
		T(test_event_idx_suppression),
		T(test_empty_pop_asks_for_a_kick),
		T(test_quiet_pop_asks_for_a_kick_only_when_empty),
		T(test_quiet_pop_without_event_idx),
		T(test_kick_flag_without_event_idx),
		T(test_avail_index_jump),
		T(test_head_out_of_range),
		T(test_next_out_of_range),
		T(test_loop_in_chain),
		T(test_buffer_outside_ram),
		T(test_address_wraps),
		T(test_chain_bytes_capped),
		T(test_read_after_write),
		T(test_indirect_not_negotiated),
		T(test_nested_indirect),
		T(test_indirect_bad_length),
		T(test_indirect_with_next),
		T(test_indirect_loop),
		T(test_indirect_outside_ram),
		T(test_chain_longer_than_device_accepts),
	};

	return cmocka_run_group_tests_name("virtq", tests, NULL, NULL);
}
