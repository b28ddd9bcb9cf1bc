/* Logging to stderr, each line prefixed "kvio:" (or a tool's name). One write
 * per message so lines from different threads do not interleave. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum log_level current_level = LOG_INFO;
static const char *current_prefix = "kvio";

void log_set_level(enum log_level level)
{
	current_level = level;
}

void log_set_prefix(const char *prefix)
{
	current_prefix = prefix;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const prefixes[] = {
		[LOG_ERROR] = "", [LOG_WARN] = "warning: ", [LOG_INFO] = "", [LOG_DEBUG] = "debug: ",
	};
	char line[1024];
	int len;
	va_list ap;

	if (level > current_level)
		return;
	len = snprintf(line, sizeof(line), "%s: %s", current_prefix, prefixes[level]);
	va_start(ap, fmt);
	len += vsnprintf(line + len, sizeof(line) - (size_t)len, fmt, ap);
	va_end(ap);
	if (len > (int)sizeof(line) - 2)
		len = (int)sizeof(line) - 2;
	line[len++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)len) < 0) {
		/* Nowhere left to report a failure to report. */
	}
}
