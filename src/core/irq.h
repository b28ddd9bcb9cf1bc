/* In-kernel irqchip and PIT setup. */
#ifndef KVIO_CORE_IRQ_H
#define KVIO_CORE_IRQ_H

#include <linux/kvm.h>
#include <stdbool.h>

#include "core/vm.h"

/* Create PIC, IOAPIC, LAPICs and the PIT; must run before any vCPU exists. */
int irq_init(struct vm *vm);
void irq_destroy(struct vm *vm);

/* GSIs for MSIs start after the IOAPIC's 24 pins. Returns the first of count, or -1. */
int irq_alloc_msi_gsis(struct vm *vm, unsigned int count);
/* Point gsi at the MSI (addr, data); safe from any thread. */
int irq_set_msi_route(struct vm *vm, unsigned int gsi, uint64_t addr, uint32_t data);
/* One device's level on a shared, level-triggered IOAPIC pin (PCI INTx).
 * Each caller must alternate assert and deassert; the line is high while any
 * device asserts it. */
void irq_shared_line_set(struct vm *vm, unsigned int gsi, bool asserted);
/* Writes to fd inject gsi without leaving the kernel (KVM_IRQFD). */
int irq_add_irqfd(struct vm *vm, int fd, unsigned int gsi);
/* Guest writes of len bytes at MMIO addr signal fd instead of exiting
 * (KVM_IOEVENTFD); len 0 matches writes of any length. */
int vm_add_ioeventfd(struct vm *vm, uint64_t addr, unsigned int len, int fd);
/* The same for len-byte writes of value to I/O port port. */
int vm_add_port_ioeventfd(struct vm *vm, uint16_t port, unsigned int len, uint64_t value, int fd);

#endif
