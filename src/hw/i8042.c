/* The i8042 keyboard controller, reduced to what Linux uses to reboot
 * (reboot=k, its fallback after ACPI): an idle status register and the
 * "pulse reset line" command. There is no keyboard behind it. */
#include "hw/i8042.h"

#include "util/log.h"

#define I8042_CMD_PULSE_RESET 0xFE

void i8042_init(struct i8042 *kbc, void (*reset)(void *ctx), void *ctx)
{
	kbc->reset = reset;
	kbc->ctx = ctx;
}

static uint64_t i8042_read_status(void *opaque, uint64_t offset, unsigned int size)
{
	(void)opaque, (void)offset, (void)size;
	return 0;  /* both buffers empty: writers never wait, readers find nothing */
}

static void i8042_write_command(void *opaque, uint64_t offset, uint64_t value, unsigned int size)
{
	struct i8042 *kbc = opaque;

	(void)offset, (void)size;
	log_debug("i8042 command 0x%02llx", (unsigned long long)value);
	if ((value & 0xFF) == I8042_CMD_PULSE_RESET)
		kbc->reset(kbc->ctx);
}

static uint64_t i8042_read_data(void *opaque, uint64_t offset, unsigned int size)
{
	(void)opaque, (void)offset, (void)size;
	return 0;
}

const struct iobus_ops i8042_data_ops = { .read = i8042_read_data };
const struct iobus_ops i8042_command_ops = { .read = i8042_read_status, .write = i8042_write_command };
