/* The seccomp filter kvio runs under once the VM is set up: the syscalls the
 * device model, the vCPUs and the backends need at run time, and no others. */
#ifndef KVIO_CORE_SANDBOX_H
#define KVIO_CORE_SANDBOX_H

#include "config.h"

/* The exit status after the filter stopped a syscall (31 is SIGSYS). */
#define SANDBOX_EXIT_BLOCKED 31

/* Install the filter on every thread of the process (those that exist and
 * those created later) as cfg->seccomp says: SANDBOX_ON traps a syscall off the
 * list, prints one line naming it and exits with SANDBOX_EXIT_BLOCKED;
 * SANDBOX_LOG lets it run and has the kernel's audit log record it;
 * SANDBOX_OFF does nothing. The devices and backends in cfg decide which
 * groups of syscalls are on the list. Call it once, after setup and before
 * the guest runs. Returns 0, or -1 after logging why. */
int sandbox_install(const struct vm_config *cfg);

#endif
