/* epoll event loop. Level-triggered, so a handler that leaves data unread is
 * simply called again: no event is ever lost between wake-ups. */
#include "util/event_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EVENTS_PER_WAKE 32
#define POLLFDS_MIN 16

static __thread struct event_loop *current_loop;

int event_loop_init(struct event_loop *loop)
{
	*loop = (struct event_loop){ .epoll_fd = epoll_create1(EPOLL_CLOEXEC) };
	return loop->epoll_fd < 0 ? -errno : 0;
}

void event_loop_destroy(struct event_loop *loop)
{
	if (loop->epoll_fd >= 0)
		close(loop->epoll_fd);
	loop->epoll_fd = -1;
	free(loop->pfds);
	loop->pfds = NULL;
	loop->max_pfds = loop->nr_pfds = 0;
	loop->hooks = NULL;
}

int event_loop_add(struct event_loop *loop, struct event_handler *handler, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = handler };

	return epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, handler->fd, &ev) < 0 ? -errno : 0;
}

int event_loop_modify(struct event_loop *loop, struct event_handler *handler, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = handler };

	return epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, handler->fd, &ev) < 0 ? -errno : 0;
}

int event_loop_remove(struct event_loop *loop, struct event_handler *handler)
{
	return epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, handler->fd, NULL) < 0 ? -errno : 0;
}

int event_loop_add_hook(struct event_loop *loop, struct event_hook *hook)
{
	if (!loop->pfds) {
		loop->pfds = calloc(POLLFDS_MIN, sizeof(*loop->pfds));
		if (!loop->pfds)
			return -ENOMEM;
		loop->max_pfds = POLLFDS_MIN;
	}
	hook->next = loop->hooks;
	loop->hooks = hook;
	return 0;
}

void event_loop_remove_hook(struct event_loop *loop, struct event_hook *hook)
{
	for (struct event_hook **p = &loop->hooks; *p; p = &(*p)->next) {
		if (*p == hook) {
			*p = hook->next;
			return;
		}
	}
}

int event_loop_poll_fd(struct event_loop *loop, int fd, short events)
{
	if (loop->nr_pfds == loop->max_pfds) {
		struct pollfd *bigger = realloc(loop->pfds, 2 * loop->max_pfds * sizeof(*bigger));

		if (!bigger)
			return -1;
		loop->pfds = bigger;
		loop->max_pfds *= 2;
	}
	loop->pfds[loop->nr_pfds] = (struct pollfd){ .fd = fd, .events = events };
	return (int)loop->nr_pfds++;
}

short event_loop_revents(const struct event_loop *loop, int index)
{
	return index >= 0 && (unsigned int)index < loop->nr_pfds ? loop->pfds[index].revents : 0;
}

struct event_loop *event_loop_current(void)
{
	return current_loop;
}

static int dispatch(struct event_loop *loop, int timeout_ms)
{
	struct epoll_event events[EVENTS_PER_WAKE];
	int n = epoll_wait(loop->epoll_fd, events, EVENTS_PER_WAKE, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n && !loop->stopping; i++) {
		struct event_handler *handler = events[i].data.ptr;

		handler->ready(handler, events[i].events);
	}
	return n;
}

/* One poll() on the epoll fd and every hook's fds; the hooks look at theirs,
 * then the handlers that are ready by then run, without a second wait. */
static int wait_with_hooks(struct event_loop *loop, int timeout_ms)
{
	int ready, err = 0;

	loop->nr_pfds = 0;
	event_loop_poll_fd(loop, loop->epoll_fd, POLLIN);  /* cannot fail: add_hook made room */
	for (struct event_hook *h = loop->hooks; h; h = h->next)
		h->prepare(h, &timeout_ms);
	ready = poll(loop->pfds, loop->nr_pfds, timeout_ms);
	if (ready < 0 && errno != EINTR)
		err = -errno;
	for (struct event_hook *h = loop->hooks; h && !loop->stopping; h = h->next)
		h->check(h, ready < 0);
	if (err || loop->stopping)
		return err;
	return dispatch(loop, 0);
}

int event_loop_run_once(struct event_loop *loop, int timeout_ms)
{
	struct event_loop *outer = current_loop;
	int n;

	current_loop = loop;
	n = loop->hooks ? wait_with_hooks(loop, timeout_ms) : dispatch(loop, timeout_ms);
	current_loop = outer;
	return n;
}

int event_loop_run(struct event_loop *loop)
{
	while (!loop->stopping) {
		int n = event_loop_run_once(loop, -1);

		if (n < 0)
			return n;
	}
	return 0;
}

void event_loop_stop(struct event_loop *loop)
{
	loop->stopping = true;
}
