/* virtio-pci modern transport: configuration space with the virtio vendor
 * capabilities and MSI-X, BAR 0's registers and BAR 2's notify port. Runs on
 * vCPU threads for register accesses and on the queues' I/O threads for
 * kicks; device.h says which lock covers what. */
#include "virtio/pci.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_pci.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util/bytes.h"
#include "util/log.h"

#define CAP_MSIX 0x40
#define CAP_COMMON 0x50
#define CAP_NOTIFY 0x60
#define CAP_ISR 0x78
#define CAP_DEVICE 0x88
#define CAP_PCI_CFG 0x98  /* the config-space window onto BAR 0 (4.1.4.8) */
#define CAP_NOTIFY_PORT 0xB0
#define PCI_CFG_DATA (CAP_PCI_CFG + sizeof(struct virtio_pci_cap))
#define MSIX_ENTRY_SIZE 16
#define MSIX_CONTROL_MASKED 1U
#define MSIX_ENABLE 0x8000
#define MSIX_FUNCTION_MASK 0x4000

static uint64_t offered_features(const struct virtio_pci *vp)
{
	const struct virtio_dev *vdev = vp->vdev;
	uint64_t features = vdev->ops->features | (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			    (1ULL << VIRTIO_RING_F_INDIRECT_DESC);

	/* Per-queue reset only where the device can forget one queue on its own. */
	if (vdev->ops->queue_reset && vdev->ring_reset)
		features |= 1ULL << VIRTIO_F_RING_RESET;
	return features;
}

/* PCI class codes by device type; Linux matches on IDs, but lspci shows these. */
static uint32_t class_for(uint16_t type)
{
	switch (type) {
	case VIRTIO_ID_BLOCK: return 0x018000;     /* mass storage */
	case VIRTIO_ID_NET: return 0x020000;       /* ethernet */
	case VIRTIO_ID_CONSOLE: return 0x078000;   /* communication */
	case VIRTIO_ID_BALLOON: return 0x050000;   /* memory */
	default: return 0xFF0000;                  /* unassigned class */
	}
}

static void put_cap(struct virtio_pci *vp, unsigned int at, unsigned int next, uint8_t cfg_type, uint8_t bar,
		    uint32_t offset, uint32_t length, unsigned int cap_len)
{
	struct virtio_pci_cap cap = {
		.cap_vndr = PCI_CAP_ID_VNDR, .cap_next = (uint8_t)next, .cap_len = (uint8_t)cap_len,
		.cfg_type = cfg_type, .bar = bar, .offset = htole32(offset), .length = htole32(length),
	};

	memcpy(&vp->pci.config[at], &cap, sizeof(cap));
}

static uint64_t registers_read(struct virtio_pci *vp, uint64_t off, unsigned int size, bool via_bar);
static void registers_write(struct virtio_pci *vp, uint64_t off, uint64_t value, unsigned int size, bool via_bar);

/* The window's target, if the driver set one we can serve: BAR 0, 1, 2 or 4 bytes. */
static bool pci_cfg_target(const struct virtio_pci *vp, uint32_t *offset, unsigned int *len)
{
	const uint8_t *cap = &vp->pci.config[CAP_PCI_CFG];

	memcpy(offset, cap + offsetof(struct virtio_pci_cap, offset), 4);
	memcpy(len, cap + offsetof(struct virtio_pci_cap, length), 4);
	*offset = le32toh(*offset);
	*len = le32toh(*len);
	return cap[offsetof(struct virtio_pci_cap, bar)] == 0 && (*len == 1 || *len == 2 || *len == 4) &&
	       *offset < VIRTIO_PCI_BAR_SIZE && *offset % *len == 0;
}

static bool touches(unsigned int offset, unsigned int size, unsigned int field, unsigned int field_size)
{
	return offset < field + field_size && offset + size > field;
}

static void pci_cfg_before_read(struct pci_device *pci, unsigned int offset, unsigned int size)
{
	struct virtio_pci *vp = pci->owner;
	uint32_t target, value;
	unsigned int len;

	if (!touches(offset, size, PCI_CFG_DATA, 4) || !pci_cfg_target(vp, &target, &len))
		return;
	/* The window works whether or not the BAR is decoded: that is what it is for. */
	value = htole32((uint32_t)registers_read(vp, target, len, false));
	memcpy(&pci->config[PCI_CFG_DATA], &value, 4);
}

static void update_intx(struct virtio_pci *vp);
static void deliver_pending(struct virtio_pci *vp);

static void config_after_write(struct pci_device *pci, unsigned int offset, unsigned int size)
{
	struct virtio_pci *vp = pci->owner;
	uint32_t target, value;
	unsigned int len;

	/* INTx disable, MSI-X enable and the function mask change where interrupts go. */
	if (touches(offset, size, PCI_COMMAND, 2) || touches(offset, size, CAP_MSIX + PCI_MSIX_FLAGS, 2)) {
		uint16_t command, flags;

		memcpy(&command, &pci->config[PCI_COMMAND], 2);
		memcpy(&flags, &pci->config[CAP_MSIX + PCI_MSIX_FLAGS], 2);
		pthread_mutex_lock(&vp->vdev->lock);
		pthread_mutex_lock(&vp->irq_lock);
		vp->pci_command = le16toh(command);
		vp->msix_flags = le16toh(flags);
		update_intx(vp);
		deliver_pending(vp);
		pthread_mutex_unlock(&vp->irq_lock);
		pthread_mutex_unlock(&vp->vdev->lock);
	}
	if (!touches(offset, size, PCI_CFG_DATA, 4) || !pci_cfg_target(vp, &target, &len))
		return;
	memcpy(&value, &pci->config[PCI_CFG_DATA], 4);
	registers_write(vp, target, le32toh(value) & (len == 4 ? 0xFFFFFFFFU : (1U << (8 * len)) - 1), len, false);
}

static const struct pci_config_hooks config_hooks = {
	.before_read = pci_cfg_before_read,
	.after_write = config_after_write,
};

static void build_config_space(struct virtio_pci *vp)
{
	struct pci_device *pci = &vp->pci;
	uint32_t multiplier = htole32(VIRTIO_PCI_NOTIFY_MULTIPLIER);
	uint16_t status = PCI_STATUS_CAP_LIST, msix_control = VIRTIO_PCI_MSIX_VECTORS - 1;
	uint32_t table = VIRTIO_PCI_MSIX_TABLE_OFFSET, pba = VIRTIO_PCI_MSIX_PBA_OFFSET;
	uint16_t type = vp->vdev->ops->type;

	pci_device_init(pci, vp->vdev->ops->name, VIRTIO_PCI_VENDOR, (uint16_t)(VIRTIO_PCI_DEVICE_BASE + type),
			class_for(type));
	pci->config[PCI_REVISION_ID] = 1;  /* modern-only devices have revision 1 or more */
	pci->config[PCI_SUBSYSTEM_VENDOR_ID] = VIRTIO_PCI_VENDOR & 0xFF;
	pci->config[PCI_SUBSYSTEM_VENDOR_ID + 1] = VIRTIO_PCI_VENDOR >> 8;
	pci->config[PCI_SUBSYSTEM_ID] = 0x00;
	pci->config[PCI_SUBSYSTEM_ID + 1] = 0x11;
	memcpy(&pci->config[PCI_STATUS], &status, 2);
	pci->config[PCI_CAPABILITY_LIST] = CAP_MSIX;
	pci->config[PCI_INTERRUPT_PIN] = 1;  /* INTA, for drivers that do not enable MSI-X */

	pci->config[CAP_MSIX + PCI_CAP_LIST_ID] = PCI_CAP_ID_MSIX;
	pci->config[CAP_MSIX + PCI_CAP_LIST_NEXT] = CAP_COMMON;
	memcpy(&pci->config[CAP_MSIX + PCI_MSIX_FLAGS], &msix_control, 2);
	vp->msix_flags = msix_control;
	pci->wmask[CAP_MSIX + PCI_MSIX_FLAGS + 1] = (MSIX_ENABLE | MSIX_FUNCTION_MASK) >> 8;
	memcpy(&pci->config[CAP_MSIX + PCI_MSIX_TABLE], &table, 4);
	memcpy(&pci->config[CAP_MSIX + PCI_MSIX_PBA], &pba, 4);

	/* The port's notify structure first: drivers take the first one they can use. */
	put_cap(vp, CAP_COMMON, vp->notify_port ? CAP_NOTIFY_PORT : CAP_NOTIFY, VIRTIO_PCI_CAP_COMMON_CFG, 0,
		VIRTIO_PCI_COMMON_OFFSET, VIRTIO_PCI_COMMON_SIZE, sizeof(struct virtio_pci_cap));
	if (vp->notify_port)  /* multiplier 0: every queue writes the same register */
		put_cap(vp, CAP_NOTIFY_PORT, CAP_NOTIFY, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_PORT_BAR, 0, 2,
			sizeof(struct virtio_pci_notify_cap));
	put_cap(vp, CAP_NOTIFY, CAP_ISR, VIRTIO_PCI_CAP_NOTIFY_CFG, 0, VIRTIO_PCI_NOTIFY_OFFSET,
		VIRTIO_PCI_NOTIFY_MULTIPLIER * VIRTIO_MAX_QUEUES, sizeof(struct virtio_pci_notify_cap));
	memcpy(&pci->config[CAP_NOTIFY + sizeof(struct virtio_pci_cap)], &multiplier, 4);
	put_cap(vp, CAP_ISR, CAP_DEVICE, VIRTIO_PCI_CAP_ISR_CFG, 0, VIRTIO_PCI_ISR_OFFSET, VIRTIO_PCI_ISR_SIZE,
		sizeof(struct virtio_pci_cap));
	put_cap(vp, CAP_DEVICE, CAP_PCI_CFG, VIRTIO_PCI_CAP_DEVICE_CFG, 0, VIRTIO_PCI_DEVICE_OFFSET,
		VIRTIO_PCI_DEVICE_SIZE, sizeof(struct virtio_pci_cap));
	/* The driver picks bar, offset and length, then reads or writes the data. */
	put_cap(vp, CAP_PCI_CFG, 0, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, sizeof(struct virtio_pci_cfg_cap));
	pci->wmask[CAP_PCI_CFG + offsetof(struct virtio_pci_cap, bar)] = 0xFF;
	memset(&pci->wmask[CAP_PCI_CFG + offsetof(struct virtio_pci_cap, offset)], 0xFF, 8);
	memset(&pci->wmask[PCI_CFG_DATA], 0xFF, 4);
	pci->hooks = &config_hooks;
	pci->owner = vp;

	pci_device_add_bar(pci, 0, VIRTIO_PCI_BAR_SIZE, PCI_BAR_MEM64);
	/* Assigned up front, as firmware does; Linux keeps it inside the host window. */
	pci->config[PCI_BASE_ADDRESS_0] = (uint8_t)(vp->bar_addr | PCI_BASE_ADDRESS_MEM_TYPE_64);
	for (unsigned int i = 1; i < 8; i++)
		pci->config[PCI_BASE_ADDRESS_0 + i] = (uint8_t)(vp->bar_addr >> (8 * i));
	if (vp->notify_port) {
		unsigned int bar2 = PCI_BASE_ADDRESS_0 + 4 * VIRTIO_PCI_NOTIFY_PORT_BAR;

		pci_device_add_bar(pci, VIRTIO_PCI_NOTIFY_PORT_BAR, VIRTIO_PCI_NOTIFY_PORT_SIZE, PCI_BAR_IO);
		pci->config[bar2] = (uint8_t)(vp->notify_port | PCI_BASE_ADDRESS_SPACE_IO);
		pci->config[bar2 + 1] = (uint8_t)(vp->notify_port >> 8);
	}
}

static uint16_t msix_control(const struct virtio_pci *vp)
{
	return vp->msix_flags;
}

static bool msix_enabled(const struct virtio_pci *vp)
{
	return msix_control(vp) & MSIX_ENABLE;
}

/* INTx is level-triggered: the line is up while the ISR holds an unread bit,
 * MSI-X is off and the driver has not disabled INTx in the command register.
 * This and the interrupt functions below run under irq_lock. */
static void update_intx(struct virtio_pci *vp)
{
	uint16_t status;
	bool level;

	memcpy(&status, &vp->pci.config[PCI_STATUS], 2);
	level = vp->isr && !msix_enabled(vp) && !(vp->pci_command & PCI_COMMAND_INTX_DISABLE);
	status = htole16(vp->isr ? le16toh(status) | PCI_STATUS_INTERRUPT : le16toh(status) & ~PCI_STATUS_INTERRUPT);
	memcpy(&vp->pci.config[PCI_STATUS], &status, 2);
	if (level == vp->intx_asserted)
		return;
	vp->intx_asserted = level;
	if (vp->hooks && vp->hooks->intx_set)
		vp->hooks->intx_set(vp->hooks->ctx, level);
}

static void deliver_vector(struct virtio_pci *vp, uint16_t vector)
{
	uint64_t one = 1;

	if (vector >= VIRTIO_PCI_MSIX_VECTORS)
		return;  /* VIRTIO_MSI_NO_VECTOR: the driver wants no interrupt */
	if ((msix_control(vp) & MSIX_FUNCTION_MASK) || (vp->msix[vector].control & MSIX_CONTROL_MASKED)) {
		vp->msix_pending |= 1ULL << vector;
		return;
	}
	if (write(vp->msix[vector].fd, &one, sizeof(one)) < 0)
		log_warn("%s: interrupt eventfd: %s", vp->pci.name, strerror(errno));
}

/* Vectors that fired while masked go out once neither they nor the function are. */
static void deliver_pending(struct virtio_pci *vp)
{
	uint64_t pending = vp->msix_pending;

	if (!msix_enabled(vp))
		return;
	vp->msix_pending = 0;
	for (unsigned int vector = 0; vector < VIRTIO_PCI_MSIX_VECTORS; vector++) {
		if (pending & (1ULL << vector))
			deliver_vector(vp, (uint16_t)vector);
	}
}

/* MSI-X vector when the driver enabled MSI-X, else the ISR bit and INTx (irq_lock held). */
static void raise_interrupt(struct virtio_pci *vp, uint16_t vector, uint8_t isr_bit)
{
	if (msix_enabled(vp)) {
		deliver_vector(vp, vector);
		return;
	}
	vp->isr |= isr_bit;
	update_intx(vp);
}

static void used_notify(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_pci *vp = vdev->transport;

	if (!virtq_should_notify(&vdev->vq[q]))
		return;
	pthread_mutex_lock(&vp->irq_lock);
	raise_interrupt(vp, vp->queues[q].msix_vector, VIRTIO_PCI_ISR_QUEUE);
	pthread_mutex_unlock(&vp->irq_lock);
}

static void kick(struct virtio_pci *vp, unsigned int q);

static void requeue(struct virtio_dev *vdev, unsigned int q)
{
	kick(vdev->transport, q);
}

static int offload_queue(struct virtio_dev *vdev, unsigned int q, int *kick_fd, int *call_fd)
{
	struct virtio_pci *vp = vdev->transport;
	struct virtio_pci_queue *pq = &vp->queues[q];

	/* A direct irqfd bypasses the vector mask and the ISR, so only an
	 * unmasked MSI-X vector qualifies; Linux masks virtio vectors only while
	 * it tears them down, after resetting the device. */
	if (q >= vdev->ops->num_queues || !vp->hooks || !vp->hooks->kick_watch || !msix_enabled(vp) ||
	    (msix_control(vp) & MSIX_FUNCTION_MASK) || pq->msix_vector >= VIRTIO_PCI_MSIX_VECTORS ||
	    !vp->msix[pq->msix_vector].routed || (vp->msix[pq->msix_vector].control & MSIX_CONTROL_MASKED))
		return -ENOTSUP;
	if (!pq->offloaded) {
		pq->offloaded = true;
		vp->hooks->kick_watch(vp->hooks->ctx, q, false);
	}
	*kick_fd = pq->kick_fd;
	*call_fd = vp->msix[pq->msix_vector].fd;
	return 0;
}

static void reclaim_queue(struct virtio_dev *vdev, unsigned int q)
{
	struct virtio_pci *vp = vdev->transport;
	struct virtio_pci_queue *pq = &vp->queues[q];

	if (q >= vdev->ops->num_queues || !pq->offloaded)
		return;
	pq->offloaded = false;
	vp->hooks->kick_watch(vp->hooks->ctx, q, true);
	kick(vp, q);
}

static void set_needs_reset(struct virtio_dev *vdev)
{
	struct virtio_pci *vp = vdev->transport;

	pthread_mutex_lock(&vp->irq_lock);
	if (!vp->needs_reset) {
		log_warn("%s: device needs reset", vp->pci.name);
		__atomic_store_n(&vp->needs_reset, true, __ATOMIC_RELAXED);
		vp->isr |= VIRTIO_PCI_ISR_CONFIG;  /* set in MSI-X mode too, per the spec */
		raise_interrupt(vp, vp->config_vector, VIRTIO_PCI_ISR_CONFIG);
	}
	pthread_mutex_unlock(&vp->irq_lock);
}

static void config_changed(struct virtio_dev *vdev)
{
	struct virtio_pci *vp = vdev->transport;

	vp->config_generation++;
	if (!(vp->status & VIRTIO_CONFIG_S_DRIVER_OK))
		return;  /* the driver reads the config when it starts anyway */
	pthread_mutex_lock(&vp->irq_lock);
	vp->isr |= VIRTIO_PCI_ISR_CONFIG;
	raise_interrupt(vp, vp->config_vector, VIRTIO_PCI_ISR_CONFIG);
	pthread_mutex_unlock(&vp->irq_lock);
}

static void reset_device(struct virtio_pci *vp)
{
	struct virtio_dev *vdev = vp->vdev;

	if (vdev->ops->reset)
		vdev->ops->reset(vdev);
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		reclaim_queue(vdev, q);  /* the device's reset stopped whoever served it */
		vp->queues[q].size = vdev->ops->queue_size;
		vp->queues[q].msix_vector = VIRTIO_MSI_NO_VECTOR;
		vp->queues[q].enabled = false;
		vp->queues[q].desc = vp->queues[q].avail = vp->queues[q].used = 0;
		vdev->vq_ready[q] = false;
	}
	vdev->features = 0;
	vp->driver_features = 0;
	vp->device_feature_select = vp->driver_feature_select = 0;
	vp->status = 0;
	vp->queue_select = 0;
	vp->config_vector = VIRTIO_MSI_NO_VECTOR;
	pthread_mutex_lock(&vp->irq_lock);
	__atomic_store_n(&vp->needs_reset, false, __ATOMIC_RELAXED);
	vp->isr = 0;
	update_intx(vp);
	vp->msix_pending = 0;
	pthread_mutex_unlock(&vp->irq_lock);
}

/* Every queue and event in a group the device has (group 0 if it set none). */
static bool groups_valid(const struct virtio_dev *vdev)
{
	unsigned int groups = vdev->nr_groups ? vdev->nr_groups : 1;

	if (groups > VIRTIO_MAX_QUEUE_GROUPS)
		return false;
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		if (vdev->queue_group[q] >= groups)
			return false;
	for (unsigned int i = 0; i < VIRTIO_MAX_EVENT_FDS; i++)
		if (vdev->event_group[i] >= groups)
			return false;
	return true;
}

int virtio_pci_init(struct virtio_pci *vp, struct virtio_dev *vdev, const struct guest_mem *mem,
		    uint64_t bar_addr, uint16_t notify_port, const struct virtio_pci_hooks *hooks)
{
	const struct virtio_device_ops *ops = vdev->ops;
	int err;

	memset(vp, 0, sizeof(*vp));
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		vp->queues[i].kick_fd = -1;
	for (unsigned int i = 0; i < VIRTIO_PCI_MSIX_VECTORS; i++)
		vp->msix[i].fd = -1;
	if (ops->num_queues == 0 || ops->num_queues > VIRTIO_MAX_QUEUES || ops->config_size > VIRTIO_PCI_DEVICE_SIZE ||
	    !groups_valid(vdev) || notify_port % VIRTIO_PCI_NOTIFY_PORT_SIZE)
		return -EINVAL;
	if (vdev->nr_groups == 0)
		vdev->nr_groups = 1;
	pthread_mutex_init(&vp->irq_lock, NULL);
	for (unsigned int g = 1; g < vdev->nr_groups; g++)
		pthread_mutex_init(&vdev->group_lock[g], NULL);
	vp->vdev = vdev;
	vp->mem = mem;
	vp->hooks = hooks;
	vp->bar_addr = bar_addr;
	vp->notify_port = notify_port;
	vdev->transport = vp;
	vdev->used_notify = used_notify;
	vdev->set_needs_reset = set_needs_reset;
	vdev->requeue = requeue;
	vdev->offload_queue = offload_queue;
	vdev->reclaim_queue = reclaim_queue;
	vdev->config_changed = config_changed;
	build_config_space(vp);
	reset_device(vp);

	for (unsigned int i = 0; i < VIRTIO_PCI_MSIX_VECTORS; i++) {
		vp->msix[i].control = MSIX_CONTROL_MASKED;
		vp->msix[i].fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->msix[i].fd < 0)
			goto fail;
	}
	for (unsigned int q = 0; q < ops->num_queues; q++) {
		uint64_t notify = bar_addr + VIRTIO_PCI_NOTIFY_OFFSET + (uint64_t)q * VIRTIO_PCI_NOTIFY_MULTIPLIER;

		vp->queues[q].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->queues[q].kick_fd < 0)
			goto fail;
		if (hooks && hooks->kick_bind && hooks->kick_bind(hooks->ctx, notify, vp->queues[q].kick_fd))
			goto fail;
		if (notify_port && hooks && hooks->kick_bind_port &&
		    hooks->kick_bind_port(hooks->ctx, notify_port, (uint16_t)q, vp->queues[q].kick_fd))
			goto fail;
	}
	return 0;
fail:
	err = errno ? -errno : -EIO;
	virtio_pci_destroy(vp);
	return err;
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	if (vp->vdev) {
		for (unsigned int g = 1; g < vp->vdev->nr_groups; g++)
			pthread_mutex_destroy(&vp->vdev->group_lock[g]);
		pthread_mutex_destroy(&vp->irq_lock);
		vp->vdev = NULL;
	}
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		if (vp->queues[i].kick_fd >= 0)
			close(vp->queues[i].kick_fd);
		vp->queues[i].kick_fd = -1;
	}
	for (unsigned int i = 0; i < VIRTIO_PCI_MSIX_VECTORS; i++) {
		if (vp->msix[i].fd >= 0)
			close(vp->msix[i].fd);
		vp->msix[i].fd = -1;
	}
}

static uint64_t field_read(const void *field, unsigned int field_size, uint64_t offset_in, unsigned int size)
{
	uint64_t value = 0;

	if (offset_in + size <= field_size)
		memcpy(&value, (const uint8_t *)field + offset_in, size);
	return value;
}

static void enable_queue(struct virtio_pci *vp, unsigned int q)
{
	struct virtio_pci_queue *pq = &vp->queues[q];
	struct virtio_dev *vdev = vp->vdev;
	bool event_idx = vdev->features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	bool indirect = vdev->features & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);

	if (pq->enabled)
		return;
	if (pq->size > vdev->ops->queue_size ||
	    virtq_init(&vdev->vq[q], vp->mem, pq->size, pq->desc, pq->avail, pq->used, event_idx, indirect)) {
		log_warn("%s: queue %u: bad size or ring address", vp->pci.name, q);
		set_needs_reset(vdev);
		return;
	}
	pq->enabled = true;
	vdev->vq_ready[q] = true;
	/* Enabled again after a queue reset, on a running device: kicks that came
	 * meanwhile were dropped and the device's edge-triggered events may not
	 * fire again, so the device looks at the queue once. */
	if (vp->status & VIRTIO_CONFIG_S_DRIVER_OK)
		kick(vp, q);
}

/* VIRTIO_F_RING_RESET (VIRTIO 1.2 2.6.1, 4.1.4.3): the driver resets queue q
 * alone while the device runs, then may give it a new size, rings and vector
 * and enable it again. Done before the write returns, so queue_reset never
 * reads 1 ("reset ongoing"): the driver's wait for 0 ends at once. */
static void reset_queue(struct virtio_pci *vp, unsigned int q)
{
	struct virtio_pci_queue *pq = &vp->queues[q];
	struct virtio_dev *vdev = vp->vdev;

	if (!(vdev->features & (1ULL << VIRTIO_F_RING_RESET)) || !(vp->status & VIRTIO_CONFIG_S_DRIVER_OK) ||
	    !vdev->ops->queue_reset)
		return;
	if (pq->offloaded) {
		/* Not offered while anyone else may run rings; kvio cannot stop that server's queue alone. */
		log_warn("%s: queue %u: reset refused, another server runs it", vp->pci.name, q);
		return;
	}
	vdev->ops->queue_reset(vdev, q);
	/* As after a device reset: nothing of the old rings is used or signalled again. */
	vdev->vq_ready[q] = false;
	memset(&vdev->vq[q], 0, sizeof(vdev->vq[q]));
	pq->enabled = false;
	pq->size = vdev->ops->queue_size;
	pq->msix_vector = VIRTIO_MSI_NO_VECTOR;
	pq->desc = pq->avail = pq->used = 0;
}

static void write_status(struct virtio_pci *vp, uint8_t status)
{
	uint64_t offered = offered_features(vp);

	if (status == 0) {
		reset_device(vp);
		vp->config_generation++;
		return;
	}
	if ((status & VIRTIO_CONFIG_S_FEATURES_OK) && !(vp->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
		/* Refuse bits never offered, and legacy (no VERSION_1) drivers. */
		if ((vp->driver_features & ~offered) || !(vp->driver_features & (1ULL << VIRTIO_F_VERSION_1)))
			status &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
		else
			vp->vdev->features = vp->driver_features;
	}
	if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && !(vp->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	    vp->vdev->ops->driver_ok)
		vp->vdev->ops->driver_ok(vp->vdev);
	vp->status = (uint8_t)(status & ~VIRTIO_CONFIG_S_NEEDS_RESET);
}

static uint64_t common_read(struct virtio_pci *vp, uint64_t off)
{
	const struct virtio_device_ops *ops = vp->vdev->ops;
	struct virtio_pci_queue *pq = vp->queue_select < VIRTIO_MAX_QUEUES ? &vp->queues[vp->queue_select] : NULL;
	uint64_t features = offered_features(vp);

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT: return vp->device_feature_select;
	case VIRTIO_PCI_COMMON_DF:
		return vp->device_feature_select < 2 ? (uint32_t)(features >> (32 * vp->device_feature_select)) : 0;
	case VIRTIO_PCI_COMMON_GFSELECT: return vp->driver_feature_select;
	case VIRTIO_PCI_COMMON_GF:
		return vp->driver_feature_select < 2 ? (uint32_t)(vp->driver_features >> (32 * vp->driver_feature_select))
						       : 0;
	case VIRTIO_PCI_COMMON_MSIX: return vp->config_vector;
	case VIRTIO_PCI_COMMON_NUMQ: return ops->num_queues;
	case VIRTIO_PCI_COMMON_STATUS:
		return vp->status | (__atomic_load_n(&vp->needs_reset, __ATOMIC_RELAXED) ? VIRTIO_CONFIG_S_NEEDS_RESET : 0);
	case VIRTIO_PCI_COMMON_CFGGENERATION: return vp->config_generation;
	case VIRTIO_PCI_COMMON_Q_SELECT: return vp->queue_select;
	default: break;
	}
	/* Per-queue registers; a selected queue that does not exist reads as all zero (size 0). */
	if (!pq || vp->queue_select >= ops->num_queues)
		return 0;
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE: return pq->size;
	case VIRTIO_PCI_COMMON_Q_MSIX: return pq->msix_vector;
	case VIRTIO_PCI_COMMON_Q_ENABLE: return pq->enabled;
	case VIRTIO_PCI_COMMON_Q_NOFF: return vp->queue_select;
	case VIRTIO_PCI_COMMON_Q_DESCLO: return (uint32_t)pq->desc;
	case VIRTIO_PCI_COMMON_Q_DESCHI: return (uint32_t)(pq->desc >> 32);
	case VIRTIO_PCI_COMMON_Q_AVAILLO: return (uint32_t)pq->avail;
	case VIRTIO_PCI_COMMON_Q_AVAILHI: return (uint32_t)(pq->avail >> 32);
	case VIRTIO_PCI_COMMON_Q_USEDLO: return (uint32_t)pq->used;
	case VIRTIO_PCI_COMMON_Q_USEDHI: return (uint32_t)(pq->used >> 32);
	case VIRTIO_PCI_COMMON_Q_RESET: return 0;  /* a queue reset is never ongoing: see reset_queue */
	default: return 0;
	}
}

static void set_low(uint64_t *reg, uint64_t value)
{
	*reg = (*reg & ~0xFFFFFFFFULL) | (uint32_t)value;
}

static void set_high(uint64_t *reg, uint64_t value)
{
	*reg = (*reg & 0xFFFFFFFFULL) | (value << 32);
}

static void common_write(struct virtio_pci *vp, uint64_t off, uint64_t value)
{
	const struct virtio_device_ops *ops = vp->vdev->ops;
	struct virtio_pci_queue *pq = vp->queue_select < ops->num_queues ? &vp->queues[vp->queue_select] : NULL;

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT: vp->device_feature_select = (uint32_t)value; return;
	case VIRTIO_PCI_COMMON_GFSELECT: vp->driver_feature_select = (uint32_t)value; return;
	case VIRTIO_PCI_COMMON_GF:
		/* Features are fixed once FEATURES_OK has been accepted. */
		if (vp->driver_feature_select < 2 && !(vp->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
			if (vp->driver_feature_select == 0)
				set_low(&vp->driver_features, value);
			else
				set_high(&vp->driver_features, value);
		}
		return;
	case VIRTIO_PCI_COMMON_MSIX:
		vp->config_vector = (uint16_t)value < VIRTIO_PCI_MSIX_VECTORS ? (uint16_t)value : VIRTIO_MSI_NO_VECTOR;
		return;
	case VIRTIO_PCI_COMMON_STATUS: write_status(vp, (uint8_t)value); return;
	case VIRTIO_PCI_COMMON_Q_SELECT: vp->queue_select = (uint16_t)value; return;
	default: break;
	}
	/* queue_reset is the one queue register that acts on an enabled queue. */
	if (pq && off == VIRTIO_PCI_COMMON_Q_RESET) {
		if (value == 1)
			reset_queue(vp, vp->queue_select);
		return;
	}
	/* Queue registers are read-only once the queue is enabled (4.1.4.3.2). */
	if (!pq || pq->enabled)
		return;
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE: pq->size = (uint16_t)value; break;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		pq->msix_vector = (uint16_t)value < VIRTIO_PCI_MSIX_VECTORS ? (uint16_t)value : VIRTIO_MSI_NO_VECTOR;
		break;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (value == 1)
			enable_queue(vp, vp->queue_select);
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO: set_low(&pq->desc, value); break;
	case VIRTIO_PCI_COMMON_Q_DESCHI: set_high(&pq->desc, value); break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO: set_low(&pq->avail, value); break;
	case VIRTIO_PCI_COMMON_Q_AVAILHI: set_high(&pq->avail, value); break;
	case VIRTIO_PCI_COMMON_Q_USEDLO: set_low(&pq->used, value); break;
	case VIRTIO_PCI_COMMON_Q_USEDHI: set_high(&pq->used, value); break;
	default: break;
	}
}

static void msix_update_route(struct virtio_pci *vp, unsigned int vector)
{
	const struct virtio_pci_hooks *hooks = vp->hooks;
	struct virtio_pci_msix *m = &vp->msix[vector];

	if (!hooks || !hooks->msi_route)
		return;
	m->routed = false;
	if (hooks->msi_route(hooks->ctx, vector, m->addr, m->data, m->fd))
		log_warn("%s: cannot route MSI-X vector %u", vp->pci.name, vector);
	else
		m->routed = m->addr != 0;
}

static uint64_t msix_read(struct virtio_pci *vp, uint64_t off, unsigned int size)
{
	unsigned int vector = (unsigned int)(off / MSIX_ENTRY_SIZE), field = off % MSIX_ENTRY_SIZE;
	uint32_t words[4];

	if (vector >= VIRTIO_PCI_MSIX_VECTORS)
		return 0;
	words[0] = (uint32_t)vp->msix[vector].addr;
	words[1] = (uint32_t)(vp->msix[vector].addr >> 32);
	words[2] = vp->msix[vector].data;
	words[3] = vp->msix[vector].control;
	return field_read(words, sizeof(words), field, size);
}

static void msix_write(struct virtio_pci *vp, uint64_t off, uint64_t value, unsigned int size)
{
	unsigned int vector = (unsigned int)(off / MSIX_ENTRY_SIZE), field = off % MSIX_ENTRY_SIZE;
	struct virtio_pci_msix *m;

	if (vector >= VIRTIO_PCI_MSIX_VECTORS || size != 4)
		return;  /* the spec allows only dword accesses to the table (8-byte too; Linux uses 4) */
	m = &vp->msix[vector];
	switch (field) {
	case 0: set_low(&m->addr, value); break;
	case 4: set_high(&m->addr, value); break;
	case 8: m->data = (uint32_t)value; break;
	default: m->control = (uint32_t)value & MSIX_CONTROL_MASKED; break;
	}
	msix_update_route(vp, vector);
	if (!(m->control & MSIX_CONTROL_MASKED)) {
		pthread_mutex_lock(&vp->irq_lock);
		deliver_pending(vp);  /* unmasking delivers what arrived while masked */
		pthread_mutex_unlock(&vp->irq_lock);
	}
}

static bool decoding(const struct virtio_pci *vp, uint16_t command_bit)
{
	return get_le16(&vp->pci.config[PCI_COMMAND]) & command_bit;
}

/* Whether the guest moved BAR bar from where kvio put it: kvio does not follow. */
static bool bar_moved(const struct virtio_pci *vp, unsigned int bar, uint64_t where)
{
	struct pci_bar_info info;

	return !pci_device_bar(&vp->pci, bar, &info) || info.address != where;
}

/* BAR 0 accesses count only while memory decoding is on and the BAR is where we put it. */
static bool bar_active(struct virtio_pci *vp)
{
	bool on = decoding(vp, PCI_COMMAND_MEMORY);

	if (bar_moved(vp, 0, vp->bar_addr)) {
		if (on && !vp->bar_moved_warned)
			log_warn("%s: guest moved BAR 0; kvio does not relocate BARs", vp->pci.name);
		vp->bar_moved_warned = vp->bar_moved_warned || on;
		return false;
	}
	return on;
}

static uint64_t registers_read(struct virtio_pci *vp, uint64_t off, unsigned int size, bool via_bar)
{
	struct virtio_dev *vdev = vp->vdev;
	uint64_t value = 0;

	pthread_mutex_lock(&vdev->lock);
	if (via_bar && !bar_active(vp)) {
		value = ~0ULL >> (64 - 8 * size);
	} else if (off < VIRTIO_PCI_COMMON_OFFSET + VIRTIO_PCI_COMMON_SIZE) {
		value = common_read(vp, off);
	} else if (off >= VIRTIO_PCI_ISR_OFFSET && off < VIRTIO_PCI_ISR_OFFSET + VIRTIO_PCI_ISR_SIZE) {
		pthread_mutex_lock(&vp->irq_lock);
		value = vp->isr;  /* reading the ISR acknowledges it */
		vp->isr = 0;
		update_intx(vp);
		pthread_mutex_unlock(&vp->irq_lock);
	} else if (off >= VIRTIO_PCI_DEVICE_OFFSET && off < VIRTIO_PCI_DEVICE_OFFSET + VIRTIO_PCI_DEVICE_SIZE) {
		uint32_t cfg_off = (uint32_t)(off - VIRTIO_PCI_DEVICE_OFFSET);

		if (cfg_off + size <= vdev->ops->config_size && vdev->ops->config_read)
			vdev->ops->config_read(vdev, cfg_off, &value, size);
	} else if (off >= VIRTIO_PCI_MSIX_TABLE_OFFSET &&
		   off < VIRTIO_PCI_MSIX_TABLE_OFFSET + VIRTIO_PCI_MSIX_VECTORS * MSIX_ENTRY_SIZE) {
		value = msix_read(vp, off - VIRTIO_PCI_MSIX_TABLE_OFFSET, size);
	} else if (off >= VIRTIO_PCI_MSIX_PBA_OFFSET && off < VIRTIO_PCI_MSIX_PBA_OFFSET + 8) {
		pthread_mutex_lock(&vp->irq_lock);
		value = field_read(&vp->msix_pending, 8, off - VIRTIO_PCI_MSIX_PBA_OFFSET, size);
		pthread_mutex_unlock(&vp->irq_lock);
	}
	pthread_mutex_unlock(&vdev->lock);
	return value;
}

static void kick(struct virtio_pci *vp, unsigned int q)
{
	uint64_t one = 1;

	if (q < vp->vdev->ops->num_queues && write(vp->queues[q].kick_fd, &one, sizeof(one)) < 0)
		log_warn("%s: kick eventfd: %s", vp->pci.name, strerror(errno));
}

static void registers_write(struct virtio_pci *vp, uint64_t off, uint64_t value, unsigned int size, bool via_bar)
{
	struct virtio_dev *vdev = vp->vdev;

	/* Writes set up queues, status and interrupts: no data path may run meanwhile. */
	pthread_mutex_lock(&vdev->lock);
	virtio_lock_groups(vdev);
	if (via_bar && !bar_active(vp)) {
		/* ignored, as a real device ignores cycles it does not decode */
	} else if (off < VIRTIO_PCI_COMMON_OFFSET + VIRTIO_PCI_COMMON_SIZE) {
		common_write(vp, off, value);
	} else if (off >= VIRTIO_PCI_DEVICE_OFFSET && off < VIRTIO_PCI_DEVICE_OFFSET + VIRTIO_PCI_DEVICE_SIZE) {
		uint32_t cfg_off = (uint32_t)(off - VIRTIO_PCI_DEVICE_OFFSET);

		if (cfg_off + size <= vdev->ops->config_size && vdev->ops->config_write)
			vdev->ops->config_write(vdev, cfg_off, &value, size);
	} else if (off >= VIRTIO_PCI_NOTIFY_OFFSET &&
		   off < VIRTIO_PCI_NOTIFY_OFFSET + VIRTIO_MAX_QUEUES * VIRTIO_PCI_NOTIFY_MULTIPLIER) {
		/* Only reached without an ioeventfd (tests, or a host without one). */
		kick(vp, (unsigned int)((off - VIRTIO_PCI_NOTIFY_OFFSET) / VIRTIO_PCI_NOTIFY_MULTIPLIER));
	} else if (off >= VIRTIO_PCI_MSIX_TABLE_OFFSET &&
		   off < VIRTIO_PCI_MSIX_TABLE_OFFSET + VIRTIO_PCI_MSIX_VECTORS * MSIX_ENTRY_SIZE) {
		msix_write(vp, off - VIRTIO_PCI_MSIX_TABLE_OFFSET, value, size);
	}
	virtio_unlock_groups(vdev);
	pthread_mutex_unlock(&vdev->lock);
}

static uint64_t bar_read(void *opaque, uint64_t off, unsigned int size)
{
	return registers_read(opaque, off, size, true);
}

static void bar_write(void *opaque, uint64_t off, uint64_t value, unsigned int size)
{
	registers_write(opaque, off, value, size, true);
}

const struct iobus_ops virtio_pci_bar_ops = { .read = bar_read, .write = bar_write };

static uint64_t notify_port_read(void *opaque, uint64_t off, unsigned int size)
{
	(void)opaque, (void)off;
	return ~0ULL >> (64 - 8 * size);  /* the register is write-only */
}

/* Only reached without an ioeventfd (tests, or a host without one). */
static void notify_port_write(void *opaque, uint64_t off, uint64_t value, unsigned int size)
{
	struct virtio_pci *vp = opaque;
	bool active;

	pthread_mutex_lock(&vp->vdev->lock);
	/* BAR 2 counts only while I/O decoding is on and the BAR is where we put it. */
	active = decoding(vp, PCI_COMMAND_IO) && !bar_moved(vp, VIRTIO_PCI_NOTIFY_PORT_BAR, vp->notify_port);
	pthread_mutex_unlock(&vp->vdev->lock);
	if (active && off == 0 && size == 2)
		kick(vp, (uint16_t)value);
}

const struct iobus_ops virtio_pci_notify_port_ops = { .read = notify_port_read, .write = notify_port_write };

void virtio_pci_handle_kick(struct virtio_pci *vp, unsigned int q)
{
	struct virtio_dev *vdev = vp->vdev;
	pthread_mutex_t *lock = virtio_group_lock(vdev, vdev->queue_group[q]);
	uint64_t count;

	if (read(vp->queues[q].kick_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("%s: kick eventfd: %s", vp->pci.name, strerror(errno));
	pthread_mutex_lock(lock);
	if (vdev->vq_ready[q] && !vp->queues[q].offloaded && (vp->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	    !__atomic_load_n(&vp->needs_reset, __ATOMIC_RELAXED)) {
		/* Over budget: kick ourselves, so other queues get their turn first. */
		if (vdev->ops->queue_kick(vdev, q))
			kick(vp, q);
		if (virtq_is_broken(&vdev->vq[q]))
			set_needs_reset(vdev);
	}
	pthread_mutex_unlock(lock);
}
