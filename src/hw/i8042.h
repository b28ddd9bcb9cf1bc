/* Just enough of the PS/2 keyboard controller for a guest to reset the machine. */
#ifndef KVIO_HW_I8042_H
#define KVIO_HW_I8042_H

#include "core/iobus.h"

#define I8042_DATA_PORT 0x60
#define I8042_COMMAND_PORT 0x64

struct i8042 {
	void (*reset)(void *ctx);
	void *ctx;
};

/* Register one struct on both ports; the offset tells data from command. */
extern const struct iobus_ops i8042_data_ops;
extern const struct iobus_ops i8042_command_ops;

void i8042_init(struct i8042 *kbc, void (*reset)(void *ctx), void *ctx);

#endif
