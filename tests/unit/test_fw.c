/* The firewall model (lib/mt_fw.c): validation (every check, with the
 * operator's message), the canonical form (each normalisation) and the
 * compiled lists (compile, digest, delta). */
#include "mt_test.h"
#include "mt_cleanup.h"
#include "mt_fw.h"
#include "mt_validate.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

static struct mt_metal metal;

/* ---- builders ---- */

static char *prefixes[] = { "203.0.113.0/24" };

static Mt__Config__Customer *acme(void)
{
	Mt__Config__Customer *c = calloc(1, sizeof(*c));
	Mt__Config__Firewall *fw = calloc(1, sizeof(*fw));

	mt__config__customer__init(c);
	mt__config__firewall__init(fw);
	c->id = 7;
	c->name = "acme";
	c->prefixes = prefixes;
	c->n_prefixes = 1;
	c->firewall = fw;
	fw->rules = calloc(64, sizeof(*fw->rules));
	fw->lists = calloc(MT_FW_LISTS_MAX + 2, sizeof(*fw->lists));
	return c;
}

static Mt__Config__FirewallRule *add_rule(Mt__Config__Customer *c,
					  uint32_t id, const char *action)
{
	Mt__Config__FirewallRule *r = calloc(1, sizeof(*r));

	mt__config__firewall_rule__init(r);
	r->id = id;
	r->action = (char *)action;
	c->firewall->rules[c->firewall->n_rules++] = r;
	return r;
}

static Mt__Config__IpList *add_list(Mt__Config__Customer *c, const char *name,
				    char **p, size_t n)
{
	Mt__Config__IpList *l = calloc(1, sizeof(*l));

	mt__config__ip_list__init(l);
	l->name = (char *)name;
	l->prefixes = p;
	l->n_prefixes = n;
	c->firewall->lists[c->firewall->n_lists++] = l;
	return l;
}

static Mt__Config__RateLimit *rate(uint64_t pps, uint64_t bps, uint64_t burst)
{
	Mt__Config__RateLimit *rl = calloc(1, sizeof(*rl));

	mt__config__rate_limit__init(rl);
	rl->packets_per_second = pps;
	rl->bytes_per_second = bps;
	rl->burst = burst;
	return rl;
}

static Mt__Config__Range *range(uint32_t min, uint32_t max)
{
	Mt__Config__Range *r = calloc(1, sizeof(*r));

	mt__config__range__init(r);
	r->min = min;
	r->max = max;
	return r;
}

static Mt__Config__TcpFlags *flags(char **set, size_t ns, char **clear,
				   size_t nc)
{
	Mt__Config__TcpFlags *f = calloc(1, sizeof(*f));

	mt__config__tcp_flags__init(f);
	f->set = set;
	f->n_set = ns;
	f->clear = clear;
	f->n_clear = nc;
	return f;
}

static Mt__Config__IcmpMatch *icmp(uint32_t type, int code)
{
	Mt__Config__IcmpMatch *m = calloc(1, sizeof(*m));

	mt__config__icmp_match__init(m);
	m->type = type;
	if (code >= 0) {
		m->code_present_case = MT__CONFIG__ICMP_MATCH__CODE_PRESENT_CODE;
		m->code = (uint32_t)code;
	}
	return m;
}

#define V(...) ((char *[]){ __VA_ARGS__ })
#define N(...) (sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *))
/* An expression, not a block: the compound literal lives as long as the
 * caller's block. */
#define SETV(obj, field, ...)                                                  \
	((obj)->field = V(__VA_ARGS__), (obj)->n_##field = N(__VA_ARGS__))

static char err[MT_VALIDATE_ERR_MAX];

static int validate(const Mt__Config__Customer *c)
{
	err[0] = '\0';
	return mt_validate_firewall(&metal, c, err, sizeof(err));
}

/* Expects rejection with exactly the message want (after the customer). */
#define REJECT(c, want)                                                        \
	do {                                                                   \
		CHECK(validate(c) == -EINVAL);                                 \
		CHECK_STR(err, "customer 7 \"acme\": " want);                  \
	} while (0)

/* A fresh customer with one rule (id 30 at index 0) for a rejection. */
#define ONE_RULE(c, r, action)                                                 \
	Mt__Config__Customer *c = acme();                                      \
	Mt__Config__FirewallRule *r = add_rule(c, 30, action)

/* ---- validation ---- */

static void test_valid(void)
{
	Mt__Config__Customer *c = acme();
	Mt__Config__FirewallRule *r;

	c->firewall = NULL;
	CHECK(validate(c) == 0);
	c = acme();
	CHECK(validate(c) == 0);
	c->firewall->default_action = "block";
	add_list(c, "bad", V("198.51.100.0/24", "192.0.2.0/25"), 2);
	add_list(c, "v6_x-1", V("2001:db8::/32"), 1);
	add_list(c, "empty", NULL, 0);
	r = add_rule(c, 10, "allow");
	r->protocol = "tcp";
	SETV(r, dst_ports, "80", "443", "1024-65535", "0");
	r->tcp_flags = flags(V("syn"), 1, V("ack", "rst"), 2);
	r->src_list = "bad";
	r->description = "web, from the bad list";
	r = add_rule(c, 11, "rate_limit");
	r->rate_limit = rate(100, 0, 0);
	r->protocol = "icmpv6";
	r->icmp = icmp(128, 0);
	r->dst_list = "v6_x-1";
	r->family = "ipv6";
	r = add_rule(c, 12, "block");
	r->fragment = true;
	r->length = range(20, 65535);
	r->ttl = range(0, 1);
	r->monitor = true;
	SETV(r, src_prefixes, "192.0.2.0/24", "198.51.100.7");
	r = add_rule(c, MT_FW_RULE_ID_MAX, "rate_limit");
	r->rate_limit = rate(0, 1000000, 0);
	r->protocol = "udp";
	SETV(r, src_ports, "53");
	r = add_rule(c, 14, "BLOCK");
	r->protocol = "47";
	r->src_list = "empty";
	CHECK(validate(c) == 0);
	CHECK_STR(err, "");
	/* and through mt_validate_customer */
	c->firewall->rules[0]->protocol = "tcpx";
	CHECK(mt_validate_customer(&metal, c, err, sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "firewall.rules[0] (id 10): protocol \"tcpx\"");
}

/* The issue's bad rules, one by one. */
static void test_issue_bad_rules(void)
{
	{
		ONE_RULE(c, r, "allow");
		r->protocol = "tcpp";
		REJECT(c, "firewall.rules[0] (id 30): protocol \"tcpp\": unknown (tcp, udp, icmp, icmpv6, gre, esp, ah, sctp or a number 0-255)");
		r->protocol = "256";
		REJECT(c, "firewall.rules[0] (id 30): protocol \"256\": unknown (tcp, udp, icmp, icmpv6, gre, esp, ah, sctp or a number 0-255)");
	}
	{
		ONE_RULE(c, r, "allow");
		r->protocol = "tcp";
		SETV(r, dst_ports, "80", "70000");
		REJECT(c, "firewall.rules[0] (id 30): dst_ports[1] \"70000\": port outside 0-65535");
		SETV(r, dst_ports, "1-65536");
		REJECT(c, "firewall.rules[0] (id 30): dst_ports[0] \"1-65536\": port outside 0-65535");
		SETV(r, dst_ports, "99999999");
		REJECT(c, "firewall.rules[0] (id 30): dst_ports[0] \"99999999\": port outside 0-65535");
		SETV(r, dst_ports, "-1");
		REJECT(c, "firewall.rules[0] (id 30): dst_ports[0] \"-1\": malformed port: must be N or A-B (0-65535)");
	}
	{
		ONE_RULE(c, r, "allow");
		SETV(r, dst_ports, "80");
		REJECT(c, "firewall.rules[0] (id 30): dst_ports[0] \"80\": ports only with protocol tcp, udp or sctp (protocol is \"\")");
		r->protocol = "icmp";
		REJECT(c, "firewall.rules[0] (id 30): dst_ports[0] \"80\": ports only with protocol tcp, udp or sctp (protocol is \"icmp\")");
		r->protocol = "sctp";
		CHECK(validate(c) == 0);
		r->protocol = "17";
		CHECK(validate(c) == 0);
	}
	{
		ONE_RULE(c, r, "allow");
		SETV(r, src_prefixes, "192.0.2.0/24", "198.51.100.300/24");
		REJECT(c, "firewall.rules[0] (id 30): src_prefixes[1] \"198.51.100.300/24\": malformed prefix \"198.51.100.300/24\": bad address");
		SETV(r, src_prefixes, "192.0.2.1/24");
		REJECT(c, "firewall.rules[0] (id 30): src_prefixes[0] \"192.0.2.1/24\": malformed prefix \"192.0.2.1/24\": host bits set (did you mean 192.0.2.0/24?)");
	}
	{
		ONE_RULE(c, r, "block");
		add_list(c, "good", V("192.0.2.0/24"), 1);
		r->dst_list = "bad";
		REJECT(c, "firewall.rules[0] (id 30): dst_list \"bad\": no such list in firewall.lists");
	}
	{
		ONE_RULE(c, r, "rate_limit");
		r->rate_limit = rate(0, 0, 10);
		REJECT(c, "firewall.rules[0] (id 30): rate_limit: a rate of 0: set packets_per_second or bytes_per_second");
		r->rate_limit = NULL;
		REJECT(c, "firewall.rules[0] (id 30): rate_limit: a rate of 0: set packets_per_second or bytes_per_second");
	}
	{
		Mt__Config__Customer *c = acme();

		add_rule(c, 10, "allow");
		add_rule(c, 30, "allow");
		add_rule(c, 20, "allow");
		add_rule(c, 30, "block");
		REJECT(c, "firewall.rules[3] (id 30): id 30 already used by rules[1]");
	}
}

static void test_rule_checks(void)
{
	{
		ONE_RULE(c, r, "allow");
		r->id = 0;
		REJECT(c, "firewall.rules[0] (id 0): id 0: must be 1-2147483647");
		r->id = MT_FW_RULE_ID_MAX + 1u;
		REJECT(c, "firewall.rules[0] (id 2147483648): id 2147483648: must be 1-2147483647");
	}
	{
		ONE_RULE(c, r, "allow");
		r->description = "0123456789012345678901234567890123456789012345678901234567890123x";
		REJECT(c, "firewall.rules[0] (id 30): description: 65 characters, at most 64");
		r->description = "tab\there";
		REJECT(c, "firewall.rules[0] (id 30): description: character 3 (0x09) is not printable ASCII");
		r->description = "caf\xc3\xa9";
		REJECT(c, "firewall.rules[0] (id 30): description: character 3 (0xc3) is not printable ASCII");
	}
	{
		ONE_RULE(c, r, "deny");
		REJECT(c, "firewall.rules[0] (id 30): action \"deny\": must be allow, block or rate_limit");
		r->action = "";
		REJECT(c, "firewall.rules[0] (id 30): action \"\": must be allow, block or rate_limit");
		r->action = "allow";
		r->rate_limit = rate(10, 0, 0);
		REJECT(c, "firewall.rules[0] (id 30): rate_limit: only with action rate_limit (action is \"allow\")");
		r->action = "rate_limit";
		r->rate_limit = rate(10, 20, 0);
		REJECT(c, "firewall.rules[0] (id 30): rate_limit: packets_per_second 10 and bytes_per_second 20: set only one");
		r->rate_limit = rate(10, 0, 1ull << 33);
		REJECT(c, "firewall.rules[0] (id 30): rate_limit: burst 8589934592: at most 4294967295");
	}
	{
		ONE_RULE(c, r, "allow");
		r->family = "inet";
		REJECT(c, "firewall.rules[0] (id 30): family \"inet\": must be ipv4, ipv6 or \"\" (both)");
		r->family = "ipv6";
		SETV(r, src_prefixes, "192.0.2.0/24");
		REJECT(c, "firewall.rules[0] (id 30): src_prefixes[0] \"192.0.2.0/24\" is ipv4 but family is ipv6");
		r->family = "";
		SETV(r, dst_prefixes, "2001:db8::/32");
		REJECT(c, "firewall.rules[0] (id 30): dst_prefixes[0] \"2001:db8::/32\" is ipv6 but src_prefixes[0] \"192.0.2.0/24\" is ipv4");
		r->n_dst_prefixes = 0;
		r->protocol = "icmpv6";
		REJECT(c, "firewall.rules[0] (id 30): protocol \"icmpv6\" is ipv6 but src_prefixes[0] \"192.0.2.0/24\" is ipv4");
		r->n_src_prefixes = 0;
		r->family = "ipv4";
		REJECT(c, "firewall.rules[0] (id 30): protocol \"icmpv6\" is ipv6 but family is ipv4");
		r->protocol = "58";
		REJECT(c, "firewall.rules[0] (id 30): protocol \"58\" is ipv6 but family is ipv4");
	}
	{
		ONE_RULE(c, r, "allow");
		add_list(c, "v6", V("2001:db8::/32"), 1);
		add_list(c, "empty", NULL, 0);
		SETV(r, src_prefixes, "192.0.2.0/24", "2001:db8::/48");
		REJECT(c, "firewall.rules[0] (id 30): src_prefixes[1] \"2001:db8::/48\": ipv6, but src_prefixes[0] \"192.0.2.0/24\" is ipv4 (one family per field)");
		r->n_src_prefixes = 1;
		r->dst_list = "v6";
		REJECT(c, "firewall.rules[0] (id 30): dst_list \"v6\" is ipv6 but src_prefixes[0] \"192.0.2.0/24\" is ipv4");
		r->dst_list = "empty"; /* an empty list is ipv4 */
		CHECK(validate(c) == 0);
		r->src_list = "empty";
		REJECT(c, "firewall.rules[0] (id 30): src_list \"empty\" and src_prefixes: not both for one direction");
		r->src_list = "";
		r->n_src_prefixes = 0;
		r->family = "ipv6";
		REJECT(c, "firewall.rules[0] (id 30): dst_list \"empty\" is ipv4 but family is ipv6");
	}
	{
		ONE_RULE(c, r, "allow");
		char *many[MT_FW_INLINE_MAX + 1];

		for (size_t i = 0; i <= MT_FW_INLINE_MAX; i++)
			many[i] = "192.0.2.0/24";
		r->src_prefixes = many;
		r->n_src_prefixes = MT_FW_INLINE_MAX;
		CHECK(validate(c) == 0);
		r->n_src_prefixes = MT_FW_INLINE_MAX + 1;
		REJECT(c, "firewall.rules[0] (id 30): src_prefixes: 257 prefixes, at most 256");
		r->n_src_prefixes = 0;
		r->protocol = "tcp";
		for (size_t i = 0; i <= MT_FW_INLINE_MAX; i++)
			many[i] = "80";
		r->dst_ports = many;
		r->n_dst_ports = MT_FW_INLINE_MAX + 1;
		REJECT(c, "firewall.rules[0] (id 30): dst_ports: 257 entries, at most 256");
	}
	{
		ONE_RULE(c, r, "allow");
		r->protocol = "udp";
		SETV(r, src_ports, "100-10");
		REJECT(c, "firewall.rules[0] (id 30): src_ports[0] \"100-10\": range 100-10: start above end");
		SETV(r, src_ports, "80-");
		REJECT(c, "firewall.rules[0] (id 30): src_ports[0] \"80-\": malformed port: must be N or A-B (0-65535)");
		SETV(r, src_ports, "http");
		REJECT(c, "firewall.rules[0] (id 30): src_ports[0] \"http\": malformed port: must be N or A-B (0-65535)");
		SETV(r, src_ports, "");
		REJECT(c, "firewall.rules[0] (id 30): src_ports[0] \"\": malformed port: must be N or A-B (0-65535)");
	}
	{
		ONE_RULE(c, r, "allow");
		r->protocol = "tcp";
		r->tcp_flags = flags(V("syn", "fn"), 2, NULL, 0);
		REJECT(c, "firewall.rules[0] (id 30): tcp_flags.set[1] \"fn\": unknown flag (fin syn rst psh ack urg ece cwr)");
		r->tcp_flags = flags(V("syn"), 1, V("cwr", "syn"), 2);
		REJECT(c, "firewall.rules[0] (id 30): tcp_flags: \"syn\" both set and clear");
		r->tcp_flags = flags(V("syn"), 1, NULL, 0);
		r->protocol = "udp";
		REJECT(c, "firewall.rules[0] (id 30): tcp_flags: only with protocol tcp (protocol is \"udp\")");
		r->tcp_flags = flags(NULL, 0, NULL, 0); /* empty = none */
		CHECK(validate(c) == 0);
	}
	{
		ONE_RULE(c, r, "allow");
		r->icmp = icmp(8, -1);
		r->protocol = "tcp";
		REJECT(c, "firewall.rules[0] (id 30): icmp: only with protocol icmp or icmpv6 (protocol is \"tcp\")");
		r->protocol = "icmp";
		CHECK(validate(c) == 0);
		r->icmp = icmp(256, -1);
		REJECT(c, "firewall.rules[0] (id 30): icmp.type 256: must be 0-255");
		r->icmp = icmp(3, 256);
		REJECT(c, "firewall.rules[0] (id 30): icmp.code 256: must be 0-255");
	}
	{
		ONE_RULE(c, r, "allow");
		r->length = range(100, 65536);
		REJECT(c, "firewall.rules[0] (id 30): length: max 65536: above 65535");
		r->length = range(101, 100);
		REJECT(c, "firewall.rules[0] (id 30): length: min 101 above max 100");
		r->length = NULL;
		r->ttl = range(1, 256);
		REJECT(c, "firewall.rules[0] (id 30): ttl: max 256: above 255");
		r->ttl = range(2, 1);
		REJECT(c, "firewall.rules[0] (id 30): ttl: min 2 above max 1");
		r->ttl = range(64, 64);
		CHECK(validate(c) == 0);
	}
	{
		Mt__Config__Customer *c = acme();
		Mt__Config__Firewall *fw = c->firewall;

		fw->default_action = "drop";
		REJECT(c, "firewall.default_action \"drop\": must be allow or block");
		fw->default_action = "allow";
		fw->rules = calloc(MT_FW_RULES_MAX + 1, sizeof(*fw->rules));
		for (uint32_t i = 0; i <= MT_FW_RULES_MAX; i++)
			add_rule(c, i + 1, "allow");
		REJECT(c, "firewall.rules: 4097 rules, at most 4096");
		fw->n_rules--;
		CHECK(validate(c) == 0);
	}
}

static void test_list_checks(void)
{
	{
		Mt__Config__Customer *c = acme();

		add_list(c, "Bad", NULL, 0);
		REJECT(c, "firewall.lists[0] \"Bad\": name must match [a-z0-9][a-z0-9_-]*, at most 15 characters");
	}
	{
		Mt__Config__Customer *c = acme();

		add_list(c, "_x", NULL, 0);
		REJECT(c, "firewall.lists[0] \"_x\": name must match [a-z0-9][a-z0-9_-]*, at most 15 characters");
	}
	{
		Mt__Config__Customer *c = acme();

		add_list(c, "a23456789012345", NULL, 0);
		CHECK(validate(c) == 0);
		add_list(c, "a234567890123456", NULL, 0);
		REJECT(c, "firewall.lists[1] \"a234567890123456\": name must match [a-z0-9][a-z0-9_-]*, at most 15 characters");
	}
	{
		Mt__Config__Customer *c = acme();

		add_list(c, "", NULL, 0);
		REJECT(c, "firewall.lists[0] \"\": name must match [a-z0-9][a-z0-9_-]*, at most 15 characters");
	}
	{
		Mt__Config__Customer *c = acme();

		add_list(c, "x", NULL, 0);
		add_list(c, "y", NULL, 0);
		add_list(c, "x", NULL, 0);
		REJECT(c, "firewall.lists[2] \"x\": name already used by lists[0]");
	}
	{
		Mt__Config__Customer *c = acme();

		add_list(c, "x", V("192.0.2.0/24", "198.51.100.0/33"), 2);
		REJECT(c, "firewall.lists[0] \"x\": prefixes[1] \"198.51.100.0/33\": malformed prefix \"198.51.100.0/33\": length must be 0-32");
	}
	{
		Mt__Config__Customer *c = acme();

		add_list(c, "x", V("192.0.2.0/24", "2001:db8::/32"), 2);
		REJECT(c, "firewall.lists[0] \"x\": prefixes[1] \"2001:db8::/32\": ipv6 in an ipv4 list (one family per list)");
	}
	{
		Mt__Config__Customer *c = acme();

		for (int i = 0; i <= MT_FW_LISTS_MAX; i++)
			add_list(c, "x", NULL, 0);
		REJECT(c, "firewall.lists: 65 lists, at most 64");
	}
	{
		Mt__Config__Customer *c = acme();
		Mt__Config__IpList *l = add_list(c, "x", NULL, 0);

		l->n_prefixes = MT_FW_LIST_PREFIXES_MAX + 1; /* not read */
		REJECT(c, "firewall.lists[0] \"x\": 1048577 prefixes, at most 1048576");
	}
}

/* ---- canonical form ---- */

static Mt__Config__FirewallRule *canon(const Mt__Config__Customer *c,
				       size_t i)
{
	Mt__Config__FirewallRule *out = NULL;
	char e[256];
	int r = mt_fw_rule_canonical(c->firewall, c->firewall->rules[i], &out,
				     e, sizeof(e));

	if (r)
		fprintf(stderr, "canonical: %s\n", e);
	CHECK(r == 0);
	return out;
}

static void check_strv(char **v, size_t n, char **want, size_t nwant)
{
	CHECK(n == nwant);
	for (size_t i = 0; i < n && i < nwant; i++)
		CHECK_STR(v[i], want[i]);
}

#define CHECK_V(obj, field, ...)                                               \
	check_strv((obj)->field, (obj)->n_##field, V(__VA_ARGS__),             \
		   N(__VA_ARGS__))

static void free_rule(Mt__Config__FirewallRule *r)
{
	if (r)
		protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void test_canonical(void)
{
	Mt__Config__Customer *c = acme();
	Mt__Config__FirewallRule *r, *k;

	add_list(c, "v6", V("2001:db8::/32"), 1);
	add_list(c, "empty", NULL, 0);

	/* action lowercase; family implied by the prefixes; prefixes sorted,
	 * without duplicates or covered prefixes, formatted; ports sorted
	 * and merged; protocol number -> name */
	r = add_rule(c, 1, "Allow");
	r->description = "web";
	SETV(r, src_prefixes, "198.51.100.0/24", "192.0.2.128/25",
	     "192.0.2.0/24", "198.51.100.7", "192.0.2.0/24", "203.0.113.0/24");
	SETV(r, dst_ports, "443", "81-90", "80", "1000-2000", "1500-1600",
	     "2001", "5000-5000", "0");
	r->protocol = "6";
	k = canon(c, 0);
	CHECK(k->id == 1);
	CHECK_STR(k->description, "web");
	CHECK_STR(k->action, "allow");
	CHECK(!k->rate_limit);
	CHECK_STR(k->family, "ipv4");
	CHECK_V(k, src_prefixes, "192.0.2.0/24", "198.51.100.0/24",
		"203.0.113.0/24");
	CHECK(k->n_dst_prefixes == 0);
	CHECK_V(k, dst_ports, "0", "80-90", "443", "1000-2001", "5000");
	CHECK(k->n_src_ports == 0);
	CHECK_STR(k->protocol, "tcp");
	CHECK(!k->tcp_flags && !k->icmp && !k->length && !k->ttl);
	free_rule(k);

	/* IPv6 prefix formatting; a /0 covers everything */
	r = add_rule(c, 2, "block");
	SETV(r, dst_prefixes, "2001:DB8:0:0::/64", "2001:db8::/32", "::/0");
	k = canon(c, 1);
	CHECK_STR(k->family, "ipv6");
	CHECK_V(k, dst_prefixes, "::/0");
	free_rule(k);

	/* family from a list, from the protocol, or none */
	r = add_rule(c, 3, "block");
	r->src_list = "v6";
	k = canon(c, 2);
	CHECK_STR(k->family, "ipv6");
	CHECK_STR(k->src_list, "v6");
	CHECK_STR(k->dst_list, "");
	free_rule(k);
	r = add_rule(c, 4, "block");
	r->dst_list = "empty";
	k = canon(c, 3);
	CHECK_STR(k->family, "ipv4");
	free_rule(k);
	r = add_rule(c, 5, "allow");
	r->protocol = "ICMP";
	r->icmp = icmp(8, -1);
	k = canon(c, 4);
	CHECK_STR(k->family, "ipv4");
	CHECK_STR(k->protocol, "icmp");
	CHECK(k->icmp && k->icmp->type == 8 &&
	      k->icmp->code_present_case !=
		      MT__CONFIG__ICMP_MATCH__CODE_PRESENT_CODE);
	free_rule(k);
	r = add_rule(c, 6, "allow");
	r->protocol = "58";
	r->icmp = icmp(1, 0);
	k = canon(c, 5);
	CHECK_STR(k->family, "ipv6");
	CHECK_STR(k->protocol, "icmpv6");
	CHECK(k->icmp->code_present_case ==
		      MT__CONFIG__ICMP_MATCH__CODE_PRESENT_CODE &&
	      k->icmp->code == 0);
	free_rule(k);
	r = add_rule(c, 7, "allow");
	r->protocol = "99";
	r->fragment = true;
	r->monitor = true;
	r->ttl = range(1, 5);
	r->length = range(100, 100);
	k = canon(c, 6);
	CHECK_STR(k->family, "");
	CHECK_STR(k->protocol, "99");
	CHECK(k->fragment && k->monitor);
	CHECK(k->ttl && k->ttl->min == 1 && k->ttl->max == 5);
	CHECK(k->length && k->length->min == 100 && k->length->max == 100);
	free_rule(k);
	r->protocol = "047";
	k = canon(c, 6);
	CHECK_STR(k->protocol, "gre");
	free_rule(k);

	/* rate limits: burst 0 with a packet rate is 5; bytes keep it */
	r = add_rule(c, 8, "RATE_LIMIT");
	r->rate_limit = rate(100, 0, 0);
	k = canon(c, 7);
	CHECK_STR(k->action, "rate_limit");
	CHECK(k->rate_limit && k->rate_limit->packets_per_second == 100 &&
	      k->rate_limit->bytes_per_second == 0 && k->rate_limit->burst == 5);
	free_rule(k);
	r->rate_limit = rate(100, 0, 7);
	k = canon(c, 7);
	CHECK(k->rate_limit->burst == 7);
	free_rule(k);
	r->rate_limit = rate(0, 1000, 0);
	k = canon(c, 7);
	CHECK(k->rate_limit->bytes_per_second == 1000 &&
	      k->rate_limit->burst == 0);
	free_rule(k);

	/* tcp flags: deduplicated, in the fixed order; empty -> NULL */
	r = add_rule(c, 9, "allow");
	r->protocol = "tcp";
	r->tcp_flags = flags(V("ack", "SYN", "fin", "syn"), 4,
			     V("cwr", "rst", "rst"), 3);
	k = canon(c, 8);
	CHECK(k->tcp_flags);
	if (k->tcp_flags) {
		CHECK_V(k->tcp_flags, set, "fin", "syn", "ack");
		CHECK_V(k->tcp_flags, clear, "rst", "cwr");
	}
	free_rule(k);
	r->tcp_flags = flags(NULL, 0, NULL, 0);
	k = canon(c, 8);
	CHECK(!k->tcp_flags);
	free_rule(k);
	r->tcp_flags = flags(NULL, 0, V("ack"), 1);
	k = canon(c, 8);
	CHECK(k->tcp_flags && k->tcp_flags->n_set == 0 &&
	      k->tcp_flags->n_clear == 1);
	free_rule(k);

	/* an invalid rule is refused */
	r = add_rule(c, 10, "allow");
	r->protocol = "bogus";
	{
		char e[256];
		Mt__Config__FirewallRule *o = (void *)1;

		CHECK(mt_fw_rule_canonical(c->firewall, r, &o, e, sizeof(e)) ==
		      -EINVAL);
		CHECK(o == NULL);
		CHECK_CONTAINS(e, "protocol \"bogus\"");
	}
}

/* Canonical rules are fixed points, and equality means the same rule. */
static void test_canonical_idempotent_equal(void)
{
	Mt__Config__Customer *c = acme();
	Mt__Config__FirewallRule *r, *a, *b, *a2;
	Mt__Config__Firewall fw2 = MT__CONFIG__FIREWALL__INIT;

	r = add_rule(c, 1, "rate_limit");
	r->rate_limit = rate(10, 0, 0);
	r->protocol = "tcp";
	SETV(r, dst_ports, "81-90", "80");
	SETV(r, src_prefixes, "192.0.2.0/25", "192.0.2.0/24");
	r->tcp_flags = flags(V("syn", "syn"), 2, NULL, 0);
	r = add_rule(c, 1, "rate_limit");
	r->rate_limit = rate(10, 0, 5);
	r->protocol = "6";
	SETV(r, dst_ports, "80-90");
	SETV(r, src_prefixes, "192.0.2.0/24");
	r->family = "ipv4";
	r->tcp_flags = flags(V("SYN"), 1, NULL, 0);
	a = canon(c, 0);
	b = canon(c, 1);
	CHECK(mt_fw_rule_equal(a, b));
	CHECK(mt_fw_rule_equal(a, a));
	CHECK(!mt_fw_rule_equal(a, NULL));
	/* canonical of canonical is itself */
	fw2 = *c->firewall;
	CHECK(mt_fw_rule_canonical(&fw2, a, &a2, err, sizeof(err)) == 0);
	CHECK(mt_fw_rule_equal(a, a2));
	free_rule(a2);
	/* any field makes a difference */
	b->monitor = true;
	CHECK(!mt_fw_rule_equal(a, b));
	b->monitor = false;
	b->id = 2;
	CHECK(!mt_fw_rule_equal(a, b));
	b->id = 1;
	b->rate_limit->burst = 6;
	CHECK(!mt_fw_rule_equal(a, b));
	b->rate_limit->burst = 5;
	CHECK(mt_fw_rule_equal(a, b));
	/* big rules (packed above the stack buffer) compare too */
	{
		char *many[200], buf[200][16];
		char **ka = a->dst_ports, **kb = b->dst_ports;
		size_t nka = a->n_dst_ports, nkb = b->n_dst_ports;

		for (int i = 0; i < 200; i++) {
			snprintf(buf[i], sizeof(buf[i]), "%d", 1000 + 2 * i);
			many[i] = buf[i];
		}
		a->dst_ports = many;
		a->n_dst_ports = 200;
		b->dst_ports = many;
		b->n_dst_ports = 200;
		CHECK(protobuf_c_message_get_packed_size(&a->base) > 512);
		CHECK(mt_fw_rule_equal(a, b));
		b->n_dst_ports = 199;
		CHECK(!mt_fw_rule_equal(a, b));
		a->dst_ports = ka;
		a->n_dst_ports = nka;
		b->dst_ports = kb;
		b->n_dst_ports = nkb;
	}
	/* a oneof: code absent differs from code 0 */
	char *proto_a = a->protocol, *proto_b = b->protocol;

	a->protocol = b->protocol = "icmp";
	a->icmp = icmp(3, -1);
	b->icmp = icmp(3, 0);
	CHECK(!mt_fw_rule_equal(a, b));
	b->icmp->code_present_case = MT__CONFIG__ICMP_MATCH__CODE_PRESENT__NOT_SET;
	CHECK(mt_fw_rule_equal(a, b));
	/* a submessage present (even empty) differs from one absent, as
	 * packed; NULL and "" strings are the same, as packed */
	b->length = range(0, 0);
	CHECK(!mt_fw_rule_equal(a, b));
	a->length = range(0, 0);
	CHECK(mt_fw_rule_equal(a, b));
	a->src_list = NULL;
	b->src_list = "";
	CHECK(mt_fw_rule_equal(a, b));
	{
		/* equal exactly when the packed bytes are */
		uint8_t pa[1024], pb[1024];
		size_t la, lb;

		la = mt__config__firewall_rule__pack(a, pa);
		lb = mt__config__firewall_rule__pack(b, pb);
		CHECK(la == lb && !memcmp(pa, pb, la));
		b->ttl = range(1, 2);
		la = mt__config__firewall_rule__pack(a, pa);
		lb = mt__config__firewall_rule__pack(b, pb);
		CHECK(la != lb || memcmp(pa, pb, la));
		CHECK(!mt_fw_rule_equal(a, b));
	}
	a->icmp = b->icmp = NULL;
	a->length = b->length = NULL;
	b->ttl = NULL;
	a->src_list = b->src_list = NULL;
	a->protocol = proto_a;
	b->protocol = proto_b;
	free_rule(a);
	free_rule(b);
}

static void test_small(void)
{
	CHECK_STR(mt_fw_default_action(NULL), "allow");
	CHECK_STR(mt_fw_default_action(""), "allow");
	CHECK_STR(mt_fw_default_action("allow"), "allow");
	CHECK_STR(mt_fw_default_action("block"), "block");
	CHECK(mt_fw_default_action("drop") == NULL);
	CHECK_STR(mt_fw_family_name(AF_INET), "ipv4");
	CHECK_STR(mt_fw_family_name(AF_INET6), "ipv6");
	CHECK(mt_fw_family_name(0) == NULL);
	CHECK(mt_fw_family_parse("ipv4") == AF_INET);
	CHECK(mt_fw_family_parse("ipv6") == AF_INET6);
	CHECK(mt_fw_family_parse("") == 0);
	CHECK(mt_fw_family_parse(NULL) == 0);
	CHECK(mt_fw_family_parse("inet") == 0);
}

/* ---- lists ---- */

static void test_list_compile(void)
{
	struct mt_fw_list l, l2;
	char e[256], buf[MT_PREFIX_STRLEN];

	CHECK(mt_fw_list_compile("x", V("198.51.100.0/24", "192.0.2.0/24",
					 "192.0.2.0/25", "198.51.100.0/24",
					 "203.0.113.7"),
				 5, &l, e, sizeof(e)) == 0);
	CHECK_STR(l.name, "x");
	CHECK(l.family == AF_INET);
	CHECK(l.n == 3);
	CHECK_STR(mt_prefix_format(&l.prefixes[0], buf, sizeof(buf)),
		  "192.0.2.0/24");
	CHECK_STR(mt_prefix_format(&l.prefixes[1], buf, sizeof(buf)),
		  "198.51.100.0/24");
	CHECK_STR(mt_prefix_format(&l.prefixes[2], buf, sizeof(buf)),
		  "203.0.113.7/32");
	CHECK(strlen(l.digest) == 16);
	/* the same content in another order: the same digest */
	CHECK(mt_fw_list_compile("y", V("203.0.113.7/32", "198.51.100.0/24",
					 "192.0.2.0/24"),
				 3, &l2, e, sizeof(e)) == 0);
	CHECK_STR(l.digest, l2.digest);
	mt_fw_list_fini(&l2);
	/* other content: another digest */
	CHECK(mt_fw_list_compile("y", V("203.0.113.6/32", "198.51.100.0/24",
					 "192.0.2.0/24"),
				 3, &l2, e, sizeof(e)) == 0);
	CHECK(strcmp(l.digest, l2.digest) != 0);
	mt_fw_list_fini(&l2);
	mt_fw_list_fini(&l);
	mt_fw_list_fini(&l); /* twice is harmless */

	/* empty: ipv4, no prefixes; ipv6 empty differs only by family */
	CHECK(mt_fw_list_compile("e", NULL, 0, &l, e, sizeof(e)) == 0);
	CHECK(l.family == AF_INET && l.n == 0 && l.prefixes == NULL);
	{
		char d6[MT_FW_DIGEST_STRLEN];

		mt_fw_list_digest(AF_INET6, NULL, 0, d6);
		CHECK(strcmp(d6, l.digest) != 0);
	}
	mt_fw_list_fini(&l);

	CHECK(mt_fw_list_compile("v6", V("2001:db8::/32", "2001:db8:1::/48"),
				 2, &l, e, sizeof(e)) == 0);
	CHECK(l.family == AF_INET6 && l.n == 1);
	mt_fw_list_fini(&l);

	CHECK(mt_fw_list_compile("bad", V("192.0.2.0/24", "192.0.2.1/24"), 2,
				 &l, e, sizeof(e)) == -EINVAL);
	CHECK_STR(e, "list \"bad\": prefixes[1]: malformed prefix \"192.0.2.1/24\": host bits set (did you mean 192.0.2.0/24?)");
	CHECK(mt_fw_list_compile("mix", V("192.0.2.0/24", "2001:db8::/32"), 2,
				 &l, e, sizeof(e)) == -EINVAL);
	CHECK_STR(e, "list \"mix\": prefixes[1] \"2001:db8::/32\": an ipv6 prefix in an ipv4 list (one family per list)");
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* n distinct /32s in 10.0.0.0/8 and up, in a shuffled order, as strings */
static char **make_prefixes(size_t n, uint32_t offset, char **store)
{
	char **v = calloc(n, sizeof(*v));
	char *s = calloc(n, 20);

	for (size_t i = 0; i < n; i++) {
		uint32_t a = 0x0a000000u + (uint32_t)((i * 7919u) % n) * 2 +
			     offset;

		v[i] = s + i * 20;
		snprintf(v[i], 20, "%u.%u.%u.%u/32", a >> 24, (a >> 16) & 255,
			 (a >> 8) & 255, a & 255);
	}
	*store = s;
	return v;
}

static void test_list_100k_and_delta(void)
{
	const size_t n = 100000;
	char *s1, *s2, e[256];
	char **v1 = make_prefixes(n, 0, &s1);
	struct mt_fw_list a, b;
	struct mt_prefix *add, *rem;
	size_t n_add, n_rem;
	double t0, t1, t2;

	t0 = now_ms();
	CHECK(mt_fw_list_compile("big", v1, n, &a, e, sizeof(e)) == 0);
	t1 = now_ms();
	CHECK(a.n == n);
	for (size_t i = 1; i < a.n; i++)
		CHECK(mt_prefix_cmp(&a.prefixes[i - 1], &a.prefixes[i]) < 0);
	/* one prefix changed: remove the first, add an odd address */
	v1[0] = "10.0.0.1/32";
	CHECK(mt_fw_list_compile("big", v1, n, &b, e, sizeof(e)) == 0);
	CHECK(strcmp(a.digest, b.digest) != 0);
	t2 = now_ms();
	CHECK(mt_fw_list_delta(&a, &b, &add, &n_add, &rem, &n_rem) == 0);
	fprintf(stderr, "  100k list: compile %.1f ms, delta %.2f ms\n",
		t1 - t0, now_ms() - t2);
	CHECK(n_add == 1 && n_rem == 1);
	{
		char buf[MT_PREFIX_STRLEN];

		if (n_add)
			CHECK_STR(mt_prefix_format(&add[0], buf, sizeof(buf)),
				  "10.0.0.1/32");
		if (n_rem)
			CHECK_STR(mt_prefix_format(&rem[0], buf, sizeof(buf)),
				  "10.0.0.0/32");
	}
	free(add);
	free(rem);
	/* identical: empty deltas */
	CHECK(mt_fw_list_delta(&a, &a, &add, &n_add, &rem, &n_rem) == 0);
	CHECK(n_add == 0 && n_rem == 0 && !add && !rem);
	mt_fw_list_fini(&b);
	/* to an empty list and back */
	CHECK(mt_fw_list_compile("big", NULL, 0, &b, e, sizeof(e)) == 0);
	CHECK(mt_fw_list_delta(&a, &b, &add, &n_add, &rem, &n_rem) == 0);
	CHECK(n_add == 0 && n_rem == n);
	free(add);
	free(rem);
	CHECK(mt_fw_list_delta(&b, &a, &add, &n_add, &rem, &n_rem) == 0);
	CHECK(n_add == n && n_rem == 0);
	for (size_t i = 0; i < n_add; i++)
		if (mt_prefix_cmp(&add[i], &a.prefixes[i]) != 0) {
			CHECK(!"add is the list in order");
			break;
		}
	free(add);
	free(rem);
	mt_fw_list_fini(&b);
	/* half overlap */
	{
		char **v2 = make_prefixes(n, 1, &s2);
		struct mt_fw_list c;

		for (size_t i = 0; i < n / 2; i++)
			v2[i] = v1[i];
		CHECK(mt_fw_list_compile("big", v2, n, &c, e, sizeof(e)) == 0);
		CHECK(mt_fw_list_delta(&a, &c, &add, &n_add, &rem, &n_rem) == 0);
		CHECK(n_add == n_rem);
		CHECK(a.n - n_rem + n_add == c.n);
		free(add);
		free(rem);
		mt_fw_list_fini(&c);
		free(v2);
		free(s2);
	}
	mt_fw_list_fini(&a);
	free(v1);
	free(s1);
}

int main(void)
{
	char e[128];

	if (mt_metal_init(&metal, NULL, e, sizeof(e)) < 0) {
		fprintf(stderr, "metal: %s\n", e);
		return 1;
	}
	RUN(test_valid);
	RUN(test_issue_bad_rules);
	RUN(test_rule_checks);
	RUN(test_list_checks);
	RUN(test_canonical);
	RUN(test_canonical_idempotent_equal);
	RUN(test_small);
	RUN(test_list_compile);
	RUN(test_list_100k_and_delta);
	mt_metal_fini(&metal);
	TEST_MAIN_END();
}
