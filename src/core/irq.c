/* The in-kernel interrupt controllers (PIC, IOAPIC, LAPIC), the PIT, and
 * asserting interrupt lines on them. */
#include "core/irq.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util/log.h"

int irq_init(struct vm *vm)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP) < 0) {
		log_error("KVM_CREATE_IRQCHIP: %s", strerror(errno));
		return -1;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		log_error("KVM_CREATE_PIT2: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void vm_irq_line(struct vm *vm, unsigned int gsi, int level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = (uint32_t)level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_warn("KVM_IRQ_LINE %u: %s", gsi, strerror(errno));
}
