/* virtio-pci, modern (VIRTIO 1.x 4.1): the PCI face of a virtio device.
 * Everything lives in one 64-bit memory BAR: common, ISR, device-specific and
 * notify structures, and the MSI-X table and PBA; an I/O BAR offers a second,
 * preferred notify register. The platform (KVM, or a test driver) is reached
 * only through the hooks. */
#ifndef KVIO_VIRTIO_PCI_H
#define KVIO_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "core/iobus.h"
#include "hw/pci.h"
#include "virtio/device.h"

#define VIRTIO_PCI_VENDOR 0x1AF4
#define VIRTIO_PCI_DEVICE_BASE 0x1040

/* BAR 0 layout. */
#define VIRTIO_PCI_BAR_SIZE 0x8000
#define VIRTIO_PCI_COMMON_OFFSET 0x0000
#define VIRTIO_PCI_COMMON_SIZE 0x0100
#define VIRTIO_PCI_ISR_OFFSET 0x1000
#define VIRTIO_PCI_ISR_SIZE 0x0004
#define VIRTIO_PCI_DEVICE_OFFSET 0x2000
#define VIRTIO_PCI_DEVICE_SIZE 0x1000
#define VIRTIO_PCI_NOTIFY_OFFSET 0x3000
#define VIRTIO_PCI_NOTIFY_MULTIPLIER 4
#define VIRTIO_PCI_MSIX_TABLE_OFFSET 0x4000
#define VIRTIO_PCI_MSIX_PBA_OFFSET 0x5000
#define VIRTIO_PCI_MSIX_VECTORS (VIRTIO_MAX_QUEUES + 1)  /* one per queue, one for config */
#define VIRTIO_PCI_ISR_QUEUE 0x1  /* the UAPI header names only the config bit */

/* BAR 2: one 16-bit port every queue's notify goes to, the value being the
 * queue's index (notify_off_multiplier 0). Its capability comes before BAR 0's
 * notify, so drivers prefer it (4.1.4): a port write leaves the guest with
 * port and value already decoded, where an MMIO write has KVM decode the
 * instruction on AMD, without EPT and in nested guests. */
#define VIRTIO_PCI_NOTIFY_PORT_BAR 2
#define VIRTIO_PCI_NOTIFY_PORT_SIZE 4  /* the smallest I/O BAR; the register is 2 bytes */

struct virtio_pci_hooks {
	/* Have guest writes to addr signal fd without an exit (KVM ioeventfd). */
	int (*kick_bind)(void *ctx, uint64_t addr, int fd);
	/* The same for 16-bit writes of the value queue to I/O port port. */
	int (*kick_bind_port)(void *ctx, uint16_t port, uint16_t queue, int fd);
	/* Deliver writes to fd as the MSI (addr, data) (KVM irqfd + MSI route). */
	int (*msi_route)(void *ctx, unsigned int vector_index, uint64_t addr, uint32_t data, int fd);
	/* Raise or lower the device's INTx line (used while MSI-X is off). */
	void (*intx_set)(void *ctx, bool asserted);
	/* Start or stop watching queue q's kick eventfd (queue offload). */
	void (*kick_watch)(void *ctx, unsigned int q, bool watch);
	void *ctx;
};

struct virtio_pci_queue {
	uint16_t size;
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc, avail, used;
	int kick_fd;              /* eventfd the guest's notify writes land on */
	bool offloaded;           /* another server (vhost) reads kick_fd */
};

struct virtio_pci_msix {
	uint64_t addr;
	uint32_t data;
	uint32_t control;         /* bit 0: masked */
	int fd;                   /* eventfd that injects this vector */
	bool routed;              /* fd reaches the guest without kvio (irqfd + MSI route) */
};

struct virtio_pci {
	struct pci_device pci;
	struct virtio_dev *vdev;
	const struct guest_mem *mem;
	const struct virtio_pci_hooks *hooks;
	uint64_t bar_addr;        /* where BAR 0 is (assigned once, as firmware would) */
	uint16_t notify_port;     /* where BAR 2 is; 0: no I/O BAR */
	uint32_t device_feature_select, driver_feature_select;
	uint64_t driver_features;
	uint8_t status;           /* as the driver wrote it; NEEDS_RESET is kept apart */
	/* Interrupt state, which every queue group's data path may touch: under
	 * irq_lock, the innermost lock (see device.h's lock order). */
	pthread_mutex_t irq_lock;
	/* The command register and MSI-X control as the guest last wrote them,
	 * copied from config space (which the bus lock guards) under irq_lock,
	 * so data paths read them without the bus lock. */
	uint16_t pci_command, msix_flags;
	uint8_t isr;
	bool intx_asserted;
	bool needs_reset;         /* also read without the lock, atomically */
	uint8_t config_generation;
	uint16_t queue_select;
	uint16_t config_vector;
	struct virtio_pci_queue queues[VIRTIO_MAX_QUEUES];
	struct virtio_pci_msix msix[VIRTIO_PCI_MSIX_VECTORS];
	uint64_t msix_pending;    /* the PBA (irq_lock) */
	bool bar_moved_warned;
};

extern const struct iobus_ops virtio_pci_bar_ops;
extern const struct iobus_ops virtio_pci_notify_port_ops;  /* BAR 2, when no ioeventfd took the writes */

/* Set up the transport for vdev with BAR 0 at bar_addr and, unless
 * notify_port is 0, BAR 2 at notify_port. hooks may be NULL (tests): kicks
 * then arrive through the notify registers and interrupts only signal the
 * vectors' eventfds (and INTx goes nowhere). Returns 0 or -errno. */
int virtio_pci_init(struct virtio_pci *vp, struct virtio_dev *vdev, const struct guest_mem *mem,
		    uint64_t bar_addr, uint16_t notify_port, const struct virtio_pci_hooks *hooks);
void virtio_pci_destroy(struct virtio_pci *vp);

/* Queue q's I/O thread calls this when q's kick eventfd fires. */
void virtio_pci_handle_kick(struct virtio_pci *vp, unsigned int q);

#endif
