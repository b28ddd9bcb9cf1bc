/* 16550A UART emulation: transmit goes straight to a host fd, receive comes
 * from a buffer the terminal thread fills. The interrupt is recomputed after
 * every register access, as the chip's INTR pin would be. */
#include "hw/serial8250.h"

#include <errno.h>
#include <linux/serial_reg.h>
#include <string.h>
#include <unistd.h>

#define MSR_IDLE (UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS)

void serial8250_init(struct serial8250 *uart, int out_fd, void (*set_irq)(void *ctx, int level), void *irq_ctx)
{
	memset(uart, 0, sizeof(*uart));
	pthread_mutex_init(&uart->lock, NULL);
	pthread_cond_init(&uart->rx_space, NULL);
	uart->lsr = UART_LSR_TEMT | UART_LSR_THRE;
	uart->msr = MSR_IDLE;
	uart->mcr = UART_MCR_OUT2;
	uart->dll = 12;  /* 9600 baud, as after a BIOS */
	uart->out_fd = out_fd;
	uart->set_irq = set_irq;
	uart->irq_ctx = irq_ctx;
}

void serial8250_destroy(struct serial8250 *uart)
{
	pthread_cond_destroy(&uart->rx_space);
	pthread_mutex_destroy(&uart->lock);
}

/* Highest-priority pending interrupt, as IIR reports it. */
static uint8_t pending_iir(const struct serial8250 *uart)
{
	if ((uart->ier & UART_IER_RDI) && uart->rx_count)
		return UART_IIR_RDI;
	if ((uart->ier & UART_IER_THRI) && uart->thr_empty_pending)
		return UART_IIR_THRI;
	return UART_IIR_NO_INT;
}

static void update_irq(struct serial8250 *uart)
{
	/* OUT2 gates the interrupt onto the ISA bus on PC-compatible boards. */
	bool level = pending_iir(uart) != UART_IIR_NO_INT && (uart->mcr & UART_MCR_OUT2);

	if (level != uart->irq_level) {
		uart->irq_level = level;
		uart->set_irq(uart->irq_ctx, level);
	}
}

static void transmit(struct serial8250 *uart, uint8_t byte)
{
	if (uart->mcr & UART_MCR_LOOP) {
		if (uart->rx_count < SERIAL_RX_BUFFER) {
			uart->rx[(uart->rx_head + uart->rx_count) % SERIAL_RX_BUFFER] = byte;
			uart->rx_count++;
		}
	} else {
		while (write(uart->out_fd, &byte, 1) < 0 && errno == EINTR)
			;
	}
	/* The byte leaves at once, so the holding register is empty again. */
	uart->thr_empty_pending = true;
}

static uint8_t modem_status(const struct serial8250 *uart)
{
	uint8_t mcr = uart->mcr;

	if (!(mcr & UART_MCR_LOOP))
		return uart->msr;
	/* Loopback wires the modem control outputs to the status inputs. */
	return (uint8_t)(((mcr & UART_MCR_DTR) ? UART_MSR_DSR : 0) | ((mcr & UART_MCR_RTS) ? UART_MSR_CTS : 0) |
			 ((mcr & UART_MCR_OUT1) ? UART_MSR_RI : 0) | ((mcr & UART_MCR_OUT2) ? UART_MSR_DCD : 0));
}

static uint64_t serial_read(void *opaque, uint64_t offset, unsigned int size)
{
	struct serial8250 *uart = opaque;
	bool dlab;
	uint8_t value = 0;

	(void)size;
	pthread_mutex_lock(&uart->lock);
	dlab = uart->lcr & UART_LCR_DLAB;
	switch (offset) {
	case UART_RX:
		if (dlab) {
			value = uart->dll;
		} else if (uart->rx_count) {
			value = uart->rx[uart->rx_head];
			uart->rx_head = (uart->rx_head + 1) % SERIAL_RX_BUFFER;
			uart->rx_count--;
			pthread_cond_signal(&uart->rx_space);
		}
		break;
	case UART_IER:
		value = dlab ? uart->dlm : uart->ier;
		break;
	case UART_IIR:
		value = pending_iir(uart);
		/* Reading IIR acknowledges a THRE interrupt, and only that one. */
		if (value == UART_IIR_THRI)
			uart->thr_empty_pending = false;
		if (uart->fcr & UART_FCR_ENABLE_FIFO)
			value |= 0xC0;
		break;
	case UART_LCR:
		value = uart->lcr;
		break;
	case UART_MCR:
		value = uart->mcr;
		break;
	case UART_LSR:
		value = uart->lsr | (uart->rx_count ? UART_LSR_DR : 0);
		break;
	case UART_MSR:
		value = modem_status(uart);
		break;
	case UART_SCR:
		value = uart->scr;
		break;
	}
	update_irq(uart);
	pthread_mutex_unlock(&uart->lock);
	return value;
}

static void serial_write(void *opaque, uint64_t offset, uint64_t value64, unsigned int size)
{
	struct serial8250 *uart = opaque;
	uint8_t value = (uint8_t)value64;
	bool dlab;

	(void)size;
	pthread_mutex_lock(&uart->lock);
	dlab = uart->lcr & UART_LCR_DLAB;
	switch (offset) {
	case UART_TX:
		if (dlab)
			uart->dll = value;
		else
			transmit(uart, value);
		break;
	case UART_IER:
		if (dlab) {
			uart->dlm = value;
			break;
		}
		/* Enabling the THRE interrupt with the holding register empty raises it at once. */
		if ((value & UART_IER_THRI) && !(uart->ier & UART_IER_THRI))
			uart->thr_empty_pending = true;
		uart->ier = value & 0x0F;
		break;
	case UART_FCR:
		uart->fcr = value & (UART_FCR_ENABLE_FIFO | UART_FCR_TRIGGER_MASK);
		if (value & UART_FCR_CLEAR_RCVR) {
			uart->rx_head = uart->rx_count = 0;
			pthread_cond_signal(&uart->rx_space);
		}
		break;
	case UART_LCR:
		uart->lcr = value;
		break;
	case UART_MCR:
		uart->mcr = value & 0x1F;
		break;
	case UART_SCR:
		uart->scr = value;
		break;
	default:
		break;  /* LSR and MSR are read-only. */
	}
	update_irq(uart);
	pthread_mutex_unlock(&uart->lock);
}

const struct iobus_ops serial8250_ops = { .read = serial_read, .write = serial_write };

size_t serial8250_receive(struct serial8250 *uart, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&uart->lock);
	/* In loopback the receiver listens to the transmitter only. */
	if (!(uart->mcr & UART_MCR_LOOP)) {
		for (; n < len && uart->rx_count < SERIAL_RX_BUFFER; n++) {
			uart->rx[(uart->rx_head + uart->rx_count) % SERIAL_RX_BUFFER] = buf[n];
			uart->rx_count++;
		}
	} else {
		n = len;
	}
	update_irq(uart);
	pthread_mutex_unlock(&uart->lock);
	return n;
}

bool serial8250_wait_rx_space(struct serial8250 *uart)
{
	bool open;

	pthread_mutex_lock(&uart->lock);
	while (uart->rx_count == SERIAL_RX_BUFFER && !uart->input_closed)
		pthread_cond_wait(&uart->rx_space, &uart->lock);
	open = !uart->input_closed;
	pthread_mutex_unlock(&uart->lock);
	return open;
}

void serial8250_close_input(struct serial8250 *uart)
{
	pthread_mutex_lock(&uart->lock);
	uart->input_closed = true;
	pthread_cond_broadcast(&uart->rx_space);
	pthread_mutex_unlock(&uart->lock);
}
