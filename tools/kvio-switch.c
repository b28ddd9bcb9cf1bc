/* kvio-switch: a learning Ethernet switch for VMs, one vhost-user-net socket
 * per port (DIR/port0.sock ...), with an optional tap uplink to the host.
 * The switching itself is tools/switch.c; this file is the command line,
 * the sockets and the signals. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "switch.h"
#include "unix_listen.h"
#include "util/log.h"

struct signals {
	struct event_handler h;
	struct vswitch *sw;
	bool stop;
};

static void usage(FILE *out)
{
	fprintf(out, "usage: kvio-switch --dir DIR --ports N [--uplink tap=IFNAME]\n"
		     "  Serves vhost-user-net on DIR/port0.sock .. DIR/port<N-1>.sock (N from 1 to %d)\n"
		     "  and switches frames between them (and the tap IFNAME, created if missing).\n"
		     "  SIGUSR1 prints per-port counters; SIGINT/SIGTERM print them and exit.\n",
		VSWITCH_MAX_PORTS);
}

static void __attribute__((noreturn)) bad_option(const char *option, const char *what)
{
	fprintf(stderr, "kvio-switch: %s: %s\n", option, what);
	exit(2);
}

static void on_signal(struct event_handler *h, uint32_t events)
{
	struct signals *s = (struct signals *)h;
	struct signalfd_siginfo info;

	(void)events;
	if (read(h->fd, &info, sizeof(info)) != sizeof(info))
		return;
	vswitch_print_counters(s->sw, stdout);
	if (info.ssi_signo != SIGUSR1) {
		s->stop = true;
		event_loop_stop(vswitch_loop(s->sw));
	}
}

static int socket_path(char *buf, size_t size, const char *dir, unsigned int port)
{
	int n = snprintf(buf, size, "%s/port%u.sock", dir, port);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "ports", required_argument, NULL, 'p' },
		{ "uplink", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *dir = NULL, *tap = NULL;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	unsigned int nports = 0, bound = 0;
	struct signals sig = { 0 };
	struct vswitch *sw;
	sigset_t mask;
	int opt, status = 1;

	log_set_prefix("kvio-switch");
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		char *end;
		long n;

		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'p':
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || n < 1 || n > VSWITCH_MAX_PORTS)
				bad_option("--ports", "expected a number from 1 to 64");
			nports = (unsigned int)n;
			break;
		case 'u':
			if (strncmp(optarg, "tap=", 4) || !optarg[4] || strlen(optarg + 4) >= CONFIG_IFNAMSIZ)
				bad_option("--uplink", "expected tap=IFNAME (at most 15 characters)");
			tap = optarg + 4;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			bad_option(argv[optind - 1], optopt ? "missing its value" : "unknown option");
		}
	}
	if (optind < argc)
		bad_option(argv[optind], "unexpected argument");
	if (!dir)
		bad_option("--dir", "required");
	if (!nports)
		bad_option("--ports", "required");
	if (socket_path(path, sizeof(path), dir, nports - 1))
		bad_option("--dir", "too long for a socket path");

	/* Signals arrive through the event loop; a frontend gone mid-write is an error, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	sw = vswitch_new(nports);
	if (!sw) {
		log_error("out of memory");
		return 1;
	}
	sig.sw = sw;
	sig.h = (struct event_handler){ .fd = signalfd(-1, &mask, SFD_CLOEXEC), .ready = on_signal };
	if (sig.h.fd < 0 || event_loop_add(vswitch_loop(sw), &sig.h, EPOLLIN)) {
		log_error("cannot watch signals: %s", strerror(errno));
		goto out;
	}
	if (tap) {
		const char *why;
		struct net_backend *uplink = net_tap_open(tap, 1, NULL, &why);

		if (!uplink) {
			log_error("uplink tap %s: %s: %s", tap, why, strerror(errno));
			goto out;
		}
		if (vswitch_set_uplink(sw, uplink)) {
			log_error("uplink tap %s: cannot watch it", tap);
			goto out;
		}
	}
	for (; bound < nports; bound++) {
		const char *why;
		int fd;

		socket_path(path, sizeof(path), dir, bound);
		fd = unix_listen(path, &why);
		if (fd < 0) {
			log_error("%s: %s: %s", path, why, strerror(-fd));
			goto out;
		}
		if (vswitch_listen(sw, bound, fd)) {
			close(fd);
			unlink(path);
			goto out;
		}
	}
	log_info("%u port%s in %s%s%s", nports, nports > 1 ? "s" : "", dir, tap ? ", uplink tap " : "",
		 tap ? tap : "");
	while (!sig.stop) {
		int n = vswitch_poll(sw, -1);

		if (n < 0) {
			log_error("event loop: %s", strerror(-n));
			goto out;
		}
	}
	status = 0;
out:
	vswitch_free(sw);
	if (sig.h.fd >= 0)
		close(sig.h.fd);
	for (unsigned int i = 0; i < bound; i++) {
		socket_path(path, sizeof(path), dir, i);
		unlink(path);
	}
	return status;
}
