/* The test driver behind tests/unit/virtio_driver.h. */
#include "virtio_driver.h"

#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define RING_AREA 0x10000ULL  /* each queue's rings live in their own 64 KiB */

static void record_intx(void *ctx, bool asserted)
{
	struct vtd *d = ctx;

	d->intx = asserted;
}

/* As if KVM routed the vector: its eventfd reaches the "guest" directly. */
static int record_msi_route(void *ctx, unsigned int vector, uint64_t addr, uint32_t data, int fd)
{
	(void)ctx, (void)vector, (void)addr, (void)data, (void)fd;
	return 0;
}

static void record_kick_watch(void *ctx, unsigned int q, bool watch)
{
	struct vtd *d = ctx;

	d->kick_unwatched[q] = !watch;
}

static void start(struct vtd *d, struct virtio_dev *vdev)
{
	d->next_data = VTD_DATA_START;
	d->hooks = (struct virtio_pci_hooks){ .intx_set = record_intx, .msi_route = record_msi_route,
					   .kick_watch = record_kick_watch, .ctx = d };
	if (!d->ram || virtio_pci_init(&d->vp, vdev, &d->mem, VTD_BAR, VTD_NOTIFY_PORT, &d->hooks))
		abort();
	pci_device_config_write(&d->vp.pci, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	/* MSI-X on, as Linux enables it before touching the queues. */
	pci_device_config_write(&d->vp.pci, 0x40 + PCI_MSIX_FLAGS, 0x8000, 2);
}

void vtd_init(struct vtd *d, struct virtio_dev *vdev, uint64_t ram_size)
{
	int fd = memfd_create("vtd-ram", MFD_CLOEXEC);

	memset(d, 0, sizeof(*d));
	/* A memfd, as kvio's guest RAM is, so a vhost-user backend can map it too. */
	if (fd < 0 || ftruncate(fd, (off_t)ram_size) < 0)
		abort();
	d->ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (d->ram == MAP_FAILED)
		abort();
	d->ram_size = ram_size;
	guest_mem_layout(&d->mem, d->ram, ram_size, fd);
	start(d, vdev);
}

void vtd_init_mem(struct vtd *d, struct virtio_dev *vdev, const struct guest_mem *mem)
{
	memset(d, 0, sizeof(*d));
	d->ram = mem->base;
	d->ram_size = mem->ram_size;
	d->ram_borrowed = true;
	d->mem = *mem;
	start(d, vdev);
}

void vtd_destroy(struct vtd *d)
{
	virtio_pci_destroy(&d->vp);
	if (!d->ram_borrowed) {
		munmap(d->ram, d->ram_size);
		close(d->mem.fd);
	}
}

uint64_t vtd_read(struct vtd *d, uint64_t off, unsigned int size)
{
	return virtio_pci_bar_ops.read(&d->vp, off, size);
}

void vtd_write(struct vtd *d, uint64_t off, uint64_t value, unsigned int size)
{
	virtio_pci_bar_ops.write(&d->vp, off, value, size);
}

uint64_t vtd_device_features(struct vtd *d)
{
	uint64_t features;

	vtd_write(d, VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
	features = vtd_read(d, VIRTIO_PCI_COMMON_DF, 4);
	vtd_write(d, VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
	return features | vtd_read(d, VIRTIO_PCI_COMMON_DF, 4) << 32;
}

bool vtd_negotiate(struct vtd *d, uint64_t features)
{
	const uint8_t ack = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;

	vtd_write(d, VIRTIO_PCI_COMMON_STATUS, 0, 1);
	vtd_write(d, VIRTIO_PCI_COMMON_STATUS, ack, 1);
	vtd_write(d, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	vtd_write(d, VIRTIO_PCI_COMMON_GF, (uint32_t)features, 4);
	vtd_write(d, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	vtd_write(d, VIRTIO_PCI_COMMON_GF, (uint32_t)(features >> 32), 4);
	vtd_write(d, VIRTIO_PCI_COMMON_STATUS, ack | VIRTIO_CONFIG_S_FEATURES_OK, 1);
	memset(d->q, 0, sizeof(d->q));
	return vtd_read(d, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_FEATURES_OK;
}

void vtd_setup_queue(struct vtd *d, unsigned int q, uint16_t size, uint16_t vector)
{
	vtd_setup_queue_at(d, q, size, vector, RING_AREA * (q + 1));
}

void vtd_setup_queue_at(struct vtd *d, unsigned int q, uint16_t size, uint16_t vector, uint64_t base)
{
	memset(&d->q[q], 0, sizeof(d->q[q]));
	d->q[q].size = size;
	d->q[q].desc = base;
	d->q[q].avail = base + 16ULL * size;
	d->q[q].used = (d->q[q].avail + 6 + 2ULL * size + 3) & ~3ULL;
	vtd_write(d, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16ULL * vector + 0, 0xFEE00000, 4);
	vtd_write(d, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16ULL * vector + 8, 0x40 + vector, 4);
	vtd_write(d, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16ULL * vector + 12, 0, 4);
	vtd_write(d, VIRTIO_PCI_COMMON_Q_SELECT, q, 2);
	vtd_write(d, VIRTIO_PCI_COMMON_Q_SIZE, size, 2);
	vtd_write(d, VIRTIO_PCI_COMMON_Q_MSIX, vector, 2);
	vtd_write(d, VIRTIO_PCI_COMMON_Q_DESCLO, d->q[q].desc, 4);
	vtd_write(d, VIRTIO_PCI_COMMON_Q_DESCHI, 0, 4);
	vtd_write(d, VIRTIO_PCI_COMMON_Q_AVAILLO, d->q[q].avail, 4);
	vtd_write(d, VIRTIO_PCI_COMMON_Q_AVAILHI, 0, 4);
	vtd_write(d, VIRTIO_PCI_COMMON_Q_USEDLO, d->q[q].used, 4);
	vtd_write(d, VIRTIO_PCI_COMMON_Q_USEDHI, 0, 4);
	vtd_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
}

bool vtd_reset_queue(struct vtd *d, unsigned int q)
{
	vtd_write(d, VIRTIO_PCI_COMMON_Q_SELECT, q, 2);
	vtd_write(d, VIRTIO_PCI_COMMON_Q_RESET, 1, 2);
	/* Linux polls both for 0; kvio finishes within the write, so one read each. */
	return vtd_read(d, VIRTIO_PCI_COMMON_Q_RESET, 2) == 0 && vtd_read(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2) == 0;
}

void vtd_driver_ok(struct vtd *d)
{
	uint8_t status = (uint8_t)vtd_read(d, VIRTIO_PCI_COMMON_STATUS, 1);

	vtd_write(d, VIRTIO_PCI_COMMON_STATUS, status | VIRTIO_CONFIG_S_DRIVER_OK, 1);
}

uint64_t vtd_alloc(struct vtd *d, uint32_t len)
{
	uint64_t gpa = d->next_data;

	d->next_data = (d->next_data + len + 63) & ~63ULL;
	if (d->next_data > d->ram_size)
		abort();
	return gpa;
}

void *vtd_ptr(struct vtd *d, uint64_t gpa)
{
	return d->ram + gpa;
}

uint16_t vtd_offer(struct vtd *d, unsigned int q, const struct vtd_buf *bufs, unsigned int n)
{
	struct vring_desc *table = vtd_ptr(d, d->q[q].desc);
	struct vring_avail *avail = vtd_ptr(d, d->q[q].avail);
	uint16_t size = d->q[q].size, head = d->q[q].next_desc;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t at = (uint16_t)((head + i) % size);

		table[at] = (struct vring_desc){
			.addr = bufs[i].gpa, .len = bufs[i].len,
			.flags = (uint16_t)((bufs[i].writable ? VRING_DESC_F_WRITE : 0) | (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
			.next = (uint16_t)((at + 1) % size),
		};
	}
	d->q[q].next_desc = (uint16_t)((head + n) % size);
	avail->ring[d->q[q].avail_idx % size] = head;
	__atomic_store_n(&avail->idx, ++d->q[q].avail_idx, __ATOMIC_RELEASE);
	return head;
}

void vtd_kick(struct vtd *d, unsigned int q)
{
	vtd_write(d, VIRTIO_PCI_NOTIFY_OFFSET + (uint64_t)q * VIRTIO_PCI_NOTIFY_MULTIPLIER, q, 2);
	/* A queue handed to another server (vhost) is its to read, not the I/O thread's. */
	if (!d->kick_unwatched[q])
		virtio_pci_handle_kick(&d->vp, q);
}

bool vtd_next_used(struct vtd *d, unsigned int q, uint32_t *id, uint32_t *len)
{
	struct vring_used *used = vtd_ptr(d, d->q[q].used);

	if (__atomic_load_n(&used->idx, __ATOMIC_ACQUIRE) == d->q[q].used_seen)
		return false;
	*id = used->ring[d->q[q].used_seen % d->q[q].size].id;
	*len = used->ring[d->q[q].used_seen % d->q[q].size].len;
	d->q[q].used_seen++;
	return true;
}

bool vtd_interrupted(struct vtd *d, uint16_t vector)
{
	struct pollfd p = { .fd = d->vp.msix[vector].fd, .events = POLLIN };
	uint64_t count;

	if (poll(&p, 1, 0) != 1)
		return false;
	return read(p.fd, &count, sizeof(count)) == sizeof(count);
}
