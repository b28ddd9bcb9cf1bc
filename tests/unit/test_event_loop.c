/* The event loop's hooks: sources that add poll() fds around each wait
 * (libslirp's interface), the wait's timeout they lower, and handlers they
 * make ready running in the same round. */
#include "unit.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "util/event_loop.h"

struct test_hook {
	struct event_hook hook;
	struct event_loop *loop;
	int watch_fd;      /* added in prepare when >= 0 */
	int timeout_ms;    /* what prepare lowers the wait to, -1 for nothing */
	int signal_fd;     /* written in check when >= 0 */
	int index;
	short revents;
	unsigned int prepared, checked;
	bool wait_failed;
	struct event_loop *current_in_check;
};

static void hook_prepare(struct event_hook *hook, int *timeout_ms)
{
	struct test_hook *t = (struct test_hook *)hook;

	t->prepared++;
	t->index = t->watch_fd >= 0 ? event_loop_poll_fd(t->loop, t->watch_fd, POLLIN) : -1;
	if (t->timeout_ms >= 0 && (*timeout_ms < 0 || t->timeout_ms < *timeout_ms))
		*timeout_ms = t->timeout_ms;
}

static void hook_check(struct event_hook *hook, bool wait_failed)
{
	struct test_hook *t = (struct test_hook *)hook;
	uint64_t one = 1;

	t->checked++;
	t->wait_failed = wait_failed;
	t->revents = event_loop_revents(t->loop, t->index);
	t->current_in_check = event_loop_current();
	if (t->signal_fd >= 0)
		assert_int_equal(write(t->signal_fd, &one, sizeof(one)), sizeof(one));
}

struct counting_handler {
	struct event_handler handler;
	unsigned int ran;
};

static void counting_ready(struct event_handler *handler, uint32_t events)
{
	uint64_t count;

	(void)events;
	((struct counting_handler *)handler)->ran++;
	assert_int_equal(read(handler->fd, &count, sizeof(count)), sizeof(count));
}

static struct test_hook new_hook(struct event_loop *loop)
{
	return (struct test_hook){ .hook = { .prepare = hook_prepare, .check = hook_check }, .loop = loop,
				   .watch_fd = -1, .timeout_ms = -1, .signal_fd = -1, .index = -1 };
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A hook's fd that is ready ends the wait and its revents reach check. */
static void test_hook_fd_revents(void **state)
{
	struct event_loop loop;
	struct test_hook h;
	int pipefd[2];

	(void)state;
	assert_int_equal(event_loop_init(&loop), 0);
	assert_int_equal(pipe(pipefd), 0);
	h = new_hook(&loop);
	h.watch_fd = pipefd[0];
	assert_int_equal(event_loop_add_hook(&loop, &h.hook), 0);

	h.timeout_ms = 0;  /* nothing to read yet: the round ends at once, POLLIN unset */
	assert_int_equal(event_loop_run_once(&loop, -1), 0);
	assert_int_equal(h.prepared, 1);
	assert_int_equal(h.checked, 1);
	assert_false(h.wait_failed);
	assert_int_equal(h.revents & POLLIN, 0);

	assert_int_equal(write(pipefd[1], "x", 1), 1);
	h.timeout_ms = -1;  /* no limit: only the pipe can end this wait */
	assert_int_equal(event_loop_run_once(&loop, -1), 0);
	assert_int_equal(h.checked, 2);
	assert_true(h.revents & POLLIN);
	assert_ptr_equal(h.current_in_check, &loop);
	assert_null(event_loop_current());  /* only while the loop runs on this thread */

	/* An index this round never handed out reads as nothing. */
	assert_int_equal(event_loop_revents(&loop, 99), 0);
	assert_int_equal(event_loop_revents(&loop, -1), 0);
	event_loop_destroy(&loop);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* The shortest of the caller's timeout and every hook's bounds the wait. */
static void test_hook_lowers_timeout(void **state)
{
	struct event_loop loop;
	struct test_hook a, b;
	int64_t start;

	(void)state;
	assert_int_equal(event_loop_init(&loop), 0);
	a = new_hook(&loop);
	b = new_hook(&loop);
	a.timeout_ms = 60000;
	b.timeout_ms = 20;
	assert_int_equal(event_loop_add_hook(&loop, &a.hook), 0);
	assert_int_equal(event_loop_add_hook(&loop, &b.hook), 0);
	start = now_ms();
	assert_int_equal(event_loop_run_once(&loop, 60000), 0);
	assert_true(now_ms() - start < 30000);  /* 20 ms in fact; the bound only tells 20 from 60000 */
	assert_int_equal(a.checked, 1);
	assert_int_equal(b.checked, 1);

	/* A removed hook is no longer asked. */
	event_loop_remove_hook(&loop, &a.hook);
	assert_int_equal(event_loop_run_once(&loop, 60000), 0);
	assert_int_equal(a.prepared, 1);
	assert_int_equal(b.prepared, 2);
	event_loop_destroy(&loop);
}

/* A handler made ready by a hook's check runs in that same round. */
static void test_hook_readies_handler_same_round(void **state)
{
	struct event_loop loop;
	struct counting_handler c = { .handler = { .ready = counting_ready } };
	struct test_hook h;

	(void)state;
	assert_int_equal(event_loop_init(&loop), 0);
	c.handler.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(c.handler.fd >= 0);
	assert_int_equal(event_loop_add(&loop, &c.handler, EPOLLIN), 0);
	h = new_hook(&loop);
	h.timeout_ms = 0;
	h.signal_fd = c.handler.fd;
	assert_int_equal(event_loop_add_hook(&loop, &h.hook), 0);
	assert_int_equal(event_loop_run_once(&loop, -1), 1);
	assert_int_equal(c.ran, 1);
	event_loop_destroy(&loop);
	close(c.handler.fd);
}

/* Many fds in one round: the poll set grows past its first allocation. */
static void test_hook_many_fds(void **state)
{
	enum { NR = 100 };
	struct event_loop loop;
	struct test_hook hooks[NR];
	int pipefd[2];

	(void)state;
	assert_int_equal(event_loop_init(&loop), 0);
	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(write(pipefd[1], "x", 1), 1);
	for (int i = 0; i < NR; i++) {
		hooks[i] = new_hook(&loop);
		hooks[i].watch_fd = pipefd[0];
		assert_int_equal(event_loop_add_hook(&loop, &hooks[i].hook), 0);
	}
	assert_int_equal(event_loop_run_once(&loop, -1), 0);
	for (int i = 0; i < NR; i++) {
		assert_true(hooks[i].index > 0);  /* index 0 is the loop's own epoll fd */
		assert_true(hooks[i].revents & POLLIN);
	}
	event_loop_destroy(&loop);
	close(pipefd[0]);
	close(pipefd[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hook_fd_revents),
		cmocka_unit_test(test_hook_lowers_timeout),
		cmocka_unit_test(test_hook_readies_handler_same_round),
		cmocka_unit_test(test_hook_many_fds),
	};

	return cmocka_run_group_tests_name("event_loop", tests, NULL, NULL);
}
