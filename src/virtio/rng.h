/* virtio-rng: entropy for the guest from the host's getrandom(). */
#ifndef KVIO_VIRTIO_RNG_H
#define KVIO_VIRTIO_RNG_H

#include "virtio/device.h"

struct virtio_dev *virtio_rng_create(void);
void virtio_rng_destroy(struct virtio_dev *vdev);

#endif
