/* VM lifecycle: open KVM, lay out guest RAM, load the kernel, wire the
 * emulated devices onto the buses, run the vCPUs, and stop on the first
 * reason (guest poweroff/reset, Ctrl-A x, a signal, an error). */
#include "core/vm.h"

#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/acpi.h"
#include "core/boot_x86.h"
#include "core/cpuid.h"
#include "core/e1000_kvm.h"
#include "core/irq.h"
#include "core/machine.h"
#include "core/sandbox.h"
#include "core/vcpu.h"
#include "core/virtio_kvm.h"
#include "hw/acpi_pm.h"
#include "hw/i8042.h"
#include "hw/pci.h"
#include "vhost/vhost_net.h"
#include "hw/serial8250.h"
#include "util/event_loop.h"
#include "util/log.h"
#include "util/io_thread.h"
#include "util/term.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/console.h"
#include "virtio/rng.h"
#include "virtio/vhost_user_blk.h"

#define KVM_DEVICE "/dev/kvm"
#define KVM_EXPECTED_API_VERSION 12
/* Intel needs these three pages for real-mode emulation; they sit just below
 * the BIOS area at the top of the 32-bit space, outside RAM and the PCI window. */
#define KVM_IDENTITY_MAP_ADDR 0xFFFBC000ULL
#define KVM_TSS_ADDR 0xFFFBD000ULL
#define CPUID1_ECX_VMX (1U << 5)
#define CPUID80000001_ECX_SVM (1U << 2)
#define BASE_CMDLINE "console=ttyS0"

#define EXIT_SETUP_ERROR 2
#define EXIT_RUNTIME_ERROR 1

void vm_request_stop(struct vm *vm, enum vm_stop_reason reason)
{
	int expected = VM_RUNNING;
	uint64_t one = 1;

	if (atomic_compare_exchange_strong(&vm->stop_reason, &expected, (int)reason) &&
	    write(vm->stop_eventfd, &one, sizeof(one)) < 0)
		log_error("cannot signal VM stop: %s", strerror(errno));
	/* Paused vCPUs, and a monitor waiting for them to park, look at the stop reason. */
	pthread_mutex_lock(&vm->vcpu_gate.lock);
	pthread_cond_broadcast(&vm->vcpu_gate.cond);
	pthread_mutex_unlock(&vm->vcpu_gate.lock);
}

/* True if the CPU has VT-x or AMD-V: what KVM needs to run an unmodified guest. */
static bool cpu_has_hardware_virtualization(void)
{
	unsigned int eax, ebx, ecx, edx;

	if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & CPUID1_ECX_VMX))
		return true;
	return __get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx) && (ecx & CPUID80000001_ECX_SVM);
}

static int open_kvm(struct vm *vm, unsigned int nr_cpus)
{
	struct stat st;
	int version, max_vcpus;
	long page, page_size;

	vm->kvm_fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		log_error("%s: %s", KVM_DEVICE, strerror(errno));
		return -1;
	}
	version = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_EXPECTED_API_VERSION) {
		log_error("%s: KVM API version %d, kvio needs %d", KVM_DEVICE, version, KVM_EXPECTED_API_VERSION);
		return -1;
	}
	/* PVM runs only guests built for it: a stock kernel would hang in its decompressor. */
	if (stat("/sys/module/kvm_pvm", &st) == 0) {
		log_error("%s is PVM-based (kvm_pvm) and cannot run unmodified guests; use hardware KVM or tests/testbed/run",
			  KVM_DEVICE);
		return -1;
	}
	if (!cpu_has_hardware_virtualization()) {
		log_error("%s: this CPU has no VT-x or AMD-V, so KVM cannot run unmodified guests", KVM_DEVICE);
		return -1;
	}
	max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max_vcpus <= 0)
		max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max_vcpus <= 0)
		max_vcpus = 4;  /* what the KVM API documents when neither capability exists */
	if (nr_cpus > (unsigned int)max_vcpus) {
		log_error("--cpus: %u is more than KVM allows on this host (%d)", nr_cpus, max_vcpus);
		return -1;
	}
	vm->vcpu_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->vcpu_mmap_size <= 0) {
		log_error("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		return -1;
	}
	page = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);
	page_size = sysconf(_SC_PAGESIZE);
	if (page > 0 && (page + 1) * page_size <= vm->vcpu_mmap_size) {
		vm->coalesced_offset = (size_t)(page * page_size);
		vm->coalesced_slots = (unsigned int)(((size_t)page_size - sizeof(struct kvm_coalesced_mmio_ring)) /
						     sizeof(struct kvm_coalesced_mmio));
	}
	return 0;
}

static int create_vm(struct vm *vm, uint64_t ram_size, bool shareable)
{
	int err;

	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		log_error("KVM_CREATE_VM: %s", strerror(errno));
		return -1;
	}
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0) {
		log_error("KVM_SET_TSS_ADDR: %s", strerror(errno));
		return -1;
	}
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){ KVM_IDENTITY_MAP_ADDR }) < 0) {
		log_error("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
		return -1;
	}
	if (irq_init(vm))
		return -1;
	vm->ioeventfd_any_length = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0;
	err = guest_mem_create(&vm->mem, ram_size, shareable);
	if (err) {
		log_error("--memory: cannot allocate %llu MiB of guest RAM: %s",
			  (unsigned long long)(ram_size >> 20), strerror(-err));
		return -1;
	}
	for (unsigned int i = 0; i < vm->mem.nr_regions; i++) {
		const struct guest_mem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region region = {
			.slot = i, .guest_phys_addr = r->gpa, .memory_size = r->size,
			.userspace_addr = (uint64_t)(uintptr_t)r->host,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
			log_error("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
			return -1;
		}
	}
	vm->supported_cpuid = cpuid_get_supported(vm->kvm_fd);
	return vm->supported_cpuid ? 0 : -1;
}

struct guest_files {
	int kernel_fd;
	int initrd_fd;  /* -1: no initrd */
};

static void close_guest_files(struct guest_files *files)
{
	if (files->kernel_fd >= 0)
		close(files->kernel_fd);
	if (files->initrd_fd >= 0)
		close(files->initrd_fd);
	files->kernel_fd = files->initrd_fd = -1;
}

static int open_input(const char *option, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		log_error("%s: cannot open '%s': %s", option, path, strerror(errno));
	return fd;
}

/* Open and check the kernel and initrd before touching KVM, so that bad
 * input is reported the same way on every host. */
static int open_guest_files(const struct vm_config *cfg, struct guest_files *files)
{
	uint8_t head[BZIMAGE_HEADER_BYTES];
	struct bzimage_info info;
	struct stat st;
	const char *why;
	ssize_t head_len;
	uint64_t low_ram = cfg->memory_bytes < GUEST_PCI_HOLE_START ? cfg->memory_bytes : GUEST_PCI_HOLE_START;

	files->initrd_fd = -1;
	files->kernel_fd = open_input("--kernel", cfg->kernel_path);
	if (files->kernel_fd < 0)
		goto fail;
	if (cfg->initrd_path[0]) {
		files->initrd_fd = open_input("--initrd", cfg->initrd_path);
		if (files->initrd_fd < 0)
			goto fail;
	}
	head_len = pread(files->kernel_fd, head, sizeof(head), 0);
	if (head_len < 0 || fstat(files->kernel_fd, &st) < 0) {
		log_error("--kernel: cannot read '%s': %s", cfg->kernel_path, strerror(errno));
		goto fail;
	}
	if (bzimage_parse(head, (size_t)head_len, (uint64_t)st.st_size, &info, &why)) {
		log_error("--kernel: '%s': %s", cfg->kernel_path, why);
		goto fail;
	}
	if (info.load_end > low_ram) {
		log_error("--memory: %llu MiB is too small for this kernel (it needs %llu MiB to decompress)",
			  (unsigned long long)(cfg->memory_bytes >> 20), (unsigned long long)(info.load_end >> 20) + 1);
		goto fail;
	}
	return 0;
fail:
	close_guest_files(files);
	return -1;
}

static int load_guest(struct vm *vm, const struct vm_config *cfg, const struct guest_files *files,
		      struct boot_x86_result *boot)
{
	char *cmdline = NULL;
	const char *why = NULL;
	uint64_t rsdp;
	int ret = -1;

	if (acpi_build_tables(&vm->mem, vm->nr_vcpus, &rsdp)) {
		log_error("cannot build ACPI tables for %u vCPUs", vm->nr_vcpus);
		return -1;
	}
	/* The last console= is /dev/console; COM1 stays listed for the early boot messages. */
	if (asprintf(&cmdline, "%s%s%s%s", BASE_CMDLINE, cfg->virtio_console ? " console=hvc0" : "",
		     cfg->append ? " " : "", cfg->append ? cfg->append : "") < 0)
		return -1;
	switch (boot_x86_load(&vm->mem, files->kernel_fd, files->initrd_fd, cmdline, rsdp, boot, &why)) {
	case BOOT_X86_OK:
		ret = 0;
		break;
	case BOOT_X86_BAD_KERNEL:
		log_error("--kernel: '%s': %s", cfg->kernel_path, why);
		break;
	case BOOT_X86_BAD_INITRD:
		log_error("--initrd: '%s': %s", cfg->initrd_path, why);
		break;
	case BOOT_X86_BAD_CMDLINE:
		log_error("--append: %s", why);
		break;
	case BOOT_X86_RAM_TOO_SMALL:
		log_error("--memory: %s", why);
		break;
	}
	free(cmdline);
	return ret;
}

static void com1_set_irq(void *ctx, int level)
{
	vm_irq_line(ctx, SERIAL_COM1_IRQ, level);
}

static void kbd_set_irq(void *ctx, int level)
{
	vm_irq_line(ctx, I8042_KBD_IRQ, level);
}

static void reset_requested(void *ctx)
{
	vm_request_stop(ctx, VM_STOP_REBOOT);
}

static void poweroff_requested(void *ctx)
{
	vm_request_stop(ctx, VM_STOP_POWEROFF);
}

static void quit_requested(void *ctx)
{
	vm_request_stop(ctx, VM_STOP_QUIT);
}

/* Console input while the monitor has the VM stopped is dropped (the UART
 * takes what fits its FIFO): waiting for a guest that does not run would
 * hold up the console, Ctrl-A c and Ctrl-A x included, and hvc0's input
 * would write guest RAM that stop promised to leave alone. */
static bool vm_paused(const struct machine *m)
{
	return atomic_load(&m->vm->vcpu_gate.paused);
}

static void hvc_input(void *ctx, const uint8_t *buf, size_t len)
{
	struct machine *m = ctx;

	if (!vm_paused(m))
		virtio_console_input(m->hvc, buf, len);
}

static void serial_input(void *ctx, const uint8_t *buf, size_t len)
{
	struct machine *m = ctx;

	while (len) {
		size_t n = serial8250_receive(&m->com1, buf, len);

		buf += n;
		len -= n;
		if (len && (vm_paused(m) || !serial8250_wait_rx_space(&m->com1)))
			return;
	}
}

static int add_virtio(struct vm *vm, struct machine *m, struct virtio_dev *vdev,
		      void (*destroy)(struct virtio_dev *vdev))
{
	if (!vdev)
		return -1;  /* the device said why */
	if (m->nr_virtio == MAX_VIRTIO_DEVICES) {
		log_error("too many virtio devices (at most %d)", MAX_VIRTIO_DEVICES);
		destroy(vdev);
		return -1;
	}
	m->virtio[m->nr_virtio] = virtio_kvm_add(vm, &m->pci, &m->io, &m->next_bar, &m->next_io_port, vdev, destroy);
	if (!m->virtio[m->nr_virtio])
		return -1;
	m->nr_virtio++;
	return 0;
}

/* vhost=on|auto: the kernel's vhost-net, or (auto only) a notice and kvio's own data path. */
static int open_vhost(const struct net_config *nic, struct vhost_net **vhost)
{
	const char *why = "unknown error";

	*vhost = NULL;
	if (nic->vhost == NET_VHOST_OFF)
		return 0;
	*vhost = vhost_net_open(nic->queues, &why);
	if (*vhost)
		return 0;
	if (nic->vhost == NET_VHOST_ON) {
		log_error("--net: vhost=on: %s: %s", why, strerror(errno));
		return -1;
	}
	log_info("--net: vhost=auto: %s; kvio moves the frames itself", why);
	return 0;
}

/* Where a NIC's frames go: a tap (maybe with vhost-net) or user-mode
 * networking, which runs on io (the thread serving queue pair 0). */
static struct net_backend *open_net_backend(const struct net_config *nic, struct io_thread *io)
{
	const char *why = "unknown error";
	struct net_backend *be;
	struct vhost_net *vhost;

	if (nic->backend == NET_BACKEND_USER) {
		be = net_user_open(nic->hostfwds, nic->nr_hostfwds, nic->mtu, &io->loop, &why);
		if (!be)
			log_error("--net: user: %s: %s", why, strerror(errno));
		return be;
	}
	if (nic->backend == NET_BACKEND_VHOST_USER) {
		be = net_vhost_user_open(nic->socket, nic->queues, nic->reconnect, &why);
		if (!be)
			log_error("--net: vhost-user '%s': %s: %s", nic->socket, why, strerror(errno));
		return be;
	}
	if (open_vhost(nic, &vhost))
		return NULL;
	be = net_tap_open(nic->ifname, nic->queues, vhost, &why);
	if (!be)
		log_error("--net: tap '%s': %s: %s", nic->ifname, why, strerror(errno));
	return be;
}

/* A NIC of either model on its backend. Without mac=, NIC i gets
 * 52:54:00:12:34:(56 + i), the addresses QEMU hands out, so guest-side setups
 * written for QEMU carry over. */
void machine_nic_mac(const struct net_config *nic, unsigned int index, uint8_t mac[6])
{
	const uint8_t qemu_default[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, (uint8_t)(0x56 + index) };

	memcpy(mac, nic->mac_set ? nic->mac : qemu_default, 6);
}

static int add_nic(struct vm *vm, struct machine *m, const struct net_config *nic, unsigned int index)
{
	struct virtio_net_options opts = { .queue_pairs = nic->queues };
	struct virtio_dev *vdev;

	machine_nic_mac(nic, index, opts.mac);
	opts.backend = open_net_backend(nic, io_pool_shared(&m->io));
	if (!opts.backend)
		return -1;
	if (nic->model == NET_MODEL_E1000) {
		m->e1000[m->nr_e1000] = e1000_kvm_add(vm, &m->pci, io_pool_shared(&m->io), &m->next_bar, &m->next_io_port,
						      opts.backend, opts.mac);
		return m->e1000[m->nr_e1000] ? (m->nr_e1000++, 0) : -1;
	}
	vdev = virtio_net_create(&opts);
	if (!vdev) {
		log_error("--net: cannot create the virtio-net device");
		opts.backend->ops->destroy(opts.backend);
		return -1;
	}
	return add_virtio(vm, m, vdev, virtio_net_destroy);
}

/* For the monitor's query-block: a regular file's or a block device's size, 0 if unknown. */
static uint64_t file_size(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t end = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;

	if (fd >= 0)
		close(fd);
	return end > 0 ? (uint64_t)end : 0;
}

/* The PCI devices the command line asks for: a new device is one line here. */
static int add_pci_devices(struct vm *vm, const struct vm_config *cfg, struct machine *m)
{
	const struct virtio_balloon_options balloon = { .deflate_on_oom = cfg->balloon_deflate_on_oom };

	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		const struct disk_config *d = &cfg->disks[i];
		struct virtio_blk_options opts = {
			.path = d->path, .read_only = d->read_only, .id = d->id, .queues = d->queues,
		};

		if (!d->vhost_user)
			m->disk_bytes[i] = file_size(d->path);
		if (d->vhost_user ? add_virtio(vm, m, vhost_user_blk_create(d->path, d->queues), vhost_user_blk_destroy)
				  : add_virtio(vm, m, virtio_blk_create(&opts), virtio_blk_destroy))
			return -1;
	}
	for (unsigned int i = 0; i < cfg->nr_nics; i++) {
		if (add_nic(vm, m, &cfg->nics[i], i))
			return -1;
	}
	if (cfg->rng && add_virtio(vm, m, virtio_rng_create(), virtio_rng_destroy))
		return -1;
	if (cfg->balloon) {
		m->balloon = virtio_balloon_create(&vm->mem, &balloon);
		if (add_virtio(vm, m, m->balloon, virtio_balloon_destroy))
			return -1;
		virtio_balloon_set_actual_hook(m->balloon, machine_balloon_changed, m);
	}
	if (cfg->virtio_console) {
		m->hvc = virtio_console_create(STDOUT_FILENO);
		if (add_virtio(vm, m, m->hvc, virtio_console_destroy))
			return -1;
	}
	return 0;
}

static int setup_machine(struct vm *vm, const struct vm_config *cfg, struct machine *m)
{
	int err = 0;

	memset(m, 0, sizeof(*m));  /* device counts and pointers start empty */
	m->vm = vm;
	m->cfg = cfg;
	/* The socket now: the sandbox allows no bind or listen later. */
	m->mon = monitor_create(cfg->monitor_path[0] ? cfg->monitor_path : NULL, &machine_monitor_ops, m);
	if (!m->mon)
		return -1;
	serial8250_init(&m->com1, STDOUT_FILENO, com1_set_irq, vm);
	i8042_init(&m->kbc, reset_requested, kbd_set_irq, vm);
	acpi_pm_init(&m->pm, poweroff_requested, vm);
	pci_bus_init(&m->pci);
	m->next_bar = PCI_MMIO32_START;
	m->next_io_port = PCI_IO_START;
	if (!io_pool_add(&m->io, "kvio-io"))
		return -1;

	err |= iobus_register(&vm->pio, SERIAL_COM1_BASE, SERIAL_NR_PORTS, &serial8250_ops, &m->com1);
	err |= iobus_register(&vm->pio, I8042_DATA_PORT, 1, &i8042_data_ops, &m->kbc);
	err |= iobus_register(&vm->pio, I8042_COMMAND_PORT, 1, &i8042_command_ops, &m->kbc);
	err |= iobus_register(&vm->pio, ACPI_PM_PORT, ACPI_PM_NR_PORTS, &acpi_pm_ops, &m->pm);
	err |= iobus_register(&vm->pio, PCI_CONFIG_ADDRESS_PORT, 4, &pci_config_address_ops, &m->pci);
	err |= iobus_register(&vm->pio, PCI_CONFIG_DATA_PORT, 4, &pci_config_data_ops, &m->pci);
	if (err) {
		log_error("cannot register the emulated devices' ports");
		return -1;
	}
	return add_pci_devices(vm, cfg, m);
}

static void teardown_machine(struct machine *m)
{
	/* Devices' own threads, then the I/O threads: both call into the devices.
	 * The I/O threads' loops go last: a backend leaves its loop as it goes. */
	for (unsigned int i = 0; i < m->nr_virtio; i++)
		virtio_kvm_quiesce(m->virtio[i]);
	io_pool_stop(&m->io);
	for (unsigned int i = 0; i < m->nr_virtio; i++)
		virtio_kvm_remove(m->virtio[i]);
	for (unsigned int i = 0; i < m->nr_e1000; i++)
		e1000_kvm_remove(m->e1000[i]);
	io_pool_destroy(&m->io);
	pci_bus_destroy(&m->pci);
	serial8250_destroy(&m->com1);
	monitor_destroy(m->mon);
}

/* Signals that stop the VM; read through a signalfd by the main loop. */
static void stop_signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGQUIT);
}

struct main_loop {
	struct event_loop loop;
	struct event_handler stop;
	struct event_handler signals;
	struct vm *vm;
};

static void stop_ready(struct event_handler *handler, uint32_t events)
{
	struct main_loop *ml = (struct main_loop *)((char *)handler - offsetof(struct main_loop, stop));

	(void)events;
	event_loop_stop(&ml->loop);
}

static void signal_ready(struct event_handler *handler, uint32_t events)
{
	struct main_loop *ml = (struct main_loop *)((char *)handler - offsetof(struct main_loop, signals));
	struct signalfd_siginfo info;

	(void)events;
	if (read(handler->fd, &info, sizeof(info)) != sizeof(info))
		return;
	ml->vm->stop_signal = (int)info.ssi_signo;
	vm_request_stop(ml->vm, VM_STOP_SIGNAL);
}

static int exit_status(const struct vm *vm)
{
	switch (atomic_load(&vm->stop_reason)) {
	case VM_STOP_POWEROFF:
	case VM_STOP_REBOOT:
	case VM_STOP_QUIT:
	case VM_STOP_MONITOR_QUIT:
	case VM_STOP_MONITOR_RESET:
		return 0;
	case VM_STOP_SIGNAL:
		return 128 + vm->stop_signal;
	default:
		return EXIT_RUNTIME_ERROR;
	}
}

static char *console_monitor(void *ctx, const char *line)
{
	return monitor_human(ctx, line);
}

/* QMP's SHUTDOWN event: who asked (the guest or the host) and QEMU's ShutdownCause. */
static void announce_shutdown(struct vm *vm, struct monitor *mon)
{
	static const struct {
		bool guest;
		const char *reason;
	} causes[] = {
		[VM_STOP_POWEROFF] = { true, "guest-shutdown" },
		[VM_STOP_REBOOT] = { true, "guest-reset" },
		[VM_STOP_QUIT] = { false, "host-ui" },
		[VM_STOP_MONITOR_QUIT] = { false, "host-qmp-quit" },
		[VM_STOP_MONITOR_RESET] = { false, "host-qmp-system-reset" },
		[VM_STOP_SIGNAL] = { false, "host-signal" },
		[VM_STOP_ERROR] = { false, "host-error" },
	};
	int reason = atomic_load(&vm->stop_reason);

	if (reason <= VM_RUNNING || reason > VM_STOP_ERROR)
		return;
	monitor_emit(mon, "SHUTDOWN", json_pack("{s:b,s:s}", "guest", causes[reason].guest, "reason",
						 causes[reason].reason));
	monitor_flush(mon, 500);
}

static int run_until_stopped(struct vm *vm, struct machine *m)
{
	struct main_loop ml = { .vm = vm, .loop = { .epoll_fd = -1 } };
	struct term_input console = {
		.sink = m->hvc ? hvc_input : serial_input, .sink_ctx = m,
		.quit = quit_requested, .quit_ctx = vm,
		.monitor = console_monitor, .monitor_ctx = m->mon,
	};
	unsigned int started = 0;
	sigset_t mask;
	int ret = -1;

	stop_signal_set(&mask);
	ml.signals.fd = signalfd(-1, &mask, SFD_CLOEXEC);
	ml.signals.ready = signal_ready;
	ml.stop.fd = vm->stop_eventfd;
	ml.stop.ready = stop_ready;
	if (ml.signals.fd < 0 || event_loop_init(&ml.loop) || event_loop_add(&ml.loop, &ml.signals, EPOLLIN) ||
	    event_loop_add(&ml.loop, &ml.stop, EPOLLIN)) {
		log_error("cannot set up the main loop: %s", strerror(errno));
		goto out;
	}
	if (monitor_start(m->mon, &ml.loop))
		goto out;

	term_init();
	if (term_start_input(&console) || io_pool_start(&m->io))
		goto out;
	for (; started < vm->nr_vcpus; started++)
		if (vcpu_start(&vm->vcpus[started]))
			break;
	if (started == vm->nr_vcpus && event_loop_run(&ml.loop) == 0)
		ret = 0;
	if (started < vm->nr_vcpus)
		vm_request_stop(vm, VM_STOP_ERROR);
	announce_shutdown(vm, m->mon);

	/* The console first: its monitor could otherwise stop the VM again while it is torn down. */
	serial8250_close_input(&m->com1);
	if (m->hvc)
		virtio_console_close_input(m->hvc);
	term_stop_input();
	for (unsigned int i = 0; i < started; i++)
		vcpu_stop(&vm->vcpus[i]);
	io_pool_stop(&m->io);
	term_restore();
out:
	monitor_stop(m->mon);  /* the loop is about to go: no more clients or events on it */
	event_loop_destroy(&ml.loop);
	if (ml.signals.fd >= 0)
		close(ml.signals.fd);
	return ret;
}

int vm_coalesce_mmio(struct vm *vm, uint64_t addr, uint64_t len)
{
	struct kvm_coalesced_mmio_zone zone = { .addr = addr, .size = (uint32_t)len };

	if (!vm->coalesced_offset || len > UINT32_MAX)
		return -ENOTSUP;
	return ioctl(vm->vm_fd, KVM_REGISTER_COALESCED_MMIO, &zone) < 0 ? -errno : 0;
}

void vm_replay_coalesced_mmio(struct vm *vm)
{
	struct kvm_coalesced_mmio_ring *ring = vm->coalesced_ring;

	/* Unlocked look first: on most exits the ring is empty. */
	if (!ring || __atomic_load_n(&ring->first, __ATOMIC_RELAXED) == __atomic_load_n(&ring->last, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&vm->coalesced_lock);
	iobus_replay_coalesced(&vm->mmio, ring, vm->coalesced_slots);
	pthread_mutex_unlock(&vm->coalesced_lock);
}

static void destroy_vm(struct vm *vm)
{
	for (unsigned int i = 0; vm->vcpus && i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	free(vm->supported_cpuid);
	irq_destroy(vm);
	guest_mem_destroy(&vm->mem);
	iobus_destroy(&vm->pio);
	iobus_destroy(&vm->mmio);
	if (vm->stop_eventfd >= 0)
		close(vm->stop_eventfd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
}

int vm_run(const struct vm_config *cfg)
{
	struct vm vm = { .kvm_fd = -1, .vm_fd = -1, .stop_eventfd = -1, .mem = { .fd = -1 },
			 .coalesced_lock = PTHREAD_MUTEX_INITIALIZER };
	struct machine machine;
	struct boot_x86_result boot;
	struct guest_files files = { .kernel_fd = -1, .initrd_fd = -1 };
	bool machine_ready = false;
	sigset_t blocked;
	int status = EXIT_SETUP_ERROR, ret;

	/* Block before any thread exists so that only the main loop's signalfd
	 * sees stop signals, and only vCPU threads (which unblock it) get kicks. */
	stop_signal_set(&blocked);
	sigaddset(&blocked, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &blocked, NULL);
	signal(SIGPIPE, SIG_IGN);
	vcpu_install_kick_handler();

	atomic_init(&vm.stop_reason, VM_RUNNING);
	pthread_mutex_init(&vm.vcpu_gate.lock, NULL);
	pthread_cond_init(&vm.vcpu_gate.cond, NULL);
	vm.nr_vcpus = cfg->cpus;
	iobus_init(&vm.pio, "pio");
	iobus_init(&vm.mmio, "mmio");
	vm.stop_eventfd = eventfd(0, EFD_CLOEXEC);
	if (vm.stop_eventfd < 0) {
		log_error("eventfd: %s", strerror(errno));
		goto out;
	}
	if (open_guest_files(cfg, &files))
		goto out;
	ret = open_kvm(&vm, cfg->cpus) || create_vm(&vm, cfg->memory_bytes, config_shares_memory(cfg)) ||
	      load_guest(&vm, cfg, &files, &boot);
	close_guest_files(&files);
	if (ret)
		goto out;
	machine_ready = true;
	if (setup_machine(&vm, cfg, &machine))
		goto out;

	status = EXIT_RUNTIME_ERROR;
	vm.vcpus = calloc(vm.nr_vcpus, sizeof(*vm.vcpus));
	if (!vm.vcpus)
		goto out;
	for (unsigned int i = 0; i < vm.nr_vcpus; i++)
		vm.vcpus[i].fd = -1;
	for (unsigned int i = 0; i < vm.nr_vcpus; i++)
		if (vcpu_init(&vm.vcpus[i], &vm, i, &boot))
			goto out;
	/* Everything is open and mapped: from here on only the run-time syscalls,
	 * on this thread and every thread started from now on. */
	if (sandbox_install(cfg)) {
		status = EXIT_SETUP_ERROR;
		goto out;
	}
	if (run_until_stopped(&vm, &machine) == 0)
		status = exit_status(&vm);
	if (atomic_load(&vm.stop_reason) == VM_STOP_SIGNAL)
		log_info("stopped by signal %d", vm.stop_signal);
	else if (atomic_load(&vm.stop_reason) == VM_STOP_QUIT)
		log_info("terminated by Ctrl-A x");
	else if (atomic_load(&vm.stop_reason) == VM_STOP_MONITOR_QUIT)
		log_info("quit by the monitor");
	else if (atomic_load(&vm.stop_reason) == VM_STOP_MONITOR_RESET)
		log_info("reset by the monitor (kvio exits on a reset)");
out:
	if (machine_ready)
		teardown_machine(&machine);
	destroy_vm(&vm);
	return status;
}
