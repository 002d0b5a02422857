/* The firewall planner (fastpath/nft_fw_plan.c) against hand-built states:
 * which steps one transaction gets, in which order, with which positions,
 * handles and ids; the op checks; the observed Firewall; and how many
 * messages the steps make. No root, no kernel. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>

#include "mt_fw.h"
#include "mt_kstate.h"
#include "mt_metal.h"
#include "mt_test.h"
#include "nft_batch.h"
#include "nft_fw_plan.h"

#define TABLE "mt0-cust"

static struct mt_metal metal;

/* ---- building rules, states, wants ---- */

/* A canonical rule: allow tcp to port `port`, IPv4 (heap). */
static Mt__Config__FirewallRule *rule(uint32_t id, const char *port)
{
	Mt__Config__FirewallRule r = MT__CONFIG__FIREWALL_RULE__INIT;
	char *ports[] = {(char *)port};

	r.id = id;
	r.action = "allow";
	r.family = "ipv4";
	r.protocol = "tcp";
	r.n_dst_ports = 1;
	r.dst_ports = ports;
	return (Mt__Config__FirewallRule *)mt_message_dup(&r.base);
}

static void rule_free(Mt__Config__FirewallRule *r)
{
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* A clean state: chains, jump (handle 1) and default allow (handle 2),
 * fw_lists. */
static void state_clean(struct mt_nft_fw_state *st)
{
	memset(st, 0, sizeof(*st));
	st->table = true;
	st->chain = st->chain_ok = st->rchain = st->rchain_ok = true;
	st->lset = st->lset_ok = true;
	st->base = calloc(4, sizeof(*st->base));
	st->cap_base = 4;
	st->base[0] =
	    (struct mt_nft_fw_base){.handle = 1, .kind = MT_NFT_FW_BASE_JUMP};
	st->base[1] = (struct mt_nft_fw_base){.handle = 2,
					      .kind = MT_NFT_FW_BASE_DEFAULT};
	st->n_base = 2;
	st->cap_groups = 64;
	st->groups = calloc(st->cap_groups, sizeof(*st->groups));
	st->cap_sets = st->cap_lists = 16;
	st->sets = calloc(16, sizeof(*st->sets));
	st->lists = calloc(16, sizeof(*st->lists));
}

/* Appends kernel rule id (port), handles h, h+1, ... for its n parts;
 * id 0 = a foreign rule; port NULL = damaged (not parsed). */
static void st_rule(struct mt_nft_fw_state *st, uint32_t id, const char *port,
		    size_t n, uint64_t h)
{
	struct mt_nft_fw_group *g = &st->groups[st->n_groups++];

	memset(g, 0, sizeof(*g));
	g->id = id;
	g->n = n;
	for (size_t k = 0; k < n; k++)
		g->handle[k] = h + k;
	g->rule = id && port ? rule(id, port) : NULL;
	g->packets = id * 10;
	g->bytes = id * 1000;
}

static void st_list(struct mt_nft_fw_state *st, const char *name, int family,
		    const char *digest, uint32_t count)
{
	struct mt_nft_fw_kset *k = &st->sets[st->n_sets++];
	struct mt_nft_fw_klist *l = &st->lists[st->n_lists++];

	memset(k, 0, sizeof(*k));
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->family = family;
	k->ok = true;
	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->family = family;
	snprintf(l->digest, sizeof(l->digest), "%s", digest);
	l->count = count;
	memcpy(l->key, name, strlen(name));
}

struct want {
	struct mt_nft_fw_want w;
	Mt__Config__FirewallRule *rules[64];
};

static void want_init(struct want *x, bool block)
{
	memset(x, 0, sizeof(*x));
	x->w.op = 7;
	x->w.block = block;
	x->w.rules = calloc(64, sizeof(*x->w.rules));
	x->w.lists = calloc(8, sizeof(*x->w.lists));
}

static void want_rule(struct want *x, uint32_t id, const char *port,
		      size_t n_parts)
{
	size_t i = x->w.n_rules++;

	x->rules[i] = rule(id, port);
	x->w.rules[i].rule = x->rules[i];
	x->w.rules[i].n_parts = n_parts;
}

static struct mt_nft_fw_want_list *want_list(struct want *x, const char *name,
					     int family, const char *digest)
{
	struct mt_nft_fw_want_list *l = &x->w.lists[x->w.n_lists++];

	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->family = family;
	snprintf(l->digest, sizeof(l->digest), "%s", digest);
	return l;
}

static struct mt_prefix *prefixes(size_t n)
{
	struct mt_prefix *p = calloc(n ? n : 1, sizeof(*p));

	for (size_t i = 0; i < n; i++) {
		p[i].family = AF_INET;
		p[i].len = 32;
		p[i].addr[0] = 10;
		p[i].addr[1] = (uint8_t)(i >> 16);
		p[i].addr[2] = (uint8_t)(i >> 8);
		p[i].addr[3] = (uint8_t)i;
	}
	return p;
}

static void want_fini(struct want *x)
{
	for (size_t i = 0; i < x->w.n_rules; i++)
		rule_free(x->rules[i]);
	mt_nft_fw_want_fini(&x->w);
}

/* ---- the plan as text ---- */

static const char *const type_name[] = {
    [MT_NFT_FW_NEWTABLE] = "newtable",
    [MT_NFT_FW_NEWCHAIN] = "newchain",
    [MT_NFT_FW_DELCHAIN] = "delchain",
    [MT_NFT_FW_NEWSET] = "newset",
    [MT_NFT_FW_DELSET] = "delset",
    [MT_NFT_FW_FLUSHSET] = "flushset",
    [MT_NFT_FW_ADDELEMS] = "addelems",
    [MT_NFT_FW_DELELEMS] = "delelems",
    [MT_NFT_FW_ADDLISTELEM] = "addlistelem",
    [MT_NFT_FW_DELLISTELEM] = "dellistelem",
    [MT_NFT_FW_NEWRULE] = "newrule",
    [MT_NFT_FW_REPLACERULE] = "replace",
    [MT_NFT_FW_DELRULE] = "delrule",
    [MT_NFT_FW_NEWJUMP] = "newjump",
    [MT_NFT_FW_NEWDEFAULT] = "newdefault",
    [MT_NFT_FW_REPLACEDEFAULT] = "replacedefault",
};

static char plan_buf[8192];

/* "replace 30 h5; newrule 15 @h3 #1" etc. */
static const char *fmt_steps(const struct mt_nft_fw_step *s, size_t n)
{
	size_t len = 0;

	plan_buf[0] = '\0';
	for (size_t i = 0; i < n && len < sizeof(plan_buf); i++) {
		const struct mt_nft_fw_step *x = &s[i];
		char extra[128] = "";

		switch (x->type) {
		case MT_NFT_FW_NEWRULE:
			if (x->pos == MT_NFT_FW_POS_HEAD)
				snprintf(extra, sizeof(extra), " head #%u",
					 x->uid);
			else if (x->pos == MT_NFT_FW_POS_TAIL)
				snprintf(extra, sizeof(extra), " tail #%u",
					 x->uid);
			else if (x->pos == MT_NFT_FW_POS_HANDLE)
				snprintf(extra, sizeof(extra), " @h%llu #%u",
					 (unsigned long long)x->pos_handle,
					 x->uid);
			else
				snprintf(extra, sizeof(extra), " @#%u #%u",
					 x->pos_id, x->uid);
			break;
		case MT_NFT_FW_REPLACERULE:
		case MT_NFT_FW_DELRULE:
		case MT_NFT_FW_REPLACEDEFAULT:
			snprintf(extra, sizeof(extra), " h%llu",
				 (unsigned long long)x->handle[0]);
			break;
		case MT_NFT_FW_ADDELEMS:
		case MT_NFT_FW_DELELEMS:
			snprintf(extra, sizeof(extra), " %zu", x->n);
			break;
		default:
			break;
		}
		len +=
		    (size_t)snprintf(plan_buf + len, sizeof(plan_buf) - len,
				     "%s%s", i ? "; " : "", type_name[x->type]);
		if (x->rule_id)
			len += (size_t)snprintf(plan_buf + len,
						sizeof(plan_buf) - len, " %u",
						x->rule_id);
		if (*x->list)
			len += (size_t)snprintf(plan_buf + len,
						sizeof(plan_buf) - len, " %s",
						x->list);
		len += (size_t)snprintf(plan_buf + len, sizeof(plan_buf) - len,
					"%s", extra);
	}
	return plan_buf;
}

/* Plans w against st and compares the steps with want. Returns the plan's
 * return value. */
static int plan_is(const struct mt_nft_fw_state *st, const struct want *x,
		   const char *want, int line)
{
	struct mt_nft_fw_step *steps = NULL;
	size_t n = 0;
	uint32_t uid = 1;
	char err[256];
	int r = mt_nft_fw_plan(st, &x->w, &uid, &steps, &n, err, sizeof(err));

	if (r == 0) {
		const char *got = fmt_steps(steps, n);

		if (strcmp(got, want) != 0) {
			fprintf(stderr,
				"line %d:\n  got  \"%s\"\n  want \"%s\"\n",
				line, got, want);
			mt_test_failures++;
		}
		for (size_t i = 0; i < n; i++)
			CHECK(steps[i].op == 7);
	}
	free(steps);
	return r;
}

#define PLAN_IS(st, x, want) CHECK(plan_is((st), (x), (want), __LINE__) == 0)

/* ---- rules ---- */

/* kernel 10 20 30 (handles 3.., one part each) */
static void three(struct mt_nft_fw_state *st)
{
	state_clean(st);
	st_rule(st, 10, "10", 1, 3);
	st_rule(st, 20, "20", 1, 4);
	st_rule(st, 30, "30", 1, 5);
}

static void test_noop(void)
{
	struct mt_nft_fw_state st;
	struct want x;

	three(&st);
	want_init(&x, false);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 20, "20", 1);
	want_rule(&x, 30, "30", 1);
	PLAN_IS(&st, &x, "");
	CHECK(!mt_nft_fw_state_dirty(&st));
	CHECK(mt_nft_fw_state_present(&st));
	want_fini(&x);
	mt_nft_fw_state_fini(&st);
}

static void test_one_changed(void)
{
	struct mt_nft_fw_state st;
	struct want x;

	three(&st);
	want_init(&x, false);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 20, "2020", 1);
	want_rule(&x, 30, "30", 1);
	PLAN_IS(&st, &x, "replace 20 h4");
	want_fini(&x);
	/* a changed rule of two parts where one was: delete + insert at
	 * its place */
	want_init(&x, false);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 20, "2020", 2);
	want_rule(&x, 30, "30", 1);
	PLAN_IS(&st, &x, "delrule 20 h4; newrule 20 @h3 #1");
	want_fini(&x);
	mt_nft_fw_state_fini(&st);
}

static void test_insert(void)
{
	struct mt_nft_fw_state st;
	struct want x;

	three(&st);
	/* head */
	want_init(&x, false);
	want_rule(&x, 5, "5", 1);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 20, "20", 1);
	want_rule(&x, 30, "30", 1);
	PLAN_IS(&st, &x, "newrule 5 head #1");
	want_fini(&x);
	/* middle, two in a row, the second after the first by id */
	want_init(&x, false);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 11, "11", 2);
	want_rule(&x, 12, "12", 1);
	want_rule(&x, 20, "20", 1);
	want_rule(&x, 30, "30", 1);
	PLAN_IS(&st, &x, "newrule 11 @h3 #1; newrule 12 @#2 #3");
	want_fini(&x);
	/* end: appended */
	want_init(&x, false);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 20, "20", 1);
	want_rule(&x, 30, "30", 1);
	want_rule(&x, 40, "40", 1);
	want_rule(&x, 50, "50", 1);
	PLAN_IS(&st, &x, "newrule 40 tail #1; newrule 50 tail #2");
	want_fini(&x);
	/* a rule deleted */
	want_init(&x, false);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 30, "30", 1);
	PLAN_IS(&st, &x, "delrule 20 h4");
	want_fini(&x);
	mt_nft_fw_state_fini(&st);
}

static void test_reorder(void)
{
	struct mt_nft_fw_state st;
	struct want x;

	three(&st);
	want_init(&x, false);
	want_rule(&x, 30, "30", 1);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 20, "20", 1);
	PLAN_IS(&st, &x, "delrule 30 h5; newrule 30 head #1");
	want_fini(&x);
	want_init(&x, false);
	want_rule(&x, 20, "20", 1);
	want_rule(&x, 30, "30", 1);
	want_rule(&x, 10, "10", 1);
	PLAN_IS(&st, &x, "delrule 10 h3; newrule 10 tail #1");
	want_fini(&x);
	/* reversed: one stays (30), two move after it (and 20 changed) */
	want_init(&x, false);
	want_rule(&x, 30, "30", 1);
	want_rule(&x, 20, "21", 1);
	want_rule(&x, 10, "10", 1);
	PLAN_IS(&st, &x,
		"delrule 10 h3; delrule 20 h4; newrule 20 tail #1; "
		"newrule 10 tail #2");
	want_fini(&x);
	mt_nft_fw_state_fini(&st);
}

static void test_drift(void)
{
	struct mt_nft_fw_state st;
	struct want x;

	/* 20 deleted by hand: inserted after 10 */
	state_clean(&st);
	st_rule(&st, 10, "10", 1, 3);
	st_rule(&st, 30, "30", 1, 5);
	want_init(&x, false);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 20, "20", 1);
	want_rule(&x, 30, "30", 1);
	PLAN_IS(&st, &x, "newrule 20 @h3 #1");
	mt_nft_fw_state_fini(&st);

	/* a foreign rule in the middle: deleted, nothing else */
	state_clean(&st);
	st_rule(&st, 10, "10", 1, 3);
	st_rule(&st, 0, NULL, 1, 9);
	st_rule(&st, 20, "20", 1, 4);
	st_rule(&st, 30, "30", 1, 5);
	CHECK(mt_nft_fw_state_dirty(&st));
	PLAN_IS(&st, &x, "delrule h9");
	mt_nft_fw_state_fini(&st);

	/* 20 changed by hand so it does not parse: deleted, restored */
	state_clean(&st);
	st_rule(&st, 10, "10", 1, 3);
	st_rule(&st, 20, NULL, 1, 4);
	st_rule(&st, 30, "30", 1, 5);
	CHECK(mt_nft_fw_state_dirty(&st));
	PLAN_IS(&st, &x, "delrule 20 h4; newrule 20 @h3 #1");
	mt_nft_fw_state_fini(&st);

	/* a duplicate of 20 (its parse was dropped): deleted */
	state_clean(&st);
	st_rule(&st, 10, "10", 1, 3);
	st_rule(&st, 20, "20", 1, 4);
	st_rule(&st, 20, NULL, 1, 8);
	st_rule(&st, 30, "30", 1, 5);
	PLAN_IS(&st, &x, "delrule 20 h8");
	mt_nft_fw_state_fini(&st);

	/* multi-part rules: every part is deleted / replaced */
	state_clean(&st);
	st_rule(&st, 10, "10", 1, 3);
	st_rule(&st, 20, "20", 2, 10);
	st_rule(&st, 30, "30", 1, 5);
	want_fini(&x);
	want_init(&x, false);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 20, "22", 2);
	want_rule(&x, 25, "25", 1);
	want_rule(&x, 30, "30", 1);
	PLAN_IS(&st, &x, "replace 20 h10; newrule 25 @h11 #1");
	want_fini(&x);
	want_init(&x, false);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 30, "30", 1);
	PLAN_IS(&st, &x, "delrule 20 h10; delrule 20 h11");
	want_fini(&x);
	mt_nft_fw_state_fini(&st);
}

static void test_base(void)
{
	struct mt_nft_fw_state st;
	struct want x;

	three(&st);
	want_init(&x, true);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 20, "20", 1);
	want_rule(&x, 30, "30", 1);
	PLAN_IS(&st, &x, "replacedefault h2");
	/* the jump deleted by hand */
	st.base[0] = st.base[1];
	st.base[0].block = true;
	st.n_base = 1;
	CHECK(mt_nft_fw_state_dirty(&st));
	PLAN_IS(&st, &x, "newjump");
	/* a foreign rule before the jump, the default missing */
	st.base[0] = (struct mt_nft_fw_base){.handle = 40, .kind = -1};
	st.base[1] =
	    (struct mt_nft_fw_base){.handle = 1, .kind = MT_NFT_FW_BASE_JUMP};
	st.n_base = 2;
	PLAN_IS(&st, &x, "delrule h40; newdefault");
	/* default before jump: the jump goes to the head again */
	st.base[0] = (struct mt_nft_fw_base){
	    .handle = 2, .kind = MT_NFT_FW_BASE_DEFAULT, .block = true};
	PLAN_IS(&st, &x, "delrule h1; newjump");
	want_fini(&x);
	mt_nft_fw_state_fini(&st);
}

static void test_empty_and_rebuild(void)
{
	struct mt_nft_fw_state st;
	struct want x;

	memset(&st, 0, sizeof(st));
	want_init(&x, false);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 20, "20", 2);
	CHECK(!mt_nft_fw_state_present(&st));
	CHECK(!mt_nft_fw_state_dirty(&st));
	PLAN_IS(&st, &x,
		"newtable; newchain; newchain; newset; newrule 10 tail #1; "
		"newrule 20 tail #2; newjump; newdefault");
	/* the table exists (the mss chain lives there) */
	st.table = true;
	PLAN_IS(&st, &x,
		"newchain; newchain; newset; newrule 10 tail #1; newrule 20 "
		"tail #2; newjump; newdefault");
	mt_nft_fw_state_fini(&st);

	/* fw is not as mt makes it (say a hand-made priority): rebuilt */
	three(&st);
	st.chain_ok = false;
	CHECK(mt_nft_fw_state_dirty(&st));
	PLAN_IS(&st, &x,
		"delchain; delchain; newchain; newchain; newrule 10 tail #1; "
		"newrule 20 tail #2; newjump; newdefault");
	mt_nft_fw_state_fini(&st);
	/* a dormant table is woken */
	three(&st);
	st.dormant = true;
	want_fini(&x);
	want_init(&x, false);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 20, "20", 1);
	want_rule(&x, 30, "30", 1);
	CHECK(mt_nft_fw_state_dirty(&st));
	PLAN_IS(&st, &x, "newtable");
	want_fini(&x);
	mt_nft_fw_state_fini(&st);
}

/* ---- lists ---- */

#define D1 "1111111111111111"
#define D2 "2222222222222222"
#define D3 "3333333333333333"

static void test_lists(void)
{
	struct mt_nft_fw_state st;
	struct mt_nft_fw_want_list *l;
	struct want x;
	struct mt_nft_fw_step *steps = NULL;
	size_t n = 0;
	uint32_t uid = 1;
	char err[256];

	state_clean(&st);
	st_list(&st, "bad", AF_INET, D1, 3);
	CHECK(!mt_nft_fw_state_dirty(&st));

	/* unchanged */
	want_init(&x, false);
	l = want_list(&x, "bad", AF_INET, D1);
	l->count = 3;
	PLAN_IS(&st, &x, "");

	/* delta against the kernel's version */
	snprintf(l->digest, sizeof(l->digest), D2);
	snprintf(l->base_digest, sizeof(l->base_digest), D1);
	l->delta = true;
	l->add = prefixes(1);
	l->n_add = 1;
	l->remove = prefixes(2);
	l->n_remove = 2;
	l->count = 2;
	PLAN_IS(&st, &x,
		"delelems bad 2; addelems bad 1; dellistelem bad; addlistelem "
		"bad");

	/* delta against another version: -ESTALE, nothing planned */
	snprintf(l->base_digest, sizeof(l->base_digest), D3);
	CHECK(mt_nft_fw_plan(&st, &x.w, &uid, &steps, &n, err, sizeof(err)) ==
	      -ESTALE);
	CHECK(n == 0 && steps == NULL);
	CHECK_CONTAINS(err, "list \"bad\"");
	CHECK_CONTAINS(err, "another version");
	CHECK_CONTAINS(err, "full reload");

	/* full content: flush and refill in chunks */
	free(l->add);
	free(l->remove);
	l->add = l->remove = NULL;
	l->n_add = l->n_remove = 0;
	l->delta = false;
	l->n = 1200;
	l->prefixes = prefixes(l->n);
	l->count = 1200;
	PLAN_IS(&st, &x,
		"flushset bad; addelems bad 512; addelems bad 512; addelems "
		"bad 176; dellistelem bad; addlistelem bad");

	/* a new list beside it, used by a new rule: the set first */
	l = want_list(&x, "good", AF_INET6, D3);
	want_rule(&x, 10, "10", 1);
	x.w.lists[0].n = 0; /* bad: empty now */
	mt_nft_fw_state_fini(&st);
	state_clean(&st);
	st_list(&st, "bad", AF_INET, D1, 3);
	PLAN_IS(&st, &x,
		"flushset bad; dellistelem bad; addlistelem bad; newset good; "
		"addlistelem good; newrule 10 tail #1");
	want_fini(&x);

	/* a list no longer desired: after the rules */
	want_init(&x, false);
	PLAN_IS(&st, &x, "delset bad; dellistelem bad");
	/* its family changed: new set first, the old one after the rules */
	l = want_list(&x, "bad", AF_INET6, D2);
	PLAN_IS(&st, &x,
		"newset bad; dellistelem bad; addlistelem bad; delset bad");
	want_fini(&x);

	/* an element without its set, a set without element, a foreign
	 * element: dirty; repaired */
	mt_nft_fw_state_fini(&st);
	state_clean(&st);
	st_list(&st, "bad", AF_INET, D1, 3);
	st.n_sets = 0; /* the set of bad was deleted by hand */
	st.sets[st.n_sets] = (struct mt_nft_fw_kset){"orphan", AF_INET, true};
	st.n_sets++;
	st.lists[st.n_lists] = (struct mt_nft_fw_klist){.foreign = true};
	memcpy(st.lists[st.n_lists].key, "junk", 4);
	st.n_lists++;
	CHECK(mt_nft_fw_state_dirty(&st));
	want_init(&x, false);
	l = want_list(&x, "bad", AF_INET, D1);
	l->count = 3;
	PLAN_IS(&st, &x,
		"dellistelem; newset bad; dellistelem bad; addlistelem bad; "
		"delset orphan");
	want_fini(&x);
	mt_nft_fw_state_fini(&st);
	free(steps);
}

static void test_delete(void)
{
	struct mt_nft_fw_state st;
	struct want x;

	three(&st);
	st_list(&st, "bad", AF_INET, D1, 3);
	st_list(&st, "v6", AF_INET6, D2, 3);
	want_init(&x, false);
	x.w.del = true;
	PLAN_IS(&st, &x, "delchain; delchain; delset bad; delset v6; delset");
	mt_nft_fw_state_fini(&st);
	/* nothing there: nothing sent (the table alone is not ours to
	 * delete) */
	memset(&st, 0, sizeof(st));
	st.table = true;
	PLAN_IS(&st, &x, "");
	want_fini(&x);
}

/* ---- observed ---- */

static void test_observed(void)
{
	struct mt_nft_fw_state st;
	Mt__Kernel__Firewall *fw = NULL;

	three(&st);
	st.base[1].block = true;
	st.base[1].packets = 5;
	st_list(&st, "zz", AF_INET, D1, 3);
	st_list(&st, "aa", AF_INET6, D2, 4);
	CHECK(mt_nft_fw_observed(&st, "mt0-acme", "acme", true, &fw) == 0);
	CHECK(fw && !fw->dirty);
	if (!fw)
		goto out;
	CHECK_STR(fw->netns, "mt0-acme");
	CHECK_STR(fw->owner, "acme");
	CHECK_STR(fw->default_action, "block");
	CHECK(fw->n_rules == 3 && fw->rules[1]->id == 20 &&
	      !strcmp(fw->rules[1]->dst_ports[0], "20"));
	CHECK(fw->n_lists == 2);
	CHECK_STR(fw->lists[0]->name, "aa");
	CHECK_STR(fw->lists[0]->family, "ipv6");
	CHECK_STR(fw->lists[1]->digest, D1);
	CHECK(fw->lists[1]->count == 3);
	CHECK(fw->n_counters == 4);
	CHECK(fw->counters[2]->id == 30 && fw->counters[2]->packets == 300 &&
	      fw->counters[2]->bytes == 30000);
	CHECK(fw->counters[3]->id == 0 && fw->counters[3]->packets == 5);
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	/* a damaged rule is left out and makes it dirty */
	st_rule(&st, 40, NULL, 1, 9);
	CHECK(mt_nft_fw_observed(&st, "mt0-acme", "acme", false, &fw) == 0);
	CHECK(fw && fw->dirty && fw->n_rules == 3 && fw->n_counters == 0);
	if (fw)
		protobuf_c_message_free_unpacked(&fw->base, NULL);
out:
	mt_nft_fw_state_fini(&st);
}

/* ---- op checks ---- */

static int prepare(Mt__Kernel__Firewall *f, Mt__Kernel__Op__Action action,
		   char *err, size_t errlen, struct mt_nft_fw_want *w)
{
	Mt__Kernel__Op op = MT__KERNEL__OP__INIT;

	op.action = action;
	op.object_case = MT__KERNEL__OP__OBJECT_FIREWALL;
	op.firewall = f;
	return mt_nft_fw_want_prepare(&metal, TABLE, &op, 3, w, err, errlen);
}

static void test_prepare(void)
{
	Mt__Kernel__Firewall f = MT__KERNEL__FIREWALL__INIT;
	Mt__Kernel__FirewallList l = MT__KERNEL__FIREWALL_LIST__INIT;
	Mt__Kernel__FirewallList *ls[] = {&l};
	Mt__Config__FirewallRule *r10 = rule(10, "80"), *r20 = rule(20, "53");
	Mt__Config__FirewallRule *rs[] = {r10, r20};
	char *pfx[] = {"10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24"};
	struct mt_nft_fw_want w;
	char err[512];
	int r;

	f.netns = "mt0-acme";
	f.default_action = "block";
	f.rules = rs;
	f.n_rules = 2;
	f.lists = ls;
	f.n_lists = 1;
	l.name = "bad";
	l.family = "ipv4";
	l.prefixes = pfx;
	l.n_prefixes = 3;
	r = prepare(&f, MT__KERNEL__OP__ACTION__CREATE, err, sizeof(err), &w);
	if (r)
		fprintf(stderr, "prepare: %d %s\n", r, err);
	CHECK(r == 0);
	CHECK(w.op == 3 && w.block && w.n_rules == 2 && w.n_lists == 1);
	CHECK(w.n_rules == 2 && w.rules[0].n_parts >= 1);
	/* covered prefixes dropped; digest and count of the content */
	CHECK(w.n_lists == 1 && w.lists[0].n == 2 && w.lists[0].count == 2);
	CHECK(strlen(w.lists[0].digest) == 16);
	mt_nft_fw_want_fini(&w);

	/* the digest given must be the content's */
	l.digest = "0123456789abcdef";
	CHECK(prepare(&f, MT__KERNEL__OP__ACTION__CREATE, err, sizeof(err),
		      &w) == -EINVAL);
	CHECK_CONTAINS(err, "does not match");
	mt_nft_fw_want_fini(&w);
	l.digest = "";

	/* not a customer namespace */
	f.netns = "mt1-acme";
	CHECK(prepare(&f, MT__KERNEL__OP__ACTION__DELETE, err, sizeof(err),
		      &w) == -EPERM);
	CHECK_CONTAINS(err, "mt1-acme");
	mt_nft_fw_want_fini(&w);
	f.netns = "mt0-acme";
	/* default action */
	f.default_action = "reject";
	CHECK(prepare(&f, MT__KERNEL__OP__ACTION__CREATE, err, sizeof(err),
		      &w) == -EINVAL);
	CHECK_CONTAINS(err, "reject");
	mt_nft_fw_want_fini(&w);
	f.default_action = "";
	/* duplicate ids */
	r20->id = 10;
	CHECK(prepare(&f, MT__KERNEL__OP__ACTION__CREATE, err, sizeof(err),
		      &w) == -EINVAL);
	CHECK_CONTAINS(err, "id 10");
	mt_nft_fw_want_fini(&w);
	r20->id = 20;
	/* a rule that is not canonical: "http" is not a port */
	free(r20->dst_ports[0]);
	r20->dst_ports[0] = strdup("http");
	CHECK(prepare(&f, MT__KERNEL__OP__ACTION__CREATE, err, sizeof(err),
		      &w) == -EINVAL);
	CHECK_CONTAINS(err, "rules[1] (id 20)");
	mt_nft_fw_want_fini(&w);
	free(r20->dst_ports[0]);
	r20->dst_ports[0] = strdup("53");
	/* a prefix of the other family; a malformed one */
	pfx[1] = "2001:db8::/32";
	CHECK(prepare(&f, MT__KERNEL__OP__ACTION__CREATE, err, sizeof(err),
		      &w) == -EINVAL);
	CHECK_CONTAINS(err, "list \"bad\"");
	mt_nft_fw_want_fini(&w);
	pfx[1] = "10.1.0.1/16";
	CHECK(prepare(&f, MT__KERNEL__OP__ACTION__CREATE, err, sizeof(err),
		      &w) == -EINVAL);
	CHECK_CONTAINS(err, "10.1.0.1/16");
	mt_nft_fw_want_fini(&w);
	pfx[1] = "10.1.0.0/16";
	/* a delta needs its digests; its prefixes must be of the family */
	l.delta = true;
	l.n_prefixes = 0;
	CHECK(prepare(&f, MT__KERNEL__OP__ACTION__CREATE, err, sizeof(err),
		      &w) == -EINVAL);
	CHECK_CONTAINS(err, "base_digest");
	mt_nft_fw_want_fini(&w);
	l.digest = D2;
	l.base_digest = D1;
	l.add = (char *[]){"2001:db8::/32"};
	l.n_add = 1;
	CHECK(prepare(&f, MT__KERNEL__OP__ACTION__CREATE, err, sizeof(err),
		      &w) == -EINVAL);
	CHECK_CONTAINS(err, "add[0]");
	mt_nft_fw_want_fini(&w);
	l.add = (char *[]){"198.51.100.0/24"};
	CHECK(prepare(&f, MT__KERNEL__OP__ACTION__CREATE, err, sizeof(err),
		      &w) == 0);
	CHECK(w.lists[0].delta && w.lists[0].n_add == 1);
	mt_nft_fw_want_fini(&w);
	/* bad list name */
	l.name = "Bad";
	CHECK(prepare(&f, MT__KERNEL__OP__ACTION__CREATE, err, sizeof(err),
		      &w) == -EINVAL);
	CHECK_CONTAINS(err, "Bad");
	mt_nft_fw_want_fini(&w);

	rule_free(r10);
	rule_free(r20);
}

/* ---- steps into messages ---- */

static void test_batch(void)
{
	struct mt_nft_fw_state st;
	struct want x;
	struct mt_nft_fw_step *steps = NULL;
	size_t n = 0;
	uint32_t uid = 1, set_id = 1;
	char err[256];
	struct mt_nft_batch *b;
	struct mt_nft_fw_want_list *l;

	/* one changed rule: one message */
	three(&st);
	want_init(&x, false);
	want_rule(&x, 10, "10", 1);
	want_rule(&x, 20, "2020", 1);
	want_rule(&x, 30, "30", 1);
	CHECK(mt_nft_fw_plan(&st, &x.w, &uid, &steps, &n, err, sizeof(err)) ==
	      0);
	b = mt_nft_batch_new(0);
	for (size_t i = 0; i < n; i++)
		CHECK(mt_nft_fw_step_batch(b, TABLE, &steps[i], &set_id,
					   -1 - (long)i) == 0);
	CHECK(mt_nft_batch_count(b) == 1);
	CHECK(mt_nft_batch_tag(b, 0) == -1);
	mt_nft_batch_free(b);
	free(steps);
	steps = NULL;
	n = 0;
	want_fini(&x);

	/* a firewall from nothing, with a 100k-prefix list */
	mt_nft_fw_state_fini(&st);
	memset(&st, 0, sizeof(st));
	want_init(&x, false);
	want_rule(&x, 10, "10", 1);
	l = want_list(&x, "big", AF_INET, D1);
	l->n = 100000;
	l->prefixes = prefixes(l->n);
	l->count = 100000;
	CHECK(mt_nft_fw_plan(&st, &x.w, &uid, &steps, &n, err, sizeof(err)) ==
	      0);
	b = mt_nft_batch_new(0);
	for (size_t i = 0; i < n; i++)
		CHECK(mt_nft_fw_step_batch(b, TABLE, &steps[i], &set_id,
					   (long)i) == 0);
	/* table, 2 chains, fw_lists, set, 196 element chunks, its element,
	 * the rule, jump, default */
	CHECK(mt_nft_batch_count(b) == 4 + 1 + 196 + 1 + 1 + 2);
	for (size_t i = 0; i < n; i++) {
		char what[64];

		mt_nft_fw_step_what(&steps[i], what, sizeof(what));
		if (steps[i].type == MT_NFT_FW_ADDELEMS)
			CHECK_STR(what, "list \"big\"");
		if (steps[i].type == MT_NFT_FW_NEWRULE)
			CHECK_STR(what, "rule 10");
	}
	mt_nft_batch_free(b);
	free(steps);
	want_fini(&x);
	mt_nft_fw_state_fini(&st);
}

/* ---- the parsed rules of the previous read, taken over ---- */

/* One namespace's fw_rules as a read would get them: the messages of
 * the parts (handles 100 + 10 * rule + part) and of their anonymous sets
 * ("__set%d", numbered in order), counters packets = ctr + 10 * part +
 * counter, bytes = that * 100. */
struct kdump {
	Mt__Config__FirewallRule *rules[8];
	size_t n;
	char port[8]; /* rules[2]'s first port */
	/* rules[2]'s set as if this port had been written by hand in it
	 * (the rule's own messages unchanged); NULL: as compiled */
	Mt__Config__FirewallRule *hand;
	uint64_t ctr;
};

static char kbuf[65536];

/* The message of nftnl rule r as the kernel sends it, fed to st. */
static void feed_rule(struct mt_nft_fw_state *st, struct nftnl_rule *r)
{
	struct nftnl_rule *back = nftnl_rule_alloc();
	struct nlmsghdr *nlh;

	memset(kbuf, 0, sizeof(kbuf));
	nlh = nftnl_nlmsg_build_hdr(kbuf, NFT_MSG_NEWRULE, NFPROTO_INET, 0, 1);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	CHECK(back && nftnl_rule_nlmsg_parse(nlh, back) == 0);
	CHECK(mt_nft_fw_state_rule_msg(st, back, nlh) == 0);
}

/* libnftnl's element builder numbers the nests; its parser (and the
 * kernel's dumps) use NFTA_LIST_ELEM. */
static void as_kernel_dump(struct nlmsghdr *nlh)
{
	struct nlattr *attr, *elem;

	mnl_attr_for_each (attr, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(attr) != NFTA_SET_ELEM_LIST_ELEMENTS)
			continue;
		mnl_attr_for_each_nested (elem, attr) {
			elem->nla_type =
			    (elem->nla_type & ~NLA_TYPE_MASK) | NFTA_LIST_ELEM;
		}
	}
}

static void feed_set(struct mt_nft_fw_state *st, struct nftnl_set *s,
		     const char *name)
{
	struct nftnl_set *back = nftnl_set_alloc();
	struct nlmsghdr *nlh;

	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	nftnl_set_unset(s, NFTNL_SET_ID);
	memset(kbuf, 0, sizeof(kbuf));
	nlh = nftnl_nlmsg_build_hdr(kbuf, NFT_MSG_NEWSET, NFPROTO_INET, 0, 1);
	nftnl_set_nlmsg_build_payload(nlh, s);
	CHECK(back && nftnl_set_nlmsg_parse(nlh, back) == 0);
	CHECK(mt_nft_fw_state_set_msg(st, back, nlh) == 0);
	memset(kbuf, 0, sizeof(kbuf));
	nlh =
	    nftnl_nlmsg_build_hdr(kbuf, NFT_MSG_NEWSETELEM, NFPROTO_INET, 0, 1);
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	as_kernel_dump(nlh);
	CHECK(mt_nft_fw_state_set_elems_msg(st, name, nlh) == 0);
}

/* Reads kd into st (prev: the previous read, or NULL). */
static void kread(const struct kdump *kd, struct mt_nft_fw_state *st,
		  struct mt_nft_fw_state *prev)
{
	struct mt_nft_fw_compiled comp[8], hand = {0};
	uint32_t set_id = 1;

	memset(st, 0, sizeof(*st));
	st->prev = prev;
	for (size_t i = 0; i < kd->n; i++) {
		uint32_t hand_id = set_id;

		CHECK(mt_nft_fw_rule_compile(TABLE, kd->rules[i], &set_id,
					     &comp[i]) == 0);
		if (i == 2 && kd->hand)
			CHECK(mt_nft_fw_rule_compile(TABLE, kd->hand, &hand_id,
						     &hand) == 0);
		for (size_t k = 0; k < comp[i].n_parts; k++) {
			struct nftnl_rule *r = comp[i].parts[k];
			struct nftnl_expr_iter *it = nftnl_expr_iter_create(r);
			struct nftnl_expr *e;
			uint64_t c = kd->ctr + 10 * k;

			nftnl_rule_set_u64(r, NFTNL_RULE_HANDLE,
					   100 + 10 * i + k);
			while ((e = nftnl_expr_iter_next(it))) {
				const char *name =
				    nftnl_expr_get_str(e, NFTNL_EXPR_NAME);

				if (!strcmp(name, "counter")) {
					nftnl_expr_set_u64(
					    e, NFTNL_EXPR_CTR_PACKETS, c);
					nftnl_expr_set_u64(
					    e, NFTNL_EXPR_CTR_BYTES, c * 100);
					c++;
				}
			}
			nftnl_expr_iter_destroy(it);
		}
	}
	/* the kernel's names of the anonymous sets, in the lookups */
	for (size_t i = 0; i < kd->n; i++)
		for (size_t k = 0; k < comp[i].n_parts; k++) {
			struct nftnl_expr_iter *it =
			    nftnl_expr_iter_create(comp[i].parts[k]);
			struct nftnl_expr *e;

			while ((e = nftnl_expr_iter_next(it))) {
				char name[16];

				if (strcmp(
					nftnl_expr_get_str(e, NFTNL_EXPR_NAME),
					"lookup"))
					continue;
				snprintf(name, sizeof(name), "__set%u",
					 nftnl_expr_get_u32(
					     e, NFTNL_EXPR_LOOKUP_SET_ID));
				nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET,
						   name);
				nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS,
						   0);
			}
			nftnl_expr_iter_destroy(it);
			feed_rule(st, comp[i].parts[k]);
		}
	for (size_t i = 0; i < kd->n; i++) {
		struct mt_nft_fw_compiled *sc =
		    i == 2 && kd->hand ? &hand : &comp[i];

		for (size_t k = 0; k < sc->n_sets; k++) {
			char name[16];

			snprintf(name, sizeof(name), "__set%u",
				 nftnl_set_get_u32(sc->sets[k], NFTNL_SET_ID));
			feed_set(st, sc->sets[k], name);
		}
		mt_nft_fw_compiled_fini(&comp[i]);
	}
	if (kd->hand)
		mt_nft_fw_compiled_fini(&hand);
	CHECK(mt_nft_fw_state_finish(st) == 0);
}

/* Canonical rule from a config rule (heap). */
static Mt__Config__FirewallRule *canon(Mt__Config__FirewallRule *r)
{
	Mt__Config__Firewall fw = MT__CONFIG__FIREWALL__INIT;
	Mt__Config__FirewallRule *out = NULL;
	char err[256];

	if (mt_fw_rule_canonical(&fw, r, &out, err, sizeof(err)) < 0)
		fprintf(stderr, "canonical: %s\n", err);
	CHECK(out != NULL);
	return out;
}

static void kdump_init(struct kdump *kd)
{
	Mt__Config__FirewallRule r = MT__CONFIG__FIREWALL_RULE__INIT;
	Mt__Config__RateLimit rl = MT__CONFIG__RATE_LIMIT__INIT;
	char *ports[] = {"22"}, *two[] = {kd->port, "443"};

	memset(kd, 0, sizeof(*kd));
	snprintf(kd->port, sizeof(kd->port), "80");
	kd->ctr = 1000;
	/* one part */
	r.id = 10, r.action = "allow", r.protocol = "tcp";
	r.dst_ports = ports, r.n_dst_ports = 1;
	kd->rules[kd->n++] = canon(&r);
	/* rate limit of fragments, both families: 4 parts (limit + pass
	 * per family) */
	r = (Mt__Config__FirewallRule)MT__CONFIG__FIREWALL_RULE__INIT;
	r.id = 20, r.action = "rate_limit", r.protocol = "udp";
	rl.packets_per_second = 100;
	r.rate_limit = &rl;
	r.fragment = true;
	kd->rules[kd->n++] = canon(&r);
	/* two ports: an anonymous set */
	r = (Mt__Config__FirewallRule)MT__CONFIG__FIREWALL_RULE__INIT;
	r.id = 30, r.action = "block", r.protocol = "tcp";
	r.dst_ports = two, r.n_dst_ports = 2;
	kd->rules[kd->n++] = canon(&r);
	/* monitor rate limit */
	r = (Mt__Config__FirewallRule)MT__CONFIG__FIREWALL_RULE__INIT;
	r.id = 40, r.action = "rate_limit", r.protocol = "icmp";
	r.monitor = true;
	r.rate_limit = &rl;
	kd->rules[kd->n++] = canon(&r);
}

static void kdump_fini(struct kdump *kd)
{
	for (size_t i = 0; i < kd->n; i++)
		rule_free(kd->rules[i]);
}

static void test_reuse(void)
{
	struct mt_nft_fw_state a, b, fresh, c;
	Mt__Config__FirewallRule *parsed[8];
	struct kdump kd;

	kdump_init(&kd);
	kread(&kd, &a, NULL);
	CHECK(a.n_groups == kd.n);
	for (size_t i = 0; i < a.n_groups; i++) {
		CHECK(a.groups[i].rule && a.groups[i].key);
		if (a.groups[i].rule)
			CHECK(mt_fw_rule_equal(a.groups[i].rule, kd.rules[i]));
		parsed[i] = a.groups[i].rule;
	}

	/* counters moved, nothing else: every rule taken over, the
	 * counters as a parse reads them */
	kd.ctr = 5000;
	kread(&kd, &b, &a);
	kread(&kd, &fresh, NULL);
	CHECK(b.n_groups == kd.n && fresh.n_groups == kd.n);
	for (size_t i = 0; i < b.n_groups && i < fresh.n_groups; i++) {
		const struct mt_nft_fw_group *g = &b.groups[i];
		const struct mt_nft_fw_group *f = &fresh.groups[i];

		CHECK(g->rule == parsed[i] && !a.groups[i].rule);
		CHECK(f->rule != parsed[i]);
		CHECK(g->packets == f->packets && g->bytes == f->bytes &&
		      g->limited == f->limited);
		CHECK(g->packets != 0 && g->packets != a.groups[i].packets);
	}
	CHECK(b.groups[1].limited != 0);
	mt_nft_fw_state_fini(&a);

	/* rule 30's anonymous set holds another port under the same name,
	 * the rule's own messages are the same (a hand edit that kept the
	 * comment and its digest): parsed again, damaged; the others are
	 * taken over */
	{
		Mt__Config__FirewallRule r = MT__CONFIG__FIREWALL_RULE__INIT;
		char *two[] = {"8080", "443"};

		r.id = 30, r.action = "block", r.protocol = "tcp";
		r.dst_ports = two, r.n_dst_ports = 2;
		kd.hand = canon(&r);
	}
	kread(&kd, &c, &b);
	CHECK(c.n_groups == kd.n);
	CHECK(c.groups[0].rule == parsed[0] && c.groups[1].rule == parsed[1]);
	CHECK(c.groups[3].rule == parsed[3]);
	CHECK(c.groups[2].rule == NULL && c.groups[2].id == 30);
	mt_nft_fw_state_fini(&b);
	mt_nft_fw_state_fini(&c);
	mt_nft_fw_state_fini(&fresh);
	rule_free(kd.hand);
	kdump_fini(&kd);
}

int main(void)
{
	char err[256];

	if (mt_metal_init(&metal, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "metal: %s\n", err);
		return 1;
	}
	RUN(test_noop);
	RUN(test_one_changed);
	RUN(test_insert);
	RUN(test_reorder);
	RUN(test_drift);
	RUN(test_base);
	RUN(test_empty_and_rebuild);
	RUN(test_lists);
	RUN(test_delete);
	RUN(test_observed);
	RUN(test_prepare);
	RUN(test_batch);
	RUN(test_reuse);
	mt_metal_fini(&metal);
	TEST_MAIN_END();
}
