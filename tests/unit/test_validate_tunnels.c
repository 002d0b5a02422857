/* Validation of tunnels and tunnel routes: every rejection names the
 * customer, the field and the value. */
#include "mt_test.h"
#include "mt_cleanup.h"
#include "mt_validate.h"
#include "mt_tunnel_health.h"

#include <arpa/inet.h>

#include <errno.h>
#include <stdlib.h>

static struct mt_metal metal;

struct tun {
	const char *name, *edge, *router, *inner;
	int key; /* -1 = none */
	uint32_t mtu, mss, ttl;
	const char *driver;
};

struct rt {
	const char *prefix, *tunnel;
	uint32_t priority, weight;
};

/* Builds customer 7 "acme" with endpoints 192.0.2.1 and 192.0.2.2,
 * prefixes 203.0.113.0/24 and 198.51.100.0/24. */
static Mt__Config__Customer *acme(const struct tun *t, size_t nt,
				  const struct rt *r, size_t nr)
{
	static char *prefixes[] = { "203.0.113.0/24", "198.51.100.0/24" };
	static char *endpoints[] = { "192.0.2.1", "192.0.2.2" };
	Mt__Config__Customer *c = calloc(1, sizeof(*c));

	mt__config__customer__init(c);
	c->id = 7;
	c->name = "acme";
	c->prefixes = prefixes;
	c->n_prefixes = 2;
	c->tunnel_endpoints = endpoints;
	c->n_tunnel_endpoints = 2;
	c->tunnels = calloc(nt + 1, sizeof(*c->tunnels));
	for (size_t i = 0; i < nt; i++) {
		Mt__Config__Tunnel *x = calloc(1, sizeof(*x));

		mt__config__tunnel__init(x);
		x->name = (char *)t[i].name;
		x->edge_endpoint = (char *)t[i].edge;
		x->router_endpoint = (char *)t[i].router;
		x->inner_address = (char *)t[i].inner;
		if (t[i].key >= 0) {
			x->key_present_case = MT__CONFIG__TUNNEL__KEY_PRESENT_KEY;
			x->key = (uint32_t)t[i].key;
		}
		x->mtu = t[i].mtu;
		x->mss = t[i].mss;
		x->ttl = t[i].ttl;
		x->driver = (char *)(t[i].driver ? t[i].driver : "");
		c->tunnels[c->n_tunnels++] = x;
	}
	c->routes = calloc(nr + 1, sizeof(*c->routes));
	for (size_t i = 0; i < nr; i++) {
		Mt__Config__TunnelRoute *x = calloc(1, sizeof(*x));

		mt__config__tunnel_route__init(x);
		x->prefix = (char *)r[i].prefix;
		x->tunnel = (char *)r[i].tunnel;
		x->priority = r[i].priority;
		x->weight = r[i].weight;
		c->routes[c->n_routes++] = x;
	}
	return c;
}

static void acme_free(Mt__Config__Customer *c)
{
	for (size_t i = 0; i < c->n_tunnels; i++)
		free(c->tunnels[i]);
	for (size_t i = 0; i < c->n_routes; i++)
		free(c->routes[i]);
	free(c->tunnels);
	free(c->routes);
	free(c);
}

#define GOOD1 { "gre1", "192.0.2.1", "198.18.21.2", "100.127.0.0/31", -1, 0, 0, 0, NULL }
#define GOOD2 { "gre2", "192.0.2.2", "198.18.22.2", "100.127.0.2/31", 42, 0, 0, 0, "bpf" }

static void expect(const struct tun *t, size_t nt, const struct rt *r,
		   size_t nr, const char *want)
{
	Mt__Config__Customer *c = acme(t, nt, r, nr);
	char err[MT_VALIDATE_ERR_MAX];
	int rc;

	err[0] = '\0';
	rc = mt_validate_customer(&metal, c, err, sizeof(err));
	if (!want) {
		if (rc != 0)
			fprintf(stderr, "  unexpected: %s\n", err);
		CHECK(rc == 0);
	} else {
		CHECK(rc == -EINVAL);
		CHECK_CONTAINS(err, "customer 7 \"acme\": ");
		CHECK_CONTAINS(err, want);
	}
	acme_free(c);
}

static void test_good(void)
{
	struct tun t[] = { GOOD1, GOOD2 };
	struct rt r[] = {
		{ "203.0.113.0/24", "gre1", 100, 1 },
		{ "203.0.113.0/24", "gre2", 100, 3 },
		{ "198.51.100.0/25", "gre2", 10, 256 },
	};

	expect(t, 2, r, 3, NULL);
}

static void test_bad_tunnels(void)
{
	static const struct {
		struct tun t;
		const char *want;
	} cases[] = {
		{ { "gre-tunnel-long", "192.0.2.1", "198.18.21.2", "100.127.0.0/31", -1, 0, 0, 0, NULL },
		  "tunnels[1].name \"gre-tunnel-long\": too long for an interface name" },
		{ { "Gre", "192.0.2.1", "198.18.21.2", "100.127.0.0/31", -1, 0, 0, 0, NULL },
		  "tunnels[1].name \"Gre\": must match" },
		{ { "metal0", "192.0.2.1", "198.18.21.2", "100.127.0.0/31", -1, 0, 0, 0, NULL },
		  "reserved for the namespace's own devices" },
		{ { "gre1", "192.0.2.1", "198.18.21.2", "100.127.0.4/31", -1, 0, 0, 0, NULL },
		  "tunnels[1].name \"gre1\": already used by tunnels[0]" },
		{ { "gre9", "192.0.2.9", "198.18.21.2", "100.127.0.4/31", -1, 0, 0, 0, NULL },
		  "edge_endpoint \"192.0.2.9\" is not one of the customer's tunnel_endpoints" },
		{ { "gre9", "192.0.2.1", "203.0.113.7", "100.127.0.4/31", -1, 0, 0, 0, NULL },
		  "router_endpoint \"203.0.113.7\" is inside the customer's own prefix 203.0.113.0/24" },
		{ { "gre9", "192.0.2.1", "127.0.0.1", "100.127.0.4/31", -1, 0, 0, 0, NULL },
		  "router_endpoint \"127.0.0.1\": loopback" },
		{ { "gre9", "192.0.2.1", "x", "100.127.0.4/31", -1, 0, 0, 0, NULL },
		  "router_endpoint \"x\": must be an IPv4 host address" },
		{ { "gre9", "192.0.2.1", "198.18.21.3", "100.127.0.1/31", -1, 0, 0, 0, NULL },
		  "inner_address \"100.127.0.1/31\" overlaps tunnels[0] \"gre1\" inner_address \"100.127.0.0/31\"" },
		{ { "gre9", "192.0.2.1", "198.18.21.3", "100.127.0.0/30", -1, 0, 0, 0, NULL },
		  "inner_address \"100.127.0.0/30\": must be an IPv4 host address with /31 or /30" },
		{ { "gre9", "192.0.2.1", "198.18.21.3", "100.127.0.4/29", -1, 0, 0, 0, NULL },
		  "with /31 or /30" },
		{ { "gre9", "192.0.2.1", "198.18.21.3", "169.254.9.0/31", -1, 0, 0, 0, NULL },
		  "overlaps the metal's link pool" },
		{ { "gre9", "192.0.2.1", "198.18.21.3", "100.127.0.4/31", -1, 575, 0, 0, NULL },
		  "mtu 575: must be 576-1476" },
		{ { "gre9", "192.0.2.1", "198.18.21.3", "100.127.0.4/31", -1, 1477, 0, 0, NULL },
		  "mtu 1477: must be 576-1476 (the uplink carries 1500 bytes, GRE adds 24)" },
		{ { "gre9", "192.0.2.1", "198.18.21.3", "100.127.0.4/31", 7, 1476, 0, 0, NULL },
		  "mtu 1476: must be 576-1472 (the uplink carries 1500 bytes, GRE adds 28)" },
		{ { "gre9", "192.0.2.1", "198.18.21.3", "100.127.0.4/31", 7, 0, 1436, 0, NULL },
		  "mss 1436: must be 536-1432" },
		{ { "gre9", "192.0.2.1", "198.18.21.3", "100.127.0.4/31", -1, 1000, 1436, 0, NULL },
		  "mss 1436: must be 536-960" },
		{ { "gre9", "192.0.2.1", "198.18.21.3", "100.127.0.4/31", -1, 0, 0, 256, NULL },
		  "ttl 256: must be 1-255" },
		{ { "gre9", "192.0.2.1", "198.18.21.3", "100.127.0.4/31", -1, 0, 0, 0, "ipip" },
		  "driver \"ipip\": must be auto, bpf or kernel" },
	};

	for (size_t i = 0; i < MT_ARRAY_SIZE(cases); i++) {
		struct tun t[] = { GOOD1, cases[i].t };

		expect(t, 2, NULL, 0, cases[i].want);
	}
}

static void test_bad_routes(void)
{
	static const struct {
		struct rt r;
		const char *want;
	} cases[] = {
		{ { "203.0.113.0/24", "gre7", 1, 1 },
		  "routes[0] \"203.0.113.0/24\": tunnel \"gre7\" is not one of the customer's tunnels" },
		{ { "203.0.113.0/24", "gre1", 1, 0 },
		  "routes[0] \"203.0.113.0/24\" via gre1: weight 0: must be 1-256" },
		{ { "203.0.113.0/24", "gre1", 1, 257 },
		  "weight 257: must be 1-256" },
		{ { "192.0.2.128/25", "gre1", 1, 1 },
		  "routes[0].prefix \"192.0.2.128/25\": not inside any of the customer's prefixes" },
		{ { "203.0.113.1/24", "gre1", 1, 1 },
		  "routes[0].prefix: malformed prefix \"203.0.113.1/24\": host bits set" },
		{ { "203.0.113.0/24", "gre1", 2000000000, 1 },
		  "priority 2000000000: must be at most 1000000000" },
	};

	for (size_t i = 0; i < MT_ARRAY_SIZE(cases); i++) {
		struct tun t[] = { GOOD1 };

		expect(t, 1, &cases[i].r, 1, cases[i].want);
	}
	struct tun t[] = { GOOD1 };
	struct rt dup[] = { { "203.0.113.0/24", "gre1", 1, 1 },
			    { "203.0.113.0/24", "gre1", 5, 1 } };
	expect(t, 1, dup, 2, "routes[1] \"203.0.113.0/24\" via gre1: the same as routes[0]");
}

static void test_helpers(void)
{
	struct tun t[] = { GOOD1, { "g3", "192.0.2.1", "198.18.21.2", "100.127.0.6/30", -1, 0, 0, 0, NULL } };
	Mt__Config__Customer *c = acme(t, 2, NULL, 0);
	struct mt_prefix local, peer;
	char buf[MT_PREFIX_STRLEN];

	CHECK(mt_tunnel_mtu(c->tunnels[0]) == 1476);
	CHECK(mt_tunnel_mss(c->tunnels[0]) == 1436);
	CHECK(mt_tunnel_ttl(c->tunnels[0]) == 64);
	CHECK(!mt_tunnel_has_key(c->tunnels[0]));
	CHECK(mt_tunnel_inner(c->tunnels[0], &local, &peer) == 0);
	CHECK_STR(mt_prefix_format(&peer, buf, sizeof(buf)), "100.127.0.1/31");
	CHECK(mt_tunnel_inner(c->tunnels[1], &local, &peer) == 0);
	CHECK_STR(mt_prefix_format(&peer, buf, sizeof(buf)), "100.127.0.5/30");
	CHECK(mt_tunnel_find(c, "g3") == c->tunnels[1]);
	CHECK(mt_tunnel_find(c, "nope") == NULL);
	acme_free(c);
}

/* A customer with GOOD1 whose health check is hc. */
static void expect_hc(const Mt__Config__HealthCheck *hc, const char *want)
{
	struct tun t[] = { GOOD1 };
	Mt__Config__Customer *c = acme(t, 1, NULL, 0);
	char err[MT_VALIDATE_ERR_MAX];
	int rc;

	c->tunnels[0]->health_check = (Mt__Config__HealthCheck *)hc;
	err[0] = '\0';
	rc = mt_validate_customer(&metal, c, err, sizeof(err));
	if (!want) {
		if (rc != 0)
			fprintf(stderr, "  unexpected: %s\n", err);
		CHECK(rc == 0);
	} else {
		CHECK(rc == -EINVAL);
		CHECK_CONTAINS(err, "customer 7 \"acme\": tunnels[0] \"gre1\": ");
		CHECK_CONTAINS(err, want);
	}
	acme_free(c);
}

static void test_health_check(void)
{
	Mt__Config__HealthCheck hc = MT__CONFIG__HEALTH_CHECK__INIT;

	expect_hc(NULL, NULL);
	expect_hc(&hc, NULL);
	hc.type = "request";
	hc.direction = "bidirectional";
	hc.rate = "high";
	hc.target = "198.18.21.2";
	expect_hc(&hc, NULL);
	hc = (Mt__Config__HealthCheck)MT__CONFIG__HEALTH_CHECK__INIT;
	hc.type = "tcp";
	expect_hc(&hc, "health_check.type \"tcp\": must be reply or request");
	hc.type = "";
	hc.direction = "both";
	expect_hc(&hc, "health_check.direction \"both\": must be unidirectional or bidirectional");
	hc.direction = "";
	hc.target = "100.127.0.9";
	expect_hc(&hc, "health_check.target \"100.127.0.9\": outside the tunnel's addresses (must be the router's inner address 100.127.0.1 or router_endpoint 198.18.21.2)");
	hc.target = "100.127.0.0"; /* our own side is not a target */
	expect_hc(&hc, "health_check.target \"100.127.0.0\": outside");
	hc.target = "nope";
	expect_hc(&hc, "health_check.target \"nope\": must be an IPv4 address");
	hc.target = "";
	hc.rate = "fast";
	expect_hc(&hc, "health_check.rate \"fast\": must be low, mid or high");
	hc.rate = "";
	hc.interval_ms = 5;
	expect_hc(&hc, "health_check.interval_ms 5: out of range 10-60000");
	hc.interval_ms = 60001;
	expect_hc(&hc, "health_check.interval_ms 60001: out of range 10-60000");
	hc.interval_ms = 0;
	hc.timeout_ms = 20000;
	expect_hc(&hc, "health_check.timeout_ms 20000: out of range 10-10000");
	hc.timeout_ms = 0;
	hc.reprobes = 9;
	expect_hc(&hc, "health_check.reprobes 9: out of range 1-8");
	hc.reprobes = 0;
	hc.down_min_probes = 65;
	expect_hc(&hc, "health_check.down_min_probes 65: out of range 1-64");
	hc.down_min_probes = 0;
	hc.degraded_penalty = 2000000;
	expect_hc(&hc, "down_penalty 1000000 is below degraded_penalty 2000000");
}

static void test_health_params(void)
{
	struct tun t[] = { GOOD1, GOOD2 };
	Mt__Config__Customer *c = acme(t, 2, NULL, 0);
	Mt__Config__HealthCheck hc = MT__CONFIG__HEALTH_CHECK__INIT;
	struct mt_health_params p;
	struct mt_tunnel_probe pr;
	char err[256], a[INET_ADDRSTRLEN];

#define IP(x) inet_ntop(AF_INET, &(x), a, sizeof(a))
	/* defaults: reply-style, unidirectional, mid rate */
	CHECK(mt_tunnel_health_params(c->tunnels[0], &p, err, sizeof(err)) == 0);
	CHECK(p.rate == MT_HEALTH_RATE_MID && p.interval_ms[1] == 200);
	CHECK(p.timeout_ms == 300 && p.reprobe_count == 2);
	CHECK(p.degraded_penalty == 500000 && p.down_penalty == 1000000);
	CHECK(mt_tunnel_probe_config(c->tunnels[0], &pr, err, sizeof(err)) == 0);
	CHECK(pr.enabled && !pr.request && !pr.bidirectional && !pr.has_key);
	CHECK_STR(IP(pr.outer_src), "192.0.2.1");
	CHECK_STR(IP(pr.outer_dst), "198.18.21.2");
	CHECK(pr.outer_ttl == 64);
	/* the router's inner address -> the edge endpoint, outside the tunnel */
	CHECK_STR(IP(pr.inner_src), "100.127.0.1");
	CHECK_STR(IP(pr.inner_dst), "192.0.2.1");

	/* request-style, bidirectional, keyed: edge inner -> target */
	hc.type = "request";
	hc.direction = "bidirectional";
	hc.rate = "low";
	hc.interval_ms = 700;
	hc.no_reprobe = true;
	hc.degraded_window_s = 60;
	c->tunnels[1]->health_check = &hc;
	CHECK(mt_tunnel_health_params(c->tunnels[1], &p, err, sizeof(err)) == 0);
	CHECK(p.rate == MT_HEALTH_RATE_LOW && p.interval_ms[0] == 700);
	CHECK(p.reprobe_count == 0 && p.degraded_window_ms == 60000);
	CHECK(mt_tunnel_probe_config(c->tunnels[1], &pr, err, sizeof(err)) == 0);
	CHECK(pr.request && pr.bidirectional && pr.has_key && pr.key == 42);
	CHECK_STR(IP(pr.inner_src), "100.127.0.2");
	CHECK_STR(IP(pr.inner_dst), "100.127.0.3");
	hc.disabled = true;
	CHECK(mt_tunnel_probe_config(c->tunnels[1], &pr, err, sizeof(err)) == 0);
	CHECK(!pr.enabled);
	c->tunnels[1]->health_check = NULL;
#undef IP
	acme_free(c);
}

int main(void)
{
	char err[256];

	if (mt_metal_init(&metal, NULL, err, sizeof(err)) < 0)
		return 1;
	RUN(test_good);
	RUN(test_bad_tunnels);
	RUN(test_bad_routes);
	RUN(test_helpers);
	RUN(test_health_check);
	RUN(test_health_params);
	mt_metal_fini(&metal);
	TEST_MAIN_END();
}
