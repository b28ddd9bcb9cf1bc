/* vhost-net: the host kernel runs a virtio-net queue pair's data path between
 * guest memory and a tap queue; kvio only sets it up and tears it down. */
#ifndef KVIO_VHOST_VHOST_NET_H
#define KVIO_VHOST_VHOST_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/net.h"
#include "util/guest_mem.h"
#include "virtio/queue.h"

struct vhost_net;

/* One /dev/vhost-net instance per queue pair. NULL with *why set (and errno;
 * ENOENT when the host has no vhost-net) on failure. */
struct vhost_net *vhost_net_open(unsigned int queue_pairs, const char **why);
void vhost_net_close(struct vhost_net *vhost);

/* The VIRTIO_* / VIRTIO_NET_F_* bits the kernel can run: the device offers no others. */
uint64_t vhost_net_features(const struct vhost_net *vhost);

/* Hand queue pair qp (rx then tx) and tap queue tap_fd to the kernel, with
 * the negotiated features. Returns 0 or -errno; on failure nothing runs. */
int vhost_net_start(struct vhost_net *vhost, unsigned int qp, const struct guest_mem *mem, uint64_t features,
		    const struct net_ring rings[2], int tap_fd);
/* Take queue pair qp back: the rings' indices are where the kernel left them. */
void vhost_net_stop(struct vhost_net *vhost, unsigned int qp, const struct net_ring rings[2]);

#endif
