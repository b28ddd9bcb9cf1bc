/* 16550A UART: what the Linux 8250 driver relies on, driven through its ports. */
#include "unit.h"

#include <linux/serial_reg.h>
#include <string.h>
#include <unistd.h>

#include "hw/serial8250.h"

static struct serial8250 uart;
static int pipe_fds[2];
static int irq_level, irq_changes;

static void set_irq(void *ctx, int level)
{
	(void)ctx;
	irq_level = level;
	irq_changes++;
}

static uint8_t rd(unsigned int reg)
{
	return (uint8_t)serial8250_ops.read(&uart, reg, 1);
}

static void wr(unsigned int reg, uint8_t value)
{
	serial8250_ops.write(&uart, reg, value, 1);
}

static int setup(void **state)
{
	(void)state;
	if (pipe(pipe_fds))
		return -1;
	serial8250_init(&uart, pipe_fds[1], set_irq, NULL);
	irq_level = irq_changes = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	serial8250_destroy(&uart);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
	return 0;
}

static void test_transmit_reaches_host(void **state)
{
	char buf[8] = { 0 };

	(void)state;
	assert_true(rd(UART_LSR) & UART_LSR_THRE);
	wr(UART_TX, 'o');
	wr(UART_TX, 'k');
	assert_int_equal(read(pipe_fds[0], buf, sizeof(buf)), 2);
	assert_string_equal(buf, "ok");
	assert_true(rd(UART_LSR) & UART_LSR_TEMT);
}

static void test_scratch_and_divisor_latch(void **state)
{
	(void)state;
	wr(UART_SCR, 0xA5);
	assert_int_equal(rd(UART_SCR), 0xA5);
	wr(UART_LCR, UART_LCR_DLAB | UART_LCR_WLEN8);
	wr(UART_DLL, 0x01);
	wr(UART_DLM, 0x02);
	assert_int_equal(rd(UART_DLL), 0x01);
	assert_int_equal(rd(UART_DLM), 0x02);
	wr(UART_LCR, UART_LCR_WLEN8);
	assert_int_equal(rd(UART_IER), 0);  /* the latch no longer shadows IER */
}

static void test_thre_interrupt(void **state)
{
	(void)state;
	wr(UART_MCR, UART_MCR_OUT2);
	assert_int_equal(rd(UART_IIR) & 0x0F, UART_IIR_NO_INT);
	/* Enabling THRI with an empty holding register interrupts at once ... */
	wr(UART_IER, UART_IER_THRI);
	assert_int_equal(irq_level, 1);
	/* ... and reading IIR while it is the source acknowledges it. */
	assert_int_equal(rd(UART_IIR) & 0x0F, UART_IIR_THRI);
	assert_int_equal(irq_level, 0);
	assert_int_equal(rd(UART_IIR) & 0x0F, UART_IIR_NO_INT);
	/* Each transmitted byte empties the register again. */
	wr(UART_TX, 'x');
	assert_int_equal(irq_level, 1);
	wr(UART_IER, 0);
	assert_int_equal(irq_level, 0);
}

static void test_receive_interrupt_and_order(void **state)
{
	(void)state;
	wr(UART_MCR, UART_MCR_OUT2);
	wr(UART_IER, UART_IER_RDI);
	assert_int_equal(irq_level, 0);
	assert_int_equal(serial8250_receive(&uart, (const uint8_t *)"hi", 2), 2);
	assert_int_equal(irq_level, 1);
	assert_true(rd(UART_LSR) & UART_LSR_DR);
	assert_int_equal(rd(UART_IIR) & 0x0F, UART_IIR_RDI);
	assert_int_equal(rd(UART_RX), 'h');
	assert_int_equal(irq_level, 1);
	assert_int_equal(rd(UART_RX), 'i');
	assert_int_equal(irq_level, 0);
	assert_false(rd(UART_LSR) & UART_LSR_DR);
}

static void test_out2_gates_interrupt(void **state)
{
	(void)state;
	wr(UART_MCR, 0);
	wr(UART_IER, UART_IER_RDI);
	assert_int_equal(serial8250_receive(&uart, (const uint8_t *)"a", 1), 1);
	assert_int_equal(irq_level, 0);
	wr(UART_MCR, UART_MCR_OUT2);
	assert_int_equal(irq_level, 1);
}

static void test_receive_buffer_bounded(void **state)
{
	static uint8_t big[SERIAL_RX_BUFFER + 100];

	(void)state;
	memset(big, 'z', sizeof(big));
	assert_int_equal(serial8250_receive(&uart, big, sizeof(big)), SERIAL_RX_BUFFER);
	assert_int_equal(serial8250_receive(&uart, big, 1), 0);
	assert_int_equal(rd(UART_RX), 'z');
	assert_int_equal(serial8250_receive(&uart, big, 5), 1);
	serial8250_close_input(&uart);
	assert_false(serial8250_wait_rx_space(&uart));
}

static void test_fifo_and_loopback(void **state)
{
	(void)state;
	wr(UART_FCR, UART_FCR_ENABLE_FIFO);
	assert_int_equal(rd(UART_IIR) & 0xC0, 0xC0);  /* how Linux tells a 16550A */
	wr(UART_MCR, UART_MCR_LOOP | UART_MCR_RTS | UART_MCR_OUT2);
	assert_int_equal(rd(UART_MSR) & 0xF0, UART_MSR_CTS | UART_MSR_DCD);
	wr(UART_TX, 'L');
	assert_int_equal(rd(UART_RX), 'L');
	wr(UART_MCR, 0);
	assert_int_equal(rd(UART_MSR) & 0xF0, UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_transmit_reaches_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scratch_and_divisor_latch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thre_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_receive_interrupt_and_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out2_gates_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_receive_buffer_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_and_loopback, setup, teardown),
	};

	return cmocka_run_group_tests_name("serial8250", tests, NULL, NULL);
}
