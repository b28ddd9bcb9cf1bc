/* The QMP commands kvio answers, in one table. Names, arguments, units and
 * reply shapes are QEMU's (qapi/ *.json), so QEMU's clients work unchanged. */
#include <errno.h>
#include <string.h>

#include "config.h"
#include "monitor/monitor.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static json_t *cmd_qmp_capabilities(struct monitor *mon, json_t *args, json_t **error)
{
	json_t *enable = json_object_get(args, "enable");

	(void)mon;
	if (enable && json_array_size(enable)) {
		json_t *first = json_array_get(enable, 0);

		*error = monitor_error("GenericError", "Capability '%s' not available",
				       json_is_string(first) ? json_string_value(first) : "?");
		return NULL;
	}
	return json_object();
}

static const char *const run_state_names[] = {
	[MONITOR_RUNNING] = "running", [MONITOR_PAUSED] = "paused", [MONITOR_SHUTDOWN] = "shutdown",
};

static json_t *cmd_query_status(struct monitor *mon, json_t *args, json_t **error)
{
	void *ctx;
	const struct monitor_machine_ops *ops = monitor_ops(mon, &ctx);
	enum monitor_run_state state = ops->run_state(ctx);

	(void)args, (void)error;
	return json_pack("{s:b,s:b,s:s}", "running", state == MONITOR_RUNNING, "singlestep", 0, "status",
			 run_state_names[state]);
}

static json_t *cmd_stop(struct monitor *mon, json_t *args, json_t **error)
{
	void *ctx;
	const struct monitor_machine_ops *ops = monitor_ops(mon, &ctx);
	int err;

	(void)args;
	if (ops->run_state(ctx) != MONITOR_RUNNING)
		return json_object();  /* already stopped: no second STOP event, as QEMU */
	err = ops->stop(ctx);
	if (err) {
		*error = monitor_error("GenericError", "cannot stop the VM: %s", strerror(-err));
		return NULL;
	}
	monitor_emit(mon, "STOP", NULL);
	return json_object();
}

static json_t *cmd_cont(struct monitor *mon, json_t *args, json_t **error)
{
	void *ctx;
	const struct monitor_machine_ops *ops = monitor_ops(mon, &ctx);
	enum monitor_run_state state = ops->run_state(ctx);
	int err;

	(void)args;
	if (state == MONITOR_RUNNING)
		return json_object();
	if (state == MONITOR_SHUTDOWN) {
		*error = monitor_error("GenericError", "The VM is shutting down");
		return NULL;
	}
	err = ops->cont(ctx);
	if (err) {
		*error = monitor_error("GenericError", "cannot resume the VM: %s", strerror(-err));
		return NULL;
	}
	monitor_emit(mon, "RESUME", NULL);
	return json_object();
}

static json_t *cmd_system_powerdown(struct monitor *mon, json_t *args, json_t **error)
{
	void *ctx;
	const struct monitor_machine_ops *ops = monitor_ops(mon, &ctx);

	(void)args, (void)error;
	monitor_emit(mon, "POWERDOWN", NULL);
	ops->powerdown(ctx);
	return json_object();
}

static json_t *cmd_system_reset(struct monitor *mon, json_t *args, json_t **error)
{
	void *ctx;
	const struct monitor_machine_ops *ops = monitor_ops(mon, &ctx);

	(void)args, (void)error;
	ops->reset(ctx);
	return json_object();
}

static json_t *cmd_quit(struct monitor *mon, json_t *args, json_t **error)
{
	void *ctx;
	const struct monitor_machine_ops *ops = monitor_ops(mon, &ctx);

	(void)args, (void)error;
	ops->quit(ctx);
	return json_object();
}

/* The guest's statistics under the member names query-balloon had in QEMU
 * 1.x's schema, for the tags those names cover. */
static const char *const balloon_stat_names[] = {
	[0] = "mem_swapped_in", [1] = "mem_swapped_out", [2] = "major_page_faults",
	[3] = "minor_page_faults", [4] = "free_mem", [5] = "total_mem",
};

const char *monitor_balloon_stat_name(unsigned int tag)
{
	return tag < ARRAY_SIZE(balloon_stat_names) ? balloon_stat_names[tag] : NULL;
}

static json_t *cmd_query_balloon(struct monitor *mon, json_t *args, json_t **error)
{
	void *ctx;
	const struct monitor_machine_ops *ops = monitor_ops(mon, &ctx);
	struct monitor_balloon b;
	json_t *ret;

	(void)args;
	if (ops->balloon_query(ctx, &b)) {
		*error = monitor_error("DeviceNotActive", "No balloon device has been activated");
		return NULL;
	}
	ret = json_pack("{s:I}", "actual", (json_int_t)b.actual);
	for (unsigned int t = 0; ret && b.has_stats && t < ARRAY_SIZE(balloon_stat_names); t++)
		if (b.stats[t] >= 0)
			json_object_set_new(ret, balloon_stat_names[t], json_integer(b.stats[t]));
	return ret;
}

static json_t *cmd_balloon(struct monitor *mon, json_t *args, json_t **error)
{
	void *ctx;
	const struct monitor_machine_ops *ops = monitor_ops(mon, &ctx);
	json_int_t value = json_integer_value(json_object_get(args, "value"));
	int err;

	if (value <= 0) {
		*error = monitor_error("GenericError", "Parameter 'value' expects a size");
		return NULL;
	}
	err = ops->balloon_set(ctx, (uint64_t)value);
	if (err == -ENODEV) {
		*error = monitor_error("DeviceNotActive", "No balloon device has been activated");
		return NULL;
	}
	if (err) {
		*error = monitor_error("GenericError", "balloon: %s", strerror(-err));
		return NULL;
	}
	return json_object();
}

static json_t *cmd_query_block(struct monitor *mon, json_t *args, json_t **error)
{
	struct monitor_machine *m = monitor_describe(mon);
	json_t *list = json_array();

	(void)args, (void)error;
	for (unsigned int i = 0; m && list && i < m->nr_disks; i++) {
		const struct monitor_disk *d = &m->disks[i];

		json_array_append_new(list, json_pack("{s:s,s:s,s:b,s:b,s:{s:s,s:b,s:s,s:b,s:{s:s,s:I,s:s}}}",
						      "device", d->name, "type", "unknown", "removable", 0, "locked", 0,
						      "inserted", "file", d->path, "ro", d->read_only, "drv",
						      d->vhost_user ? "vhost-user-blk" : "raw", "encrypted", 0,
						      "image", "filename", d->path, "virtual-size", (json_int_t)d->size,
						      "format", "raw"));
	}
	free(m);
	return list;
}

static json_t *pci_regions(const struct monitor_pci_device *dev)
{
	json_t *regions = json_array();

	for (unsigned int b = 0; regions && b < ARRAY_SIZE(dev->bars); b++) {
		const struct monitor_pci_bar *bar = &dev->bars[b];

		if (!bar->size)
			continue;
		if (bar->io)
			json_array_append_new(regions, json_pack("{s:i,s:s,s:I,s:I}", "bar", b, "type", "io", "address",
								 (json_int_t)bar->address, "size", (json_int_t)bar->size));
		else
			json_array_append_new(regions, json_pack("{s:i,s:s,s:I,s:I,s:b,s:b}", "bar", b, "type", "memory",
								 "address", (json_int_t)bar->address, "size",
								 (json_int_t)bar->size, "prefetch", 0, "mem_type_64",
								 bar->mem64));
	}
	return regions;
}

static json_t *cmd_query_pci(struct monitor *mon, json_t *args, json_t **error)
{
	struct monitor_machine *m = monitor_describe(mon);
	json_t *devices = json_array();

	(void)args, (void)error;
	for (unsigned int i = 0; m && devices && i < m->nr_pci; i++) {
		const struct monitor_pci_device *d = &m->pci[i];
		json_t *dev = json_pack("{s:i,s:i,s:i,s:{s:i,s:s},s:{s:i,s:i,s:i,s:i},s:s,s:o}", "bus", 0, "slot",
					d->slot, "function", 0, "class_info", "class", d->class_code >> 8, "desc",
					d->name, "id", "vendor", d->vendor, "device", d->device, "subsystem-vendor",
					d->subsystem_vendor, "subsystem", d->subsystem, "qdev_id", "", "regions",
					pci_regions(d));

		if (dev && d->irq_pin) {
			json_object_set_new(dev, "irq_pin", json_integer(d->irq_pin));
			json_object_set_new(dev, "irq", json_integer(d->irq_line));
		}
		json_array_append_new(devices, dev);
	}
	free(m);
	return json_pack("[{s:i,s:o}]", "bus", 0, "devices", devices);
}

static json_t *cmd_query_cpus_fast(struct monitor *mon, json_t *args, json_t **error)
{
	struct monitor_machine *m = monitor_describe(mon);
	json_t *list = json_array();

	(void)args, (void)error;
	for (unsigned int i = 0; m && list && i < m->nr_cpus; i++) {
		char path[64];

		snprintf(path, sizeof(path), "/machine/unattached/device[%u]", m->cpus[i].index);
		json_array_append_new(list, json_pack("{s:i,s:s,s:i,s:{s:i,s:i,s:i},s:s}", "cpu-index",
						      m->cpus[i].index, "qom-path", path, "thread-id",
						      m->cpus[i].thread_id, "props", "core-id", m->cpus[i].index,
						      "thread-id", 0, "socket-id", 0, "target", "x86_64"));
	}
	free(m);
	return list;
}

static json_t *cmd_query_version(struct monitor *mon, json_t *args, json_t **error)
{
	unsigned int major = 0, minor = 0, micro = 0;

	(void)mon, (void)args, (void)error;
	sscanf(KVIO_VERSION, "%u.%u.%u", &major, &minor, &micro);
	return json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "major", major, "minor", minor, "micro", micro, "package",
			 "kvio " KVIO_VERSION);
}

static json_t *cmd_query_kvm(struct monitor *mon, json_t *args, json_t **error)
{
	(void)mon, (void)args, (void)error;
	return json_pack("{s:b,s:b}", "enabled", 1, "present", 1);
}

static json_t *cmd_query_commands(struct monitor *mon, json_t *args, json_t **error);

/* As in QEMU, each call is a fresh human monitor: `cpu N` lasts for this
 * line only, and cpu-index says which vCPU it starts on. */
static json_t *cmd_human_monitor_command(struct monitor *mon, json_t *args, json_t **error)
{
	const char *line = json_string_value(json_object_get(args, "command-line"));
	json_t *cpu_index = json_object_get(args, "cpu-index");
	unsigned int cpu = 0;
	char *out;
	json_t *ret;

	if (cpu_index) {
		if (!monitor_has_cpu(mon, json_integer_value(cpu_index))) {
			*error = monitor_error("GenericError", "Parameter 'cpu-index' expects a CPU number");
			return NULL;
		}
		cpu = (unsigned int)json_integer_value(cpu_index);
	}
	out = hmp_execute(mon, line, &cpu);
	ret = json_string(out ? out : "");
	free(out);
	return ret;
}

static const struct monitor_command commands[] = {
	{ "qmp_capabilities", cmd_qmp_capabilities, "enable?:a" },
	{ "query-status", cmd_query_status, NULL },
	{ "stop", cmd_stop, NULL },
	{ "cont", cmd_cont, NULL },
	{ "system_powerdown", cmd_system_powerdown, NULL },
	{ "system_reset", cmd_system_reset, NULL },
	{ "quit", cmd_quit, NULL },
	{ "query-balloon", cmd_query_balloon, NULL },
	{ "balloon", cmd_balloon, "value:i" },
	{ "query-block", cmd_query_block, NULL },
	{ "query-pci", cmd_query_pci, NULL },
	{ "query-cpus-fast", cmd_query_cpus_fast, NULL },
	{ "query-version", cmd_query_version, NULL },
	{ "query-kvm", cmd_query_kvm, NULL },
	{ "query-commands", cmd_query_commands, NULL },
	{ "human-monitor-command", cmd_human_monitor_command, "command-line:s cpu-index?:i" },
};

static json_t *cmd_query_commands(struct monitor *mon, json_t *args, json_t **error)
{
	json_t *list = json_array();

	(void)mon, (void)args, (void)error;
	for (size_t i = 0; list && i < ARRAY_SIZE(commands); i++)
		json_array_append_new(list, json_pack("{s:s}", "name", commands[i].name));
	return list;
}

const struct monitor_command *monitor_command_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

const struct monitor_command *monitor_commands(size_t *count)
{
	*count = ARRAY_SIZE(commands);
	return commands;
}
