#include "fw_status.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mt_fw.h"
#include "mt_kstate.h"

#define S(s) ((s) ? (s) : "")

static const Mt__Kernel__Firewall *
find_firewall(const struct mt_metal *m, const Mt__Config__Customer *c,
	      const Mt__Kernel__KernelState *o)
{
	char ns[IFNAMSIZ];

	if (!o || mt_metal_ifname(m, S(c->name), ns, sizeof(ns)) < 0)
		return NULL;
	for (size_t i = 0; i < o->n_firewalls; i++)
		if (!strcmp(S(o->firewalls[i]->netns), ns))
			return o->firewalls[i];
	return NULL;
}

static const Mt__Config__FirewallRule *find_rule(const Mt__Kernel__Firewall *k,
						 uint32_t id)
{
	for (size_t i = 0; k && i < k->n_rules; i++)
		if (k->rules[i]->id == id)
			return k->rules[i];
	return NULL;
}

static const Mt__Kernel__FirewallCounters *
find_counters(const Mt__Kernel__Firewall *k, uint32_t id)
{
	for (size_t i = 0; k && i < k->n_counters; i++)
		if (k->counters[i]->id == id)
			return k->counters[i];
	return NULL;
}

static const Mt__Kernel__FirewallList *find_list(const Mt__Kernel__Firewall *k,
						 const char *name)
{
	for (size_t i = 0; k && i < k->n_lists; i++)
		if (!strcmp(S(k->lists[i]->name), name))
			return k->lists[i];
	return NULL;
}

/* *dst = a copy of src (NULL stays NULL). 0 or -ENOMEM. */
static int copy_counters(const Mt__Kernel__FirewallCounters *src,
			 Mt__Kernel__FirewallCounters **dst)
{
	if (!src)
		return 0;
	*dst = (Mt__Kernel__FirewallCounters *)mt_message_dup(&src->base);
	return *dst ? 0 : -ENOMEM;
}

static int add_rule(const Mt__Config__Customer *c, size_t idx,
		    const Mt__Kernel__Firewall *k, bool *in_sync,
		    Mt__Rpc__FirewallStatus *st, char *err, size_t errlen)
{
	const Mt__Config__Firewall *fw = c->firewall;
	const Mt__Config__FirewallRule *r = fw->rules[idx], *kr;
	Mt__Rpc__FirewallRuleStatus *rs;
	char why[256] = "";
	int ret;

	rs = malloc(sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	mt__rpc__firewall_rule_status__init(rs);
	st->rules[st->n_rules++] = rs;
	ret = mt_fw_rule_canonical(fw, r, &rs->rule, why, sizeof(why));
	if (ret == -EINVAL)
		snprintf(err, errlen,
			 "customer %u \"%s\": firewall.rules[%zu] (id %u): %s",
			 c->id, S(c->name), idx, r->id,
			 *why ? why : "does not compile");
	if (ret < 0)
		return ret;
	kr = find_rule(k, rs->rule->id);
	rs->installed = kr && mt_fw_rule_equal(rs->rule, kr);
	/* the same rules in the same order, and nothing else */
	if (!k || idx >= k->n_rules || !mt_fw_rule_equal(rs->rule, k->rules[idx]))
		*in_sync = false;
	return copy_counters(find_counters(k, rs->rule->id), &rs->counters);
}

static int add_list(const Mt__Config__Customer *c, size_t idx,
		    const Mt__Kernel__Firewall *k, bool *in_sync,
		    Mt__Rpc__FirewallStatus *st, char *err, size_t errlen)
{
	const Mt__Config__IpList *l = c->firewall->lists[idx];
	const Mt__Kernel__FirewallList *kl;
	Mt__Rpc__FirewallListStatus *ls;
	struct mt_fw_list fl;
	char why[256] = "";
	const char *family;
	int ret;

	ls = malloc(sizeof(*ls));
	if (!ls)
		return -ENOMEM;
	mt__rpc__firewall_list_status__init(ls);
	st->lists[st->n_lists++] = ls;
	ret = mt_fw_list_compile(S(l->name), l->prefixes, l->n_prefixes, &fl,
				 why, sizeof(why));
	if (ret == -EINVAL)
		snprintf(err, errlen,
			 "customer %u \"%s\": firewall.lists[%zu] \"%s\": %s",
			 c->id, S(c->name), idx, S(l->name),
			 *why ? why : "does not compile");
	if (ret < 0)
		return ret;
	family = mt_fw_family_name(fl.family);
	ls->count = fl.n > UINT32_MAX ? UINT32_MAX : (uint32_t)fl.n;
	kl = find_list(k, S(l->name));
	ls->installed = kl && !strcmp(S(kl->family), S(family)) &&
			!strcmp(S(kl->digest), fl.digest);
	mt_fw_list_fini(&fl);
	if (!ls->installed)
		*in_sync = false;
	if (mt_kstate_set_str(&ls->name, l->name) < 0 ||
	    mt_kstate_set_str(&ls->family, family) < 0)
		return -ENOMEM;
	return 0;
}

int mt_fw_status_build(const struct mt_metal *m, const Mt__Config__Customer *c,
		       const Mt__Kernel__KernelState *observed,
		       Mt__Rpc__FirewallStatus **out, char *err, size_t errlen)
{
	const Mt__Config__Firewall *fw = c->firewall;
	const Mt__Kernel__Firewall *k = find_firewall(m, c, observed);
	size_t n_rules = fw ? fw->n_rules : 0, n_lists = fw ? fw->n_lists : 0;
	const char *want = mt_fw_default_action(fw ? S(fw->default_action) : "");
	const char *have = k ? mt_fw_default_action(S(k->default_action)) : NULL;
	Mt__Rpc__FirewallStatus *st;
	bool in_sync;
	int r = -ENOMEM;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	if (!want) {
		snprintf(err, errlen,
			 "customer %u \"%s\": firewall.default_action \"%s\": "
			 "expected allow or block",
			 c->id, S(c->name), S(fw->default_action));
		return -EINVAL;
	}
	st = malloc(sizeof(*st));
	if (!st)
		return -ENOMEM;
	mt__rpc__firewall_status__init(st);
	st->rules = calloc(n_rules + 1, sizeof(*st->rules));
	st->lists = calloc(n_lists + 1, sizeof(*st->lists));
	if (!st->rules || !st->lists ||
	    mt_kstate_set_str(&st->customer, c->name) < 0 ||
	    mt_kstate_set_str(&st->default_action, want) < 0)
		goto fail;
	if (k)
		in_sync = !k->dirty && have && !strcmp(have, want) &&
			  k->n_rules == n_rules && k->n_lists == n_lists;
	else
		in_sync = n_rules == 0 && n_lists == 0 &&
			  !strcmp(want, "allow");
	for (size_t i = 0; i < n_rules; i++) {
		r = add_rule(c, i, k, &in_sync, st, err, errlen);
		if (r < 0)
			goto fail;
	}
	for (size_t i = 0; i < n_lists; i++) {
		r = add_list(c, i, k, &in_sync, st, err, errlen);
		if (r < 0)
			goto fail;
	}
	r = copy_counters(find_counters(k, 0), &st->default_counters);
	if (r < 0)
		goto fail;
	st->in_sync = in_sync;
	*out = st;
	return 0;
fail:
	if (r == -ENOMEM && errlen)
		snprintf(err, errlen, "out of memory");
	protobuf_c_message_free_unpacked(&st->base, NULL);
	return r;
}
