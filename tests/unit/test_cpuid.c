/* Per-vCPU CPUID topology rewriting. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "core/cpuid.h"

static struct kvm_cpuid2 *make_cpuid(void)
{
	static const struct kvm_cpuid_entry2 entries[] = {
		{ .function = 1, .ebx = 0x00000800, .ecx = 0, .edx = 1U << 28 },
		{ .function = 4, .index = 0, .eax = 0x121 },  /* L1 data cache */
		{ .function = 4, .index = 3, .eax = 0 },      /* no more caches */
		{ .function = 0xB, .index = 0 },
		{ .function = 0xB, .index = 1 },
		{ .function = 0xB, .index = 2 },
		{ .function = 0x80000008, .ecx = 0x7 },
		{ .function = 0x8000001E },
	};
	size_t n = sizeof(entries) / sizeof(entries[0]);
	struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + n * sizeof(entries[0]));

	cpuid->nent = (uint32_t)n;
	memcpy(cpuid->entries, entries, sizeof(entries));
	return cpuid;
}

static struct kvm_cpuid_entry2 *entry(struct kvm_cpuid2 *cpuid, uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < cpuid->nent; i++)
		if (cpuid->entries[i].function == function && cpuid->entries[i].index == index)
			return &cpuid->entries[i];
	fail();
	return NULL;
}

static void test_topology_for_third_of_four(void **state)
{
	struct kvm_cpuid2 *cpuid = make_cpuid();

	(void)state;
	cpuid_patch(cpuid, 2, 4, true);
	assert_int_equal(entry(cpuid, 1, 0)->ebx >> 24, 2);             /* APIC ID */
	assert_int_equal((entry(cpuid, 1, 0)->ebx >> 16) & 0xFF, 4);    /* logical CPUs */
	assert_int_equal(entry(cpuid, 1, 0)->ebx & 0xFFFF, 0x0800);     /* CLFLUSH size kept */
	assert_true(entry(cpuid, 1, 0)->ecx & (1U << 24));              /* TSC deadline */
	assert_true(entry(cpuid, 1, 0)->ecx & (1U << 31));              /* hypervisor */
	assert_int_equal(entry(cpuid, 4, 0)->eax >> 26, 3);
	assert_int_equal(entry(cpuid, 4, 3)->eax, 0);
	assert_int_equal(entry(cpuid, 0xB, 0)->ebx, 1);                 /* one thread per core */
	assert_int_equal(entry(cpuid, 0xB, 1)->ebx, 4);                 /* four cores */
	assert_int_equal(entry(cpuid, 0xB, 1)->eax, 2);                 /* APIC ID shift */
	assert_int_equal(entry(cpuid, 0xB, 1)->edx, 2);
	assert_int_equal((entry(cpuid, 0xB, 2)->ecx >> 8) & 0xFF, 0);   /* no third level */
	assert_int_equal(entry(cpuid, 0x80000008, 0)->ecx & 0xFF, 3);
	assert_int_equal(entry(cpuid, 0x8000001E, 0)->eax, 2);
	free(cpuid);
}

static void test_single_cpu_has_no_htt(void **state)
{
	struct kvm_cpuid2 *cpuid = make_cpuid();

	(void)state;
	cpuid_patch(cpuid, 0, 1, false);
	assert_int_equal(entry(cpuid, 1, 0)->edx & (1U << 28), 0);
	assert_int_equal(entry(cpuid, 1, 0)->ecx & (1U << 24), 0);
	assert_int_equal(entry(cpuid, 0xB, 1)->ebx, 1);
	assert_int_equal(entry(cpuid, 0xB, 1)->eax, 0);
	free(cpuid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topology_for_third_of_four),
		cmocka_unit_test(test_single_cpu_has_no_htt),
	};

	return cmocka_run_group_tests_name("cpuid", tests, NULL, NULL);
}
