/* mt's nft table in customer namespaces: the MSS clamp rules built into
 * netlink messages and parsed back (model -> nftnl -> model), the parser's
 * refusal of anything mt did not write exactly, the clamp/dirty analysis of
 * a chain, op checks and the per-namespace plan. No root, no kernel. */
#include "mt_test.h"

#include <errno.h>
#include <stdlib.h>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/udata.h>

#include "mt_cleanup.h"
#include "mt_kstate.h"
#include "mt_metal.h"
#include "nft_cust_rules.h"

#define TABLE "mt0-cust"

static char msgbuf[16384];

/* r as it travels over netlink: built into a message, parsed back. */
static struct nftnl_rule *rule_wire(const struct nftnl_rule *r)
{
	struct nlmsghdr *nlh;
	struct nftnl_rule *back = nftnl_rule_alloc();

	memset(msgbuf, 0, sizeof(msgbuf));
	nlh =
	    nftnl_nlmsg_build_hdr(msgbuf, NFT_MSG_NEWRULE, NFPROTO_INET, 0, 1);
	nftnl_rule_nlmsg_build_payload(nlh, (struct nftnl_rule *)r);
	if (!back || nftnl_rule_nlmsg_parse(nlh, back) < 0) {
		fprintf(stderr, "rule does not parse back\n");
		abort();
	}
	return back;
}

static struct nftnl_chain *chain_wire(const struct nftnl_chain *c)
{
	struct nlmsghdr *nlh;
	struct nftnl_chain *back = nftnl_chain_alloc();

	memset(msgbuf, 0, sizeof(msgbuf));
	nlh =
	    nftnl_nlmsg_build_hdr(msgbuf, NFT_MSG_NEWCHAIN, NFPROTO_INET, 0, 1);
	nftnl_chain_nlmsg_build_payload(nlh, (struct nftnl_chain *)c);
	if (!back || nftnl_chain_nlmsg_parse(nlh, back) < 0)
		abort();
	return back;
}

/* Parses a wire copy of r; returns the parse result. */
static int parse_wire(const struct nftnl_rule *r, char dev[IFNAMSIZ],
		      uint32_t *mss, enum mt_mss_dir *dir)
{
	struct nftnl_rule *w = rule_wire(r);
	int ret = mt_nft_cust_mss_rule_parse(w, dev, mss, dir);

	nftnl_rule_free(w);
	return ret;
}

static void test_dev_valid(void)
{
	CHECK(mt_nft_cust_dev_valid("gre1"));
	CHECK(mt_nft_cust_dev_valid("a"));
	CHECK(mt_nft_cust_dev_valid("abcdefghijklmno")); /* 15 */
	CHECK(mt_nft_cust_dev_valid("gre-1.x_y"));
	CHECK(!mt_nft_cust_dev_valid("abcdefghijklmnop")); /* 16 */
	CHECK(!mt_nft_cust_dev_valid(""));
	CHECK(!mt_nft_cust_dev_valid(NULL));
	CHECK(!mt_nft_cust_dev_valid("."));
	CHECK(!mt_nft_cust_dev_valid(".."));
	CHECK(!mt_nft_cust_dev_valid("a/b"));
	CHECK(!mt_nft_cust_dev_valid("a:b"));
	CHECK(!mt_nft_cust_dev_valid("a b"));
	CHECK(!mt_nft_cust_dev_valid("a\tb"));
	CHECK(!mt_nft_cust_dev_valid("a\x01"));
}

static void test_rule_round_trip(void)
{
	static const struct {
		const char *dev;
		uint32_t mss;
	} cases[] = {
	    {"gre1", 1436},
	    {"gre2", 536},
	    {"abcdefghijklmno", 65495},
	    {"t", 1400},
	};

	for (size_t i = 0; i < MT_ARRAY_SIZE(cases); i++) {
		for (int d = MT_MSS_OUT; d <= MT_MSS_IN; d++) {
			struct nftnl_rule *r = mt_nft_cust_mss_rule_new(
			    TABLE, cases[i].dev, cases[i].mss,
			    (enum mt_mss_dir)d);
			char dev[IFNAMSIZ] = "x";
			uint32_t mss = 0;
			enum mt_mss_dir dir = 7;

			CHECK(r != NULL);
			if (!r)
				continue;
			CHECK_STR(nftnl_rule_get_str(r, NFTNL_RULE_CHAIN),
				  MT_NFT_CUST_MSS_CHAIN);
			CHECK(parse_wire(r, dev, &mss, &dir) == 0);
			CHECK_STR(dev, cases[i].dev);
			CHECK(mss == cases[i].mss);
			CHECK((int)dir == d);
			/* The object itself parses too (no wire). */
			CHECK(mt_nft_cust_mss_rule_parse(r, dev, &mss, &dir) ==
			      0);
			nftnl_rule_free(r);
		}
	}
	/* Invalid arguments build nothing. */
	CHECK(mt_nft_cust_mss_rule_new(TABLE, "gre1", 535, MT_MSS_OUT) == NULL);
	CHECK(mt_nft_cust_mss_rule_new(TABLE, "gre1", 65496, MT_MSS_OUT) ==
	      NULL);
	CHECK(mt_nft_cust_mss_rule_new(TABLE, "a/b", 1400, MT_MSS_OUT) == NULL);
}

/* Expression i of r (0-based), or NULL. */
static struct nftnl_expr *nth_expr(struct nftnl_rule *r, int i)
{
	struct nftnl_expr_iter *it = nftnl_expr_iter_create(r);
	struct nftnl_expr *e = NULL;

	for (int k = 0; k <= i; k++)
		e = nftnl_expr_iter_next(it);
	nftnl_expr_iter_destroy(it);
	return e;
}

static void set_comment(struct nftnl_rule *r, const char *s)
{
	struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(256);

	nftnl_udata_put_strz(u, NFTNL_UDATA_RULE_COMMENT, s);
	nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(u),
			    nftnl_udata_buf_len(u));
	nftnl_udata_buf_free(u);
}

static struct nftnl_rule *good(enum mt_mss_dir dir)
{
	return mt_nft_cust_mss_rule_new(TABLE, "gre1", 1436, dir);
}

static int parse_r(struct nftnl_rule *r)
{
	char dev[IFNAMSIZ];
	uint32_t mss;
	enum mt_mss_dir dir;
	int ret = parse_wire(r, dev, &mss, &dir);

	nftnl_rule_free(r);
	return ret;
}

static void test_rule_rejects(void)
{
	struct nftnl_rule *r;
	struct nftnl_expr *e;
	uint16_t be = htons(1400);
	char name4[4] = "gre1";
	char pad[IFNAMSIZ] = "gre1";

	/* sanity: untouched parses */
	CHECK(parse_r(good(MT_MSS_OUT)) == 0);

	/* no comment / a foreign comment / the other direction's / the
	 * other device's */
	r = good(MT_MSS_OUT);
	nftnl_rule_unset(r, NFTNL_RULE_USERDATA);
	CHECK(parse_r(r) == -ENOENT);
	r = good(MT_MSS_OUT);
	set_comment(r, "hand made");
	CHECK(parse_r(r) == -ENOENT);
	r = good(MT_MSS_OUT);
	set_comment(r, "mt mss gre1 in");
	CHECK(parse_r(r) == -ENOENT);
	r = good(MT_MSS_IN);
	set_comment(r, "mt mss gre2 in");
	CHECK(parse_r(r) == -ENOENT);

	/* the comparison and the immediate disagree */
	r = good(MT_MSS_OUT);
	nftnl_expr_set(nth_expr(r, 8), NFTNL_EXPR_CMP_DATA, &be, sizeof(be));
	CHECK(parse_r(r) == -ENOENT);
	r = good(MT_MSS_OUT);
	nftnl_expr_set(nth_expr(r, 9), NFTNL_EXPR_IMM_DATA, &be, sizeof(be));
	CHECK(parse_r(r) == -ENOENT);
	/* both changed consistently: still ours, with the new mss */
	{
		char dev[IFNAMSIZ];
		uint32_t mss = 0;
		enum mt_mss_dir dir;

		r = good(MT_MSS_OUT);
		nftnl_expr_set(nth_expr(r, 8), NFTNL_EXPR_CMP_DATA, &be,
			       sizeof(be));
		nftnl_expr_set(nth_expr(r, 9), NFTNL_EXPR_IMM_DATA, &be,
			       sizeof(be));
		CHECK(parse_wire(r, dev, &mss, &dir) == 0 && mss == 1400);
		nftnl_rule_free(r);
	}
	/* cmp gt became gte */
	r = good(MT_MSS_OUT);
	nftnl_expr_set_u32(nth_expr(r, 8), NFTNL_EXPR_CMP_OP, NFT_CMP_GTE);
	CHECK(parse_r(r) == -ENOENT);
	/* the name as a prefix match (4 bytes, no NUL: "gre1*") */
	r = good(MT_MSS_OUT);
	nftnl_expr_set(nth_expr(r, 1), NFTNL_EXPR_CMP_DATA, name4,
		       sizeof(name4));
	CHECK(parse_r(r) == -ENOENT);
	/* junk after the NUL */
	r = good(MT_MSS_OUT);
	pad[10] = 'x';
	nftnl_expr_set(nth_expr(r, 1), NFTNL_EXPR_CMP_DATA, pad, sizeof(pad));
	CHECK(parse_r(r) == -ENOENT);
	/* oifname became iifname (the comment says out) */
	r = good(MT_MSS_OUT);
	nftnl_expr_set_u32(nth_expr(r, 0), NFTNL_EXPR_META_KEY,
			   NFT_META_IIFNAME);
	CHECK(parse_r(r) == -ENOENT);
	/* another tcp option (window scale) */
	r = good(MT_MSS_IN);
	nftnl_expr_set_u8(nth_expr(r, 10), NFTNL_EXPR_EXTHDR_TYPE, 3);
	CHECK(parse_r(r) == -ENOENT);
	/* the flags test changed: syn|ack */
	{
		uint8_t m = 0x12;

		r = good(MT_MSS_IN);
		nftnl_expr_set(nth_expr(r, 5), NFTNL_EXPR_BITWISE_MASK, &m, 1);
		CHECK(parse_r(r) == -ENOENT);
	}
	/* a register other than 1 */
	r = good(MT_MSS_OUT);
	nftnl_expr_set_u32(nth_expr(r, 7), NFTNL_EXPR_EXTHDR_DREG, NFT_REG_2);
	CHECK(parse_r(r) == -ENOENT);
	/* an extra expression (a counter) */
	r = good(MT_MSS_OUT);
	nftnl_rule_add_expr(r, nftnl_expr_alloc("counter"));
	CHECK(parse_r(r) == -ENOENT);
	/* one expression missing (the l4proto dependency) */
	r = good(MT_MSS_OUT);
	e = nth_expr(r, 2);
	nftnl_rule_del_expr(e);
	nftnl_expr_free(e);
	CHECK(parse_r(r) == -ENOENT);
	/* the mss write missing: only a match */
	r = good(MT_MSS_OUT);
	e = nth_expr(r, 10);
	nftnl_rule_del_expr(e);
	nftnl_expr_free(e);
	CHECK(parse_r(r) == -ENOENT);
	/* a verdict instead of the immediate value */
	r = good(MT_MSS_OUT);
	e = nth_expr(r, 9);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
	CHECK(parse_r(r) == -ENOENT);
	/* an empty rule with mt's comment */
	r = nftnl_rule_alloc();
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, MT_NFT_CUST_MSS_CHAIN);
	set_comment(r, "mt mss gre1 out");
	CHECK(parse_r(r) == -ENOENT);
}

static void test_chain(void)
{
	struct nftnl_chain *c = mt_nft_cust_mss_chain_new(TABLE), *w;

	w = chain_wire(c);
	CHECK(mt_nft_cust_mss_chain_ok(w));
	/* the kernel reports base chains with flags = NFT_CHAIN_BASE */
	nftnl_chain_set_u32(w, NFTNL_CHAIN_FLAGS, NFT_CHAIN_BASE);
	CHECK(mt_nft_cust_mss_chain_ok(w));
	nftnl_chain_free(w);

	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, 0);
	w = chain_wire(c);
	CHECK(!mt_nft_cust_mss_chain_ok(w));
	nftnl_chain_free(w);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, MT_NFT_CUST_MSS_PRIO);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_DROP);
	w = chain_wire(c);
	CHECK(!mt_nft_cust_mss_chain_ok(w));
	nftnl_chain_free(w);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_PRE_ROUTING);
	w = chain_wire(c);
	CHECK(!mt_nft_cust_mss_chain_ok(w));
	nftnl_chain_free(w);
	nftnl_chain_free(c);

	/* a regular chain of that name */
	c = nftnl_chain_alloc();
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, TABLE);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, MT_NFT_CUST_MSS_CHAIN);
	w = chain_wire(c);
	CHECK(!mt_nft_cust_mss_chain_ok(w));
	nftnl_chain_free(w);
	nftnl_chain_free(c);
}

/* ---- state analysis and plans ---- */

static uint64_t next_handle = 10;

/* Adds a rule of dev/mss/dir to st, as dumped (with a handle). */
static uint64_t st_add(struct mt_nft_cust_state *st, const char *dev,
		       uint32_t mss, enum mt_mss_dir dir)
{
	struct nftnl_rule *r = mt_nft_cust_mss_rule_new(TABLE, dev, mss, dir);
	struct nftnl_rule *w;
	uint64_t h = next_handle++;

	nftnl_rule_set_u64(r, NFTNL_RULE_HANDLE, h);
	w = rule_wire(r);
	CHECK(mt_nft_cust_state_add(st, w) == 0);
	nftnl_rule_free(w);
	nftnl_rule_free(r);
	return h;
}

static uint64_t st_add_foreign(struct mt_nft_cust_state *st)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	uint64_t h = next_handle++;

	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, MT_NFT_CUST_MSS_CHAIN);
	nftnl_rule_set_u64(r, NFTNL_RULE_HANDLE, h);
	nftnl_rule_add_expr(r, nftnl_expr_alloc("counter"));
	CHECK(mt_nft_cust_state_add(st, r) == 0);
	nftnl_rule_free(r);
	return h;
}

static void st_chain(struct mt_nft_cust_state *st)
{
	st->table = st->chain = st->chain_ok = true;
}

static void test_clamps(void)
{
	struct mt_nft_cust_state st = {0};
	struct mt_nft_cust_clamp *cl;
	size_t n;
	bool dirty;
	uint64_t h1, h2;

	/* no chain: nothing, clean (also with a dormant table) */
	st.table = st.dormant = true;
	CHECK(mt_nft_cust_clamps(&st, &cl, &n, &dirty) == 0);
	CHECK(n == 0 && !dirty && cl == NULL);

	st.dormant = false;
	st_chain(&st);
	h2 = st_add(&st, "gre2", 1400, MT_MSS_IN);
	h1 = st_add(&st, "gre1", 1436, MT_MSS_OUT);
	st_add(&st, "gre1", 1436, MT_MSS_IN);
	st_add(&st, "gre2", 1400, MT_MSS_OUT);
	CHECK(mt_nft_cust_clamps(&st, &cl, &n, &dirty) == 0);
	CHECK(n == 2 && !dirty);
	if (n == 2) {
		CHECK_STR(cl[0].dev, "gre1");
		CHECK(cl[0].mss == 1436 && cl[0].handle[MT_MSS_OUT] == h1);
		CHECK_STR(cl[1].dev, "gre2");
		CHECK(cl[1].mss == 1400 && cl[1].handle[MT_MSS_IN] == h2);
	}
	free(cl);

	/* dormant table: dirty */
	st.dormant = true;
	CHECK(mt_nft_cust_clamps(&st, &cl, &n, &dirty) == 0 && dirty && n == 2);
	free(cl);
	st.dormant = false;
	/* chain not as mt makes it: dirty */
	st.chain_ok = false;
	CHECK(mt_nft_cust_clamps(&st, &cl, &n, &dirty) == 0 && dirty);
	free(cl);
	st.chain_ok = true;

	/* a foreign rule: dirty, the clamps still reported */
	st_add_foreign(&st);
	CHECK(mt_nft_cust_clamps(&st, &cl, &n, &dirty) == 0);
	CHECK(n == 2 && dirty);
	free(cl);
	mt_nft_cust_state_fini(&st);

	/* half a clamp, mismatched mss, duplicates: not clamps, dirty */
	st_chain(&st);
	st_add(&st, "gre1", 1436, MT_MSS_OUT);
	st_add(&st, "gre2", 1436, MT_MSS_OUT);
	st_add(&st, "gre2", 1400, MT_MSS_IN);
	st_add(&st, "gre3", 1436, MT_MSS_OUT);
	st_add(&st, "gre3", 1436, MT_MSS_IN);
	st_add(&st, "gre3", 1436, MT_MSS_IN);
	st_add(&st, "gre4", 1436, MT_MSS_OUT);
	st_add(&st, "gre4", 1436, MT_MSS_IN);
	CHECK(mt_nft_cust_clamps(&st, &cl, &n, &dirty) == 0);
	CHECK(n == 1 && dirty);
	if (n == 1)
		CHECK_STR(cl[0].dev, "gre4");
	free(cl);
	mt_nft_cust_state_fini(&st);
}

static struct mt_metal metal;

static void test_op_check(void)
{
	static const struct {
		const char *netns, *dev;
		uint32_t mss;
		bool del;
		int want;
		const char *msg;
	} cases[] = {
	    {"mt0-acme", "gre1", 1436, false, 0, NULL},
	    {"mt0-acme", "gre1", 536, false, 0, NULL},
	    {"mt0-acme", "gre1", 65495, false, 0, NULL},
	    {"mt0-acme", "gre1", 0, true, 0, NULL},
	    {"mt0-acme", "", 0, true, 0, NULL},
	    {"mt0-acme", "gre1", 535, false, -EINVAL, "mss 535"},
	    {"mt0-acme", "gre1", 65496, false, -EINVAL, "536..65495"},
	    {"mt1-acme", "gre1", 1436, false, -EPERM, "\"mt1-acme\""},
	    {"acme", "gre1", 1436, true, -EPERM, "start with \"mt0-\""},
	    {"", "gre1", 1436, false, -EPERM, "netns"},
	    {"mt0-", "gre1", 1436, false, -EPERM, "netns"},
	    {"mt0-a/../b", "gre1", 1436, false, -EPERM, "netns"},
	    {"mt0-acme", "", 1436, false, -EPERM, "dev \"\""},
	    {"mt0-acme", "a b", 1436, true, -EPERM, "dev \"a b\""},
	    {"mt0-acme", "abcdefghijklmnop", 1436, false, -EPERM,
	     "not a valid interface name"},
	};
	char err[256];

	for (size_t i = 0; i < MT_ARRAY_SIZE(cases); i++) {
		Mt__Kernel__MssClamp c = MT__KERNEL__MSS_CLAMP__INIT;
		Mt__Kernel__Op op = MT__KERNEL__OP__INIT;
		int r;

		c.netns = (char *)cases[i].netns;
		c.dev = (char *)cases[i].dev;
		c.mss = cases[i].mss;
		op.action = cases[i].del ? MT__KERNEL__OP__ACTION__DELETE
					 : MT__KERNEL__OP__ACTION__CREATE;
		op.object_case = MT__KERNEL__OP__OBJECT_MSS_CLAMP;
		op.mss_clamp = &c;
		r = mt_nft_cust_op_check(&metal, &op, err, sizeof(err));
		if (r != cases[i].want)
			fprintf(stderr, "case %zu: %d (%s)\n", i, r, err);
		CHECK(r == cases[i].want);
		if (cases[i].msg)
			CHECK_CONTAINS(err, cases[i].msg);
	}
	{
		Mt__Kernel__Op op = MT__KERNEL__OP__INIT;

		CHECK(mt_nft_cust_op_check(&metal, &op, err, sizeof(err)) ==
		      -EOPNOTSUPP);
	}
}

/* ---- plans ---- */

static Mt__Kernel__Plan *plan;

static void op(bool del, const char *dev, uint32_t mss)
{
	Mt__Kernel__MssClamp c = MT__KERNEL__MSS_CLAMP__INIT;

	c.netns = "mt0-acme";
	c.dev = (char *)dev;
	c.mss = mss;
	c.owner = "acme";
	mt_plan_add(plan,
		    del ? MT__KERNEL__OP__ACTION__DELETE
			: MT__KERNEL__OP__ACTION__CREATE,
		    &c.base);
}

/* The plan of the ops added so far against st, as a string of steps:
 * "T" newtable, "C" newchain, "X" delchain, "d<handle>" delrule,
 * "r<dev>/<mss>/<o|i>@<op>" newrule; space separated. The ops are reset. */
static const char *plan_str(const struct mt_nft_cust_state *st)
{
	static char out[1024];
	struct mt_nft_cust_act *acts = NULL;
	size_t n_acts = 0, idx[16], len = 0;

	for (size_t i = 0; i < plan->n_ops; i++)
		idx[i] = i;
	out[0] = '\0';
	CHECK(mt_nft_cust_plan(st, plan->ops, idx, plan->n_ops, &acts,
			       &n_acts) == 0);
	for (size_t i = 0; i < n_acts; i++) {
		const struct mt_nft_cust_act *a = &acts[i];

		switch (a->type) {
		case MT_NFT_CUST_NEWTABLE:
			len += snprintf(out + len, sizeof(out) - len, "%sT@%zu",
					i ? " " : "", a->op);
			break;
		case MT_NFT_CUST_NEWCHAIN:
			len += snprintf(out + len, sizeof(out) - len, "%sC",
					i ? " " : "");
			break;
		case MT_NFT_CUST_DELCHAIN:
			len += snprintf(out + len, sizeof(out) - len, "%sX@%zu",
					i ? " " : "", a->op);
			break;
		case MT_NFT_CUST_DELRULE:
			len += snprintf(out + len, sizeof(out) - len,
					"%sd%llu@%zu", i ? " " : "",
					(unsigned long long)a->handle, a->op);
			break;
		case MT_NFT_CUST_NEWRULE:
			len += snprintf(
			    out + len, sizeof(out) - len, "%sr%s/%u/%c@%zu",
			    i ? " " : "", a->dev, a->mss,
			    a->dir == MT_MSS_OUT ? 'o' : 'i', a->op);
			break;
		}
	}
	free(acts);
	mt_plan_free(plan);
	plan = mt_plan_new();
	return out;
}

static void test_plan(void)
{
	struct mt_nft_cust_state st = {0};
	uint64_t o1, i1, o2, i2;

	plan = mt_plan_new();

	/* from nothing: table, chain, the pair (a DELETE first changes
	 * nothing) */
	op(true, "gre9", 0);
	op(false, "gre1", 1436);
	CHECK_STR(plan_str(&st), "T@1 C rgre1/1436/o@1 rgre1/1436/i@1");
	/* a DELETE of nothing, and the marker on a clean table: nothing */
	op(true, "gre1", 0);
	op(true, "", 0);
	CHECK_STR(plan_str(&st), "");
	/* the table exists without the chain */
	st.table = true;
	op(false, "gre1", 1436);
	op(false, "gre2", 1400);
	CHECK_STR(plan_str(&st), "T@0 C rgre1/1436/o@0 rgre1/1436/i@0 "
				 "rgre2/1400/o@1 rgre2/1400/i@1");

	/* intact clamps */
	st_chain(&st);
	o1 = st_add(&st, "gre1", 1436, MT_MSS_OUT);
	i1 = st_add(&st, "gre1", 1436, MT_MSS_IN);
	o2 = st_add(&st, "gre2", 1400, MT_MSS_OUT);
	i2 = st_add(&st, "gre2", 1400, MT_MSS_IN);
	/* idempotent: the same clamp again */
	op(false, "gre1", 1436);
	CHECK_STR(plan_str(&st), "");
	/* replace: old pair out, new pair in */
	op(false, "gre1", 1400);
	{
		char want[256];

		snprintf(want, sizeof(want),
			 "d%llu@0 d%llu@0 rgre1/1400/o@0 rgre1/1400/i@0",
			 (unsigned long long)o1, (unsigned long long)i1);
		CHECK_STR(plan_str(&st), want);
		/* delete one of two */
		op(true, "gre2", 0);
		snprintf(want, sizeof(want), "d%llu@0 d%llu@0",
			 (unsigned long long)o2, (unsigned long long)i2);
		CHECK_STR(plan_str(&st), want);
	}
	/* a new device beside them */
	op(false, "gre3", 1300);
	CHECK_STR(plan_str(&st), "rgre3/1300/o@0 rgre3/1300/i@0");
	/* delete both: the chain goes */
	op(true, "gre1", 0);
	op(true, "gre2", 0);
	CHECK_STR(plan_str(&st), "X@0");
	/* create then delete in one plan: nothing; the last op wins */
	op(false, "gre3", 1300);
	op(true, "gre3", 0);
	CHECK_STR(plan_str(&st), "");
	op(true, "gre1", 0);
	op(false, "gre1", 1436);
	CHECK_STR(plan_str(&st), "");
	op(false, "gre1", 1000);
	op(false, "gre1", 1100);
	{
		char want[256];

		snprintf(want, sizeof(want),
			 "d%llu@1 d%llu@1 rgre1/1100/o@1 rgre1/1100/i@1",
			 (unsigned long long)o1, (unsigned long long)i1);
		CHECK_STR(plan_str(&st), want);
	}

	/* dirty (a foreign rule): any op rebuilds the chain with every
	 * clamp that remains, the marker's DELETE too */
	st_add_foreign(&st);
	op(true, "", 0);
	CHECK_STR(plan_str(&st), "T@0 X@0 C rgre1/1436/o@0 rgre1/1436/i@0 "
				 "rgre2/1400/o@0 rgre2/1400/i@0");
	op(true, "", 0);
	op(false, "gre2", 1300);
	CHECK_STR(plan_str(&st), "T@0 X@0 C rgre1/1436/o@0 rgre1/1436/i@0 "
				 "rgre2/1300/o@1 rgre2/1300/i@1");
	/* dirty and nothing remains: only the chain's deletion */
	op(true, "gre1", 0);
	op(true, "gre2", 0);
	CHECK_STR(plan_str(&st), "X@0");
	mt_nft_cust_state_fini(&st);

	/* half a clamp (one rule deleted by hand): CREATE repairs it,
	 * DELETE removes the half */
	st_chain(&st);
	st_add(&st, "gre1", 1436, MT_MSS_OUT);
	op(false, "gre1", 1436);
	CHECK_STR(plan_str(&st), "T@0 X@0 C rgre1/1436/o@0 rgre1/1436/i@0");
	op(true, "gre1", 0);
	CHECK_STR(plan_str(&st), "X@0");
	mt_nft_cust_state_fini(&st);

	/* the chain changed by hand (policy drop), empty: dirty */
	st_chain(&st);
	st.chain_ok = false;
	op(false, "gre1", 1436);
	CHECK_STR(plan_str(&st), "T@0 X@0 C rgre1/1436/o@0 rgre1/1436/i@0");
	mt_nft_cust_state_fini(&st);

	mt_plan_free(plan);
}

int main(void)
{
	char err[128];

	if (mt_metal_init(&metal, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "metal: %s\n", err);
		return 1;
	}
	RUN(test_dev_valid);
	RUN(test_rule_round_trip);
	RUN(test_rule_rejects);
	RUN(test_chain);
	RUN(test_clamps);
	RUN(test_op_check);
	RUN(test_plan);
	mt_metal_fini(&metal);
	TEST_MAIN_END();
}
