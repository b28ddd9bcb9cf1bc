/* Per-vCPU CPUID and MSRs. The guest sees KVM's supported features, plus the
 * hypervisor and TSC-deadline bits, with APIC IDs and core counts rewritten so
 * that Linux's topology code and `nproc` agree with --cpus. */
#include "core/cpuid.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util/log.h"

#define CPUID1_ECX_TSC_DEADLINE (1U << 24)
#define CPUID1_ECX_HYPERVISOR (1U << 31)
#define CPUID1_EDX_HTT (1U << 28)
#define CPUID_TOPO_LEVEL_SMT 1
#define CPUID_TOPO_LEVEL_CORE 2

/* MSR numbers from the Intel SDM (asm/msr-index.h is not exported to userspace). */
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE 0x1A0
#define MSR_MTRR_DEF_TYPE 0x2FF
#define MSR_STAR 0xC0000081
#define MSR_CSTAR 0xC0000083
#define MSR_SYSCALL_MASK 0xC0000084
#define MSR_KERNEL_GS_BASE 0xC0000102

#define MISC_ENABLE_FAST_STRING 1ULL
#define MTRR_ENABLE (1ULL << 11)
#define MTRR_TYPE_WRBACK 6ULL

struct kvm_cpuid2 *cpuid_get_supported(int kvm_fd)
{
	for (unsigned int nent = 128; nent <= 4096; nent *= 2) {
		struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + nent * sizeof(cpuid->entries[0]));

		if (!cpuid)
			return NULL;
		cpuid->nent = nent;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) == 0)
			return cpuid;
		free(cpuid);
		if (errno != E2BIG) {
			log_error("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
			return NULL;
		}
	}
	log_error("KVM_GET_SUPPORTED_CPUID: too many entries");
	return NULL;
}

static unsigned int bits_for(unsigned int count)
{
	unsigned int bits = 0;

	while ((1U << bits) < count)
		bits++;
	return bits;
}

void cpuid_patch(struct kvm_cpuid2 *cpuid, unsigned int index, unsigned int count, bool tsc_deadline)
{
	unsigned int apic_id = index;

	for (unsigned int i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		switch (e->function) {
		case 1:
			/* EBX[31:24] initial APIC ID, [23:16] logical processors per package. */
			e->ebx = (apic_id << 24) | ((count & 0xFF) << 16) | (e->ebx & 0xFFFF);
			e->ecx |= CPUID1_ECX_HYPERVISOR;
			if (tsc_deadline)
				e->ecx |= CPUID1_ECX_TSC_DEADLINE;
			if (count > 1)
				e->edx |= CPUID1_EDX_HTT;
			else
				e->edx &= ~CPUID1_EDX_HTT;
			break;
		case 4:
			/* Intel deterministic cache leaf: EAX[31:26] cores per package - 1;
			 * each cache is private to one core (EAX[25:14] = 0). */
			if (e->eax & 0x1F)
				e->eax = (e->eax & 0x3FFF) | ((count - 1) << 26);
			break;
		case 0xB:
		case 0x1F:
			/* Extended topology: level 0 is SMT (one thread), level 1 the cores. */
			e->edx = apic_id;
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (CPUID_TOPO_LEVEL_SMT << 8);
			} else if (e->index == 1) {
				e->eax = bits_for(count);
				e->ebx = count;
				e->ecx = (CPUID_TOPO_LEVEL_CORE << 8) | 1;
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index;
			}
			break;
		case 0x80000008:
			/* AMD: ECX[15:12] APIC ID bits for the core, [7:0] cores - 1. */
			e->ecx = (bits_for(count) << 12) | ((count - 1) & 0xFF);
			break;
		case 0x8000001E:
			/* AMD extended APIC ID; one thread per core, one node. */
			e->eax = apic_id;
			e->ebx = index & 0xFF;
			e->ecx = 0;
			break;
		default:
			break;
		}
	}
}

static int set_boot_msrs(int vcpu_fd)
{
	static const struct {
		uint32_t index;
		uint64_t data;
	} boot_msrs[] = {
		{ MSR_IA32_SYSENTER_CS, 0 }, { MSR_IA32_SYSENTER_ESP, 0 }, { MSR_IA32_SYSENTER_EIP, 0 },
		{ MSR_STAR, 0 }, { MSR_LSTAR, 0 }, { MSR_CSTAR, 0 }, { MSR_SYSCALL_MASK, 0 },
		{ MSR_KERNEL_GS_BASE, 0 },
		{ MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING },
		/* Without firmware to program MTRRs, default everything to write-back
		 * or the guest treats all of RAM as uncacheable. */
		{ MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WRBACK },
	};
	enum { NR = sizeof(boot_msrs) / sizeof(boot_msrs[0]) };
	struct {
		struct kvm_msrs header;
		struct kvm_msr_entry entries[NR];
	} msrs;
	int ret;

	memset(&msrs, 0, sizeof(msrs));
	msrs.header.nmsrs = NR;
	for (unsigned int i = 0; i < NR; i++) {
		msrs.entries[i].index = boot_msrs[i].index;
		msrs.entries[i].data = boot_msrs[i].data;
	}
	ret = ioctl(vcpu_fd, KVM_SET_MSRS, &msrs);
	if (ret != NR) {
		/* KVM_SET_MSRS returns how many it set; the one after those failed. */
		log_error("KVM_SET_MSRS: MSR 0x%x refused", ret >= 0 && ret < NR ? boot_msrs[ret].index : 0);
		return -1;
	}
	return 0;
}

int cpuid_setup_vcpu(int vcpu_fd, const struct kvm_cpuid2 *supported, unsigned int index, unsigned int count,
		     bool tsc_deadline)
{
	size_t size = sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *cpuid = malloc(size);
	int ret;

	if (!cpuid)
		return -1;
	memcpy(cpuid, supported, size);
	cpuid_patch(cpuid, index, count, tsc_deadline);
	ret = ioctl(vcpu_fd, KVM_SET_CPUID2, cpuid);
	free(cpuid);
	if (ret < 0) {
		log_error("KVM_SET_CPUID2: %s", strerror(errno));
		return -1;
	}
	return set_boot_msrs(vcpu_fd);
}
