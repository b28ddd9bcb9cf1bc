/* libFuzzer target for the virtqueue chain walker: the input is a guest's RAM
 * (rings, descriptors, indirect tables) plus the negotiated features. Every
 * buffer handed out must lie inside guest RAM, and nothing may hang or crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "virtio/queue.h"

/* The avail ring and descriptors come first, so short inputs reach them; the
 * used ring, which only the device writes, sits past any input. */
#define RAM_SIZE (64 * 1024)
#define AVAIL_GPA 0x0000
#define DESC_GPA 0x0810
#define USED_GPA 0xC000
#define MAX_POPS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t ram[RAM_SIZE];
static struct virtq_elem elem;
static struct iovec iov[VIRTQ_MAX_IOV];

static void check_inside_ram(const struct iovec *iov)
{
	const uint8_t *p = iov->iov_base;

	if (iov->iov_len == 0)
		return;
	if (p < ram || p + iov->iov_len > ram + RAM_SIZE)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_mem mem;
	struct virtq vq;
	uint16_t qsize;
	bool event_idx, indirect;

	if (size < 2)
		return 0;
	log_set_level(LOG_ERROR);  /* a broken queue is an expected outcome here */
	qsize = (uint16_t)(1u << (data[0] % 11));  /* 1 .. 1024 */
	event_idx = data[1] & 1;
	indirect = data[1] & 2;
	memset(ram, 0, sizeof(ram));
	memcpy(ram, data + 2, size - 2 < sizeof(ram) ? size - 2 : sizeof(ram));

	guest_mem_layout(&mem, ram, RAM_SIZE, -1);
	virtq_elem_init(&elem, iov, 1u + data[1] % VIRTQ_MAX_IOV);
	if (virtq_init(&vq, &mem, qsize, DESC_GPA, AVAIL_GPA, USED_GPA, event_idx, indirect))
		return 0;
	for (int i = 0; i < MAX_POPS; i++) {
		int ret = virtq_pop(&vq, &elem);

		if (ret <= 0)
			break;
		for (unsigned int j = 0; j < elem.out_num + elem.in_num; j++) {
			check_inside_ram(&elem.iov[j]);
			if (j >= elem.out_num && elem.iov[j].iov_len)
				((uint8_t *)elem.iov[j].iov_base)[0] = 0xAA;  /* the device writes its reply */
		}
		virtq_push(&vq, elem.head, elem.in_len);
		(void)virtq_should_notify(&vq);
		if (data[1] & 4) {
			virtq_disable_kicks(&vq);
			(void)virtq_enable_kicks(&vq);
		}
	}
	return 0;
}
