/* libFuzzer target for the e1000 model: register accesses, guest RAM pokes, backend
 * frames and the passing of time from the input; the device may touch only guest
 * RAM, must not crash or hang, and must never hold back an interrupt without a timer. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hw/e1000.h"
#include "util/iov.h"
#include "util/log.h"

#define RAM_SIZE (256 * 1024)
#define MMIO_BASE 0xC0000000U
#define IO_BASE 0xC000
#define MAX_PENDING 8
#define MAX_FRAME 2100
#define MAX_OPS 512
#define DATA_AREA 0x20000  /* transmit buffers; preset() puts an IPv4/TCP frame here */
/* The longest frame the device may send: 64 KiB + headers, a VLAN tag. */
#define MAX_SENT (NET_HDR_LEN + 65536 + 256 + 4)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Registers a driver touches, so short inputs reach the interesting ones. */
static const uint32_t regs[] = {
	0x0000, 0x0008, 0x0010, 0x0014, 0x0020, 0x0038, 0x00C0, 0x00C4, 0x00C8, 0x00D0, 0x00D8, 0x0100,
	0x0400, 0x2800, 0x2804, 0x2808, 0x2810, 0x2818, 0x3800, 0x3804, 0x3808, 0x3810, 0x3818,
	0x4074, 0x4088, 0x5000, 0x5200, 0x5400, 0x5404, 0x5408, 0x5600, 0x5820, 0x1F000,
};

static uint8_t ram[RAM_SIZE];
static struct guest_mem mem;

struct fuzz_backend {
	struct net_backend be;
	uint8_t frames[MAX_PENDING][NET_HDR_LEN + MAX_FRAME];
	size_t lens[MAX_PENDING];
	unsigned int head, tail;
	bool fail_recv;
};

static struct fuzz_backend backend;
static bool irq_level;
static uint64_t now_ns, timer_deadline;  /* a clock that moves when the input says; 0: not armed */
static volatile uint8_t sink;

struct input {
	const uint8_t *p;
	size_t left;
};

static uint32_t take(struct input *in, unsigned int bytes)
{
	uint32_t v = 0;

	for (unsigned int i = 0; i < bytes && in->left; i++, in->left--)
		v |= (uint32_t)*in->p++ << (8 * i);
	return v;
}

static int fb_send(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	uint8_t acc = 0;

	(void)be;
	if (qp != 0 || n < 2 || iov[0].iov_len != NET_HDR_LEN || iov_total(iov, n) > MAX_SENT)
		abort();
	/* Read every byte handed over: ASan then vouches it is all valid memory. */
	for (unsigned int i = 0; i < n; i++)
		for (size_t j = 0; j < iov[i].iov_len; j++)
			acc ^= ((const uint8_t *)iov[i].iov_base)[j];
	sink = acc;
	return acc == 0x5A ? -ENOBUFS : 0;
}

static ssize_t fb_recv(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	unsigned int slot;

	(void)be;
	(void)qp;
	if (backend.fail_recv)
		return -EIO;
	if (backend.head == backend.tail)
		return -EAGAIN;
	slot = backend.head++ % MAX_PENDING;
	return (ssize_t)iov_from_buf(iov, n, backend.frames[slot], backend.lens[slot]);
}

static int fb_rx_fd(struct net_backend *be, unsigned int qp)
{
	(void)be;
	(void)qp;
	return -1;
}

static void fb_destroy(struct net_backend *be)
{
	(void)be;
}

static const struct net_backend_ops fb_ops = {
	.name = "fuzz", .send = fb_send, .recv = fb_recv, .rx_fd = fb_rx_fd, .destroy = fb_destroy,
};

static void set_irq(void *ctx, bool asserted)
{
	(void)ctx;
	if (asserted == irq_level)
		abort();  /* only changes may be reported */
	irq_level = asserted;
}

static uint64_t fake_now(void *ctx)
{
	(void)ctx;
	return now_ns;
}

static void fake_arm_timer(void *ctx, uint64_t deadline)
{
	(void)ctx;
	if (deadline <= now_ns)
		abort();  /* a deadline already passed would be a busy loop */
	timer_deadline = deadline;
}

/* An interrupt pending, unmasked and allowed by the command register must be
 * on the line or on its way: the timer armed for it. */
static void check_irq(struct e1000 *nic)
{
	struct pci_device *pci = e1000_pci_device(nic);
	bool pending = pci_device_config_read(pci, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT;
	bool disabled = pci_device_config_read(pci, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE;

	if (pending && !disabled && !irq_level && !timer_deadline)
		abort();
	if (irq_level && (!pending || disabled))
		abort();
}

/* A guest address: mostly inside RAM, sometimes just past it or far away. */
static uint64_t guest_addr(struct input *in)
{
	uint32_t v = take(in, 3);

	switch (v >> 22) {
	case 0:
		return RAM_SIZE - (v & 0xFFF);
	case 1:
		return 0xFFFFFFFFFFFFF000ULL | (v & 0xFFF);
	default:
		return v % RAM_SIZE;
	}
}

/* Write a 16-byte descriptor into the ring at base register bal, if it is in RAM. */
static void poke_descriptor(struct e1000 *nic, struct input *in, uint32_t bal)
{
	uint64_t base = e1000_mmio_ops.read(nic, bal, 4) | (uint64_t)e1000_mmio_ops.read(nic, bal + 4, 4) << 32;
	uint64_t gpa = base + 16ULL * take(in, 1), addr = guest_addr(in);
	uint8_t desc[16];

	for (int i = 0; i < 8; i++)
		desc[i] = (uint8_t)(addr >> (8 * i));
	for (int i = 8; i < 16; i++)
		desc[i] = (uint8_t)take(in, 1);
	if (gpa < RAM_SIZE && gpa + 16 <= RAM_SIZE)
		memcpy(ram + gpa, desc, 16);
}

static void put_desc(uint64_t gpa, uint64_t addr, uint32_t lower, uint32_t upper)
{
	uint8_t d[16];

	for (int i = 0; i < 8; i++)
		d[i] = (uint8_t)(addr >> (8 * i));
	for (int i = 0; i < 4; i++) {
		d[8 + i] = (uint8_t)(lower >> (8 * i));
		d[12 + i] = (uint8_t)(upper >> (8 * i));
	}
	if (gpa + 16 <= RAM_SIZE)
		memcpy(ram + gpa, d, 16);
}

/* Queue one frame's descriptors at TDT and move TDT past them, as a driver
 * would: legacy, checksum offload, or TSO; context fields either the ones a
 * real IPv4/TCP frame needs or raw from the input. */
static void queue_tx(struct e1000 *nic, struct input *in)
{
	uint64_t base = e1000_mmio_ops.read(nic, 0x3800, 4) | (uint64_t)e1000_mmio_ops.read(nic, 0x3804, 4) << 32;
	uint32_t n = e1000_mmio_ops.read(nic, 0x3808, 4) / 16, tdt = e1000_mmio_ops.read(nic, 0x3818, 4);
	uint32_t how = take(in, 1), pieces = 1 + how % 3, kind = (how >> 2) % 3, used = 0;
	uint32_t popts = (how >> 4) & 3, cmd_extra = (how & 0x40) ? 0x40 : 0;  /* VLE */
	uint64_t addr = DATA_AREA;

	if (!n || tdt >= n)
		return;
	if (kind != 0) {
		uint32_t mss = take(in, 2), tucmd = 0x20 | ((kind == 2) ? 0x04 : 0) | (how & 0x80 ? 0x03 : take(in, 1) & 0x03);
		uint32_t ip = 14 | 24u << 8 | 33u << 16, tu = 34 | 50u << 8, hdr = 54;

		if (take(in, 1) & 1) {  /* raw context fields */
			ip = take(in, 4);
			tu = take(in, 4);
			hdr = take(in, 1);
		}
		put_desc(base + 16ULL * ((tdt + used++) % n), ip | (uint64_t)tu << 32, tucmd << 24 | (take(in, 2) & 0xFFFFF),
			 hdr << 8 | mss << 16);
	}
	for (uint32_t i = 0; i < pieces && used < n - 1; i++) {
		uint32_t len = take(in, 2) % 3000, eop = i + 1 == pieces ? 0x09 : 0;  /* EOP|RS */
		uint32_t lower = kind == 0 ? len | (eop | cmd_extra) << 24
					   : len | 1U << 20 | (0x20 | eop | cmd_extra | (kind == 2 ? 0x04 : 0)) << 24;

		put_desc(base + 16ULL * ((tdt + used++) % n), addr, lower, popts << 8 | take(in, 2) << 16);
		addr += len;
	}
	e1000_mmio_ops.write(nic, 0x3818, (tdt + used) % n, 4);
}

/* A working configuration to start from: rings, buffers, both units on, maybe throttled. */
static void preset(struct e1000 *nic, struct input *in)
{
	static const uint8_t frame[54] = {
		0x02, 0, 0, 0, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x08, 0x00,
		0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
		0x30, 0x39, 0, 80, 0, 0, 3, 0xE8, 0, 0, 0, 0, 0x50, 0x19, 0xFF, 0xFF, 0x1C, 0x46, 0, 0,
	};
	uint32_t sizes = take(in, 1);

	memcpy(ram + DATA_AREA, frame, sizeof(frame));
	e1000_mmio_ops.write(nic, 0x3800, 0x1000, 4);
	e1000_mmio_ops.write(nic, 0x3808, 128u * (1 + (sizes & 7)), 4);
	e1000_mmio_ops.write(nic, 0x2800, 0x8000, 4);
	e1000_mmio_ops.write(nic, 0x2808, 128u * (1 + ((sizes >> 3) & 7)), 4);
	for (unsigned int i = 0; i < 64; i++) {
		uint64_t buf = 0x10000 + i * 0x800ULL;

		for (int b = 0; b < 8; b++)
			ram[0x8000 + i * 16 + b] = (uint8_t)(buf >> (8 * b));
	}
	e1000_mmio_ops.write(nic, 0x0100, 0x8002 | (sizes >> 6) << 16, 4);  /* EN, BAM, a buffer size */
	e1000_mmio_ops.write(nic, 0x2818, 5, 4);
	e1000_mmio_ops.write(nic, 0x0400, 0x2, 4);
	e1000_mmio_ops.write(nic, 0x00D0, 0xFF, 4);
	e1000_mmio_ops.write(nic, 0x00C4, take(in, 1) * 16u, 4);  /* ITR: off, or up to 1 ms */
	if (sizes & 0x80)
		e1000_mmio_ops.write(nic, 0x0000, 0x40000000 | 0x40, 4);  /* VLAN mode */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct e1000_options opts = {
		.mem = &mem, .backend = &backend.be, .mac = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 },
		.set_irq = set_irq, .now_ns = fake_now, .arm_timer = fake_arm_timer,
		.mmio_base = MMIO_BASE, .io_base = IO_BASE,
	};
	struct e1000 *nic;
	uint32_t flags;

	if (size < 2)
		return 0;
	log_set_level(LOG_ERROR);  /* warnings about a hostile driver are the expected outcome */
	memset(ram, 0, sizeof(ram));
	guest_mem_layout(&mem, ram, RAM_SIZE, -1);
	flags = take(&in, 1);
	memset(&backend, 0, sizeof(backend));
	backend.be = (struct net_backend){ .ops = &fb_ops, .queue_pairs = 1 };
	if (flags & 1)
		backend.be.offloads = (1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_HOST_TSO4) |
				      (1ULL << VIRTIO_NET_F_HOST_TSO6) | ((flags & 2) ? 1ULL << VIRTIO_NET_F_HOST_ECN : 0);
	irq_level = false;
	now_ns = 1000000000;
	timer_deadline = 0;
	nic = e1000_create(&opts);
	if (!nic)
		abort();
	pci_device_config_write(e1000_pci_device(nic), PCI_COMMAND,
				PCI_COMMAND_MEMORY | PCI_COMMAND_IO | PCI_COMMAND_MASTER, 2);
	for (unsigned int op = 0; op < MAX_OPS && in.left; op++) {
		uint32_t kind = take(&in, 1), sel, offset, len;

		switch (kind % 15) {
		case 0:
		case 1:
			sel = take(&in, 1);
			offset = sel < sizeof(regs) / sizeof(regs[0]) ? regs[sel] : (take(&in, 2) * 4) % E1000_MMIO_SIZE;
			if (kind % 15 == 0)
				e1000_mmio_ops.write(nic, offset, take(&in, 4), 4);
			else
				(void)e1000_mmio_ops.read(nic, offset, 4);
			break;
		case 2:
			offset = take(&in, 3) % RAM_SIZE;
			len = take(&in, 1);
			for (uint32_t i = 0; i < len && in.left; i++)
				ram[(offset + i) % RAM_SIZE] = (uint8_t)take(&in, 1);
			break;
		case 3:
			poke_descriptor(nic, &in, 0x3800);
			break;
		case 4:
			poke_descriptor(nic, &in, 0x2800);
			break;
		case 5:
			if (backend.tail - backend.head < MAX_PENDING) {
				unsigned int slot = backend.tail++ % MAX_PENDING;
				uint8_t *f = backend.frames[slot];

				len = take(&in, 2) % MAX_FRAME;
				memset(f, 0, NET_HDR_LEN);
				f[0] = (uint8_t)take(&in, 1) & 1;  /* maybe NEEDS_CSUM */
				f[1] = (uint8_t)take(&in, 1) % 8 == 0;  /* rarely a GSO type */
				f[6] = (uint8_t)take(&in, 1);       /* csum_start */
				f[8] = (uint8_t)take(&in, 1);       /* csum_offset */
				for (uint32_t i = 0; i < len; i++)
					f[NET_HDR_LEN + i] = in.left ? (uint8_t)take(&in, 1) : (uint8_t)i;
				if (len >= 6 && (flags & 4))
					memcpy(f + NET_HDR_LEN, opts.mac, 6);
				backend.lens[slot] = NET_HDR_LEN + len;
			}
			break;
		case 6:
			e1000_backend_ready(nic);
			break;
		case 7:
			sel = take(&in, 1);
			if (sel & 1)
				e1000_io_ops.write(nic, sel & 0x3C, take(&in, 4), sel & 2 ? 2 : 4);
			else
				(void)e1000_io_ops.read(nic, sel & 0x3C, sel & 2 ? 1 : 4);
			break;
		case 8:
			preset(nic, &in);
			break;
		case 9: {
			static const unsigned int fields[4] = { PCI_COMMAND, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_1,
								PCI_COMMAND };

			sel = take(&in, 1) % 4;
			pci_device_config_write(e1000_pci_device(nic), fields[sel], take(&in, 4), sel % 3 ? 4 : 2);
			break;
		}
		case 10:
			sel = take(&in, 1);
			offset = (take(&in, 2) * 4) % E1000_MMIO_SIZE;
			if (sel & 1)
				e1000_mmio_ops.write(nic, offset + (sel >> 1) % 8, take(&in, 4), 1u << ((sel >> 4) % 4));
			else
				(void)e1000_mmio_ops.read(nic, offset + (sel >> 1) % 8, 1u << ((sel >> 4) % 4));
			break;
		case 11:
			backend.fail_recv = take(&in, 1) % 16 == 0;
			break;
		case 12:
			queue_tx(nic, &in);
			break;
		case 13:
			/* Bit-bang the EEPROM: SK, CS, DI and REQ from the input, DO read back. */
			len = take(&in, 1) % 64;
			for (uint32_t i = 0; i < len && in.left; i++) {
				e1000_mmio_ops.write(nic, 0x0010, take(&in, 1) & 0x47, 4);
				(void)e1000_mmio_ops.read(nic, 0x0010, 4);
			}
			break;
		case 14:
			/* Time passes (up to twice the longest ITR interval); the timer fires
			 * if its deadline came, or now and then spuriously. */
			sel = take(&in, 1);
			now_ns += (uint64_t)take(&in, 2) * 512;
			if ((timer_deadline && now_ns >= timer_deadline) || sel == 0xFF) {
				timer_deadline = 0;
				e1000_timer_expired(nic);
			}
			break;
		}
		check_irq(nic);
	}
	e1000_destroy(nic);
	return 0;
}
