/* libFuzzer target for the monitor's input: bytes a QMP client sends (cut
 * into chunks anywhere, as a socket may deliver them) and human command
 * lines, against a fake machine. Every reply must be one well-formed JSON
 * object on its own line, the replies must not depend on where the input
 * was cut, and nothing may crash, leak or loop. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/monitor.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM (1024ULL << 20)

static enum monitor_run_state state;
static uint64_t guest_bytes = RAM;

static enum monitor_run_state fake_run_state(void *ctx)
{
	(void)ctx;
	return state;
}

static int fake_stop(void *ctx)
{
	(void)ctx;
	state = MONITOR_PAUSED;
	return 0;
}

static int fake_cont(void *ctx)
{
	(void)ctx;
	state = MONITOR_RUNNING;
	return 0;
}

static void fake_nothing(void *ctx)
{
	(void)ctx;
}

static void fake_describe(void *ctx, struct monitor_machine *m)
{
	(void)ctx;
	m->ram_bytes = RAM;
	m->nr_cpus = 1;
	m->cpus[0].thread_id = 1;
	m->nr_disks = m->nr_nics = m->nr_pci = m->nr_virtio = 1;
	strcpy(m->disks[0].name, "disk0");
	strcpy(m->nics[0].name, "net0");
	strcpy(m->nics[0].model, "e1000");
	m->pci[0].bars[1] = (struct monitor_pci_bar){ .address = 0xc000, .size = 64, .io = true };
	strcpy(m->virtio[0].name, "virtio-rng");
	m->virtio[0].status = 0xff;
}

static int fake_balloon_set(void *ctx, uint64_t bytes)
{
	(void)ctx;
	guest_bytes = bytes > RAM ? RAM : bytes;
	return 0;
}

static int fake_balloon_query(void *ctx, struct monitor_balloon *b)
{
	(void)ctx;
	memset(b, 0, sizeof(*b));
	b->actual = guest_bytes;
	b->has_stats = guest_bytes & 1;
	for (unsigned int t = 0; t < 16; t++)
		b->stats[t] = t % 3 ? (int64_t)t << 20 : -1;
	return guest_bytes % 3 ? 0 : -ENODEV;
}

static int fake_registers(void *ctx, unsigned int cpu, struct monitor_registers *r)
{
	(void)ctx;
	if (cpu >= 1)
		return -ENOENT;
	*r = (struct monitor_registers){ .rip = 0xffffffff81000000ULL, .gpr = { [7] = 0xfff00 } };
	return 0;
}

/* The first MiB is RAM at both kinds of address. */
static ssize_t fake_read_memory(void *ctx, unsigned int cpu, uint64_t addr, bool virt, void *buf, size_t len)
{
	(void)ctx, (void)virt;
	if (len == 0 || len > 64 * 1024)
		abort();  /* x asks for 1 to 64 KiB */
	if (cpu >= 1)
		return -ENOENT;
	if (addr >= (1U << 20))
		return 0;
	if (len > (1U << 20) - addr)
		len = (1U << 20) - addr;
	memset(buf, (int)(addr & 0xff), len);
	return (ssize_t)len;
}

static const struct monitor_machine_ops fake_ops = {
	.run_state = fake_run_state, .stop = fake_stop, .cont = fake_cont, .powerdown = fake_nothing,
	.reset = fake_nothing, .quit = fake_nothing, .describe = fake_describe, .balloon_set = fake_balloon_set,
	.balloon_query = fake_balloon_query, .registers = fake_registers, .read_memory = fake_read_memory,
};

struct output {
	char *buf;
	size_t len;
};

static void collect(void *ctx, const char *text, size_t len)
{
	struct output *out = ctx;

	out->buf = realloc(out->buf, out->len + len + 1);
	memcpy(out->buf + out->len, text, len);
	out->len += len;
	out->buf[out->len] = '\0';
}

static void check_replies(struct output *out)
{
	char *line = out->buf;

	for (char *end; line && (end = strstr(line, "\r\n")); line = end + 2) {
		json_error_t err;
		json_t *v;

		*end = '\0';
		v = json_loads(line, 0, &err);
		if (!json_is_object(v))
			abort();  /* a reply that is not one JSON object per line */
		json_decref(v);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct monitor *mon;
	struct output out = { 0 };
	struct qmp_session *session = malloc(sizeof(*session));
	size_t pos = 1;

	if (!mon) {
		log_set_level(LOG_ERROR);
		mon = monitor_create(NULL, &fake_ops, NULL);
	}
	if (!size) {
		free(session);
		return 0;
	}
	state = MONITOR_RUNNING;
	guest_bytes = RAM;
	qmp_session_init(session, mon, collect, &out);
	session->negotiated = data[0] & 1;  /* half the inputs skip the handshake */
	if (data[0] & 2) {
		/* Human command lines, one per line. */
		char *text = strndup((const char *)data + 1, size - 1);

		for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			free(monitor_human(mon, line));
		free(text);
	} else {
		/* QMP bytes in chunks whose sizes come from the first byte, then
		 * all at once on a fresh session: the same replies. */
		size_t chunk = 1 + (data[0] >> 2);
		struct output whole = { 0 };

		while (pos < size) {
			size_t n = size - pos < chunk ? size - pos : chunk;

			qmp_session_input(session, (const char *)data + pos, n);
			pos += n;
		}
		state = MONITOR_RUNNING;
		guest_bytes = RAM;
		qmp_session_init(session, mon, collect, &whole);
		session->negotiated = data[0] & 1;
		qmp_session_input(session, (const char *)data + 1, size - 1);
		if ((out.len != whole.len || (out.len && memcmp(out.buf, whole.buf, out.len))) &&
		    size - 1 < QMP_INPUT_MAX)
			abort();  /* where a read ended changed what was answered */
		free(whole.buf);
	}
	check_replies(&out);
	free(out.buf);
	free(session);
	return 0;
}
