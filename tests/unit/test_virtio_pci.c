/* virtio-pci transport and virtio-rng driven without a VM: a test driver
 * negotiates through the registers, lays out rings in fake guest RAM, kicks
 * through the notify register and checks the used ring and the MSI-X eventfd. */
#include "unit.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virtio/pci.h"
#include "virtio/rng.h"

#define RAM_SIZE (1 << 20)
#define BAR_ADDR 0xC0000000ULL
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000
#define DATA_GPA 0x10000
#define QSIZE 16

static struct guest_mem mem;
static uint8_t *ram;
static struct virtio_pci vp;
static struct virtio_dev *rng;
static uint16_t avail_idx;

static uint64_t rd(uint64_t off, unsigned int size)
{
	return virtio_pci_bar_ops.read(&vp, off, size);
}

static void wr(uint64_t off, uint64_t value, unsigned int size)
{
	virtio_pci_bar_ops.write(&vp, off, value, size);
}

static void cfg_wr(unsigned int off, uint32_t value, unsigned int size)
{
	pci_device_config_write(&vp.pci, off, value, size);
}

static int setup(void **state)
{
	(void)state;
	ram = calloc(1, RAM_SIZE);
	guest_mem_layout(&mem, ram, RAM_SIZE, -1);
	rng = virtio_rng_create();
	assert_int_equal(virtio_pci_init(&vp, rng, &mem, BAR_ADDR, NULL), 0);
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	avail_idx = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	virtio_pci_destroy(&vp);
	virtio_rng_destroy(rng);
	free(ram);
	return 0;
}

static bool fd_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t count;

	if (poll(&p, 1, 0) != 1)
		return false;
	return read(fd, &count, sizeof(count)) == sizeof(count);
}

/* The Linux driver's probe sequence, reduced to what the spec requires. */
static void negotiate(uint64_t features)
{
	wr(VIRTIO_PCI_COMMON_STATUS, 0, 1);
	wr(VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, 1);
	wr(VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
	wr(VIRTIO_PCI_COMMON_GF, (uint32_t)features, 4);
	wr(VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
	wr(VIRTIO_PCI_COMMON_GF, (uint32_t)(features >> 32), 4);
	wr(VIRTIO_PCI_COMMON_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK, 1);
}

static void setup_queue_and_msix(void)
{
	/* MSI-X on, vector 0 for the queue, unmasked. */
	cfg_wr(0x40 + PCI_MSIX_FLAGS, 0x8000 | (VIRTIO_PCI_MSIX_VECTORS - 1), 2);
	wr(VIRTIO_PCI_MSIX_TABLE_OFFSET + 0, 0xFEE00000, 4);
	wr(VIRTIO_PCI_MSIX_TABLE_OFFSET + 8, 0x41, 4);
	wr(VIRTIO_PCI_MSIX_TABLE_OFFSET + 12, 0, 4);
	wr(VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	wr(VIRTIO_PCI_COMMON_Q_SIZE, QSIZE, 2);
	wr(VIRTIO_PCI_COMMON_Q_MSIX, 0, 2);
	wr(VIRTIO_PCI_COMMON_Q_DESCLO, DESC_GPA, 4);
	wr(VIRTIO_PCI_COMMON_Q_DESCHI, 0, 4);
	wr(VIRTIO_PCI_COMMON_Q_AVAILLO, AVAIL_GPA, 4);
	wr(VIRTIO_PCI_COMMON_Q_USEDLO, USED_GPA, 4);
	wr(VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	wr(VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					     VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK, 1);
}

static void offer_buffer(uint16_t desc, uint64_t gpa, uint32_t len)
{
	struct vring_desc *table = (struct vring_desc *)(ram + DESC_GPA);
	struct vring_avail *avail = (struct vring_avail *)(ram + AVAIL_GPA);

	table[desc] = (struct vring_desc){ .addr = gpa, .len = len, .flags = VRING_DESC_F_WRITE };
	avail->ring[avail_idx % QSIZE] = desc;
	avail->idx = ++avail_idx;
}

static void test_config_space_ids_and_caps(void **state)
{
	unsigned int cap, types = 0;

	(void)state;
	assert_int_equal(pci_device_config_read(&vp.pci, PCI_VENDOR_ID, 2), 0x1AF4);
	assert_int_equal(pci_device_config_read(&vp.pci, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_RNG);
	assert_true(pci_device_config_read(&vp.pci, PCI_REVISION_ID, 1) >= 1);
	assert_true(pci_device_config_read(&vp.pci, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	/* Walk the capability list as the Linux driver does. */
	for (cap = pci_device_config_read(&vp.pci, PCI_CAPABILITY_LIST, 1); cap;
	     cap = pci_device_config_read(&vp.pci, cap + 1, 1)) {
		if (pci_device_config_read(&vp.pci, cap, 1) == PCI_CAP_ID_VNDR) {
			unsigned int type = pci_device_config_read(&vp.pci, cap + 3, 1);
			uint32_t offset = pci_device_config_read(&vp.pci, cap + 8, 4);
			uint32_t length = pci_device_config_read(&vp.pci, cap + 12, 4);

			assert_int_equal(pci_device_config_read(&vp.pci, cap + 4, 1), 0);  /* BAR 0 */
			assert_true(offset + length <= VIRTIO_PCI_BAR_SIZE);
			types |= 1U << type;
		}
	}
	assert_int_equal(types, (1U << VIRTIO_PCI_CAP_COMMON_CFG) | (1U << VIRTIO_PCI_CAP_NOTIFY_CFG) |
					(1U << VIRTIO_PCI_CAP_ISR_CFG) | (1U << VIRTIO_PCI_CAP_DEVICE_CFG));
	/* 64-bit BAR at the assigned address. */
	assert_int_equal(pci_device_config_read(&vp.pci, PCI_BASE_ADDRESS_0, 4), (uint32_t)BAR_ADDR | 0x4);
}

static void test_feature_negotiation(void **state)
{
	uint64_t offered;

	(void)state;
	wr(VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
	offered = rd(VIRTIO_PCI_COMMON_DF, 4);
	wr(VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
	offered |= rd(VIRTIO_PCI_COMMON_DF, 4) << 32;
	assert_true(offered & (1ULL << VIRTIO_F_VERSION_1));
	assert_true(offered & (1ULL << VIRTIO_RING_F_EVENT_IDX));

	/* A bit never offered: FEATURES_OK does not stick. */
	negotiate((1ULL << VIRTIO_F_VERSION_1) | (1ULL << 40));
	assert_false(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* A legacy driver (no VERSION_1) is refused too. */
	negotiate(0);
	assert_false(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_FEATURES_OK);
	negotiate(offered);
	assert_true(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_FEATURES_OK);
	assert_int_equal(rng->features, offered);
}

static void test_rng_fills_buffers_and_interrupts(void **state)
{
	struct vring_used *used = (struct vring_used *)(ram + USED_GPA);
	static const uint8_t zeros[256];

	(void)state;
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	setup_queue_and_msix();
	offer_buffer(0, DATA_GPA, 256);
	offer_buffer(1, DATA_GPA + 4096, 16);
	wr(VIRTIO_PCI_NOTIFY_OFFSET, 0, 2);
	assert_true(fd_readable(vp.queues[0].kick_fd));
	/* The I/O thread's side of the kick, run here directly. */
	virtio_pci_handle_kick(&vp, 0);
	assert_int_equal(used->idx, 2);
	assert_int_equal(used->ring[0].id, 0);
	assert_int_equal(used->ring[0].len, 256);
	assert_int_equal(used->ring[1].len, 16);
	assert_memory_not_equal(ram + DATA_GPA, zeros, 256);
	assert_true(fd_readable(vp.msix[0].fd));
}

static void test_masked_vector_is_pending_until_unmasked(void **state)
{
	(void)state;
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	setup_queue_and_msix();
	wr(VIRTIO_PCI_MSIX_TABLE_OFFSET + 12, 1, 4);  /* mask vector 0 */
	offer_buffer(0, DATA_GPA, 8);
	virtio_pci_handle_kick(&vp, 0);
	assert_false(fd_readable(vp.msix[0].fd));
	assert_int_equal(rd(VIRTIO_PCI_MSIX_PBA_OFFSET, 4) & 1, 1);
	wr(VIRTIO_PCI_MSIX_TABLE_OFFSET + 12, 0, 4);
	assert_true(fd_readable(vp.msix[0].fd));
	assert_int_equal(rd(VIRTIO_PCI_MSIX_PBA_OFFSET, 4) & 1, 0);
}

static void test_bad_ring_address_needs_reset(void **state)
{
	(void)state;
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	wr(VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	wr(VIRTIO_PCI_COMMON_Q_SIZE, QSIZE, 2);
	wr(VIRTIO_PCI_COMMON_Q_DESCLO, RAM_SIZE - 16, 4);  /* table runs off the end of RAM */
	wr(VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	assert_true(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* Reset clears it. */
	wr(VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_STATUS, 1), 0);
}

static void test_hostile_chain_needs_reset(void **state)
{
	struct vring_desc *table = (struct vring_desc *)(ram + DESC_GPA);

	(void)state;
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	setup_queue_and_msix();
	wr(VIRTIO_PCI_COMMON_MSIX, 1, 2);
	wr(VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 + 12, 0, 4);
	offer_buffer(0, DATA_GPA, 8);
	table[0].flags = VRING_DESC_F_WRITE | VRING_DESC_F_NEXT;
	table[0].next = 0;  /* loops onto itself */
	virtio_pci_handle_kick(&vp, 0);
	assert_true(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(fd_readable(vp.msix[1].fd));  /* config interrupt tells the driver */
	assert_int_equal(((struct vring_used *)(ram + USED_GPA))->idx, 0);
}

static void test_queue_registers_frozen_once_enabled(void **state)
{
	(void)state;
	negotiate(1ULL << VIRTIO_F_VERSION_1);
	setup_queue_and_msix();
	wr(VIRTIO_PCI_COMMON_Q_DESCLO, 0x8000, 4);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_DESCLO, 4), DESC_GPA);
	/* Queues beyond num_queues read as absent. */
	wr(VIRTIO_PCI_COMMON_Q_SELECT, 5, 2);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
}

static void test_decoding_off_ignores_accesses(void **state)
{
	(void)state;
	cfg_wr(PCI_COMMAND, 0, 2);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_NUMQ, 2), 0xFFFF);
	wr(VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE, 1);
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_STATUS, 1), 0);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_NUMQ, 2), 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_config_space_ids_and_caps),
		T(test_feature_negotiation),
		T(test_rng_fills_buffers_and_interrupts),
		T(test_masked_vector_is_pending_until_unmasked),
		T(test_bad_ring_address_needs_reset),
		T(test_hostile_chain_needs_reset),
		T(test_queue_registers_frozen_once_enabled),
		T(test_decoding_off_ignores_accesses),
	};

	return cmocka_run_group_tests_name("virtio_pci", tests, NULL, NULL);
}
