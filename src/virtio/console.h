/* virtio-console (VIRTIO 1.x 5.3), one port: the guest's hvc0. */
#ifndef KVIO_VIRTIO_CONSOLE_H
#define KVIO_VIRTIO_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "virtio/device.h"

/* Guest output goes to out_fd. */
struct virtio_dev *virtio_console_create(int out_fd);
void virtio_console_destroy(struct virtio_dev *vdev);

/* Host input for the guest: copied straight into the guest's receive buffers.
 * Blocks until all of buf is taken; returns early once input is closed. */
void virtio_console_input(struct virtio_dev *vdev, const uint8_t *buf, size_t len);
/* Wake and refuse any waiting writer: the machine is shutting down. */
void virtio_console_close_input(struct virtio_dev *vdev);

#endif
