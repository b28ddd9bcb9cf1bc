/* The in-kernel interrupt controllers (PIC, IOAPIC, LAPIC), the PIT, and
 * asserting interrupt lines on them. */
#include "core/irq.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util/log.h"

#define IOAPIC_PINS 24
#define PIC_PINS 16
#define MAX_MSI_GSIS 256

/* KVM_SET_GSI_ROUTING replaces the whole table, so we keep all of it: the
 * default irqchip routes KVM starts with, plus one MSI route per vector. */
struct irq_routes {
	pthread_mutex_t lock;
	unsigned int nr_msi;
	/* Level-triggered lines several devices share: KVM_IRQ_LINE keeps one
	 * level per line, so we count the devices asserting each pin. */
	unsigned int shared_asserted[IOAPIC_PINS];
	struct {
		bool set;
		uint64_t addr;
		uint32_t data;
	} msi[MAX_MSI_GSIS];
};

static struct kvm_irq_routing_entry irqchip_route(unsigned int gsi, unsigned int chip, unsigned int pin)
{
	return (struct kvm_irq_routing_entry){
		.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP, .u.irqchip = { .irqchip = chip, .pin = pin },
	};
}

static int push_routes(struct vm *vm)
{
	struct irq_routes *r = vm->irq_routes;
	struct kvm_irq_routing *table;
	unsigned int n = 0;
	int ret;

	table = calloc(1, sizeof(*table) + (2 * PIC_PINS + IOAPIC_PINS + r->nr_msi) * sizeof(table->entries[0]));
	if (!table)
		return -ENOMEM;
	for (unsigned int pin = 0; pin < PIC_PINS; pin++)
		table->entries[n++] = irqchip_route(pin, pin < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
						    pin % 8);
	for (unsigned int pin = 0; pin < IOAPIC_PINS; pin++)
		table->entries[n++] = irqchip_route(pin, KVM_IRQCHIP_IOAPIC, pin);
	for (unsigned int i = 0; i < r->nr_msi; i++) {
		if (!r->msi[i].set)
			continue;
		table->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = IOAPIC_PINS + i, .type = KVM_IRQ_ROUTING_MSI,
			.u.msi = { .address_lo = (uint32_t)r->msi[i].addr, .address_hi = (uint32_t)(r->msi[i].addr >> 32),
				   .data = r->msi[i].data },
		};
	}
	table->nr = n;
	ret = ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, table) < 0 ? -errno : 0;
	free(table);
	return ret;
}

int irq_alloc_msi_gsis(struct vm *vm, unsigned int count)
{
	struct irq_routes *r = vm->irq_routes;
	int first = -1;

	pthread_mutex_lock(&r->lock);
	if (r->nr_msi + count <= MAX_MSI_GSIS) {
		first = (int)(IOAPIC_PINS + r->nr_msi);
		r->nr_msi += count;
	}
	pthread_mutex_unlock(&r->lock);
	return first;
}

int irq_set_msi_route(struct vm *vm, unsigned int gsi, uint64_t addr, uint32_t data)
{
	struct irq_routes *r = vm->irq_routes;
	unsigned int i = gsi - IOAPIC_PINS;
	int ret;

	if (gsi < IOAPIC_PINS || i >= r->nr_msi)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	r->msi[i].set = true;
	r->msi[i].addr = addr;
	r->msi[i].data = data;
	ret = push_routes(vm);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int irq_add_irqfd(struct vm *vm, int fd, unsigned int gsi)
{
	struct kvm_irqfd irqfd = { .fd = (uint32_t)fd, .gsi = gsi };

	return ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

int vm_add_ioeventfd(struct vm *vm, uint64_t addr, unsigned int len, int fd)
{
	struct kvm_ioeventfd ioeventfd = { .addr = addr, .len = len, .fd = fd };

	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &ioeventfd) < 0 ? -errno : 0;
}

int vm_add_port_ioeventfd(struct vm *vm, uint16_t port, unsigned int len, uint64_t value, int fd)
{
	struct kvm_ioeventfd ioeventfd = {
		.datamatch = value, .addr = port, .len = len, .fd = fd,
		.flags = KVM_IOEVENTFD_FLAG_PIO | KVM_IOEVENTFD_FLAG_DATAMATCH,
	};

	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &ioeventfd) < 0 ? -errno : 0;
}

void irq_destroy(struct vm *vm)
{
	if (vm->irq_routes) {
		pthread_mutex_destroy(&vm->irq_routes->lock);
		free(vm->irq_routes);
		vm->irq_routes = NULL;
	}
}

int irq_init(struct vm *vm)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	vm->irq_routes = calloc(1, sizeof(*vm->irq_routes));
	if (!vm->irq_routes)
		return -1;
	pthread_mutex_init(&vm->irq_routes->lock, NULL);

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

void irq_shared_line_set(struct vm *vm, unsigned int gsi, bool asserted)
{
	struct irq_routes *r = vm->irq_routes;
	unsigned int *count;

	if (gsi >= IOAPIC_PINS)
		return;
	count = &r->shared_asserted[gsi];
	pthread_mutex_lock(&r->lock);
	if (asserted && (*count)++ == 0)
		vm_irq_line(vm, gsi, 1);
	else if (!asserted && *count && --(*count) == 0)
		vm_irq_line(vm, gsi, 0);
	pthread_mutex_unlock(&r->lock);
}

void vm_irq_line(struct vm *vm, unsigned int gsi, int level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = (uint32_t)level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_warn("KVM_IRQ_LINE %u: %s", gsi, strerror(errno));
}
