#include "nft_mark.h"

#include <errno.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "mt_cleanup.h"
#include "nftnl_cleanup.h"
#include "mt_kstate.h"
#include "mt_log.h"
#include "nft_batch.h"

/* nft(8) datatype ids, stored as the set key type so `nft list` prints
 * addresses (nftables' enum datatypes: TYPE_IPADDR, TYPE_IP6ADDR). */
#define NFT_TYPE_IPADDR 7
#define NFT_TYPE_IP6ADDR 8
#define TABLE_COMMENT "mt: customer prefix marking (managed by mt-fastpath)"
#define READ_ATTEMPTS 5
#define APPLY_ATTEMPTS 4
#define REQ_BUF_SIZE 4096 /* one GET or dump request */


static size_t addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

static const char *set_name(int family)
{
	return family == AF_INET ? MT_NFT_MARK_SET4 : MT_NFT_MARK_SET6;
}

/* ---- interval arithmetic ---- */

/* Sets the host bits of p (after p->len) to one: the last address. */
static void prefix_last(const struct mt_prefix *p, uint8_t last[16])
{
	size_t n = addr_len(p->family);

	memset(last, 0, 16);
	memcpy(last, p->addr, n);
	for (size_t bit = p->len; bit < n * 8; bit++)
		last[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
}

int mt_nft_mark_interval_end(const struct mt_prefix *p, uint8_t end[16])
{
	size_t n = addr_len(p->family);

	prefix_last(p, end);
	/* last + 1, carrying from the lowest byte; a carry out of the top
	 * byte means the prefix ends at the top of the address space. */
	for (size_t i = n; i-- > 0;) {
		if (++end[i] != 0)
			return 0;
	}
	return -ERANGE;
}

int mt_nft_mark_range_prefix(const struct mt_nft_mark_range *r,
			     struct mt_prefix *p)
{
	size_t n = addr_len(r->family);
	size_t len = 0;
	bool host = false;

	/* first..last is one CIDR block when first ^ last is all zeros then
	 * all ones, and first has zeros wherever last has the ones. */
	for (size_t bit = 0; bit < n * 8; bit++) {
		uint8_t m = (uint8_t)(0x80 >> (bit % 8));
		bool f = r->first[bit / 8] & m, l = r->last[bit / 8] & m;

		if (!host && f == l) {
			len++;
			continue;
		}
		host = true;
		if (f || !l)
			return -EINVAL;
	}
	memset(p, 0, sizeof(*p));
	p->family = r->family;
	p->len = (uint8_t)len;
	memcpy(p->addr, r->first, n);
	return 0;
}

/* ---- userdata comments ---- */

struct comment {
	uint8_t type;
	const char *str;
};

static int comment_cb(const struct nftnl_udata *attr, void *data)
{
	struct comment *c = data;
	const char *v = nftnl_udata_get(attr);
	uint8_t len = nftnl_udata_len(attr);

	if (nftnl_udata_type(attr) == c->type && len > 0 && v[len - 1] == '\0')
		c->str = v;
	return 0;
}

/* The comment of type in a userdata blob, or NULL. Points into data. */
static const char *comment_get(const void *data, uint32_t len, uint8_t type)
{
	struct comment c = { .type = type };

	if (!data || !len)
		return NULL;
	if (nftnl_udata_parse(data, len, comment_cb, &c) < 0)
		return NULL;
	return c.str;
}

static struct nftnl_udata_buf *comment_new(uint8_t type, const char *s)
{
	struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(
		NFTNL_UDATA_COMMENT_MAXLEN + 8);

	if (u && !nftnl_udata_put_strz(u, type, s)) {
		nftnl_udata_buf_free(u);
		return NULL;
	}
	return u;
}

/* ---- rules ---- */

static struct nftnl_expr *expr_new(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);

	if (e)
		nftnl_rule_add_expr(r, e);
	return e;
}

struct nftnl_rule *mt_nft_mark_rule_new(const char *table, int family,
					uint32_t fwmark, uint32_t fwmask)
{
	_cleanup_rule_ struct nftnl_rule *r = nftnl_rule_alloc();
	_cleanup_udata_ struct nftnl_udata_buf *u = NULL;
	bool v4 = family == AF_INET;
	uint32_t mask = ~fwmask, xor = fwmark;
	struct nftnl_expr *e;

	if (!r)
		return NULL;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, MT_NFT_MARK_CHAIN);

	/* meta load nfproto => reg 1; cmp eq reg 1 ipv4/ipv6 */
	if (!(e = expr_new(r, "meta")))
		return NULL;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_NFPROTO);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	if (!(e = expr_new(r, "cmp")))
		return NULL;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
	nftnl_expr_set_u8(e, NFTNL_EXPR_CMP_DATA,
			  v4 ? NFPROTO_IPV4 : NFPROTO_IPV6);

	/* payload load daddr => reg 1; lookup reg 1 @prefixes4/6 */
	if (!(e = expr_new(r, "payload")))
		return NULL;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE,
			   NFT_PAYLOAD_NETWORK_HEADER);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, v4 ? 16 : 24);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, v4 ? 4 : 16);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	if (!(e = expr_new(r, "lookup")))
		return NULL;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set_name(family));

	/* meta load mark => reg 1; reg 1 = (reg 1 & ~fwmask) ^ fwmark;
	 * meta set mark with reg 1. fwmark lies inside fwmask, so the xor is
	 * the "| fwmark" of the rule as nft(8) writes it. */
	if (!(e = expr_new(r, "meta")))
		return NULL;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_MARK);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	if (!(e = expr_new(r, "bitwise")))
		return NULL;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_OP, NFT_BITWISE_BOOL);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &xor, sizeof(xor));
	if (!(e = expr_new(r, "meta")))
		return NULL;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_MARK);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, NFT_REG_1);

	u = comment_new(NFTNL_UDATA_RULE_COMMENT,
			v4 ? MT_NFT_MARK_TAG4 : MT_NFT_MARK_TAG6);
	if (!u)
		return NULL;
	nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(u),
			    nftnl_udata_buf_len(u));
	return MT_TAKE_PTR(r);
}

static bool expr_is(const struct nftnl_expr *e, const char *name)
{
	const char *n = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);

	return n && strcmp(n, name) == 0;
}

static bool expr_u32(const struct nftnl_expr *e, uint16_t attr, uint32_t v)
{
	return nftnl_expr_is_set(e, attr) && nftnl_expr_get_u32(e, attr) == v;
}

static bool expr_data32(const struct nftnl_expr *e, uint16_t attr,
			uint32_t *v)
{
	uint32_t len = 0;
	const void *d = nftnl_expr_get(e, attr, &len);

	if (!d || len != sizeof(*v))
		return false;
	memcpy(v, d, sizeof(*v));
	return true;
}

/* Checks expression i of a marking rule for family; fills mark and mask
 * from the bitwise step. */
static bool expr_matches(const struct nftnl_expr *e, int i, int family,
			 uint32_t *mask, uint32_t *xor)
{
	bool v4 = family == AF_INET;
	uint32_t len = 0;
	const uint8_t *d;
	const char *s;

	switch (i) {
	case 0:
		return expr_is(e, "meta") &&
		       expr_u32(e, NFTNL_EXPR_META_KEY, NFT_META_NFPROTO) &&
		       expr_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	case 1:
		d = expr_is(e, "cmp") ? nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA,
							&len) : NULL;
		return d && len == 1 &&
		       d[0] == (v4 ? NFPROTO_IPV4 : NFPROTO_IPV6) &&
		       expr_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1) &&
		       expr_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
	case 2:
		return expr_is(e, "payload") &&
		       expr_u32(e, NFTNL_EXPR_PAYLOAD_BASE,
				NFT_PAYLOAD_NETWORK_HEADER) &&
		       expr_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, v4 ? 16 : 24) &&
		       expr_u32(e, NFTNL_EXPR_PAYLOAD_LEN, v4 ? 4 : 16) &&
		       expr_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	case 3:
		s = expr_is(e, "lookup") ?
			nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET) : NULL;
		return s && strcmp(s, set_name(family)) == 0 &&
		       expr_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1) &&
		       !nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_DREG) &&
		       (!nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_FLAGS) ||
			nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_FLAGS) == 0);
	case 4:
		return expr_is(e, "meta") &&
		       expr_u32(e, NFTNL_EXPR_META_KEY, NFT_META_MARK) &&
		       expr_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	case 5:
		return expr_is(e, "bitwise") &&
		       expr_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1) &&
		       expr_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1) &&
		       expr_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t)) &&
		       (!nftnl_expr_is_set(e, NFTNL_EXPR_BITWISE_OP) ||
			nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_OP) ==
				NFT_BITWISE_BOOL) &&
		       expr_data32(e, NFTNL_EXPR_BITWISE_MASK, mask) &&
		       expr_data32(e, NFTNL_EXPR_BITWISE_XOR, xor);
	case 6:
		return expr_is(e, "meta") &&
		       expr_u32(e, NFTNL_EXPR_META_KEY, NFT_META_MARK) &&
		       expr_u32(e, NFTNL_EXPR_META_SREG, NFT_REG_1) &&
		       !nftnl_expr_is_set(e, NFTNL_EXPR_META_DREG);
	default:
		return false;
	}
}

int mt_nft_mark_rule_parse(const struct nftnl_rule *r, int *family,
			   uint32_t *fwmark, uint32_t *fwmask)
{
	struct nftnl_expr_iter *it;
	struct nftnl_expr *e;
	uint32_t ulen = 0, mask = 0, xor = 0;
	const void *ud = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &ulen);
	const char *tag = comment_get(ud, ulen, NFTNL_UDATA_RULE_COMMENT);
	int fam, i = 0;
	bool ok = true;

	if (!tag)
		return -ENOENT;
	if (strcmp(tag, MT_NFT_MARK_TAG4) == 0)
		fam = AF_INET;
	else if (strcmp(tag, MT_NFT_MARK_TAG6) == 0)
		fam = AF_INET6;
	else
		return -ENOENT;

	it = nftnl_expr_iter_create(r);
	if (!it)
		return -ENOMEM;
	while (ok && (e = nftnl_expr_iter_next(it)))
		ok = expr_matches(e, i++, fam, &mask, &xor);
	nftnl_expr_iter_destroy(it);
	/* xor == fwmark only when the mark lies inside the mask. */
	if (!ok || i != 7 || (xor & mask) != 0)
		return -ENOENT;
	*family = fam;
	*fwmark = xor;
	*fwmask = ~mask;
	return 0;
}

/* ---- set elements ---- */

int mt_nft_mark_elems_add(struct nftnl_set *s, const struct mt_prefix *p,
			  const char *owner)
{
	struct nftnl_set_elem *e;
	uint8_t end[16];
	size_t n = addr_len(p->family);

	if (owner && strlen(owner) > MT_NFT_MARK_OWNER_MAX)
		return -EINVAL;
	e = nftnl_set_elem_alloc();
	if (!e)
		return -ENOMEM;
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, p->addr, (uint32_t)n);
	if (owner) {
		_cleanup_udata_ struct nftnl_udata_buf *u =
			comment_new(NFTNL_UDATA_SET_ELEM_COMMENT, owner);

		if (!u) {
			nftnl_set_elem_free(e);
			return -ENOMEM;
		}
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_USERDATA,
				   nftnl_udata_buf_data(u),
				   nftnl_udata_buf_len(u));
	}
	nftnl_set_elem_add(s, e);
	if (mt_nft_mark_interval_end(p, end) < 0)
		return 0; /* open interval: no end element */
	e = nftnl_set_elem_alloc();
	if (!e)
		return -ENOMEM;
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, end, (uint32_t)n);
	nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_FLAGS,
			       NFT_SET_ELEM_INTERVAL_END);
	nftnl_set_elem_add(s, e);
	return 0;
}

struct raw_elem {
	uint8_t key[16];
	bool end;
	const char *owner;
};

static int raw_cmp(const void *a, const void *b, void *klen)
{
	const struct raw_elem *x = a, *y = b;
	int c = memcmp(x->key, y->key, *(size_t *)klen);

	if (c)
		return c;
	/* At one key an end closes the previous interval before a start
	 * opens the next (adjacent prefixes). */
	return (int)y->end - (int)x->end;
}

int mt_nft_mark_elems_parse(const struct nftnl_set *s, int family,
			    struct mt_nft_mark_range **out, size_t *n_out)
{
	_cleanup_free_ struct raw_elem *raw = NULL;
	struct mt_nft_mark_range *ranges = NULL;
	struct nftnl_set_elems_iter *it;
	struct nftnl_set_elem *e;
	size_t n = 0, cap = 0, nr = 0, klen = addr_len(family);

	*out = NULL;
	*n_out = 0;
	it = nftnl_set_elems_iter_create(s);
	if (!it)
		return -ENOMEM;
	/* iter_next returns the current element, then advances. */
	while ((e = nftnl_set_elems_iter_next(it))) {
		uint32_t len = 0, ulen = 0;
		const void *key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY,
						     &len);
		const void *ud;

		if (!key || len != klen)
			continue;
		if (n == cap) {
			struct raw_elem *g;

			cap = cap ? cap * 2 : 64;
			g = realloc(raw, cap * sizeof(*g));
			if (!g) {
				nftnl_set_elems_iter_destroy(it);
				return -ENOMEM;
			}
			raw = g;
		}
		memset(&raw[n], 0, sizeof(raw[n]));
		memcpy(raw[n].key, key, klen);
		raw[n].end = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS) &&
			     (nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) &
			      NFT_SET_ELEM_INTERVAL_END);
		ud = nftnl_set_elem_get(e, NFTNL_SET_ELEM_USERDATA, &ulen);
		raw[n].owner = comment_get(ud, ulen,
					   NFTNL_UDATA_SET_ELEM_COMMENT);
		n++;
	}
	nftnl_set_elems_iter_destroy(it);

	if (n)
		qsort_r(raw, n, sizeof(*raw), raw_cmp, &klen);
	if (n) {
		ranges = calloc(n, sizeof(*ranges));
		if (!ranges)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct mt_nft_mark_range *r = &ranges[nr];

		if (raw[i].end)
			continue; /* stray end (e.g. nft's old gap marker) */
		r->family = family;
		memcpy(r->first, raw[i].key, klen);
		snprintf(r->owner, sizeof(r->owner), "%s",
			 raw[i].owner ? raw[i].owner : "");
		if (i + 1 < n) {
			/* The kernel matches a key against the closest element
			 * at or below it: an interval ends before the next
			 * element, normally its end element. */
			memcpy(r->last, raw[i + 1].key, klen);
			if (memcmp(r->last, r->first, klen) == 0)
				continue; /* cannot happen in an rbtree */
			for (size_t b = klen; b-- > 0;) {
				if (r->last[b]-- != 0)
					break;
			}
			if (raw[i + 1].end)
				i++;
		} else {
			memset(r->last, 0xff, klen); /* open interval */
		}
		nr++;
	}
	*out = ranges;
	*n_out = nr;
	return 0;
}

/* ---- snapshot of the table and the transaction plan ---- */

static void range_from_prefix(const struct mt_prefix *p,
			      struct mt_nft_mark_range *r, const char *owner)
{
	memset(r, 0, sizeof(*r));
	r->family = p->family;
	memcpy(r->first, p->addr, addr_len(p->family));
	prefix_last(p, r->last);
	snprintf(r->owner, sizeof(r->owner), "%s", owner ? owner : "");
}

static bool range_equal(const struct mt_nft_mark_range *a,
			const struct mt_nft_mark_range *b)
{
	size_t n = addr_len(a->family);

	return a->family == b->family && memcmp(a->first, b->first, n) == 0 &&
	       memcmp(a->last, b->last, n) == 0;
}

static bool range_overlaps(const struct mt_nft_mark_range *a,
			   const struct mt_nft_mark_range *b)
{
	size_t n = addr_len(a->family);

	return a->family == b->family && memcmp(a->first, b->last, n) <= 0 &&
	       memcmp(b->first, a->last, n) <= 0;
}

static char *range_format(const struct mt_nft_mark_range *r, char *buf,
			  size_t len)
{
	struct mt_prefix p, q = { .family = r->family };
	char a[MT_PREFIX_STRLEN], b[MT_PREFIX_STRLEN];

	if (mt_nft_mark_range_prefix(r, &p) == 0)
		return mt_prefix_format(&p, buf, len);
	p = q;
	memcpy(p.addr, r->first, addr_len(r->family));
	memcpy(q.addr, r->last, addr_len(r->family));
	snprintf(buf, len, "%s-%s", mt_addr_format(&p, a, sizeof(a)),
		 mt_addr_format(&q, b, sizeof(b)));
	return buf;
}

void mt_nft_mark_state_fini(struct mt_nft_mark_state *st)
{
	free(st->ranges);
	memset(st, 0, sizeof(*st));
}

/* Order of ranges in a state: family, then first address. The ranges of
 * one family never overlap, so their last addresses are ordered too. */
static int range_cmp(const struct mt_nft_mark_range *a,
		     const struct mt_nft_mark_range *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->first, b->first, addr_len(a->family));
}

/* Index of the first range not ordered before want (binary search). */
static size_t state_lower(const struct mt_nft_mark_state *st,
			  const struct mt_nft_mark_range *want)
{
	size_t lo = 0, hi = st->n_ranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (range_cmp(&st->ranges[mid], want) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int mt_nft_mark_state_add(struct mt_nft_mark_state *st,
			  const struct mt_nft_mark_range *r)
{
	size_t at;

	if (st->n_ranges == st->cap_ranges) {
		size_t cap = st->cap_ranges ? st->cap_ranges * 2 : 16;
		struct mt_nft_mark_range *g = realloc(st->ranges,
						      cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		st->ranges = g;
		st->cap_ranges = cap;
	}
	/* Plans usually come sorted (the diff walks sorted keys), so this
	 * is mostly an append. */
	at = state_lower(st, r);
	memmove(&st->ranges[at + 1], &st->ranges[at],
		(st->n_ranges - at) * sizeof(*r));
	st->ranges[at] = *r;
	st->n_ranges++;
	return 0;
}

static void state_del_range(struct mt_nft_mark_state *st, size_t i)
{
	memmove(&st->ranges[i], &st->ranges[i + 1],
		(st->n_ranges - i - 1) * sizeof(st->ranges[0]));
	st->n_ranges--;
}

/* The range of st equal to want, and else the first one overlapping it
 * (*equal tells which), or NULL. */
static struct mt_nft_mark_range *
state_find(struct mt_nft_mark_state *st, const struct mt_nft_mark_range *want,
	   bool *equal)
{
	size_t at = state_lower(st, want);

	*equal = false;
	if (at < st->n_ranges && range_equal(&st->ranges[at], want)) {
		*equal = true;
		return &st->ranges[at];
	}
	if (at > 0 && range_overlaps(&st->ranges[at - 1], want))
		return &st->ranges[at - 1];
	if (at < st->n_ranges && range_overlaps(&st->ranges[at], want))
		return &st->ranges[at];
	return NULL;
}

/* Starts a message of an nftnl object, builds its payload, closes it. */
#define BATCH_OBJ(b, type, flags, tag, build, obj)                             \
	({                                                                     \
		struct nlmsghdr *_nlh = mt_nft_batch_msg(                      \
			(b), (type), NFPROTO_INET, (flags), (tag));            \
		int _r = -ENOMEM;                                              \
		if (_nlh) {                                                    \
			build(_nlh, (obj));                                    \
			_r = mt_nft_batch_msg_end(b);                          \
		}                                                              \
		_r;                                                            \
	})

static int plan_table_create(struct mt_nft_batch *b, long tag,
			     const Mt__Kernel__MarkTable *t)
{
	struct nftnl_table *tb = nftnl_table_alloc();
	struct nftnl_chain *c = NULL;
	_cleanup_rule_ struct nftnl_rule *flush = NULL;
	_cleanup_udata_ struct nftnl_udata_buf *u = NULL;
	int r = -ENOMEM;

	if (!tb)
		return -ENOMEM;
	nftnl_table_set_u32(tb, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_set_str(tb, NFTNL_TABLE_NAME, t->name);
	/* flags 0 also wakes a table someone set dormant. */
	nftnl_table_set_u32(tb, NFTNL_TABLE_FLAGS, 0);
	u = comment_new(NFTNL_UDATA_TABLE_COMMENT, TABLE_COMMENT);
	if (!u)
		goto out;
	nftnl_table_set_data(tb, NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(u),
			     nftnl_udata_buf_len(u));
	r = BATCH_OBJ(b, NFT_MSG_NEWTABLE, NLM_F_CREATE, tag,
		      nftnl_table_nlmsg_build_payload, tb);
	if (r < 0)
		goto out;

	for (int i = 0; i < 2; i++) {
		int fam = i == 0 ? AF_INET : AF_INET6;
		_cleanup_set_ struct nftnl_set *s = nftnl_set_alloc();

		r = -ENOMEM;
		if (!s)
			goto out;
		nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
		nftnl_set_set_str(s, NFTNL_SET_TABLE, t->name);
		nftnl_set_set_str(s, NFTNL_SET_NAME, set_name(fam));
		nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, fam == AF_INET ?
				  NFT_TYPE_IPADDR : NFT_TYPE_IP6ADDR);
		nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN,
				  (uint32_t)addr_len(fam));
		nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_INTERVAL);
		nftnl_set_set_u32(s, NFTNL_SET_ID, (uint32_t)i + 1);
		r = BATCH_OBJ(b, NFT_MSG_NEWSET, NLM_F_CREATE, tag,
			      nftnl_set_nlmsg_build_payload, s);
		if (r < 0)
			goto out;
	}

	r = -ENOMEM;
	c = nftnl_chain_alloc();
	if (!c)
		goto out;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, t->name);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, MT_NFT_MARK_CHAIN);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_PRE_ROUTING);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, MT_NFT_MARK_PRIO);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	r = BATCH_OBJ(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE, tag,
		      nftnl_chain_nlmsg_build_payload, c);
	if (r < 0)
		goto out;

	/* flush chain: DELRULE naming only table and chain */
	r = -ENOMEM;
	flush = nftnl_rule_alloc();
	if (!flush)
		goto out;
	nftnl_rule_set_u32(flush, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(flush, NFTNL_RULE_TABLE, t->name);
	nftnl_rule_set_str(flush, NFTNL_RULE_CHAIN, MT_NFT_MARK_CHAIN);
	r = BATCH_OBJ(b, NFT_MSG_DELRULE, 0, tag,
		      nftnl_rule_nlmsg_build_payload, flush);
	if (r < 0)
		goto out;

	for (int i = 0; i < 2; i++) {
		_cleanup_rule_ struct nftnl_rule *rule = mt_nft_mark_rule_new(
			t->name, i == 0 ? AF_INET : AF_INET6, t->fwmark,
			t->fwmask);

		r = -ENOMEM;
		if (!rule)
			goto out;
		r = BATCH_OBJ(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND,
			      tag, nftnl_rule_nlmsg_build_payload, rule);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	if (c)
		nftnl_chain_free(c);
	nftnl_table_free(tb);
	return r;
}

static int plan_table_delete(struct mt_nft_batch *b, long tag,
			     const char *name)
{
	struct nftnl_table *tb = nftnl_table_alloc();
	int r;

	if (!tb)
		return -ENOMEM;
	nftnl_table_set_u32(tb, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_set_str(tb, NFTNL_TABLE_NAME, name);
	r = BATCH_OBJ(b, NFT_MSG_DELTABLE, 0, tag,
		      nftnl_table_nlmsg_build_payload, tb);
	nftnl_table_free(tb);
	return r;
}

/* One NEWSETELEM / DELSETELEM message with p's elements. */
static int plan_elems(struct mt_nft_batch *b, long tag, uint16_t type,
		      uint16_t flags, const char *table,
		      const struct mt_prefix *p, const char *owner)
{
	_cleanup_set_ struct nftnl_set *s = nftnl_set_alloc();
	int r;

	if (!s)
		return -ENOMEM;
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, set_name(p->family));
	r = mt_nft_mark_elems_add(s, p, owner);
	if (r < 0)
		return r;
	return BATCH_OBJ(b, type, flags, tag,
			 nftnl_set_elems_nlmsg_build_payload, s);
}

static int plan_prefix(const struct mt_metal *m, struct mt_nft_batch *b,
		       long tag, bool create, const Mt__Kernel__MarkPrefix *mp,
		       struct mt_nft_mark_state *st, char *err, size_t errlen)
{
	struct mt_nft_mark_range want, *have = NULL, *clash;
	struct mt_prefix p, old;
	bool equal;
	char perr[128], other[2 * MT_PREFIX_STRLEN];
	int r;

	if (mt_prefix_parse(mp->prefix, true, &p, perr, sizeof(perr)) < 0) {
		snprintf(err, errlen, "prefix \"%s\": %s", mp->prefix, perr);
		return -EINVAL;
	}
	if (create && !*mp->owner) {
		snprintf(err, errlen, "owner (customer name) is empty");
		return -EINVAL;
	}
	if (strlen(mp->owner) > MT_NFT_MARK_OWNER_MAX) {
		snprintf(err, errlen, "owner \"%s\" is longer than %d bytes",
			 mp->owner, MT_NFT_MARK_OWNER_MAX);
		return -EINVAL;
	}
	range_from_prefix(&p, &want, mp->owner);
	clash = state_find(st, &want, &equal);
	if (equal)
		have = clash;

	if (!create) {
		if (!have)
			return 0; /* absent: nothing to delete */
		r = plan_elems(b, tag, NFT_MSG_DELSETELEM, 0, m->mark_table,
			       &p, NULL);
		if (r == 0)
			state_del_range(st, (size_t)(have - st->ranges));
		return r;
	}

	if (!st->table) {
		snprintf(err, errlen, "nft table inet %s does not exist",
			 m->mark_table);
		return -ENOENT;
	}
	if (have && strcmp(have->owner, mp->owner) == 0)
		return 0; /* already there, same owner */
	if (have) {
		/* Another owner: the kernel would keep the old userdata on a
		 * re-add, so delete and add in this transaction. */
		if (mt_nft_mark_range_prefix(have, &old) < 0)
			return -EINVAL;
		r = plan_elems(b, tag, NFT_MSG_DELSETELEM, 0, m->mark_table,
			       &old, NULL);
		if (r < 0)
			return r;
	} else if (clash) {
		snprintf(err, errlen, "overlaps %s of customer \"%s\"",
			 range_format(clash, other, sizeof(other)),
			 clash->owner);
		return -EEXIST;
	}
	r = plan_elems(b, tag, NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL,
		       m->mark_table, &p, mp->owner);
	if (r < 0)
		return r;
	if (have)
		snprintf(have->owner, sizeof(have->owner), "%s", mp->owner);
	else
		r = mt_nft_mark_state_add(st, &want);
	return r;
}

int mt_nft_mark_plan(const struct mt_metal *m, Mt__Kernel__Op **ops,
		     size_t n, struct mt_nft_mark_state *st,
		     struct mt_nft_batch *b, size_t *failed, char *err,
		     size_t errlen)
{
	size_t plen = strlen(m->prefix);

	err[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const Mt__Kernel__Op *op = ops[i];
		bool create = op->action == MT__KERNEL__OP__ACTION__CREATE;
		const Mt__Kernel__MarkTable *t = op->mark_table;
		int r;

		*failed = i;
		if (op->action != MT__KERNEL__OP__ACTION__CREATE &&
		    op->action != MT__KERNEL__OP__ACTION__DELETE) {
			snprintf(err, errlen, "unknown action %d", op->action);
			return -EINVAL;
		}
		switch (op->object_case) {
		case MT__KERNEL__OP__OBJECT_MARK_TABLE:
			if (strncmp(t->name, m->prefix, plen) != 0 ||
			    !t->name[plen]) {
				snprintf(err, errlen,
					 "nft table \"%s\" is not mt's: its name does not start with \"%s\"",
					 t->name, m->prefix);
				return -EPERM;
			}
			if (strlen(t->name) >= NFT_TABLE_MAXNAMELEN) {
				snprintf(err, errlen, "nft table name \"%s\" is too long",
					 t->name);
				return -EINVAL;
			}
			if (!create) {
				bool ours = strcmp(t->name, m->mark_table) == 0;

				if (ours ? !st->table :
					   !(st->other_exists &&
					     st->other_exists[i]))
					break; /* absent: nothing to do */
				r = plan_table_delete(b, (long)i, t->name);
				if (r < 0)
					return r;
				if (ours) {
					st->table = false;
					st->n_ranges = 0;
				}
				break;
			}
			if (t->fwmask == 0 || (t->fwmark & ~t->fwmask)) {
				snprintf(err, errlen,
					 "fwmark 0x%x / fwmask 0x%x: the mask must be non-zero and hold every bit of the mark",
					 t->fwmark, t->fwmask);
				return -EINVAL;
			}
			r = plan_table_create(b, (long)i, t);
			if (r < 0)
				return r;
			if (strcmp(t->name, m->mark_table) == 0)
				st->table = true;
			break;
		case MT__KERNEL__OP__OBJECT_MARK_PREFIX:
			r = plan_prefix(m, b, (long)i, create, op->mark_prefix,
					st, err, errlen);
			if (r < 0)
				return r;
			break;
		default:
			snprintf(err, errlen,
				 "not an nft marking operation (object %d)",
				 op->object_case);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

/* ---- reading the table from the kernel ---- */

struct table_probe {
	bool found;
};

static int found_cb(const struct nlmsghdr *nlh, void *data)
{
	((struct table_probe *)data)->found = true;
	return MNL_CB_OK;
}

/* GETs one object (table, chain, set) by name: 1 found, 0 absent (ENOENT),
 * or -errno. cb may be NULL when existence is all that matters. */
static int get_one(struct mnl_socket *nl, uint16_t type,
		   void (*build)(struct nlmsghdr *, void *), void *obj,
		   mnl_cb_t cb, void *data)
{
	char buf[REQ_BUF_SIZE] = { 0 }; /* libmnl leaves padding unset */
	struct table_probe probe = { 0 };
	struct nlmsghdr *nlh;
	int r;

	nlh = nftnl_nlmsg_build_hdr(buf, type, NFPROTO_INET, NLM_F_ACK,
				    mt_nft_seq_next());
	build(nlh, obj);
	r = mt_nft_query(nl, nlh, cb ? cb : found_cb, cb ? data : &probe,
			 NULL, 0);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	return cb ? 1 : probe.found;
}

static void table_build(struct nlmsghdr *nlh, void *obj)
{
	nftnl_table_nlmsg_build_payload(nlh, obj);
}

static void chain_build(struct nlmsghdr *nlh, void *obj)
{
	nftnl_chain_nlmsg_build_payload(nlh, obj);
}

static void set_build(struct nlmsghdr *nlh, void *obj)
{
	nftnl_set_nlmsg_build_payload(nlh, obj);
}

static int table_exists(struct mnl_socket *nl, const char *name)
{
	struct nftnl_table *t = nftnl_table_alloc();
	int r;

	if (!t)
		return -ENOMEM;
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	r = get_one(nl, NFT_MSG_GETTABLE, table_build, t, NULL, NULL);
	nftnl_table_free(t);
	return r;
}

static int chain_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	bool *ok = data;
	const char *type;

	if (!c) {
		errno = ENOMEM;
		return MNL_CB_ERROR;
	}
	if (nftnl_chain_nlmsg_parse(nlh, c) == 0) {
		type = nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE);
		*ok = type && strcmp(type, "filter") == 0 &&
		      nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM) &&
		      nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM) ==
			      NF_INET_PRE_ROUTING &&
		      nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO) ==
			      MT_NFT_MARK_PRIO &&
		      nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY) == NF_ACCEPT;
	}
	nftnl_chain_free(c);
	return MNL_CB_OK;
}

static int chain_ok(struct mnl_socket *nl, const char *table, bool *ok)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	int r;

	*ok = false;
	if (!c)
		return -ENOMEM;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, MT_NFT_MARK_CHAIN);
	r = get_one(nl, NFT_MSG_GETCHAIN, chain_build, c, chain_cb, ok);
	nftnl_chain_free(c);
	if (r == 0)
		*ok = false;
	return r < 0 ? r : 0;
}

struct set_check {
	int family;
	bool ok;
};

static int set_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct set_check *sc = data;
	uint32_t flags;

	if (!s) {
		errno = ENOMEM;
		return MNL_CB_ERROR;
	}
	if (nftnl_set_nlmsg_parse(nlh, s) == 0) {
		flags = nftnl_set_get_u32(s, NFTNL_SET_FLAGS);
		sc->ok = nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN) ==
				 addr_len(sc->family) &&
			 (flags & NFT_SET_INTERVAL) &&
			 !(flags & (NFT_SET_MAP | NFT_SET_OBJECT |
				    NFT_SET_CONCAT | NFT_SET_TIMEOUT));
	}
	nftnl_set_free(s);
	return MNL_CB_OK;
}

/* Whether set family's set exists in table as mt creates it. */
static int set_ok(struct mnl_socket *nl, const char *table, int family,
		  bool *ok)
{
	_cleanup_set_ struct nftnl_set *s = nftnl_set_alloc();
	struct set_check sc = { .family = family };
	int r;

	*ok = false;
	if (!s)
		return -ENOMEM;
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, set_name(family));
	r = get_one(nl, NFT_MSG_GETSET, set_build, s, set_cb, &sc);
	if (r < 0)
		return r;
	*ok = r == 1 && sc.ok;
	return 0;
}

struct rules_seen {
	int n, n4, n6, bad;
	uint32_t mark4, mask4, mark6, mask6;
};

static int rule_cb(const struct nlmsghdr *nlh, void *data)
{
	_cleanup_rule_ struct nftnl_rule *r = nftnl_rule_alloc();
	struct rules_seen *rs = data;
	uint32_t mark, mask;
	int fam;

	if (!r) {
		errno = ENOMEM;
		return MNL_CB_ERROR;
	}
	rs->n++;
	if (nftnl_rule_nlmsg_parse(nlh, r) < 0 ||
	    mt_nft_mark_rule_parse(r, &fam, &mark, &mask) < 0) {
		rs->bad++;
	} else if (fam == AF_INET) {
		rs->n4++;
		rs->mark4 = mark;
		rs->mask4 = mask;
	} else {
		rs->n6++;
		rs->mark6 = mark;
		rs->mask6 = mask;
	}
	return MNL_CB_OK;
}

/* Dumps the rules of mt's chain (filtered by the kernel to this table and
 * chain: nothing else is listed). */
static int rules_read(struct mnl_socket *nl, const char *table,
		      struct rules_seen *rs)
{
	char buf[REQ_BUF_SIZE] = { 0 }; /* libmnl leaves padding unset */
	_cleanup_rule_ struct nftnl_rule *r = nftnl_rule_alloc();
	struct nlmsghdr *nlh;

	memset(rs, 0, sizeof(*rs));
	if (!r)
		return -ENOMEM;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, MT_NFT_MARK_CHAIN);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, NFPROTO_INET,
				    NLM_F_DUMP, mt_nft_seq_next());
	nftnl_rule_nlmsg_build_payload(nlh, r);
	return mt_nft_query(nl, nlh, rule_cb, rs, NULL, 0);
}

static int elems_cb(const struct nlmsghdr *nlh, void *data)
{
	if (nftnl_set_elems_nlmsg_parse(nlh, data) < 0) {
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	return MNL_CB_OK;
}

/* Dumps the elements of set family's set into st's ranges. */
static int elems_read(struct mnl_socket *nl, const char *table, int family,
		      struct mt_nft_mark_state *st)
{
	char buf[REQ_BUF_SIZE] = { 0 }; /* libmnl leaves padding unset */
	_cleanup_set_ struct nftnl_set *s = nftnl_set_alloc();
	_cleanup_free_ struct mt_nft_mark_range *ranges = NULL;
	struct nlmsghdr *nlh;
	size_t n = 0;
	int r;

	if (!s)
		return -ENOMEM;
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, set_name(family));
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, NFPROTO_INET,
				    NLM_F_DUMP, mt_nft_seq_next());
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	r = mt_nft_query(nl, nlh, elems_cb, s, NULL, 0);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = mt_nft_mark_elems_parse(s, family, &ranges, &n);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = mt_nft_mark_state_add(st, &ranges[i]);
	return r;
}

/* One unbracketed read of table: existence, shape, rules and, with elems,
 * the set elements. */
static int state_read_once(struct mnl_socket *nl, const char *table,
			   bool elems, struct mt_nft_mark_state *st)
{
	struct rules_seen rs;
	bool c_ok, s4_ok, s6_ok;
	int r;

	r = table_exists(nl, table);
	if (r <= 0)
		return r;
	st->table = true;
	if ((r = chain_ok(nl, table, &c_ok)) < 0 ||
	    (r = set_ok(nl, table, AF_INET, &s4_ok)) < 0 ||
	    (r = set_ok(nl, table, AF_INET6, &s6_ok)) < 0)
		return r;
	if (c_ok && (r = rules_read(nl, table, &rs)) < 0)
		return r;
	if (c_ok && s4_ok && s6_ok && rs.n == 2 && rs.bad == 0 &&
	    rs.n4 == 1 && rs.n6 == 1 && rs.mark4 == rs.mark6 &&
	    rs.mask4 == rs.mask6) {
		st->intact = true;
		st->fwmark = rs.mark4;
		st->fwmask = rs.mask4;
	}
	if (!elems)
		return 0;
	if (s4_ok && (r = elems_read(nl, table, AF_INET, st)) < 0)
		return r;
	if (s6_ok && (r = elems_read(nl, table, AF_INET6, st)) < 0)
		return r;
	return 0;
}

/* ---- the state cache (see nft_mark.h) ---- */

/* The last state known to be the kernel's: read by a full listing or
 * derived from the pre-state of one of our own committed transactions. Valid
 * for the table name, the network namespace and the generation id it was
 * taken at; any other generation id (a change by anyone else, or a commit
 * whose outcome we could not predict) means a full listing again. */
static struct {
	pthread_mutex_t lock;
	bool valid;
	char table[NFT_TABLE_MAXNAMELEN];
	dev_t ns_dev;
	ino_t ns_ino;
	struct mt_nft_mark_state s;
} cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int netns_id(dev_t *dev, ino_t *ino)
{
	struct stat sb;

	if (stat("/proc/thread-self/ns/net", &sb) < 0)
		return mt_neg_errno();
	*dev = sb.st_dev;
	*ino = sb.st_ino;
	return 0;
}

/* ---- the socket (kept open) -------------------------------------------- */

/* One nftables socket per namespace the calls come from, kept open: closing
 * a netfilter socket after a transaction that deleted anything waits for
 * the kernel's deferred destroy work, i.e. an RCU grace period (NETLINK_
 * URELEASE flushes it: 9-35 ms measured on 6.18), which made every prefix
 * removal that slow. Callers take it with sock_get and hand it back with
 * sock_put(nl, ok): a socket whose last use failed is closed (it may hold
 * stray replies). */
static struct {
	pthread_mutex_t lock;
	struct mnl_socket *nl;
	dev_t dev;
	ino_t ino;
} sock = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Discards whatever an earlier call left unread. */
static void sock_drain(struct mnl_socket *nl)
{
	char buf[4096];

	while (recv(mnl_socket_get_fd(nl), buf, sizeof(buf), MSG_DONTWAIT) > 0 ||
	       errno == EINTR || errno == ENOBUFS)
		;
}

static int sock_get(struct mnl_socket **out)
{
	dev_t dev;
	ino_t ino;
	int r = netns_id(&dev, &ino);

	if (r < 0)
		return r;
	pthread_mutex_lock(&sock.lock);
	if (sock.nl && (sock.dev != dev || sock.ino != ino)) {
		mnl_socket_close(sock.nl);
		sock.nl = NULL;
	}
	if (!sock.nl) {
		r = mt_nft_socket_open(&sock.nl);
		if (r < 0) {
			sock.nl = NULL;
			pthread_mutex_unlock(&sock.lock);
			return r;
		}
		sock.dev = dev;
		sock.ino = ino;
	} else {
		sock_drain(sock.nl);
	}
	*out = sock.nl;
	return 0; /* sock.lock stays held until sock_put */
}

static void sock_put(struct mnl_socket *nl, bool ok)
{
	if (!nl)
		return;
	if (!ok && nl == sock.nl) {
		mnl_socket_close(sock.nl);
		sock.nl = NULL;
	}
	pthread_mutex_unlock(&sock.lock);
}

/* Copies the state (not other_exists) of from into to. */
static int state_copy(struct mt_nft_mark_state *to,
		      const struct mt_nft_mark_state *from)
{
	size_t cap = from->n_ranges ? from->n_ranges : 1;
	struct mt_nft_mark_range *g;

	if (to->cap_ranges < cap) {
		g = realloc(to->ranges, cap * sizeof(*g));
		if (!g)
			return -ENOMEM;
		to->ranges = g;
		to->cap_ranges = cap;
	}
	if (from->n_ranges)
		memcpy(to->ranges, from->ranges,
		       from->n_ranges * sizeof(*g));
	to->n_ranges = from->n_ranges;
	to->genid = from->genid;
	to->table = from->table;
	to->intact = from->intact;
	to->fwmark = from->fwmark;
	to->fwmask = from->fwmask;
	return 0;
}

static void cache_drop(void)
{
	pthread_mutex_lock(&cache.lock);
	cache.valid = false;
	pthread_mutex_unlock(&cache.lock);
}

/* Remembers st (taken at st->genid) for table in the current namespace. */
static void cache_store(const char *table, const struct mt_nft_mark_state *st)
{
	dev_t dev;
	ino_t ino;

	pthread_mutex_lock(&cache.lock);
	cache.valid = false;
	if (strlen(table) < sizeof(cache.table) && netns_id(&dev, &ino) == 0 &&
	    state_copy(&cache.s, st) == 0) {
		snprintf(cache.table, sizeof(cache.table), "%s", table);
		cache.ns_dev = dev;
		cache.ns_ino = ino;
		cache.valid = true;
	}
	pthread_mutex_unlock(&cache.lock);
}

/* Fills st from the cache when it holds table of the current namespace at
 * generation genid. Returns true when it did. */
static bool cache_load(const char *table, uint32_t genid,
		       struct mt_nft_mark_state *st)
{
	bool hit = false;
	dev_t dev;
	ino_t ino;

	pthread_mutex_lock(&cache.lock);
	if (cache.valid && cache.s.genid == genid &&
	    strcmp(cache.table, table) == 0 && netns_id(&dev, &ino) == 0 &&
	    dev == cache.ns_dev && ino == cache.ns_ino)
		hit = state_copy(st, &cache.s) == 0;
	pthread_mutex_unlock(&cache.lock);
	return hit;
}

/* Reads a consistent snapshot: the generation id before and after must
 * agree and no dump may be interrupted, else read again. other_tables
 * (n_other entries, NULL allowed) are probed for existence into
 * st->other_exists. */
static int state_read(struct mnl_socket *nl, const struct mt_metal *m,
		      bool elems, const char *const *other_tables,
		      size_t n_other, struct mt_nft_mark_state *st)
{
	bool others = false;

	for (size_t i = 0; i < n_other; i++)
		others = others || other_tables[i];
	if (elems && !others) {
		uint32_t gen;
		int r = mt_nft_genid(nl, &gen);

		if (r < 0)
			return r;
		if (cache_load(m->mark_table, gen, st))
			return 0;
	}
	for (int attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
		uint32_t gen0, gen1;
		int r;

		st->table = st->intact = false;
		st->n_ranges = 0;
		r = mt_nft_genid(nl, &gen0);
		if (r < 0)
			return r;
		r = state_read_once(nl, m->mark_table, elems, st);
		for (size_t i = 0; r >= 0 && i < n_other; i++) {
			if (!other_tables[i])
				continue;
			r = table_exists(nl, other_tables[i]);
			if (r >= 0)
				st->other_exists[i] = r == 1;
		}
		if (r == -EINTR)
			continue;
		if (r < 0)
			return r;
		r = mt_nft_genid(nl, &gen1);
		if (r < 0)
			return r;
		if (gen0 == gen1) {
			st->genid = gen0;
			if (elems)
				cache_store(m->mark_table, st);
			return 0;
		}
	}
	return -EAGAIN;
}

/* ---- observe ---- */

static bool owner_wanted(const char *owner, const char *const *owners,
			 size_t n_owners)
{
	if (!n_owners || !*owner)
		return true;
	for (size_t i = 0; i < n_owners; i++)
		if (strcmp(owners[i], owner) == 0)
			return true;
	return false;
}

int mt_nft_mark_observe(const struct mt_metal *m, Mt__Kernel__KernelState *st)
{
	return mt_nft_mark_observe_owners(m, NULL, 0, st);
}

int mt_nft_mark_observe_owners(const struct mt_metal *m,
			       const char *const *owners, size_t n_owners,
			       Mt__Kernel__KernelState *st)
{
	struct mnl_socket *nl = NULL;
	struct mt_nft_mark_state s = { 0 };
	Mt__Kernel__MarkTable *t;
	Mt__Kernel__MarkPrefix *p;
	size_t skipped = 0;
	int r;

	r = sock_get(&nl);
	if (r < 0)
		return r;
	r = state_read(nl, m, true, NULL, 0, &s);
	sock_put(nl, r >= 0);
	if (r < 0)
		goto out;
	if (s.intact) {
		r = -ENOMEM;
		if (!(t = mt_kstate_add_mark_table(st)) ||
		    mt_kstate_set_str(&t->name, m->mark_table) < 0)
			goto out;
		t->fwmark = s.fwmark;
		t->fwmask = s.fwmask;
	}
	for (size_t i = 0; i < s.n_ranges; i++) {
		struct mt_prefix pfx;
		char buf[MT_PREFIX_STRLEN];

		if (!owner_wanted(s.ranges[i].owner, owners, n_owners))
			continue;
		if (mt_nft_mark_range_prefix(&s.ranges[i], &pfx) < 0) {
			skipped++;
			continue;
		}
		r = -ENOMEM;
		if (!(p = mt_kstate_add_mark_prefix(st)) ||
		    mt_kstate_set_str(&p->prefix, mt_prefix_format(
					      &pfx, buf, sizeof(buf))) < 0 ||
		    mt_kstate_set_str(&p->owner, s.ranges[i].owner) < 0)
			goto out;
	}
	if (skipped)
		mt_warn("nft table inet %s: %zu set intervals are not CIDR prefixes (not written by mt); ignored",
			m->mark_table, skipped);
	r = 0;
out:
	mt_nft_mark_state_fini(&s);
	return r;
}

/* ---- apply ---- */

static void result_set(Mt__Kernel__OpResult **results, size_t i, int error,
		       const char *msg)
{
	(void)mt_op_result_set(&results[i], error, msg);
}

/* Every op: the failing one with its own text, the others cancelled. */
static void results_abort(Mt__Kernel__Op **ops, size_t n,
			  Mt__Kernel__OpResult **results, size_t failed,
			  int error, const char *why)
{
	char fdesc[256], desc[256], msg[768];

	mt_op_describe(ops[failed], fdesc, sizeof(fdesc));
	for (size_t i = 0; i < n; i++) {
		if (i == failed) {
			snprintf(msg, sizeof(msg), "%s: %s%s%s", fdesc,
				 strerror(-error), why && *why ? ": " : "",
				 why ? why : "");
			result_set(results, i, error, msg);
			continue;
		}
		snprintf(msg, sizeof(msg),
			 "%s: not applied: transaction aborted by %s",
			 mt_op_describe(ops[i], desc, sizeof(desc)), fdesc);
		result_set(results, i, -ECANCELED, msg);
	}
}

/* Every op failed the same way (a local or whole-batch failure). */
static void results_all(Mt__Kernel__Op **ops, size_t n,
			Mt__Kernel__OpResult **results, int error,
			const char *why)
{
	char desc[256], msg[768];

	for (size_t i = 0; i < n; i++) {
		snprintf(msg, sizeof(msg), "%s: %s%s%s",
			 mt_op_describe(ops[i], desc, sizeof(desc)),
			 strerror(-error), why && *why ? ": " : "",
			 why ? why : "");
		result_set(results, i, error, msg);
	}
}

int mt_nft_mark_apply(const struct mt_metal *m, Mt__Kernel__Op **ops,
		      size_t n, Mt__Kernel__OpResult **results,
		      uint64_t *kernel_writes)
{
	struct mnl_socket *nl = NULL;
	_cleanup_free_ const char **others = NULL;
	struct mt_nft_mark_state st = { 0 };
	bool need_state = false, elems = false, only_prefixes = true;
	bool cached = false;
	char err[512];
	int r = 0;

	if (n == 0)
		return 0;
	others = calloc(n, sizeof(*others));
	st.other_exists = calloc(n, sizeof(*st.other_exists));
	if (!others || !st.other_exists) {
		r = -ENOMEM;
		results_all(ops, n, results, r, NULL);
		goto out;
	}

	/* Refusals first, against an empty state: nothing is sent when an op
	 * is not ours or malformed. */
	{
		_cleanup_nft_batch_ struct mt_nft_batch *dry =
			mt_nft_batch_new(0);
		size_t failed = 0;

		if (!dry) {
			r = -ENOMEM;
			results_all(ops, n, results, r, NULL);
			goto out;
		}
		st.table = true;
		r = mt_nft_mark_plan(m, ops, n, &st, dry, &failed, err,
				     sizeof(err));
		if (r == -EPERM || r == -EINVAL || r == -EOPNOTSUPP) {
			results_abort(ops, n, results, failed, r, err);
			goto out;
		}
		r = 0;
		st.table = false;
		st.n_ranges = 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (ops[i]->object_case != MT__KERNEL__OP__OBJECT_MARK_PREFIX)
			only_prefixes = false;
		if (ops[i]->object_case == MT__KERNEL__OP__OBJECT_MARK_PREFIX)
			need_state = elems = true;
		if (ops[i]->object_case == MT__KERNEL__OP__OBJECT_MARK_TABLE &&
		    ops[i]->action == MT__KERNEL__OP__ACTION__DELETE) {
			need_state = true;
			if (strcmp(ops[i]->mark_table->name, m->mark_table))
				others[i] = ops[i]->mark_table->name;
		}
	}

	r = sock_get(&nl);
	if (r < 0) {
		nl = NULL;
		results_all(ops, n, results, r, "opening the nftables socket");
		goto out;
	}
	for (int attempt = 0; attempt < APPLY_ATTEMPTS; attempt++) {
		_cleanup_nft_batch_ struct mt_nft_batch *b = NULL;
		const char *extack = NULL;
		size_t failed = 0, count;

		st.genid = 0;
		if (need_state) {
			r = state_read(nl, m, elems, others, n, &st);
			if (r < 0) {
				results_all(ops, n, results, r,
					    "reading the nft marking table");
				goto out;
			}
		}
		b = mt_nft_batch_new(st.genid);
		if (!b) {
			r = -ENOMEM;
			results_all(ops, n, results, r, NULL);
			goto out;
		}
		r = mt_nft_mark_plan(m, ops, n, &st, b, &failed, err,
				     sizeof(err));
		if (r < 0) {
			results_abort(ops, n, results, failed, r, err);
			goto out;
		}
		count = mt_nft_batch_count(b);
		r = mt_nft_batch_send(b, nl);
		if (r == -ERESTART && need_state)
			continue; /* ruleset changed since the read: re-plan */
		if (r == 0) {
			if (kernel_writes)
				*kernel_writes += count;
			/* st is now the state after the transaction. A
			 * committed non-empty batch of element ops moved the
			 * generation id by exactly one (the batch carried
			 * st.genid: nobody committed in between). */
			if (only_prefixes && elems) {
				if (count) {
					st.genid++;
					if (st.genid == 0)
						st.genid = 1;
				}
				cache_store(m->mark_table, &st);
				cached = true;
			}
			for (size_t i = 0; i < n; i++)
				result_set(results, i, 0, "");
			goto out;
		}
		/* Aborted: map the first failing message back to its op. */
		for (size_t i = 0; i < count; i++) {
			int e = mt_nft_batch_error(b, i, &extack);

			if (e) {
				results_abort(ops, n, results,
					      (size_t)mt_nft_batch_tag(b, i), e,
					      extack);
				goto out;
			}
		}
		(void)mt_nft_batch_error_batch(b, &extack);
		results_all(ops, n, results, r,
			    extack ? extack : "nft transaction failed");
		goto out;
	}
	r = -EAGAIN;
	results_all(ops, n, results, r,
		    "the nftables ruleset kept changing during the transaction");
out:
	/* Anything else (a table op, a failure, an abort) may have moved the
	 * generation id in ways not predicted here: list again next time. */
	if (!cached && nl)
		cache_drop();
	sock_put(nl, r == 0);
	free(st.other_exists);
	st.other_exists = NULL;
	mt_nft_mark_state_fini(&st);
	return r;
}

/* ---- drift ---- */

static bool same_state(const struct mt_nft_mark_state *a,
		       const struct mt_nft_mark_state *b)
{
	if (a->table != b->table || a->intact != b->intact ||
	    a->fwmark != b->fwmark || a->fwmask != b->fwmask ||
	    a->n_ranges != b->n_ranges)
		return false;
	for (size_t i = 0; i < a->n_ranges; i++) {
		const struct mt_nft_mark_range *x = &a->ranges[i],
					       *y = &b->ranges[i];

		if (x->family != y->family ||
		    memcmp(x->first, y->first, sizeof(x->first)) != 0 ||
		    memcmp(x->last, y->last, sizeof(x->last)) != 0 ||
		    strcmp(x->owner, y->owner) != 0)
			return false;
	}
	return true;
}

int mt_nft_mark_poll(const struct mt_metal *m)
{
	struct mt_nft_mark_state old = {0}, now = {0};
	struct mnl_socket *nl;
	bool known;
	uint32_t gen;
	int r;

	r = sock_get(&nl);
	if (r < 0)
		return r;
	r = mt_nft_genid(nl, &gen);
	if (r < 0)
		goto out;
	/* what mt last knew: its own last commit or read, at some id */
	pthread_mutex_lock(&cache.lock);
	known = cache.valid && strcmp(cache.table, m->mark_table) == 0 &&
		state_copy(&old, &cache.s) == 0;
	pthread_mutex_unlock(&cache.lock);
	if (known && old.genid == gen) {
		r = 0; /* nobody committed anything since */
		goto out;
	}
	/* some table of the metal changed: ours? (the read is cached) */
	r = state_read(nl, m, true, NULL, 0, &now);
	if (r < 0)
		goto out;
	r = known ? !same_state(&old, &now) : now.table && !now.intact;
out:
	sock_put(nl, r >= 0);
	mt_nft_mark_state_fini(&old);
	mt_nft_mark_state_fini(&now);
	return r;
}
