#include "mt_kstate.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Mt__Kernel__KernelState *mt_kstate_new(void)
{
	Mt__Kernel__KernelState *st = malloc(sizeof(*st));

	if (st)
		mt__kernel__kernel_state__init(st);
	return st;
}

void mt_kstate_free(Mt__Kernel__KernelState *st)
{
	if (st)
		protobuf_c_message_free_unpacked(&st->base, NULL);
}

int mt_kstate_set_str(char **field, const char *s)
{
	char *d = strdup(s ? s : "");

	if (!d)
		return -ENOMEM;
	if (*field && *field != (char *)protobuf_c_empty_string)
		free(*field);
	*field = d;
	return 0;
}

static size_t roundup_pow2(size_t n)
{
	size_t p = 4;

	while (p < n)
		p *= 2;
	return p;
}

/* Appends a zeroed object of size sz, initialised by init, to the repeated
 * field (*arr, *n). The array may come from protobuf-c's unpacker (exactly
 * n long) or from here: reallocating to the next power of two on every
 * append covers both, and is cheap because glibc's realloc returns the same
 * block while it still fits. */
static void *append(void ***arr, size_t *n, size_t sz, void (*init)(void *))
{
	void **grown;
	void *obj;

	grown = realloc(*arr, roundup_pow2(*n + 1) * sizeof(**arr));
	if (!grown)
		return NULL;
	*arr = grown;
	obj = malloc(sz);
	if (!obj)
		return NULL;
	init(obj);
	(*arr)[(*n)++] = obj;
	return obj;
}

#define KSTATE_ADD(fn, type, field, initfn)                                    \
	type *fn(Mt__Kernel__KernelState *st)                                  \
	{                                                                      \
		return append((void ***)&st->field, &st->n_##field,            \
			      sizeof(type), (void (*)(void *))initfn);          \
	}

KSTATE_ADD(mt_kstate_add_netns, Mt__Kernel__Netns, netns,
	   mt__kernel__netns__init)
KSTATE_ADD(mt_kstate_add_link, Mt__Kernel__Link, links, mt__kernel__link__init)
KSTATE_ADD(mt_kstate_add_addr, Mt__Kernel__Addr, addrs, mt__kernel__addr__init)
KSTATE_ADD(mt_kstate_add_route, Mt__Kernel__Route, routes,
	   mt__kernel__route__init)
KSTATE_ADD(mt_kstate_add_rule, Mt__Kernel__Rule, rules, mt__kernel__rule__init)
KSTATE_ADD(mt_kstate_add_sysctl, Mt__Kernel__Sysctl, sysctls,
	   mt__kernel__sysctl__init)
KSTATE_ADD(mt_kstate_add_mark_table, Mt__Kernel__MarkTable, mark_tables,
	   mt__kernel__mark_table__init)
KSTATE_ADD(mt_kstate_add_mark_prefix, Mt__Kernel__MarkPrefix, mark_prefixes,
	   mt__kernel__mark_prefix__init)
KSTATE_ADD(mt_kstate_add_tunnel, Mt__Kernel__Tunnel, tunnels,
	   mt__kernel__tunnel__init)
KSTATE_ADD(mt_kstate_add_mss_clamp, Mt__Kernel__MssClamp, mss_clamps,
	   mt__kernel__mss_clamp__init)
KSTATE_ADD(mt_kstate_add_firewall, Mt__Kernel__Firewall, firewalls,
	   mt__kernel__firewall__init)

Mt__Kernel__FirewallList *mt_firewall_add_list(Mt__Kernel__Firewall *f)
{
	return append((void ***)&f->lists, &f->n_lists,
		      sizeof(Mt__Kernel__FirewallList),
		      (void (*)(void *))mt__kernel__firewall_list__init);
}

int mt_firewall_add_rule(Mt__Kernel__Firewall *f,
			 Mt__Config__FirewallRule *rule)
{
	void **grown = realloc(f->rules, roundup_pow2(f->n_rules + 1) *
						 sizeof(*f->rules));

	if (!grown) {
		protobuf_c_message_free_unpacked(&rule->base, NULL);
		return -ENOMEM;
	}
	f->rules = (Mt__Config__FirewallRule **)grown;
	f->rules[f->n_rules++] = rule;
	return 0;
}

int mt_kstate_add_str(char ***v, size_t *n, const char *s)
{
	char *d = strdup(s ? s : "");
	char **grown;

	if (!d)
		return -ENOMEM;
	/* a power-of-two capacity: the same block while it still fits */
	grown = realloc(*v, roundup_pow2(*n + 1) * sizeof(**v));
	if (!grown) {
		free(d);
		return -ENOMEM;
	}
	*v = grown;
	(*v)[(*n)++] = d;
	return 0;
}

Mt__Kernel__Nexthop *mt_route_add_nexthop(Mt__Kernel__Route *r)
{
	return append((void ***)&r->nexthops, &r->n_nexthops,
		      sizeof(Mt__Kernel__Nexthop),
		      (void (*)(void *))mt__kernel__nexthop__init);
}

Mt__Kernel__Plan *mt_plan_new(void)
{
	Mt__Kernel__Plan *p = malloc(sizeof(*p));

	if (p)
		mt__kernel__plan__init(p);
	return p;
}

void mt_plan_free(Mt__Kernel__Plan *p)
{
	if (p)
		protobuf_c_message_free_unpacked(&p->base, NULL);
}

ProtobufCMessage *mt_message_dup(const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	ProtobufCMessage *copy;

	if (!buf)
		return NULL;
	protobuf_c_message_pack(m, buf);
	copy = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
	free(buf);
	return copy;
}

Mt__Kernel__Op *mt_plan_add(Mt__Kernel__Plan *p, Mt__Kernel__Op__Action action,
			    const ProtobufCMessage *obj)
{
	const ProtobufCMessageDescriptor *d = obj->descriptor;
	Mt__Kernel__Op *op;
	ProtobufCMessage *copy;

	op = append((void ***)&p->ops, &p->n_ops, sizeof(*op),
		    (void (*)(void *))mt__kernel__op__init);
	if (!op)
		return NULL;
	op->action = action;
	copy = mt_message_dup(obj);
	if (!copy)
		goto fail;
	if (d == &mt__kernel__netns__descriptor) {
		op->object_case = MT__KERNEL__OP__OBJECT_NETNS;
		op->netns = (Mt__Kernel__Netns *)copy;
	} else if (d == &mt__kernel__link__descriptor) {
		op->object_case = MT__KERNEL__OP__OBJECT_LINK;
		op->link = (Mt__Kernel__Link *)copy;
	} else if (d == &mt__kernel__addr__descriptor) {
		op->object_case = MT__KERNEL__OP__OBJECT_ADDR;
		op->addr = (Mt__Kernel__Addr *)copy;
	} else if (d == &mt__kernel__route__descriptor) {
		op->object_case = MT__KERNEL__OP__OBJECT_ROUTE;
		op->route = (Mt__Kernel__Route *)copy;
	} else if (d == &mt__kernel__rule__descriptor) {
		op->object_case = MT__KERNEL__OP__OBJECT_RULE;
		op->rule = (Mt__Kernel__Rule *)copy;
	} else if (d == &mt__kernel__sysctl__descriptor) {
		op->object_case = MT__KERNEL__OP__OBJECT_SYSCTL;
		op->sysctl = (Mt__Kernel__Sysctl *)copy;
	} else if (d == &mt__kernel__mark_table__descriptor) {
		op->object_case = MT__KERNEL__OP__OBJECT_MARK_TABLE;
		op->mark_table = (Mt__Kernel__MarkTable *)copy;
	} else if (d == &mt__kernel__mark_prefix__descriptor) {
		op->object_case = MT__KERNEL__OP__OBJECT_MARK_PREFIX;
		op->mark_prefix = (Mt__Kernel__MarkPrefix *)copy;
	} else if (d == &mt__kernel__tunnel__descriptor) {
		op->object_case = MT__KERNEL__OP__OBJECT_TUNNEL;
		op->tunnel = (Mt__Kernel__Tunnel *)copy;
	} else if (d == &mt__kernel__mss_clamp__descriptor) {
		op->object_case = MT__KERNEL__OP__OBJECT_MSS_CLAMP;
		op->mss_clamp = (Mt__Kernel__MssClamp *)copy;
	} else if (d == &mt__kernel__firewall__descriptor) {
		op->object_case = MT__KERNEL__OP__OBJECT_FIREWALL;
		op->firewall = (Mt__Kernel__Firewall *)copy;
	} else {
		protobuf_c_message_free_unpacked(copy, NULL);
		goto fail;
	}
	return op;
fail:
	p->n_ops--;
	free(op);
	return NULL;
}

int mt_op_result_set(Mt__Kernel__OpResult **slot, int error, const char *msg)
{
	Mt__Kernel__OpResult *res = *slot;

	if (!res) {
		res = malloc(sizeof(*res));
		if (!res)
			return -ENOMEM;
		mt__kernel__op_result__init(res);
		*slot = res;
	}
	res->error = error;
	return mt_kstate_set_str(&res->message, msg ? msg : "");
}

int mt_op_result_describe(Mt__Kernel__OpResult **slot, const Mt__Kernel__Op *op,
			  int error, const char *why, const char *kmsg)
{
	char desc[320], msg[1200];

	if (!error)
		return mt_op_result_set(slot, 0, "");
	why = why ? why : "";
	kmsg = kmsg ? kmsg : "";
	snprintf(msg, sizeof(msg), "%s: %s%s%s%s",
		 mt_op_describe(op, desc, sizeof(desc)),
		 *why ? why : strerror(-error), *kmsg ? " (kernel: " : "",
		 kmsg, *kmsg ? ")" : "");
	return mt_op_result_set(slot, error, msg);
}

static const char *ns_name(const char *ns)
{
	return ns && *ns ? ns : "metal";
}

/* "route 198.51.100.0/24 table 2001 nexthop dev gre1 weight 1 nexthop dev
 * gre2 weight 3 metric 10 in netns mt0-acme" */
static void describe_route(const Mt__Kernel__Route *r, const char *verb,
			   char *buf, size_t len)
{
	size_t n;

	n = (size_t)snprintf(buf, len, "%s route %s%s table %u", verb,
			     r->type == 6 ? "blackhole " : "", r->dst,
			     r->table);
	if (n < len && *r->gateway)
		n += (size_t)snprintf(buf + n, len - n, " via %s", r->gateway);
	if (n < len && *r->dev)
		n += (size_t)snprintf(buf + n, len - n, " dev %s", r->dev);
	for (size_t i = 0; i < r->n_nexthops && n < len; i++) {
		const Mt__Kernel__Nexthop *h = r->nexthops[i];

		n += (size_t)snprintf(buf + n, len - n, " nexthop%s%s dev %s weight %u",
				      *h->gateway ? " via " : "", h->gateway,
				      h->dev, h->weight);
	}
	if (n < len && *r->prefsrc)
		n += (size_t)snprintf(buf + n, len - n, " src %s", r->prefsrc);
	if (n < len)
		snprintf(buf + n, len - n, " metric %u in netns %s", r->metric,
			 ns_name(r->netns));
}

/* "firewall mt0-acme: default block, 50 rules, lists bad (delta +1 -0),
 * big (100000 prefixes), good (unchanged)" */
static void describe_firewall(const Mt__Kernel__Firewall *f, const char *verb,
			      bool create, char *buf, size_t len)
{
	size_t n;

	n = (size_t)snprintf(buf, len, "%s firewall %s", verb,
			     ns_name(f->netns));
	if (!create || n >= len)
		return;
	n += (size_t)snprintf(buf + n, len - n, ": default %s, %zu rule%s",
			      *f->default_action ? f->default_action : "allow",
			      f->n_rules, f->n_rules == 1 ? "" : "s");
	for (size_t i = 0; i < f->n_lists && n < len; i++) {
		const Mt__Kernel__FirewallList *l = f->lists[i];

		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " :
							  f->n_lists == 1 ? ", list " : ", lists ",
				      l->name);
		if (n >= len)
			break;
		if (l->delta && !l->n_add && !l->n_remove && l->digest &&
		    l->base_digest && !strcmp(l->digest, l->base_digest))
			n += (size_t)snprintf(buf + n, len - n, " (unchanged)");
		else if (l->delta)
			n += (size_t)snprintf(buf + n, len - n,
					      " (delta +%zu -%zu)", l->n_add,
					      l->n_remove);
		else if (l->n_prefixes || !l->count)
			n += (size_t)snprintf(buf + n, len - n,
					      " (%zu prefix%s)", l->n_prefixes,
					      l->n_prefixes == 1 ? "" : "es");
		else
			n += (size_t)snprintf(buf + n, len - n, " (unchanged)");
	}
	if (n < len && f->dirty)
		snprintf(buf + n, len - n, " (dirty)");
}

char *mt_op_describe(const Mt__Kernel__Op *op, char *buf, size_t len)
{
	const char *verb =
		op->action == MT__KERNEL__OP__ACTION__DELETE ? "delete" : "create";

	switch (op->object_case) {
	case MT__KERNEL__OP__OBJECT_NETNS:
		snprintf(buf, len, "%s netns %s", verb, op->netns->name);
		break;
	case MT__KERNEL__OP__OBJECT_LINK:
		snprintf(buf, len, "%s link %s%s%s%s in netns %s", verb,
			 op->link->name, *op->link->kind ? " type " : "",
			 op->link->kind, op->link->up ? " up" : "",
			 ns_name(op->link->netns));
		break;
	case MT__KERNEL__OP__OBJECT_ADDR:
		snprintf(buf, len, "%s addr %s dev %s in netns %s", verb,
			 op->addr->prefix, op->addr->dev,
			 ns_name(op->addr->netns));
		break;
	case MT__KERNEL__OP__OBJECT_ROUTE:
		describe_route(op->route, verb, buf, len);
		break;
	case MT__KERNEL__OP__OBJECT_RULE:
		snprintf(buf, len,
			 "%s rule priority %u fwmark 0x%x/0x%x table %u in netns %s",
			 verb, op->rule->priority, op->rule->fwmark,
			 op->rule->fwmask, op->rule->table,
			 ns_name(op->rule->netns));
		break;
	case MT__KERNEL__OP__OBJECT_SYSCTL:
		snprintf(buf, len, "%s sysctl %s=%s in netns %s", verb,
			 op->sysctl->key, op->sysctl->value,
			 ns_name(op->sysctl->netns));
		break;
	case MT__KERNEL__OP__OBJECT_MARK_TABLE:
		snprintf(buf, len, "%s nft table inet %s (fwmark 0x%x/0x%x)",
			 verb, op->mark_table->name, op->mark_table->fwmark,
			 op->mark_table->fwmask);
		break;
	case MT__KERNEL__OP__OBJECT_MARK_PREFIX:
		snprintf(buf, len, "%s mark prefix %s (customer %s)", verb,
			 op->mark_prefix->prefix, op->mark_prefix->owner);
		break;
	case MT__KERNEL__OP__OBJECT_TUNNEL: {
		const Mt__Kernel__Tunnel *t = op->tunnel;
		char key[24] = "";

		if (t->has_key)
			snprintf(key, sizeof(key), " key %u", t->key);
		snprintf(buf, len,
			 "%s tunnel %s driver %s local %s remote %s%s ttl %u mtu %u in netns %s",
			 verb, t->name, *t->driver ? t->driver : "auto",
			 t->local, t->remote, key, t->ttl, t->mtu,
			 ns_name(t->netns));
		break;
	}
	case MT__KERNEL__OP__OBJECT_MSS_CLAMP:
		snprintf(buf, len, "%s mss clamp %u dev %s in netns %s", verb,
			 op->mss_clamp->mss, op->mss_clamp->dev,
			 ns_name(op->mss_clamp->netns));
		break;
	case MT__KERNEL__OP__OBJECT_FIREWALL:
		describe_firewall(op->firewall, verb,
				  op->action != MT__KERNEL__OP__ACTION__DELETE,
				  buf, len);
		break;
	default:
		snprintf(buf, len, "%s (empty op)", verb);
	}
	return buf;
}
