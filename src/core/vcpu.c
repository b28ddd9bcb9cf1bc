/* vCPU threads: KVM_RUN, and dispatch of port-I/O and MMIO exits to the buses.
 * Device data paths do not come through here; only configuration accesses do. */
#include "core/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/cpuid.h"
#include "util/log.h"

#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_MODE_EXTINT 0x7
#define APIC_MODE_NMI 0x4
#define FPU_DEFAULT_FCW 0x37F
#define FPU_DEFAULT_MXCSR 0x1F80

static void kick_handler(int sig)
{
	(void)sig;  /* Its only job is to make KVM_RUN return EINTR. */
}

void vcpu_install_kick_handler(void)
{
	struct sigaction sa = { .sa_handler = kick_handler };

	sigemptyset(&sa.sa_mask);
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
}

static void set_lapic_lvt(struct kvm_lapic_state *lapic, unsigned int reg, uint32_t mode)
{
	uint32_t value;

	memcpy(&value, &lapic->regs[reg], sizeof(value));
	value = (value & ~0x700U) | (mode << 8);
	memcpy(&lapic->regs[reg], &value, sizeof(value));
}

/* LINT0 takes the legacy PIC's interrupts, LINT1 NMIs, as a PC's firmware sets them. */
static int setup_lapic(int fd)
{
	struct kvm_lapic_state lapic;

	if (ioctl(fd, KVM_GET_LAPIC, &lapic) < 0)
		return -1;
	set_lapic_lvt(&lapic, APIC_LVT_LINT0, APIC_MODE_EXTINT);
	set_lapic_lvt(&lapic, APIC_LVT_LINT1, APIC_MODE_NMI);
	return ioctl(fd, KVM_SET_LAPIC, &lapic);
}

static int setup_boot_regs(int fd, const struct boot_x86_result *boot)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	if (ioctl(fd, KVM_GET_SREGS, &sregs) < 0)
		return -1;
	boot_x86_init_regs(boot, &regs, &sregs);
	if (ioctl(fd, KVM_SET_SREGS, &sregs) < 0)
		return -1;
	return ioctl(fd, KVM_SET_REGS, &regs);
}

int vcpu_init(struct vcpu *vcpu, struct vm *vm, unsigned int index, const struct boot_x86_result *boot)
{
	struct kvm_fpu fpu = { .fcw = FPU_DEFAULT_FCW, .mxcsr = FPU_DEFAULT_MXCSR };
	bool tsc_deadline = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;

	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->vm = vm;
	vcpu->index = index;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (vcpu->fd < 0) {
		log_error("KVM_CREATE_VCPU %u: %s", index, strerror(errno));
		return -1;
	}
	vcpu->run = mmap(NULL, (size_t)vm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		log_error("mmap of vCPU %u run area: %s", index, strerror(errno));
		return -1;
	}
	/* One ring per VM, mapped in every vCPU's run area: vCPU 0's will do. */
	if (index == 0 && vm->coalesced_offset)
		vm->coalesced_ring = (struct kvm_coalesced_mmio_ring *)((char *)vcpu->run + vm->coalesced_offset);
	if (cpuid_setup_vcpu(vcpu->fd, vm->supported_cpuid, index, vm->nr_vcpus, tsc_deadline))
		return -1;
	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0 || setup_lapic(vcpu->fd) < 0) {
		log_error("vCPU %u FPU/LAPIC setup: %s", index, strerror(errno));
		return -1;
	}
	if (index == 0 && setup_boot_regs(vcpu->fd, boot) < 0) {
		log_error("vCPU 0 boot registers: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	unsigned int size = run->io.size;

	/* count > 1 for rep ins/outs: KVM hands over the whole string at once. */
	for (uint32_t i = 0; i < run->io.count; i++, data += size) {
		uint64_t value = 0;

		if (run->io.direction == KVM_EXIT_IO_OUT) {
			memcpy(&value, data, size);
			if (!iobus_write(&vcpu->vm->pio, run->io.port, value, size))
				log_debug("unclaimed port write 0x%x <- 0x%llx", run->io.port,
					  (unsigned long long)value);
		} else {
			if (!iobus_read(&vcpu->vm->pio, run->io.port, size, &value))
				log_debug("unclaimed port read 0x%x", run->io.port);
			memcpy(data, &value, size);
		}
	}
}

static void handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint64_t value = 0;
	unsigned int len = run->mmio.len <= sizeof(value) ? run->mmio.len : sizeof(value);

	if (run->mmio.is_write) {
		memcpy(&value, run->mmio.data, len);
		if (!iobus_write(&vcpu->vm->mmio, run->mmio.phys_addr, value, len))
			log_debug("unclaimed MMIO write 0x%llx", (unsigned long long)run->mmio.phys_addr);
	} else {
		if (!iobus_read(&vcpu->vm->mmio, run->mmio.phys_addr, len, &value))
			log_debug("unclaimed MMIO read 0x%llx", (unsigned long long)run->mmio.phys_addr);
		memcpy(run->mmio.data, &value, len);
	}
}

/* Returns false when the vCPU should stop running. */
/* Where the guest was when it died: enough to find the code in System.map
 * and to tell a broken stack or IDT from a broken page table. */
static void log_cpu_state(struct vcpu *vcpu)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return;
	log_warn("vCPU %u: rip %#llx rsp %#llx rflags %#llx cs %#x cr0 %#llx cr2 %#llx cr3 %#llx cr4 %#llx "
		 "efer %#llx idt %#llx/%#x gdt %#llx/%#x", vcpu->index, (unsigned long long)regs.rip,
		 (unsigned long long)regs.rsp, (unsigned long long)regs.rflags, sregs.cs.selector,
		 (unsigned long long)sregs.cr0, (unsigned long long)sregs.cr2, (unsigned long long)sregs.cr3,
		 (unsigned long long)sregs.cr4, (unsigned long long)sregs.efer, (unsigned long long)sregs.idt.base,
		 sregs.idt.limit, (unsigned long long)sregs.gdt.base, sregs.gdt.limit);
}

static bool handle_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(vcpu);
		return true;
	case KVM_EXIT_MMIO:
		handle_mmio(vcpu);
		return true;
	case KVM_EXIT_SHUTDOWN:
		/* A triple fault: how a PC resets when nothing else works. Linux
		 * guests reboot through the i8042 here, so this one is worth a line. */
		log_warn("vCPU %u: triple fault, the guest reset itself", vcpu->index);
		log_cpu_state(vcpu);
		vm_request_stop(vcpu->vm, VM_STOP_REBOOT);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		vm_request_stop(vcpu->vm, run->system_event.type == KVM_SYSTEM_EVENT_RESET ? VM_STOP_REBOOT
											     : VM_STOP_POWEROFF);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		log_error("vCPU %u: entry failed, hardware reason 0x%llx", vcpu->index,
			  (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		log_error("vCPU %u: KVM internal error, suberror %u", vcpu->index, run->internal.suberror);
		break;
	default:
		log_error("vCPU %u: unhandled exit reason %u", vcpu->index, run->exit_reason);
		break;
	}
	vm_request_stop(vcpu->vm, VM_STOP_ERROR);
	return false;
}

/* Wait at the gate while the VM is paused and not stopping. */
static void park_if_paused(struct vcpu *vcpu)
{
	struct vcpu_gate *gate = &vcpu->vm->vcpu_gate;

	if (!atomic_load(&gate->paused))
		return;
	pthread_mutex_lock(&gate->lock);
	gate->parked++;
	pthread_cond_broadcast(&gate->cond);
	while (atomic_load(&gate->paused) && atomic_load(&vcpu->vm->stop_reason) == VM_RUNNING)
		pthread_cond_wait(&gate->cond, &gate->lock);
	gate->parked--;
	pthread_mutex_unlock(&gate->lock);
}

void vcpus_pause(struct vm *vm)
{
	struct vcpu_gate *gate = &vm->vcpu_gate;
	unsigned int started = 0;

	atomic_store(&gate->paused, true);
	/* paused is set before immediate_exit: a thread that clears
	 * immediate_exit after an EINTR then sees paused at the loop's top. */
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		if (!vm->vcpus[i].thread_started)
			continue;
		started++;
		vm->vcpus[i].run->immediate_exit = 1;
		pthread_kill(vm->vcpus[i].thread, VCPU_KICK_SIGNAL);
	}
	pthread_mutex_lock(&gate->lock);
	while (gate->parked < started && atomic_load(&vm->stop_reason) == VM_RUNNING)
		pthread_cond_wait(&gate->cond, &gate->lock);
	pthread_mutex_unlock(&gate->lock);
}

void vcpus_resume(struct vm *vm)
{
	struct vcpu_gate *gate = &vm->vcpu_gate;

	pthread_mutex_lock(&gate->lock);
	atomic_store(&gate->paused, false);
	pthread_cond_broadcast(&gate->cond);
	pthread_mutex_unlock(&gate->lock);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	sigset_t kick;
	char name[16];
	int ret;

	snprintf(name, sizeof(name), "kvio-vcpu%u", vcpu->index);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&kick);
	sigaddset(&kick, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	atomic_store(&vcpu->tid, (int)gettid());

	while (atomic_load(&vcpu->vm->stop_reason) == VM_RUNNING) {
		park_if_paused(vcpu);
		if (atomic_load(&vcpu->vm->stop_reason) != VM_RUNNING)
			break;
		ret = ioctl(vcpu->fd, KVM_RUN, 0) < 0 ? errno : 0;
		/* Before any exit is handled, the writes KVM queued meanwhile reach
		 * their devices: an access never overtakes an earlier one. */
		vm_replay_coalesced_mmio(vcpu->vm);
		if (ret) {
			if (ret == EINTR || ret == EAGAIN) {
				vcpu->run->immediate_exit = 0;
				continue;
			}
			log_error("vCPU %u: KVM_RUN: %s", vcpu->index, strerror(ret));
			vm_request_stop(vcpu->vm, VM_STOP_ERROR);
			break;
		}
		if (!handle_exit(vcpu))
			break;
	}
	return NULL;
}

int vcpu_start(struct vcpu *vcpu)
{
	int err = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);

	if (err) {
		log_error("cannot start vCPU %u thread: %s", vcpu->index, strerror(err));
		return -1;
	}
	vcpu->thread_started = true;
	return 0;
}

void vcpu_stop(struct vcpu *vcpu)
{
	if (!vcpu->thread_started)
		return;
	/* immediate_exit covers the window where the signal lands just before
	 * the thread enters KVM_RUN: KVM then returns EINTR at once. */
	vcpu->run->immediate_exit = 1;
	pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
	pthread_join(vcpu->thread, NULL);
	vcpu->thread_started = false;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, (size_t)vcpu->vm->vcpu_mmap_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}
