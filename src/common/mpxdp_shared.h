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

/* "MX" in network byte order at the start of every mpxdp packet, any version. */
#define MPXDP_MAGIC 0x4d58
/* Wire format version this code speaks (docs/wire-format.md). */
#define MPXDP_WIRE_VERSION 2
/* The previous format, still used by the legacy sender/receiver until they go. */
#define MPXDP_WIRE_VERSION_V1 1
/* Version byte of a version negotiation packet. */
#define MPXDP_WIRE_VERSION_NEGOTIATION 0
#define MPXDP_DEFAULT_PORT 47000

/* Size of the XSKMAP: one slot per (ifindex, queue) bound socket. */
#define MPXDP_MAX_SOCKETS 256

/*
 * The version-independent invariants: the first 8 bytes of every mpxdp
 * packet of every version. This is all the XDP program looks at.
 */
struct mpxdp_invariants {
	__be16 magic;   /* MPXDP_MAGIC */
	__u8 version;   /* MPXDP_WIRE_VERSION, or 0 for version negotiation */
	__u8 flags;     /* v2: MPXDP_HDR_FLAG_* (0 unkeyed) */
	__be32 conn_id; /* chosen by the connecting side, never 0 */
};

#define MPXDP_INVARIANTS_LEN 8
MPXDP_STATIC_ASSERT(sizeof(struct mpxdp_invariants) == MPXDP_INVARIANTS_LEN, "invariants are 8 bytes");

/*
 * Packet header v2, right after the UDP header, followed by frames. All fields
 * are in network byte order. Packed: packet_number sits at offset 12, and
 * packet memory has no alignment guarantee anyway. See docs/wire-format.md.
 */
struct mpxdp_hdr {
	__be16 magic;         /* MPXDP_MAGIC */
	__u8 version;         /* MPXDP_WIRE_VERSION */
	__u8 flags;           /* MPXDP_HDR_FLAG_* (0 on an unkeyed connection) */
	__be32 conn_id;       /* chosen by the connecting side, never 0 */
	__be16 path_id;       /* index of the path the packet is sent on */
	__be16 reserved;      /* sent 0, ignored */
	__be64 packet_number; /* per path and direction, +1 for every packet */
	__be64 send_ts_ns;    /* sender's CLOCK_MONOTONIC at transmit, ns */
} __attribute__((packed));

#define MPXDP_HDR_LEN 28

/* Packet header v2 flags (issue 11, docs/wire-format.md "Protected packets"). */
#define MPXDP_HDR_FLAG_PROTECTED 0x01 /* session-key AEAD: frames sealed, tag after them */
#define MPXDP_HDR_FLAG_HANDSHAKE 0x02 /* pre-shared-key AEAD: tag and a 32-byte random after the frames */
#define MPXDP_HDR_FLAG_KEY_PHASE 0x04 /* session key phase (key update) */
MPXDP_STATIC_ASSERT(sizeof(struct mpxdp_hdr) == MPXDP_HDR_LEN, "mpxdp_hdr is 28 bytes on the wire");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr, version) == 2, "version offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr, flags) == 3, "flags offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr, conn_id) == 4, "conn_id offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr, path_id) == 8, "path_id offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr, reserved) == 10, "reserved offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr, packet_number) == 12, "packet_number offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr, send_ts_ns) == 20, "send_ts_ns offset");

/*
 * Multipath header v1 (legacy sender/receiver only; goes with them). All
 * fields are in network byte order.
 */
struct mpxdp_hdr_v1 {
	__be16 magic;       /* MPXDP_MAGIC */
	__u8 version;       /* MPXDP_WIRE_VERSION_V1 */
	__u8 flags;         /* MPXDP_FLAG_* */
	__be32 conn_id;     /* connection id chosen by the sender */
	__be16 path_id;     /* index of the link the packet was sent on */
	__be16 payload_len; /* bytes of payload after this header */
	__be32 path_seq;    /* per-path sequence number */
	__be64 global_seq;  /* connection-wide sequence number */
	__be64 send_ts_ns;  /* sender's CLOCK_MONOTONIC at transmit, ns */
};

#define MPXDP_HDR_LEN_V1 32
MPXDP_STATIC_ASSERT(sizeof(struct mpxdp_hdr_v1) == MPXDP_HDR_LEN_V1, "mpxdp_hdr_v1 is 32 bytes on the wire");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr_v1, conn_id) == 4, "conn_id offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr_v1, path_id) == 8, "path_id offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr_v1, payload_len) == 10, "payload_len offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr_v1, path_seq) == 12, "path_seq offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr_v1, global_seq) == 16, "global_seq offset");
MPXDP_STATIC_ASSERT(__builtin_offsetof(struct mpxdp_hdr_v1, send_ts_ns) == 24, "send_ts_ns offset");

/* v1 header flags. */
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
	__u64 malformed;  /* port matched, first 8 bytes missing or bad magic */
	__u64 no_socket;  /* ours, but no socket bound for (ifindex, queue) */
};
MPXDP_STATIC_ASSERT(sizeof(struct mpxdp_counters) == 32, "counters layout");

/*
 * The arrival stamp the steering program puts in front of every packet it
 * redirects: when the packet reached XDP. User space reads it just before the
 * frame's data in the UMEM frame and clears the magic; a frame without it is
 * stamped when user space reads it, as before. Where it goes (set before load):
 * - META: as XDP metadata (copy mode copies metadata too);
 * - PREPEND: in front of the frame itself (bpf_xdp_adjust_head), for kernels
 *   that refuse bpf_xdp_adjust_meta to XDP programs (seen on 6.18 builds); the
 *   socket's descriptor then starts at the stamp and user space skips it;
 * - NONE: no stamp.
 */
enum mpxdp_stamp_mode {
	MPXDP_STAMP_NONE = 0,
	MPXDP_STAMP_META = 1,
	MPXDP_STAMP_PREPEND = 2,
};

#define MPXDP_RX_META_MAGIC 0x6d707872 /* "mpxr" */
struct mpxdp_rx_meta {
	__u64 rx_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) at the XDP hook */
	__u32 magic; /* MPXDP_RX_META_MAGIC */
	__u32 reserved;
};
MPXDP_STATIC_ASSERT(sizeof(struct mpxdp_rx_meta) == 16, "rx metadata is 16 bytes (a multiple of 4, at most 32)");

/* NOLINTEND(readability-identifier-naming) */

#endif /* MPXDP_SHARED_H */
