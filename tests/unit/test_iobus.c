/* Port/MMIO range dispatch and the guest-memory translation helper. */
#include "unit.h"

#include <errno.h>
#include <string.h>

#include "core/iobus.h"
#include "util/guest_mem.h"

struct fake_device {
	uint64_t last_offset, last_value;
	unsigned int last_size, reads, writes;
};

static uint64_t fake_read(void *opaque, uint64_t offset, unsigned int size)
{
	struct fake_device *d = opaque;

	d->reads++;
	d->last_offset = offset;
	d->last_size = size;
	return 0x1234;
}

static void fake_write(void *opaque, uint64_t offset, uint64_t value, unsigned int size)
{
	struct fake_device *d = opaque;

	d->writes++;
	d->last_offset = offset;
	d->last_value = value;
	d->last_size = size;
}

static const struct iobus_ops fake_ops = { .read = fake_read, .write = fake_write };

static void test_dispatch_by_range(void **state)
{
	struct iobus bus;
	struct fake_device a = { 0 }, b = { 0 };
	uint64_t value;

	(void)state;
	iobus_init(&bus, "test");
	assert_int_equal(iobus_register(&bus, 0x3F8, 8, &fake_ops, &a), 0);
	assert_int_equal(iobus_register(&bus, 0x60, 1, &fake_ops, &b), 0);
	assert_true(iobus_read(&bus, 0x3FD, 1, &value));
	assert_int_equal(value, 0x1234);
	assert_int_equal(a.last_offset, 5);
	assert_true(iobus_write(&bus, 0x60, 0xFE, 1));
	assert_int_equal(b.last_value, 0xFE);
	assert_int_equal(b.last_offset, 0);
	assert_true(iobus_write(&bus, 0x3F8, 0x41, 1));
	assert_int_equal(a.writes, 1);
	assert_int_equal(b.writes, 1);
	iobus_destroy(&bus);
}

static void test_unclaimed_reads_all_ones(void **state)
{
	struct iobus bus;
	struct fake_device a = { 0 };
	uint64_t value;

	(void)state;
	iobus_init(&bus, "test");
	assert_int_equal(iobus_register(&bus, 0x100, 0x10, &fake_ops, &a), 0);
	assert_false(iobus_read(&bus, 0xFF, 1, &value));
	assert_int_equal(value, 0xFF);
	assert_false(iobus_read(&bus, 0x110, 4, &value));
	assert_int_equal(value, 0xFFFFFFFF);
	assert_false(iobus_read(&bus, 0x110, 8, &value));
	assert_int_equal(value, ~0ULL);
	assert_false(iobus_write(&bus, 0x110, 1, 1));
	assert_int_equal(a.reads + a.writes, 0);
	iobus_destroy(&bus);
}

static void test_rejects_overlap(void **state)
{
	struct iobus bus;
	struct fake_device a = { 0 };

	(void)state;
	iobus_init(&bus, "test");
	assert_int_equal(iobus_register(&bus, 0x100, 0x10, &fake_ops, &a), 0);
	assert_int_equal(iobus_register(&bus, 0x10F, 1, &fake_ops, &a), -EEXIST);
	assert_int_equal(iobus_register(&bus, 0xF0, 0x11, &fake_ops, &a), -EEXIST);
	assert_int_equal(iobus_register(&bus, 0x0, 0x1000, &fake_ops, &a), -EEXIST);
	assert_int_equal(iobus_register(&bus, 0xF0, 0x10, &fake_ops, &a), 0);
	assert_int_equal(iobus_register(&bus, 0x110, 0x10, &fake_ops, &a), 0);
	assert_int_equal(iobus_register(&bus, 0x200, 0, &fake_ops, &a), -EINVAL);
	assert_int_equal(iobus_register(&bus, ~0ULL, 2, &fake_ops, &a), -EINVAL);
	iobus_destroy(&bus);
}

static void test_many_ranges_stay_sorted(void **state)
{
	struct iobus bus;
	struct fake_device devs[40];
	uint64_t value;

	(void)state;
	memset(devs, 0, sizeof(devs));
	iobus_init(&bus, "test");
	/* Registered out of order, beyond the initial capacity. */
	for (unsigned int i = 0; i < 40; i++) {
		unsigned int slot = (i * 7) % 40;

		assert_int_equal(iobus_register(&bus, 0x1000 + slot * 0x100, 0x10, &fake_ops, &devs[slot]), 0);
	}
	for (unsigned int i = 0; i < 40; i++) {
		assert_true(iobus_read(&bus, 0x1000 + i * 0x100 + 3, 2, &value));
		assert_int_equal(devs[i].reads, 1);
		assert_false(iobus_read(&bus, 0x1000 + i * 0x100 + 0x10, 2, &value));
	}
	iobus_destroy(&bus);
}

static void test_guest_mem_bounds(void **state)
{
	struct guest_mem mem;
	static uint8_t ram[1 << 20];
	void *p = NULL;

	(void)state;
	guest_mem_layout(&mem, ram, sizeof(ram), -1);
	assert_int_equal(guest_mem_translate(&mem, 0, sizeof(ram), &p), 0);
	assert_ptr_equal(p, ram);
	assert_int_equal(guest_mem_translate(&mem, sizeof(ram) - 1, 1, &p), 0);
	assert_ptr_equal(p, ram + sizeof(ram) - 1);
	p = NULL;
	assert_int_equal(guest_mem_translate(&mem, sizeof(ram) - 1, 2, &p), -EFAULT);
	assert_int_equal(guest_mem_translate(&mem, sizeof(ram), 0, &p), -EFAULT);
	assert_int_equal(guest_mem_translate(&mem, 16, ~0ULL, &p), -EFAULT);
	assert_int_equal(guest_mem_translate(&mem, ~0ULL, 2, &p), -EFAULT);
	assert_null(p);
}

static void test_guest_mem_high_region(void **state)
{
	struct guest_mem mem;
	uint8_t *base = (uint8_t *)0x10000000;  /* layout only: never dereferenced */
	void *p = NULL;

	(void)state;
	guest_mem_layout(&mem, base, 4ULL << 30, -1);
	assert_int_equal(mem.nr_regions, 2);
	assert_int_equal(guest_mem_low_end(&mem), GUEST_PCI_HOLE_START);
	/* The hole is not RAM, and no access may straddle into it. */
	assert_int_equal(guest_mem_translate(&mem, GUEST_PCI_HOLE_START, 1, &p), -EFAULT);
	assert_int_equal(guest_mem_translate(&mem, GUEST_PCI_HOLE_START - 4, 8, &p), -EFAULT);
	assert_int_equal(guest_mem_translate(&mem, GUEST_HIGH_RAM_START, 4096, &p), 0);
	assert_ptr_equal(p, base + GUEST_PCI_HOLE_START);
	assert_int_equal(guest_mem_translate(&mem, GUEST_HIGH_RAM_START + (1ULL << 30) - 1, 2, &p), -EFAULT);
}

/* A fake of KVM's coalesced-MMIO ring: four slots, as KVM fills them. */
#define RING_SLOTS 4
static union {
	struct kvm_coalesced_mmio_ring ring;
	uint8_t bytes[sizeof(struct kvm_coalesced_mmio_ring) + RING_SLOTS * sizeof(struct kvm_coalesced_mmio)];
} fake;

static void queue_write(uint64_t addr, uint32_t len, uint64_t value, uint32_t pio)
{
	struct kvm_coalesced_mmio *e = &fake.ring.coalesced_mmio[fake.ring.last];

	*e = (struct kvm_coalesced_mmio){ .phys_addr = addr, .len = len };
	e->pio = pio;
	memcpy(e->data, &value, sizeof(value));
	fake.ring.last = (fake.ring.last + 1) % RING_SLOTS;
}

/* Writes KVM queued come out in order across the ring's wrap; slots it
 * should never write (a port, an odd size) are skipped, not dispatched. */
static void test_replay_coalesced_writes(void **state)
{
	struct iobus bus;
	struct fake_device d = { 0 };

	(void)state;
	iobus_init(&bus, "test");
	assert_int_equal(iobus_register(&bus, 0xFEB00000, 0x20000, &fake_ops, &d), 0);
	memset(&fake, 0, sizeof(fake));
	fake.ring.first = fake.ring.last = 2;
	queue_write(0xFEB02818, 4, 7, 0);  /* slot 2 */
	queue_write(0xFEB02818, 4, 9, 1);  /* slot 3: a port write */
	queue_write(0xFEB02818, 3, 5, 0);  /* slot 0: no such access size */
	assert_int_equal(iobus_replay_coalesced(&bus, &fake.ring, RING_SLOTS), 3);
	assert_int_equal(d.writes, 1);
	assert_int_equal(d.last_offset, 0x2818);
	assert_int_equal(d.last_value, 7);
	assert_int_equal(fake.ring.first, 1);
	queue_write(0xFEB000D8, 4, 0xFFFFFFFF, 0);  /* slot 1 */
	queue_write(0xFEB02818, 2, 11, 0);          /* slot 2 */
	assert_int_equal(iobus_replay_coalesced(&bus, &fake.ring, RING_SLOTS), 2);
	assert_int_equal(d.writes, 3);
	assert_int_equal(d.last_value, 11);
	assert_int_equal(d.last_size, 2);
	assert_int_equal(iobus_replay_coalesced(&bus, &fake.ring, RING_SLOTS), 0);
	/* An index outside the ring stops the replay instead of reading past it. */
	fake.ring.first = RING_SLOTS;
	assert_int_equal(iobus_replay_coalesced(&bus, &fake.ring, RING_SLOTS), 0);
	iobus_destroy(&bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch_by_range),
		cmocka_unit_test(test_unclaimed_reads_all_ones),
		cmocka_unit_test(test_rejects_overlap),
		cmocka_unit_test(test_many_ranges_stay_sorted),
		cmocka_unit_test(test_replay_coalesced_writes),
		cmocka_unit_test(test_guest_mem_bounds),
		cmocka_unit_test(test_guest_mem_high_region),
	};

	return cmocka_run_group_tests_name("iobus", tests, NULL, NULL);
}
