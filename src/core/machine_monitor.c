/* The monitor's view of the machine: run state, stop/cont, power requests,
 * the balloon, the vCPUs' registers and guest memory, and a description of
 * the devices for the query commands. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/cpuid.h"
#include "core/machine.h"
#include "core/vcpu.h"
#include "util/log.h"
#include "virtio/balloon.h"

#define BALLOON_STATS_WAIT_MS 250  /* query-balloon asks the guest for fresh statistics this long */

static enum monitor_run_state run_state(void *ctx)
{
	struct machine *m = ctx;

	if (atomic_load(&m->vm->stop_reason) != VM_RUNNING)
		return MONITOR_SHUTDOWN;
	return m->paused ? MONITOR_PAUSED : MONITOR_RUNNING;
}

/* Paused: no vCPU runs and none of kvio's device threads touches a queue
 * (console input is dropped meanwhile: see vm.c). Rings handed to vhost-net
 * or a vhost-user backend keep being served by them: buffers the guest
 * posted before the stop may still complete. The guest's kvm-clock is held,
 * so the pause does not count as time that passed (as QEMU does);
 * KVM_KVMCLOCK_CTRL keeps the guest's watchdogs from blaming it on a stuck CPU. */
static int stop(void *ctx)
{
	struct machine *m = ctx;

	vcpus_pause(m->vm);
	io_pool_pause(&m->io);
	for (unsigned int i = 0; i < m->vm->nr_vcpus; i++)
		ioctl(m->vm->vcpus[i].fd, KVM_KVMCLOCK_CTRL, 0);  /* EINVAL if the guest has no kvm-clock */
	if (ioctl(m->vm->vm_fd, KVM_GET_CLOCK, &m->paused_clock) < 0) {
		log_warn("monitor: KVM_GET_CLOCK: %s; the guest clock will jump at cont", strerror(errno));
		m->paused_clock.clock = 0;
	}
	m->paused = true;
	return 0;
}

static int cont(void *ctx)
{
	struct machine *m = ctx;
	struct kvm_clock_data clock = { .clock = m->paused_clock.clock };

	if (clock.clock && ioctl(m->vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
		log_warn("monitor: KVM_SET_CLOCK: %s", strerror(errno));
	io_pool_resume(&m->io);
	vcpus_resume(m->vm);
	m->paused = false;
	return 0;
}

/* Ctrl-Alt-Del on the PS/2 keyboard: the default guest's init powers off on
 * it. Not an ACPI power button: with hardware-reduced ACPI that needs a GED
 * device and a daemon in the guest (acpid, logind) to act on the key it
 * sends, which a small initramfs does not have. */
static void powerdown(void *ctx)
{
	struct machine *m = ctx;

	i8042_press_ctrl_alt_del(&m->kbc);
}

static void reset(void *ctx)
{
	struct machine *m = ctx;

	vm_request_stop(m->vm, VM_STOP_MONITOR_RESET);
}

static void quit(void *ctx)
{
	struct machine *m = ctx;

	vm_request_stop(m->vm, VM_STOP_MONITOR_QUIT);
}

static void describe_disks(const struct machine *m, struct monitor_machine *out)
{
	for (unsigned int i = 0; i < m->cfg->nr_disks && out->nr_disks < MONITOR_MAX_DEVICES; i++) {
		const struct disk_config *d = &m->cfg->disks[i];
		struct monitor_disk *disk = &out->disks[out->nr_disks++];

		snprintf(disk->name, sizeof(disk->name), "disk%u", i);
		snprintf(disk->path, sizeof(disk->path), "%s", d->path);
		disk->read_only = d->read_only;
		disk->vhost_user = d->vhost_user;
		disk->size = m->disk_bytes[i];
	}
}

static void describe_nics(const struct machine *m, struct monitor_machine *out)
{
	for (unsigned int i = 0; i < m->cfg->nr_nics && out->nr_nics < MONITOR_MAX_DEVICES; i++) {
		const struct net_config *n = &m->cfg->nics[i];
		struct monitor_nic *nic = &out->nics[out->nr_nics++];
		static const char *const vhost[] = { [NET_VHOST_OFF] = "off", [NET_VHOST_ON] = "on",
						     [NET_VHOST_AUTO] = "auto" };

		snprintf(nic->name, sizeof(nic->name), "net%u", i);
		snprintf(nic->model, sizeof(nic->model), "%s", n->model == NET_MODEL_E1000 ? "e1000" : "virtio-net-pci");
		machine_nic_mac(n, i, nic->mac);
		nic->queues = n->queues;
		if (n->backend == NET_BACKEND_USER)
			snprintf(nic->backend, sizeof(nic->backend), "type=user,net=10.0.2.0/24,host=10.0.2.2");
		else if (n->backend == NET_BACKEND_VHOST_USER)
			snprintf(nic->backend, sizeof(nic->backend), "type=vhost-user,socket=%.80s", n->socket);
		else
			snprintf(nic->backend, sizeof(nic->backend), "type=tap,ifname=%.20s,vhost=%s", n->ifname,
				 vhost[n->vhost]);
	}
}

static void describe_pci(struct machine *m, struct monitor_machine *out)
{
	pthread_mutex_lock(&m->pci.lock);
	for (unsigned int slot = 0; slot < PCI_SLOTS && out->nr_pci < MONITOR_MAX_DEVICES; slot++) {
		const struct pci_device *dev = m->pci.slots[slot];
		struct monitor_pci_device *d;
		const uint8_t *c;

		if (!dev)
			continue;
		c = dev->config;
		d = &out->pci[out->nr_pci++];
		d->slot = slot;
		d->vendor = (uint16_t)(c[PCI_VENDOR_ID] | c[PCI_VENDOR_ID + 1] << 8);
		d->device = (uint16_t)(c[PCI_DEVICE_ID] | c[PCI_DEVICE_ID + 1] << 8);
		d->subsystem_vendor = (uint16_t)(c[PCI_SUBSYSTEM_VENDOR_ID] | c[PCI_SUBSYSTEM_VENDOR_ID + 1] << 8);
		d->subsystem = (uint16_t)(c[PCI_SUBSYSTEM_ID] | c[PCI_SUBSYSTEM_ID + 1] << 8);
		d->class_code = (uint32_t)c[PCI_CLASS_PROG] | (uint32_t)c[PCI_CLASS_DEVICE] << 8 |
				(uint32_t)c[PCI_CLASS_DEVICE + 1] << 16;
		d->irq_line = c[PCI_INTERRUPT_LINE];
		d->irq_pin = c[PCI_INTERRUPT_PIN];
		snprintf(d->name, sizeof(d->name), "%s", dev->name ? dev->name : "");
		for (unsigned int bar = 0; bar < PCI_BARS; bar++) {
			struct pci_bar_info info;

			if (pci_device_bar(dev, bar, &info))
				d->bars[bar] = (struct monitor_pci_bar){ .address = info.address, .size = info.size,
									 .io = info.io, .mem64 = info.mem64 };
		}
	}
	pthread_mutex_unlock(&m->pci.lock);
}

static void describe_virtio(struct machine *m, struct monitor_machine *out)
{
	for (unsigned int i = 0; i < m->nr_virtio && out->nr_virtio < MONITOR_MAX_DEVICES; i++) {
		struct virtio_kvm_device *dev = m->virtio[i];
		struct virtio_dev *vdev = dev->vdev;
		struct monitor_virtio *v = &out->virtio[out->nr_virtio++];

		snprintf(v->name, sizeof(v->name), "%s", vdev->ops->name);
		for (unsigned int slot = 0; slot < PCI_SLOTS; slot++)
			if (m->pci.slots[slot] == &dev->vp.pci)
				v->slot = slot;
		pthread_mutex_lock(&vdev->lock);
		v->features = vdev->features;
		v->status = dev->vp.status;
		for (unsigned int q = 0; q < vdev->ops->num_queues && q < VIRTIO_MAX_QUEUES; q++)
			v->queues += vdev->vq_ready[q];
		pthread_mutex_unlock(&vdev->lock);
	}
}

static void describe(void *ctx, struct monitor_machine *out)
{
	struct machine *m = ctx;

	out->ram_bytes = m->cfg->memory_bytes;
	for (unsigned int i = 0; i < m->vm->nr_vcpus && out->nr_cpus < MONITOR_MAX_CPUS; i++) {
		out->cpus[out->nr_cpus].index = i;
		out->cpus[out->nr_cpus++].thread_id = m->vm->vcpus ? atomic_load(&m->vm->vcpus[i].tid) : 0;
	}
	describe_disks(m, out);
	describe_nics(m, out);
	describe_pci(m, out);
	describe_virtio(m, out);
}

/* QMP speaks of the guest's size (RAM minus the balloon); the device of the balloon's. */
static int balloon_set(void *ctx, uint64_t guest_bytes)
{
	struct machine *m = ctx;
	uint64_t ram = m->cfg->memory_bytes;

	if (!m->balloon)
		return -ENODEV;
	if (guest_bytes > ram)
		guest_bytes = ram;  /* QEMU clamps too */
	return virtio_balloon_set_target(m->balloon, ram - guest_bytes);
}

static int balloon_query(void *ctx, struct monitor_balloon *out)
{
	struct machine *m = ctx;
	struct virtio_balloon_stats stats;
	uint64_t ram = m->cfg->memory_bytes;

	if (!m->balloon)
		return -ENODEV;
	memset(out, 0, sizeof(*out));
	out->actual = ram - virtio_balloon_actual(m->balloon);
	out->target = ram - virtio_balloon_target(m->balloon);
	for (unsigned int t = 0; t < sizeof(out->stats) / sizeof(out->stats[0]); t++)
		out->stats[t] = -1;
	/* A paused guest cannot answer: its last report will do. */
	if (!m->paused)
		virtio_balloon_refresh_stats(m->balloon, BALLOON_STATS_WAIT_MS, &stats);
	if (!virtio_balloon_stats(m->balloon, &stats) || !stats.generation)
		return 0;
	out->has_stats = true;
	out->last_update = stats.last_update;
	for (unsigned int t = 0; t < VIRTIO_BALLOON_STATS_MAX && t < sizeof(out->stats) / sizeof(out->stats[0]); t++)
		if (stats.valid & (1U << t))
			out->stats[t] = (int64_t)stats.value[t];
	return 0;
}

/* Reading another thread's vCPU is safe only while it is out of KVM_RUN:
 * parked by stop, or parked just for this read. */
static int registers(void *ctx, unsigned int cpu, struct monitor_registers *out)
{
	struct machine *m = ctx;
	struct vcpu *vcpu;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_mp_state mp;
	struct {
		struct kvm_msrs header;
		struct kvm_msr_entry entry;
	} msrs = { .header.nmsrs = 1, .entry.index = MSR_LSTAR };
	int err = 0;

	if (cpu >= m->vm->nr_vcpus || !m->vm->vcpus)
		return -ENOENT;
	vcpu = &m->vm->vcpus[cpu];
	if (!m->paused)
		vcpus_pause(m->vm);
	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_MP_STATE, &mp) < 0)
		err = -errno;
	if (!err && ioctl(vcpu->fd, KVM_GET_MSRS, &msrs) != 1)
		msrs.entry.data = 0;
	if (!m->paused)
		vcpus_resume(m->vm);
	if (err)
		return err;
	*out = (struct monitor_registers){
		.gpr = { regs.rax, regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi, regs.rbp, regs.rsp,
			 regs.r8, regs.r9, regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15 },
		.rip = regs.rip, .rflags = regs.rflags,
		.cr0 = sregs.cr0, .cr2 = sregs.cr2, .cr3 = sregs.cr3, .cr4 = sregs.cr4, .efer = sregs.efer,
		.lstar = msrs.entry.data,
		.cs = sregs.cs.selector, .ss = sregs.ss.selector,
		.halted = mp.mp_state == KVM_MP_STATE_HALTED,
	};
	return 0;
}

/* Page by page: consecutive virtual pages need not be consecutive in guest
 * RAM. KVM_TRANSLATE walks the page tables the way the vCPU would, so
 * nothing here parses a guest-controlled table. The vCPUs stay parked for
 * the whole read, so a dump is one moment of a running guest. */
static ssize_t read_memory(void *ctx, unsigned int cpu, uint64_t addr, bool virt, void *buf, size_t len)
{
	enum { PAGE = 4096 };
	struct machine *m = ctx;
	uint8_t *dst = buf;
	size_t done = 0;

	if (cpu >= m->vm->nr_vcpus || !m->vm->vcpus)
		return -ENOENT;
	if (!m->paused)
		vcpus_pause(m->vm);
	while (done < len) {
		size_t chunk = PAGE - (addr & (PAGE - 1));
		struct kvm_translation tr = { .linear_address = addr, .physical_address = addr, .valid = 1 };

		if (chunk > len - done)
			chunk = len - done;
		if ((virt && ioctl(m->vm->vcpus[cpu].fd, KVM_TRANSLATE, &tr) < 0) || !tr.valid ||
		    guest_mem_read(&m->vm->mem, tr.physical_address, dst + done, chunk))
			break;
		addr += chunk;
		done += chunk;
	}
	if (!m->paused)
		vcpus_resume(m->vm);
	return (ssize_t)done;
}

void machine_balloon_changed(void *ctx, uint64_t balloon_bytes)
{
	struct machine *m = ctx;

	monitor_emit(m->mon, "BALLOON_CHANGE", json_pack("{s:I}", "actual", (json_int_t)(m->cfg->memory_bytes - balloon_bytes)));
}

const struct monitor_machine_ops machine_monitor_ops = {
	.run_state = run_state,
	.stop = stop,
	.cont = cont,
	.powerdown = powerdown,
	.reset = reset,
	.quit = quit,
	.describe = describe,
	.balloon_set = balloon_set,
	.balloon_query = balloon_query,
	.registers = registers,
	.read_memory = read_memory,
};
