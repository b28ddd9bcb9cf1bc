/* i8042 controller and PS/2 keyboard: Linux's probe as its drivers run it,
 * the output buffer and IRQ 1, Ctrl-Alt-Del, the reset line, hostile guests. */
#include "unit.h"

#include <string.h>

#include "hw/i8042.h"

static struct i8042 kbc;
static int resets, irq_pulses, irq_level;

static void count_reset(void *ctx)
{
	(void)ctx;
	resets++;
}

static void set_irq(void *ctx, int level)
{
	(void)ctx;
	if (level && !irq_level)
		irq_pulses++;
	irq_level = level;
}

static int setup(void **state)
{
	(void)state;
	resets = irq_pulses = irq_level = 0;
	i8042_init(&kbc, count_reset, set_irq, NULL);
	return 0;
}

static uint8_t status(void)
{
	return (uint8_t)i8042_command_ops.read(&kbc, 0, 1);
}

static void command(uint8_t cmd)
{
	i8042_command_ops.write(&kbc, 0, cmd, 1);
}

static void data(uint8_t byte)
{
	i8042_data_ops.write(&kbc, 0, byte, 1);
}

static uint8_t read_data(void)
{
	return (uint8_t)i8042_data_ops.read(&kbc, 0, 1);
}

/* Reads what the controller has, as i8042_flush() does; returns the count. */
static size_t drain(uint8_t *buf, size_t max)
{
	size_t n = 0;

	while (status() & I8042_STR_OBF) {
		assert_true(n < max);
		assert_int_equal(status() & I8042_STR_AUXDATA, 0);
		buf[n++] = read_data();
	}
	return n;
}

#define assert_drains(...)                                                       \
	do {                                                                     \
		const uint8_t expect[] = { __VA_ARGS__ };                        \
		uint8_t got[64];                                                 \
		assert_int_equal(drain(got, sizeof(got)), sizeof(expect));       \
		assert_memory_equal(got, expect, sizeof(expect));                \
	} while (0)

/* A controller command with one reply, polled as i8042_command() polls. */
static uint8_t command_reply(uint8_t cmd)
{
	command(cmd);
	assert_true(status() & I8042_STR_OBF);
	return read_data();
}

/* What Linux 6.1 does at boot with a PNP0303 keyboard and no aux device:
 * i8042_platform_init, i8042_controller_check/init, i8042_setup_kbd, then
 * atkbd_connect. Every answer is there at once: no 500 ms timeouts. */
static void test_linux_probe(void **state)
{
	uint8_t ctr, buf[8];

	(void)state;
	assert_int_equal(drain(buf, sizeof(buf)), 0);
	assert_int_equal(status() & I8042_STR_IBF, 0);
	command(0xD1);  /* A20 on, reset line left alone */
	data(0xDF);
	command(0xFF);  /* null command for SMM firmware */
	assert_int_equal(resets, 0);
	assert_int_equal(command_reply(0xAA), 0x55);
	/* The CTR, read until stable: untranslated, so Linux goes "direct" (set 2). */
	ctr = command_reply(0x20);
	assert_int_equal(command_reply(0x20), ctr);
	assert_int_equal(ctr & I8042_CTR_XLATE, 0);
	assert_true(ctr & I8042_CTR_KBDINT);
	assert_true(status() & I8042_STR_KEYLOCK);  /* else "Keylock active" */
	assert_true(status() & I8042_STR_SYSFLAG);
	ctr = (uint8_t)((ctr | I8042_CTR_KBDDIS) & ~I8042_CTR_KBDINT);
	command(0x60);
	data(ctr);
	assert_int_equal(command_reply(0x20), ctr);
	/* i8042_enable_kbd_port */
	ctr = (uint8_t)((ctr & ~I8042_CTR_KBDDIS) | I8042_CTR_KBDINT);
	command(0x60);
	data(ctr);
	irq_pulses = 0;  /* Linux requests IRQ 1 only now */
	/* atkbd_probe: GETID answers through IRQ 1, one pulse per byte. */
	data(0xF2);
	assert_int_equal(irq_pulses, 1);
	assert_drains(0xFA, 0xAB, 0x83);
	assert_int_equal(irq_pulses, 3);
	data(0xF5);  /* atkbd_deactivate */
	assert_drains(0xFA);
	data(0xED);  /* atkbd_reset_state: LEDs off, fastest typematic */
	assert_drains(0xFA);
	data(0x00);
	assert_drains(0xFA);
	data(0xF3);
	data(0x00);
	assert_drains(0xFA, 0xFA);
	data(0xF4);  /* atkbd_activate */
	assert_drains(0xFA);
	assert_int_equal(irq_pulses, 9);
	assert_int_equal(resets, 0);
}

static void test_ctr_and_ram(void **state)
{
	(void)state;
	command(0x60);
	data(0xFF);
	/* No translation and a reserved top bit: the guest sees what it got. */
	assert_int_equal(command_reply(0x20), 0x3F);
	command(0x7F);
	data(0x5A);
	assert_int_equal(command_reply(0x3F), 0x5A);
	assert_int_equal(command_reply(0x20), 0x3F);
	/* Status bit 3 tells which port was written last. */
	assert_int_equal(status() & I8042_STR_CMDDAT, I8042_STR_CMDDAT);
	data(0xF4);
	assert_int_equal(status() & I8042_STR_CMDDAT, 0);
}

static void test_aux_port_is_absent(void **state)
{
	uint8_t ctr;

	(void)state;
	/* i8042_check_aux (only with i8042.nopnp): the loopback byte comes back
	 * without AUXDATA, the port test reports a dead clock line. */
	command(0xD3);
	data(0x5A);
	assert_true(status() & I8042_STR_OBF);
	assert_int_equal(status() & I8042_STR_AUXDATA, 0);
	assert_int_equal(read_data(), 0x5A);
	assert_int_equal(command_reply(0xA9), 0x02);
	command(0xD4);  /* to the mouse: nobody answers */
	data(0xFF);
	assert_false(status() & I8042_STR_OBF);
	command(0xA8);
	ctr = command_reply(0x20);
	assert_int_equal(ctr & I8042_CTR_AUXDIS, 0);
	command(0xA7);
	assert_true(command_reply(0x20) & I8042_CTR_AUXDIS);
	assert_int_equal(command_reply(0xAB), 0x00);
	assert_int_equal(irq_pulses, 5);  /* KBDINT is on from the start: one per reply */
}

static void test_output_buffer_and_irq(void **state)
{
	(void)state;
	command(0x60);
	data(I8042_CTR_SYSFLAG);  /* interrupts off: the guest polls */
	command(0xD2);
	data(0x11);
	command(0xD2);
	data(0x22);
	assert_int_equal(irq_pulses, 0);
	assert_true(status() & I8042_STR_OBF);
	/* Enabling the interrupt with a byte waiting interrupts at once. */
	command(0x60);
	data(I8042_CTR_SYSFLAG | I8042_CTR_KBDINT);
	assert_int_equal(irq_pulses, 1);
	assert_int_equal(irq_level, 0);  /* a pulse, not a held line */
	assert_int_equal(read_data(), 0x11);
	assert_int_equal(irq_pulses, 2);
	assert_int_equal(read_data(), 0x22);
	assert_false(status() & I8042_STR_OBF);
	/* An empty buffer reads as the last byte and does not interrupt. */
	assert_int_equal(read_data(), 0x22);
	assert_int_equal(irq_pulses, 2);
}

static void test_disabled_port_holds_keyboard_bytes(void **state)
{
	(void)state;
	command(0xAD);
	i8042_press_ctrl_alt_del(&kbc);
	assert_false(status() & I8042_STR_OBF);
	/* The controller still answers while the keyboard waits. */
	assert_int_equal(command_reply(0xAA), 0x55);
	assert_false(status() & I8042_STR_OBF);
	command(0xAE);
	assert_true(status() & I8042_STR_OBF);
	/* Controller replies overtake keys still queued in the keyboard (the
	 * byte already in the output buffer stays first). */
	command(0x20);
	assert_int_equal(read_data(), 0x14);
	assert_int_equal(read_data() & I8042_CTR_KBDDIS, 0);
	assert_drains(0x11, 0xE0, 0x71, 0xE0, 0xF0, 0x71, 0xF0, 0x11, 0xF0, 0x14);
	/* Writing to the keyboard re-enables its port, as real controllers do. */
	command(0xAD);
	data(0xEE);
	assert_drains(0xEE);
}

static void test_ctrl_alt_del(void **state)
{
	uint8_t buf[32];

	(void)state;
	i8042_press_ctrl_alt_del(&kbc);
	/* Set 2, untranslated: Ctrl, Alt, Delete pressed, then released. */
	assert_drains(0x14, 0x11, 0xE0, 0x71, 0xE0, 0xF0, 0x71, 0xF0, 0x11, 0xF0, 0x14);
	assert_int_equal(irq_pulses, 11);
	/* Unread keys are not stacked beyond the keyboard's buffer, and never by halves. */
	i8042_press_ctrl_alt_del(&kbc);
	i8042_press_ctrl_alt_del(&kbc);
	assert_int_equal(drain(buf, sizeof(buf)), 11);
	i8042_press_ctrl_alt_del(&kbc);
	assert_int_equal(drain(buf, sizeof(buf)), 11);
	/* A keyboard the guest disabled sends nothing, until enabled again. */
	data(0xF5);
	assert_drains(0xFA);
	i8042_press_ctrl_alt_del(&kbc);
	assert_int_equal(drain(buf, sizeof(buf)), 0);
	data(0xF4);
	assert_drains(0xFA);
	i8042_press_ctrl_alt_del(&kbc);
	assert_int_equal(drain(buf, sizeof(buf)), 11);
	/* An answer to a command goes out before keys still queued. */
	i8042_press_ctrl_alt_del(&kbc);
	assert_int_equal(read_data(), 0x14);
	data(0xED);
	data(0x07);
	assert_drains(0x11, 0xFA, 0xFA, 0xE0, 0x71, 0xE0, 0xF0, 0x71, 0xF0, 0x11, 0xF0, 0x14);
}

static void test_keyboard_commands(void **state)
{
	(void)state;
	data(0xFF);
	assert_drains(0xFA, 0xAA);
	data(0xF0);
	data(0x00);
	assert_drains(0xFA, 0xFA, 0x02);
	data(0xF0);
	data(0x03);  /* set 3 is not spoken */
	assert_drains(0xFA, 0xFE);
	data(0xF0);
	data(0x02);
	assert_drains(0xFA, 0xFA);
	data(0xE8);  /* unknown: "resend", which drivers read as unsupported */
	assert_drains(0xFE);
	data(0xFE);  /* resend: the last byte again */
	assert_drains(0xFE);
	data(0xF8);  /* set-3 key types: acknowledged, no effect */
	assert_drains(0xFA);
	/* A command instead of the parameter another one waits for. */
	data(0xED);
	data(0xF2);
	assert_drains(0xFA, 0xFA, 0xAB, 0x83);
	data(0x42);  /* a stray parameter with no command: unknown */
	assert_drains(0xFE);
}

static void test_reset_line(void **state)
{
	(void)state;
	command(0xFE);  /* Linux's reboot=k */
	assert_int_equal(resets, 1);
	command(0xF0);  /* pulses all lines, reset among them */
	assert_int_equal(resets, 2);
	command(0xFF);
	command(0xFD);
	assert_int_equal(resets, 2);
	assert_int_equal(command_reply(0xD0) & 0x03, 0x03);
	command(0xD1);
	data(0xDF);
	assert_int_equal(resets, 2);
	assert_int_equal(command_reply(0xD0), 0xDF);
	command(0xD1);
	data(0xDE);  /* output port bit 0 low holds the CPU in reset */
	assert_int_equal(resets, 3);
	/* A new command abandons one still waiting for its data byte. */
	command(0xD1);
	command(0xAB);
	assert_int_equal(read_data(), 0x00);
	data(0xDE);  /* now a keyboard byte, not the output port */
	assert_int_equal(resets, 3);
}

static void test_hostile_guest(void **state)
{
	uint8_t buf[64];

	(void)state;
	/* Replies nobody reads are bounded, by the controller and the keyboard. */
	for (int i = 0; i < 1000; i++)
		command(0x20);
	for (int i = 0; i < 1000; i++)
		data(0xF2);
	assert_true(drain(buf, sizeof(buf)) <= 1 + I8042_QUEUE_SIZE * 2);
	assert_int_equal(drain(buf, sizeof(buf)), 0);
	/* Every command byte, each followed by every data byte, reading as we go:
	 * no crash, bounded output, and resets only where the hardware has them. */
	for (int cmd = 0; cmd < 256; cmd++) {
		for (int val = 0; val < 256; val++) {
			command((uint8_t)cmd);
			data((uint8_t)val);
			assert_true(drain(buf, sizeof(buf)) <= sizeof(buf));
		}
	}
	/* 0xD1 with bit 0 clear (128 values) and the even pulse commands (8 x 256). */
	assert_int_equal(resets, 128 + 8 * 256);
	assert_int_equal(irq_level, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_linux_probe, setup),
		cmocka_unit_test_setup(test_ctr_and_ram, setup),
		cmocka_unit_test_setup(test_aux_port_is_absent, setup),
		cmocka_unit_test_setup(test_output_buffer_and_irq, setup),
		cmocka_unit_test_setup(test_disabled_port_holds_keyboard_bytes, setup),
		cmocka_unit_test_setup(test_ctrl_alt_del, setup),
		cmocka_unit_test_setup(test_keyboard_commands, setup),
		cmocka_unit_test_setup(test_reset_line, setup),
		cmocka_unit_test_setup(test_hostile_guest, setup),
	};

	return cmocka_run_group_tests_name("i8042", tests, NULL, NULL);
}
