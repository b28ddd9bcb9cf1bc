/* The console's Ctrl-A escapes, as QEMU users expect them. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static char last_line[64];
static int monitor_calls;
static char *fake_monitor(void *ctx, const char *line)
{
	(void)ctx;
	snprintf(last_line, sizeof(last_line), "%s", line);
	monitor_calls++;
	return strdup("VM status: running\n");
}

/* Ctrl-A c: keys go to a line editor and the monitor, not the guest, until Ctrl-A c again. */
static void test_monitor_mode(void **state)
{
	struct term_input input = { .quit = on_quit, .monitor = fake_monitor };
	struct term_escape esc = { 0 };
	int pipefd[2];
	uint8_t out[64];
	char echoed[512];
	size_t n;
	ssize_t got;

	(void)state;
	assert_int_equal(pipe(pipefd), 0);
	esc.echo_fd = pipefd[1];
	monitor_calls = 0;
	static const char typed[] = "ls\x01" "cinfo statuz\x7f" "s\r";

	n = term_filter_escapes(&esc, &input, (const uint8_t *)typed, sizeof(typed) - 1, out);
	assert_int_equal(n, 2);  /* "ls" went to the guest before the switch */
	assert_memory_equal(out, "ls", 2);
	assert_int_equal(monitor_calls, 1);
	assert_string_equal(last_line, "info status");
	got = read(pipefd[0], echoed, sizeof(echoed) - 1);
	assert_true(got > 0);
	echoed[got] = '\0';
	assert_non_null(strstr(echoed, "(kvio) info statu"));
	assert_non_null(strstr(echoed, "VM status: running"));
	/* An empty line runs nothing harmful; Ctrl-A c goes back to the guest. */
	n = term_filter_escapes(&esc, &input, (const uint8_t *)"\x01" "cpwd\r", 6, out);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "pwd\r", 4);
	assert_int_equal(monitor_calls, 1);
	/* Without a monitor, Ctrl-A c is swallowed and nothing changes. */
	input.monitor = NULL;
	esc.in_monitor = false;
	n = term_filter_escapes(&esc, &input, (const uint8_t *)"\x01" "cab", 4, out);
	assert_int_equal(n, 2);
	assert_false(esc.in_monitor);
	/* A line longer than the buffer is cut, not overrun. */
	input.monitor = fake_monitor;
	n = term_filter_escapes(&esc, &input, (const uint8_t *)"\x01" "c", 2, out);
	for (int i = 0; i < 1000; i++)
		term_filter_escapes(&esc, &input, (const uint8_t *)"a", 1, out);
	assert_int_equal(esc.line_len, TERM_MONITOR_LINE_MAX - 1);
	close(pipefd[0]);
	close(pipefd[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_monitor_mode),
	};

	return cmocka_run_group_tests_name("term", tests, NULL, NULL);
}
