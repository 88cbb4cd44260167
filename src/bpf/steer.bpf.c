// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * XDP steering program: packets of the configured UDP port that start with the
 * mpxdp invariants (8 bytes, right magic, any version) go to the AF_XDP socket
 * bound for (ifindex, rx queue);
 * everything else (ARP, ICMP, TCP, other UDP, IPv4 fragments) goes to the
 * kernel stack untouched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "mpxdp_shared.h"

/* Not in the UAPI headers (they live in include/net/ip.h). */
#define IPV4_MORE_FRAGMENTS 0x2000
#define IPV4_FRAGMENT_OFFSET 0x1fff

/* One 802.1Q / 802.1ad tag after the Ethernet addresses. */
struct vlan_tag {
	__be16 tci;
	__be16 encapsulated_proto;
};

/* UDP destination port of multipath traffic, network byte order. Set by the loader before load. */
const volatile __be16 steer_udp_port = __bpf_constant_htons(MPXDP_DEFAULT_PORT);
/*
 * Where the arrival stamp goes (enum mpxdp_stamp_mode). Set by the loader
 * before load: the verifier skips the branches of the other modes, so a kernel
 * that refuses one helper still loads the program built for another.
 */
const volatile __u32 stamp_mode = MPXDP_STAMP_META;

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MPXDP_MAX_SOCKETS);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/* (ifindex, queue) -> index into xsks. One queue per veth makes the queue alone ambiguous. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MPXDP_MAX_SOCKETS);
	__type(key, struct mpxdp_slot_key);
	__type(value, __u32);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mpxdp_counters);
} counters SEC(".maps");

/* Returns the UDP header of an unfragmented IPv4/IPv6 UDP packet, or NULL for anything else. */
static __always_inline struct udphdr *find_udp(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct udphdr *udp;
	void *cursor;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return NULL;
	proto = eth->h_proto;
	cursor = eth + 1;

	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_tag *tag = cursor;

		if ((void *)(tag + 1) > data_end)
			return NULL;
		proto = tag->encapsulated_proto;
		cursor = tag + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = cursor;

		if ((void *)(iph + 1) > data_end)
			return NULL;
		if (iph->version != 4 || iph->ihl < 5)
			return NULL;
		/* Only the first fragment has the UDP header; reassembly is the stack's job. */
		if (iph->frag_off & bpf_htons(IPV4_MORE_FRAGMENTS | IPV4_FRAGMENT_OFFSET))
			return NULL;
		if (iph->protocol != IPPROTO_UDP)
			return NULL;
		cursor = (void *)iph + iph->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = cursor;

		if ((void *)(ip6h + 1) > data_end)
			return NULL;
		if (ip6h->version != 6 || ip6h->nexthdr != IPPROTO_UDP)
			return NULL;
		cursor = ip6h + 1;
	} else {
		return NULL;
	}

	udp = cursor;
	if ((void *)(udp + 1) > data_end)
		return NULL;
	return udp;
}

/*
 * Ours when the version-independent invariants (the first 8 bytes: magic,
 * version, flags, conn_id) are there with the right magic, whatever the
 * version: user space answers versions it does not speak with version
 * negotiation, and parses (and bounds-checks) the rest.
 */
static __always_inline int mpxdp_invariants_valid(struct udphdr *udp, void *data_end)
{
	struct mpxdp_invariants *mp = (void *)(udp + 1);

	if ((void *)(mp + 1) > data_end)
		return 0;
	/* The frame may carry Ethernet padding: the UDP length is what the sender wrote. */
	if (bpf_ntohs(udp->len) < sizeof(*udp) + sizeof(*mp))
		return 0;
	return mp->magic == bpf_htons(MPXDP_MAGIC);
}

static __always_inline void write_stamp(struct mpxdp_rx_meta *meta)
{
	meta->rx_ns = bpf_ktime_get_ns();
	meta->magic = MPXDP_RX_META_MAGIC;
	meta->reserved = 0;
}

/*
 * The arrival time, for the receiver's delivery-rate and delay samples: user
 * space reads a batch long after its first packets came in. Best effort: a
 * driver without metadata support leaves the packet as it is. Returns 1 when
 * the stamp was put in front of the frame (PREPEND), which must be taken off
 * again if the packet goes to the kernel after all.
 */
static __always_inline int stamp_arrival(struct xdp_md *ctx)
{
	struct mpxdp_rx_meta *meta;

	/* Each branch reads ctx on its own: the verifier refuses a ctx pointer that clang computed. */
	if (stamp_mode == MPXDP_STAMP_META) {
		if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta)))
			return 0;
		meta = (void *)(long)ctx->data_meta;
		if ((void *)(meta + 1) <= (void *)(long)ctx->data)
			write_stamp(meta);
		return 0;
	}
	if (stamp_mode == MPXDP_STAMP_PREPEND) {
		if (bpf_xdp_adjust_head(ctx, -(int)sizeof(*meta)))
			return 0;
		meta = (void *)(long)ctx->data;
		if ((void *)(meta + 1) <= (void *)(long)ctx->data_end)
			write_stamp(meta);
		return 1;
	}
	return 0;
}

SEC("xdp")
int xdp_steer(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct mpxdp_slot_key key = {};
	struct mpxdp_counters *cnt;
	struct udphdr *udp;
	__u32 zero = 0;
	__u32 *slot;
	int prepended;
	int action;

	cnt = bpf_map_lookup_elem(&counters, &zero);
	if (!cnt)
		return XDP_PASS;

	udp = find_udp(data, data_end);
	if (!udp || udp->dest != steer_udp_port) {
		cnt->passed++;
		return XDP_PASS;
	}
	if (!mpxdp_invariants_valid(udp, data_end)) {
		cnt->malformed++;
		return XDP_PASS;
	}

	key.ifindex = ctx->ingress_ifindex;
	key.queue = ctx->rx_queue_index;
	slot = bpf_map_lookup_elem(&slots, &key);
	if (!slot) {
		cnt->no_socket++;
		return XDP_PASS;
	}
	prepended = stamp_arrival(ctx);
	/* The low bits of flags are the action when the XSKMAP slot is empty. */
	action = bpf_redirect_map(&xsks, *slot, XDP_PASS);
	if (action == XDP_REDIRECT) {
		cnt->redirected++;
		return action;
	}
	cnt->no_socket++;
	/* The kernel gets the frame as it came. */
	if (prepended && bpf_xdp_adjust_head(ctx, (int)sizeof(struct mpxdp_rx_meta)))
		return XDP_DROP;
	return action;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
