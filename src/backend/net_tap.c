/* tap backend: one /dev/net/tun queue per queue pair, frames carry a 12-byte
 * virtio-net header (IFF_VNET_HDR + TUNSETVNETHDRSZ), so checksum and
 * segmentation offloads pass between the guest and the host stack as is. */
#include "backend/net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"
#include "vhost/vhost_net.h"

struct net_tap {
	struct net_backend be;
	char ifname[IFNAMSIZ];
	int fds[NET_MAX_QUEUE_PAIRS];
	struct vhost_net *vhost;  /* NULL: kvio moves the frames itself */
};

static int tap_send(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	struct net_tap *tap = (struct net_tap *)be;
	ssize_t done;

	do {
		done = writev(tap->fds[qp], iov, (int)n);
	} while (done < 0 && errno == EINTR);
	return done < 0 ? -errno : 0;
}

static ssize_t tap_recv(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	struct net_tap *tap = (struct net_tap *)be;
	ssize_t done;

	do {
		done = readv(tap->fds[qp], iov, (int)n);
	} while (done < 0 && errno == EINTR);
	return done < 0 ? -errno : done;
}

static int tap_rx_fd(struct net_backend *be, unsigned int qp)
{
	return ((struct net_tap *)be)->fds[qp];
}

static int tap_set_guest_offloads(struct net_backend *be, uint64_t f)
{
	struct net_tap *tap = (struct net_tap *)be;
	unsigned int offload = 0;

	/* What the host may hand the guest: partial checksums, TSO frames. */
	if (f & (1ULL << VIRTIO_NET_F_GUEST_CSUM)) {
		offload |= TUN_F_CSUM;
		if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO4))
			offload |= TUN_F_TSO4;
		if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO6))
			offload |= TUN_F_TSO6;
		if ((offload & (TUN_F_TSO4 | TUN_F_TSO6)) && (f & (1ULL << VIRTIO_NET_F_GUEST_ECN)))
			offload |= TUN_F_TSO_ECN;
	}
	for (unsigned int q = 0; q < be->queue_pairs; q++) {
		if (ioctl(tap->fds[q], TUNSETOFFLOAD, offload) < 0) {
			log_warn("tap %s: TUNSETOFFLOAD: %s", tap->ifname, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static int tap_set_queue_pairs(struct net_backend *be, unsigned int n)
{
	struct net_tap *tap = (struct net_tap *)be;

	/* A detached queue gets no traffic steered to it by the host. */
	for (unsigned int q = 0; q < be->queue_pairs && be->queue_pairs > 1; q++) {
		struct ifreq ifr = { .ifr_flags = q < n ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE };

		if (ioctl(tap->fds[q], TUNSETQUEUE, &ifr) < 0 && errno != EINVAL) {
			log_warn("tap %s: TUNSETQUEUE %u: %s", tap->ifname, q, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static int tap_start_offload(struct net_backend *be, unsigned int qp, const struct guest_mem *mem,
			     uint64_t features, const struct net_ring rings[2])
{
	struct net_tap *tap = (struct net_tap *)be;

	return tap->vhost ? vhost_net_start(tap->vhost, qp, mem, features, rings, tap->fds[qp]) : -ENOTSUP;
}

static void tap_stop_offload(struct net_backend *be, unsigned int qp, const struct net_ring rings[2])
{
	struct net_tap *tap = (struct net_tap *)be;

	if (tap->vhost)
		vhost_net_stop(tap->vhost, qp, rings);
}

static void tap_destroy(struct net_backend *be)
{
	struct net_tap *tap = (struct net_tap *)be;

	vhost_net_close(tap->vhost);  /* first: the kernel stops using the tap queues */
	for (unsigned int q = 0; q < NET_MAX_QUEUE_PAIRS; q++)
		if (tap->fds[q] >= 0)
			close(tap->fds[q]);
	free(tap);
}

static const struct net_backend_ops tap_ops = {
	.name = "tap",
	.send = tap_send,
	.recv = tap_recv,
	.rx_fd = tap_rx_fd,
	.set_guest_offloads = tap_set_guest_offloads,
	.set_queue_pairs = tap_set_queue_pairs,
	.start_offload = tap_start_offload,
	.stop_offload = tap_stop_offload,
	.destroy = tap_destroy,
};

/* Bring the host side up, as a freshly created tap is down. */
static int link_up(const char *ifname)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (s < 0)
		return -errno;
	strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		err = -errno;
	} else if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			err = -errno;
	}
	close(s);
	return err;
}

struct net_backend *net_tap_open(const char *ifname, unsigned int queue_pairs, struct vhost_net *vhost,
				 const char **why)
{
	struct net_tap *tap = calloc(1, sizeof(*tap));
	int hdr_len = (int)NET_HDR_LEN;
	int unlimited = INT_MAX;
	unsigned int features = 0;

	if (!tap) {
		vhost_net_close(vhost);
		*why = "out of memory";
		return NULL;
	}
	tap->vhost = vhost;
	for (unsigned int q = 0; q < NET_MAX_QUEUE_PAIRS; q++)
		tap->fds[q] = -1;
	tap->be = (struct net_backend){
		.ops = &tap_ops, .queue_pairs = queue_pairs,
		.offloads = (1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |
			    (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_HOST_TSO6) |
			    (1ULL << VIRTIO_NET_F_HOST_ECN) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) |
			    (1ULL << VIRTIO_NET_F_GUEST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_ECN),
	};
	tap->be.has_offload = vhost != NULL;
	strncpy(tap->ifname, ifname, IFNAMSIZ - 1);
	for (unsigned int q = 0; q < queue_pairs; q++) {
		struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR |
						  (queue_pairs > 1 ? IFF_MULTI_QUEUE : 0) };

		tap->fds[q] = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (tap->fds[q] < 0) {
			*why = "cannot open /dev/net/tun";
			goto fail;
		}
		if (q == 0 && ioctl(tap->fds[q], TUNGETFEATURES, &features) == 0 &&
		    (!(features & IFF_VNET_HDR) || (queue_pairs > 1 && !(features & IFF_MULTI_QUEUE)))) {
			errno = EOPNOTSUPP;
			*why = queue_pairs > 1 ? "the host's tun driver lacks vnet headers or multiqueue"
					       : "the host's tun driver lacks vnet headers";
			goto fail;
		}
		strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
		if (ioctl(tap->fds[q], TUNSETIFF, &ifr) < 0) {
			*why = queue_pairs > 1 ? "TUNSETIFF failed (an existing tap must have been created multi_queue)"
					       : "TUNSETIFF failed (an existing tap created multi_queue needs queues=N)";
			goto fail;
		}
		if (ioctl(tap->fds[q], TUNSETVNETHDRSZ, &hdr_len) < 0) {
			*why = "TUNSETVNETHDRSZ failed";
			goto fail;
		}
		/* No send-buffer cap (as QEMU does): with the default ~200 KiB, a
		 * burst of guest frames, ours or vhost-net's, fails with EAGAIN
		 * and is dropped or stalled while the host stack still holds the
		 * earlier ones. */
		if (ioctl(tap->fds[q], TUNSETSNDBUF, &unlimited) < 0) {
			*why = "TUNSETSNDBUF failed";
			goto fail;
		}
		/* Nothing offloaded towards the guest until it negotiates it. */
		if (ioctl(tap->fds[q], TUNSETOFFLOAD, 0) < 0) {
			*why = "TUNSETOFFLOAD failed";
			goto fail;
		}
	}
	if (link_up(ifname)) {
		*why = "cannot bring the interface up";
		goto fail;
	}
	return &tap->be;
fail:
	{
		int err = errno;

		tap_destroy(&tap->be);
		errno = err;
	}
	return NULL;
}
