/* An emulated e1000 NIC plugged into the VM: a PCI slot, its BARs on the MMIO
 * and port buses, INTx through the IOAPIC, its backend, its interrupt
 * throttling timer and all of receive on the I/O thread. */
#ifndef KVIO_CORE_E1000_KVM_H
#define KVIO_CORE_E1000_KVM_H

#include <stdint.h>

#include "backend/net.h"
#include "core/vm.h"
#include "hw/e1000.h"
#include "hw/pci.h"
#include "util/io_thread.h"

struct e1000_kvm {
	struct vm *vm;
	struct e1000 *nic;
	unsigned int intx_gsi;
	struct event_handler rx;
	struct event_handler timer;  /* a timerfd on CLOCK_MONOTONIC: the interrupt throttle's */
	struct event_handler receive_kick;  /* an eventfd: receive resumes on the I/O thread */
};

/* Add an e1000 on backend be (owned from here on, destroyed on failure too)
 * with address mac. Its BAR 0 goes at *next_bar rounded up to 128 KiB, which
 * is advanced past it; with next_io_port (may be NULL: no I/O BAR) its BAR 1
 * goes at *next_io_port rounded up to 64, advanced likewise. NULL on failure, logged. */
struct e1000_kvm *e1000_kvm_add(struct vm *vm, struct pci_bus *bus, struct io_thread *io, uint64_t *next_bar,
				uint16_t *next_io_port, struct net_backend *be, const uint8_t mac[6]);
/* Call once the I/O thread has stopped (its handler points into the device). */
void e1000_kvm_remove(struct e1000_kvm *dev);

#endif
