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
#define VIRTIO_MAX_QUEUE_GROUPS 8

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
	/* The guest kicked queue q (called on q's I/O thread, with q's group
	 * lock held). Work is budgeted: return true if buffers were left for
	 * another round. */
	bool (*queue_kick)(struct virtio_dev *vdev, unsigned int q);
	/* Optional: the driver set DRIVER_OK; the negotiated features are final (lock held). */
	void (*driver_ok)(struct virtio_dev *vdev);
	/* The driver reset the device: finish in-flight work, drop queue state (device lock held). */
	void (*reset)(struct virtio_dev *vdev);
	/* Optional: finish every in-flight request the normal way (status,
	 * used element, used_notify) without taking new ones, so each queue's
	 * used ring accounts for everything popped from it (lock held). For
	 * hosts that hand a running ring back and resume it later at the index
	 * the device reached: a vhost-user backend at GET_VRING_BASE. Unlike
	 * reset, the device keeps running afterwards. */
	void (*drain)(struct virtio_dev *vdev);
	/* Optional: the driver reset queue q alone (VIRTIO_F_RING_RESET) while the
	 * device runs (lock held). Drop q's in-flight requests and any backend
	 * state tied to q without using q's rings again: the transport forgets
	 * them when this returns, and q is not kicked until the driver enables it
	 * again, maybe with another size and other rings. Offered only while
	 * virtio_dev.ring_reset is true. */
	void (*queue_reset)(struct virtio_dev *vdev, unsigned int q);
	/* Optional: stop the device's own threads that call into the transport
	 * (a vhost-user watcher); at teardown, before the I/O threads and the
	 * transport go away. */
	void (*quiesce)(struct virtio_dev *vdev);
	/* Optional: fds the I/O thread watches, edge-triggered, for the device's
	 * own events (a backend's completions, a tap's frames): event_fds fills in
	 * up to max and returns how many; event_ready(i) runs when fd i became
	 * readable (with event i's group lock held) and must drain it, or
	 * arrange to come back. */
	unsigned int (*event_fds)(struct virtio_dev *vdev, int *fds, unsigned int max);
	void (*event_ready)(struct virtio_dev *vdev, unsigned int index);
};

/* Queue groups: queues that share no state with other groups' queues (a
 * virtio-net queue pair and its backend queue), so that each group can run on
 * its own I/O thread under its own lock. Group 0 runs under the device lock;
 * a device that sets nothing has everything in group 0. Lock order: the
 * device lock, then groups 1.. in ascending order, then the transport's
 * interrupt lock. Control-plane changes (status, queue setup, MSI-X) hold
 * them all; a group's data path holds only its own. */
struct virtio_dev {
	const struct virtio_device_ops *ops;
	pthread_mutex_t lock;            /* the device lock: control plane, and group 0's queues */
	unsigned int nr_groups;          /* 0 or 1: one group */
	uint8_t queue_group[VIRTIO_MAX_QUEUES];
	uint8_t event_group[VIRTIO_MAX_EVENT_FDS];
	pthread_mutex_t group_lock[VIRTIO_MAX_QUEUE_GROUPS];  /* groups 1..; set up by the transport */
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
	/* The device changed its configuration space on its own (a link went
	 * down): tell the driver with a configuration interrupt (device lock held). */
	void (*config_changed)(struct virtio_dev *vdev);
	/* Optional (NULL without an I/O thread): stop or resume watching the
	 * device's event fds, while another server consumes them. */
	void (*watch_events)(struct virtio_dev *vdev, bool watch);
	void *transport;
};

static inline pthread_mutex_t *virtio_group_lock(struct virtio_dev *vdev, unsigned int group)
{
	return group ? &vdev->group_lock[group] : &vdev->lock;
}

/* With the device lock held: take (or drop) every other group's lock too,
 * for work that reaches into all groups' queues. */
static inline void virtio_lock_groups(struct virtio_dev *vdev)
{
	for (unsigned int g = 1; g < vdev->nr_groups; g++)
		pthread_mutex_lock(&vdev->group_lock[g]);
}

static inline void virtio_unlock_groups(struct virtio_dev *vdev)
{
	for (unsigned int g = vdev->nr_groups; g-- > 1;)
		pthread_mutex_unlock(&vdev->group_lock[g]);
}

/* Interrupt the guest for queue q if its suppression state asks for it. */
static inline void virtio_dev_notify(struct virtio_dev *vdev, unsigned int q)
{
	vdev->used_notify(vdev, q);
}

#endif
