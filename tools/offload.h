/* Virtio-net offloads in software, for kvio-switch: whether a frame's header
 * (struct virtio_net_hdr_v1: partial checksum, TCP segmentation) is one its
 * sender may send, and what a receiver that cannot take it as it is gets
 * instead: the checksum finished, or the frame cut into TCP segments with
 * their IP and TCP headers and checksums complete. No I/O and no state
 * beyond one frame: frames in, bytes out, so it is fuzzed on its own. */
#ifndef KVIO_TOOLS_OFFLOAD_H
#define KVIO_TOOLS_OFFLOAD_H

#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* What a sender may ask for in headers, or a receiver take as it is. */
#define OFFLOAD_CSUM (1u << 0)       /* NEEDS_CSUM (a receiver: and DATA_VALID) */
#define OFFLOAD_TSO4 (1u << 1)       /* gso_type TCPV4 */
#define OFFLOAD_TSO6 (1u << 2)       /* gso_type TCPV6 */
#define OFFLOAD_ECN (1u << 3)        /* the GSO ECN bit */
#define OFFLOAD_DATA_VALID (1u << 4) /* a sender: DATA_VALID (a host's tap; drivers must not set it) */

/* Headers a segment may have: Ethernet, two VLAN tags, IP (IPv6 with
 * hop-by-hop or destination options), TCP with options. */
#define OFFLOAD_MAX_HDR 256

/* The offloads a virtio-net driver that acked features takes in received
 * frames (GUEST_*), and may send (CSUM, HOST_*). TSO needs the checksum bit too. */
unsigned int offload_rx_from_features(uint64_t features);
unsigned int offload_tx_from_features(uint64_t features);

/* Check the header of a frame of len bytes (Ethernet header on) from a sender
 * allowed the offloads in allowed: known flags and gso_type only, what it
 * asks for allowed, hdr_len and the checksum field inside the frame; a GSO
 * frame also needs gso_size, NEEDS_CSUM, and TCP over IPv4/IPv6 (as its
 * gso_type says, options and VLAN tags allowed, no fragment or routing
 * header) with the checksum field at TCP's. Returns 0, or -EINVAL with *why
 * set. Frames that pass are what the other calls here take. */
int offload_check(const struct virtio_net_hdr_v1 *vh, const uint8_t *frame, size_t len, unsigned int allowed,
		  const char **why);

enum offload_action {
	OFFLOAD_AS_IS,       /* the header and frame as they are */
	OFFLOAD_FINISH_CSUM, /* offload_csum at csum_start + csum_offset, a header of zeros */
	OFFLOAD_SEGMENT,     /* offload_seg_*, each segment with a header of zeros */
};

/* What a receiver taking accepts needs done to a checked frame, and the
 * header it gets: vh's own when it takes every offload vh asks for (and
 * checksum offloads at all), else zeros. */
enum offload_action offload_action(const struct virtio_net_hdr_v1 *vh, unsigned int accepts,
				   struct virtio_net_hdr_v1 *out);

/* The checksum a NEEDS_CSUM frame's partial one finishes to (the ones'
 * complement of the sum over [csum_start, len), the field included, 0 sent
 * as 0xffff), in the byte order it is stored in the frame. */
uint16_t offload_csum(const struct virtio_net_hdr_v1 *vh, const uint8_t *frame, size_t len);

/* Cutting a checked GSO frame into segments of gso_size payload bytes (the
 * last one shorter; a frame without payload is one segment): IPv4 total
 * length, ID (+1 per segment) and header checksum, IPv6 payload length, TCP
 * sequence number, CWR on the first segment only, FIN and PSH on the last
 * only, and a TCP checksum over each. */
struct offload_seg {
	const uint8_t *frame;
	size_t len, l3, l4, hdr, done;  /* done: payload bytes in earlier segments */
	uint16_t mss, ip_id;
	uint32_t seq;
	uint8_t tcp_flags;
	bool ipv4, last;
	unsigned int index;
	uint8_t hdr_buf[OFFLOAD_MAX_HDR];  /* the current segment's headers */
};

/* Returns 0, or -EINVAL for a frame offload_check would refuse. */
int offload_seg_start(struct offload_seg *s, const struct virtio_net_hdr_v1 *vh, const uint8_t *frame, size_t len);
/* The next segment as two pieces, its headers (in s) then its payload (in
 * the frame); false when there is none left. Returns the segment's length in *len. */
bool offload_seg_next(struct offload_seg *s, struct iovec parts[2], size_t *len);

#endif
