/* Guest physical memory (anonymous with transparent huge pages, or a memfd
 * when another process must map it), and the bounds-checked translation
 * from guest-physical addresses to host pointers. */
#include "util/guest_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void guest_mem_layout(struct guest_mem *mem, uint8_t *base, uint64_t ram_size, int fd)
{
	uint64_t low = ram_size < GUEST_PCI_HOLE_START ? ram_size : GUEST_PCI_HOLE_START;

	memset(mem, 0, sizeof(*mem));
	mem->base = base;
	mem->ram_size = ram_size;
	mem->fd = fd;
	mem->regions[0] = (struct guest_mem_region){ .gpa = 0, .size = low, .host = base, .fd_offset = 0 };
	mem->nr_regions = 1;
	if (ram_size > low) {
		mem->regions[1] = (struct guest_mem_region){
			.gpa = GUEST_HIGH_RAM_START, .size = ram_size - low, .host = base + low, .fd_offset = low,
		};
		mem->nr_regions = 2;
	}
}

/* KVM maps a guest huge page with a host huge page only where guest-physical
 * and host-virtual addresses agree modulo its size, and mmap promises 4 KiB
 * alignment (kernels before 6.7 give just that): RAM starts on 2 MiB. */
#define GUEST_RAM_ALIGN ((uint64_t)2 << 20)

/* mmap(NULL, size, read/write, flags, fd, 0), but 2 MiB aligned: reserve
 * the slack, map over the aligned part, give back both ends. */
static void *map_aligned(uint64_t size, int flags, int fd)
{
	uint64_t span = size + GUEST_RAM_ALIGN;
	uint8_t *area = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *base, *end;

	if (area == MAP_FAILED)
		return MAP_FAILED;
	base = (uint8_t *)(((uintptr_t)area + GUEST_RAM_ALIGN - 1) & ~(uintptr_t)(GUEST_RAM_ALIGN - 1));
	if (mmap(base, size, PROT_READ | PROT_WRITE, flags | MAP_FIXED, fd, 0) == MAP_FAILED) {
		int err = errno;

		munmap(area, span);
		errno = err;
		return MAP_FAILED;
	}
	end = base + size;
	if (base > area)
		munmap(area, (size_t)(base - area));
	if (area + span > end)
		munmap(end, (size_t)(area + span - end));
	return base;
}

int guest_mem_create(struct guest_mem *mem, uint64_t ram_size, bool shareable)
{
	void *base;
	int fd, err;

	if (!shareable) {
		/* MAP_NORESERVE: RAM the guest never touches should cost the host nothing. */
		base = map_aligned(ram_size, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);
		if (base == MAP_FAILED)
			return -errno;
		/* Huge pages where the host has them: a 2 MiB page is one fault and one
		 * TLB entry where 4 KiB pages are 512 (shmem, and so a memfd, gets none
		 * under the default shmem_enabled=never). Only a hint: failure is fine. */
		madvise(base, ram_size, MADV_HUGEPAGE);
		guest_mem_layout(mem, base, ram_size, -1);
		return 0;
	}
	fd = memfd_create("kvio-guest-ram", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)ram_size) < 0)
		goto fail;
	base = map_aligned(ram_size, MAP_SHARED | MAP_NORESERVE, fd);
	if (base == MAP_FAILED)
		goto fail;
	guest_mem_layout(mem, base, ram_size, fd);
	return 0;
fail:
	err = -errno;
	close(fd);
	return err;
}

int guest_mem_discard(const struct guest_mem *mem, uint64_t offset, uint64_t len)
{
	if (offset > mem->ram_size || len > mem->ram_size - offset)
		return -EFAULT;
	/* shmem is freed only by punching the file: MADV_DONTNEED would drop just this mapping. */
	if (mem->fd >= 0)
		return fallocate(mem->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)len) < 0 ? -errno
															  : 0;
	return madvise(mem->base + offset, len, MADV_DONTNEED) < 0 ? -errno : 0;
}

void guest_mem_destroy(struct guest_mem *mem)
{
	if (mem->base)
		munmap(mem->base, mem->ram_size);
	if (mem->fd >= 0)
		close(mem->fd);
	mem->base = NULL;
	mem->fd = -1;
}

int guest_mem_translate(const struct guest_mem *mem, uint64_t gpa, uint64_t len, void **host)
{
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct guest_mem_region *r = &mem->regions[i];

		/* Written so that no sum can overflow: gpa and len are guest-controlled. */
		if (gpa < r->gpa || gpa - r->gpa >= r->size)
			continue;
		if (len > r->size - (gpa - r->gpa))
			return -EFAULT;
		*host = r->host + (gpa - r->gpa);
		return 0;
	}
	return -EFAULT;
}

int guest_mem_write(const struct guest_mem *mem, uint64_t gpa, const void *src, uint64_t len)
{
	void *dst;
	int err = guest_mem_translate(mem, gpa, len, &dst);

	if (err)
		return err;
	memcpy(dst, src, len);
	return 0;
}

int guest_mem_read(const struct guest_mem *mem, uint64_t gpa, void *dst, uint64_t len)
{
	void *src;
	int err = guest_mem_translate(mem, gpa, len, &src);

	if (err)
		return err;
	memcpy(dst, src, len);
	return 0;
}

uint64_t guest_mem_low_end(const struct guest_mem *mem)
{
	return mem->regions[0].size;
}
