/* What a virtio device is to its transport: an ops table plus the queues the
 * transport sets up for it. Devices never see PCI or KVM; adding one is a new
 * file with its ops table and one registration line. */
#ifndef KVIO_VIRTIO_DEVICE_H
#define KVIO_VIRTIO_DEVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio/queue.h"

#define VIRTIO_MAX_QUEUES 32
#define VIRTIO_MAX_EVENT_FDS 8

struct virtio_dev;

struct virtio_device_ops {
	const char *name;
	uint16_t type;           /* VIRTIO_ID_*: the PCI device ID is 0x1040 + type */
	uint64_t features;       /* device-specific feature bits offered */
	uint16_t num_queues;
	uint16_t queue_size;     /* largest size each queue may be given */
	uint32_t config_size;    /* bytes of device-specific configuration */
	void (*config_read)(struct virtio_dev *vdev, uint32_t offset, void *buf, uint32_t len);
	void (*config_write)(struct virtio_dev *vdev, uint32_t offset, const void *buf, uint32_t len);
	/* The guest kicked queue q (called on the I/O thread, device lock held).
	 * Work is budgeted: return true if buffers were left for another round. */
	bool (*queue_kick)(struct virtio_dev *vdev, unsigned int q);
	/* Optional: the driver set DRIVER_OK; the negotiated features are final (lock held). */
	void (*driver_ok)(struct virtio_dev *vdev);
	/* The driver reset the device: finish in-flight work, drop queue state (device lock held). */
	void (*reset)(struct virtio_dev *vdev);
	/* Optional: the driver reset queue q alone (VIRTIO_F_RING_RESET) while the
	 * device runs (lock held). Drop q's in-flight requests and any backend
	 * state tied to q without using q's rings again: the transport forgets
	 * them when this returns, and q is not kicked until the driver enables it
	 * again, maybe with another size and other rings. Offered only while
	 * virtio_dev.ring_reset is true. */
	void (*queue_reset)(struct virtio_dev *vdev, unsigned int q);
	/* Optional: fds the I/O thread watches, edge-triggered, for the device's
	 * own events (a backend's completions, a tap's frames): event_fds fills in
	 * up to max and returns how many; event_ready(i) runs when fd i became
	 * readable (lock held) and must drain it, or arrange to come back. */
	unsigned int (*event_fds)(struct virtio_dev *vdev, int *fds, unsigned int max);
	void (*event_ready)(struct virtio_dev *vdev, unsigned int index);
};

struct virtio_dev {
	const struct virtio_device_ops *ops;
	pthread_mutex_t lock;            /* one lock per device: vCPU config accesses vs the I/O thread */
	struct virtq vq[VIRTIO_MAX_QUEUES];
	bool vq_ready[VIRTIO_MAX_QUEUES];
	uint64_t features;               /* negotiated */
	/* Set by the device (at create and reset, before features are read): it
	 * can reset single queues now, so the transport offers VIRTIO_F_RING_RESET
	 * if ops->queue_reset is set. False while an outside server (vhost) owns
	 * rings. */
	bool ring_reset;
	/* Filled in by the transport. */
	void (*used_notify)(struct virtio_dev *vdev, unsigned int q);
	void (*set_needs_reset)(struct virtio_dev *vdev);
	/* Run queue_kick(q) again soon, after other work: for devices that stop
	 * at a budget where no new event would bring them back. */
	void (*requeue)(struct virtio_dev *vdev, unsigned int q);
	/* For queues another server runs (vhost): kvio stops reading q's kick
	 * eventfd and returns it in *kick_fd, and *call_fd is an eventfd that
	 * interrupts the guest for q without kvio (the vector's irqfd). Returns
	 * -ENOTSUP when that is impossible (MSI-X off, no vector, no KVM). */
	int (*offload_queue)(struct virtio_dev *vdev, unsigned int q, int *kick_fd, int *call_fd);
	/* kvio serves q again; kicks that arrived meanwhile are processed. */
	void (*reclaim_queue)(struct virtio_dev *vdev, unsigned int q);
	/* Optional (NULL without an I/O thread): stop or resume watching the
	 * device's event fds, while another server consumes them. */
	void (*watch_events)(struct virtio_dev *vdev, bool watch);
	void *transport;
};

/* Interrupt the guest for queue q if its suppression state asks for it. */
static inline void virtio_dev_notify(struct virtio_dev *vdev, unsigned int q)
{
	vdev->used_notify(vdev, q);
}

#endif
