/* Virtio-net offloads in software: header checks, finishing a partial
 * checksum, TCP segmentation. Every offset taken from a header or a frame is
 * checked against the frame's length before it is used, once, in
 * offload_check (parse_tcp for GSO frames); the rest relies on that. */
#include "offload.h"

#include <endian.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/virtio_config.h>
#include <netinet/in.h>
#include <string.h>

#include "util/bytes.h"
#include "util/csum.h"

#define MAX_VLAN_TAGS 2
#define IPV4_HLEN 20
#define IPV6_HLEN 40
#define IPV6_MAX_EXT 8         /* extension headers walked before TCP */
#define TCP_HLEN 20
#define TCP_CHECK_OFF 16       /* csum_offset of a TCP checksum */
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

unsigned int offload_rx_from_features(uint64_t f)
{
	unsigned int o = 0;

	if (!(f & (1ULL << VIRTIO_NET_F_GUEST_CSUM)))
		return 0;
	o |= OFFLOAD_CSUM;
	if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO4))
		o |= OFFLOAD_TSO4;
	if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO6))
		o |= OFFLOAD_TSO6;
	if (f & (1ULL << VIRTIO_NET_F_GUEST_ECN))
		o |= OFFLOAD_ECN;
	return o;
}

unsigned int offload_tx_from_features(uint64_t f)
{
	unsigned int o = 0;

	if (!(f & (1ULL << VIRTIO_NET_F_CSUM)))
		return 0;
	o |= OFFLOAD_CSUM;
	if (f & (1ULL << VIRTIO_NET_F_HOST_TSO4))
		o |= OFFLOAD_TSO4;
	if (f & (1ULL << VIRTIO_NET_F_HOST_TSO6))
		o |= OFFLOAD_TSO6;
	if (f & (1ULL << VIRTIO_NET_F_HOST_ECN))
		o |= OFFLOAD_ECN;
	return o;
}

/* Where a TCP frame's headers are. */
struct tcp_frame {
	size_t l3, l4, hdr;  /* IP header, TCP header, payload */
	bool ipv4;
};

/* Find the TCP header of a frame gso_type (TCPV4 or TCPV6) says is TCP. */
static int parse_tcp(const uint8_t *f, size_t len, unsigned int gso, struct tcp_frame *t, const char **why)
{
	size_t off = 12, l4;
	uint16_t type;

	for (unsigned int tags = 0;; tags++) {
		if (off + 2 > len) {
			*why = "GSO frame shorter than its Ethernet header";
			return -EINVAL;
		}
		type = get_be16(f + off);
		off += 2;
		if (type != ETH_P_8021Q && type != ETH_P_8021AD)
			break;
		if (tags == MAX_VLAN_TAGS) {
			*why = "GSO frame with more than two VLAN tags";
			return -EINVAL;
		}
		off += 2;  /* the tag's TCI */
	}
	t->l3 = off;
	t->ipv4 = gso == VIRTIO_NET_HDR_GSO_TCPV4;
	if (t->ipv4) {
		size_t ihl;

		if (type != ETH_P_IP || off + IPV4_HLEN > len || f[off] >> 4 != 4) {
			*why = "TCPv4 GSO frame without an IPv4 header";
			return -EINVAL;
		}
		ihl = (size_t)(f[off] & 0xf) * 4;
		if (ihl < IPV4_HLEN || off + ihl > len || f[off + 9] != IPPROTO_TCP) {
			*why = "TCPv4 GSO frame: bad IPv4 header length or not TCP";
			return -EINVAL;
		}
		if (get_be16(f + off + 6) & 0x3fff) {
			*why = "TCPv4 GSO frame that is an IP fragment";
			return -EINVAL;
		}
		/* Every segment's total length has to fit its 16 bits. */
		if (len - off > 0xffff) {
			*why = "TCPv4 GSO frame longer than an IPv4 packet";
			return -EINVAL;
		}
		l4 = off + ihl;
	} else {
		uint8_t next;

		if (type != ETH_P_IPV6 || off + IPV6_HLEN > len || f[off] >> 4 != 6) {
			*why = "TCPv6 GSO frame without an IPv6 header";
			return -EINVAL;
		}
		next = f[off + 6];
		l4 = off + IPV6_HLEN;
		/* Options headers only: the pseudo-header of a segment is then the fixed header's. */
		for (unsigned int n = 0; next != IPPROTO_TCP; n++) {
			if ((next != IPPROTO_HOPOPTS && next != IPPROTO_DSTOPTS) || n == IPV6_MAX_EXT || l4 + 8 > len) {
				*why = "TCPv6 GSO frame: not TCP after hop-by-hop and destination options";
				return -EINVAL;
			}
			next = f[l4];
			l4 += ((size_t)f[l4 + 1] + 1) * 8;
		}
	}
	if (l4 + TCP_HLEN > len || (size_t)(f[l4 + 12] >> 4) * 4 < TCP_HLEN ||
	    l4 + (size_t)(f[l4 + 12] >> 4) * 4 > len) {
		*why = "GSO frame with a truncated TCP header";
		return -EINVAL;
	}
	t->l4 = l4;
	t->hdr = l4 + (size_t)(f[l4 + 12] >> 4) * 4;
	if (t->hdr > OFFLOAD_MAX_HDR) {
		*why = "GSO frame with headers over 256 bytes";
		return -EINVAL;
	}
	return 0;
}

int offload_check(const struct virtio_net_hdr_v1 *vh, const uint8_t *frame, size_t len, unsigned int allowed,
		  const char **why)
{
	unsigned int gso = vh->gso_type & (unsigned int)~VIRTIO_NET_HDR_GSO_ECN;
	bool ecn = vh->gso_type & VIRTIO_NET_HDR_GSO_ECN, needs_csum = vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;
	size_t start = le16toh(vh->csum_start), offset = le16toh(vh->csum_offset);
	struct tcp_frame t;

	if (vh->flags & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID)) {
		*why = "unknown header flags";
		return -EINVAL;
	}
	if ((vh->flags & VIRTIO_NET_HDR_F_DATA_VALID) && !(allowed & OFFLOAD_DATA_VALID)) {
		*why = "DATA_VALID from a driver";
		return -EINVAL;
	}
	/* A hint, but a tap refuses a frame shorter than it. */
	if (le16toh(vh->hdr_len) > len) {
		*why = "hdr_len beyond the frame";
		return -EINVAL;
	}
	if (needs_csum) {
		if (!(allowed & OFFLOAD_CSUM)) {
			*why = "NEEDS_CSUM not negotiated";
			return -EINVAL;
		}
		if (start + offset + 2 > len) {
			*why = "checksum field beyond the frame";
			return -EINVAL;
		}
	}
	switch (gso) {
	case VIRTIO_NET_HDR_GSO_NONE:
		if (ecn) {
			*why = "GSO ECN bit without GSO";
			return -EINVAL;
		}
		return 0;
	case VIRTIO_NET_HDR_GSO_TCPV4:
	case VIRTIO_NET_HDR_GSO_TCPV6:
		break;
	default:
		*why = "unknown gso_type";
		return -EINVAL;
	}
	if (!(allowed & (gso == VIRTIO_NET_HDR_GSO_TCPV4 ? OFFLOAD_TSO4 : OFFLOAD_TSO6)) ||
	    (ecn && !(allowed & OFFLOAD_ECN))) {
		*why = "GSO type not negotiated";
		return -EINVAL;
	}
	if (!vh->gso_size) {
		*why = "GSO frame with gso_size 0";
		return -EINVAL;
	}
	if (!needs_csum) {
		*why = "GSO frame without NEEDS_CSUM";
		return -EINVAL;
	}
	if (parse_tcp(frame, len, gso, &t, why))
		return -EINVAL;
	if (start != t.l4 || offset != TCP_CHECK_OFF) {
		*why = "GSO frame whose checksum field is not TCP's";
		return -EINVAL;
	}
	return 0;
}

enum offload_action offload_action(const struct virtio_net_hdr_v1 *vh, unsigned int accepts,
				   struct virtio_net_hdr_v1 *out)
{
	unsigned int gso = vh->gso_type & (unsigned int)~VIRTIO_NET_HDR_GSO_ECN;
	enum offload_action action = OFFLOAD_AS_IS;

	if (gso != VIRTIO_NET_HDR_GSO_NONE) {
		unsigned int needs = OFFLOAD_CSUM | (gso == VIRTIO_NET_HDR_GSO_TCPV4 ? OFFLOAD_TSO4 : OFFLOAD_TSO6) |
				     (vh->gso_type & VIRTIO_NET_HDR_GSO_ECN ? OFFLOAD_ECN : 0);

		if ((accepts & needs) != needs)
			action = OFFLOAD_SEGMENT;
	} else if ((vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !(accepts & OFFLOAD_CSUM)) {
		action = OFFLOAD_FINISH_CSUM;
	}
	/* Without checksum offloads a receiver's header is all zeros (DATA_VALID too). */
	if (action == OFFLOAD_AS_IS && (accepts & OFFLOAD_CSUM))
		*out = *vh;
	else
		memset(out, 0, sizeof(*out));
	out->num_buffers = 0;
	return action;
}

uint16_t offload_csum(const struct virtio_net_hdr_v1 *vh, const uint8_t *frame, size_t len)
{
	size_t start = le16toh(vh->csum_start);
	uint16_t sum = (uint16_t)~csum_add(0, frame + start, len - start);

	/* As Linux finishes them: 0 and 0xffff are the same sum, and 0 means "none" in UDP. */
	return htobe16(sum ? sum : 0xffff);
}

int offload_seg_start(struct offload_seg *s, const struct virtio_net_hdr_v1 *vh, const uint8_t *frame, size_t len)
{
	unsigned int gso = vh->gso_type & (unsigned int)~VIRTIO_NET_HDR_GSO_ECN;
	struct tcp_frame t;
	const char *why;

	if ((gso != VIRTIO_NET_HDR_GSO_TCPV4 && gso != VIRTIO_NET_HDR_GSO_TCPV6) || !vh->gso_size ||
	    parse_tcp(frame, len, gso, &t, &why))
		return -EINVAL;
	*s = (struct offload_seg){
		.frame = frame, .len = len, .l3 = t.l3, .l4 = t.l4, .hdr = t.hdr,
		.mss = le16toh(vh->gso_size), .ipv4 = t.ipv4,
		.seq = get_be32(frame + t.l4 + 4), .tcp_flags = frame[t.l4 + 13],
	};
	if (t.ipv4)
		s->ip_id = get_be16(frame + t.l3 + 4);
	return 0;
}

bool offload_seg_next(struct offload_seg *s, struct iovec parts[2], size_t *seg_len)
{
	size_t payload = s->len - s->hdr, chunk, tcp_len;
	uint8_t *h = s->hdr_buf, flags = s->tcp_flags;
	uint16_t sum;

	if (s->last)
		return false;
	chunk = payload - s->done < s->mss ? payload - s->done : s->mss;
	*seg_len = s->hdr + chunk;
	tcp_len = *seg_len - s->l4;
	memcpy(h, s->frame, s->hdr);
	if (s->ipv4) {
		size_t ihl = (size_t)(h[s->l3] & 0xf) * 4;

		put_be16(h + s->l3 + 2, (uint16_t)(*seg_len - s->l3));
		put_be16(h + s->l3 + 4, (uint16_t)(s->ip_id + s->index));
		put_be16(h + s->l3 + 10, 0);
		put_be16(h + s->l3 + 10, (uint16_t)~csum_add(0, h + s->l3, ihl));
		/* Pseudo-header: addresses, protocol, TCP length. */
		sum = csum_add(0, h + s->l3 + 12, 8);
		sum = csum_add16(sum, IPPROTO_TCP);
		sum = csum_add16(sum, (uint16_t)tcp_len);
	} else {
		put_be16(h + s->l3 + 4, (uint16_t)(*seg_len - s->l3 - IPV6_HLEN));
		sum = csum_add(0, h + s->l3 + 8, 32);
		sum = csum_add32(sum, (uint32_t)tcp_len);
		sum = csum_add16(sum, IPPROTO_TCP);
	}
	put_be32(h + s->l4 + 4, s->seq + (uint32_t)s->done);
	if (s->index)
		flags &= (uint8_t)~TCP_CWR;
	s->last = s->done + chunk == payload;
	if (!s->last)
		flags &= (uint8_t)~(TCP_FIN | TCP_PSH);
	h[s->l4 + 13] = flags;
	put_be16(h + s->l4 + TCP_CHECK_OFF, 0);
	/* TCP's header is a multiple of 4 bytes: the payload's words line up. */
	sum = csum_add(sum, h + s->l4, s->hdr - s->l4);
	sum = csum_add(sum, s->frame + s->hdr + s->done, chunk);
	put_be16(h + s->l4 + TCP_CHECK_OFF, (uint16_t)~sum);
	parts[0] = (struct iovec){ h, s->hdr };
	parts[1] = (struct iovec){ (void *)(s->frame + s->hdr + s->done), chunk };
	s->done += chunk;
	s->index++;
	return true;
}
