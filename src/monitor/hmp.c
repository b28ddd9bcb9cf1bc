/* Human monitor commands ("info balloon", "balloon 512", "x /8gx $rsp"):
 * parsed here, run as the QMP commands they stand for or straight on the
 * machine's ops (registers, memory), and printed the way QEMU's monitor does. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "monitor/monitor.h"
#include "util/bytes.h"

#define MIB (1024ULL * 1024)

/* One command line being run. */
struct hmp {
	struct monitor *mon;
	FILE *out;
	unsigned int *cpu;  /* what x and `info cpus` mean; `cpu N` sets it */
};

/* Run a QMP command; on error print its description and return NULL. */
static json_t *run(struct hmp *h, const char *name, json_t *args)
{
	json_t *reply = monitor_execute(h->mon, name, args);
	json_t *ret = json_incref(json_object_get(reply, "return"));

	if (!ret) {
		const char *desc = json_string_value(json_object_get(json_object_get(reply, "error"), "desc"));

		fprintf(h->out, "Error: %s\n", desc ? desc : "the command failed");
	}
	json_decref(reply);
	json_decref(args);
	return ret;
}

static void info_status(struct hmp *h)
{
	json_t *ret = run(h, "query-status", NULL);

	if (ret)
		fprintf(h->out, "VM status: %s\n", json_string_value(json_object_get(ret, "status")));
	json_decref(ret);
}

static void info_balloon(struct hmp *h)
{
	json_t *ret = run(h, "query-balloon", NULL);

	if (!ret)
		return;
	fprintf(h->out, "balloon: actual=%lld", (long long)(json_integer_value(json_object_get(ret, "actual")) / (json_int_t)MIB));
	for (unsigned int tag = 0; monitor_balloon_stat_name(tag); tag++) {
		json_t *v = json_object_get(ret, monitor_balloon_stat_name(tag));

		if (v)
			fprintf(h->out, " %s=%lld", monitor_balloon_stat_name(tag), (long long)json_integer_value(v));
	}
	fputc('\n', h->out);
	json_decref(ret);
}

static void format_mac(char out[18], const uint8_t mac[6])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

static void info_network(struct hmp *h)
{
	struct monitor_machine *m = monitor_describe(h->mon);

	for (unsigned int i = 0; m && i < m->nr_nics; i++) {
		const struct monitor_nic *n = &m->nics[i];
		char mac[18];

		format_mac(mac, n->mac);
		fprintf(h->out, "%s: index=%u,type=nic,model=%s,macaddr=%s,queues=%u\n \\ hostnet%u: index=%u,%s\n", n->name,
			i, n->model, mac, n->queues, i, i, n->backend);
	}
	if (m && !m->nr_nics)
		fputs("no network devices\n", h->out);
	free(m);
}

static void info_block(struct hmp *h)
{
	struct monitor_machine *m = monitor_describe(h->mon);

	for (unsigned int i = 0; m && i < m->nr_disks; i++) {
		const struct monitor_disk *d = &m->disks[i];

		fprintf(h->out, "%s: %s (%s%s), %llu MiB\n", d->name, d->path, d->vhost_user ? "vhost-user" : "raw",
			d->read_only ? ", read-only" : "", (unsigned long long)(d->size / MIB));
	}
	if (m && !m->nr_disks)
		fputs("no block devices\n", h->out);
	free(m);
}

static void info_virtio(struct hmp *h)
{
	static const char *const status_bits[] = { "acknowledge", "driver", "driver-ok", "features-ok",
						   NULL, NULL, "needs-reset", "failed" };
	struct monitor_machine *m = monitor_describe(h->mon);

	for (unsigned int i = 0; m && i < m->nr_virtio; i++) {
		const struct monitor_virtio *v = &m->virtio[i];

		fprintf(h->out, "%s at 00:%02x.0: status 0x%02x (", v->name, v->slot, v->status);
		for (unsigned int b = 0, first = 1; b < 8; b++)
			if ((v->status & (1U << b)) && status_bits[b]) {
				fprintf(h->out, "%s%s", first ? "" : " ", status_bits[b]);
				first = 0;
			}
		fprintf(h->out, "), features 0x%016llx, %u queues enabled\n", (unsigned long long)v->features, v->queues);
	}
	if (m && !m->nr_virtio)
		fputs("no virtio devices\n", h->out);
	free(m);
}

static void info_cpus(struct hmp *h)
{
	struct monitor_machine *m = monitor_describe(h->mon);

	for (unsigned int i = 0; m && i < m->nr_cpus; i++)
		fprintf(h->out, "%c CPU #%u: thread_id=%d\n", i == *h->cpu ? '*' : ' ', m->cpus[i].index, m->cpus[i].thread_id);
	free(m);
}

/* In QEMU's layout, so that what people grep for in its output works here. */
static void info_registers(struct hmp *h)
{
	static const char *const names[16] = { "RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP",
						"R8 ", "R9 ", "R10", "R11", "R12", "R13", "R14", "R15" };
	void *ctx;
	const struct monitor_machine_ops *ops = monitor_ops(h->mon, &ctx);
	struct monitor_registers r;
	unsigned int cpu;
	int err = 0;

	for (cpu = 0; ops->registers && !(err = ops->registers(ctx, cpu, &r)); cpu++) {
		fprintf(h->out, "CPU#%u%s\n", cpu, r.halted ? " (halted)" : "");
		for (unsigned int i = 0; i < 16; i++)
			fprintf(h->out, "%s=%016llx%c", names[i], (unsigned long long)r.gpr[i], i % 4 == 3 ? '\n' : ' ');
		fprintf(h->out, "RIP=%016llx RFL=%08llx CPL=%u\n", (unsigned long long)r.rip,
			(unsigned long long)r.rflags, r.cs & 3);
		fprintf(h->out, "CS =%04x SS =%04x\n", r.cs, r.ss);
		fprintf(h->out, "CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx\n", (unsigned long long)r.cr0,
			(unsigned long long)r.cr2, (unsigned long long)r.cr3, (unsigned long long)r.cr4);
		fprintf(h->out, "EFER=%016llx LSTAR=%016llx\n", (unsigned long long)r.efer, (unsigned long long)r.lstar);
	}
	if (!ops->registers || (err != -ENOENT))
		fprintf(h->out, "info registers: %s\n", ops->registers ? strerror(-err) : "not supported");
	else if (cpu == 0)
		fputs("no vCPUs\n", h->out);
}

static void info_version(struct hmp *h)
{
	fputs(KVIO_VERSION " (kvio " KVIO_VERSION ")\n", h->out);
}

static const struct {
	const char *name;
	void (*show)(struct hmp *h);
	const char *help;
} infos[] = {
	{ "status", info_status, "the VM's run state" },
	{ "balloon", info_balloon, "the guest's size with the balloon (MiB), and its statistics" },
	{ "network", info_network, "the NICs and their backends" },
	{ "block", info_block, "the disks" },
	{ "virtio", info_virtio, "the virtio devices: status, features, queues" },
	{ "cpus", info_cpus, "the vCPUs and their threads" },
	{ "registers", info_registers, "each vCPU's registers" },
	{ "version", info_version, "kvio's version" },
};

#define NR_INFOS (sizeof(infos) / sizeof(infos[0]))

static void cmd_info(struct hmp *h, const char *arg)
{
	for (size_t i = 0; arg && i < NR_INFOS; i++) {
		if (!strcmp(arg, infos[i].name)) {
			infos[i].show(h);
			return;
		}
	}
	if (arg)
		fprintf(h->out, "info: unknown item '%s'\n", arg);
	for (size_t i = 0; i < NR_INFOS; i++)
		fprintf(h->out, "info %-9s -- %s\n", infos[i].name, infos[i].help);
}

/* balloon N: the guest's target size in MiB, as QEMU's human monitor takes it. */
static void cmd_balloon(struct hmp *h, const char *arg)
{
	unsigned long long mib;
	char *end;
	json_t *ret;

	if (!arg) {
		fputs("balloon: missing the target size in MiB\n", h->out);
		return;
	}
	errno = 0;
	mib = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || !isdigit((unsigned char)*arg) || mib == 0 || mib > (1ULL << 40)) {
		fprintf(h->out, "balloon: '%s' is not a size in MiB\n", arg);
		return;
	}
	ret = run(h, "balloon", json_pack("{s:I}", "value", (json_int_t)(mib * MIB)));
	json_decref(ret);
}

static void simple(struct hmp *h, const char *qmp_name)
{
	json_decref(run(h, qmp_name, NULL));
}

/* cpu N: the vCPU x reads through, as in QEMU. */
static void cmd_cpu(struct hmp *h, const char *arg)
{
	unsigned long n = 0;
	char *end = NULL;

	if (arg && isdigit((unsigned char)*arg)) {
		errno = 0;
		n = strtoul(arg, &end, 10);
	}
	if (!end || errno || *end || n > UINT_MAX || !monitor_has_cpu(h->mon, (long long)n))
		fprintf(h->out, "cpu: invalid CPU index '%s'\n", arg ? arg : "");
	else
		*h->cpu = (unsigned int)n;
}

/* x and xp, QEMU's memory dumps: /[COUNT][FORMAT][SIZE] ADDR. */
#define DUMP_MAX_BYTES (64 * 1024)

struct dump_format {
	unsigned long count;
	char format;        /* x (hex), d, u (decimal) or c (characters) */
	unsigned int size;  /* bytes per unit: b 1, h 2, w 4, g 8 */
};

static int parse_dump_format(const char *s, struct dump_format *f)
{
	static const char sizes[] = "bhwg";
	char *end;

	*f = (struct dump_format){ .count = 1, .format = 'x', .size = 4 };
	if (isdigit((unsigned char)*s)) {
		errno = 0;
		f->count = strtoul(s, &end, 10);
		if (errno || !f->count || f->count > DUMP_MAX_BYTES)
			return -1;
		s = end;
	}
	for (; *s; s++) {
		if (strchr("xduc", *s))
			f->format = *s;
		else if (strchr(sizes, *s))
			f->size = 1U << (strchr(sizes, *s) - sizes);
		else
			return -1;
	}
	if (f->format == 'c')
		f->size = 1;
	return f->count * f->size > DUMP_MAX_BYTES ? -1 : 0;
}

/* A number (0x for hex, as C reads it) or one of the current vCPU's
 * registers: QEMU's names ($esp or $sp for RSP, $pc for RIP, $r8...) or
 * the 64-bit ones ($rsp). */
static int parse_dump_address(struct hmp *h, const char *s, uint64_t *addr)
{
	static const struct {
		const char *names;  /* '|'-separated */
		int gpr;            /* index in monitor_registers.gpr; -1 for RIP */
	} regs[] = {
		{ "rax|eax", 0 }, { "rbx|ebx", 1 }, { "rcx|ecx", 2 }, { "rdx|edx", 3 },
		{ "rsi|esi", 4 }, { "rdi|edi", 5 }, { "rbp|ebp", 6 }, { "rsp|esp|sp", 7 },
		{ "r8", 8 }, { "r9", 9 }, { "r10", 10 }, { "r11", 11 },
		{ "r12", 12 }, { "r13", 13 }, { "r14", 14 }, { "r15", 15 }, { "rip|eip|pc", -1 },
	};
	void *ctx;
	const struct monitor_machine_ops *ops = monitor_ops(h->mon, &ctx);
	struct monitor_registers r;
	char *end;

	if (*s == '$') {
		size_t n = strlen(s + 1);

		for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
			for (const char *name = regs[i].names; *name; name += strcspn(name, "|"), name += *name == '|') {
				if (strcspn(name, "|") != n || strncmp(name, s + 1, n))
					continue;
				if (!ops->registers || ops->registers(ctx, *h->cpu, &r))
					return -1;
				*addr = regs[i].gpr < 0 ? r.rip : r.gpr[regs[i].gpr];
				return 0;
			}
		}
		return -1;
	}
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	*addr = strtoull(s, &end, 0);
	return errno || *end ? -1 : 0;
}

/* One unit as QEMU prints it (d is signed here; QEMU shows units below 8
 * bytes unsigned under d too). */
static void print_unit(FILE *out, char format, unsigned int size, uint64_t v)
{
	unsigned int bits = size * 8;
	int digits = (int)(bits * 10 + 32) / 33;

	switch (format) {
	case 'x':
		fprintf(out, " 0x%0*llx", (int)size * 2, (unsigned long long)v);
		break;
	case 'u':
		fprintf(out, " %*llu", digits, (unsigned long long)v);
		break;
	case 'd':
		if (bits < 64 && (v >> (bits - 1)) & 1)
			v |= ~0ULL << bits;
		fprintf(out, " %*lld", digits, (long long)v);
		break;
	default:  /* 'c' */
		if (v == '\'' || v == '\\')
			fprintf(out, " '\\%c'", (char)v);
		else if (v == '\n' || v == '\r')
			fprintf(out, " '\\%c'", v == '\n' ? 'n' : 'r');
		else if (v >= 32 && v <= 126)
			fprintf(out, " '%c'", (char)v);
		else
			fprintf(out, " '\\x%02x'", (unsigned int)v);
	}
}

/* Read the whole range in one go (one pause of the vCPUs, so one moment of
 * the guest), then print it 8 bytes a line for bytes and 16 for the rest, as
 * QEMU does, up to the line where readable memory ends. */
/* A guest's unit of size bytes, little-endian as x86 stores it. */
static uint64_t load_unit(const uint8_t *p, unsigned int size)
{
	switch (size) {
	case 1:
		return *p;
	case 2:
		return get_le16(p);
	case 4:
		return get_le32(p);
	default:
		return get_le64(p);
	}
}

static void print_dump(struct hmp *h, bool virt, uint64_t addr, const struct dump_format *f)
{
	void *ctx;
	const struct monitor_machine_ops *ops = monitor_ops(h->mon, &ctx);
	uint64_t len = f->count * f->size, line_len = f->size == 1 ? 8 : 16;
	uint8_t *data = malloc(len);
	ssize_t got = data ? ops->read_memory(ctx, *h->cpu, addr, virt, data, len) : -ENOMEM;

	for (uint64_t at = 0; at < len; at += line_len) {
		uint64_t n = len - at < line_len ? len - at : line_len;

		fprintf(h->out, "%016llx:", (unsigned long long)(addr + at));
		if (got < 0 || (uint64_t)got < at + n) {
			fputs(" Cannot access memory\n", h->out);
			break;
		}
		for (uint64_t i = at; i < at + n; i += f->size)
			print_unit(h->out, f->format, f->size, load_unit(data + i, f->size));
		fputc('\n', h->out);
	}
	free(data);
}

static void dump(struct hmp *h, const char *name, bool virt, const char *arg)
{
	void *ctx;
	const struct monitor_machine_ops *ops = monitor_ops(h->mon, &ctx);
	char *copy = strdup(arg ? arg : ""), *save = NULL, *fmt, *where;
	struct dump_format f = { .count = 1, .format = 'x', .size = 4 };
	uint64_t addr;

	if (!copy) {
		fprintf(h->out, "%s: out of memory\n", name);
		return;
	}
	fmt = strtok_r(copy, " \t", &save);
	where = fmt && fmt[0] == '/' ? strtok_r(NULL, " \t", &save) : fmt;
	if (!ops->read_memory)
		fprintf(h->out, "%s: not supported\n", name);
	else if (fmt && fmt[0] == '/' && parse_dump_format(fmt + 1, &f))
		fprintf(h->out, "%s: '%s' is not a format: /[COUNT][x|d|u|c][b|h|w|g], at most %u bytes\n", name, fmt,
			DUMP_MAX_BYTES);
	else if (!where || parse_dump_address(h, where, &addr))
		fprintf(h->out, "%s: '%s' is not an address: a number or a register ($rsp)\n", name,
			where ? where : "");
	else if (addr + (f.count * f.size - 1) < addr)
		fprintf(h->out, "%s: %lu bytes at '%s' run past the end of the address space\n", name,
			f.count * f.size, where);
	else
		print_dump(h, virt, addr, &f);
	free(copy);
}

static void cmd_x(struct hmp *h, const char *arg)
{
	dump(h, "x", true, arg);
}

static void cmd_xp(struct hmp *h, const char *arg)
{
	dump(h, "xp", false, arg);
}

static void cmd_help(struct hmp *h, const char *arg);

static const struct {
	const char *name, *alias;
	const char *qmp;  /* a QMP command without arguments, or NULL */
	void (*run)(struct hmp *h, const char *arg);
	unsigned int max_words;  /* in arg */
	const char *help;
} hmp_commands[] = {
	{ "info", NULL, NULL, cmd_info, 1, "info ITEM -- show status, balloon, network, block, virtio, cpus, registers, version" },
	{ "balloon", NULL, NULL, cmd_balloon, 1, "balloon MiB -- ask the guest to shrink or grow to MiB of RAM" },
	{ "x", NULL, NULL, cmd_x, 2, "x /FMT ADDR -- guest memory at a virtual address of the current vCPU: FMT is "
				     "[COUNT][x|d|u|c][b|h|w|g], ADDR a number or $REG" },
	{ "xp", NULL, NULL, cmd_xp, 2, "xp /FMT ADDR -- guest memory at a physical address" },
	{ "cpu", NULL, NULL, cmd_cpu, 1, "cpu N -- make vCPU N the current one (for x)" },
	{ "stop", "s", "stop", NULL, 0, "stop -- pause the vCPUs and the device I/O threads" },
	{ "cont", "c", "cont", NULL, 0, "cont -- resume the VM" },
	{ "system_powerdown", NULL, "system_powerdown", NULL, 0, "system_powerdown -- ask the guest to power off" },
	{ "system_reset", NULL, "system_reset", NULL, 0, "system_reset -- reset the machine (kvio then exits, as QEMU -no-reboot)" },
	{ "quit", "q", "quit", NULL, 0, "quit -- end kvio now" },
	{ "help", "?", NULL, cmd_help, 1, "help -- this list" },
};

#define NR_HMP_COMMANDS (sizeof(hmp_commands) / sizeof(hmp_commands[0]))

static void cmd_help(struct hmp *h, const char *arg)
{
	(void)arg;
	for (size_t i = 0; i < NR_HMP_COMMANDS; i++)
		fprintf(h->out, "%s\n", hmp_commands[i].help);
}

/* The number of blank-separated words in s. */
static unsigned int count_words(const char *s)
{
	unsigned int n = 0;

	while (*(s += strspn(s, " \t\r\n"))) {
		n++;
		s += strcspn(s, " \t\r\n");
	}
	return n;
}

char *hmp_execute(struct monitor *mon, const char *line, unsigned int *cpu)
{
	size_t line_len = strlen(line ? line : ""), len = 0, i;
	char *copy = malloc(line_len + 2), *cmd, *arg, *end, *buf = NULL;  /* room to split x/4gx */
	struct hmp h = { .mon = mon, .out = open_memstream(&buf, &len), .cpu = cpu };

	if (copy)
		memcpy(copy, line ? line : "", line_len + 1);

	if (!copy || !h.out) {
		free(copy);
		if (h.out)
			fclose(h.out);
		free(buf);
		return NULL;
	}
	/* The command's name, then the rest of the line with its ends trimmed.
	 * A name also ends at '/', so that x/4gx reads as x /4gx, as in QEMU. */
	cmd = copy + strspn(copy, " \t\r\n");
	arg = cmd + strcspn(cmd, " \t\r\n/");
	if (*arg == '/') {
		memmove(arg + 1, arg, strlen(arg) + 1);
		*arg++ = '\0';
	} else if (*arg) {
		*arg++ = '\0';
	}
	arg += strspn(arg, " \t\r\n");
	for (end = arg + strlen(arg); end > arg && strchr(" \t\r\n", end[-1]); end--)
		end[-1] = '\0';
	if (!*cmd)
		goto done;
	for (i = 0; i < NR_HMP_COMMANDS; i++)
		if (!strcmp(cmd, hmp_commands[i].name) || (hmp_commands[i].alias && !strcmp(cmd, hmp_commands[i].alias)))
			break;
	if (i == NR_HMP_COMMANDS)
		fprintf(h.out, "unknown command: '%s' (try 'help')\n", cmd);
	else if (hmp_commands[i].qmp && *arg)
		fprintf(h.out, "%s: takes no argument\n", hmp_commands[i].name);
	else if (count_words(arg) > hmp_commands[i].max_words)
		fprintf(h.out, "%s: too many arguments\n", cmd);
	else if (hmp_commands[i].qmp)
		simple(&h, hmp_commands[i].qmp);
	else
		hmp_commands[i].run(&h, *arg ? arg : NULL);
done:
	fclose(h.out);
	free(copy);
	return buf;
}
