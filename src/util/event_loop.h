/* A small epoll event loop: register an fd with a callback, run until told to stop. */
#ifndef KVIO_UTIL_EVENT_LOOP_H
#define KVIO_UTIL_EVENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct event_handler {
	int fd;
	void (*ready)(struct event_handler *handler, uint32_t events);
};

struct event_loop {
	int epoll_fd;
	bool stopping;
};

int event_loop_init(struct event_loop *loop);
void event_loop_destroy(struct event_loop *loop);
/* The handler must outlive its registration; events are EPOLLIN/EPOLLOUT bits. */
int event_loop_add(struct event_loop *loop, struct event_handler *handler, uint32_t events);
int event_loop_modify(struct event_loop *loop, struct event_handler *handler, uint32_t events);
int event_loop_remove(struct event_loop *loop, struct event_handler *handler);
/* Dispatch until event_loop_stop() is called from a callback. Returns 0 or -errno. */
int event_loop_run(struct event_loop *loop);
/* Wait up to timeout_ms (-1: forever) and dispatch what is ready once.
 * Returns how many handlers ran, or -errno (never -EINTR: that is 0). */
int event_loop_run_once(struct event_loop *loop, int timeout_ms);
void event_loop_stop(struct event_loop *loop);

#endif
