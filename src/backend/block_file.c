/* io_uring block backend. Buffered I/O on the image (so it works on any file
 * system); a guest flush becomes fsync, which is what makes it durable.
 * The ring is restricted before it is enabled: only the image (a registered
 * file, index IMAGE_FILE) and only the operations below. io_uring requests
 * never pass through seccomp, so this is what keeps a compromised kvio from
 * using the ring to open, read or send anything else. */
#include "backend/block_file.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define IMAGE_FILE 0  /* the image's index among the ring's registered files */

/* io_uring_register(2) itself: Debian 12's liburing.so (2.3) leaves
 * io_uring_register_restrictions and io_uring_enable_rings out of its exports. */
static int ring_register(struct io_uring *ring, unsigned int opcode, const void *arg, unsigned int nr_args)
{
	return syscall(__NR_io_uring_register, ring->ring_fd, opcode, arg, nr_args) < 0 ? -errno : 0;
}

static int restrict_ring(struct io_uring *ring)
{
	static const uint8_t ops[] = { IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_FALLOCATE };
	struct io_uring_restriction res[ARRAY_SIZE(ops) + 2];
	unsigned int n = 0;

	memset(res, 0, sizeof(res));
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
		res[n].opcode = IORING_RESTRICTION_SQE_OP;
		res[n++].sqe_op = ops[i];
	}
	res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
	res[n++].sqe_flags = IOSQE_FIXED_FILE;
	res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
	res[n++].sqe_flags = IOSQE_FIXED_FILE;
	return ring_register(ring, IORING_REGISTER_RESTRICTIONS, res, n);
}

int block_file_open(struct block_file *bf, const char *path, bool read_only, unsigned int depth,
		    const char **why)
{
	struct stat st;
	int err;

	memset(bf, 0, sizeof(*bf));
	bf->event_fd = -1;
	bf->read_only = read_only;
	bf->fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (bf->fd < 0) {
		*why = "cannot open";
		return -errno;
	}
	if (fstat(bf->fd, &st) < 0) {
		*why = "cannot stat";
		goto fail_errno;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(bf->fd, BLKGETSIZE64, &bf->size) < 0) {
			*why = "cannot read the block device's size";
			goto fail_errno;
		}
	} else if (S_ISREG(st.st_mode)) {
		bf->size = (uint64_t)st.st_size;
	} else {
		*why = "not a regular file or block device";
		err = -EINVAL;
		goto fail;
	}
	err = io_uring_queue_init(depth, &bf->ring, IORING_SETUP_R_DISABLED);
	if (err) {
		*why = "io_uring setup failed";
		goto fail;
	}
	bf->ring_ready = true;
	bf->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (bf->event_fd < 0 || io_uring_register_eventfd(&bf->ring, bf->event_fd) < 0) {
		*why = "cannot register the completion eventfd";
		err = -EIO;
		goto fail;
	}
	err = io_uring_register_files(&bf->ring, &bf->fd, 1);
	if (!err)
		err = restrict_ring(&bf->ring);
	if (!err)
		err = ring_register(&bf->ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (err < 0) {
		*why = "cannot restrict the io_uring to the image";
		goto fail;
	}
	return 0;
fail_errno:
	err = -errno;
fail:
	block_file_close(bf);
	return err;
}

void block_file_drain(struct block_file *bf)
{
	while (bf->ring_ready && bf->inflight) {
		struct io_uring_cqe *cqe;

		io_uring_submit(&bf->ring);
		if (io_uring_wait_cqe(&bf->ring, &cqe) < 0)
			break;
		block_file_reap(bf);
	}
}

void block_file_close(struct block_file *bf)
{
	if (bf->ring_ready) {
		block_file_drain(bf);
		io_uring_queue_exit(&bf->ring);
		bf->ring_ready = false;
	}
	if (bf->event_fd >= 0)
		close(bf->event_fd);
	if (bf->fd >= 0)
		close(bf->fd);
	bf->event_fd = bf->fd = -1;
}

static struct io_uring_sqe *next_sqe(struct block_file *bf, struct block_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&bf->ring);

	if (!sqe) {
		/* Full: push what is queued to the kernel and try once more. */
		io_uring_submit(&bf->ring);
		sqe = io_uring_get_sqe(&bf->ring);
	}
	if (sqe) {
		io_uring_sqe_set_data(sqe, io);
		bf->inflight++;
	}
	return sqe;
}

int block_file_readv(struct block_file *bf, struct block_io *io, const struct iovec *iov, unsigned int n,
		     uint64_t offset)
{
	struct io_uring_sqe *sqe = next_sqe(bf, io);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_readv(sqe, IMAGE_FILE, iov, n, offset);
	sqe->flags |= IOSQE_FIXED_FILE;
	return 0;
}

int block_file_writev(struct block_file *bf, struct block_io *io, const struct iovec *iov, unsigned int n,
		      uint64_t offset)
{
	struct io_uring_sqe *sqe = next_sqe(bf, io);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_writev(sqe, IMAGE_FILE, iov, n, offset);
	sqe->flags |= IOSQE_FIXED_FILE;
	return 0;
}

int block_file_flush(struct block_file *bf, struct block_io *io)
{
	struct io_uring_sqe *sqe = next_sqe(bf, io);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_fsync(sqe, IMAGE_FILE, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	return 0;
}

static int fallocate_op(struct block_file *bf, struct block_io *io, int mode, uint64_t offset, uint64_t len)
{
	struct io_uring_sqe *sqe = next_sqe(bf, io);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_fallocate(sqe, IMAGE_FILE, mode, offset, len);
	sqe->flags |= IOSQE_FIXED_FILE;
	return 0;
}

int block_file_discard(struct block_file *bf, struct block_io *io, uint64_t offset, uint64_t len)
{
	return fallocate_op(bf, io, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len);
}

int block_file_write_zeroes(struct block_file *bf, struct block_io *io, uint64_t offset, uint64_t len,
			    bool unmap)
{
	int mode = unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;

	return fallocate_op(bf, io, mode, offset, len);
}

void block_file_submit(struct block_file *bf)
{
	io_uring_submit(&bf->ring);
}

unsigned int block_file_reap(struct block_file *bf)
{
	struct io_uring_cqe *cqe;
	unsigned int n = 0;
	uint64_t count;

	if (read(bf->event_fd, &count, sizeof(count)) < 0) {
		/* EAGAIN: nothing signalled; completions are read from the ring anyway. */
	}
	while (io_uring_peek_cqe(&bf->ring, &cqe) == 0) {
		struct block_io *io = io_uring_cqe_get_data(cqe);
		int result = cqe->res;

		io_uring_cqe_seen(&bf->ring, cqe);
		bf->inflight--;
		n++;
		io->complete(io, result);
	}
	return n;
}
