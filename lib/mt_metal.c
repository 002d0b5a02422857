#include "mt_metal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_INSTANCE "0"
#define DEFAULT_LINK_POOL "169.254.0.0/16"
#define DEFAULT_GRE_TABLE 2000
#define DEFAULT_CUST_TABLE 2001
#define DEFAULT_CUST_TABLE_ALT 2002
#define DEFAULT_FWMARK 0x4d540000u
#define DEFAULT_FWMARK_MASK 0xffff0000u
#define DEFAULT_RULE_PRIORITY 1000
#define DEFAULT_RECONCILE_INTERVAL_S 30

static bool valid_instance(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MT_INSTANCE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

static bool reserved_table(uint32_t t)
{
	/* unspec, compat, default, main, local */
	return t == 0 || t == 252 || t == 253 || t == 254 || t == 255;
}

int mt_metal_init(struct mt_metal *m, const Mt__Config__Metal *pb, char *err,
		  size_t errlen)
{
	const char *instance = pb && pb->instance && *pb->instance ?
				       pb->instance :
				       DEFAULT_INSTANCE;
	const char *pool = pb && pb->link_pool && *pb->link_pool ?
				   pb->link_pool :
				   DEFAULT_LINK_POOL;
	char perr[128];

	memset(m, 0, sizeof(*m));
	if (!valid_instance(instance)) {
		snprintf(err, errlen,
			 "metal.instance \"%s\": must be 1-%d characters of [a-z0-9]",
			 instance, MT_INSTANCE_MAX);
		return -EINVAL;
	}
	snprintf(m->instance, sizeof(m->instance), "%s", instance);
	snprintf(m->prefix, sizeof(m->prefix), "mt%s-", instance);
	snprintf(m->mark_table, sizeof(m->mark_table), "%smark", m->prefix);
	snprintf(m->cust_nft_table, sizeof(m->cust_nft_table), "%scust",
		 m->prefix);

	if (mt_prefix_parse(pool, true, &m->link_pool, perr, sizeof(perr)) < 0) {
		snprintf(err, errlen, "metal.link_pool: %s", perr);
		return -EINVAL;
	}
	if (m->link_pool.family != AF_INET || m->link_pool.len > 30) {
		snprintf(err, errlen,
			 "metal.link_pool \"%s\": must be an IPv4 prefix of /30 or larger",
			 pool);
		return -EINVAL;
	}

	m->gre_table = pb && pb->gre_table ? pb->gre_table : DEFAULT_GRE_TABLE;
	m->cust_table = pb && pb->cust_table ? pb->cust_table :
					       DEFAULT_CUST_TABLE;
	m->cust_table_alt = pb && pb->cust_table_alt ? pb->cust_table_alt :
						       DEFAULT_CUST_TABLE_ALT;
	m->fwmark = pb && pb->fwmark ? pb->fwmark : DEFAULT_FWMARK;
	m->fwmark_mask = pb && pb->fwmark_mask ? pb->fwmark_mask :
						 DEFAULT_FWMARK_MASK;
	m->rule_priority = pb && pb->rule_priority ? pb->rule_priority :
						     DEFAULT_RULE_PRIORITY;
	m->uplink_mtu = pb && pb->uplink_mtu ? pb->uplink_mtu : 1500;
	if (m->uplink_mtu < MT_TUNNEL_MIN_MTU + MT_GRE_OVERHEAD ||
	    m->uplink_mtu > 65535) {
		snprintf(err, errlen, "metal.uplink_mtu %u: must be %d-65535",
			 m->uplink_mtu, MT_TUNNEL_MIN_MTU + MT_GRE_OVERHEAD);
		return -EINVAL;
	}
	m->reconcile_interval_s = pb && pb->reconcile_interval_s ?
					  pb->reconcile_interval_s :
					  DEFAULT_RECONCILE_INTERVAL_S;

	if (reserved_table(m->gre_table) || reserved_table(m->cust_table) ||
	    reserved_table(m->cust_table_alt)) {
		snprintf(err, errlen,
			 "metal: gre_table/cust_table/cust_table_alt must not be a reserved table (0, 252-255)");
		return -EINVAL;
	}
	if ((m->fwmark & ~m->fwmark_mask) != 0) {
		snprintf(err, errlen,
			 "metal.fwmark 0x%x has bits outside metal.fwmark_mask 0x%x",
			 m->fwmark, m->fwmark_mask);
		return -EINVAL;
	}
	if (m->rule_priority >= 32766 - MT_RULE_RANGE) {
		snprintf(err, errlen,
			 "metal.rule_priority %u: must leave room for %d rules below 32766 (main)",
			 m->rule_priority, MT_RULE_RANGE);
		return -EINVAL;
	}

	if (pb && pb->n_own_prefixes) {
		m->own = calloc(pb->n_own_prefixes, sizeof(*m->own));
		if (!m->own)
			return -ENOMEM;
		for (size_t i = 0; i < pb->n_own_prefixes; i++) {
			if (mt_prefix_parse(pb->own_prefixes[i], false,
					    &m->own[i], perr,
					    sizeof(perr)) < 0) {
				snprintf(err, errlen, "metal.own_prefixes[%zu]: %s",
					 i, perr);
				mt_metal_fini(m);
				return -EINVAL;
			}
			m->n_own++;
		}
	}
	return 0;
}

void mt_metal_fini(struct mt_metal *m)
{
	free(m->own);
	m->own = NULL;
	m->n_own = 0;
}

size_t mt_metal_name_max(const struct mt_metal *m)
{
	return IFNAMSIZ - 1 - strlen(m->prefix);
}

int mt_metal_ifname(const struct mt_metal *m, const char *customer,
		    char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s%s", m->prefix, customer);

	if (n < 0 || (size_t)n >= len || (size_t)n > IFNAMSIZ - 1)
		return -ENAMETOOLONG;
	return 0;
}

const char *mt_metal_owner(const struct mt_metal *m, const char *name)
{
	size_t n = strlen(m->prefix);

	if (strncmp(name, m->prefix, n) != 0 || name[n] == '\0')
		return NULL;
	return name + n;
}

uint32_t mt_metal_max_customer_id(const struct mt_metal *m)
{
	uint32_t pairs = m->link_pool.len == 0 ?
				 UINT32_MAX / 2 :
				 ((uint32_t)1 << (32 - m->link_pool.len)) / 2;

	/* pair 0 is never used: ids start at 1 */
	pairs -= 1;
	return pairs < MT_CUSTOMER_ID_MAX ? pairs : MT_CUSTOMER_ID_MAX;
}

int mt_metal_link_addrs(const struct mt_metal *m, uint32_t id,
			struct mt_prefix *metal_side,
			struct mt_prefix *customer_side)
{
	int r;

	if (id == 0 || id > mt_metal_max_customer_id(m))
		return -ERANGE;
	r = mt_prefix_nth_v4(&m->link_pool, id * 2, metal_side);
	if (r < 0)
		return r;
	r = mt_prefix_nth_v4(&m->link_pool, id * 2 + 1, customer_side);
	if (r < 0)
		return r;
	metal_side->len = 31;
	customer_side->len = 31;
	return 0;
}

bool mt_metal_owns_address(const struct mt_metal *m,
			   const struct mt_prefix *p)
{
	for (size_t i = 0; i < m->n_own; i++)
		if (mt_prefix_overlaps(&m->own[i], p))
			return true;
	return mt_prefix_overlaps(&m->link_pool, p);
}
