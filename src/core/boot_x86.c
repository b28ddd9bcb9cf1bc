/* Linux x86 boot protocol for bzImage kernels (Documentation/arch/x86/boot.rst).
 *
 * kvio enters the kernel at its 64-bit entry point (startup_64, 0x200 past the
 * protected-mode code) with identity-mapped page tables already in place. The
 * guest then starts in the mode it will run in: there is no BIOS to serve the
 * real-mode setup code, and the 32-bit entry would only make the decompressor
 * build page tables and switch to long mode itself, costing exits on a nested host. */
#include "core/boot_x86.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SETUP_HEADER_OFFSET 0x1F1
#define BOOT_FLAG_MAGIC 0xAA55
#define HDRS_MAGIC 0x53726448  /* "HdrS" */
#define BOOT_STACK_ADDR 0x8FF0
#define BOOT_LOADER_UNDEFINED 0xFF
#define BOOT_HEAP_END 0xFE00

#define PAGE_PRESENT_RW 0x3ULL
#define PAGE_HUGE 0x80ULL
#define IDENTITY_MAP_GIB 4

#define GDT_CODE64 0xA09B  /* present, ring 0, code, read/exec, long mode, 4K granularity */
#define GDT_DATA 0xC093    /* present, ring 0, data, read/write, 32-bit, 4K granularity */
#define GDT_TSS 0x808B     /* present, busy 64-bit TSS: VMX refuses entry without a usable TR */

enum { GDT_NULL, GDT_CS, GDT_DS, GDT_TR, GDT_ENTRIES };

#define CR0_PE (1ULL << 0)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}

int bzimage_parse(const uint8_t *image, size_t image_len, uint64_t size, struct bzimage_info *info,
		  const char **why)
{
	const struct setup_header *hdr;
	struct setup_header h;
	size_t setup_sects, header_end;

	if (size < BZIMAGE_HEADER_BYTES || image_len < BZIMAGE_HEADER_BYTES) {
		*why = "file too small to be a bzImage";
		return -1;
	}
	if (get16(image + 0x1FE) != BOOT_FLAG_MAGIC || get32(image + 0x202) != HDRS_MAGIC) {
		*why = "not a Linux bzImage (no boot-protocol header)";
		return -1;
	}
	/* The byte after the jump at 0x200 gives the end of the header this kernel
	 * knows; at most 0x301, so inside the bytes checked above. */
	header_end = 0x202 + image[0x201];
	memset(&h, 0, sizeof(h));
	hdr = (const struct setup_header *)(image + SETUP_HEADER_OFFSET);
	memcpy(&h, hdr, header_end - SETUP_HEADER_OFFSET < sizeof(h) ? header_end - SETUP_HEADER_OFFSET : sizeof(h));

	if (h.version < BOOT_MIN_PROTOCOL) {
		*why = "boot protocol too old (kvio needs 2.12 or later)";
		return -1;
	}
	if (!(h.loadflags & LOADED_HIGH)) {
		*why = "not a bzImage (zImage kernels are not supported)";
		return -1;
	}
	if (!(h.xloadflags & XLF_KERNEL_64)) {
		*why = "kernel has no 64-bit entry point";
		return -1;
	}
	setup_sects = h.setup_sects ? h.setup_sects : 4;
	info->setup_size = (setup_sects + 1) * 512;
	if (info->setup_size >= size || (size - info->setup_size) < (uint64_t)h.syssize * 16) {
		*why = "truncated bzImage (kernel shorter than its header says)";
		return -1;
	}
	info->version = h.version;
	info->header_end = header_end;
	/* startup_64 moves itself up to pref_address (LOAD_PHYSICAL_ADDR) if loaded
	 * lower, and needs init_size bytes from there to decompress. */
	info->load_end = (h.pref_address > BOOT_KERNEL_ADDR ? h.pref_address : BOOT_KERNEL_ADDR) + h.init_size;
	return 0;
}

unsigned int boot_x86_e820(const struct guest_mem *mem, struct boot_e820_entry *table, unsigned int max)
{
	struct boot_e820_entry entries[] = {
		{ 0, BOOT_EBDA_START, E820_RAM },
		{ BOOT_EBDA_START, 0xA0000 - BOOT_EBDA_START, E820_RESERVED },
		{ BOOT_BIOS_START, BOOT_KERNEL_ADDR - BOOT_BIOS_START, E820_RESERVED },
		{ BOOT_KERNEL_ADDR, guest_mem_low_end(mem) - BOOT_KERNEL_ADDR, E820_RAM },
	};
	unsigned int n = 0;

	for (unsigned int i = 0; i < sizeof(entries) / sizeof(entries[0]) && n < max; i++)
		table[n++] = entries[i];
	for (unsigned int i = 1; i < mem->nr_regions && n < max; i++)
		table[n++] = (struct boot_e820_entry){ mem->regions[i].gpa, mem->regions[i].size, E820_RAM };
	return n;
}

/* A segment descriptor, in the scattered bit layout the CPU defines. */
#define GDT_ENTRY(flags, base, limit)                                                                  \
	((((uint64_t)(base)&0xFF000000) << 32) | (((uint64_t)(flags)&0xF0FF) << 40) |                  \
	 (((uint64_t)(limit)&0xF0000) << 32) | (((uint64_t)(base)&0x00FFFFFF) << 16) | ((limit)&0xFFFF))

static const uint64_t boot_gdt[GDT_ENTRIES] = {
	[GDT_NULL] = 0,
	[GDT_CS] = GDT_ENTRY(GDT_CODE64, 0, 0xFFFFF),
	[GDT_DS] = GDT_ENTRY(GDT_DATA, 0, 0xFFFFF),
	[GDT_TR] = GDT_ENTRY(GDT_TSS, 0, 0xFFFFF),
};

static struct kvm_segment segment_from_gdt(unsigned int index)
{
	uint64_t e = boot_gdt[index];
	uint32_t limit = (uint32_t)((e & 0xFFFF) | ((e >> 32) & 0xF0000));
	uint8_t g = (e >> 55) & 1;

	return (struct kvm_segment){
		.base = (uint32_t)(((e >> 16) & 0xFFFFFF) | ((e >> 32) & 0xFF000000)),
		.limit = g ? (limit << 12) | 0xFFF : limit,
		.selector = (uint16_t)(index * 8),
		.type = (e >> 40) & 0xF,
		.present = (e >> 47) & 1,
		.dpl = (e >> 45) & 3,
		.db = (e >> 54) & 1,
		.s = (e >> 44) & 1,
		.l = (e >> 53) & 1,
		.g = g,
		.avl = (e >> 52) & 1,
	};
}

static int write_page_tables(const struct guest_mem *mem)
{
	uint64_t pml4[512] = { 0 }, pdpt[512] = { 0 }, pd[512];
	uint64_t pdpt_addr = BOOT_PML4_ADDR + 0x1000, pd_addr = pdpt_addr + 0x1000;

	pml4[0] = pdpt_addr | PAGE_PRESENT_RW;
	if (guest_mem_write(mem, BOOT_PML4_ADDR, pml4, sizeof(pml4)))
		return -1;
	for (uint64_t g = 0; g < IDENTITY_MAP_GIB; g++) {
		pdpt[g] = (pd_addr + g * 0x1000) | PAGE_PRESENT_RW;
		for (uint64_t i = 0; i < 512; i++)
			pd[i] = ((g * 512 + i) << 21) | PAGE_PRESENT_RW | PAGE_HUGE;
		if (guest_mem_write(mem, pd_addr + g * 0x1000, pd, sizeof(pd)))
			return -1;
	}
	return guest_mem_write(mem, pdpt_addr, pdpt, sizeof(pdpt));
}

/* The reset vector (F000:FFF0). There is no BIOS, but a hardware-reduced ACPI
 * guest reboots by jumping here in real mode (its reboot= default is EFI, then
 * BIOS), so the "firmware" does the one thing left: pulse the i8042 reset line.
 * mov al, 0xFE; out 0x64, al; hlt */
static const uint8_t reset_vector_code[] = { 0xB0, 0xFE, 0xE6, 0x64, 0xF4 };

/* Read exactly len bytes at offset of fd into guest memory at gpa. Straight
 * into guest RAM: the file is never mapped into kvio, so it costs kvio no RSS. */
static int read_into_guest(const struct guest_mem *mem, int fd, uint64_t offset, uint64_t gpa, uint64_t len)
{
	void *host;
	uint8_t *dst;

	if (guest_mem_translate(mem, gpa, len, &host))
		return -1;
	dst = host;
	while (len) {
		ssize_t n = pread(fd, dst, len, (off_t)offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		dst += n;
		offset += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

static int file_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -1;
	*size = (uint64_t)st.st_size;
	return 0;
}

enum boot_x86_status boot_x86_load(const struct guest_mem *mem, int kernel_fd, int initrd_fd, const char *cmdline,
		  uint64_t acpi_rsdp, struct boot_x86_result *out, const char **why)
{
	uint8_t head[BZIMAGE_HEADER_BYTES];
	struct bzimage_info info;
	struct boot_params params;
	struct setup_header *hdr = &params.hdr;
	uint64_t low_end = guest_mem_low_end(mem), initrd_limit, kernel_size, initrd_size = 0;
	size_t cmdline_len = strlen(cmdline) + 1;
	ssize_t head_len;

	if (file_size(kernel_fd, &kernel_size)) {
		*why = "cannot read the kernel";
		return BOOT_X86_BAD_KERNEL;
	}
	if (initrd_fd >= 0 && file_size(initrd_fd, &initrd_size)) {
		*why = "cannot read the initrd";
		return BOOT_X86_BAD_INITRD;
	}
	head_len = pread(kernel_fd, head, sizeof(head), 0);
	if (bzimage_parse(head, head_len > 0 ? (size_t)head_len : 0, kernel_size, &info, why))
		return BOOT_X86_BAD_KERNEL;
	if (info.load_end > low_end) {
		*why = "guest RAM too small for this kernel";
		return BOOT_X86_RAM_TOO_SMALL;
	}

	memset(&params, 0, sizeof(params));
	memcpy(&hdr->setup_sects, head + SETUP_HEADER_OFFSET, info.header_end - SETUP_HEADER_OFFSET < sizeof(*hdr)
			 ? info.header_end - SETUP_HEADER_OFFSET : sizeof(*hdr));
	hdr->vid_mode = 0xFFFF;
	hdr->type_of_loader = BOOT_LOADER_UNDEFINED;
	hdr->loadflags |= CAN_USE_HEAP;
	hdr->heap_end_ptr = BOOT_HEAP_END - 0x200;

	if (cmdline_len > BOOT_CMDLINE_MAX || cmdline_len > hdr->cmdline_size + 1ULL) {
		*why = "kernel command line too long for this kernel";
		return BOOT_X86_BAD_CMDLINE;
	}
	if (guest_mem_write(mem, BOOT_CMDLINE_ADDR, cmdline, cmdline_len)) {
		*why = "no guest RAM for the command line";
		return BOOT_X86_RAM_TOO_SMALL;
	}
	hdr->cmd_line_ptr = BOOT_CMDLINE_ADDR;

	out->initrd_addr = 0;
	out->initrd_size = initrd_size;
	if (initrd_size) {
		/* As high as the kernel allows, so decompression below never overlaps it. */
		initrd_limit = low_end < (uint64_t)hdr->initrd_addr_max + 1 ? low_end : (uint64_t)hdr->initrd_addr_max + 1;
		if (initrd_size > initrd_limit || ((initrd_limit - initrd_size) & ~0xFFFULL) < info.load_end) {
			*why = "initrd does not fit in guest RAM below the kernel's limit (try more --memory)";
			return BOOT_X86_BAD_INITRD;
		}
		out->initrd_addr = (initrd_limit - initrd_size) & ~0xFFFULL;
		if (read_into_guest(mem, initrd_fd, 0, out->initrd_addr, initrd_size)) {
			*why = "cannot read the initrd";
			return BOOT_X86_BAD_INITRD;
		}
		hdr->ramdisk_image = (uint32_t)out->initrd_addr;
		hdr->ramdisk_size = (uint32_t)initrd_size;
	}

	params.acpi_rsdp_addr = acpi_rsdp;
	params.e820_entries = (uint8_t)boot_x86_e820(mem, params.e820_table, E820_MAX_ENTRIES_ZEROPAGE);

	if (read_into_guest(mem, kernel_fd, info.setup_size, BOOT_KERNEL_ADDR, kernel_size - info.setup_size)) {
		*why = "cannot read the kernel";
		return BOOT_X86_BAD_KERNEL;
	}
	if (guest_mem_write(mem, BOOT_ZERO_PAGE_ADDR, &params, sizeof(params)) ||
	    guest_mem_write(mem, BOOT_GDT_ADDR, boot_gdt, sizeof(boot_gdt)) ||
	    guest_mem_write(mem, BOOT_RESET_VECTOR, reset_vector_code, sizeof(reset_vector_code)) ||
	    write_page_tables(mem)) {
		*why = "guest RAM too small to boot";
		return BOOT_X86_RAM_TOO_SMALL;
	}
	out->entry = BOOT_KERNEL_ADDR + 0x200;
	out->zero_page = BOOT_ZERO_PAGE_ADDR;
	return BOOT_X86_OK;
}

void boot_x86_init_regs(const struct boot_x86_result *boot, struct kvm_regs *regs, struct kvm_sregs *sregs)
{
	struct kvm_segment code = segment_from_gdt(GDT_CS), data = segment_from_gdt(GDT_DS);

	memset(regs, 0, sizeof(*regs));
	regs->rflags = 0x2;  /* bit 1 is reserved and must be set */
	regs->rip = boot->entry;
	regs->rsi = boot->zero_page;
	regs->rsp = BOOT_STACK_ADDR;
	regs->rbp = BOOT_STACK_ADDR;

	sregs->cs = code;
	sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
	sregs->tr = segment_from_gdt(GDT_TR);
	sregs->gdt.base = BOOT_GDT_ADDR;
	sregs->gdt.limit = sizeof(boot_gdt) - 1;
	sregs->idt.base = 0;
	sregs->idt.limit = 0;
	/* The reset value of CR0 has caching disabled (CD, NW); start with it on. */
	sregs->cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
	sregs->cr3 = BOOT_PML4_ADDR;
	sregs->cr4 = CR4_PAE;
	sregs->efer = EFER_LME | EFER_LMA;
}
