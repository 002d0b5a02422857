#include "nft_fw_plan.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "mt_cleanup.h"
#include "nftnl_cleanup.h"
#include "mt_kstate.h"
#include "netns.h"
#include "nft_batch.h"
#include "nft_cust_rules.h"

/* ---- small helpers ---- */

static bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* Makes room for one more element of size sz in *v. 0 or -ENOMEM. */
static int grow(void *vp, size_t *cap, size_t n, size_t sz)
{
	void **v = vp;
	size_t c;
	void *g;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 16;
	g = realloc(*v, c * sz);
	if (!g)
		return -ENOMEM;
	*v = g;
	*cap = c;
	return 0;
}

/* [a-z0-9][a-z0-9_-]*, 1..MT_FW_LIST_NAME_MAX characters. */
static bool list_name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > MT_FW_LIST_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      (i && (ch == '_' || ch == '-'))))
			return false;
	}
	return true;
}

static void key_of(const char *name, uint8_t key[MT_NFT_FW_KEY_LEN])
{
	memset(key, 0, MT_NFT_FW_KEY_LEN);
	memcpy(key, name, strnlen(name, MT_NFT_FW_KEY_LEN - 1));
}

/* ---- the state ---- */

/* Releases what was kept while reading (raw rules, sets, set names). */
static void state_release_raw(struct mt_nft_fw_state *st)
{
	for (size_t i = 0; i < st->n_raw; i++) {
		nftnl_rule_free(st->raw[i]);
		free(st->raw_msg[i].p);
	}
	for (size_t i = 0; i < st->n_rsets; i++) {
		nftnl_set_free(st->rsets[i]);
		free(st->rset_msg[i].p);
	}
	for (size_t i = 0; i < st->n_used; i++)
		free(st->used[i]);
	st->n_raw = st->n_rsets = st->n_used = 0;
}

void mt_nft_fw_state_fini(struct mt_nft_fw_state *st)
{
	for (size_t i = 0; i < st->n_groups; i++) {
		if (st->groups[i].rule)
			protobuf_c_message_free_unpacked(
			    &st->groups[i].rule->base, NULL);
		free(st->groups[i].key);
	}
	state_release_raw(st);
	free(st->base);
	free(st->groups);
	free(st->sets);
	free(st->lists);
	free(st->raw);
	free(st->rsets);
	free(st->used);
	free(st->raw_msg);
	free(st->rset_msg);
	memset(st, 0, sizeof(*st));
}

int mt_nft_fw_state_chain(struct mt_nft_fw_state *st,
			  const struct nftnl_chain *c)
{
	const char *name = nftnl_chain_get_str(c, NFTNL_CHAIN_NAME);

	if (streq(name, MT_NFT_FW_CHAIN)) {
		st->chain = true;
		st->chain_ok = mt_nft_fw_chain_ok(c);
	} else if (streq(name, MT_NFT_FW_RULES_CHAIN)) {
		st->rchain = true;
		st->rchain_ok = mt_nft_fw_rules_chain_ok(c);
	}
	return 0;
}

static bool used_has(const struct mt_nft_fw_state *st, const char *name)
{
	for (size_t i = 0; i < st->n_used; i++)
		if (strcmp(st->used[i], name) == 0)
			return true;
	return false;
}

/* Records the sets the lookups of r refer to. */
static int note_lookups(struct mt_nft_fw_state *st, struct nftnl_rule *r)
{
	struct nftnl_expr_iter *it = nftnl_expr_iter_create(r);
	struct nftnl_expr *e;
	int ret = 0;

	if (!it)
		return -ENOMEM;
	while (ret == 0 && (e = nftnl_expr_iter_next(it))) {
		const char *n = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
		const char *set;

		if (!streq(n, "lookup") ||
		    !(set = nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET)) ||
		    used_has(st, set))
			continue;
		ret = grow(&st->used, &st->cap_used, st->n_used,
			   sizeof(*st->used));
		if (ret == 0 && !(st->used[st->n_used] = strdup(set)))
			ret = -ENOMEM;
		if (ret == 0)
			st->n_used++;
	}
	nftnl_expr_iter_destroy(it);
	return ret;
}

/* Appends len bytes at d to b. 0 or -ENOMEM. */
static int raw_put(struct mt_nft_fw_raw *b, const void *d, size_t len)
{
	uint8_t *g = realloc(b->p, b->len + len + 1);

	if (!g)
		return -ENOMEM;
	memcpy(g + b->len, d, len);
	b->p = g;
	b->len += len;
	return 0;
}

/* The attributes of a rule message, as the key of the rule (see
 * mt_nft_fw_state_rule_msg): copied as they are, except
 * NFTA_RULE_POSITION (left out) and, in NFTA_RULE_EXPRESSIONS, each
 * counter, reduced to its name (the nests' lengths adjusted). Never
 * longer than the message. 0 or -ENOMEM. */
static int rule_msg_key(const struct nlmsghdr *nlh, struct mt_nft_fw_raw *out)
{
	uint8_t *k = malloc(nlh->nlmsg_len);
	const struct nlattr *a, *e, *x;
	size_t len = 0;

	if (!k)
		return -ENOMEM;
	mnl_attr_for_each (a, nlh, sizeof(struct nfgenmsg)) {
		size_t nest = len;

		if (mnl_attr_get_type(a) == NFTA_RULE_POSITION)
			continue;
		if (mnl_attr_get_type(a) != NFTA_RULE_EXPRESSIONS) {
			memcpy(k + len, a, a->nla_len);
			len += a->nla_len;
			continue;
		}
		memcpy(k + len, a, sizeof(*a));
		len += sizeof(*a);
		mnl_attr_for_each_nested (e, a) {
			const struct nlattr *name = NULL;
			struct nlattr h = *e;

			mnl_attr_for_each_nested (x, e) {
				if (mnl_attr_get_type(x) == NFTA_EXPR_NAME)
					name = x;
			}
			if (!name ||
			    strncmp(mnl_attr_get_payload(name), "counter",
				    mnl_attr_get_payload_len(name)) != 0) {
				memcpy(k + len, e, e->nla_len);
				len += e->nla_len;
				continue;
			}
			h.nla_len = (uint16_t)(sizeof(h) + name->nla_len);
			memcpy(k + len, &h, sizeof(h));
			memcpy(k + len + sizeof(h), name, name->nla_len);
			len += h.nla_len;
		}
		((struct nlattr *)(k + nest))->nla_len = (uint16_t)(len - nest);
	}
	out->p = k;
	out->len = len;
	return 0;
}

static int rule_add(struct mt_nft_fw_state *st, struct nftnl_rule *r,
		    const struct nlmsghdr *nlh)
{
	const char *chain = nftnl_rule_get_str(r, NFTNL_RULE_CHAIN);
	uint64_t handle = nftnl_rule_get_u64(r, NFTNL_RULE_HANDLE);
	int ret;

	if (streq(chain, MT_NFT_FW_CHAIN)) {
		enum mt_nft_fw_base_kind kind;
		const char *action = NULL;
		struct mt_nft_fw_base *b;
		uint64_t p = 0, by = 0;

		ret = grow(&st->base, &st->cap_base, st->n_base,
			   sizeof(*st->base));
		if (ret < 0) {
			nftnl_rule_free(r);
			return ret;
		}
		b = &st->base[st->n_base++];
		*b = (struct mt_nft_fw_base){.handle = handle, .kind = -1};
		if (mt_nft_fw_base_rule_parse(r, &kind, &action, &p, &by) ==
		    0) {
			b->kind = (int)kind;
			b->block = streq(action, "block");
			b->packets = p;
			b->bytes = by;
		}
		nftnl_rule_free(r);
		return 0;
	}
	if (!streq(chain, MT_NFT_FW_RULES_CHAIN)) {
		nftnl_rule_free(r);
		return 0;
	}
	ret = grow(&st->raw, &st->cap_raw, st->n_raw, sizeof(*st->raw));
	if (ret == 0)
		ret = grow(&st->raw_msg, &st->cap_raw_msg, st->n_raw,
			   sizeof(*st->raw_msg));
	if (ret == 0)
		ret = note_lookups(st, r);
	if (ret < 0) {
		nftnl_rule_free(r);
		return ret;
	}
	st->raw_msg[st->n_raw] = (struct mt_nft_fw_raw){0};
	if (nlh && (ret = rule_msg_key(nlh, &st->raw_msg[st->n_raw])) < 0) {
		nftnl_rule_free(r);
		return ret;
	}
	st->raw[st->n_raw++] = r;
	return 0;
}

int mt_nft_fw_state_rule(struct mt_nft_fw_state *st, struct nftnl_rule *r)
{
	return rule_add(st, r, NULL);
}

int mt_nft_fw_state_rule_msg(struct mt_nft_fw_state *st, struct nftnl_rule *r,
			     const struct nlmsghdr *nlh)
{
	return rule_add(st, r, nlh);
}

/* The attributes of a set or set element message. */
static const void *msg_attrs(const struct nlmsghdr *nlh, size_t *len)
{
	size_t hdr = mnl_nlmsg_size(sizeof(struct nfgenmsg));

	*len = nlh->nlmsg_len > hdr ? nlh->nlmsg_len - hdr : 0;
	return (const uint8_t *)nlh + hdr;
}

static int keep_set(struct mt_nft_fw_state *st, struct nftnl_set *s,
		    const struct nlmsghdr *nlh)
{
	struct mt_nft_fw_raw *m;
	size_t len;
	int r =
	    grow(&st->rsets, &st->cap_rsets, st->n_rsets, sizeof(*st->rsets));

	if (r == 0)
		r = grow(&st->rset_msg, &st->cap_rset_msg, st->n_rsets,
			 sizeof(*st->rset_msg));
	m = r == 0 ? &st->rset_msg[st->n_rsets] : NULL;
	if (m) {
		*m = (struct mt_nft_fw_raw){0};
		if (nlh) {
			const void *d = msg_attrs(nlh, &len);

			r = raw_put(m, d, len);
		}
	}
	if (r < 0) {
		nftnl_set_free(s);
		return r;
	}
	st->rsets[st->n_rsets++] = s;
	return 0;
}

static int set_add(struct mt_nft_fw_state *st, struct nftnl_set *s,
		   const struct nlmsghdr *nlh)
{
	const char *name = nftnl_set_get_str(s, NFTNL_SET_NAME);
	uint32_t flags = nftnl_set_is_set(s, NFTNL_SET_FLAGS)
			     ? nftnl_set_get_u32(s, NFTNL_SET_FLAGS)
			     : 0;
	int fam = 0;

	if (!name) {
		nftnl_set_free(s);
		return 0;
	}
	if (strcmp(name, MT_NFT_FW_LISTS_SET) == 0) {
		st->lset = true;
		st->lset_ok = mt_nft_fw_lists_set_ok(s);
		nftnl_set_free(s);
		return 0;
	}
	if (flags & NFT_SET_ANONYMOUS) {
		if (!used_has(st, name)) {
			nftnl_set_free(s);
			return 0;
		}
		return keep_set(st, s, nlh);
	}
	if ((strncmp(name, "l4_", 3) == 0 || strncmp(name, "l6_", 3) == 0) &&
	    list_name_valid(name + 3)) {
		struct mt_nft_fw_kset *k;
		int want = name[1] == '6' ? AF_INET6 : AF_INET;
		int r = grow(&st->sets, &st->cap_sets, st->n_sets,
			     sizeof(*st->sets));

		if (r < 0) {
			nftnl_set_free(s);
			return r;
		}
		k = &st->sets[st->n_sets++];
		snprintf(k->name, sizeof(k->name), "%s", name + 3);
		k->family = want;
		k->ok = mt_nft_fw_list_set_ok(s, &fam) && fam == want;
		/* the parser may look the list's set up by name */
		return keep_set(st, s, nlh);
	}
	nftnl_set_free(s);
	return 0;
}

int mt_nft_fw_state_set(struct mt_nft_fw_state *st, struct nftnl_set *s)
{
	return set_add(st, s, NULL);
}

int mt_nft_fw_state_set_msg(struct mt_nft_fw_state *st, struct nftnl_set *s,
			    const struct nlmsghdr *nlh)
{
	return set_add(st, s, nlh);
}

/* The index of the kept set name in rsets, or -1. */
static ssize_t rset_index(const struct mt_nft_fw_state *st, const char *name)
{
	for (size_t i = 0; name && i < st->n_rsets; i++)
		if (streq(nftnl_set_get_str(st->rsets[i], NFTNL_SET_NAME),
			  name))
			return (ssize_t)i;
	return -1;
}

struct nftnl_set *mt_nft_fw_state_set_find(const struct mt_nft_fw_state *st,
					   const char *name)
{
	ssize_t i = rset_index(st, name);

	return i < 0 ? NULL : st->rsets[i];
}

int mt_nft_fw_state_set_elems_msg(struct mt_nft_fw_state *st, const char *name,
				  const struct nlmsghdr *nlh)
{
	ssize_t i = rset_index(st, name);
	const void *d;
	size_t len;

	if (i < 0)
		return 0;
	if (nftnl_set_elems_nlmsg_parse(nlh, st->rsets[i]) < 0)
		return -EBADMSG;
	if (!st->rset_msg[i].p)
		return 0; /* the set itself was not recorded: no key */
	d = msg_attrs(nlh, &len);
	return raw_put(&st->rset_msg[i], d, len);
}

const char *mt_nft_fw_state_anon(const struct mt_nft_fw_state *st, size_t i)
{
	for (size_t k = 0; k < st->n_rsets; k++) {
		const struct nftnl_set *s = st->rsets[k];
		uint32_t flags = nftnl_set_is_set(s, NFTNL_SET_FLAGS)
				     ? nftnl_set_get_u32(s, NFTNL_SET_FLAGS)
				     : 0;

		if (!(flags & NFT_SET_ANONYMOUS))
			continue;
		if (i-- == 0)
			return nftnl_set_get_str(s, NFTNL_SET_NAME);
	}
	return NULL;
}

int mt_nft_fw_state_lists_elems(struct mt_nft_fw_state *st,
				const struct nftnl_set *s)
{
	struct nftnl_set_elems_iter *it =
	    nftnl_set_elems_iter_create((struct nftnl_set *)s);
	struct nftnl_set_elem *e;
	int ret = 0;

	if (!it)
		return -ENOMEM;
	/* _next returns the current element, then moves on */
	while (ret == 0 && (e = nftnl_set_elems_iter_next(it))) {
		struct mt_nft_fw_klist *k;

		ret = grow(&st->lists, &st->cap_lists, st->n_lists,
			   sizeof(*st->lists));
		if (ret < 0)
			break;
		k = &st->lists[st->n_lists++];
		memset(k, 0, sizeof(*k));
		if (mt_nft_fw_lists_elem_parse(e, k->name, &k->family,
					       k->digest, &k->count) == 0) {
			key_of(k->name, k->key);
		} else {
			uint32_t len = 0;
			const void *key =
			    nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);

			memset(k, 0, sizeof(*k));
			k->foreign = true;
			if (key)
				memcpy(k->key, key,
				       len < MT_NFT_FW_KEY_LEN
					   ? len
					   : MT_NFT_FW_KEY_LEN);
		}
	}
	nftnl_set_elems_iter_destroy(it);
	return ret;
}

static const struct nftnl_set *set_find_cb(const char *name, void *ctx)
{
	return mt_nft_fw_state_set_find(ctx, name);
}

static int group_add(struct mt_nft_fw_state *st, uint32_t id,
		     struct nftnl_rule *const *parts, size_t n,
		     struct mt_nft_fw_group **out)
{
	struct mt_nft_fw_group *g;
	int r = grow(&st->groups, &st->cap_groups, st->n_groups,
		     sizeof(*st->groups));

	if (r < 0)
		return r;
	g = &st->groups[st->n_groups++];
	memset(g, 0, sizeof(*g));
	g->id = id;
	g->n = n;
	for (size_t k = 0; k < n; k++)
		g->handle[k] = nftnl_rule_get_u64(parts[k], NFTNL_RULE_HANDLE);
	if (out)
		*out = g;
	return 0;
}

/* Appends a chunk to a group's key: its length, then its bytes. */
static int key_put(struct mt_nft_fw_raw *key, const struct mt_nft_fw_raw *c)
{
	uint32_t len = (uint32_t)c->len;
	int r = raw_put(key, &len, sizeof(len));

	return r < 0 ? r : raw_put(key, c->p, c->len);
}

/* The key of the group of parts raw[i..i+n): per part, its message (as
 * recorded) and those of the anonymous sets its lookups name, in order
 * (a set that is not there: an empty chunk). The parse of a group depends
 * on nothing else (the named list sets only by their name, which is in
 * the lookup). 0, -ENOENT when something was not recorded (no key: the
 * group is parsed), -ENOMEM. */
static int group_key(const struct mt_nft_fw_state *st, size_t i, size_t n,
		     struct mt_nft_fw_raw *key)
{
	static const struct mt_nft_fw_raw none = {0};
	int r = 0;

	*key = (struct mt_nft_fw_raw){0};
	for (size_t k = i; k < i + n && r == 0; k++) {
		struct nftnl_expr_iter *it;
		struct nftnl_expr *e;

		if (!st->raw_msg[k].p)
			r = -ENOENT;
		if (r == 0)
			r = key_put(key, &st->raw_msg[k]);
		it = r == 0 ? nftnl_expr_iter_create(st->raw[k]) : NULL;
		if (r == 0 && !it)
			r = -ENOMEM;
		while (r == 0 && (e = nftnl_expr_iter_next(it))) {
			const char *set;
			ssize_t s;

			if (!streq(nftnl_expr_get_str(e, NFTNL_EXPR_NAME),
				   "lookup") ||
			    !nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_SET))
				continue;
			set = nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET);
			if (strncmp(set, "__set", 5) != 0)
				continue;
			s = rset_index(st, set);
			if (s >= 0 && !st->rset_msg[s].p)
				r = -ENOENT;
			else
				r = key_put(key,
					    s < 0 ? &none : &st->rset_msg[s]);
		}
		if (it)
			nftnl_expr_iter_destroy(it);
	}
	if (r < 0) {
		free(key->p);
		*key = (struct mt_nft_fw_raw){0};
	}
	return r;
}

/* Takes over the parsed rule of the group of st->prev whose key is key,
 * searching from *at (where the last one was found: groups mostly keep
 * their order) around. NULL when there is none. */
static Mt__Config__FirewallRule *prev_take(struct mt_nft_fw_state *st,
					   const struct mt_nft_fw_raw *key,
					   size_t *at)
{
	struct mt_nft_fw_state *p = st->prev;

	for (size_t k = 0; p && k < p->n_groups; k++) {
		size_t x = (*at + k) % p->n_groups;
		struct mt_nft_fw_group *g = &p->groups[x];
		Mt__Config__FirewallRule *rule = g->rule;

		if (!rule || g->key_len != key->len ||
		    memcmp(g->key, key->p, key->len) != 0)
			continue;
		g->rule = NULL;
		*at = x + 1;
		return rule;
	}
	return NULL;
}

/* The counters of an intact rule's parts, added up as mt_nft_fw_rule_parse
 * does: a part's first counter counts what it matched, the counter after
 * its limit what was over the rate; the pass part of a rate limit (without
 * a limit, in a rule whose other parts have one) recounts what its limit
 * part let through and is left out. 0 or -ENOMEM. */
static int parts_counters(struct nftnl_rule *const *parts, size_t n,
			  struct mt_nft_fw_group *g)
{
	uint64_t pk[MT_NFT_FW_PARTS_MAX] = {0}, by[MT_NFT_FW_PARTS_MAX] = {0};
	bool limit[MT_NFT_FW_PARTS_MAX] = {0}, any_limit = false;

	for (size_t i = 0; i < n; i++) {
		struct nftnl_expr_iter *it = nftnl_expr_iter_create(parts[i]);
		struct nftnl_expr *e;
		int counters = 0;

		if (!it)
			return -ENOMEM;
		while ((e = nftnl_expr_iter_next(it))) {
			const char *name =
			    nftnl_expr_get_str(e, NFTNL_EXPR_NAME);

			if (streq(name, "limit")) {
				limit[i] = any_limit = true;
				continue;
			}
			if (!streq(name, "counter"))
				continue;
			if (counters == 0) {
				pk[i] = nftnl_expr_get_u64(
				    e, NFTNL_EXPR_CTR_PACKETS);
				by[i] =
				    nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES);
			} else if (counters == 1 && limit[i]) {
				g->limited += nftnl_expr_get_u64(
				    e, NFTNL_EXPR_CTR_PACKETS);
			}
			counters++;
		}
		nftnl_expr_iter_destroy(it);
	}
	for (size_t i = 0; i < n; i++) {
		if (any_limit && !limit[i])
			continue;
		g->packets += pk[i];
		g->bytes += by[i];
	}
	return 0;
}

/* The canonical rule of the complete group g of parts raw[i..i+n): taken
 * over from st->prev when its key is unchanged (counters read from the
 * parts), else parsed. g->key gets the key. 0 or -ENOMEM. */
static int group_rule(struct mt_nft_fw_state *st, size_t i, size_t n,
		      struct mt_nft_fw_group *g, size_t *prev_at)
{
	Mt__Config__FirewallRule *rule = NULL;
	struct mt_nft_fw_raw key;
	int p = group_key(st, i, n, &key);

	if (p == -ENOMEM)
		return p;
	g->key = key.p;
	g->key_len = key.len;
	if (p == 0 && (rule = prev_take(st, &key, prev_at))) {
		g->rule = rule;
		return parts_counters(&st->raw[i], n, g);
	}
	p = mt_nft_fw_rule_parse((const struct nftnl_rule *const *)&st->raw[i],
				 n, set_find_cb, st, &rule, &g->packets,
				 &g->bytes, &g->limited);
	if (p == 0 && rule && rule->id == g->id)
		g->rule = rule;
	else if (rule)
		protobuf_c_message_free_unpacked(&rule->base, NULL);
	return p == -ENOMEM ? p : 0;
}

struct id_at {
	uint32_t id;
	size_t at;
};

static int id_at_cmp(const void *a, const void *b)
{
	const struct id_at *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->at < y->at ? -1 : x->at > y->at;
}

int mt_nft_fw_state_finish(struct mt_nft_fw_state *st)
{
	_cleanup_free_ struct id_at *ids = NULL;
	size_t n_ids = 0, prev_at = 0;
	int r = 0;

	for (size_t i = 0; i < st->n_raw && r == 0;) {
		uint32_t id, part, n, id2, part2, n2;
		struct mt_nft_fw_group *g;
		size_t j;

		if (mt_nft_fw_rule_tag(st->raw[i], &id, &part, &n) < 0) {
			r = group_add(st, 0, &st->raw[i], 1, NULL);
			i++;
			continue;
		}
		if (part != 1 || n < 1 || n > MT_NFT_FW_PARTS_MAX) {
			r = group_add(st, id, &st->raw[i], 1, NULL);
			i++;
			continue;
		}
		for (j = i + 1; j < st->n_raw && j - i < n; j++)
			if (mt_nft_fw_rule_tag(st->raw[j], &id2, &part2, &n2) <
				0 ||
			    id2 != id || n2 != n || part2 != j - i + 1)
				break;
		r = group_add(st, id, &st->raw[i], j - i, &g);
		if (r == 0 && j - i == n)
			r = group_rule(st, i, n, g, &prev_at);
		i = j;
	}
	if (r < 0)
		return r;

	/* A second intact rule with an id already seen is a duplicate. */
	if (st->n_groups) {
		ids = calloc(st->n_groups, sizeof(*ids));
		if (!ids)
			return -ENOMEM;
	}
	for (size_t i = 0; i < st->n_groups; i++)
		if (st->groups[i].rule)
			ids[n_ids++] = (struct id_at){st->groups[i].id, i};
	if (n_ids)
		qsort(ids, n_ids, sizeof(*ids), id_at_cmp);
	for (size_t i = 1; i < n_ids; i++) {
		struct mt_nft_fw_group *g = &st->groups[ids[i].at];

		if (ids[i].id != ids[i - 1].id)
			continue;
		protobuf_c_message_free_unpacked(&g->rule->base, NULL);
		g->rule = NULL;
	}

	state_release_raw(st);
	return 0;
}

bool mt_nft_fw_state_present(const struct mt_nft_fw_state *st)
{
	return st->chain || st->rchain || st->lset || st->n_sets;
}

static const struct mt_nft_fw_kset *kset_find(const struct mt_nft_fw_state *st,
					      const char *name, int family)
{
	for (size_t i = 0; i < st->n_sets; i++)
		if (st->sets[i].family == family &&
		    strcmp(st->sets[i].name, name) == 0)
			return &st->sets[i];
	return NULL;
}

static const struct mt_nft_fw_klist *
klist_find(const struct mt_nft_fw_state *st, const char *name)
{
	for (size_t i = 0; i < st->n_lists; i++)
		if (!st->lists[i].foreign &&
		    strcmp(st->lists[i].name, name) == 0)
			return &st->lists[i];
	return NULL;
}

/* The fw_lists element that stands for list set k, when it agrees. */
static bool kset_recorded(const struct mt_nft_fw_state *st,
			  const struct mt_nft_fw_kset *k)
{
	const struct mt_nft_fw_klist *l = klist_find(st, k->name);

	return k->ok && l && l->family == k->family;
}

bool mt_nft_fw_state_dirty(const struct mt_nft_fw_state *st)
{
	if (!mt_nft_fw_state_present(st))
		return false;
	if (st->dormant || !st->chain || !st->chain_ok || !st->rchain ||
	    !st->rchain_ok || !st->lset || !st->lset_ok)
		return true;
	if (st->n_base != 2 || st->base[0].kind != MT_NFT_FW_BASE_JUMP ||
	    st->base[1].kind != MT_NFT_FW_BASE_DEFAULT)
		return true;
	for (size_t i = 0; i < st->n_groups; i++)
		if (!st->groups[i].rule)
			return true;
	for (size_t i = 0; i < st->n_sets; i++)
		if (!kset_recorded(st, &st->sets[i]))
			return true;
	for (size_t i = 0; i < st->n_lists; i++) {
		const struct mt_nft_fw_klist *l = &st->lists[i];

		if (l->foreign || !kset_find(st, l->name, l->family))
			return true;
	}
	return false;
}

/* ---- observe ---- */

static int klist_name_cmp(const void *a, const void *b)
{
	const struct mt_nft_fw_klist *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

static int counters_add(Mt__Kernel__Firewall *fw, uint32_t id, uint64_t packets,
			uint64_t bytes, uint64_t limited)
{
	Mt__Kernel__FirewallCounters *c = malloc(sizeof(*c));

	if (!c)
		return -ENOMEM;
	mt__kernel__firewall_counters__init(c);
	c->id = id;
	c->packets = packets;
	c->bytes = bytes;
	c->limited_packets = limited;
	fw->counters[fw->n_counters++] = c;
	return 0;
}

int mt_nft_fw_observed(const struct mt_nft_fw_state *st, const char *netns,
		       const char *owner, bool counters,
		       Mt__Kernel__Firewall **out)
{
	Mt__Kernel__Firewall *fw = malloc(sizeof(*fw));
	_cleanup_free_ const struct mt_nft_fw_klist **ls = NULL;
	const struct mt_nft_fw_base *def = NULL;
	size_t n_ls = 0;
	int r = -ENOMEM;

	*out = NULL;
	if (!fw)
		return -ENOMEM;
	mt__kernel__firewall__init(fw);
	for (size_t i = 0; i < st->n_base; i++)
		if (st->base[i].kind == MT_NFT_FW_BASE_DEFAULT) {
			def = &st->base[i];
			break;
		}
	if (mt_kstate_set_str(&fw->netns, netns) < 0 ||
	    mt_kstate_set_str(&fw->owner, owner ? owner : "") < 0 ||
	    mt_kstate_set_str(&fw->default_action, !def		? ""
						   : def->block ? "block"
								: "allow") < 0)
		goto out;
	fw->dirty = mt_nft_fw_state_dirty(st);

	if (st->n_groups) {
		fw->rules = calloc(st->n_groups, sizeof(*fw->rules));
		if (!fw->rules)
			goto out;
	}
	for (size_t i = 0; i < st->n_groups; i++) {
		ProtobufCMessage *m;

		if (!st->groups[i].rule)
			continue;
		m = mt_message_dup(&st->groups[i].rule->base);
		if (!m)
			goto out;
		fw->rules[fw->n_rules++] = (Mt__Config__FirewallRule *)m;
	}

	if (st->n_lists) {
		ls = calloc(st->n_lists, sizeof(*ls));
		fw->lists = calloc(st->n_lists, sizeof(*fw->lists));
		if (!ls || !fw->lists)
			goto out;
	}
	for (size_t i = 0; i < st->n_lists; i++) {
		const struct mt_nft_fw_klist *l = &st->lists[i];
		const struct mt_nft_fw_kset *k;

		if (l->foreign || !(k = kset_find(st, l->name, l->family)) ||
		    !k->ok)
			continue;
		ls[n_ls++] = l;
	}
	if (n_ls)
		qsort(ls, n_ls, sizeof(*ls), klist_name_cmp);
	for (size_t i = 0; i < n_ls; i++) {
		Mt__Kernel__FirewallList *fl = malloc(sizeof(*fl));

		if (!fl)
			goto out;
		mt__kernel__firewall_list__init(fl);
		fw->lists[fw->n_lists++] = fl;
		if (mt_kstate_set_str(&fl->name, ls[i]->name) < 0 ||
		    mt_kstate_set_str(&fl->family,
				      mt_fw_family_name(ls[i]->family)) < 0 ||
		    mt_kstate_set_str(&fl->digest, ls[i]->digest) < 0)
			goto out;
		fl->count = ls[i]->count;
	}

	if (counters) {
		fw->counters = calloc(fw->n_rules + 1, sizeof(*fw->counters));
		if (!fw->counters)
			goto out;
		for (size_t i = 0; i < st->n_groups; i++) {
			const struct mt_nft_fw_group *g = &st->groups[i];

			if (g->rule && counters_add(fw, g->id, g->packets,
						    g->bytes, g->limited) < 0)
				goto out;
		}
		if (counters_add(fw, 0, def ? def->packets : 0,
				 def ? def->bytes : 0, 0) < 0)
			goto out;
	}
	*out = fw;
	fw = NULL;
	r = 0;
out:
	if (fw)
		protobuf_c_message_free_unpacked(&fw->base, NULL);
	return r;
}

/* ---- the desired firewall ---- */

void mt_nft_fw_want_fini(struct mt_nft_fw_want *w)
{
	for (size_t i = 0; i < w->n_lists; i++) {
		free(w->lists[i].prefixes);
		free(w->lists[i].add);
		free(w->lists[i].remove);
	}
	free(w->lists);
	free(w->rules);
	memset(w, 0, sizeof(*w));
}

static bool digest_valid(const char *s)
{
	if (!s || strlen(s) != MT_FW_DIGEST_STRLEN - 1)
		return false;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
			return false;
	return true;
}

/* Parses the n prefixes of one delta field, all of family. */
static int parse_prefixes(char *const *v, size_t n, int family,
			  const char *list, const char *field,
			  struct mt_prefix **out, char *err, size_t errlen)
{
	struct mt_prefix *p;

	*out = NULL;
	if (!n)
		return 0;
	p = calloc(n, sizeof(*p));
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char why[128];

		if (mt_prefix_parse(v[i], true, &p[i], why, sizeof(why)) < 0) {
			snprintf(err, errlen, "list \"%s\": %s[%zu] \"%s\": %s",
				 list, field, i, v[i], why);
			free(p);
			return -EINVAL;
		}
		if (p[i].family != family) {
			snprintf(err, errlen,
				 "list \"%s\": %s[%zu] \"%s\" is not %s", list,
				 field, i, v[i], mt_fw_family_name(family));
			free(p);
			return -EINVAL;
		}
	}
	*out = p;
	return 0;
}

static int want_list(const Mt__Kernel__FirewallList *l,
		     struct mt_nft_fw_want_list *o, char *err, size_t errlen)
{
	int r;

	if (!l || !list_name_valid(l->name)) {
		snprintf(err, errlen,
			 "list name \"%s\" is not [a-z0-9][a-z0-9_-]* of at "
			 "most %d characters",
			 l && l->name ? l->name : "", MT_FW_LIST_NAME_MAX);
		return -EINVAL;
	}
	snprintf(o->name, sizeof(o->name), "%s", l->name);
	o->family = mt_fw_family_parse(l->family);
	if (!o->family) {
		snprintf(err, errlen,
			 "list \"%s\": family \"%s\" is not ipv4 or ipv6",
			 l->name, l->family ? l->family : "");
		return -EINVAL;
	}
	o->delta = l->delta;
	if (!l->delta) {
		struct mt_fw_list fl = {0};
		char why[256];

		r = mt_fw_list_compile(l->name, l->prefixes, l->n_prefixes, &fl,
				       why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "list \"%s\": %s", l->name, why);
			return r;
		}
		if (fl.n && fl.family != o->family) {
			snprintf(err, errlen,
				 "list \"%s\" is %s but its prefixes are %s",
				 l->name, mt_fw_family_name(o->family),
				 mt_fw_family_name(fl.family));
			mt_fw_list_fini(&fl);
			return -EINVAL;
		}
		o->prefixes = fl.prefixes;
		o->n = fl.n;
		fl.prefixes = NULL;
		mt_fw_list_fini(&fl);
		mt_fw_list_digest(o->family, o->prefixes, o->n, o->digest);
		if (l->digest && *l->digest && strcmp(l->digest, o->digest)) {
			snprintf(err, errlen,
				 "list \"%s\": digest %s does not match its "
				 "prefixes (%s)",
				 l->name, l->digest, o->digest);
			return -EINVAL;
		}
		o->count = (uint32_t)o->n;
		return 0;
	}
	if (!digest_valid(l->digest) || !digest_valid(l->base_digest)) {
		snprintf(err, errlen,
			 "list \"%s\": a delta needs digest and base_digest "
			 "(16 lowercase hex digits), got \"%s\" and \"%s\"",
			 l->name, l->digest ? l->digest : "",
			 l->base_digest ? l->base_digest : "");
		return -EINVAL;
	}
	snprintf(o->digest, sizeof(o->digest), "%s", l->digest);
	snprintf(o->base_digest, sizeof(o->base_digest), "%s", l->base_digest);
	o->count = l->count;
	r = parse_prefixes(l->add, l->n_add, o->family, l->name, "add", &o->add,
			   err, errlen);
	if (r == 0)
		r = parse_prefixes(l->remove, l->n_remove, o->family, l->name,
				   "remove", &o->remove, err, errlen);
	o->n_add = l->n_add;
	o->n_remove = l->n_remove;
	return r;
}

static int want_list_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mt_nft_fw_want_list *)a)->name,
		      ((const struct mt_nft_fw_want_list *)b)->name);
}

int mt_nft_fw_want_prepare(const struct mt_metal *m, const char *table,
			   const Mt__Kernel__Op *op, size_t op_index,
			   struct mt_nft_fw_want *w, char *err, size_t errlen)
{
	const Mt__Kernel__Firewall *fw = op->firewall;
	_cleanup_free_ struct id_at *ids = NULL;
	const char *def;
	int r;

	memset(w, 0, sizeof(*w));
	err[0] = '\0';
	w->op = op_index;
	if (op->object_case != MT__KERNEL__OP__OBJECT_FIREWALL || !fw) {
		snprintf(err, errlen, "not a firewall operation (object %d)",
			 op->object_case);
		return -EOPNOTSUPP;
	}
	if (op->action != MT__KERNEL__OP__ACTION__CREATE &&
	    op->action != MT__KERNEL__OP__ACTION__DELETE) {
		snprintf(err, errlen, "unknown action %d", op->action);
		return -EINVAL;
	}
	if (!fw->netns || !mt_metal_owner(m, fw->netns) ||
	    !mt_netns_name_valid(fw->netns)) {
		snprintf(err, errlen,
			 "netns \"%s\" is not an mt customer namespace (name "
			 "must start with \"%s\")",
			 fw->netns ? fw->netns : "", m->prefix);
		return -EPERM;
	}
	w->del = op->action == MT__KERNEL__OP__ACTION__DELETE;
	if (w->del)
		return 0;

	def =
	    mt_fw_default_action(fw->default_action ? fw->default_action : "");
	if (!def) {
		snprintf(err, errlen,
			 "default_action \"%s\" is not allow or block",
			 fw->default_action);
		return -EINVAL;
	}
	w->block = strcmp(def, "block") == 0;

	if (fw->n_rules > MT_FW_RULES_MAX) {
		snprintf(err, errlen, "%zu rules, more than %d", fw->n_rules,
			 MT_FW_RULES_MAX);
		return -EINVAL;
	}
	if (fw->n_rules) {
		w->rules = calloc(fw->n_rules, sizeof(*w->rules));
		ids = calloc(fw->n_rules, sizeof(*ids));
		if (!w->rules || !ids)
			return -ENOMEM;
	}
	for (size_t i = 0; i < fw->n_rules; i++) {
		const Mt__Config__FirewallRule *rule = fw->rules[i];
		struct mt_nft_fw_compiled c = {0};
		uint32_t set_id = 1;

		if (!rule || rule->id == 0 || rule->id > MT_FW_RULE_ID_MAX) {
			snprintf(err, errlen,
				 "rules[%zu] (id %u): id outside 1..%u", i,
				 rule ? rule->id : 0, MT_FW_RULE_ID_MAX);
			return -EINVAL;
		}
		r = mt_nft_fw_rule_compile(table, rule, &set_id, &c);
		if (r < 0) {
			snprintf(
			    err, errlen, "rules[%zu] (id %u): %s", i, rule->id,
			    r == -EINVAL ? "not a valid rule in canonical form"
					 : strerror(-r));
			return r;
		}
		w->rules[i].rule = rule;
		w->rules[i].n_parts = c.n_parts;
		mt_nft_fw_compiled_fini(&c);
		ids[i] = (struct id_at){rule->id, i};
	}
	w->n_rules = fw->n_rules;
	if (w->n_rules)
		qsort(ids, w->n_rules, sizeof(*ids), id_at_cmp);
	for (size_t i = 1; i < w->n_rules; i++)
		if (ids[i].id == ids[i - 1].id) {
			snprintf(err, errlen,
				 "rules[%zu] (id %u): id already used by "
				 "rules[%zu]",
				 ids[i].at, ids[i].id, ids[i - 1].at);
			return -EINVAL;
		}

	if (fw->n_lists > MT_FW_LISTS_MAX) {
		snprintf(err, errlen, "%zu lists, more than %d", fw->n_lists,
			 MT_FW_LISTS_MAX);
		return -EINVAL;
	}
	if (fw->n_lists) {
		w->lists = calloc(fw->n_lists, sizeof(*w->lists));
		if (!w->lists)
			return -ENOMEM;
	}
	for (size_t i = 0; i < fw->n_lists; i++) {
		w->n_lists++;
		r = want_list(fw->lists[i], &w->lists[i], err, errlen);
		if (r < 0)
			return r;
	}
	if (w->n_lists)
		qsort(w->lists, w->n_lists, sizeof(*w->lists), want_list_cmp);
	for (size_t i = 1; i < w->n_lists; i++)
		if (strcmp(w->lists[i].name, w->lists[i - 1].name) == 0) {
			snprintf(err, errlen, "list \"%s\" given twice",
				 w->lists[i].name);
			return -EINVAL;
		}
	return 0;
}

char *mt_nft_fw_op_describe(const Mt__Kernel__Op *op, char *buf, size_t len)
{
	const Mt__Kernel__Firewall *fw = op->firewall;

	if (!fw) {
		snprintf(buf, len, "firewall (empty op)");
		return buf;
	}
	if (op->action == MT__KERNEL__OP__ACTION__DELETE)
		snprintf(buf, len, "delete firewall in netns %s",
			 fw->netns ? fw->netns : "");
	else
		snprintf(buf, len,
			 "create firewall (%zu rule%s, %zu list%s, default "
			 "%s) in netns %s",
			 fw->n_rules, fw->n_rules == 1 ? "" : "s", fw->n_lists,
			 fw->n_lists == 1 ? "" : "s",
			 fw->default_action && *fw->default_action
			     ? fw->default_action
			     : "allow",
			 fw->netns ? fw->netns : "");
	return buf;
}

/* ---- the plan ---- */

struct steps {
	struct mt_nft_fw_step *v;
	size_t n, cap;
	size_t op;
};

static struct mt_nft_fw_step *add(struct steps *s,
				  enum mt_nft_fw_step_type type)
{
	struct mt_nft_fw_step *x;

	if (grow(&s->v, &s->cap, s->n, sizeof(*s->v)) < 0)
		return NULL;
	x = &s->v[s->n++];
	memset(x, 0, sizeof(*x));
	x->type = type;
	x->op = s->op;
	return x;
}

static struct mt_nft_fw_step *
add_chain(struct steps *s, enum mt_nft_fw_step_type type, const char *chain)
{
	struct mt_nft_fw_step *x = add(s, type);

	if (x)
		x->chain = chain;
	return x;
}

static struct mt_nft_fw_step *add_set(struct steps *s,
				      enum mt_nft_fw_step_type type,
				      const char *list, int family)
{
	struct mt_nft_fw_step *x = add(s, type);

	if (x) {
		snprintf(x->list, sizeof(x->list), "%s", list);
		x->family = family;
	}
	return x;
}

static int add_elems(struct steps *s, enum mt_nft_fw_step_type type,
		     const char *list, int family, const struct mt_prefix *p,
		     size_t n)
{
	for (size_t off = 0; off < n; off += MT_NFT_FW_ELEMS_PER_MSG) {
		struct mt_nft_fw_step *x = add_set(s, type, list, family);

		if (!x)
			return -ENOMEM;
		x->prefixes = p + off;
		x->n = n - off < MT_NFT_FW_ELEMS_PER_MSG
			   ? n - off
			   : MT_NFT_FW_ELEMS_PER_MSG;
	}
	return 0;
}

static int del_group(struct steps *s, const struct mt_nft_fw_group *g)
{
	for (size_t k = 0; k < g->n; k++) {
		struct mt_nft_fw_step *x =
		    add_chain(s, MT_NFT_FW_DELRULE, MT_NFT_FW_RULES_CHAIN);

		if (!x)
			return -ENOMEM;
		x->rule_id = g->id;
		x->handle[0] = g->handle[k];
	}
	return 0;
}

static const struct mt_nft_fw_want_list *
want_list_find(const struct mt_nft_fw_want *w, const char *name)
{
	struct mt_nft_fw_want_list key;

	if (!w->n_lists)
		return NULL;
	snprintf(key.name, sizeof(key.name), "%s", name);
	return bsearch(&key, w->lists, w->n_lists, sizeof(*w->lists),
		       want_list_cmp);
}

/* The longest strictly increasing subsequence of v[0..n): in[i] set for
 * its members. */
static int lis(const size_t *v, size_t n, bool *in)
{
	_cleanup_free_ size_t *tail = calloc(n + 1, sizeof(*tail));
	_cleanup_free_ size_t *prev = calloc(n + 1, sizeof(*prev));
	size_t len = 0;

	if (!tail || !prev)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t lo = 0, hi = len;

		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (v[tail[mid]] < v[i])
				lo = mid + 1;
			else
				hi = mid;
		}
		prev[i] = lo ? tail[lo - 1] : SIZE_MAX;
		tail[lo] = i;
		if (lo == len)
			len++;
	}
	for (size_t i = len ? tail[len - 1] : SIZE_MAX; i != SIZE_MAX;
	     i = prev[i])
		in[i] = true;
	return 0;
}

static int plan_rules(const struct mt_nft_fw_state *st, bool have_rchain,
		      const struct mt_nft_fw_want *w, uint32_t *uid,
		      struct steps *s)
{
	size_t n = w->n_rules, n_seq = 0, last_anchor = SIZE_MAX;
	size_t n_groups = have_rchain ? st->n_groups : 0;
	_cleanup_free_ struct id_at *ids = NULL;
	_cleanup_free_ size_t *kg = NULL, *seq = NULL, *seq_g = NULL;
	_cleanup_free_ bool *in = NULL, *anchor = NULL;
	enum mt_nft_fw_pos prev = MT_NFT_FW_POS_HEAD;
	uint64_t prev_handle = 0;
	uint32_t prev_id = 0;
	int r;

	ids = calloc(n + 1, sizeof(*ids));
	kg = calloc(n + 1, sizeof(*kg));
	anchor = calloc(n + 1, sizeof(*anchor));
	seq = calloc(n_groups + 1, sizeof(*seq));
	seq_g = calloc(n_groups + 1, sizeof(*seq_g));
	in = calloc(n_groups + 1, sizeof(*in));
	if (!ids || !kg || !anchor || !seq || !seq_g || !in)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		ids[i] = (struct id_at){w->rules[i].rule->id, i};
		kg[i] = SIZE_MAX;
	}
	if (n)
		qsort(ids, n, sizeof(*ids), id_at_cmp);

	/* Match the kernel's intact rules to the desired ones by id; delete
	 * the rest. */
	for (size_t g = 0; g < n_groups; g++) {
		const struct mt_nft_fw_group *gr = &st->groups[g];
		struct id_at key = {gr->id, 0}, *hit = NULL;

		if (gr->rule && n) {
			/* ids are unique: compare by id only */
			size_t lo = 0, hi = n;

			while (lo < hi) {
				size_t mid = (lo + hi) / 2;

				if (ids[mid].id < key.id)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo < n && ids[lo].id == key.id)
				hit = &ids[lo];
		}
		if (hit && kg[hit->at] == SIZE_MAX) {
			kg[hit->at] = g;
			seq_g[n_seq] = g;
			seq[n_seq++] = hit->at;
			continue;
		}
		if ((r = del_group(s, gr)) < 0)
			return r;
	}
	/* Keep the longest run in order; move the others. */
	if ((r = lis(seq, n_seq, in)) < 0)
		return r;
	for (size_t k = 0; k < n_seq; k++) {
		size_t di = seq[k];
		const struct mt_nft_fw_group *gr = &st->groups[seq_g[k]];

		if (in[k] && (mt_fw_rule_equal(gr->rule, w->rules[di].rule) ||
			      gr->n == w->rules[di].n_parts)) {
			anchor[di] = true;
			last_anchor = di;
			continue;
		}
		if ((r = del_group(s, gr)) < 0)
			return r;
	}
	for (size_t di = 0; di < n; di++) {
		const struct mt_nft_fw_want_rule *wr = &w->rules[di];
		struct mt_nft_fw_step *x;

		if (anchor[di]) {
			const struct mt_nft_fw_group *gr = &st->groups[kg[di]];

			if (!mt_fw_rule_equal(gr->rule, wr->rule)) {
				x = add(s, MT_NFT_FW_REPLACERULE);
				if (!x)
					return -ENOMEM;
				x->chain = MT_NFT_FW_RULES_CHAIN;
				x->rule_id = wr->rule->id;
				x->rule = wr->rule;
				x->n_parts = wr->n_parts;
				memcpy(x->handle, gr->handle,
				       sizeof(x->handle));
			}
			prev = MT_NFT_FW_POS_HANDLE;
			prev_handle = gr->handle[gr->n - 1];
			continue;
		}
		x = add(s, MT_NFT_FW_NEWRULE);
		if (!x)
			return -ENOMEM;
		x->chain = MT_NFT_FW_RULES_CHAIN;
		x->rule_id = wr->rule->id;
		x->rule = wr->rule;
		x->n_parts = wr->n_parts;
		x->uid = *uid;
		*uid += (uint32_t)wr->n_parts;
		if (last_anchor == SIZE_MAX || di > last_anchor)
			x->pos = MT_NFT_FW_POS_TAIL;
		else
			x->pos = prev;
		x->pos_handle = prev_handle;
		x->pos_id = prev_id;
		prev = MT_NFT_FW_POS_ID;
		prev_id = x->uid + (uint32_t)wr->n_parts - 1;
	}
	return 0;
}

static int plan_base(const struct mt_nft_fw_state *st, bool have_chain,
		     const struct mt_nft_fw_want *w, struct steps *s)
{
	const struct mt_nft_fw_base *jump = NULL, *def = NULL;
	struct mt_nft_fw_step *x;

	for (size_t i = 0; have_chain && i < st->n_base; i++) {
		const struct mt_nft_fw_base *b = &st->base[i];

		if (b->kind == MT_NFT_FW_BASE_JUMP && !jump && !def) {
			jump = b;
			continue;
		}
		if (b->kind == MT_NFT_FW_BASE_DEFAULT && !def) {
			def = b;
			continue;
		}
		if (!(x = add_chain(s, MT_NFT_FW_DELRULE, MT_NFT_FW_CHAIN)))
			return -ENOMEM;
		x->handle[0] = b->handle;
	}
	if (!jump && !add_chain(s, MT_NFT_FW_NEWJUMP, MT_NFT_FW_CHAIN))
		return -ENOMEM;
	if (!def || def->block != w->block) {
		x = add_chain(
		    s, def ? MT_NFT_FW_REPLACEDEFAULT : MT_NFT_FW_NEWDEFAULT,
		    MT_NFT_FW_CHAIN);
		if (!x)
			return -ENOMEM;
		x->block = w->block;
		x->handle[0] = def ? def->handle : 0;
	}
	return 0;
}

static int plan_lists(const struct mt_nft_fw_state *st, bool lreset,
		      const struct mt_nft_fw_want *w, struct steps *s,
		      char *err, size_t errlen)
{
	struct mt_nft_fw_step *x;
	int r;

	/* Foreign elements first: a name mt adds below may be theirs. */
	for (size_t i = 0; !lreset && i < st->n_lists; i++) {
		if (!st->lists[i].foreign)
			continue;
		if (!(x = add_set(s, MT_NFT_FW_DELLISTELEM, "", 0)))
			return -ENOMEM;
		memcpy(x->key, st->lists[i].key, sizeof(x->key));
	}
	for (size_t i = 0; i < w->n_lists; i++) {
		const struct mt_nft_fw_want_list *l = &w->lists[i];
		const struct mt_nft_fw_kset *ks =
		    kset_find(st, l->name, l->family);
		const struct mt_nft_fw_klist *el =
		    lreset ? NULL : klist_find(st, l->name);
		const char *kd = NULL;

		if (ks && !ks->ok)
			ks = NULL; /* deleted by the rebuild */
		if (el && ks && el->family == l->family)
			kd = el->digest;
		if (kd && strcmp(kd, l->digest) == 0 && el->count == l->count)
			continue;
		if (kd && strcmp(kd, l->digest) == 0) {
			/* same content, the element says otherwise */
		} else if (l->delta) {
			if (!kd || strcmp(kd, l->base_digest) != 0) {
				snprintf(err, errlen,
					 "list \"%s\": the kernel holds "
					 "another version (%s) than the "
					 "delta's base %s: a full reload is "
					 "needed",
					 l->name, kd ? kd : "none",
					 l->base_digest);
				return -ESTALE;
			}
			r = add_elems(s, MT_NFT_FW_DELELEMS, l->name, l->family,
				      l->remove, l->n_remove);
			if (r == 0)
				r = add_elems(s, MT_NFT_FW_ADDELEMS, l->name,
					      l->family, l->add, l->n_add);
			if (r < 0)
				return r;
		} else {
			if (!add_set(s,
				     ks ? MT_NFT_FW_FLUSHSET : MT_NFT_FW_NEWSET,
				     l->name, l->family))
				return -ENOMEM;
			r = add_elems(s, MT_NFT_FW_ADDELEMS, l->name, l->family,
				      l->prefixes, l->n);
			if (r < 0)
				return r;
		}
		if (el) {
			if (!(x = add_set(s, MT_NFT_FW_DELLISTELEM, l->name,
					  el->family)))
				return -ENOMEM;
			memcpy(x->key, el->key, sizeof(x->key));
		}
		if (!(x = add_set(s, MT_NFT_FW_ADDLISTELEM, l->name,
				  l->family)))
			return -ENOMEM;
		memcpy(x->digest, l->digest, sizeof(x->digest));
		x->count = l->count;
	}
	return 0;
}

/* After the rules: the lists no longer desired (or now of the other
 * family). */
static int plan_lists_gone(const struct mt_nft_fw_state *st, bool lreset,
			   const struct mt_nft_fw_want *w, struct steps *s)
{
	struct mt_nft_fw_step *x;

	for (size_t i = 0; i < st->n_sets; i++) {
		const struct mt_nft_fw_kset *k = &st->sets[i];
		const struct mt_nft_fw_want_list *l =
		    want_list_find(w, k->name);

		if (!k->ok || (l && l->family == k->family))
			continue; /* not ok: deleted by the rebuild */
		if (!add_set(s, MT_NFT_FW_DELSET, k->name, k->family))
			return -ENOMEM;
	}
	for (size_t i = 0; !lreset && i < st->n_lists; i++) {
		const struct mt_nft_fw_klist *e = &st->lists[i];

		if (e->foreign || want_list_find(w, e->name))
			continue;
		if (!(x = add_set(s, MT_NFT_FW_DELLISTELEM, e->name,
				  e->family)))
			return -ENOMEM;
		memcpy(x->key, e->key, sizeof(x->key));
	}
	return 0;
}

static int plan_create(const struct mt_nft_fw_state *st,
		       const struct mt_nft_fw_want *w, uint32_t *uid,
		       struct steps *s, char *err, size_t errlen)
{
	bool rebuild =
	    (st->chain && !st->chain_ok) || (st->rchain && !st->rchain_ok);
	bool have_chain, have_rchain, lreset;
	int r;

	for (size_t i = 0; i < st->n_sets; i++)
		if (!st->sets[i].ok)
			rebuild = true;
	have_chain = st->chain && !rebuild;
	have_rchain = st->rchain && !rebuild;
	lreset = !st->lset || !st->lset_ok;

	if ((!st->table || st->dormant) && !add(s, MT_NFT_FW_NEWTABLE))
		return -ENOMEM;
	if (rebuild) {
		if (st->chain &&
		    !add_chain(s, MT_NFT_FW_DELCHAIN, MT_NFT_FW_CHAIN))
			return -ENOMEM;
		if (st->rchain &&
		    !add_chain(s, MT_NFT_FW_DELCHAIN, MT_NFT_FW_RULES_CHAIN))
			return -ENOMEM;
		for (size_t i = 0; i < st->n_sets; i++)
			if (!st->sets[i].ok &&
			    !add_set(s, MT_NFT_FW_DELSET, st->sets[i].name,
				     st->sets[i].family))
				return -ENOMEM;
	}
	if (st->lset && !st->lset_ok && !add_set(s, MT_NFT_FW_DELSET, "", 0))
		return -ENOMEM;
	if (!have_rchain &&
	    !add_chain(s, MT_NFT_FW_NEWCHAIN, MT_NFT_FW_RULES_CHAIN))
		return -ENOMEM;
	if (!have_chain && !add_chain(s, MT_NFT_FW_NEWCHAIN, MT_NFT_FW_CHAIN))
		return -ENOMEM;
	if (lreset && !add_set(s, MT_NFT_FW_NEWSET, "", 0))
		return -ENOMEM;

	if ((r = plan_lists(st, lreset, w, s, err, errlen)) < 0 ||
	    (r = plan_rules(st, have_rchain, w, uid, s)) < 0 ||
	    (r = plan_base(st, have_chain, w, s)) < 0 ||
	    (r = plan_lists_gone(st, lreset, w, s)) < 0)
		return r;
	return 0;
}

static int plan_delete(const struct mt_nft_fw_state *st, struct steps *s)
{
	if (st->chain && !add_chain(s, MT_NFT_FW_DELCHAIN, MT_NFT_FW_CHAIN))
		return -ENOMEM;
	if (st->rchain &&
	    !add_chain(s, MT_NFT_FW_DELCHAIN, MT_NFT_FW_RULES_CHAIN))
		return -ENOMEM;
	for (size_t i = 0; i < st->n_sets; i++)
		if (!add_set(s, MT_NFT_FW_DELSET, st->sets[i].name,
			     st->sets[i].family))
			return -ENOMEM;
	if (st->lset && !add_set(s, MT_NFT_FW_DELSET, "", 0))
		return -ENOMEM;
	return 0;
}

int mt_nft_fw_plan(const struct mt_nft_fw_state *st,
		   const struct mt_nft_fw_want *w, uint32_t *next_uid,
		   struct mt_nft_fw_step **steps, size_t *n_steps, char *err,
		   size_t errlen)
{
	struct steps s = {.op = w->op};
	uint32_t uid = *next_uid ? *next_uid : 1;
	int r;

	err[0] = '\0';
	r = w->del ? plan_delete(st, &s)
		   : plan_create(st, w, &uid, &s, err, errlen);
	if (r == 0 && s.n) {
		struct mt_nft_fw_step *g =
		    realloc(*steps, (*n_steps + s.n) * sizeof(*g));

		if (!g) {
			r = -ENOMEM;
		} else {
			memcpy(g + *n_steps, s.v, s.n * sizeof(*g));
			*steps = g;
			*n_steps += s.n;
			*next_uid = uid;
		}
	}
	free(s.v);
	return r;
}

/* ---- steps into messages ---- */

#define PUT(b, type, flags, tag, build, obj)                    \
	({                                                      \
		struct nlmsghdr *_nlh = mt_nft_batch_msg(       \
		    (b), (type), NFPROTO_INET, (flags), (tag)); \
		int _r = -ENOMEM;                               \
		if (_nlh) {                                     \
			build(_nlh, (obj));                     \
			_r = mt_nft_batch_msg_end(b);           \
		}                                               \
		_r;                                             \
	})


static struct nftnl_set *set_named(const char *table, const char *name)
{
	struct nftnl_set *s = nftnl_set_alloc();

	if (!s)
		return NULL;
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	return s;
}

static bool set_has_elems(struct nftnl_set *s)
{
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
	bool any;

	if (!it)
		return true; /* let the kernel judge an empty message */
	any = nftnl_set_elems_iter_cur(it) != NULL;
	nftnl_set_elems_iter_destroy(it);
	return any;
}

static int put_rule(struct mt_nft_batch *b, const char *table,
		    const struct mt_nft_fw_step *s, uint32_t *set_id, long tag)
{
	struct mt_nft_fw_compiled c = {0};
	bool replace = s->type == MT_NFT_FW_REPLACERULE;
	int r;

	r = mt_nft_fw_rule_compile(table, s->rule, set_id, &c);
	if (r < 0)
		return r;
	if (c.n_parts != s->n_parts) {
		r = -EINVAL; /* planned for another compiler */
		goto out;
	}
	for (size_t i = 0; i < c.n_sets && r == 0; i++) {
		r = PUT(b, NFT_MSG_NEWSET, NLM_F_CREATE, tag,
			nftnl_set_nlmsg_build_payload, c.sets[i]);
		if (r == 0 && set_has_elems(c.sets[i]))
			r = PUT(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE, tag,
				nftnl_set_elems_nlmsg_build_payload, c.sets[i]);
	}
	for (size_t k = 0; k < c.n_parts && r == 0; k++) {
		struct nftnl_rule *p = c.parts[k];
		uint16_t flags = NLM_F_CREATE;

		if (replace) {
			nftnl_rule_set_u64(p, NFTNL_RULE_HANDLE, s->handle[k]);
			flags = NLM_F_REPLACE;
		} else {
			nftnl_rule_set_u32(p, NFTNL_RULE_ID,
					   s->uid + (uint32_t)k);
			if (k > 0 && s->pos != MT_NFT_FW_POS_TAIL) {
				nftnl_rule_set_u32(p, NFTNL_RULE_POSITION_ID,
						   s->uid + (uint32_t)k - 1);
				flags |= NLM_F_APPEND;
			} else if (s->pos == MT_NFT_FW_POS_TAIL) {
				flags |= NLM_F_APPEND;
			} else if (s->pos == MT_NFT_FW_POS_HANDLE) {
				nftnl_rule_set_u64(p, NFTNL_RULE_POSITION,
						   s->pos_handle);
				flags |= NLM_F_APPEND;
			} else if (s->pos == MT_NFT_FW_POS_ID) {
				nftnl_rule_set_u32(p, NFTNL_RULE_POSITION_ID,
						   s->pos_id);
				flags |= NLM_F_APPEND;
			}
		}
		r = PUT(b, NFT_MSG_NEWRULE, flags, tag,
			nftnl_rule_nlmsg_build_payload, p);
	}
out:
	mt_nft_fw_compiled_fini(&c);
	return r;
}

int mt_nft_fw_step_batch(struct mt_nft_batch *b, const char *table,
			 const struct mt_nft_fw_step *s, uint32_t *set_id,
			 long tag)
{
	_cleanup_set_ struct nftnl_set *set = NULL;
	_cleanup_rule_ struct nftnl_rule *rule = NULL;
	_cleanup_chain_ struct nftnl_chain *ch = NULL;
	char name[MT_NFT_FW_LIST_SET_NAME_MAX];
	struct nftnl_table *t;
	int r;

	if (*s->list || s->type == MT_NFT_FW_ADDELEMS ||
	    s->type == MT_NFT_FW_DELELEMS || s->type == MT_NFT_FW_FLUSHSET)
		mt_nft_fw_list_set_name(s->family, s->list, name, sizeof(name));
	switch (s->type) {
	case MT_NFT_FW_NEWTABLE:
		if (!(t = mt_nft_cust_table_new(table)))
			return -ENOMEM;
		r = PUT(b, NFT_MSG_NEWTABLE, NLM_F_CREATE, tag,
			nftnl_table_nlmsg_build_payload, t);
		nftnl_table_free(t);
		return r;
	case MT_NFT_FW_NEWCHAIN:
		ch = strcmp(s->chain, MT_NFT_FW_CHAIN) == 0
			 ? mt_nft_fw_chain_new(table)
			 : mt_nft_fw_rules_chain_new(table);
		if (!ch)
			return -ENOMEM;
		return PUT(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE, tag,
			   nftnl_chain_nlmsg_build_payload, ch);
	case MT_NFT_FW_DELCHAIN:
		/* by name only; its rules go with it */
		if (!(ch = nftnl_chain_alloc()))
			return -ENOMEM;
		nftnl_chain_set_u32(ch, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
		nftnl_chain_set_str(ch, NFTNL_CHAIN_TABLE, table);
		nftnl_chain_set_str(ch, NFTNL_CHAIN_NAME, s->chain);
		return PUT(b, NFT_MSG_DELCHAIN, 0, tag,
			   nftnl_chain_nlmsg_build_payload, ch);
	case MT_NFT_FW_NEWSET:
		set = *s->list
			  ? mt_nft_fw_list_set_new(table, s->family, s->list)
			  : mt_nft_fw_lists_set_new(table);
		if (!set)
			return -ENOMEM;
		if (!nftnl_set_is_set(set, NFTNL_SET_ID))
			nftnl_set_set_u32(set, NFTNL_SET_ID, (*set_id)++);
		return PUT(b, NFT_MSG_NEWSET, NLM_F_CREATE, tag,
			   nftnl_set_nlmsg_build_payload, set);
	case MT_NFT_FW_DELSET:
		set = set_named(table, *s->list ? name : MT_NFT_FW_LISTS_SET);
		if (!set)
			return -ENOMEM;
		return PUT(b, NFT_MSG_DELSET, 0, tag,
			   nftnl_set_nlmsg_build_payload, set);
	case MT_NFT_FW_FLUSHSET:
		if (!(set = set_named(table, name)))
			return -ENOMEM;
		return PUT(b, NFT_MSG_DELSETELEM, 0, tag,
			   nftnl_set_elems_nlmsg_build_payload, set);
	case MT_NFT_FW_ADDELEMS:
	case MT_NFT_FW_DELELEMS:
		set = mt_nft_fw_list_elems_new(table, name, s->prefixes, s->n);
		if (!set)
			return -ENOMEM;
		if (s->type == MT_NFT_FW_ADDELEMS)
			return PUT(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE, tag,
				   nftnl_set_elems_nlmsg_build_payload, set);
		return PUT(b, NFT_MSG_DELSETELEM, 0, tag,
			   nftnl_set_elems_nlmsg_build_payload, set);
	case MT_NFT_FW_ADDLISTELEM:
		set = mt_nft_fw_lists_elem_new(table, s->list, s->family,
					       s->digest, s->count);
		if (!set)
			return -ENOMEM;
		return PUT(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE, tag,
			   nftnl_set_elems_nlmsg_build_payload, set);
	case MT_NFT_FW_DELLISTELEM: {
		struct nftnl_set_elem *e;

		if (!(set = set_named(table, MT_NFT_FW_LISTS_SET)) ||
		    !(e = nftnl_set_elem_alloc()))
			return -ENOMEM;
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, s->key,
				   MT_NFT_FW_KEY_LEN);
		nftnl_set_elem_add(set, e);
		return PUT(b, NFT_MSG_DELSETELEM, 0, tag,
			   nftnl_set_elems_nlmsg_build_payload, set);
	}
	case MT_NFT_FW_NEWRULE:
	case MT_NFT_FW_REPLACERULE:
		return put_rule(b, table, s, set_id, tag);
	case MT_NFT_FW_DELRULE:
		if (!(rule = nftnl_rule_alloc()))
			return -ENOMEM;
		nftnl_rule_set_u32(rule, NFTNL_RULE_FAMILY, NFPROTO_INET);
		nftnl_rule_set_str(rule, NFTNL_RULE_TABLE, table);
		nftnl_rule_set_str(rule, NFTNL_RULE_CHAIN, s->chain);
		nftnl_rule_set_u64(rule, NFTNL_RULE_HANDLE, s->handle[0]);
		return PUT(b, NFT_MSG_DELRULE, 0, tag,
			   nftnl_rule_nlmsg_build_payload, rule);
	case MT_NFT_FW_NEWJUMP:
		if (!(rule = mt_nft_fw_jump_rule_new(table)))
			return -ENOMEM;
		return PUT(b, NFT_MSG_NEWRULE, NLM_F_CREATE, tag,
			   nftnl_rule_nlmsg_build_payload, rule);
	case MT_NFT_FW_NEWDEFAULT:
	case MT_NFT_FW_REPLACEDEFAULT:
		rule = mt_nft_fw_default_rule_new(table,
						  s->block ? "block" : "allow");
		if (!rule)
			return -ENOMEM;
		if (s->type == MT_NFT_FW_NEWDEFAULT)
			return PUT(b, NFT_MSG_NEWRULE,
				   NLM_F_CREATE | NLM_F_APPEND, tag,
				   nftnl_rule_nlmsg_build_payload, rule);
		nftnl_rule_set_u64(rule, NFTNL_RULE_HANDLE, s->handle[0]);
		return PUT(b, NFT_MSG_NEWRULE, NLM_F_REPLACE, tag,
			   nftnl_rule_nlmsg_build_payload, rule);
	}
	return -EINVAL;
}

char *mt_nft_fw_step_what(const struct mt_nft_fw_step *s, char *buf, size_t len)
{
	if (s->rule_id)
		snprintf(buf, len, "rule %u", s->rule_id);
	else if (*s->list)
		snprintf(buf, len, "list \"%s\"", s->list);
	else if (s->type == MT_NFT_FW_NEWTABLE)
		snprintf(buf, len, "the table");
	else if (s->chain)
		snprintf(buf, len, "chain %s", s->chain);
	else
		snprintf(buf, len, "set %s", MT_NFT_FW_LISTS_SET);
	return buf;
}
