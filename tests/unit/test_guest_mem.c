/* Guest RAM as guest_mem_create lays it out (src/util/guest_mem.c): 2 MiB
 * aligned, anonymous or in a memfd, so that KVM can back guest huge pages
 * with host ones; and translation refusing ranges past the end of RAM. */
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "util/guest_mem.h"

#define RAM_SIZE ((uint64_t)34 << 20)  /* any multiple of 2 MiB */

static void check_layout(bool shareable)
{
	struct guest_mem mem;
	void *host;

	assert_int_equal(guest_mem_create(&mem, RAM_SIZE, shareable), 0);
	assert_int_equal((uintptr_t)mem.base % (2u << 20), 0);
	assert_int_equal(mem.fd >= 0, shareable);
	/* Every byte is there and writable. */
	memset(mem.base, 0xa5, RAM_SIZE);
	assert_int_equal(guest_mem_translate(&mem, RAM_SIZE - 1, 1, &host), 0);
	assert_ptr_equal(host, mem.base + RAM_SIZE - 1);
	assert_int_equal(*(uint8_t *)host, 0xa5);
	assert_int_equal(guest_mem_translate(&mem, RAM_SIZE - 1, 2, &host), -EFAULT);
	assert_int_equal(guest_mem_translate(&mem, UINT64_MAX, 1, &host), -EFAULT);
	guest_mem_destroy(&mem);
}

static void test_anonymous_ram_is_2mib_aligned(void **state)
{
	(void)state;
	check_layout(false);
}

static void test_memfd_ram_is_2mib_aligned(void **state)
{
	(void)state;
	check_layout(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_anonymous_ram_is_2mib_aligned),
		cmocka_unit_test(test_memfd_ram_is_2mib_aligned),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
