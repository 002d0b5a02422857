/* The maps of the BPF GRE data path, in one place. Layout and meaning: see
 * mt_gre_shared.h. The loader pins all four under
 * MT_BPF_PIN_ROOT/<instance>/ so tunnels and counters survive a restart of
 * mt-fastpath (the attached programs keep using the same maps). */
#ifndef MT_GRE_MAPS_H
#define MT_GRE_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "mt_gre_shared.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MT_GRE_TX_MAX);
	__type(key, struct mt_gre_tx_key);
	__type(value, struct mt_gre_tx_val);
} mt_gre_tx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MT_GRE_RX_MAX);
	__type(key, struct mt_gre_rx_key);
	__type(value, struct mt_gre_rx_val);
} mt_gre_rx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MT_GRE_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} mt_gre_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MT_GRE_TUN_DROPS_MAX);
	__type(key, struct mt_gre_tun_drop_key);
	__type(value, __u64);
} mt_gre_tun_drops SEC(".maps");

#endif
