/* A virtio driver for tests: it negotiates through the virtio-pci registers,
 * lays out split rings in fake guest RAM, offers chains and kicks, the way the
 * Linux driver would, so devices are tested without a VM. */
#ifndef KVIO_TESTS_VIRTIO_DRIVER_H
#define KVIO_TESTS_VIRTIO_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/pci.h"

#define VTD_BAR 0xC0000000ULL
#define VTD_NOTIFY_PORT 0xC000
#define VTD_DATA_START 0x100000ULL   /* buffers are allocated from here up */

struct vtd_buf {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

struct vtd {
	uint8_t *ram;             /* a shared memfd mapping (mem.fd) */
	uint64_t ram_size;
	bool ram_borrowed;        /* vtd_init_mem: the caller's RAM, not freed here */
	struct guest_mem mem;
	struct virtio_pci vp;
	struct virtio_pci_hooks hooks;
	bool intx;                /* the device's INTx line, as the platform sees it */
	bool kick_unwatched[VIRTIO_MAX_QUEUES];  /* the device handed this queue's kicks elsewhere */
	uint64_t next_data;
	struct {
		uint16_t size, avail_idx, next_desc, used_seen;
		uint64_t desc, avail, used;
	} q[VIRTIO_MAX_QUEUES];
};

void vtd_init(struct vtd *d, struct virtio_dev *vdev, uint64_t ram_size);
/* The same over the caller's guest RAM (a memfd from guest_mem_create, for
 * devices that act on the memfd), which must outlive d. */
void vtd_init_mem(struct vtd *d, struct virtio_dev *vdev, const struct guest_mem *mem);
void vtd_destroy(struct vtd *d);

uint64_t vtd_read(struct vtd *d, uint64_t bar_offset, unsigned int size);
void vtd_write(struct vtd *d, uint64_t bar_offset, uint64_t value, unsigned int size);

/* Reset, offer features, FEATURES_OK; returns whether the device kept FEATURES_OK. */
bool vtd_negotiate(struct vtd *d, uint64_t features);
uint64_t vtd_device_features(struct vtd *d);
/* Rings for queue q (size entries), its MSI-X vector unmasked; then enable. */
void vtd_setup_queue(struct vtd *d, unsigned int q, uint16_t size, uint16_t vector);
/* The same with the rings at base (desc, avail, used back to back; 4 KiB holds up to 128 entries). */
void vtd_setup_queue_at(struct vtd *d, unsigned int q, uint16_t size, uint16_t vector, uint64_t base);
/* Reset queue q alone through queue_reset (VIRTIO_F_RING_RESET), as Linux
 * does: write 1, then expect queue_reset and queue_enable to read 0. Returns
 * whether they did. The driver's view of q's old rings stays for checks. */
bool vtd_reset_queue(struct vtd *d, unsigned int q);
void vtd_driver_ok(struct vtd *d);

/* Guest RAM for a buffer, and its host address. */
uint64_t vtd_alloc(struct vtd *d, uint32_t len);
void *vtd_ptr(struct vtd *d, uint64_t gpa);

/* Offer a chain on queue q; returns its head. */
uint16_t vtd_offer(struct vtd *d, unsigned int q, const struct vtd_buf *bufs, unsigned int n);
/* Write the notify register, then run the kick as the I/O thread would
 * (unless the queue was handed over: then its server sees the kick eventfd). */
void vtd_kick(struct vtd *d, unsigned int q);
/* Next used element of q, if the device returned one since the last call. */
bool vtd_next_used(struct vtd *d, unsigned int q, uint32_t *id, uint32_t *len);
/* Did vector fire since the last look? */
bool vtd_interrupted(struct vtd *d, uint16_t vector);

#endif
