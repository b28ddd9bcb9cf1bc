/* PCI configuration mechanism #1 and a generic type-0 config space. The
 * guest's writes go through a per-byte write mask, which gives BAR sizing
 * (writing all ones reads back the size mask) and read-only IDs for free. */
#include "hw/pci.h"

#include <errno.h>
#include <string.h>

#include "util/bytes.h"

#define CONFIG_ADDRESS_ENABLE 0x80000000U

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

void pci_device_init(struct pci_device *dev, const char *name, uint16_t vendor, uint16_t device,
		     uint32_t class_code)
{
	memset(dev, 0, sizeof(*dev));
	dev->name = name;
	put16(&dev->config[PCI_VENDOR_ID], vendor);
	put16(&dev->config[PCI_DEVICE_ID], device);
	dev->config[PCI_CLASS_PROG] = (uint8_t)class_code;
	put16(&dev->config[PCI_CLASS_DEVICE], (uint16_t)(class_code >> 8));
	dev->config[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
	put16(&dev->wmask[PCI_COMMAND], PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
						PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
	dev->wmask[PCI_CACHE_LINE_SIZE] = 0xFF;
	dev->wmask[PCI_LATENCY_TIMER] = 0xFF;
	dev->wmask[PCI_INTERRUPT_LINE] = 0xFF;
}

int pci_device_add_bar(struct pci_device *dev, unsigned int bar, uint64_t size, enum pci_bar_type type)
{
	unsigned int offset = PCI_BASE_ADDRESS_0 + bar * 4;
	uint64_t mask = ~(size - 1);
	uint32_t flags, low_bits = type == PCI_BAR_IO ? 0x3U : 0xFU;  /* the BAR's type bits, not address */

	/* I/O BARs may be as small as 4 bytes, memory BARs 16 (PCI 3.0 6.2.5.1). */
	if (bar >= PCI_BARS || (type == PCI_BAR_MEM64 && bar + 1 >= PCI_BARS) || size < low_bits + 1 ||
	    (size & (size - 1)))
		return -EINVAL;
	switch (type) {
	case PCI_BAR_IO:
		flags = PCI_BASE_ADDRESS_SPACE_IO;
		break;
	case PCI_BAR_MEM32:
		flags = PCI_BASE_ADDRESS_MEM_TYPE_32;
		break;
	default:
		flags = PCI_BASE_ADDRESS_MEM_TYPE_64;
		put32(&dev->wmask[offset + 4], (uint32_t)(mask >> 32));
		break;
	}
	put32(&dev->config[offset], flags);
	put32(&dev->wmask[offset], (uint32_t)mask & ~low_bits);
	return 0;
}

bool pci_device_bar(const struct pci_device *dev, unsigned int bar, struct pci_bar_info *info)
{
	unsigned int offset = PCI_BASE_ADDRESS_0 + bar * 4;
	uint32_t value, mask;
	uint64_t high_mask = 0xFFFFFFFFULL << 32, high = 0;

	if (bar >= PCI_BARS)
		return false;
	value = get_le32(&dev->config[offset]);
	mask = get_le32(&dev->wmask[offset]);
	if (!mask)
		return false;  /* no BAR, or the upper half of a 64-bit one */
	info->io = value & PCI_BASE_ADDRESS_SPACE_IO;
	info->mem64 = !info->io && (value & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;
	if (info->mem64 && bar + 1 < PCI_BARS) {
		high_mask = (uint64_t)get_le32(&dev->wmask[offset + 4]) << 32;
		high = (uint64_t)get_le32(&dev->config[offset + 4]) << 32;
	}
	/* The bits the guest cannot set, less the type bits, are the size's. */
	info->size = (~(high_mask | mask) | (info->io ? 0x3ULL : 0xFULL)) + 1;
	info->address = high | (value & (info->io ? ~0x3U : ~0xFU));
	return true;
}

void pci_bus_init(struct pci_bus *bus)
{
	memset(bus, 0, sizeof(*bus));
	pthread_mutex_init(&bus->lock, NULL);
	pci_device_init(&bus->host_bridge, "host-bridge", PCI_VENDOR_ID_REDHAT, PCI_DEVICE_ID_REDHAT_HOST_BRIDGE,
			PCI_CLASS_BRIDGE_HOST << 8);
	bus->slots[0] = &bus->host_bridge;
}

void pci_bus_destroy(struct pci_bus *bus)
{
	pthread_mutex_destroy(&bus->lock);
}

int pci_bus_add(struct pci_bus *bus, struct pci_device *dev)
{
	for (int slot = 0; slot < PCI_SLOTS; slot++) {
		if (!bus->slots[slot]) {
			bus->slots[slot] = dev;
			if (dev->config[PCI_INTERRUPT_PIN])
				dev->config[PCI_INTERRUPT_LINE] =
					(uint8_t)pci_intx_gsi((unsigned int)slot, dev->config[PCI_INTERRUPT_PIN]);
			return slot;
		}
	}
	return -ENOSPC;
}

uint32_t pci_device_config_read(struct pci_device *dev, unsigned int offset, unsigned int size)
{
	uint32_t value = 0;

	if (offset + size > PCI_CFG_SPACE_SIZE)
		return size == 4 ? 0xFFFFFFFFU : (1U << (size * 8)) - 1;
	if (dev->hooks && dev->hooks->before_read)
		dev->hooks->before_read(dev, offset, size);
	for (unsigned int i = 0; i < size; i++)
		value |= (uint32_t)dev->config[offset + i] << (8 * i);
	return value;
}

void pci_device_config_write(struct pci_device *dev, unsigned int offset, uint32_t value, unsigned int size)
{
	if (offset + size > PCI_CFG_SPACE_SIZE)
		return;
	for (unsigned int i = 0; i < size; i++) {
		uint8_t mask = dev->wmask[offset + i], byte = (uint8_t)(value >> (8 * i));

		dev->config[offset + i] = (uint8_t)((dev->config[offset + i] & ~mask) | (byte & mask));
	}
	if (dev->hooks && dev->hooks->after_write)
		dev->hooks->after_write(dev, offset, size);
}

uint32_t pci_bus_config_read(struct pci_bus *bus, unsigned int slot, unsigned int offset, unsigned int size)
{
	struct pci_device *dev = slot < PCI_SLOTS ? bus->slots[slot] : NULL;

	if (!dev)
		return size == 4 ? 0xFFFFFFFFU : (1U << (size * 8)) - 1;
	return pci_device_config_read(dev, offset, size);
}

void pci_bus_config_write(struct pci_bus *bus, unsigned int slot, unsigned int offset, uint32_t value,
			  unsigned int size)
{
	struct pci_device *dev = slot < PCI_SLOTS ? bus->slots[slot] : NULL;

	if (dev)
		pci_device_config_write(dev, offset, value, size);
}

static uint64_t address_read(void *opaque, uint64_t offset, unsigned int size)
{
	struct pci_bus *bus = opaque;
	uint32_t value;

	/* Only whole-dword accesses reach the address register, as on real chipsets. */
	if (offset != 0 || size != 4)
		return (1ULL << (size * 8)) - 1;
	pthread_mutex_lock(&bus->lock);
	value = bus->config_address;
	pthread_mutex_unlock(&bus->lock);
	return value;
}

static void address_write(void *opaque, uint64_t offset, uint64_t value, unsigned int size)
{
	struct pci_bus *bus = opaque;

	if (offset != 0 || size != 4)
		return;
	pthread_mutex_lock(&bus->lock);
	bus->config_address = (uint32_t)value & 0x80FFFFFCU;
	pthread_mutex_unlock(&bus->lock);
}

/* Decode the latched address; returns false unless it names function 0 of a slot on bus 0. */
static bool decode(uint32_t address, uint64_t port_offset, unsigned int *slot, unsigned int *offset)
{
	unsigned int bus = (address >> 16) & 0xFF, function = (address >> 8) & 0x7;

	if (!(address & CONFIG_ADDRESS_ENABLE) || bus != 0 || function != 0)
		return false;
	*slot = (address >> 11) & 0x1F;
	*offset = (address & 0xFC) + (unsigned int)port_offset;
	return true;
}

static uint64_t data_read(void *opaque, uint64_t port_offset, unsigned int size)
{
	struct pci_bus *bus = opaque;
	unsigned int slot, offset;
	uint64_t value = (1ULL << (size * 8)) - 1;

	pthread_mutex_lock(&bus->lock);
	if (decode(bus->config_address, port_offset, &slot, &offset))
		value = pci_bus_config_read(bus, slot, offset, size);
	pthread_mutex_unlock(&bus->lock);
	return value;
}

static void data_write(void *opaque, uint64_t port_offset, uint64_t value, unsigned int size)
{
	struct pci_bus *bus = opaque;
	unsigned int slot, offset;

	pthread_mutex_lock(&bus->lock);
	if (decode(bus->config_address, port_offset, &slot, &offset))
		pci_bus_config_write(bus, slot, offset, (uint32_t)value, size);
	pthread_mutex_unlock(&bus->lock);
}

const struct iobus_ops pci_config_address_ops = { .read = address_read, .write = address_write };
const struct iobus_ops pci_config_data_ops = { .read = data_read, .write = data_write };
