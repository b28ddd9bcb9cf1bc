/* libFuzzer target for the i8042 and its keyboard: port accesses and key
 * presses in any order from the input; nothing may crash, the queues stay
 * bounded, the IRQ line is never left high, and reads stop once drained. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "hw/i8042.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int irq_level;

static void set_irq(void *ctx, int level)
{
	(void)ctx;
	irq_level = level;
}

static void reset(void *ctx)
{
	(void)ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct i8042 kbc;
	unsigned int reads = 0;

	log_set_level(LOG_ERROR);
	i8042_init(&kbc, reset, set_irq, NULL);
	for (size_t i = 0; i + 1 < size; i += 2) {
		uint8_t value = data[i + 1];

		switch (data[i] % 5) {
		case 0:
			i8042_command_ops.write(&kbc, 0, value, 1);
			break;
		case 1:
			i8042_data_ops.write(&kbc, 0, value, 1);
			break;
		case 2:
			i8042_data_ops.read(&kbc, 0, 1);
			break;
		case 3:
			i8042_command_ops.read(&kbc, 0, 1);
			break;
		case 4:
			i8042_press_ctrl_alt_del(&kbc);
			break;
		}
		assert(irq_level == 0);
		assert(kbc.replies.count <= I8042_QUEUE_SIZE);
		assert(kbc.kbd.replies.count <= I8042_QUEUE_SIZE);
		assert(kbc.kbd.scancodes.count <= I8042_QUEUE_SIZE);
		assert((i8042_command_ops.read(&kbc, 0, 1) & ~0x1DU) == 0);  /* never IBF or AUXDATA */
	}
	/* Enable the keyboard's port, then everything queued drains in bounded reads. */
	i8042_command_ops.write(&kbc, 0, 0xAE, 1);
	while (i8042_command_ops.read(&kbc, 0, 1) & I8042_STR_OBF) {
		i8042_data_ops.read(&kbc, 0, 1);
		assert(++reads <= 1 + 3 * I8042_QUEUE_SIZE);
	}
	pthread_mutex_destroy(&kbc.lock);
	return 0;
}
