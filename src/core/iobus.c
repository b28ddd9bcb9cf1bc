/* Address-range dispatch for port I/O and MMIO: a sorted array searched by
 * bisection, which is all a machine with a few dozen ranges needs. */
#include "core/iobus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void iobus_init(struct iobus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
}

void iobus_destroy(struct iobus *bus)
{
	free(bus->ranges);
	bus->ranges = NULL;
	bus->nr_ranges = bus->capacity = 0;
}

/* Index of the first range whose end is above addr. */
static unsigned int lower_bound(const struct iobus *bus, uint64_t addr)
{
	unsigned int lo = 0, hi = bus->nr_ranges;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;
		const struct iobus_range *r = &bus->ranges[mid];

		if (r->base + (r->len - 1) < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int iobus_register(struct iobus *bus, uint64_t base, uint64_t len, const struct iobus_ops *ops, void *opaque)
{
	unsigned int pos;

	if (len == 0 || base + (len - 1) < base)
		return -EINVAL;
	pos = lower_bound(bus, base);
	if (pos < bus->nr_ranges && bus->ranges[pos].base <= base + (len - 1))
		return -EEXIST;
	if (bus->nr_ranges == bus->capacity) {
		unsigned int capacity = bus->capacity ? bus->capacity * 2 : 16;
		struct iobus_range *ranges = realloc(bus->ranges, capacity * sizeof(*ranges));

		if (!ranges)
			return -ENOMEM;
		bus->ranges = ranges;
		bus->capacity = capacity;
	}
	memmove(&bus->ranges[pos + 1], &bus->ranges[pos], (bus->nr_ranges - pos) * sizeof(bus->ranges[0]));
	bus->ranges[pos] = (struct iobus_range){ .base = base, .len = len, .ops = ops, .opaque = opaque };
	bus->nr_ranges++;
	return 0;
}

static const struct iobus_range *find(const struct iobus *bus, uint64_t addr)
{
	unsigned int pos = lower_bound(bus, addr);

	if (pos < bus->nr_ranges && bus->ranges[pos].base <= addr)
		return &bus->ranges[pos];
	return NULL;
}

bool iobus_read(const struct iobus *bus, uint64_t addr, unsigned int size, uint64_t *value)
{
	const struct iobus_range *r = find(bus, addr);

	if (!r || !r->ops->read) {
		*value = size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
		return r != NULL;
	}
	*value = r->ops->read(r->opaque, addr - r->base, size);
	return true;
}

bool iobus_write(const struct iobus *bus, uint64_t addr, uint64_t value, unsigned int size)
{
	const struct iobus_range *r = find(bus, addr);

	if (!r)
		return false;
	if (r->ops->write)
		r->ops->write(r->opaque, addr - r->base, value, size);
	return true;
}

unsigned int iobus_replay_coalesced(const struct iobus *bus, struct kvm_coalesced_mmio_ring *ring,
				    unsigned int slots)
{
	unsigned int replayed = 0;

	/* At most one lap: writes KVM adds meanwhile wait for the next replay. */
	while (replayed < slots) {
		uint32_t first = __atomic_load_n(&ring->first, __ATOMIC_RELAXED);
		/* Acquire: the entry's contents were written before KVM moved last past it. */
		uint32_t last = __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE);
		const struct kvm_coalesced_mmio *e;
		uint64_t value = 0;

		if (first == last || first >= slots)
			break;
		e = &ring->coalesced_mmio[first];
		if (!e->pio && e->len && e->len <= sizeof(value) && !(e->len & (e->len - 1))) {
			memcpy(&value, e->data, e->len);
			iobus_write(bus, e->phys_addr, value, e->len);
		}
		/* Release: done with the slot before KVM may reuse it. */
		__atomic_store_n(&ring->first, (first + 1) % slots, __ATOMIC_RELEASE);
		replayed++;
	}
	return replayed;
}
