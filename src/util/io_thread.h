/* A thread running an event loop: where device queues do their work, so
 * vCPU threads never sit in the data path. */
#ifndef KVIO_UTIL_IO_THREAD_H
#define KVIO_UTIL_IO_THREAD_H

#include <pthread.h>
#include <stdbool.h>

#include "util/event_loop.h"

#define IO_THREAD_NAME_MAX 16  /* what the kernel keeps of a thread name, NUL included */

/* Where a pool's paused threads wait. */
struct io_gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool paused;
	unsigned int parked;
};

struct io_thread {
	struct event_loop loop;
	struct event_handler stop;
	struct event_handler pause;  /* an eventfd: go and wait at gate */
	struct io_gate *gate;        /* the pool's; NULL outside a pool */
	pthread_t thread;
	bool running;
	char name[IO_THREAD_NAME_MAX];
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

#define IO_POOL_MAX_THREADS 64  /* the shared one, and up to 4 NICs x 7 more pairs with room */

/* A VM's I/O threads, started and stopped together: the first is shared by
 * every device; a device whose queue groups share no state asks for more, so
 * each group runs on a thread (and a host CPU) of its own. */
struct io_pool {
	struct io_thread *threads[IO_POOL_MAX_THREADS];
	char names[IO_POOL_MAX_THREADS][IO_THREAD_NAME_MAX];
	unsigned int nr_threads;
	bool started;
	struct io_gate gate;
};

/* A new thread in the pool (running at once if the pool is), or NULL. */
struct io_thread *io_pool_add(struct io_pool *pool, const char *name);
/* The shared thread: the pool's first. */
static inline struct io_thread *io_pool_shared(struct io_pool *pool)
{
	return pool->nr_threads ? pool->threads[0] : NULL;
}
int io_pool_start(struct io_pool *pool);
/* Stop and join every thread; no handler runs after this returns. */
void io_pool_stop(struct io_pool *pool);
/* Park every running thread between two handlers and return once all are
 * (the monitor's stop), or let them go on (cont). Stopping the pool lets
 * parked threads go first. */
void io_pool_pause(struct io_pool *pool);
void io_pool_resume(struct io_pool *pool);
void io_pool_destroy(struct io_pool *pool);

#endif
