/* Intel 82540EM (e1000): registers, Microwire EEPROM, M88 PHY and the legacy
 * descriptor rings, with checksum and TSO offloads done by the backend or here. */
#include "hw/e1000.h"

#include <endian.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "util/bytes.h"
#include "util/csum.h"
#include "util/log.h"

/* Register offsets in BAR 0 (8254x Software Developer's Manual, section 13). */
#define REG_CTRL 0x0000
#define REG_STATUS 0x0008
#define REG_EECD 0x0010
#define REG_EERD 0x0014
#define REG_CTRL_EXT 0x0018
#define REG_MDIC 0x0020
#define REG_FCAL 0x0028
#define REG_FCAH 0x002C
#define REG_FCT 0x0030
#define REG_VET 0x0038
#define REG_ICR 0x00C0
#define REG_ITR 0x00C4
#define REG_ICS 0x00C8
#define REG_IMS 0x00D0
#define REG_IMC 0x00D8
#define REG_RCTL 0x0100
#define REG_FCTTV 0x0170
#define REG_TXCW 0x0178
#define REG_RXCW 0x0180
#define REG_TCTL 0x0400
#define REG_TIPG 0x0410
#define REG_LEDCTL 0x0E00
#define REG_PBA 0x1000
#define REG_FCRTL 0x2160
#define REG_FCRTH 0x2168
#define REG_RDFH 0x2410   /* RX FIFO registers, 0x2410-0x2430: diagnostics only */
#define REG_RDFPC 0x2430
#define REG_RDBAL 0x2800
#define REG_RDBAH 0x2804
#define REG_RDLEN 0x2808
#define REG_RDH 0x2810
#define REG_RDT 0x2818
#define REG_RDTR 0x2820
#define REG_RXDCTL 0x2828
#define REG_RADV 0x282C
#define REG_RSRPD 0x2C00
#define REG_TXDMAC 0x3000
#define REG_TDFH 0x3410   /* TX FIFO registers, 0x3410-0x3430: diagnostics only */
#define REG_TDFPC 0x3430
#define REG_TDBAL 0x3800
#define REG_TDBAH 0x3804
#define REG_TDLEN 0x3808
#define REG_TDH 0x3810
#define REG_TDT 0x3818
#define REG_TIDV 0x3820
#define REG_TXDCTL 0x3828
#define REG_TADV 0x382C
#define REG_TSPMT 0x3830
#define REG_STATS_FIRST 0x4000  /* statistics, 0x4000-0x40FC: all clear on read */
#define REG_STATS_LAST 0x40FC
#define REG_MPC 0x4010
#define REG_GPRC 0x4074
#define REG_BPRC 0x4078
#define REG_MPRC 0x407C
#define REG_GPTC 0x4080
#define REG_GORCL 0x4088
#define REG_GOTCL 0x4090
#define REG_RUC 0x40A4
#define REG_ROC 0x40AC
#define REG_TORL 0x40C0
#define REG_TOTL 0x40C8
#define REG_TPR 0x40D0
#define REG_TPT 0x40D4
#define REG_MPTC 0x40F0
#define REG_BPTC 0x40F4
#define REG_TSCTC 0x40F8
#define REG_TSCTFC 0x40FC
#define REG_RXCSUM 0x5000
#define REG_MTA 0x5200     /* 128 entries */
#define REG_RA 0x5400      /* 16 (low, high) pairs */
#define REG_VFTA 0x5600    /* 128 entries */
#define REG_WUC 0x5800
#define REG_WUFC 0x5808
#define REG_WUS 0x5810
#define REG_MANC 0x5820
#define REG_IPAV 0x5838
#define REG_IP4AT 0x5840
#define REG_IP6AT 0x5880
#define REG_WUPL 0x5900
#define REG_WUPM 0x5A00
#define REG_FFLT 0x5F00
#define REG_FFMT 0x9000
#define REG_FFVT 0x9800

#define CTRL_FD 0x00000001U
#define CTRL_SLU 0x00000040U
#define CTRL_SPD_1000 0x00000200U
#define CTRL_RST 0x04000000U
#define CTRL_VME 0x40000000U
#define CTRL_PHY_RST 0x80000000U

#define STATUS_FD 0x00000001U
#define STATUS_LU 0x00000002U
#define STATUS_SPEED_1000 0x00000080U
#define STATUS_ASDV_1000 0x00000200U
#define STATUS_MTXCKOK 0x00000400U

#define EECD_SK 0x001U
#define EECD_CS 0x002U
#define EECD_DI 0x004U
#define EECD_DO 0x008U
#define EECD_FWE_MASK 0x030U
#define EECD_REQ 0x040U
#define EECD_GNT 0x080U
#define EECD_PRES 0x100U
/* EECD_SIZE (0x200) stays clear: a 64-word EEPROM, 6 address bits. */

#define EERD_START 0x00000001U
#define EERD_DONE 0x00000010U
#define EERD_ADDR_SHIFT 8
#define EERD_DATA_SHIFT 16

#define MDIC_DATA_MASK 0x0000FFFFU
#define MDIC_REG_SHIFT 16
#define MDIC_PHY_SHIFT 21
#define MDIC_OP_WRITE 0x04000000U
#define MDIC_OP_READ 0x08000000U
#define MDIC_READY 0x10000000U
#define MDIC_INT_EN 0x20000000U
#define MDIC_ERROR 0x40000000U

#define ICR_TXDW 0x00000001U
#define ICR_TXQE 0x00000002U
#define ICR_RXDMT0 0x00000010U
#define ICR_RXT0 0x00000080U
#define ICR_MDAC 0x00000200U

#define ITR_INTERVAL_MASK 0x0000FFFFU  /* bits 31:16 are reserved */
#define ITR_UNIT_NS 256

#define RCTL_EN 0x00000002U
#define RCTL_UPE 0x00000008U
#define RCTL_MPE 0x00000010U
#define RCTL_LPE 0x00000020U
#define RCTL_RDMTS_SHIFT 8
#define RCTL_MO_SHIFT 12
#define RCTL_BAM 0x00008000U
#define RCTL_BSIZE_SHIFT 16
#define RCTL_VFE 0x00040000U
#define RCTL_BSEX 0x02000000U
#define RCTL_SECRC 0x04000000U

#define TCTL_EN 0x00000002U

#define RAH_AV 0x80000000U
#define RING_LEN_MASK 0x000FFF80U  /* RDLEN/TDLEN: a multiple of 128 bytes (8 descriptors) */
#define RING_INDEX_MASK 0xFFFFU
#define DESC_SIZE 16

/* Transmit descriptors: the command byte (bits 31:24 of the second dword). */
#define TXD_CMD_EOP 0x01
#define TXD_CMD_IC 0x04       /* legacy: insert checksum */
#define TXD_CMD_TSE 0x04      /* data: TCP segmentation */
#define TXD_CMD_RS 0x08
#define TXD_CMD_RPS 0x10
#define TXD_CMD_DEXT 0x20
#define TXD_CMD_VLE 0x40
#define TXD_DTYP_CONTEXT 0x0
#define TXD_DTYP_DATA 0x1
#define TXD_STAT_DD 0x01
#define TXD_POPTS_IXSM 0x01
#define TXD_POPTS_TXSM 0x02
#define TUCMD_TCP 0x01        /* context: TCP (else UDP) */
#define TUCMD_IP 0x02         /* context: IPv4 (else IPv6) */

/* Receive descriptor status and error bytes. */
#define RXD_STAT_DD 0x01
#define RXD_STAT_EOP 0x02
#define RXD_STAT_IXSM 0x04
#define RXD_STAT_VP 0x08
#define RXD_STAT_TCPCS 0x20  /* TCP/UDP checksum computed; RXD_ERR_TCPE says if bad */
#define RXD_STAT_IPCS 0x40   /* IPv4 header checksum computed; RXD_ERR_IPE says if bad */
#define RXD_ERR_TCPE 0x20
#define RXD_ERR_IPE 0x40
#define RXD_ERR_RXE 0x80
#define RXCSUM_IPOFLD 0x100
#define RXCSUM_TUOFLD 0x200

/* PHY (MII registers plus the M88E1011's own), reached through MDIC at address 1. */
#define PHY_ADDR 1
#define PHY_REGS 32
#define PHY_CTRL 0
#define PHY_STATUS 1
#define PHY_ID1 2
#define PHY_ID2 3
#define PHY_AUTONEG_ADV 4
#define PHY_LP_ABILITY 5
#define PHY_AUTONEG_EXP 6
#define PHY_1000T_CTRL 9
#define PHY_1000T_STATUS 10
#define PHY_EXT_STATUS 15
#define M88_SPEC_CTRL 16
#define M88_SPEC_STATUS 17
#define M88_INT_STATUS 19
#define M88_EXT_SPEC_CTRL 20
#define M88_RX_ERR_CNTR 21
#define PHY_CTRL_RESET 0x8000
#define PHY_CTRL_RESTART_AN 0x0200

#define EEPROM_WORDS 64
#define EEPROM_CHECKSUM_WORD 0x3F
#define EEPROM_SUM 0xBABA
#define EEPROM_OP_READ 0x6    /* Microwire: start bit, then 10 */
#define EEPROM_ADDR_BITS 6

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_CWR 0x80
#define TCP_MIN_HLEN 20U
#define IPV4_MIN_HLEN 20U
#define IPV6_HLEN 40U

#define ETH_FCS_LEN 4
#define ETH_MIN_FRAME 60            /* without FCS: shorter frames are padded */
#define RX_MAX_FRAME 1522           /* with FCS and one VLAN tag, long packets off */
#define RX_MAX_LONG_FRAME 16384     /* with RCTL.LPE */
/* A transmitted frame may carry a TSO header (up to 255 bytes) before 64 KiB of payload. */
#define TX_MAX_FRAME (65536 + 256)
#define RX_TAIL_ROOM 64             /* padding and FCS after what the backend wrote */
#define RX_BUF_SIZE (NET_HDR_LEN + NET_MAX_GSO_FRAME + RX_TAIL_ROOM)
/* Frames (TSO segments included) one TDT write may send. A real NIC works
 * through its ring on its own time; here the vCPU waits, so a ring of TSO
 * frames with a one-byte MSS must not keep it for minutes. Linux's largest
 * ring of 64 KiB frames is about 10000 segments. */
#define TX_SEND_BUDGET 65536
/* Frames dropped (filtered, receiver off) per wake-up; the tap queue holds ~1000. */
#define RX_DROP_BUDGET 4096

enum warning {
	WARN_TX_RING = 1U << 0,
	WARN_TX_INDEX = 1U << 1,
	WARN_TX_ADDR = 1U << 2,
	WARN_TX_SIZE = 1U << 3,
	WARN_TX_TSO = 1U << 4,
	WARN_TX_DTYP = 1U << 5,
	WARN_TX_SEND = 1U << 6,
	WARN_RX_INDEX = 1U << 7,
	WARN_RX_ADDR = 1U << 8,
	WARN_RX_RECV = 1U << 9,
	WARN_RX_GSO = 1U << 10,
	WARN_RX_HUGE = 1U << 11,
	WARN_ACCESS = 1U << 12,
	WARN_BAR = 1U << 13,
	WARN_TX_BUDGET = 1U << 14,
};

struct tx_context {
	uint8_t ipcss, ipcso, tucss, tucso, hdr_len, tucmd;
	uint16_t ipcse, tucse, mss;
};

/* The frame being gathered from transmit descriptors until EOP. */
struct tx_frame {
	uint8_t data[TX_MAX_FRAME];
	uint32_t len;
	bool started, dropping, legacy, tse, ic;
	uint8_t popts, css, cso;
	uint8_t seg_hdr[256];  /* one TSO segment's headers */
};

/* The Microwire EEPROM's side of the EECD bit-bang. */
struct eeprom_port {
	uint32_t eecd;     /* SK, CS, DI, FWE and REQ as the driver last wrote them */
	uint16_t shift;    /* bits clocked in so far */
	unsigned int bits;
	bool reading, ignoring, dout;
	uint8_t addr;
	unsigned int out_pos;
};

struct e1000 {
	pthread_mutex_t lock;
	struct guest_mem *mem;
	struct net_backend *be;
	uint8_t mac[6];
	void (*set_irq)(void *ctx, bool asserted);
	void *irq_ctx;
	bool irq_level;
	/* Interrupt throttling: the interrupt as the MAC signals it (the line is
	 * that unless the command register disables INTx), when it last rose, and
	 * the deadline the timer is armed for (0: none). */
	uint64_t (*now_ns)(void *ctx);
	void (*arm_timer)(void *ctx, uint64_t deadline_ns);
	void *timer_ctx;
	void (*kick_receive)(void *ctx);
	void *kick_ctx;
	bool asserted, asserted_before;
	uint64_t last_assert_ns, timer_deadline;
	uint32_t mmio_base;
	uint16_t io_base;
	struct pci_device pci;

	uint32_t regs[E1000_MMIO_SIZE / 4];
	uint16_t phy[PHY_REGS];
	uint16_t eeprom[EEPROM_WORDS];
	struct eeprom_port ee;
	uint32_t ioaddr;

	struct tx_context ctx;
	struct tx_frame tx;
	unsigned int tx_budget;  /* sends left in this TDT write */

	/* A received frame that waits for free descriptors (rx_frame points into rx_buf). */
	uint8_t rx_buf[RX_BUF_SIZE];
	uint8_t *rx_frame;
	uint32_t rx_len;
	uint16_t rx_special;
	uint8_t rx_csum_status, rx_csum_errors;  /* receive checksum offload's verdict */
	bool rx_vlan, rx_pending, rx_stalled;
	bool rx_kicked;  /* kick_receive called, e1000_backend_ready not run since */

	uint32_t warned;
	uint8_t unknown_seen[E1000_MMIO_SIZE / 4 / 8];
};

static const uint16_t phy_defaults[PHY_REGS] = {
	[PHY_CTRL] = 0x1140,          /* autoneg on, full duplex, 1000 Mb/s */
	[PHY_STATUS] = 0x796D,        /* link up, autoneg complete, 10/100/1000 capable */
	[PHY_ID1] = 0x0141,           /* Marvell 88E1011, as on the 82540EM */
	[PHY_ID2] = 0x0C20,
	[PHY_AUTONEG_ADV] = 0x0DE1,
	[PHY_LP_ABILITY] = 0x45E1,    /* the partner: 10/100 both duplexes, pause, acknowledged */
	[PHY_AUTONEG_EXP] = 0x0001,
	[PHY_1000T_CTRL] = 0x0E00,
	[PHY_1000T_STATUS] = 0x3C00,  /* partner 1000 FD/HD, both receivers OK */
	[PHY_EXT_STATUS] = 0x3000,
	[M88_SPEC_CTRL] = 0x0360,
	[M88_SPEC_STATUS] = 0xAC00,   /* resolved 1000 Mb/s full duplex, link up */
	[M88_EXT_SPEC_CTRL] = 0x0D60,
};

static bool phy_read_only(unsigned int r)
{
	switch (r) {
	case PHY_STATUS: case PHY_ID1: case PHY_ID2: case PHY_LP_ABILITY: case PHY_AUTONEG_EXP:
	case PHY_1000T_STATUS: case PHY_EXT_STATUS: case M88_SPEC_STATUS: case M88_INT_STATUS:
	case M88_RX_ERR_CNTR:
		return true;
	default:
		return false;
	}
}

/* The 82540EM's power-on EEPROM as QEMU ships it (words 0-2, the MAC, and the
 * checksum word are filled in at create). */
static const uint16_t eeprom_template[EEPROM_WORDS] = {
	0x0000, 0x0000, 0x0000, 0x0000, 0xFFFF, 0x0000, 0x0000, 0x0000,
	0x3000, 0x1000, 0x6403, E1000_SUBSYSTEM_ID, E1000_VENDOR_ID, E1000_DEVICE_ID, E1000_VENDOR_ID, 0x3040,
	0x0008, 0x2000, 0x7E14, 0x0048, 0x1000, 0x00D8, 0x0000, 0x2700,
	0x6CC9, 0x3150, 0x0722, 0x040B, 0x0984, 0x0000, 0xC000, 0x0706,
	0x1008, 0x0000, 0x0F04, 0x7FFF, 0x4D01, 0xFFFF, 0xFFFF, 0xFFFF,
	0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF,
	0x0100, 0x4000, 0x121C, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF,
	0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0x0000,
};

/* Registers with no behaviour: they keep what the driver writes. */
static const struct { uint32_t first, last; } plain_ranges[] = {
	{ REG_CTRL_EXT, REG_CTRL_EXT }, { REG_FCAL, REG_FCT }, { REG_VET, REG_VET },
	{ REG_FCTTV, REG_FCTTV }, { REG_TXCW, REG_TXCW }, { REG_RXCW, REG_RXCW },
	{ REG_TIPG, REG_TIPG }, { REG_LEDCTL, REG_LEDCTL }, { REG_PBA, REG_PBA },
	{ REG_FCRTL, REG_FCRTL }, { REG_FCRTH, REG_FCRTH }, { REG_RDFH, REG_RDFPC },
	{ REG_RDTR, REG_RDTR }, { REG_RXDCTL, REG_RADV }, { REG_RSRPD, REG_RSRPD }, { REG_TXDMAC, REG_TXDMAC },
	{ REG_TDFH, REG_TDFPC }, { REG_TIDV, REG_TIDV }, { REG_TXDCTL, REG_TSPMT }, { REG_RXCSUM, REG_RXCSUM },
	{ REG_MTA, REG_MTA + 127 * 4 }, { REG_RA, REG_RA + 31 * 4 }, { REG_VFTA, REG_VFTA + 127 * 4 },
	{ REG_WUC, REG_WUC }, { REG_WUFC, REG_WUFC }, { REG_WUS, REG_WUS }, { REG_MANC, REG_MANC },
	{ REG_IPAV, REG_IPAV }, { REG_IP4AT, REG_IP4AT + 7 * 4 }, { REG_IP6AT, REG_IP6AT + 3 * 4 },
	{ REG_WUPL, REG_WUPL }, { REG_WUPM, REG_WUPM + 31 * 4 }, { REG_FFLT, REG_FFLT + 7 * 4 },
	{ REG_FFMT, REG_FFMT + 255 * 4 }, { REG_FFVT, REG_FFVT + 255 * 4 },
};

/* The Ethernet FCS is zlib's CRC-32 (reflected, inverted), sent least
 * significant byte first. zlib's is several times faster than a byte table,
 * and the driver keeps the FCS on every received frame (no RCTL.SECRC). */
static uint32_t ether_crc32(const uint8_t *p, size_t len)
{
	return (uint32_t)crc32(0L, p, (uInt)len);
}

/* Compute the checksum of f[start..end] (end inclusive, 0 meaning the frame's
 * end) and store it at offset. The field itself is part of the sum unless
 * zero_field: that is how a TCP/UDP pseudo-header sum seeded there gets in.
 * Offsets outside the frame (a confused or hostile driver) insert nothing. */
static void put_checksum(uint8_t *f, uint32_t len, uint32_t start, uint32_t offset, uint32_t end, bool zero_field,
			 bool udp)
{
	uint32_t last = end && end < len ? end : len - 1;
	uint16_t sum;

	if (!len || start > last || offset + 2 > len)
		return;
	if (zero_field)
		put_be16(f + offset, 0);
	sum = (uint16_t)~csum_add(0, f + start, last - start + 1);
	if (udp && sum == 0)
		sum = 0xFFFF;  /* zero means "no checksum" in UDP */
	put_be16(f + offset, sum);
}

static __attribute__((format(printf, 3, 4))) void warn_once(struct e1000 *nic, enum warning what, const char *fmt,
							    ...)
{
	char msg[256];
	va_list ap;

	if (nic->warned & what)
		return;
	nic->warned |= what;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("e1000: %s", msg);
}

static uint32_t reg(const struct e1000 *nic, uint32_t offset)
{
	return nic->regs[offset / 4];
}

static void set_reg(struct e1000 *nic, uint32_t offset, uint32_t value)
{
	nic->regs[offset / 4] = value;
}

static void stat_add(struct e1000 *nic, uint32_t offset, uint32_t n)
{
	nic->regs[offset / 4] += n;
}

/* The 64-bit octet counters: low dword at offset, high dword after it. */
static void stat_add64(struct e1000 *nic, uint32_t offset, uint32_t n)
{
	uint32_t low = reg(nic, offset) + n;

	if (low < n)
		stat_add(nic, offset + 4, 1);
	set_reg(nic, offset, low);
}

static bool has_offload(const struct e1000 *nic, unsigned int bit)
{
	return nic->be->offloads & (1ULL << bit);
}

/* Interrupt throttling (SDM 13.4.18, ITR): at least ITR x 256 ns pass from
 * one assertion to the next; causes that come meanwhile collect in ICR and go
 * out together in one assertion when the interval ends. Says whether the
 * interrupt may rise now, noting the time if so; if not, the timer is armed
 * for the end of the interval. ITR 0 turns throttling off. */
static bool throttle_allows(struct e1000 *nic)
{
	uint64_t interval = (uint64_t)(reg(nic, REG_ITR) & ITR_INTERVAL_MASK) * ITR_UNIT_NS, now, deadline;

	if (!nic->now_ns)
		return true;
	/* Read even with ITR 0: an interval set later counts from the last assertion. */
	now = nic->now_ns(nic->timer_ctx);
	deadline = nic->last_assert_ns + interval;
	if (interval && nic->asserted_before && now < deadline) {
		if (deadline != nic->timer_deadline) {  /* one system call per interval, not per cause */
			nic->timer_deadline = deadline;
			nic->arm_timer(nic->timer_ctx, deadline);
		}
		return false;
	}
	nic->last_assert_ns = now;
	nic->asserted_before = true;
	return true;
}

/* INTx: the interrupt rises when an unmasked cause is pending and throttling
 * allows it, and stays up until no unmasked cause is left; the line follows
 * it unless the driver has disabled INTx in the command register. */
static void update_irq(struct e1000 *nic)
{
	uint16_t command = get_le16(&nic->pci.config[PCI_COMMAND]);
	bool pending = (reg(nic, REG_ICR) & reg(nic, REG_IMS)) != 0;
	bool level;

	if (!pending)
		nic->asserted = false;
	else if (!nic->asserted)
		nic->asserted = throttle_allows(nic);
	level = nic->asserted && !(command & PCI_COMMAND_INTX_DISABLE);
	if (pending)
		nic->pci.config[PCI_STATUS] |= PCI_STATUS_INTERRUPT;
	else
		nic->pci.config[PCI_STATUS] &= (uint8_t)~PCI_STATUS_INTERRUPT;
	if (level == nic->irq_level)
		return;
	nic->irq_level = level;
	if (nic->set_irq)
		nic->set_irq(nic->irq_ctx, level);
}

static void raise_cause(struct e1000 *nic, uint32_t cause)
{
	if (!cause)
		return;
	set_reg(nic, REG_ICR, reg(nic, REG_ICR) | cause);
	update_irq(nic);
}

static void reset(struct e1000 *nic)
{
	memset(nic->regs, 0, sizeof(nic->regs));
	set_reg(nic, REG_CTRL, CTRL_FD | CTRL_SLU | CTRL_SPD_1000);
	set_reg(nic, REG_PBA, 0x00100030);  /* 48 KiB receive, 16 KiB transmit */
	set_reg(nic, REG_LEDCTL, 0x07068302);
	set_reg(nic, REG_VET, ETH_P_8021Q);
	/* Receive address 0 comes from the EEPROM, valid. */
	set_reg(nic, REG_RA, (uint32_t)nic->mac[0] | (uint32_t)nic->mac[1] << 8 | (uint32_t)nic->mac[2] << 16 |
				     (uint32_t)nic->mac[3] << 24);
	set_reg(nic, REG_RA + 4, (uint32_t)nic->mac[4] | (uint32_t)nic->mac[5] << 8 | RAH_AV);
	memcpy(nic->phy, phy_defaults, sizeof(nic->phy));
	memset(&nic->ee, 0, sizeof(nic->ee));
	nic->ee.dout = true;
	nic->ioaddr = 0;
	memset(&nic->ctx, 0, sizeof(nic->ctx));
	nic->tx.len = 0;
	nic->tx.started = nic->tx.dropping = false;
	nic->rx_pending = nic->rx_stalled = false;
	update_irq(nic);
	/* No GSO frames from the host (the 82540 has no receive coalescing), but
	 * partial checksums where the backend hands them over: they are completed
	 * here, on the I/O thread, instead of by the host's stack on whichever
	 * thread sent (often a vCPU, whose ACK wakes the host's TCP sender). */
	if (nic->be->ops->set_guest_offloads)
		nic->be->ops->set_guest_offloads(nic->be, nic->be->offloads & (1ULL << VIRTIO_NET_F_GUEST_CSUM));
}

/* --- EEPROM (Microwire, bit-banged through EECD) ----------------------- */

static uint32_t eecd_read(const struct e1000 *nic)
{
	uint32_t v = nic->ee.eecd | EECD_PRES;

	if (v & EECD_REQ)
		v |= EECD_GNT;  /* no firmware competes for the EEPROM */
	if (nic->ee.dout)
		v |= EECD_DO;
	return v;
}

/* Linux shifts the read opcode and a 6-bit address in on rising SK edges with
 * CS high, then reads a data bit from DO after each further rising edge, most
 * significant first; dropping CS ends the command. */
static void eecd_write(struct e1000 *nic, uint32_t value)
{
	struct eeprom_port *ee = &nic->ee;
	bool rising = !(ee->eecd & EECD_SK) && (value & EECD_SK);

	ee->eecd = value & (EECD_SK | EECD_CS | EECD_DI | EECD_FWE_MASK | EECD_REQ);
	if (!(value & EECD_CS)) {
		ee->bits = 0;
		ee->shift = 0;
		ee->reading = ee->ignoring = false;
		ee->dout = true;  /* a Microwire part signals "ready" on an idle DO */
		return;
	}
	if (!rising || ee->ignoring)
		return;
	if (ee->reading) {
		ee->dout = (nic->eeprom[ee->addr] >> (15 - ee->out_pos)) & 1;
		if (++ee->out_pos == 16) {  /* sequential reads run on to the next word */
			ee->out_pos = 0;
			ee->addr = (uint8_t)((ee->addr + 1) % EEPROM_WORDS);
		}
		return;
	}
	if (ee->bits == 0 && !(value & EECD_DI))
		return;  /* leading zeros before the start bit are ignored */
	ee->shift = (uint16_t)(ee->shift << 1 | ((value & EECD_DI) ? 1 : 0));
	ee->bits++;
	if (ee->bits == 3 && ee->shift != EEPROM_OP_READ)
		ee->ignoring = true;  /* write/erase/enable: the EEPROM stays read-only */
	if (ee->bits == 3 + EEPROM_ADDR_BITS) {
		ee->reading = true;
		ee->addr = ee->shift & (EEPROM_WORDS - 1);
		ee->out_pos = 0;
		ee->dout = false;  /* the dummy zero before the data */
	}
}

static void eerd_write(struct e1000 *nic, uint32_t value)
{
	uint32_t addr = (value >> EERD_ADDR_SHIFT) & 0xFF;

	if (!(value & EERD_START)) {
		set_reg(nic, REG_EERD, value & ~EERD_DONE);
		return;
	}
	set_reg(nic, REG_EERD, (uint32_t)(addr < EEPROM_WORDS ? nic->eeprom[addr] : 0) << EERD_DATA_SHIFT |
				       addr << EERD_ADDR_SHIFT | EERD_DONE);
}

/* --- PHY through MDIC ---------------------------------------------------- */

static void phy_write(struct e1000 *nic, unsigned int r, uint16_t value)
{
	if (phy_read_only(r))
		return;
	if (r == PHY_CTRL)  /* reset and autoneg restart complete at once: the link stays up */
		value &= (uint16_t)~(PHY_CTRL_RESET | PHY_CTRL_RESTART_AN);
	nic->phy[r] = value;
}

static void mdic_write(struct e1000 *nic, uint32_t value)
{
	unsigned int phy = (value >> MDIC_PHY_SHIFT) & 0x1F, r = (value >> MDIC_REG_SHIFT) & 0x1F;
	uint32_t result = value & ~(MDIC_READY | MDIC_ERROR);

	if (phy != PHY_ADDR) {
		result |= MDIC_ERROR;  /* nothing answers at other addresses */
	} else if ((value & (MDIC_OP_READ | MDIC_OP_WRITE)) == MDIC_OP_READ) {
		result = (result & ~MDIC_DATA_MASK) | nic->phy[r];
	} else if ((value & (MDIC_OP_READ | MDIC_OP_WRITE)) == MDIC_OP_WRITE) {
		phy_write(nic, r, (uint16_t)value);
	} else {
		result |= MDIC_ERROR;
	}
	set_reg(nic, REG_MDIC, result | MDIC_READY);
	if (value & MDIC_INT_EN)
		raise_cause(nic, ICR_MDAC);
}

/* --- Descriptor rings ---------------------------------------------------- */

/* The ring whose base-low register is bal (length and head follow it): its
 * host mapping and descriptor count, if all of it lies in guest RAM. */
static bool ring_map(struct e1000 *nic, uint32_t bal, uint8_t **host, uint32_t *count)
{
	uint64_t base = (uint64_t)reg(nic, bal + 4) << 32 | (reg(nic, bal) & ~0xFU);
	uint32_t len = reg(nic, bal + 8) & RING_LEN_MASK;
	void *p;

	if (!len || guest_mem_translate(nic->mem, base, len, &p))
		return false;
	*host = p;
	*count = len / DESC_SIZE;
	return true;
}

/* --- Transmit ------------------------------------------------------------ */

static void tx_send(struct e1000 *nic, struct virtio_net_hdr_v1 *vh, const uint8_t *head, uint32_t head_len,
		    const uint8_t *tail, uint32_t tail_len, bool vlan, uint16_t tci)
{
	struct iovec iov[5];
	uint8_t tag[4];
	unsigned int n = 0;
	uint32_t len = head_len + tail_len;
	int err;

	iov[n++] = (struct iovec){ vh, NET_HDR_LEN };
	if (vlan) {
		/* The 802.1Q tag goes after the addresses; offsets the backend sees move with it. */
		put_be16(tag, (uint16_t)reg(nic, REG_VET));
		put_be16(tag + 2, tci);
		iov[n++] = (struct iovec){ (void *)head, 2 * ETH_ALEN };
		iov[n++] = (struct iovec){ tag, sizeof(tag) };
		iov[n++] = (struct iovec){ (void *)(head + 2 * ETH_ALEN), head_len - 2 * ETH_ALEN };
		if (vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			vh->csum_start = htole16((uint16_t)(le16toh(vh->csum_start) + sizeof(tag)));
		if (vh->gso_type != VIRTIO_NET_HDR_GSO_NONE)
			vh->hdr_len = htole16((uint16_t)(le16toh(vh->hdr_len) + sizeof(tag)));
		len += sizeof(tag);
	} else {
		iov[n++] = (struct iovec){ (void *)head, head_len };
	}
	if (tail_len)
		iov[n++] = (struct iovec){ (void *)tail, tail_len };
	if (--nic->tx_budget == 0)
		warn_once(nic, WARN_TX_BUDGET, "%u frames sent in one transmit kick; any more are dropped",
			  TX_SEND_BUDGET);
	err = nic->be->ops->send(nic->be, 0, iov, n);
	if (err) {
		warn_once(nic, WARN_TX_SEND, "%s send: %s (frames dropped)", nic->be->ops->name, strerror(-err));
		return;
	}
	stat_add(nic, REG_GPTC, 1);
	stat_add(nic, REG_TPT, 1);
	stat_add64(nic, REG_GOTCL, len + ETH_FCS_LEN);
	stat_add64(nic, REG_TOTL, len + ETH_FCS_LEN);
	if (head[0] & 1)
		stat_add(nic, memcmp(head, "\xff\xff\xff\xff\xff\xff", ETH_ALEN) ? REG_MPTC : REG_BPTC, 1);
}

/* TCP segmentation as the 82540 does it: the context's headers in front of
 * each MSS of payload, IP length and ID, TCP sequence number and flags fixed
 * per segment; the TCP checksum field holds the pseudo-header sum without the
 * length, which each segment adds. A backend that takes GSO frames gets the
 * whole frame instead, with headers made valid for it. */
static void tx_tso(struct e1000 *nic, bool vlan, uint16_t tci)
{
	const struct tx_context *c = &nic->ctx;
	struct tx_frame *tx = &nic->tx;
	struct virtio_net_hdr_v1 vh = { .gso_type = VIRTIO_NET_HDR_GSO_NONE };
	uint8_t *f = tx->data, *h = tx->seg_hdr;
	uint32_t len = tx->len, hdr_len = c->hdr_len, payload, seq;
	uint32_t ip_end = c->ipcse ? c->ipcse : hdr_len - 1;
	bool ipv4 = c->tucmd & TUCMD_IP, ixsm = tx->popts & TXD_POPTS_IXSM, txsm = tx->popts & TXD_POPTS_TXSM;
	uint16_t ip_id, seed;
	uint8_t flags;

	if (!(c->tucmd & TUCMD_TCP) || !c->mss || hdr_len < ETH_HLEN || hdr_len >= len ||
	    c->tucss + TCP_MIN_HLEN > hdr_len || c->tucso < c->tucss || c->tucso + 2U > hdr_len ||
	    c->ipcss + (ipv4 ? IPV4_MIN_HLEN : IPV6_HLEN) > hdr_len ||
	    (ixsm && (c->ipcso + 2U > hdr_len || ip_end >= hdr_len || c->ipcss > ip_end))) {
		warn_once(nic, WARN_TX_TSO, "unusable TSO context (hdr_len %u, mss %u, tucmd 0x%x); frames dropped",
			  hdr_len, c->mss, c->tucmd);
		stat_add(nic, REG_TSCTFC, 1);
		return;
	}
	stat_add(nic, REG_TSCTC, 1);
	payload = len - hdr_len;
	flags = f[c->tucss + 13];
	if (txsm && has_offload(nic, VIRTIO_NET_F_CSUM) &&
	    has_offload(nic, ipv4 ? VIRTIO_NET_F_HOST_TSO4 : VIRTIO_NET_F_HOST_TSO6) &&
	    (!(flags & TCP_FLAG_CWR) || has_offload(nic, VIRTIO_NET_F_HOST_ECN)) && len - c->ipcss <= 0xFFFF) {
		if (ipv4)
			put_be16(f + c->ipcss + 2, (uint16_t)(len - c->ipcss));
		else
			put_be16(f + c->ipcss + 4, (uint16_t)(len - c->ipcss - IPV6_HLEN));
		if (ixsm)
			put_checksum(f, len, c->ipcss, c->ipcso, ip_end, true, false);
		/* A partial checksum, as virtio wants it: the pseudo-header with the length. */
		put_be16(f + c->tucso, csum_add32(get_be16(f + c->tucso), len - c->tucss));
		vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		vh.csum_start = htole16(c->tucss);
		vh.csum_offset = htole16((uint16_t)(c->tucso - c->tucss));
		if (payload > c->mss) {
			vh.gso_type = ipv4 ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6;
			if (flags & TCP_FLAG_CWR)
				vh.gso_type |= VIRTIO_NET_HDR_GSO_ECN;
			vh.gso_size = htole16(c->mss);
			vh.hdr_len = htole16((uint16_t)hdr_len);
		}
		tx_send(nic, &vh, f, len, NULL, 0, vlan, tci);
		return;
	}
	ip_id = get_be16(f + c->ipcss + 4);
	seq = get_be32(f + c->tucss + 4);
	seed = get_be16(f + c->tucso);
	for (uint32_t off = 0, i = 0, chunk; off < payload && nic->tx_budget; off += chunk, i++) {
		uint32_t seg_len;

		chunk = payload - off < c->mss ? payload - off : c->mss;
		seg_len = hdr_len + chunk;
		memcpy(h, f, hdr_len);
		if (ipv4) {
			put_be16(h + c->ipcss + 2, (uint16_t)(seg_len - c->ipcss));
			put_be16(h + c->ipcss + 4, (uint16_t)(ip_id + i));
		} else {
			put_be16(h + c->ipcss + 4, (uint16_t)(seg_len - c->ipcss - IPV6_HLEN));
		}
		if (ixsm)
			put_checksum(h, hdr_len, c->ipcss, c->ipcso, ip_end, true, false);
		put_be32(h + c->tucss + 4, seq + off);
		if (off + chunk < payload)
			h[c->tucss + 13] = flags & (uint8_t)~(TCP_FLAG_FIN | TCP_FLAG_PSH);
		if (txsm) {
			uint16_t sum;

			put_be16(h + c->tucso, seed);
			sum = csum_add(csum_add32(0, seg_len - c->tucss), h + c->tucss, hdr_len - c->tucss);
			sum = csum_add_at(sum, f + hdr_len + off, chunk, hdr_len - c->tucss);
			put_be16(h + c->tucso, (uint16_t)~sum);
		}
		memset(&vh, 0, sizeof(vh));
		tx_send(nic, &vh, h, hdr_len, f + hdr_len + off, chunk, vlan, tci);
	}
}

/* One frame with a context's checksum offloads (no segmentation). */
static void tx_offload(struct e1000 *nic, bool vlan, uint16_t tci)
{
	const struct tx_context *c = &nic->ctx;
	struct tx_frame *tx = &nic->tx;
	struct virtio_net_hdr_v1 vh = { .gso_type = VIRTIO_NET_HDR_GSO_NONE };
	uint32_t len = tx->len;

	if (tx->popts & TXD_POPTS_IXSM)
		put_checksum(tx->data, len, c->ipcss, c->ipcso, c->ipcse, true, false);
	if (tx->popts & TXD_POPTS_TXSM) {
		/* The backend checksums from csum_start to the end, nothing shorter. */
		if (has_offload(nic, VIRTIO_NET_F_CSUM) && c->tucso >= c->tucss && c->tucss < len &&
		    c->tucso + 2u <= len && (!c->tucse || c->tucse >= len - 1)) {
			vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
			vh.csum_start = htole16(c->tucss);
			vh.csum_offset = htole16((uint16_t)(c->tucso - c->tucss));
		} else {
			put_checksum(tx->data, len, c->tucss, c->tucso, c->tucse, false, !(c->tucmd & TUCMD_TCP));
		}
	}
	tx_send(nic, &vh, tx->data, len, NULL, 0, vlan, tci);
}

static void tx_finish(struct e1000 *nic, bool vle, uint16_t tci)
{
	struct tx_frame *tx = &nic->tx;
	bool vlan = vle && (reg(nic, REG_CTRL) & CTRL_VME);

	if (!tx->dropping && tx->len >= ETH_HLEN && nic->tx_budget) {
		if (tx->legacy) {
			struct virtio_net_hdr_v1 vh = { .gso_type = VIRTIO_NET_HDR_GSO_NONE };

			if (tx->ic)
				put_checksum(tx->data, tx->len, tx->css, tx->cso, 0, false, false);
			tx_send(nic, &vh, tx->data, tx->len, NULL, 0, vlan, tci);
		} else if (tx->tse) {
			tx_tso(nic, vlan, tci);
		} else {
			tx_offload(nic, vlan, tci);
		}
	}
	tx->len = 0;
	tx->started = tx->dropping = false;
}

static void tx_append(struct e1000 *nic, uint64_t addr, uint32_t len)
{
	struct tx_frame *tx = &nic->tx;
	void *p;

	if (tx->dropping || !len)
		return;
	if (len > TX_MAX_FRAME - tx->len) {
		warn_once(nic, WARN_TX_SIZE, "transmit frame over %u bytes (no EOP?); dropped", TX_MAX_FRAME);
		tx->dropping = true;
		return;
	}
	if (guest_mem_translate(nic->mem, addr, len, &p)) {
		warn_once(nic, WARN_TX_ADDR, "transmit buffer 0x%llx+%u outside RAM; frame dropped",
			  (unsigned long long)addr, len);
		tx->dropping = true;
		return;
	}
	memcpy(tx->data + tx->len, p, len);
	tx->len += len;
}

/* A frame begins; once the kick's budget is spent it is not even gathered. */
static void tx_start(struct e1000 *nic)
{
	nic->tx.started = true;
	nic->tx.dropping = !nic->tx_budget;
}

/* One transmit descriptor (a copy: the guest may rewrite the ring meanwhile).
 * Returns whether the driver asked for its status to be written back. */
static bool tx_descriptor(struct e1000 *nic, const uint8_t *d)
{
	struct tx_frame *tx = &nic->tx;
	uint32_t lower = get_le32(d + 8);
	uint8_t cmd = (uint8_t)(lower >> 24);

	if (!(cmd & TXD_CMD_DEXT)) {
		if (!tx->started) {
			tx_start(nic);
			tx->legacy = true;
			tx->tse = false;
			tx->popts = 0;
			tx->ic = cmd & TXD_CMD_IC;
			tx->cso = d[10];
			tx->css = d[13];
		}
		tx_append(nic, get_le64(d), lower & 0xFFFF);
	} else {
		switch ((lower >> 20) & 0xF) {
		case TXD_DTYP_CONTEXT:
			nic->ctx = (struct tx_context){
				.ipcss = d[0], .ipcso = d[1], .ipcse = get_le16(d + 2),
				.tucss = d[4], .tucso = d[5], .tucse = get_le16(d + 6),
				.tucmd = cmd, .hdr_len = d[13], .mss = get_le16(d + 14),
			};
			return cmd & (TXD_CMD_RS | TXD_CMD_RPS);
		case TXD_DTYP_DATA:
			if (!tx->started) {
				tx_start(nic);
				tx->legacy = false;
				tx->tse = cmd & TXD_CMD_TSE;
				tx->popts = d[13];
			}
			tx_append(nic, get_le64(d), lower & 0xFFFFF);
			break;
		default:
			warn_once(nic, WARN_TX_DTYP, "transmit descriptor type %u ignored", (lower >> 20) & 0xF);
			return cmd & (TXD_CMD_RS | TXD_CMD_RPS);
		}
	}
	if (cmd & TXD_CMD_EOP)
		tx_finish(nic, cmd & TXD_CMD_VLE, get_le16(d + 14));
	return cmd & (TXD_CMD_RS | TXD_CMD_RPS);
}

/* Everything from TDH to TDT, at most one ring's worth since both are below its size. */
static void tx_process(struct e1000 *nic)
{
	uint32_t n, head = reg(nic, REG_TDH), tail = reg(nic, REG_TDT), cause = ICR_TXQE;
	uint8_t *ring;

	if (!(reg(nic, REG_TCTL) & TCTL_EN) || head == tail)
		return;
	if (!ring_map(nic, REG_TDBAL, &ring, &n)) {
		warn_once(nic, WARN_TX_RING, "transmit ring 0x%x:%08x+0x%x not in RAM; nothing sent",
			  reg(nic, REG_TDBAH), reg(nic, REG_TDBAL), reg(nic, REG_TDLEN));
		return;
	}
	if (head >= n || tail >= n) {
		warn_once(nic, WARN_TX_INDEX, "transmit head %u / tail %u beyond a %u-descriptor ring", head, tail, n);
		return;
	}
	nic->tx_budget = TX_SEND_BUDGET;
	while (head != tail) {
		uint8_t *slot = ring + (size_t)head * DESC_SIZE, desc[DESC_SIZE];

		memcpy(desc, slot, DESC_SIZE);
		if (tx_descriptor(nic, desc)) {
			/* DD hands the buffers back: our reads of them must come first. */
			__atomic_store_n(&slot[12], (uint8_t)((slot[12] & 0xF0) | TXD_STAT_DD), __ATOMIC_RELEASE);
			cause |= ICR_TXDW;
		}
		head = (head + 1) % n;
	}
	if (nic->be->ops->flush)
		nic->be->ops->flush(nic->be, 0);
	set_reg(nic, REG_TDH, head);
	raise_cause(nic, cause);
}

/* --- Receive ------------------------------------------------------------- */

static uint32_t rx_buffer_size(uint32_t rctl)
{
	static const uint32_t sizes[2][4] = { { 2048, 1024, 512, 256 }, { 2048, 16384, 8192, 4096 } };

	return sizes[(rctl & RCTL_BSEX) ? 1 : 0][(rctl >> RCTL_BSIZE_SHIFT) & 3];
}

static bool rx_address_match(const struct e1000 *nic, const uint8_t *da)
{
	uint32_t rctl = reg(nic, REG_RCTL);

	if (da[0] & 1) {
		static const unsigned int mo_shift[4] = { 4, 3, 2, 0 };
		uint32_t hash;

		if (!memcmp(da, "\xff\xff\xff\xff\xff\xff", ETH_ALEN) && (rctl & RCTL_BAM))
			return true;
		if (rctl & RCTL_MPE)
			return true;
		/* 12 bits of the address, where RCTL.MO says, index the multicast table. */
		hash = ((uint32_t)da[4] >> mo_shift[(rctl >> RCTL_MO_SHIFT) & 3] |
			(uint32_t)da[5] << (8 - mo_shift[(rctl >> RCTL_MO_SHIFT) & 3])) & 0xFFF;
		return reg(nic, REG_MTA + (hash >> 5) * 4) & (1U << (hash & 31));
	}
	if (rctl & RCTL_UPE)
		return true;
	for (unsigned int i = 0; i < 16; i++) {
		uint32_t low = reg(nic, REG_RA + i * 8), high = reg(nic, REG_RA + i * 8 + 4);
		uint8_t ra[ETH_ALEN] = { (uint8_t)low, (uint8_t)(low >> 8), (uint8_t)(low >> 16),
					 (uint8_t)(low >> 24), (uint8_t)high, (uint8_t)(high >> 8) };

		if ((high & RAH_AV) && !memcmp(ra, da, ETH_ALEN))
			return true;
	}
	return false;
}

/* Receive checksum offload (RXCSUM; SDM 3.2.9): the IPv4 header checksum and
 * the TCP/UDP checksum of unfragmented IPv4 and of IPv6 without extension
 * headers, found good or bad. It saves the driver its own pass over every
 * frame, on the guest's vCPU; here it runs on the I/O thread. A frame the host
 * vouched for (known_good: a partial checksum completed here, or DATA_VALID)
 * is not summed again. Frames of other kinds keep IXSM: the driver checks them. */
static void rx_checksum(struct e1000 *nic, const uint8_t *f, uint32_t len, bool known_good)
{
	uint32_t rxcsum = reg(nic, REG_RXCSUM), l3 = ETH_HLEN, l4, l4_len, hlen;
	uint16_t ethertype = get_be16(f + 2 * ETH_ALEN), pseudo;
	uint8_t proto, status = 0, errors = 0;

	nic->rx_csum_status = RXD_STAT_IXSM;
	nic->rx_csum_errors = 0;
	if (!(rxcsum & (RXCSUM_IPOFLD | RXCSUM_TUOFLD)))
		return;
	if (ethertype == (uint16_t)reg(nic, REG_VET) && len >= ETH_HLEN + 4) {  /* a tag the device left in */
		ethertype = get_be16(f + 2 * ETH_ALEN + 4);
		l3 += 4;
	}
	if (ethertype == ETH_P_IP && len >= l3 + 20 && f[l3] >> 4 == 4) {
		const uint8_t *ip = f + l3;
		uint32_t total = get_be16(ip + 2);

		hlen = (ip[0] & 0xF) * 4u;
		if (hlen < 20 || total < hlen || l3 + total > len)
			return;
		if (rxcsum & RXCSUM_IPOFLD) {
			status |= RXD_STAT_IPCS;
			if (csum_add(0, ip, hlen) != 0xFFFF)
				errors |= RXD_ERR_IPE;
		}
		proto = ip[9];
		l4 = l3 + hlen;
		l4_len = total - hlen;
		if (get_be16(ip + 6) & 0x3FFF)
			proto = 0;  /* a fragment: its L4 checksum covers other frames too */
		pseudo = csum_add(0, ip + 12, 8);
	} else if (ethertype == ETH_P_IPV6 && len >= l3 + 40 && f[l3] >> 4 == 6) {
		const uint8_t *ip = f + l3;

		l4 = l3 + 40;
		l4_len = get_be16(ip + 4);
		if (l4 + l4_len > len)
			return;
		proto = ip[6];
		pseudo = csum_add(0, ip + 8, 32);
	} else {
		return;
	}
	if ((rxcsum & RXCSUM_TUOFLD) && (proto == IPPROTO_TCP || proto == IPPROTO_UDP) &&
	    l4_len >= (proto == IPPROTO_TCP ? 20u : 8u) &&
	    !(proto == IPPROTO_UDP && ethertype == ETH_P_IP && !get_be16(f + l4 + 6))) {  /* UDPv4 without one */
		status |= RXD_STAT_TCPCS;
		if (!known_good) {
			uint16_t sum = csum_add(csum_add32(csum_add16(pseudo, proto), l4_len), f + l4, l4_len);

			if (sum != 0xFFFF)
				errors |= RXD_ERR_TCPE;
		}
	}
	if (status) {
		nic->rx_csum_status = status;
		nic->rx_csum_errors = errors;
	}
}

/* Turn what the backend handed over (header first, at rx_buf) into the frame
 * the 82540 would deliver: filtered, VLAN tag stripped, padded, checksums
 * judged, FCS appended. Returns false if it is dropped. */
static bool rx_prepare(struct e1000 *nic, size_t got)
{
	struct virtio_net_hdr_v1 vh;
	uint8_t *f = nic->rx_buf + NET_HDR_LEN;
	uint32_t rctl = reg(nic, REG_RCTL), len;

	if (got < NET_HDR_LEN + ETH_HLEN) {
		stat_add(nic, REG_RUC, 1);
		return false;
	}
	len = (uint32_t)(got - NET_HDR_LEN);
	memcpy(&vh, nic->rx_buf, sizeof(vh));
	if (vh.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
		warn_once(nic, WARN_RX_GSO, "%s handed over a GSO frame; dropped", nic->be->ops->name);
		return false;
	}
	if (vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		uint32_t start = le16toh(vh.csum_start);

		/* csum_offset 6 is UDP's field, where a sum of 0 goes out as 0xFFFF. */
		put_checksum(f, len, start, start + le16toh(vh.csum_offset), 0, false, le16toh(vh.csum_offset) == 6);
	}
	if (len + ETH_FCS_LEN > ((rctl & RCTL_LPE) ? RX_MAX_LONG_FRAME : RX_MAX_FRAME)) {
		stat_add(nic, REG_ROC, 1);
		return false;
	}
	if (!rx_address_match(nic, f))
		return false;
	nic->rx_vlan = false;
	if (len >= ETH_HLEN + 4 && get_be16(f + 2 * ETH_ALEN) == (uint16_t)reg(nic, REG_VET)) {
		uint16_t tci = get_be16(f + 2 * ETH_ALEN + 2);

		if ((rctl & RCTL_VFE) && !(reg(nic, REG_VFTA + ((tci & 0xFFF) >> 5) * 4) & (1U << (tci & 31))))
			return false;
		if (reg(nic, REG_CTRL) & CTRL_VME) {
			memmove(f + 4, f, 2 * ETH_ALEN);
			f += 4;
			len -= 4;
			nic->rx_vlan = true;
			nic->rx_special = tci;
		}
	}
	if (len < ETH_MIN_FRAME) {
		memset(f + len, 0, ETH_MIN_FRAME - len);
		len = ETH_MIN_FRAME;
	}
	rx_checksum(nic, f, len, vh.flags & (VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID));
	if (!(rctl & RCTL_SECRC)) {
		/* The driver strips 4 bytes from every frame: they had better be the FCS. */
		uint32_t fcs = ether_crc32(f, len);

		f[len] = (uint8_t)fcs;
		f[len + 1] = (uint8_t)(fcs >> 8);
		f[len + 2] = (uint8_t)(fcs >> 16);
		f[len + 3] = (uint8_t)(fcs >> 24);
		len += ETH_FCS_LEN;
	}
	nic->rx_frame = f;
	nic->rx_len = len;
	return true;
}

enum rx_outcome { RX_WAIT, RX_DELIVERED, RX_DROPPED };

/* Put the pending frame into descriptors from RDH; RX_WAIT (the frame kept)
 * while the ring lacks free descriptors. */
static enum rx_outcome rx_deliver(struct e1000 *nic)
{
	uint32_t n, head = reg(nic, REG_RDH), tail = reg(nic, REG_RDT), bsize = rx_buffer_size(reg(nic, REG_RCTL));
	uint32_t need = (nic->rx_len + bsize - 1) / bsize, left = nic->rx_len, rdmts, cause = ICR_RXT0;
	const uint8_t *src = nic->rx_frame;
	uint8_t *ring, errors = 0;

	if (!ring_map(nic, REG_RDBAL, &ring, &n))
		return RX_WAIT;
	if (head >= n || tail >= n) {
		warn_once(nic, WARN_RX_INDEX, "receive head %u / tail %u beyond a %u-descriptor ring", head, tail, n);
		return RX_WAIT;
	}
	if (need > n - 1) {
		warn_once(nic, WARN_RX_HUGE, "a %u-byte frame cannot fit a %u x %u-byte receive ring; dropped",
			  nic->rx_len, n, bsize);
		return RX_DROPPED;
	}
	if ((tail + n - head) % n < need)
		return RX_WAIT;
	for (uint32_t i = 0; i < need; i++) {
		uint8_t *slot = ring + (size_t)head * DESC_SIZE, status = RXD_STAT_DD, csum_errors = 0;
		uint32_t chunk = left < bsize ? left : bsize;
		void *dst;

		if (guest_mem_translate(nic->mem, get_le64(slot), chunk, &dst)) {
			warn_once(nic, WARN_RX_ADDR, "receive buffer 0x%llx outside RAM; frame dropped",
				  (unsigned long long)get_le64(slot));
			errors = RXD_ERR_RXE;
		} else if (!errors) {
			memcpy(dst, src, chunk);
		}
		src += chunk;
		left -= chunk;
		if (i + 1 == need) {
			/* The driver takes a frame's checksum verdict from its last descriptor. */
			status |= RXD_STAT_EOP | nic->rx_csum_status;
			csum_errors = nic->rx_csum_errors;
			if (nic->rx_vlan)
				status |= RXD_STAT_VP;
		} else {
			status |= RXD_STAT_IXSM;
		}
		put_le16(slot + 8, errors ? 0 : (uint16_t)chunk);
		put_le16(slot + 10, 0);
		slot[13] = errors | csum_errors;
		put_le16(slot + 14, (i + 1 == need && nic->rx_vlan) ? nic->rx_special : 0);
		/* The driver polls DD, then reads the rest: it must see DD last. */
		__atomic_store_n(&slot[12], status, __ATOMIC_RELEASE);
		head = (head + 1) % n;
	}
	set_reg(nic, REG_RDH, head);
	if (!errors) {
		const uint8_t *da = nic->rx_frame;

		stat_add(nic, REG_GPRC, 1);
		stat_add64(nic, REG_GORCL, nic->rx_len);
		if (da[0] & 1)
			stat_add(nic, memcmp(da, "\xff\xff\xff\xff\xff\xff", ETH_ALEN) ? REG_MPRC : REG_BPRC, 1);
	}
	stat_add(nic, REG_TPR, 1);
	stat_add64(nic, REG_TORL, nic->rx_len);
	/* Free descriptors at or below the threshold (1/2, 1/4, 1/8 of the ring) ask for more. */
	rdmts = (reg(nic, REG_RCTL) >> RCTL_RDMTS_SHIFT) & 3;
	if ((tail + n - head) % n <= n >> (rdmts == 3 ? 3 : rdmts + 1))
		cause |= ICR_RXDMT0;
	raise_cause(nic, cause);
	return RX_DELIVERED;
}

/* Move frames from the backend to the ring until the backend runs dry or the
 * ring is full; a full ring leaves the next frame waiting for an RDT write. */
static void rx_pump(struct e1000 *nic)
{
	struct iovec iov = { nic->rx_buf, RX_BUF_SIZE - RX_TAIL_ROOM };
	unsigned int dropped = 0;

	while (dropped < RX_DROP_BUDGET) {
		ssize_t got;

		if (nic->rx_pending) {
			enum rx_outcome outcome = rx_deliver(nic);

			if (outcome == RX_WAIT) {
				nic->rx_stalled = true;
				return;
			}
			/* Delivered frames are bounded by the ring, dropped ones by the budget. */
			dropped += outcome == RX_DROPPED;
			nic->rx_pending = false;
		}
		nic->rx_stalled = false;
		got = nic->be->ops->recv(nic->be, 0, &iov, 1);
		if (got < 0) {
			if (got != -EAGAIN)
				warn_once(nic, WARN_RX_RECV, "%s receive: %s", nic->be->ops->name, strerror((int)-got));
			return;
		}
		if ((reg(nic, REG_RCTL) & RCTL_EN) && rx_prepare(nic, (size_t)got))
			nic->rx_pending = true;
		else
			dropped++;
	}
}

/* Receive may go on after the ring got room: on the I/O thread when there is
 * one (one kick until it has run), else here. */
static void rx_resume(struct e1000 *nic)
{
	if (!nic->kick_receive) {
		rx_pump(nic);
	} else if (!nic->rx_kicked) {
		nic->rx_kicked = true;
		nic->kick_receive(nic->kick_ctx);
	}
}

void e1000_backend_ready(struct e1000 *nic)
{
	pthread_mutex_lock(&nic->lock);
	nic->rx_kicked = false;
	rx_pump(nic);
	pthread_mutex_unlock(&nic->lock);
}

void e1000_timer_expired(struct e1000 *nic)
{
	pthread_mutex_lock(&nic->lock);
	nic->timer_deadline = 0;
	update_irq(nic);  /* re-arms if the interval grew meanwhile */
	pthread_mutex_unlock(&nic->lock);
}

/* --- Register file ------------------------------------------------------- */

static bool is_plain(uint32_t offset)
{
	for (size_t i = 0; i < sizeof(plain_ranges) / sizeof(plain_ranges[0]); i++)
		if (offset >= plain_ranges[i].first && offset <= plain_ranges[i].last)
			return true;
	return false;
}

static void unknown_register(struct e1000 *nic, uint32_t offset, const char *what)
{
	uint32_t index = offset / 4;

	if (nic->unknown_seen[index / 8] & (1U << (index % 8)))
		return;
	nic->unknown_seen[index / 8] |= (uint8_t)(1U << (index % 8));
	log_debug("e1000: %s of unemulated register 0x%05x", what, offset);
}

static uint32_t reg_read(struct e1000 *nic, uint32_t offset)
{
	uint32_t value;

	switch (offset) {
	case REG_STATUS:
		return STATUS_FD | STATUS_LU | STATUS_SPEED_1000 | STATUS_ASDV_1000 | STATUS_MTXCKOK;
	case REG_EECD:
		return eecd_read(nic);
	case REG_ICR:
		/* Reading acknowledges every cause. */
		value = reg(nic, REG_ICR);
		set_reg(nic, REG_ICR, 0);
		update_irq(nic);
		return value;
	case REG_ICS:
		return reg(nic, REG_ICR);  /* real parts mirror ICR here, without the clearing */
	case REG_IMC:
		return 0;
	case REG_CTRL: case REG_EERD: case REG_MDIC: case REG_ITR: case REG_IMS: case REG_RCTL: case REG_TCTL:
	case REG_RDBAL: case REG_RDBAH: case REG_RDLEN: case REG_RDH: case REG_RDT:
	case REG_TDBAL: case REG_TDBAH: case REG_TDLEN: case REG_TDH: case REG_TDT:
		return reg(nic, offset);
	}
	if (offset >= REG_STATS_FIRST && offset <= REG_STATS_LAST) {
		value = reg(nic, offset);
		set_reg(nic, offset, 0);
		return value;
	}
	if (is_plain(offset))
		return reg(nic, offset);
	unknown_register(nic, offset, "read");
	return 0;
}

static void reg_write(struct e1000 *nic, uint32_t offset, uint32_t value)
{
	uint32_t old;

	switch (offset) {
	case REG_CTRL:
		if (value & CTRL_RST) {
			reset(nic);  /* self-clearing: it reads back as 0 at once */
			return;
		}
		if ((value & CTRL_PHY_RST) && !(reg(nic, REG_CTRL) & CTRL_PHY_RST))
			memcpy(nic->phy, phy_defaults, sizeof(nic->phy));
		set_reg(nic, REG_CTRL, value);
		return;
	case REG_STATUS:
		return;
	case REG_EECD:
		eecd_write(nic, value);
		return;
	case REG_EERD:
		eerd_write(nic, value);
		return;
	case REG_MDIC:
		mdic_write(nic, value);
		return;
	case REG_ICR:
		set_reg(nic, REG_ICR, reg(nic, REG_ICR) & ~value);
		update_irq(nic);
		return;
	case REG_ICS:
		raise_cause(nic, value);
		return;
	case REG_ITR:
		/* A held interrupt goes out at once, or at the new interval's end. */
		set_reg(nic, REG_ITR, value & ITR_INTERVAL_MASK);
		update_irq(nic);
		return;
	case REG_IMS:
		set_reg(nic, REG_IMS, reg(nic, REG_IMS) | value);
		update_irq(nic);
		return;
	case REG_IMC:
		set_reg(nic, REG_IMS, reg(nic, REG_IMS) & ~value);
		update_irq(nic);
		return;
	case REG_RCTL:
		old = reg(nic, REG_RCTL);
		set_reg(nic, REG_RCTL, value);
		if (!(value & RCTL_EN))
			nic->rx_pending = nic->rx_stalled = false;  /* a receiver turned off loses what it held */
		else if (!(old & RCTL_EN) || nic->rx_stalled)
			rx_resume(nic);  /* frames may wait with no new edge on the backend's fd */
		return;
	case REG_RDBAL: case REG_TDBAL:
		set_reg(nic, offset, value & ~0xFU);
		return;
	case REG_RDBAH: case REG_TDBAH:
		set_reg(nic, offset, value);
		return;
	case REG_RDLEN: case REG_TDLEN:
		set_reg(nic, offset, value & RING_LEN_MASK);
		return;
	case REG_RDH: case REG_TDH:
		set_reg(nic, offset, value & RING_INDEX_MASK);
		return;
	case REG_RDT:
		set_reg(nic, REG_RDT, value & RING_INDEX_MASK);
		if (nic->rx_stalled)
			rx_resume(nic);
		return;
	case REG_TDT:
		set_reg(nic, REG_TDT, value & RING_INDEX_MASK);
		tx_process(nic);
		return;
	case REG_TCTL:
		set_reg(nic, REG_TCTL, value);
		tx_process(nic);  /* descriptors queued while the transmitter was off */
		return;
	}
	if (offset >= REG_STATS_FIRST && offset <= REG_STATS_LAST)
		return;
	if (is_plain(offset)) {
		set_reg(nic, offset, value);
		return;
	}
	unknown_register(nic, offset, "write");
}

/* BAR accesses count only with decoding on and the BAR where we put it. */
static bool mmio_active(struct e1000 *nic)
{
	uint16_t command = get_le16(&nic->pci.config[PCI_COMMAND]);
	uint32_t bar = get_le32(&nic->pci.config[PCI_BASE_ADDRESS_0]) & PCI_BASE_ADDRESS_MEM_MASK;

	if (bar != nic->mmio_base && (command & PCI_COMMAND_MEMORY))
		warn_once(nic, WARN_BAR, "guest moved BAR 0; kvio does not relocate BARs");
	return (command & PCI_COMMAND_MEMORY) && bar == nic->mmio_base;
}

static bool io_active(struct e1000 *nic)
{
	uint16_t command = get_le16(&nic->pci.config[PCI_COMMAND]);
	uint32_t bar = get_le32(&nic->pci.config[PCI_BASE_ADDRESS_1]) & PCI_BASE_ADDRESS_IO_MASK;

	if (bar != nic->io_base && (command & PCI_COMMAND_IO))
		warn_once(nic, WARN_BAR, "guest moved BAR 1; kvio does not relocate BARs");
	return nic->io_base && (command & PCI_COMMAND_IO) && bar == nic->io_base;
}

static uint64_t mmio_read(void *opaque, uint64_t offset, unsigned int size)
{
	struct e1000 *nic = opaque;
	uint64_t value = ~0ULL >> (64 - 8 * size);

	pthread_mutex_lock(&nic->lock);
	if (offset + size > E1000_MMIO_SIZE || offset % size || !mmio_active(nic)) {
		/* all ones, as from an address nothing decodes */
	} else if (size == 8) {
		value = reg_read(nic, (uint32_t)offset) | (uint64_t)reg_read(nic, (uint32_t)offset + 4) << 32;
	} else {
		/* Narrow reads see their part of the dword (with its side effects). */
		value = reg_read(nic, (uint32_t)offset & ~3U) >> (8 * (offset & 3));
		value &= ~0ULL >> (64 - 8 * size);
	}
	pthread_mutex_unlock(&nic->lock);
	return value;
}

static void mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned int size)
{
	struct e1000 *nic = opaque;

	pthread_mutex_lock(&nic->lock);
	if (offset + size > E1000_MMIO_SIZE || offset % size || !mmio_active(nic)) {
		/* ignored, as a real device ignores cycles it does not decode */
	} else if (size == 8) {
		reg_write(nic, (uint32_t)offset, (uint32_t)value);
		reg_write(nic, (uint32_t)offset + 4, (uint32_t)(value >> 32));
	} else if (size == 4) {
		reg_write(nic, (uint32_t)offset, (uint32_t)value);
	} else {
		warn_once(nic, WARN_ACCESS, "%u-byte register write at 0x%llx ignored (registers are dwords)", size,
			  (unsigned long long)offset);
	}
	pthread_mutex_unlock(&nic->lock);
}

/* BAR 1: IOADDR at 0 selects a register, IODATA at 4 reads or writes it. */
static uint64_t io_read(void *opaque, uint64_t offset, unsigned int size)
{
	struct e1000 *nic = opaque;
	uint64_t value = ~0ULL >> (64 - 8 * size);

	pthread_mutex_lock(&nic->lock);
	if (io_active(nic)) {
		value = 0;
		if (size == 4 && offset == 0)
			value = nic->ioaddr;
		else if (size == 4 && offset == 4)
			value = reg_read(nic, nic->ioaddr);
	}
	pthread_mutex_unlock(&nic->lock);
	return value;
}

static void io_write(void *opaque, uint64_t offset, uint64_t value, unsigned int size)
{
	struct e1000 *nic = opaque;

	pthread_mutex_lock(&nic->lock);
	if (io_active(nic) && size == 4) {
		if (offset == 0)
			nic->ioaddr = (uint32_t)value & (E1000_MMIO_SIZE - 4);
		else if (offset == 4)
			reg_write(nic, nic->ioaddr, (uint32_t)value);
	}
	pthread_mutex_unlock(&nic->lock);
}

const uint32_t e1000_immediate_writes[] = { REG_CTRL, REG_MDIC, REG_ICR, REG_ICS, REG_IMS, REG_RCTL, REG_TCTL, REG_TDT };
const unsigned int e1000_nr_immediate_writes = sizeof(e1000_immediate_writes) / sizeof(e1000_immediate_writes[0]);

const struct iobus_ops e1000_mmio_ops = { .read = mmio_read, .write = mmio_write };
const struct iobus_ops e1000_io_ops = { .read = io_read, .write = io_write };

/* The driver turning INTx off (or on) in the command register changes the line. */
static void config_after_write(struct pci_device *dev, unsigned int offset, unsigned int size)
{
	struct e1000 *nic = dev->owner;

	if (offset > PCI_COMMAND + 1 || offset + size <= PCI_COMMAND)
		return;
	pthread_mutex_lock(&nic->lock);
	update_irq(nic);
	pthread_mutex_unlock(&nic->lock);
}

static const struct pci_config_hooks config_hooks = { .after_write = config_after_write };

static void pci_setup(struct e1000 *nic)
{
	struct pci_device *pci = &nic->pci;

	pci_device_init(pci, "e1000", E1000_VENDOR_ID, E1000_DEVICE_ID, 0x020000);
	put_le16(&pci->config[PCI_SUBSYSTEM_VENDOR_ID], E1000_VENDOR_ID);
	put_le16(&pci->config[PCI_SUBSYSTEM_ID], E1000_SUBSYSTEM_ID);
	pci->config[PCI_INTERRUPT_PIN] = 1;
	pci_device_add_bar(pci, 0, E1000_MMIO_SIZE, PCI_BAR_MEM32);
	/* Assigned up front, as firmware does. */
	put_le16(&pci->config[PCI_BASE_ADDRESS_0], (uint16_t)nic->mmio_base);
	put_le16(&pci->config[PCI_BASE_ADDRESS_0 + 2], (uint16_t)(nic->mmio_base >> 16));
	if (nic->io_base) {
		pci_device_add_bar(pci, 1, E1000_IO_SIZE, PCI_BAR_IO);
		put_le16(&pci->config[PCI_BASE_ADDRESS_1], (uint16_t)(nic->io_base | PCI_BASE_ADDRESS_SPACE_IO));
	}
	pci->hooks = &config_hooks;
	pci->owner = nic;
}

struct e1000 *e1000_create(const struct e1000_options *opts)
{
	struct e1000 *nic;
	uint16_t sum = 0;

	if (!opts->mem || !opts->backend || !opts->backend->ops->send || !opts->backend->ops->recv) {
		log_error("e1000: needs guest memory and a network backend");
		return NULL;
	}
	if (opts->mmio_base % E1000_MMIO_SIZE || opts->io_base % E1000_IO_SIZE) {
		log_error("e1000: BARs must be aligned to their size");
		return NULL;
	}
	if (!opts->now_ns != !opts->arm_timer) {
		log_error("e1000: interrupt throttling needs both a clock and a timer");
		return NULL;
	}
	nic = calloc(1, sizeof(*nic));
	if (!nic) {
		log_error("e1000: out of memory");
		return NULL;
	}
	pthread_mutex_init(&nic->lock, NULL);
	nic->mem = opts->mem;
	nic->be = opts->backend;
	memcpy(nic->mac, opts->mac, sizeof(nic->mac));
	nic->set_irq = opts->set_irq;
	nic->irq_ctx = opts->irq_ctx;
	nic->now_ns = opts->now_ns;
	nic->arm_timer = opts->arm_timer;
	nic->kick_receive = opts->kick_receive;
	nic->kick_ctx = opts->kick_ctx;
	nic->timer_ctx = opts->timer_ctx;
	nic->mmio_base = opts->mmio_base;
	nic->io_base = opts->io_base;
	memcpy(nic->eeprom, eeprom_template, sizeof(nic->eeprom));
	for (unsigned int i = 0; i < 3; i++)
		nic->eeprom[i] = (uint16_t)(nic->mac[2 * i] | nic->mac[2 * i + 1] << 8);
	for (unsigned int i = 0; i < EEPROM_CHECKSUM_WORD; i++)
		sum = (uint16_t)(sum + nic->eeprom[i]);
	nic->eeprom[EEPROM_CHECKSUM_WORD] = (uint16_t)(EEPROM_SUM - sum);
	pci_setup(nic);
	reset(nic);
	return nic;
}

void e1000_destroy(struct e1000 *nic)
{
	nic->be->ops->destroy(nic->be);
	pthread_mutex_destroy(&nic->lock);
	free(nic);
}

struct pci_device *e1000_pci_device(struct e1000 *nic)
{
	return &nic->pci;
}
