/* The e1000 model driven as Linux's e1000 driver drives it (probe, TX with offloads
 * and TSO, RX, interrupts) and as a hostile one might, over fake RAM and backend. */
#include "unit.h"

#include <errno.h>
#include <linux/if_ether.h>
#include <stdlib.h>
#include <string.h>

#include "hw/e1000.h"
#include "util/iov.h"

#define RAM_SIZE (4ULL << 20)
#define TX_RING 0x10000ULL
#define RX_RING 0x20000ULL
#define BUFS 0x100000ULL       /* buffer i at BUFS + i * BUF_STRIDE */
#define BUF_STRIDE 0x4000ULL
#define MMIO_BASE 0xC0000000U
#define IO_BASE 0xC000
#define MAX_FRAMES 64
#define FRAME_MAX (NET_HDR_LEN + 70000)

/* Register offsets and bits the tests use, as the driver knows them. */
#define CTRL 0x0000
#define STATUS 0x0008
#define EECD 0x0010
#define EERD 0x0014
#define MDIC 0x0020
#define ICR 0x00C0
#define ITR 0x00C4
#define ICS 0x00C8
#define IMS 0x00D0
#define IMC 0x00D8
#define RCTL 0x0100
#define RXCSUM 0x5000
#define TCTL 0x0400
#define RDBAL 0x2800
#define RDBAH 0x2804
#define RDLEN 0x2808
#define RDH 0x2810
#define RDT 0x2818
#define TDBAL 0x3800
#define TDBAH 0x3804
#define TDLEN 0x3808
#define TDH 0x3810
#define TDT 0x3818
#define GPRC 0x4074
#define GPTC 0x4080
#define GOTCL 0x4090
#define TPT 0x40D4
#define MTA 0x5200
#define RA 0x5400
#define VFTA 0x5600

#define ICR_TXDW 0x01U
#define ICR_TXQE 0x02U
#define ICR_LSC 0x04U
#define ICR_RXDMT0 0x10U
#define ICR_RXT0 0x80U
#define RCTL_EN 0x02U
#define RCTL_UPE 0x08U
#define RCTL_BAM 0x8000U
#define RCTL_SZ_256 0x30000U
#define RCTL_VFE 0x40000U
#define RCTL_SECRC 0x04000000U
#define TCTL_EN 0x02U
#define CTRL_RST 0x04000000U
#define CTRL_VME 0x40000000U

#define TXD_EOP 0x01U
#define TXD_IC 0x04U
#define TXD_TSE 0x04U
#define TXD_RS 0x08U
#define TXD_DEXT 0x20U
#define TXD_VLE 0x40U
#define POPTS_IXSM 0x01
#define POPTS_TXSM 0x02
#define TUCMD_TCP 0x01
#define TUCMD_IP 0x02

static const uint8_t nic_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t peer_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };

struct sent_frame {
	uint8_t data[FRAME_MAX];
	size_t len;
};

/* What the guest sends lands in sent[]; what the "host" sends waits in pending[]. */
struct fake_backend {
	struct net_backend be;
	struct sent_frame *sent;
	unsigned int nr_sent;
	struct sent_frame *pending;
	unsigned int head, tail;
	unsigned int offload_calls;
	unsigned int flushes;   /* ends of transmit bursts */
	uint64_t guest_offloads;
	int send_error;
	bool count_only;        /* just count what is sent */
	unsigned int counted;
};

static uint8_t *ram;
static struct guest_mem mem;
static struct fake_backend *fake;
static struct e1000 *nic;
static bool irq_level;
static unsigned int irq_changes;
/* The throttling timer's world: a clock that moves only when told, one timer. */
#define CLOCK_START 1000000000ULL  /* 1 s, so "before the first interrupt" is not time 0 */
static uint64_t now_ns;
static uint64_t timer_deadline;    /* 0: not armed */
static unsigned int timer_arms;

static int fake_send(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	struct sent_frame *f;

	(void)be;
	assert_int_equal(qp, 0);
	if (fake->send_error)
		return fake->send_error;
	if (fake->count_only) {
		fake->counted++;
		return 0;
	}
	assert_true(fake->nr_sent < MAX_FRAMES);
	f = &fake->sent[fake->nr_sent++];
	assert_true(iov_total(iov, n) <= sizeof(f->data));
	f->len = iov_to_buf(iov, n, f->data, sizeof(f->data));
	return 0;
}

static ssize_t fake_recv(struct net_backend *be, unsigned int qp, const struct iovec *iov, unsigned int n)
{
	struct sent_frame *f;

	(void)be;
	(void)qp;
	if (fake->head == fake->tail)
		return -EAGAIN;
	f = &fake->pending[fake->head++ % MAX_FRAMES];
	return (ssize_t)iov_from_buf(iov, n, f->data, f->len);
}

static int fake_rx_fd(struct net_backend *be, unsigned int qp)
{
	(void)be;
	(void)qp;
	return -1;
}

static int fake_set_guest_offloads(struct net_backend *be, uint64_t features)
{
	(void)be;
	fake->guest_offloads = features;
	fake->offload_calls++;
	return 0;
}

static void fake_flush(struct net_backend *be, unsigned int qp)
{
	(void)be;
	assert_int_equal(qp, 0);
	fake->flushes++;
}

static void fake_destroy(struct net_backend *be)
{
	(void)be;
	free(fake->sent);
	free(fake->pending);
	free(fake);
	fake = NULL;
}

static const struct net_backend_ops fake_ops = {
	.name = "fake",
	.send = fake_send,
	.recv = fake_recv,
	.rx_fd = fake_rx_fd,
	.set_guest_offloads = fake_set_guest_offloads,
	.flush = fake_flush,
	.destroy = fake_destroy,
};

static void record_irq(void *ctx, bool asserted)
{
	(void)ctx;
	assert_int_not_equal(asserted, irq_level);  /* only changes are reported */
	irq_level = asserted;
	irq_changes++;
}

static uint64_t fake_now(void *ctx)
{
	(void)ctx;
	return now_ns;
}

static void fake_arm_timer(void *ctx, uint64_t deadline)
{
	(void)ctx;
	assert_true(deadline > now_ns);  /* the device only waits for the future */
	timer_deadline = deadline;
	timer_arms++;
}

/* Move the clock on, firing the timer on the way as a timerfd would. */
static void advance(uint64_t ns)
{
	now_ns += ns;
	if (timer_deadline && now_ns >= timer_deadline) {
		timer_deadline = 0;
		e1000_timer_expired(nic);
	}
}

/* kick_receive, as kvio's I/O thread would get it: counted, run when the test says. */
static bool with_receive_kick;
static unsigned int receive_kicks;

static void count_receive_kick(void *ctx)
{
	(void)ctx;
	receive_kicks++;
}

static void make_nic_with(uint64_t offloads, bool clock)
{
	struct e1000_options opts = { .mem = &mem, .set_irq = record_irq, .mmio_base = MMIO_BASE, .io_base = IO_BASE };

	if (clock) {
		opts.now_ns = fake_now;
		opts.arm_timer = fake_arm_timer;
	}
	if (with_receive_kick)
		opts.kick_receive = count_receive_kick;
	fake = calloc(1, sizeof(*fake));
	assert_non_null(fake);
	fake->sent = calloc(MAX_FRAMES, sizeof(*fake->sent));
	fake->pending = calloc(MAX_FRAMES, sizeof(*fake->pending));
	assert_non_null(fake->sent);
	assert_non_null(fake->pending);
	fake->be = (struct net_backend){ .ops = &fake_ops, .queue_pairs = 1, .offloads = offloads };
	opts.backend = &fake->be;
	memcpy(opts.mac, nic_mac, 6);
	nic = e1000_create(&opts);
	assert_non_null(nic);
	/* What the PCI core does before the driver's probe. */
	pci_device_config_write(e1000_pci_device(nic), PCI_COMMAND,
				PCI_COMMAND_MEMORY | PCI_COMMAND_IO | PCI_COMMAND_MASTER, 2);
}

/* As kvio makes it: with a clock and a timer (ITR 0 until the driver sets it). */
static void make_nic(uint64_t offloads)
{
	make_nic_with(offloads, true);
}

static int setup_common(uint64_t offloads)
{
	ram = calloc(1, RAM_SIZE);
	assert_non_null(ram);
	guest_mem_layout(&mem, ram, RAM_SIZE, -1);
	irq_level = false;
	irq_changes = 0;
	now_ns = CLOCK_START;
	timer_deadline = 0;
	timer_arms = 0;
	with_receive_kick = false;
	receive_kicks = 0;
	make_nic(offloads);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	return setup_common(0);
}

static int setup_offload(void **state)
{
	(void)state;
	return setup_common((1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_HOST_TSO4) |
			    (1ULL << VIRTIO_NET_F_HOST_TSO6) | (1ULL << VIRTIO_NET_F_HOST_ECN));
}

static int teardown(void **state)
{
	(void)state;
	e1000_destroy(nic);
	assert_null(fake);  /* the backend went with it */
	free(ram);
	return 0;
}

static uint32_t rd(uint32_t off)
{
	return (uint32_t)e1000_mmio_ops.read(nic, off, 4);
}

static void wr(uint32_t off, uint32_t value)
{
	e1000_mmio_ops.write(nic, off, value, 4);
}

static uint8_t *gpa(uint64_t addr)
{
	return ram + addr;
}

static uint64_t buf_addr(unsigned int i)
{
	return BUFS + i * BUF_STRIDE;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)be16(p) << 16 | be16(p + 2);
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* A plain RFC 1071 sum, written independently of the device's. */
static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i < len; i++)
		sum += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xFFFF) + (sum >> 16);
	return (uint16_t)sum;
}

/* True if the IPv4/TCP frame f (Ethernet header included) has valid checksums. */
static bool ipv4_tcp_valid(const uint8_t *f, size_t len)
{
	const uint8_t *ip = f + ETH_HLEN, *tcp = ip + 20;
	size_t tcp_len = len - ETH_HLEN - 20;
	uint32_t pseudo = sum16(ip + 12, 8, 0) + 6 + (uint32_t)tcp_len;

	return fold(sum16(ip, 20, 0)) == 0xFFFF && fold(sum16(tcp, tcp_len, pseudo)) == 0xFFFF;
}

/* An IPv4/TCP frame as Linux's e1000_tso() leaves it: IP length and checksum
 * zero, the TCP checksum seeded with the pseudo-header sum without length. */
static size_t build_tcp(uint8_t *f, size_t payload, uint8_t tcp_flags, bool tso)
{
	uint8_t *ip = f + ETH_HLEN, *tcp = ip + 20;
	size_t len = ETH_HLEN + 20 + 20 + payload;

	memset(f, 0, 54);
	memcpy(f, peer_mac, 6);
	memcpy(f + 6, nic_mac, 6);
	f[12] = 0x08;
	ip[0] = 0x45;
	ip[4] = 0x12;  /* ID 0x1234 */
	ip[5] = 0x34;
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
	tcp[0] = 0x30;  /* ports 12345 -> 80 */
	tcp[1] = 0x39;
	tcp[3] = 80;
	memcpy(tcp + 4, "\x00\x00\x03\xe8", 4);  /* seq 1000 */
	tcp[12] = 0x50;
	tcp[13] = tcp_flags;
	tcp[14] = 0xFF;
	for (size_t i = 0; i < payload; i++)
		tcp[20 + i] = (uint8_t)(i * 7 + 3);
	if (tso) {
		uint16_t seed = fold(sum16(ip + 12, 8, 6));

		tcp[16] = (uint8_t)(seed >> 8);
		tcp[17] = (uint8_t)seed;
	} else {
		uint32_t tcp_len = (uint32_t)(20 + payload);
		uint16_t check;

		ip[2] = (uint8_t)((len - ETH_HLEN) >> 8);
		ip[3] = (uint8_t)(len - ETH_HLEN);
		check = (uint16_t)~fold(sum16(ip, 20, 0));
		ip[10] = (uint8_t)(check >> 8);
		ip[11] = (uint8_t)check;
		/* CHECKSUM_PARTIAL: the pseudo-header sum with the length. */
		check = fold(sum16(ip + 12, 8, 6 + tcp_len));
		tcp[16] = (uint8_t)(check >> 8);
		tcp[17] = (uint8_t)check;
	}
	return len;
}

/* --- driver-side helpers ------------------------------------------------ */

static void tx_ring_setup(unsigned int count)
{
	wr(TDBAL, (uint32_t)TX_RING);
	wr(TDBAH, 0);
	wr(TDLEN, count * 16);
	wr(TDH, 0);
	wr(TDT, 0);
	wr(TCTL, TCTL_EN | 0x08);
}

static void tx_legacy(unsigned int i, uint64_t addr, uint16_t len, uint8_t cmd)
{
	uint8_t *d = gpa(TX_RING + i * 16);

	memset(d, 0, 16);
	put_le64(d, addr);
	put_le32(d + 8, len | (uint32_t)cmd << 24);
}

static void tx_context(unsigned int i, uint8_t ipcss, uint8_t ipcso, uint16_t ipcse, uint8_t tucss, uint8_t tucso,
		       uint32_t paylen, uint8_t tucmd, uint8_t hdr_len, uint16_t mss)
{
	uint8_t *d = gpa(TX_RING + i * 16);

	memset(d, 0, 16);
	d[0] = ipcss;
	d[1] = ipcso;
	d[2] = (uint8_t)ipcse;
	d[3] = (uint8_t)(ipcse >> 8);
	d[4] = tucss;
	d[5] = tucso;
	put_le32(d + 8, (paylen & 0xFFFFF) | (uint32_t)(tucmd | TXD_DEXT) << 24);
	d[13] = hdr_len;
	d[14] = (uint8_t)mss;
	d[15] = (uint8_t)(mss >> 8);
}

static void tx_data(unsigned int i, uint64_t addr, uint32_t len, uint8_t dcmd, uint8_t popts)
{
	uint8_t *d = gpa(TX_RING + i * 16);

	memset(d, 0, 16);
	put_le64(d, addr);
	put_le32(d + 8, (len & 0xFFFFF) | 1U << 20 | (uint32_t)(dcmd | TXD_DEXT) << 24);
	d[13] = popts;
}

static bool tx_done(unsigned int i)
{
	return gpa(TX_RING + i * 16)[12] & 1;
}

static void rx_ring_setup(unsigned int count, unsigned int give, uint32_t rctl_extra)
{
	for (unsigned int i = 0; i < count; i++) {
		uint8_t *d = gpa(RX_RING + i * 16);

		memset(d, 0, 16);
		put_le64(d, buf_addr(i));
	}
	wr(RDBAL, (uint32_t)RX_RING);
	wr(RDBAH, 0);
	wr(RDLEN, count * 16);
	wr(RDH, 0);
	wr(RDT, 0);
	wr(RCTL, RCTL_EN | RCTL_BAM | rctl_extra);
	wr(RDT, give);
}

static const uint8_t *rx_desc(unsigned int i)
{
	return gpa(RX_RING + i * 16);
}

static void host_sends(const uint8_t *frame, size_t len)
{
	struct sent_frame *f = &fake->pending[fake->tail++ % MAX_FRAMES];

	memset(f->data, 0, NET_HDR_LEN);
	memcpy(f->data + NET_HDR_LEN, frame, len);
	f->len = NET_HDR_LEN + len;
}

static size_t frame_to(uint8_t *f, const uint8_t *dst, size_t len, uint8_t fill)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, peer_mac, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(f + 14, fill, len - 14);
	return len;
}

static uint32_t crc32_ref(const uint8_t *p, size_t len)
{
	uint32_t c = 0xFFFFFFFFU;

	for (size_t i = 0; i < len; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320U & -(c & 1));
	}
	return ~c;
}

/* --- probe: PCI, reset, EEPROM, PHY ---------------------------------------- */

static void test_pci_identity(void **state)
{
	struct pci_device *pci = e1000_pci_device(nic);

	(void)state;
	assert_int_equal(pci_device_config_read(pci, PCI_VENDOR_ID, 2), 0x8086);
	assert_int_equal(pci_device_config_read(pci, PCI_DEVICE_ID, 2), 0x100E);
	assert_int_equal(pci_device_config_read(pci, PCI_CLASS_REVISION, 4) >> 8, 0x020000);
	assert_int_equal(pci_device_config_read(pci, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x8086);
	assert_int_equal(pci_device_config_read(pci, PCI_SUBSYSTEM_ID, 2), 0x001E);
	assert_int_equal(pci_device_config_read(pci, PCI_INTERRUPT_PIN, 1), 1);
	assert_int_equal(pci_device_config_read(pci, PCI_BASE_ADDRESS_0, 4), MMIO_BASE);
	assert_int_equal(pci_device_config_read(pci, PCI_BASE_ADDRESS_1, 4), IO_BASE | PCI_BASE_ADDRESS_SPACE_IO);
	/* BAR sizing: 128 KiB of memory, 64 bytes of ports. */
	pci_device_config_write(pci, PCI_BASE_ADDRESS_0, 0xFFFFFFFF, 4);
	assert_int_equal(pci_device_config_read(pci, PCI_BASE_ADDRESS_0, 4), 0xFFFE0000);
	pci_device_config_write(pci, PCI_BASE_ADDRESS_1, 0xFFFFFFFF, 4);
	assert_int_equal(pci_device_config_read(pci, PCI_BASE_ADDRESS_1, 4) & 0xFFFF, 0xFFC1);
	/* While BAR 0 is elsewhere, the registers do not answer. */
	assert_int_equal(rd(STATUS), 0xFFFFFFFF);
	pci_device_config_write(pci, PCI_BASE_ADDRESS_0, MMIO_BASE, 4);
	assert_int_equal(rd(STATUS) & 3, 3);
	/* Nor with memory decoding off. */
	pci_device_config_write(pci, PCI_COMMAND, PCI_COMMAND_IO, 2);
	assert_int_equal(rd(STATUS), 0xFFFFFFFF);
}

static void test_status_and_reset(void **state)
{
	(void)state;
	/* Link up, full duplex, 1000 Mb/s. */
	assert_int_equal(rd(STATUS) & 0xC3, 0x83);
	assert_int_equal(rd(RA), 0x12005452);
	assert_int_equal(rd(RA + 4), 0x80005634);
	assert_int_equal(fake->offload_calls, 1);
	assert_int_equal(fake->guest_offloads, 0);
	wr(IMS, 0x9D);
	wr(RDLEN, 4096);
	wr(MTA + 8, 0xDEAD);
	wr(CTRL, rd(CTRL) | CTRL_RST);
	assert_int_equal(rd(CTRL) & CTRL_RST, 0);  /* self-clearing */
	assert_int_equal(rd(IMS), 0);
	assert_int_equal(rd(RDLEN), 0);
	assert_int_equal(rd(MTA + 8), 0);
	assert_int_equal(rd(RA + 4), 0x80005634);
	/* The reset also asks the backend for whole frames again. */
	assert_int_equal(fake->offload_calls, 2);
	assert_int_equal(fake->guest_offloads, 0);
}

static uint16_t eerd_word(unsigned int addr)
{
	uint32_t v;

	wr(EERD, addr << 8 | 1);
	v = rd(EERD);
	assert_true(v & 0x10);  /* DONE */
	return (uint16_t)(v >> 16);
}

static void test_eeprom_eerd(void **state)
{
	uint16_t sum = 0;

	(void)state;
	assert_int_equal(eerd_word(0), 0x5452);
	assert_int_equal(eerd_word(1), 0x1200);
	assert_int_equal(eerd_word(2), 0x5634);
	assert_int_equal(eerd_word(0x0D), 0x100E);
	for (unsigned int i = 0; i < 64; i++)
		sum = (uint16_t)(sum + eerd_word(i));
	assert_int_equal(sum, 0xBABA);
}

/* The Microwire read exactly as e1000_hw.c bit-bangs it for an 82540. */
static void ee_clock(uint32_t *eecd)
{
	wr(EECD, *eecd | 1);
	wr(EECD, *eecd & ~1U);
}

static uint16_t ee_read(unsigned int addr)
{
	uint32_t eecd = rd(EECD) | 0x40;  /* REQ */
	uint16_t data = 0;

	wr(EECD, eecd);
	assert_true(rd(EECD) & 0x80);   /* GNT */
	eecd &= ~(0x4U | 0x1U);
	wr(EECD, eecd);
	eecd |= 0x2;                    /* CS */
	wr(EECD, eecd);
	for (int bit = 2; bit >= 0; bit--) {
		eecd = (eecd & ~0xCU) | (((0x6 >> bit) & 1) ? 0x4 : 0);
		wr(EECD, eecd);
		ee_clock(&eecd);
	}
	for (int bit = 5; bit >= 0; bit--) {
		eecd = (eecd & ~0xCU) | (((addr >> bit) & 1) ? 0x4 : 0);
		wr(EECD, eecd);
		ee_clock(&eecd);
	}
	eecd &= ~0x4U;
	wr(EECD, eecd);
	for (int i = 0; i < 16; i++) {
		data = (uint16_t)(data << 1);
		wr(EECD, eecd | 1);
		if (rd(EECD) & 0x8)
			data |= 1;
		wr(EECD, eecd & ~1U);
	}
	/* Standby, then release, as the driver does. */
	wr(EECD, eecd & ~0x3U);
	wr(EECD, (eecd & ~0x3U) | 1);
	wr(EECD, eecd | 0x3);
	wr(EECD, eecd & ~0x1U);
	wr(EECD, eecd & ~0x7U);
	wr(EECD, (eecd & ~0x7U) | 1);
	wr(EECD, eecd & ~0x7U & ~0x40U);
	assert_false(rd(EECD) & 0x80);
	return data;
}

static void test_eeprom_bitbang(void **state)
{
	uint16_t sum = 0;

	(void)state;
	assert_int_equal(rd(EECD) & 0x300, 0x100);  /* present, 64 words */
	assert_int_equal(ee_read(0), 0x5452);
	assert_int_equal(ee_read(2), 0x5634);
	for (unsigned int i = 0; i < 64; i++) {
		uint16_t w = ee_read(i);

		assert_int_equal(w, eerd_word(i));
		sum = (uint16_t)(sum + w);
	}
	assert_int_equal(sum, 0xBABA);
}

static uint32_t mdic(uint32_t op, unsigned int phy, unsigned int reg, uint16_t data)
{
	uint32_t v;

	wr(MDIC, op | phy << 21 | reg << 16 | data);
	v = rd(MDIC);
	assert_true(v & 0x10000000);  /* READY */
	return v;
}

static void test_phy_through_mdic(void **state)
{
	const uint32_t op_read = 0x08000000, op_write = 0x04000000;

	(void)state;
	assert_int_equal(mdic(op_read, 1, 2, 0) & 0xFFFF, 0x0141);
	assert_int_equal(mdic(op_read, 1, 3, 0) & 0xFFF0, 0x0C20);  /* M88E1011 */
	assert_int_equal(mdic(op_read, 1, 1, 0) & 0x24, 0x24);      /* link up, autoneg complete */
	assert_int_equal(mdic(op_read, 1, 17, 0) & 0xC400, 0x8400); /* 1000 Mb/s, link */
	/* Reset and autoneg restart complete at once; other bits stick. */
	mdic(op_write, 1, 0, 0x8000 | 0x1000 | 0x0200 | 0x0100);
	assert_int_equal(mdic(op_read, 1, 0, 0) & 0xFFFF, 0x1100);
	mdic(op_write, 1, 4, 0x0DE1);
	assert_int_equal(mdic(op_read, 1, 4, 0) & 0xFFFF, 0x0DE1);
	/* Read-only registers keep their value. */
	mdic(op_write, 1, 2, 0xBEEF);
	assert_int_equal(mdic(op_read, 1, 2, 0) & 0xFFFF, 0x0141);
	/* Only PHY address 1 answers. */
	assert_true(mdic(op_read, 2, 2, 0) & 0x40000000);
	assert_false(mdic(op_read, 1, 2, 0) & 0x40000000);
}

static void test_io_window(void **state)
{
	(void)state;
	e1000_io_ops.write(nic, 0, STATUS, 4);
	assert_int_equal(e1000_io_ops.read(nic, 0, 4), STATUS);
	assert_int_equal(e1000_io_ops.read(nic, 4, 4) & 3, 3);
	wr(IMS, 0x80);
	/* Linux resets an 82540 through the I/O window. */
	e1000_io_ops.write(nic, 0, CTRL, 4);
	e1000_io_ops.write(nic, 4, rd(CTRL) | CTRL_RST, 4);
	assert_int_equal(rd(IMS), 0);
	/* With I/O decoding off, nothing answers. */
	pci_device_config_write(e1000_pci_device(nic), PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	assert_int_equal(e1000_io_ops.read(nic, 4, 4), 0xFFFFFFFF);
}

/* --- interrupts ---------------------------------------------------------- */

static void test_interrupt_line(void **state)
{
	(void)state;
	wr(ICS, ICR_LSC);  /* what e1000_open does to start the watchdog */
	assert_false(irq_level);  /* masked */
	wr(IMS, ICR_LSC | ICR_RXT0);
	assert_true(irq_level);
	assert_true(pci_device_config_read(e1000_pci_device(nic), PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	wr(IMC, ~0U);  /* the interrupt handler masks everything... */
	assert_false(irq_level);
	wr(IMS, ICR_LSC | ICR_RXT0);
	assert_true(irq_level);
	assert_int_equal(rd(ICR), ICR_LSC);  /* ...and reading ICR acknowledges */
	assert_false(irq_level);
	assert_int_equal(rd(ICR), 0);
	/* The driver disabling INTx in the command register drops the line. */
	wr(ICS, ICR_RXT0);
	assert_true(irq_level);
	pci_device_config_write(e1000_pci_device(nic), PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE, 2);
	assert_false(irq_level);
	pci_device_config_write(e1000_pci_device(nic), PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	assert_true(irq_level);
	wr(ICR, ICR_RXT0);  /* write-one-to-clear works too */
	assert_false(irq_level);
	assert_int_equal(irq_changes, 8);
}

/* --- interrupt throttling (ITR) -------------------------------------------- */

#define ITR_VALUE 100                  /* 25.6 us, about 39000 interrupts/s */
#define ITR_NS (ITR_VALUE * 256ULL)

/* ITR 0 throttles nothing: back-to-back causes each raise the line at once. */
static void test_itr_zero_asserts_every_time(void **state)
{
	(void)state;
	wr(IMS, ICR_TXDW);
	for (unsigned int i = 0; i < 3; i++) {
		wr(ICS, ICR_TXDW);
		assert_true(irq_level);
		assert_int_equal(rd(ICR), ICR_TXDW);
		assert_false(irq_level);
		advance(1);
	}
	assert_int_equal(irq_changes, 6);
	assert_int_equal(timer_arms, 0);
}

/* The first interrupt goes at once; one within the interval waits for the timer. */
static void test_itr_holds_cause_within_interval(void **state)
{
	(void)state;
	wr(ITR, ITR_VALUE);
	assert_int_equal(rd(ITR), ITR_VALUE);
	wr(IMS, ICR_TXDW | ICR_RXT0);
	wr(ICS, ICR_RXT0);
	assert_true(irq_level);  /* nothing to space it from */
	assert_int_equal(timer_arms, 0);
	assert_int_equal(rd(ICR), ICR_RXT0);
	assert_false(irq_level);
	advance(10000);
	wr(ICS, ICR_TXDW);
	assert_false(irq_level);
	assert_int_equal(timer_arms, 1);
	assert_int_equal(timer_deadline, CLOCK_START + ITR_NS);
	/* Pending all the same: ICS mirrors ICR, and PCI status says so. */
	assert_int_equal(rd(ICS), ICR_TXDW);
	assert_true(pci_device_config_read(e1000_pci_device(nic), PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	advance(ITR_NS - 10000 - 1);
	assert_false(irq_level);
	advance(1);  /* exactly ITR x 256 ns after the first */
	assert_true(irq_level);
	assert_int_equal(rd(ICR), ICR_TXDW);
	assert_false(irq_level);
	assert_int_equal(irq_changes, 4);
	assert_int_equal(timer_arms, 1);
}

/* Causes held back collect in ICR and go out in one assertion. */
static void test_itr_causes_accumulate(void **state)
{
	(void)state;
	wr(ITR, ITR_VALUE);
	wr(IMS, ICR_TXDW | ICR_TXQE | ICR_LSC | ICR_RXT0);
	wr(ICS, ICR_TXDW);
	assert_int_equal(rd(ICR), ICR_TXDW);
	advance(1000);
	wr(ICS, ICR_RXT0);
	advance(1000);
	wr(ICS, ICR_TXQE);
	advance(1000);
	wr(ICS, ICR_LSC);
	assert_false(irq_level);
	assert_int_equal(timer_arms, 1);  /* one deadline, armed once */
	advance(ITR_NS);
	assert_true(irq_level);
	assert_int_equal(irq_changes, 3);
	assert_int_equal(rd(ICR), ICR_RXT0 | ICR_TXQE | ICR_LSC);
	assert_false(irq_level);
	/* That assertion starts the next interval. */
	advance(1000);
	wr(ICS, ICR_RXT0);
	assert_false(irq_level);
	assert_int_equal(timer_deadline, CLOCK_START + 3000 + ITR_NS + ITR_NS);
	advance(ITR_NS);
	assert_true(irq_level);
}

/* Once the interval has passed, the next cause raises the line at once. */
static void test_itr_after_interval_asserts_at_once(void **state)
{
	(void)state;
	wr(ITR, ITR_VALUE);
	wr(IMS, ICR_RXT0);
	wr(ICS, ICR_RXT0);
	assert_int_equal(rd(ICR), ICR_RXT0);
	advance(ITR_NS);
	wr(ICS, ICR_RXT0);
	assert_true(irq_level);
	assert_int_equal(rd(ICR), ICR_RXT0);
	advance(ITR_NS + 12345);
	wr(ICS, ICR_RXT0);
	assert_true(irq_level);
	assert_int_equal(timer_arms, 0);
}

/* The line stays up while a cause is pending: later causes join it, the interval
 * does not drop it, and only the ICR read lowers it. */
static void test_itr_line_stays_up_until_read(void **state)
{
	(void)state;
	wr(ITR, ITR_VALUE);
	wr(IMS, ICR_TXDW | ICR_RXT0);
	wr(ICS, ICR_TXDW);
	advance(1000);
	wr(ICS, ICR_RXT0);
	advance(3 * ITR_NS);
	assert_true(irq_level);
	assert_int_equal(irq_changes, 1);
	assert_int_equal(timer_arms, 0);
	assert_int_equal(rd(ICR), ICR_TXDW | ICR_RXT0);
	assert_false(irq_level);
}

/* Masking through IMC while an interrupt is held keeps it from going out;
 * unmasking brings it back, throttled like any other rising edge. */
static void test_itr_masked_while_held(void **state)
{
	(void)state;
	wr(ITR, ITR_VALUE);
	wr(IMS, ICR_TXDW | ICR_RXT0);
	wr(ICS, ICR_TXDW);
	assert_int_equal(rd(ICR), ICR_TXDW);
	advance(1000);
	wr(ICS, ICR_RXT0);
	wr(IMC, ~0U);  /* what e1000_intr does */
	advance(ITR_NS);  /* the timer fires on a masked cause */
	assert_false(irq_level);
	assert_int_equal(irq_changes, 2);
	assert_int_equal(rd(ICS), ICR_RXT0);  /* still there, masked */
	wr(IMS, ICR_TXDW | ICR_RXT0);  /* e1000_irq_enable after NAPI: the interval is over */
	assert_true(irq_level);
	assert_int_equal(rd(ICR), ICR_RXT0);
	/* A fresh interval: an IMS write that unmasks a pending cause waits too. */
	wr(IMC, ~0U);
	wr(ICS, ICR_TXDW);
	advance(1000);
	wr(IMS, ICR_TXDW);
	assert_false(irq_level);
	advance(ITR_NS);
	assert_true(irq_level);
}

/* Reading ICR while an interrupt is held takes the causes; the timer then has
 * nothing to raise. */
static void test_itr_icr_read_while_held(void **state)
{
	(void)state;
	wr(ITR, ITR_VALUE);
	wr(IMS, ICR_RXT0);
	wr(ICS, ICR_RXT0);
	assert_int_equal(rd(ICR), ICR_RXT0);
	advance(1000);
	wr(ICS, ICR_RXT0);
	assert_false(irq_level);
	assert_int_equal(rd(ICR), ICR_RXT0);  /* a polling driver */
	assert_int_equal(rd(ICR), 0);
	advance(ITR_NS);
	assert_int_equal(timer_deadline, 0);
	assert_false(irq_level);
	assert_int_equal(irq_changes, 2);
	/* Write-one-to-clear while held does the same. */
	wr(ICS, ICR_RXT0);
	assert_true(irq_level);
	wr(ICR, ICR_RXT0);
	advance(1000);
	wr(ICS, ICR_RXT0);
	wr(ICR, ICR_RXT0);
	advance(ITR_NS);
	assert_false(irq_level);
	assert_int_equal(irq_changes, 4);
}

/* ITR changes take effect on a held interrupt: 0 lets it out at once, a longer
 * interval keeps it until the longer interval ends, a shorter one re-arms. */
static void test_itr_rewritten_while_held(void **state)
{
	(void)state;
	wr(ITR, 0xABCD1234);
	assert_int_equal(rd(ITR), 0x1234);  /* bits 31:16 are reserved */
	wr(ITR, ITR_VALUE);
	wr(IMS, ICR_RXT0);
	wr(ICS, ICR_RXT0);
	assert_int_equal(rd(ICR), ICR_RXT0);
	advance(1000);
	wr(ICS, ICR_RXT0);
	assert_false(irq_level);
	wr(ITR, 0);
	assert_true(irq_level);
	assert_int_equal(rd(ICR), ICR_RXT0);
	/* Longer: the timer armed for the old end finds it still early and re-arms. */
	wr(ITR, ITR_VALUE);
	advance(1000);
	wr(ICS, ICR_RXT0);
	assert_int_equal(timer_deadline, CLOCK_START + 1000 + ITR_NS);
	wr(ITR, 2 * ITR_VALUE);
	assert_int_equal(timer_deadline, CLOCK_START + 1000 + 2 * ITR_NS);
	wr(ITR, 3 * ITR_VALUE);
	assert_int_equal(timer_deadline, CLOCK_START + 1000 + 3 * ITR_NS);
	/* Shorter again: the timer comes back in. */
	wr(ITR, 2 * ITR_VALUE);
	assert_int_equal(timer_deadline, CLOCK_START + 1000 + 2 * ITR_NS);
	advance(2 * ITR_NS - 1001);
	assert_false(irq_level);
	advance(1);
	assert_true(irq_level);
}

/* A late or spurious expiry re-arms rather than letting an early interrupt out. */
static void test_itr_early_expiry_rearms(void **state)
{
	(void)state;
	wr(ITR, ITR_VALUE);
	wr(IMS, ICR_RXT0);
	wr(ICS, ICR_RXT0);
	assert_int_equal(rd(ICR), ICR_RXT0);
	advance(1000);
	wr(ICS, ICR_RXT0);
	assert_int_equal(timer_arms, 1);
	e1000_timer_expired(nic);  /* as if a stale expiry came in */
	assert_false(irq_level);
	assert_int_equal(timer_arms, 2);
	assert_int_equal(timer_deadline, CLOCK_START + ITR_NS);
	e1000_timer_expired(nic);
	advance(ITR_NS);
	assert_true(irq_level);
}

/* Received frames within the interval: descriptors fill, one interrupt. */
static void test_itr_rx_burst_one_interrupt(void **state)
{
	uint8_t f[64];

	(void)state;
	rx_ring_setup(16, 15, 0);
	wr(ITR, ITR_VALUE);
	wr(IMS, ICR_RXT0);
	host_sends(f, frame_to(f, nic_mac, sizeof(f), 1));
	e1000_backend_ready(nic);
	assert_true(irq_level);
	assert_int_equal(rd(ICR), ICR_RXT0);
	for (unsigned int i = 0; i < 4; i++) {
		advance(2000);
		host_sends(f, frame_to(f, nic_mac, sizeof(f), (uint8_t)(2 + i)));
		e1000_backend_ready(nic);
	}
	assert_int_equal(rd(RDH), 5);
	assert_false(irq_level);
	advance(ITR_NS);
	assert_true(irq_level);
	assert_int_equal(irq_changes, 3);
	assert_int_equal(timer_arms, 1);
	assert_int_equal(rd(ICR) & ICR_RXT0, ICR_RXT0);
}

/* Without a clock the device never throttles; half a platform is refused. */
static void test_itr_without_clock(void **state)
{
	struct e1000_options opts = { .mem = &mem, .set_irq = record_irq, .now_ns = fake_now };
	struct net_backend be = { .ops = &fake_ops, .queue_pairs = 1 };

	(void)state;
	opts.backend = &be;
	assert_null(e1000_create(&opts));
	opts.now_ns = NULL;
	opts.arm_timer = fake_arm_timer;
	assert_null(e1000_create(&opts));
	e1000_destroy(nic);
	make_nic_with(0, false);
	wr(ITR, ITR_VALUE);
	assert_int_equal(rd(ITR), ITR_VALUE);
	wr(IMS, ICR_RXT0);
	for (unsigned int i = 0; i < 3; i++) {
		wr(ICS, ICR_RXT0);
		assert_true(irq_level);
		assert_int_equal(rd(ICR), ICR_RXT0);
	}
	assert_int_equal(timer_arms, 0);
}

/* --- transmit ------------------------------------------------------------ */

static void test_tx_legacy(void **state)
{
	uint8_t f[100];

	(void)state;
	tx_ring_setup(8);
	wr(IMS, ICR_TXDW);
	frame_to(f, peer_mac, sizeof(f), 0xAB);
	memcpy(gpa(buf_addr(0)), f, 40);
	memcpy(gpa(buf_addr(1)), f + 40, 60);
	tx_legacy(0, buf_addr(0), 40, 0x02);
	tx_legacy(1, buf_addr(1), 60, TXD_EOP | 0x02 | TXD_RS);
	wr(TDT, 2);
	assert_int_equal(fake->nr_sent, 1);
	assert_int_equal(fake->flushes, 1);  /* the TDT write's burst is over */
	assert_int_equal(fake->sent[0].len, NET_HDR_LEN + 100);
	for (size_t i = 0; i < NET_HDR_LEN; i++)
		assert_int_equal(fake->sent[0].data[i], 0);
	assert_memory_equal(fake->sent[0].data + NET_HDR_LEN, f, 100);
	assert_int_equal(rd(TDH), 2);
	assert_false(tx_done(0));  /* no RS: no write-back */
	assert_true(tx_done(1));
	assert_true(irq_level);
	assert_int_equal(rd(ICR), ICR_TXDW | ICR_TXQE);
	assert_int_equal(rd(GPTC), 1);
	assert_int_equal(rd(TPT), 1);
	assert_int_equal(rd(GOTCL), 104);
	assert_int_equal(rd(GPTC), 0);  /* statistics clear on read */
}

static void test_tx_waits_for_enable(void **state)
{
	uint8_t f[60];

	(void)state;
	tx_ring_setup(8);
	wr(TCTL, 0);
	memcpy(gpa(buf_addr(0)), f, frame_to(f, peer_mac, sizeof(f), 1));
	tx_legacy(0, buf_addr(0), 60, TXD_EOP | TXD_RS);
	wr(TDT, 1);
	assert_int_equal(fake->nr_sent, 0);
	assert_int_equal(rd(TDH), 0);
	wr(TCTL, TCTL_EN);  /* what the watchdog does at link-up */
	assert_int_equal(fake->nr_sent, 1);
	assert_int_equal(rd(TDH), 1);
}

/* A legacy descriptor's IC: a checksum from CSS to the end, stored at CSO;
 * with VLE and CTRL.VME the tag goes in after the addresses. */
static void test_tx_legacy_checksum_and_vlan(void **state)
{
	uint8_t f[200], *out, untagged[200];
	size_t len = build_tcp(f, 146, 0x18, false);
	uint8_t *d = gpa(TX_RING);

	(void)state;
	tx_ring_setup(8);
	wr(CTRL, rd(CTRL) | CTRL_VME);
	memcpy(gpa(buf_addr(0)), f, len);
	tx_legacy(0, buf_addr(0), (uint16_t)len, TXD_EOP | TXD_RS | TXD_IC | TXD_VLE);
	d[10] = ETH_HLEN + 20 + 16;  /* CSO: the TCP checksum */
	d[13] = ETH_HLEN + 20;       /* CSS */
	d[14] = 0x05;                /* VLAN 5 */
	wr(TDT, 1);
	assert_int_equal(fake->nr_sent, 1);
	out = fake->sent[0].data + NET_HDR_LEN;
	assert_int_equal(fake->sent[0].len, NET_HDR_LEN + len + 4);
	assert_int_equal(be16(out + 12), 0x8100);
	assert_int_equal(be16(out + 14), 5);
	memcpy(untagged, out, 12);
	memcpy(untagged + 12, out + 16, len - 12);
	assert_true(ipv4_tcp_valid(untagged, len));
}

static void test_tx_checksum_offload_software(void **state)
{
	uint8_t f[300];
	size_t len = build_tcp(f, 200, 0x18, false);

	(void)state;
	tx_ring_setup(8);
	memcpy(gpa(buf_addr(0)), f, len);
	/* As e1000_tx_csum(): TCP checksum from the transport header to the end. */
	tx_context(0, 0, 0, 0, ETH_HLEN + 20, ETH_HLEN + 20 + 16, 0, TUCMD_TCP, 0, 0);
	tx_data(1, buf_addr(0), 30, 0, POPTS_TXSM);
	tx_data(2, buf_addr(0) + 30, (uint32_t)len - 30, TXD_EOP | TXD_RS, POPTS_TXSM);
	wr(TDT, 3);
	assert_int_equal(fake->nr_sent, 1);
	assert_int_equal(fake->sent[0].data[0], 0);  /* no NEEDS_CSUM: done here */
	assert_true(ipv4_tcp_valid(fake->sent[0].data + NET_HDR_LEN, len));
	assert_true(tx_done(2));
}

static void test_tx_checksum_offload_backend(void **state)
{
	uint8_t f[300];
	size_t len = build_tcp(f, 200, 0x18, false);
	struct virtio_net_hdr_v1 vh;

	(void)state;
	tx_ring_setup(8);
	memcpy(gpa(buf_addr(0)), f, len);
	tx_context(0, 0, 0, 0, ETH_HLEN + 20, ETH_HLEN + 20 + 16, 0, TUCMD_TCP, 0, 0);
	tx_data(1, buf_addr(0), (uint32_t)len, TXD_EOP | TXD_RS, POPTS_TXSM);
	wr(TDT, 2);
	assert_int_equal(fake->nr_sent, 1);
	memcpy(&vh, fake->sent[0].data, sizeof(vh));
	assert_int_equal(vh.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(vh.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	assert_int_equal(le16toh(vh.csum_start), ETH_HLEN + 20);
	assert_int_equal(le16toh(vh.csum_offset), 16);
	assert_memory_equal(fake->sent[0].data + NET_HDR_LEN, f, len);  /* untouched: the backend finishes it */
	/* A checksum that stops short of the end is not what virtio can say: done here. */
	tx_context(2, 0, 0, 0, ETH_HLEN + 20, ETH_HLEN + 20 + 16, 0, TUCMD_TCP, 0, 0);
	gpa(TX_RING + 2 * 16)[6] = (uint8_t)(len - 2);  /* TUCSE: the last byte left out */
	tx_data(3, buf_addr(0), (uint32_t)len, TXD_EOP | TXD_RS, POPTS_TXSM);
	wr(TDT, 4);
	assert_int_equal(fake->nr_sent, 2);
	assert_int_equal(fake->sent[1].data[0], 0);
	assert_int_equal(fold(sum16(fake->sent[1].data + NET_HDR_LEN + 34, len - 35,
				    sum16(f + ETH_HLEN + 12, 8, 6 + (uint32_t)(len - 34)))), 0xFFFF);
}

/* One TSO frame of 54 bytes of headers and payload bytes, flags ACK|PSH|FIN,
 * cut by a context that says the headers are hdr_len long. */
static size_t queue_tso_flags(uint8_t *f, uint16_t mss, size_t payload, uint8_t hdr_len, uint8_t tcp_flags)
{
	size_t len = build_tcp(f, payload, tcp_flags, true);
	uint32_t half = (uint32_t)payload / 2;

	tx_ring_setup(16);
	memcpy(gpa(buf_addr(0)), f, 54);
	memcpy(gpa(buf_addr(1)), f + 54, len - 54);
	tx_context(0, ETH_HLEN, ETH_HLEN + 10, ETH_HLEN + 19, ETH_HLEN + 20, ETH_HLEN + 20 + 16,
		   (uint32_t)(len - hdr_len), TUCMD_TCP | TUCMD_IP | TXD_TSE, hdr_len, mss);
	/* Linux maps the headers and the payload pages separately. */
	tx_data(1, buf_addr(0), 54, TXD_TSE, POPTS_IXSM | POPTS_TXSM);
	tx_data(2, buf_addr(1), half, TXD_TSE, POPTS_IXSM | POPTS_TXSM);
	tx_data(3, buf_addr(1) + half, (uint32_t)(len - 54 - half), TXD_TSE | TXD_EOP | TXD_RS,
		POPTS_IXSM | POPTS_TXSM);
	wr(TDT, 4);
	return len;
}

static size_t queue_tso_hdr(uint8_t *f, uint16_t mss, size_t payload, uint8_t hdr_len)
{
	return queue_tso_flags(f, mss, payload, hdr_len, 0x19);
}

static size_t queue_tso(uint8_t *f, uint16_t mss, size_t payload)
{
	return queue_tso_hdr(f, mss, payload, 54);
}

static void test_tso_software(void **state)
{
	uint8_t f[3100];

	(void)state;
	queue_tso(f, 1000, 3000);
	assert_int_equal(fake->nr_sent, 3);
	for (unsigned int i = 0; i < 3; i++) {
		const uint8_t *s = fake->sent[i].data + NET_HDR_LEN, *ip = s + ETH_HLEN, *tcp = ip + 20;
		size_t len = fake->sent[i].len - NET_HDR_LEN;

		assert_int_equal(fake->sent[i].data[0], 0);
		assert_int_equal(len, 54 + 1000);
		assert_int_equal(be16(ip + 2), 20 + 20 + 1000);
		assert_int_equal(be16(ip + 4), 0x1234 + i);
		assert_int_equal(be32(tcp + 4), 1000 + 1000 * i);
		/* FIN and PSH only on the last segment; ACK everywhere. */
		assert_int_equal(tcp[13], i == 2 ? 0x19 : 0x10);
		assert_memory_equal(s + 54, f + 54 + 1000 * i, 1000);
		assert_true(ipv4_tcp_valid(s, len));
	}
	assert_true(tx_done(3));
	assert_int_equal(rd(TDH), 4);
}

static void test_tso_software_odd_sizes(void **state)
{
	uint8_t f[3100];

	(void)state;
	/* An odd MSS makes every other segment's payload start at an odd offset. */
	queue_tso(f, 999, 2500);
	assert_int_equal(fake->nr_sent, 3);
	assert_int_equal(fake->sent[2].len - NET_HDR_LEN, 54 + 2500 - 2 * 999);
	for (unsigned int i = 0; i < 3; i++)
		assert_true(ipv4_tcp_valid(fake->sent[i].data + NET_HDR_LEN, fake->sent[i].len - NET_HDR_LEN));
	/* A driver may claim a header of odd length: each segment's payload then
	 * starts at an odd distance from the TCP header, and its sum must realign. */
	fake->nr_sent = 0;
	queue_tso_hdr(f, 1000, 2500, 55);
	assert_int_equal(fake->nr_sent, 3);
	for (unsigned int i = 0; i < 3; i++) {
		const uint8_t *s = fake->sent[i].data + NET_HDR_LEN;

		assert_int_equal(be32(s + 34 + 4), 1000 + 1000 * i);
		assert_memory_equal(s + 55, f + 55 + 1000 * i, fake->sent[i].len - NET_HDR_LEN - 55);
		assert_true(ipv4_tcp_valid(s, fake->sent[i].len - NET_HDR_LEN));
	}
}

static void test_tso_offload(void **state)
{
	uint8_t f[3100], *s, *ip, *tcp;
	struct virtio_net_hdr_v1 vh;
	size_t len;
	uint16_t check;

	(void)state;
	len = queue_tso(f, 1000, 3000);
	assert_int_equal(fake->nr_sent, 1);
	memcpy(&vh, fake->sent[0].data, sizeof(vh));
	assert_int_equal(vh.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(vh.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
	assert_int_equal(le16toh(vh.gso_size), 1000);
	assert_int_equal(le16toh(vh.hdr_len), 54);
	assert_int_equal(le16toh(vh.csum_start), 34);
	assert_int_equal(le16toh(vh.csum_offset), 16);
	assert_int_equal(fake->sent[0].len, NET_HDR_LEN + len);
	s = fake->sent[0].data + NET_HDR_LEN;
	ip = s + ETH_HLEN;
	tcp = ip + 20;
	assert_int_equal(be16(ip + 2), len - ETH_HLEN);
	/* The partial checksum, once completed the way the backend will, is right. */
	check = (uint16_t)~fold(sum16(tcp, len - 34, 0));
	tcp[16] = (uint8_t)(check >> 8);
	tcp[17] = (uint8_t)check;
	assert_true(ipv4_tcp_valid(s, len));
	assert_memory_equal(s + 54, f + 54, len - 54);
	/* CWR set: the backend must be told (it has HOST_ECN here). */
	queue_tso_flags(f, 1000, 3000, 54, 0x90);
	assert_int_equal(fake->nr_sent, 2);
	memcpy(&vh, fake->sent[1].data, sizeof(vh));
	assert_int_equal(vh.gso_type, VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN);
}

static void test_tso_offload_single_segment(void **state)
{
	uint8_t f[3100];
	struct virtio_net_hdr_v1 vh;

	(void)state;
	queue_tso(f, 1000, 1000);  /* one MSS of payload: no GSO needed */
	memcpy(&vh, fake->sent[0].data, sizeof(vh));
	assert_int_equal(fake->nr_sent, 1);
	assert_int_equal(vh.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	assert_int_equal(vh.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
}

/* --- receive ------------------------------------------------------------- */

static void test_rx_small_frame(void **state)
{
	uint8_t f[42];
	const uint8_t *d = rx_desc(0), *b = gpa(buf_addr(0));

	(void)state;
	rx_ring_setup(8, 7, 0);
	wr(IMS, ICR_RXT0);
	host_sends(f, frame_to(f, nic_mac, sizeof(f), 0x5A));
	e1000_backend_ready(nic);
	/* Padded to 60 bytes, then the FCS the driver strips. */
	assert_int_equal(le16(d + 8), 64);
	assert_int_equal(d[12], 0x01 | 0x02 | 0x04);  /* DD, EOP, IXSM */
	assert_int_equal(d[13], 0);
	assert_memory_equal(b, f, sizeof(f));
	for (size_t i = sizeof(f); i < 60; i++)
		assert_int_equal(b[i], 0);
	assert_int_equal(b[60] | b[61] << 8 | b[62] << 16 | (uint32_t)b[63] << 24, crc32_ref(b, 60));
	assert_int_equal(rd(RDH), 1);
	assert_true(irq_level);
	assert_true(rd(ICR) & ICR_RXT0);
	assert_int_equal(rd(GPRC), 1);
}

static void test_rx_multi_descriptor(void **state)
{
	uint8_t f[1000], got[1000];
	size_t off = 0;

	(void)state;
	rx_ring_setup(8, 3, RCTL_SZ_256 | RCTL_SECRC);  /* 256-byte buffers, no FCS */
	frame_to(f, nic_mac, sizeof(f), 0);
	for (size_t i = 14; i < sizeof(f); i++)
		f[i] = (uint8_t)i;
	host_sends(f, sizeof(f));
	e1000_backend_ready(nic);
	/* Three buffers are not enough for 1000 bytes: nothing is written yet. */
	assert_int_equal(rd(RDH), 0);
	assert_int_equal(rx_desc(0)[12], 0);
	wr(RDT, 7);
	for (unsigned int i = 0; i < 4; i++) {
		const uint8_t *d = rx_desc(i);

		assert_int_equal(le16(d + 8), i < 3 ? 256 : 1000 - 768);
		assert_int_equal(d[12], i < 3 ? 0x05 : 0x07);  /* EOP only on the last */
		memcpy(got + off, gpa(buf_addr(i)), le16(d + 8));
		off += le16(d + 8);
	}
	assert_memory_equal(got, f, sizeof(f));
	assert_int_equal(rx_desc(4)[12], 0);
	assert_int_equal(rd(RDH), 4);
}

static void test_rx_ring_full_resumes_on_rdt(void **state)
{
	uint8_t f[100];

	(void)state;
	rx_ring_setup(8, 2, 0);  /* two descriptors for the device */
	for (int i = 0; i < 5; i++)
		host_sends(f, frame_to(f, nic_mac, sizeof(f), (uint8_t)i));
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 2);
	assert_int_equal(gpa(buf_addr(1))[20], 1);
	/* One frame waits in the device, the rest in the backend. */
	assert_int_equal(fake->head, 3);
	wr(RDT, 4);
	assert_int_equal(rd(RDH), 4);
	assert_int_equal(gpa(buf_addr(3))[20], 3);
	assert_int_equal(fake->head, 5);
	wr(RDT, 7);
	assert_int_equal(rd(RDH), 5);
	assert_int_equal(gpa(buf_addr(4))[20], 4);
	assert_int_equal(rx_desc(5)[12], 0);
}

/* With an I/O thread, the RDT write only asks for receive (once, however many
 * writes come before it runs); the frames move when the thread runs. */
static void test_rx_resume_kicks_io_thread(void **state)
{
	uint8_t f[100];

	(void)state;
	e1000_destroy(nic);
	with_receive_kick = true;
	make_nic(0);
	rx_ring_setup(8, 2, 0);
	assert_int_equal(receive_kicks, 1);  /* the receiver came on: frames may wait */
	for (int i = 0; i < 5; i++)
		host_sends(f, frame_to(f, nic_mac, sizeof(f), (uint8_t)i));
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 2);
	wr(RDT, 4);
	wr(RDT, 5);
	assert_int_equal(receive_kicks, 2);
	assert_int_equal(rd(RDH), 2);  /* not in the register write */
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 5);
	assert_int_equal(gpa(buf_addr(4))[20], 4);
	wr(RDT, 7);  /* nothing waits now: no kick */
	assert_int_equal(receive_kicks, 2);
	/* Stalled again, so the next refill kicks again. */
	rx_ring_setup(8, 0, 0);
	host_sends(f, frame_to(f, nic_mac, sizeof(f), 9));
	e1000_backend_ready(nic);
	wr(RDT, 3);
	assert_int_equal(receive_kicks, 3);
	e1000_backend_ready(nic);
	assert_int_equal(gpa(buf_addr(0))[20], 9);
}

/* A frame from the host with a virtio-net header asking for a partial checksum. */
static void host_sends_partial(const uint8_t *frame, size_t len, uint16_t csum_start, uint16_t csum_offset)
{
	struct sent_frame *f = &fake->pending[fake->tail++ % MAX_FRAMES];

	memset(f->data, 0, NET_HDR_LEN);
	f->data[0] = 1;  /* VIRTIO_NET_HDR_F_NEEDS_CSUM */
	f->data[6] = (uint8_t)csum_start;
	f->data[7] = (uint8_t)(csum_start >> 8);
	f->data[8] = (uint8_t)csum_offset;
	memcpy(f->data + NET_HDR_LEN, frame, len);
	f->len = NET_HDR_LEN + len;
}

/* build_tcp's frame, addressed to the NIC, its TCP checksum finished. */
static size_t tcp_to_nic(uint8_t *f, size_t payload)
{
	size_t len = build_tcp(f, payload, 0x10, false);
	uint8_t *ip = f + ETH_HLEN, *tcp = ip + 20;
	uint16_t check;

	memcpy(f, nic_mac, 6);
	memcpy(f + 6, peer_mac, 6);
	tcp[16] = tcp[17] = 0;
	check = (uint16_t)~fold(sum16(tcp, len - ETH_HLEN - 20, sum16(ip + 12, 8, 6 + (uint32_t)(len - ETH_HLEN - 20))));
	tcp[16] = (uint8_t)(check >> 8);
	tcp[17] = (uint8_t)check;
	assert_true(ipv4_tcp_valid(f, len));
	return len;
}

static void ipv4_header_checksum(uint8_t *f)
{
	uint16_t check;

	f[ETH_HLEN + 10] = f[ETH_HLEN + 11] = 0;
	check = (uint16_t)~fold(sum16(f + ETH_HLEN, 20, 0));
	f[ETH_HLEN + 10] = (uint8_t)(check >> 8);
	f[ETH_HLEN + 11] = (uint8_t)check;
}

#define RXD_DD_EOP 0x03
#define RXD_IXSM 0x04
#define RXD_TCPCS 0x20
#define RXD_IPCS 0x40
#define RXD_TCPE 0x20
#define RXD_IPE 0x40

/* RXCSUM offload: good and bad checksums told apart, partial ones completed
 * and trusted, what cannot be checked left to the driver (IXSM). */
static void test_rx_checksum_offload(void **state)
{
	uint8_t f[8][200];
	size_t len = tcp_to_nic(f[0], 100);
	uint8_t *ip6, *udp;
	uint32_t pseudo;
	uint16_t check;

	(void)state;
	wr(RXCSUM, 0x300);  /* IPOFLD, TUOFLD */
	rx_ring_setup(16, 15, 0);
	host_sends(f[0], len);  /* 0: good */
	memcpy(f[1], f[0], len);
	f[1][len - 1] ^= 0x40;  /* 1: payload changed under the TCP checksum */
	host_sends(f[1], len);
	memcpy(f[2], f[0], len);
	f[2][ETH_HLEN + 10] ^= 1;  /* 2: bad IP header checksum */
	host_sends(f[2], len);
	memcpy(f[3], f[0], len);
	f[3][ETH_HLEN + 6] = 0x20;  /* 3: a first fragment (MF): no L4 verdict */
	ipv4_header_checksum(f[3]);
	host_sends(f[3], len);
	memcpy(f[4], f[0], len);
	f[4][ETH_HLEN + 2] = 0x05;  /* 4: IP total length beyond the frame */
	ipv4_header_checksum(f[4]);
	host_sends(f[4], len);
	/* 5: a partial checksum, as the host's stack leaves it with TUN_F_CSUM:
	 * the field holds the pseudo-header sum, completed by the device. */
	memcpy(f[5], f[0], len);
	pseudo = sum16(f[5] + ETH_HLEN + 12, 8, 6 + (uint32_t)(len - ETH_HLEN - 20));
	f[5][ETH_HLEN + 36] = (uint8_t)(fold(pseudo) >> 8);
	f[5][ETH_HLEN + 37] = (uint8_t)fold(pseudo);
	host_sends_partial(f[5], len, ETH_HLEN + 20, 16);
	/* 6: IPv6/UDP with a good checksum. */
	memset(f[6], 0, sizeof(f[6]));
	memcpy(f[6], nic_mac, 6);
	memcpy(f[6] + 6, peer_mac, 6);
	f[6][12] = 0x86;
	f[6][13] = 0xDD;
	ip6 = f[6] + ETH_HLEN;
	udp = ip6 + 40;
	ip6[0] = 0x60;
	ip6[5] = 8 + 32;  /* payload length */
	ip6[6] = 17;
	ip6[7] = 64;
	ip6[23] = 1;  /* fe80::1 -> fe80::2 */
	ip6[39] = 2;
	ip6[8] = ip6[24] = 0xFE;
	ip6[9] = ip6[25] = 0x80;
	udp[1] = 53;
	udp[3] = 99;
	udp[5] = 8 + 32;
	for (int i = 0; i < 32; i++)
		udp[8 + i] = (uint8_t)(i * 5);
	check = (uint16_t)~fold(sum16(ip6 + 8, 32, 17 + 40) + sum16(udp, 40, 0));
	udp[6] = (uint8_t)(check >> 8);
	udp[7] = (uint8_t)check;
	host_sends(f[6], ETH_HLEN + 80);
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 7);
	assert_int_equal(rx_desc(0)[12], RXD_DD_EOP | RXD_IPCS | RXD_TCPCS);
	assert_int_equal(rx_desc(0)[13], 0);
	assert_int_equal(rx_desc(1)[12], RXD_DD_EOP | RXD_IPCS | RXD_TCPCS);
	assert_int_equal(rx_desc(1)[13], RXD_TCPE);
	assert_int_equal(rx_desc(2)[12], RXD_DD_EOP | RXD_IPCS | RXD_TCPCS);
	assert_int_equal(rx_desc(2)[13], RXD_IPE);
	assert_int_equal(rx_desc(3)[12], RXD_DD_EOP | RXD_IPCS);
	assert_int_equal(rx_desc(3)[13], 0);
	assert_int_equal(rx_desc(4)[12], RXD_DD_EOP | RXD_IXSM);
	assert_int_equal(rx_desc(4)[13], 0);
	assert_int_equal(rx_desc(5)[12], RXD_DD_EOP | RXD_IPCS | RXD_TCPCS);
	assert_int_equal(rx_desc(5)[13], 0);
	assert_true(ipv4_tcp_valid(gpa(buf_addr(5)), len));
	assert_int_equal(rx_desc(6)[12], RXD_DD_EOP | RXD_TCPCS);
	assert_int_equal(rx_desc(6)[13], 0);

	/* Offload off: every frame says IXSM, as before the driver set RXCSUM. */
	wr(RXCSUM, 0);
	host_sends(f[1], len);
	e1000_backend_ready(nic);
	assert_int_equal(rx_desc(7)[12], RXD_DD_EOP | RXD_IXSM);
	assert_int_equal(rx_desc(7)[13], 0);
}

static void test_rx_disabled_drops(void **state)
{
	uint8_t f[100];

	(void)state;
	rx_ring_setup(8, 7, 0);
	wr(RCTL, 0);
	host_sends(f, frame_to(f, nic_mac, sizeof(f), 1));
	e1000_backend_ready(nic);
	assert_int_equal(fake->head, 1);  /* consumed */
	assert_int_equal(rd(RDH), 0);
	assert_int_equal(rx_desc(0)[12], 0);
	/* Enabling again delivers what comes next. */
	wr(RCTL, RCTL_EN);
	host_sends(f, sizeof(f));
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 1);
}

static void test_rx_address_filter(void **state)
{
	static const uint8_t other[6] = { 0x02, 0, 0, 0, 0, 0x99 }, bcast[6] = { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
	static const uint8_t mcast[6] = { 0x33, 0x33, 0xFF, 0x12, 0x34, 0x56 };
	uint8_t f[64];
	uint32_t hash = (0x34 >> 4 | 0x56 << 4) & 0xFFF;  /* RCTL.MO = 0, as Linux sets it */

	(void)state;
	rx_ring_setup(8, 7, 0);
	host_sends(f, frame_to(f, other, sizeof(f), 1));   /* not ours: dropped */
	host_sends(f, frame_to(f, mcast, sizeof(f), 2));   /* not in the table: dropped */
	host_sends(f, frame_to(f, bcast, sizeof(f), 3));   /* broadcast, BAM: taken */
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 1);
	assert_int_equal(gpa(buf_addr(0))[20], 3);
	wr(MTA + (hash >> 5) * 4, 1U << (hash & 31));
	host_sends(f, frame_to(f, mcast, sizeof(f), 4));
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 2);
	wr(RCTL, rd(RCTL) | RCTL_UPE);
	host_sends(f, frame_to(f, other, sizeof(f), 5));
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 3);
	assert_int_equal(gpa(buf_addr(2))[20], 5);
	/* Multicast promiscuous takes every group. */
	wr(MTA + (hash >> 5) * 4, 0);
	host_sends(f, frame_to(f, mcast, sizeof(f), 6));
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 3);
	wr(RCTL, rd(RCTL) | 0x10);
	host_sends(f, frame_to(f, mcast, sizeof(f), 7));
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 4);
}

static void test_rx_vlan_strip_and_filter(void **state)
{
	uint8_t f[100];
	const uint8_t *d = rx_desc(0);

	(void)state;
	rx_ring_setup(8, 7, RCTL_SECRC);
	wr(CTRL, rd(CTRL) | CTRL_VME);
	frame_to(f, nic_mac, sizeof(f), 7);
	memmove(f + 16, f + 12, sizeof(f) - 16);
	f[12] = 0x81;
	f[13] = 0x00;
	f[14] = 0x20;  /* priority 1, VLAN 42 */
	f[15] = 42;
	host_sends(f, sizeof(f));
	e1000_backend_ready(nic);
	assert_int_equal(le16(d + 8), sizeof(f) - 4);
	assert_int_equal(d[12], 0x01 | 0x02 | 0x04 | 0x08);  /* VP */
	assert_int_equal(le16(d + 14), 0x202A);
	assert_memory_equal(gpa(buf_addr(0)), f, 12);
	assert_int_equal(be16(gpa(buf_addr(0)) + 12), 0x0800);
	/* With the VLAN filter on, only VLANs in the table get through. */
	wr(RCTL, rd(RCTL) | RCTL_VFE);
	host_sends(f, sizeof(f));
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 1);
	wr(VFTA + (42 >> 5) * 4, 1U << (42 & 31));
	host_sends(f, sizeof(f));
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 2);
}

static void test_rx_oversized_dropped(void **state)
{
	static uint8_t f[2000];

	(void)state;
	rx_ring_setup(8, 7, 0);
	host_sends(f, frame_to(f, nic_mac, sizeof(f), 1));  /* long packets are off */
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 0);
	assert_int_equal(fake->head, 1);
}

/* A frame needing more descriptors than the ring can ever offer is dropped
 * instead of blocking the receiver forever. */
static void test_rx_frame_larger_than_ring(void **state)
{
	static uint8_t f[2000];
	uint8_t g[100];

	(void)state;
	rx_ring_setup(8, 7, RCTL_SZ_256 | 0x20);  /* long packets on, 256-byte buffers */
	host_sends(f, frame_to(f, nic_mac, sizeof(f), 1));  /* 2004 bytes: 8 buffers of 7 */
	host_sends(g, frame_to(g, nic_mac, sizeof(g), 2));
	e1000_backend_ready(nic);
	assert_int_equal(fake->head, 2);
	assert_int_equal(rd(RDH), 1);
	assert_int_equal(gpa(buf_addr(0))[20], 2);
}

/* --- a hostile driver -------------------------------------------------- */

static void test_tx_buffer_outside_ram(void **state)
{
	uint8_t f[60];

	(void)state;
	tx_ring_setup(8);
	tx_legacy(0, RAM_SIZE - 10, 60, TXD_EOP | TXD_RS);            /* runs off the end */
	tx_legacy(1, 0xFFFFFFFFFFFFFFF0ULL, 60, TXD_EOP | TXD_RS);   /* wraps */
	memcpy(gpa(buf_addr(0)), f, frame_to(f, peer_mac, sizeof(f), 1));
	tx_legacy(2, buf_addr(0), 60, TXD_EOP | TXD_RS);
	wr(TDT, 3);
	assert_int_equal(fake->nr_sent, 1);  /* only the good one */
	assert_true(tx_done(0) && tx_done(1) && tx_done(2));
	assert_int_equal(rd(TDH), 3);
}

static void test_tx_zero_length(void **state)
{
	uint8_t f[60];

	(void)state;
	tx_ring_setup(8);
	memcpy(gpa(buf_addr(0)), f, frame_to(f, peer_mac, sizeof(f), 1));
	tx_legacy(0, 0xDEAD0000000ULL, 0, TXD_EOP | TXD_RS);  /* empty frame: nothing to send */
	tx_legacy(1, buf_addr(0), 60, 0);
	tx_legacy(2, 0xDEAD0000000ULL, 0, 0);               /* an empty piece in the middle is fine */
	tx_legacy(3, 0, 0, TXD_EOP | TXD_RS);
	wr(TDT, 4);
	assert_int_equal(fake->nr_sent, 1);
	assert_int_equal(fake->sent[0].len, NET_HDR_LEN + 60);
	assert_int_equal(rd(TDH), 4);
}

static void test_indices_beyond_ring(void **state)
{
	uint8_t f[60];

	(void)state;
	tx_ring_setup(8);
	memcpy(gpa(buf_addr(0)), f, frame_to(f, peer_mac, sizeof(f), 1));
	for (unsigned int i = 0; i < 8; i++)
		tx_legacy(i, buf_addr(0), 60, TXD_EOP | TXD_RS);
	wr(TDT, 200);
	assert_int_equal(fake->nr_sent, 0);
	assert_int_equal(rd(TDH), 0);
	wr(TDH, 9);
	wr(TDT, 3);
	assert_int_equal(fake->nr_sent, 0);
	/* Sane values work again. */
	wr(TDH, 0);
	wr(TDT, 3);
	assert_int_equal(fake->nr_sent, 3);
	/* Receive: a tail beyond the ring delivers nothing; fixing it resumes. */
	rx_ring_setup(8, 100, 0);
	host_sends(f, frame_to(f, nic_mac, sizeof(f), 2));
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 0);
	assert_int_equal(rx_desc(0)[12], 0);
	wr(RDT, 5);
	assert_int_equal(rd(RDH), 1);
	assert_int_equal(rx_desc(0)[12] & 1, 1);
}

static void test_ring_length_and_base(void **state)
{
	uint8_t f[60];

	(void)state;
	memcpy(gpa(buf_addr(0)), f, frame_to(f, peer_mac, sizeof(f), 1));
	tx_legacy(0, buf_addr(0), 60, TXD_EOP | TXD_RS);
	tx_ring_setup(8);
	wr(TDLEN, 0);
	wr(TDT, 1);
	assert_int_equal(fake->nr_sent, 0);
	/* Not a multiple of 128: the low bits do not exist. */
	wr(TDLEN, 100);
	assert_int_equal(rd(TDLEN), 0);
	wr(TDLEN, 200);
	assert_int_equal(rd(TDLEN), 128);
	/* A ring (partly) outside RAM is not touched. */
	wr(TDLEN, 128);
	wr(TDBAL, (uint32_t)(RAM_SIZE - 64));
	wr(TDT, 0);
	wr(TDT, 1);
	assert_int_equal(fake->nr_sent, 0);
	wr(TDBAH, 0x10);
	wr(TDBAL, 0);
	wr(TDT, 2);
	assert_int_equal(fake->nr_sent, 0);
	assert_int_equal(rd(TDH), 0);
	/* Receive ring outside RAM: the frame waits, nothing is written. */
	rx_ring_setup(8, 7, 0);
	wr(RDBAL, (uint32_t)(RAM_SIZE - 16));
	host_sends(f, frame_to(f, nic_mac, sizeof(f), 2));
	e1000_backend_ready(nic);
	assert_int_equal(rd(RDH), 0);
	assert_int_equal(fake->head, 1);
	wr(RDBAL, (uint32_t)RX_RING);
	wr(RDT, 6);
	assert_int_equal(rd(RDH), 1);
}

/* Descriptors without EOP all the way round the ring, over and over: each TDT
 * write walks at most the ring, and the frame is dropped once it outgrows 64 KiB. */
static void test_tx_chain_without_eop(void **state)
{
	uint8_t f[60];

	(void)state;
	tx_ring_setup(8);
	for (unsigned int i = 0; i < 8; i++)
		tx_legacy(i, buf_addr(0), 16000, TXD_RS);
	for (unsigned int round = 0; round < 4; round++) {
		wr(TDT, 7);
		assert_int_equal(rd(TDH), 7);
		wr(TDT, 0);
		assert_int_equal(rd(TDH), 0);
		assert_int_equal(fake->nr_sent, 0);
	}
	/* The oversized frame ends at the next EOP and is not sent; the one after is. */
	tx_legacy(0, buf_addr(0), 100, TXD_EOP | TXD_RS);
	memcpy(gpa(buf_addr(1)), f, frame_to(f, peer_mac, sizeof(f), 1));
	tx_legacy(1, buf_addr(1), 60, TXD_EOP | TXD_RS);
	wr(TDT, 2);
	assert_int_equal(fake->nr_sent, 1);
	assert_int_equal(fake->sent[0].len, NET_HDR_LEN + 60);
}

static void test_rx_buffer_outside_ram(void **state)
{
	uint8_t f[100];

	(void)state;
	rx_ring_setup(8, 7, 0);
	put_le64(gpa(RX_RING), RAM_SIZE - 50);  /* 104 bytes do not fit there */
	host_sends(f, frame_to(f, nic_mac, sizeof(f), 1));
	host_sends(f, sizeof(f));
	e1000_backend_ready(nic);
	assert_int_equal(rx_desc(0)[12] & 3, 3);
	assert_int_equal(rx_desc(0)[13], 0x80);  /* RXE: the driver drops it */
	assert_int_equal(le16(rx_desc(0) + 8), 0);
	for (size_t i = RAM_SIZE - 50; i < RAM_SIZE; i++)
		assert_int_equal(ram[i], 0);
	/* The next frame lands normally. */
	assert_int_equal(rx_desc(1)[13], 0);
	assert_int_equal(le16(rx_desc(1) + 8), 104);
}

static void test_tso_bad_context(void **state)
{
	uint8_t f[3100];

	(void)state;
	queue_tso(f, 1000, 3000);
	assert_int_equal(fake->nr_sent, 3);
	/* MSS 0, a header longer than the frame, a checksum offset past the header. */
	tx_context(4, ETH_HLEN, ETH_HLEN + 10, ETH_HLEN + 19, ETH_HLEN + 20, ETH_HLEN + 36, 100,
		   TUCMD_TCP | TUCMD_IP | TXD_TSE, 54, 0);
	tx_data(5, buf_addr(0), 154, TXD_TSE | TXD_EOP | TXD_RS, POPTS_IXSM | POPTS_TXSM);
	tx_context(6, ETH_HLEN, ETH_HLEN + 10, ETH_HLEN + 19, ETH_HLEN + 20, ETH_HLEN + 36, 100,
		   TUCMD_TCP | TUCMD_IP | TXD_TSE, 255, 100);
	tx_data(7, buf_addr(0), 154, TXD_TSE | TXD_EOP | TXD_RS, POPTS_IXSM | POPTS_TXSM);
	tx_context(8, ETH_HLEN, 250, 0, ETH_HLEN + 20, 250, 100, TUCMD_TCP | TUCMD_IP | TXD_TSE, 54, 100);
	tx_data(9, buf_addr(0), 154, TXD_TSE | TXD_EOP | TXD_RS, POPTS_IXSM | POPTS_TXSM);
	wr(TDT, 10);
	assert_int_equal(fake->nr_sent, 3);
	assert_int_equal(rd(TDH), 10);
	assert_true(tx_done(9));
}

/* TSO with a one-byte MSS turns 60000 bytes into 60000 frames: one TDT write
 * sends at most 65536, drops what follows, and still completes the ring. */
static void test_tx_budget_per_kick(void **state)
{
	static uint8_t f[60100];
	uint8_t g[60];

	(void)state;
	fake->count_only = true;
	build_tcp(f, 60000, 0x10, true);
	memcpy(gpa(buf_addr(0)), f, 60054);
	tx_ring_setup(16);
	for (unsigned int i = 0; i < 2; i++) {
		tx_context(3 * i, ETH_HLEN, ETH_HLEN + 10, ETH_HLEN + 19, ETH_HLEN + 20, ETH_HLEN + 36, 60000,
			   TUCMD_TCP | TUCMD_IP | TXD_TSE, 54, 1);
		tx_data(3 * i + 1, buf_addr(0), 54, TXD_TSE, POPTS_IXSM | POPTS_TXSM);
		tx_data(3 * i + 2, buf_addr(0) + 54, 60000, TXD_TSE | TXD_EOP | TXD_RS, POPTS_IXSM | POPTS_TXSM);
	}
	memcpy(gpa(buf_addr(5)), g, frame_to(g, peer_mac, sizeof(g), 1));
	tx_legacy(6, buf_addr(5), 60, TXD_EOP | TXD_RS);
	wr(TDT, 7);
	assert_int_equal(fake->counted, 65536);
	assert_int_equal(rd(TDH), 7);
	assert_true(tx_done(2) && tx_done(5) && tx_done(6));
	/* The next kick has a fresh budget. */
	tx_legacy(7, buf_addr(5), 60, TXD_EOP | TXD_RS);
	wr(TDT, 8);
	assert_int_equal(fake->counted, 65537);
}

static void test_backend_send_error(void **state)
{
	uint8_t f[60];

	(void)state;
	tx_ring_setup(8);
	fake->send_error = -ENOBUFS;
	memcpy(gpa(buf_addr(0)), f, frame_to(f, peer_mac, sizeof(f), 1));
	tx_legacy(0, buf_addr(0), 60, TXD_EOP | TXD_RS);
	wr(TDT, 1);
	assert_true(tx_done(0));  /* dropped, as a NIC with a dead link would */
	assert_int_equal(rd(GPTC), 0);
}

static void test_narrow_and_odd_accesses(void **state)
{
	(void)state;
	wr(IMS, 0x80);
	assert_int_equal(e1000_mmio_ops.read(nic, IMS, 1), 0x80);
	assert_int_equal(e1000_mmio_ops.read(nic, IMS + 1, 1), 0);
	e1000_mmio_ops.write(nic, IMS, 0x01, 1);        /* ignored */
	e1000_mmio_ops.write(nic, IMS + 2, 0x01, 4);    /* misaligned: ignored */
	assert_int_equal(rd(IMS), 0x80);
	assert_int_equal(e1000_mmio_ops.read(nic, E1000_MMIO_SIZE - 2, 4), 0xFFFFFFFF);
	assert_int_equal(rd(0x1F000), 0);              /* unknown: reads 0 */
	wr(0x1F000, 5);
	assert_int_equal(rd(0x1F000), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define T_OFFLOAD(f) cmocka_unit_test_setup_teardown(f, setup_offload, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_pci_identity),
		T(test_status_and_reset),
		T(test_eeprom_eerd),
		T(test_eeprom_bitbang),
		T(test_phy_through_mdic),
		T(test_io_window),
		T(test_interrupt_line),
		T(test_itr_zero_asserts_every_time),
		T(test_itr_holds_cause_within_interval),
		T(test_itr_causes_accumulate),
		T(test_itr_after_interval_asserts_at_once),
		T(test_itr_line_stays_up_until_read),
		T(test_itr_masked_while_held),
		T(test_itr_icr_read_while_held),
		T(test_itr_rewritten_while_held),
		T(test_itr_early_expiry_rearms),
		T(test_itr_rx_burst_one_interrupt),
		T(test_itr_without_clock),
		T(test_tx_legacy),
		T(test_tx_waits_for_enable),
		T(test_tx_legacy_checksum_and_vlan),
		T(test_tx_checksum_offload_software),
		T_OFFLOAD(test_tx_checksum_offload_backend),
		T(test_tso_software),
		T(test_tso_software_odd_sizes),
		T_OFFLOAD(test_tso_offload),
		T_OFFLOAD(test_tso_offload_single_segment),
		T(test_rx_small_frame),
		T(test_rx_multi_descriptor),
		T(test_rx_ring_full_resumes_on_rdt),
		T(test_rx_resume_kicks_io_thread),
		T(test_rx_checksum_offload),
		T(test_rx_disabled_drops),
		T(test_rx_address_filter),
		T(test_rx_vlan_strip_and_filter),
		T(test_rx_oversized_dropped),
		T(test_rx_frame_larger_than_ring),
		T(test_tx_buffer_outside_ram),
		T(test_tx_zero_length),
		T(test_indices_beyond_ring),
		T(test_ring_length_and_base),
		T(test_tx_chain_without_eop),
		T(test_rx_buffer_outside_ram),
		T(test_tso_bad_context),
		T(test_tx_budget_per_kick),
		T(test_backend_send_error),
		T(test_narrow_and_odd_accesses),
	};

	return cmocka_run_group_tests_name("e1000", tests, NULL, NULL);
}
