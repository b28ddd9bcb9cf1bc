/* Network backends: where a NIC's frames go (a tap, user-mode networking...).
 * Every frame crossing this interface starts with a struct virtio_net_hdr_v1,
 * whatever the NIC model, so a tap with IFF_VNET_HDR passes frames through
 * untouched and offloads travel in one well-defined place. A new backend is
 * one file implementing these ops. */
#ifndef KVIO_BACKEND_NET_H
#define KVIO_BACKEND_NET_H

#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "config.h"

#define NET_HDR_LEN sizeof(struct virtio_net_hdr_v1)
#define NET_MAX_QUEUE_PAIRS 8
/* The largest frame a backend hands over: a 64 KiB GSO frame plus Ethernet
 * and VLAN headers (what Linux's tap may queue), or one MTU-sized frame. */
#define NET_MAX_GSO_FRAME (65535 + 14 + 4)
#define NET_ETH_OVERHEAD (14 + 4)
#define NET_MAX_FRAME (1500 + NET_ETH_OVERHEAD)

struct net_backend;
struct event_loop;
struct guest_mem;
struct virtq;
struct vhost_net;

/* A virtqueue handed to a data path outside kvio (vhost): the ring, the
 * eventfd guest kicks land on, and the eventfd that interrupts the guest. */
struct net_ring {
	struct virtq *vq;
	int kick_fd, call_fd;
};

struct net_backend_ops {
	const char *name;
	/* Send one frame (header first) on queue pair qp. Returns 0 or -errno. */
	int (*send)(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n);
	/* Optional: a burst of sends on qp is over (a NIC calls it after its
	 * transmit loop). Work a backend does once per burst rather than per
	 * frame happens here. */
	void (*flush)(struct net_backend *be, unsigned int qp);
	/* Receive one frame into iov (header first). Returns its length (header
	 * included), -EAGAIN when nothing is waiting, or another -errno. */
	ssize_t (*recv)(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n);
	/* Readable (edge-triggered) when queue pair qp may have frames: drain
	 * until -EAGAIN. NULL for a backend whose frames never pass through kvio. */
	int (*rx_fd)(struct net_backend *be, unsigned int qp);
	/* Optional: the guest accepts these offloads (VIRTIO_NET_F_GUEST_* bits) in received frames. */
	int (*set_guest_offloads)(struct net_backend *be, uint64_t guest_features);
	/* Optional: only the first n queue pairs are in use (multiqueue). */
	int (*set_queue_pairs)(struct net_backend *be, unsigned int n);
	/* Optional: run queue pair qp's rings (rx, tx) outside kvio with the
	 * negotiated features; -ENOTSUP when this backend cannot. Returns 0 or -errno. */
	int (*start_offload)(struct net_backend *be, unsigned int qp, const struct guest_mem *mem, uint64_t features,
			     const struct net_ring rings[2]);
	/* Take the rings back; their indices are where the outside data path left them. */
	void (*stop_offload)(struct net_backend *be, unsigned int qp, const struct net_ring rings[2]);
	/* Optional: the outside data path came back after link_changed(false)
	 * (a reconnected vhost-user backend): run the rings it had again, from
	 * what the guest's used rings say. Called with the NIC's locks held. */
	int (*resume_offload)(struct net_backend *be);
	/* Optional: stop calling link_changed (teardown). */
	void (*quiesce)(struct net_backend *be);
	void (*destroy)(struct net_backend *be);
};

struct net_backend {
	const struct net_backend_ops *ops;
	unsigned int queue_pairs;
	/* VIRTIO_NET_F_* offload bits the backend can carry in headers: the NIC offers only these. */
	uint64_t offloads;
	/* The link's MTU when the backend sets it (user networking), else 0 (1500,
	 * or whatever the host side of a tap says): a virtio NIC tells the guest
	 * (VIRTIO_NET_F_MTU) and takes frames of that size. */
	unsigned int mtu;
	bool has_offload;  /* start_offload can run the rings outside kvio (vhost) */
	/* With has_offload, non-zero: the only VIRTIO_NET_F_* data-path bits the
	 * outside data path runs (vhost-user: what its backend offers). */
	uint64_t ring_features;
	/* Set by the NIC: the backend calls it, from any thread, when its link
	 * goes down (the vhost-user backend went away) or up again. */
	void (*link_changed)(void *ctx, bool up);
	void *link_ctx;
};

/* A tap interface (created if missing), its data path in vhost-net when vhost
 * is not NULL (owned from here on). Returns NULL with *why set on failure. */
struct net_backend *net_tap_open(const char *ifname, unsigned int queue_pairs, struct vhost_net *vhost,
				 const char **why);
/* User-mode networking (libslirp) with QEMU's defaults and these forwarding
 * rules, on a link of this MTU (CONFIG_MIN_MTU to CONFIG_MAX_MTU); one queue
 * pair, whose only offload is receive checksums (the frames slirp builds are
 * marked valid). slirp's host sockets are watched on loop, which should be
 * the loop of the thread that serves the NIC's queue pair; it must outlive
 * the backend and not be running when the backend is destroyed. Returns NULL
 * with *why and errno set on failure. */
struct net_backend *net_user_open(const struct net_hostfwd *fwds, unsigned int nr_fwds, unsigned int mtu,
				  struct event_loop *loop, const char **why);
/* A vhost-user-net backend process at socket path: queue pairs run there.
 * reconnect_s > 0: when it goes away, retry every that many seconds and
 * resume. Returns NULL with *why and errno set on failure. */
struct net_backend *net_vhost_user_open(const char *path, unsigned int queue_pairs, unsigned int reconnect_s,
					const char **why);

#endif
