/* Receive coalescing of TCP/IPv4 segments into GSO frames (net_coalesce.h).
 * Only what Linux's GRO would merge is merged, so the guest sees the frame a
 * NIC with LRO would have handed it, and re-segmenting it (a guest that
 * forwards) gives back the segments' bytes. */
#include "backend/net_coalesce.h"

#include <endian.h>
#include <linux/if_ether.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include "backend/net.h"
#include "util/bytes.h"
#include "util/csum.h"

#define IPV4_HLEN 20
#define TCP_HLEN 20
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_ACK 0x10
#define IP_FLAG_DF 0x4000
#define IP_ECN_CE 3
#define TCP_CSUM_OFFSET 16

/* Where a segment's parts are, as offsets from its Ethernet header. */
struct tcp4 {
	size_t ip, tcp, data, end;
	uint8_t flags;
};

/* A segment coalescing takes: TCP over IPv4 with no IP options, not a
 * fragment, not marked congestion-experienced, ACK and at most PSH set,
 * and its IP packet ending where the frame does (no Ethernet padding). */
static bool parse(const uint8_t *f, size_t len, struct tcp4 *t)
{
	size_t tcp_len;

	if (len < ETH_HLEN + IPV4_HLEN + TCP_HLEN || get_be16(f + 12) != ETH_P_IP)
		return false;
	t->ip = ETH_HLEN;
	if (f[t->ip] != 0x45 || (get_be16(f + t->ip + 6) & ~IP_FLAG_DF) || f[t->ip + 9] != IPPROTO_TCP ||
	    (f[t->ip + 1] & IP_ECN_CE) == IP_ECN_CE)
		return false;
	t->end = t->ip + get_be16(f + t->ip + 2);
	t->tcp = t->ip + IPV4_HLEN;
	tcp_len = (size_t)(f[t->tcp + 12] >> 4) * 4;
	t->data = t->tcp + tcp_len;
	t->flags = f[t->tcp + 13];
	/* The low nibble of the data-offset byte holds reserved bits and AccECN's. */
	return t->end == len && tcp_len >= TCP_HLEN && t->data <= t->end && !(f[t->tcp + 12] & 0x0F) &&
	       (t->flags & ~TCP_FLAG_PSH) == TCP_FLAG_ACK;
}

/* The segment size of a frame queued so far: a GSO frame's own, or a
 * single segment's data length. 0 for a header coalescing did not write. */
static size_t segment_size(const struct virtio_net_hdr_v1 *vh, size_t data_len)
{
	if (vh->gso_type == VIRTIO_NET_HDR_GSO_TCPV4)
		return le16toh(vh->gso_size);
	if (vh->gso_type == VIRTIO_NET_HDR_GSO_NONE && !(vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
		return data_len;
	return 0;
}

/* Fields a merged frame keeps from its first segment must match seg's: the
 * Ethernet header; IP's TOS, DF, TTL and addresses; TCP's ports,
 * acknowledgement, header length and options. */
static bool same_flow(const uint8_t *f, const struct tcp4 *a, const uint8_t *s, const struct tcp4 *b)
{
	size_t tcp_len = a->data - a->tcp;

	return !memcmp(f, s, ETH_HLEN) && f[a->ip + 1] == s[b->ip + 1] && f[a->ip + 6] == s[b->ip + 6] &&
	       f[a->ip + 8] == s[b->ip + 8] && !memcmp(f + a->ip + 12, s + b->ip + 12, 8) &&
	       !memcmp(f + a->tcp, s + b->tcp, 4) && !memcmp(f + a->tcp + 8, s + b->tcp + 8, 4) &&
	       b->data - b->tcp == tcp_len && !memcmp(f + a->tcp + TCP_HLEN, s + b->tcp + TCP_HLEN, tcp_len - TCP_HLEN);
}

size_t net_coalesce_size(const uint8_t *frame, size_t frame_len, const uint8_t *seg, size_t seg_len)
{
	const uint8_t *f = frame + NET_HDR_LEN;
	struct virtio_net_hdr_v1 vh;
	struct tcp4 a, b;
	size_t have, more, mss;

	if (frame_len < NET_HDR_LEN || !parse(f, frame_len - NET_HDR_LEN, &a) || !parse(seg, seg_len, &b))
		return 0;
	memcpy(&vh, frame, sizeof(vh));
	have = a.end - a.data;
	more = b.end - b.data;
	mss = segment_size(&vh, have);
	/* A short segment or a PSH ends a run, as it ends a GRO merge. */
	if (!mss || !have || have % mss || (a.flags & TCP_FLAG_PSH) || !more || more > mss)
		return 0;
	if (!same_flow(f, &a, seg, &b) || get_be32(seg + b.tcp + 4) != get_be32(f + a.tcp + 4) + (uint32_t)have)
		return 0;
	if (a.end - a.ip + more > 0xFFFF)
		return 0;
	return frame_len + more;
}

size_t net_coalesce_merge(uint8_t *frame, size_t frame_len, const uint8_t *seg, size_t seg_len)
{
	uint8_t *f = frame + NET_HDR_LEN;
	struct virtio_net_hdr_v1 vh;
	struct tcp4 a, b;
	size_t mss, more;
	uint16_t pseudo;

	if (!net_coalesce_size(frame, frame_len, seg, seg_len))
		return frame_len;
	memcpy(&vh, frame, sizeof(vh));
	parse(f, frame_len - NET_HDR_LEN, &a);
	parse(seg, seg_len, &b);
	mss = segment_size(&vh, a.end - a.data);
	more = b.end - b.data;
	memcpy(f + a.end, seg + b.data, more);
	a.end += more;
	put_be16(f + a.ip + 2, (uint16_t)(a.end - a.ip));
	put_be16(f + a.ip + 10, 0);
	put_be16(f + a.ip + 10, (uint16_t)~csum_add(0, f + a.ip, IPV4_HLEN));
	memcpy(f + a.tcp + 14, seg + b.tcp + 14, 2);  /* the latest window */
	f[a.tcp + 13] |= b.flags & TCP_FLAG_PSH;
	/* What NEEDS_CSUM leaves in the field: the pseudo-header's sum, folded, not complemented. */
	pseudo = csum_add32(csum_add16(csum_add(0, f + a.ip + 12, 8), IPPROTO_TCP), (uint32_t)(a.end - a.tcp));
	put_be16(f + a.tcp + TCP_CSUM_OFFSET, pseudo);
	vh = (struct virtio_net_hdr_v1){
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
		.gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
		.hdr_len = htole16((uint16_t)a.data),
		.gso_size = htole16((uint16_t)mss),
		.csum_start = htole16((uint16_t)a.tcp),
		.csum_offset = htole16(TCP_CSUM_OFFSET),
	};
	memcpy(frame, &vh, sizeof(vh));
	return frame_len + more;
}
