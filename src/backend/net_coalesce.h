/* Receive coalescing for a backend that builds frames one MTU at a time
 * (libslirp): in-order TCP/IPv4 segments of one flow, waiting for the guest
 * one after the other, merge into one GSO frame, as a NIC's LRO merges them,
 * for a guest that takes TSO frames (VIRTIO_NET_F_GUEST_TSO4). The guest's
 * stack then handles one frame where it had dozens. */
#ifndef KVIO_BACKEND_NET_COALESCE_H
#define KVIO_BACKEND_NET_COALESCE_H

#include <stddef.h>
#include <stdint.h>

/* The length frame (frame_len bytes: a struct virtio_net_hdr_v1, then an
 * Ethernet frame, as a backend queues it) would have with seg (seg_len
 * bytes, an Ethernet frame) merged in, or 0 if seg does not continue frame:
 * both plain TCP over IPv4 (no IP options or fragments, ACK and at most PSH
 * set, not ECN-marked) between the same addresses and ports, with the same
 * acknowledgement and TCP options, seg's sequence number right after
 * frame's data, and frame not yet ended by a short segment or PSH; seg's
 * data at most frame's segment size, and the result one IPv4 packet. */
size_t net_coalesce_size(const uint8_t *frame, size_t frame_len, const uint8_t *seg, size_t seg_len);

/* Append seg's data to frame if net_coalesce_size accepts it (frame's
 * buffer must hold the length it says): total length, header checksum,
 * window and PSH from seg, and a GSO header (TCPV4, the first segment's
 * size, NEEDS_CSUM with the pseudo-header's sum in the TCP checksum field).
 * Returns frame's new length, frame_len if seg was refused. */
size_t net_coalesce_merge(uint8_t *frame, size_t frame_len, const uint8_t *seg, size_t seg_len);

#endif
