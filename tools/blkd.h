/* The core of kvio-blkd: kvio's own virtio-blk device model
 * (src/virtio/blk.c, the code a VM runs in process) served to one vhost-user
 * frontend at a time through the backend library
 * (src/vhost/vhost_user_backend.h). blkd plays the transport's part for the
 * device: the library's rings are the device's vq[] (one struct virtq per
 * queue), kicks and the device's io_uring completions arrive on one epoll
 * loop blkd owns, and a frontend that stops the rings or leaves gets every
 * in-flight request answered first. main() (tools/kvio-blkd.c) only adds the
 * listening socket and its signals; tests drive the loop with blkd_poll()
 * over socketpairs. */
#ifndef KVIO_TOOLS_BLKD_H
#define KVIO_TOOLS_BLKD_H

#include <stdbool.h>

#include "util/event_loop.h"

/* As many queues as kvio's --disk queues= allows. */
#define BLKD_MAX_QUEUES 16

struct blkd_options {
	const char *image;       /* raw image file or block device */
	bool read_only;
	unsigned int queues;     /* 1..BLKD_MAX_QUEUES */
	const char *id;          /* the serial GET_ID returns (at most 20 bytes); NULL: none */
	const char *option;      /* the option that named image, for error lines ("--image") */
};

struct blkd;

/* Open the image and set the device up. NULL on failure, with the reason
 * logged (naming opts->option and the image). */
struct blkd *blkd_new(const struct blkd_options *opts);
/* Disconnect the frontend (answering its in-flight requests), close the
 * listening socket, drain and close the image. */
void blkd_free(struct blkd *d);

/* The loop blkd runs on, for the caller's own handlers (signals). */
struct event_loop *blkd_loop(struct blkd *d);
/* Wait up to timeout_ms (-1: forever) and handle what is ready. Returns the
 * number of events handled or -errno. */
int blkd_poll(struct blkd *d, int timeout_ms);

/* Accept frontends on listen_fd (non-blocking), one at a time: while one is
 * connected, the next waits in the backlog. blkd owns listen_fd from here on,
 * even when watching it fails (-EIO); -EBUSY (it listens already) leaves it
 * the caller's. */
int blkd_listen(struct blkd *d, int listen_fd);
/* Serve an already-connected frontend: 0, and sock is owned from here on
 * (made non-blocking); or -EBUSY while another is connected (or another
 * -errno), and sock stays the caller's. */
int blkd_connect(struct blkd *d, int sock);
bool blkd_connected(const struct blkd *d);
/* Answer every in-flight request, reset the device, close the connection. */
void blkd_disconnect(struct blkd *d);

#endif
