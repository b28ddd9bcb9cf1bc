/* libFuzzer target for virtio-net: the input is the guest's RAM (descriptor
 * tables, rings, virtio-net headers, control commands) plus the negotiated
 * features, whether the queues are reset halfway, and the sizes of frames the
 * backend delivers. The device must stay inside guest RAM (ASan) and hand the
 * backend only iovecs inside RAM. (The used ring's contents prove nothing: a
 * guest may point its receive buffers at its own rings.) */
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/guest_mem.h"
#include "virtio/net.h"

#define RAM_SIZE 0x10000u
#define QSIZE 8u
#define RING_AREA 0x400u   /* queue q's rings at q * RING_AREA: desc, then avail at +0x100, used at +0x200 */
#define MAX_FRAMES 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t ram[RAM_SIZE];
static struct guest_mem mem;
static bool needs_reset;
static size_t frame_len[MAX_FRAMES];
static unsigned int frames_left;

static void check_in_ram(const struct iovec *iov, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *b = iov[i].iov_base;

		if (iov[i].iov_len && (b < ram || b + iov[i].iov_len > ram + RAM_SIZE))
			abort();
	}
}

static int fake_send(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	(void)be, (void)qp;
	check_in_ram(iov, n);
	return 0;
}

static ssize_t fake_recv(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	size_t len, done = 0;

	(void)be, (void)qp;
	check_in_ram(iov, n);
	if (!frames_left)
		return -EAGAIN;
	len = frame_len[--frames_left];
	for (unsigned int i = 0; i < n && done < len; i++) {
		size_t part = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;

		memset(iov[i].iov_base, 0x5A, part);
		done += part;
	}
	return (ssize_t)done;
}

static int fake_rx_fd(struct net_backend *be, unsigned int qp)
{
	(void)be, (void)qp;
	return -1;
}

static void fake_destroy(struct net_backend *be)
{
	(void)be;
}

static const struct net_backend_ops fake_ops = {
	.name = "fuzz", .send = fake_send, .recv = fake_recv, .rx_fd = fake_rx_fd, .destroy = fake_destroy,
};

static void used_notify(struct virtio_dev *vdev, unsigned int q)
{
	(void)vdev, (void)q;
}

static void set_needs_reset(struct virtio_dev *vdev)
{
	(void)vdev;
	needs_reset = true;
}

static void requeue(struct virtio_dev *vdev, unsigned int q)
{
	(void)vdev, (void)q;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct net_backend backend = { .ops = &fake_ops, .queue_pairs = 1 };
	struct virtio_net_options opts = { .backend = &backend, .queue_pairs = 1, .mac = { 2, 0, 0, 0, 0, 1 } };
	struct virtio_dev *vdev;
	uint64_t features;
	uint8_t ops;
	bool ring_reset;

	if (size < 8 + MAX_FRAMES)
		return 0;
	features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_NET_F_CTRL_VQ) | (1ULL << VIRTIO_NET_F_CTRL_RX) |
		   (1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR);
	if (data[0] & 1)
		features |= 1ULL << VIRTIO_NET_F_MRG_RXBUF;
	if (data[0] & 2)
		features |= 1ULL << VIRTIO_RING_F_EVENT_IDX;
	if (data[0] & 4)
		features |= 1ULL << VIRTIO_RING_F_INDIRECT_DESC;
	ring_reset = data[0] & 8;
	ops = data[1];
	for (unsigned int i = 0; i < MAX_FRAMES; i++)
		frame_len[i] = (size_t)data[2 + i] * 300u;  /* up to ~75 KiB: over the GSO maximum */
	frames_left = MAX_FRAMES;
	data += 8 + MAX_FRAMES;
	size -= 8 + MAX_FRAMES;
	memset(ram, 0, sizeof(ram));
	memcpy(ram, data, size < sizeof(ram) ? size : sizeof(ram));
	guest_mem_layout(&mem, ram, sizeof(ram), -1);

	vdev = virtio_net_create(&opts);
	if (!vdev)
		abort();
	vdev->used_notify = used_notify;
	vdev->set_needs_reset = set_needs_reset;
	vdev->requeue = requeue;
	vdev->features = features;
	needs_reset = false;
	for (unsigned int q = 0; q < vdev->ops->num_queues; q++) {
		uint64_t base = q * RING_AREA;

		if (virtq_init(&vdev->vq[q], &mem, QSIZE, base, base + 0x100, base + 0x200,
			       features & (1ULL << VIRTIO_RING_F_EVENT_IDX), features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC)))
			abort();
		vdev->vq_ready[q] = true;
	}
	pthread_mutex_lock(&vdev->lock);
	vdev->ops->driver_ok(vdev);
	/* Each bit of ops: one more round of TX kick, control kick, backend frames, RX refill kick. */
	for (unsigned int round = 0; round < 8 && !needs_reset; round++) {
		/* Halfway, with bit 3: every queue reset alone and enabled again on the same
		 * rings (VIRTIO_F_RING_RESET), the device restarting at index 0 whatever they hold. */
		if (round == 4 && ring_reset) {
			for (unsigned int q = 0; q < vdev->ops->num_queues; q++) {
				uint64_t base = q * RING_AREA;

				vdev->ops->queue_reset(vdev, q);
				if (virtq_init(&vdev->vq[q], &mem, QSIZE, base, base + 0x100, base + 0x200,
					       features & (1ULL << VIRTIO_RING_F_EVENT_IDX),
					       features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC)))
					abort();
			}
		}
		switch ((ops >> round) & 1 ? round % 4 : 3 - round % 4) {
		case 0: vdev->ops->queue_kick(vdev, 1); break;
		case 1: vdev->ops->queue_kick(vdev, 2); break;
		case 2: vdev->ops->event_ready(vdev, 0); break;
		default: vdev->ops->queue_kick(vdev, 0); break;
		}
	}
	vdev->ops->reset(vdev);
	pthread_mutex_unlock(&vdev->lock);
	virtio_net_destroy(vdev);
	return 0;
}
