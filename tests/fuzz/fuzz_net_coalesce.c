/* libFuzzer target for receive coalescing (src/backend/net_coalesce.c): the
 * input is a queued frame's virtio-net header (12 bytes), then frames, each
 * a 2-byte big-endian length and its bytes. The first frame is queued; each
 * next one is offered to it, copied into a buffer of exactly its size and
 * the queued frame grown to exactly what net_coalesce_size says, so ASan
 * sees any access past either. A refused frame must leave the queued one
 * untouched; a merged one must leave a GSO frame that kvio-switch's checks
 * (tools/offload.c) pass and that segments back into its payload. */
#include <stdlib.h>
#include <string.h>

#include "backend/net.h"
#include "backend/net_coalesce.h"
#include "tools/offload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Check a merged frame as a guest (or a switch port) would take it. */
static void check_merged(const uint8_t *frame, size_t len)
{
	struct virtio_net_hdr_v1 vh;
	struct offload_seg seg;
	struct iovec parts[2];
	size_t seg_len, payload = 0;
	const char *why;

	memcpy(&vh, frame, sizeof(vh));
	if (vh.gso_type != VIRTIO_NET_HDR_GSO_TCPV4 || vh.flags != VIRTIO_NET_HDR_F_NEEDS_CSUM ||
	    offload_check(&vh, frame + NET_HDR_LEN, len - NET_HDR_LEN, OFFLOAD_CSUM | OFFLOAD_TSO4, &why) ||
	    offload_seg_start(&seg, &vh, frame + NET_HDR_LEN, len - NET_HDR_LEN))
		abort();
	while (offload_seg_next(&seg, parts, &seg_len))
		payload += parts[1].iov_len;
	if (payload != len - NET_HDR_LEN - le16toh(vh.hdr_len))
		abort();
}

static uint8_t *take(const uint8_t **data, size_t *size, size_t *len)
{
	uint8_t *copy;

	if (*size < 2)
		return NULL;
	*len = (size_t)(*data)[0] << 8 | (*data)[1];
	if (*size - 2 < *len)
		return NULL;
	copy = malloc(*len ? *len : 1);
	if (!copy)
		abort();
	memcpy(copy, *data + 2, *len);
	*data += 2 + *len;
	*size -= 2 + *len;
	return copy;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *hdr = data;
	uint8_t *frame, *first, *seg;
	size_t len, first_len, seg_len;

	if (size < NET_HDR_LEN)
		return 0;
	data += NET_HDR_LEN;
	size -= NET_HDR_LEN;
	first = take(&data, &size, &first_len);
	if (!first)
		return 0;
	len = NET_HDR_LEN + first_len;
	frame = malloc(len);
	if (!frame)
		abort();
	memcpy(frame, hdr, NET_HDR_LEN);
	memcpy(frame + NET_HDR_LEN, first, first_len);
	free(first);
	while ((seg = take(&data, &size, &seg_len))) {
		size_t want = net_coalesce_size(frame, len, seg, seg_len);

		if (want) {
			if (want <= len || want > NET_HDR_LEN + 14 + 65535)
				abort();
			frame = realloc(frame, want);
			if (!frame || net_coalesce_merge(frame, len, seg, seg_len) != want)
				abort();
			len = want;
			check_merged(frame, len);
		} else {
			uint8_t *before = malloc(len);

			if (!before)
				abort();
			memcpy(before, frame, len);
			if (net_coalesce_merge(frame, len, seg, seg_len) != len || memcmp(before, frame, len))
				abort();
			free(before);
		}
		free(seg);
	}
	free(frame);
	return 0;
}
