/* The monitor's plumbing: the listening socket and its clients on the main
 * loop, the event queue any thread may post to, and the lock that runs one
 * command at a time whether it came from QMP or the console. */
#include "monitor/monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

#define MONITOR_MAX_CLIENTS 8
/* A client that reads nothing while this much output piles up is dropped. */
#define CLIENT_OUTPUT_MAX (1024 * 1024)

struct monitor_client {
	struct event_handler handler;
	struct monitor *mon;
	struct qmp_session session;
	char *output;
	size_t output_len;
	bool watching_output;  /* EPOLLOUT registered: output is waiting */
	bool dead;
};

struct queued_event {
	struct queued_event *next;
	json_t *msg;
};

struct monitor {
	const struct monitor_machine_ops *ops;
	void *ctx;
	pthread_mutex_t command_lock;  /* one command at a time (recursive) */
	unsigned int hmp_cpu;          /* the console's `cpu N`; under command_lock */
	struct event_loop *loop;
	struct event_handler listener;
	struct event_handler events_ready;  /* an eventfd: events were queued */
	struct monitor_client *clients[MONITOR_MAX_CLIENTS];
	pthread_mutex_t events_lock;
	struct queued_event *events_head, **events_tail;
};

#define CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

const struct monitor_machine_ops *monitor_ops(struct monitor *mon, void **ctx)
{
	*ctx = mon->ctx;
	return mon->ops;
}

struct monitor_machine *monitor_describe(struct monitor *mon)
{
	struct monitor_machine *m = calloc(1, sizeof(*m));

	if (m) {
		pthread_mutex_lock(&mon->command_lock);
		mon->ops->describe(mon->ctx, m);
		pthread_mutex_unlock(&mon->command_lock);
	}
	return m;
}

bool monitor_has_cpu(struct monitor *mon, long long cpu)
{
	struct monitor_machine *m = monitor_describe(mon);
	bool has = m && cpu >= 0 && cpu < m->nr_cpus;

	free(m);
	return has;
}

json_t *monitor_error(const char *class, const char *fmt, ...)
{
	char desc[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	/* Names the client sent are quoted cut short, maybe inside a UTF-8
	 * character, which jansson would refuse: only ASCII goes back. */
	for (char *c = desc; *c; c++)
		if ((unsigned char)*c >= 0x80 || (unsigned char)*c < 0x20)
			*c = '?';
	return json_pack("{s:s,s:s}", "class", class, "desc", desc);
}

/* The argument spec "name:t name?:t": each given argument must be listed and
 * of its type, each unmarked one present. Returns the error, or NULL if none. */
static json_t *argument_error(const struct monitor_command *cmd, json_t *args)
{
	const char *spec = cmd->args ? cmd->args : "";
	const char *key;
	json_t *value;

	json_object_foreach(args, key, value) {
		const char *p = spec;
		bool found = false;

		while (*p && !found) {
			size_t n = strcspn(p, "?:");
			const char *type = strchr(p, ':') + 1;

			if (strlen(key) == n && !strncmp(p, key, n)) {
				bool ok = (*type == 'i' && json_is_integer(value)) || (*type == 's' && json_is_string(value)) ||
					  (*type == 'b' && json_is_boolean(value)) || (*type == 'a' && json_is_array(value));
				static const char *const names[] = { ['i'] = "integer", ['s'] = "string",
								     ['b'] = "boolean", ['a'] = "array" };

				if (!ok)
					return monitor_error("GenericError", "Invalid parameter type for '%s', expected: %s",
							     key, names[(unsigned char)*type]);
				found = true;
			}
			p = type + 1;
			p += strspn(p, " ");
		}
		if (!found)
			return monitor_error("GenericError", "Parameter '%s' is unexpected", key);
	}
	for (const char *p = spec; *p;) {
		size_t n = strcspn(p, "?:");
		char name[64];

		if (p[n] == ':' && n < sizeof(name)) {
			memcpy(name, p, n);
			name[n] = '\0';
			if (!json_object_get(args, name))
				return monitor_error("GenericError", "Parameter '%s' is missing", name);
		}
		p = strchr(p, ':') + 2;
		p += strspn(p, " ");
	}
	return NULL;
}

json_t *monitor_execute(struct monitor *mon, const char *name, json_t *args)
{
	const struct monitor_command *cmd = monitor_command_find(name);
	json_t *empty = NULL, *error = NULL, *result = NULL;

	if (!cmd)
		return json_pack("{s:o}", "error",
				 monitor_error("CommandNotFound", "The command %.100s has not been found", name));
	if (!args)
		args = empty = json_object();
	error = argument_error(cmd, args);
	if (!error) {
		pthread_mutex_lock(&mon->command_lock);
		result = cmd->run(mon, args, &error);
		pthread_mutex_unlock(&mon->command_lock);
	}
	json_decref(empty);
	if (result)
		return json_pack("{s:o}", "return", result);
	if (!error)
		error = monitor_error("GenericError", "%s failed", name);
	return json_pack("{s:o}", "error", error);
}

char *monitor_human(struct monitor *mon, const char *line)
{
	char *out;

	pthread_mutex_lock(&mon->command_lock);
	out = hmp_execute(mon, line, &mon->hmp_cpu);
	pthread_mutex_unlock(&mon->command_lock);
	return out;
}

/* --- events --- */

void monitor_emit(struct monitor *mon, const char *event, json_t *data)
{
	struct queued_event *q = malloc(sizeof(*q));
	struct timespec now;
	uint64_t one = 1;

	clock_gettime(CLOCK_REALTIME, &now);
	if (!q || mon->events_ready.fd < 0) {  /* no QMP socket: nobody to tell */
		free(q);
		json_decref(data);
		return;
	}
	q->next = NULL;
	q->msg = json_pack("{s:s,s:{s:I,s:I}}", "event", event, "timestamp", "seconds", (json_int_t)now.tv_sec,
			   "microseconds", (json_int_t)(now.tv_nsec / 1000));
	if (!q->msg) {
		free(q);
		json_decref(data);
		return;
	}
	if (data)
		json_object_set_new(q->msg, "data", data);
	pthread_mutex_lock(&mon->events_lock);
	*mon->events_tail = q;
	mon->events_tail = &q->next;
	pthread_mutex_unlock(&mon->events_lock);
	if (write(mon->events_ready.fd, &one, sizeof(one)) < 0)
		log_warn("monitor: cannot wake the main loop: %s", strerror(errno));
}

static void client_send(void *ctx, const char *data, size_t len);

static void deliver_events(struct monitor *mon)
{
	struct queued_event *q;

	pthread_mutex_lock(&mon->events_lock);
	q = mon->events_head;
	mon->events_head = NULL;
	mon->events_tail = &mon->events_head;
	pthread_mutex_unlock(&mon->events_lock);
	while (q) {
		struct queued_event *next = q->next;

		for (unsigned int i = 0; i < MONITOR_MAX_CLIENTS; i++) {
			struct monitor_client *c = mon->clients[i];

			if (c && c->session.negotiated && !c->dead)
				qmp_session_send(&c->session, q->msg);
		}
		json_decref(q->msg);
		free(q);
		q = next;
	}
}

/* --- clients --- */

static void client_close(struct monitor_client *c)
{
	struct monitor *mon = c->mon;

	for (unsigned int i = 0; i < MONITOR_MAX_CLIENTS; i++)
		if (mon->clients[i] == c)
			mon->clients[i] = NULL;
	if (mon->loop)
		event_loop_remove(mon->loop, &c->handler);
	close(c->handler.fd);
	free(c->output);
	free(c);
}

static void client_flush(struct monitor_client *c)
{
	while (c->output_len && !c->dead) {
		ssize_t n = write(c->handler.fd, c->output, c->output_len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			c->dead = true;
			break;
		}
		memmove(c->output, c->output + n, c->output_len - (size_t)n);
		c->output_len -= (size_t)n;
	}
	if (c->dead || !c->mon->loop)
		return;
	if (c->output_len && !c->watching_output) {
		c->watching_output = !event_loop_modify(c->mon->loop, &c->handler, EPOLLIN | EPOLLOUT);
	} else if (!c->output_len && c->watching_output) {
		event_loop_modify(c->mon->loop, &c->handler, EPOLLIN);
		c->watching_output = false;
	}
}

static void client_send(void *ctx, const char *data, size_t len)
{
	struct monitor_client *c = ctx;
	char *grown;

	if (c->dead)
		return;
	if (c->output_len + len > CLIENT_OUTPUT_MAX) {
		log_warn("monitor: a client reads nothing of its replies; dropping it");
		c->dead = true;
		return;
	}
	grown = realloc(c->output, c->output_len + len);
	if (!grown) {
		c->dead = true;
		return;
	}
	c->output = grown;
	memcpy(c->output + c->output_len, data, len);
	c->output_len += len;
	client_flush(c);
}

static void client_ready(struct event_handler *handler, uint32_t events)
{
	struct monitor_client *c = CONTAINER_OF(handler, struct monitor_client, handler);
	char buf[4096];

	if (events & EPOLLOUT)
		client_flush(c);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ssize_t n = read(handler->fd, buf, sizeof(buf));

		if (n > 0)
			qmp_session_input(&c->session, buf, (size_t)n);
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			c->dead = true;
	}
	if (c->dead)
		client_close(c);
}

static void listener_ready(struct event_handler *handler, uint32_t events)
{
	struct monitor *mon = CONTAINER_OF(handler, struct monitor, listener);
	struct monitor_client *c;
	unsigned int slot;
	int fd;

	(void)events;
	fd = accept4(handler->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	for (slot = 0; slot < MONITOR_MAX_CLIENTS && mon->clients[slot]; slot++)
		;
	c = slot < MONITOR_MAX_CLIENTS ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		static const char busy[] = "{\"error\": {\"class\": \"GenericError\", \"desc\": \"too many monitor clients\"}}\r\n";

		if (write(fd, busy, sizeof(busy) - 1) < 0) {
			/* it is being refused anyway */
		}
		close(fd);
		return;
	}
	c->mon = mon;
	c->handler.fd = fd;
	c->handler.ready = client_ready;
	qmp_session_init(&c->session, mon, client_send, c);
	if (event_loop_add(mon->loop, &c->handler, EPOLLIN)) {
		close(fd);
		free(c);
		return;
	}
	mon->clients[slot] = c;
	qmp_session_greet(&c->session);
	if (c->dead)
		client_close(c);
}

static void events_ready(struct event_handler *handler, uint32_t events)
{
	struct monitor *mon = CONTAINER_OF(handler, struct monitor, events_ready);
	uint64_t count;

	(void)events;
	if (read(handler->fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("monitor: event wakeup: %s", strerror(errno));
	deliver_events(mon);
	/* A client that died here is closed by its own handler, which the
	 * shutdown wakes: this batch of events may still hold one for it. */
	for (unsigned int i = 0; i < MONITOR_MAX_CLIENTS; i++)
		if (mon->clients[i] && mon->clients[i]->dead)
			shutdown(mon->clients[i]->handler.fd, SHUT_RDWR);
}

static int listen_unix(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	unlink(path);  /* a socket left by an earlier run, as QEMU's server=on does */
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, MONITOR_MAX_CLIENTS) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

struct monitor *monitor_create(const char *path, const struct monitor_machine_ops *ops, void *ctx)
{
	struct monitor *mon = calloc(1, sizeof(*mon));
	pthread_mutexattr_t attr;

	if (!mon)
		return NULL;
	mon->ops = ops;
	mon->ctx = ctx;
	mon->listener.fd = -1;
	mon->events_ready.fd = -1;
	mon->events_tail = &mon->events_head;
	/* Recursive: human-monitor-command runs other commands inside itself. */
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&mon->command_lock, &attr);
	pthread_mutexattr_destroy(&attr);
	pthread_mutex_init(&mon->events_lock, NULL);
	/* jansson seeds its hash tables from /dev/urandom at the first object,
	 * which the sandbox would refuse later: seed it now. */
	json_object_seed(0);
	if (!path)
		return mon;
	mon->listener.fd = listen_unix(path);
	if (mon->listener.fd < 0) {
		log_error("--monitor: cannot listen on '%s': %s", path, strerror(errno));
		goto fail;
	}
	mon->listener.ready = listener_ready;
	mon->events_ready.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	mon->events_ready.ready = events_ready;
	if (mon->events_ready.fd < 0) {
		log_error("--monitor: eventfd: %s", strerror(errno));
		goto fail;
	}
	return mon;
fail:
	monitor_destroy(mon);
	return NULL;
}

int monitor_start(struct monitor *mon, struct event_loop *loop)
{
	if (mon->listener.fd < 0)
		return 0;
	if (event_loop_add(loop, &mon->listener, EPOLLIN) || event_loop_add(loop, &mon->events_ready, EPOLLIN)) {
		log_error("--monitor: cannot watch the socket: %s", strerror(errno));
		return -1;
	}
	mon->loop = loop;
	return 0;
}

void monitor_stop(struct monitor *mon)
{
	if (!mon || !mon->loop)
		return;
	for (unsigned int i = 0; i < MONITOR_MAX_CLIENTS; i++)
		if (mon->clients[i])
			event_loop_remove(mon->loop, &mon->clients[i]->handler);
	event_loop_remove(mon->loop, &mon->listener);
	event_loop_remove(mon->loop, &mon->events_ready);
	mon->loop = NULL;
}

void monitor_flush(struct monitor *mon, int timeout_ms)
{
	struct timespec start, now;

	deliver_events(mon);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (unsigned int i = 0; i < MONITOR_MAX_CLIENTS; i++) {
		struct monitor_client *c = mon->clients[i];

		while (c && c->output_len && !c->dead) {
			struct pollfd pfd = { .fd = c->handler.fd, .events = POLLOUT };
			long spent;

			clock_gettime(CLOCK_MONOTONIC, &now);
			spent = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
			if (spent >= timeout_ms || poll(&pfd, 1, (int)(timeout_ms - spent)) <= 0)
				break;
			client_flush(c);
		}
	}
}

void monitor_destroy(struct monitor *mon)
{
	struct queued_event *q;

	if (!mon)
		return;
	for (unsigned int i = 0; i < MONITOR_MAX_CLIENTS; i++)
		if (mon->clients[i])
			client_close(mon->clients[i]);
	monitor_stop(mon);
	/* The socket file stays, as QEMU's does: the next run replaces it. */
	if (mon->listener.fd >= 0)
		close(mon->listener.fd);
	if (mon->events_ready.fd >= 0)
		close(mon->events_ready.fd);
	while ((q = mon->events_head)) {
		mon->events_head = q->next;
		json_decref(q->msg);
		free(q);
	}
	pthread_mutex_destroy(&mon->command_lock);
	pthread_mutex_destroy(&mon->events_lock);
	free(mon);
}
