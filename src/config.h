/* The command line turned into a validated struct vm_config. No KVM here:
 * everything a user can get wrong on the command line is caught before a VM exists. */
#ifndef KVIO_CONFIG_H
#define KVIO_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define KVIO_VERSION "0.1.0"

#define CONFIG_DEFAULT_MEMORY (256ULL << 20)
#define CONFIG_MIN_MEMORY (32ULL << 20)
#define CONFIG_MAX_MEMORY (1ULL << 40)
/* xAPIC IDs are 8 bits and 0xFF is the broadcast ID. */
#define CONFIG_MAX_CPUS 254

#define CONFIG_MAX_DISKS 8
#define CONFIG_MAX_DISK_QUEUES 16

#define CONFIG_SOCKET_PATH_MAX 108  /* sun_path, NUL included */
#define CONFIG_MAX_RECONNECT 3600
/* User networking's link MTU: at most libslirp's limit less one, and by
 * default that with virtio (as slirp4netns and QEMU's passt backend use: a
 * TCP segment per 64 KiB frame, not per 1.5 KiB); IPv4's minimum at least. */
#define CONFIG_MIN_MTU 68
#define CONFIG_MAX_MTU 65520

struct disk_config {
	char path[4096];         /* the image, or with vhost_user the backend's socket */
	bool vhost_user;         /* vhost-user=SOCK: a vhost-user-blk backend serves it */
	bool read_only;
	char id[21];             /* up to the 20 bytes virtio-blk's GET_ID returns */
	unsigned int queues;
};

#define CONFIG_MAX_NICS 4
#define CONFIG_MAX_NET_QUEUES 8
#define CONFIG_IFNAMSIZ 16

#define CONFIG_MAX_HOSTFWDS 8

enum net_backend_kind { NET_BACKEND_TAP, NET_BACKEND_USER, NET_BACKEND_VHOST_USER };
enum net_model { NET_MODEL_VIRTIO, NET_MODEL_E1000 };
enum net_vhost { NET_VHOST_OFF, NET_VHOST_ON, NET_VHOST_AUTO };

/* hostfwd=tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT (user networking);
 * addresses in network byte order, 0 for the defaults. */
struct net_hostfwd {
	bool udp;
	uint32_t host_addr, guest_addr;
	uint16_t host_port, guest_port;
};

struct net_config {
	enum net_backend_kind backend;
	enum net_model model;
	enum net_vhost vhost;          /* tap only: data path in the host kernel */
	char ifname[CONFIG_IFNAMSIZ];  /* tap=IFNAME */
	char socket[CONFIG_SOCKET_PATH_MAX];  /* vhost-user=SOCK */
	unsigned int reconnect;        /* vhost-user: seconds between reconnects, 0: none */
	uint8_t mac[6];
	bool mac_set;                  /* mac= given; else a stable default per NIC */
	unsigned int queues;           /* queue pairs */
	unsigned int mtu;              /* user: the link's MTU; 0 until parsed, then set */
	struct net_hostfwd hostfwds[CONFIG_MAX_HOSTFWDS];
	unsigned int nr_hostfwds;
};

/* --seccomp: the syscall filter kvio runs under once the VM is set up. */
enum sandbox_mode { SANDBOX_ON = 0, SANDBOX_OFF, SANDBOX_LOG };

struct vm_config {
	char kernel_path[4096];
	char initrd_path[4096];  /* empty: no initrd */
	const char *append;      /* extra kernel command line, may be NULL */
	uint64_t memory_bytes;
	unsigned int cpus;
	bool rng;                /* --rng: a virtio-rng device */
	bool virtio_console;     /* --console virtio: the guest console is hvc0 */
	bool balloon;            /* --balloon: a virtio-balloon device */
	bool balloon_deflate_on_oom;  /* --balloon-deflate-on-oom: offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM */
	struct disk_config disks[CONFIG_MAX_DISKS];
	unsigned int nr_disks;
	struct net_config nics[CONFIG_MAX_NICS];
	unsigned int nr_nics;
	enum sandbox_mode seccomp;  /* default on */
	char monitor_path[CONFIG_SOCKET_PATH_MAX];  /* --monitor unix:PATH; empty: no QMP socket */
	bool shared_memory;      /* --shared-memory: guest RAM in a memfd even without vhost-user */
};

enum config_status {
	CONFIG_RUN,       /* cfg is filled in: boot the VM */
	CONFIG_DONE,      /* help or version printed: exit 0 */
	CONFIG_INVALID,   /* one-line error printed: exit 2 */
};

/* Parse argv (argv[0] is the program). guest_dir holds the default guest's
 * vmlinuz and initramfs.cpio.gz. Help and version go to out, errors to err. */
enum config_status config_parse(int argc, char **argv, const char *guest_dir, struct vm_config *cfg, FILE *out,
				FILE *err);

/* True if guest RAM must be a memfd: --shared-memory, or a vhost-user backend maps it. */
bool config_shares_memory(const struct vm_config *cfg);

/* "512M", "2G", "1T", "65536K" or plain MiB ("512"). Returns 0, or -1 if s is
 * not a size or not a whole number of MiB. */
int config_parse_size(const char *s, uint64_t *bytes);

/* "52:54:00:12:34:56": six hex bytes. Returns 0, or -1 if s is not a unicast MAC. */
int config_parse_mac(const char *s, uint8_t mac[6]);

#endif
