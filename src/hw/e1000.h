/* An emulated Intel 82540EM gigabit NIC (e1000), the fully emulated baseline
 * that Linux's stock e1000 driver runs on unchanged. No KVM in here. */
#ifndef KVIO_HW_E1000_H
#define KVIO_HW_E1000_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/net.h"
#include "core/iobus.h"
#include "hw/pci.h"
#include "util/guest_mem.h"

#define E1000_VENDOR_ID 0x8086
#define E1000_DEVICE_ID 0x100E        /* 82540EM, desktop copper */
#define E1000_SUBSYSTEM_ID 0x001E
#define E1000_MMIO_SIZE 0x20000       /* BAR 0: the register file */
#define E1000_IO_SIZE 0x40            /* BAR 1: IOADDR/IODATA window onto the registers */

struct e1000;

struct e1000_options {
	struct guest_mem *mem;
	struct net_backend *backend;  /* owned by the device once e1000_create succeeds */
	uint8_t mac[6];
	/* The INTx line's level; called with the device lock held, only on changes. */
	void (*set_irq)(void *ctx, bool asserted);
	void *irq_ctx;
	/* Interrupt throttling (ITR) needs a clock and one one-shot timer; with
	 * neither the device keeps ITR but never throttles. Both are called with
	 * the device lock held. now_ns reads a monotonic clock in nanoseconds;
	 * arm_timer sets the timer for deadline_ns on that clock, replacing any
	 * earlier deadline, and when it passes the caller runs e1000_timer_expired. */
	uint64_t (*now_ns)(void *ctx);
	void (*arm_timer)(void *ctx, uint64_t deadline_ns);
	void *timer_ctx;
	/* Room appeared in a receive ring that left frames waiting (an RDT
	 * write, the receiver enabled): the caller should run
	 * e1000_backend_ready soon on its I/O thread, so the vCPU that wrote the
	 * register goes back to the guest while another CPU fills the ring.
	 * Called with the device lock held. Without it receive runs inside the
	 * register write. */
	void (*kick_receive)(void *ctx);
	void *kick_ctx;
	/* Where BAR 0 and BAR 1 are placed, as firmware would; io_base 0 leaves BAR 1 out.
	 * Accesses count only while the guest leaves the BARs there (kvio does not relocate). */
	uint32_t mmio_base;
	uint16_t io_base;
};

/* NULL on failure (logged); the backend then stays the caller's. */
struct e1000 *e1000_create(const struct e1000_options *opts);
/* Also destroys the backend. */
void e1000_destroy(struct e1000 *nic);

/* Config space: 8086:100E, class 0x020000, BAR 0 MEM32 128 KiB, BAR 1 I/O 64 bytes, INTA. */
struct pci_device *e1000_pci_device(struct e1000 *nic);

/* Register accesses (vCPU threads); opaque is the struct e1000. Transmit runs in here. */
extern const struct iobus_ops e1000_mmio_ops, e1000_io_ops;

/* BAR 0 offsets of the registers whose writes must act at once: reset, PHY
 * access, enabling receive or transmit, starting transmit (TDT), raising,
 * unmasking or acknowledging an interrupt. Writes anywhere else in BAR 0 may
 * wait until the guest's next access of one of these or read of any register
 * (the refills of the receive ring, RDT, are the ones worth sparing an exit);
 * the driver's own flushes are reads. Ascending, each register 4 bytes. */
extern const uint32_t e1000_immediate_writes[];
extern const unsigned int e1000_nr_immediate_writes;

/* The backend's receive fd is readable (edge-triggered): move frames into the
 * guest's receive ring until the backend runs dry or the ring is full. */
void e1000_backend_ready(struct e1000 *nic);

/* The deadline last given to arm_timer has passed: raise the interrupt that
 * throttling held back, if it is still pending. Harmless at any other time. */
void e1000_timer_expired(struct e1000 *nic);

#endif
