/* Binds the KVM-free e1000 model to a VM: BARs on the MMIO and port buses, INTx
 * on a shared IOAPIC pin, receive work (also when the guest refills the ring)
 * and the interrupt throttling timer on the I/O thread. */
#include "core/e1000_kvm.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "core/acpi.h"
#include "core/irq.h"
#include "util/log.h"

static void intx_set(void *ctx, bool asserted)
{
	struct e1000_kvm *dev = ctx;

	irq_shared_line_set(dev->vm, dev->intx_gsi, asserted);
}

static void rx_ready(struct event_handler *handler, uint32_t events)
{
	struct e1000_kvm *dev = (struct e1000_kvm *)((char *)handler - offsetof(struct e1000_kvm, rx));

	(void)events;
	e1000_backend_ready(dev->nic);
}

/* The guest gave receive buffers back while frames waited. Receiving here,
 * on the vCPU that wrote RDT, would hold the guest while the host copies
 * frames and runs its network stack; the I/O thread does it on another CPU. */
static void kick_receive(void *ctx)
{
	struct e1000_kvm *dev = ctx;
	uint64_t one = 1;

	if (write(dev->receive_kick.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("e1000: cannot wake receive: %s", strerror(errno));
}

/* Both fds below (an eventfd and a timerfd) hold a counter that only clears
 * their readiness: the device looks at its own state, not at the count.
 * EAGAIN means nothing was pending (a timer re-armed since it expired). */
static void clear_readiness(int fd, const char *what)
{
	uint64_t count;

	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_error("e1000: %s: %s", what, strerror(errno));
}

static void receive_kick_ready(struct event_handler *handler, uint32_t events)
{
	struct e1000_kvm *dev = (struct e1000_kvm *)((char *)handler - offsetof(struct e1000_kvm, receive_kick));

	(void)events;
	clear_readiness(handler->fd, "receive wakeup");
	e1000_backend_ready(dev->nic);
}

#define NS_PER_SEC 1000000000ULL

static uint64_t clock_now_ns(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Called with the device lock held, from a vCPU or the I/O thread. */
static void timer_arm(void *ctx, uint64_t deadline_ns)
{
	struct e1000_kvm *dev = ctx;
	struct itimerspec when = { .it_value = { .tv_sec = (time_t)(deadline_ns / NS_PER_SEC),
						 .tv_nsec = (long)(deadline_ns % NS_PER_SEC) } };

	/* Fails only on bad arguments; a held interrupt then waits for the next cause. */
	if (timerfd_settime(dev->timer.fd, TFD_TIMER_ABSTIME, &when, NULL) < 0)
		log_error("e1000: cannot arm the interrupt throttling timer: %s", strerror(errno));
}

static void timer_ready(struct event_handler *handler, uint32_t events)
{
	struct e1000_kvm *dev = (struct e1000_kvm *)((char *)handler - offsetof(struct e1000_kvm, timer));

	(void)events;
	clear_readiness(handler->fd, "interrupt throttling timer");
	e1000_timer_expired(dev->nic);  /* it reads the clock itself */
}

/* Writes to BAR 0 outside e1000_immediate_writes need no exit of their own:
 * KVM queues them and the next exit replays them. Without coalescing they
 * exit as before, so failure is only a note. */
static void coalesce_deferrable_writes(struct vm *vm, uint64_t bar)
{
	uint64_t from = 0;
	int err = 0;

	for (unsigned int i = 0; i <= e1000_nr_immediate_writes && !err; i++) {
		uint64_t to = i < e1000_nr_immediate_writes ? e1000_immediate_writes[i] : E1000_MMIO_SIZE;

		if (to > from)
			err = vm_coalesce_mmio(vm, bar + from, to - from);
		from = to + 4;
	}
	if (err && err != -ENOTSUP)
		log_info("e1000: every register write exits (KVM_REGISTER_COALESCED_MMIO: %s)", strerror(-err));
}

struct e1000_kvm *e1000_kvm_add(struct vm *vm, struct pci_bus *bus, struct io_thread *io, uint64_t *next_bar,
				uint16_t *next_io_port, struct net_backend *be, const uint8_t mac[6])
{
	uint64_t bar = pci_bar_align(*next_bar, E1000_MMIO_SIZE);
	uint64_t port = next_io_port ? pci_bar_align(*next_io_port, E1000_IO_SIZE) : 0;
	struct e1000_kvm *dev = calloc(1, sizeof(*dev));
	struct e1000_options opts = {
		.mem = &vm->mem, .backend = be, .set_irq = intx_set, .now_ns = clock_now_ns, .arm_timer = timer_arm,
		.kick_receive = kick_receive,
	};
	const char *what = "out of memory";

	if (!dev)
		goto fail_backend;
	dev->timer.fd = dev->receive_kick.fd = -1;
	what = "no room for its BARs";
	if (bar + E1000_MMIO_SIZE > PCI_MMIO32_END + 1 || port + E1000_IO_SIZE > 0x10000)
		goto fail_backend;
	dev->vm = vm;
	what = "cannot create its interrupt throttling timer";
	dev->timer = (struct event_handler){ .fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK),
					     .ready = timer_ready };
	if (dev->timer.fd < 0)
		goto fail_backend;
	what = "cannot create its receive wakeup";
	dev->receive_kick = (struct event_handler){ .fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
						    .ready = receive_kick_ready };
	if (dev->receive_kick.fd < 0)
		goto fail_backend;
	opts.irq_ctx = dev;
	opts.timer_ctx = dev;
	opts.kick_ctx = dev;
	opts.mmio_base = (uint32_t)bar;
	opts.io_base = (uint16_t)port;
	memcpy(opts.mac, mac, sizeof(opts.mac));
	dev->nic = e1000_create(&opts);
	if (!dev->nic) {
		be->ops->destroy(be);  /* e1000_create said why */
		close(dev->timer.fd);
		close(dev->receive_kick.fd);
		free(dev);
		return NULL;
	}
	what = "cannot map its BARs";
	if (iobus_register(&vm->mmio, bar, E1000_MMIO_SIZE, &e1000_mmio_ops, dev->nic) ||
	    (port && iobus_register(&vm->pio, port, E1000_IO_SIZE, &e1000_io_ops, dev->nic)))
		goto fail_nic;
	coalesce_deferrable_writes(vm, bar);
	what = "no free PCI slot";
	if (pci_bus_add(bus, e1000_pci_device(dev->nic)) < 0)
		goto fail_nic;
	/* Kept apart from the interrupt line register, which the guest may overwrite. */
	dev->intx_gsi = e1000_pci_device(dev->nic)->config[PCI_INTERRUPT_LINE];
	what = "cannot watch its backend";
	dev->rx = (struct event_handler){ .fd = be->ops->rx_fd(be, 0), .ready = rx_ready };
	if (io_thread_add_edge(io, &dev->rx))
		goto fail_nic;
	/* On the thread that runs receive; its handler takes the device lock as receive does. */
	what = "cannot watch its interrupt throttling timer";
	if (io_thread_add(io, &dev->timer))
		goto fail_nic;
	what = "cannot watch its receive wakeup";
	if (io_thread_add(io, &dev->receive_kick))
		goto fail_nic;
	*next_bar = bar + E1000_MMIO_SIZE;
	if (next_io_port)
		*next_io_port = (uint16_t)(port + E1000_IO_SIZE);
	return dev;

fail_nic:
	/* A registered range stays behind pointing at freed memory, as with virtio:
	 * setup failures end the VM before any vCPU runs. */
	e1000_destroy(dev->nic);
	close(dev->timer.fd);
	close(dev->receive_kick.fd);
	free(dev);
	log_error("e1000: %s", what);
	return NULL;
fail_backend:
	be->ops->destroy(be);
	if (dev && dev->timer.fd >= 0)
		close(dev->timer.fd);
	if (dev && dev->receive_kick.fd >= 0)
		close(dev->receive_kick.fd);
	free(dev);
	log_error("e1000: %s", what);
	return NULL;
}

void e1000_kvm_remove(struct e1000_kvm *dev)
{
	e1000_destroy(dev->nic);
	close(dev->timer.fd);
	close(dev->receive_kick.fd);
	free(dev);
}
