/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Structures shared by the XDP program and the C++ library. This is the only
 * definition of each layout: the BPF side and the C++ side both include it.
 */
#ifndef MPXDP_SHARED_H
#define MPXDP_SHARED_H

/* Kernel-style names on purpose: this header is C shared with BPF. */
/* NOLINTBEGIN(readability-identifier-naming) */

#include <linux/types.h>

#ifdef __cplusplus
#define MPXDP_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define MPXDP_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* "MX" in network byte order at the start of every multipath header. */
#define MPXDP_MAGIC 0x4d58
#define MPXDP_VERSION 1
#define MPXDP_DEFAULT_PORT 47000

/* Size of the XSKMAP: one slot per (ifindex, queue) bound socket. */
#define MPXDP_MAX_SOCKETS 256

/*
 * Multipath header v1, right after the UDP header. All fields are in network
 * byte order. See docs/wire-format.md.
 */
struct mpxdp_hdr {
	__be16 magic;       /* MPXDP_MAGIC */
	__u8 version;       /* MPXDP_VERSION */
	__u8 flags;         /* MPXDP_FLAG_* */
	__be32 conn_id;     /* connection id chosen by the sender */
	__be16 path_id;     /* index of the link the packet was sent on */
	__be16 payload_len; /* bytes of payload after this header */
	__be32 path_seq;    /* per-path sequence number */
	__be64 global_seq;  /* connection-wide sequence number */
	__be64 send_ts_ns;  /* sender's CLOCK_MONOTONIC at transmit, ns */
};

#define MPXDP_HDR_LEN 32
MPXDP_STATIC_ASSERT(sizeof(struct mpxdp_hdr) == MPXDP_HDR_LEN, "mpxdp_hdr is 32 bytes on the wire");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr, conn_id) == 4, "conn_id offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr, path_id) == 8, "path_id offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr, payload_len) == 10, "payload_len offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr, path_seq) == 12, "path_seq offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr, global_seq) == 16, "global_seq offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr, send_ts_ns) == 24, "send_ts_ns offset");

/* Header flags. */
#define MPXDP_FLAG_END 0x01     /* last packet of the stream (end marker) */
#define MPXDP_FLAG_CONTROL 0x02 /* payload is a control message, not data */

/* Key of the slot map: which XSKMAP slot serves (ifindex, queue). */
struct mpxdp_slot_key {
	__u32 ifindex;
	__u32 queue;
};
MPXDP_STATIC_ASSERT(sizeof(struct mpxdp_slot_key) == 8, "slot key has no padding");

/* Per-CPU counters of the steering program, one array element. */
struct mpxdp_counters {
	__u64 redirected; /* handed to an AF_XDP socket */
	__u64 passed;     /* not ours: given to the kernel stack */
	__u64 malformed;  /* port matched, multipath header bad or truncated */
	__u64 no_socket;  /* ours, but no socket bound for (ifindex, queue) */
};
MPXDP_STATIC_ASSERT(sizeof(struct mpxdp_counters) == 32, "counters layout");

/* NOLINTEND(readability-identifier-naming) */

#endif /* MPXDP_SHARED_H */
