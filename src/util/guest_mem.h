/* Guest physical memory: what backs guest RAM, its layout around the 32-bit
 * PCI hole, and the one bounds-checked helper every guest address goes through. */
#ifndef KVIO_UTIL_GUEST_MEM_H
#define KVIO_UTIL_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* kvio lays its RAM out in at most 2 regions; a vhost-user backend's view of
 * a frontend's memory table (src/vhost/vhost_user_backend.c) holds up to 8. */
#define GUEST_MEM_MAX_REGIONS 8

/* RAM stops below 3 GiB; [3 GiB, 4 GiB) is left for PCI MMIO, the IOAPIC and
 * the LAPIC, and any remaining RAM continues at 4 GiB. */
#define GUEST_PCI_HOLE_START 0xC0000000ULL
#define GUEST_HIGH_RAM_START 0x100000000ULL

struct guest_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;       /* where the region is mapped in this process */
	uint64_t fd_offset;  /* where the region starts in the memfd (and in the mapping) */
};

struct guest_mem {
	struct guest_mem_region regions[GUEST_MEM_MAX_REGIONS];
	unsigned int nr_regions;
	uint64_t ram_size;
	uint8_t *base;  /* the whole mapping, ram_size bytes */
	int fd;         /* the memfd, shareable with other processes; -1 for anonymous RAM */
};

/* Fill in the region layout for ram_size bytes of RAM mapped at base
 * (no allocation; usable on any buffer, which the unit tests rely on). */
void guest_mem_layout(struct guest_mem *mem, uint8_t *base, uint64_t ram_size, int fd);

/* Map ram_size bytes of RAM and lay them out. shareable: a memfd another
 * process can map (vhost-user); else anonymous memory with transparent huge
 * pages, as QEMU's default, which faults in far faster. Returns 0 or -errno. */
int guest_mem_create(struct guest_mem *mem, uint64_t ram_size, bool shareable);

/* Give [offset, offset + len) of the mapping back to the host; the guest reads
 * zeros there afterwards. Page-aligned. Returns 0 or -errno. */
int guest_mem_discard(const struct guest_mem *mem, uint64_t offset, uint64_t len);
void guest_mem_destroy(struct guest_mem *mem);

/* Translate [gpa, gpa + len) to a host pointer. The whole range must lie in one
 * RAM region; otherwise returns -EFAULT and leaves *host untouched. */
__attribute__((warn_unused_result)) int guest_mem_translate(const struct guest_mem *mem, uint64_t gpa,
							    uint64_t len, void **host);

__attribute__((warn_unused_result)) int guest_mem_write(const struct guest_mem *mem, uint64_t gpa,
							const void *src, uint64_t len);
__attribute__((warn_unused_result)) int guest_mem_read(const struct guest_mem *mem, uint64_t gpa, void *dst,
						       uint64_t len);

/* Last byte + 1 of RAM below the PCI hole. */
uint64_t guest_mem_low_end(const struct guest_mem *mem);

#endif
