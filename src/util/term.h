/* The host terminal as the guest console: raw mode that is restored on every
 * exit path, an input thread, and QEMU's Ctrl-A escapes. */
#ifndef KVIO_UTIL_TERM_H
#define KVIO_UTIL_TERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERM_ESCAPE_CHAR 0x01  /* Ctrl-A */

/* Where console input goes; sink blocks until the whole buffer is taken. */
struct term_input {
	void (*sink)(void *ctx, const uint8_t *buf, size_t len);
	void *sink_ctx;
	void (*quit)(void *ctx);
	void *quit_ctx;
	/* Optional: a human monitor command line, run; its output is returned
	 * (malloc'd, freed by the caller). Ctrl-A c switches to it and back. */
	char *(*monitor)(void *ctx, const char *line);
	void *monitor_ctx;
};

/* Put stdin in raw mode if it is a terminal; restored at exit(). */
void term_init(void);
void term_restore(void);

/* Read stdin on a thread of its own and hand bytes to input. Escapes are
 * interpreted only when stdin is a terminal, so piped input passes unchanged. */
int term_start_input(const struct term_input *input);
/* Stop and join the input thread; after this no sink call is in progress. */
void term_stop_input(void);

#define TERM_MONITOR_LINE_MAX 256

/* Escape-key state machine, exposed for tests: returns how many bytes of
 * in were copied to out (at most len), calls quit on Ctrl-A x, and in
 * monitor mode (Ctrl-A c) edits a command line instead, echoing to echo_fd. */
struct term_escape {
	int after_escape;
	bool in_monitor;
	char line[TERM_MONITOR_LINE_MAX];
	size_t line_len;
	int echo_fd;  /* where the monitor's prompt and output go (0 means stderr) */
};
size_t term_filter_escapes(struct term_escape *state, const struct term_input *input, const uint8_t *in,
			   size_t len, uint8_t *out);

#endif
