/* The descriptor-driven proto3 JSON mapping: exact output, round trips
 * (compared as packed bytes), and every error path. */
#include "mt_cleanup.h"
#include "mt_json.h"
#include "mt_kstate.h"
#include "mt_test.h"

#include "config.pb-c.h"
#include "kernel.pb-c.h"
#include "rpc.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Packs a message into a malloc'd buffer. */
static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(m);
	buf = malloc(*len ? *len : 1);
	protobuf_c_message_pack(m, buf);
	return buf;
}

/* msg -> JSON text -> message of the same type; same packed bytes? Also
 * through the pretty-printed form. Returns the compact text (free it). */
static char *round_trip(const ProtobufCMessage *msg)
{
	size_t la, lb, lc;
	uint8_t *a = pack(msg, &la);
	char err[256] = "", *text = mt_json_dump_message(msg, 0);
	char *pretty = mt_json_dump_message(msg, 2);
	ProtobufCMessage *back = NULL, *back2 = NULL;

	CHECK(text != NULL && pretty != NULL);
	CHECK(mt_json_parse_message(msg->descriptor, text, strlen(text), &back,
				    err, sizeof(err)) == 0);
	CHECK_STR(err, "");
	CHECK(mt_json_parse_message(msg->descriptor, pretty, strlen(pretty),
				    &back2, err, sizeof(err)) == 0);
	if (back && back2) {
		uint8_t *b = pack(back, &lb);
		uint8_t *c = pack(back2, &lc);

		CHECK(la == lb && la == lc && memcmp(a, b, la) == 0 &&
		      memcmp(a, c, la) == 0);
		if (la != lb || memcmp(a, b, la))
			fprintf(stderr, "round trip differs for %s: %s\n",
				msg->descriptor->name, text);
		free(b);
		free(c);
	}
	protobuf_c_message_free_unpacked(back, NULL);
	protobuf_c_message_free_unpacked(back2, NULL);
	free(a);
	free(pretty);
	return text;
}

/* Parses text as d; expects failure with exactly want in err. */
static void expect_error(const ProtobufCMessageDescriptor *d, const char *text,
			 const char *want)
{
	ProtobufCMessage *m = (ProtobufCMessage *)1;
	char err[256] = "";
	int r = mt_json_parse_message(d, text, strlen(text), &m, err,
				      sizeof(err));

	CHECK(r == -EINVAL);
	CHECK(m == NULL);
	CHECK_STR(err, want);
	if (r == 0)
		protobuf_c_message_free_unpacked(m, NULL);
}

static ProtobufCMessage *parse_ok(const ProtobufCMessageDescriptor *d,
				  const char *text)
{
	ProtobufCMessage *m = NULL;
	char err[256] = "";

	CHECK(mt_json_parse_message(d, text, strlen(text), &m, err,
				    sizeof(err)) == 0);
	if (*err)
		fprintf(stderr, "unexpected error: %s\n", err);
	return m;
}

static void test_names(void)
{
	char buf[64];

	CHECK_STR(mt_json_name("tunnel_endpoints", buf, sizeof(buf)),
		  "tunnelEndpoints");
	CHECK_STR(mt_json_name("reconcile_interval_s", buf, sizeof(buf)),
		  "reconcileIntervalS");
	CHECK_STR(mt_json_name("id", buf, sizeof(buf)), "id");
	CHECK_STR(mt_json_name("a__b_1c", buf, sizeof(buf)), "aB1c");
	CHECK_STR(mt_json_name("tunnel_endpoints", buf, 7), "tunnel");
}

static void test_exact_text(void)
{
	char *prefixes[] = { "203.0.113.0/24", "198.51.100.0/25" };
	char *eps[] = { "192.0.2.10" };
	Mt__Config__Customer c = MT__CONFIG__CUSTOMER__INIT;
	Mt__Config__Metal m = MT__CONFIG__METAL__INIT;
	Mt__Rpc__StatusReply st = MT__RPC__STATUS_REPLY__INIT;
	Mt__Rpc__Empty e = MT__RPC__EMPTY__INIT;
	char *s;

	c.id = 7;
	c.name = "acme";
	c.n_prefixes = 2;
	c.prefixes = prefixes;
	c.n_tunnel_endpoints = 1;
	c.tunnel_endpoints = eps;
	s = mt_json_dump_message(&c.base, 0);
	CHECK_STR(s, "{\"id\":7,\"name\":\"acme\",\"prefixes\":[\"203.0.113.0/24\","
		     "\"198.51.100.0/25\"],\"tunnelEndpoints\":[\"192.0.2.10\"]}");
	free(s);

	/* zero values omitted; uint32 above INT32_MAX stays a number */
	m.instance = "lab";
	m.gre_table = 2000;
	m.fwmark = 0x4d540000;
	m.fwmark_mask = 0xffff0000;
	m.reconcile_interval_s = 30;
	s = mt_json_dump_message(&m.base, 0);
	CHECK_STR(s, "{\"instance\":\"lab\",\"greTable\":2000,\"fwmark\":1297350656,"
		     "\"fwmarkMask\":4294901760,\"reconcileIntervalS\":30}");
	free(s);

	/* uint64 as a decimal string, bool, "" omitted */
	st.paused = 1;
	st.store_revision = 12345678901234567890ull;
	st.customers = 3;
	s = mt_json_dump_message(&st.base, 0);
	CHECK_STR(s, "{\"paused\":true,\"storeRevision\":\"12345678901234567890\","
		     "\"customers\":3}");
	free(s);
	s = mt_json_dump_message(&st.base, 2);
	CHECK_STR(s, "{\n  \"paused\": true,\n  \"storeRevision\": "
		     "\"12345678901234567890\",\n  \"customers\": 3\n}");
	free(s);

	s = mt_json_dump_message(&e.base, 0);
	CHECK_STR(s, "{}");
	free(s);
}

static void test_customer_round_trip(void)
{
	char *prefixes[] = { "203.0.113.0/24", "2001:db8::/32" };
	char *eps[] = { "192.0.2.10", "192.0.2.11" };
	Mt__Config__Tunnel t1 = MT__CONFIG__TUNNEL__INIT, t2 = t1;
	Mt__Config__Tunnel *tunnels[] = { &t1, &t2 };
	Mt__Config__TunnelRoute r1 = MT__CONFIG__TUNNEL_ROUTE__INIT;
	Mt__Config__TunnelRoute *routes[] = { &r1 };
	Mt__Config__Firewall fw = MT__CONFIG__FIREWALL__INIT;
	Mt__Config__Customer c = MT__CONFIG__CUSTOMER__INIT, c2 = c;
	Mt__Config__Customer *cs[] = { &c, &c2 };
	Mt__Config__CustomerList list = MT__CONFIG__CUSTOMER_LIST__INIT;
	char *s;

	t1.name = "gre1";
	t2.name = ""; /* an all-default element still round-trips */
	r1.prefix = "10.0.0.0/8";
	r1.tunnel = "gre1";
	r1.priority = 100;
	r1.weight = 256;
	c.id = 32767;
	c.name = "acme-corp";
	c.n_prefixes = 2;
	c.prefixes = prefixes;
	c.n_tunnel_endpoints = 2;
	c.tunnel_endpoints = eps;
	c.n_tunnels = 2;
	c.tunnels = tunnels;
	c.n_routes = 1;
	c.routes = routes;
	c.firewall = &fw; /* empty but present: written as {} */
	c2.id = 1;
	list.n_customers = 2;
	list.customers = cs;

	s = round_trip(&c.base);
	CHECK_CONTAINS(s, "\"tunnels\":[{\"name\":\"gre1\"},{}]");
	CHECK_CONTAINS(s, "\"firewall\":{}");
	CHECK(strstr(s, "ddos") == NULL);
	free(s);
	free(round_trip(&list.base));
}

static void test_metal_round_trip(void)
{
	char *own[] = { "192.0.2.0/24", "2001:db8:ffff::/48" };
	Mt__Config__Metal m = MT__CONFIG__METAL__INIT;

	m.instance = "m0";
	m.n_own_prefixes = 2;
	m.own_prefixes = own;
	m.link_pool = "169.254.0.0/16";
	m.gre_table = 2000;
	m.cust_table = 2001;
	m.cust_table_alt = 2002;
	m.fwmark = 0x4d540000;
	m.fwmark_mask = 0xffff0000;
	m.rule_priority = 1000;
	m.reconcile_interval_s = UINT32_MAX;
	free(round_trip(&m.base));
	/* all defaults */
	mt__config__metal__init(&m);
	free(round_trip(&m.base));
}

static void test_kstate_plan_round_trip(void)
{
	Mt__Kernel__KernelState *st = mt_kstate_new();
	Mt__Kernel__Plan *p = mt_plan_new();
	Mt__Kernel__Netns ns = MT__KERNEL__NETNS__INIT;
	Mt__Kernel__Link *l;
	Mt__Kernel__Route *r;
	Mt__Kernel__Rule *ru;
	Mt__Kernel__Op *op;
	Mt__Kernel__OpResult res = MT__KERNEL__OP_RESULT__INIT;
	char *s;

	mt_kstate_set_str(&mt_kstate_add_netns(st)->name, "mt0-acme");
	l = mt_kstate_add_link(st);
	mt_kstate_set_str(&l->name, "mt0-acme");
	mt_kstate_set_str(&l->kind, "veth");
	mt_kstate_set_str(&l->peer_netns, "mt0-acme");
	mt_kstate_set_str(&l->peer_name, "eth0");
	l->up = 1;
	l->mtu = 1500;
	l->ifindex = 42;
	r = mt_kstate_add_route(st);
	r->table = 2000;
	mt_kstate_set_str(&r->dst, "203.0.113.0/24");
	mt_kstate_set_str(&r->dev, "mt0-acme");
	ru = mt_kstate_add_rule(st);
	ru->priority = 1000;
	ru->fwmark = 0x4d540000;
	ru->fwmask = 0xffff0000;
	ru->table = 2000;
	free(round_trip(&st->base));

	/* oneofs: every member kind, an all-default member, both actions */
	mt_plan_add(p, MT__KERNEL__OP__ACTION__CREATE, &st->links[0]->base);
	mt_plan_add(p, MT__KERNEL__OP__ACTION__DELETE, &st->routes[0]->base);
	mt_plan_add(p, MT__KERNEL__OP__ACTION__DELETE, &ns.base);
	op = mt_plan_add(p, MT__KERNEL__OP__ACTION__CREATE, &st->rules[0]->base);
	CHECK(op && p->n_ops == 4);
	s = round_trip(&p->base);
	CHECK_CONTAINS(s, "{\"action\":\"DELETE\",\"netns\":{}}");
	CHECK_CONTAINS(s, "{\"rule\":{");
	CHECK_CONTAINS(s, "{\"action\":\"DELETE\",\"route\":{");
	free(s);

	res.error = -EEXIST;
	res.message = "exists";
	s = round_trip(&res.base);
	CHECK_STR(s, "{\"error\":-17,\"message\":\"exists\"}");
	free(s);

	mt_kstate_free(st);
	mt_plan_free(p);
}

static void test_bytes_int64(void)
{
	uint8_t body[] = { 0x00, 0xff, 0xfe, 'a', 0x80 };
	Mt__Rpc__Request rq = MT__RPC__REQUEST__INIT;
	char *s;

	rq.service = "mt.rpc.Agent";
	rq.method = 3;
	rq.deadline_ms = UINT64_MAX;
	rq.body.data = body;
	for (size_t n = 0; n <= sizeof(body); n++) {
		rq.body.len = n;
		free(round_trip(&rq.base));
	}
	rq.body.len = 5;
	s = mt_json_dump_message(&rq.base, 0);
	CHECK_STR(s, "{\"service\":\"mt.rpc.Agent\",\"method\":3,"
		     "\"deadlineMs\":\"18446744073709551615\",\"body\":\"AP/+YYA=\"}");
	free(s);
}

static void test_input_forms(void)
{
	Mt__Config__Customer *c;
	Mt__Rpc__Request *rq;
	Mt__Kernel__Plan *p;
	Mt__Kernel__OpResult *res;

	/* proto names and JSON names, numbers as strings and integral reals,
	 * null as default */
	c = (Mt__Config__Customer *)parse_ok(
		&mt__config__customer__descriptor,
		"{\"id\":\"42\",\"name\":null,\"tunnel_endpoints\":[\"192.0.2.1\"],"
		"\"flowTracking\":{},\"ddos\":null,\"prefixes\":null}");
	if (c) {
		CHECK(c->id == 42);
		CHECK_STR(c->name, "");
		CHECK(c->n_tunnel_endpoints == 1);
		CHECK_STR(c->tunnel_endpoints[0], "192.0.2.1");
		CHECK(c->flow_tracking != NULL && c->ddos == NULL);
		protobuf_c_message_free_unpacked(&c->base, NULL);
	}
	c = (Mt__Config__Customer *)parse_ok(&mt__config__customer__descriptor,
					     "{\"id\":1e3}");
	CHECK(c && c->id == 1000);
	if (c)
		protobuf_c_message_free_unpacked(&c->base, NULL);

	/* 64-bit as numbers or strings; bytes URL-safe, unpadded */
	rq = (Mt__Rpc__Request *)parse_ok(&mt__rpc__request__descriptor,
					  "{\"deadlineMs\":1700000000000,"
					  "\"body\":\"AP_-YYA\"}");
	if (rq) {
		CHECK(rq->deadline_ms == 1700000000000ull);
		CHECK(rq->body.len == 5 && rq->body.data[1] == 0xff &&
		      rq->body.data[4] == 0x80);
		protobuf_c_message_free_unpacked(&rq->base, NULL);
	}
	rq = (Mt__Rpc__Request *)parse_ok(&mt__rpc__request__descriptor,
					  "{\"deadline_ms\":\"18446744073709551615\","
					  "\"body\":\"\"}");
	CHECK(rq && rq->deadline_ms == UINT64_MAX && rq->body.len == 0);
	if (rq)
		protobuf_c_message_free_unpacked(&rq->base, NULL);

	/* enums by number; a null oneof member is "not set" */
	p = (Mt__Kernel__Plan *)parse_ok(
		&mt__kernel__plan__descriptor,
		"{\"ops\":[{\"action\":1,\"netns\":null,\"link\":{\"name\":\"x\"}},"
		"{\"action\":\"CREATE\",\"mark_prefix\":{}}]}");
	if (p) {
		CHECK(p->n_ops == 2);
		CHECK(p->ops[0]->action == MT__KERNEL__OP__ACTION__DELETE);
		CHECK(p->ops[0]->object_case == MT__KERNEL__OP__OBJECT_LINK);
		CHECK_STR(p->ops[0]->link->name, "x");
		CHECK(p->ops[1]->object_case ==
		      MT__KERNEL__OP__OBJECT_MARK_PREFIX);
		protobuf_c_message_free_unpacked(&p->base, NULL);
	}
	/* from a json_t directly; the caller keeps its reference */
	{
		json_t *j = json_pack("{s:i,s:[s]}", "id", 9, "prefixes",
				      "192.0.2.0/24");
		ProtobufCMessage *m = NULL;
		char err[128];

		CHECK(mt_json_to_message(&mt__config__customer__descriptor, j,
					 &m, err, sizeof(err)) == 0);
		CHECK(m && ((Mt__Config__Customer *)m)->id == 9);
		CHECK(json_object_size(j) == 2);
		protobuf_c_message_free_unpacked(m, NULL);
		json_decref(j);
	}
	res = (Mt__Kernel__OpResult *)parse_ok(&mt__kernel__op_result__descriptor,
					    "{\"error\":-2147483648}");
	CHECK(res && res->error == INT32_MIN);
	if (res)
		protobuf_c_message_free_unpacked(&res->base, NULL);
}

static void test_errors(void)
{
	const ProtobufCMessageDescriptor *cust = &mt__config__customer__descriptor;
	const ProtobufCMessageDescriptor *list =
		&mt__config__customer_list__descriptor;
	const ProtobufCMessageDescriptor *plan = &mt__kernel__plan__descriptor;
	const ProtobufCMessageDescriptor *req = &mt__rpc__request__descriptor;
	ProtobufCMessage *m;
	char err[256];

	expect_error(list,
		     "{\"customers\":[{\"id\":1},{\"id\":2},"
		     "{\"id\":3,\"prefixes\":[5]}]}",
		     "customers[2].prefixes[0]: expected a string, got number");
	expect_error(list, "{\"customers\":[{\"prefixs\":[]}]}",
		     "customers[0]: unknown field \"prefixs\" in mt.config.Customer");
	expect_error(cust, "{\"prefixs\":[]}",
		     "unknown field \"prefixs\" in mt.config.Customer");
	expect_error(cust, "{\"TunnelEndpoints\":[]}",
		     "unknown field \"TunnelEndpoints\" in mt.config.Customer");
	expect_error(cust, "[]",
		     "expected an object (mt.config.Customer), got array");
	expect_error(cust, "{\"tunnelEndpoints\":[],\"tunnel_endpoints\":[]}",
		     "field \"tunnel_endpoints\" given twice (as "
		     "\"tunnelEndpoints\" and \"tunnel_endpoints\")");
	expect_error(cust, "{\"name\":7}", "name: expected a string, got number");
	expect_error(cust, "{\"name\":\"a\\u0000b\"}",
		     "name: string contains a NUL character");
	expect_error(cust, "{\"prefixes\":\"203.0.113.0/24\"}",
		     "prefixes: expected an array, got string");
	expect_error(cust, "{\"prefixes\":[null]}",
		     "prefixes[0]: expected a string, got null");
	expect_error(cust, "{\"firewall\":\"on\"}",
		     "firewall: expected an object (mt.config.Firewall), got string");
	expect_error(cust, "{\"routes\":[{\"prefix\":\"10.0.0.0/8\",\"weight\":{}}]}",
		     "routes[0].weight: expected an integer (uint32), got object");

	/* 32-bit integers */
	expect_error(cust, "{\"id\":1.5}",
		     "id: expected an integer (uint32), got 1.5");
	expect_error(cust, "{\"id\":-1}",
		     "id: value -1 out of range for uint32 (0..4294967295)");
	expect_error(cust, "{\"id\":4294967296}",
		     "id: value 4294967296 out of range for uint32 (0..4294967295)");
	expect_error(cust, "{\"id\":\"4294967296\"}",
		     "id: value 4294967296 out of range for uint32 (0..4294967295)");
	expect_error(cust, "{\"id\":\"12x\"}",
		     "id: \"12x\" is not a decimal integer (uint32)");
	expect_error(cust, "{\"id\":\" 12\"}",
		     "id: \" 12\" is not a decimal integer (uint32)");
	expect_error(cust, "{\"id\":true}",
		     "id: expected an integer (uint32), got boolean");
	expect_error(&mt__kernel__op_result__descriptor, "{\"error\":2147483648}",
		     "error: value 2147483648 out of range for int32 "
		     "(-2147483648..2147483647)");
	expect_error(&mt__kernel__op_result__descriptor, "{\"error\":-2147483649}",
		     "error: value -2147483649 out of range for int32 "
		     "(-2147483648..2147483647)");

	/* 64-bit */
	expect_error(req, "{\"deadlineMs\":\"18446744073709551616\"}",
		     "deadlineMs: value 18446744073709551616 out of range for "
		     "uint64 (0..18446744073709551615)");
	expect_error(req, "{\"deadlineMs\":1e20}",
		     "deadlineMs: value 1e+20 out of range for uint64 "
		     "(0..18446744073709551615)");
	expect_error(&mt__kernel__op_result__descriptor, "{\"error\":1.5e10}",
		     "error: value 15000000000 out of range for int32 "
		     "(-2147483648..2147483647)");
	expect_error(req, "{\"deadlineMs\":\"-1\"}",
		     "deadlineMs: value -1 out of range for uint64 "
		     "(0..18446744073709551615)");
	expect_error(req, "{\"deadlineMs\":-5}",
		     "deadlineMs: value -5 out of range for uint64 "
		     "(0..18446744073709551615)");
	expect_error(req, "{\"deadlineMs\":\"\"}",
		     "deadlineMs: \"\" is not a decimal integer (uint64)");

	/* bool, bytes, enums, oneofs */
	expect_error(&mt__kernel__kernel_state__descriptor,
		     "{\"links\":[{\"name\":\"a\"},{\"up\":\"yes\"}]}",
		     "links[1].up: expected a boolean, got string");
	expect_error(req, "{\"body\":\"!!!!\"}", "body: invalid base64");
	expect_error(req, "{\"body\":\"QUJDR\"}", "body: invalid base64");
	expect_error(req, "{\"body\":5}",
		     "body: expected a base64 string, got number");
	expect_error(plan, "{\"ops\":[{\"action\":\"CREAT\"}]}",
		     "ops[0].action: unknown value \"CREAT\" for enum "
		     "mt.kernel.Op.Action");
	expect_error(plan, "{\"ops\":[{\"action\":7}]}",
		     "ops[0].action: unknown value 7 for enum mt.kernel.Op.Action");
	expect_error(plan, "{\"ops\":[{\"action\":[]}]}",
		     "ops[0].action: expected a value name of enum "
		     "mt.kernel.Op.Action, got array");
	expect_error(plan, "{\"ops\":[{},{\"netns\":{},\"link\":{}}]}",
		     "ops[1]: \"netns\" and \"link\" are members of the same "
		     "oneof: set at most one");
	expect_error(plan, "{\"ops\":[{\"mark_table\":{},\"markPrefix\":{}}]}",
		     "ops[0]: \"mark_table\" and \"markPrefix\" are members of "
		     "the same oneof: set at most one");
	expect_error(plan, "{\"ops\":[{\"link\":{\"mtu\":-1}}]}",
		     "ops[0].link.mtu: value -1 out of range for uint32 "
		     "(0..4294967295)");

	/* syntax errors and duplicate keys come from the JSON parser */
	m = NULL;
	CHECK(mt_json_parse_message(cust, "{\"id\":", 6, &m, err,
				    sizeof(err)) == -EINVAL);
	CHECK(m == NULL);
	CHECK_CONTAINS(err, "invalid JSON at line 1 column");
	CHECK(mt_json_parse_message(cust, "{\"id\":1,\"id\":2}", 15, &m, err,
				    sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "duplicate object key");
	/* the length bounds the text: no NUL needed */
	CHECK(mt_json_parse_message(cust, "{\"id\":5}garbage", 8, &m, err,
				    sizeof(err)) == 0);
	CHECK(m && ((Mt__Config__Customer *)m)->id == 5);
	protobuf_c_message_free_unpacked(m, NULL);
	/* a NULL error buffer is fine */
	CHECK(mt_json_parse_message(cust, "{\"x\":1}", 7, &m, NULL, 0) ==
	      -EINVAL);
	/* a tiny one truncates */
	CHECK(mt_json_parse_message(cust, "{\"x\":1}", 7, &m, err, 8) == -EINVAL);
	CHECK_STR(err, "unknown");
}

/* ---- a customer with a full firewall (proto/config.proto Firewall) ---- */

/* Every FirewallRule field set, nested messages and the oneof included. */
static void test_firewall_round_trip(void)
{
	char *bad[] = { "198.51.100.0/24", "2001:db8::/32" };
	char *src[] = { "192.0.2.0/25", "192.0.2.128/25" };
	char *dst[] = { "203.0.113.0/24" };
	char *sports[] = { "1024-65535" };
	char *dports[] = { "22", "80-90", "443" };
	char *set[] = { "syn" }, *clear[] = { "ack", "rst" };
	Mt__Config__IpList l = MT__CONFIG__IP_LIST__INIT, l2 = l;
	Mt__Config__IpList *lists[] = { &l, &l2 };
	Mt__Config__RateLimit rl = MT__CONFIG__RATE_LIMIT__INIT;
	Mt__Config__TcpFlags tf = MT__CONFIG__TCP_FLAGS__INIT;
	Mt__Config__IcmpMatch icmp = MT__CONFIG__ICMP_MATCH__INIT;
	Mt__Config__Range len = MT__CONFIG__RANGE__INIT, ttl = len;
	Mt__Config__FirewallRule r1 = MT__CONFIG__FIREWALL_RULE__INIT, r2 = r1,
				 r3 = r1;
	Mt__Config__FirewallRule *rules[] = { &r1, &r2, &r3 };
	Mt__Config__Firewall fw = MT__CONFIG__FIREWALL__INIT;
	Mt__Config__Customer c = MT__CONFIG__CUSTOMER__INIT;
	char *s;

	l.name = "bad";
	l.n_prefixes = 2;
	l.prefixes = bad;
	l2.name = "empty";
	rl.packets_per_second = UINT64_MAX;
	rl.burst = 5;
	tf.n_set = 1;
	tf.set = set;
	tf.n_clear = 2;
	tf.clear = clear;
	icmp.type = 3;
	icmp.code_present_case = MT__CONFIG__ICMP_MATCH__CODE_PRESENT_CODE;
	icmp.code = 0; /* set to its default: still written */
	len.min = 20;
	len.max = 1500;
	ttl.min = 0;
	ttl.max = 255;
	r1.id = 2147483647;
	r1.description = "every field";
	r1.action = "rate_limit";
	r1.rate_limit = &rl;
	r1.monitor = 1;
	r1.family = "ipv4";
	r1.n_src_prefixes = 2;
	r1.src_prefixes = src;
	r1.n_dst_prefixes = 1;
	r1.dst_prefixes = dst;
	r1.protocol = "tcp";
	r1.n_src_ports = 1;
	r1.src_ports = sports;
	r1.n_dst_ports = 3;
	r1.dst_ports = dports;
	r1.tcp_flags = &tf;
	r1.length = &len;
	r1.fragment = 1;
	r1.ttl = &ttl;
	r2.id = 2;
	r2.action = "allow";
	r2.src_list = "bad";
	r2.dst_list = "empty";
	r2.protocol = "icmp";
	r2.icmp = &icmp;
	r3.id = 3; /* everything else default */
	fw.default_action = "block";
	fw.n_rules = 3;
	fw.rules = rules;
	fw.n_lists = 2;
	fw.lists = lists;
	c.id = 7;
	c.name = "acme";
	c.firewall = &fw;

	s = round_trip(&c.base);
	CHECK_STR(s,
		  "{\"id\":7,\"name\":\"acme\",\"firewall\":{"
		  "\"defaultAction\":\"block\",\"rules\":["
		  "{\"id\":2147483647,\"description\":\"every field\","
		  "\"action\":\"rate_limit\",\"rateLimit\":{"
		  "\"packetsPerSecond\":\"18446744073709551615\",\"burst\":\"5\"},"
		  "\"monitor\":true,\"family\":\"ipv4\","
		  "\"srcPrefixes\":[\"192.0.2.0/25\",\"192.0.2.128/25\"],"
		  "\"dstPrefixes\":[\"203.0.113.0/24\"],\"protocol\":\"tcp\","
		  "\"srcPorts\":[\"1024-65535\"],"
		  "\"dstPorts\":[\"22\",\"80-90\",\"443\"],"
		  "\"tcpFlags\":{\"set\":[\"syn\"],\"clear\":[\"ack\",\"rst\"]},"
		  "\"length\":{\"min\":20,\"max\":1500},\"fragment\":true,"
		  "\"ttl\":{\"max\":255}},"
		  "{\"id\":2,\"action\":\"allow\",\"srcList\":\"bad\","
		  "\"dstList\":\"empty\",\"protocol\":\"icmp\","
		  "\"icmp\":{\"type\":3,\"code\":0}},"
		  "{\"id\":3}],"
		  "\"lists\":[{\"name\":\"bad\",\"prefixes\":[\"198.51.100.0/24\","
		  "\"2001:db8::/32\"]},{\"name\":\"empty\"}]}}");
	free(s);

	/* the oneof not set: no "code" at all, and it stays unset */
	icmp.code_present_case = MT__CONFIG__ICMP_MATCH__CODE_PRESENT__NOT_SET;
	s = round_trip(&c.base);
	CHECK_CONTAINS(s, "\"icmp\":{\"type\":3}}");
	free(s);
	/* a byte rate, and a burst near the top of the range */
	rl.packets_per_second = 0;
	rl.bytes_per_second = 125000;
	rl.burst = 9007199254740993ull; /* 2^53 + 1: not exact as a double */
	s = round_trip(&c.base);
	CHECK_CONTAINS(s, "\"rateLimit\":{\"bytesPerSecond\":\"125000\","
			  "\"burst\":\"9007199254740993\"}");
	free(s);
}

/* What an operator writes -> protobuf -> what mtctl prints -> the same. */
static void test_firewall_json_input(void)
{
	const char *in =
		"{\"id\":7,\"name\":\"acme\",\"firewall\":{"
		"\"default_action\":\"allow\","
		"\"lists\":[{\"name\":\"bad\",\"prefixes\":[\"198.51.100.0/24\"]}],"
		"\"rules\":["
		"{\"id\":\"10\",\"action\":\"rate_limit\",\"rate_limit\":"
		"{\"packets_per_second\":1000,\"burst\":\"20\"},"
		"\"src_list\":\"bad\",\"dst_ports\":[\"53\"],\"protocol\":\"udp\"},"
		"{\"id\":11,\"action\":\"rate_limit\",\"rateLimit\":"
		"{\"bytesPerSecond\":1.25e5,\"burst\":null},\"protocol\":\"tcp\","
		"\"tcp_flags\":{\"set\":[\"syn\"],\"clear\":[]},"
		"\"length\":{\"min\":\"40\",\"max\":100},\"fragment\":false,"
		"\"ttl\":null},"
		"{\"id\":12,\"action\":\"block\",\"protocol\":\"icmpv6\","
		"\"icmp\":{\"type\":128,\"code\":\"0\"}},"
		"{\"id\":13,\"action\":\"block\",\"protocol\":\"icmp\","
		"\"icmp\":{\"type\":8,\"code\":null}}]}}";
	const char *want =
		"{\"id\":7,\"name\":\"acme\",\"firewall\":{"
		"\"defaultAction\":\"allow\",\"rules\":["
		"{\"id\":10,\"action\":\"rate_limit\",\"rateLimit\":"
		"{\"packetsPerSecond\":\"1000\",\"burst\":\"20\"},"
		"\"srcList\":\"bad\",\"protocol\":\"udp\",\"dstPorts\":[\"53\"]},"
		"{\"id\":11,\"action\":\"rate_limit\",\"rateLimit\":"
		"{\"bytesPerSecond\":\"125000\"},\"protocol\":\"tcp\","
		"\"tcpFlags\":{\"set\":[\"syn\"]},\"length\":{\"min\":40,"
		"\"max\":100}},"
		"{\"id\":12,\"action\":\"block\",\"protocol\":\"icmpv6\","
		"\"icmp\":{\"type\":128,\"code\":0}},"
		"{\"id\":13,\"action\":\"block\",\"protocol\":\"icmp\","
		"\"icmp\":{\"type\":8}}],"
		"\"lists\":[{\"name\":\"bad\",\"prefixes\":[\"198.51.100.0/24\"]}]}}";
	Mt__Config__Customer *c, *c2;
	const Mt__Config__FirewallRule *r;
	char *s, *s2;

	c = (Mt__Config__Customer *)parse_ok(&mt__config__customer__descriptor,
					     in);
	if (!c)
		return;
	CHECK(c->firewall && c->firewall->n_rules == 4 &&
	      c->firewall->n_lists == 1);
	if (c->firewall && c->firewall->n_rules == 4) {
		r = c->firewall->rules[0];
		CHECK(r->id == 10 && r->rate_limit &&
		      r->rate_limit->packets_per_second == 1000 &&
		      r->rate_limit->burst == 20);
		CHECK(r->n_dst_ports == 1 && !strcmp(r->dst_ports[0], "53"));
		r = c->firewall->rules[1];
		CHECK(r->rate_limit && r->rate_limit->bytes_per_second == 125000 &&
		      r->rate_limit->burst == 0);
		CHECK(r->tcp_flags && r->tcp_flags->n_set == 1 &&
		      r->tcp_flags->n_clear == 0);
		CHECK(r->length && r->length->min == 40 && r->length->max == 100);
		CHECK(!r->fragment && r->ttl == NULL);
		r = c->firewall->rules[2];
		CHECK(r->icmp && r->icmp->type == 128 &&
		      r->icmp->code_present_case ==
			      MT__CONFIG__ICMP_MATCH__CODE_PRESENT_CODE &&
		      r->icmp->code == 0);
		r = c->firewall->rules[3];
		CHECK(r->icmp && r->icmp->code_present_case ==
					 MT__CONFIG__ICMP_MATCH__CODE_PRESENT__NOT_SET);
	}
	s = mt_json_dump_message(&c->base, 0);
	CHECK_STR(s, want);
	/* the output is a fixed point */
	c2 = (Mt__Config__Customer *)parse_ok(&mt__config__customer__descriptor,
					      s ? s : "{}");
	s2 = c2 ? mt_json_dump_message(&c2->base, 0) : NULL;
	CHECK_STR(s2, want);
	free(s);
	free(s2);
	free(round_trip(&c->base));
	protobuf_c_message_free_unpacked(&c->base, NULL);
	if (c2)
		protobuf_c_message_free_unpacked(&c2->base, NULL);
}

#define FW(rule) "{\"firewall\":{\"rules\":[{\"id\":1}," rule "]}}"

static void test_firewall_json_errors(void)
{
	const ProtobufCMessageDescriptor *cust = &mt__config__customer__descriptor;

	/* unknown names, at every level */
	expect_error(cust, "{\"firewal\":{}}",
		     "unknown field \"firewal\" in mt.config.Customer");
	expect_error(cust, "{\"firewall\":{\"defaultAction\":\"allow\","
			   "\"default\":\"block\"}}",
		     "firewall: unknown field \"default\" in mt.config.Firewall");
	expect_error(cust, FW("{\"acton\":\"block\"}"),
		     "firewall.rules[1]: unknown field \"acton\" in "
		     "mt.config.FirewallRule");
	expect_error(cust, FW("{\"src_list\":\"a\",\"SrcList\":\"b\"}"),
		     "firewall.rules[1]: unknown field \"SrcList\" in "
		     "mt.config.FirewallRule");
	expect_error(cust, FW("{\"rateLimit\":{\"pps\":10}}"),
		     "firewall.rules[1].rateLimit: unknown field \"pps\" in "
		     "mt.config.RateLimit");
	expect_error(cust, FW("{\"tcpFlags\":{\"unset\":[]}}"),
		     "firewall.rules[1].tcpFlags: unknown field \"unset\" in "
		     "mt.config.TcpFlags");
	expect_error(cust, FW("{\"icmp\":{\"code_present\":1}}"),
		     "firewall.rules[1].icmp: unknown field \"code_present\" in "
		     "mt.config.IcmpMatch");
	expect_error(cust, "{\"firewall\":{\"lists\":[{\"name\":\"a\","
			   "\"prefix\":[]}]}}",
		     "firewall.lists[0]: unknown field \"prefix\" in "
		     "mt.config.IpList");
	expect_error(cust, FW("{\"srcPorts\":[],\"src_ports\":[]}"),
		     "firewall.rules[1]: field \"src_ports\" given twice (as "
		     "\"srcPorts\" and \"src_ports\")");

	/* wrong types */
	expect_error(cust, "{\"firewall\":{\"rules\":{\"id\":1}}}",
		     "firewall.rules: expected an array, got object");
	expect_error(cust, "{\"firewall\":{\"rules\":[5]}}",
		     "firewall.rules[0]: expected an object "
		     "(mt.config.FirewallRule), got number");
	expect_error(cust, FW("{\"action\":1}"),
		     "firewall.rules[1].action: expected a string, got number");
	expect_error(cust, FW("{\"monitor\":\"yes\"}"),
		     "firewall.rules[1].monitor: expected a boolean, got string");
	expect_error(cust, FW("{\"fragment\":1}"),
		     "firewall.rules[1].fragment: expected a boolean, got number");
	expect_error(cust, FW("{\"dstPorts\":[22]}"),
		     "firewall.rules[1].dstPorts[0]: expected a string, got "
		     "number");
	expect_error(cust, FW("{\"srcPrefixes\":\"10.0.0.0/8\"}"),
		     "firewall.rules[1].srcPrefixes: expected an array, got "
		     "string");
	expect_error(cust, FW("{\"tcpFlags\":\"syn\"}"),
		     "firewall.rules[1].tcpFlags: expected an object "
		     "(mt.config.TcpFlags), got string");
	expect_error(cust, FW("{\"tcpFlags\":{\"set\":[\"syn\",null]}}"),
		     "firewall.rules[1].tcpFlags.set[1]: expected a string, got "
		     "null");
	expect_error(cust, FW("{\"length\":[20,100]}"),
		     "firewall.rules[1].length: expected an object "
		     "(mt.config.Range), got array");
	expect_error(cust, FW("{\"ttl\":{\"min\":-1}}"),
		     "firewall.rules[1].ttl.min: value -1 out of range for "
		     "uint32 (0..4294967295)");
	expect_error(cust, FW("{\"icmp\":{\"code\":4294967296}}"),
		     "firewall.rules[1].icmp.code: value 4294967296 out of range "
		     "for uint32 (0..4294967295)");
	expect_error(cust, FW("{\"icmp\":{\"code\":true}}"),
		     "firewall.rules[1].icmp.code: expected an integer (uint32), "
		     "got boolean");
	expect_error(cust, FW("{\"id\":\"one\"}"),
		     "firewall.rules[1].id: \"one\" is not a decimal integer "
		     "(uint32)");

	/* uint64 rates: strings or numbers, integral, in range */
	expect_error(cust, FW("{\"rateLimit\":{\"packetsPerSecond\":\"fast\"}}"),
		     "firewall.rules[1].rateLimit.packetsPerSecond: \"fast\" is "
		     "not a decimal integer (uint64)");
	expect_error(cust, FW("{\"rateLimit\":{\"packetsPerSecond\":1.5}}"),
		     "firewall.rules[1].rateLimit.packetsPerSecond: expected an "
		     "integer (uint64), got 1.5");
	expect_error(cust, FW("{\"rateLimit\":{\"bytesPerSecond\":-1}}"),
		     "firewall.rules[1].rateLimit.bytesPerSecond: value -1 out "
		     "of range for uint64 (0..18446744073709551615)");
	expect_error(cust, FW("{\"rateLimit\":{\"burst\":"
			      "\"18446744073709551616\"}}"),
		     "firewall.rules[1].rateLimit.burst: value "
		     "18446744073709551616 out of range for uint64 "
		     "(0..18446744073709551615)");
	expect_error(cust, FW("{\"rateLimit\":{\"burst\":[]}}"),
		     "firewall.rules[1].rateLimit.burst: expected an integer "
		     "(uint64), got array");
	/* a uint64 number is exact up to INT64_MAX (no detour through a
	 * double), also past 2^53 */
	{
		const char *t = FW("{\"rateLimit\":{\"packetsPerSecond\":"
				   "9007199254740993,\"burst\":"
				   "9223372036854775807}}");
		Mt__Config__Customer *c = (Mt__Config__Customer *)parse_ok(
			cust, t);
		const Mt__Config__RateLimit *rl =
			c && c->firewall && c->firewall->n_rules == 2 ?
				c->firewall->rules[1]->rate_limit :
				NULL;

		CHECK(rl && rl->packets_per_second == 9007199254740993ull &&
		      rl->burst == INT64_MAX);
		if (c)
			protobuf_c_message_free_unpacked(&c->base, NULL);
	}
	expect_error(cust, FW("{\"rateLimit\":1000}"),
		     "firewall.rules[1].rateLimit: expected an object "
		     "(mt.config.RateLimit), got number");
}

/* ---- every scalar type, through a descriptor built by hand ---- */

typedef struct {
	ProtobufCMessage base;
	int32_t a_int32, b_sint32, c_sfixed32;
	uint32_t d_uint32, e_fixed32;
	int64_t f_int64, g_sint64, h_sfixed64;
	uint64_t i_uint64, j_fixed64;
	float k_float;
	double l_double;
	protobuf_c_boolean m_bool;
	ProtobufCBinaryData n_bytes;
	size_t n_o_doubles;
	double *o_doubles;
	size_t n_p_int64s;
	int64_t *p_int64s;
	size_t n_q_blobs;
	ProtobufCBinaryData *q_blobs;
	size_t n_r_floats;
	float *r_floats;
	size_t n_s_bools;
	protobuf_c_boolean *s_bools;
} AllTypes;

#define F(id, nm, lbl, ty, q, fl)                                              \
	{ #nm, id, PROTOBUF_C_LABEL_##lbl, PROTOBUF_C_TYPE_##ty, q,           \
	  offsetof(AllTypes, nm), NULL, NULL, fl, 0, NULL, NULL }
#define FR(id, nm, ty)                                                         \
	F(id, nm, REPEATED, ty, offsetof(AllTypes, n_##nm),                    \
	  PROTOBUF_C_FIELD_FLAG_PACKED)

static const ProtobufCFieldDescriptor all_fields[] = {
	F(1, a_int32, NONE, INT32, 0, 0),
	F(2, b_sint32, NONE, SINT32, 0, 0),
	F(3, c_sfixed32, NONE, SFIXED32, 0, 0),
	F(4, d_uint32, NONE, UINT32, 0, 0),
	F(5, e_fixed32, NONE, FIXED32, 0, 0),
	F(6, f_int64, NONE, INT64, 0, 0),
	F(7, g_sint64, NONE, SINT64, 0, 0),
	F(8, h_sfixed64, NONE, SFIXED64, 0, 0),
	F(9, i_uint64, NONE, UINT64, 0, 0),
	F(10, j_fixed64, NONE, FIXED64, 0, 0),
	F(11, k_float, NONE, FLOAT, 0, 0),
	F(12, l_double, NONE, DOUBLE, 0, 0),
	F(13, m_bool, NONE, BOOL, 0, 0),
	F(14, n_bytes, NONE, BYTES, 0, 0),
	FR(15, o_doubles, DOUBLE),
	FR(16, p_int64s, INT64),
	F(17, q_blobs, REPEATED, BYTES, offsetof(AllTypes, n_q_blobs), 0),
	FR(18, r_floats, FLOAT),
	FR(19, s_bools, BOOL),
};
static const unsigned all_by_name[] = { 0,  1,  2,  3,  4,  5,  6,
					7,  8,  9,  10, 11, 12, 13,
					14, 15, 16, 17, 18 };
static const ProtobufCIntRange all_ranges[] = { { 1, 0 }, { 0, 19 } };

static void all_init(ProtobufCMessage *m);

static const ProtobufCMessageDescriptor all_desc = {
	PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
	"mt.test.AllTypes",
	"AllTypes",
	"AllTypes",
	"mt.test",
	sizeof(AllTypes),
	MT_ARRAY_SIZE(all_fields),
	all_fields,
	all_by_name,
	1,
	all_ranges,
	(ProtobufCMessageInit)all_init,
	NULL,
	NULL,
	NULL,
};

static void all_init(ProtobufCMessage *m)
{
	memset(m, 0, sizeof(AllTypes));
	*m = (ProtobufCMessage)PROTOBUF_C_MESSAGE_INIT(&all_desc);
}

static void test_all_scalars(void)
{
	double ds[] = { NAN, INFINITY, -INFINITY, 0, -2.5, 1e300 };
	int64_t is[] = { INT64_MIN, -1, 0, INT64_MAX };
	float fs[] = { 1.5f, -0.25f, 3.4e38f };
	protobuf_c_boolean bs[] = { 1, 0, 1 };
	uint8_t raw[] = "\x01\x02\x03\x04";
	ProtobufCBinaryData blobs[] = { { 0, NULL }, { 1, raw }, { 2, raw },
					{ 3, raw }, { 4, raw } };
	AllTypes a, *b;
	char *s;

	all_init(&a.base);
	a.a_int32 = INT32_MIN;
	a.b_sint32 = -7;
	a.c_sfixed32 = INT32_MAX;
	a.d_uint32 = UINT32_MAX;
	a.e_fixed32 = 1;
	a.f_int64 = INT64_MIN;
	a.g_sint64 = -1234567890123ll;
	a.h_sfixed64 = INT64_MAX;
	a.i_uint64 = UINT64_MAX;
	a.j_fixed64 = 1ull << 63;
	a.k_float = 0.5f;
	a.l_double = -1e-300;
	a.m_bool = 1;
	a.n_bytes = (ProtobufCBinaryData){ 4, raw };
	a.n_o_doubles = MT_ARRAY_SIZE(ds);
	a.o_doubles = ds;
	a.n_p_int64s = MT_ARRAY_SIZE(is);
	a.p_int64s = is;
	a.n_q_blobs = MT_ARRAY_SIZE(blobs);
	a.q_blobs = blobs;
	a.n_r_floats = MT_ARRAY_SIZE(fs);
	a.r_floats = fs;
	a.n_s_bools = MT_ARRAY_SIZE(bs);
	a.s_bools = bs;
	s = round_trip(&a.base);
	CHECK_CONTAINS(s, "\"aInt32\":-2147483648,\"bSint32\":-7,"
			  "\"cSfixed32\":2147483647,\"dUint32\":4294967295,"
			  "\"eFixed32\":1,\"fInt64\":\"-9223372036854775808\","
			  "\"gSint64\":\"-1234567890123\","
			  "\"hSfixed64\":\"9223372036854775807\","
			  "\"iUint64\":\"18446744073709551615\","
			  "\"jFixed64\":\"9223372036854775808\",\"kFloat\":0.5,");
	CHECK_CONTAINS(s, "\"mBool\":true,\"nBytes\":\"AQIDBA==\"");
	CHECK_CONTAINS(s, "\"oDoubles\":[\"NaN\",\"Infinity\",\"-Infinity\",0.0,"
			  "-2.5,");
	CHECK_CONTAINS(s, "\"qBlobs\":[\"\",\"AQ==\",\"AQI=\",\"AQID\",\"AQIDBA==\"]");
	CHECK_CONTAINS(s, "\"sBools\":[true,false,true]");
	free(s);

	b = (AllTypes *)parse_ok(&all_desc,
				 "{\"kFloat\":\"1.25\",\"lDouble\":\"-Infinity\","
				 "\"rFloats\":[1,\"NaN\"],\"f_int64\":-3}");
	if (b) {
		CHECK(b->k_float == 1.25f && isinf(b->l_double) &&
		      b->l_double < 0);
		CHECK(b->n_r_floats == 2 && b->r_floats[0] == 1.0f &&
		      isnan(b->r_floats[1]));
		CHECK(b->f_int64 == -3);
		protobuf_c_message_free_unpacked(&b->base, NULL);
	}
	expect_error(&all_desc, "{\"kFloat\":1e39}",
		     "kFloat: value 1e+39 out of range for float");
	expect_error(&all_desc, "{\"lDouble\":\"inf\"}",
		     "lDouble: \"inf\" is not a number (double)");
	expect_error(&all_desc, "{\"lDouble\":\"0x10\"}",
		     "lDouble: \"0x10\" is not a number (double)");
	expect_error(&all_desc, "{\"lDouble\":true}",
		     "lDouble: expected a number (double), got boolean");
	expect_error(&all_desc, "{\"sBools\":[true,1]}",
		     "sBools[1]: expected a boolean, got number");
	expect_error(&all_desc, "{\"fInt64\":\"9223372036854775808\"}",
		     "fInt64: value 9223372036854775808 out of range for int64 "
		     "(-9223372036854775808..9223372036854775807)");
	expect_error(&all_desc, "{\"pInt64s\":[1,2.5]}",
		     "pInt64s[1]: expected an integer (int64), got 2.5");
}

/* Strings that are not UTF-8 (protobuf-c does not check) still produce
 * valid JSON, with U+FFFD for the bad bytes. */
static void test_bad_utf8_output(void)
{
	Mt__Config__Customer c = MT__CONFIG__CUSTOMER__INIT;
	char name[] = "a\xff" "b\xc3\xa9";
	char *s;

	c.name = name;
	s = mt_json_dump_message(&c.base, 0);
	CHECK_STR(s, "{\"name\":\"a\xef\xbf\xbd" "b\xc3\xa9\"}");
	free(s);
}

int main(void)
{
	RUN(test_names);
	RUN(test_exact_text);
	RUN(test_customer_round_trip);
	RUN(test_metal_round_trip);
	RUN(test_kstate_plan_round_trip);
	RUN(test_bytes_int64);
	RUN(test_input_forms);
	RUN(test_errors);
	RUN(test_firewall_round_trip);
	RUN(test_firewall_json_input);
	RUN(test_firewall_json_errors);
	RUN(test_all_scalars);
	RUN(test_bad_utf8_output);
	TEST_MAIN_END();
}
