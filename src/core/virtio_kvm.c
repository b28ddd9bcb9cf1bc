/* Binds the KVM-free virtio-pci transport to KVM: its notify addresses become
 * ioeventfds and its MSI-X vectors irqfds with MSI routes, so neither a kick
 * nor an interrupt involves a vCPU thread. Each queue group of the device gets
 * an I/O thread: group 0 the VM's shared one, the others one each. */
#include "core/virtio_kvm.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/irq.h"
#include "util/log.h"

#define NOTIFY_WRITE_LEN 2  /* the driver writes the 16-bit queue index */

static int kick_bind(void *ctx, uint64_t addr, int fd)
{
	struct virtio_kvm_device *dev = ctx;

	/* Any length also puts addr on KVM's fast MMIO bus, where Intel's KVM
	 * takes the write without decoding the instruction. */
	return vm_add_ioeventfd(dev->vm, addr, dev->vm->ioeventfd_any_length ? 0 : NOTIFY_WRITE_LEN, fd);
}

static int kick_bind_port(void *ctx, uint16_t port, uint16_t queue, int fd)
{
	struct virtio_kvm_device *dev = ctx;

	return vm_add_port_ioeventfd(dev->vm, port, NOTIFY_WRITE_LEN, queue, fd);
}

static int msi_route(void *ctx, unsigned int vector, uint64_t addr, uint32_t data, int fd)
{
	struct virtio_kvm_device *dev = ctx;
	unsigned int gsi = (unsigned int)dev->gsi_base + vector;
	int err;

	if (!addr)
		return 0;  /* not programmed yet */
	err = irq_set_msi_route(dev->vm, gsi, addr, data);
	if (!err && !dev->irqfd_bound[vector]) {
		err = irq_add_irqfd(dev->vm, fd, gsi);
		dev->irqfd_bound[vector] = !err;
	}
	return err;
}

static void intx_set(void *ctx, bool asserted)
{
	struct virtio_kvm_device *dev = ctx;

	irq_shared_line_set(dev->vm, dev->intx_gsi, asserted);
}

static void kick_watch(void *ctx, unsigned int q, bool watch)
{
	struct virtio_kvm_device *dev = ctx;
	struct io_thread *io = dev->io[dev->vdev->queue_group[q]];

	if (watch ? io_thread_add(io, &dev->kicks[q].handler) : event_loop_remove(&io->loop, &dev->kicks[q].handler))
		log_warn("%s: queue %u: cannot %s its kicks", dev->vdev->ops->name, q, watch ? "watch" : "unwatch");
}

static void watch_events(struct virtio_dev *vdev, bool watch)
{
	struct virtio_kvm_device *dev = ((struct virtio_pci *)vdev->transport)->hooks->ctx;

	for (unsigned int i = 0; i < dev->nr_events; i++) {
		struct io_thread *io = dev->io[vdev->event_group[i]];

		if (watch ? io_thread_add_edge(io, &dev->events[i].handler)
			  : event_loop_remove(&io->loop, &dev->events[i].handler))
			log_warn("%s: cannot %s its backend", vdev->ops->name, watch ? "watch" : "unwatch");
	}
}

static void kick_ready(struct event_handler *handler, uint32_t events)
{
	struct virtio_kvm_kick *kick = (struct virtio_kvm_kick *)handler;

	(void)events;
	virtio_pci_handle_kick(kick->vp, kick->queue);
}

static void device_event_ready(struct event_handler *handler, uint32_t events)
{
	struct virtio_kvm_event *event = (struct virtio_kvm_event *)handler;
	struct virtio_dev *vdev = event->dev->vdev;
	pthread_mutex_t *lock = virtio_group_lock(vdev, vdev->event_group[event->index]);

	(void)events;
	pthread_mutex_lock(lock);
	vdev->ops->event_ready(vdev, event->index);
	pthread_mutex_unlock(lock);
}

/* Group 0 on the shared thread; each other group on a new one, named after
 * the device and group ("kvio-net-q1") so that top -H shows who is busy. */
static int assign_io_threads(struct virtio_kvm_device *dev, struct io_pool *pool)
{
	const char *kind = strrchr(dev->vdev->ops->name, '-');

	kind = kind ? kind + 1 : dev->vdev->ops->name;
	dev->io[0] = io_pool_shared(pool);
	for (unsigned int g = 1; g < dev->vdev->nr_groups; g++) {
		char name[IO_THREAD_NAME_MAX];

		snprintf(name, sizeof(name), "kvio-%.4s-q%hhu", kind, (unsigned char)g);
		dev->io[g] = io_pool_add(pool, name);
		if (!dev->io[g])
			return -1;
	}
	return dev->io[0] ? 0 : -1;
}

struct virtio_kvm_device *virtio_kvm_add(struct vm *vm, struct pci_bus *bus, struct io_pool *pool,
					 uint64_t *next_bar, uint16_t *next_io_port, struct virtio_dev *vdev,
					 void (*destroy)(struct virtio_dev *vdev))
{
	uint64_t bar = pci_bar_align(*next_bar, VIRTIO_PCI_BAR_SIZE);
	uint64_t port = pci_bar_align(*next_io_port, VIRTIO_PCI_NOTIFY_PORT_SIZE);
	struct virtio_kvm_device *dev = calloc(1, sizeof(*dev));
	const char *name = vdev->ops->name, *what = "out of memory";
	int err;

	if (!dev) {
		destroy(vdev);
		goto fail;
	}
	dev->vm = vm;
	dev->vdev = vdev;
	dev->destroy = destroy;
	dev->hooks = (struct virtio_pci_hooks){ .kick_bind = kick_bind, .kick_bind_port = kick_bind_port,
					     .msi_route = msi_route, .intx_set = intx_set, .kick_watch = kick_watch,
					     .ctx = dev };
	dev->gsi_base = irq_alloc_msi_gsis(vm, VIRTIO_PCI_MSIX_VECTORS);
	what = "no interrupt routes left";
	if (dev->gsi_base < 0)
		goto fail_dev;
	what = "no I/O ports left for its notify register";
	if (port + VIRTIO_PCI_NOTIFY_PORT_SIZE > 0x10000)
		goto fail_dev;
	what = "cannot set up the transport (ioeventfd)";
	err = virtio_pci_init(&dev->vp, vdev, &vm->mem, bar, (uint16_t)port, &dev->hooks);
	if (err)
		goto fail_dev;
	what = "cannot start its I/O threads";
	if (assign_io_threads(dev, pool))
		goto fail_transport;
	what = "cannot map its BARs";
	if (iobus_register(&vm->mmio, bar, VIRTIO_PCI_BAR_SIZE, &virtio_pci_bar_ops, &dev->vp) ||
	    iobus_register(&vm->pio, port, VIRTIO_PCI_NOTIFY_PORT_SIZE, &virtio_pci_notify_port_ops, &dev->vp))
		goto fail_transport;
	what = "no free PCI slot";
	if (pci_bus_add(bus, &dev->vp.pci) < 0)
		goto fail_transport;
	/* Kept apart from the interrupt line register, which the guest may overwrite. */
	dev->intx_gsi = dev->vp.pci.config[PCI_INTERRUPT_LINE];
	*next_bar = bar + VIRTIO_PCI_BAR_SIZE;
	*next_io_port = (uint16_t)(port + VIRTIO_PCI_NOTIFY_PORT_SIZE);
	for (unsigned int q = 0; q < vdev->ops->num_queues; q++) {
		dev->kicks[q] = (struct virtio_kvm_kick){
			.handler = { .fd = dev->vp.queues[q].kick_fd, .ready = kick_ready }, .vp = &dev->vp, .queue = q,
		};
		what = "cannot watch its queues";
		if (io_thread_add(dev->io[vdev->queue_group[q]], &dev->kicks[q].handler))
			goto fail_transport;
	}
	if (vdev->ops->event_fds) {
		int fds[VIRTIO_MAX_EVENT_FDS];
		unsigned int n = vdev->ops->event_fds(vdev, fds, VIRTIO_MAX_EVENT_FDS);

		for (unsigned int i = 0; i < n && i < VIRTIO_MAX_EVENT_FDS; i++) {
			dev->events[i] = (struct virtio_kvm_event){
				.handler = { .fd = fds[i], .ready = device_event_ready }, .dev = dev, .index = i,
			};
			what = "cannot watch its backend";
			if (io_thread_add_edge(dev->io[vdev->event_group[i]], &dev->events[i].handler))
				goto fail_transport;
			dev->nr_events = i + 1;
		}
		vdev->watch_events = watch_events;
	}
	return dev;

fail_transport:
	virtio_pci_destroy(&dev->vp);
fail_dev:
	destroy(vdev);
	free(dev);
fail:
	log_error("%s: %s", name, what);
	return NULL;
}

void virtio_kvm_quiesce(struct virtio_kvm_device *dev)
{
	if (dev->vdev->ops->quiesce)
		dev->vdev->ops->quiesce(dev->vdev);
}

void virtio_kvm_remove(struct virtio_kvm_device *dev)
{
	virtio_pci_destroy(&dev->vp);
	dev->destroy(dev->vdev);
	free(dev);
}
