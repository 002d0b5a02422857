/* The firewall status join (agent/fw_status.c): a customer's firewall
 * config against hand-built observations of the kernel. */
#include "fw_status.h"
#include "mt_cleanup.h"
#include "mt_fw.h"
#include "mt_json.h"
#include "mt_kstate.h"
#include "mt_metal.h"
#include "mt_test.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct mt_metal metal;

/* A customer with a full firewall: a list, a rule on it, a rate limit
 * whose canonical form differs from what is written (protocol by number,
 * ports unsorted, burst 0), a rule with every other match. */
static const char acme_json[] =
	"{\"id\":7,\"name\":\"acme\",\"prefixes\":[\"203.0.113.0/24\"],"
	"\"firewall\":{\"defaultAction\":\"block\","
	"\"lists\":[{\"name\":\"bad\",\"prefixes\":[\"198.51.100.0/24\","
	"\"198.51.100.128/25\",\"192.0.2.0/24\"]}],"
	"\"rules\":["
	"{\"id\":10,\"action\":\"block\",\"srcList\":\"bad\"},"
	"{\"id\":20,\"action\":\"rate_limit\",\"protocol\":\"6\","
	"\"dstPorts\":[\"90\",\"22\",\"80-89\"],"
	"\"rateLimit\":{\"packetsPerSecond\":\"1000\"}},"
	"{\"id\":30,\"action\":\"allow\",\"monitor\":true,\"protocol\":\"icmp\","
	"\"icmp\":{\"type\":8,\"code\":0},\"length\":{\"min\":20,\"max\":84},"
	"\"ttl\":{\"min\":1,\"max\":64},\"dstPrefixes\":[\"203.0.113.0/25\"],"
	"\"description\":\"pings\"}]}}";

static Mt__Config__Customer *customer(const char *json)
{
	ProtobufCMessage *m = NULL;
	char err[256] = "";

	CHECK(mt_json_parse_message(&mt__config__customer__descriptor, json,
				    strlen(json), &m, err, sizeof(err)) == 0);
	if (*err)
		fprintf(stderr, "bad test customer: %s\n", err);
	return (Mt__Config__Customer *)m;
}

static void *append(void *arr, size_t n, void *item)
{
	void **v = realloc(arr, (n + 1) * sizeof(void *));

	if (!v)
		abort();
	v[n] = item;
	return v;
}

static Mt__Kernel__FirewallCounters *counters(uint32_t id, uint64_t packets,
					      uint64_t bytes, uint64_t limited)
{
	Mt__Kernel__FirewallCounters *c = malloc(sizeof(*c));

	mt__kernel__firewall_counters__init(c);
	c->id = id;
	c->packets = packets;
	c->bytes = bytes;
	c->limited_packets = limited;
	return c;
}

/* An observation where the kernel holds exactly c's firewall in c's
 * namespace (what mt-fastpath reports once it is applied): canonical rules,
 * compiled lists, counters rule id * 10 packets, * 1000 bytes, * 1 limited,
 * and 5 / 500 for the default. With other_ns, a second firewall (another
 * customer's, with other counters) comes first. */
static Mt__Kernel__KernelState *kernel_of(const Mt__Config__Customer *c,
					  bool other_ns)
{
	Mt__Kernel__KernelState *st = mt_kstate_new();
	const Mt__Config__Firewall *fw = c->firewall;
	Mt__Kernel__Firewall *k;
	char ns[IFNAMSIZ], err[256];

	if (other_ns) {
		k = malloc(sizeof(*k));
		mt__kernel__firewall__init(k);
		mt_metal_ifname(&metal, "globex", ns, sizeof(ns));
		mt_kstate_set_str(&k->netns, ns);
		mt_kstate_set_str(&k->default_action, "allow");
		for (uint32_t id = 0; id <= 30; id += 10)
			k->counters = append(k->counters, k->n_counters++,
					     counters(id, 999, 999, 999));
		st->firewalls = append(st->firewalls, st->n_firewalls++, k);
	}
	k = malloc(sizeof(*k));
	mt__kernel__firewall__init(k);
	mt_metal_ifname(&metal, c->name, ns, sizeof(ns));
	mt_kstate_set_str(&k->netns, ns);
	mt_kstate_set_str(&k->owner, c->name);
	mt_kstate_set_str(&k->default_action,
			  mt_fw_default_action(fw ? fw->default_action : ""));
	for (size_t i = 0; fw && i < fw->n_rules; i++) {
		Mt__Config__FirewallRule *r = NULL;
		uint32_t id = fw->rules[i]->id;

		CHECK(mt_fw_rule_canonical(fw, fw->rules[i], &r, err,
					   sizeof(err)) == 0);
		k->rules = append(k->rules, k->n_rules++, r);
		k->counters = append(k->counters, k->n_counters++,
				     counters(id, id * 10, id * 1000, id));
	}
	k->counters = append(k->counters, k->n_counters++,
			     counters(0, 5, 500, 0));
	for (size_t i = 0; fw && i < fw->n_lists; i++) {
		Mt__Kernel__FirewallList *l = malloc(sizeof(*l));
		struct mt_fw_list fl;

		mt__kernel__firewall_list__init(l);
		CHECK(mt_fw_list_compile(fw->lists[i]->name,
					 fw->lists[i]->prefixes,
					 fw->lists[i]->n_prefixes, &fl, err,
					 sizeof(err)) == 0);
		mt_kstate_set_str(&l->name, fw->lists[i]->name);
		mt_kstate_set_str(&l->family, mt_fw_family_name(fl.family));
		mt_kstate_set_str(&l->digest, fl.digest);
		l->count = (uint32_t)fl.n;
		mt_fw_list_fini(&fl);
		k->lists = append(k->lists, k->n_lists++, l);
	}
	st->firewalls = append(st->firewalls, st->n_firewalls++, k);
	return st;
}

static Mt__Rpc__FirewallStatus *status(const Mt__Config__Customer *c,
				       const Mt__Kernel__KernelState *o)
{
	Mt__Rpc__FirewallStatus *s = NULL;
	char err[256] = "";

	CHECK(mt_fw_status_build(&metal, c, o, &s, err, sizeof(err)) == 0);
	CHECK_STR(err, "");
	CHECK(s != NULL);
	return s;
}

static void free_msg(void *m)
{
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
}

static Mt__Kernel__Firewall *last_fw(Mt__Kernel__KernelState *o)
{
	return o->firewalls[o->n_firewalls - 1];
}

static void test_no_firewall(void)
{
	Mt__Config__Customer *c = customer("{\"id\":1,\"name\":\"plain\"}");
	Mt__Kernel__KernelState *o = mt_kstate_new();
	Mt__Rpc__FirewallStatus *s;
	char *json;

	if (!c)
		return;
	/* nothing configured, nothing in the kernel */
	s = status(c, o);
	if (s) {
		CHECK_STR(s->customer, "plain");
		CHECK_STR(s->default_action, "allow");
		CHECK(s->n_rules == 0 && s->n_lists == 0);
		CHECK(s->default_counters == NULL);
		CHECK(s->in_sync);
		json = mt_json_dump_message(&s->base, 0);
		CHECK_STR(json, "{\"customer\":\"plain\",\"defaultAction\":"
				"\"allow\",\"inSync\":true}");
		free(json);
	}
	free_msg(s);
	/* a NULL observation is an empty one */
	CHECK(mt_fw_status_build(&metal, c, NULL, &s, NULL, 0) == 0);
	CHECK(s && s->in_sync);
	free_msg(s);
	mt_kstate_free(o);

	/* an empty, allowing kernel firewall is the same */
	o = kernel_of(c, true);
	s = status(c, o);
	CHECK(s && s->in_sync && s->n_rules == 0);
	CHECK(s && s->default_counters && s->default_counters->packets == 5);
	free_msg(s);
	/* a kernel firewall that blocks is not */
	mt_kstate_set_str(&last_fw(o)->default_action, "block");
	s = status(c, o);
	CHECK(s && !s->in_sync);
	free_msg(s);
	mt_kstate_free(o);
	free_msg(c);

	/* an empty firewall section that blocks, and no kernel firewall */
	c = customer("{\"id\":1,\"name\":\"plain\",\"firewall\":"
		     "{\"defaultAction\":\"block\"}}");
	s = c ? status(c, NULL) : NULL;
	CHECK(s && !s->in_sync);
	CHECK(s && !strcmp(s->default_action, "block"));
	free_msg(s);
	free_msg(c);
}

static void test_in_sync(void)
{
	Mt__Config__Customer *c = customer(acme_json);
	Mt__Kernel__KernelState *o;
	Mt__Rpc__FirewallStatus *s;
	const Mt__Config__FirewallRule *r;

	if (!c)
		return;
	o = kernel_of(c, true);
	s = status(c, o);
	if (!s)
		goto out;
	CHECK_STR(s->customer, "acme");
	CHECK_STR(s->default_action, "block");
	CHECK(s->in_sync);
	CHECK(s->n_rules == 3);
	for (size_t i = 0; i < s->n_rules && i < 3; i++) {
		const uint32_t want[] = { 10, 20, 30 };
		const Mt__Rpc__FirewallRuleStatus *rs = s->rules[i];

		CHECK(rs->rule && rs->rule->id == want[i]);
		CHECK(rs->installed);
		/* this customer's counters, not the other namespace's */
		CHECK(rs->counters && rs->counters->id == want[i] &&
		      rs->counters->packets == want[i] * 10 &&
		      rs->counters->bytes == want[i] * 1000 &&
		      rs->counters->limited_packets == want[i]);
	}
	/* rules in canonical form */
	r = s->n_rules == 3 ? s->rules[1]->rule : NULL;
	if (r) {
		CHECK_STR(r->protocol, "tcp");
		CHECK(r->n_dst_ports == 2);
		if (r->n_dst_ports == 2) {
			CHECK_STR(r->dst_ports[0], "22");
			CHECK_STR(r->dst_ports[1], "80-90");
		}
		CHECK(r->rate_limit && r->rate_limit->packets_per_second == 1000 &&
		      r->rate_limit->burst == 5);
	}
	r = s->n_rules == 3 ? s->rules[0]->rule : NULL;
	CHECK(r && !strcmp(r->family, "ipv4"));
	r = s->n_rules == 3 ? s->rules[2]->rule : NULL;
	CHECK(r && r->monitor && !strcmp(r->description, "pings"));
	CHECK(r && r->icmp && r->icmp->code_present_case ==
				      MT__CONFIG__ICMP_MATCH__CODE_PRESENT_CODE);
	CHECK(s->default_counters && s->default_counters->id == 0 &&
	      s->default_counters->packets == 5 &&
	      s->default_counters->bytes == 500);
	/* the list compiled: the covered /25 is dropped */
	CHECK(s->n_lists == 1);
	if (s->n_lists == 1) {
		CHECK_STR(s->lists[0]->name, "bad");
		CHECK_STR(s->lists[0]->family, "ipv4");
		CHECK(s->lists[0]->count == 2);
		CHECK(s->lists[0]->installed);
	}
out:
	free_msg(s);
	mt_kstate_free(o);
	free_msg(c);
}

/* Each way the kernel can differ from the config. */
static void test_drift(void)
{
	Mt__Config__Customer *c = customer(acme_json);
	Mt__Kernel__KernelState *o;
	Mt__Kernel__Firewall *k;
	Mt__Rpc__FirewallStatus *s;
	void *tmp;

	if (!c)
		return;

	/* no kernel firewall at all: everything pending, no counters */
	o = mt_kstate_new();
	s = status(c, o);
	CHECK(s && !s->in_sync && s->n_rules == 3 && s->n_lists == 1);
	for (size_t i = 0; s && i < s->n_rules; i++)
		CHECK(!s->rules[i]->installed && !s->rules[i]->counters);
	CHECK(s && !s->default_counters);
	CHECK(s && s->n_lists == 1 && !s->lists[0]->installed &&
	      s->lists[0]->count == 2);
	free_msg(s);
	mt_kstate_free(o);

	/* rule 20 changed by hand: it is pending, keeps its counters; the
	 * others stay installed */
	o = kernel_of(c, false);
	k = last_fw(o);
	mt_kstate_set_str(&k->rules[1]->dst_ports[0], "23");
	s = status(c, o);
	CHECK(s && !s->in_sync);
	CHECK(s && s->rules[0]->installed && !s->rules[1]->installed &&
	      s->rules[2]->installed);
	CHECK(s && s->rules[1]->counters && s->rules[1]->counters->packets == 200);
	free_msg(s);
	mt_kstate_free(o);

	/* rule 20 missing in the kernel */
	o = kernel_of(c, false);
	k = last_fw(o);
	free_msg(k->rules[1]);
	k->rules[1] = k->rules[2];
	k->n_rules = 2;
	s = status(c, o);
	CHECK(s && !s->in_sync && s->rules[0]->installed &&
	      !s->rules[1]->installed && s->rules[2]->installed);
	free_msg(s);
	mt_kstate_free(o);

	/* the same rules in another order: each installed, not in sync */
	o = kernel_of(c, false);
	k = last_fw(o);
	tmp = k->rules[0];
	k->rules[0] = k->rules[2];
	k->rules[2] = tmp;
	s = status(c, o);
	CHECK(s && !s->in_sync);
	for (size_t i = 0; s && i < s->n_rules; i++)
		CHECK(s->rules[i]->installed);
	free_msg(s);
	mt_kstate_free(o);

	/* a rule the config does not have */
	o = kernel_of(c, false);
	k = last_fw(o);
	k->rules = append(k->rules, k->n_rules++,
			  mt_message_dup(&k->rules[0]->base));
	k->rules[3]->id = 40;
	s = status(c, o);
	CHECK(s && !s->in_sync && s->n_rules == 3);
	free_msg(s);
	mt_kstate_free(o);

	/* dirty chains */
	o = kernel_of(c, false);
	last_fw(o)->dirty = true;
	s = status(c, o);
	CHECK(s && !s->in_sync && s->rules[0]->installed);
	free_msg(s);
	mt_kstate_free(o);

	/* the default action differs */
	o = kernel_of(c, false);
	mt_kstate_set_str(&last_fw(o)->default_action, "allow");
	s = status(c, o);
	CHECK(s && !s->in_sync && !strcmp(s->default_action, "block"));
	free_msg(s);
	mt_kstate_free(o);

	/* a list with another content, another family, or absent */
	o = kernel_of(c, false);
	mt_kstate_set_str(&last_fw(o)->lists[0]->digest, "0123456789abcdef");
	s = status(c, o);
	CHECK(s && !s->in_sync && !s->lists[0]->installed);
	CHECK(s && s->rules[0]->installed);
	free_msg(s);
	mt_kstate_free(o);
	o = kernel_of(c, false);
	mt_kstate_set_str(&last_fw(o)->lists[0]->family, "ipv6");
	s = status(c, o);
	CHECK(s && !s->in_sync && !s->lists[0]->installed);
	free_msg(s);
	mt_kstate_free(o);
	o = kernel_of(c, false);
	mt_kstate_set_str(&last_fw(o)->lists[0]->name, "other");
	s = status(c, o);
	CHECK(s && !s->in_sync && !s->lists[0]->installed);
	free_msg(s);
	mt_kstate_free(o);

	/* the firewall of another namespace is not this customer's */
	o = kernel_of(c, false);
	mt_kstate_set_str(&last_fw(o)->netns, "mt0-other");
	s = status(c, o);
	CHECK(s && !s->in_sync && !s->rules[0]->installed &&
	      !s->default_counters);
	free_msg(s);
	mt_kstate_free(o);

	/* observed without counters: installed, no counters */
	o = kernel_of(c, false);
	k = last_fw(o);
	for (size_t i = 0; i < k->n_counters; i++)
		free_msg(k->counters[i]);
	k->n_counters = 0;
	s = status(c, o);
	CHECK(s && s->in_sync && s->rules[0]->installed &&
	      !s->rules[0]->counters && !s->default_counters);
	free_msg(s);
	mt_kstate_free(o);

	free_msg(c);
}

/* A config that is not valid (the agent never holds one in force) is an
 * error naming the rule or list, never a crash. */
static void test_invalid(void)
{
	Mt__Config__Customer *c;
	Mt__Rpc__FirewallStatus *s = (Mt__Rpc__FirewallStatus *)1;
	char err[256];

	c = customer("{\"id\":7,\"name\":\"acme\",\"firewall\":{\"rules\":["
		     "{\"id\":10,\"action\":\"allow\"},"
		     "{\"id\":11,\"action\":\"jump\"}]}}");
	if (c) {
		CHECK(mt_fw_status_build(&metal, c, NULL, &s, err,
					 sizeof(err)) == -EINVAL);
		CHECK(s == NULL);
		CHECK_CONTAINS(err, "customer 7 \"acme\": firewall.rules[1] "
				    "(id 11)");
	}
	free_msg(c);
	c = customer("{\"id\":7,\"name\":\"acme\",\"firewall\":{\"lists\":["
		     "{\"name\":\"bad\",\"prefixes\":[\"10.0.0.0/33\"]}]}}");
	if (c) {
		CHECK(mt_fw_status_build(&metal, c, NULL, &s, err,
					 sizeof(err)) == -EINVAL);
		CHECK_CONTAINS(err, "customer 7 \"acme\": firewall.lists[0] "
				    "\"bad\"");
	}
	free_msg(c);
	c = customer("{\"id\":7,\"name\":\"acme\",\"firewall\":"
		     "{\"defaultAction\":\"reject\"}}");
	if (c) {
		CHECK(mt_fw_status_build(&metal, c, NULL, &s, err,
					 sizeof(err)) == -EINVAL);
		CHECK_CONTAINS(err, "firewall.default_action \"reject\"");
	}
	free_msg(c);
}

/* The status message survives the RPC (pack/unpack) and JSON. */
static void test_wire(void)
{
	Mt__Config__Customer *c = customer(acme_json);
	Mt__Kernel__KernelState *o;
	Mt__Rpc__FirewallStatus *s, *back;
	ProtobufCMessage *j = NULL;
	char *text, err[256] = "";
	uint8_t *buf;
	size_t len;

	if (!c)
		return;
	o = kernel_of(c, false);
	s = status(c, o);
	if (!s)
		goto out;
	len = protobuf_c_message_get_packed_size(&s->base);
	buf = malloc(len);
	protobuf_c_message_pack(&s->base, buf);
	back = mt__rpc__firewall_status__unpack(NULL, len, buf);
	CHECK(back && back->n_rules == 3 && back->in_sync &&
	      back->rules[1]->counters->limited_packets == 20);
	free(buf);
	text = mt_json_dump_message(&s->base, 0);
	CHECK_CONTAINS(text, "\"rules\":[{\"rule\":{\"id\":10,");
	CHECK_CONTAINS(text, "\"counters\":{\"id\":20,\"packets\":\"200\","
			     "\"bytes\":\"20000\",\"limitedPackets\":\"20\"}");
	CHECK_CONTAINS(text, "\"defaultCounters\":{\"packets\":\"5\","
			     "\"bytes\":\"500\"}");
	CHECK_CONTAINS(text, "\"lists\":[{\"name\":\"bad\",\"family\":\"ipv4\","
			     "\"count\":2,\"installed\":true}],\"inSync\":true}");
	CHECK(mt_json_parse_message(&mt__rpc__firewall_status__descriptor, text,
				    strlen(text), &j, err, sizeof(err)) == 0);
	CHECK_STR(err, "");
	if (j && back) {
		uint8_t *a, *b;
		size_t la = protobuf_c_message_get_packed_size(j);
		size_t lb = protobuf_c_message_get_packed_size(&back->base);

		a = malloc(la + 1);
		b = malloc(lb + 1);
		protobuf_c_message_pack(j, a);
		protobuf_c_message_pack(&back->base, b);
		CHECK(la == lb && memcmp(a, b, la) == 0);
		free(a);
		free(b);
	}
	free_msg(j);
	free_msg(back);
	free(text);
out:
	free_msg(s);
	mt_kstate_free(o);
	free_msg(c);
}

int main(void)
{
	char err[256];

	if (mt_metal_init(&metal, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "metal: %s\n", err);
		return 1;
	}
	RUN(test_no_firewall);
	RUN(test_in_sync);
	RUN(test_drift);
	RUN(test_invalid);
	RUN(test_wire);
	mt_metal_fini(&metal);
	TEST_MAIN_END();
}
