/* kvio-blkd: a vhost-user-blk backend serving a raw image with kvio's own
 * virtio-blk device model, to kvio (--disk vhost-user=SOCK) or QEMU
 * (-device vhost-user-blk-pci). The device hosting is tools/blkd.c; this
 * file is the command line, the socket and the signals. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "blkd.h"
#include "unix_listen.h"
#include "util/log.h"
#include "virtio/blk.h"

struct signals {
	struct event_handler h;
	struct blkd *d;
	bool stop;
};

static void usage(FILE *out)
{
	fprintf(out, "usage: kvio-blkd --socket SOCK --image FILE [--ro] [--queues N] [--id SERIAL]\n"
		     "  Serves FILE (a raw image or block device) as vhost-user-blk on the UNIX socket\n"
		     "  SOCK, to one frontend at a time; N queues (1 to %d, default 1); SERIAL is what\n"
		     "  the guest reads as the disk's ID (at most %d bytes). SIGINT/SIGTERM finish\n"
		     "  the I/O in flight, remove SOCK and exit.\n",
		BLKD_MAX_QUEUES, VIRTIO_BLK_ID_BYTES);
}

static void __attribute__((noreturn)) bad_option(const char *option, const char *what)
{
	fprintf(stderr, "kvio-blkd: %s: %s\n", option, what);
	exit(2);
}

static void on_signal(struct event_handler *h, uint32_t events)
{
	struct signals *s = (struct signals *)h;
	struct signalfd_siginfo info;

	(void)events;
	if (read(h->fd, &info, sizeof(info)) != sizeof(info))
		return;
	s->stop = true;
	event_loop_stop(blkd_loop(s->d));
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "image", required_argument, NULL, 'i' },
		{ "ro", no_argument, NULL, 'r' },
		{ "queues", required_argument, NULL, 'q' },
		{ "id", required_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct blkd_options opts = { .queues = 1, .option = "--image" };
	const char *path = NULL, *why;
	struct signals sig = { .h.fd = -1 };
	bool listening = false;
	struct blkd *d;
	sigset_t mask;
	int opt, fd, status = 1;

	log_set_prefix("kvio-blkd");
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		char *end;
		long n;

		switch (opt) {
		case 's':
			if (!*optarg || strlen(optarg) >= sizeof(((struct sockaddr_un *)0)->sun_path))
				bad_option("--socket", "expected a socket path of 1 to 107 bytes");
			path = optarg;
			break;
		case 'i':
			if (!*optarg)
				bad_option("--image", "expected a file");
			opts.image = optarg;
			break;
		case 'r':
			opts.read_only = true;
			break;
		case 'q':
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || n < 1 || n > BLKD_MAX_QUEUES)
				bad_option("--queues", "expected a number from 1 to 16");
			opts.queues = (unsigned int)n;
			break;
		case 'I':
			if (strlen(optarg) > VIRTIO_BLK_ID_BYTES)
				bad_option("--id", "longer than 20 bytes");
			opts.id = optarg;
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
	if (!path)
		bad_option("--socket", "required");
	if (!opts.image)
		bad_option("--image", "required");

	/* Signals arrive through the event loop; a frontend gone mid-write is an error, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	d = blkd_new(&opts);
	if (!d)
		return 2;  /* the image: virtio-blk logged why, naming --image */
	sig.d = d;
	sig.h = (struct event_handler){ .fd = signalfd(-1, &mask, SFD_CLOEXEC), .ready = on_signal };
	if (sig.h.fd < 0 || event_loop_add(blkd_loop(d), &sig.h, EPOLLIN)) {
		log_error("cannot watch signals: %s", strerror(errno));
		goto out;
	}
	fd = unix_listen(path, &why);
	if (fd < 0) {
		fprintf(stderr, "kvio-blkd: --socket: '%s': %s: %s\n", path, why, strerror(-fd));
		status = 2;
		goto out;
	}
	listening = true;
	if (blkd_listen(d, fd)) {
		log_error("cannot watch %s", path);
		goto out;
	}
	log_info("serving %s%s on %s, %u queue%s", opts.image, opts.read_only ? " read-only" : "", path,
		 opts.queues, opts.queues > 1 ? "s" : "");
	while (!sig.stop) {
		int n = blkd_poll(d, -1);

		if (n < 0) {
			log_error("event loop: %s", strerror(-n));
			goto out;
		}
	}
	status = 0;
out:
	blkd_free(d);  /* answers in-flight requests and waits for the image's I/O */
	if (sig.h.fd >= 0)
		close(sig.h.fd);
	if (listening)
		unlink(path);
	if (!status)
		log_info("stopped");
	return status;
}
