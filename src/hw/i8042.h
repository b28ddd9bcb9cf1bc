/* The i8042 keyboard controller with a PS/2 keyboard behind it: enough for the
 * guest's stock i8042 and atkbd drivers, so the host can press Ctrl-Alt-Del. */
#ifndef KVIO_HW_I8042_H
#define KVIO_HW_I8042_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/iobus.h"

#define I8042_DATA_PORT 0x60
#define I8042_COMMAND_PORT 0x64
#define I8042_KBD_IRQ 1

/* Status register. */
#define I8042_STR_OBF 0x01        /* a byte waits in the output buffer */
#define I8042_STR_IBF 0x02        /* never set: every write is handled at once */
#define I8042_STR_SYSFLAG 0x04    /* self-test passed (mirrors the CTR bit) */
#define I8042_STR_CMDDAT 0x08     /* the last write went to the command port */
#define I8042_STR_KEYLOCK 0x10    /* set: the keyboard is NOT inhibited */
#define I8042_STR_AUXDATA 0x20    /* never set: there is no aux (mouse) port */

/* Controller configuration byte ("CTR", internal RAM byte 0). */
#define I8042_CTR_KBDINT 0x01
#define I8042_CTR_AUXINT 0x02
#define I8042_CTR_SYSFLAG 0x04
#define I8042_CTR_IGNKEYLOCK 0x08
#define I8042_CTR_KBDDIS 0x10
#define I8042_CTR_AUXDIS 0x20
#define I8042_CTR_XLATE 0x40      /* not emulated: always reads 0 */

/* Bounded byte queue; a guest that never reads cannot make it grow. */
#define I8042_QUEUE_SIZE 16

struct i8042_queue {
	uint8_t buf[I8042_QUEUE_SIZE];
	unsigned int head, count;
};

/* The PS/2 keyboard on the first port. */
struct ps2_keyboard {
	struct i8042_queue replies;   /* answers to commands: go out before scan codes */
	struct i8042_queue scancodes; /* key presses, scan code set 2 */
	uint8_t pending_command;      /* a command waiting for its parameter byte, or 0 */
	uint8_t last_sent;            /* for the Resend command */
	bool scanning;                /* off after Disable (0xF5) until Enable (0xF4) */
};

struct i8042 {
	pthread_mutex_t lock;     /* vCPU port accesses vs. the monitor pressing keys */
	uint8_t ram[32];          /* ram[0] is the CTR */
	uint8_t output_port;
	uint8_t pending_command;  /* a controller command waiting for its data byte, or 0 */
	bool last_write_was_command;
	bool obf;
	uint8_t output;           /* the byte in the output buffer (kept after a read) */
	struct i8042_queue replies;  /* controller answers: go out before the keyboard's */
	struct ps2_keyboard kbd;
	void (*reset)(void *ctx);
	void (*set_irq)(void *ctx, int level);
	void *ctx;
};

/* Register one struct on both ports; the offset tells data from command. */
extern const struct iobus_ops i8042_data_ops;
extern const struct iobus_ops i8042_command_ops;

/* reset: the guest pulsed the CPU reset line; set_irq: IRQ 1's line. */
void i8042_init(struct i8042 *kbc, void (*reset)(void *ctx), void (*set_irq)(void *ctx, int level), void *ctx);

/* Press and release Ctrl, Alt and Delete, as a user at the keyboard would:
 * the guest's kernel signals its init (or reboots) as it is configured to.
 * Nothing happens while the guest keeps the keyboard disabled. */
void i8042_press_ctrl_alt_del(struct i8042 *kbc);

#endif
