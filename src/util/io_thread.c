/* I/O thread: an epoll loop on its own thread, stopped through an eventfd. */
#include "util/io_thread.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/log.h"

static void stop_ready(struct event_handler *handler, uint32_t events)
{
	struct io_thread *t = (struct io_thread *)((char *)handler - offsetof(struct io_thread, stop));

	(void)events;
	event_loop_stop(&t->loop);
}

int io_thread_init(struct io_thread *t)
{
	memset(t, 0, sizeof(*t));
	t->loop.epoll_fd = -1;
	t->stop.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	t->stop.ready = stop_ready;
	if (t->stop.fd < 0 || event_loop_init(&t->loop) || event_loop_add(&t->loop, &t->stop, EPOLLIN)) {
		io_thread_destroy(t);
		return -1;
	}
	return 0;
}

int io_thread_add(struct io_thread *t, struct event_handler *handler)
{
	return event_loop_add(&t->loop, handler, EPOLLIN);
}

int io_thread_add_edge(struct io_thread *t, struct event_handler *handler)
{
	return event_loop_add(&t->loop, handler, EPOLLIN | EPOLLET);
}

static void *io_thread_main(void *arg)
{
	struct io_thread *t = arg;
	int err;

	/* Named from inside: naming another thread opens /proc/self/task/TID/comm,
	 * which the seccomp filter (core/sandbox.c) does not allow. */
	pthread_setname_np(pthread_self(), t->name);
	err = event_loop_run(&t->loop);

	if (err)
		log_error("I/O thread: %s", strerror(-err));
	return NULL;
}

int io_thread_start(struct io_thread *t, const char *name)
{
	int err;

	snprintf(t->name, sizeof(t->name), "%s", name);
	err = pthread_create(&t->thread, NULL, io_thread_main, t);
	if (err) {
		log_error("cannot start the I/O thread: %s", strerror(err));
		return -1;
	}
	t->running = true;
	return 0;
}

void io_thread_stop(struct io_thread *t)
{
	uint64_t one = 1;

	if (!t->running)
		return;
	if (write(t->stop.fd, &one, sizeof(one)) < 0)
		log_error("I/O thread: cannot signal stop: %s", strerror(errno));
	pthread_join(t->thread, NULL);
	t->running = false;
}

void io_thread_destroy(struct io_thread *t)
{
	io_thread_stop(t);
	event_loop_destroy(&t->loop);
	if (t->stop.fd >= 0)
		close(t->stop.fd);
	t->stop.fd = -1;
}

struct io_thread *io_pool_add(struct io_pool *pool, const char *name)
{
	struct io_thread *t;
	unsigned int i = pool->nr_threads;

	if (i == IO_POOL_MAX_THREADS) {
		log_error("%s: no more than %d I/O threads", name, IO_POOL_MAX_THREADS);
		return NULL;
	}
	t = malloc(sizeof(*t));
	if (!t || io_thread_init(t)) {
		free(t);
		log_error("%s: cannot create an I/O thread", name);
		return NULL;
	}
	snprintf(pool->names[i], IO_THREAD_NAME_MAX, "%s", name);
	if (pool->started && io_thread_start(t, pool->names[i])) {
		io_thread_destroy(t);
		free(t);
		return NULL;
	}
	pool->threads[pool->nr_threads++] = t;
	return t;
}

int io_pool_start(struct io_pool *pool)
{
	for (unsigned int i = 0; i < pool->nr_threads; i++) {
		if (io_thread_start(pool->threads[i], pool->names[i])) {
			io_pool_stop(pool);
			return -1;
		}
	}
	pool->started = true;
	return 0;
}

void io_pool_stop(struct io_pool *pool)
{
	for (unsigned int i = 0; i < pool->nr_threads; i++)
		io_thread_stop(pool->threads[i]);
	pool->started = false;
}

void io_pool_destroy(struct io_pool *pool)
{
	io_pool_stop(pool);
	for (unsigned int i = 0; i < pool->nr_threads; i++) {
		io_thread_destroy(pool->threads[i]);
		free(pool->threads[i]);
	}
	pool->nr_threads = 0;
}
