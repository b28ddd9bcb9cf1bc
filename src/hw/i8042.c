/* The i8042 keyboard controller and its PS/2 keyboard, as the guest's stock
 * i8042 and atkbd drivers probe them, plus the controller's reset line (Linux's
 * reboot=k). There is no aux (mouse) port; the host's one use of the keyboard
 * is Ctrl-Alt-Del, so keys arrive only from i8042_press_ctrl_alt_del(). */
#include "hw/i8042.h"

#include <stddef.h>

#include "util/log.h"

/* Controller commands (written to the command port). */
#define CMD_READ_RAM_FIRST 0x20    /* 0x20: the CTR */
#define CMD_READ_RAM_LAST 0x3F
#define CMD_WRITE_RAM_FIRST 0x60   /* 0x60: the CTR */
#define CMD_WRITE_RAM_LAST 0x7F
#define CMD_AUX_DISABLE 0xA7
#define CMD_AUX_ENABLE 0xA8
#define CMD_AUX_TEST 0xA9
#define CMD_SELF_TEST 0xAA
#define CMD_KBD_TEST 0xAB
#define CMD_KBD_DISABLE 0xAD
#define CMD_KBD_ENABLE 0xAE
#define CMD_READ_OUTPUT_PORT 0xD0
#define CMD_WRITE_OUTPUT_PORT 0xD1
#define CMD_WRITE_KBD_OUTPUT 0xD2
#define CMD_WRITE_AUX_OUTPUT 0xD3
#define CMD_WRITE_AUX 0xD4
#define CMD_PULSE_FIRST 0xF0       /* 0xF0-0xFF pulse output-port lines low for a moment */

#define SELF_TEST_PASSED 0x55
#define PORT_TEST_PASSED 0x00
/* The aux clock line "stuck high": what an unconnected port looks like, so a
 * probe that insists (i8042.nopnp) gives up on the mouse at once. */
#define PORT_TEST_CLOCK_HIGH 0x02
#define OUTPUT_PORT_RESET 0x01     /* active low: clearing it resets the CPU */
#define OUTPUT_PORT_A20 0x02

/* Keyboard commands (written to the data port) and its answers. */
#define KBD_CMD_SET_LEDS 0xED
#define KBD_CMD_ECHO 0xEE
#define KBD_CMD_SCAN_SET 0xF0
#define KBD_CMD_GET_ID 0xF2
#define KBD_CMD_TYPEMATIC 0xF3
#define KBD_CMD_ENABLE 0xF4
#define KBD_CMD_DISABLE 0xF5
#define KBD_CMD_DEFAULTS 0xF6
#define KBD_CMD_SET3_FIRST 0xF7    /* 0xF7-0xFA: set-3 key types, meaningless in set 2 */
#define KBD_CMD_SET3_LAST 0xFA
#define KBD_CMD_RESEND 0xFE
#define KBD_CMD_RESET 0xFF
#define KBD_ACK 0xFA
#define KBD_RESEND 0xFE
#define KBD_SELF_TEST_PASSED 0xAA
#define KBD_ID_1 0xAB              /* an MF2 keyboard */
#define KBD_ID_2 0x83
#define KBD_SCAN_SET 2

/* Scan code set 2: what the keyboard sends when the controller does not translate. */
#define SC2_BREAK 0xF0
#define SC2_EXTENDED 0xE0
#define SC2_LEFT_CTRL 0x14
#define SC2_LEFT_ALT 0x11
#define SC2_DELETE 0x71            /* after SC2_EXTENDED */

/* Bits a guest may set in the CTR: no translation, bit 7 is reserved. */
#define CTR_WRITABLE (I8042_CTR_KBDINT | I8042_CTR_AUXINT | I8042_CTR_SYSFLAG | I8042_CTR_IGNKEYLOCK | \
		      I8042_CTR_KBDDIS | I8042_CTR_AUXDIS)

static bool queue_push(struct i8042_queue *q, uint8_t byte)
{
	if (q->count == I8042_QUEUE_SIZE)
		return false;
	q->buf[(q->head + q->count) % I8042_QUEUE_SIZE] = byte;
	q->count++;
	return true;
}

static bool queue_pop(struct i8042_queue *q, uint8_t *byte)
{
	if (!q->count)
		return false;
	*byte = q->buf[q->head];
	q->head = (q->head + 1) % I8042_QUEUE_SIZE;
	q->count--;
	return true;
}

static void queue_clear(struct i8042_queue *q)
{
	q->head = q->count = 0;
}

static uint8_t ctr(const struct i8042 *kbc)
{
	return kbc->ram[0];
}

static void pulse_irq(struct i8042 *kbc)
{
	/* Edge-triggered ISA IRQ: one pulse per byte the guest should come and read. */
	kbc->set_irq(kbc->ctx, 1);
	kbc->set_irq(kbc->ctx, 0);
}

/* Moves the next byte into an empty output buffer: the controller's own
 * answers first, then the keyboard's, unless the guest disabled its port. */
static void fill_output(struct i8042 *kbc)
{
	uint8_t byte;

	if (kbc->obf)
		return;
	if (!queue_pop(&kbc->replies, &byte)) {
		if (ctr(kbc) & I8042_CTR_KBDDIS)
			return;
		if (!queue_pop(&kbc->kbd.replies, &byte) && !queue_pop(&kbc->kbd.scancodes, &byte))
			return;
		kbc->kbd.last_sent = byte;
	}
	kbc->output = byte;
	kbc->obf = true;
	if (ctr(kbc) & I8042_CTR_KBDINT)
		pulse_irq(kbc);
}

static void controller_reply(struct i8042 *kbc, uint8_t byte)
{
	if (!queue_push(&kbc->replies, byte))
		log_debug("i8042: reply 0x%02x dropped, the guest reads nothing", byte);
}

static void write_ctr(struct i8042 *kbc, uint8_t value)
{
	bool irq_was_on = ctr(kbc) & I8042_CTR_KBDINT;

	kbc->ram[0] = value & CTR_WRITABLE;
	/* A byte already waiting interrupts as soon as interrupts are allowed. */
	if (!irq_was_on && (ctr(kbc) & I8042_CTR_KBDINT) && kbc->obf)
		pulse_irq(kbc);
}

static void keyboard_reply(struct ps2_keyboard *kbd, uint8_t byte)
{
	if (!queue_push(&kbd->replies, byte))
		log_debug("i8042: keyboard reply 0x%02x dropped, the guest reads nothing", byte);
}

/* The parameter byte of a keyboard command that takes one. */
static void keyboard_parameter(struct ps2_keyboard *kbd, uint8_t command, uint8_t value)
{
	if (command == KBD_CMD_SCAN_SET && value != 0 && value != KBD_SCAN_SET) {
		keyboard_reply(kbd, KBD_RESEND);  /* only set 2 is spoken here */
		return;
	}
	keyboard_reply(kbd, KBD_ACK);
	if (command == KBD_CMD_SCAN_SET && value == 0)
		keyboard_reply(kbd, KBD_SCAN_SET);
	/* LED states and typematic rates have nothing to drive. */
}

static void keyboard_write(struct ps2_keyboard *kbd, uint8_t value)
{
	uint8_t command = kbd->pending_command;

	kbd->pending_command = 0;
	/* Parameters are all below 0x80; a byte above is a new command (a driver
	 * that gave up waiting), as on a real keyboard. */
	if (command && value < 0x80) {
		keyboard_parameter(kbd, command, value);
		return;
	}
	switch (value) {
	case KBD_CMD_SET_LEDS:
	case KBD_CMD_SCAN_SET:
	case KBD_CMD_TYPEMATIC:
		keyboard_reply(kbd, KBD_ACK);
		kbd->pending_command = value;
		break;
	case KBD_CMD_ECHO:
		keyboard_reply(kbd, KBD_CMD_ECHO);
		break;
	case KBD_CMD_GET_ID:
		keyboard_reply(kbd, KBD_ACK);
		keyboard_reply(kbd, KBD_ID_1);
		keyboard_reply(kbd, KBD_ID_2);
		break;
	case KBD_CMD_ENABLE:
		keyboard_reply(kbd, KBD_ACK);
		kbd->scanning = true;
		break;
	case KBD_CMD_DISABLE:
	case KBD_CMD_DEFAULTS:
		/* Both restore the defaults, which empties the key buffer. */
		queue_clear(&kbd->scancodes);
		keyboard_reply(kbd, KBD_ACK);
		if (value == KBD_CMD_DISABLE)
			kbd->scanning = false;
		break;
	case KBD_CMD_RESEND:
		keyboard_reply(kbd, kbd->last_sent);
		break;
	case KBD_CMD_RESET:
		queue_clear(&kbd->scancodes);
		queue_clear(&kbd->replies);
		keyboard_reply(kbd, KBD_ACK);
		keyboard_reply(kbd, KBD_SELF_TEST_PASSED);
		kbd->scanning = true;
		break;
	default:
		if (value >= KBD_CMD_SET3_FIRST && value <= KBD_CMD_SET3_LAST) {
			keyboard_reply(kbd, KBD_ACK);
			break;
		}
		/* Unknown: ask for it again, which a driver takes as "not supported". */
		log_debug("i8042: keyboard command 0x%02x not supported", value);
		keyboard_reply(kbd, KBD_RESEND);
		break;
	}
}

void i8042_init(struct i8042 *kbc, void (*reset)(void *ctx), void (*set_irq)(void *ctx, int level), void *ctx)
{
	*kbc = (struct i8042){ .reset = reset, .set_irq = set_irq, .ctx = ctx };
	pthread_mutex_init(&kbc->lock, NULL);
	/* As firmware leaves it: keyboard enabled with its interrupt, self-test
	 * passed, no aux port to enable. */
	kbc->ram[0] = I8042_CTR_KBDINT | I8042_CTR_SYSFLAG | I8042_CTR_AUXDIS;
	kbc->output_port = OUTPUT_PORT_RESET | OUTPUT_PORT_A20;
	kbc->kbd.scanning = true;
}

static uint64_t i8042_read_status(void *opaque, uint64_t offset, unsigned int size)
{
	struct i8042 *kbc = opaque;
	uint8_t status = I8042_STR_KEYLOCK;

	(void)offset, (void)size;
	pthread_mutex_lock(&kbc->lock);
	if (kbc->obf)
		status |= I8042_STR_OBF;
	if (ctr(kbc) & I8042_CTR_SYSFLAG)
		status |= I8042_STR_SYSFLAG;
	if (kbc->last_write_was_command)
		status |= I8042_STR_CMDDAT;
	pthread_mutex_unlock(&kbc->lock);
	return status;
}

/* Returns true if the command asks for a CPU reset. */
static bool controller_command(struct i8042 *kbc, uint8_t command)
{
	switch (command) {
	case CMD_AUX_DISABLE:
		kbc->ram[0] |= I8042_CTR_AUXDIS;
		break;
	case CMD_AUX_ENABLE:
		kbc->ram[0] &= (uint8_t)~I8042_CTR_AUXDIS;
		break;
	case CMD_AUX_TEST:
		controller_reply(kbc, PORT_TEST_CLOCK_HIGH);
		break;
	case CMD_SELF_TEST:
		kbc->ram[0] |= I8042_CTR_SYSFLAG;
		controller_reply(kbc, SELF_TEST_PASSED);
		break;
	case CMD_KBD_TEST:
		controller_reply(kbc, PORT_TEST_PASSED);
		break;
	case CMD_KBD_DISABLE:
		kbc->ram[0] |= I8042_CTR_KBDDIS;
		break;
	case CMD_KBD_ENABLE:
		kbc->ram[0] &= (uint8_t)~I8042_CTR_KBDDIS;
		break;
	case CMD_READ_OUTPUT_PORT:
		controller_reply(kbc, kbc->output_port);
		break;
	case CMD_WRITE_OUTPUT_PORT:
	case CMD_WRITE_KBD_OUTPUT:
	case CMD_WRITE_AUX_OUTPUT:
	case CMD_WRITE_AUX:
		kbc->pending_command = command;
		break;
	default:
		if (command >= CMD_READ_RAM_FIRST && command <= CMD_READ_RAM_LAST) {
			controller_reply(kbc, kbc->ram[command - CMD_READ_RAM_FIRST]);
		} else if (command >= CMD_WRITE_RAM_FIRST && command <= CMD_WRITE_RAM_LAST) {
			kbc->pending_command = command;
		} else if (command >= CMD_PULSE_FIRST) {
			/* A 0 bit pulses that line; 0xFF pulses none (Linux's null command). */
			return !(command & OUTPUT_PORT_RESET);
		} else {
			log_debug("i8042: command 0x%02x ignored", command);
		}
		break;
	}
	return false;
}

static void i8042_write_command(void *opaque, uint64_t offset, uint64_t value, unsigned int size)
{
	struct i8042 *kbc = opaque;
	bool reset;

	(void)offset, (void)size;
	pthread_mutex_lock(&kbc->lock);
	kbc->last_write_was_command = true;
	kbc->pending_command = 0;  /* a new command abandons one still waiting for data */
	reset = controller_command(kbc, (uint8_t)value);
	fill_output(kbc);
	pthread_mutex_unlock(&kbc->lock);
	if (reset)
		kbc->reset(kbc->ctx);
}

/* The data byte of a controller command; returns true for a CPU reset. */
static bool controller_data(struct i8042 *kbc, uint8_t command, uint8_t value)
{
	switch (command) {
	case CMD_WRITE_OUTPUT_PORT:
		kbc->output_port = value;
		return !(value & OUTPUT_PORT_RESET);
	case CMD_WRITE_KBD_OUTPUT:
		controller_reply(kbc, value);
		break;
	case CMD_WRITE_AUX_OUTPUT:
		/* The byte comes back, but without the aux flag: there is no aux
		 * port, and Linux's loopback probe gives up on seeing that. */
		controller_reply(kbc, value);
		break;
	case CMD_WRITE_AUX:
		break;  /* no mouse to hear it */
	default:
		if (command == CMD_WRITE_RAM_FIRST)
			write_ctr(kbc, value);
		else
			kbc->ram[command - CMD_WRITE_RAM_FIRST] = value;
		break;
	}
	return false;
}

static void i8042_write_data(void *opaque, uint64_t offset, uint64_t value, unsigned int size)
{
	struct i8042 *kbc = opaque;
	uint8_t command;
	bool reset = false;

	(void)offset, (void)size;
	pthread_mutex_lock(&kbc->lock);
	kbc->last_write_was_command = false;
	command = kbc->pending_command;
	kbc->pending_command = 0;
	if (command) {
		reset = controller_data(kbc, command, (uint8_t)value);
	} else {
		/* Talking to the keyboard re-enables its port, as on real controllers. */
		kbc->ram[0] &= (uint8_t)~I8042_CTR_KBDDIS;
		keyboard_write(&kbc->kbd, (uint8_t)value);
	}
	fill_output(kbc);
	pthread_mutex_unlock(&kbc->lock);
	if (reset)
		kbc->reset(kbc->ctx);
}

static uint64_t i8042_read_data(void *opaque, uint64_t offset, unsigned int size)
{
	struct i8042 *kbc = opaque;
	uint8_t value;

	(void)offset, (void)size;
	pthread_mutex_lock(&kbc->lock);
	value = kbc->output;  /* an empty buffer reads as the last byte, as on hardware */
	if (kbc->obf) {
		kbc->obf = false;
		fill_output(kbc);
	}
	pthread_mutex_unlock(&kbc->lock);
	return value;
}

void i8042_press_ctrl_alt_del(struct i8042 *kbc)
{
	static const uint8_t keys[] = {
		SC2_LEFT_CTRL, SC2_LEFT_ALT, SC2_EXTENDED, SC2_DELETE,
		SC2_EXTENDED, SC2_BREAK, SC2_DELETE, SC2_BREAK, SC2_LEFT_ALT, SC2_BREAK, SC2_LEFT_CTRL,
	};
	struct ps2_keyboard *kbd = &kbc->kbd;

	pthread_mutex_lock(&kbc->lock);
	if (!kbd->scanning) {
		log_info("i8042: Ctrl-Alt-Del not sent: the guest has disabled the keyboard");
	} else if (I8042_QUEUE_SIZE - kbd->scancodes.count < sizeof(keys)) {
		/* All or nothing: half a sequence would leave keys held down. */
		log_info("i8042: Ctrl-Alt-Del not sent: the guest has not read the keys before");
	} else {
		for (size_t i = 0; i < sizeof(keys); i++)
			queue_push(&kbd->scancodes, keys[i]);
		fill_output(kbc);
	}
	pthread_mutex_unlock(&kbc->lock);
}

const struct iobus_ops i8042_data_ops = { .read = i8042_read_data, .write = i8042_write_data };
const struct iobus_ops i8042_command_ops = { .read = i8042_read_status, .write = i8042_write_command };
