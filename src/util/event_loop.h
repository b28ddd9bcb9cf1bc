/* A small epoll event loop: register an fd with a callback, run until told to stop. */
#ifndef KVIO_UTIL_EVENT_LOOP_H
#define KVIO_UTIL_EVENT_LOOP_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

struct event_handler {
	int fd;
	void (*ready)(struct event_handler *handler, uint32_t events);
};

/* A source that cannot be one fd in the epoll set: a library with a poll()
 * interface (libslirp) whose set of fds changes every round. Around each wait,
 * prepare adds that round's fds (event_loop_poll_fd) and may shorten the wait;
 * check reads what they got (event_loop_revents), before the handlers run, so
 * work it hands to a handler (an eventfd it writes) is done in the same round. */
struct event_hook {
	/* *timeout_ms: -1 (no limit) or a limit this hook may lower. */
	void (*prepare)(struct event_hook *hook, int *timeout_ms);
	/* wait_failed: the wait returned an error, no revents are valid. */
	void (*check)(struct event_hook *hook, bool wait_failed);
	struct event_hook *next;
};

struct event_loop {
	int epoll_fd;
	bool stopping;
	/* With hooks, the loop waits in poll(): the epoll fd first, then the hooks' fds. */
	struct event_hook *hooks;
	struct pollfd *pfds;
	unsigned int nr_pfds, max_pfds;
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
/* The loop dispatching on this thread right now, or NULL. */
struct event_loop *event_loop_current(void);

/* Hooks are added and removed while the loop is not running, or from its own
 * thread. Removing a hook the loop does not have does nothing. */
int event_loop_add_hook(struct event_loop *loop, struct event_hook *hook);  /* 0 or -ENOMEM */
void event_loop_remove_hook(struct event_loop *loop, struct event_hook *hook);
/* From prepare: watch fd for events (POLLIN...) in this round's wait. Returns
 * the index to ask event_loop_revents for, or -1 (out of memory: not watched). */
int event_loop_poll_fd(struct event_loop *loop, int fd, short events);
/* From check: what index's fd got (0 for an index this round never handed out). */
short event_loop_revents(const struct event_loop *loop, int index);

#endif
