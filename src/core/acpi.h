/* ACPI tables for the guest: RSDP, XSDT, a hardware-reduced FADT, a DSDT with
 * COM1, the PS/2 keyboard, the PCI root bridge and \_S5 for poweroff, and a
 * MADT listing the CPUs. */
#ifndef KVIO_CORE_ACPI_H
#define KVIO_CORE_ACPI_H

#include <stddef.h>
#include <stdint.h>

#include "util/guest_mem.h"

#define ACPI_TABLES_ADDR 0xE0000   /* the legacy RSDP search area */
#define ACPI_TABLES_MAX 0x10000
#define IOAPIC_ADDR 0xFEC00000U
#define LAPIC_ADDR 0xFEE00000U
/* The 32-bit PCI MMIO window the DSDT hands to the guest's PCI core. */
#define PCI_MMIO32_START GUEST_PCI_HOLE_START
#define PCI_MMIO32_END 0xFEBFFFFFULL
/* Where kvio puts I/O BARs, inside the DSDT's port window: above the legacy
 * ISA range, where SeaBIOS puts them too. */
#define PCI_IO_START 0xC000

/* Write the tables into guest memory; returns 0 and the RSDP's address. */
int acpi_build_tables(const struct guest_mem *mem, unsigned int nr_cpus, uint64_t *rsdp_addr);

/* Exposed for tests: the DSDT's AML body (without the table header). */
size_t acpi_build_dsdt_aml(uint8_t *buf, size_t size);

#endif
