/* The console's Ctrl-A escapes, as QEMU users expect them. */
#include "unit.h"

#include "util/term.h"

static int quits;
static void on_quit(void *ctx)
{
	(void)ctx;
	quits++;
}

static void test_escapes(void **state)
{
	struct term_input input = { .quit = on_quit };
	struct term_escape esc = { 0 };
	uint8_t out[16];
	size_t n;

	(void)state;
	quits = 0;
	n = term_filter_escapes(&esc, &input, (const uint8_t *)"ab\x01\x01" "c", 5, out);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "ab\x01" "c", 4);
	assert_int_equal(quits, 0);
	/* The escape may arrive split across two reads. */
	n = term_filter_escapes(&esc, &input, (const uint8_t *)"z\x01", 2, out);
	assert_int_equal(n, 1);
	n = term_filter_escapes(&esc, &input, (const uint8_t *)"xafter", 6, out);
	assert_int_equal(n, 0);
	assert_int_equal(quits, 1);
	/* Ctrl-C is just a byte for the guest. */
	n = term_filter_escapes(&esc, &input, (const uint8_t *)"\x03", 1, out);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escapes),
	};

	return cmocka_run_group_tests_name("term", tests, NULL, NULL);
}
