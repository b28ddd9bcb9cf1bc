/* The Linux x86 boot protocol for bzImage kernels: setup-header checks, the
 * zero page, e820 map, command line and initrd placement, and the long-mode
 * CPU state the 64-bit entry point expects. Pure functions over guest memory. */
#ifndef KVIO_CORE_BOOT_X86_H
#define KVIO_CORE_BOOT_X86_H

#include <asm/bootparam.h>
#include <asm/e820.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#include "util/guest_mem.h"

/* Fixed guest-physical addresses below 1 MiB used while booting. */
#define BOOT_GDT_ADDR 0x500
#define BOOT_ZERO_PAGE_ADDR 0x7000
#define BOOT_PML4_ADDR 0x9000    /* PML4, PDPT, then 4 page directories: 0x9000-0xEFFF */
#define BOOT_CMDLINE_ADDR 0x20000
#define BOOT_CMDLINE_MAX 0x10000
#define BOOT_EBDA_START 0x9FC00
#define BOOT_BIOS_START 0xE0000  /* ACPI tables live here; the RSDP must be in it */
#define BOOT_RESET_VECTOR 0xFFFF0
#define BOOT_KERNEL_ADDR 0x100000

#define BOOT_MIN_PROTOCOL 0x020C  /* 2.12: xloadflags tells us the 64-bit entry exists */

struct bzimage_info {
	uint16_t version;
	size_t setup_size;     /* bytes of real-mode setup code preceding the kernel */
	size_t header_end;     /* end of the setup header inside the image */
	uint64_t load_end;     /* guest address the kernel may use up to while decompressing */
};

struct boot_x86_result {
	uint64_t entry;        /* 64-bit entry point */
	uint64_t zero_page;
	uint64_t initrd_addr;
	uint64_t initrd_size;
};

/* Enough of the file's start to hold the boot sector and the whole setup header. */
#define BZIMAGE_HEADER_BYTES 1024

/* Validate a bzImage from its first image_len bytes (at least
 * BZIMAGE_HEADER_BYTES) and its size. Returns 0, or -1 with *why set to a
 * static message. */
int bzimage_parse(const uint8_t *image, size_t image_len, uint64_t size, struct bzimage_info *info,
		  const char **why);

/* Build the e820 map for mem; returns the number of entries written (at most max). */
unsigned int boot_x86_e820(const struct guest_mem *mem, struct boot_e820_entry *table, unsigned int max);

/* Which input a failed load is the fault of, for the error message. */
enum boot_x86_status {
	BOOT_X86_OK,
	BOOT_X86_BAD_KERNEL,
	BOOT_X86_BAD_INITRD,
	BOOT_X86_BAD_CMDLINE,
	BOOT_X86_RAM_TOO_SMALL,
};

/* Read the kernel (and the initrd, unless initrd_fd is -1) from their files
 * into guest memory, place the command line, write the zero page, GDT and
 * identity page tables. acpi_rsdp is passed to the kernel (0: none). */
enum boot_x86_status boot_x86_load(const struct guest_mem *mem, int kernel_fd, int initrd_fd, const char *cmdline,
		  uint64_t acpi_rsdp, struct boot_x86_result *out, const char **why);

/* Registers for the boot vCPU: long mode, flat segments from the GDT that
 * boot_x86_load wrote, RSI pointing at the zero page. */
void boot_x86_init_regs(const struct boot_x86_result *boot, struct kvm_regs *regs, struct kvm_sregs *sregs);

#endif
