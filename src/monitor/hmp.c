/* Human monitor commands ("info balloon", "balloon 512"): parsed here, run as
 * the QMP commands they stand for, and printed the way QEMU's monitor does. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "monitor/monitor.h"

#define MIB (1024ULL * 1024)

struct text {
	char *buf;
	size_t len;
	FILE *f;
};

/* Run a QMP command; on error print its description and return NULL. */
static json_t *run(struct monitor *mon, FILE *out, const char *name, json_t *args)
{
	json_t *reply = monitor_execute(mon, name, args);
	json_t *ret = json_incref(json_object_get(reply, "return"));

	if (!ret) {
		const char *desc = json_string_value(json_object_get(json_object_get(reply, "error"), "desc"));

		fprintf(out, "Error: %s\n", desc ? desc : "the command failed");
	}
	json_decref(reply);
	json_decref(args);
	return ret;
}

static void info_status(struct monitor *mon, FILE *out)
{
	json_t *ret = run(mon, out, "query-status", NULL);

	if (ret)
		fprintf(out, "VM status: %s\n", json_string_value(json_object_get(ret, "status")));
	json_decref(ret);
}

static void info_balloon(struct monitor *mon, FILE *out)
{
	json_t *ret = run(mon, out, "query-balloon", NULL);

	if (!ret)
		return;
	fprintf(out, "balloon: actual=%lld", (long long)(json_integer_value(json_object_get(ret, "actual")) / (json_int_t)MIB));
	for (unsigned int tag = 0; monitor_balloon_stat_name(tag); tag++) {
		json_t *v = json_object_get(ret, monitor_balloon_stat_name(tag));

		if (v)
			fprintf(out, " %s=%lld", monitor_balloon_stat_name(tag), (long long)json_integer_value(v));
	}
	fputc('\n', out);
	json_decref(ret);
}

static void format_mac(char out[18], const uint8_t mac[6])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

static void info_network(struct monitor *mon, FILE *out)
{
	struct monitor_machine *m = monitor_describe(mon);

	for (unsigned int i = 0; m && i < m->nr_nics; i++) {
		const struct monitor_nic *n = &m->nics[i];
		char mac[18];

		format_mac(mac, n->mac);
		fprintf(out, "%s: index=%u,type=nic,model=%s,macaddr=%s,queues=%u\n \\ hostnet%u: index=%u,%s\n", n->name,
			i, n->model, mac, n->queues, i, i, n->backend);
	}
	if (m && !m->nr_nics)
		fputs("no network devices\n", out);
	free(m);
}

static void info_block(struct monitor *mon, FILE *out)
{
	struct monitor_machine *m = monitor_describe(mon);

	for (unsigned int i = 0; m && i < m->nr_disks; i++) {
		const struct monitor_disk *d = &m->disks[i];

		fprintf(out, "%s: %s (%s%s), %llu MiB\n", d->name, d->path, d->vhost_user ? "vhost-user" : "raw",
			d->read_only ? ", read-only" : "", (unsigned long long)(d->size / MIB));
	}
	if (m && !m->nr_disks)
		fputs("no block devices\n", out);
	free(m);
}

static void info_virtio(struct monitor *mon, FILE *out)
{
	static const char *const status_bits[] = { "acknowledge", "driver", "driver-ok", "features-ok",
						   NULL, NULL, "needs-reset", "failed" };
	struct monitor_machine *m = monitor_describe(mon);

	for (unsigned int i = 0; m && i < m->nr_virtio; i++) {
		const struct monitor_virtio *v = &m->virtio[i];

		fprintf(out, "%s at 00:%02x.0: status 0x%02x (", v->name, v->slot, v->status);
		for (unsigned int b = 0, first = 1; b < 8; b++)
			if ((v->status & (1U << b)) && status_bits[b]) {
				fprintf(out, "%s%s", first ? "" : " ", status_bits[b]);
				first = 0;
			}
		fprintf(out, "), features 0x%016llx, %u queues enabled\n", (unsigned long long)v->features, v->queues);
	}
	if (m && !m->nr_virtio)
		fputs("no virtio devices\n", out);
	free(m);
}

static void info_cpus(struct monitor *mon, FILE *out)
{
	struct monitor_machine *m = monitor_describe(mon);

	for (unsigned int i = 0; m && i < m->nr_cpus; i++)
		fprintf(out, "%c CPU #%u: thread_id=%d\n", i ? ' ' : '*', m->cpus[i].index, m->cpus[i].thread_id);
	free(m);
}

/* In QEMU's layout, so that what people grep for in its output works here. */
static void info_registers(struct monitor *mon, FILE *out)
{
	static const char *const names[16] = { "RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP",
						"R8 ", "R9 ", "R10", "R11", "R12", "R13", "R14", "R15" };
	void *ctx;
	const struct monitor_machine_ops *ops = monitor_ops(mon, &ctx);
	struct monitor_registers r;
	unsigned int cpu;
	int err = 0;

	for (cpu = 0; ops->registers && !(err = ops->registers(ctx, cpu, &r)); cpu++) {
		fprintf(out, "CPU#%u%s\n", cpu, r.halted ? " (halted)" : "");
		for (unsigned int i = 0; i < 16; i++)
			fprintf(out, "%s=%016llx%c", names[i], (unsigned long long)r.gpr[i], i % 4 == 3 ? '\n' : ' ');
		fprintf(out, "RIP=%016llx RFL=%08llx CPL=%u\n", (unsigned long long)r.rip,
			(unsigned long long)r.rflags, r.cs & 3);
		fprintf(out, "CS =%04x SS =%04x\n", r.cs, r.ss);
		fprintf(out, "CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx\n", (unsigned long long)r.cr0,
			(unsigned long long)r.cr2, (unsigned long long)r.cr3, (unsigned long long)r.cr4);
		fprintf(out, "EFER=%016llx LSTAR=%016llx\n", (unsigned long long)r.efer, (unsigned long long)r.lstar);
	}
	if (!ops->registers || (err != -ENOENT))
		fprintf(out, "info registers: %s\n", ops->registers ? strerror(-err) : "not supported");
	else if (cpu == 0)
		fputs("no vCPUs\n", out);
}

static void info_version(struct monitor *mon, FILE *out)
{
	(void)mon;
	fputs(KVIO_VERSION " (kvio " KVIO_VERSION ")\n", out);
}

static const struct {
	const char *name;
	void (*show)(struct monitor *mon, FILE *out);
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

static void cmd_info(struct monitor *mon, FILE *out, const char *arg)
{
	for (size_t i = 0; arg && i < NR_INFOS; i++) {
		if (!strcmp(arg, infos[i].name)) {
			infos[i].show(mon, out);
			return;
		}
	}
	if (arg)
		fprintf(out, "info: unknown item '%s'\n", arg);
	for (size_t i = 0; i < NR_INFOS; i++)
		fprintf(out, "info %-9s -- %s\n", infos[i].name, infos[i].help);
}

/* balloon N: the guest's target size in MiB, as QEMU's human monitor takes it. */
static void cmd_balloon(struct monitor *mon, FILE *out, const char *arg)
{
	unsigned long long mib;
	char *end;
	json_t *ret;

	if (!arg) {
		fputs("balloon: missing the target size in MiB\n", out);
		return;
	}
	errno = 0;
	mib = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || !isdigit((unsigned char)*arg) || mib == 0 || mib > (1ULL << 40)) {
		fprintf(out, "balloon: '%s' is not a size in MiB\n", arg);
		return;
	}
	ret = run(mon, out, "balloon", json_pack("{s:I}", "value", (json_int_t)(mib * MIB)));
	json_decref(ret);
}

static void simple(struct monitor *mon, FILE *out, const char *qmp_name)
{
	json_decref(run(mon, out, qmp_name, NULL));
}

static void cmd_help(struct monitor *mon, FILE *out, const char *arg);

static const struct {
	const char *name, *alias;
	const char *qmp;  /* a QMP command without arguments, or NULL */
	void (*run)(struct monitor *mon, FILE *out, const char *arg);
	const char *help;
} hmp_commands[] = {
	{ "info", NULL, NULL, cmd_info, "info ITEM -- show status, balloon, network, block, virtio, cpus, registers, version" },
	{ "balloon", NULL, NULL, cmd_balloon, "balloon MiB -- ask the guest to shrink or grow to MiB of RAM" },
	{ "stop", "s", "stop", NULL, "stop -- pause the vCPUs and the device I/O threads" },
	{ "cont", "c", "cont", NULL, "cont -- resume the VM" },
	{ "system_powerdown", NULL, "system_powerdown", NULL, "system_powerdown -- ask the guest to power off" },
	{ "system_reset", NULL, "system_reset", NULL, "system_reset -- reset the machine (kvio then exits, as QEMU -no-reboot)" },
	{ "quit", "q", "quit", NULL, "quit -- end kvio now" },
	{ "help", "?", NULL, cmd_help, "help -- this list" },
};

#define NR_HMP_COMMANDS (sizeof(hmp_commands) / sizeof(hmp_commands[0]))

static void cmd_help(struct monitor *mon, FILE *out, const char *arg)
{
	(void)mon, (void)arg;
	for (size_t i = 0; i < NR_HMP_COMMANDS; i++)
		fprintf(out, "%s\n", hmp_commands[i].help);
}

/* Split line into at most two words, in place; more is an error. */
static int split(char *line, char **cmd, char **arg)
{
	char *extra;

	*cmd = strtok_r(line, " \t\r\n", &extra);
	*arg = *cmd ? strtok_r(NULL, " \t\r\n", &extra) : NULL;
	return *arg && strtok_r(NULL, " \t\r\n", &extra) ? -1 : 0;
}

char *hmp_execute(struct monitor *mon, const char *line)
{
	char *copy = strdup(line ? line : ""), *cmd, *arg, *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	size_t i;

	if (!copy || !out) {
		free(copy);
		if (out)
			fclose(out);
		free(buf);
		return NULL;
	}
	if (split(copy, &cmd, &arg)) {
		fprintf(out, "%s: too many arguments\n", cmd);
		goto done;
	}
	if (!cmd)
		goto done;
	for (i = 0; i < NR_HMP_COMMANDS; i++)
		if (!strcmp(cmd, hmp_commands[i].name) || (hmp_commands[i].alias && !strcmp(cmd, hmp_commands[i].alias)))
			break;
	if (i == NR_HMP_COMMANDS) {
		fprintf(out, "unknown command: '%s' (try 'help')\n", cmd);
		goto done;
	}
	if (hmp_commands[i].qmp) {
		if (arg)
			fprintf(out, "%s: takes no argument\n", hmp_commands[i].name);
		else
			simple(mon, out, hmp_commands[i].qmp);
	} else {
		hmp_commands[i].run(mon, out, arg);
	}
done:
	fclose(out);
	free(copy);
	return buf;
}
