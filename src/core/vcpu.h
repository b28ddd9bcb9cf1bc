/* One thread per vCPU running KVM_RUN and dispatching its exits. */
#ifndef KVIO_CORE_VCPU_H
#define KVIO_CORE_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>

#include "core/boot_x86.h"
#include "core/vm.h"

struct vcpu {
	struct vm *vm;
	unsigned int index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
};

/* Create vCPU index and give it CPUID, MSRs, FPU and LAPIC state; the boot
 * vCPU (index 0) also gets the registers for boot. Others wait for SIPI in KVM. */
int vcpu_init(struct vcpu *vcpu, struct vm *vm, unsigned int index, const struct boot_x86_result *boot);
int vcpu_start(struct vcpu *vcpu);
/* Make the vCPU leave KVM_RUN and its thread return; then join it. */
void vcpu_stop(struct vcpu *vcpu);
void vcpu_destroy(struct vcpu *vcpu);

/* The signal used to kick vCPU threads out of KVM_RUN; blocked everywhere else. */
#define VCPU_KICK_SIGNAL SIGUSR1
void vcpu_install_kick_handler(void);

#endif
