/* QMP's wire protocol for one connection: the greeting, capabilities
 * negotiation, then a stream of JSON commands answered in order. Malformed
 * input gets an error and the stream goes on, as in QEMU. */
#include <stdbool.h>
#include <string.h>

#include "config.h"
#include "monitor/monitor.h"

void qmp_session_init(struct qmp_session *s, struct monitor *mon, void (*write)(void *ctx, const char *data, size_t len),
		      void *ctx)
{
	s->mon = mon;
	s->negotiated = false;
	s->input_len = 0;
	s->write = write;
	s->write_ctx = ctx;
}

void qmp_session_send(struct qmp_session *s, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);

	if (text) {
		s->write(s->write_ctx, text, strlen(text));
		s->write(s->write_ctx, "\r\n", 2);
		free(text);
	}
}

void qmp_session_greet(struct qmp_session *s)
{
	unsigned int major = 0, minor = 0, micro = 0;
	json_t *greeting;

	sscanf(KVIO_VERSION, "%u.%u.%u", &major, &minor, &micro);
	greeting = json_pack("{s:{s:{s:{s:i,s:i,s:i},s:s},s:[]}}", "QMP", "version", "qemu", "major", major, "minor",
			     minor, "micro", micro, "package", "kvio " KVIO_VERSION, "capabilities");
	if (greeting)
		qmp_session_send(s, greeting);
	json_decref(greeting);
}

static json_t *with_id(json_t *reply, json_t *id)
{
	if (reply && id)
		json_object_set(reply, "id", id);
	return reply;
}

static json_t *error_reply(const char *class, const char *desc)
{
	return json_pack("{s:o}", "error", monitor_error(class, "%s", desc));
}

/* One request: {"execute": NAME, "arguments": {...}, "id": ANY}. */
static json_t *handle_request(struct qmp_session *s, json_t *request)
{
	json_t *id, *execute, *args = NULL, *reply;
	const char *key, *name;
	json_t *value;

	if (!json_is_object(request))
		return error_reply("GenericError", "QMP input must be a JSON object");
	id = json_object_get(request, "id");
	json_object_foreach(request, key, value) {
		if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id")) {
			char desc[160];

			snprintf(desc, sizeof(desc), "QMP input member '%.100s' is unexpected", key);
			return with_id(error_reply("GenericError", desc), id);
		}
	}
	execute = json_object_get(request, "execute");
	if (!execute)
		return with_id(error_reply("GenericError", "QMP input lacks member 'execute'"), id);
	if (!json_is_string(execute))
		return with_id(error_reply("GenericError", "QMP input member 'execute' must be a string"), id);
	name = json_string_value(execute);
	if (json_object_get(request, "arguments")) {
		args = json_object_get(request, "arguments");
		if (!json_is_object(args))
			return with_id(error_reply("GenericError", "QMP input member 'arguments' must be an object"), id);
	}
	if (!s->negotiated && strcmp(name, "qmp_capabilities"))
		return with_id(error_reply("CommandNotFound",
					   "Expecting capabilities negotiation with 'qmp_capabilities'"), id);
	if (s->negotiated && !strcmp(name, "qmp_capabilities"))
		return with_id(error_reply("CommandNotFound",
					   "Capabilities negotiation is already complete, command ignored"), id);
	reply = monitor_execute(s->mon, name, args);
	if (!strcmp(name, "qmp_capabilities") && reply && json_object_get(reply, "return"))
		s->negotiated = true;
	return with_id(reply, id);
}

static void drop_input(struct qmp_session *s, size_t n)
{
	memmove(s->input, s->input + n, s->input_len - n);
	s->input_len -= n;
}

#define QMP_MAX_DEPTH 1024

/* Where the value at the front of the buffer ends, as QEMU's JSON streamer
 * frames it: an object or array ends where its brackets close (counted
 * outside strings), anything else at a newline. So a value split anywhere
 * across reads waits for its end, and a broken one ends where its brackets
 * say. Returns its length, or 0 if it is not all here yet; *too_deep if it
 * nests past QMP_MAX_DEPTH. */
static size_t value_length(const char *buf, size_t len, bool *too_deep)
{
	unsigned int depth = 0;
	bool in_string = false, escaped = false;
	const char *newline;

	*too_deep = false;
	if (buf[0] != '{' && buf[0] != '[') {
		newline = memchr(buf, '\n', len);
		return newline ? (size_t)(newline - buf) + 1 : 0;
	}
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (in_string) {
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '{' || c == '[') {
			if (++depth > QMP_MAX_DEPTH) {
				*too_deep = true;
				return i + 1;
			}
		} else if ((c == '}' || c == ']') && --depth == 0) {
			return i + 1;
		}
	}
	return 0;
}

static void send_error(struct qmp_session *s, const char *desc)
{
	json_t *reply = error_reply("GenericError", desc);

	if (reply)
		qmp_session_send(s, reply);
	json_decref(reply);
}

/* After input that cannot be a command: go on at the next line. */
static void drop_line(struct qmp_session *s)
{
	char *newline = memchr(s->input, '\n', s->input_len);

	drop_input(s, newline ? (size_t)(newline - s->input) + 1 : s->input_len);
}

/* Answer every complete value at the front of the buffer. */
static void process_input(struct qmp_session *s)
{
	while (s->input_len) {
		json_error_t err;
		json_t *request, *reply;
		size_t skip = 0, len;
		bool too_deep;

		while (skip < s->input_len && strchr(" \t\r\n", s->input[skip]))
			skip++;
		drop_input(s, skip);
		if (!s->input_len)
			return;
		len = value_length(s->input, s->input_len, &too_deep);
		if (too_deep) {
			send_error(s, "JSON parse error, nesting too deep");
			drop_line(s);
			continue;
		}
		if (!len) {
			if (s->input_len < sizeof(s->input))
				return;  /* the rest of the value is on its way */
			send_error(s, "JSON parse error, input too long");
			drop_line(s);
			continue;
		}
		request = json_loadb(s->input, len, JSON_DECODE_ANY, &err);
		drop_input(s, len);
		if (!request) {
			char desc[256];

			snprintf(desc, sizeof(desc), "JSON parse error, %s", err.text);
			send_error(s, desc);
			continue;
		}
		reply = handle_request(s, request);
		if (reply)
			qmp_session_send(s, reply);
		json_decref(reply);
		json_decref(request);
	}
}

void qmp_session_input(struct qmp_session *s, const char *data, size_t len)
{
	while (len) {
		size_t n = sizeof(s->input) - s->input_len;

		if (n > len)
			n = len;
		memcpy(s->input + s->input_len, data, n);
		s->input_len += n;
		data += n;
		len -= n;
		process_input(s);
	}
}
