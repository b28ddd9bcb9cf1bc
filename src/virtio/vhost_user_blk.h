/* virtio-blk whose requests a vhost-user-blk backend process serves. */
#ifndef KVIO_VIRTIO_VHOST_USER_BLK_H
#define KVIO_VIRTIO_VHOST_USER_BLK_H

#include "virtio/device.h"

/* Connect to the backend at path and read its configuration. NULL on
 * failure, with the reason logged naming the option. */
struct virtio_dev *vhost_user_blk_create(const char *path, unsigned int queues);
void vhost_user_blk_destroy(struct virtio_dev *vdev);

#endif
