/* virtio-pci transport and virtio-rng driven without a VM: a test driver
 * negotiates through the registers, lays out rings in fake guest RAM, kicks
 * through the notify register and checks the used ring and the MSI-X eventfd
 * (all through tests/unit/virtio_driver.c). Per-queue reset
 * (VIRTIO_F_RING_RESET) runs against a fake device that records what the
 * transport asks of it. */
#include "unit.h"

#include <linux/virtio_config.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>

#include "virtio/pci.h"
#include "virtio/rng.h"
#include "virtio_driver.h"

#define RAM_SIZE (4ULL << 20)
#define QSIZE 16

static struct vtd d;
static struct virtio_dev *rng;

static uint64_t rd(uint64_t off, unsigned int size)
{
	return vtd_read(&d, off, size);
}

static void wr(uint64_t off, uint64_t value, unsigned int size)
{
	vtd_write(&d, off, value, size);
}

static int setup(void **state)
{
	(void)state;
	rng = virtio_rng_create();
	vtd_init(&d, rng, RAM_SIZE);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vtd_destroy(&d);
	virtio_rng_destroy(rng);
	return 0;
}

static void start_rng(void)
{
	assert_true(vtd_negotiate(&d, 1ULL << VIRTIO_F_VERSION_1));
	vtd_setup_queue(&d, 0, QSIZE, 0);
	vtd_write(&d, VIRTIO_PCI_COMMON_MSIX, 1, 2);
	vtd_write(&d, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 + 12, 0, 4);  /* config vector 1, unmasked */
	vtd_driver_ok(&d);
}

static uint16_t offer_writable(uint64_t gpa, uint32_t len)
{
	struct vtd_buf buf = { gpa, len, true };

	return vtd_offer(&d, 0, &buf, 1);
}

static void test_config_space_ids_and_caps(void **state)
{
	unsigned int cap, types = 0, notify_bars[2], notify_caps = 0;

	(void)state;
	assert_int_equal(pci_device_config_read(&d.vp.pci, PCI_VENDOR_ID, 2), 0x1AF4);
	assert_int_equal(pci_device_config_read(&d.vp.pci, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_RNG);
	assert_true(pci_device_config_read(&d.vp.pci, PCI_REVISION_ID, 1) >= 1);
	assert_true(pci_device_config_read(&d.vp.pci, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	/* Walk the capability list as the Linux driver does. */
	for (cap = pci_device_config_read(&d.vp.pci, PCI_CAPABILITY_LIST, 1); cap;
	     cap = pci_device_config_read(&d.vp.pci, cap + 1, 1)) {
		if (pci_device_config_read(&d.vp.pci, cap, 1) == PCI_CAP_ID_VNDR) {
			unsigned int type = pci_device_config_read(&d.vp.pci, cap + 3, 1);
			unsigned int bar = pci_device_config_read(&d.vp.pci, cap + 4, 1);
			uint32_t offset = pci_device_config_read(&d.vp.pci, cap + 8, 4);
			uint32_t length = pci_device_config_read(&d.vp.pci, cap + 12, 4);

			if (type == VIRTIO_PCI_CAP_NOTIFY_CFG && notify_caps < 2)
				notify_bars[notify_caps++] = bar;
			if (bar == VIRTIO_PCI_NOTIFY_PORT_BAR) {
				/* The port: one 16-bit register for every queue (multiplier 0). */
				assert_int_equal(type, VIRTIO_PCI_CAP_NOTIFY_CFG);
				assert_int_equal(offset, 0);
				assert_int_equal(length, 2);
				assert_int_equal(pci_device_config_read(&d.vp.pci, cap + 16, 4), 0);
			} else {
				assert_int_equal(bar, 0);
				assert_true(offset + length <= VIRTIO_PCI_BAR_SIZE);
			}
			types |= 1U << type;
		}
	}
	/* Two notify structures, the port's first: drivers take the first they can use. */
	assert_int_equal(notify_caps, 2);
	assert_int_equal(notify_bars[0], VIRTIO_PCI_NOTIFY_PORT_BAR);
	assert_int_equal(notify_bars[1], 0);
	assert_int_equal(types, (1U << VIRTIO_PCI_CAP_COMMON_CFG) | (1U << VIRTIO_PCI_CAP_NOTIFY_CFG) |
					(1U << VIRTIO_PCI_CAP_ISR_CFG) | (1U << VIRTIO_PCI_CAP_DEVICE_CFG) |
					(1U << VIRTIO_PCI_CAP_PCI_CFG));
	/* 64-bit BAR at the assigned address, and a 4-port I/O BAR 2. */
	assert_int_equal(pci_device_config_read(&d.vp.pci, PCI_BASE_ADDRESS_0, 4), (uint32_t)VTD_BAR | 0x4);
	assert_int_equal(pci_device_config_read(&d.vp.pci, PCI_BASE_ADDRESS_2, 4), VTD_NOTIFY_PORT | PCI_BASE_ADDRESS_SPACE_IO);
	pci_device_config_write(&d.vp.pci, PCI_BASE_ADDRESS_2, 0xFFFFFFFF, 4);
	assert_int_equal(pci_device_config_read(&d.vp.pci, PCI_BASE_ADDRESS_2, 4), 0xFFFFFFFD);
}

static bool kick_pending(unsigned int q)
{
	uint64_t count;

	return read(d.vp.queues[q].kick_fd, &count, sizeof(count)) == sizeof(count);
}

/* BAR 2's port: the queue index written there kicks that queue, as the
 * ioeventfd KVM binds would; nothing else does. */
static void test_notify_port_kicks_the_written_queue(void **state)
{
	const struct iobus_ops *port = &virtio_pci_notify_port_ops;

	(void)state;
	start_rng();
	while (kick_pending(0))
		;
	port->write(&d.vp, 0, 0, 2);
	assert_true(kick_pending(0));
	assert_false(kick_pending(0));
	/* A queue the device does not have, a byte write, the other port pair. */
	port->write(&d.vp, 0, 1, 2);
	port->write(&d.vp, 0, 0xFFFF, 2);
	port->write(&d.vp, 0, 0, 1);
	port->write(&d.vp, 2, 0, 2);
	assert_false(kick_pending(0));
	assert_int_equal(port->read(&d.vp, 0, 2), 0xFFFF);
	/* Ignored without I/O decoding, or once the guest moved the BAR. */
	pci_device_config_write(&d.vp.pci, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	port->write(&d.vp, 0, 0, 2);
	assert_false(kick_pending(0));
	pci_device_config_write(&d.vp.pci, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY, 2);
	pci_device_config_write(&d.vp.pci, PCI_BASE_ADDRESS_2, 0xD000, 4);
	port->write(&d.vp, 0, 0, 2);
	assert_false(kick_pending(0));
	pci_device_config_write(&d.vp.pci, PCI_BASE_ADDRESS_2, VTD_NOTIFY_PORT, 4);
	port->write(&d.vp, 0, 0, 2);
	assert_true(kick_pending(0));
}

static void test_feature_negotiation(void **state)
{
	uint64_t offered;

	(void)state;
	offered = vtd_device_features(&d);
	assert_true(offered & (1ULL << VIRTIO_F_VERSION_1));
	assert_true(offered & (1ULL << VIRTIO_RING_F_EVENT_IDX));

	/* A bit never offered: FEATURES_OK does not stick. */
	assert_false(vtd_negotiate(&d, (1ULL << VIRTIO_F_VERSION_1) | (1ULL << 40)));
	/* A legacy driver (no VERSION_1) is refused too. */
	assert_false(vtd_negotiate(&d, 0));
	assert_true(vtd_negotiate(&d, offered));
	assert_int_equal(rng->features, offered);
}

static void test_rng_fills_buffers_and_interrupts(void **state)
{
	static const uint8_t zeros[256];
	uint64_t a = vtd_alloc(&d, 256), b = vtd_alloc(&d, 16);
	uint16_t head_a, head_b;
	uint32_t id, len;

	(void)state;
	start_rng();
	head_a = offer_writable(a, 256);
	head_b = offer_writable(b, 16);
	vtd_kick(&d, 0);
	assert_true(vtd_next_used(&d, 0, &id, &len));
	assert_int_equal(id, head_a);
	assert_int_equal(len, 256);
	assert_true(vtd_next_used(&d, 0, &id, &len));
	assert_int_equal(id, head_b);
	assert_int_equal(len, 16);
	assert_false(vtd_next_used(&d, 0, &id, &len));
	assert_memory_not_equal(vtd_ptr(&d, a), zeros, 256);
	assert_true(vtd_interrupted(&d, 0));
}

static void test_masked_vector_is_pending_until_unmasked(void **state)
{
	(void)state;
	start_rng();
	wr(VIRTIO_PCI_MSIX_TABLE_OFFSET + 12, 1, 4);  /* mask vector 0 */
	offer_writable(vtd_alloc(&d, 8), 8);
	vtd_kick(&d, 0);
	assert_false(vtd_interrupted(&d, 0));
	assert_int_equal(rd(VIRTIO_PCI_MSIX_PBA_OFFSET, 4) & 1, 1);
	wr(VIRTIO_PCI_MSIX_TABLE_OFFSET + 12, 0, 4);
	assert_true(vtd_interrupted(&d, 0));
	assert_int_equal(rd(VIRTIO_PCI_MSIX_PBA_OFFSET, 4) & 1, 0);
}

/* A vector left pending when the driver turned MSI-X off stays undelivered. */
static void test_unmask_with_msix_off_delivers_nothing(void **state)
{
	(void)state;
	start_rng();
	wr(VIRTIO_PCI_MSIX_TABLE_OFFSET + 12, 1, 4);  /* mask vector 0 */
	offer_writable(vtd_alloc(&d, 8), 8);
	vtd_kick(&d, 0);
	pci_device_config_write(&d.vp.pci, 0x40 + PCI_MSIX_FLAGS, 0, 2);
	wr(VIRTIO_PCI_MSIX_TABLE_OFFSET + 12, 0, 4);
	assert_false(vtd_interrupted(&d, 0));
}

static void test_function_mask_holds_vectors_pending(void **state)
{
	(void)state;
	start_rng();
	pci_device_config_write(&d.vp.pci, 0x40 + PCI_MSIX_FLAGS, 0xC000, 2);  /* enable + function mask */
	offer_writable(vtd_alloc(&d, 8), 8);
	vtd_kick(&d, 0);
	assert_false(vtd_interrupted(&d, 0));
	pci_device_config_write(&d.vp.pci, 0x40 + PCI_MSIX_FLAGS, 0x8000, 2);
	assert_true(vtd_interrupted(&d, 0));
	assert_false(d.intx);
}

/* What Linux does with pci=nomsi: no MSI-X, queue vectors left at NO_VECTOR,
 * and the interrupt handler reads the ISR, which lowers the line. */
static void test_intx_when_msix_is_off(void **state)
{
	uint32_t id, len;

	(void)state;
	assert_int_equal(pci_device_config_read(&d.vp.pci, PCI_INTERRUPT_PIN, 1), 1);
	pci_device_config_write(&d.vp.pci, 0x40 + PCI_MSIX_FLAGS, 0, 2);
	assert_true(vtd_negotiate(&d, 1ULL << VIRTIO_F_VERSION_1));
	vtd_setup_queue(&d, 0, QSIZE, 0);
	wr(VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	wr(VIRTIO_PCI_COMMON_Q_MSIX, VIRTIO_MSI_NO_VECTOR, 2);
	vtd_driver_ok(&d);

	offer_writable(vtd_alloc(&d, 8), 8);
	vtd_kick(&d, 0);
	assert_true(vtd_next_used(&d, 0, &id, &len));
	assert_false(vtd_interrupted(&d, 0));  /* no MSI-X message */
	assert_true(d.intx);
	assert_true(pci_device_config_read(&d.vp.pci, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	assert_int_equal(rd(VIRTIO_PCI_ISR_OFFSET, 1), 1);  /* queue interrupt; reading acknowledges */
	assert_false(d.intx);
	assert_false(pci_device_config_read(&d.vp.pci, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	assert_int_equal(rd(VIRTIO_PCI_ISR_OFFSET, 1), 0);

	/* INTx disabled in the command register: the line stays low until re-enabled. */
	pci_device_config_write(&d.vp.pci, PCI_COMMAND,
				PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE, 2);
	offer_writable(vtd_alloc(&d, 8), 8);
	vtd_kick(&d, 0);
	assert_false(d.intx);
	pci_device_config_write(&d.vp.pci, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	assert_true(d.intx);
	/* A device reset drops the pending interrupt with everything else. */
	wr(VIRTIO_PCI_COMMON_STATUS, 0, 1);
	assert_false(d.intx);
}

static void test_bad_ring_address_needs_reset(void **state)
{
	(void)state;
	assert_true(vtd_negotiate(&d, 1ULL << VIRTIO_F_VERSION_1));
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
	struct vring_desc *table;
	uint32_t id, len;
	uint16_t head;

	(void)state;
	start_rng();
	head = offer_writable(vtd_alloc(&d, 8), 8);
	table = vtd_ptr(&d, d.q[0].desc);
	table[head].flags = VRING_DESC_F_WRITE | VRING_DESC_F_NEXT;
	table[head].next = head;  /* loops onto itself */
	vtd_kick(&d, 0);
	assert_true(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(vtd_interrupted(&d, 1));  /* config interrupt tells the driver */
	assert_false(vtd_next_used(&d, 0, &id, &len));
}

static void test_queue_registers_frozen_once_enabled(void **state)
{
	(void)state;
	start_rng();
	wr(VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	wr(VIRTIO_PCI_COMMON_Q_DESCLO, 0x8000, 4);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_DESCLO, 4), d.q[0].desc);
	/* Queues beyond num_queues read as absent. */
	wr(VIRTIO_PCI_COMMON_Q_SELECT, 5, 2);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
}

static void test_decoding_off_ignores_accesses(void **state)
{
	(void)state;
	pci_device_config_write(&d.vp.pci, PCI_COMMAND, 0, 2);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_NUMQ, 2), 0xFFFF);
	wr(VIRTIO_PCI_COMMON_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE, 1);
	pci_device_config_write(&d.vp.pci, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_STATUS, 1), 0);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_NUMQ, 2), 1);
}

/* VIRTIO_PCI_CAP_PCI_CFG: registers reached through config space alone. */
static void test_pci_cfg_window(void **state)
{
	unsigned int cap;

	(void)state;
	for (cap = pci_device_config_read(&d.vp.pci, PCI_CAPABILITY_LIST, 1); cap;
	     cap = pci_device_config_read(&d.vp.pci, cap + 1, 1))
		if (pci_device_config_read(&d.vp.pci, cap, 1) == PCI_CAP_ID_VNDR &&
		    pci_device_config_read(&d.vp.pci, cap + 3, 1) == VIRTIO_PCI_CAP_PCI_CFG)
			break;
	assert_int_not_equal(cap, 0);
	/* Even with memory decoding off, as firmware without a BAR mapping would use it. */
	pci_device_config_write(&d.vp.pci, PCI_COMMAND, 0, 2);
	pci_device_config_write(&d.vp.pci, cap + 4, 0, 1);                        /* bar */
	pci_device_config_write(&d.vp.pci, cap + 8, VIRTIO_PCI_COMMON_NUMQ, 4);   /* offset */
	pci_device_config_write(&d.vp.pci, cap + 12, 2, 4);                       /* length */
	assert_int_equal(pci_device_config_read(&d.vp.pci, cap + 16, 4) & 0xFFFF, 1);
	pci_device_config_write(&d.vp.pci, cap + 8, VIRTIO_PCI_COMMON_STATUS, 4);
	pci_device_config_write(&d.vp.pci, cap + 12, 1, 4);
	pci_device_config_write(&d.vp.pci, cap + 16, VIRTIO_CONFIG_S_ACKNOWLEDGE, 4);
	assert_int_equal(pci_device_config_read(&d.vp.pci, cap + 16, 4) & 0xFF, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	pci_device_config_write(&d.vp.pci, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_STATUS, 1), VIRTIO_CONFIG_S_ACKNOWLEDGE);
}

/* rng has no queue_reset op: no VIRTIO_F_RING_RESET, and queue_reset writes do nothing. */
static void test_ring_reset_needs_device_support(void **state)
{
	uint32_t id, len;

	(void)state;
	assert_false(vtd_device_features(&d) & (1ULL << VIRTIO_F_RING_RESET));
	assert_false(vtd_negotiate(&d, (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_RING_RESET)));
	start_rng();
	assert_false(vtd_reset_queue(&d, 0));
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	offer_writable(vtd_alloc(&d, 8), 8);
	vtd_kick(&d, 0);
	assert_true(vtd_next_used(&d, 0, &id, &len));
}

/* A device that can reset single queues: what the transport asked of it. */
static struct {
	struct virtio_dev vdev;
	unsigned int kicked[2], reset[2];
	bool ready_at_reset;
} fake;

static bool fake_kick(struct virtio_dev *vdev, unsigned int q)
{
	(void)vdev;
	fake.kicked[q]++;
	return false;
}

static void fake_queue_reset(struct virtio_dev *vdev, unsigned int q)
{
	fake.reset[q]++;
	fake.ready_at_reset = vdev->vq_ready[q];
}

static const struct virtio_device_ops fake_ops = {
	.name = "fake", .type = VIRTIO_ID_RNG, .num_queues = 2, .queue_size = 64,
	.queue_kick = fake_kick, .queue_reset = fake_queue_reset,
};

static int setup_fake(void **state)
{
	(void)state;
	memset(&fake, 0, sizeof(fake));
	fake.vdev.ops = &fake_ops;
	fake.vdev.ring_reset = true;
	pthread_mutex_init(&fake.vdev.lock, NULL);
	vtd_init(&d, &fake.vdev, RAM_SIZE);
	return 0;
}

static int teardown_fake(void **state)
{
	(void)state;
	vtd_destroy(&d);
	pthread_mutex_destroy(&fake.vdev.lock);
	return 0;
}

/* Negotiate (with RING_RESET if asked), both queues at QSIZE, DRIVER_OK if asked. */
static void start_fake(bool ring_reset, bool driver_ok)
{
	assert_true(vtd_negotiate(&d, (1ULL << VIRTIO_F_VERSION_1) | (ring_reset ? 1ULL << VIRTIO_F_RING_RESET : 0)));
	vtd_setup_queue(&d, 0, QSIZE, 0);
	vtd_setup_queue(&d, 1, QSIZE, 1);
	if (driver_ok)
		vtd_driver_ok(&d);
}

static uint64_t kicks_pending(unsigned int q)
{
	uint64_t count = 0;

	return read(d.vp.queues[q].kick_fd, &count, sizeof(count)) == sizeof(count) ? count : 0;
}

/* Reset queue 1 of a running device: the device hears of it while the queue
 * is still set up, the registers go back to their reset values, kicks stop
 * reaching the device; queue 0 is untouched. Enabled again with another size
 * and rings, it is kicked once and served. */
static void test_queue_reset_and_reenable(void **state)
{
	(void)state;
	assert_true(vtd_device_features(&d) & (1ULL << VIRTIO_F_RING_RESET));
	start_fake(true, true);
	wr(VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_RESET, 2), 0);  /* enabled, no reset going on */
	wr(VIRTIO_PCI_COMMON_Q_RESET, 0, 2);
	wr(VIRTIO_PCI_COMMON_Q_RESET, 2, 2);
	assert_int_equal(fake.reset[1], 0);

	assert_true(vtd_reset_queue(&d, 1));
	assert_int_equal(fake.reset[1], 1);
	assert_int_equal(fake.reset[0], 0);
	assert_true(fake.ready_at_reset);
	assert_false(fake.vdev.vq_ready[1]);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), 64);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_AVAILLO, 4), 0);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_USEDLO, 4), 0);
	wr(VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	vtd_kick(&d, 1);
	vtd_kick(&d, 0);
	assert_int_equal(fake.kicked[1], 0);
	assert_int_equal(fake.kicked[0], 1);
	assert_true(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_DRIVER_OK);

	vtd_setup_queue_at(&d, 1, 8, 1, vtd_alloc(&d, 4096));
	wr(VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_RESET, 2), 0);
	assert_int_equal(fake.vdev.vq[1].size, 8);
	assert_int_equal(kicks_pending(1), 1);
	virtio_pci_handle_kick(&d.vp, 1);
	assert_int_equal(fake.kicked[1], 1);
	assert_int_equal(kicks_pending(0), 0);  /* only the queue enabled again */
	/* Queue registers freeze again once enabled. */
	wr(VIRTIO_PCI_COMMON_Q_SIZE, 4, 2);
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), 8);
}

/* queue_reset is ignored without the feature, before DRIVER_OK, for a queue
 * that does not exist, and for a queue another server runs (vhost). */
static void test_queue_reset_refused(void **state)
{
	int kick_fd, call_fd;

	(void)state;
	start_fake(false, true);
	assert_false(vtd_reset_queue(&d, 0));
	start_fake(true, false);
	assert_false(vtd_reset_queue(&d, 0));
	assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	vtd_driver_ok(&d);
	for (unsigned int i = 0; i < 3; i++) {
		wr(VIRTIO_PCI_COMMON_Q_SELECT, (uint16_t[]){ 2, VIRTIO_MAX_QUEUES, 0xFFFF }[i], 2);
		wr(VIRTIO_PCI_COMMON_Q_RESET, 1, 2);
		assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_RESET, 2), 0);
	}
	assert_int_equal(fake.reset[0] + fake.reset[1], 0);
	assert_true(fake.vdev.vq_ready[0] && fake.vdev.vq_ready[1]);

	assert_int_equal(fake.vdev.offload_queue(&fake.vdev, 0, &kick_fd, &call_fd), 0);
	assert_false(vtd_reset_queue(&d, 0));
	assert_int_equal(fake.reset[0], 0);
	fake.vdev.reclaim_queue(&fake.vdev, 0);
	assert_true(vtd_reset_queue(&d, 0));
	assert_int_equal(fake.reset[0], 1);
	assert_false(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* Enabled again with a size that is no power of two, too big, or zero: the
 * queue stays off and the device needs a reset, as at first setup. */
static void test_queue_reenable_bad_size(void **state)
{
	static const uint16_t sizes[] = { 24, 128, 0 };

	(void)state;
	for (unsigned int i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		start_fake(true, true);
		assert_true(vtd_reset_queue(&d, 0));
		vtd_setup_queue_at(&d, 0, sizes[i], 0, vtd_alloc(&d, 4096));
		assert_int_equal(rd(VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
		assert_false(fake.vdev.vq_ready[0]);
		assert_true(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
		vtd_kick(&d, 0);
		assert_int_equal(fake.kicked[0], 0);
	}
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define T_FAKE(f) cmocka_unit_test_setup_teardown(f, setup_fake, teardown_fake)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_config_space_ids_and_caps),
		T(test_notify_port_kicks_the_written_queue),
		T(test_feature_negotiation),
		T(test_rng_fills_buffers_and_interrupts),
		T(test_masked_vector_is_pending_until_unmasked),
		T(test_function_mask_holds_vectors_pending),
		T(test_unmask_with_msix_off_delivers_nothing),
		T(test_intx_when_msix_is_off),
		T(test_bad_ring_address_needs_reset),
		T(test_hostile_chain_needs_reset),
		T(test_queue_registers_frozen_once_enabled),
		T(test_decoding_off_ignores_accesses),
		T(test_pci_cfg_window),
		T(test_ring_reset_needs_device_support),
		T_FAKE(test_queue_reset_and_reenable),
		T_FAKE(test_queue_reset_refused),
		T_FAKE(test_queue_reenable_bad_size),
	};

	return cmocka_run_group_tests_name("virtio_pci", tests, NULL, NULL);
}
