/* ACPI sleep control register (hardware-reduced ACPI, spec 4.8.3.7): the guest
 * writes SLP_TYP for S5 together with SLP_EN to power off. */
#include "hw/acpi_pm.h"

#define SLEEP_TYPE_SHIFT 2
#define SLEEP_TYPE_MASK 0x7
#define SLEEP_ENABLE 0x20

void acpi_pm_init(struct acpi_pm *pm, void (*poweroff)(void *ctx), void *ctx)
{
	pm->poweroff = poweroff;
	pm->ctx = ctx;
}

static uint64_t acpi_pm_read(void *opaque, uint64_t offset, unsigned int size)
{
	(void)opaque, (void)offset, (void)size;
	return 0;  /* no wake events to report */
}

static void acpi_pm_write(void *opaque, uint64_t offset, uint64_t value, unsigned int size)
{
	struct acpi_pm *pm = opaque;

	(void)size;
	if (offset == ACPI_PM_SLEEP_CONTROL && (value & SLEEP_ENABLE) &&
	    ((value >> SLEEP_TYPE_SHIFT) & SLEEP_TYPE_MASK) == ACPI_S5_SLEEP_TYPE)
		pm->poweroff(pm->ctx);
}

const struct iobus_ops acpi_pm_ops = { .read = acpi_pm_read, .write = acpi_pm_write };
