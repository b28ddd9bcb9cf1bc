/* The core of kvio-switch: a learning Ethernet switch whose ports are
 * vhost-user-net devices (src/vhost/vhost_user_backend.h), plus an optional
 * uplink (any struct net_backend; kvio-switch uses a tap). Everything runs
 * on one epoll loop the switch owns; main() (tools/kvio-switch.c) only adds
 * listening sockets and its signals, and tests drive the loop with
 * vswitch_poll() over socketpairs. */
#ifndef KVIO_TOOLS_SWITCH_H
#define KVIO_TOOLS_SWITCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "backend/net.h"
#include "util/event_loop.h"

#define VSWITCH_MAX_PORTS 64
/* vhost-user-net queue numbering: one queue pair, receive first. */
#define VSWITCH_RXQ 0
#define VSWITCH_TXQ 1

/* Per port, from the point of view of what is attached to it: rx = frames
 * the switch handed it (each segment of a frame segmented for it counts),
 * tx = frames it sent into the switch, drops = frames meant for it that it
 * had no room for (a segmented one once) or that it sent malformed.
 * Of those: invalid = the malformed ones it sent (runts, giants, headers
 * refused), csum_sw = frames handed to it with a checksum the switch
 * finished, segmented = GSO frames handed to it as TCP segments, because it
 * did not negotiate their offloads. */
struct vswitch_counters {
	uint64_t rx_frames, rx_bytes;
	uint64_t tx_frames, tx_bytes;
	uint64_t drops;
	uint64_t invalid;
	uint64_t csum_sw, segmented;
};

struct vswitch;

struct vswitch *vswitch_new(unsigned int nports);
/* Disconnect every frontend, close the listening sockets and the uplink. */
void vswitch_free(struct vswitch *sw);

/* The loop the switch runs on, for the caller's own handlers (signals). */
struct event_loop *vswitch_loop(struct vswitch *sw);
/* Wait up to timeout_ms (-1: forever) and handle what is ready. Returns the
 * number of events handled or -errno. */
int vswitch_poll(struct vswitch *sw, int timeout_ms);

/* Accept frontends for port on listen_fd (non-blocking; owned from here on),
 * one at a time: while one is connected, the next waits in the backlog. */
int vswitch_listen(struct vswitch *sw, unsigned int port, int listen_fd);
/* Attach an already-connected frontend (owned from here on). -EBUSY if the port has one. */
int vswitch_connect(struct vswitch *sw, unsigned int port, int sock);
bool vswitch_connected(const struct vswitch *sw, unsigned int port);
void vswitch_disconnect(struct vswitch *sw, unsigned int port);

/* Flooded and unknown frames also go to the uplink, whose frames enter like
 * a port's (owned from here on; one queue pair; frames carry the 12-byte
 * header). Offloaded frames go to it as they are when its offloads field has
 * CSUM and HOST_TSO4/6/ECN, and it is asked for offloaded frames with its
 * GUEST_* bits through set_guest_offloads (a tap: TUNSETOFFLOAD). */
int vswitch_set_uplink(struct vswitch *sw, struct net_backend *uplink);

/* Counters of port 0..nports-1, or of the uplink as port nports. */
const struct vswitch_counters *vswitch_counters(const struct vswitch *sw, unsigned int port);
void vswitch_print_counters(const struct vswitch *sw, FILE *out);

#endif
