/* libFuzzer target for kvio-switch's software offloads (tools/offload.c):
 * the input is a guest's virtio-net header (12 bytes), the offloads its port
 * negotiated (1 byte), what a receiving port takes (1 byte), then the frame,
 * copied into a buffer of exactly its size so ASan sees any read past it.
 * A header offload_check lets through must then be safe to act on for any
 * receiver: the checksum field inside the frame, segmentation possible, every
 * segment's pieces inside the frame or its header buffer, their payloads
 * adding up to the frame's. */
#include <stdlib.h>
#include <string.h>

#include "tools/offload.h"

#define FRAME_MAX (65535 + 14 + 4)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct virtio_net_hdr_v1 vh, out;
	unsigned int allowed, accepts;
	struct offload_seg seg;
	size_t len, at, payload = 0, seg_len;
	struct iovec parts[2];
	unsigned int nsegs = 0;
	const char *why;
	uint8_t *frame;

	if (size < sizeof(vh) + 2)
		return 0;
	memcpy(&vh, data, sizeof(vh));
	allowed = data[sizeof(vh)];
	accepts = data[sizeof(vh) + 1];
	len = size - sizeof(vh) - 2;
	if (len > FRAME_MAX)
		return 0;
	frame = malloc(len ? len : 1);
	if (!frame)
		abort();
	memcpy(frame, data + sizeof(vh) + 2, len);
	if (offload_check(&vh, frame, len, allowed, &why))
		goto out;
	switch (offload_action(&vh, accepts, &out)) {
	case OFFLOAD_AS_IS:
		break;
	case OFFLOAD_FINISH_CSUM:
		at = (size_t)le16toh(vh.csum_start) + le16toh(vh.csum_offset);
		if (at + 2 > len || out.flags || out.gso_type)
			abort();
		(void)offload_csum(&vh, frame, len);
		break;
	case OFFLOAD_SEGMENT:
		if (offload_seg_start(&seg, &vh, frame, len) || out.flags || out.gso_type)
			abort();
		while (offload_seg_next(&seg, parts, &seg_len)) {
			uint8_t *copy = malloc(seg_len);

			if (!copy || parts[0].iov_base != seg.hdr_buf || parts[0].iov_len > OFFLOAD_MAX_HDR ||
			    (const uint8_t *)parts[1].iov_base < frame ||
			    (const uint8_t *)parts[1].iov_base + parts[1].iov_len > frame + len ||
			    parts[0].iov_len + parts[1].iov_len != seg_len || ++nsegs > len + 1)
				abort();
			memcpy(copy, parts[0].iov_base, parts[0].iov_len);
			memcpy(copy + parts[0].iov_len, parts[1].iov_base, parts[1].iov_len);
			payload += parts[1].iov_len;
			free(copy);
		}
		if (!nsegs || payload != len - seg.hdr)
			abort();
		break;
	}
out:
	free(frame);
	return 0;
}
