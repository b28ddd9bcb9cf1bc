/* virtio-console with a single port and no extra features. Guest output
 * (transmitq) is written to a host fd; host input goes straight into the
 * buffers the guest posted on receiveq, so the device keeps no copy: when the
 * guest has posted none, the terminal thread waits for it to post more. */
#include "virtio/console.h"

#include <errno.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/iov.h"
#include "util/log.h"

#define CONSOLE_QUEUE_SIZE 64
#define CONSOLE_MAX_BUFFERS 16
#define CONSOLE_REQUESTS_PER_KICK 64
enum { RECEIVEQ, TRANSMITQ, CONSOLE_QUEUES };

struct virtio_console {
	struct virtio_dev vdev;        /* first: the transport hands us this */
	int out_fd;
	pthread_cond_t rx_posted;      /* the guest posted receive buffers, or input closed */
	bool input_closed;
	struct virtq_elem elem;
	struct iovec iov[CONSOLE_MAX_BUFFERS];
};

static bool console_kick(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_console *con = (struct virtio_console *)vdev;
	struct virtq *vq = &vdev->vq[q];
	bool pushed = false;
	unsigned int n;

	if (q == RECEIVEQ) {
		/* New receive buffers: wake a terminal thread waiting to deliver input. */
		pthread_cond_broadcast(&con->rx_posted);
		return false;
	}
	for (n = 0; n < CONSOLE_REQUESTS_PER_KICK; n++) {
		if (virtq_pop(vq, &con->elem) <= 0)
			break;
		for (unsigned int i = 0; i < con->elem.out_num; i++) {
			const uint8_t *p = con->elem.iov[i].iov_base;
			size_t left = con->elem.iov[i].iov_len;

			while (left) {
				ssize_t w = write(con->out_fd, p, left);

				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0)
					break;  /* the terminal is gone: drop output, keep the guest going */
				p += w;
				left -= (size_t)w;
			}
		}
		virtq_push(vq, con->elem.head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_dev_notify(vdev, q);
	return n == CONSOLE_REQUESTS_PER_KICK;
}

/* Copy as much of buf as fits into posted receive buffers; lock held. */
static size_t deliver(struct virtio_console *con, const uint8_t *buf, size_t len)
{
	struct virtq *vq = &con->vdev.vq[RECEIVEQ];
	size_t done = 0;

	while (done < len && con->vdev.vq_ready[RECEIVEQ] && !virtq_is_broken(vq)) {
		size_t written;

		if (virtq_pop(vq, &con->elem) <= 0)
			break;
		written = iov_from_buf(con->elem.iov + con->elem.out_num, con->elem.in_num, buf + done, len - done);
		done += written;
		virtq_push(vq, con->elem.head, (uint32_t)written);
	}
	if (done)
		virtio_dev_notify(&con->vdev, RECEIVEQ);
	if (virtq_is_broken(vq))
		con->vdev.set_needs_reset(&con->vdev);
	return done;
}

void virtio_console_input(struct virtio_dev *vdev, const uint8_t *buf, size_t len)
{
	struct virtio_console *con = (struct virtio_console *)vdev;

	pthread_mutex_lock(&vdev->lock);
	while (len && !con->input_closed) {
		size_t n = deliver(con, buf, len);

		buf += n;
		len -= n;
		if (len && !n)
			pthread_cond_wait(&con->rx_posted, &vdev->lock);
	}
	pthread_mutex_unlock(&vdev->lock);
}

void virtio_console_close_input(struct virtio_dev *vdev)
{
	struct virtio_console *con = (struct virtio_console *)vdev;

	pthread_mutex_lock(&vdev->lock);
	con->input_closed = true;
	pthread_cond_broadcast(&con->rx_posted);
	pthread_mutex_unlock(&vdev->lock);
}

static void console_config_read(struct virtio_dev *vdev, uint32_t offset, void *buf, uint32_t len)
{
	static const struct virtio_console_config config;  /* no SIZE, MULTIPORT or EMERG_WRITE: all zero */

	(void)vdev;
	memcpy(buf, (const uint8_t *)&config + offset, len);
}

static const struct virtio_device_ops console_ops = {
	.name = "virtio-console",
	.type = VIRTIO_ID_CONSOLE,
	.num_queues = CONSOLE_QUEUES,
	.queue_size = CONSOLE_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_console_config),
	.config_read = console_config_read,
	.queue_kick = console_kick,
};

struct virtio_dev *virtio_console_create(int out_fd)
{
	struct virtio_console *con = calloc(1, sizeof(*con));

	if (!con)
		return NULL;
	con->out_fd = out_fd;
	con->vdev.ops = &console_ops;
	pthread_mutex_init(&con->vdev.lock, NULL);
	pthread_cond_init(&con->rx_posted, NULL);
	virtq_elem_init(&con->elem, con->iov, CONSOLE_MAX_BUFFERS);
	return &con->vdev;
}

void virtio_console_destroy(struct virtio_dev *vdev)
{
	struct virtio_console *con = (struct virtio_console *)vdev;

	pthread_cond_destroy(&con->rx_posted);
	pthread_mutex_destroy(&vdev->lock);
	free(con);
}
