/* virtio-balloon (VIRTIO 1.x 5.5): the host asks the guest for memory back;
 * pages the guest gives up (inflate) or reports free (free page reporting) are
 * punched out of the guest-RAM memfd, so the host gets the memory back.
 * The functions below are the monitor's: they take the device lock, so call
 * them from the main (monitor) thread, never from a device callback. */
#ifndef KVIO_VIRTIO_BALLOON_H
#define KVIO_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "util/guest_mem.h"
#include "virtio/device.h"

/* The balloon's page: 4 KiB whatever the guest's page size (VIRTIO_BALLOON_PFN_SHIFT). */
#define VIRTIO_BALLOON_PAGE_SIZE 4096ULL

/* Statistics by VIRTIO_BALLOON_S_* tag: VIRTIO 1.3 defines 0 to 9, Linux 6.12
 * added 10 to 15 (OOM kills, allocation stalls, scans and reclaims). Tags the
 * device does not know are ignored, as the spec requires. */
#define VIRTIO_BALLOON_STATS_MAX 16

struct virtio_balloon_stats {
	uint64_t value[VIRTIO_BALLOON_STATS_MAX];  /* by tag; bytes or counts, as the tag says */
	uint32_t valid;            /* bit t set: the guest reported tag t in its last buffer */
	int64_t last_update;       /* CLOCK_REALTIME seconds of the last report; 0 before the first */
	uint64_t generation;       /* counts the reports the guest has sent */
};

/* What the device did, since it was created. */
struct virtio_balloon_counters {
	uint64_t discarded_bytes;   /* punched out of the memfd: inflated and reported pages */
	uint64_t discard_calls;     /* the fallocate calls that did it: contiguous pages go in one */
	uint64_t refused_pfns;      /* page numbers outside guest RAM or in the PCI hole, skipped */
	uint64_t refused_requests;  /* requests refused whole: not whole page numbers, or too many */
};

struct virtio_balloon_options {
	/* Offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM: the guest may take pages back
	 * under memory pressure; Linux then no longer lowers MemTotal when it
	 * inflates (the balloon's pages count as used instead). */
	bool deflate_on_oom;
};

/* mem is the guest RAM whose memfd inflated and reported pages are punched
 * out of; it must outlive the device. Returns NULL (and logs why) on failure. */
struct virtio_dev *virtio_balloon_create(const struct guest_mem *mem, const struct virtio_balloon_options *opts);
void virtio_balloon_destroy(struct virtio_dev *vdev);

/* Ask the guest to put bytes of its RAM into the balloon (rounded down to
 * 4 KiB pages; 0 deflates it completely): sets num_pages and raises the
 * configuration interrupt. The target is the balloon's size, not the guest's:
 * QMP's "balloon value" is ram_size - bytes. Returns 0, or -EINVAL if bytes
 * exceeds guest RAM. The target survives a device reset, as in QEMU: a
 * driver that starts again inflates to it. */
int virtio_balloon_set_target(struct virtio_dev *vdev, uint64_t bytes);
uint64_t virtio_balloon_target(struct virtio_dev *vdev);

/* What the guest says the balloon holds (its "actual" field), in bytes.
 * A device reset sets it to 0: a new driver starts with an empty balloon. */
uint64_t virtio_balloon_actual(struct virtio_dev *vdev);

/* Called whenever "actual" changes (the guest wrote it, or a reset cleared
 * it), with the new value in bytes: the hook for a BALLOON_CHANGE event. It
 * runs with the device lock held, on a vCPU thread or whoever reset the
 * device: it must not call the functions here, nor take a lock held around
 * calls to them; queue the event instead. */
typedef void (*virtio_balloon_actual_hook)(void *ctx, uint64_t actual_bytes);
void virtio_balloon_set_actual_hook(struct virtio_dev *vdev, virtio_balloon_actual_hook hook, void *ctx);

struct virtio_balloon_counters virtio_balloon_counters(struct virtio_dev *vdev);

/* The statistics of the guest's last report. Returns false if the driver did
 * not negotiate VIRTIO_BALLOON_F_STATS_VQ (stats is then all zero). */
bool virtio_balloon_stats(struct virtio_dev *vdev, struct virtio_balloon_stats *stats);

/* Ask the guest for fresh statistics: give its stats buffer back (used ring,
 * interrupt); it answers with a new buffer, which bumps stats.generation.
 * Returns 0, -EAGAIN if the device holds no buffer (a request is under way,
 * or the driver has not posted one yet), -ENOTSUP without the stats queue. */
int virtio_balloon_request_stats(struct virtio_dev *vdev);

/* On demand: request, then wait up to timeout_ms for the guest's answer.
 * Fills stats with what is there then. Returns 0 if the guest answered,
 * -ETIMEDOUT if not (stats holds the previous report), -ENOTSUP without the
 * stats queue. Waits without the device lock; never call it on an I/O thread. */
int virtio_balloon_refresh_stats(struct virtio_dev *vdev, unsigned int timeout_ms, struct virtio_balloon_stats *stats);

/* Periodically: request statistics every seconds (0 stops it), from the
 * device's I/O thread (QEMU's guest-stats-polling-interval). Returns 0 or -errno. */
int virtio_balloon_set_stats_interval(struct virtio_dev *vdev, unsigned int seconds);

#endif
