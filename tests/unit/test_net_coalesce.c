/* Receive coalescing (src/backend/net_coalesce.c) on frames built here: a
 * run of TCP segments merges into one GSO frame that tools/offload.c checks
 * as a valid one and cuts back into the very same segments; a short
 * segment, PSH or the 64 KiB limit ends a run; and a segment Linux's GRO
 * would not merge (another flow, a gap, other flags, options or IP fields,
 * padding, a truncated or fragmented packet) is refused. */
#include "unit.h"

#include <linux/virtio_net.h>
#include <stdlib.h>
#include <string.h>

#include "backend/net.h"
#include "backend/net_coalesce.h"
#include "tools/offload.h"
#include "util/bytes.h"
#include "util/csum.h"

#define MSS 1460
#define SEG_MAX (14 + 20 + 40 + MSS)
#define FRAME_MAX (NET_HDR_LEN + 14 + 65535)
#define TCP_PSH 0x08
#define TCP_ACK 0x10

struct seg {
	uint8_t b[SEG_MAX + 8];
	size_t len;
};

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t host_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };

/* Segment i of a flow from 10.0.2.2:5001 to 10.0.2.15:40000 as slirp sends
 * it: IP ID and sequence number following i, data bytes that say where
 * they are in the stream, every checksum right. */
static void build(struct seg *s, unsigned int i, size_t data_len, uint8_t flags, size_t options)
{
	uint8_t *ip = s->b + 14, *tcp = ip + 20, *data = tcp + 20 + options;
	uint16_t pseudo;

	memset(s->b, 0, sizeof(s->b));
	memcpy(s->b, guest_mac, 6);
	memcpy(s->b + 6, host_mac, 6);
	put_be16(s->b + 12, 0x0800);
	ip[0] = 0x45;
	put_be16(ip + 2, (uint16_t)(20 + 20 + options + data_len));
	put_be16(ip + 4, (uint16_t)(0x100 + i));
	put_be16(ip + 6, 0x4000);  /* DF */
	ip[8] = 64;
	ip[9] = 6;
	put_be32(ip + 12, 0x0a000202);
	put_be32(ip + 16, 0x0a00020f);
	put_be16(ip + 10, (uint16_t)~csum_add(0, ip, 20));
	put_be16(tcp, 5001);
	put_be16(tcp + 2, 40000);
	put_be32(tcp + 4, 1000 + (uint32_t)(i * MSS));
	put_be32(tcp + 8, 777);
	tcp[12] = (uint8_t)((20 + options) / 4 << 4);
	tcp[13] = flags;
	put_be16(tcp + 14, 8192);
	for (size_t o = 0; o < options; o++)
		tcp[20 + o] = 1;  /* NOPs */
	for (size_t k = 0; k < data_len; k++)
		data[k] = (uint8_t)(i * MSS + k);
	s->len = 14 + 20 + 20 + options + data_len;
	pseudo = csum_add32(csum_add16(csum_add(0, ip + 12, 8), 6), (uint32_t)(s->len - 34));
	put_be16(tcp + 16, (uint16_t)~csum_add(pseudo, tcp, s->len - 34));
}

/* A frame queued the way the user backend queues one: a header marking
 * the checksums valid, then the segment. */
static size_t queue(uint8_t *frame, const struct seg *s)
{
	struct virtio_net_hdr_v1 vh = { .flags = VIRTIO_NET_HDR_F_DATA_VALID };

	memcpy(frame, &vh, sizeof(vh));
	memcpy(frame + NET_HDR_LEN, s->b, s->len);
	return NET_HDR_LEN + s->len;
}

static size_t merge(uint8_t *frame, size_t len, const struct seg *s)
{
	size_t want = net_coalesce_size(frame, len, s->b, s->len);

	assert_int_equal(want, len + (s->len - 34 - (size_t)(s->b[34 + 12] >> 4) * 4));
	assert_true(want <= FRAME_MAX);
	assert_int_equal(net_coalesce_merge(frame, len, s->b, s->len), want);
	return want;
}

/* Ten segments, the last short with PSH, become one frame; cut up again by
 * kvio-switch's segmentation they are byte for byte what went in. */
static void test_merges_a_run_and_cuts_back_to_the_same_segments(void **state)
{
	static struct seg segs[10];
	static uint8_t frame[FRAME_MAX];
	struct virtio_net_hdr_v1 vh;
	struct offload_seg cut;
	const char *why = NULL;
	size_t len, n;
	unsigned int i = 0;

	(void)state;
	for (i = 0; i < 10; i++)
		build(&segs[i], i, i == 9 ? 500 : MSS, i == 9 ? TCP_ACK | TCP_PSH : TCP_ACK, 0);
	len = queue(frame, &segs[0]);
	for (i = 1; i < 10; i++)
		len = merge(frame, len, &segs[i]);
	memcpy(&vh, frame, sizeof(vh));
	assert_int_equal(vh.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(vh.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
	assert_int_equal(le16toh(vh.gso_size), MSS);
	assert_int_equal(le16toh(vh.hdr_len), 54);
	assert_int_equal(le16toh(vh.csum_start), 34);
	assert_int_equal(le16toh(vh.csum_offset), 16);
	assert_int_equal(offload_check(&vh, frame + NET_HDR_LEN, len - NET_HDR_LEN, OFFLOAD_CSUM | OFFLOAD_TSO4, &why),
			 0);
	assert_int_equal(get_be16(frame + NET_HDR_LEN + 16), 20 + 20 + 9 * MSS + 500);
	assert_int_equal(csum_add(0, frame + NET_HDR_LEN + 14, 20), 0xffff);  /* the IP header's sum checks */

	assert_int_equal(offload_seg_start(&cut, &vh, frame + NET_HDR_LEN, len - NET_HDR_LEN), 0);
	for (i = 0; offload_seg_next(&cut, (struct iovec[2]){ 0 }, &n); i++)
		;
	assert_int_equal(i, 10);
	assert_int_equal(offload_seg_start(&cut, &vh, frame + NET_HDR_LEN, len - NET_HDR_LEN), 0);
	for (i = 0; i < 10; i++) {
		struct iovec parts[2];
		uint8_t out[SEG_MAX];

		assert_true(offload_seg_next(&cut, parts, &n));
		assert_int_equal(n, segs[i].len);
		memcpy(out, parts[0].iov_base, parts[0].iov_len);
		memcpy(out + parts[0].iov_len, parts[1].iov_base, parts[1].iov_len);
		assert_memory_equal(out, segs[i].b, n);
	}
}

/* A short segment or a PSH ends the run; the next frame starts a new one. */
static void test_a_short_segment_or_psh_ends_a_run(void **state)
{
	static uint8_t frame[FRAME_MAX];
	struct seg a, b, c;
	size_t len;

	(void)state;
	build(&a, 0, MSS, TCP_ACK, 0);
	build(&b, 1, 100, TCP_ACK, 0);
	build(&c, 2, MSS, TCP_ACK, 0);
	put_be32(c.b + 38, 1000 + MSS + 100);  /* right after b */
	len = merge(frame, queue(frame, &a), &b);
	assert_int_equal(net_coalesce_size(frame, len, c.b, c.len), 0);

	build(&b, 1, MSS, TCP_ACK | TCP_PSH, 0);
	build(&c, 2, MSS, TCP_ACK, 0);
	len = merge(frame, queue(frame, &a), &b);
	assert_int_equal(net_coalesce_size(frame, len, c.b, c.len), 0);

	/* A first segment shorter than the ones after it sets a size they exceed. */
	build(&a, 0, 1000, TCP_ACK, 0);
	build(&b, 1, MSS, TCP_ACK, 0);
	put_be32(b.b + 38, 1000 + 1000);
	assert_int_equal(net_coalesce_size(frame, queue(frame, &a), b.b, b.len), 0);
}

/* 44 full segments fit an IPv4 packet's 65535 bytes; a 45th would not. */
static void test_a_run_stops_at_an_ip_packets_size(void **state)
{
	static uint8_t frame[FRAME_MAX];
	struct seg s;
	size_t len;
	unsigned int i;

	(void)state;
	build(&s, 0, MSS, TCP_ACK, 0);
	len = queue(frame, &s);
	for (i = 1; i < 44; i++) {
		build(&s, i, MSS, TCP_ACK, 0);
		len = merge(frame, len, &s);
	}
	assert_int_equal(get_be16(frame + NET_HDR_LEN + 16), 40 + 44 * MSS);
	build(&s, 44, MSS, TCP_ACK, 0);
	assert_int_equal(net_coalesce_size(frame, len, s.b, s.len), 0);
	build(&s, 44, 65535 - 40 - 44 * MSS, TCP_ACK, 0);  /* what still fits does */
	len = merge(frame, len, &s);
	assert_int_equal(get_be16(frame + NET_HDR_LEN + 16), 65535);
}

/* Equal TCP options merge (slirp sends none, a timestamp would differ). */
static void test_equal_options_merge(void **state)
{
	static uint8_t frame[FRAME_MAX];
	struct seg a, b;
	struct virtio_net_hdr_v1 vh;
	const char *why = NULL;
	size_t len;

	(void)state;
	build(&a, 0, MSS, TCP_ACK, 12);
	build(&b, 1, MSS, TCP_ACK, 12);
	len = merge(frame, queue(frame, &a), &b);
	memcpy(&vh, frame, sizeof(vh));
	assert_int_equal(le16toh(vh.hdr_len), 66);
	assert_int_equal(offload_check(&vh, frame + NET_HDR_LEN, len - NET_HDR_LEN, OFFLOAD_CSUM | OFFLOAD_TSO4, &why),
			 0);
}

typedef void (*mutation)(struct seg *s);

static void other_port(struct seg *s) { s->b[34 + 1] ^= 1; }
static void other_dst_port(struct seg *s) { s->b[34 + 3] ^= 1; }
static void other_addr(struct seg *s) { s->b[14 + 15] ^= 1; }
static void other_mac(struct seg *s) { s->b[11] ^= 1; }
static void gap(struct seg *s) { put_be32(s->b + 38, get_be32(s->b + 38) + 1); }
static void overlap(struct seg *s) { put_be32(s->b + 38, get_be32(s->b + 38) - 1); }
static void other_ack(struct seg *s) { s->b[34 + 11] ^= 1; }
static void other_ttl(struct seg *s) { s->b[14 + 8] = 63; }
static void other_tos(struct seg *s) { s->b[14 + 1] = 0x10; }
static void ecn_ce(struct seg *s) { s->b[14 + 1] = 3; }
static void no_df(struct seg *s) { s->b[14 + 6] = 0; }
static void more_fragments(struct seg *s) { s->b[14 + 6] |= 0x20; }
static void ip_options(struct seg *s) { s->b[14] = 0x46; }
static void syn(struct seg *s) { s->b[34 + 13] |= 0x02; }
static void fin(struct seg *s) { s->b[34 + 13] |= 0x01; }
static void rst(struct seg *s) { s->b[34 + 13] |= 0x04; }
static void urg(struct seg *s) { s->b[34 + 13] |= 0x20; }
static void cwr(struct seg *s) { s->b[34 + 13] |= 0x80; }
static void no_ack(struct seg *s) { s->b[34 + 13] &= (uint8_t)~TCP_ACK; }
static void accecn(struct seg *s) { s->b[34 + 12] |= 1; }
static void udp(struct seg *s) { s->b[14 + 9] = 17; }
static void ipv6_type(struct seg *s) { put_be16(s->b + 12, 0x86dd); }
static void padded(struct seg *s) { s->len += 4; }
static void truncated(struct seg *s) { s->len -= 1; }
static void too_long(struct seg *s) { put_be16(s->b + 16, (uint16_t)(get_be16(s->b + 16) + 1)); }
static void other_tcp_header_length(struct seg *s) { s->b[34 + 12] = 0xf0; }
static void tcp_header_too_short(struct seg *s) { s->b[34 + 12] = 0x40; }
static void headers_only(struct seg *s) { s->len = 54; put_be16(s->b + 16, 40); }
static void runt(struct seg *s) { s->len = 40; }

/* Each of these, done to the second segment, stops the merge. */
static void test_refuses_what_gro_would_not_merge(void **state)
{
	static const mutation mutations[] = {
		other_port, other_dst_port, other_addr, other_mac, gap, overlap, other_ack, other_ttl, other_tos,
		ecn_ce, no_df, more_fragments, ip_options, syn, fin, rst, urg, cwr, no_ack, accecn, udp,
		ipv6_type, padded, truncated, too_long, other_tcp_header_length, tcp_header_too_short,
		headers_only, runt,
	};
	static uint8_t frame[FRAME_MAX];
	struct seg a, b;
	size_t len;

	(void)state;
	build(&a, 0, MSS, TCP_ACK, 0);
	len = queue(frame, &a);
	for (size_t m = 0; m < sizeof(mutations) / sizeof(mutations[0]); m++) {
		build(&b, 1, MSS, TCP_ACK, 0);
		assert_int_not_equal(net_coalesce_size(frame, len, b.b, b.len), 0);
		mutations[m](&b);
		if (net_coalesce_size(frame, len, b.b, b.len))
			fail_msg("mutation %zu merged", m);
		/* The same done to the frame waiting: nothing joins it either. */
		build(&b, 1, MSS, TCP_ACK, 0);
		{
			struct seg first = a;
			size_t first_len;

			mutations[m](&first);
			first_len = NET_HDR_LEN + first.len;
			memcpy(frame + NET_HDR_LEN, first.b, first.len);
			if (net_coalesce_size(frame, first_len, b.b, b.len))
				fail_msg("mutation %zu to the first segment merged", m);
			len = queue(frame, &a);
		}
	}
	/* A header coalescing did not write: a checksum to finish, or IPv6 GSO. */
	((struct virtio_net_hdr_v1 *)frame)->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	assert_int_equal(net_coalesce_size(frame, len, b.b, b.len), 0);
	len = queue(frame, &a);
	((struct virtio_net_hdr_v1 *)frame)->gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
	assert_int_equal(net_coalesce_size(frame, len, b.b, b.len), 0);
	assert_int_equal(net_coalesce_size(frame, NET_HDR_LEN - 1, b.b, b.len), 0);
	assert_int_equal(net_coalesce_merge(frame, len, b.b, b.len), len);  /* refused: unchanged */
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merges_a_run_and_cuts_back_to_the_same_segments),
		cmocka_unit_test(test_a_short_segment_or_psh_ends_a_run),
		cmocka_unit_test(test_a_run_stops_at_an_ip_packets_size),
		cmocka_unit_test(test_equal_options_merge),
		cmocka_unit_test(test_refuses_what_gro_would_not_merge),
	};

	return cmocka_run_group_tests_name("net_coalesce", tests, NULL, NULL);
}
