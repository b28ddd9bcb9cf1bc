/* The monitor: QMP (QEMU's JSON protocol) on a UNIX socket and human commands,
 * both answered from one table of commands over a machine described by ops. */
#ifndef KVIO_MONITOR_MONITOR_H
#define KVIO_MONITOR_MONITOR_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/event_loop.h"

#define MONITOR_MAX_CPUS 256
#define MONITOR_MAX_DEVICES 32
#define MONITOR_NAME_MAX 64

/* QEMU's RunState names, the ones a kvio VM goes through. */
enum monitor_run_state { MONITOR_RUNNING, MONITOR_PAUSED, MONITOR_SHUTDOWN };

struct monitor_cpu {
	unsigned int index;
	int thread_id;  /* the vCPU thread's TID, 0 before it started */
};

struct monitor_disk {
	char name[MONITOR_NAME_MAX];    /* "disk0", ... */
	char path[4096];                /* image file or vhost-user socket */
	bool read_only, vhost_user;
	uint64_t size;                  /* bytes; 0 if the backend did not say */
};

struct monitor_nic {
	char name[MONITOR_NAME_MAX];    /* "net0", ... */
	char model[MONITOR_NAME_MAX];   /* "virtio-net-pci", "e1000" */
	char backend[MONITOR_NAME_MAX * 2];  /* "tap,ifname=tap0,vhost=off", "user", ... */
	uint8_t mac[6];
	unsigned int queues;
};

struct monitor_pci_bar {
	uint64_t address, size;  /* size 0: the BAR is not there */
	bool io, mem64;
};

struct monitor_pci_device {
	unsigned int slot;
	uint16_t vendor, device, subsystem_vendor, subsystem;
	uint32_t class_code;     /* base, sub-class, prog-if */
	uint8_t irq_line, irq_pin;
	char name[MONITOR_NAME_MAX];
	struct monitor_pci_bar bars[6];
};

struct monitor_virtio {
	char name[MONITOR_NAME_MAX];    /* "virtio-net", ... */
	unsigned int slot;
	uint64_t features;              /* negotiated */
	uint8_t status;
	unsigned int queues;            /* the queues the driver enabled */
};

/* What the machine is now: filled in by ops->describe on each command that needs it. */
struct monitor_machine {
	uint64_t ram_bytes;
	unsigned int nr_cpus, nr_disks, nr_nics, nr_pci, nr_virtio;
	struct monitor_cpu cpus[MONITOR_MAX_CPUS];
	struct monitor_disk disks[MONITOR_MAX_DEVICES];
	struct monitor_nic nics[MONITOR_MAX_DEVICES];
	struct monitor_pci_device pci[MONITOR_MAX_DEVICES];
	struct monitor_virtio virtio[MONITOR_MAX_DEVICES];
};

/* The balloon as query-balloon reports it. */
struct monitor_balloon {
	uint64_t actual;         /* guest RAM minus the balloon, bytes (QMP's "actual") */
	uint64_t target;         /* what the last balloon command asked for, same unit */
	bool has_stats;          /* the guest sent statistics (VIRTIO_BALLOON_F_STATS_VQ) */
	int64_t last_update;     /* CLOCK_REALTIME seconds of the guest's last report */
	/* By VIRTIO_BALLOON_S_* tag, -1 where the guest reported nothing. */
	int64_t stats[16];
};

/* One vCPU's registers, as `info registers` shows them. */
struct monitor_registers {
	uint64_t gpr[16];  /* RAX RBX RCX RDX RSI RDI RBP RSP R8-R15, in that order */
	uint64_t rip, rflags;
	uint64_t cr0, cr2, cr3, cr4, efer;
	/* The 64-bit syscall entry point: where the guest kernel's text sits
	 * (under KASLR, LSTAR minus entry_SYSCALL_64's link address is the offset). */
	uint64_t lstar;
	uint16_t cs, ss;
	bool halted;
};

/* What the monitor does to the machine. Calls come from the main thread or
 * the console's input thread, one at a time (the monitor serialises them),
 * never from a vCPU or I/O thread. */
struct monitor_machine_ops {
	enum monitor_run_state (*run_state)(void *ctx);
	/* Pause every vCPU and I/O thread, or let them run again; 0 or -errno. */
	int (*stop)(void *ctx);
	int (*cont)(void *ctx);
	/* Ask the guest to shut down (it may ignore it), or end the VM at once. */
	void (*powerdown)(void *ctx);
	void (*reset)(void *ctx);
	void (*quit)(void *ctx);
	void (*describe)(void *ctx, struct monitor_machine *out);
	/* -ENODEV without a balloon; guest_bytes is what the guest should keep. */
	int (*balloon_set)(void *ctx, uint64_t guest_bytes);
	int (*balloon_query)(void *ctx, struct monitor_balloon *out);
	/* vCPU cpu's registers, read while it is parked between two exits;
	 * -ENOENT past the last vCPU, or another -errno. */
	int (*registers)(void *ctx, unsigned int cpu, struct monitor_registers *out);
	/* Copy up to len bytes of guest memory at addr, a guest-physical
	 * address or (virt) a virtual one that vCPU cpu's page tables, as they
	 * are now, translate; all in one pause of the vCPUs. Returns how many
	 * bytes it copied before the first one no RAM backs, or -ENOENT past
	 * the last vCPU (or another -errno). */
	ssize_t (*read_memory)(void *ctx, unsigned int cpu, uint64_t addr, bool virt, void *buf, size_t len);
};

struct monitor;

/* A monitor over ops; with a path, it listens there (an existing socket file
 * is replaced). Without a path it only answers human commands (the console).
 * Returns NULL and logs why on failure. */
struct monitor *monitor_create(const char *path, const struct monitor_machine_ops *ops, void *ctx);
/* Serve clients and deliver events from loop, which runs on the calling thread. */
int monitor_start(struct monitor *mon, struct event_loop *loop);
/* Stop serving from the loop given to monitor_start (before that loop goes). */
void monitor_stop(struct monitor *mon);
/* Closes the clients and the socket. */
void monitor_destroy(struct monitor *mon);

/* Queue an event for every client in command mode; safe from any thread,
 * including with device locks held. Takes data (may be NULL). */
void monitor_emit(struct monitor *mon, const char *event, json_t *data);
/* Write what is queued now, waiting up to timeout_ms for slow clients: for
 * the SHUTDOWN event before kvio exits. */
void monitor_flush(struct monitor *mon, int timeout_ms);

/* A human command line ("info balloon"); returns its output (malloc'd,
 * possibly empty), never NULL unless out of memory. */
char *monitor_human(struct monitor *mon, const char *line);

/* --- The parts below are for the protocol and command modules and their tests. --- */

/* Run a QMP command: returns the reply object ({"return": ...} or {"error": ...}),
 * without "id". Takes the monitor's command lock. */
json_t *monitor_execute(struct monitor *mon, const char *name, json_t *args);

/* A QMP command: args is an object (never NULL); on success return the
 * "return" value (an object if nothing else); on failure return NULL with
 * *error set to a new {"class": ..., "desc": ...} object. */
typedef json_t *(*monitor_command_fn)(struct monitor *mon, json_t *args, json_t **error);

struct monitor_command {
	const char *name;
	monitor_command_fn run;
	/* Arguments: "name:type" words, '?' after the name if optional; types i (integer), s (string), b (bool), a (array). */
	const char *args;
};

const struct monitor_command *monitor_command_find(const char *name);
const struct monitor_command *monitor_commands(size_t *count);
json_t *monitor_error(const char *class, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* query-balloon's member for the guest statistic with VIRTIO_BALLOON_S_* tag, or NULL. */
const char *monitor_balloon_stat_name(unsigned int tag);

/* What a command sees of the monitor. */
const struct monitor_machine_ops *monitor_ops(struct monitor *mon, void **ctx);
/* The machine as it is now (malloc'd; NULL if out of memory). */
struct monitor_machine *monitor_describe(struct monitor *mon);
/* Whether cpu is the index of one of the machine's vCPUs. */
bool monitor_has_cpu(struct monitor *mon, long long cpu);

/* Human commands: parse line, run it through QMP commands, format the answer.
 * *cpu is the vCPU that x and `info cpus` mean, and that `cpu N` changes:
 * the console keeps its own, human-monitor-command starts from cpu-index. */
char *hmp_execute(struct monitor *mon, const char *line, unsigned int *cpu);

/* One QMP connection's protocol state, independent of sockets (the fuzz
 * target and unit tests drive it with bytes). Output goes to write(). */
#define QMP_INPUT_MAX (64 * 1024)
struct qmp_session {
	struct monitor *mon;
	bool negotiated;          /* qmp_capabilities done: commands and events */
	char input[QMP_INPUT_MAX];
	size_t input_len;
	void (*write)(void *ctx, const char *data, size_t len);
	void *write_ctx;
};
void qmp_session_init(struct qmp_session *s, struct monitor *mon, void (*write)(void *ctx, const char *data, size_t len),
		      void *ctx);
/* Send the greeting. */
void qmp_session_greet(struct qmp_session *s);
/* Bytes from the client: every complete JSON value in them is answered. */
void qmp_session_input(struct qmp_session *s, const char *data, size_t len);
/* Encode and send one object followed by CRLF, as QEMU does. */
void qmp_session_send(struct qmp_session *s, json_t *msg);

#endif
