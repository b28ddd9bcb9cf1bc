/* Block backend on a raw image file or block device: asynchronous I/O through
 * io_uring, completions signalled on an eventfd for the device's I/O thread. */
#ifndef KVIO_BACKEND_BLOCK_FILE_H
#define KVIO_BACKEND_BLOCK_FILE_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* One operation in flight; complete() gets the result (bytes or -errno). */
struct block_io {
	void (*complete)(struct block_io *io, int result);
};

struct block_file {
	int fd;
	uint64_t size;
	bool read_only;
	struct io_uring ring;
	bool ring_ready;
	int event_fd;           /* readable when completions are waiting */
	unsigned int inflight;
};

/* Returns 0, or -errno with *why naming the step that failed. */
int block_file_open(struct block_file *bf, const char *path, bool read_only, unsigned int depth,
		    const char **why);
/* Waits for everything in flight first: shutdown never drops I/O. */
void block_file_close(struct block_file *bf);

/* Queue operations; block_file_submit() hands the batch to the kernel.
 * Each returns 0, or -EBUSY when the submission ring is full. */
int block_file_readv(struct block_file *bf, struct block_io *io, const struct iovec *iov, unsigned int n,
		     uint64_t offset);
int block_file_writev(struct block_file *bf, struct block_io *io, const struct iovec *iov, unsigned int n,
		      uint64_t offset);
int block_file_flush(struct block_file *bf, struct block_io *io);
/* Deallocate (punch) or zero [offset, offset + len). */
int block_file_discard(struct block_file *bf, struct block_io *io, uint64_t offset, uint64_t len);
int block_file_write_zeroes(struct block_file *bf, struct block_io *io, uint64_t offset, uint64_t len,
			    bool unmap);
void block_file_submit(struct block_file *bf);

/* Wait until nothing is in flight, running complete() for each. */
void block_file_drain(struct block_file *bf);

/* Run complete() for every finished operation; returns how many. */
unsigned int block_file_reap(struct block_file *bf);

#endif
