/* The customer firewall in nftables (fastpath/nft_fw_rules.c): canonical
 * rules compiled, carried through the netlink encoding as a kernel dump
 * would return them (sets renamed, lookups by name, counters filled in),
 * parsed back into the same rule; parts altered by hand refused; the base
 * chain and its rules, the list sets, their interval elements and the
 * fw_lists elements. No root, no kernel. */
#include "mt_test.h"

#include <errno.h>
#include <stdlib.h>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <net/if.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>

#include "config.pb-c.h"
#include "mt_cleanup.h"
#include "mt_fw.h"
#include "nft_fw_rules.h"

#define TABLE "mt0-cust"
#define N(a) (sizeof(a) / sizeof((a)[0]))

static char msgbuf[1 << 17];

/* ---- a rule from a compact description ---- */

struct spec {
	uint32_t id;
	const char *desc, *action, *family, *proto, *src_list, *dst_list;
	bool monitor, fragment;
	const char *src[8], *dst[8], *sport[8], *dport[8];
	const char *fset[9], *fclear[9];
	int icmp_type, icmp_code; /* -1: none */
	int len_min, len_max;	  /* -1: none */
	int ttl_min, ttl_max;	  /* -1: none */
	uint64_t pps, bps, burst;
	size_t parts, sets; /* what the compiler must make */
};

#define NONE .icmp_type = -1, .icmp_code = -1, .len_min = -1, .ttl_min = -1

struct rbuf {
	Mt__Config__FirewallRule r;
	Mt__Config__RateLimit rl;
	Mt__Config__TcpFlags tf;
	Mt__Config__IcmpMatch icmp;
	Mt__Config__Range len, ttl;
};

static size_t count(const char *const *v, size_t max)
{
	size_t n = 0;

	while (n < max && v[n])
		n++;
	return n;
}

static void spec_rule(const struct spec *s, struct rbuf *b)
{
	Mt__Config__FirewallRule *r = &b->r;

	mt__config__firewall_rule__init(r);
	r->id = s->id;
	r->description = (char *)(s->desc ? s->desc : "");
	r->action = (char *)s->action;
	r->family = (char *)(s->family ? s->family : "");
	r->protocol = (char *)(s->proto ? s->proto : "");
	r->src_list = (char *)(s->src_list ? s->src_list : "");
	r->dst_list = (char *)(s->dst_list ? s->dst_list : "");
	r->monitor = s->monitor;
	r->fragment = s->fragment;
	r->n_src_prefixes = count(s->src, 8);
	r->src_prefixes = (char **)s->src;
	r->n_dst_prefixes = count(s->dst, 8);
	r->dst_prefixes = (char **)s->dst;
	r->n_src_ports = count(s->sport, 8);
	r->src_ports = (char **)s->sport;
	r->n_dst_ports = count(s->dport, 8);
	r->dst_ports = (char **)s->dport;
	if (s->pps || s->bps) {
		mt__config__rate_limit__init(&b->rl);
		b->rl.packets_per_second = s->pps;
		b->rl.bytes_per_second = s->bps;
		b->rl.burst = s->burst;
		r->rate_limit = &b->rl;
	}
	if (s->fset[0] || s->fclear[0]) {
		mt__config__tcp_flags__init(&b->tf);
		b->tf.n_set = count(s->fset, 9);
		b->tf.set = (char **)s->fset;
		b->tf.n_clear = count(s->fclear, 9);
		b->tf.clear = (char **)s->fclear;
		r->tcp_flags = &b->tf;
	}
	if (s->icmp_type >= 0) {
		mt__config__icmp_match__init(&b->icmp);
		b->icmp.type = (uint32_t)s->icmp_type;
		if (s->icmp_code >= 0) {
			b->icmp.code_present_case =
			    MT__CONFIG__ICMP_MATCH__CODE_PRESENT_CODE;
			b->icmp.code = (uint32_t)s->icmp_code;
		}
		r->icmp = &b->icmp;
	}
	if (s->len_min >= 0) {
		mt__config__range__init(&b->len);
		b->len.min = (uint32_t)s->len_min;
		b->len.max = (uint32_t)s->len_max;
		r->length = &b->len;
	}
	if (s->ttl_min >= 0) {
		mt__config__range__init(&b->ttl);
		b->ttl.min = (uint32_t)s->ttl_min;
		b->ttl.max = (uint32_t)s->ttl_max;
		r->ttl = &b->ttl;
	}
}

/* Field for field: mt_fw_rule_equal, and the two messages pack to the
 * same bytes. */
static bool rule_equal(const Mt__Config__FirewallRule *a,
		       const Mt__Config__FirewallRule *b)
{
	size_t na = protobuf_c_message_get_packed_size(&a->base);
	size_t nb = protobuf_c_message_get_packed_size(&b->base);
	_cleanup_free_ uint8_t *pa = malloc(na + 1);
	_cleanup_free_ uint8_t *pb = malloc(nb + 1);

	if (!mt_fw_rule_equal(a, b) || na != nb || !pa || !pb)
		return false;
	protobuf_c_message_pack(&a->base, pa);
	protobuf_c_message_pack(&b->base, pb);
	return memcmp(pa, pb, na) == 0;
}

/* ---- the netlink round trip, as a kernel dump returns things ---- */

/* libnftnl's element builder numbers the nests; its parser (and the
 * kernel's dumps) use NFTA_LIST_ELEM. */
static void as_kernel_dump(struct nlmsghdr *nlh)
{
	struct nlattr *attr, *elem;

	mnl_attr_for_each(attr, nlh, sizeof(struct nfgenmsg))
	{
		if (mnl_attr_get_type(attr) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		mnl_attr_for_each_nested(elem, attr) elem->nla_type =
		    (elem->nla_type & ~NLA_TYPE_MASK) | NFTA_LIST_ELEM;
	}
}

static struct nftnl_rule *rule_wire(const struct nftnl_rule *r)
{
	struct nftnl_rule *back = nftnl_rule_alloc();
	struct nlmsghdr *nlh;

	memset(msgbuf, 0, sizeof(msgbuf));
	nlh = nftnl_nlmsg_build_hdr(msgbuf, NFT_MSG_NEWRULE, NFPROTO_INET, 0,
				    1);
	nftnl_rule_nlmsg_build_payload(nlh, (struct nftnl_rule *)r);
	if (!back || nftnl_rule_nlmsg_parse(nlh, back) < 0)
		abort();
	return back;
}

static void elems_wire(struct nftnl_set *s, struct nftnl_set *back)
{
	struct nlmsghdr *nlh;

	memset(msgbuf, 0, sizeof(msgbuf));
	nlh = nftnl_nlmsg_build_hdr(msgbuf, NFT_MSG_NEWSETELEM, NFPROTO_INET,
				    0, 1);
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	as_kernel_dump(nlh);
	if (nftnl_set_elems_nlmsg_parse(nlh, back) < 0)
		abort();
}

/* The set and its elements; named as the kernel names anonymous sets,
 * without the transaction's set id. */
static struct nftnl_set *set_wire(struct nftnl_set *s, const char *name)
{
	struct nftnl_set *back = nftnl_set_alloc();
	struct nlmsghdr *nlh;

	memset(msgbuf, 0, sizeof(msgbuf));
	nlh = nftnl_nlmsg_build_hdr(msgbuf, NFT_MSG_NEWSET, NFPROTO_INET, 0,
				    1);
	nftnl_set_nlmsg_build_payload(nlh, s);
	if (!back || nftnl_set_nlmsg_parse(nlh, back) < 0)
		abort();
	elems_wire(s, back);
	nftnl_set_unset(back, NFTNL_SET_ID);
	if (name)
		nftnl_set_set_str(back, NFTNL_SET_NAME, name);
	return back;
}

static struct nftnl_chain *chain_wire(const struct nftnl_chain *c)
{
	struct nftnl_chain *back = nftnl_chain_alloc();
	struct nlmsghdr *nlh;

	memset(msgbuf, 0, sizeof(msgbuf));
	nlh = nftnl_nlmsg_build_hdr(msgbuf, NFT_MSG_NEWCHAIN, NFPROTO_INET, 0,
				    1);
	nftnl_chain_nlmsg_build_payload(nlh, (struct nftnl_chain *)c);
	if (!back || nftnl_chain_nlmsg_parse(nlh, back) < 0)
		abort();
	return back;
}

/* A compiled rule as a dump would show it. */
struct dump {
	struct nftnl_rule *parts[MT_NFT_FW_PARTS_MAX];
	size_t n;
	struct nftnl_set *sets[MT_NFT_FW_PARTS_MAX * MT_NFT_FW_SETS_MAX];
	size_t n_sets;
};

static const struct nftnl_set *find_set(const char *name, void *ctx)
{
	struct dump *d = ctx;

	for (size_t i = 0; i < d->n_sets; i++)
		if (strcmp(nftnl_set_get_str(d->sets[i], NFTNL_SET_NAME),
			   name) == 0)
			return d->sets[i];
	return NULL;
}

static struct nftnl_expr *nth_expr(struct nftnl_rule *r, int n)
{
	struct nftnl_expr_iter *it = nftnl_expr_iter_create(r);
	struct nftnl_expr *e;

	while ((e = nftnl_expr_iter_next(it)) && n-- > 0)
		;
	nftnl_expr_iter_destroy(it);
	return e;
}

static bool expr_is(const struct nftnl_expr *e, const char *name)
{
	return e && strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), name) == 0;
}

/* Counters as the kernel reports them: counter k of part i holds
 * packets 10 * (i + 1) + k, bytes 1000 * (i + 1) + k. */
static void dump_of(const struct mt_nft_fw_compiled *c, struct dump *d)
{
	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < c->n_sets; i++) {
		char name[16];

		snprintf(name, sizeof(name), "__set%zu", i + 3);
		d->sets[d->n_sets++] = set_wire(c->sets[i], name);
	}
	for (size_t i = 0; i < c->n_parts; i++) {
		struct nftnl_rule *r = rule_wire(c->parts[i]);
		struct nftnl_expr *e;
		int k = 0;

		for (int j = 0; (e = nth_expr(r, j)); j++) {
			if (expr_is(e, "counter")) {
				nftnl_expr_set_u64(e, NFTNL_EXPR_CTR_PACKETS,
						   10 * (i + 1) + (uint64_t)k);
				nftnl_expr_set_u64(e, NFTNL_EXPR_CTR_BYTES,
						   1000 * (i + 1) + (uint64_t)k);
				k++;
			}
			if (expr_is(e, "lookup") &&
			    nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_SET_ID)) {
				uint32_t id = nftnl_expr_get_u32(
				    e, NFTNL_EXPR_LOOKUP_SET_ID);

				for (size_t s = 0; s < c->n_sets; s++)
					if (nftnl_set_get_u32(c->sets[s],
							      NFTNL_SET_ID) ==
					    id)
						nftnl_expr_set_str(
						    e, NFTNL_EXPR_LOOKUP_SET,
						    nftnl_set_get_str(
							d->sets[s],
							NFTNL_SET_NAME));
				nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS,
						   0);
			}
		}
		d->parts[d->n++] = r;
	}
}

static void dump_fini(struct dump *d)
{
	for (size_t i = 0; i < d->n; i++)
		nftnl_rule_free(d->parts[i]);
	for (size_t i = 0; i < d->n_sets; i++)
		nftnl_set_free(d->sets[i]);
	memset(d, 0, sizeof(*d));
}

static int dump_parse(struct dump *d, Mt__Config__FirewallRule **out,
		      uint64_t *pk, uint64_t *by, uint64_t *lim)
{
	*pk = *by = *lim = 0;
	return mt_nft_fw_rule_parse((const struct nftnl_rule *const *)d->parts,
				    d->n, find_set, d, out, pk, by, lim);
}

static bool refused(struct dump *d)
{
	Mt__Config__FirewallRule *out = NULL;
	uint64_t pk, by, lim;
	int ret = dump_parse(d, &out, &pk, &by, &lim);

	if (out)
		protobuf_c_message_free_unpacked(&out->base, NULL);
	return ret == -ENOENT && !out;
}

/* ---- the cases ---- */

static const struct spec cases[] = {
	{.id = 1, .action = "allow", NONE, .parts = 1},
	{.id = 2,
	 .desc = "web",
	 .action = "block",
	 .family = "ipv4",
	 .src = {"10.0.0.0/8"},
	 .proto = "tcp",
	 .dport = {"80"},
	 NONE,
	 .parts = 1},
	{.id = 3,
	 .action = "allow",
	 .family = "ipv4",
	 .src = {"1.2.3.4/32", "10.0.0.0/9", "10.128.0.0/9",
		 "255.255.255.0/24"},
	 .dst = {"198.51.100.7/32"},
	 NONE,
	 .parts = 1,
	 .sets = 1},
	{.id = 4,
	 .action = "block",
	 .family = "ipv6",
	 .src = {"2001:db8:1::1/128"},
	 .dst = {"::/127", "2001:db8::/32", "ffff::/16"},
	 NONE,
	 .parts = 1,
	 .sets = 1},
	{.id = 5,
	 .action = "allow",
	 .family = "ipv4",
	 .src = {"0.0.0.0/0"},
	 .dst = {"203.0.113.0/24", "255.255.255.255/32"},
	 NONE,
	 .parts = 1,
	 .sets = 1},
	{.id = 6, .action = "allow", .family = "ipv6", .dst = {"::/0"}, NONE,
	 .parts = 1},
	{.id = 7,
	 .action = "block",
	 .family = "ipv4",
	 .src_list = "bad",
	 .dst_list = "good-1",
	 NONE,
	 .parts = 1},
	{.id = 8, .action = "allow", .family = "ipv6", .src_list = "v6_x",
	 NONE, .parts = 1},
	{.id = 9,
	 .action = "allow",
	 .proto = "tcp",
	 .sport = {"1000-2000"},
	 .dport = {"22", "80", "443", "8000-65535"},
	 .fset = {"syn"},
	 .fclear = {"ack"},
	 NONE,
	 .parts = 1,
	 .sets = 1},
	{.id = 10,
	 .action = "block",
	 .proto = "udp",
	 .sport = {"0", "53", "65535"},
	 .dport = {"0-1023"},
	 NONE,
	 .parts = 1,
	 .sets = 1},
	{.id = 11,
	 .action = "allow",
	 .proto = "tcp",
	 .fset = {"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"},
	 NONE,
	 .parts = 1},
	{.id = 12, .action = "block", .proto = "tcp", .fclear = {"syn"}, NONE,
	 .parts = 1},
	{.id = 13,
	 .action = "allow",
	 .family = "ipv4",
	 .proto = "icmp",
	 .icmp_type = 8,
	 .icmp_code = 0,
	 .len_min = -1,
	 .ttl_min = -1,
	 .parts = 1},
	{.id = 14,
	 .action = "allow",
	 .family = "ipv6",
	 .proto = "icmpv6",
	 .icmp_type = 128,
	 .icmp_code = -1,
	 .len_min = -1,
	 .ttl_min = -1,
	 .parts = 1},
	{.id = 15,
	 .action = "block",
	 .icmp_type = -1,
	 .icmp_code = -1,
	 .len_min = 100,
	 .len_max = 200,
	 .ttl_min = -1,
	 .parts = 1},
	{.id = 16,
	 .action = "block",
	 .family = "ipv6",
	 .icmp_type = -1,
	 .icmp_code = -1,
	 .len_min = 1500,
	 .len_max = 1500,
	 .ttl_min = -1,
	 .parts = 1},
	{.id = 17, .action = "block", .family = "ipv4", .fragment = true, NONE,
	 .parts = 1},
	{.id = 18, .action = "block", .fragment = true, NONE, .parts = 2},
	{.id = 19,
	 .action = "block",
	 .icmp_type = -1,
	 .icmp_code = -1,
	 .len_min = -1,
	 .ttl_min = 1,
	 .ttl_max = 5,
	 .parts = 2},
	{.id = 20,
	 .action = "allow",
	 .family = "ipv6",
	 .icmp_type = -1,
	 .icmp_code = -1,
	 .len_min = -1,
	 .ttl_min = 64,
	 .ttl_max = 64,
	 .parts = 1},
	{.id = 21,
	 .action = "rate_limit",
	 .family = "ipv4",
	 .dst = {"198.51.100.0/24", "203.0.113.0/24"},
	 .proto = "udp",
	 .dport = {"53"},
	 .pps = 100,
	 .burst = 5,
	 NONE,
	 .parts = 2,
	 .sets = 2},
	{.id = 22, .action = "rate_limit", .bps = 1000000, NONE, .parts = 2},
	{.id = 23,
	 .desc = "watch",
	 .action = "rate_limit",
	 .monitor = true,
	 .bps = 125000,
	 .burst = 5000,
	 NONE,
	 .parts = 1},
	{.id = 24,
	 .action = "rate_limit",
	 .monitor = true,
	 .pps = 10,
	 .burst = 20,
	 NONE,
	 .parts = 1},
	{.id = 25,
	 .action = "rate_limit",
	 .pps = 1000,
	 .burst = 5,
	 .fragment = true,
	 .icmp_type = -1,
	 .icmp_code = -1,
	 .len_min = -1,
	 .ttl_min = 0,
	 .ttl_max = 255,
	 .parts = 4},
	{.id = 26, .action = "allow", .monitor = true, NONE, .parts = 1},
	{.id = 27,
	 .desc = "would block telnet",
	 .action = "block",
	 .monitor = true,
	 .proto = "tcp",
	 .dport = {"23"},
	 NONE,
	 .parts = 1},
	{.id = 28, .action = "block", .proto = "gre", NONE, .parts = 1},
	{.id = 29, .action = "block", .proto = "99", NONE, .parts = 1},
	{.id = 30,
	 .action = "allow",
	 .proto = "sctp",
	 .sport = {"5000-5010"},
	 .dport = {"36412"},
	 NONE,
	 .parts = 1},
	{.id = 2147483647,
	 .desc = "0123456789012345678901234567890123456789012345678901234567"
		 "89abcd",
	 .action = "rate_limit",
	 .monitor = true,
	 .family = "ipv6",
	 .src = {"2001:db8::/48", "2001:db8:1::/48"},
	 .dst = {"2001:db8:fffe::1/128", "2001:db8:ffff::/48"},
	 .proto = "tcp",
	 .sport = {"1", "3"},
	 .dport = {"5", "7-9"},
	 .fset = {"syn"},
	 .len_min = 40,
	 .len_max = 1500,
	 .fragment = true,
	 .ttl_min = 2,
	 .ttl_max = 3,
	 .icmp_type = -1,
	 .icmp_code = -1,
	 .pps = 7,
	 .burst = 5,
	 .parts = 1,
	 .sets = 4},
};

/* compile, dump, parse: the same rule back, the counters summed. */
static void test_roundtrip(void)
{
	uint32_t set_id = 1;

	for (size_t i = 0; i < N(cases); i++) {
		const struct spec *s = &cases[i];
		struct rbuf b;
		struct mt_nft_fw_compiled c;
		Mt__Config__FirewallRule *out = NULL;
		struct dump d;
		uint64_t pk, by, lim, wpk = 0, wby = 0, wlim = 0;
		uint32_t id, k, n, first = set_id;
		bool rate = s->pps || s->bps;
		int ret;

		spec_rule(s, &b);
		ret = mt_nft_fw_rule_compile(TABLE, &b.r, &set_id, &c);
		if (ret != 0) {
			fprintf(stderr, "case %u: compile %d\n", s->id, ret);
			CHECK(ret == 0);
			continue;
		}
		CHECK(c.n_parts == s->parts);
		CHECK(c.n_sets == s->sets);
		CHECK(set_id == first + s->sets);
		for (size_t p = 0; p < c.n_parts; p++) {
			CHECK(mt_nft_fw_rule_tag(c.parts[p], &id, &k, &n) == 0);
			CHECK(id == s->id && k == p + 1 && n == c.n_parts);
		}
		dump_of(&c, &d);
		ret = dump_parse(&d, &out, &pk, &by, &lim);
		if (ret != 0 || !out || !rule_equal(out, &b.r)) {
			fprintf(stderr, "case %u: parse %d\n", s->id, ret);
			CHECK(ret == 0 && out && rule_equal(out, &b.r));
		}
		/* counter 0 of every part but a rate limit's pass parts;
		 * counter 1 of the limit parts */
		for (size_t p = 0; p < c.n_parts; p++) {
			bool pass = rate && !s->monitor && p % 2 == 1;

			if (!pass) {
				wpk += 10 * (p + 1);
				wby += 1000 * (p + 1);
			}
			if (rate && !pass)
				wlim += 10 * (p + 1) + 1;
		}
		CHECK(pk == wpk && by == wby && lim == wlim);
		if (out)
			protobuf_c_message_free_unpacked(&out->base, NULL);
		dump_fini(&d);
		mt_nft_fw_compiled_fini(&c);
		CHECK(c.n_parts == 0 && c.n_sets == 0);
	}
}

/* Rules that are valid but not canonical: the compiler refuses them. */
static void test_not_canonical(void)
{
	static const struct spec bad[] = {
		{.id = 0, .action = "allow", NONE},
		{.id = 1, .action = "Allow", NONE},
		{.id = 1, .action = "allow", .family = "inet", NONE},
		{.id = 1, .action = "allow", .src = {"10.0.0.0/8"}, NONE},
		{.id = 1, .action = "allow", .family = "ipv4",
		 .src = {"10.0.0.1/8"}, NONE},
		{.id = 1, .action = "allow", .family = "ipv4",
		 .src = {"10.1.0.0/16", "10.0.0.0/16"}, NONE},
		{.id = 1, .action = "allow", .family = "ipv4",
		 .src = {"10.0.0.0/8", "10.1.0.0/16"}, NONE},
		{.id = 1, .action = "allow", .family = "ipv6",
		 .src = {"10.0.0.0/8"}, NONE},
		{.id = 1, .action = "allow", .family = "ipv4",
		 .src = {"2001:DB8::/32"}, NONE},
		{.id = 1, .action = "allow", .family = "ipv4",
		 .src = {"10.0.0.0/8"}, .src_list = "x", NONE},
		{.id = 1, .action = "allow", .src_list = "x", NONE},
		{.id = 1, .action = "allow", .family = "ipv4",
		 .src_list = "Bad", NONE},
		{.id = 1, .action = "allow", .proto = "6", NONE},
		{.id = 1, .action = "allow", .proto = "TCP", NONE},
		{.id = 1, .action = "allow", .proto = "256", NONE},
		{.id = 1, .action = "allow", .proto = "icmp", NONE},
		{.id = 1, .action = "allow", .family = "ipv4",
		 .proto = "icmpv6", NONE},
		{.id = 1, .action = "allow", .dport = {"80"}, NONE},
		{.id = 1, .action = "allow", .family = "ipv4", .proto = "icmp",
		 .dport = {"80"}, NONE},
		{.id = 1, .action = "allow", .proto = "tcp",
		 .dport = {"80", "81"}, NONE},
		{.id = 1, .action = "allow", .proto = "tcp",
		 .dport = {"90", "80"}, NONE},
		{.id = 1, .action = "allow", .proto = "tcp",
		 .dport = {"80-80"}, NONE},
		{.id = 1, .action = "allow", .proto = "tcp", .dport = {"080"},
		 NONE},
		{.id = 1, .action = "allow", .proto = "tcp",
		 .dport = {"65536"}, NONE},
		{.id = 1, .action = "allow", .proto = "tcp",
		 .fset = {"ack", "syn"}, NONE},
		{.id = 1, .action = "allow", .proto = "tcp",
		 .fset = {"syn"}, .fclear = {"syn"}, NONE},
		{.id = 1, .action = "allow", .proto = "udp", .fset = {"syn"},
		 NONE},
		{.id = 1, .action = "allow", .proto = "tcp", .icmp_type = 8,
		 .icmp_code = -1, .len_min = -1, .ttl_min = -1},
		{.id = 1, .action = "allow", .icmp_type = -1, .icmp_code = -1,
		 .len_min = 200, .len_max = 100, .ttl_min = -1},
		{.id = 1, .action = "allow", .icmp_type = -1, .icmp_code = -1,
		 .len_min = -1, .ttl_min = 1, .ttl_max = 256},
		{.id = 1, .action = "allow", .pps = 10, .burst = 5, NONE},
		{.id = 1, .action = "rate_limit", NONE},
		{.id = 1, .action = "rate_limit", .pps = 10, .bps = 10, NONE},
		{.id = 1, .action = "rate_limit", .pps = 10, NONE},
		{.id = 1, .action = "rate_limit", .bps = 10,
		 .burst = 1ull << 32, NONE},
		{.id = 1, .desc = "tab\there", .action = "allow", NONE},
	};

	for (size_t i = 0; i < N(bad); i++) {
		struct rbuf b;
		struct mt_nft_fw_compiled c;
		uint32_t set_id = 7;
		int ret;

		spec_rule(&bad[i], &b);
		ret = mt_nft_fw_rule_compile(TABLE, &b.r, &set_id, &c);
		if (ret != -EINVAL)
			fprintf(stderr, "bad case %zu: %d\n", i, ret);
		CHECK(ret == -EINVAL);
		CHECK(c.n_parts == 0 && c.n_sets == 0 && set_id == 7);
	}
}

/* ---- parts changed by hand ---- */

typedef void (*alter_fn)(struct dump *d);

/* Compiles case id, dumps it, alters the dump, and expects -ENOENT. */
static void check_refused(uint32_t id, alter_fn alter, const char *what)
{
	const struct spec *s = NULL;
	struct rbuf b;
	struct mt_nft_fw_compiled c;
	struct dump d;
	uint32_t set_id = 1;

	for (size_t i = 0; i < N(cases); i++)
		if (cases[i].id == id)
			s = &cases[i];
	if (!s)
		abort();
	spec_rule(s, &b);
	if (mt_nft_fw_rule_compile(TABLE, &b.r, &set_id, &c) != 0)
		abort();
	dump_of(&c, &d);
	alter(&d);
	if (!refused(&d)) {
		fprintf(stderr, "case %u %s: not refused\n", id, what);
		CHECK(false);
	}
	dump_fini(&d);
	mt_nft_fw_compiled_fini(&c);
}

/* the first expression named name in part p (from expression `from`) */
static struct nftnl_expr *find_expr(struct dump *d, size_t p,
				    const char *name, int from)
{
	struct nftnl_expr *e;

	for (int j = from; (e = nth_expr(d->parts[p], j)); j++)
		if (expr_is(e, name))
			return e;
	abort();
}

static void set_cmp_u16(struct nftnl_expr *e, uint16_t v)
{
	v = htons(v);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, &v, 2);
}

static void alter_port(struct dump *d)
{
	/* case 2: meta nfproto, cmp, payload, bitwise, cmp, meta l4proto,
	 * cmp, payload th dport, cmp == 80 (8), counter, drop */
	set_cmp_u16(find_expr(d, 0, "cmp", 8), 81);
}

static void alter_verdict(struct dump *d)
{
	nftnl_expr_set_u32(find_expr(d, 0, "immediate", 0),
			   NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
}

static void alter_pass_verdict(struct dump *d)
{
	nftnl_expr_set_u32(find_expr(d, 1, "immediate", 0),
			   NFTNL_EXPR_IMM_VERDICT, NF_DROP);
}

static void del_expr(struct nftnl_expr *e)
{
	nftnl_rule_del_expr(e);
	nftnl_expr_free(e);
}

static void alter_no_counter(struct dump *d)
{
	del_expr(find_expr(d, 0, "counter", 0));
}

static void alter_no_verdict(struct dump *d)
{
	del_expr(find_expr(d, 0, "immediate", 0));
}

static void alter_extra(struct dump *d)
{
	nftnl_rule_add_expr(d->parts[0], nftnl_expr_alloc("counter"));
}

static void alter_extra_last_part(struct dump *d)
{
	nftnl_rule_add_expr(d->parts[d->n - 1], nftnl_expr_alloc("counter"));
}

static void alter_rate(struct dump *d)
{
	nftnl_expr_set_u64(find_expr(d, 0, "limit", 0), NFTNL_EXPR_LIMIT_RATE,
			   200);
}

static void alter_burst(struct dump *d)
{
	nftnl_expr_set_u32(find_expr(d, 0, "limit", 0), NFTNL_EXPR_LIMIT_BURST,
			   6);
}

static void alter_limit_type(struct dump *d)
{
	nftnl_expr_set_u32(find_expr(d, 0, "limit", 0), NFTNL_EXPR_LIMIT_TYPE,
			   NFT_LIMIT_PKT_BYTES);
}

static void set_comment(struct nftnl_rule *r, const char *s)
{
	struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(256);

	nftnl_udata_put_strz(u, NFTNL_UDATA_RULE_COMMENT, s);
	nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(u),
			    nftnl_udata_buf_len(u));
	nftnl_udata_buf_free(u);
}

static void alter_comment(struct dump *d)
{
	set_comment(d->parts[0], "mt fw 2 1/1 0000000000000000 web");
}

static void alter_no_comment(struct dump *d)
{
	nftnl_rule_unset(d->parts[0], NFTNL_RULE_USERDATA);
}

static void alter_swap_parts(struct dump *d)
{
	struct nftnl_rule *t = d->parts[0];

	d->parts[0] = d->parts[1];
	d->parts[1] = t;
}

static void alter_drop_part(struct dump *d)
{
	d->n--;
	nftnl_rule_free(d->parts[d->n]);
}

static void alter_set_elem(struct dump *d)
{
	struct nftnl_set_elem *e = nftnl_set_elem_alloc();
	uint8_t k[4] = {192, 0, 2, 1};

	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, k, 4);
	nftnl_set_elem_add(d->sets[0], e);
}

static void alter_set_name(struct dump *d)
{
	nftnl_set_set_str(d->sets[0], NFTNL_SET_NAME, "__set99");
}

static void alter_set_flags(struct dump *d)
{
	nftnl_set_set_u32(d->sets[0], NFTNL_SET_FLAGS,
			  NFT_SET_ANONYMOUS | NFT_SET_INTERVAL);
}

static void alter_list(struct dump *d)
{
	nftnl_expr_set_str(find_expr(d, 0, "lookup", 0), NFTNL_EXPR_LOOKUP_SET,
			   "l4_other");
}

static void alter_mask(struct dump *d)
{
	uint8_t m[4] = {255, 255, 0, 0};

	nftnl_expr_set(find_expr(d, 0, "bitwise", 0), NFTNL_EXPR_BITWISE_MASK,
		       m, 4);
}

static void alter_family(struct dump *d)
{
	uint8_t v = NFPROTO_IPV6;

	nftnl_expr_set(find_expr(d, 0, "cmp", 0), NFTNL_EXPR_CMP_DATA, &v, 1);
}

static void alter_ttl(struct dump *d)
{
	uint8_t v = 9;

	/* case 19: the IPv6 part's hoplimit >= 1 becomes >= 9 */
	nftnl_expr_set(find_expr(d, 1, "cmp", 3), NFTNL_EXPR_CMP_DATA, &v, 1);
}

static void alter_chain(struct dump *d)
{
	nftnl_rule_set_str(d->parts[0], NFTNL_RULE_CHAIN, "fw");
}

static void test_refused(void)
{
	check_refused(2, alter_port, "another port");
	check_refused(2, alter_verdict, "another verdict");
	check_refused(2, alter_no_counter, "no counter");
	check_refused(2, alter_no_verdict, "no verdict");
	check_refused(2, alter_extra, "an extra expression");
	check_refused(2, alter_comment, "another comment");
	check_refused(2, alter_no_comment, "no comment");
	check_refused(2, alter_mask, "another mask");
	check_refused(2, alter_family, "another family");
	check_refused(2, alter_chain, "another chain");
	check_refused(21, alter_pass_verdict, "pass part drops");
	check_refused(21, alter_rate, "another rate");
	check_refused(21, alter_burst, "another burst");
	check_refused(21, alter_limit_type, "bytes instead of packets");
	check_refused(21, alter_swap_parts, "parts swapped");
	check_refused(21, alter_drop_part, "a part missing");
	check_refused(21, alter_extra_last_part, "extra in the pass part");
	check_refused(21, alter_set_elem, "an extra set element");
	check_refused(21, alter_set_name, "a set that is not there");
	check_refused(21, alter_set_flags, "a set not constant");
	check_refused(7, alter_list, "another list");
	check_refused(19, alter_ttl, "the IPv6 part's ttl");
	check_refused(26, alter_extra, "monitor with an extra counter");
	check_refused(24, alter_burst, "monitor limit burst");
}

/* Foreign rules in fw_rules: nothing mt writes. */
static void test_foreign(void)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	const struct nftnl_rule *parts[1] = {r};
	Mt__Config__FirewallRule *out = NULL;
	uint32_t id, k, n;

	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, MT_NFT_FW_RULES_CHAIN);
	nftnl_rule_add_expr(r, nftnl_expr_alloc("counter"));
	CHECK(mt_nft_fw_rule_tag(r, &id, &k, &n) == -ENOENT);
	CHECK(mt_nft_fw_rule_parse(parts, 1, find_set, NULL, &out, NULL, NULL,
				   NULL) == -ENOENT);
	set_comment(r, "mt fw 5 1/1 0000000000000000");
	CHECK(mt_nft_fw_rule_tag(r, &id, &k, &n) == 0 && id == 5 && k == 1 &&
	      n == 1);
	CHECK(mt_nft_fw_rule_parse(parts, 1, find_set, NULL, &out, NULL, NULL,
				   NULL) == -ENOENT);
	CHECK(!out);
	set_comment(r, "mt fw 05 1/1");
	CHECK(mt_nft_fw_rule_tag(r, &id, &k, &n) == -ENOENT);
	set_comment(r, "mt fw 5 2/1");
	CHECK(mt_nft_fw_rule_tag(r, &id, &k, &n) == -ENOENT);
	set_comment(r, "mt fw 5 1/5");
	CHECK(mt_nft_fw_rule_tag(r, &id, &k, &n) == -ENOENT);
	set_comment(r, "mt fw 5 1/2x");
	CHECK(mt_nft_fw_rule_tag(r, &id, &k, &n) == -ENOENT);
	set_comment(r, "mt fw 0 1/1");
	CHECK(mt_nft_fw_rule_tag(r, &id, &k, &n) == -ENOENT);
	set_comment(r, "mt fw 5 1/1");
	CHECK(mt_nft_fw_rule_tag(r, &id, &k, &n) == 0);
	nftnl_rule_free(r);
}

/* ---- chains and base rules ---- */

static void test_chains(void)
{
	struct nftnl_chain *c = mt_nft_fw_chain_new(TABLE);
	struct nftnl_chain *rc = mt_nft_fw_rules_chain_new(TABLE);
	struct nftnl_chain *w = chain_wire(c), *rw = chain_wire(rc);

	CHECK(mt_nft_fw_chain_ok(w));
	CHECK(!mt_nft_fw_rules_chain_ok(w));
	CHECK(mt_nft_fw_rules_chain_ok(rw));
	CHECK(!mt_nft_fw_chain_ok(rw));
	nftnl_chain_set_s32(w, NFTNL_CHAIN_PRIO, -150);
	CHECK(!mt_nft_fw_chain_ok(w));
	nftnl_chain_set_s32(w, NFTNL_CHAIN_PRIO, MT_NFT_FW_PRIO);
	nftnl_chain_set_u32(w, NFTNL_CHAIN_POLICY, NF_DROP);
	CHECK(!mt_nft_fw_chain_ok(w));
	nftnl_chain_set_u32(w, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nftnl_chain_set_u32(w, NFTNL_CHAIN_HOOKNUM, NF_INET_PRE_ROUTING);
	CHECK(!mt_nft_fw_chain_ok(w));
	nftnl_chain_set_u32(w, NFTNL_CHAIN_HOOKNUM, NF_INET_FORWARD);
	CHECK(mt_nft_fw_chain_ok(w));
	nftnl_chain_set_str(w, NFTNL_CHAIN_TYPE, "nat");
	CHECK(!mt_nft_fw_chain_ok(w));
	nftnl_chain_free(c);
	nftnl_chain_free(rc);
	nftnl_chain_free(w);
	nftnl_chain_free(rw);
}

static void test_base_rules(void)
{
	struct nftnl_rule *j = mt_nft_fw_jump_rule_new(TABLE);
	struct nftnl_rule *a = mt_nft_fw_default_rule_new(TABLE, "allow");
	struct nftnl_rule *b = mt_nft_fw_default_rule_new(TABLE, "block");
	struct nftnl_rule *jw = rule_wire(j), *aw = rule_wire(a);
	struct nftnl_rule *bw = rule_wire(b);
	enum mt_nft_fw_base_kind kind = MT_NFT_FW_BASE_DEFAULT;
	const char *action = NULL;
	uint64_t pk = 1, by = 1;

	CHECK(mt_nft_fw_default_rule_new(TABLE, "drop") == NULL &&
	      errno == EINVAL);
	CHECK(mt_nft_fw_base_rule_parse(jw, &kind, &action, &pk, &by) == 0);
	CHECK(kind == MT_NFT_FW_BASE_JUMP);
	nftnl_expr_set_u64(find_expr(&(struct dump){.parts = {bw}, .n = 1}, 0,
				     "counter", 0),
			   NFTNL_EXPR_CTR_PACKETS, 42);
	nftnl_expr_set_u64(find_expr(&(struct dump){.parts = {bw}, .n = 1}, 0,
				     "counter", 0),
			   NFTNL_EXPR_CTR_BYTES, 4200);
	CHECK(mt_nft_fw_base_rule_parse(aw, &kind, &action, &pk, &by) == 0);
	CHECK(kind == MT_NFT_FW_BASE_DEFAULT && pk == 0 && by == 0);
	CHECK_STR(action, "allow");
	CHECK(mt_nft_fw_base_rule_parse(bw, &kind, &action, &pk, &by) == 0);
	CHECK(kind == MT_NFT_FW_BASE_DEFAULT && pk == 42 && by == 4200);
	CHECK_STR(action, "block");
	CHECK(mt_nft_fw_base_rule_parse(bw, NULL, NULL, NULL, NULL) == 0);

	/* altered: jump elsewhere, another device, a comment, an extra */
	nftnl_expr_set_str(find_expr(&(struct dump){.parts = {jw}, .n = 1}, 0,
				     "immediate", 0),
			   NFTNL_EXPR_IMM_CHAIN, "mss");
	CHECK(mt_nft_fw_base_rule_parse(jw, &kind, &action, &pk, &by) ==
	      -ENOENT);
	{
		char name[IFNAMSIZ] = "gre1";

		nftnl_expr_set(find_expr(&(struct dump){.parts = {aw}, .n = 1},
					 0, "cmp", 0),
			       NFTNL_EXPR_CMP_DATA, name, sizeof(name));
		CHECK(mt_nft_fw_base_rule_parse(aw, &kind, &action, &pk,
						&by) == -ENOENT);
	}
	set_comment(bw, "mt fw jump");
	CHECK(mt_nft_fw_base_rule_parse(bw, &kind, &action, &pk, &by) ==
	      -ENOENT);
	nftnl_rule_free(bw);
	bw = rule_wire(b);
	nftnl_rule_add_expr(bw, nftnl_expr_alloc("counter"));
	CHECK(mt_nft_fw_base_rule_parse(bw, &kind, &action, &pk, &by) ==
	      -ENOENT);
	nftnl_rule_free(bw);
	bw = rule_wire(b);
	del_expr(find_expr(&(struct dump){.parts = {bw}, .n = 1}, 0, "counter",
			   0));
	CHECK(mt_nft_fw_base_rule_parse(bw, &kind, &action, &pk, &by) ==
	      -ENOENT);
	/* a firewall part is no base rule, nor the other way round */
	{
		uint32_t id, k, n;

		CHECK(mt_nft_fw_rule_tag(jw, &id, &k, &n) == -ENOENT);
	}
	for (struct nftnl_rule **r = (struct nftnl_rule *[]){j, a, b, jw, aw,
							      bw, NULL};
	     *r; r++)
		nftnl_rule_free(*r);
}

/* ---- list sets and their elements ---- */

static void test_list_sets(void)
{
	char name[MT_NFT_FW_LIST_SET_NAME_MAX];
	struct nftnl_set *s4 = mt_nft_fw_list_set_new(TABLE, AF_INET, "bad");
	struct nftnl_set *s6 =
	    mt_nft_fw_list_set_new(TABLE, AF_INET6, "abcdefghijklmno");
	struct nftnl_set *sl = mt_nft_fw_lists_set_new(TABLE);
	struct nftnl_set *w4 = set_wire(s4, NULL), *w6 = set_wire(s6, NULL);
	struct nftnl_set *wl = set_wire(sl, NULL);
	int fam = 0;

	mt_nft_fw_list_set_name(AF_INET, "bad", name, sizeof(name));
	CHECK_STR(name, "l4_bad");
	mt_nft_fw_list_set_name(AF_INET6, "abcdefghijklmno", name,
				sizeof(name));
	CHECK_STR(name, "l6_abcdefghijklmno");
	CHECK_STR(nftnl_set_get_str(w6, NFTNL_SET_NAME), name);
	CHECK(mt_nft_fw_list_set_ok(w4, &fam) && fam == AF_INET);
	CHECK(mt_nft_fw_list_set_ok(w6, &fam) && fam == AF_INET6);
	CHECK(!mt_nft_fw_list_set_ok(wl, &fam));
	CHECK(mt_nft_fw_lists_set_ok(wl));
	CHECK(!mt_nft_fw_lists_set_ok(w4));
	nftnl_set_set_u32(w4, NFTNL_SET_KEY_LEN, 16);
	CHECK(!mt_nft_fw_list_set_ok(w4, &fam));
	nftnl_set_set_u32(w4, NFTNL_SET_KEY_LEN, 4);
	nftnl_set_set_u32(w4, NFTNL_SET_FLAGS,
			  NFT_SET_INTERVAL | NFT_SET_TIMEOUT);
	CHECK(!mt_nft_fw_list_set_ok(w4, &fam));
	nftnl_set_set_u32(w4, NFTNL_SET_FLAGS, NFT_SET_INTERVAL);
	CHECK(mt_nft_fw_list_set_ok(w4, &fam));
	nftnl_set_set_str(w4, NFTNL_SET_NAME, "l6_bad");
	CHECK(!mt_nft_fw_list_set_ok(w4, &fam));
	nftnl_set_set_u32(wl, NFTNL_SET_FLAGS, NFT_SET_INTERVAL);
	CHECK(!mt_nft_fw_lists_set_ok(wl));
	for (struct nftnl_set **s = (struct nftnl_set *[]){s4, s6, sl, w4, w6,
							    wl, NULL};
	     *s; s++)
		nftnl_set_free(*s);
}

struct want_el {
	const char *key; /* hex */
	bool end;
};

static void check_elems(const char *const *prefixes, size_t n,
			const struct want_el *want, size_t nw)
{
	struct mt_prefix p[8];
	char err[64];
	struct nftnl_set *s, *back = nftnl_set_alloc();
	struct nftnl_set_elems_iter *it;
	struct nftnl_set_elem *e;
	size_t i = 0;

	for (size_t k = 0; k < n; k++)
		CHECK(mt_prefix_parse(prefixes[k], true, &p[k], err,
				      sizeof(err)) == 0);
	s = mt_nft_fw_list_elems_new(TABLE, "l4_x", p, n);
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_STR(nftnl_set_get_str(s, NFTNL_SET_NAME), "l4_x");
	elems_wire(s, back);
	it = nftnl_set_elems_iter_create(back);
	while ((e = nftnl_set_elems_iter_next(it))) {
		uint32_t len = 0;
		const uint8_t *k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY,
						      &len);
		char hex[40] = "";
		bool end = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS) &&
			   (nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) &
			    NFT_SET_ELEM_INTERVAL_END);

		for (uint32_t b = 0; b < len && b < 16; b++)
			snprintf(hex + 2 * b, 3, "%02x", k[b]);
		if (i < nw) {
			CHECK_STR(hex, want[i].key);
			CHECK(end == want[i].end);
		}
		i++;
	}
	nftnl_set_elems_iter_destroy(it);
	CHECK(i == nw);
	nftnl_set_free(s);
	nftnl_set_free(back);
}

static void test_list_elems(void)
{
	check_elems((const char *[]){"0.0.0.0/0"}, 1,
		    (struct want_el[]){{"00000000", false}}, 1);
	check_elems((const char *[]){"10.0.0.0/8", "1.2.3.4/32"}, 2,
		    (struct want_el[]){{"0a000000", false},
				       {"0b000000", true},
				       {"01020304", false},
				       {"01020305", true}},
		    4);
	check_elems((const char *[]){"255.255.255.255/32", "255.0.0.0/8",
				     "254.0.0.0/8"},
		    3,
		    (struct want_el[]){{"ffffffff", false},
				       {"ff000000", false},
				       {"fe000000", false},
				       {"ff000000", true}},
		    4);
	check_elems((const char *[]){"2001:db8::/32", "::/0",
				     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/"
				     "128",
				     "::1/128"},
		    4,
		    (struct want_el[]){
			{"20010db8000000000000000000000000", false},
			{"20010db9000000000000000000000000", true},
			{"00000000000000000000000000000000", false},
			{"ffffffffffffffffffffffffffffffff", false},
			{"00000000000000000000000000000001", false},
			{"00000000000000000000000000000002", true}},
		    6);
	check_elems(NULL, 0, NULL, 0);
	errno = 0;
	CHECK(mt_nft_fw_list_elems_new(TABLE, "l4_x", NULL,
				       MT_NFT_FW_ELEMS_PER_MSG + 1) == NULL &&
	      errno == EINVAL);
}

static struct nftnl_set_elem *first_elem(struct nftnl_set *s)
{
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
	struct nftnl_set_elem *e = nftnl_set_elems_iter_next(it);

	nftnl_set_elems_iter_destroy(it);
	return e;
}

static int lists_parse_of(struct nftnl_set *s, char *name, int *fam,
			  char *digest, uint32_t *count)
{
	struct nftnl_set *back = nftnl_set_alloc();
	int ret;

	elems_wire(s, back);
	ret = mt_nft_fw_lists_elem_parse(first_elem(back), name, fam, digest,
					 count);
	nftnl_set_free(back);
	return ret;
}

/* An element of fw_lists with key k (padded) and the comment c. */
static struct nftnl_set *lists_elem_raw(const char *k, size_t klen,
					const char *c)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct nftnl_set_elem *e = nftnl_set_elem_alloc();
	struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(256);
	char key[32] = {0};

	memcpy(key, k, strlen(k));
	nftnl_set_set_str(s, NFTNL_SET_TABLE, TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, MT_NFT_FW_LISTS_SET);
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, (uint32_t)klen);
	nftnl_udata_put_strz(u, NFTNL_UDATA_SET_ELEM_COMMENT, c);
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_USERDATA, nftnl_udata_buf_data(u),
			   nftnl_udata_buf_len(u));
	nftnl_udata_buf_free(u);
	nftnl_set_elem_add(s, e);
	return s;
}

static void test_lists_elems(void)
{
	char name[MT_FW_LIST_NAME_MAX + 1], digest[MT_FW_DIGEST_STRLEN];
	int fam = 0;
	uint32_t cnt = 0;
	struct nftnl_set *s;
	static const char *const bad[] = {
	    "ipv4 0123456789abcdef 007",  "ipv4 0123456789ABCDEF 7",
	    "ipv5 0123456789abcdef 7",	  "ipv4 0123456789abcde 7",
	    "ipv4 0123456789abcdef",	  "ipv4 0123456789abcdef 7 x",
	    "ipv4 0123456789abcdef 4294967296", "ipv4  0123456789abcdef 7",
	};

	s = mt_nft_fw_lists_elem_new(TABLE, "bad", AF_INET, "1a2b3c4d5e6f7a8b",
				     100000);
	CHECK(s && lists_parse_of(s, name, &fam, digest, &cnt) == 0);
	CHECK_STR(name, "bad");
	CHECK_STR(digest, "1a2b3c4d5e6f7a8b");
	CHECK(fam == AF_INET && cnt == 100000);
	nftnl_set_free(s);
	s = mt_nft_fw_lists_elem_new(TABLE, "abcdefghijklmno", AF_INET6,
				     "0000000000000000", 0);
	CHECK(s && lists_parse_of(s, name, &fam, digest, &cnt) == 0);
	CHECK_STR(name, "abcdefghijklmno");
	CHECK(fam == AF_INET6 && cnt == 0);
	nftnl_set_free(s);
	CHECK(mt_nft_fw_lists_elem_new(TABLE, "Bad", AF_INET,
				       "0000000000000000", 0) == NULL);

	s = lists_elem_raw("ok", IFNAMSIZ, "ipv4 0123456789abcdef 7");
	CHECK(lists_parse_of(s, name, &fam, digest, &cnt) == 0 && cnt == 7);
	nftnl_set_free(s);
	for (size_t i = 0; i < N(bad); i++) {
		s = lists_elem_raw("ok", IFNAMSIZ, bad[i]);
		if (lists_parse_of(s, name, &fam, digest, &cnt) != -ENOENT) {
			fprintf(stderr, "lists comment \"%s\" taken\n",
				bad[i]);
			CHECK(false);
		}
		nftnl_set_free(s);
	}
	s = lists_elem_raw("ok", 8, "ipv4 0123456789abcdef 7");
	CHECK(lists_parse_of(s, name, &fam, digest, &cnt) == -ENOENT);
	nftnl_set_free(s);
	s = lists_elem_raw("-x", IFNAMSIZ, "ipv4 0123456789abcdef 7");
	CHECK(lists_parse_of(s, name, &fam, digest, &cnt) == -ENOENT);
	nftnl_set_free(s);
}

/* Raw rules as a user writes them, made canonical by lib/mt_fw.c: what
 * the compiler takes and the parser gives back. */
static void test_from_canonical(void)
{
	static const struct spec raw[] = {
		{.id = 1, .action = "rate_limit", .pps = 50, NONE},
		{.id = 2, .action = "block", .proto = "6",
		 .dport = {"443", "80", "81-90", "85"},
		 .src = {"198.51.100.0/24", "10.0.0.0/8", "10.1.0.0/16"},
		 .fset = {"ack", "syn", "syn"}, NONE},
		{.id = 3, .action = "allow", .proto = "icmpv6", .icmp_type = 135,
		 .icmp_code = 0, .len_min = -1, .ttl_min = 255, .ttl_max = 255},
		{.id = 4, .action = "block", .src_list = "bad", .proto = "17",
		 .sport = {"53"}, .fragment = true, NONE},
		{.id = 5, .action = "rate_limit", .monitor = true,
		 .dst_list = "six", .bps = 1 << 20, NONE},
		{.id = 6, .action = "allow", .ttl_min = 1, .ttl_max = 1,
		 .icmp_type = -1, .icmp_code = -1, .len_min = 20,
		 .len_max = 65535},
	};
	char *bad_p[] = {"192.0.2.0/24"}, *six_p[] = {"2001:db8::/32"};
	Mt__Config__IpList lists[2] = {MT__CONFIG__IP_LIST__INIT,
				       MT__CONFIG__IP_LIST__INIT};
	Mt__Config__IpList *lp[2] = {&lists[0], &lists[1]};
	Mt__Config__Firewall fw = MT__CONFIG__FIREWALL__INIT;

	lists[0].name = "bad";
	lists[0].n_prefixes = 1;
	lists[0].prefixes = bad_p;
	lists[1].name = "six";
	lists[1].n_prefixes = 1;
	lists[1].prefixes = six_p;
	fw.n_lists = 2;
	fw.lists = lp;
	for (size_t i = 0; i < N(raw); i++) {
		Mt__Config__FirewallRule *canon = NULL, *out = NULL;
		struct mt_nft_fw_compiled c;
		struct rbuf b;
		struct dump d;
		uint32_t set_id = 0;
		uint64_t pk, by, lim;
		char err[256];
		int ret;

		spec_rule(&raw[i], &b);
		ret = mt_fw_rule_canonical(&fw, &b.r, &canon, err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "raw %zu: %s\n", i, err);
			CHECK(ret == 0);
			continue;
		}
		ret = mt_nft_fw_rule_compile(TABLE, canon, &set_id, &c);
		CHECK(ret == 0);
		if (ret == 0) {
			dump_of(&c, &d);
			CHECK(dump_parse(&d, &out, &pk, &by, &lim) == 0);
			CHECK(out && rule_equal(out, canon));
			if (out)
				protobuf_c_message_free_unpacked(&out->base,
								 NULL);
			dump_fini(&d);
			mt_nft_fw_compiled_fini(&c);
		}
		protobuf_c_message_free_unpacked(&canon->base, NULL);
	}
}

int main(void)
{
	RUN(test_roundtrip);
	RUN(test_not_canonical);
	RUN(test_from_canonical);
	RUN(test_refused);
	RUN(test_foreign);
	RUN(test_chains);
	RUN(test_base_rules);
	RUN(test_list_sets);
	RUN(test_list_elems);
	RUN(test_lists_elems);
	TEST_MAIN_END();
}
