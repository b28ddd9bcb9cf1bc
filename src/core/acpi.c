/* ACPI tables (ACPI 6.x). Hardware-reduced ACPI is the small way to give a
 * Linux guest a power-off path: no PM1 blocks, no SCI handler, just a sleep
 * control register. The MADT is also how the guest finds its CPUs and IOAPIC,
 * the DSDT's PCI root bridge is how it finds bus 0, and the DSDT's COM1 and
 * PS/2 keyboard devices are how it finds their ports and ISA interrupts. */
#include "core/acpi.h"

#include <stdbool.h>
#include <string.h>

#include "hw/acpi_pm.h"
#include "hw/i8042.h"
#include "hw/pci.h"
#include "hw/serial8250.h"

#define ACPI_OEM_ID "KVIO  "
#define ACPI_OEM_TABLE_ID "KVIOVM  "
#define ACPI_CREATOR_ID "KVIO"

struct __attribute__((packed)) acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
};

struct __attribute__((packed)) acpi_rsdp {
	char signature[8];
	uint8_t checksum;
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum;
	uint8_t reserved[3];
};

/* Generic Address Structure. */
struct __attribute__((packed)) acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
};

#define ACPI_GAS_SYSTEM_IO 1
#define ACPI_GAS_ACCESS_BYTE 1

struct __attribute__((packed)) acpi_fadt {
	struct acpi_header header;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_interrupt;
	uint32_t smi_command;
	uint8_t legacy_blocks[57];        /* ACPI_ENABLE .. CENTURY: unused when hardware-reduced */
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_register;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_revision;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_legacy_blocks[8]; /* X_PM1a_EVT_BLK .. X_GPE1_BLK */
	struct acpi_gas sleep_control;
	struct acpi_gas sleep_status;
	uint64_t hypervisor_id;
};

_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT revision 6 is 276 bytes");
_Static_assert(__builtin_offsetof(struct acpi_fadt, flags) == 112, "FADT flags offset");
_Static_assert(__builtin_offsetof(struct acpi_fadt, sleep_control) == 244, "FADT sleep control offset");

#define FADT_PWR_BUTTON (1U << 4)      /* no fixed-feature power button */
#define FADT_SLP_BUTTON (1U << 5)      /* no fixed-feature sleep button */
#define FADT_HW_REDUCED_ACPI (1U << 20)
#define FADT_BOOT_8042 (1U << 1)        /* an i8042 exists: Linux probes it even if PNP finds no device */
#define FADT_BOOT_NO_VGA (1U << 2)
#define FADT_BOOT_NO_CMOS_RTC (1U << 5) /* wall-clock time comes from kvm-clock */

struct __attribute__((packed)) acpi_madt {
	struct acpi_header header;
	uint32_t lapic_address;
	uint32_t flags;
};

struct __attribute__((packed)) madt_lapic {
	uint8_t type, length, processor_id, apic_id;
	uint32_t flags;
};

struct __attribute__((packed)) madt_ioapic {
	uint8_t type, length, ioapic_id, reserved;
	uint32_t address;
	uint32_t gsi_base;
};

#define MADT_TYPE_LAPIC 0
#define MADT_TYPE_IOAPIC 1
#define MADT_LAPIC_ENABLED 1

static uint8_t checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

static void fill_header(struct acpi_header *h, const char *signature, uint32_t length, uint8_t revision)
{
	memcpy(h->signature, signature, 4);
	h->length = length;
	h->revision = revision;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = 1;
}

/* A minimal AML writer: just the constructs the DSDT needs. Package-like
 * terms are opened, filled, then closed, which inserts their PkgLength. */
struct aml {
	uint8_t *buf;
	size_t size, len;
	bool overflow;
};

static void aml_bytes(struct aml *a, const void *data, size_t n)
{
	if (a->overflow || n > a->size - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->buf + a->len, data, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void aml_le(struct aml *a, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		aml_byte(a, (uint8_t)(v >> (8 * i)));
}

static size_t aml_open(struct aml *a, const uint8_t *op, size_t oplen)
{
	aml_bytes(a, op, oplen);
	return a->len;
}

static void aml_close(struct aml *a, size_t start)
{
	size_t body = a->len - start, total;
	uint8_t enc[4];
	unsigned int n;

	if (a->overflow)
		return;
	/* PkgLength counts itself: 1 byte up to 63, else a lead byte plus 1-3 more. */
	if (body + 1 < 0x40) {
		n = 1;
		enc[0] = (uint8_t)(body + 1);
	} else {
		n = body + 2 < 0x1000 ? 2 : body + 3 < 0x100000 ? 3 : 4;
		total = body + n;
		enc[0] = (uint8_t)(((n - 1) << 6) | (total & 0xF));
		for (unsigned int i = 1; i < n; i++)
			enc[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	if (n > a->size - a->len) {
		a->overflow = true;
		return;
	}
	memmove(a->buf + start + n, a->buf + start, body);
	memcpy(a->buf + start, enc, n);
	a->len += n;
}

#define AML_ZERO 0x00
#define AML_NAME 0x08
#define AML_BYTE_PREFIX 0x0A
#define AML_DWORD_PREFIX 0x0C
#define AML_SCOPE 0x10
#define AML_BUFFER 0x11
#define AML_PACKAGE 0x12

static void aml_name(struct aml *a, const char *name)
{
	aml_byte(a, AML_NAME);
	aml_bytes(a, name, 4);
}

/* Word Address Space Descriptor (ACPI 6.4.3.5.3) for a bus-number or I/O range. */
static void aml_word_range(struct aml *a, uint8_t resource_type, uint16_t min, uint16_t max)
{
	static const uint8_t head[] = { 0x88, 0x0D, 0x00 };

	aml_bytes(a, head, sizeof(head));
	aml_byte(a, resource_type);
	aml_byte(a, 0x0C);  /* producer, min and max fixed */
	aml_byte(a, resource_type == 1 ? 0x03 : 0x00);  /* I/O: entire ISA range */
	aml_le(a, 0, 2);    /* granularity */
	aml_le(a, min, 2);
	aml_le(a, max, 2);
	aml_le(a, 0, 2);    /* translation */
	aml_le(a, (uint32_t)max - min + 1, 2);
}

/* DWord Address Space Descriptor for a 32-bit memory window. */
static void aml_dword_memory(struct aml *a, uint32_t min, uint32_t max)
{
	static const uint8_t head[] = { 0x87, 0x17, 0x00, 0x00 /* memory */, 0x0C, 0x01 /* read-write, uncached */ };

	aml_bytes(a, head, sizeof(head));
	aml_le(a, 0, 4);
	aml_le(a, min, 4);
	aml_le(a, max, 4);
	aml_le(a, 0, 4);
	aml_le(a, (uint64_t)max - min + 1, 4);
}

/* _PRT: where each slot's INTA-INTD land, as GSIs on the IOAPIC (the
 * source is Zero), so a driver without MSI-X still gets its interrupt. */
static void aml_prt(struct aml *a)
{
	static const uint8_t package_op[] = { AML_PACKAGE };
	size_t table, entry;

	aml_name(a, "_PRT");
	table = aml_open(a, package_op, sizeof(package_op));
	aml_byte(a, PCI_SLOTS * 4);
	for (unsigned int slot = 0; slot < PCI_SLOTS; slot++) {
		for (unsigned int pin = 1; pin <= 4; pin++) {
			entry = aml_open(a, package_op, sizeof(package_op));
			aml_byte(a, 4);
			aml_byte(a, AML_DWORD_PREFIX);
			aml_le(a, (uint64_t)slot << 16 | 0xFFFF, 4);  /* any function of the slot */
			aml_byte(a, AML_BYTE_PREFIX);
			aml_byte(a, (uint8_t)(pin - 1));             /* _PRT counts INTA as 0 */
			aml_byte(a, AML_ZERO);
			aml_byte(a, AML_BYTE_PREFIX);
			aml_byte(a, (uint8_t)pci_intx_gsi(slot, pin));
			aml_close(a, entry);
		}
	}
	aml_close(a, table);
}

/* Device(NAME) { _HID (an EISA id), _UID 0, _CRS (a resource template ending in its end tag) } */
static void aml_isa_device(struct aml *a, const char name[4], uint32_t eisa_id, const uint8_t *resources, size_t len)
{
	static const uint8_t device_op[] = { 0x5B, 0x82 }, buffer_op[] = { AML_BUFFER };
	size_t device, crs;

	device = aml_open(a, device_op, sizeof(device_op));
	aml_bytes(a, name, 4);
	aml_name(a, "_HID");
	aml_byte(a, AML_DWORD_PREFIX);
	aml_le(a, eisa_id, 4);
	aml_name(a, "_UID");
	aml_byte(a, AML_ZERO);
	aml_name(a, "_CRS");
	crs = aml_open(a, buffer_op, sizeof(buffer_op));
	aml_byte(a, AML_BYTE_PREFIX);
	aml_byte(a, (uint8_t)len);
	aml_bytes(a, resources, len);
	aml_close(a, crs);
	aml_close(a, device);
}

size_t acpi_build_dsdt_aml(uint8_t *buf, size_t size)
{
	static const uint8_t scope_op[] = { AML_SCOPE }, device_op[] = { 0x5B, 0x82 };
	static const uint8_t buffer_op[] = { AML_BUFFER }, package_op[] = { AML_PACKAGE };
	static const uint8_t config_ports[] = { 0x47, 0x01, 0xF8, 0x0C, 0xF8, 0x0C, 0x01, 0x08 };
	static const uint8_t end_tag[] = { 0x79, 0x00 };
	static const uint8_t com1_resources[] = {
		0x47, 0x01, SERIAL_COM1_BASE & 0xFF, SERIAL_COM1_BASE >> 8,  /* IO(Decode16, 0x3F8, 0x3F8, */
		SERIAL_COM1_BASE & 0xFF, SERIAL_COM1_BASE >> 8, 0x01, SERIAL_NR_PORTS, /* 1, 8) */
		0x22, 1 << SERIAL_COM1_IRQ, 0x00,  /* IRQNoFlags() { 4 }: edge, active high */
		0x79, 0x00,
	};
	static const uint8_t kbd_resources[] = {
		0x47, 0x01, I8042_DATA_PORT, 0x00, I8042_DATA_PORT, 0x00, 0x01, 0x01,       /* IO(Decode16, 0x60, 0x60, 1, 1) */
		0x47, 0x01, I8042_COMMAND_PORT, 0x00, I8042_COMMAND_PORT, 0x00, 0x01, 0x01, /* IO(Decode16, 0x64, 0x64, 1, 1) */
		0x22, 1 << I8042_KBD_IRQ, 0x00,  /* IRQNoFlags() { 1 } */
		0x79, 0x00,
	};
	struct aml a = { .buf = buf, .size = size };
	size_t scope, device, crs, crs_bytes, s5;

	scope = aml_open(&a, scope_op, sizeof(scope_op));
	aml_bytes(&a, "\\_SB_", 5);

	/* Hardware-reduced ACPI has no legacy PIC, so Linux sets up no ISA IRQs
	 * by itself: the UART's and the keyboard's interrupts reach it only through
	 * these _CRS. The keyboard device is also what makes Linux's i8042 driver
	 * probe at all (and, with no PS/2 mouse device beside it, skip the aux port). */
	aml_isa_device(&a, "COM1", 0x0105D041, com1_resources, sizeof(com1_resources));  /* EisaId("PNP0501"): 16550A */
	aml_isa_device(&a, "KBD_", 0x0303D041, kbd_resources, sizeof(kbd_resources));    /* EisaId("PNP0303"): PS/2 keyboard */

	device = aml_open(&a, device_op, sizeof(device_op));
	aml_bytes(&a, "PCI0", 4);
	aml_name(&a, "_HID");
	aml_byte(&a, AML_DWORD_PREFIX);
	aml_le(&a, 0x030AD041, 4);  /* EisaId("PNP0A03"): PCI bus */
	aml_name(&a, "_UID");
	aml_byte(&a, AML_ZERO);
	aml_name(&a, "_CRS");
	crs = aml_open(&a, buffer_op, sizeof(buffer_op));
	aml_byte(&a, 0x0B);  /* WordPrefix: buffer size, patched below */
	crs_bytes = a.len;
	aml_le(&a, 0, 2);
	aml_word_range(&a, 2, 0, 0xFF);  /* bus numbers */
	aml_bytes(&a, config_ports, sizeof(config_ports));
	aml_word_range(&a, 1, 0x0000, PCI_CONFIG_ADDRESS_PORT - 1);
	aml_word_range(&a, 1, PCI_CONFIG_ADDRESS_PORT + 8, 0xFFFF);
	aml_dword_memory(&a, (uint32_t)PCI_MMIO32_START, (uint32_t)PCI_MMIO32_END);
	aml_bytes(&a, end_tag, sizeof(end_tag));
	if (!a.overflow) {
		size_t n = a.len - crs_bytes - 2;

		buf[crs_bytes] = (uint8_t)n;
		buf[crs_bytes + 1] = (uint8_t)(n >> 8);
	}
	aml_close(&a, crs);
	aml_prt(&a);
	aml_close(&a, device);
	aml_close(&a, scope);

	/* \_S5: the sleep type for soft-off, written to the sleep control register. */
	aml_name(&a, "_S5_");
	s5 = aml_open(&a, package_op, sizeof(package_op));
	aml_byte(&a, 4);
	aml_byte(&a, AML_BYTE_PREFIX);
	aml_byte(&a, ACPI_S5_SLEEP_TYPE);
	aml_byte(&a, AML_ZERO);
	aml_byte(&a, AML_ZERO);
	aml_byte(&a, AML_ZERO);
	aml_close(&a, s5);
	return a.overflow ? 0 : a.len;
}

static struct acpi_gas io_port_register(uint16_t port)
{
	return (struct acpi_gas){
		.space_id = ACPI_GAS_SYSTEM_IO, .bit_width = 8, .access_size = ACPI_GAS_ACCESS_BYTE, .address = port,
	};
}

/* Tables are laid out back to back, 16-byte aligned, from ACPI_TABLES_ADDR. */
static size_t place(size_t *off, size_t size)
{
	size_t at = (*off + 15) & ~(size_t)15;

	*off = at + size;
	return at;
}

int acpi_build_tables(const struct guest_mem *mem, unsigned int nr_cpus, uint64_t *rsdp_addr)
{
	const uint64_t base = ACPI_TABLES_ADDR;
	size_t off = 0, rsdp_off, xsdt_off, fadt_off, dsdt_off, madt_off, aml_len, madt_len;
	struct acpi_rsdp *rsdp;
	struct acpi_header *xsdt, *dsdt;
	struct acpi_fadt *fadt;
	struct acpi_madt *madt;
	uint64_t xsdt_entries[2];
	uint8_t *tables;
	void *host;

	if (guest_mem_translate(mem, base, ACPI_TABLES_MAX, &host))
		return -1;
	tables = host;
	memset(tables, 0, ACPI_TABLES_MAX);
	rsdp_off = place(&off, sizeof(struct acpi_rsdp));
	xsdt_off = place(&off, sizeof(struct acpi_header) + sizeof(xsdt_entries));
	fadt_off = place(&off, sizeof(struct acpi_fadt));
	dsdt_off = place(&off, sizeof(struct acpi_header));
	aml_len = acpi_build_dsdt_aml(tables + off, ACPI_TABLES_MAX - off);
	if (!aml_len)
		return -1;
	off += aml_len;
	madt_len = sizeof(struct acpi_madt) + nr_cpus * sizeof(struct madt_lapic) + sizeof(struct madt_ioapic);
	madt_off = place(&off, madt_len);
	if (off > ACPI_TABLES_MAX)
		return -1;

	dsdt = (struct acpi_header *)(tables + dsdt_off);
	fill_header(dsdt, "DSDT", (uint32_t)(sizeof(*dsdt) + aml_len), 2);
	dsdt->checksum = checksum(dsdt, dsdt->length);

	fadt = (struct acpi_fadt *)(tables + fadt_off);
	fill_header(&fadt->header, "FACP", sizeof(*fadt), 6);
	fadt->x_dsdt = base + dsdt_off;
	fadt->flags = FADT_HW_REDUCED_ACPI | FADT_PWR_BUTTON | FADT_SLP_BUTTON;
	fadt->iapc_boot_arch = FADT_BOOT_8042 | FADT_BOOT_NO_VGA | FADT_BOOT_NO_CMOS_RTC;
	fadt->minor_revision = 1;
	fadt->sleep_control = io_port_register(ACPI_PM_PORT + ACPI_PM_SLEEP_CONTROL);
	fadt->sleep_status = io_port_register(ACPI_PM_PORT + ACPI_PM_SLEEP_STATUS);
	memcpy(&fadt->hypervisor_id, "KVIO    ", 8);
	fadt->header.checksum = checksum(fadt, sizeof(*fadt));

	madt = (struct acpi_madt *)(tables + madt_off);
	fill_header(&madt->header, "APIC", (uint32_t)madt_len, 5);
	madt->lapic_address = LAPIC_ADDR;
	for (unsigned int i = 0; i < nr_cpus; i++) {
		struct madt_lapic *lapic = (struct madt_lapic *)(madt + 1) + i;

		*lapic = (struct madt_lapic){ .type = MADT_TYPE_LAPIC, .length = sizeof(*lapic),
					      .processor_id = (uint8_t)i, .apic_id = (uint8_t)i,
					      .flags = MADT_LAPIC_ENABLED };
	}
	*(struct madt_ioapic *)((struct madt_lapic *)(madt + 1) + nr_cpus) = (struct madt_ioapic){
		.type = MADT_TYPE_IOAPIC, .length = sizeof(struct madt_ioapic), .address = IOAPIC_ADDR,
	};
	madt->header.checksum = checksum(madt, madt_len);

	xsdt = (struct acpi_header *)(tables + xsdt_off);
	fill_header(xsdt, "XSDT", sizeof(*xsdt) + sizeof(xsdt_entries), 1);
	xsdt_entries[0] = base + fadt_off;
	xsdt_entries[1] = base + madt_off;
	memcpy(xsdt + 1, xsdt_entries, sizeof(xsdt_entries));
	xsdt->checksum = checksum(xsdt, xsdt->length);

	rsdp = (struct acpi_rsdp *)(tables + rsdp_off);
	memcpy(rsdp->signature, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, ACPI_OEM_ID, 6);
	rsdp->revision = 2;
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt_address = base + xsdt_off;
	rsdp->checksum = checksum(rsdp, 20);  /* the ACPI 1.0 part */
	rsdp->extended_checksum = checksum(rsdp, sizeof(*rsdp));

	*rsdp_addr = base + rsdp_off;
	return 0;
}
