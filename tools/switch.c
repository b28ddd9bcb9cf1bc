/* A learning switch over vhost-user-net ports. A frame a guest puts on its
 * TX ring is copied out once, its source MAC learned, and copied into the RX
 * ring of the port that last sent from its destination MAC, or into every
 * other port (and the uplink) for broadcast, multicast and unknown
 * destinations. Nothing is queued: a port without RX buffers loses the frame
 * and counts it. Work per wake-up is bounded (TX_BUDGET, UPLINK_BUDGET).
 *
 * Offloads pass through: a frame's virtio-net header (partial checksum, TSO)
 * travels with it to every port that negotiated what it asks for, as QEMU's
 * and OVS-DPDK's vhost-user peers do, so guests exchange 64 KiB TSO frames
 * without a checksum computed anywhere. A port that did not negotiate them
 * gets the checksum finished, or the TCP segments, in software (offload.h).
 * A header the sender may not send, or one pointing outside its frame, drops
 * the frame. */
#include "switch.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "offload.h"
#include "util/iov.h"
#include "util/log.h"
#include "vhost/vhost_user_backend.h"

#define TX_BUDGET 256      /* TX chains per kick before yielding to the other ports */
#define UPLINK_BUDGET 64   /* uplink frames per wake-up */
#define MAC_TABLE_SIZE 256
/* Largest frame: a TSO frame (or one under a 64 KiB MTU), 64 KiB less one of
 * IP packet plus Ethernet and VLAN headers. Larger ones are dropped. */
#define FRAME_MAX (65535 + 14 + 4)
#define ETH_HLEN 14
#define VNET_HDR_LEN sizeof(struct virtio_net_hdr_v1)
/* Offloads a port may negotiate; frames carry them both ways. */
#define OFFLOAD_FEATURES                                                                                     \
	((1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_HOST_TSO4) |   \
	 (1ULL << VIRTIO_NET_F_HOST_TSO6) | (1ULL << VIRTIO_NET_F_HOST_ECN) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) | \
	 (1ULL << VIRTIO_NET_F_GUEST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_ECN))

enum handler_kind { H_LISTEN, H_SOCKET, H_KICK, H_UPLINK };

/* An event_handler that knows what it watches, its port (and ring, for kicks). */
struct sw_handler {
	struct event_handler h;
	enum handler_kind kind;
	struct vswitch *sw;
	unsigned int port;
	unsigned int q;
	bool registered;
};

struct port {
	char name[16];
	struct vhost_user_backend *be;  /* NULL: no frontend */
	struct sw_handler listen, sock, kick[2];
	size_t hdr_len;                 /* virtio-net header: 12, or 10 for a legacy driver without MRG_RXBUF */
	bool mrg_rxbuf;
	unsigned int rx_offloads;       /* OFFLOAD_*: what its driver takes in frames, */
	unsigned int tx_offloads;       /* and may send */
	bool close_pending;             /* its ring broke while another port delivered to it */
	struct vswitch_counters c;
};

struct mac_entry {
	uint8_t mac[6];
	bool used;
	uint16_t port;
};

struct vswitch {
	struct event_loop loop;
	unsigned int nports;
	struct port ports[VSWITCH_MAX_PORTS];
	struct net_backend *uplink;
	struct sw_handler uplink_h;
	struct vswitch_counters uplink_c;
	unsigned int uplink_rx_offloads, uplink_tx_offloads;  /* as a port's */
	struct mac_entry macs[MAC_TABLE_SIZE];
	unsigned int mac_next;          /* the entry replaced when the table is full */
	/* Scratch: one frame with the largest header in front (and a byte more,
	 * which tells a frame from the uplink too large for it), and chains' iovecs. */
	uint8_t frame[VNET_HDR_LEN + FRAME_MAX + 1];
	struct iovec iov[VIRTQ_MAX_IOV];
	struct iovec first_iov[VIRTQ_MAX_IOV];
	uint16_t heads[VIRTQ_MAX_SIZE];
	uint32_t lens[VIRTQ_MAX_SIZE];
};

static const uint64_t offered_features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_NET_F_MRG_RXBUF) |
					 (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) |
					 OFFLOAD_FEATURES;

/* A frame on its way through: its header as it came (num_buffers 0), and
 * its checksum once finished for a port that needed that. */
struct pkt {
	struct virtio_net_hdr_v1 vh;
	const uint8_t *data;
	size_t len;
	bool csum_done;
	uint16_t csum;
};

static void handler_add(struct vswitch *sw, struct sw_handler *h, int fd)
{
	h->h.fd = fd;
	if (event_loop_add(&sw->loop, &h->h, EPOLLIN) == 0)
		h->registered = true;
	else
		log_warn("cannot watch fd %d: %s", fd, strerror(errno));
}

static void handler_remove(struct vswitch *sw, struct sw_handler *h)
{
	if (h->registered)
		event_loop_remove(&sw->loop, &h->h);
	h->registered = false;
}

/* --- the MAC table: small and searched linearly --- */

static bool is_multicast(const uint8_t *mac)
{
	return mac[0] & 1;  /* broadcast included */
}

static int mac_lookup(const struct vswitch *sw, const uint8_t *mac)
{
	for (unsigned int i = 0; i < MAC_TABLE_SIZE; i++) {
		if (sw->macs[i].used && !memcmp(sw->macs[i].mac, mac, 6))
			return sw->macs[i].port;
	}
	return -1;
}

static void mac_learn(struct vswitch *sw, const uint8_t *mac, unsigned int port)
{
	struct mac_entry *free_entry = NULL;

	if (is_multicast(mac))
		return;
	for (unsigned int i = 0; i < MAC_TABLE_SIZE; i++) {
		struct mac_entry *e = &sw->macs[i];

		if (e->used && !memcmp(e->mac, mac, 6)) {
			e->port = (uint16_t)port;  /* the station moved, or nothing changed */
			return;
		}
		if (!e->used && !free_entry)
			free_entry = e;
	}
	if (!free_entry) {
		free_entry = &sw->macs[sw->mac_next];
		sw->mac_next = (sw->mac_next + 1) % MAC_TABLE_SIZE;
	}
	memcpy(free_entry->mac, mac, 6);
	free_entry->port = (uint16_t)port;
	free_entry->used = true;
}

static void mac_forget_port(struct vswitch *sw, unsigned int port)
{
	for (unsigned int i = 0; i < MAC_TABLE_SIZE; i++) {
		if (sw->macs[i].used && sw->macs[i].port == port)
			sw->macs[i].used = false;
	}
}

/* --- delivery --- */

/* Copy bytes [from, from + room) of the pieces in src into iov; returns how many. */
static size_t fill_chain(const struct iovec *iov, unsigned int n, const struct iovec *src, unsigned int nsrc,
			 size_t from)
{
	unsigned int s = 0;
	size_t s_off = from, done = 0;

	/* Find the piece where byte "from" is. */
	while (s < nsrc && s_off >= src[s].iov_len) {
		s_off -= src[s].iov_len;
		s++;
	}
	for (unsigned int i = 0; i < n && s < nsrc; i++) {
		uint8_t *dst = iov[i].iov_base;
		size_t room = iov[i].iov_len;

		while (room && s < nsrc) {
			size_t chunk = src[s].iov_len - s_off;

			if (chunk > room)
				chunk = room;
			memcpy(dst, (const uint8_t *)src[s].iov_base + s_off, chunk);
			dst += chunk;
			room -= chunk;
			done += chunk;
			s_off += chunk;
			if (s_off == src[s].iov_len) {
				s++;
				s_off = 0;
			}
		}
	}
	return done;
}

/* Put one frame (header, then the frame's pieces, len bytes in all) on port
 * p's RX ring: as many chains as it takes with MRG_RXBUF (their count in
 * num_buffers), else one. Dropped and counted when the ring has too little
 * room; nothing is taken from the ring then. Returns whether it went. */
static bool deliver_port(struct vswitch *sw, struct port *p, const struct virtio_net_hdr_v1 *vh,
			 const struct iovec *parts, unsigned int nparts, size_t len)
{
	struct virtq *vq = vhost_user_backend_vq(p->be, VSWITCH_RXQ);
	struct virtio_net_hdr_v1 hdr = *vh;
	struct iovec src[4];
	struct iovec *first_in = NULL;
	unsigned int nbufs = 0, max_bufs, first_in_n = 0;
	size_t copied = 0, total;

	if (!vq || p->close_pending) {
		p->c.drops++;
		return false;
	}
	src[0] = (struct iovec){ &hdr, p->hdr_len };
	memcpy(src + 1, parts, nparts * sizeof(*parts));
	total = p->hdr_len + len;
	max_bufs = p->mrg_rxbuf ? vq->size : 1;
	while (copied < total) {
		struct virtq_elem elem;
		struct iovec *in;
		size_t n;
		int r;

		if (nbufs == max_bufs)
			goto drop;
		virtq_elem_init(&elem, nbufs ? sw->iov : sw->first_iov, VIRTQ_MAX_IOV);
		r = virtq_pop(vq, &elem);
		if (r < 0) {
			/* The guest broke its ring: its port is disconnected after this event. */
			log_warn("%s: RX ring broken by the guest: %s", p->name, vq->broken_reason);
			p->close_pending = true;
			goto drop;
		}
		if (r == 0)
			goto drop;
		nbufs++;
		/* A chain with no room (or none for the header) would carry nothing. */
		if (elem.in_len == 0 || (nbufs == 1 && elem.in_len < p->hdr_len))
			goto drop;
		in = elem.iov + elem.out_num;
		if (nbufs == 1) {
			first_in = in;
			first_in_n = elem.in_num;
		}
		n = fill_chain(in, elem.in_num, src, nparts + 1, copied);
		sw->heads[nbufs - 1] = elem.head;
		sw->lens[nbufs - 1] = (uint32_t)n;
		copied += n;
	}
	/* Only now is the count known: rewrite the header at the start of the first chain. */
	if (p->hdr_len == sizeof(hdr)) {
		hdr.num_buffers = htole16((uint16_t)nbufs);
		iov_from_buf(first_in, first_in_n, &hdr, sizeof(hdr));
	}
	for (unsigned int i = 0; i < nbufs; i++)
		virtq_push(vq, sw->heads[i], sw->lens[i]);
	vhost_user_backend_notify(p->be, VSWITCH_RXQ);
	p->c.rx_frames++;
	p->c.rx_bytes += len;
	return true;
drop:
	virtq_unpop(vq, (uint16_t)nbufs);
	p->c.drops++;
	return false;
}

static bool deliver_uplink(struct vswitch *sw, const struct virtio_net_hdr_v1 *vh, const struct iovec *parts,
			   unsigned int nparts, size_t len)
{
	struct iovec iov[4] = { { (void *)vh, VNET_HDR_LEN } };

	memcpy(iov + 1, parts, nparts * sizeof(*parts));
	if (sw->uplink->ops->send(sw->uplink, 0, iov, nparts + 1)) {
		sw->uplink_c.drops++;
		return false;
	}
	sw->uplink_c.rx_frames++;
	sw->uplink_c.rx_bytes += len;
	return true;
}

static bool deliver_one(struct vswitch *sw, unsigned int to, const struct virtio_net_hdr_v1 *vh,
			const struct iovec *parts, unsigned int nparts, size_t len)
{
	if (to == sw->nports)
		return deliver_uplink(sw, vh, parts, nparts, len);
	return deliver_port(sw, &sw->ports[to], vh, parts, nparts, len);
}

static struct vswitch_counters *counters(struct vswitch *sw, unsigned int port)
{
	return port == sw->nports ? &sw->uplink_c : &sw->ports[port].c;
}

/* Hand the frame to port to (nports: the uplink) in the form it takes. */
static void deliver(struct vswitch *sw, unsigned int to, struct pkt *pkt)
{
	unsigned int accepts = to == sw->nports ? sw->uplink_rx_offloads : sw->ports[to].rx_offloads;
	struct virtio_net_hdr_v1 vh;
	struct offload_seg seg;
	struct iovec parts[3];
	size_t at, seg_len;

	switch (offload_action(&pkt->vh, accepts, &vh)) {
	case OFFLOAD_AS_IS:
		parts[0] = (struct iovec){ (void *)pkt->data, pkt->len };
		deliver_one(sw, to, &vh, parts, 1, pkt->len);
		break;
	case OFFLOAD_FINISH_CSUM:
		/* The same frame may go as it is to other ports: the checksum goes in as a piece of its own. */
		if (!pkt->csum_done) {
			pkt->csum = offload_csum(&pkt->vh, pkt->data, pkt->len);
			pkt->csum_done = true;
		}
		at = (size_t)le16toh(pkt->vh.csum_start) + le16toh(pkt->vh.csum_offset);
		parts[0] = (struct iovec){ (void *)pkt->data, at };
		parts[1] = (struct iovec){ &pkt->csum, 2 };
		parts[2] = (struct iovec){ (void *)(pkt->data + at + 2), pkt->len - at - 2 };
		if (deliver_one(sw, to, &vh, parts, 3, pkt->len))
			counters(sw, to)->csum_sw++;
		break;
	case OFFLOAD_SEGMENT:
		if (offload_seg_start(&seg, &pkt->vh, pkt->data, pkt->len)) {
			counters(sw, to)->drops++;  /* not reached: the frame was checked */
			break;
		}
		/* A segment that finds no room ends the frame there: one drop. */
		while (offload_seg_next(&seg, parts, &seg_len)) {
			if (!deliver_one(sw, to, &vh, parts, 2, seg_len))
				return;
		}
		counters(sw, to)->segmented++;
		break;
	}
}

static bool attached(const struct vswitch *sw, unsigned int port)
{
	return port == sw->nports ? sw->uplink != NULL : sw->ports[port].be != NULL;
}

/* One frame that entered on port from (nports: the uplink), its header checked. */
static void forward(struct vswitch *sw, unsigned int from, struct pkt *pkt)
{
	const uint8_t *dst = pkt->data, *src = pkt->data + 6;
	int to;

	mac_learn(sw, src, from);
	if (!is_multicast(dst) && (to = mac_lookup(sw, dst)) >= 0) {
		if ((unsigned int)to != from)
			deliver(sw, (unsigned int)to, pkt);
		return;
	}
	for (unsigned int i = 0; i <= sw->nports; i++) {
		if (i != from && attached(sw, i))
			deliver(sw, i, pkt);
	}
}

/* A frame from port from with its header (hdr_len bytes of it) in front:
 * checked against what the sender may send, then forwarded. */
static void enter(struct vswitch *sw, unsigned int from, const uint8_t *buf, size_t hdr_len, size_t len,
		  unsigned int allowed)
{
	struct vswitch_counters *c = counters(sw, from);
	struct pkt pkt = { .data = buf + hdr_len, .len = len };
	const char *why;

	memcpy(&pkt.vh, buf, hdr_len);  /* a legacy 10-byte header: num_buffers stays 0 */
	pkt.vh.num_buffers = 0;
	if (offload_check(&pkt.vh, pkt.data, len, allowed, &why)) {
		/* Logged at the 1st, 2nd, 4th, 8th... refusal: a hostile guest cannot flood the log. */
		if (!(c->invalid & (c->invalid - 1)))
			log_warn("%s: frame refused (%llu so far): %s", from == sw->nports ? "uplink" : sw->ports[from].name,
				 (unsigned long long)c->invalid + 1, why);
		c->invalid++;
		c->drops++;
		return;
	}
	c->tx_frames++;
	c->tx_bytes += len;
	forward(sw, from, &pkt);
}

/* --- ports --- */

static void port_reap(struct vswitch *sw);

/* The guest's TX ring: copy each frame out, give the chain back, forward. */
static int port_tx(struct vswitch *sw, unsigned int index)
{
	struct port *p = &sw->ports[index];
	struct virtq *vq = vhost_user_backend_vq(p->be, VSWITCH_TXQ);
	unsigned int done = 0;

	if (!vq)
		return 0;
	virtq_disable_kicks(vq);
	for (;;) {
		struct virtq_elem elem;
		size_t len;
		int r;

		if (done == TX_BUDGET) {
			/* More waiting: come back after the other ports had their turn.
			 * Kicks stay off, so poke our own kick fd. */
			static const uint64_t one = 1;

			if (write(vhost_user_backend_kick_fd(p->be, VSWITCH_TXQ), &one, sizeof(one)) < 0)
				virtq_enable_kicks(vq);
			break;
		}
		virtq_elem_init(&elem, sw->iov, VIRTQ_MAX_IOV);
		r = virtq_pop(vq, &elem);
		if (r < 0)
			return -EPROTO;
		if (r == 0) {
			if (!virtq_enable_kicks(vq))
				break;
			virtq_disable_kicks(vq);  /* buffers arrived meanwhile: drain them too */
			continue;
		}
		done++;
		len = elem.out_len;
		if (elem.in_num || len < p->hdr_len + ETH_HLEN || len > p->hdr_len + FRAME_MAX) {
			p->c.drops++;  /* writable buffers on TX, a runt or a giant */
			p->c.invalid++;
		} else {
			iov_to_buf(elem.iov, elem.out_num, sw->frame, len);
			/* Drivers must not set DATA_VALID: it means nothing from them, and is not passed on. */
			sw->frame[0] &= (uint8_t)~VIRTIO_NET_HDR_F_DATA_VALID;
			enter(sw, index, sw->frame, p->hdr_len, len - p->hdr_len, p->tx_offloads);
		}
		virtq_push(vq, elem.head, 0);
	}
	if (done)
		vhost_user_backend_notify(p->be, VSWITCH_TXQ);
	return 0;
}

static void uplink_rx(struct vswitch *sw)
{
	for (unsigned int i = 0; i < UPLINK_BUDGET; i++) {
		struct iovec iov = { sw->frame, sizeof(sw->frame) };
		ssize_t n = sw->uplink->ops->recv(sw->uplink, 0, &iov, 1);

		if (n == -EAGAIN)
			return;
		if (n < 0) {
			log_warn("uplink: %s", strerror((int)-n));
			return;
		}
		if ((size_t)n < VNET_HDR_LEN + ETH_HLEN || (size_t)n > VNET_HDR_LEN + FRAME_MAX) {
			sw->uplink_c.drops++;  /* a runt, or a giant cut short */
			sw->uplink_c.invalid++;
			continue;
		}
		enter(sw, sw->nports, sw->frame, VNET_HDR_LEN, (size_t)n - VNET_HDR_LEN, sw->uplink_tx_offloads);
		port_reap(sw);
	}
}

static void ring_started(void *dev, unsigned int q)
{
	struct sw_handler *sock = dev;
	struct vswitch *sw = sock->sw;
	struct port *p = &sw->ports[sock->port];
	uint64_t features = vhost_user_backend_features(p->be);

	/* VERSION_1 or MRG_RXBUF: the 12-byte header; a legacy driver without either: 10 bytes. */
	p->mrg_rxbuf = features & (1ULL << VIRTIO_NET_F_MRG_RXBUF);
	p->hdr_len = (p->mrg_rxbuf || (features & (1ULL << VIRTIO_F_VERSION_1))) ? sizeof(struct virtio_net_hdr_v1)
										   : sizeof(struct virtio_net_hdr);
	p->rx_offloads = offload_rx_from_features(features);
	p->tx_offloads = offload_tx_from_features(features);
	handler_add(sw, &p->kick[q], vhost_user_backend_kick_fd(p->be, q));
}

static void ring_stopped(void *dev, unsigned int q)
{
	struct sw_handler *sock = dev;

	handler_remove(sock->sw, &sock->sw->ports[sock->port].kick[q]);
}

static int ring_kick(void *dev, unsigned int q)
{
	struct sw_handler *sock = dev;

	/* An RX kick only means "more buffers": frames are never held back for them. */
	return q == VSWITCH_TXQ ? port_tx(sock->sw, sock->port) : 0;
}

static const struct vhost_user_device_ops port_ops = {
	.features = offered_features,
	.protocol_features = (1ULL << VHOST_USER_PROTOCOL_F_MQ) | (1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK),
	.num_queues = 2,
	.queue_size_max = VIRTQ_MAX_SIZE,
	.ring_started = ring_started,
	.ring_stopped = ring_stopped,
	.kick = ring_kick,
};

void vswitch_disconnect(struct vswitch *sw, unsigned int port)
{
	struct port *p;

	if (port >= sw->nports || !sw->ports[port].be)
		return;
	p = &sw->ports[port];
	handler_remove(sw, &p->sock);
	vhost_user_backend_free(p->be);  /* ring_stopped unwatches the kick fds */
	p->be = NULL;
	p->close_pending = false;
	mac_forget_port(sw, port);
	log_info("%s: frontend disconnected", p->name);
	if (p->listen.h.fd >= 0)
		handler_add(sw, &p->listen, p->listen.h.fd);  /* the next frontend may come */
}

/* Disconnect the ports whose rings broke while others delivered to them. */
static void port_reap(struct vswitch *sw)
{
	for (unsigned int i = 0; i < sw->nports; i++) {
		if (sw->ports[i].close_pending)
			vswitch_disconnect(sw, i);
	}
}

int vswitch_connect(struct vswitch *sw, unsigned int port, int sock)
{
	struct port *p;

	if (port >= sw->nports)
		return -EINVAL;
	p = &sw->ports[port];
	if (p->be)
		return -EBUSY;
	p->be = vhost_user_backend_new(sock, &port_ops, &p->sock, p->name);
	if (!p->be)
		return -ENOMEM;
	p->hdr_len = sizeof(struct virtio_net_hdr_v1);
	p->mrg_rxbuf = false;
	p->rx_offloads = p->tx_offloads = 0;
	handler_remove(sw, &p->listen);  /* later frontends wait in the backlog */
	handler_add(sw, &p->sock, sock);
	log_info("%s: frontend connected", p->name);
	return 0;
}

static void handler_ready(struct event_handler *h, uint32_t events)
{
	struct sw_handler *sh = (struct sw_handler *)h;
	struct vswitch *sw = sh->sw;
	struct port *p = &sw->ports[sh->port];
	int err, sock;

	(void)events;
	if (!sh->registered)
		return;  /* unwatched earlier in this batch of events */
	switch (sh->kind) {
	case H_LISTEN:
		sock = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (sock >= 0 && vswitch_connect(sw, sh->port, sock)) {
			log_warn("%s: cannot take the frontend", p->name);
			close(sock);
		}
		break;
	case H_SOCKET:
		err = vhost_user_backend_handle(p->be);
		if (err && err != -EAGAIN)
			vswitch_disconnect(sw, sh->port);
		break;
	case H_KICK:
		if (vhost_user_backend_kick(p->be, sh->q))
			vswitch_disconnect(sw, sh->port);
		break;
	case H_UPLINK:
		uplink_rx(sw);
		break;
	}
	port_reap(sw);
}

int vswitch_listen(struct vswitch *sw, unsigned int port, int listen_fd)
{
	struct port *p;

	if (port >= sw->nports || sw->ports[port].listen.h.fd >= 0)
		return -EINVAL;
	p = &sw->ports[port];
	p->listen.h.fd = listen_fd;
	if (!p->be)
		handler_add(sw, &p->listen, listen_fd);
	return 0;
}

bool vswitch_connected(const struct vswitch *sw, unsigned int port)
{
	return port < sw->nports && sw->ports[port].be;
}

int vswitch_set_uplink(struct vswitch *sw, struct net_backend *uplink)
{
	const uint64_t guest_bits = (1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) |
				    (1ULL << VIRTIO_NET_F_GUEST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_ECN);
	uint64_t guest = uplink->offloads & guest_bits;

	if (sw->uplink)
		return -EBUSY;
	sw->uplink = uplink;
	/* Frames go to it as they are when it carries their offloads (a tap
	 * does: CSUM, HOST_TSO4/6, HOST_ECN); and it may hand over frames with
	 * the ones it is told the switch takes (a tap: TUNSETOFFLOAD), and
	 * DATA_VALID, which a tap sets for checksums the host verified. */
	sw->uplink_rx_offloads = offload_tx_from_features(uplink->offloads);
	sw->uplink_tx_offloads = OFFLOAD_DATA_VALID;
	if (guest && uplink->ops->set_guest_offloads) {
		if (uplink->ops->set_guest_offloads(uplink, guest) == 0)
			sw->uplink_tx_offloads |= offload_rx_from_features(guest);
		else
			log_warn("uplink: cannot take offloaded frames from it; it sends whole ones");
	}
	handler_add(sw, &sw->uplink_h, uplink->ops->rx_fd(uplink, 0));
	return sw->uplink_h.registered ? 0 : -EIO;
}

struct event_loop *vswitch_loop(struct vswitch *sw)
{
	return &sw->loop;
}

int vswitch_poll(struct vswitch *sw, int timeout_ms)
{
	return event_loop_run_once(&sw->loop, timeout_ms);
}

const struct vswitch_counters *vswitch_counters(const struct vswitch *sw, unsigned int port)
{
	if (port == sw->nports)
		return &sw->uplink_c;
	return port < sw->nports ? &sw->ports[port].c : NULL;
}

static void print_line(FILE *out, const char *name, const struct vswitch_counters *c)
{
	fprintf(out,
		"%s: rx %llu frames %llu bytes, tx %llu frames %llu bytes, %llu dropped (%llu invalid), "
		"%llu checksummed, %llu segmented\n",
		name, (unsigned long long)c->rx_frames, (unsigned long long)c->rx_bytes,
		(unsigned long long)c->tx_frames, (unsigned long long)c->tx_bytes, (unsigned long long)c->drops,
		(unsigned long long)c->invalid, (unsigned long long)c->csum_sw, (unsigned long long)c->segmented);
}

void vswitch_print_counters(const struct vswitch *sw, FILE *out)
{
	for (unsigned int i = 0; i < sw->nports; i++)
		print_line(out, sw->ports[i].name, &sw->ports[i].c);
	if (sw->uplink)
		print_line(out, "uplink", &sw->uplink_c);
	fflush(out);
}

static void init_handler(struct sw_handler *h, enum handler_kind kind, struct vswitch *sw, unsigned int port,
			 unsigned int q)
{
	*h = (struct sw_handler){ .h = { .fd = -1, .ready = handler_ready }, .kind = kind, .sw = sw, .port = port, .q = q };
}

struct vswitch *vswitch_new(unsigned int nports)
{
	struct vswitch *sw;

	if (nports == 0 || nports > VSWITCH_MAX_PORTS)
		return NULL;
	sw = calloc(1, sizeof(*sw));
	if (!sw)
		return NULL;
	if (event_loop_init(&sw->loop)) {
		free(sw);
		return NULL;
	}
	sw->nports = nports;
	init_handler(&sw->uplink_h, H_UPLINK, sw, 0, 0);
	for (unsigned int i = 0; i < nports; i++) {
		struct port *p = &sw->ports[i];

		snprintf(p->name, sizeof(p->name), "port%u", i);
		init_handler(&p->listen, H_LISTEN, sw, i, 0);
		init_handler(&p->sock, H_SOCKET, sw, i, 0);
		init_handler(&p->kick[0], H_KICK, sw, i, 0);
		init_handler(&p->kick[1], H_KICK, sw, i, 1);
	}
	return sw;
}

void vswitch_free(struct vswitch *sw)
{
	if (!sw)
		return;
	for (unsigned int i = 0; i < sw->nports; i++) {
		struct port *p = &sw->ports[i];

		vswitch_disconnect(sw, i);
		handler_remove(sw, &p->listen);
		if (p->listen.h.fd >= 0)
			close(p->listen.h.fd);
	}
	if (sw->uplink) {
		handler_remove(sw, &sw->uplink_h);
		sw->uplink->ops->destroy(sw->uplink);
	}
	event_loop_destroy(&sw->loop);
	free(sw);
}
