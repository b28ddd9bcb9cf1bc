/* A thread running an event loop: where device queues do their work, so
 * vCPU threads never sit in the data path. */
#ifndef KVIO_UTIL_IO_THREAD_H
#define KVIO_UTIL_IO_THREAD_H

#include <pthread.h>
#include <stdbool.h>

#include "util/event_loop.h"

struct io_thread {
	struct event_loop loop;
	struct event_handler stop;
	pthread_t thread;
	bool running;
};

int io_thread_init(struct io_thread *t);
/* Handlers may be added before or after start; they run on the thread. */
int io_thread_add(struct io_thread *t, struct event_handler *handler);
/* Edge-triggered: the handler runs once per new readiness and must drain the fd. */
int io_thread_add_edge(struct io_thread *t, struct event_handler *handler);
int io_thread_start(struct io_thread *t, const char *name);
/* Stop and join; no handler runs after this returns. */
void io_thread_stop(struct io_thread *t);
void io_thread_destroy(struct io_thread *t);

#endif
