/* vhost-net setup through /dev/vhost-net's ioctls (linux/vhost.h): memory
 * table, ring addresses and indices, kick/call eventfds, and the tap queue. */
#include "vhost/vhost_net.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "backend/net.h"
#include "util/log.h"

#define VHOST_NET_DEVICE "/dev/vhost-net"

/* kvio's transport always negotiates these; a kernel without them cannot run our rings. */
#define VHOST_NET_REQUIRED ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_NET_F_MRG_RXBUF) | \
			    (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC))

struct vhost_net {
	unsigned int queue_pairs;
	uint64_t features;
	int fds[NET_MAX_QUEUE_PAIRS];
	bool running[NET_MAX_QUEUE_PAIRS];
};

void vhost_net_close(struct vhost_net *vhost)
{
	if (!vhost)
		return;
	for (unsigned int qp = 0; qp < vhost->queue_pairs; qp++) {
		if (vhost->fds[qp] >= 0)
			close(vhost->fds[qp]);
	}
	free(vhost);
}

struct vhost_net *vhost_net_open(unsigned int queue_pairs, const char **why)
{
	struct vhost_net *vhost = calloc(1, sizeof(*vhost));

	*why = "out of memory";
	if (!vhost)
		return NULL;
	if (queue_pairs > NET_MAX_QUEUE_PAIRS) {
		*why = "too many queue pairs";
		errno = EINVAL;
		free(vhost);
		return NULL;
	}
	for (unsigned int qp = 0; qp < NET_MAX_QUEUE_PAIRS; qp++)
		vhost->fds[qp] = -1;
	vhost->queue_pairs = queue_pairs;
	for (unsigned int qp = 0; qp < queue_pairs; qp++) {
		uint64_t features;

		vhost->fds[qp] = open(VHOST_NET_DEVICE, O_RDWR | O_CLOEXEC);
		if (vhost->fds[qp] < 0) {
			*why = errno == ENOENT ? "this host has no " VHOST_NET_DEVICE " (modprobe vhost_net)"
					       : "cannot open " VHOST_NET_DEVICE;
			goto fail;
		}
		/* The owner is this process: the kernel's worker thread joins our cgroups and mm. */
		*why = "VHOST_SET_OWNER";
		if (ioctl(vhost->fds[qp], VHOST_SET_OWNER) < 0)
			goto fail;
		*why = "VHOST_GET_FEATURES";
		if (ioctl(vhost->fds[qp], VHOST_GET_FEATURES, &features) < 0)
			goto fail;
		if ((features & VHOST_NET_REQUIRED) != VHOST_NET_REQUIRED) {
			*why = "the kernel's vhost-net lacks VERSION_1, MRG_RXBUF, EVENT_IDX or INDIRECT_DESC";
			errno = ENOTSUP;
			goto fail;
		}
		vhost->features = features;
	}
	return vhost;
fail: {
		int saved = errno;

		vhost_net_close(vhost);
		errno = saved;
		return NULL;
	}
}

uint64_t vhost_net_features(const struct vhost_net *vhost)
{
	return vhost->features;
}

static int set_mem_table(int fd, const struct guest_mem *mem)
{
	struct vhost_memory *table = calloc(1, sizeof(*table) + mem->nr_regions * sizeof(table->regions[0]));
	int ret;

	if (!table)
		return -ENOMEM;
	table->nregions = mem->nr_regions;
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		table->regions[i] = (struct vhost_memory_region){
			.guest_phys_addr = mem->regions[i].gpa,
			.memory_size = mem->regions[i].size,
			.userspace_addr = (uintptr_t)mem->regions[i].host,
		};
	}
	ret = ioctl(fd, VHOST_SET_MEM_TABLE, table) < 0 ? -errno : 0;
	free(table);
	return ret;
}

/* One ring (0 = rx, 1 = tx in vhost-net's numbering) from where kvio left it. */
static int set_ring(int fd, unsigned int index, const struct net_ring *ring)
{
	const struct virtq *vq = ring->vq;
	struct vhost_vring_state num = { .index = index, .num = vq->size };
	struct vhost_vring_state base = { .index = index, .num = vq->last_avail_idx };
	struct vhost_vring_addr addr = {
		.index = index,
		.desc_user_addr = (uintptr_t)vq->desc,
		.avail_user_addr = (uintptr_t)vq->avail,
		.used_user_addr = (uintptr_t)vq->used,
	};
	struct vhost_vring_file kick = { .index = index, .fd = ring->kick_fd };
	struct vhost_vring_file call = { .index = index, .fd = ring->call_fd };

	if (ioctl(fd, VHOST_SET_VRING_NUM, &num) < 0 || ioctl(fd, VHOST_SET_VRING_BASE, &base) < 0 ||
	    ioctl(fd, VHOST_SET_VRING_ADDR, &addr) < 0 || ioctl(fd, VHOST_SET_VRING_CALL, &call) < 0 ||
	    ioctl(fd, VHOST_SET_VRING_KICK, &kick) < 0)
		return -errno;
	return 0;
}

static void detach_backend(int fd, unsigned int rings)
{
	for (unsigned int i = 0; i < rings; i++) {
		struct vhost_vring_file none = { .index = i, .fd = -1 };

		if (ioctl(fd, VHOST_NET_SET_BACKEND, &none) < 0)
			log_warn("vhost-net: detaching ring %u: %s", i, strerror(errno));
	}
}

int vhost_net_start(struct vhost_net *vhost, unsigned int qp, const struct guest_mem *mem, uint64_t features,
		    const struct net_ring rings[2], int tap_fd)
{
	uint64_t run = features & vhost->features;
	int fd, err;

	if (qp >= vhost->queue_pairs || vhost->running[qp])
		return -EINVAL;
	fd = vhost->fds[qp];
	/* Without VHOST_NET_F_VIRTIO_NET_HDR the tap carries the 12-byte header
	 * (kvio set TUNSETVNETHDRSZ), so the kernel copies it as is. */
	if (ioctl(fd, VHOST_SET_FEATURES, &run) < 0)
		return -errno;
	err = set_mem_table(fd, mem);
	for (unsigned int i = 0; !err && i < 2; i++)
		err = set_ring(fd, i, &rings[i]);
	for (unsigned int i = 0; !err && i < 2; i++) {
		struct vhost_vring_file backend = { .index = i, .fd = tap_fd };

		if (ioctl(fd, VHOST_NET_SET_BACKEND, &backend) < 0) {
			err = -errno;
			detach_backend(fd, i);
		}
	}
	if (err)
		return err;
	vhost->running[qp] = true;
	return 0;
}

void vhost_net_stop(struct vhost_net *vhost, unsigned int qp, const struct net_ring rings[2])
{
	int fd;

	if (qp >= vhost->queue_pairs || !vhost->running[qp])
		return;
	fd = vhost->fds[qp];
	detach_backend(fd, 2);
	for (unsigned int i = 0; i < 2; i++) {
		struct vhost_vring_state base = { .index = i };
		struct virtq *vq = rings[i].vq;

		/* The kernel published every buffer it consumed: continue from there. */
		if (ioctl(fd, VHOST_GET_VRING_BASE, &base) < 0) {
			log_warn("vhost-net: ring %u: VHOST_GET_VRING_BASE: %s", i, strerror(errno));
			continue;
		}
		vq->last_avail_idx = (uint16_t)base.num;
		vq->used_idx = le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
		vq->signalled_used_valid = false;
	}
	vhost->running[qp] = false;
}
