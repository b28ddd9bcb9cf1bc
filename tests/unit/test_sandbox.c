/* The seccomp filter, installed in a forked child each time so that this
 * process stays unfiltered: what it lets through, what it stops (one line on
 * stderr, exit 31), and how the command line's devices widen it. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/vhost.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "core/sandbox.h"

/* A failed check in the child: say which, exit 100 (the parent reports it). */
#define CHECK(cond)                                                                             \
	do {                                                                                    \
		if (!(cond)) {                                                                  \
			dprintf(STDERR_FILENO, "child: %s:%d: check failed: %s (errno %d)\n", __FILE__, \
				__LINE__, #cond, errno);                                        \
			_exit(100);                                                             \
		}                                                                               \
	} while (0)

#define CHILD_TIMEOUT_MS 30000

struct outcome {
	int status;       /* from waitpid */
	char err[4096];   /* the child's stderr */
};

static struct vm_config base_config(enum sandbox_mode mode)
{
	struct vm_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.seccomp = mode;
	return cfg;
}

/* Fork; the child installs cfg's filter, runs body and exits 0 through exit(),
 * so that atexit handlers (and the leak check of ASan builds) run filtered too. */
static void run_filtered(const struct vm_config *cfg, void (*body)(void), struct outcome *o)
{
	int pipefd[2];
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	memset(o, 0, sizeof(*o));
	fflush(stdout);
	fflush(stderr);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pipefd[1], STDERR_FILENO);
		if (sandbox_install(cfg))
			_exit(101);
		body();
		exit(0);
	}
	close(pipefd[1]);
	/* Bounded: a child stuck at exit (say, a sanitizer's leak checker whose
	 * helper the filter stopped with SIGSYS blocked) fails the test instead. */
	for (;;) {
		struct pollfd p = { .fd = pipefd[0], .events = POLLIN };

		if (poll(&p, 1, CHILD_TIMEOUT_MS) != 1) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(pipefd[0]);
			fail_msg("child still running after %d ms; stderr so far: '%s'", CHILD_TIMEOUT_MS, o->err);
		}
		n = read(pipefd[0], o->err + got, sizeof(o->err) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &o->status, 0), pid);
}

static void assert_clean_exit(const struct outcome *o)
{
	if (!WIFEXITED(o->status) || WEXITSTATUS(o->status) != 0 || o->err[0])
		fail_msg("child: status %#x, stderr: '%s'", o->status, o->err);
}

/* Exit 31 and exactly one line on stderr, naming the call ("(execve)") and
 * containing expect when given. */
static void assert_blocked(const struct outcome *o, const char *name, const char *expect)
{
	char prefix[64];

	if (!WIFEXITED(o->status) || WEXITSTATUS(o->status) != SANDBOX_EXIT_BLOCKED)
		fail_msg("child: status %#x, expected exit %d; stderr: '%s'", o->status, SANDBOX_EXIT_BLOCKED, o->err);
	snprintf(prefix, sizeof(prefix), "kvio: seccomp: blocked syscall ");
	if (strncmp(o->err, prefix, strlen(prefix)) || !strstr(o->err, name) || (expect && !strstr(o->err, expect)) ||
	    strchr(o->err, '\n') != o->err + strlen(o->err) - 1)
		fail_msg("stderr is '%s', expected one line naming %s%s%s", o->err, name, expect ? " and " : "",
			 expect ? expect : "");
}

static void *thread_work(void *arg)
{
	pthread_setname_np(pthread_self(), "kvio-test");
	*(int *)arg += 1;
	return NULL;
}

/* What every VM does at run time, as glibc does it. */
static void run_time_calls(void)
{
	uint64_t v = 1;
	uint8_t random[16];
	struct timespec ts;
	struct epoll_event ev = { .events = EPOLLIN };
	struct pollfd p;
	pthread_t thread;
	int efd, epfd, done = 0;
	void *big;

	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK(efd >= 0);
	CHECK(write(efd, &v, sizeof(v)) == sizeof(v));
	epfd = epoll_create1(EPOLL_CLOEXEC);
	CHECK(epfd >= 0);
	ev.data.fd = efd;
	CHECK(epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev) == 0);
	CHECK(epoll_wait(epfd, &ev, 1, 0) == 1);
	p = (struct pollfd){ .fd = efd, .events = POLLIN };
	CHECK(poll(&p, 1, 0) == 1);
	CHECK(read(efd, &v, sizeof(v)) == sizeof(v) && v == 1);
	close(epfd);
	close(efd);

	big = malloc(64 << 20);  /* mmap */
	CHECK(big);
	memset(big, 1, 4096);
	free(big);               /* munmap */
	CHECK(pthread_create(&thread, NULL, thread_work, &done) == 0);  /* clone3 refused, clone for a thread */
	CHECK(pthread_join(thread, NULL) == 0 && done == 1);
	CHECK(getrandom(random, sizeof(random), 0) == sizeof(random));
	CHECK(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
	ts = (struct timespec){ .tv_nsec = 1000000 };
	CHECK(nanosleep(&ts, NULL) == 0);
	/* Allowed ioctl requests reach the kernel, which finds the fd wrong. */
	CHECK(ioctl(-1, KVM_RUN, 0) < 0 && errno == EBADF);
	CHECK(ioctl(-1, KVM_IRQ_LINE, 0) < 0 && errno == EBADF);
	CHECK(ioctl(STDIN_FILENO, TCGETS, &(char[64]){ 0 }) == 0 || errno == ENOTTY);
}

static void test_run_time_calls_pass(void **state)
{
	struct vm_config cfg = base_config(SANDBOX_ON);
	struct outcome o;

	(void)state;
	run_filtered(&cfg, run_time_calls, &o);
	assert_clean_exit(&o);
}

static void call_execve(void)
{
	char *argv[] = { "true", NULL };

	execve("/bin/true", argv, environ);
	_exit(102);
}

static void test_execve_is_trapped(void **state)
{
	struct vm_config cfg = base_config(SANDBOX_ON);
	struct outcome o;

	(void)state;
	run_filtered(&cfg, call_execve, &o);
	assert_blocked(&o, "blocked syscall 59 (execve) args ", " in thread ");
}

static void *execve_thread(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "kvio-test-exec");
	call_execve();
	return NULL;
}

/* Any thread may hit the trap; the whole process goes. */
static void execve_on_a_thread(void)
{
	pthread_t thread;

	CHECK(pthread_create(&thread, NULL, execve_thread, NULL) == 0);
	pthread_join(thread, NULL);
	_exit(102);
}

static void test_trap_on_another_thread(void **state)
{
	struct vm_config cfg = base_config(SANDBOX_ON);
	struct outcome o;

	(void)state;
	run_filtered(&cfg, execve_on_a_thread, &o);
	assert_blocked(&o, "(execve)", " in thread kvio-test-exec\n");
}

/* ioctl is allowed by request number: FIONREAD only comes with --net user. */
static void ioctl_off_the_list(void)
{
	int fd = eventfd(0, EFD_CLOEXEC), n;

	CHECK(fd >= 0);
	CHECK(ioctl(fd, TCGETS, &(char[64]){ 0 }) < 0 && errno == ENOTTY);
	ioctl(fd, FIONREAD, &n);
	_exit(102);
}

static void test_ioctl_by_request(void **state)
{
	struct vm_config cfg = base_config(SANDBOX_ON);
	struct outcome o;

	(void)state;
	run_filtered(&cfg, ioctl_off_the_list, &o);
	assert_blocked(&o, "(ioctl)", " 0x541b ");
}

static void open_socket(void)
{
	socket(AF_INET, SOCK_STREAM, 0);
	_exit(102);
}

/* What libslirp does on the host, allowed with --net user only. */
static void user_net_calls(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), n = 0, fd;
	int s6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	FILE *f;

	CHECK(s >= 0 && s6 >= 0);
	CHECK(ioctl(s6, FIONREAD, &n) == 0);
	CHECK(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int)) == 0);
	CHECK(fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK) == 0);
	CHECK(shutdown(s, SHUT_RDWR) < 0 && errno == ENOTCONN);
	close(s);
	close(s6);
	/* As slirp reads /etc/resolv.conf: read-only is fine, writing is not. */
	f = fopen("/proc/self/status", "r");
	CHECK(f);
	fclose(f);
	fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	close(fd);
}

static void user_net_then_packet_socket(void)
{
	user_net_calls();
	socket(AF_PACKET, SOCK_RAW, 0);
	_exit(102);
}

static void user_net_then_file_for_writing(void)
{
	user_net_calls();
	open("/dev/null", O_WRONLY | O_CLOEXEC);
	_exit(102);
}

static void test_sockets_come_with_user_net(void **state)
{
	struct vm_config cfg = base_config(SANDBOX_ON);
	struct outcome o;

	(void)state;
	run_filtered(&cfg, open_socket, &o);
	assert_blocked(&o, "(socket)", " args 0x2 ");

	cfg.nr_nics = 1;
	cfg.nics[0].backend = NET_BACKEND_USER;
	run_filtered(&cfg, user_net_calls, &o);
	assert_clean_exit(&o);
	run_filtered(&cfg, user_net_then_packet_socket, &o);
	assert_blocked(&o, "(socket)", " args 0x11 ");  /* AF_PACKET */
	run_filtered(&cfg, user_net_then_file_for_writing, &o);
	assert_blocked(&o, "(openat)", NULL);
}

static void uring_enter(void)
{
	CHECK(syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0) < 0 && errno == EBADF);
}

static void tap_ioctl(void)
{
	CHECK(ioctl(-1, TUNSETOFFLOAD, 0) < 0 && errno == EBADF);
}

static void vhost_ioctl(void)
{
	CHECK(ioctl(-1, VHOST_GET_VRING_BASE, &(struct vhost_vring_state){ 0 }) < 0 && errno == EBADF);
}

/* Each backend's calls are on the list only when the command line has one. */
static void test_backends_widen_the_list(void **state)
{
	struct vm_config cfg = base_config(SANDBOX_ON);
	struct outcome o;

	(void)state;
	run_filtered(&cfg, uring_enter, &o);
	assert_blocked(&o, "(io_uring_enter)", NULL);
	run_filtered(&cfg, tap_ioctl, &o);
	assert_blocked(&o, "(ioctl)", " 0x400454d0 ");
	run_filtered(&cfg, vhost_ioctl, &o);
	assert_blocked(&o, "(ioctl)", " 0xc008af12 ");

	cfg.nr_disks = 1;
	run_filtered(&cfg, uring_enter, &o);
	assert_clean_exit(&o);
	cfg.nr_nics = 1;
	cfg.nics[0].backend = NET_BACKEND_TAP;
	run_filtered(&cfg, tap_ioctl, &o);
	assert_clean_exit(&o);
	run_filtered(&cfg, vhost_ioctl, &o);
	assert_blocked(&o, "(ioctl)", " 0xc008af12 ");
	cfg.nics[0].vhost = NET_VHOST_AUTO;
	run_filtered(&cfg, vhost_ioctl, &o);
	assert_clean_exit(&o);
}

static int guest_ram_fd = -1;  /* made before the filter, as kvio's guest RAM is */

static void punch_hole(void)
{
	CHECK(fallocate(guest_ram_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0);
}

static void allocate_range(void)
{
	fallocate(-1, 0, 0, 4096);
	_exit(102);
}

static void arm_timer(void)
{
	struct itimerspec its = { .it_value = { .tv_sec = 60 } };

	CHECK(timerfd_settime(-1, 0, &its, NULL) < 0 && errno == EBADF);
}

/* --balloon: holes punched in guest RAM and its stats timer, nothing else of fallocate. */
static void test_balloon_punches_holes_only(void **state)
{
	struct vm_config cfg = base_config(SANDBOX_ON);
	struct outcome o;

	(void)state;
	guest_ram_fd = memfd_create("kvio-test-ram", MFD_CLOEXEC);
	assert_true(guest_ram_fd >= 0 && ftruncate(guest_ram_fd, 8192) == 0);
	run_filtered(&cfg, punch_hole, &o);
	assert_blocked(&o, "(fallocate)", NULL);
	run_filtered(&cfg, arm_timer, &o);
	assert_blocked(&o, "(timerfd_settime)", NULL);
	cfg.balloon = true;
	run_filtered(&cfg, punch_hole, &o);
	assert_clean_exit(&o);
	run_filtered(&cfg, arm_timer, &o);
	assert_clean_exit(&o);
	run_filtered(&cfg, allocate_range, &o);
	assert_blocked(&o, "(fallocate)", " 0x0 ");
	/* With an e1000 too: the timer rule twice is one rule. */
	cfg.nr_nics = 1;
	cfg.nics[0].backend = NET_BACKEND_TAP;
	cfg.nics[0].model = NET_MODEL_E1000;
	run_filtered(&cfg, arm_timer, &o);
	assert_clean_exit(&o);
	close(guest_ram_fd);
}

static void call_fork(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	_exit(102);
}

static void executable_mapping(void)
{
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	_exit(102);
}

static void executable_protection(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(p != MAP_FAILED);
	CHECK(mprotect(p, 4096, PROT_READ) == 0);
	mprotect(p, 4096, PROT_READ | PROT_EXEC);
	_exit(102);
}

/* No new processes, no new executable memory. */
static void test_no_processes_no_code(void **state)
{
	struct vm_config cfg = base_config(SANDBOX_ON);
	struct outcome o;

	(void)state;
	run_filtered(&cfg, call_fork, &o);
	assert_blocked(&o, "(clone)", NULL);
	run_filtered(&cfg, executable_mapping, &o);
	assert_blocked(&o, "(mmap)", " 0x5 ");
	run_filtered(&cfg, executable_protection, &o);
	assert_blocked(&o, "(mprotect)", " 0x5 ");
}

#define NO_IA32_EXIT 103

static void no_ia32(int sig)
{
	(void)sig;
	_exit(NO_IA32_EXIT);
}

/* getpid through the 32-bit ABI (int 0x80, i386's number 20). */
static void ia32_call(void)
{
	long ret = 20;

	signal(SIGSEGV, no_ia32);  /* a kernel without IA-32 emulation */
	__asm__ volatile("int $0x80" : "+a"(ret) : : "memory");
	_exit(102);
}

/* A call through another ABI gets the same trap, named by its arch. */
static void test_other_abi_is_trapped(void **state)
{
	struct vm_config cfg = base_config(SANDBOX_ON);
	struct outcome o;

	(void)state;
	run_filtered(&cfg, ia32_call, &o);
	if (WIFEXITED(o.status) && WEXITSTATUS(o.status) == NO_IA32_EXIT)
		skip();
	assert_blocked(&o, "blocked syscall 20 of arch 0x40000003 args ", NULL);
}

/* getppid, ptrace and execve are off the list. */
static void calls_off_the_list(void)
{
	char *argv[] = { "none", NULL };

	CHECK(getppid() > 0);
	CHECK(execve("/nonexistent/kvio-test", argv, environ) < 0 && errno == ENOENT);
}

/* log: calls off the list run (the kernel's audit log records them). */
static void test_log_lets_calls_run(void **state)
{
	struct vm_config cfg = base_config(SANDBOX_LOG);
	struct outcome o;

	(void)state;
	run_filtered(&cfg, calls_off_the_list, &o);
	assert_clean_exit(&o);
}

static void no_filter(void)
{
	calls_off_the_list();
	CHECK(prctl(PR_GET_SECCOMP) == 0);
}

static void test_off_installs_nothing(void **state)
{
	struct vm_config cfg = base_config(SANDBOX_OFF);
	struct outcome o;

	(void)state;
	run_filtered(&cfg, no_filter, &o);
	assert_clean_exit(&o);
}

#if defined(__SANITIZE_ADDRESS__)
/* Sanitized builds: the runtime's reports and its leak check at exit still
 * work under the filter (sandbox.c widens it for them). */

static void *volatile leaked;

static void __attribute__((noinline)) leak(void)
{
	leaked = malloc(123);
	leaked = NULL;
}

static void __attribute__((noinline)) overflow(void)
{
	volatile size_t size = 8;  /* hidden from UBSan's object-size check: ASan's to find */
	char *p = calloc(1, size);
	volatile char c = p[size];

	(void)c;
	free(p);
}

static void assert_sanitizer_report(const struct outcome *o, const char *what)
{
	if (!WIFEXITED(o->status) || WEXITSTATUS(o->status) == 0 || WEXITSTATUS(o->status) == SANDBOX_EXIT_BLOCKED ||
	    !strstr(o->err, what) || !strstr(o->err, "SUMMARY: AddressSanitizer") || strstr(o->err, "seccomp"))
		fail_msg("child: status %#x, expected a report of %s; stderr: '%s'", o->status, what, o->err);
}

static void test_sanitizer_reports(void **state)
{
	struct vm_config cfg = base_config(SANDBOX_ON);
	struct outcome o;

	(void)state;
	run_filtered(&cfg, leak, &o);
	assert_sanitizer_report(&o, "LeakSanitizer: detected memory leaks");
	run_filtered(&cfg, overflow, &o);
	assert_sanitizer_report(&o, "AddressSanitizer: heap-buffer-overflow");
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run_time_calls_pass),
		cmocka_unit_test(test_execve_is_trapped),
		cmocka_unit_test(test_trap_on_another_thread),
		cmocka_unit_test(test_ioctl_by_request),
		cmocka_unit_test(test_sockets_come_with_user_net),
		cmocka_unit_test(test_backends_widen_the_list),
		cmocka_unit_test(test_balloon_punches_holes_only),
		cmocka_unit_test(test_no_processes_no_code),
		cmocka_unit_test(test_other_abi_is_trapped),
		cmocka_unit_test(test_log_lets_calls_run),
		cmocka_unit_test(test_off_installs_nothing),
#if defined(__SANITIZE_ADDRESS__)
		cmocka_unit_test(test_sanitizer_reports),
#endif
	};

	return cmocka_run_group_tests_name("sandbox", tests, NULL, NULL);
}
