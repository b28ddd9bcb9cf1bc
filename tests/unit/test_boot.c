/* The boot-parameter builder: setup-header checks, zero page, e820 map,
 * command line and initrd placement, page tables and entry registers. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/boot_x86.h"

#define RAM_SIZE (64ULL << 20)
#define IMAGE_SIZE (64 * 1024)
#define SETUP_SIZE (5 * 512)
#define KERNEL_MARKER 0x5A

static struct guest_mem mem;
static uint8_t *image;

static struct setup_header *hdr_of(uint8_t *img)
{
	return (struct setup_header *)(img + 0x1F1);
}

/* A bzImage as far as the boot protocol can tell: header fields of a 2.15 kernel. */
static void make_image(void)
{
	struct setup_header *h;

	memset(image, 0, IMAGE_SIZE);
	image[0x1FE] = 0x55;
	image[0x1FF] = 0xAA;
	image[0x200] = 0xEB;
	image[0x201] = 0x66;  /* header ends at 0x268 */
	memcpy(image + 0x202, "HdrS", 4);
	h = hdr_of(image);
	h->setup_sects = 4;
	h->version = 0x020F;
	h->loadflags = LOADED_HIGH;
	h->xloadflags = XLF_KERNEL_64;
	h->syssize = (IMAGE_SIZE - SETUP_SIZE) / 16;
	h->cmdline_size = 2047;
	h->initrd_addr_max = 0x7FFFFFFF;
	h->pref_address = 0x1000000;
	h->init_size = 0x800000;
	h->kernel_alignment = 0x200000;
	image[SETUP_SIZE] = KERNEL_MARKER;
}

static int setup(void **state)
{
	void *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	(void)state;
	if (ram == MAP_FAILED)
		return -1;
	guest_mem_layout(&mem, ram, RAM_SIZE, -1);
	image = malloc(IMAGE_SIZE);
	make_image();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	munmap(mem.base, RAM_SIZE);
	free(image);
	return 0;
}

static int reset_image(void **state)
{
	(void)state;
	make_image();
	return 0;
}

/* The loader reads files: hand it the bytes as a memfd. */
static int file_of(const void *data, size_t len)
{
	int fd = memfd_create("test-file", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	return fd;
}

/* boot_x86_load on in-memory kernel and initrd images (initrd NULL: none). */
static enum boot_x86_status load(size_t kernel_size, const void *initrd, size_t initrd_size, const char *cmdline, uint64_t rsdp,
		struct boot_x86_result *boot, const char **why)
{
	int kernel_fd = file_of(image, kernel_size), initrd_fd = initrd ? file_of(initrd, initrd_size) : -1;
	enum boot_x86_status ret = boot_x86_load(&mem, kernel_fd, initrd_fd, cmdline, rsdp, boot, why);

	close(kernel_fd);
	if (initrd_fd >= 0)
		close(initrd_fd);
	return ret;
}

static void *gpa(uint64_t addr, uint64_t len)
{
	void *p = NULL;

	assert_int_equal(guest_mem_translate(&mem, addr, len, &p), 0);
	return p;
}

static void test_load_fills_zero_page(void **state)
{
	static const uint8_t initrd[8192] = { [0] = 0xAB, [8191] = 0xCD };
	struct boot_x86_result boot;
	struct boot_params *zp;
	const char *why = NULL;

	(void)state;
	assert_int_equal(load(IMAGE_SIZE, initrd, sizeof(initrd), "console=ttyS0 quiet", 0xE0000, &boot, &why), 0);
	zp = gpa(BOOT_ZERO_PAGE_ADDR, sizeof(*zp));
	assert_int_equal(boot.zero_page, BOOT_ZERO_PAGE_ADDR);
	assert_int_equal(boot.entry, BOOT_KERNEL_ADDR + 0x200);
	assert_memory_equal(&zp->hdr.header, "HdrS", 4);
	assert_int_equal(zp->hdr.type_of_loader, 0xFF);
	assert_true(zp->hdr.loadflags & CAN_USE_HEAP);
	assert_true(zp->hdr.loadflags & LOADED_HIGH);
	assert_int_equal(zp->hdr.vid_mode, 0xFFFF);
	assert_int_equal(zp->acpi_rsdp_addr, 0xE0000);

	/* Command line, NUL-terminated, where cmd_line_ptr says. */
	assert_int_equal(zp->hdr.cmd_line_ptr, BOOT_CMDLINE_ADDR);
	assert_string_equal((char *)gpa(BOOT_CMDLINE_ADDR, 20), "console=ttyS0 quiet");

	/* A real-mode jump to the reset vector ends in an i8042 reset: out 0x64, 0xFE. */
	assert_memory_equal(gpa(BOOT_RESET_VECTOR, 4), "\xB0\xFE\xE6\x64", 4);

	/* Protected-mode code copied to 1 MiB, setup code left behind. */
	assert_int_equal(*(uint8_t *)gpa(BOOT_KERNEL_ADDR, 1), KERNEL_MARKER);

	/* initrd: page-aligned, at the top of RAM, past the kernel's decompression area. */
	assert_int_equal(zp->hdr.ramdisk_size, sizeof(initrd));
	assert_int_equal(zp->hdr.ramdisk_image % 4096, 0);
	assert_true(zp->hdr.ramdisk_image + sizeof(initrd) <= RAM_SIZE);
	assert_true(zp->hdr.ramdisk_image + sizeof(initrd) > RAM_SIZE - 4096);
	assert_true(zp->hdr.ramdisk_image >= 0x1000000 + 0x800000);
	assert_int_equal(*(uint8_t *)gpa(zp->hdr.ramdisk_image, 1), 0xAB);
	assert_int_equal(*(uint8_t *)gpa(zp->hdr.ramdisk_image + 8191, 1), 0xCD);
}

static void test_e820_matches_ram(void **state)
{
	struct boot_x86_result boot;
	struct boot_params *zp;
	const char *why;
	uint64_t ram = 0;

	(void)state;
	assert_int_equal(load(IMAGE_SIZE, NULL, 0, "", 0, &boot, &why), 0);
	zp = gpa(BOOT_ZERO_PAGE_ADDR, sizeof(*zp));
	assert_int_equal(zp->e820_entries, 4);
	for (unsigned int i = 0; i < zp->e820_entries; i++) {
		const struct boot_e820_entry *e = &zp->e820_table[i];

		if (e->type == E820_RAM)
			ram += e->size;
		if (i > 0)  /* sorted, never overlapping */
			assert_true(zp->e820_table[i - 1].addr + zp->e820_table[i - 1].size <= e->addr);
	}
	/* Everything but the EBDA and the BIOS area (ACPI tables) is usable RAM. */
	assert_int_equal(ram, RAM_SIZE - (BOOT_KERNEL_ADDR - BOOT_EBDA_START));
	assert_int_equal(zp->e820_table[3].addr + zp->e820_table[3].size, RAM_SIZE);
	assert_int_equal(zp->hdr.ramdisk_image, 0);
}

static void test_e820_skips_pci_hole(void **state)
{
	struct guest_mem big;
	struct boot_e820_entry table[8];
	unsigned int n;

	(void)state;
	guest_mem_layout(&big, NULL, 5ULL << 30, -1);
	n = boot_x86_e820(&big, table, 8);
	assert_int_equal(n, 5);
	assert_int_equal(table[3].addr + table[3].size, GUEST_PCI_HOLE_START);
	assert_int_equal(table[4].addr, GUEST_HIGH_RAM_START);
	assert_int_equal(table[4].size, (5ULL << 30) - GUEST_PCI_HOLE_START);
	assert_int_equal(table[4].type, E820_RAM);
}

static void test_page_tables_and_registers(void **state)
{
	struct boot_x86_result boot;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	const char *why;
	uint64_t *pml4, *pd;

	(void)state;
	assert_int_equal(load(IMAGE_SIZE, NULL, 0, "", 0, &boot, &why), 0);
	pml4 = gpa(BOOT_PML4_ADDR, 4096);
	assert_int_equal(pml4[0] & 1, 1);
	/* The identity map covers the first 4 GiB with 2 MiB pages: check the last one. */
	pd = gpa(BOOT_PML4_ADDR + 0x2000 + 3 * 0x1000, 4096);
	assert_int_equal(pd[511] & ~0xFFFULL, (4ULL << 30) - (2ULL << 20));
	assert_int_equal(pd[511] & 0x81, 0x81);

	memset(&sregs, 0, sizeof(sregs));
	boot_x86_init_regs(&boot, &regs, &sregs);
	assert_int_equal(regs.rip, BOOT_KERNEL_ADDR + 0x200);
	assert_int_equal(regs.rsi, BOOT_ZERO_PAGE_ADDR);
	assert_int_equal(sregs.cs.l, 1);
	assert_int_equal(sregs.cs.selector, 8);
	assert_int_equal(sregs.ds.selector, 16);
	assert_int_equal(sregs.cr3, BOOT_PML4_ADDR);
	assert_true(sregs.efer & (1 << 10));  /* LMA */
	assert_true(sregs.cr0 & 0x80000001);
	assert_int_equal(sregs.cr0 & 0x60000000, 0);  /* caches on */
}

static void expect_rejected(size_t size, const char *reason)
{
	struct bzimage_info info;
	const char *why = NULL;

	assert_int_equal(bzimage_parse(image, size < BZIMAGE_HEADER_BYTES ? size : BZIMAGE_HEADER_BYTES, size, &info,
				       &why), -1);
	assert_non_null(why);
	assert_non_null(strstr(why, reason));
}

static void test_rejects_truncated(void **state)
{
	(void)state;
	expect_rejected(IMAGE_SIZE - 16, "truncated");
	expect_rejected(SETUP_SIZE, "truncated");
	expect_rejected(0x210, "too small");
}

static void test_rejects_non_bzimage(void **state)
{
	(void)state;
	memset(image, 0x7F, IMAGE_SIZE);
	memcpy(image, "\x7F" "ELF", 4);
	expect_rejected(IMAGE_SIZE, "not a Linux bzImage");
}

static void test_rejects_zimage(void **state)
{
	(void)state;
	hdr_of(image)->loadflags = 0;
	expect_rejected(IMAGE_SIZE, "zImage");
}

static void test_rejects_old_protocol(void **state)
{
	(void)state;
	hdr_of(image)->version = 0x0206;
	expect_rejected(IMAGE_SIZE, "too old");
}

static void test_rejects_32bit_only(void **state)
{
	(void)state;
	hdr_of(image)->xloadflags = 0;
	expect_rejected(IMAGE_SIZE, "64-bit");
}

static void test_rejects_long_cmdline(void **state)
{
	struct boot_x86_result boot;
	const char *why = NULL;

	(void)state;
	hdr_of(image)->cmdline_size = 8;
	assert_int_equal(load(IMAGE_SIZE, NULL, 0, "console=ttyS0", 0, &boot, &why), BOOT_X86_BAD_CMDLINE);
	assert_non_null(strstr(why, "command line"));
}

static void test_rejects_initrd_too_big(void **state)
{
	struct boot_x86_result boot;
	const char *why = NULL;
	size_t size = RAM_SIZE - 0x1000000;  /* would overlap the decompression area */
	uint8_t *big = calloc(1, size);

	(void)state;
	assert_int_equal(load(IMAGE_SIZE, big, size, "", 0, &boot, &why), BOOT_X86_BAD_INITRD);
	assert_non_null(strstr(why, "initrd"));
	free(big);
}

static void test_rejects_ram_too_small(void **state)
{
	struct boot_x86_result boot;
	const char *why = NULL;

	(void)state;
	hdr_of(image)->init_size = (uint32_t)RAM_SIZE;
	assert_int_equal(load(IMAGE_SIZE, NULL, 0, "", 0, &boot, &why), BOOT_X86_RAM_TOO_SMALL);
	assert_non_null(strstr(why, "RAM"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_load_fills_zero_page, reset_image),
		cmocka_unit_test_setup(test_e820_matches_ram, reset_image),
		cmocka_unit_test(test_e820_skips_pci_hole),
		cmocka_unit_test_setup(test_page_tables_and_registers, reset_image),
		cmocka_unit_test_setup(test_rejects_truncated, reset_image),
		cmocka_unit_test_setup(test_rejects_non_bzimage, reset_image),
		cmocka_unit_test_setup(test_rejects_zimage, reset_image),
		cmocka_unit_test_setup(test_rejects_old_protocol, reset_image),
		cmocka_unit_test_setup(test_rejects_32bit_only, reset_image),
		cmocka_unit_test_setup(test_rejects_long_cmdline, reset_image),
		cmocka_unit_test_setup(test_rejects_initrd_too_big, reset_image),
		cmocka_unit_test_setup(test_rejects_ram_too_small, reset_image),
	};

	return cmocka_run_group_tests_name("boot_x86", tests, setup, teardown);
}
