/* virtio-balloon (VIRTIO 1.x 5.5): inflate, deflate, statistics and free page
 * reporting. A page the guest puts into the balloon, or reports free, goes
 * back to the host (guest_mem_discard: MADV_DONTNEED on anonymous RAM, a hole
 * punched in the memfd when RAM is shared). The guest touching the page
 * again faults in a zero page, so deflating needs no work here.
 *
 * Queue numbering. VIRTIO 1.x 5.5.2 lists 0 inflateq, 1 deflateq, 2 statsq,
 * 3 free_page_vq, 4 reporting_vq, and says each of the last three "only
 * exists" with its feature. Linux reads that as: queues that do not exist
 * take no index. Its virtio_balloon passes NULL names for absent queues and
 * virtio-pci's find_vqs gives the next index only to named queues (queue_idx++
 * in vp_find_vqs_msix/_intx, since "virtio: don't allocate vqs when names[i] =
 * NULL"), so reporting_vq is queue 2 + STATS_VQ + FREE_PAGE_HINT, by what was
 * negotiated. QEMU lays its queues out the same way (statsq always, the
 * others only when offered), and crosvm changed to match (its "virtio-balloon:
 * change vq indexes based on features"); the fixed index 4 is the usual bug,
 * with which Linux's reports land on a queue nobody serves and its reporting
 * worker waits forever. kvio offers no FREE_PAGE_HINT: the device has four
 * queues, 0 inflate, 1 deflate, 2 stats, 3 reporting, and maps an index to its
 * role from the negotiated features, which is Linux's rule and agrees with
 * QEMU's whenever the driver takes both queue features offered; where they
 * differ (reporting without stats) it serves reports on 2 and 3.
 *
 * A hostile guest: chains that break the ring rules (loops, buffers outside
 * RAM, more than BALLOON_MAX_IOV buffers) break the queue and the device
 * reports NEEDS_RESET, as for every kvio device. Requests that follow the ring
 * rules but make no sense are refused and returned unprocessed, logged once
 * per kind: an inflate or deflate request whose length is not whole page
 * numbers or holds more than BALLOON_MAX_PFNS; page numbers outside guest RAM
 * or in the PCI hole (skipped one by one, the rest of the request is served);
 * buffers of the wrong direction (ignored: the device reads only readable
 * buffers on inflateq, deflateq and statsq, and discards only writable ones on
 * reporting_vq). Only whole 4 KiB pages inside a reported range are punched,
 * and only after translation through guest_mem: never a byte the guest did
 * not name, never outside its RAM. */
#include "virtio/balloon.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_ids.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "util/iov.h"
#include "util/log.h"

#define BALLOON_QUEUE_SIZE 128      /* Linux's page reporting needs at least 32 */
#define BALLOON_MAX_IOV 128         /* Linux: 1 buffer per request, up to 32 per free page report */
#define BALLOON_REQUESTS_PER_KICK 16
#define BALLOON_MAX_PFNS 1024       /* per request; Linux sends at most 256 (VIRTIO_BALLOON_ARRAY_PFNS_MAX) */
#define BALLOON_MAX_STAT_ENTRIES 64 /* read from one stats buffer; Linux sends at most 16 */
#define STAT_ENTRY_SIZE 10          /* le16 tag, le64 value, packed (VIRTIO 1.x's "multiple of 6 bytes" is not it) */
#define BALLOON_CONFIG_SIZE 8       /* num_pages, actual: the fields of the features offered */

enum balloon_queue { INFLATEQ, DEFLATEQ, STATSQ, REPORTINGQ, NO_QUEUE };
#define BALLOON_QUEUES 4

enum warning {
	WARN_PFN = 1 << 0,
	WARN_COUNT = 1 << 1,
	WARN_DIRECTION = 1 << 2,
	WARN_DISCARD = 1 << 3,
	WARN_NO_QUEUE = 1 << 4,
	WARN_STATS_BUFFERS = 1 << 5,
};

struct virtio_balloon {
	struct virtio_dev vdev;          /* first: the transport hands us this */
	struct virtio_device_ops ops;    /* the features offered depend on the options */
	const struct guest_mem *mem;
	uint32_t num_pages;              /* the target, in 4 KiB pages */
	uint32_t actual;                 /* what the guest says the balloon holds */
	uint8_t actual_written[4];       /* actual as the guest writes it, byte by byte */
	virtio_balloon_actual_hook hook;
	void *hook_ctx;
	bool stats_held;                 /* the guest's stats buffer, kept to ask for the next report */
	uint16_t stats_head;
	struct virtio_balloon_stats stats;
	pthread_cond_t stats_cond;       /* a report arrived (waited on with the device lock) */
	int timer_fd;                    /* the periodic stats request */
	unsigned int warned;
	struct virtio_balloon_counters counters;
	uint64_t run_start, run_len;     /* memfd range being gathered into one punch */
	struct virtq_elem elem;
	struct iovec iov[BALLOON_MAX_IOV];
	uint32_t pfns[BALLOON_MAX_PFNS];
	uint8_t stats_buf[BALLOON_MAX_STAT_ENTRIES * STAT_ENTRY_SIZE];
};

static __attribute__((format(printf, 3, 4))) void warn_once(struct virtio_balloon *b, enum warning what,
							    const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (b->warned & what)
		return;
	b->warned |= what;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("virtio-balloon: %s", msg);
}

/* What queue q is under these negotiated features (see the top comment). */
static enum balloon_queue queue_role(uint64_t features, unsigned int q)
{
	unsigned int next = 2;

	if (q == 0)
		return INFLATEQ;
	if (q == 1)
		return DEFLATEQ;
	if (features & (1ULL << VIRTIO_BALLOON_F_STATS_VQ)) {
		if (q == next)
			return STATSQ;
		next++;
	}
	if (features & (1ULL << VIRTIO_BALLOON_F_FREE_PAGE_HINT))
		next++;  /* never offered, so never negotiated; it would sit here */
	if ((features & (1ULL << VIRTIO_BALLOON_F_REPORTING)) && q == next)
		return REPORTINGQ;
	/* The one case where the readings differ: STATS_VQ offered (always) but
	 * declined, REPORTING taken. Linux reports on queue 2 (above); a driver
	 * that numbers queues by what the device offers, as QEMU's layout does,
	 * on queue 3. Nothing else can be on 3 then: serve reports there too. */
	if ((features & (1ULL << VIRTIO_BALLOON_F_REPORTING)) && !(features & (1ULL << VIRTIO_BALLOON_F_STATS_VQ)) &&
	    q == 3)
		return REPORTINGQ;
	return NO_QUEUE;
}

static int queue_index(uint64_t features, enum balloon_queue which)
{
	for (unsigned int q = 0; q < BALLOON_QUEUES; q++)
		if (queue_role(features, q) == which)
			return (int)q;
	return -1;
}

/* Where [p, p + len) of a mapped region lies in the memfd. */
static int host_to_fd_offset(const struct guest_mem *mem, const void *p, uint64_t len, uint64_t *off)
{
	uintptr_t addr = (uintptr_t)p;

	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct guest_mem_region *r = &mem->regions[i];
		uintptr_t start = (uintptr_t)r->host;

		if (addr < start || addr - start >= r->size || len > r->size - (addr - start))
			continue;
		*off = r->fd_offset + (addr - start);
		return 0;
	}
	return -1;
}

static void discard_flush(struct virtio_balloon *b)
{
	int err;

	if (!b->run_len)
		return;
	b->counters.discard_calls++;
	err = guest_mem_discard(b->mem, b->run_start, b->run_len);
	if (err)
		warn_once(b, WARN_DISCARD, "cannot give guest pages back to the host: %s", strerror(-err));
	else
		b->counters.discarded_bytes += b->run_len;
	b->run_len = 0;
}

/* Gather contiguous ranges into one discard (one fallocate or madvise call); the caller flushes. */
static void discard_add(struct virtio_balloon *b, uint64_t off, uint64_t len)
{
	if (b->run_len && off == b->run_start + b->run_len) {
		b->run_len += len;
		return;
	}
	discard_flush(b);
	b->run_start = off;
	b->run_len = len;
}

/* An inflate or deflate request: an array of le32 page frame numbers (4 KiB units). */
static void balloon_pages(struct virtio_balloon *b, bool inflate)
{
	const struct virtq_elem *e = &b->elem;
	const char *what = inflate ? "inflate" : "deflate";
	unsigned int count, refused = 0;
	uint32_t first_refused = 0;

	if (e->in_num)
		warn_once(b, WARN_DIRECTION, "writable buffers in an %s request ignored", what);
	if (e->out_len % sizeof(uint32_t) || e->out_len / sizeof(uint32_t) > BALLOON_MAX_PFNS) {
		warn_once(b, WARN_COUNT, "%s request of %u bytes refused (whole 4-byte page numbers, at most %u)", what,
			  e->out_len, BALLOON_MAX_PFNS);
		b->counters.refused_requests++;
		return;
	}
	count = e->out_len / sizeof(uint32_t);
	/* One snapshot: the guest may rewrite the array, or name the page it sits in. */
	iov_to_buf(e->iov, e->out_num, b->pfns, (size_t)count * sizeof(uint32_t));
	for (unsigned int i = 0; i < count; i++) {
		uint32_t pfn = le32toh(b->pfns[i]);
		uint64_t gpa = (uint64_t)pfn << VIRTIO_BALLOON_PFN_SHIFT, off;
		void *host;

		if (guest_mem_translate(b->mem, gpa, VIRTIO_BALLOON_PAGE_SIZE, &host) ||
		    host_to_fd_offset(b->mem, host, VIRTIO_BALLOON_PAGE_SIZE, &off)) {
			if (!refused++)
				first_refused = pfn;
			continue;
		}
		if (inflate)
			discard_add(b, off, VIRTIO_BALLOON_PAGE_SIZE);
	}
	discard_flush(b);
	b->counters.refused_pfns += refused;
	if (refused)
		warn_once(b, WARN_PFN, "%s request: %u page numbers outside guest RAM ignored (the first 0x%x)", what,
			  refused, first_refused);
}

/* A free page report: writable buffers that are the free pages themselves. */
static void report_free_pages(struct virtio_balloon *b)
{
	const struct virtq_elem *e = &b->elem;

	if (e->out_num)
		warn_once(b, WARN_DIRECTION, "readable buffers in a free page report ignored");
	for (unsigned int i = e->out_num; i < e->out_num + e->in_num; i++) {
		uint64_t off, start, end;

		if (!e->iov[i].iov_len || host_to_fd_offset(b->mem, e->iov[i].iov_base, e->iov[i].iov_len, &off))
			continue;  /* empty; or not RAM, which the virtqueue already ruled out */
		/* Whole pages inside the range only: never a byte the guest did not name. */
		start = (off + VIRTIO_BALLOON_PAGE_SIZE - 1) & ~(VIRTIO_BALLOON_PAGE_SIZE - 1);
		end = (off + e->iov[i].iov_len) & ~(VIRTIO_BALLOON_PAGE_SIZE - 1);
		if (end > start)
			discard_add(b, start, end - start);
	}
	discard_flush(b);
}

/* Keep the values of a stats buffer: packed {le16 tag, le64 value} entries. */
static void parse_stats(struct virtio_balloon *b)
{
	const struct virtq_elem *e = &b->elem;
	struct virtio_balloon_stats *s = &b->stats;
	size_t len = iov_to_buf(e->iov, e->out_num, b->stats_buf, sizeof(b->stats_buf));
	struct timespec now;

	if (e->in_num)
		warn_once(b, WARN_DIRECTION, "writable buffers in a stats buffer ignored");
	memset(s->value, 0, sizeof(s->value));
	s->valid = 0;
	/* A trailing partial entry and anything past BALLOON_MAX_STAT_ENTRIES are ignored. */
	for (size_t at = 0; at + STAT_ENTRY_SIZE <= len; at += STAT_ENTRY_SIZE) {
		uint16_t tag;
		uint64_t value;

		memcpy(&tag, b->stats_buf + at, sizeof(tag));
		memcpy(&value, b->stats_buf + at + sizeof(tag), sizeof(value));
		tag = le16toh(tag);
		if (tag >= VIRTIO_BALLOON_STATS_MAX)
			continue;  /* unknown tags are ignored (5.5.6.3.2) */
		s->value[tag] = le64toh(value);
		s->valid |= 1U << tag;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	s->last_update = now.tv_sec;
	s->generation++;
	pthread_cond_broadcast(&b->stats_cond);
}

/* The guest posted its stats buffer: read it and keep it for the next request. */
static bool stats_kick(struct virtio_balloon *b, unsigned int q)
{
	struct virtq *vq = &b->vdev.vq[q];
	bool pushed = false;
	unsigned int n;

	for (n = 0; n < BALLOON_REQUESTS_PER_KICK; n++) {
		if (virtq_pop(vq, &b->elem) <= 0)
			break;
		parse_stats(b);
		if (b->stats_held) {
			/* At most one buffer at a time (5.5.6.3.1): give the older back, keep the newest. */
			warn_once(b, WARN_STATS_BUFFERS, "driver posted more than one stats buffer");
			virtq_push(vq, b->stats_head, 0);
			pushed = true;
		}
		b->stats_head = b->elem.head;
		b->stats_held = true;
	}
	if (pushed)
		virtio_dev_notify(&b->vdev, q);
	return n == BALLOON_REQUESTS_PER_KICK;
}

static bool balloon_kick(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;
	enum balloon_queue role = queue_role(vdev->features, q);
	struct virtq *vq = &vdev->vq[q];
	bool pushed = false;
	unsigned int n;

	if (role == STATSQ)
		return stats_kick(b, q);
	if (role == NO_QUEUE) {
		warn_once(b, WARN_NO_QUEUE, "kick on queue %u, which the negotiated features do not have: ignored", q);
		return false;
	}
	for (n = 0; n < BALLOON_REQUESTS_PER_KICK; n++) {
		if (virtq_pop(vq, &b->elem) <= 0)
			break;
		if (role == REPORTINGQ)
			report_free_pages(b);
		else
			balloon_pages(b, role == INFLATEQ);
		/* Only now: once the request is used the guest may touch the pages again. */
		virtq_push(vq, b->elem.head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_dev_notify(vdev, q);
	return n == BALLOON_REQUESTS_PER_KICK;
}

/* Linux posts its first stats buffer and kicks before DRIVER_OK, when the
 * transport does not yet pass kicks on: take that buffer now. Kicks on the
 * other queues that came too early run again from the I/O thread. */
static void balloon_driver_ok(struct virtio_dev *vdev)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;

	for (unsigned int q = 0; q < BALLOON_QUEUES; q++) {
		enum balloon_queue role = queue_role(vdev->features, q);

		if (!vdev->vq_ready[q] || role == NO_QUEUE)
			continue;
		if (role == STATSQ) {
			stats_kick(b, q);
			if (virtq_is_broken(&vdev->vq[q]))
				vdev->set_needs_reset(vdev);
		} else if (vdev->requeue) {
			vdev->requeue(vdev, q);
		}
	}
}

static uint64_t actual_bytes(const struct virtio_balloon *b)
{
	uint64_t bytes = (uint64_t)b->actual * VIRTIO_BALLOON_PAGE_SIZE;

	/* The guest may write anything: never report more than its RAM. */
	return bytes < b->mem->ram_size ? bytes : b->mem->ram_size;
}

static void set_actual(struct virtio_balloon *b, uint32_t pages)
{
	if (pages == b->actual)
		return;
	b->actual = pages;
	if (b->hook)
		b->hook(b->hook_ctx, actual_bytes(b));
}

static void balloon_config_read(struct virtio_dev *vdev, uint32_t offset, void *buf, uint32_t len)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;
	uint32_t config[2] = { htole32(b->num_pages), htole32(b->actual) };

	memcpy(buf, (const uint8_t *)config + offset, len);
}

static void balloon_config_write(struct virtio_dev *vdev, uint32_t offset, const void *buf, uint32_t len)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;
	const uint8_t *bytes = buf;
	uint32_t actual;

	/* actual is the driver's to write; num_pages is the host's and stays. */
	for (uint32_t i = 0; i < len; i++) {
		if (offset + i >= offsetof(struct virtio_balloon_config, actual) && offset + i < BALLOON_CONFIG_SIZE)
			b->actual_written[offset + i - offsetof(struct virtio_balloon_config, actual)] = bytes[i];
	}
	/* Taken once its most significant byte is written, so that a driver
	 * writing byte by byte (legacy ones did) is not seen half-way (5.5.6). */
	if (offset + len == BALLOON_CONFIG_SIZE) {
		memcpy(&actual, b->actual_written, sizeof(actual));
		set_actual(b, le32toh(actual));
	}
}

static void balloon_reset(struct virtio_dev *vdev)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;

	/* The transport forgets the rings, and the stats buffer with them. The
	 * target stays; a new driver starts with an empty balloon. */
	b->stats_held = false;
	memset(b->actual_written, 0, sizeof(b->actual_written));
	set_actual(b, 0);
}

static unsigned int balloon_event_fds(struct virtio_dev *vdev, int *fds, unsigned int max)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;

	if (!max)
		return 0;
	fds[0] = b->timer_fd;
	return 1;
}

/* With the device lock held. */
static int request_stats_locked(struct virtio_balloon *b)
{
	struct virtio_dev *vdev = &b->vdev;
	int q = queue_index(vdev->features, STATSQ);

	if (q < 0 || !vdev->vq_ready[q])
		return -ENOTSUP;
	if (!b->stats_held)
		return -EAGAIN;
	b->stats_held = false;
	virtq_push(&vdev->vq[q], b->stats_head, 0);
	virtio_dev_notify(vdev, (unsigned int)q);
	return 0;
}

/* The periodic timer fired (event 0, with the device lock held). */
static void balloon_event_ready(struct virtio_dev *vdev, unsigned int index)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;
	uint64_t expirations;

	(void)index;
	if (read(b->timer_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_warn("virtio-balloon: stats timer: %s", strerror(errno));
	/* -EAGAIN: the last request is still unanswered; -ENOTSUP: no stats queue yet. */
	request_stats_locked(b);
}

struct virtio_dev *virtio_balloon_create(const struct guest_mem *mem, const struct virtio_balloon_options *opts)
{
	struct virtio_balloon *b = calloc(1, sizeof(*b));
	pthread_condattr_t attr;

	if (!b) {
		log_error("virtio-balloon: out of memory");
		return NULL;
	}
	b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (b->timer_fd < 0) {
		log_error("virtio-balloon: cannot create the stats timer: %s", strerror(errno));
		free(b);
		return NULL;
	}
	b->mem = mem;
	b->ops = (struct virtio_device_ops){
		.name = "virtio-balloon",
		.type = VIRTIO_ID_BALLOON,
		.features = (1ULL << VIRTIO_BALLOON_F_STATS_VQ) | (1ULL << VIRTIO_BALLOON_F_REPORTING) |
			    (opts && opts->deflate_on_oom ? 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM : 0),
		.num_queues = BALLOON_QUEUES,
		.queue_size = BALLOON_QUEUE_SIZE,
		.config_size = BALLOON_CONFIG_SIZE,
		.config_read = balloon_config_read,
		.config_write = balloon_config_write,
		.queue_kick = balloon_kick,
		.driver_ok = balloon_driver_ok,
		.reset = balloon_reset,
		.event_fds = balloon_event_fds,
		.event_ready = balloon_event_ready,
	};
	b->vdev.ops = &b->ops;
	virtq_elem_init(&b->elem, b->iov, BALLOON_MAX_IOV);
	pthread_mutex_init(&b->vdev.lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&b->stats_cond, &attr);
	pthread_condattr_destroy(&attr);
	return &b->vdev;
}

void virtio_balloon_destroy(struct virtio_dev *vdev)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;

	close(b->timer_fd);
	pthread_cond_destroy(&b->stats_cond);
	pthread_mutex_destroy(&vdev->lock);
	free(b);
}

int virtio_balloon_set_target(struct virtio_dev *vdev, uint64_t bytes)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;

	if (bytes > b->mem->ram_size)
		return -EINVAL;
	pthread_mutex_lock(&vdev->lock);
	b->num_pages = (uint32_t)(bytes / VIRTIO_BALLOON_PAGE_SIZE);  /* RAM is at most 1 TiB: fits */
	if (vdev->config_changed)
		vdev->config_changed(vdev);
	pthread_mutex_unlock(&vdev->lock);
	return 0;
}

uint64_t virtio_balloon_target(struct virtio_dev *vdev)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;
	uint64_t bytes;

	pthread_mutex_lock(&vdev->lock);
	bytes = (uint64_t)b->num_pages * VIRTIO_BALLOON_PAGE_SIZE;
	pthread_mutex_unlock(&vdev->lock);
	return bytes;
}

uint64_t virtio_balloon_actual(struct virtio_dev *vdev)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;
	uint64_t bytes;

	pthread_mutex_lock(&vdev->lock);
	bytes = actual_bytes(b);
	pthread_mutex_unlock(&vdev->lock);
	return bytes;
}

void virtio_balloon_set_actual_hook(struct virtio_dev *vdev, virtio_balloon_actual_hook hook, void *ctx)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;

	pthread_mutex_lock(&vdev->lock);
	b->hook = hook;
	b->hook_ctx = ctx;
	pthread_mutex_unlock(&vdev->lock);
}

struct virtio_balloon_counters virtio_balloon_counters(struct virtio_dev *vdev)
{
	struct virtio_balloon_counters counters;

	pthread_mutex_lock(&vdev->lock);
	counters = ((struct virtio_balloon *)vdev)->counters;
	pthread_mutex_unlock(&vdev->lock);
	return counters;
}

static bool stats_negotiated(const struct virtio_dev *vdev)
{
	return vdev->features & (1ULL << VIRTIO_BALLOON_F_STATS_VQ);
}

bool virtio_balloon_stats(struct virtio_dev *vdev, struct virtio_balloon_stats *stats)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;
	bool negotiated;

	pthread_mutex_lock(&vdev->lock);
	negotiated = stats_negotiated(vdev);
	if (negotiated)
		*stats = b->stats;
	else
		memset(stats, 0, sizeof(*stats));
	pthread_mutex_unlock(&vdev->lock);
	return negotiated;
}

int virtio_balloon_request_stats(struct virtio_dev *vdev)
{
	int err;

	pthread_mutex_lock(&vdev->lock);
	err = request_stats_locked((struct virtio_balloon *)vdev);
	pthread_mutex_unlock(&vdev->lock);
	return err;
}

int virtio_balloon_refresh_stats(struct virtio_dev *vdev, unsigned int timeout_ms, struct virtio_balloon_stats *stats)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;
	struct timespec deadline;
	uint64_t generation;
	int err;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&vdev->lock);
	generation = b->stats.generation;
	err = request_stats_locked(b);
	if (err != -ENOTSUP) {
		/* -EAGAIN: a request is already out; its answer is as fresh. */
		err = 0;
		while (b->stats.generation == generation && !err)
			err = pthread_cond_timedwait(&b->stats_cond, &vdev->lock, &deadline);
		err = b->stats.generation != generation ? 0 : -ETIMEDOUT;
	}
	if (stats_negotiated(vdev))
		*stats = b->stats;
	else
		memset(stats, 0, sizeof(*stats));
	pthread_mutex_unlock(&vdev->lock);
	return err;
}

int virtio_balloon_set_stats_interval(struct virtio_dev *vdev, unsigned int seconds)
{
	struct virtio_balloon *b = (struct virtio_balloon *)vdev;
	struct itimerspec its = { .it_interval = { .tv_sec = seconds }, .it_value = { .tv_sec = seconds } };

	return timerfd_settime(b->timer_fd, 0, &its, NULL) < 0 ? -errno : 0;
}
