/* The vhost-user message codec, shared by kvio's frontend and the backends in
 * tools/: message layouts, sending and receiving them with their file
 * descriptors over a UNIX stream socket, and the checks every received
 * message passes before anyone looks at it. The layouts follow QEMU's
 * docs/interop/vhost-user.rst ("Message Specification"); where a payload is a
 * kernel vhost struct (vring state, vring address) the UAPI one is used. */
#ifndef KVIO_VHOST_VHOST_USER_H
#define KVIO_VHOST_VHOST_USER_H

#include <linux/vhost_types.h>
#include <stdbool.h>
#include <stdint.h>

/* Spec "Communication": the UNUSED virtio feature bit 30 says the backend
 * understands GET/SET_PROTOCOL_FEATURES. Not in the UAPI headers. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

/* Spec "Protocol features": the bits kvio knows by name. */
#define VHOST_USER_PROTOCOL_F_MQ 0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD 1
#define VHOST_USER_PROTOCOL_F_RARP 2
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_MTU 4
#define VHOST_USER_PROTOCOL_F_CONFIG 9
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15

/* Spec "Front-end message types": request ids. */
enum vhost_user_request {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_SEND_RARP = 19,
	VHOST_USER_NET_SET_MTU = 20,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_GET_MAX_MEM_SLOTS = 36,
	VHOST_USER_ADD_MEM_REG = 37,
	VHOST_USER_REM_MEM_REG = 38,
	VHOST_USER_REQUEST_MAX = 39,  /* one past the highest id this codec knows */
};

/* Spec "Header": flags. The low two bits are the protocol version. */
#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_FLAG_REPLY (1u << 2)
#define VHOST_USER_FLAG_NEED_REPLY (1u << 3)

/* Spec SET_VRING_KICK/CALL/ERR: the u64 holds the ring index in bits 0-7 and,
 * in bit 8, "no fd attached: poll instead". */
#define VHOST_USER_VRING_INDEX_MASK 0xffu
#define VHOST_USER_VRING_NOFD (1u << 8)

/* Spec "Memory regions description": at most 8 regions, one fd each. */
#define VHOST_USER_MAX_REGIONS 8
/* No message carries more fds than a full memory table. */
#define VHOST_USER_MAX_FDS VHOST_USER_MAX_REGIONS
/* Spec "Virtio device config space": the payload bytes one message carries. */
#define VHOST_USER_CONFIG_MAX 256

struct vhost_user_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;  /* payload bytes that follow */
};

/* Spec "Memory regions description", one region: the fd of its index in the
 * message's ancillary data maps it from mmap_offset on. */
struct vhost_user_mem_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;  /* where the frontend has it mapped: ring addresses use these */
	uint64_t mmap_offset;
};

struct vhost_user_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_mem_region regions[VHOST_USER_MAX_REGIONS];
};

/* Spec "Single memory region description" (ADD_MEM_REG, REM_MEM_REG). */
struct vhost_user_mem_single {
	uint64_t padding;
	struct vhost_user_mem_region region;
};

/* Spec "Log description" (SET_LOG_BASE with LOG_SHMFD). */
struct vhost_user_log {
	uint64_t mmap_size;
	uint64_t mmap_offset;
};

/* Spec "Virtio device config space" (GET_CONFIG, SET_CONFIG). */
struct vhost_user_config {
	uint32_t offset;
	uint32_t size;  /* bytes of payload[] in use */
	uint32_t flags;
	uint8_t payload[VHOST_USER_CONFIG_MAX];
};
#define VHOST_USER_CONFIG_HDR_SIZE 12u

/* One message. On the wire the payload follows the 12-byte header directly;
 * here they are kept apart (no packed struct) and sent as two iovecs. */
struct vhost_user_msg {
	struct vhost_user_hdr hdr;
	union {
		uint64_t u64;
		struct vhost_vring_state state;
		struct vhost_vring_addr addr;
		struct vhost_user_mem_table mem;
		struct vhost_user_mem_single mem_reg;
		struct vhost_user_log log;
		struct vhost_user_config config;
	} payload;
};
#define VHOST_USER_PAYLOAD_MAX sizeof(((struct vhost_user_msg *)0)->payload)

/* The request's name for log lines ("GET_FEATURES"), or "unknown". */
const char *vhost_user_request_name(uint32_t request);

/* How long the rest of a message may take once it has begun, on a
 * non-blocking socket (or one with SO_RCVTIMEO/SO_SNDTIMEO): a peer that
 * stalls or trickles bytes cannot hold up the other side for longer. */
#define VHOST_USER_IO_TIMEOUT_MS 1000

/* Send msg (hdr.size payload bytes) with nfds (at most VHOST_USER_MAX_FDS)
 * descriptors attached. Returns 0 or -errno (-ETIMEDOUT: the peer stopped
 * reading); never raises SIGPIPE. */
int vhost_user_send(int sock, const struct vhost_user_msg *msg, const int *fds, unsigned int nfds);

/* Receive one message and its descriptors (fds must hold VHOST_USER_MAX_FDS;
 * they arrive close-on-exec) and check it with vhost_user_msg_check. Returns
 * 0, or -errno with *why set and no received descriptor left open:
 *  -EAGAIN      nothing waiting on a non-blocking socket (nothing consumed)
 *  -ECONNRESET  the peer closed the connection between messages
 *  -EPROTO      a malformed message, or one cut short by the peer closing;
 *               a refused message may be partly unread, so the stream is out
 *               of step and the caller closes the connection
 *  -ETIMEDOUT   the peer stalled mid-message (VHOST_USER_IO_TIMEOUT_MS)
 *  other        the socket's own error. */
int vhost_user_recv(int sock, struct vhost_user_msg *msg, int *fds, unsigned int *nfds, const char **why);

/* The checks vhost_user_recv makes, as a pure function: version and flag
 * bits, payload size for the request (or for the reply, if REPLY is set), and
 * how many fds the request must carry. Returns 0 or -EPROTO with *why set. */
int vhost_user_msg_check(const struct vhost_user_msg *msg, unsigned int nfds, const char **why);

/* A memory table the backend could map safely: 1..8 regions, none empty, no
 * sum that overflows, no two regions overlapping in guest-physical space (nor
 * in the frontend's address space, so user addresses translate one way).
 * Returns 0 or -EINVAL with *why set. */
int vhost_user_mem_table_check(const struct vhost_user_mem_table *table, const char **why);

#endif
