/* Host terminal handling for the serial console. Raw mode passes every key,
 * Ctrl-C included, to the guest; Ctrl-A x is the way out, as in QEMU. */
#include "util/term.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

#include "util/log.h"

static struct termios saved_termios;
static bool termios_saved;

void term_restore(void)
{
	if (termios_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
}

void term_init(void)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_termios) < 0)
		return;
	termios_saved = true;
	atexit(term_restore);
	raw = saved_termios;
	/* Raw input, but keep output processing so host-side messages print cleanly. */
	raw.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	raw.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	raw.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
	raw.c_cflag |= CS8;
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

static void echo(const struct term_escape *state, const char *text, size_t len)
{
	if (write(state->echo_fd ? state->echo_fd : STDERR_FILENO, text, len) < 0) {
		/* Nothing useful to do if the terminal is gone. */
	}
}

static void echo_str(const struct term_escape *state, const char *text)
{
	echo(state, text, strlen(text));
}

static void print_escape_help(const struct term_escape *state)
{
	echo_str(state, "\r\nC-a h    print this help\r\n"
			"C-a x    exit kvio\r\n"
			"C-a c    switch between the guest console and the monitor\r\n"
			"C-a C-a  send C-a to the guest\r\n");
}

#define MONITOR_PROMPT "(kvio) "

/* Output processing is on in raw mode (OPOST), so "\n" reaches the screen as "\r\n". */
static void monitor_key(struct term_escape *state, const struct term_input *input, uint8_t c)
{
	if (c == '\r' || c == '\n') {
		char *out;

		state->line[state->line_len] = '\0';
		echo_str(state, "\n");
		out = input->monitor(input->monitor_ctx, state->line);
		if (out)
			echo_str(state, out);
		free(out);
		state->line_len = 0;
		if (state->in_monitor)
			echo_str(state, MONITOR_PROMPT);
	} else if (c == 0x7F || c == '\b') {
		if (state->line_len) {
			state->line_len--;
			echo_str(state, "\b \b");
		}
	} else if (c >= 0x20 && c < 0x7F && state->line_len < sizeof(state->line) - 1) {
		state->line[state->line_len++] = (char)c;
		echo(state, (const char *)&c, 1);
	}
}

size_t term_filter_escapes(struct term_escape *state, const struct term_input *input, const uint8_t *in,
			   size_t len, uint8_t *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		uint8_t c = in[i];

		if (!state->after_escape) {
			if (c == TERM_ESCAPE_CHAR)
				state->after_escape = 1;
			else if (state->in_monitor)
				monitor_key(state, input, c);
			else
				out[n++] = c;
			continue;
		}
		state->after_escape = 0;
		switch (c) {
		case 'x':
		case 'X':
			input->quit(input->quit_ctx);
			return n;
		case 'h':
		case 'H':
		case '?':
			print_escape_help(state);
			break;
		case 'c':
		case 'C':
			if (!input->monitor)
				break;
			state->in_monitor = !state->in_monitor;
			state->line_len = 0;
			echo_str(state, state->in_monitor ? "\r\nkvio monitor: 'help' lists the commands, C-a c returns to the guest\r\n"
							  MONITOR_PROMPT : "\r\n");
			break;
		default:
			if (!state->in_monitor)
				out[n++] = c;  /* C-a C-a sends C-a; C-a followed by anything else sends that */
			break;
		}
	}
	return n;
}

/* One console per process: the input thread and the eventfd that stops it. */
static struct {
	struct term_input input;
	bool interpret_escapes;
	pthread_t thread;
	int stop_fd;
	bool running;
} reader = { .stop_fd = -1 };

static void *input_thread(void *arg)
{
	struct term_escape escape = { 0 };
	uint8_t buf[256], filtered[256];
	struct pollfd fds[2] = {
		{ .fd = STDIN_FILENO, .events = POLLIN },
		{ .fd = reader.stop_fd, .events = POLLIN },
	};

	(void)arg;
	for (;;) {
		ssize_t n;
		size_t len;

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[1].revents)
			break;
		n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;  /* EOF: a script's input ended; the guest keeps running */
		len = (size_t)n;
		if (reader.interpret_escapes) {
			len = term_filter_escapes(&escape, &reader.input, buf, len, filtered);
			reader.input.sink(reader.input.sink_ctx, filtered, len);
		} else {
			reader.input.sink(reader.input.sink_ctx, buf, len);
		}
	}
	return NULL;
}

int term_start_input(const struct term_input *input)
{
	int err;

	reader.input = *input;
	reader.interpret_escapes = isatty(STDIN_FILENO);
	reader.stop_fd = eventfd(0, EFD_CLOEXEC);
	if (reader.stop_fd < 0) {
		log_error("console input: eventfd: %s", strerror(errno));
		return -1;
	}
	err = pthread_create(&reader.thread, NULL, input_thread, NULL);
	if (err) {
		log_error("cannot start console input thread: %s", strerror(err));
		close(reader.stop_fd);
		reader.stop_fd = -1;
		return -1;
	}
	reader.running = true;
	return 0;
}

void term_stop_input(void)
{
	uint64_t one = 1;

	if (!reader.running)
		return;
	if (write(reader.stop_fd, &one, sizeof(one)) < 0)
		log_warn("console input: cannot signal stop: %s", strerror(errno));
	pthread_join(reader.thread, NULL);
	close(reader.stop_fd);
	reader.stop_fd = -1;
	reader.running = false;
}
