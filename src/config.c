/* Command-line parsing and validation for kvio. Errors are one line naming the
 * option at fault; the caller turns CONFIG_INVALID into exit status 2. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char main_usage[] =
	"Usage: kvio COMMAND [OPTIONS]\n"
	"\n"
	"kvio is a virtual machine monitor for Linux KVM.\n"
	"\n"
	"Commands:\n"
	"  run        boot a Linux guest (see 'kvio run --help')\n"
	"\n"
	"Options:\n"
	"  -h, --help     show this help\n"
	"  -V, --version  show the version\n";

static const char run_usage[] =
	"Usage: kvio run [OPTIONS]\n"
	"\n"
	"Boot a Linux bzImage guest. The guest console is COM1, wired to this terminal;\n"
	"press Ctrl-A x to quit, Ctrl-A h for help.\n"
	"\n"
	"Options:\n"
	"  --kernel FILE      bzImage to boot (default: the default guest's vmlinuz)\n"
	"  --initrd FILE      initramfs to load (default: the default guest's initramfs,\n"
	"                     when --kernel is not given)\n"
	"  --append CMDLINE   extra kernel command line\n"
	"  --memory SIZE      guest RAM: 512M, 2G or plain MiB (default: 256M)\n"
	"  --cpus N           number of vCPUs (default: 1)\n"
	"  --rng              add a virtio-rng device (entropy from the host's getrandom)\n"
	"  --balloon          add a virtio-balloon device: pages the guest gives up or\n"
	"                     reports free go back to the host (statistics included)\n"
	"  --balloon-deflate-on-oom\n"
	"                     let the guest take pages back from the balloon when it runs\n"
	"                     out of memory (VIRTIO_BALLOON_F_DEFLATE_ON_OOM); Linux then no\n"
	"                     longer lowers MemTotal when inflating (needs --balloon)\n"
	"  --console serial|virtio\n"
	"                     where this terminal is wired: COM1 (default) or a\n"
	"                     virtio-console, the guest's hvc0\n"
	"  --disk PATH[,ro][,id=NAME][,queues=N]\n"
	"                     add a virtio-blk disk backed by a raw image or block device\n"
	"                     (repeatable; id is the serial the guest sees, at most 20 bytes)\n"
	"  --net tap=IFNAME|user[,model=virtio|e1000][,mac=MAC][,queues=N]\n"
	"        [,vhost=on|off|auto][,hostfwd=tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT][,mtu=N]\n"
	"                     add a NIC (repeatable): on a tap interface (created if\n"
	"                     missing; vhost= moves the virtio data path into the host\n"
	"                     kernel's vhost-net) or on user-mode networking (10.0.2.0/24,\n"
	"                     host 10.0.2.2, DNS 10.0.2.3, DHCP from 10.0.2.15); queues > 1\n"
	"                     offers multiqueue; e1000 is a fully emulated Intel 82540EM;\n"
	"                     mtu= is user networking's link MTU (virtio: 65520 by default)\n"
	"  --shared-memory    guest RAM in a memfd other processes can map (as QEMU's\n"
	"                     memory-backend-memfd,share=on; implied by vhost-user);\n"
	"                     otherwise anonymous memory with transparent huge pages\n"
	"  --monitor unix:PATH\n"
	"                     a QMP monitor (QEMU's JSON protocol) on a UNIX socket, for\n"
	"                     clients written for QEMU; human commands go through its\n"
	"                     human-monitor-command, or Ctrl-A c on this terminal\n"
	"  --seccomp on|off|log\n"
	"                     the syscall filter kvio runs under once the VM is set up:\n"
	"                     on (default) stops kvio with one line naming a syscall off\n"
	"                     its list, log only records such calls in the kernel's audit\n"
	"                     log, off runs without a filter\n"
	"  -h, --help         show this help\n";

static __attribute__((format(printf, 2, 3))) void print_error(FILE *err, const char *fmt, ...)
{
	va_list ap;

	fputs("kvio: ", err);
	va_start(ap, fmt);
	vfprintf(err, fmt, ap);
	va_end(ap);
	fputc('\n', err);
}

int config_parse_size(const char *s, uint64_t *bytes)
{
	unsigned long long value, shift = 20;
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	value = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (toupper((unsigned char)*end)) {
	case '\0': shift = 20; break;
	case 'K': shift = 10; end++; break;
	case 'M': shift = 20; end++; break;
	case 'G': shift = 30; end++; break;
	case 'T': shift = 40; end++; break;
	default: return -1;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end != '\0' || value > (ULLONG_MAX >> shift))
		return -1;
	value <<= shift;
	if (value % (1ULL << 20))
		return -1;
	*bytes = value;
	return 0;
}

static int parse_cpus(const char *s, unsigned int *cpus)
{
	char *end;
	unsigned long value;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	value = strtoul(s, &end, 10);
	if (errno || *end != '\0' || value == 0 || value > UINT_MAX)
		return -1;
	*cpus = (unsigned int)value;
	return 0;
}

static int check_readable_file(const char *option, const char *path, FILE *err)
{
	FILE *f = fopen(path, "rb");

	if (!f) {
		print_error(err, "%s: cannot open '%s': %s", option, path, strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

static int copy_path(char *dst, size_t size, const char *option, const char *src, FILE *err)
{
	if (strlen(src) >= size) {
		print_error(err, "%s: path too long: '%s'", option, src);
		return -1;
	}
	strcpy(dst, src);
	return 0;
}

/* A UNIX socket path: non-empty and short enough for sun_path. */
static int copy_socket_path(const char *option, const char *src, char dst[CONFIG_SOCKET_PATH_MAX], FILE *err)
{
	if (!*src || strlen(src) >= CONFIG_SOCKET_PATH_MAX) {
		print_error(err, "%s: vhost-user socket path must be 1 to %d bytes", option, CONFIG_SOCKET_PATH_MAX - 1);
		return -1;
	}
	strcpy(dst, src);
	return 0;
}

enum { OPT_KERNEL = 1000, OPT_INITRD, OPT_APPEND, OPT_MEMORY, OPT_CPUS, OPT_RNG, OPT_DISK, OPT_CONSOLE, OPT_NET,
       OPT_SECCOMP, OPT_BALLOON, OPT_BALLOON_DEFLATE_ON_OOM, OPT_MONITOR,
       OPT_SHARED_MEMORY };

int config_parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int b[6];
	int used = 0;

	if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &used) != 6 ||
	    used != 17)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (!isxdigit((unsigned char)s[3 * i]) || !isxdigit((unsigned char)s[3 * i + 1]))
			return -1;
		mac[i] = (uint8_t)b[i];
	}
	return (mac[0] & 1) ? -1 : 0;  /* a multicast address cannot be a NIC's */
}

/* The start of a repeatable comma-separated option: room for one more, and a
 * writable copy of arg in buf for strtok_r. */
static int start_list(const char *option, const char *arg, unsigned int count, unsigned int max, const char *what,
		      char *buf, size_t size, FILE *err)
{
	if (count == max) {
		print_error(err, "%s: at most %u %s", option, max, what);
		return -1;
	}
	if (strlen(arg) >= size) {
		print_error(err, "%s: argument too long", option);
		return -1;
	}
	strcpy(buf, arg);
	return 0;
}

/* queues=N with 1 <= N <= max. */
/* A decimal number in [min, max]. */
static int parse_uint(const char *s, unsigned int min, unsigned int max, unsigned int *value)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!isdigit((unsigned char)s[0]) || *end || v < min || v > max)
		return -1;
	*value = (unsigned int)v;
	return 0;
}

static int parse_queues(const char *option, const char *item, unsigned int max, unsigned int *queues, FILE *err)
{
	if (parse_uint(item + 7, 1, max, queues)) {
		print_error(err, "%s: '%s': queues must be 1 to %u", option, item, max);
		return -1;
	}
	return 0;
}

/* [ADDR]:PORT with an optional IPv4 address; *addr stays 0 when it is empty. */
static int parse_addr_port(char *s, uint32_t *addr, uint16_t *port)
{
	char *colon = strrchr(s, ':'), *end;
	unsigned long p;
	struct in_addr in;

	if (!colon)
		return -1;
	*colon = '\0';
	if (*s) {
		if (inet_pton(AF_INET, s, &in) != 1)
			return -1;
		*addr = in.s_addr;
	}
	p = strtoul(colon + 1, &end, 10);
	if (!isdigit((unsigned char)colon[1]) || *end || p < 1 || p > 65535)
		return -1;
	*port = (uint16_t)p;
	return 0;
}

/* tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, QEMU's hostfwd= syntax. */
static int parse_hostfwd(const char *rule, struct net_hostfwd *fwd)
{
	char buf[96], *dash;

	memset(fwd, 0, sizeof(*fwd));
	if (strlen(rule) >= sizeof(buf))
		return -1;
	if (!strncmp(rule, "tcp:", 4)) {
		strcpy(buf, rule + 4);
	} else if (!strncmp(rule, "udp:", 4)) {
		fwd->udp = true;
		strcpy(buf, rule + 4);
	} else {
		return -1;
	}
	dash = strchr(buf, '-');
	if (!dash)
		return -1;
	*dash = '\0';
	return parse_addr_port(buf, &fwd->host_addr, &fwd->host_port) ||
	       parse_addr_port(dash + 1, &fwd->guest_addr, &fwd->guest_port) ? -1 : 0;
}

/* Which value of a NAME=a|b|c option: its index in choices, or -1. */
static int parse_choice(const char *value, const char *const *choices, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (!strcmp(value, choices[i]))
			return (int)i;
	return -1;
}

/* tap=IFNAME or user, then [,model=virtio|e1000][,mac=MAC][,queues=N]
 * [,vhost=on|off|auto] (tap) [,hostfwd=RULE]... [,mtu=N] (user) */
static int parse_net(const char *arg, struct vm_config *cfg, FILE *err)
{
	static const char *const models[] = { [NET_MODEL_VIRTIO] = "virtio", [NET_MODEL_E1000] = "e1000" };
	static const char *const vhosts[] = { [NET_VHOST_OFF] = "off", [NET_VHOST_ON] = "on",
					      [NET_VHOST_AUTO] = "auto" };
	char buf[1024], *item, *save = NULL;
	struct net_config *nic;
	bool have_backend = false, vhost_set = false;
	int choice;

	if (start_list("--net", arg, cfg->nr_nics, CONFIG_MAX_NICS, "NICs", buf, sizeof(buf), err))
		return -1;
	nic = &cfg->nics[cfg->nr_nics];
	memset(nic, 0, sizeof(*nic));
	nic->queues = 1;
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		if (!strncmp(item, "tap=", 4) && !have_backend) {
			size_t len = strlen(item + 4);

			if (len == 0 || len >= CONFIG_IFNAMSIZ || strpbrk(item + 4, "/ \t\n:")) {
				print_error(err, "--net: '%s' is not an interface name (1 to %d characters, no '/', ':' or spaces)",
					    item + 4, CONFIG_IFNAMSIZ - 1);
				return -1;
			}
			strcpy(nic->ifname, item + 4);
			nic->backend = NET_BACKEND_TAP;
			have_backend = true;
		} else if (!strcmp(item, "user") && !have_backend) {
			nic->backend = NET_BACKEND_USER;
			have_backend = true;
		} else if (!strncmp(item, "vhost-user=", 11) && !have_backend) {
			if (copy_socket_path("--net", item + 11, nic->socket, err))
				return -1;
			nic->backend = NET_BACKEND_VHOST_USER;
			have_backend = true;
		} else if (!strncmp(item, "reconnect=", 10)) {
			if (parse_uint(item + 10, 1, CONFIG_MAX_RECONNECT, &nic->reconnect)) {
				print_error(err, "--net: '%s': reconnect must be 1 to %d seconds", item, CONFIG_MAX_RECONNECT);
				return -1;
			}
		} else if (!strncmp(item, "model=", 6)) {
			if ((choice = parse_choice(item + 6, models, 2)) < 0) {
				print_error(err, "--net: unknown model '%s' (use virtio or e1000)", item + 6);
				return -1;
			}
			nic->model = (enum net_model)choice;
		} else if (!strncmp(item, "vhost=", 6)) {
			if ((choice = parse_choice(item + 6, vhosts, 3)) < 0) {
				print_error(err, "--net: '%s': vhost must be on, off or auto", item);
				return -1;
			}
			nic->vhost = (enum net_vhost)choice;
			vhost_set = true;
		} else if (!strncmp(item, "hostfwd=", 8)) {
			if (nic->nr_hostfwds == CONFIG_MAX_HOSTFWDS) {
				print_error(err, "--net: at most %d hostfwd rules per NIC", CONFIG_MAX_HOSTFWDS);
				return -1;
			}
			if (parse_hostfwd(item + 8, &nic->hostfwds[nic->nr_hostfwds])) {
				print_error(err, "--net: '%s' is not a forwarding rule (like hostfwd=tcp:127.0.0.1:2222-:22)",
					    item);
				return -1;
			}
			nic->nr_hostfwds++;
		} else if (!strncmp(item, "mac=", 4)) {
			if (config_parse_mac(item + 4, nic->mac)) {
				print_error(err, "--net: '%s' is not a unicast MAC address (like 52:54:00:12:34:56)", item + 4);
				return -1;
			}
			nic->mac_set = true;
		} else if (!strncmp(item, "queues=", 7)) {
			if (parse_queues("--net", item, CONFIG_MAX_NET_QUEUES, &nic->queues, err))
				return -1;
		} else if (!strncmp(item, "mtu=", 4)) {
			if (parse_uint(item + 4, CONFIG_MIN_MTU, CONFIG_MAX_MTU, &nic->mtu)) {
				print_error(err, "--net: '%s': mtu must be %d to %d", item, CONFIG_MIN_MTU, CONFIG_MAX_MTU);
				return -1;
			}
		} else {
			print_error(err, "--net: unknown option '%s' (use tap=IFNAME, user or vhost-user=SOCK, model=, mac=, queues=, vhost=, hostfwd=, mtu=, reconnect=)",
				    item);
			return -1;
		}
	}
	if (!have_backend) {
		print_error(err, "--net: missing backend (use tap=IFNAME, user or vhost-user=SOCK)");
		return -1;
	}
	if (nic->backend != NET_BACKEND_USER && nic->nr_hostfwds) {
		print_error(err, "--net: hostfwd= needs the user backend");
		return -1;
	}
	if (vhost_set && (nic->backend != NET_BACKEND_TAP || nic->model != NET_MODEL_VIRTIO)) {
		print_error(err, "--net: vhost= needs tap=IFNAME and model=virtio");
		return -1;
	}
	if (nic->queues > 1 && (nic->backend == NET_BACKEND_USER || nic->model != NET_MODEL_VIRTIO)) {
		print_error(err, "--net: queues > 1 needs model=virtio on tap=IFNAME or vhost-user=SOCK");
		return -1;
	}
	if (nic->backend == NET_BACKEND_VHOST_USER && nic->model != NET_MODEL_VIRTIO) {
		print_error(err, "--net: vhost-user= needs model=virtio");
		return -1;
	}
	if (nic->reconnect && nic->backend != NET_BACKEND_VHOST_USER) {
		print_error(err, "--net: reconnect= needs vhost-user=SOCK");
		return -1;
	}
	/* The guest learns the MTU from virtio-net (VIRTIO_NET_F_MTU); Linux's
	 * e1000 driver stays at 1500 whatever the link could carry. */
	if (nic->mtu && (nic->backend != NET_BACKEND_USER || nic->model != NET_MODEL_VIRTIO)) {
		print_error(err, "--net: mtu= needs user and model=virtio");
		return -1;
	}
	if (nic->backend == NET_BACKEND_USER && !nic->mtu)
		nic->mtu = nic->model == NET_MODEL_VIRTIO ? CONFIG_MAX_MTU : 1500;
	cfg->nr_nics++;
	return 0;
}

/* PATH[,ro][,id=NAME][,queues=N] or vhost-user=SOCK[,queues=N] */
static int parse_disk(const char *arg, struct vm_config *cfg, FILE *err)
{
	struct disk_config *disk;
	char buf[4200], *save = NULL, *item;

	if (start_list("--disk", arg, cfg->nr_disks, CONFIG_MAX_DISKS, "disks", buf, sizeof(buf), err))
		return -1;
	disk = &cfg->disks[cfg->nr_disks];
	memset(disk, 0, sizeof(*disk));
	disk->queues = 1;
	item = strtok_r(buf, ",", &save);
	if (!item || arg[0] == ',') {
		print_error(err, "--disk: missing PATH");
		return -1;
	}
	if (!strncmp(item, "vhost-user=", 11)) {
		if (copy_socket_path("--disk", item + 11, disk->path, err))
			return -1;
		disk->vhost_user = true;
	} else if (copy_path(disk->path, sizeof(disk->path), "--disk", item, err)) {
		return -1;
	}
	while ((item = strtok_r(NULL, ",", &save))) {
		if (disk->vhost_user && strncmp(item, "queues=", 7)) {
			/* Read-only and the ID are the backend's to say (kvio-blkd --ro). */
			print_error(err, "--disk: '%s' does not apply to vhost-user= (only queues=N)", item);
			return -1;
		} else if (!strcmp(item, "ro")) {
			disk->read_only = true;
		} else if (!strncmp(item, "id=", 3)) {
			if (strlen(item + 3) > 20) {
				print_error(err, "--disk: id '%s' is longer than 20 bytes", item + 3);
				return -1;
			}
			strcpy(disk->id, item + 3);
		} else if (!strncmp(item, "queues=", 7)) {
			if (parse_queues("--disk", item, CONFIG_MAX_DISK_QUEUES, &disk->queues, err))
				return -1;
		} else {
			print_error(err, "--disk: unknown option '%s' (use ro, id=NAME, queues=N)", item);
			return -1;
		}
	}
	if (!disk->vhost_user && check_readable_file("--disk", disk->path, err))
		return -1;
	cfg->nr_disks++;
	return 0;
}

static enum config_status parse_run(int argc, char **argv, const char *guest_dir, struct vm_config *cfg, FILE *out,
				    FILE *err)
{
	static const struct option options[] = {
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "append", required_argument, NULL, OPT_APPEND },
		{ "memory", required_argument, NULL, OPT_MEMORY },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "rng", no_argument, NULL, OPT_RNG },
		{ "balloon", no_argument, NULL, OPT_BALLOON },
		{ "balloon-deflate-on-oom", no_argument, NULL, OPT_BALLOON_DEFLATE_ON_OOM },
		{ "disk", required_argument, NULL, OPT_DISK },
		{ "console", required_argument, NULL, OPT_CONSOLE },
		{ "net", required_argument, NULL, OPT_NET },
		{ "seccomp", required_argument, NULL, OPT_SECCOMP },
		{ "monitor", required_argument, NULL, OPT_MONITOR },
		{ "shared-memory", no_argument, NULL, OPT_SHARED_MEMORY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_kernel = false, have_initrd = false;
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (opt) {
		case OPT_KERNEL:
			if (copy_path(cfg->kernel_path, sizeof(cfg->kernel_path), "--kernel", optarg, err))
				return CONFIG_INVALID;
			have_kernel = true;
			break;
		case OPT_INITRD:
			if (copy_path(cfg->initrd_path, sizeof(cfg->initrd_path), "--initrd", optarg, err))
				return CONFIG_INVALID;
			have_initrd = true;
			break;
		case OPT_APPEND:
			cfg->append = optarg;
			break;
		case OPT_MEMORY:
			if (config_parse_size(optarg, &cfg->memory_bytes)) {
				print_error(err, "--memory: '%s' is not a size (use e.g. 512M, 2G, or MiB)", optarg);
				return CONFIG_INVALID;
			}
			if (cfg->memory_bytes < CONFIG_MIN_MEMORY || cfg->memory_bytes > CONFIG_MAX_MEMORY) {
				print_error(err, "--memory: '%s' is out of range (32M to 1T)", optarg);
				return CONFIG_INVALID;
			}
			break;
		case OPT_CPUS:
			if (parse_cpus(optarg, &cfg->cpus) || cfg->cpus > CONFIG_MAX_CPUS) {
				print_error(err, "--cpus: '%s' is not a number from 1 to %d", optarg, CONFIG_MAX_CPUS);
				return CONFIG_INVALID;
			}
			break;
		case OPT_RNG:
			cfg->rng = true;
			break;
		case OPT_BALLOON:
			cfg->balloon = true;
			break;
		case OPT_BALLOON_DEFLATE_ON_OOM:
			cfg->balloon_deflate_on_oom = true;
			break;
		case OPT_DISK:
			if (parse_disk(optarg, cfg, err))
				return CONFIG_INVALID;
			break;
		case OPT_NET:
			if (parse_net(optarg, cfg, err))
				return CONFIG_INVALID;
			break;
		case OPT_CONSOLE:
			if (strcmp(optarg, "serial") && strcmp(optarg, "virtio")) {
				print_error(err, "--console: '%s' is not serial or virtio", optarg);
				return CONFIG_INVALID;
			}
			cfg->virtio_console = !strcmp(optarg, "virtio");
			break;
		case OPT_SECCOMP: {
			static const char *const modes[] = { [SANDBOX_ON] = "on", [SANDBOX_OFF] = "off",
							     [SANDBOX_LOG] = "log" };
			int mode = parse_choice(optarg, modes, 3);

			if (mode < 0) {
				print_error(err, "--seccomp: '%s' is not on, off or log", optarg);
				return CONFIG_INVALID;
			}
			cfg->seccomp = (enum sandbox_mode)mode;
			break;
		}
		case OPT_SHARED_MEMORY:
			cfg->shared_memory = true;
			break;
		case OPT_MONITOR:
			if (strncmp(optarg, "unix:", 5) || !optarg[5] || strlen(optarg + 5) >= sizeof(cfg->monitor_path)) {
				print_error(err, "--monitor: '%s' is not unix:PATH (a path of 1 to %zu bytes)", optarg,
					    sizeof(cfg->monitor_path) - 1);
				return CONFIG_INVALID;
			}
			strcpy(cfg->monitor_path, optarg + 5);
			break;
		case 'h':
			fputs(run_usage, out);
			return CONFIG_DONE;
		case ':':
			print_error(err, "run: option '%s' needs a value", argv[optind - 1]);
			return CONFIG_INVALID;
		default:
			print_error(err, "run: unknown option '%s' (see 'kvio run --help')", argv[optind - 1]);
			return CONFIG_INVALID;
		}
	}
	if (optind < argc) {
		print_error(err, "run: unexpected argument '%s'", argv[optind]);
		return CONFIG_INVALID;
	}
	if (cfg->balloon_deflate_on_oom && !cfg->balloon) {
		print_error(err, "--balloon-deflate-on-oom: needs --balloon");
		return CONFIG_INVALID;
	}

	/* A user-supplied kernel does not silently get the default guest's initrd. */
	if (!have_kernel) {
		snprintf(cfg->kernel_path, sizeof(cfg->kernel_path), "%s/vmlinuz", guest_dir);
		if (!have_initrd)
			snprintf(cfg->initrd_path, sizeof(cfg->initrd_path), "%s/initramfs.cpio.gz", guest_dir);
	}
	if (check_readable_file("--kernel", cfg->kernel_path, err))
		return CONFIG_INVALID;
	if (cfg->initrd_path[0] && check_readable_file("--initrd", cfg->initrd_path, err))
		return CONFIG_INVALID;
	return CONFIG_RUN;
}

bool config_shares_memory(const struct vm_config *cfg)
{
	if (cfg->shared_memory)
		return true;
	for (unsigned int i = 0; i < cfg->nr_disks; i++)
		if (cfg->disks[i].vhost_user)
			return true;
	for (unsigned int i = 0; i < cfg->nr_nics; i++)
		if (cfg->nics[i].backend == NET_BACKEND_VHOST_USER)
			return true;
	return false;
}

enum config_status config_parse(int argc, char **argv, const char *guest_dir, struct vm_config *cfg, FILE *out,
				FILE *err)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->memory_bytes = CONFIG_DEFAULT_MEMORY;
	cfg->cpus = 1;

	if (argc < 2) {
		print_error(err, "missing command (see 'kvio --help')");
		return CONFIG_INVALID;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		fputs(main_usage, out);
		return CONFIG_DONE;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		fprintf(out, "kvio %s\n", KVIO_VERSION);
		return CONFIG_DONE;
	}
	if (!strcmp(argv[1], "run"))
		return parse_run(argc - 1, argv + 1, guest_dir, cfg, out, err);
	print_error(err, "unknown command '%s' (see 'kvio --help')", argv[1]);
	return CONFIG_INVALID;
}
