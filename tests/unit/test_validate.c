/* Customer validation: every rule, one table row each, with the operator's
 * message checked. */
#include "mt_cleanup.h"
#include "mt_metal.h"
#include "mt_test.h"
#include "mt_validate.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define MAXF 8
#define L(...) { __VA_ARGS__ }

/* A customer built from string lists (NULL-terminated in the arrays). */
struct tc {
	Mt__Config__Customer c;
	char *pfx[MAXF];
	char *eps[MAXF];
	Mt__Config__Tunnel tun, *tuns[1];
	Mt__Config__TunnelRoute route, *routes[1];
};

static void tc_init(struct tc *t, uint32_t id, const char *name,
		    const char *const *pfx, const char *const *eps)
{
	mt__config__customer__init(&t->c);
	t->c.id = id;
	t->c.name = (char *)name;
	t->c.prefixes = t->pfx;
	t->c.tunnel_endpoints = t->eps;
	for (size_t i = 0; pfx && i < MAXF && pfx[i]; i++)
		t->pfx[t->c.n_prefixes++] = (char *)pfx[i];
	for (size_t i = 0; eps && i < MAXF && eps[i]; i++)
		t->eps[t->c.n_tunnel_endpoints++] = (char *)eps[i];
}

static void metal(struct mt_metal *m, const char *pool)
{
	static char *own[] = { "198.51.100.0/24", "2001:db8:ffff::/48" };
	Mt__Config__Metal pb = MT__CONFIG__METAL__INIT;
	char err[256];

	pb.own_prefixes = own;
	pb.n_own_prefixes = 2;
	pb.link_pool = (char *)pool;
	if (mt_metal_init(m, &pb, err, sizeof(err)) < 0) {
		fprintf(stderr, "metal: %s\n", err);
		abort();
	}
}

struct vcase {
	uint32_t id;
	const char *name;
	const char *pfx[MAXF];
	const char *eps[MAXF];
	int tunnels, routes;
	const char *want; /* NULL = accepted */
};

static const struct vcase single[] = {
	/* accepted */
	{ 7, "acme", L("203.0.113.0/24"), L(0), 0, 0, NULL },
	{ 8, "v6co", L("2001:db8:1::/48", "203.0.113.0/25"),
	  L("192.0.2.10", "2001:db8:2::1"), 0, 0, NULL },
	{ 9, "self", L("192.0.2.0/24"), L("192.0.2.1"), 0, 0, NULL },
	{ 1, "abcdefghijk", L("8.0.0.0/8"), L(0), 0, 0, NULL },
	{ 32767, "1a-b-2", L("2001:db8:1::/48"), L(0), 0, 0, NULL },
	{ 3, "sixteen", L("2a00::/16"), L(0), 0, 0, NULL },
	/* id */
	{ 0, "acme", L("203.0.113.0/24"), L(0), 0, 0,
	  "customer 0 \"acme\": id 0: must be 1-32767" },
	{ 32768, "acme", L("203.0.113.0/24"), L(0), 0, 0,
	  "customer 32768 \"acme\": id 32768: must be 1-32767" },
	/* name */
	{ 7, "", L("203.0.113.0/24"), L(0), 0, 0,
	  "customer 7 \"\": name \"\": must match [a-z0-9][a-z0-9-]*" },
	{ 7, "Acme", L("203.0.113.0/24"), L(0), 0, 0,
	  "name \"Acme\": must match [a-z0-9][a-z0-9-]*" },
	{ 7, "-acme", L("203.0.113.0/24"), L(0), 0, 0,
	  "name \"-acme\": must match" },
	{ 7, "ac_me", L("203.0.113.0/24"), L(0), 0, 0,
	  "name \"ac_me\": must match" },
	{ 7, "abcdefghijkl", L("203.0.113.0/24"), L(0), 0, 0,
	  "customer 7 \"abcdefghijkl\": name \"abcdefghijkl\": does not fit an interface name: at most 11 characters with instance prefix mt0-" },
	/* prefixes */
	{ 7, "acme", L(0), L(0), 0, 0,
	  "customer 7 \"acme\": prefixes: at least one prefix is required" },
	{ 7, "acme", L("203.0.113.1/24"), L(0), 0, 0,
	  "customer 7 \"acme\": prefixes[0]: malformed prefix \"203.0.113.1/24\": host bits set (did you mean 203.0.113.0/24?)" },
	{ 7, "acme", L("203.0.113.0/24", "acme"), L(0), 0, 0,
	  "prefixes[1]: malformed prefix \"acme\"" },
	{ 7, "acme", L("203.0.113.0/33"), L(0), 0, 0,
	  "prefixes[0]: malformed prefix \"203.0.113.0/33\": length must be 0-32" },
	{ 7, "acme", L("8.0.0.0/7"), L(0), 0, 0,
	  "prefixes[0] \"8.0.0.0/7\": IPv4 prefixes must be /8 or longer" },
	{ 7, "acme", L("0.0.0.0/0"), L(0), 0, 0,
	  "prefixes[0] \"0.0.0.0/0\": IPv4 prefixes must be /8 or longer" },
	{ 7, "acme", L("2000::/15"), L(0), 0, 0,
	  "prefixes[0] \"2000::/15\": IPv6 prefixes must be /16 or longer" },
	{ 7, "acme", L("203.0.113.0/24", "10.0.0.0/8"), L(0), 0, 0,
	  "customer 7 \"acme\": prefixes[1] \"10.0.0.0/8\": private 10.0.0.0/8 is reserved" },
	{ 7, "acme", L("10.1.0.0/16"), L(0), 0, 0,
	  "prefixes[0] \"10.1.0.0/16\": private 10.0.0.0/8 is reserved" },
	{ 7, "acme", L("224.1.0.0/16"), L(0), 0, 0,
	  "prefixes[0] \"224.1.0.0/16\": multicast 224.0.0.0/4 is reserved" },
	{ 7, "acme", L("127.0.0.0/8"), L(0), 0, 0,
	  "loopback 127.0.0.0/8 is reserved" },
	{ 7, "acme", L("fe80::/64"), L(0), 0, 0,
	  "prefixes[0] \"fe80::/64\": link local fe80::/10 is reserved" },
	{ 7, "acme", L("fd00::/48"), L(0), 0, 0,
	  "unique local fc00::/7 is reserved" },
	{ 7, "acme", L("198.51.100.0/25"), L(0), 0, 0,
	  "prefixes[0] \"198.51.100.0/25\": overlaps the metal's own prefix 198.51.100.0/24" },
	{ 7, "acme", L("198.51.0.0/16"), L(0), 0, 0,
	  "prefixes[0] \"198.51.0.0/16\": overlaps the metal's own prefix 198.51.100.0/24" },
	{ 7, "acme", L("2001:db8:ffff:1::/64"), L(0), 0, 0,
	  "prefixes[0] \"2001:db8:ffff:1::/64\": overlaps the metal's own prefix 2001:db8:ffff::/48" },
	{ 7, "acme", L("203.0.113.0/24", "192.0.2.0/24", "203.0.113.0/24"),
	  L(0), 0, 0,
	  "customer 7 \"acme\": prefixes[2] \"203.0.113.0/24\": duplicates prefixes[0]" },
	{ 7, "acme", L("203.0.113.0/24", "203.0.113.128/25"), L(0), 0, 0,
	  "prefixes[1] \"203.0.113.128/25\": overlaps prefixes[0] \"203.0.113.0/24\"" },
	{ 7, "acme", L("203.0.113.128/25", "192.0.2.0/24", "203.0.113.0/24"),
	  L(0), 0, 0,
	  "prefixes[2] \"203.0.113.0/24\": overlaps prefixes[0] \"203.0.113.128/25\"" },
	{ 7, "acme", L("2001:db8:1::/48", "2001:db8:1:2::/64"), L(0), 0, 0,
	  "prefixes[1] \"2001:db8:1:2::/64\": overlaps prefixes[0] \"2001:db8:1::/48\"" },
	/* tunnel endpoints */
	{ 7, "acme", L("203.0.113.0/24"), L("192.0.2.10/32"), 0, 0,
	  "customer 7 \"acme\": tunnel_endpoints[0]: malformed address \"192.0.2.10/32\"" },
	{ 7, "acme", L("203.0.113.0/24"), L("192.0.2.10", "gre.example"), 0, 0,
	  "tunnel_endpoints[1]: malformed address \"gre.example\"" },
	{ 7, "acme", L("203.0.113.0/24"), L("127.0.0.1"), 0, 0,
	  "tunnel_endpoints[0] \"127.0.0.1\": loopback 127.0.0.0/8 is reserved" },
	{ 7, "acme", L("203.0.113.0/24"), L("169.254.0.9"), 0, 0,
	  "tunnel_endpoints[0] \"169.254.0.9\": link local 169.254.0.0/16 is reserved" },
	{ 7, "acme", L("203.0.113.0/24"), L("198.51.100.5"), 0, 0,
	  "tunnel_endpoints[0] \"198.51.100.5\": inside the metal's own prefix 198.51.100.0/24" },
	{ 7, "acme", L("203.0.113.0/24"), L("2001:db8:ffff::1"), 0, 0,
	  "tunnel_endpoints[0] \"2001:db8:ffff::1\": inside the metal's own prefix 2001:db8:ffff::/48" },
	{ 7, "acme", L("203.0.113.0/24"),
	  L("192.0.2.10", "192.0.2.11", "192.0.2.10"), 0, 0,
	  "customer 7 \"acme\": tunnel_endpoints[2] \"192.0.2.10\": duplicates tunnel_endpoints[0]" },
	/* empty tunnels and routes (test_validate_tunnels.c has the rest) */
	{ 7, "acme", L("203.0.113.0/24"), L(0), 1, 0,
	  "customer 7 \"acme\": tunnels[0].name \"\": must match" },
	{ 7, "acme", L("203.0.113.0/24"), L(0), 0, 1,
	  "customer 7 \"acme\": routes[0].prefix: empty prefix" },
};

static void run_case(const struct mt_metal *m, const struct vcase *vc,
		     size_t i)
{
	struct tc t;
	char err[MT_VALIDATE_ERR_MAX] = "";
	int r;

	tc_init(&t, vc->id, vc->name, vc->pfx, vc->eps);
	if (vc->tunnels) {
		mt__config__tunnel__init(&t.tun);
		t.tuns[0] = &t.tun;
		t.c.tunnels = t.tuns;
		t.c.n_tunnels = 1;
	}
	if (vc->routes) {
		mt__config__tunnel_route__init(&t.route);
		t.routes[0] = &t.route;
		t.c.routes = t.routes;
		t.c.n_routes = 1;
	}
	r = mt_validate_customer(m, &t.c, err, sizeof(err));
	if (!vc->want) {
		if (r != 0)
			fprintf(stderr, "case %zu: unexpected: %s\n", i, err);
		CHECK(r == 0);
		/* valid alone means valid against nobody */
		CHECK(mt_validate_customer_set(m, &t.c, NULL, 0, err,
					       sizeof(err)) == 0);
		return;
	}
	if (r != -EINVAL)
		fprintf(stderr, "case %zu: accepted, wanted \"%s\"\n", i,
			vc->want);
	CHECK(r == -EINVAL);
	CHECK_CONTAINS(err, vc->want);
	/* the message always starts by naming the customer */
	char head[64];
	snprintf(head, sizeof(head), "customer %u \"%s\": ", vc->id,
		 vc->name);
	CHECK(strncmp(err, head, strlen(head)) == 0);
	CHECK(mt_validate_customer_set(m, &t.c, NULL, 0, err, sizeof(err)) ==
	      -EINVAL);
	CHECK_CONTAINS(err, vc->want);
}

static void test_single(void)
{
	struct mt_metal m;

	metal(&m, NULL);
	for (size_t i = 0; i < MT_ARRAY_SIZE(single); i++)
		run_case(&m, &single[i], i);
	mt_metal_fini(&m);
}

/* A small link pool limits ids; a pool outside reserved space is the
 * metal's own. */
static void test_link_pool(void)
{
	static const struct vcase cases[] = {
		{ 127, "acme", L("203.0.113.0/24"), L(0), 0, 0, NULL },
		{ 128, "acme", L("203.0.113.0/24"), L(0), 0, 0,
		  "id 128: must be 1-127 (the link pool holds 127 customers)" },
		{ 7, "acme", L("192.0.2.128/25"), L(0), 0, 0,
		  "prefixes[0] \"192.0.2.128/25\": overlaps the metal's link pool 192.0.2.0/24" },
		{ 7, "acme", L("203.0.113.0/24"), L("192.0.2.77"), 0, 0,
		  "tunnel_endpoints[0] \"192.0.2.77\": inside the metal's link pool 192.0.2.0/24" },
	};
	struct mt_metal m;

	metal(&m, "192.0.2.0/24");
	for (size_t i = 0; i < MT_ARRAY_SIZE(cases); i++)
		run_case(&m, &cases[i], i);
	mt_metal_fini(&m);
}

static void test_instance_name_max(void)
{
	Mt__Config__Metal pb = MT__CONFIG__METAL__INIT;
	struct mt_metal m;
	struct tc t;
	char err[MT_VALIDATE_ERR_MAX];

	pb.instance = "lab1";
	CHECK(mt_metal_init(&m, &pb, err, sizeof(err)) == 0);
	tc_init(&t, 1, "abcdefghi", (const char *[]){ "203.0.113.0/24", 0 },
		NULL);
	CHECK(mt_validate_customer(&m, &t.c, err, sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "at most 8 characters with instance prefix mtlab1-");
	t.c.name = "abcdefgh";
	CHECK(mt_validate_customer(&m, &t.c, err, sizeof(err)) == 0);
	mt_metal_fini(&m);
}

/* One customer against the others of the metal. */
struct scase {
	uint32_t id;
	const char *name;
	const char *pfx[MAXF];
	const char *eps[MAXF];
	const char *want;
};

static void test_set(void)
{
	static const struct scase cases[] = {
		{ 3, "gamma", L("192.0.2.128/25"), L("192.0.2.200"), NULL },
		/* the new version of customer 1 replaces the old one */
		{ 1, "acme", L("203.0.113.0/25"), L("192.0.2.10"), NULL },
		{ 1, "acme2", L("203.0.113.0/24"), L(0), NULL },
		{ 3, "acme", L("192.0.2.128/25"), L(0),
		  "customer 3 \"acme\": name \"acme\": already used by customer 1" },
		{ 3, "gamma", L("192.0.2.128/25", "203.0.113.128/25"), L(0),
		  "customer 3 \"gamma\": prefixes[1] \"203.0.113.128/25\": overlaps customer 1 \"acme\" prefixes[0] \"203.0.113.0/24\"" },
		{ 3, "gamma", L("203.0.0.0/16"), L(0),
		  "prefixes[0] \"203.0.0.0/16\": overlaps customer 1 \"acme\" prefixes[0] \"203.0.113.0/24\"" },
		{ 3, "gamma", L("2001:db8:1:8000::/49"), L(0),
		  "prefixes[0] \"2001:db8:1:8000::/49\": overlaps customer 2 \"beta\" prefixes[0] \"2001:db8:1::/48\"" },
		{ 3, "gamma", L("192.0.2.128/25"), L("192.0.2.10"),
		  "customer 3 \"gamma\": tunnel_endpoints[0] \"192.0.2.10\": already used by customer 1 \"acme\" tunnel_endpoints[0]" },
		{ 3, "gamma", L("192.0.2.128/25"), L("203.0.113.7"),
		  "customer 3 \"gamma\": tunnel_endpoints[0] \"203.0.113.7\": inside customer 1 \"acme\" prefixes[0] \"203.0.113.0/24\"" },
		{ 3, "gamma", L("192.0.2.128/25"), L("2001:db8:1::5"),
		  "tunnel_endpoints[0] \"2001:db8:1::5\": inside customer 2 \"beta\" prefixes[0] \"2001:db8:1::/48\"" },
		{ 3, "gamma", L("192.0.2.0/28"), L(0),
		  "customer 3 \"gamma\": prefixes[0] \"192.0.2.0/28\": contains customer 1 \"acme\" tunnel_endpoints[0] \"192.0.2.10\"" },
		/* rules on its own come first */
		{ 3, "Gamma", L("203.0.113.0/24"), L(0),
		  "name \"Gamma\": must match" },
	};
	struct mt_metal m;
	struct tc a, b, bad;
	Mt__Config__Customer *others[4] = { &a.c, NULL, &b.c, &bad.c };
	char err[MT_VALIDATE_ERR_MAX];

	metal(&m, NULL);
	tc_init(&a, 1, "acme", (const char *[]){ "203.0.113.0/24", 0 },
		(const char *[]){ "192.0.2.10", 0 });
	tc_init(&b, 2, "beta", (const char *[]){ "2001:db8:1::/48", 0 }, NULL);
	/* an invalid stored customer: its unparsable fields are ignored */
	tc_init(&bad, 4, "bad", (const char *[]){ "junk", "192.0.0.0/22", 0 },
		(const char *[]){ "junk", 0 });
	for (size_t i = 0; i < MT_ARRAY_SIZE(cases); i++) {
		struct tc t;
		int r;

		tc_init(&t, cases[i].id, cases[i].name, cases[i].pfx,
			cases[i].eps);
		r = mt_validate_customer_set(&m, &t.c, others, 3, err,
					     sizeof(err));
		if (!cases[i].want) {
			if (r != 0)
				fprintf(stderr, "set case %zu: %s\n", i, err);
			CHECK(r == 0);
		} else {
			CHECK(r == -EINVAL);
			CHECK_CONTAINS(err, cases[i].want);
		}
	}
	/* with the invalid customer 4 (192.0.2.0/22 parses) */
	{
		struct tc t;

		tc_init(&t, 3, "gamma", (const char *[]){ "192.0.2.128/25", 0 },
			NULL);
		CHECK(mt_validate_customer_set(&m, &t.c, others, 4, err,
					       sizeof(err)) == -EINVAL);
		CHECK_CONTAINS(err, "overlaps customer 4 \"bad\" prefixes[1] \"192.0.0.0/22\"");
	}
	mt_metal_fini(&m);
}

/* Whole snapshots: per-customer verdicts, lower id wins. */
static int check_verdicts(const struct mt_metal *m, struct tc *t, size_t n,
			  const char *const *want)
{
	Mt__Config__Customer *cs[16];
	struct mt_validate_verdict v[16];
	int r, rejected = 0;

	for (size_t i = 0; i < n; i++)
		cs[i] = &t[i].c;
	r = mt_validate_customers(m, cs, n, v);
	for (size_t i = 0; i < n; i++) {
		if (!want[i]) {
			if (!v[i].ok)
				fprintf(stderr, "customer[%zu]: %s\n", i,
					v[i].err);
			CHECK(v[i].ok);
			CHECK_STR(v[i].err, "");
		} else {
			rejected++;
			CHECK(!v[i].ok);
			CHECK_CONTAINS(v[i].err, want[i]);
		}
	}
	CHECK(r == rejected);
	return r;
}

static void test_snapshot(void)
{
	struct mt_metal m;
	struct tc t[8];

	metal(&m, NULL);

	/* 1 and 2 conflict, 2 and 3 conflict: 2 loses, 1 and 3 stay; the
	 * order of the snapshot does not matter. */
	for (int perm = 0; perm < 2; perm++) {
		const char *want[3];
		int a = perm ? 2 : 0, c = perm ? 0 : 2;

		tc_init(&t[a], 3, "c", (const char *[]){ "203.0.113.128/25", 0 },
			NULL);
		tc_init(&t[1], 2, "b",
			(const char *[]){ "192.0.2.0/24", "203.0.113.0/24", 0 },
			NULL);
		tc_init(&t[c], 1, "a", (const char *[]){ "203.0.113.0/26", 0 },
			NULL);
		want[a] = NULL;
		want[c] = NULL;
		want[1] = "customer 2 \"b\": prefixes[1] \"203.0.113.0/24\": overlaps customer 1 \"a\" prefixes[0] \"203.0.113.0/26\"";
		CHECK(check_verdicts(&m, t, 3, want) == 1);
	}

	/* one bad customer never blocks the rest */
	{
		const char *want[] = { "customer 5 \"Bad\": name", NULL,
				       "customer 0 \"zero\": id 0" };

		tc_init(&t[0], 5, "Bad", (const char *[]){ "203.0.113.0/24", 0 },
			NULL);
		tc_init(&t[1], 6, "good",
			(const char *[]){ "203.0.113.0/24", 0 }, NULL);
		tc_init(&t[2], 0, "zero", (const char *[]){ "192.0.2.0/24", 0 },
			NULL);
		check_verdicts(&m, t, 3, want);
	}

	/* duplicate names: the lower id keeps the name */
	{
		const char *want[] = {
			"customer 4 \"dup\": name \"dup\": already used by customer 2",
			NULL, NULL };

		tc_init(&t[0], 4, "dup", (const char *[]){ "203.0.113.0/24", 0 },
			NULL);
		tc_init(&t[1], 2, "dup", (const char *[]){ "192.0.2.0/24", 0 },
			NULL);
		tc_init(&t[2], 3, "other",
			(const char *[]){ "198.51.99.0/24", 0 }, NULL);
		check_verdicts(&m, t, 3, want);
	}

	/* duplicate ids: the first entry is considered */
	{
		const char *want[] = {
			NULL, "customer 3 \"y\": id 3: already used by customer 3 \"x\"" };

		tc_init(&t[0], 3, "x", (const char *[]){ "203.0.113.0/24", 0 },
			NULL);
		tc_init(&t[1], 3, "y", (const char *[]){ "192.0.2.0/24", 0 },
			NULL);
		check_verdicts(&m, t, 2, want);
	}

	/* endpoints: inside another's prefix, containing another's endpoint,
	 * shared */
	{
		const char *want[] = {
			NULL,
			"customer 2 \"b\": tunnel_endpoints[0] \"203.0.113.9\": inside customer 1 \"a\" prefixes[0] \"203.0.113.0/24\"",
		};

		tc_init(&t[0], 1, "a", (const char *[]){ "203.0.113.0/24", 0 },
			NULL);
		tc_init(&t[1], 2, "b", (const char *[]){ "192.0.2.0/24", 0 },
			(const char *[]){ "203.0.113.9", 0 });
		check_verdicts(&m, t, 2, want);
	}
	{
		const char *want[] = {
			"customer 2 \"b\": prefixes[0] \"203.0.113.0/24\": contains customer 1 \"a\" tunnel_endpoints[0] \"203.0.113.9\"",
			NULL,
		};

		tc_init(&t[0], 2, "b", (const char *[]){ "203.0.113.0/24", 0 },
			NULL);
		tc_init(&t[1], 1, "a", (const char *[]){ "192.0.2.0/24", 0 },
			(const char *[]){ "203.0.113.9", 0 });
		check_verdicts(&m, t, 2, want);
	}
	{
		const char *want[] = {
			NULL,
			"customer 9 \"b\": tunnel_endpoints[1] \"198.51.99.1\": already used by customer 8 \"a\" tunnel_endpoints[0]",
		};

		tc_init(&t[0], 8, "a", (const char *[]){ "203.0.113.0/24", 0 },
			(const char *[]){ "198.51.99.1", 0 });
		tc_init(&t[1], 9, "b", (const char *[]){ "192.0.2.0/24", 0 },
			(const char *[]){ "192.0.2.1", "198.51.99.1", 0 });
		check_verdicts(&m, t, 2, want);
	}
	/* an endpoint inside the customer's own prefix is fine */
	{
		const char *want[] = { NULL, NULL };

		tc_init(&t[0], 1, "a", (const char *[]){ "203.0.113.0/24", 0 },
			(const char *[]){ "203.0.113.1", 0 });
		tc_init(&t[1], 2, "b", (const char *[]){ "192.0.2.0/24", 0 },
			(const char *[]){ "192.0.2.1", 0 });
		check_verdicts(&m, t, 2, want);
	}
	/* empty snapshot */
	CHECK(mt_validate_customers(&m, NULL, 0, NULL) == 0);
	mt_metal_fini(&m);
}

/* A whole store of 1000 customers validates quickly, and a nest of equal
 * prefixes claimed by many customers leaves exactly the lowest id. */
static void test_snapshot_scale(void)
{
	enum { N = 1000 };
	static struct tc t[N];
	static char pfx[N][2][32], ep[N][32], names[N][12];
	static Mt__Config__Customer *cs[N];
	static struct mt_validate_verdict v[N];
	struct mt_metal m;
	struct timespec a, b;
	int r;

	metal(&m, NULL);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "c%d", i);
		snprintf(pfx[i][0], sizeof(pfx[i][0]), "203.%d.%d.0/24",
			 i / 256, i % 256);
		snprintf(pfx[i][1], sizeof(pfx[i][1]), "2a00:%x::/32", i + 1);
		snprintf(ep[i], sizeof(ep[i]), "192.0.%d.%d", i / 250 + 2,
			 i % 250 + 1);
		tc_init(&t[i], (uint32_t)(N - i), names[i],
			(const char *[]){ pfx[i][0], pfx[i][1], 0 },
			(const char *[]){ ep[i], 0 });
		cs[i] = &t[i].c;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	r = mt_validate_customers(&m, cs, N, v);
	clock_gettime(CLOCK_MONOTONIC, &b);
	CHECK(r == 0);
	fprintf(stderr, "  validate %d customers: %.2f ms\n", N,
		(double)(b.tv_sec - a.tv_sec) * 1e3 +
			(double)(b.tv_nsec - a.tv_nsec) / 1e6);

	/* everyone claims the same prefix: only id 1 (the last entry) wins */
	for (int i = 0; i < N; i++)
		tc_init(&t[i], (uint32_t)(N - i), names[i],
			(const char *[]){ "203.0.113.0/24", 0 }, NULL);
	clock_gettime(CLOCK_MONOTONIC, &a);
	r = mt_validate_customers(&m, cs, N, v);
	clock_gettime(CLOCK_MONOTONIC, &b);
	fprintf(stderr, "  validate %d customers claiming one prefix: %.2f ms\n",
		N, (double)(b.tv_sec - a.tv_sec) * 1e3 +
			   (double)(b.tv_nsec - a.tv_nsec) / 1e6);
	CHECK(r == N - 1);
	CHECK(v[N - 1].ok);
	CHECK(!v[0].ok);
	CHECK_CONTAINS(v[0].err, "overlaps customer 1 \"c999\"");
	mt_metal_fini(&m);
}

int main(void)
{
	RUN(test_single);
	RUN(test_link_pool);
	RUN(test_instance_name_max);
	RUN(test_set);
	RUN(test_snapshot);
	RUN(test_snapshot_scale);
	TEST_MAIN_END();
}
