/* CPUID and MSR state for each vCPU: what KVM supports, with per-vCPU APIC IDs
 * and a topology that matches --cpus (one socket, one thread per core). */
#ifndef KVIO_CORE_CPUID_H
#define KVIO_CORE_CPUID_H

#include <linux/kvm.h>
#include <stdbool.h>

/* The 64-bit syscall entry point (Intel SDM; asm/msr-index.h is not exported
 * to userspace): zeroed for boot, set by the guest kernel, read back by the
 * monitor's info registers. */
#define MSR_LSTAR 0xC0000082

/* KVM_GET_SUPPORTED_CPUID, grown until it fits. NULL on failure (logged). */
struct kvm_cpuid2 *cpuid_get_supported(int kvm_fd);

/* Rewrite the topology leaves of cpuid for vCPU index of count. */
void cpuid_patch(struct kvm_cpuid2 *cpuid, unsigned int index, unsigned int count, bool tsc_deadline);

/* Apply CPUID (patched copy of supported) and the boot MSRs to a vCPU. */
int cpuid_setup_vcpu(int vcpu_fd, const struct kvm_cpuid2 *supported, unsigned int index, unsigned int count,
		     bool tsc_deadline);

#endif
