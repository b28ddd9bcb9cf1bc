/* The Internet checksum helper (src/util/csum.c) against a plain
 * word-at-a-time sum: every length from 0 to 300 at four alignments, sums
 * chained over even-length blocks and, by csum_add_at, over blocks of any
 * length, 32-bit words, the RFC 1071 example, and a 64 KiB block of 0xff
 * bytes (the most carries). */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "util/csum.h"

static uint16_t ref(uint16_t start, const uint8_t *p, size_t len)
{
	uint64_t sum = start;

	for (size_t i = 0; i < len; i += 2)
		sum += (uint32_t)p[i] << 8 | (i + 1 < len ? p[i + 1] : 0);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static void test_lengths_and_alignments(void **state)
{
	uint8_t buf[304];

	(void)state;
	srand(1);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rand();
	for (size_t align = 0; align < 4; align++) {
		for (size_t len = 0; len + align <= 300; len++) {
			assert_int_equal(csum_add(0, buf + align, len), ref(0, buf + align, len));
			assert_int_equal(csum_add(0x1234, buf + align, len), ref(0x1234, buf + align, len));
		}
	}
}

static void test_chained_blocks(void **state)
{
	uint8_t buf[1000];

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 31 + 7);
	for (size_t cut = 0; cut <= 998; cut += 2)
		assert_int_equal(csum_add(csum_add(0, buf, cut), buf + cut, 999 - cut), ref(0, buf, 999));
	assert_int_equal(csum_add16(csum_add(0, buf, 10), 0xabcd), ref(0xabcd, buf, 10));
}

static void test_blocks_at_any_position(void **state)
{
	uint8_t buf[101];

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 73 + 11);
	for (size_t a = 0; a <= 40; a++) {
		for (size_t b = a; b <= 80; b++) {
			uint16_t sum = csum_add_at(0x1234, buf, a, 0);

			sum = csum_add_at(sum, buf + a, b - a, a);
			sum = csum_add_at(sum, buf + b, sizeof(buf) - b, b);
			assert_int_equal(sum, ref(0x1234, buf, sizeof(buf)));
		}
	}
	memset(buf, 0, sizeof(buf));
	assert_int_equal(csum_add_at(0, buf, 7, 3), 0);  /* zero stays zero, not 0xffff */
}

static void test_add32(void **state)
{
	static const uint32_t words[] = { 0, 1, 0xffff, 0x10000, 0x100fe, 0x12345678, 0xffffffff };

	(void)state;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		uint8_t be[4] = { words[i] >> 24, words[i] >> 16, words[i] >> 8, words[i] };

		assert_int_equal(csum_add32(0, words[i]), ref(0, be, 4));
		assert_int_equal(csum_add32(0xfffe, words[i]), ref(0xfffe, be, 4));
	}
}

static void test_rfc1071_example_and_carries(void **state)
{
	static const uint8_t example[8] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	static uint8_t ones[65536];

	(void)state;
	assert_int_equal(csum_add(0, example, 8), 0xddf2);  /* RFC 1071, section 3 */
	memset(ones, 0xff, sizeof(ones));
	assert_int_equal(csum_add(0, ones, sizeof(ones)), 0xffff);
	assert_int_equal(csum_add(0xffff, ones, sizeof(ones) - 1), ref(0xffff, ones, sizeof(ones) - 1));
	assert_int_equal(csum_add16(0xffff, 1), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lengths_and_alignments),
		cmocka_unit_test(test_chained_blocks),
		cmocka_unit_test(test_blocks_at_any_position),
		cmocka_unit_test(test_add32),
		cmocka_unit_test(test_rfc1071_example_and_carries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
