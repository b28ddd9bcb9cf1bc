/* virtio-rng (VIRTIO 1.x 5.4): fills the guest's buffers from the host's getrandom(). */
#include "virtio/rng.h"

#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <sys/random.h>

#include "util/log.h"

#define RNG_QUEUE_SIZE 64
#define RNG_REQUESTS_PER_KICK 32

#define RNG_MAX_BUFFERS 16

struct virtio_rng {
	struct virtio_dev vdev;  /* first: the transport hands us this */
	struct virtq_elem elem;
	struct iovec iov[RNG_MAX_BUFFERS];
};

/* Fill the writable buffers; returns bytes written. */
static uint32_t fill_random(const struct virtq_elem *elem)
{
	uint32_t written = 0;

	for (unsigned int i = elem->out_num; i < elem->out_num + elem->in_num; i++) {
		size_t done = 0;

		while (done < elem->iov[i].iov_len) {
			ssize_t n = getrandom((char *)elem->iov[i].iov_base + done, elem->iov[i].iov_len - done, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return written + (uint32_t)done;
			done += (size_t)n;
		}
		written += (uint32_t)done;
	}
	return written;
}

static bool rng_kick(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_rng *rng = (struct virtio_rng *)vdev;
	struct virtq *vq = &vdev->vq[q];
	bool pushed = false, more = false;

	for (unsigned int n = 0;; n++) {
		if (n == RNG_REQUESTS_PER_KICK) {
			more = true;
			break;
		}
		if (virtq_pop(vq, &rng->elem) <= 0)
			break;
		virtq_push(vq, rng->elem.head, fill_random(&rng->elem));
		pushed = true;
	}
	if (pushed)
		virtio_dev_notify(vdev, q);
	return more;
}

static const struct virtio_device_ops rng_ops = {
	.name = "virtio-rng",
	.type = VIRTIO_ID_RNG,
	.num_queues = 1,
	.queue_size = RNG_QUEUE_SIZE,
	.queue_kick = rng_kick,
};

struct virtio_dev *virtio_rng_create(void)
{
	struct virtio_rng *rng = calloc(1, sizeof(*rng));

	if (!rng)
		return NULL;
	rng->vdev.ops = &rng_ops;
	virtq_elem_init(&rng->elem, rng->iov, RNG_MAX_BUFFERS);
	pthread_mutex_init(&rng->vdev.lock, NULL);
	return &rng->vdev;
}

void virtio_rng_destroy(struct virtio_dev *vdev)
{
	pthread_mutex_destroy(&vdev->lock);
	free(vdev);
}
