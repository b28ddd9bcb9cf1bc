/* The emulated PC around the vCPUs, as vm.c builds it and the monitor's
 * glue (core/machine_monitor.c) looks at it. */
#ifndef KVIO_CORE_MACHINE_H
#define KVIO_CORE_MACHINE_H

#include <linux/kvm.h>
#include <stdbool.h>

#include "config.h"
#include "core/e1000_kvm.h"
#include "core/virtio_kvm.h"
#include "core/vm.h"
#include "hw/acpi_pm.h"
#include "hw/i8042.h"
#include "hw/pci.h"
#include "hw/serial8250.h"
#include "monitor/monitor.h"
#include "util/io_thread.h"

#define MAX_VIRTIO_DEVICES 8

/* The emulated PC around the vCPUs. */
struct machine {
	struct serial8250 com1;
	struct i8042 kbc;
	struct acpi_pm pm;
	struct pci_bus pci;
	struct io_pool io;  /* the shared I/O thread first, then per-queue-group ones */
	struct virtio_kvm_device *virtio[MAX_VIRTIO_DEVICES];
	unsigned int nr_virtio;
	struct e1000_kvm *e1000[CONFIG_MAX_NICS];
	unsigned int nr_e1000;
	uint64_t next_bar;
	uint16_t next_io_port;
	struct virtio_dev *hvc;     /* the virtio-console the terminal feeds, if any */
	struct virtio_dev *balloon; /* the virtio-balloon, if any: the monitor's handle */
	/* For the monitor. */
	struct vm *vm;
	const struct vm_config *cfg;
	struct monitor *mon;
	uint64_t disk_bytes[CONFIG_MAX_DISKS];  /* each disk's size, read at setup */
	bool paused;                            /* by the monitor's stop */
	struct kvm_clock_data paused_clock;     /* kvm-clock when paused, given back at cont */
};

/* NIC index's MAC: mac= or QEMU's default, 52:54:00:12:34:(56 + index). */
void machine_nic_mac(const struct net_config *nic, unsigned int index, uint8_t mac[6]);

/* What the monitor does to the machine (core/machine_monitor.c). */
extern const struct monitor_machine_ops machine_monitor_ops;
/* The balloon's "actual" changed: a BALLOON_CHANGE event. */
void machine_balloon_changed(void *ctx, uint64_t balloon_bytes);

#endif


