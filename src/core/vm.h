/* The virtual machine as KVM sees it: VM fd, guest RAM, buses, vCPUs, and the
 * lifecycle from boot to the first stop request. */
#ifndef KVIO_CORE_VM_H
#define KVIO_CORE_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "core/iobus.h"
#include "util/guest_mem.h"

struct vcpu;
struct kvm_cpuid2;
struct irq_routes;

/* Why the VM stopped; the first reason reported wins. */
enum vm_stop_reason {
	VM_RUNNING = 0,
	VM_STOP_POWEROFF,   /* guest powered off through ACPI */
	VM_STOP_REBOOT,     /* guest reset (i8042 pulse or triple fault): kvio exits like Firecracker */
	VM_STOP_QUIT,       /* Ctrl-A x on the console */
	VM_STOP_MONITOR_QUIT,   /* the monitor's quit */
	VM_STOP_MONITOR_RESET,  /* the monitor's system_reset: kvio exits as on a guest reset */
	VM_STOP_SIGNAL,     /* SIGINT/SIGTERM/SIGHUP */
	VM_STOP_ERROR,      /* a vCPU hit something it cannot handle */
};

/* Where paused vCPUs wait (vcpus_pause in core/vcpu.h). */
struct vcpu_gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	_Atomic bool paused;
	unsigned int parked;
};

struct vm {
	int kvm_fd;
	int vm_fd;
	struct guest_mem mem;
	struct iobus pio;
	struct iobus mmio;
	unsigned int nr_vcpus;
	struct vcpu *vcpus;
	int vcpu_mmap_size;
	/* KVM's ring of MMIO writes it queued without an exit (vm_coalesce_mmio),
	 * in vCPU 0's run area; NULL while KVM cannot coalesce. Empty unless a
	 * device asked for coalescing. */
	struct kvm_coalesced_mmio_ring *coalesced_ring;
	size_t coalesced_offset;        /* its place in a run area; 0: KVM cannot coalesce */
	unsigned int coalesced_slots;
	pthread_mutex_t coalesced_lock; /* one replay at a time, in ring order */
	struct kvm_cpuid2 *supported_cpuid;
	bool ioeventfd_any_length;      /* KVM_CAP_IOEVENTFD_ANY_LENGTH: ioeventfds of length 0 */
	struct irq_routes *irq_routes;
	_Atomic int stop_reason;
	int stop_signal;
	int stop_eventfd;   /* written once a stop reason is set, wakes the main loop */
	struct vcpu_gate vcpu_gate;
};

/* Boot cfg and run until the guest or the user stops it. Returns the process
 * exit status: 0 for a guest poweroff/reboot or Ctrl-A x, 2 for a setup error
 * caused by the host or the input files, 1 for a runtime failure, 128+N for signal N. */
int vm_run(const struct vm_config *cfg);

/* Safe from any thread. */
void vm_request_stop(struct vm *vm, enum vm_stop_reason reason);

/* Let KVM queue the guest's MMIO writes to [addr, addr + len) instead of
 * exiting for each; vCPUs replay them before handling their next exit of any
 * kind, so a device sees them before any read or other write. For registers
 * whose writes need no action before that. Setup only. Returns 0 or -errno
 * (-ENOTSUP without KVM_CAP_COALESCED_MMIO: the writes then exit as before). */
int vm_coalesce_mmio(struct vm *vm, uint64_t addr, uint64_t len);

/* Replay the writes vm_coalesce_mmio let KVM queue. Any thread. */
void vm_replay_coalesced_mmio(struct vm *vm);

/* Assert (1) or deassert (0) an interrupt line of the in-kernel irqchip. */
void vm_irq_line(struct vm *vm, unsigned int gsi, int level);

#endif
