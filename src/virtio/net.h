/* virtio-net (VIRTIO 1.x 5.1) over a network backend (src/backend/net.h). */
#ifndef KVIO_VIRTIO_NET_H
#define KVIO_VIRTIO_NET_H

#include <stdint.h>

#include "backend/net.h"
#include "virtio/device.h"

struct virtio_net_options {
	struct net_backend *backend;  /* owned by the device from here on */
	uint8_t mac[6];
	unsigned int queue_pairs;     /* 1 to NET_MAX_QUEUE_PAIRS; more than 1 offers VIRTIO_NET_F_MQ */
};

struct virtio_net_stats {
	uint64_t rx_frames, rx_bytes, rx_dropped;
	uint64_t tx_frames, tx_bytes, tx_dropped;
};

struct virtio_dev *virtio_net_create(const struct virtio_net_options *opts);
void virtio_net_destroy(struct virtio_dev *vdev);

/* Counters of queue pair qp (call with the device lock held, or racily for display). */
struct virtio_net_stats virtio_net_stats(struct virtio_dev *vdev, unsigned int qp);

#endif
