/*
 * The seccomp filter kvio runs under once the VM is set up (libseccomp).
 *
 * One allow-list for the whole process, installed with SECCOMP_FILTER_FLAG_TSYNC
 * on the main thread after setup, before the console input, the I/O threads
 * and the vCPUs start: they inherit it, and TSYNC covers any thread setup
 * itself may start. Not one filter per kind of thread, as Firecracker and
 * Cloud Hypervisor do, because in kvio the kinds would be nearly the same list:
 *  - the device model runs on every kind of thread: a vCPU's MMIO exit runs
 *    e1000 transmit (so a tap writev or slirp_input, which opens and connects
 *    sockets), a virtio status write (vhost-net's ioctls at DRIVER_OK and
 *    reset, an io_uring drain on a virtio-blk reset, TUNSETOFFLOAD), MSI-X
 *    programming (KVM_SET_GSI_ROUTING, KVM_IRQFD); the I/O threads run the
 *    queues, the backends and slirp too; the console input thread
 *    raises interrupts. Only KVM_RUN and the register dump would leave the
 *    I/O threads' list, and only clone the vCPUs'.
 *  - threads share one address space, so a thread taken over can run code on
 *    any other: per-thread lists narrow what a bug reaches directly, not what
 *    an attacker who controls the process reaches.
 *  - threads start in several places, so a per-thread scheme needs hooks in
 *    io_thread.c, term.c, vcpu.c and the vhost-user frontend's watcher, and
 *    a start gate so that no vCPU runs before the main thread has its filter.
 * The list is kept short instead by what the command line asks for (socket
 * calls only with --net user, TUN ioctls only with a tap, vhost ioctls only
 * with vhost=on|auto, io_uring only with a disk, fd passing over UNIX
 * sockets only with vhost-user, accepting connections only with --monitor,
 * the timerfd only with an e1000 or a balloon,
 * punching holes in guest RAM only with a balloon) and by
 * arguments: ioctl by request number, clone for threads only (clone3 answers
 * ENOSYS, so glibc falls back to clone, whose flags a filter can see), no
 * executable mappings, sockets of AF_INET and AF_INET6 (slirp) or AF_UNIX
 * (vhost-user) only, files opened read-only.
 *
 * A syscall off the list raises SIGSYS (SCMP_ACT_TRAP); the handler writes one
 * line naming it, its first arguments and the thread, restores the terminal
 * and exits with SANDBOX_EXIT_BLOCKED. --seccomp log (SCMP_ACT_LOG) lets such
 * calls run and leaves a "type=1326" line for each in the kernel's audit log.
 */
#include "core/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/vhost.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <ucontext.h>
#include <unistd.h>

#include "util/log.h"
#include "util/term.h"

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1  /* si_code of a SIGSYS from a filter (asm-generic/siginfo.h) */
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_SANITIZED 1
#endif
#endif

#ifdef SANDBOX_SANITIZED
#include <sanitizer/common_interface_defs.h>
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Every VM, on every thread. */
static const int base_syscalls[] = {
	/* eventfds (kicks, interrupts, stop requests), the console, log lines */
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(close),
	/* tap frames; glibc's fatal-error messages */
	SCMP_SYS(readv), SCMP_SYS(writev),
	/* event loops: epoll on the main and I/O threads, poll on the console input thread */
	SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl), SCMP_SYS(poll), SCMP_SYS(ppoll),
	/* the main loop and the console input create these right after the install */
	SCMP_SYS(epoll_create1), SCMP_SYS(signalfd4), SCMP_SYS(eventfd2),
	/* mutexes, condition variables, pthread_join */
	SCMP_SYS(futex),
	/* malloc, thread stacks (mmap and mprotect have rules of their own below) */
	SCMP_SYS(munmap), SCMP_SYS(madvise), SCMP_SYS(brk), SCMP_SYS(mremap),
	/* signal masks, the vCPU kick (pthread_kill), handlers returning, abort(); glibc
	 * installs its setxid handler at the process's first pthread_create, which
	 * without --net user is the console input thread's, after the install */
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(tgkill), SCMP_SYS(getpid), SCMP_SYS(gettid),
	SCMP_SYS(rt_sigaction),
	/* a thread starting (glibc's rseq and robust futex list, malloc's arena count) and ending */
	SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(sched_getaffinity), SCMP_SYS(sched_yield),
	SCMP_SYS(exit), SCMP_SYS(exit_group),
	/* clocks where the vDSO does not answer, sleeps */
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),
	/* virtio-rng's entropy */
	SCMP_SYS(getrandom),
	/* the kernel restarting a call a signal (the vCPU kick) interrupted */
	SCMP_SYS(restart_syscall),
};

/* ioctls every VM makes at run time, by request number. */
static const unsigned long base_ioctls[] = {
	KVM_RUN,                          /* vCPU threads */
	/* the register dump after a triple fault, and the monitor's info registers and x */
	KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_MP_STATE, KVM_GET_MSRS, KVM_TRANSLATE,
	KVM_IRQ_LINE,                     /* COM1; the INTx lines of virtio (without MSI-X) and e1000 */
	KVM_SET_GSI_ROUTING, KVM_IRQFD,   /* MSI-X vectors as the guest programs them */
	TCGETS, TCSETS,                   /* the terminal: isatty, raw mode, restoring it */
	/* the monitor's stop and cont (on the console's too): the guest clock held while paused */
	KVM_GET_CLOCK, KVM_SET_CLOCK, KVM_KVMCLOCK_CTRL,
};

/* --net tap=: offloads the guest accepted, queue pairs its control queue selects. */
static const unsigned long tap_ioctls[] = { TUNSETOFFLOAD, TUNSETQUEUE };

/* --net ...,vhost=on|auto: rings handed to vhost-net at DRIVER_OK, taken back at reset. */
static const unsigned long vhost_ioctls[] = {
	VHOST_SET_FEATURES, VHOST_SET_MEM_TABLE, VHOST_SET_VRING_NUM, VHOST_SET_VRING_BASE,
	VHOST_SET_VRING_ADDR, VHOST_SET_VRING_CALL, VHOST_SET_VRING_KICK, VHOST_NET_SET_BACKEND,
	VHOST_GET_VRING_BASE,
};

/* --net user: libslirp's host sockets (socket itself has a rule of its own),
 * on the I/O thread that runs slirp and wherever slirp_input runs (vCPU threads too). */
static const int user_net_syscalls[] = {
	SCMP_SYS(connect), SCMP_SYS(bind), SCMP_SYS(listen), SCMP_SYS(accept), SCMP_SYS(accept4),
	SCMP_SYS(sendto), SCMP_SYS(recvfrom), SCMP_SYS(sendmsg), SCMP_SYS(recvmsg),
	SCMP_SYS(setsockopt), SCMP_SYS(getsockopt), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
	SCMP_SYS(shutdown), SCMP_SYS(fcntl),
	/* DNS forwarding reads /etc/resolv.conf (openat: read-only, below) */
	SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(lseek),
};
static const unsigned long user_net_ioctls[] = { FIONREAD };

/* An e1000: its interrupt throttling timer is a timerfd, re-armed as it goes. */
static const int e1000_syscalls[] = { SCMP_SYS(timerfd_settime) };

/* --balloon: its periodic stats request is a timerfd
 * (virtio_balloon_set_stats_interval); the pages it gives back are dropped
 * with madvise, or punched out of the guest-RAM memfd when RAM is shared
 * (fallocate, with exactly PUNCH_HOLE | KEEP_SIZE: a rule of its own, below). */
static const int balloon_syscalls[] = { SCMP_SYS(timerfd_settime) };

/* vhost-user (--net or --disk): requests and replies carry fds (SCM_RIGHTS);
 * the watcher thread reconnects (socket has a rule of its own: AF_UNIX). */
static const int vhost_user_syscalls[] = {
	SCMP_SYS(sendmsg), SCMP_SYS(recvmsg), SCMP_SYS(connect), SCMP_SYS(setsockopt),
	SCMP_SYS(shutdown),  /* a failed exchange drops the connection for the watcher to see */
};

/* --monitor: QMP clients connect, and one that reads nothing of its replies is cut off. */
static const int monitor_syscalls[] = { SCMP_SYS(accept4), SCMP_SYS(shutdown) };

/* --disk: the io_uring the block backend submits to and waits on. What the
 * ring does is not seccomp's to see: block_file.c restricts each ring to its
 * image and its four operations before enabling it. */
static const int disk_syscalls[] = { SCMP_SYS(io_uring_enter) };

#ifdef SANDBOX_SANITIZED
/* ASan and UBSan builds only: the sanitizer runtime's own calls. Threads get
 * an alternate signal stack; LeakSanitizer's check at exit stops the world
 * from a clone that shares memory but is not a thread (a rule of its own,
 * below), which calls prctl and getppid, lists /proc/self/task and ptraces
 * each thread (and dies silently on a call off the list, since it blocks
 * SIGSYS: kvio would then hang at exit); reports read /proc/self/maps and the
 * binary (openat read-only, below). The runtime's internal_*() use x86-64's
 * older calls (open, getdents, stat, readlink). Found by running kvio and
 * the unit tests' filtered children with --seccomp log and reading dmesg. */
static const int sanitizer_syscalls[] = {
	SCMP_SYS(sigaltstack), SCMP_SYS(prctl), SCMP_SYS(getppid), SCMP_SYS(ptrace),
	SCMP_SYS(wait4), SCMP_SYS(kill), SCMP_SYS(open), SCMP_SYS(getdents), SCMP_SYS(getdents64),
	SCMP_SYS(stat), SCMP_SYS(lstat), SCMP_SYS(fstat), SCMP_SYS(lseek), SCMP_SYS(readlink),
};

/* The runtime symbolizes a report's stack with llvm-symbolizer, a child
 * process it starts at the first report and keeps. Started now, while fork
 * and execve are still possible, an ASan report under the filter only talks
 * to it over pipes (and it runs unfiltered). GCC's UBSan runtime is a library
 * of its own that sets up its symbolizer at its first report: there, the pipe
 * it asks for fails (a rule below) and it prints frames as module+offset. */
static void start_symbolizer(void)
{
	char frame[256];

	__sanitizer_symbolize_pc(__builtin_return_address(0), "%p %F %L", frame, sizeof(frame));
}
#endif

static int allow_all(scmp_filter_ctx ctx, const int *nrs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nrs[i], 0);

		if (err)
			return err;
	}
	return 0;
}

static int allow_ioctls(scmp_filter_ctx ctx, const unsigned long *requests, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* The kernel takes the request as 32 bits: compare those only. */
		int err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					   SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFULL, (scmp_datum_t)requests[i]));

		if (err)
			return err;
	}
	return 0;
}

/* openat for reading only. */
static int allow_read_only_open(scmp_filter_ctx ctx)
{
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC, O_RDONLY));
}

/* The rules that look at arguments. */
static int allow_with_arguments(scmp_filter_ctx ctx, bool user_net)
{
	int err = 0;

	/* New threads only: CLONE_THREAD set. clone3 passes its flags in memory a
	 * filter cannot read, so it fails with ENOSYS and glibc falls back to clone. */
	err = err ?: seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	err = err ?: seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* Memory for malloc and thread stacks, never executable. */
	err = err ?: seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	err = err ?: seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	/* pthread_setname_np on the calling thread; the trap handler names the
	 * thread. (The 0 is an unused second datum, spelled out for clang.) */
	err = err ?: seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME, 0));
	err = err ?: seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME, 0));
	if (!user_net)
		return err;
	/* slirp's host sockets: TCP, UDP and ICMP ("ping") over IPv4 and IPv6. */
	err = err ?: seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET, 0));
	err = err ?: seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_INET6, 0));
	/* /etc/resolv.conf, which slirp reads to forward DNS. */
	return err ?: allow_read_only_open(ctx);
}

struct needs {
	bool user_net, tap, vhost, disk, e1000, vhost_user, balloon, monitor;
};

static struct needs needs_of(const struct vm_config *cfg)
{
	struct needs n = { .balloon = cfg->balloon, .monitor = cfg->monitor_path[0] != '\0' };

	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		if (cfg->disks[i].vhost_user)
			n.vhost_user = true;
		else
			n.disk = true;
	}

	for (unsigned int i = 0; i < cfg->nr_nics; i++) {
		const struct net_config *nic = &cfg->nics[i];

		if (nic->backend == NET_BACKEND_USER)
			n.user_net = true;
		if (nic->backend == NET_BACKEND_TAP)
			n.tap = true;
		if (nic->backend == NET_BACKEND_TAP && nic->vhost != NET_VHOST_OFF)
			n.vhost = true;
		if (nic->backend == NET_BACKEND_VHOST_USER)
			n.vhost_user = true;
		if (nic->model == NET_MODEL_E1000)
			n.e1000 = true;
	}
	return n;
}

static int add_rules(scmp_filter_ctx ctx, const struct vm_config *cfg)
{
	struct needs n = needs_of(cfg);
	int err = 0;

	err = err ?: allow_all(ctx, base_syscalls, ARRAY_SIZE(base_syscalls));
	err = err ?: allow_ioctls(ctx, base_ioctls, ARRAY_SIZE(base_ioctls));
	err = err ?: allow_with_arguments(ctx, n.user_net);
	if (n.tap)
		err = err ?: allow_ioctls(ctx, tap_ioctls, ARRAY_SIZE(tap_ioctls));
	if (n.vhost)
		err = err ?: allow_ioctls(ctx, vhost_ioctls, ARRAY_SIZE(vhost_ioctls));
	if (n.user_net) {
		err = err ?: allow_all(ctx, user_net_syscalls, ARRAY_SIZE(user_net_syscalls));
		err = err ?: allow_ioctls(ctx, user_net_ioctls, ARRAY_SIZE(user_net_ioctls));
	}
	if (n.disk)
		err = err ?: allow_all(ctx, disk_syscalls, ARRAY_SIZE(disk_syscalls));
	if (n.e1000)
		err = err ?: allow_all(ctx, e1000_syscalls, ARRAY_SIZE(e1000_syscalls));
	if (n.balloon) {
		err = err ?: allow_all(ctx, balloon_syscalls, ARRAY_SIZE(balloon_syscalls));
		/* mode is an int: compare its 32 bits only. */
		err = err ?: seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fallocate), 1,
					      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFULL,
						      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE));
	}
	if (n.monitor)
		err = err ?: allow_all(ctx, monitor_syscalls, ARRAY_SIZE(monitor_syscalls));
	if (n.vhost_user) {
		err = err ?: allow_all(ctx, vhost_user_syscalls, ARRAY_SIZE(vhost_user_syscalls));
		err = err ?: seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX, 0));
	}
#ifdef SANDBOX_SANITIZED
	err = err ?: allow_all(ctx, sanitizer_syscalls, ARRAY_SIZE(sanitizer_syscalls));
	err = err ?: seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_VM, CLONE_VM));
	err = err ?: allow_read_only_open(ctx);
	/* No new symbolizer: the runtime then carries on without one. */
	err = err ?: seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(pipe), 0);
	err = err ?: seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(pipe2), 0);
#endif
	return err;
}

/* The trap handler. It may run on any thread, inside malloc or with a lock
 * held, so it only formats into a buffer on its stack and calls write(2). */

#define SYSCALL_NAME_SLOTS 512

/* Names resolved before the filter goes in: the handler cannot allocate. */
static const char *syscall_names[SYSCALL_NAME_SLOTS];

static void resolve_syscall_names(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	for (int nr = 0; nr < SYSCALL_NAME_SLOTS; nr++)
		syscall_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);  /* kept for good */
}

struct line {
	char buf[256];
	size_t len;
};

static void put_str(struct line *l, const char *s)
{
	while (*s && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = *s++;
}

static void put_num(struct line *l, unsigned long long v, unsigned int base)
{
	char digits[24];
	int n = 0;

	if (base == 16)
		put_str(l, "0x");
	do {
		digits[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = digits[--n];
}

static void blocked_syscall(int sig, siginfo_t *info, void *context)
{
	const ucontext_t *uc = context;
	struct line l = { .len = 0 };
	char thread[16] = "";
	int nr = info->si_syscall;

	(void)sig;
	if (info->si_code != SYS_SECCOMP) {
		put_str(&l, "kvio: SIGSYS\n");
	} else {
		put_str(&l, "kvio: seccomp: blocked syscall ");
		put_num(&l, (unsigned int)nr, 10);
		if (info->si_arch != AUDIT_ARCH_X86_64) {
			put_str(&l, " of arch ");
			put_num(&l, info->si_arch, 16);
		} else if (nr >= 0 && nr < SYSCALL_NAME_SLOTS && syscall_names[nr]) {
			put_str(&l, " (");
			put_str(&l, syscall_names[nr]);
			put_str(&l, ")");
		}
		put_str(&l, " args ");
		put_num(&l, (unsigned long long)uc->uc_mcontext.gregs[REG_RDI], 16);
		put_str(&l, " ");
		put_num(&l, (unsigned long long)uc->uc_mcontext.gregs[REG_RSI], 16);
		put_str(&l, " ");
		put_num(&l, (unsigned long long)uc->uc_mcontext.gregs[REG_RDX], 16);
		if (prctl(PR_GET_NAME, thread) == 0 && thread[0]) {
			put_str(&l, " in thread ");
			put_str(&l, thread);
		}
		put_str(&l, "\n");
	}
	if (write(STDERR_FILENO, l.buf, l.len) < 0) {
		/* Nowhere else to say it. */
	}
	term_restore();
	_exit(SANDBOX_EXIT_BLOCKED);
}

int sandbox_install(const struct vm_config *cfg)
{
	uint32_t action = cfg->seccomp == SANDBOX_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP;
	scmp_filter_ctx ctx;
	int err;

	if (cfg->seccomp == SANDBOX_OFF)
		return 0;
#ifdef SANDBOX_SANITIZED
	start_symbolizer();
#endif
	if (cfg->seccomp == SANDBOX_ON) {
		struct sigaction sa = { .sa_sigaction = blocked_syscall, .sa_flags = SA_SIGINFO };

		resolve_syscall_names();
		sigfillset(&sa.sa_mask);
		if (sigaction(SIGSYS, &sa, NULL) < 0) {
			log_error("--seccomp: cannot install the SIGSYS handler: %s", strerror(errno));
			return -1;
		}
	}
	ctx = seccomp_init(action);
	if (!ctx) {
		log_error("--seccomp: libseccomp cannot start a filter%s", cfg->seccomp == SANDBOX_LOG ?
			  " (log needs Linux 4.14 or later)" : "");
		return -1;
	}
	/* Calls from another ABI (int 0x80, x32) get the same action as calls off the list. */
	err = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, action);
	err = err ?: seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	err = err ?: add_rules(ctx, cfg);
	if (err) {
		log_error("--seccomp: cannot build the filter: %s", strerror(-err));
	} else {
		err = seccomp_load(ctx);
		if (err)
			log_error("--seccomp: cannot install the filter: %s (--seccomp off runs without one)",
				  strerror(-err));
	}
	seccomp_release(ctx);
	return err ? -1 : 0;
}
