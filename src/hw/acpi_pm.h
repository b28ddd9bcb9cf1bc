/* Hardware-reduced ACPI power management: the sleep control and status
 * registers the FADT points at, which is how a guest powers off. */
#ifndef KVIO_HW_ACPI_PM_H
#define KVIO_HW_ACPI_PM_H

#include "core/iobus.h"

#define ACPI_PM_PORT 0x600
#define ACPI_PM_SLEEP_CONTROL 0  /* offset of each one-byte register */
#define ACPI_PM_SLEEP_STATUS 1
#define ACPI_PM_NR_PORTS 2
#define ACPI_S5_SLEEP_TYPE 5      /* the value the DSDT's \_S5 package carries */

struct acpi_pm {
	void (*poweroff)(void *ctx);
	void *ctx;
};

extern const struct iobus_ops acpi_pm_ops;

void acpi_pm_init(struct acpi_pm *pm, void (*poweroff)(void *ctx), void *ctx);

#endif
