#include "nft_cust_rules.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <netinet/in.h>

#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "mt_cleanup.h"
#include "nftnl_cleanup.h"
#include "mt_kstate.h"
#include "netns.h"

#define TABLE_COMMENT "mt: customer namespace table (managed by mt-fastpath)"
#define TCPOPT_MAXSEG_KIND 2
#define TCP_FLAGS_OFFSET 13
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define COMMENT_MAX 64


bool mt_nft_cust_dev_valid(const char *dev)
{
	size_t n = dev ? strnlen(dev, IFNAMSIZ) : 0;

	if (n == 0 || n >= IFNAMSIZ)
		return false;
	if (strcmp(dev, ".") == 0 || strcmp(dev, "..") == 0)
		return false;
	for (const unsigned char *p = (const unsigned char *)dev; *p; p++) {
		if (*p == '/' || *p == ':' || isspace(*p) || *p < 0x20 ||
		    *p == 0x7f)
			return false;
	}
	return true;
}

/* ---- comments (userdata) ---- */

static void comment_format(char *buf, size_t len, const char *dev,
			   enum mt_mss_dir dir)
{
	snprintf(buf, len, "%s %s %s", MT_NFT_CUST_TAG, dev,
		 dir == MT_MSS_OUT ? "out" : "in");
}

struct comment {
	const char *str;
};

static int comment_cb(const struct nftnl_udata *attr, void *data)
{
	struct comment *c = data;
	const char *v = nftnl_udata_get(attr);
	uint8_t len = nftnl_udata_len(attr);

	if (nftnl_udata_type(attr) == NFTNL_UDATA_RULE_COMMENT && len > 0 &&
	    v[len - 1] == '\0')
		c->str = v;
	return 0;
}

static const char *rule_comment(const struct nftnl_rule *r)
{
	uint32_t len = 0;
	const void *ud = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len);
	struct comment c = {0};

	if (!ud || !len || nftnl_udata_parse(ud, len, comment_cb, &c) < 0)
		return NULL;
	return c.str;
}

static int set_comment(uint8_t type, const char *s,
		       void (*set)(void *obj, const void *d, uint32_t len),
		       void *obj)
{
	_cleanup_udata_ struct nftnl_udata_buf *u =
	    nftnl_udata_buf_alloc(NFTNL_UDATA_COMMENT_MAXLEN + 8);

	if (!u || !nftnl_udata_put_strz(u, type, s))
		return -ENOMEM;
	set(obj, nftnl_udata_buf_data(u), nftnl_udata_buf_len(u));
	return 0;
}

static void table_set_ud(void *obj, const void *d, uint32_t len)
{
	nftnl_table_set_data(obj, NFTNL_TABLE_USERDATA, d, len);
}

static void rule_set_ud(void *obj, const void *d, uint32_t len)
{
	nftnl_rule_set_data(obj, NFTNL_RULE_USERDATA, d, len);
}

/* ---- table and chain ---- */

struct nftnl_table *mt_nft_cust_table_new(const char *table)
{
	struct nftnl_table *t = nftnl_table_alloc();

	if (!t)
		return NULL;
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
	nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, 0);
	if (set_comment(NFTNL_UDATA_TABLE_COMMENT, TABLE_COMMENT, table_set_ud,
			t) < 0) {
		nftnl_table_free(t);
		return NULL;
	}
	return t;
}

struct nftnl_chain *mt_nft_cust_mss_chain_new(const char *table)
{
	struct nftnl_chain *c = nftnl_chain_alloc();

	if (!c)
		return NULL;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, MT_NFT_CUST_MSS_CHAIN);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_FORWARD);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, MT_NFT_CUST_MSS_PRIO);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	return c;
}

bool mt_nft_cust_mss_chain_ok(const struct nftnl_chain *c)
{
	const char *type = nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE);
	const char *name = nftnl_chain_get_str(c, NFTNL_CHAIN_NAME);

	return name && strcmp(name, MT_NFT_CUST_MSS_CHAIN) == 0 && type &&
	       strcmp(type, "filter") == 0 &&
	       nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM) &&
	       nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM) == NF_INET_FORWARD &&
	       nftnl_chain_is_set(c, NFTNL_CHAIN_PRIO) &&
	       nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO) ==
		   MT_NFT_CUST_MSS_PRIO &&
	       nftnl_chain_is_set(c, NFTNL_CHAIN_POLICY) &&
	       nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY) == NF_ACCEPT &&
	       !nftnl_chain_is_set(c, NFTNL_CHAIN_DEV) &&
	       !nftnl_chain_is_set(c, NFTNL_CHAIN_DEVICES) &&
	       (!nftnl_chain_is_set(c, NFTNL_CHAIN_FLAGS) ||
		(nftnl_chain_get_u32(c, NFTNL_CHAIN_FLAGS) & ~NFT_CHAIN_BASE) ==
		    0);
}

/* ---- the clamp rule ---- */

static struct nftnl_expr *expr_new(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);

	if (e)
		nftnl_rule_add_expr(r, e);
	return e;
}

static bool add_meta_load(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = expr_new(r, "meta");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	return true;
}

static bool add_cmp(struct nftnl_rule *r, uint32_t op, const void *data,
		    uint32_t len)
{
	struct nftnl_expr *e = expr_new(r, "cmp");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	return true;
}

/* exthdr tcpopt maxseg size: load into reg 1 (write false) or write reg 1
 * into the packet (write true). */
static bool add_exthdr(struct nftnl_rule *r, bool write)
{
	struct nftnl_expr *e = expr_new(r, "exthdr");

	if (!e)
		return false;
	nftnl_expr_set_u32(
	    e, write ? NFTNL_EXPR_EXTHDR_SREG : NFTNL_EXPR_EXTHDR_DREG,
	    NFT_REG_1);
	nftnl_expr_set_u8(e, NFTNL_EXPR_EXTHDR_TYPE, TCPOPT_MAXSEG_KIND);
	nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_OFFSET, 2);
	nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_LEN, 2);
	nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_OP, NFT_EXTHDR_OP_TCPOPT);
	return true;
}

struct nftnl_rule *mt_nft_cust_mss_rule_new(const char *table, const char *dev,
					    uint32_t mss, enum mt_mss_dir dir)
{
	_cleanup_rule_ struct nftnl_rule *r = NULL;
	char name[IFNAMSIZ] = {0}, comment[COMMENT_MAX];
	uint8_t tcp = IPPROTO_TCP, mask = TCP_FLAG_SYN | TCP_FLAG_RST, zero = 0;
	uint8_t syn = TCP_FLAG_SYN;
	uint16_t be = htons((uint16_t)mss);
	struct nftnl_expr *e;

	if (!mt_nft_cust_dev_valid(dev) || mss < MT_NFT_CUST_MSS_MIN ||
	    mss > MT_NFT_CUST_MSS_MAX) {
		errno = EINVAL;
		return NULL;
	}
	r = nftnl_rule_alloc();
	if (!r)
		return NULL;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, MT_NFT_CUST_MSS_CHAIN);

	/* [io]ifname == dev: the whole IFNAMSIZ buffer, NUL padded, as nft(8)
	 * writes an exact name. */
	snprintf(name, sizeof(name), "%s", dev);
	if (!add_meta_load(r, dir == MT_MSS_OUT ? NFT_META_OIFNAME
						: NFT_META_IIFNAME) ||
	    !add_cmp(r, NFT_CMP_EQ, name, sizeof(name)))
		return NULL;
	/* meta l4proto tcp: the dependency of tcp payloads in inet */
	if (!add_meta_load(r, NFT_META_L4PROTO) ||
	    !add_cmp(r, NFT_CMP_EQ, &tcp, sizeof(tcp)))
		return NULL;
	/* tcp flags & (syn | rst) == syn */
	if (!(e = expr_new(r, "payload")))
		return NULL;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE,
			   NFT_PAYLOAD_TRANSPORT_HEADER);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, TCP_FLAGS_OFFSET);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, 1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	if (!(e = expr_new(r, "bitwise")))
		return NULL;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, 1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_OP, NFT_BITWISE_BOOL);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof(zero));
	if (!add_cmp(r, NFT_CMP_EQ, &syn, sizeof(syn)))
		return NULL;
	/* tcp option maxseg size > mss (absent option: the load breaks) */
	if (!add_exthdr(r, false) || !add_cmp(r, NFT_CMP_GT, &be, sizeof(be)))
		return NULL;
	/* tcp option maxseg size set mss */
	if (!(e = expr_new(r, "immediate")))
		return NULL;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
	nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &be, sizeof(be));
	if (!add_exthdr(r, true))
		return NULL;

	comment_format(comment, sizeof(comment), dev, dir);
	if (set_comment(NFTNL_UDATA_RULE_COMMENT, comment, rule_set_ud, r) < 0)
		return NULL;
	return MT_TAKE_PTR(r);
}

/* ---- parsing it back ---- */

static bool expr_is(const struct nftnl_expr *e, const char *name)
{
	const char *n = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);

	return n && strcmp(n, name) == 0;
}

static bool expr_u32(const struct nftnl_expr *e, uint16_t attr, uint32_t v)
{
	return nftnl_expr_is_set(e, attr) && nftnl_expr_get_u32(e, attr) == v;
}

static bool expr_u32_or_unset(const struct nftnl_expr *e, uint16_t attr,
			      uint32_t v)
{
	return !nftnl_expr_is_set(e, attr) || nftnl_expr_get_u32(e, attr) == v;
}

/* attr holds exactly len bytes: copied to out */
static bool expr_bytes(const struct nftnl_expr *e, uint16_t attr, void *out,
		       uint32_t len)
{
	uint32_t have = 0;
	const void *d =
	    nftnl_expr_is_set(e, attr) ? nftnl_expr_get(e, attr, &have) : NULL;

	if (!d || have != len)
		return false;
	memcpy(out, d, len);
	return true;
}

static bool is_meta_load(const struct nftnl_expr *e, uint32_t key)
{
	return expr_is(e, "meta") && expr_u32(e, NFTNL_EXPR_META_KEY, key) &&
	       expr_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1) &&
	       !nftnl_expr_is_set(e, NFTNL_EXPR_META_SREG);
}

static bool is_cmp(const struct nftnl_expr *e, uint32_t op, void *out,
		   uint32_t len)
{
	return expr_is(e, "cmp") &&
	       expr_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1) &&
	       expr_u32(e, NFTNL_EXPR_CMP_OP, op) &&
	       expr_bytes(e, NFTNL_EXPR_CMP_DATA, out, len);
}

static bool is_exthdr(const struct nftnl_expr *e, bool write)
{
	return expr_is(e, "exthdr") &&
	       expr_u32(e,
			write ? NFTNL_EXPR_EXTHDR_SREG : NFTNL_EXPR_EXTHDR_DREG,
			NFT_REG_1) &&
	       !nftnl_expr_is_set(e, write ? NFTNL_EXPR_EXTHDR_DREG
					   : NFTNL_EXPR_EXTHDR_SREG) &&
	       nftnl_expr_is_set(e, NFTNL_EXPR_EXTHDR_TYPE) &&
	       nftnl_expr_get_u8(e, NFTNL_EXPR_EXTHDR_TYPE) ==
		   TCPOPT_MAXSEG_KIND &&
	       expr_u32(e, NFTNL_EXPR_EXTHDR_OFFSET, 2) &&
	       expr_u32(e, NFTNL_EXPR_EXTHDR_LEN, 2) &&
	       expr_u32(e, NFTNL_EXPR_EXTHDR_OP, NFT_EXTHDR_OP_TCPOPT) &&
	       expr_u32_or_unset(e, NFTNL_EXPR_EXTHDR_FLAGS, 0);
}

struct parsed {
	enum mt_mss_dir dir;
	char name[IFNAMSIZ];
	uint16_t gt, imm;
};

/* Checks expression i of a clamp rule, collecting its values into p. */
static bool expr_matches(const struct nftnl_expr *e, int i, struct parsed *p)
{
	uint8_t b = 0;

	switch (i) {
	case 0:
		if (is_meta_load(e, NFT_META_OIFNAME))
			p->dir = MT_MSS_OUT;
		else if (is_meta_load(e, NFT_META_IIFNAME))
			p->dir = MT_MSS_IN;
		else
			return false;
		return true;
	case 1:
		return is_cmp(e, NFT_CMP_EQ, p->name, sizeof(p->name));
	case 2:
		return is_meta_load(e, NFT_META_L4PROTO);
	case 3:
		return is_cmp(e, NFT_CMP_EQ, &b, 1) && b == IPPROTO_TCP;
	case 4:
		return expr_is(e, "payload") &&
		       expr_u32(e, NFTNL_EXPR_PAYLOAD_BASE,
				NFT_PAYLOAD_TRANSPORT_HEADER) &&
		       expr_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET,
				TCP_FLAGS_OFFSET) &&
		       expr_u32(e, NFTNL_EXPR_PAYLOAD_LEN, 1) &&
		       expr_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1) &&
		       !nftnl_expr_is_set(e, NFTNL_EXPR_PAYLOAD_SREG);
	case 5: {
		uint8_t mask = 0, xor = 0xff;

		return expr_is(e, "bitwise") &&
		       expr_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1) &&
		       expr_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1) &&
		       expr_u32(e, NFTNL_EXPR_BITWISE_LEN, 1) &&
		       expr_u32_or_unset(e, NFTNL_EXPR_BITWISE_OP,
					 NFT_BITWISE_BOOL) &&
		       expr_bytes(e, NFTNL_EXPR_BITWISE_MASK, &mask, 1) &&
		       expr_bytes(e, NFTNL_EXPR_BITWISE_XOR, &xor, 1) &&
		       mask == (TCP_FLAG_SYN | TCP_FLAG_RST) && xor == 0;
	}
	case 6:
		return is_cmp(e, NFT_CMP_EQ, &b, 1) && b == TCP_FLAG_SYN;
	case 7:
		return is_exthdr(e, false);
	case 8:
		return is_cmp(e, NFT_CMP_GT, &p->gt, sizeof(p->gt));
	case 9:
		return expr_is(e, "immediate") &&
		       expr_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1) &&
		       !nftnl_expr_is_set(e, NFTNL_EXPR_IMM_VERDICT) &&
		       !nftnl_expr_is_set(e, NFTNL_EXPR_IMM_CHAIN) &&
		       expr_bytes(e, NFTNL_EXPR_IMM_DATA, &p->imm,
				  sizeof(p->imm));
	case 10:
		return is_exthdr(e, true);
	default:
		return false;
	}
}

int mt_nft_cust_mss_rule_parse(const struct nftnl_rule *r, char dev[IFNAMSIZ],
			       uint32_t *mss, enum mt_mss_dir *dir)
{
	const char *comment = rule_comment(r);
	struct nftnl_expr_iter *it;
	struct nftnl_expr *e;
	struct parsed p = {0};
	char want[COMMENT_MAX];
	uint32_t v;
	bool ok = true;
	int i = 0;

	if (!comment ||
	    strncmp(comment, MT_NFT_CUST_TAG " ", sizeof(MT_NFT_CUST_TAG)) != 0)
		return -ENOENT;
	it = nftnl_expr_iter_create(r);
	if (!it)
		return -ENOMEM;
	while (ok && (e = nftnl_expr_iter_next(it)))
		ok = expr_matches(e, i++, &p);
	nftnl_expr_iter_destroy(it);
	if (!ok || i != 11 || p.gt != p.imm)
		return -ENOENT;
	/* The name must be NUL terminated and padded with zeros. */
	if (strnlen(p.name, sizeof(p.name)) == sizeof(p.name))
		return -ENOENT;
	for (size_t k = strlen(p.name); k < sizeof(p.name); k++)
		if (p.name[k])
			return -ENOENT;
	v = ntohs(p.imm);
	if (!mt_nft_cust_dev_valid(p.name) || v < MT_NFT_CUST_MSS_MIN ||
	    v > MT_NFT_CUST_MSS_MAX)
		return -ENOENT;
	comment_format(want, sizeof(want), p.name, p.dir);
	if (strcmp(comment, want) != 0)
		return -ENOENT;
	memcpy(dev, p.name, IFNAMSIZ);
	*mss = v;
	*dir = p.dir;
	return 0;
}

/* ---- state ---- */

int mt_nft_cust_state_add(struct mt_nft_cust_state *st,
			  const struct nftnl_rule *r)
{
	struct mt_nft_cust_rule *x;
	int ret;

	if (st->n_rules == st->cap_rules) {
		size_t cap = st->cap_rules ? st->cap_rules * 2 : 8;
		struct mt_nft_cust_rule *g =
		    realloc(st->rules, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		st->rules = g;
		st->cap_rules = cap;
	}
	x = &st->rules[st->n_rules];
	memset(x, 0, sizeof(*x));
	x->handle = nftnl_rule_is_set(r, NFTNL_RULE_HANDLE)
			? nftnl_rule_get_u64(r, NFTNL_RULE_HANDLE)
			: 0;
	ret = mt_nft_cust_mss_rule_parse(r, x->dev, &x->mss, &x->dir);
	if (ret == -ENOMEM)
		return ret;
	x->ours = ret == 0;
	st->n_rules++;
	return 0;
}

void mt_nft_cust_state_fini(struct mt_nft_cust_state *st)
{
	free(st->rules);
	memset(st, 0, sizeof(*st));
}

static int rule_dev_cmp(const void *a, const void *b)
{
	const struct mt_nft_cust_rule *x =
	    *(const struct mt_nft_cust_rule *const *)a;
	const struct mt_nft_cust_rule *y =
	    *(const struct mt_nft_cust_rule *const *)b;
	int c = strcmp(x->dev, y->dev);

	if (c)
		return c;
	return (int)x->dir - (int)y->dir;
}

int mt_nft_cust_clamps(const struct mt_nft_cust_state *st,
		       struct mt_nft_cust_clamp **out, size_t *n_out,
		       bool *dirty)
{
	_cleanup_free_ const struct mt_nft_cust_rule **v = NULL;
	_cleanup_free_ struct mt_nft_cust_clamp *cl = NULL;
	size_t nv = 0, n = 0;

	*out = NULL;
	*n_out = 0;
	*dirty = st->chain && (!st->chain_ok || st->dormant);
	if (!st->chain)
		return 0;
	if (st->n_rules) {
		v = calloc(st->n_rules, sizeof(*v));
		cl = calloc(st->n_rules, sizeof(*cl));
		if (!v || !cl)
			return -ENOMEM;
	}
	for (size_t i = 0; i < st->n_rules; i++) {
		if (st->rules[i].ours)
			v[nv++] = &st->rules[i];
		else
			*dirty = true;
	}
	if (nv)
		qsort(v, nv, sizeof(*v), rule_dev_cmp);
	/* Sorted by device then direction: a clamp is exactly an out rule
	 * followed by an in rule of the same device and mss. */
	for (size_t i = 0; i < nv;) {
		size_t j = i;

		while (j < nv && strcmp(v[j]->dev, v[i]->dev) == 0)
			j++;
		if (j - i == 2 && v[i]->dir == MT_MSS_OUT &&
		    v[i + 1]->dir == MT_MSS_IN && v[i]->mss == v[i + 1]->mss) {
			memcpy(cl[n].dev, v[i]->dev, IFNAMSIZ);
			cl[n].mss = v[i]->mss;
			cl[n].handle[MT_MSS_OUT] = v[i]->handle;
			cl[n].handle[MT_MSS_IN] = v[i + 1]->handle;
			n++;
		} else {
			*dirty = true;
		}
		i = j;
	}
	*n_out = n;
	*out = n ? MT_TAKE_PTR(cl) : NULL;
	return 0;
}

/* ---- checks and the plan ---- */

int mt_nft_cust_op_check(const struct mt_metal *m, const Mt__Kernel__Op *op,
			 char *err, size_t errlen)
{
	const Mt__Kernel__MssClamp *c = op->mss_clamp;
	bool create = op->action == MT__KERNEL__OP__ACTION__CREATE;

	err[0] = '\0';
	if (op->object_case != MT__KERNEL__OP__OBJECT_MSS_CLAMP || !c) {
		snprintf(err, errlen, "not an mss clamp operation (object %d)",
			 op->object_case);
		return -EOPNOTSUPP;
	}
	if (!create && op->action != MT__KERNEL__OP__ACTION__DELETE) {
		snprintf(err, errlen, "unknown action %d", op->action);
		return -EINVAL;
	}
	if (!c->netns || !mt_metal_owner(m, c->netns) ||
	    !mt_netns_name_valid(c->netns)) {
		snprintf(err, errlen,
			 "netns \"%s\" is not an mt customer namespace (name "
			 "must start with \"%s\")",
			 c->netns ? c->netns : "", m->prefix);
		return -EPERM;
	}
	if (!c->dev ||
	    (!mt_nft_cust_dev_valid(c->dev) && (create || *c->dev))) {
		snprintf(err, errlen,
			 "dev \"%s\" is not a valid interface name",
			 c->dev ? c->dev : "");
		return -EPERM;
	}
	if (create &&
	    (c->mss < MT_NFT_CUST_MSS_MIN || c->mss > MT_NFT_CUST_MSS_MAX)) {
		snprintf(err, errlen, "mss %u is outside %u..%u", c->mss,
			 MT_NFT_CUST_MSS_MIN, MT_NFT_CUST_MSS_MAX);
		return -EINVAL;
	}
	return 0;
}

/* The outcome of a plan: one entry per device. */
struct want {
	char dev[IFNAMSIZ];
	uint32_t mss; /* 0 = no clamp */
	uint32_t had; /* the intact clamp's mss before, 0 = none */
	uint64_t handle[2];
	size_t op; /* the last op that touched it */
	bool touched;
};

struct acts {
	struct mt_nft_cust_act **v;
	size_t *n;
	size_t cap;
};

static struct mt_nft_cust_act *
act_add(struct acts *a, enum mt_nft_cust_act_type type, size_t op)
{
	struct mt_nft_cust_act *x;

	if (*a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 8;
		struct mt_nft_cust_act *g = realloc(*a->v, cap * sizeof(*g));

		if (!g)
			return NULL;
		*a->v = g;
		a->cap = cap;
	}
	x = &(*a->v)[(*a->n)++];
	memset(x, 0, sizeof(*x));
	x->type = type;
	x->op = op;
	return x;
}

static int act_rules(struct acts *a, const struct want *w, size_t op)
{
	for (int d = MT_MSS_OUT; d <= MT_MSS_IN; d++) {
		struct mt_nft_cust_act *x = act_add(a, MT_NFT_CUST_NEWRULE, op);

		if (!x)
			return -ENOMEM;
		memcpy(x->dev, w->dev, IFNAMSIZ);
		x->mss = w->mss;
		x->dir = (enum mt_mss_dir)d;
	}
	return 0;
}

static struct want *want_find(struct want *w, size_t n, const char *dev)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(w[i].dev, dev) == 0)
			return &w[i];
	return NULL;
}

int mt_nft_cust_plan(const struct mt_nft_cust_state *st,
		     Mt__Kernel__Op *const *ops, const size_t *idx, size_t n,
		     struct mt_nft_cust_act **acts, size_t *n_acts)
{
	_cleanup_free_ struct mt_nft_cust_clamp *cl = NULL;
	_cleanup_free_ struct want *w = NULL;
	struct acts a = {.v = acts, .n = n_acts, .cap = *n_acts};
	size_t n_cl = 0, nw = 0, remaining = 0, first_op;
	bool dirty, changed = false;
	int r;

	if (n == 0)
		return 0;
	first_op = idx[0];
	r = mt_nft_cust_clamps(st, &cl, &n_cl, &dirty);
	if (r < 0)
		return r;
	w = calloc(n_cl + n, sizeof(*w));
	if (!w)
		return -ENOMEM;
	for (size_t i = 0; i < n_cl; i++, nw++) {
		memcpy(w[nw].dev, cl[i].dev, IFNAMSIZ);
		w[nw].mss = w[nw].had = cl[i].mss;
		w[nw].handle[0] = cl[i].handle[0];
		w[nw].handle[1] = cl[i].handle[1];
		w[nw].op = first_op;
	}
	for (size_t k = 0; k < n; k++) {
		const Mt__Kernel__MssClamp *c = ops[idx[k]]->mss_clamp;
		bool create =
		    ops[idx[k]]->action == MT__KERNEL__OP__ACTION__CREATE;
		struct want *x;

		if (!*c->dev)
			continue; /* the dirty marker: forces the rebuild */
		x = want_find(w, nw, c->dev);
		if (!x) {
			if (!create)
				continue; /* absent: nothing to delete */
			x = &w[nw++];
			snprintf(x->dev, sizeof(x->dev), "%s", c->dev);
		}
		x->mss = create ? c->mss : 0;
		x->op = idx[k];
		x->touched = true;
	}
	for (size_t i = 0; i < nw; i++) {
		if (w[i].mss)
			remaining++;
		if (w[i].mss != w[i].had)
			changed = true;
	}

	if (dirty && !remaining)
		return act_add(&a, MT_NFT_CUST_DELCHAIN, first_op) ? 0
								   : -ENOMEM;
	if (dirty) {
		/* NEWTABLE (flags 0) also wakes a dormant table. */
		if (!act_add(&a, MT_NFT_CUST_NEWTABLE, first_op) ||
		    !act_add(&a, MT_NFT_CUST_DELCHAIN, first_op) ||
		    !act_add(&a, MT_NFT_CUST_NEWCHAIN, first_op))
			return -ENOMEM;
		for (size_t i = 0; i < nw; i++) {
			if (w[i].mss && (r = act_rules(&a, &w[i], w[i].op)) < 0)
				return r;
		}
		return 0;
	}
	if (!changed)
		return 0;
	if (!remaining) {
		/* Every clamp goes: the chain goes with its rules. */
		for (size_t i = 0; i < nw; i++) {
			if (w[i].had) {
				if (!act_add(&a, MT_NFT_CUST_DELCHAIN, w[i].op))
					return -ENOMEM;
				break;
			}
		}
		return 0;
	}
	if (!st->chain) {
		size_t op = first_op;

		for (size_t i = 0; i < nw; i++) {
			if (w[i].touched && w[i].mss) {
				op = w[i].op;
				break;
			}
		}
		if (!act_add(&a, MT_NFT_CUST_NEWTABLE, op) ||
		    !act_add(&a, MT_NFT_CUST_NEWCHAIN, op))
			return -ENOMEM;
	}
	for (size_t i = 0; i < nw; i++) {
		if (w[i].mss == w[i].had)
			continue;
		for (int d = 0; w[i].had && d < 2; d++) {
			struct mt_nft_cust_act *x =
			    act_add(&a, MT_NFT_CUST_DELRULE, w[i].op);

			if (!x)
				return -ENOMEM;
			x->handle = w[i].handle[d];
		}
		if (w[i].mss && (r = act_rules(&a, &w[i], w[i].op)) < 0)
			return r;
	}
	return 0;
}
