/* A 16550A UART, as the guest's stock 8250 driver expects on COM1. */
#ifndef KVIO_HW_SERIAL8250_H
#define KVIO_HW_SERIAL8250_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/iobus.h"

#define SERIAL_COM1_BASE 0x3F8
#define SERIAL_COM1_IRQ 4
#define SERIAL_NR_PORTS 8
/* Host input waiting for the guest; larger than the 16-byte FIFO so that
 * pasted text is held back, not dropped, while the guest catches up. */
#define SERIAL_RX_BUFFER 4096

struct serial8250 {
	pthread_mutex_t lock;
	pthread_cond_t rx_space;
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	bool thr_empty_pending;   /* THRE interrupt waiting to be seen through IIR */
	bool irq_level;
	bool input_closed;
	uint8_t rx[SERIAL_RX_BUFFER];
	size_t rx_head, rx_count;
	int out_fd;
	void (*set_irq)(void *ctx, int level);
	void *irq_ctx;
};

extern const struct iobus_ops serial8250_ops;

void serial8250_init(struct serial8250 *uart, int out_fd, void (*set_irq)(void *ctx, int level), void *irq_ctx);
void serial8250_destroy(struct serial8250 *uart);

/* Queue host input for the guest; returns how many bytes fit (maybe 0). */
size_t serial8250_receive(struct serial8250 *uart, const uint8_t *buf, size_t len);
/* Block until the receive buffer has room; false once input is closed. */
bool serial8250_wait_rx_space(struct serial8250 *uart);
/* Wake and refuse any waiting writer: the machine is shutting down. */
void serial8250_close_input(struct serial8250 *uart);

#endif
