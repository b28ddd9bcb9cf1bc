/* One thread per vCPU running KVM_RUN and dispatching its exits. */
#ifndef KVIO_CORE_VCPU_H
#define KVIO_CORE_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
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
	_Atomic int tid;  /* the thread's TID, for the monitor; 0 before it runs */
};


/* Create vCPU index and give it CPUID, MSRs, FPU and LAPIC state; the boot
 * vCPU (index 0) also gets the registers for boot. Others wait for SIPI in KVM. */
int vcpu_init(struct vcpu *vcpu, struct vm *vm, unsigned int index, const struct boot_x86_result *boot);
int vcpu_start(struct vcpu *vcpu);
/* Make the vCPU leave KVM_RUN and its thread return; then join it. */
void vcpu_stop(struct vcpu *vcpu);
void vcpu_destroy(struct vcpu *vcpu);

/* Stop every started vCPU between two exits, each parked outside KVM_RUN,
 * and return once all are; resume lets them run again. A VM stop request
 * releases parked vCPUs too. From one thread at a time (the monitor's). */
void vcpus_pause(struct vm *vm);
void vcpus_resume(struct vm *vm);

/* The signal used to kick vCPU threads out of KVM_RUN; blocked everywhere else. */
#define VCPU_KICK_SIGNAL SIGUSR1
void vcpu_install_kick_handler(void);

#endif
