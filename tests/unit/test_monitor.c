/* The monitor over a fake machine: QMP's protocol (greeting, negotiation,
 * errors, streams split or joined anywhere), the commands' shapes, events
 * over a real socket, and the human commands. */
#include "unit.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "monitor/monitor.h"

#define MIB (1024ULL * 1024)
#define RAM (1024 * MIB)

struct fake_machine {
	enum monitor_run_state state;
	int powerdowns, resets, quits;
	bool has_balloon;
	uint64_t balloon_guest_bytes;
};

static enum monitor_run_state fake_run_state(void *ctx)
{
	return ((struct fake_machine *)ctx)->state;
}

static int fake_stop(void *ctx)
{
	((struct fake_machine *)ctx)->state = MONITOR_PAUSED;
	return 0;
}

static int fake_cont(void *ctx)
{
	((struct fake_machine *)ctx)->state = MONITOR_RUNNING;
	return 0;
}

static void fake_powerdown(void *ctx)
{
	((struct fake_machine *)ctx)->powerdowns++;
}

static void fake_reset(void *ctx)
{
	((struct fake_machine *)ctx)->resets++;
}

static void fake_quit(void *ctx)
{
	((struct fake_machine *)ctx)->quits++;
}

static void fake_describe(void *ctx, struct monitor_machine *m)
{
	(void)ctx;
	m->ram_bytes = RAM;
	m->nr_cpus = 2;
	m->cpus[0] = (struct monitor_cpu){ .index = 0, .thread_id = 4242 };
	m->cpus[1] = (struct monitor_cpu){ .index = 1, .thread_id = 4243 };
	m->nr_disks = 1;
	snprintf(m->disks[0].name, sizeof(m->disks[0].name), "disk0");
	snprintf(m->disks[0].path, sizeof(m->disks[0].path), "/images/root.img");
	m->disks[0].size = 64 * MIB;
	m->disks[0].read_only = true;
	m->nr_nics = 1;
	snprintf(m->nics[0].name, sizeof(m->nics[0].name), "net0");
	snprintf(m->nics[0].model, sizeof(m->nics[0].model), "virtio-net-pci");
	snprintf(m->nics[0].backend, sizeof(m->nics[0].backend), "type=user");
	memcpy(m->nics[0].mac, "\x52\x54\x00\x12\x34\x56", 6);
	m->nics[0].queues = 1;
	m->nr_pci = 1;
	m->pci[0] = (struct monitor_pci_device){ .slot = 3, .vendor = 0x1af4, .device = 0x1041, .class_code = 0x020000,
						 .irq_pin = 1, .irq_line = 19 };
	m->pci[0].bars[0] = (struct monitor_pci_bar){ .address = 0xc0000000, .size = 0x4000, .mem64 = true };
	m->nr_virtio = 1;
	snprintf(m->virtio[0].name, sizeof(m->virtio[0].name), "virtio-net");
	m->virtio[0].slot = 3;
	m->virtio[0].status = 0x0f;
	m->virtio[0].queues = 3;
}

static int fake_balloon_set(void *ctx, uint64_t guest_bytes)
{
	struct fake_machine *f = ctx;

	if (!f->has_balloon)
		return -ENODEV;
	f->balloon_guest_bytes = guest_bytes > RAM ? RAM : guest_bytes;
	return 0;
}

static int fake_balloon_query(void *ctx, struct monitor_balloon *b)
{
	struct fake_machine *f = ctx;

	if (!f->has_balloon)
		return -ENODEV;
	memset(b, 0, sizeof(*b));
	for (unsigned int t = 0; t < 16; t++)
		b->stats[t] = -1;
	b->actual = f->balloon_guest_bytes;
	b->has_stats = true;
	b->stats[4] = 300 * MIB;  /* free_mem */
	b->stats[5] = 990 * MIB;  /* total_mem */
	return 0;
}

/* Two vCPUs, the second halted; each register holds a value naming it. */
static int fake_registers(void *ctx, unsigned int cpu, struct monitor_registers *r)
{
	(void)ctx;
	if (cpu >= 2)
		return -ENOENT;
	*r = (struct monitor_registers){ .rip = 0xffffffff81000000ULL + cpu, .rflags = 0x246, .cr3 = 0x1000,
					 .lstar = 0xffffffff81e00000ULL, .cs = 0x10, .ss = 0x18, .halted = cpu == 1 };
	for (unsigned int i = 0; i < 16; i++)
		r->gpr[i] = 0x100 * cpu + i;
	return 0;
}

/* 64 bytes of RAM at guest-physical 0x1000, byte i holding 0xc0 + i (so the
 * sign shows in decimal); vCPU 0 maps it at 0xffff888000001000, vCPU 1 nowhere. */
#define FAKE_RAM_GPA 0x1000ULL
#define FAKE_RAM_VA 0xffff888000001000ULL

static ssize_t fake_read_memory(void *ctx, unsigned int cpu, uint64_t addr, bool virt, void *buf, size_t len)
{
	uint8_t *dst = buf;
	size_t done;

	(void)ctx;
	if (cpu >= 2)
		return -ENOENT;
	if (virt && (cpu != 0 || addr < FAKE_RAM_VA))
		return 0;
	if (virt)
		addr -= FAKE_RAM_VA - FAKE_RAM_GPA;
	for (done = 0; done < len && addr + done >= FAKE_RAM_GPA && addr + done < FAKE_RAM_GPA + 64; done++)
		dst[done] = (uint8_t)(0xc0 + addr + done - FAKE_RAM_GPA);
	return (ssize_t)done;
}

static const struct monitor_machine_ops fake_ops = {
	.run_state = fake_run_state, .stop = fake_stop, .cont = fake_cont, .powerdown = fake_powerdown,
	.reset = fake_reset, .quit = fake_quit, .describe = fake_describe, .balloon_set = fake_balloon_set,
	.balloon_query = fake_balloon_query, .registers = fake_registers, .read_memory = fake_read_memory,
};

/* A session whose output is collected, one JSON value per line. */
struct harness {
	struct fake_machine machine;
	struct monitor *mon;
	struct qmp_session session;
	char out[256 * 1024];
	size_t out_len;
};

static void collect(void *ctx, const char *data, size_t len)
{
	struct harness *h = ctx;

	assert_true(h->out_len + len < sizeof(h->out));
	memcpy(h->out + h->out_len, data, len);
	h->out_len += len;
	h->out[h->out_len] = '\0';
}

static int setup(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));

	h->machine.has_balloon = true;
	h->machine.balloon_guest_bytes = RAM;
	h->mon = monitor_create(NULL, &fake_ops, &h->machine);
	assert_non_null(h->mon);
	qmp_session_init(&h->session, h->mon, collect, h);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct harness *h = *state;

	monitor_destroy(h->mon);
	free(h);
	return 0;
}

/* The replies so far, parsed, and forgotten. */
static json_t *take_replies(struct harness *h)
{
	json_t *list = json_array();
	char *line = h->out, *end;

	while ((end = strstr(line, "\r\n"))) {
		json_error_t err;
		json_t *v;

		*end = '\0';
		v = json_loads(line, 0, &err);
		assert_non_null(v);
		json_array_append_new(list, v);
		line = end + 2;
	}
	assert_string_equal(line, "");  /* every reply ends in CRLF */
	h->out_len = 0;
	h->out[0] = '\0';
	return list;
}

/* Send text, expect exactly one reply, return it. */
static json_t *ask(struct harness *h, const char *text)
{
	json_t *replies, *reply;

	qmp_session_input(&h->session, text, strlen(text));
	replies = take_replies(h);
	assert_int_equal(json_array_size(replies), 1);
	reply = json_incref(json_array_get(replies, 0));
	json_decref(replies);
	return reply;
}

static const char *error_class(json_t *reply)
{
	return json_string_value(json_object_get(json_object_get(reply, "error"), "class"));
}

static const char *error_desc(json_t *reply)
{
	return json_string_value(json_object_get(json_object_get(reply, "error"), "desc"));
}

static void negotiate(struct harness *h)
{
	json_t *r = ask(h, "{\"execute\": \"qmp_capabilities\"}\n");

	assert_non_null(json_object_get(r, "return"));
	json_decref(r);
}

static void test_greeting_and_negotiation(void **state)
{
	struct harness *h = *state;
	json_t *greeting, *r;

	qmp_session_greet(&h->session);
	greeting = ask(h, "");
	assert_true(json_is_integer(json_object_get(json_object_get(json_object_get(json_object_get(greeting, "QMP"),
											   "version"), "qemu"), "major")));
	assert_true(json_is_array(json_object_get(json_object_get(greeting, "QMP"), "capabilities")));
	json_decref(greeting);

	r = ask(h, "{\"execute\": \"query-status\"}");
	assert_string_equal(error_class(r), "CommandNotFound");
	assert_non_null(strstr(error_desc(r), "qmp_capabilities"));
	json_decref(r);
	r = ask(h, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"oob\"]}}");
	assert_string_equal(error_class(r), "GenericError");
	json_decref(r);
	negotiate(h);
	r = ask(h, "{\"execute\": \"qmp_capabilities\"}");
	assert_string_equal(error_class(r), "CommandNotFound");
	json_decref(r);
}

static void test_ids_and_errors(void **state)
{
	struct harness *h = *state;
	json_t *r;

	negotiate(h);
	r = ask(h, "{\"execute\": \"query-status\", \"id\": \"a-1\"}");
	assert_string_equal(json_string_value(json_object_get(r, "id")), "a-1");
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "return"), "status")), "running");
	json_decref(r);
	r = ask(h, "{\"execute\": \"frobnicate\", \"id\": 7}");
	assert_string_equal(error_class(r), "CommandNotFound");
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
	json_decref(r);
	r = ask(h, "[1, 2]");
	assert_string_equal(error_desc(r), "QMP input must be a JSON object");
	json_decref(r);
	r = ask(h, "{\"exec\": \"quit\"}");
	assert_non_null(strstr(error_desc(r), "'exec' is unexpected"));
	json_decref(r);
	r = ask(h, "{\"execute\": 42}");
	assert_string_equal(error_class(r), "GenericError");
	json_decref(r);
	r = ask(h, "{\"execute\": \"stop\", \"arguments\": [1]}");
	assert_string_equal(error_class(r), "GenericError");
	json_decref(r);
	assert_int_equal(h->machine.state, MONITOR_RUNNING);
	assert_int_equal(h->machine.quits, 0);
}

/* Malformed JSON is answered and the connection goes on at the next line. */
static void test_malformed_json_keeps_session(void **state)
{
	struct harness *h = *state;
	static const char text[] = "{\"execute\": nope}\n{\"execute\": \"query-kvm\"}\n";
	json_t *replies;

	negotiate(h);
	qmp_session_input(&h->session, text, sizeof(text) - 1);
	replies = take_replies(h);
	assert_int_equal(json_array_size(replies), 2);
	assert_string_equal(error_class(json_array_get(replies, 0)), "GenericError");
	assert_non_null(strstr(error_desc(json_array_get(replies, 0)), "JSON parse error"));
	assert_true(json_is_true(json_object_get(json_object_get(json_array_get(replies, 1), "return"), "enabled")));
	json_decref(replies);
}

/* A command a byte at a time, and two commands in one write, in order. */
static void test_stream_split_and_joined(void **state)
{
	struct harness *h = *state;
	static const char one[] = "  {\"execute\": \"query-version\", \"id\": 1}";
	static const char two[] = "{\"execute\":\"stop\",\"id\":2}{\"execute\":\"query-status\",\"id\":3}";
	json_t *replies;

	negotiate(h);
	for (size_t i = 0; i < sizeof(one) - 1; i++) {
		qmp_session_input(&h->session, one + i, 1);
		if (i < sizeof(one) - 2)
			assert_int_equal(h->out_len, 0);
	}
	replies = take_replies(h);
	assert_int_equal(json_array_size(replies), 1);
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(json_array_get(replies, 0), "return"),
								   "package")), "kvio"));
	json_decref(replies);
	qmp_session_input(&h->session, two, sizeof(two) - 1);
	replies = take_replies(h);
	assert_int_equal(json_array_size(replies), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(replies, 0), "id")), 2);
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(replies, 1), "return"),
								"status")), "paused");
	json_decref(replies);
}

/* Wherever a read ends (inside a literal, a number, an escape, a UTF-8
 * character), the command waits for the rest: one reply, no error. */
static void test_split_anywhere(void **state)
{
	struct harness *h = *state;
	static const char text[] = "{\"execute\": \"query-status\", \"id\": [-1.5e1, true, null, \"\\u00e9\xc3\xa9}{\"]}\n";
	json_t *replies;

	negotiate(h);
	for (size_t cut = 1; cut < sizeof(text) - 1; cut++) {
		qmp_session_input(&h->session, text, cut);
		qmp_session_input(&h->session, text + cut, sizeof(text) - 1 - cut);
		replies = take_replies(h);
		assert_int_equal(json_array_size(replies), 1);
		assert_non_null(json_object_get(json_array_get(replies, 0), "return"));
		assert_int_equal(json_array_size(json_object_get(json_array_get(replies, 0), "id")), 4);
		json_decref(replies);
	}
}

/* Names the client sent come back in errors cut short and ASCII only: never no reply. */
static void test_non_ascii_names_get_errors(void **state)
{
	struct harness *h = *state;
	char text[1400];
	char name[1100];
	json_t *r;

	negotiate(h);
	memset(name, 'a', sizeof(name));
	for (size_t i = 99; i + 2 < sizeof(name); i += 2)
		memcpy(name + i, "\xc3\xa9", 2);
	name[sizeof(name) - 1] = '\0';
	snprintf(text, sizeof(text), "{\"execute\": \"%.601s\"}", name);
	r = ask(h, text);
	assert_string_equal(error_class(r), "CommandNotFound");
	json_decref(r);
	snprintf(text, sizeof(text), "{\"execute\": \"balloon\", \"arguments\": {\"value\": 1, \"%.601s\": 1}}", name);
	r = ask(h, text);
	assert_string_equal(error_class(r), "GenericError");
	json_decref(r);
	assert_int_equal(h->machine.balloon_guest_bytes, RAM);  /* the balloon was not touched */
	snprintf(text, sizeof(text), "{\"%.601s\": 1}", name);
	r = ask(h, text);
	assert_string_equal(error_class(r), "GenericError");
	json_decref(r);
}

/* More than the input buffer holds without a complete value: one error, and the session still works. */
static void test_oversized_input(void **state)
{
	struct harness *h = *state;
	size_t len = QMP_INPUT_MAX + 1000;
	char *big = malloc(len + 1);
	json_t *replies, *r;

	negotiate(h);
	memset(big, ' ', len);
	big[0] = '{';
	big[1] = '"';
	big[len - 1] = '\n';
	big[len] = '\0';
	for (size_t i = 2; i < len - 1; i++)
		big[i] = 'a';
	qmp_session_input(&h->session, big, len);
	replies = take_replies(h);
	assert_true(json_array_size(replies) >= 1);
	assert_string_equal(error_class(json_array_get(replies, 0)), "GenericError");
	json_decref(replies);
	r = ask(h, "{\"execute\": \"query-status\"}\n");
	assert_non_null(json_object_get(r, "return"));
	json_decref(r);
	free(big);
}

static void test_balloon_arguments(void **state)
{
	struct harness *h = *state;
	json_t *r;

	negotiate(h);
	r = ask(h, "{\"execute\": \"balloon\"}");
	assert_string_equal(error_desc(r), "Parameter 'value' is missing");
	json_decref(r);
	r = ask(h, "{\"execute\": \"balloon\", \"arguments\": {\"value\": \"512M\"}}");
	assert_non_null(strstr(error_desc(r), "Invalid parameter type for 'value'"));
	json_decref(r);
	r = ask(h, "{\"execute\": \"balloon\", \"arguments\": {\"value\": 1, \"force\": true}}");
	assert_string_equal(error_desc(r), "Parameter 'force' is unexpected");
	json_decref(r);
	r = ask(h, "{\"execute\": \"balloon\", \"arguments\": {\"value\": -5}}");
	assert_string_equal(error_class(r), "GenericError");
	json_decref(r);
	r = ask(h, "{\"execute\": \"balloon\", \"arguments\": {\"value\": 536870912}}");
	assert_non_null(json_object_get(r, "return"));
	json_decref(r);
	assert_int_equal(h->machine.balloon_guest_bytes, 512 * MIB);
	r = ask(h, "{\"execute\": \"query-balloon\"}");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"), "actual")), 512 * MIB);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "return"), "free_mem")), 300 * MIB);
	json_decref(r);
	h->machine.has_balloon = false;
	r = ask(h, "{\"execute\": \"query-balloon\"}");
	assert_string_equal(error_class(r), "DeviceNotActive");
	json_decref(r);
	r = ask(h, "{\"execute\": \"balloon\", \"arguments\": {\"value\": 536870912}}");
	assert_string_equal(error_class(r), "DeviceNotActive");
	json_decref(r);
}

static void test_machine_commands(void **state)
{
	struct harness *h = *state;
	json_t *r, *ret;

	negotiate(h);
	json_decref(ask(h, "{\"execute\": \"system_powerdown\"}"));
	json_decref(ask(h, "{\"execute\": \"system_reset\"}"));
	json_decref(ask(h, "{\"execute\": \"quit\"}"));
	assert_int_equal(h->machine.powerdowns, 1);
	assert_int_equal(h->machine.resets, 1);
	assert_int_equal(h->machine.quits, 1);

	r = ask(h, "{\"execute\": \"query-cpus-fast\"}");
	ret = json_object_get(r, "return");
	assert_int_equal(json_array_size(ret), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ret, 1), "thread-id")), 4243);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ret, 1), "cpu-index")), 1);
	json_decref(r);
	r = ask(h, "{\"execute\": \"query-block\"}");
	ret = json_array_get(json_object_get(r, "return"), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "device")), "disk0");
	assert_true(json_is_true(json_object_get(json_object_get(ret, "inserted"), "ro")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(ret, "inserted"), "file")), "/images/root.img");
	json_decref(r);
	r = ask(h, "{\"execute\": \"query-pci\"}");
	ret = json_array_get(json_object_get(json_array_get(json_object_get(r, "return"), 0), "devices"), 0);
	assert_int_equal(json_integer_value(json_object_get(ret, "slot")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(ret, "id"), "device")), 0x1041);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(ret, "class_info"), "class")), 0x0200);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(ret, "regions"), 0), "size")),
			 0x4000);
	json_decref(r);
	r = ask(h, "{\"execute\": \"query-commands\"}");
	assert_true(json_array_size(json_object_get(r, "return")) >= 16);
	json_decref(r);
	r = ask(h, "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"info status\"}}");
	assert_string_equal(json_string_value(json_object_get(r, "return")), "VM status: running\n");
	json_decref(r);
	/* cpu-index picks the vCPU x reads through, for that one line. */
	r = ask(h, "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": "
		   "\"x /1bx 0xffff888000001000\", \"cpu-index\": 1}}");
	assert_string_equal(json_string_value(json_object_get(r, "return")), "ffff888000001000: Cannot access memory\n");
	json_decref(r);
	r = ask(h, "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": "
		   "\"x /1bx 0xffff888000001000\"}}");
	assert_string_equal(json_string_value(json_object_get(r, "return")), "ffff888000001000: 0xc0\n");
	json_decref(r);
	r = ask(h, "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"info cpus\", "
		   "\"cpu-index\": 2}}");
	assert_string_equal(error_desc(r), "Parameter 'cpu-index' expects a CPU number");
	json_decref(r);
	r = ask(h, "{\"execute\": \"human-monitor-command\"}");
	assert_string_equal(error_desc(r), "Parameter 'command-line' is missing");
	json_decref(r);
}

/* The human commands, and their output as QEMU's monitor prints it. */
static void expect_human(struct harness *h, const char *line, const char *needle)
{
	char *out = monitor_human(h->mon, line);

	assert_non_null(out);
	if (!strstr(out, needle))
		fail_msg("'%s' printed '%s', not '%s'", line, out, needle);
	free(out);
}

static void test_human_commands(void **state)
{
	struct harness *h = *state;

	expect_human(h, "info status", "VM status: running");
	expect_human(h, "balloon 512", "");
	assert_int_equal(h->machine.balloon_guest_bytes, 512 * MIB);
	expect_human(h, "info balloon", "balloon: actual=512 free_mem=314572800 total_mem=1038090240");
	expect_human(h, "balloon", "missing");
	expect_human(h, "balloon 12x", "'12x' is not a size in MiB");
	expect_human(h, "balloon -1", "is not a size");
	expect_human(h, "balloon 0", "is not a size");
	expect_human(h, "balloon 99999999999999999999999", "is not a size");
	expect_human(h, "  stop  ", "");
	assert_int_equal(h->machine.state, MONITOR_PAUSED);
	expect_human(h, "info status", "VM status: paused");
	expect_human(h, "c", "");
	assert_int_equal(h->machine.state, MONITOR_RUNNING);
	expect_human(h, "info network", "net0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:56");
	expect_human(h, "info block", "disk0: /images/root.img (raw, read-only), 64 MiB");
	expect_human(h, "info virtio", "virtio-net at 00:03.0: status 0x0f (acknowledge driver driver-ok features-ok)");
	expect_human(h, "info cpus", "  CPU #1: thread_id=4243");
	expect_human(h, "info registers", "CPU#0\nRAX=0000000000000000 RBX=0000000000000001");
	expect_human(h, "info registers", "R12=000000000000010c R13=000000000000010d R14=000000000000010e R15=000000000000010f\n"
					  "RIP=ffffffff81000001 RFL=00000246 CPL=0\nCS =0010 SS =0018\n");
	expect_human(h, "info registers", "CPU#1 (halted)\n");
	expect_human(h, "info registers", "LSTAR=ffffffff81e00000\n");
	expect_human(h, "info", "info balloon");
	/* x and xp: QEMU's layout, 16 bytes a line (8 for bytes), little-endian units. */
	expect_human(h, "xp /2gx 0x1000", "0000000000001000: 0xc7c6c5c4c3c2c1c0 0xcfcecdcccbcac9c8\n");
	expect_human(h, "xp /10bx 4096", "0000000000001000: 0xc0 0xc1 0xc2 0xc3 0xc4 0xc5 0xc6 0xc7\n"
					 "0000000000001008: 0xc8 0xc9\n");
	expect_human(h, "xp 0x1004", "0000000000001004: 0xc7c6c5c4\n");
	expect_human(h, "xp /2hd 0x1000", "0000000000001000: -15936 -15422\n");
	expect_human(h, "x/2hu 0xffff888000001000", "ffff888000001000: 49600 50114\n");
	expect_human(h, "xp /1bu 0x1000", "0000000000001000: 192\n");
	expect_human(h, "xp /2c 0x1000", "0000000000001000: '\\xc0' '\\xc1'\n");
	expect_human(h, "x /1gx 0xffff888000001038", "ffff888000001038: 0xfffefdfcfbfaf9f8\n");
	expect_human(h, "x /3gx 0xffff888000001030", "ffff888000001030: 0xf7f6f5f4f3f2f1f0 0xfffefdfcfbfaf9f8\n"
						    "ffff888000001040: Cannot access memory\n");
	expect_human(h, "x /1wx 0x1000", "0000000000001000: Cannot access memory\n");
	/* $reg: vCPU 0's R13 is 0x0d, past the RAM; vCPU 1 maps nothing virtual. */
	expect_human(h, "x /1bx $r13", "000000000000000d: Cannot access memory");
	expect_human(h, "x /1gx $sp", "0000000000000007: Cannot access memory");
	expect_human(h, "x /1bx $pc", "ffffffff81000000: Cannot access memory");
	expect_human(h, "xp /2gx 0xfffffffffffffff8", "16 bytes at '0xfffffffffffffff8' run past the end");
	expect_human(h, "cpu 1", "");
	expect_human(h, "info cpus", "* CPU #1");
	expect_human(h, "x /1bx 0xffff888000001000", "Cannot access memory");
	expect_human(h, "cpu 2", "invalid CPU index '2'");
	expect_human(h, "cpu 0", "");
	expect_human(h, "x /1bx 0xffff888000001000", "ffff888000001000: 0xc0\n");
	expect_human(h, "x /4q 0x1000", "'/4q' is not a format");
	expect_human(h, "x /0x 0x1000", "'/0x' is not a format");
	expect_human(h, "x /99999gx 0x1000", "'/99999gx' is not a format");
	expect_human(h, "x /4x 0x1000zz", "'0x1000zz' is not an address");
	expect_human(h, "x /4x $nope", "'$nope' is not an address");
	expect_human(h, "x /4x", "'' is not an address");
	expect_human(h, "x /4x 0x1000 more", "too many arguments");
	expect_human(h, "info nothing", "unknown item 'nothing'");
	expect_human(h, "frobnicate", "unknown command: 'frobnicate'");
	expect_human(h, "info status extra", "too many arguments");
	expect_human(h, "quit now", "takes no argument");
	assert_int_equal(h->machine.quits, 0);
	expect_human(h, "help", "system_powerdown");
	expect_human(h, "system_powerdown", "");
	assert_int_equal(h->machine.powerdowns, 1);
	expect_human(h, "", "");
	h->machine.has_balloon = false;
	expect_human(h, "info balloon", "No balloon device has been activated");
	expect_human(h, "q", "");
	assert_int_equal(h->machine.quits, 1);
}

/* Over a real socket: events reach clients in command mode only, and clients come and go. */
static int connect_to(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	return fd;
}

/* Run the loop until fd has a line with needle (or 2 s pass); returns what was read. */
static void pump_until(struct event_loop *loop, int fd, const char *needle, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; i < 200 && !strstr(buf, needle); i++) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		event_loop_run_once(loop, 10);
		if (poll(&pfd, 1, 0) == 1) {
			ssize_t n = read(fd, buf + len, size - len - 1);

			if (n <= 0)
				break;
			len += (size_t)n;
			buf[len] = '\0';
		}
	}
	if (!strstr(buf, needle))
		fail_msg("no '%s' in '%s'", needle, buf);
}

static void send_text(int fd, const char *text)
{
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

static void test_socket_events_and_clients(void **state)
{
	struct fake_machine machine = { .state = MONITOR_RUNNING, .has_balloon = true };
	struct event_loop loop = { .epoll_fd = -1 };
	char dir[] = "/tmp/kvio-monitor-XXXXXX", path[64], buf[8192];
	struct monitor *mon;
	int a, b;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/qmp.sock", dir);
	assert_int_equal(event_loop_init(&loop), 0);
	mon = monitor_create(path, &fake_ops, &machine);
	assert_non_null(mon);
	assert_int_equal(monitor_start(mon, &loop), 0);

	a = connect_to(path);
	pump_until(&loop, a, "\"QMP\"", buf, sizeof(buf));
	b = connect_to(path);
	pump_until(&loop, b, "\"QMP\"", buf, sizeof(buf));
	send_text(a, "{\"execute\": \"qmp_capabilities\"}\r\n");
	pump_until(&loop, a, "\"return\"", buf, sizeof(buf));
	/* Only a, in command mode, hears of the stop. */
	send_text(a, "{\"execute\": \"stop\"}\n");
	pump_until(&loop, a, "\"event\":\"STOP\"", buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"timestamp\":{\"seconds\":"));
	monitor_emit(mon, "BALLOON_CHANGE", json_pack("{s:I}", "actual", (json_int_t)(512 * MIB)));
	pump_until(&loop, a, "\"actual\":536870912", buf, sizeof(buf));
	send_text(b, "{\"execute\": \"qmp_capabilities\"}\n{\"execute\": \"cont\"}\n");
	pump_until(&loop, b, "\"event\":\"RESUME\"", buf, sizeof(buf));
	pump_until(&loop, a, "\"event\":\"RESUME\"", buf, sizeof(buf));
	/* a goes; a new client is greeted and served. */
	close(a);
	event_loop_run_once(&loop, 10);
	a = connect_to(path);
	pump_until(&loop, a, "\"QMP\"", buf, sizeof(buf));
	send_text(a, "{\"execute\": \"qmp_capabilities\"}{\"execute\": \"query-status\"}");
	pump_until(&loop, a, "\"status\":\"running\"", buf, sizeof(buf));
	/* The SHUTDOWN event at exit goes out with the flush. */
	monitor_emit(mon, "SHUTDOWN", json_pack("{s:b,s:s}", "guest", 1, "reason", "guest-shutdown"));
	monitor_flush(mon, 500);
	{
		ssize_t n = read(b, buf, sizeof(buf) - 1);

		assert_true(n > 0);
		buf[n] = '\0';
		assert_non_null(strstr(buf, "\"reason\":\"guest-shutdown\""));
	}
	monitor_destroy(mon);
	close(a);
	close(b);
	event_loop_destroy(&loop);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_greeting_and_negotiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_json_keeps_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_split_and_joined, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_anywhere, setup, teardown),
		cmocka_unit_test_setup_teardown(test_non_ascii_names_get_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_balloon_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_machine_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_human_commands, setup, teardown),
		cmocka_unit_test(test_socket_events_and_clients),
	};

	return cmocka_run_group_tests_name("monitor", tests, NULL, NULL);
}
