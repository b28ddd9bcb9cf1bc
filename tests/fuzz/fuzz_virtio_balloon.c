/* libFuzzer target for virtio-balloon: the input is the guest's RAM (rings,
 * descriptors, page-number arrays, stats buffers, free page reports) plus the
 * negotiated features and an order of kicks, configuration writes, stats
 * requests and target changes. Guest RAM is a real memfd in two regions, one
 * at 0 and one at 4 GiB, with a sentinel page after each in the memfd that no
 * region maps: the device must stay inside guest RAM (ASan) and punch holes
 * only in RAM the guest named (the sentinels keep their bytes). */
#include <errno.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/guest_mem.h"
#include "util/log.h"
#include "virtio/balloon.h"

#define REGION_SIZE 0x8000u   /* 8 pages per region */
#define PAGE 0x1000u
#define HIGH_GPA 0x100000000ULL
#define FD_SIZE (2 * (REGION_SIZE + PAGE))  /* region 0, sentinel, region 1, sentinel */
#define QSIZE 8u
#define RING_AREA 0x400u   /* queue q's rings at q * RING_AREA: desc, then avail at +0x100, used at +0x200 */
#define NR_QUEUES 4
#define SENTINEL 0xA5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct guest_mem mem;
static uint8_t *base;
static bool needs_reset;

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

static void config_changed(struct virtio_dev *vdev)
{
	(void)vdev;
}

static void actual_hook(void *ctx, uint64_t bytes)
{
	if (bytes > *(uint64_t *)ctx)
		abort();  /* never more than guest RAM */
}

static void setup_memory(void)
{
	int fd = memfd_create("fuzz-balloon", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, FD_SIZE) < 0)
		abort();
	base = mmap(NULL, FD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		abort();
	memset(&mem, 0, sizeof(mem));
	mem.fd = fd;
	mem.base = base;
	mem.ram_size = 2 * REGION_SIZE;
	mem.nr_regions = 2;
	mem.regions[0] = (struct guest_mem_region){ .gpa = 0, .size = REGION_SIZE, .host = base, .fd_offset = 0 };
	mem.regions[1] = (struct guest_mem_region){
		.gpa = HIGH_GPA, .size = REGION_SIZE, .host = base + REGION_SIZE + PAGE, .fd_offset = REGION_SIZE + PAGE,
	};
}

static void check_sentinels(void)
{
	const uint8_t *pages[2] = { base + REGION_SIZE, base + 2 * REGION_SIZE + PAGE };

	for (unsigned int i = 0; i < 2; i++)
		for (unsigned int j = 0; j < PAGE; j++)
			if (pages[i][j] != SENTINEL)
				abort();
}

static void init_queues(struct virtio_dev *vdev, uint64_t features)
{
	for (unsigned int q = 0; q < NR_QUEUES; q++) {
		uint64_t ring = q * RING_AREA;

		if (virtq_init(&vdev->vq[q], &mem, QSIZE, ring, ring + 0x100, ring + 0x200,
			       features & (1ULL << VIRTIO_RING_F_EVENT_IDX), features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC)))
			abort();
		vdev->vq_ready[q] = true;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct virtio_balloon_options opts;
	struct virtio_balloon_stats stats;
	struct virtio_dev *vdev;
	uint64_t features, ram_size = 2 * REGION_SIZE;
	uint32_t ops;
	size_t n;

	if (!base) {
		setup_memory();
		log_set_level(LOG_ERROR);  /* refused requests and broken queues are expected here */
	}
	if (size < 8)
		return 0;
	features = 1ULL << VIRTIO_F_VERSION_1;
	if (data[0] & 1)
		features |= 1ULL << VIRTIO_BALLOON_F_STATS_VQ;
	if (data[0] & 2)
		features |= 1ULL << VIRTIO_BALLOON_F_REPORTING;
	if (data[0] & 4)
		features |= 1ULL << VIRTIO_RING_F_EVENT_IDX;
	if (data[0] & 8)
		features |= 1ULL << VIRTIO_RING_F_INDIRECT_DESC;
	opts.deflate_on_oom = data[0] & 16;
	memcpy(&ops, data + 1, sizeof(ops));
	data += 8;
	size -= 8;
	/* Region 0 from the input, then region 1; the sentinels refilled. */
	n = size < REGION_SIZE ? size : REGION_SIZE;
	memset(base, 0, FD_SIZE);
	memcpy(base, data, n);
	if (size > n)
		memcpy(base + REGION_SIZE + PAGE, data + n, size - n < REGION_SIZE ? size - n : REGION_SIZE);
	memset(base + REGION_SIZE, SENTINEL, PAGE);
	memset(base + 2 * REGION_SIZE + PAGE, SENTINEL, PAGE);

	vdev = virtio_balloon_create(&mem, &opts);
	if (!vdev)
		abort();
	vdev->used_notify = used_notify;
	vdev->set_needs_reset = set_needs_reset;
	vdev->requeue = requeue;
	vdev->config_changed = config_changed;
	vdev->features = features;
	needs_reset = false;
	virtio_balloon_set_actual_hook(vdev, actual_hook, &ram_size);
	init_queues(vdev, features);
	pthread_mutex_lock(&vdev->lock);
	vdev->ops->driver_ok(vdev);
	pthread_mutex_unlock(&vdev->lock);
	/* Each 3 bits of ops: one step. */
	for (unsigned int step = 0; step < 10 && !needs_reset; step++) {
		unsigned int op = (ops >> (3 * step)) & 7;
		uint32_t value = (uint32_t)(ops * 2654435761u) >> step;

		switch (op) {
		case 0: case 1: case 2: case 3:
			pthread_mutex_lock(&vdev->lock);
			vdev->ops->queue_kick(vdev, op);
			pthread_mutex_unlock(&vdev->lock);
			break;
		case 4:
			pthread_mutex_lock(&vdev->lock);
			vdev->ops->config_write(vdev, step % 8, &value, 8 - step % 8 < 4 ? 8 - step % 8 : 4);
			pthread_mutex_unlock(&vdev->lock);
			break;
		case 5:
			if (virtio_balloon_request_stats(vdev) == -ENOTSUP && (features & (1ULL << VIRTIO_BALLOON_F_STATS_VQ)))
				abort();
			break;
		case 6:
			pthread_mutex_lock(&vdev->lock);
			vdev->ops->event_ready(vdev, 0);
			pthread_mutex_unlock(&vdev->lock);
			break;
		default:
			virtio_balloon_set_target(vdev, (uint64_t)value * PAGE);
			break;
		}
		check_sentinels();
	}
	if (virtio_balloon_actual(vdev) > ram_size || virtio_balloon_target(vdev) > ram_size)
		abort();
	virtio_balloon_stats(vdev, &stats);
	pthread_mutex_lock(&vdev->lock);
	vdev->ops->reset(vdev);
	pthread_mutex_unlock(&vdev->lock);
	if (virtio_balloon_actual(vdev) != 0)
		abort();
	virtio_balloon_destroy(vdev);
	check_sentinels();
	return 0;
}
