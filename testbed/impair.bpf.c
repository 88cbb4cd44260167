// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Test bed impairment: on the ingress of a middle veth of a link, drop every
 * frame while the link is down, or a random share of frames (loss). Frames
 * are never looked at, so any protocol (ARP too) is treated alike.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "impair_shared.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mpxdp_impair_config);
} impair_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mpxdp_impair_counters);
} impair_counters SEC(".maps");

/* xdp.frags: frames larger than a page (MTU up to 9000) are accepted too. */
SEC("xdp.frags")
int xdp_impair(struct xdp_md *ctx)
{
	struct mpxdp_impair_counters *counters;
	struct mpxdp_impair_config *config;
	__u32 key = 0;

	config = bpf_map_lookup_elem(&impair_config, &key);
	counters = bpf_map_lookup_elem(&impair_counters, &key);
	if (!config || !counters)
		return XDP_PASS;
	if (config->down) {
		counters->down_dropped++;
		return XDP_DROP;
	}
	if (config->loss_threshold &&
	    (config->loss_threshold == 0xffffffff || bpf_get_prandom_u32() < config->loss_threshold)) {
		counters->lost++;
		return XDP_DROP;
	}
	counters->passed++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
