/* PCI bus 0 behind a host bridge, reached with configuration mechanism #1
 * (ports 0xCF8/0xCFC). Devices bring a config space; the bus handles the
 * generic parts: read-only fields, BAR sizing, the command register. */
#ifndef KVIO_HW_PCI_H
#define KVIO_HW_PCI_H

#include <linux/pci_regs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/iobus.h"

#define PCI_CONFIG_ADDRESS_PORT 0xCF8
#define PCI_CONFIG_DATA_PORT 0xCFC
#define PCI_SLOTS 32
#define PCI_BARS 6
#define PCI_CLASS_BRIDGE_HOST 0x0600  /* class codes live in pci_ids.h, which is not UAPI */

/* The ID QEMU's generic PCIe host bridge uses: Red Hat's range for virtual hardware. */
#define PCI_VENDOR_ID_REDHAT 0x1B36
#define PCI_DEVICE_ID_REDHAT_HOST_BRIDGE 0x0008

/* INTx wiring: pin P (1 = INTA) of slot S goes to IOAPIC pin
 * PCI_INTX_GSI_BASE + (S + P - 1) % PCI_INTX_GSIS, the usual swizzle that
 * spreads slots over the lines. The DSDT's _PRT says the same to the guest. */
#define PCI_INTX_GSI_BASE 16
#define PCI_INTX_GSIS 8

static inline unsigned int pci_intx_gsi(unsigned int slot, unsigned int pin)
{
	return PCI_INTX_GSI_BASE + (slot + pin - 1) % PCI_INTX_GSIS;
}

enum pci_bar_type { PCI_BAR_IO, PCI_BAR_MEM32, PCI_BAR_MEM64 };

struct pci_device;

/* Optional: for devices whose config space has side effects (a window onto a
 * BAR, say). Called around the generic access, with the bus lock held. */
struct pci_config_hooks {
	void (*before_read)(struct pci_device *dev, unsigned int offset, unsigned int size);
	void (*after_write)(struct pci_device *dev, unsigned int offset, unsigned int size);
};

struct pci_device {
	uint8_t config[PCI_CFG_SPACE_SIZE];
	uint8_t wmask[PCI_CFG_SPACE_SIZE];  /* bits the guest may change */
	const char *name;
	const struct pci_config_hooks *hooks;
	void *owner;
};

struct pci_bus {
	pthread_mutex_t lock;
	uint32_t config_address;
	struct pci_device *slots[PCI_SLOTS];
	struct pci_device host_bridge;
};

extern const struct iobus_ops pci_config_address_ops;  /* 4 ports at 0xCF8 */
extern const struct iobus_ops pci_config_data_ops;     /* 4 ports at 0xCFC */

/* Bus 0 with the host bridge in slot 0. */
void pci_bus_init(struct pci_bus *bus);
void pci_bus_destroy(struct pci_bus *bus);

/* Put dev in the first free slot; returns the slot or -ENOSPC. A device with
 * an interrupt pin gets its interrupt line filled in, as firmware would. */
int pci_bus_add(struct pci_bus *bus, struct pci_device *dev);

void pci_device_init(struct pci_device *dev, const char *name, uint16_t vendor, uint16_t device,
		     uint32_t class_code);
/* Declare BAR bar of size bytes (a power of two, at least 4 for I/O and 16
 * for memory); MEM64 takes two BAR slots. */
int pci_device_add_bar(struct pci_device *dev, unsigned int bar, uint64_t size, enum pci_bar_type type);

/* Where a BAR of size bytes goes at or after next: BARs are naturally
 * aligned, and Linux reassigns (and kvio loses) any that are not. */
static inline uint64_t pci_bar_align(uint64_t next, uint64_t size)
{
	return (next + size - 1) & ~(size - 1);
}

struct pci_bar_info {
	uint64_t address, size;
	bool io, mem64;
};
/* BAR bar as the guest programmed it; false if the device has none there
 * (or bar is the upper half of a 64-bit BAR). Call with the bus lock held. */
bool pci_device_bar(const struct pci_device *dev, unsigned int bar, struct pci_bar_info *info);

/* Config-space access to one device, through its write mask. */
uint32_t pci_device_config_read(struct pci_device *dev, unsigned int offset, unsigned int size);
void pci_device_config_write(struct pci_device *dev, unsigned int offset, uint32_t value, unsigned int size);

/* Config-space access for one function on bus 0 (what the data port does). */
uint32_t pci_bus_config_read(struct pci_bus *bus, unsigned int slot, unsigned int offset, unsigned int size);
void pci_bus_config_write(struct pci_bus *bus, unsigned int slot, unsigned int offset, uint32_t value,
			  unsigned int size);

#endif
