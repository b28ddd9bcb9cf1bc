/* ACPI tables as a guest's ACPICA would walk them, and ACPI sleep control,
 * which ends the VM on poweroff (the i8042's reset line: test_i8042.c). */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/acpi.h"
#include "hw/acpi_pm.h"
#include "hw/pci.h"
#include "hw/i8042.h"

#define RAM_SIZE (2ULL << 20)

static struct guest_mem mem;
static uint8_t *ram;

static int setup(void **state)
{
	(void)state;
	ram = calloc(1, RAM_SIZE);
	guest_mem_layout(&mem, ram, RAM_SIZE, -1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(ram);
	return 0;
}

static uint8_t sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* A table by address, after checking its signature, length and checksum. */
static const uint8_t *table_at(uint64_t addr, const char *signature)
{
	const uint8_t *t = ram + addr;

	assert_true(addr + 36 <= RAM_SIZE);
	assert_memory_equal(t, signature, 4);
	assert_true(addr + le32(t + 4) <= RAM_SIZE);
	assert_int_equal(sum(t, le32(t + 4)), 0);
	return t;
}

static const uint8_t *find_in_xsdt(const uint8_t *xsdt, const char *signature)
{
	for (uint32_t off = 36; off < le32(xsdt + 4); off += 8) {
		const uint8_t *t = ram + le64(xsdt + off);

		if (!memcmp(t, signature, 4))
			return table_at(le64(xsdt + off), signature);
	}
	fail_msg("%s not in XSDT", signature);
	return NULL;
}

static void walk(unsigned int cpus, const uint8_t **fadt, const uint8_t **madt, const uint8_t **dsdt)
{
	uint64_t rsdp_addr;
	const uint8_t *rsdp, *xsdt;

	memset(ram, 0, RAM_SIZE);
	assert_int_equal(acpi_build_tables(&mem, cpus, &rsdp_addr), 0);
	/* Legacy guests find the RSDP by scanning 0xE0000-0xFFFFF on 16-byte boundaries. */
	assert_true(rsdp_addr >= 0xE0000 && rsdp_addr < 0x100000 && rsdp_addr % 16 == 0);
	rsdp = ram + rsdp_addr;
	assert_memory_equal(rsdp, "RSD PTR ", 8);
	assert_int_equal(sum(rsdp, 20), 0);
	assert_int_equal(sum(rsdp, 36), 0);
	assert_int_equal(rsdp[15], 2);
	xsdt = table_at(le64(rsdp + 24), "XSDT");
	*fadt = find_in_xsdt(xsdt, "FACP");
	*madt = find_in_xsdt(xsdt, "APIC");
	*dsdt = table_at(le64(*fadt + 140), "DSDT");
}

static void test_fadt_is_hardware_reduced(void **state)
{
	const uint8_t *fadt, *madt, *dsdt;

	(void)state;
	walk(1, &fadt, &madt, &dsdt);
	assert_int_equal(le32(fadt + 4), 276);
	assert_true(le32(fadt + 112) & (1U << 20));
	/* IAPC_BOOT_ARCH: an 8042 exists; no VGA, no CMOS RTC. */
	assert_int_equal(fadt[109] | fadt[110] << 8, 0x02 | 0x04 | 0x20);
	/* Sleep control register: one byte of system I/O at the ACPI PM port. */
	assert_int_equal(fadt[244], 1);
	assert_int_equal(le64(fadt + 248), ACPI_PM_PORT + ACPI_PM_SLEEP_CONTROL);
	assert_int_equal(le64(fadt + 260), ACPI_PM_PORT + ACPI_PM_SLEEP_STATUS);
}

static void test_madt_lists_every_cpu(void **state)
{
	const uint8_t *fadt, *madt, *dsdt;
	unsigned int lapics = 0, ioapics = 0;

	(void)state;
	walk(5, &fadt, &madt, &dsdt);
	assert_int_equal(le32(madt + 36), LAPIC_ADDR);
	for (uint32_t off = 44; off < le32(madt + 4); off += madt[off + 1]) {
		assert_true(madt[off + 1] >= 2);
		if (madt[off] == 0) {
			assert_int_equal(madt[off + 3], lapics);  /* APIC ID */
			assert_int_equal(le32(madt + off + 4) & 1, 1);
			lapics++;
		} else if (madt[off] == 1) {
			assert_int_equal(le32(madt + off + 4), IOAPIC_ADDR);
			ioapics++;
		}
	}
	assert_int_equal(lapics, 5);
	assert_int_equal(ioapics, 1);
}

static const uint8_t *find_bytes(const uint8_t *hay, size_t len, const void *needle, size_t n)
{
	for (size_t i = 0; i + n <= len; i++)
		if (!memcmp(hay + i, needle, n))
			return hay + i;
	return NULL;
}

static void test_dsdt_has_s5_com1_and_pci_root(void **state)
{
	static const uint8_t s5[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0A, ACPI_S5_SLEEP_TYPE };
	static const uint8_t hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x0A, 0x03 };
	const uint8_t *fadt, *madt, *dsdt, *device;
	uint32_t len;

	(void)state;
	walk(1, &fadt, &madt, &dsdt);
	len = le32(dsdt + 4);
	assert_non_null(find_bytes(dsdt, len, s5, sizeof(s5)));
	assert_non_null(find_bytes(dsdt, len, hid, sizeof(hid)));
	static const uint8_t com1_hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x05, 0x01 };
	static const uint8_t com1_irq[] = { 0x22, 0x10, 0x00 };

	assert_non_null(find_bytes(dsdt, len, com1_hid, sizeof(com1_hid)));
	assert_non_null(find_bytes(dsdt, len, com1_irq, sizeof(com1_irq)));
	device = find_bytes(dsdt, len, "PCI0", 4);
	assert_non_null(device);
	device -= 4;
	assert_memory_equal(device, "\x5B\x82", 2);
	/* Device(PCI0): a two-byte PkgLength that spans to the end of the scope. */
	assert_int_equal(device[2] >> 6, 1);
	assert_memory_equal(device + 4, "PCI0", 4);
	assert_true((size_t)(device + 2 - dsdt) + ((device[2] & 0xF) | device[3] << 4) <= len);
}

/* Device(KBD_) { _HID PNP0303, _UID 0, _CRS { IO 0x60, IO 0x64, IRQNoFlags 1 } }:
 * what Linux's i8042 driver looks up before it touches the ports. */
static void test_dsdt_has_ps2_keyboard(void **state)
{
	static const uint8_t device[] = {
		0x5B, 0x82, 0x33, 'K', 'B', 'D', '_',
		0x08, '_', 'H', 'I', 'D', 0x0C, 0x41, 0xD0, 0x03, 0x03,
		0x08, '_', 'U', 'I', 'D', 0x00,
		0x08, '_', 'C', 'R', 'S', 0x11, 0x18, 0x0A, 0x15,
		0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01,
		0x47, 0x01, 0x64, 0x00, 0x64, 0x00, 0x01, 0x01,
		0x22, 0x02, 0x00,
		0x79, 0x00,
	};
	const uint8_t *fadt, *madt, *dsdt, *found;
	uint32_t len;

	(void)state;
	walk(1, &fadt, &madt, &dsdt);
	len = le32(dsdt + 4);
	found = find_bytes(dsdt, len, device, sizeof(device));
	assert_non_null(found);
	/* The PkgLength covers the device exactly (it counts itself, not the opcode). */
	assert_int_equal(found[2], sizeof(device) - 2);
	/* No PS/2 mouse device: Linux then leaves the aux port alone. */
	assert_null(find_bytes(dsdt, len, "\x41\xD0\x0F\x13", 4));
	assert_int_equal(I8042_DATA_PORT, 0x60);
	assert_int_equal(I8042_COMMAND_PORT, 0x64);
}

static void test_dsdt_routes_every_slot_intx(void **state)
{
	const uint8_t *fadt, *madt, *dsdt, *prt;
	uint32_t len;

	(void)state;
	walk(1, &fadt, &madt, &dsdt);
	len = le32(dsdt + 4);
	prt = find_bytes(dsdt, len, "_PRT", 4);
	assert_non_null(prt);
	prt += 4;
	assert_int_equal(prt[0], 0x12);  /* Package */
	assert_int_equal(prt[1] >> 6, 1); /* 128 entries: two-byte PkgLength */
	assert_int_equal(prt[3], PCI_SLOTS * 4);
	/* Slot 3, INTA: Package(4) { 0x0003FFFF, 0, Zero, GSI } */
	const uint8_t entry[] = { 0x12, 0x0C, 0x04, 0x0C, 0xFF, 0xFF, 0x03, 0x00, 0x0A, 0x00, 0x00,
				  0x0A, (uint8_t)pci_intx_gsi(3, 1) };

	assert_non_null(find_bytes(prt, len - (uint32_t)(prt - dsdt), entry, sizeof(entry)));
	assert_int_equal(pci_intx_gsi(3, 1), 19);
	assert_int_equal(pci_intx_gsi(8, 2), 17);
}

static void test_aml_overflow_is_reported(void **state)
{
	uint8_t small[16];

	(void)state;
	assert_int_equal(acpi_build_dsdt_aml(small, sizeof(small)), 0);
}

static int calls;

static void count_call(void *ctx)
{
	(void)ctx;
	calls++;
}

static void test_sleep_control_powers_off(void **state)
{
	struct acpi_pm pm;

	(void)state;
	calls = 0;
	acpi_pm_init(&pm, count_call, NULL);
	acpi_pm_ops.write(&pm, ACPI_PM_SLEEP_CONTROL, ACPI_S5_SLEEP_TYPE << 2, 1);  /* no SLP_EN */
	acpi_pm_ops.write(&pm, ACPI_PM_SLEEP_CONTROL, (3 << 2) | 0x20, 1);         /* S3: not supported */
	acpi_pm_ops.write(&pm, ACPI_PM_SLEEP_STATUS, 0xFF, 1);
	assert_int_equal(calls, 0);
	assert_int_equal(acpi_pm_ops.read(&pm, ACPI_PM_SLEEP_STATUS, 1), 0);
	/* What Linux writes for S5: SLP_TYP from \_S5 at bits 2-4, SLP_EN at bit 5. */
	acpi_pm_ops.write(&pm, ACPI_PM_SLEEP_CONTROL, 0x34, 1);
	assert_int_equal(calls, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fadt_is_hardware_reduced),
		cmocka_unit_test(test_madt_lists_every_cpu),
		cmocka_unit_test(test_dsdt_has_s5_com1_and_pci_root),
		cmocka_unit_test(test_dsdt_routes_every_slot_intx),
		cmocka_unit_test(test_aml_overflow_is_reported),
		cmocka_unit_test(test_sleep_control_powers_off),
		cmocka_unit_test(test_dsdt_has_ps2_keyboard),
	};

	return cmocka_run_group_tests_name("acpi", tests, setup, teardown);
}
