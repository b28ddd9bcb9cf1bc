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

static void pause_ready(struct event_handler *handler, uint32_t events)
{
	struct io_thread *t = (struct io_thread *)((char *)handler - offsetof(struct io_thread, pause));
	struct io_gate *gate = t->gate;
	uint64_t count;

	(void)events;
	if (read(handler->fd, &count, sizeof(count)) < 0 || !gate)
		return;
	pthread_mutex_lock(&gate->lock);
	if (gate->paused) {
		gate->parked++;
		pthread_cond_broadcast(&gate->cond);
		while (gate->paused)
			pthread_cond_wait(&gate->cond, &gate->lock);
		gate->parked--;
	}
	pthread_mutex_unlock(&gate->lock);
}

int io_thread_init(struct io_thread *t)
{
	memset(t, 0, sizeof(*t));
	t->loop.epoll_fd = -1;
	t->stop.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	t->stop.ready = stop_ready;
	t->pause.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	t->pause.ready = pause_ready;
	if (t->stop.fd < 0 || t->pause.fd < 0 || event_loop_init(&t->loop) ||
	    event_loop_add(&t->loop, &t->stop, EPOLLIN) || event_loop_add(&t->loop, &t->pause, EPOLLIN)) {
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
	if (t->pause.fd >= 0)
		close(t->pause.fd);
	t->stop.fd = t->pause.fd = -1;
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
	if (i == 0) {
		pthread_mutex_init(&pool->gate.lock, NULL);
		pthread_cond_init(&pool->gate.cond, NULL);
	}
	t->gate = &pool->gate;
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

void io_pool_pause(struct io_pool *pool)
{
	unsigned int running = 0;
	uint64_t one = 1;

	if (!pool->nr_threads)
		return;
	pthread_mutex_lock(&pool->gate.lock);
	pool->gate.paused = true;
	pthread_mutex_unlock(&pool->gate.lock);
	for (unsigned int i = 0; i < pool->nr_threads; i++) {
		if (!pool->threads[i]->running)
			continue;
		running++;
		if (write(pool->threads[i]->pause.fd, &one, sizeof(one)) < 0)
			log_error("I/O thread: cannot signal pause: %s", strerror(errno));
	}
	pthread_mutex_lock(&pool->gate.lock);
	while (pool->gate.parked < running)
		pthread_cond_wait(&pool->gate.cond, &pool->gate.lock);
	pthread_mutex_unlock(&pool->gate.lock);
}

void io_pool_resume(struct io_pool *pool)
{
	if (!pool->nr_threads)
		return;
	pthread_mutex_lock(&pool->gate.lock);
	pool->gate.paused = false;
	pthread_cond_broadcast(&pool->gate.cond);
	pthread_mutex_unlock(&pool->gate.lock);
}

void io_pool_stop(struct io_pool *pool)
{
	io_pool_resume(pool);
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
	if (pool->nr_threads) {
		pthread_mutex_destroy(&pool->gate.lock);
		pthread_cond_destroy(&pool->gate.cond);
	}
	pool->nr_threads = 0;
}
