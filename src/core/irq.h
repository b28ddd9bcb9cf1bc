/* In-kernel irqchip and PIT setup. */
#ifndef KVIO_CORE_IRQ_H
#define KVIO_CORE_IRQ_H

#include <linux/kvm.h>

#include "core/vm.h"

/* Create PIC, IOAPIC, LAPICs and the PIT; must run before any vCPU exists. */
int irq_init(struct vm *vm);

#endif
