/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Layouts shared by the test bed's impairment XDP program (impair.bpf.c) and
 * its loader (impair.cpp). The only definition of each: both sides include it.
 */
#ifndef MPXDP_IMPAIR_SHARED_H
#define MPXDP_IMPAIR_SHARED_H

/* Kernel-style names on purpose: this header is C shared with BPF. */
/* NOLINTBEGIN(readability-identifier-naming) */

#include <linux/types.h>

#ifdef __cplusplus
#define MPXDP_IMPAIR_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define MPXDP_IMPAIR_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* Loss is kept in parts per million of frames: 1 % is 10000. */
#define MPXDP_IMPAIR_PPM 1000000

/* Entry 0 of the program's BPF_MAP_TYPE_ARRAY: how this device's ingress is impaired. */
struct mpxdp_impair_config {
  /* Drop when bpf_get_prandom_u32() < loss_threshold; 0: no loss. */
  __u32 loss_threshold;
  /* What was asked for, for reading back (loss_threshold is derived from it). */
  __u32 loss_ppm;
  /* Non-zero: drop every frame (the link is down). */
  __u32 down;
  __u32 reserved;
};

MPXDP_IMPAIR_STATIC_ASSERT(sizeof(struct mpxdp_impair_config) == 16, "impair config is 16 bytes");

/* Entry 0 of the program's BPF_MAP_TYPE_PERCPU_ARRAY, summed over CPUs by the reader. */
struct mpxdp_impair_counters {
  __u64 passed;
  __u64 lost;         /* dropped by random loss */
  __u64 down_dropped; /* dropped while the link was down */
};

MPXDP_IMPAIR_STATIC_ASSERT(sizeof(struct mpxdp_impair_counters) == 24, "impair counters are 24 bytes");

/* NOLINTEND(readability-identifier-naming) */

#endif /* MPXDP_IMPAIR_SHARED_H */
