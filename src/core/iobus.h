/* Address-range dispatch of port-I/O and MMIO exits to device callbacks.
 * Ranges are registered during setup and only looked up once vCPUs run. */
#ifndef KVIO_CORE_IOBUS_H
#define KVIO_CORE_IOBUS_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

struct iobus_ops {
	/* offset is relative to the range base; size is 1, 2, 4 or 8. */
	uint64_t (*read)(void *opaque, uint64_t offset, unsigned int size);
	void (*write)(void *opaque, uint64_t offset, uint64_t value, unsigned int size);
};

struct iobus_range {
	uint64_t base;
	uint64_t len;
	const struct iobus_ops *ops;
	void *opaque;
};

struct iobus {
	const char *name;
	struct iobus_range *ranges;  /* sorted by base, never overlapping */
	unsigned int nr_ranges;
	unsigned int capacity;
};

void iobus_init(struct iobus *bus, const char *name);
void iobus_destroy(struct iobus *bus);

/* Returns 0, -EEXIST if [base, base + len) overlaps a registered range,
 * -EINVAL for an empty or wrapping range, -ENOMEM. */
int iobus_register(struct iobus *bus, uint64_t base, uint64_t len, const struct iobus_ops *ops, void *opaque);

/* Dispatch an access. Returns false if no device claims addr; reads then see all ones. */
bool iobus_read(const struct iobus *bus, uint64_t addr, unsigned int size, uint64_t *value);
bool iobus_write(const struct iobus *bus, uint64_t addr, uint64_t value, unsigned int size);

/* Replay on bus the MMIO writes KVM queued in ring without an exit
 * (KVM_REGISTER_COALESCED_MMIO), oldest first, handing each slot back as it
 * goes. slots is the ring's size in entries. The caller serializes replays.
 * Returns how many writes were replayed. */
unsigned int iobus_replay_coalesced(const struct iobus *bus, struct kvm_coalesced_mmio_ring *ring,
				    unsigned int slots);

#endif
