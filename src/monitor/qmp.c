/* QMP's wire protocol for one connection: the greeting, capabilities
 * negotiation, then a stream of JSON commands answered in order. Malformed
 * input gets an error and the stream goes on, as in QEMU. */
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
	return json_pack("{s:{s:s,s:s}}", "error", "class", class, "desc", desc);
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

/* Answer every complete value at the front of the buffer. */
static void process_input(struct qmp_session *s)
{
	while (s->input_len) {
		json_error_t err;
		json_t *request, *reply;
		size_t skip = 0;

		while (skip < s->input_len && strchr(" \t\r\n", s->input[skip]))
			skip++;
		drop_input(s, skip);
		if (!s->input_len)
			return;
		request = json_loadb(s->input, s->input_len, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &err);
		if (!request && json_error_code(&err) == json_error_premature_end_of_input &&
		    s->input_len < sizeof(s->input))
			return;  /* the rest of the value is on its way */
		if (!request) {
			/* Resynchronise at the next line: clients send one command a line. */
			char *newline = memchr(s->input, '\n', s->input_len);
			char desc[256];

			snprintf(desc, sizeof(desc), "JSON parse error, %s", err.text);
			reply = error_reply("GenericError", desc);
			if (reply)
				qmp_session_send(s, reply);
			json_decref(reply);
			drop_input(s, newline ? (size_t)(newline - s->input) + 1 : s->input_len);
			continue;
		}
		/* With JSON_DISABLE_EOF_CHECK, position is what the value took. */
		drop_input(s, err.position > 0 && (size_t)err.position <= s->input_len ? (size_t)err.position
										 : s->input_len);
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
