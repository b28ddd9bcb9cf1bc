/* epoll event loop. Level-triggered, so a handler that leaves data unread is
 * simply called again: no event is ever lost between wake-ups. */
#include "util/event_loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EVENTS_PER_WAKE 32

int event_loop_init(struct event_loop *loop)
{
	loop->stopping = false;
	loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	return loop->epoll_fd < 0 ? -errno : 0;
}

void event_loop_destroy(struct event_loop *loop)
{
	if (loop->epoll_fd >= 0)
		close(loop->epoll_fd);
	loop->epoll_fd = -1;
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

int event_loop_run_once(struct event_loop *loop, int timeout_ms)
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
