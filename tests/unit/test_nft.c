/* nft marking table: pure build/parse round trips and transaction planning.
 * No root, no kernel: messages are built into buffers and parsed back with
 * libnftnl, exactly as they would travel over netlink. */
#include "mt_test.h"

#include <errno.h>
#include <stdlib.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>

#include "mt_kstate.h"
#include "mt_metal.h"
#include "mt_prefix.h"
#include "nft_batch.h"
#include "nft_mark.h"

static struct mt_prefix P(const char *s)
{
	struct mt_prefix p;
	char err[128];

	if (mt_prefix_parse(s, true, &p, err, sizeof(err)) < 0) {
		fprintf(stderr, "bad test prefix %s: %s\n", s, err);
		abort();
	}
	return p;
}

/* end of prefix s, formatted as an address, or "open" */
static const char *end_of(const char *s, char *buf, size_t len)
{
	struct mt_prefix p = P(s), e = p;

	if (mt_nft_mark_interval_end(&p, e.addr) < 0)
		return "open";
	return mt_addr_format(&e, buf, len);
}

static void test_interval_end(void)
{
	char b[MT_PREFIX_STRLEN];

	CHECK_STR(end_of("203.0.113.0/24", b, sizeof(b)), "203.0.114.0");
	CHECK_STR(end_of("192.0.2.7/32", b, sizeof(b)), "192.0.2.8");
	CHECK_STR(end_of("10.255.255.255/32", b, sizeof(b)), "11.0.0.0");
	CHECK_STR(end_of("10.0.0.0/8", b, sizeof(b)), "11.0.0.0");
	CHECK_STR(end_of("128.0.0.0/1", b, sizeof(b)), "open");
	CHECK_STR(end_of("0.0.0.0/1", b, sizeof(b)), "128.0.0.0");
	CHECK_STR(end_of("255.255.255.255/32", b, sizeof(b)), "open");
	CHECK_STR(end_of("255.255.255.0/24", b, sizeof(b)), "open");
	CHECK_STR(end_of("0.0.0.0/0", b, sizeof(b)), "open");
	CHECK_STR(end_of("2001:db8::/32", b, sizeof(b)), "2001:db9::");
	CHECK_STR(end_of("2001:db8:0:ffff::/64", b, sizeof(b)),
		  "2001:db8:1::");
	CHECK_STR(end_of("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/128", b,
			 sizeof(b)), "2001:db9::");
	CHECK_STR(end_of("::/0", b, sizeof(b)), "open");
	CHECK_STR(end_of("ffff::/16", b, sizeof(b)), "open");
	CHECK_STR(end_of("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", b,
			 sizeof(b)), "open");
}

/* Builds r into a NEWRULE message and parses it back into a new rule. */
static struct nftnl_rule *rule_roundtrip(struct nftnl_rule *r)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	struct nftnl_rule *back = nftnl_rule_alloc();

	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_NEWRULE, NFPROTO_INET,
				    NLM_F_CREATE, 1);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	if (nftnl_rule_nlmsg_parse(nlh, back) < 0) {
		nftnl_rule_free(back);
		return NULL;
	}
	return back;
}

static void check_rule(int family, uint32_t mark, uint32_t mask)
{
	struct nftnl_rule *r = mt_nft_mark_rule_new("mt0-mark", family, mark,
						    mask);
	struct nftnl_rule *back;
	uint32_t m2 = 0, k2 = 0;
	int f2 = 0;

	CHECK(r != NULL);
	if (!r)
		return;
	back = rule_roundtrip(r);
	CHECK(back != NULL);
	if (back) {
		CHECK(mt_nft_mark_rule_parse(back, &f2, &m2, &k2) == 0);
		CHECK(f2 == family);
		CHECK(m2 == mark);
		CHECK(k2 == mask);
		CHECK_STR(nftnl_rule_get_str(back, NFTNL_RULE_TABLE),
			  "mt0-mark");
		CHECK_STR(nftnl_rule_get_str(back, NFTNL_RULE_CHAIN),
			  MT_NFT_MARK_CHAIN);
		nftnl_rule_free(back);
	}
	nftnl_rule_free(r);
}

static void test_rule_roundtrip(void)
{
	check_rule(AF_INET, 0x100, 0xff00);
	check_rule(AF_INET6, 0x100, 0xff00);
	check_rule(AF_INET, 0x1, 0x1);
	check_rule(AF_INET6, 0xdead0000, 0xffff0000);
	check_rule(AF_INET, 0xffffffff, 0xffffffff);
	check_rule(AF_INET, 0, 0xf0);
}

static void test_rule_not_ours(void)
{
	struct nftnl_rule *r, *back;
	struct nftnl_expr *e;
	uint32_t mark, mask;
	int fam;

	/* an extra expression appended: not intact */
	r = mt_nft_mark_rule_new("mt0-mark", AF_INET, 0x100, 0xff00);
	e = nftnl_expr_alloc("counter");
	nftnl_rule_add_expr(r, e);
	back = rule_roundtrip(r);
	CHECK(back && mt_nft_mark_rule_parse(back, &fam, &mark, &mask) ==
			      -ENOENT);
	nftnl_rule_free(back);
	nftnl_rule_free(r);

	/* no comment: someone else's rule */
	r = mt_nft_mark_rule_new("mt0-mark", AF_INET6, 0x100, 0xff00);
	nftnl_rule_unset(r, NFTNL_RULE_USERDATA);
	back = rule_roundtrip(r);
	CHECK(back && mt_nft_mark_rule_parse(back, &fam, &mark, &mask) ==
			      -ENOENT);
	nftnl_rule_free(back);
	nftnl_rule_free(r);

	/* an empty rule */
	r = nftnl_rule_alloc();
	CHECK(mt_nft_mark_rule_parse(r, &fam, &mark, &mask) == -ENOENT);
	nftnl_rule_free(r);
}

/* libnftnl numbers the elements of a list it builds 1, 2, ... (the kernel
 * accepts any type) but its parser, like the kernel's dumps, wants every
 * one to be NFTA_LIST_ELEM: rewrite the message into the dump format. */
static void as_kernel_dump(struct nlmsghdr *nlh)
{
	struct nlattr *attr, *elem;

	mnl_attr_for_each(attr, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(attr) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		mnl_attr_for_each_nested(elem, attr)
			elem->nla_type = (elem->nla_type & ~NLA_TYPE_MASK) |
					 NFTA_LIST_ELEM;
	}
}

struct elem_case {
	const char *prefix;
	const char *owner;
};

/* Builds the elements of cases (in the order given, as one NEWSETELEM
 * message), parses them back and checks every prefix and owner. */
static void check_elems(int family, const struct elem_case *c, size_t n,
			const char *const *want_sorted)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nftnl_set *s = nftnl_set_alloc(), *back = nftnl_set_alloc();
	struct mt_nft_mark_range *r = NULL;
	struct nlmsghdr *nlh;
	size_t nr = 0;

	nftnl_set_set_str(s, NFTNL_SET_TABLE, "mt0-mark");
	nftnl_set_set_str(s, NFTNL_SET_NAME, family == AF_INET ?
			  MT_NFT_MARK_SET4 : MT_NFT_MARK_SET6);
	for (size_t i = 0; i < n; i++) {
		struct mt_prefix p = P(c[i].prefix);

		CHECK(mt_nft_mark_elems_add(s, &p, c[i].owner) == 0);
	}
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_NEWSETELEM, NFPROTO_INET,
				    NLM_F_CREATE, 1);
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	as_kernel_dump(nlh);
	CHECK(nftnl_set_elems_nlmsg_parse(nlh, back) == 0);
	CHECK(mt_nft_mark_elems_parse(back, family, &r, &nr) == 0);
	CHECK(nr == n);
	for (size_t i = 0; i < nr && i < n; i++) {
		struct mt_prefix p;
		char pb[MT_PREFIX_STRLEN];
		const char *owner = NULL;

		CHECK(mt_nft_mark_range_prefix(&r[i], &p) == 0);
		CHECK_STR(mt_prefix_format(&p, pb, sizeof(pb)),
			  want_sorted[i]);
		for (size_t j = 0; j < n; j++)
			if (strcmp(c[j].prefix, want_sorted[i]) == 0)
				owner = c[j].owner;
		CHECK_STR(r[i].owner, owner);
	}
	free(r);
	nftnl_set_free(s);
	nftnl_set_free(back);
}

static void test_elem_roundtrip(void)
{
	/* out of order (the kernel dumps an rbtree in descending order),
	 * adjacent prefixes, one at the top of the space. */
	static const struct elem_case v4[] = {
		{ "255.255.255.255/32", "top" },
		{ "203.0.113.0/24", "acme" },
		{ "198.51.100.0/25", "beta" },
		{ "198.51.100.128/25", "gamma" },
		{ "10.0.0.0/8", "delta" },
		{ "0.0.0.0/32", "zero" },
	};
	static const char *const v4_sorted[] = {
		"0.0.0.0/32", "10.0.0.0/8", "198.51.100.0/25",
		"198.51.100.128/25", "203.0.113.0/24", "255.255.255.255/32",
	};
	static const struct elem_case all4[] = { { "0.0.0.0/0", "all" } };
	static const char *const all4_sorted[] = { "0.0.0.0/0" };
	static const struct elem_case v6[] = {
		{ "2001:db8:1::/48", "acme" },
		{ "2001:db8::/48", "beta" },
		{ "ffff:ffff:ffff:ffff::/64", "top" },
	};
	static const char *const v6_sorted[] = {
		"2001:db8::/48", "2001:db8:1::/48", "ffff:ffff:ffff:ffff::/64",
	};
	static const struct elem_case all6[] = { { "::/0", "all6" } };
	static const char *const all6_sorted[] = { "::/0" };

	check_elems(AF_INET, v4, MT_ARRAY_SIZE(v4), v4_sorted);
	check_elems(AF_INET, all4, 1, all4_sorted);
	check_elems(AF_INET6, v6, MT_ARRAY_SIZE(v6), v6_sorted);
	check_elems(AF_INET6, all6, 1, all6_sorted);
}

/* Elements mt never writes: a start followed by another start (the first
 * interval then ends before the second, as the kernel's lookup sees it) and
 * a stray end element at the bottom (old nft's gap marker). */
static void test_elem_foreign(void)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nftnl_set *s = nftnl_set_alloc(), *back = nftnl_set_alloc();
	struct mt_nft_mark_range *r = NULL;
	struct nlmsghdr *nlh;
	struct nftnl_set_elem *e;
	static const uint8_t keys[][4] = {
		{ 0, 0, 0, 0 }, { 10, 0, 0, 0 }, { 20, 0, 0, 0 }, { 20, 1, 0, 0 },
	};
	static const bool ends[] = { true, false, false, true };
	struct mt_prefix p;
	size_t n = 0;
	char b[MT_PREFIX_STRLEN];

	for (size_t i = 0; i < 4; i++) {
		e = nftnl_set_elem_alloc();
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, keys[i], 4);
		if (ends[i])
			nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_FLAGS,
					       NFT_SET_ELEM_INTERVAL_END);
		nftnl_set_elem_add(s, e);
	}
	nftnl_set_set_str(s, NFTNL_SET_TABLE, "t");
	nftnl_set_set_str(s, NFTNL_SET_NAME, "s");
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_NEWSETELEM, NFPROTO_INET, 0,
				    1);
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	as_kernel_dump(nlh);
	CHECK(nftnl_set_elems_nlmsg_parse(nlh, back) == 0);
	CHECK(mt_nft_mark_elems_parse(back, AF_INET, &r, &n) == 0);
	CHECK(n == 2);
	if (n == 2) {
		CHECK(r[0].first[0] == 10 && r[0].last[0] == 19 &&
		      r[0].last[3] == 255);
		CHECK(mt_nft_mark_range_prefix(&r[0], &p) == -EINVAL);
		CHECK(mt_nft_mark_range_prefix(&r[1], &p) == 0);
		CHECK_STR(mt_prefix_format(&p, b, sizeof(b)), "20.0.0.0/16");
		CHECK_STR(r[1].owner, "");
	}
	free(r);
	nftnl_set_free(s);
	nftnl_set_free(back);
}

static void test_elem_limits(void)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct mt_prefix p = P("192.0.2.0/24");
	char longname[MT_NFT_MARK_OWNER_MAX + 2];

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK(mt_nft_mark_elems_add(s, &p, longname) == -EINVAL);
	nftnl_set_free(s);
}

static void test_range_prefix(void)
{
	struct mt_nft_mark_range r = { .family = AF_INET };
	struct mt_prefix p;
	char b[MT_PREFIX_STRLEN];

	/* 10.0.0.0 - 10.0.0.255: a /24 */
	r.first[0] = 10;
	r.last[0] = 10;
	r.last[3] = 255;
	CHECK(mt_nft_mark_range_prefix(&r, &p) == 0);
	CHECK_STR(mt_prefix_format(&p, b, sizeof(b)), "10.0.0.0/24");
	/* 10.0.0.0 - 10.0.1.127: not a block */
	r.last[2] = 1;
	r.last[3] = 127;
	CHECK(mt_nft_mark_range_prefix(&r, &p) == -EINVAL);
	/* 10.0.0.1 - 10.0.0.2: not aligned */
	r.first[3] = 1;
	r.last[2] = 0;
	r.last[3] = 2;
	CHECK(mt_nft_mark_range_prefix(&r, &p) == -EINVAL);
}

/* ---- planning ---- */

static Mt__Kernel__Op *add_table(Mt__Kernel__Plan *plan, bool del,
				 const char *name, uint32_t mark,
				 uint32_t mask)
{
	Mt__Kernel__MarkTable t = MT__KERNEL__MARK_TABLE__INIT;

	t.name = (char *)name;
	t.fwmark = mark;
	t.fwmask = mask;
	return mt_plan_add(plan, del ? MT__KERNEL__OP__ACTION__DELETE :
				       MT__KERNEL__OP__ACTION__CREATE,
			   &t.base);
}

static Mt__Kernel__Op *add_prefix(Mt__Kernel__Plan *plan, bool del,
				  const char *prefix, const char *owner)
{
	Mt__Kernel__MarkPrefix mp = MT__KERNEL__MARK_PREFIX__INIT;

	mp.prefix = (char *)prefix;
	mp.owner = (char *)owner;
	return mt_plan_add(plan, del ? MT__KERNEL__OP__ACTION__DELETE :
				       MT__KERNEL__OP__ACTION__CREATE,
			   &mp.base);
}

static void state_put(struct mt_nft_mark_state *st, const char *prefix,
		      const char *owner)
{
	struct mt_prefix p = P(prefix);
	struct mt_nft_mark_range r = { .family = p.family };

	memcpy(r.first, p.addr, 16);
	/* last = end - 1, or all ones */
	if (mt_nft_mark_interval_end(&p, r.last) < 0) {
		memset(r.last, 0xff, p.family == AF_INET ? 4 : 16);
	} else {
		for (size_t b = p.family == AF_INET ? 4 : 16; b-- > 0;)
			if (r.last[b]-- != 0)
				break;
	}
	snprintf(r.owner, sizeof(r.owner), "%s", owner);
	CHECK(mt_nft_mark_state_add(st, &r) == 0);
}

/* Plans plan against st; returns the result, the message count and the
 * failed index / text. */
static int plan_run(const struct mt_metal *m, Mt__Kernel__Plan *plan,
		    struct mt_nft_mark_state *st, size_t *count,
		    size_t *failed, char *err, size_t errlen)
{
	struct mt_nft_batch *b = mt_nft_batch_new(st->genid);
	int r;

	*failed = (size_t)-1;
	r = mt_nft_mark_plan(m, plan->ops, plan->n_ops, st, b, failed, err,
			     errlen);
	*count = mt_nft_batch_count(b);
	mt_nft_batch_free(b);
	return r;
}

static void test_plan(void)
{
	struct mt_metal m;
	struct mt_nft_mark_state st = { .table = true };
	Mt__Kernel__Plan *plan;
	char err[512];
	size_t count, failed;
	int r;

	CHECK(mt_metal_init(&m, NULL, err, sizeof(err)) == 0);

	/* MarkTable CREATE: table, 2 sets, chain, flush, 2 rules */
	plan = mt_plan_new();
	add_table(plan, false, m.mark_table, 0x100, 0xff00);
	CHECK(plan_run(&m, plan, &st, &count, &failed, err, sizeof(err)) == 0);
	CHECK(count == 7);
	mt_plan_free(plan);

	/* prefixes against a table holding 203.0.113.0/24 (acme) */
	state_put(&st, "203.0.113.0/24", "acme");
	state_put(&st, "2001:db8::/48", "acme");
	plan = mt_plan_new();
	add_prefix(plan, false, "203.0.113.0/24", "acme");  /* same: 0 */
	add_prefix(plan, false, "2001:db8::/48", "beta");   /* owner: 2 */
	add_prefix(plan, true, "198.51.100.0/24", "acme");  /* absent: 0 */
	add_prefix(plan, false, "198.51.100.0/24", "acme"); /* new: 1 */
	add_prefix(plan, true, "198.51.100.0/24", "acme");  /* now there: 1 */
	add_prefix(plan, false, "0.0.0.0/0", "");
	CHECK(plan_run(&m, plan, &st, &count, &failed, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(failed == 5);
	CHECK_CONTAINS(err, "owner");
	CHECK(count == 4);
	CHECK(st.n_ranges == 2);
	CHECK_STR(st.ranges[1].owner, "beta");
	mt_plan_free(plan);

	/* overlap with another customer's prefix */
	plan = mt_plan_new();
	add_prefix(plan, false, "203.0.0.0/16", "evil");
	CHECK(plan_run(&m, plan, &st, &count, &failed, err, sizeof(err)) ==
	      -EEXIST);
	CHECK(failed == 0);
	CHECK_CONTAINS(err, "203.0.113.0/24");
	CHECK_CONTAINS(err, "acme");
	mt_plan_free(plan);

	/* overlap search over a sorted state, from either side */
	{
		struct mt_nft_mark_state o = { .table = true };
		static const char *const cases[][2] = {
			{ "10.0.1.0/24", NULL },        /* between: fine */
			{ "10.0.0.128/25", "10.0.0.0/24" },
			{ "10.0.0.0/16", "10.0.0.0/24" },
			{ "8.0.0.0/6", "10.0.0.0/24" },
			{ "10.0.2.255/32", "10.0.2.0/24" },
			{ "0.0.0.0/0", "10.0.0.0/24" },
			{ "::/0", "2001:db8::/32" },
			{ "2001:db9::/32", NULL },
		};

		state_put(&o, "10.0.2.0/24", "b");
		state_put(&o, "2001:db8::/32", "c");
		state_put(&o, "10.0.0.0/24", "a");
		CHECK(o.n_ranges == 3 && o.ranges[0].first[2] == 0 &&
		      o.ranges[1].first[2] == 2 && o.ranges[2].family == AF_INET6);
		for (size_t i = 0; i < MT_ARRAY_SIZE(cases); i++) {
			struct mt_nft_mark_state c = { .table = true };

			for (size_t j = 0; j < o.n_ranges; j++)
				CHECK(mt_nft_mark_state_add(&c, &o.ranges[j]) == 0);
			plan = mt_plan_new();
			add_prefix(plan, false, cases[i][0], "new");
			r = plan_run(&m, plan, &c, &count, &failed, err,
				     sizeof(err));
			if (cases[i][1]) {
				CHECK(r == -EEXIST);
				CHECK_CONTAINS(err, cases[i][1]);
			} else {
				CHECK(r == 0 && count == 1 && c.n_ranges == 4);
			}
			mt_plan_free(plan);
			mt_nft_mark_state_fini(&c);
		}
		mt_nft_mark_state_fini(&o);
	}

	/* refusals */
	plan = mt_plan_new();
	add_prefix(plan, false, "192.0.2.0/24", "acme");
	add_table(plan, true, "filter", 0, 0);
	CHECK(plan_run(&m, plan, &st, &count, &failed, err, sizeof(err)) ==
	      -EPERM);
	CHECK(failed == 1);
	CHECK_CONTAINS(err, "filter");
	mt_plan_free(plan);

	plan = mt_plan_new();
	add_prefix(plan, false, "192.0.2.1/24", "acme");
	CHECK(plan_run(&m, plan, &st, &count, &failed, err, sizeof(err)) ==
	      -EINVAL);
	CHECK_CONTAINS(err, "192.0.2.1/24");
	mt_plan_free(plan);

	plan = mt_plan_new();
	add_table(plan, false, m.mark_table, 0x1000, 0x0f00); /* mark outside */
	CHECK(plan_run(&m, plan, &st, &count, &failed, err, sizeof(err)) ==
	      -EINVAL);
	CHECK_CONTAINS(err, "fwmask");
	mt_plan_free(plan);

	/* table delete: absent = nothing sent; present = 1 message, and the
	 * prefixes are gone with it */
	plan = mt_plan_new();
	add_table(plan, true, m.mark_table, 0, 0);
	add_prefix(plan, false, "192.0.2.0/24", "acme");
	CHECK(plan_run(&m, plan, &st, &count, &failed, err, sizeof(err)) ==
	      -ENOENT);
	CHECK(failed == 1);
	CHECK(count == 1);
	CHECK(!st.table && st.n_ranges == 0);
	mt_plan_free(plan);

	plan = mt_plan_new();
	add_table(plan, true, m.mark_table, 0, 0);
	add_table(plan, true, "mt0-old", 0, 0);
	CHECK(plan_run(&m, plan, &st, &count, &failed, err, sizeof(err)) == 0);
	CHECK(count == 0);
	mt_plan_free(plan);

	mt_nft_mark_state_fini(&st);
	mt_metal_fini(&m);
}

/* apply refuses before opening any socket: runs without root */
static void test_apply_refuses(void)
{
	struct mt_metal m;
	Mt__Kernel__Plan *plan = mt_plan_new();
	Mt__Kernel__OpResult *res[2] = { NULL, NULL };
	uint64_t writes = 0;
	char err[256];

	CHECK(mt_metal_init(&m, NULL, err, sizeof(err)) == 0);
	add_prefix(plan, false, "192.0.2.0/24", "acme");
	add_table(plan, false, "nat", 1, 1);
	CHECK(mt_nft_mark_apply(&m, plan->ops, plan->n_ops, res, &writes) ==
	      -EPERM);
	CHECK(writes == 0);
	CHECK(res[0] && res[0]->error == -ECANCELED);
	CHECK(res[0] && strstr(res[0]->message, "aborted by create nft table inet nat"));
	CHECK(res[1] && res[1]->error == -EPERM);
	CHECK(res[1] && strstr(res[1]->message, "not mt's"));
	for (int i = 0; i < 2; i++)
		if (res[i])
			protobuf_c_message_free_unpacked(&res[i]->base, NULL);
	mt_plan_free(plan);
	mt_metal_fini(&m);
}

int main(void)
{
	RUN(test_interval_end);
	RUN(test_rule_roundtrip);
	RUN(test_rule_not_ours);
	RUN(test_elem_roundtrip);
	RUN(test_elem_foreign);
	RUN(test_elem_limits);
	RUN(test_range_prefix);
	RUN(test_plan);
	RUN(test_apply_refuses);
	TEST_MAIN_END();
}
