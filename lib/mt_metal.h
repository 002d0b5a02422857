/* The metal's resolved settings (defaults applied, prefixes parsed) and the
 * naming scheme that derives every owned kernel object's name from them.
 *
 * Ownership marks, in one place so the agent (which plans) and the fastpath
 * (which refuses what it does not own) agree:
 *   - namespaces and metal-side interfaces named prefix + customer name,
 *     prefix = "mt" + instance + "-";
 *   - routes with protocol MT_RTPROT;
 *   - ip rules with priority in [rule_priority, rule_priority + MT_RULE_RANGE);
 *   - nft tables named prefix + "...";
 *   - BPF pins under MT_BPF_PIN_ROOT/<instance>/.
 */
#ifndef MT_METAL_H
#define MT_METAL_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.pb-c.h"
#include "mt_prefix.h"

#define MT_RTPROT 77          /* route protocol id owned by mt */
#define MT_RTN_BLACKHOLE 6    /* RTN_BLACKHOLE, for proto kernel.Route.type */
/* The metric of the last-resort blackhole routes for a customer's own
 * prefixes inside its namespace: above any tunnel route and its health
 * penalties. */
#define MT_LAST_RESORT_METRIC 0x7fffffffu
#define MT_RULE_RANGE 100     /* ip rule priorities owned: [base, base+100) */
#define MT_INSTANCE_MAX 4
#define MT_CUSTOMER_ID_MAX 32767
#define MT_CUST_VETH "metal0" /* the veth end inside a customer namespace */
#define MT_GRE_OVERHEAD 24    /* outer IPv4 + GRE header without key */
#define MT_GRE_KEY_LEN 4      /* extra with a GRE key */
#define MT_TUNNEL_NAME_MAX 12 /* leaves room for the wire-side suffix */
#define MT_TUNNEL_DEFAULT_TTL 64
#define MT_TUNNEL_DEFAULT_MTU 1476
#define MT_TUNNEL_MIN_MTU 576
#define MT_ROUTE_PRIORITY_MAX 1000000000u /* room for health penalties */
#define MT_BPF_PIN_ROOT "/run/mt/bpf"
#define MT_RUN_DIR "/run/mt"

struct mt_metal {
	char instance[MT_INSTANCE_MAX + 1];
	char prefix[MT_INSTANCE_MAX + 4];  /* "mt" + instance + "-" */
	char mark_table[IFNAMSIZ + 8];     /* prefix + "mark" */
	/* mt's nft table (family inet) inside every customer namespace: the
	 * tunnels' MSS clamps, later the customer's firewall. */
	char cust_nft_table[IFNAMSIZ + 8]; /* prefix + "cust" */
	struct mt_prefix *own;             /* the metal's own prefixes */
	size_t n_own;
	struct mt_prefix link_pool;        /* IPv4 pool for veth /31s */
	uint32_t gre_table;
	uint32_t cust_table;
	uint32_t cust_table_alt;
	uint32_t fwmark;
	uint32_t fwmark_mask;
	uint32_t rule_priority;
	uint32_t reconcile_interval_s;
	uint32_t uplink_mtu;
};

/* Resolves a Metal message (NULL = all defaults). Returns 0, or -EINVAL with
 * the offending field named in err. m must be released with mt_metal_fini. */
int mt_metal_init(struct mt_metal *m, const Mt__Config__Metal *pb, char *err,
		  size_t errlen);
void mt_metal_fini(struct mt_metal *m);

/* Longest customer name that still fits an interface name. */
size_t mt_metal_name_max(const struct mt_metal *m);

/* prefix + customer name: the customer's namespace and its metal-side veth. */
int mt_metal_ifname(const struct mt_metal *m, const char *customer,
		    char *buf, size_t len);

/* The customer name inside an owned namespace or interface name, or NULL when
 * the name does not carry this instance's prefix. */
const char *mt_metal_owner(const struct mt_metal *m, const char *name);

/* The veth transfer /31 of a customer: metal side is the even address,
 * customer side the odd one. Returns -ERANGE when id does not fit the pool. */
int mt_metal_link_addrs(const struct mt_metal *m, uint32_t id,
			struct mt_prefix *metal_side,
			struct mt_prefix *customer_side);

/* Highest customer id the link pool can hold. */
uint32_t mt_metal_max_customer_id(const struct mt_metal *m);

/* True when p overlaps one of the metal's own prefixes or its link pool. */
bool mt_metal_owns_address(const struct mt_metal *m,
			   const struct mt_prefix *p);

#endif
