/* Virtio devices plugged into the VM: a PCI slot, BARs on the MMIO and port
 * buses, kicks by ioeventfd and interrupts by irqfd, queue work on I/O threads. */
#ifndef KVIO_CORE_VIRTIO_KVM_H
#define KVIO_CORE_VIRTIO_KVM_H

#include "core/vm.h"
#include "hw/pci.h"
#include "util/io_thread.h"
#include "virtio/pci.h"

struct virtio_kvm_kick {
	struct event_handler handler;
	struct virtio_pci *vp;
	unsigned int queue;
};

struct virtio_kvm_event {
	struct event_handler handler;
	struct virtio_kvm_device *dev;
	unsigned int index;
};

struct virtio_kvm_device {
	struct vm *vm;
	struct virtio_dev *vdev;
	struct io_thread *io[VIRTIO_MAX_QUEUE_GROUPS];  /* by queue group; the pool owns them */
	void (*destroy)(struct virtio_dev *vdev);
	struct virtio_pci vp;
	struct virtio_pci_hooks hooks;
	int gsi_base;
	unsigned int intx_gsi;
	bool irqfd_bound[VIRTIO_PCI_MSIX_VECTORS];
	struct virtio_kvm_kick kicks[VIRTIO_MAX_QUEUES];
	struct virtio_kvm_event events[VIRTIO_MAX_EVENT_FDS];
	unsigned int nr_events;
};

/* Plug vdev in at the next free slot, BAR address and I/O port (both
 * advanced past what it took), its queue groups on threads of pool; on
 * failure vdev is destroyed. */
struct virtio_kvm_device *virtio_kvm_add(struct vm *vm, struct pci_bus *bus, struct io_pool *pool,
					 uint64_t *next_bar, uint16_t *next_io_port, struct virtio_dev *vdev,
					 void (*destroy)(struct virtio_dev *vdev));
/* At teardown, before the I/O threads go: no device thread calls into the transport after this. */
void virtio_kvm_quiesce(struct virtio_kvm_device *dev);
void virtio_kvm_remove(struct virtio_kvm_device *dev);

#endif
