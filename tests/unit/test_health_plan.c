/* The fast loop's planning: a health change moves only the tunnel's
 * routes, make before break; a restarted agent reads the penalties back
 * from the kernel's routes. */
#include "desired.h"
#include "diff.h"
#include "health_plan.h"
#include "mt_kstate.h"
#include "mt_metal.h"
#include "mt_test.h"

#include <stdlib.h>

static struct mt_metal metal;

/* Penalties by tunnel name: gre1, gre2. */
struct pen {
	uint32_t gre1, gre2;
};

static uint32_t pen_fn(void *ctx, const char *customer, const char *tunnel)
{
	const struct pen *p = ctx;

	(void)customer;
	return !strcmp(tunnel, "gre1") ? p->gre1 :
	       !strcmp(tunnel, "gre2") ? p->gre2 : 0;
}

static Mt__Config__Tunnel t1 = MT__CONFIG__TUNNEL__INIT,
			  t2 = MT__CONFIG__TUNNEL__INIT;
static Mt__Config__TunnelRoute r[3];
static Mt__Config__Tunnel *tv[] = { &t1, &t2 };
static Mt__Config__TunnelRoute *rv[] = { &r[0], &r[1], &r[2] };
static char *pfx[] = { "203.0.113.0/24" }, *eps[] = { "192.0.2.10" };
static Mt__Config__Customer c = MT__CONFIG__CUSTOMER__INIT;

static void setup(void)
{
	t1.name = "gre1";
	t1.edge_endpoint = "192.0.2.10";
	t1.router_endpoint = "198.18.21.2";
	t1.inner_address = "10.255.0.0/31";
	t2.name = "gre2";
	t2.edge_endpoint = "192.0.2.10";
	t2.router_endpoint = "198.18.22.2";
	t2.inner_address = "10.255.0.2/31";
	for (int i = 0; i < 3; i++)
		mt__config__tunnel_route__init(&r[i]);
	/* /25: ECMP over both at 10; /25 high half: gre2 at 5, gre1 at 20 */
	r[0].prefix = "203.0.113.0/25", r[0].tunnel = "gre1", r[0].priority = 10;
	r[1].prefix = "203.0.113.0/25", r[1].tunnel = "gre2", r[1].priority = 10;
	r[1].weight = 3;
	r[2].prefix = "203.0.113.128/25", r[2].tunnel = "gre2", r[2].priority = 5;
	c.id = 7;
	c.name = "acme";
	c.prefixes = pfx;
	c.n_prefixes = 1;
	c.tunnel_endpoints = eps;
	c.n_tunnel_endpoints = 1;
	c.tunnels = tv;
	c.n_tunnels = 2;
	c.routes = rv;
	c.n_routes = 3;
}

static char *plan_text(const struct pen *before, const struct pen *after,
		       int *n)
{
	struct mt_desired_penalties b = { pen_fn, (void *)before },
				    a = { pen_fn, (void *)after };
	Mt__Kernel__Plan *plan = mt_plan_new();
	char *s;

	*n = mt_health_plan(&metal, &c, before ? &b : NULL, after ? &a : NULL,
			    plan);
	s = mt_plan_render(plan);
	mt_plan_free(plan);
	return s;
}

static void test_plans(void)
{
	struct pen ok = { 0, 0 }, down1 = { 1000000, 0 }, deg2 = { 0, 500000 };
	char *s;
	int n;

	/* no change, no ops */
	s = plan_text(&ok, NULL, &n);
	CHECK(n == 0 && s && !*s);
	free(s);

	/* gre1 down: it leaves the ECMP group (the group's route becomes
	 * gre2 alone, in place) and gets its own route 1000000 higher */
	s = plan_text(&ok, &down1, &n);
	CHECK(n == 2);
	CHECK_STR(s, "create route 203.0.113.0/25 table 2001 dev gre2 metric 10 in netns mt0-acme\n"
		     "create route 203.0.113.0/25 table 2001 dev gre1 metric 1000010 in netns mt0-acme\n");
	free(s);

	/* and back: the penalised route goes after the group is whole */
	s = plan_text(&down1, &ok, &n);
	CHECK(n == 2);
	CHECK_STR(s, "create route 203.0.113.0/25 table 2001 nexthop dev gre1 weight 1 nexthop dev gre2 weight 3 metric 10 in netns mt0-acme\n"
		     "delete route 203.0.113.0/25 table 2001 dev gre1 metric 1000010 in netns mt0-acme\n");
	free(s);

	/* gre2 degraded: its /25 route moves (created first, then the old
	 * one deleted: never a gap), and it leaves the ECMP group */
	s = plan_text(&ok, &deg2, &n);
	CHECK(n == 4);
	CHECK(strstr(s, "create route 203.0.113.128/25 table 2001 dev gre2 metric 500005 in netns mt0-acme\n"));
	CHECK(strstr(s, "delete route 203.0.113.128/25 table 2001 dev gre2 metric 5 in netns mt0-acme\n"));
	CHECK(strstr(s, "create route 203.0.113.128/25 table 2001 dev gre2 metric 500005") <
	      strstr(s, "delete route 203.0.113.128/25"));
	CHECK(strstr(s, "create route 203.0.113.0/25 table 2001 dev gre1 metric 10 in netns mt0-acme\n"));
	CHECK(strstr(s, "create route 203.0.113.0/25 table 2001 dev gre2 metric 500010 in netns mt0-acme\n"));
	/* nothing else of the customer is touched */
	CHECK(!strstr(s, "tunnel ") && !strstr(s, "addr ") && !strstr(s, "netns mt0-acme\ncreate netns"));
	free(s);
}

static void test_observed_penalty(void)
{
	struct pen down1 = { 1000000, 0 }, deg2 = { 0, 500000 };
	struct mt_desired_penalties p = { pen_fn, &down1 };
	Mt__Kernel__KernelState *st = mt_kstate_new();

	/* what the kernel holds after gre1 went down */
	CHECK(mt_desired_build_routes(&metal, &c, &p, st) == 0);
	CHECK(mt_health_observed_penalty(&metal, &c, "gre1", st) == 1000000);
	CHECK(mt_health_observed_penalty(&metal, &c, "gre2", st) == 0);
	CHECK(mt_health_observed_penalty(&metal, &c, "nope", st) == 0);
	mt_kstate_free(st);

	st = mt_kstate_new();
	p.ctx = &deg2;
	CHECK(mt_desired_build_routes(&metal, &c, &p, st) == 0);
	CHECK(mt_health_observed_penalty(&metal, &c, "gre1", st) == 0);
	CHECK(mt_health_observed_penalty(&metal, &c, "gre2", st) == 500000);
	mt_kstate_free(st);

	/* nothing installed: no penalty known */
	st = mt_kstate_new();
	CHECK(mt_health_observed_penalty(&metal, &c, "gre1", st) == 0);
	mt_kstate_free(st);
}

int main(void)
{
	char err[256];

	if (mt_metal_init(&metal, NULL, err, sizeof(err)) < 0)
		return 1;
	setup();
	RUN(test_plans);
	RUN(test_observed_penalty);
	mt_metal_fini(&metal);
	TEST_MAIN_END();
}
