/* Root check of the nft marking table against the real kernel.
 *
 * Runs in a network namespace of its own (unshare(CLONE_NEWNET) first, so
 * the host is never touched and nothing outlives the process): apply create
 * + prefixes, compare with `nft -j list table` (the test may run the nft CLI;
 * the daemons never do), send packets through a veth pair and count the
 * marks, observe back, re-apply (idempotent), provoke refusals and a kernel
 * error (atomic abort), tamper with the table, delete.
 *
 * Usage: nft_mark_check   (as root). Exit status 0 = pass, 77 = skipped
 * (not root), 1 = failures. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <jansson.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <libmnl/libmnl.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "mt_kstate.h"
#include "mt_metal.h"
#include "nft_batch.h"
#include "nft_mark.h"

static int failures;

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c)) {                                                    \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #c);                                 \
			failures++;                                            \
		}                                                              \
	} while (0)

static bool sh_quiet;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	if (r != 0 && !sh_quiet)
		fprintf(stderr, "command failed (%d): %s\n", r, cmd);
	return r;
}

static char *sh_out(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	char *buf = NULL;
	size_t len = 0;

	if (!f)
		return NULL;
	if (getdelim(&buf, &len, '\0', f) < 0) {
		free(buf);
		buf = NULL;
	}
	pclose(f);
	return buf;
}

/* ---- plans ---- */

static Mt__Kernel__Plan *plan;

static void op_table(bool del, const char *name, uint32_t mark, uint32_t mask)
{
	Mt__Kernel__MarkTable t = MT__KERNEL__MARK_TABLE__INIT;

	t.name = (char *)name;
	t.fwmark = mark;
	t.fwmask = mask;
	mt_plan_add(plan, del ? MT__KERNEL__OP__ACTION__DELETE :
				MT__KERNEL__OP__ACTION__CREATE, &t.base);
}

static void op_prefix(bool del, const char *prefix, const char *owner)
{
	Mt__Kernel__MarkPrefix p = MT__KERNEL__MARK_PREFIX__INIT;

	p.prefix = (char *)prefix;
	p.owner = (char *)owner;
	mt_plan_add(plan, del ? MT__KERNEL__OP__ACTION__DELETE :
				MT__KERNEL__OP__ACTION__CREATE, &p.base);
}

static Mt__Kernel__OpResult *res[32];
static Mt__Kernel__OpResult **big_results;

/* Applies the plan built so far; prints the results; returns the apply
 * result and the writes. The plan is reset. */
static int apply(const struct mt_metal *m, uint64_t *writes)
{
	int r;

	*writes = 0;
	memset(res, 0, sizeof(res));
	r = mt_nft_mark_apply(m, plan->ops, plan->n_ops, res, writes);
	printf("apply: %d (%s), %zu ops, %llu writes\n", r,
	       r ? strerror(-r) : "ok", plan->n_ops,
	       (unsigned long long)*writes);
	for (size_t i = 0; i < plan->n_ops; i++)
		if (res[i] && res[i]->error)
			printf("  [%zu] %d %s\n", i, res[i]->error,
			       res[i]->message);
	return r;
}

static void results_free(void)
{
	for (size_t i = 0; i < plan->n_ops; i++)
		if (res[i])
			protobuf_c_message_free_unpacked(&res[i]->base, NULL);
	mt_plan_free(plan);
	plan = mt_plan_new();
}

/* ---- observe ---- */

static Mt__Kernel__KernelState *observe(const struct mt_metal *m)
{
	Mt__Kernel__KernelState *st = mt_kstate_new();
	int r = mt_nft_mark_observe(m, st);

	CHECK(r == 0);
	printf("observe: %d tables, %zu prefixes\n", (int)st->n_mark_tables,
	       st->n_mark_prefixes);
	for (size_t i = 0; i < st->n_mark_tables; i++)
		printf("  table %s 0x%x/0x%x\n", st->mark_tables[i]->name,
		       st->mark_tables[i]->fwmark, st->mark_tables[i]->fwmask);
	for (size_t i = 0; i < st->n_mark_prefixes; i++)
		printf("  prefix %s %s\n", st->mark_prefixes[i]->prefix,
		       st->mark_prefixes[i]->owner);
	return st;
}

static const char *owner_of(const Mt__Kernel__KernelState *st,
			    const char *prefix)
{
	for (size_t i = 0; i < st->n_mark_prefixes; i++)
		if (strcmp(st->mark_prefixes[i]->prefix, prefix) == 0)
			return st->mark_prefixes[i]->owner;
	return NULL;
}

/* ---- nft -j ---- */

/* "203.0.113.0/24" or "255.255.255.255" from a set element's val */
static void elem_str(json_t *val, char *buf, size_t len)
{
	json_t *pfx = json_object_get(val, "prefix");

	if (json_is_string(val))
		snprintf(buf, len, "%s/%s", json_string_value(val),
			 strchr(json_string_value(val), ':') ? "128" : "32");
	else if (pfx)
		snprintf(buf, len, "%s/%lld",
			 json_string_value(json_object_get(pfx, "addr")),
			 json_integer_value(json_object_get(pfx, "len")));
	else
		snprintf(buf, len, "?");
}

/* Checks nft's own view: both sets hold exactly want (prefix, comment
 * pairs), two rules carry mt's comments. */
static void check_nft_json(const char *table, const char *const *want,
			   size_t n_want)
{
	char cmd[256];
	char *out;
	json_t *root, *items, *it;
	json_error_t jerr;
	size_t i, found = 0, elems = 0, rules = 0;

	snprintf(cmd, sizeof(cmd), "nft -j list table inet %s", table);
	out = sh_out(cmd);
	CHECK(out != NULL);
	if (!out)
		return;
	root = json_loads(out, 0, &jerr);
	CHECK(root != NULL);
	items = json_object_get(root, "nftables");
	json_array_foreach(items, i, it) {
		json_t *set = json_object_get(it, "set");
		json_t *rule = json_object_get(it, "rule");
		json_t *e;
		size_t j;

		if (rule) {
			const char *c = json_string_value(
				json_object_get(rule, "comment"));

			if (c && (!strcmp(c, MT_NFT_MARK_TAG4) ||
				  !strcmp(c, MT_NFT_MARK_TAG6)))
				rules++;
		}
		if (!set)
			continue;
		json_array_foreach(json_object_get(set, "elem"), j, e) {
			json_t *inner = json_object_get(e, "elem");
			json_t *val = inner ? json_object_get(inner, "val") : e;
			const char *c = inner ? json_string_value(
				json_object_get(inner, "comment")) : NULL;
			char s[128];

			elem_str(val, s, sizeof(s));
			elems++;
			for (size_t k = 0; k < n_want; k += 2)
				if (!strcmp(want[k], s) && c &&
				    !strcmp(want[k + 1], c))
					found++;
			printf("  nft -j: %s comment %s\n", s, c ? c : "-");
		}
	}
	CHECK(rules == 2);
	CHECK(elems == n_want / 2);
	CHECK(found == n_want / 2);
	json_decref(root);
	free(out);
}

/* ---- packets ---- */

static long counter(const char *name)
{
	char cmd[256], *out, *p;
	long v = -1;

	snprintf(cmd, sizeof(cmd), "nft list counter inet mtt-count %s", name);
	out = sh_out(cmd);
	if (out && (p = strstr(out, "packets ")))
		v = strtol(p + 8, NULL, 10);
	free(out);
	return v;
}

static void send_udp(int family, const char *dst)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	int fd = socket(family, SOCK_DGRAM, 0);

	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(9);
		inet_pton(AF_INET, dst, &s4->sin_addr);
		sl = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(9);
		inet_pton(AF_INET6, dst, &s6->sin6_addr);
		sl = sizeof(*s6);
	}
	if (sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, sl) < 0)
		fprintf(stderr, "sendto %s: %s\n", dst, strerror(errno));
	close(fd);
}

/* A veth pair in this namespace: packets sent out of va to the prefixes
 * arrive on vb and traverse prerouting there. A test-owned table counts
 * packets on vb carrying mt's mark (after mangle) and those without. */
static void packets_setup(const struct mt_metal *m)
{
	char *mac;

	sh("ip link add va type veth peer name vb");
	sh("ip link set va up && ip link set vb up");
	sh("ip addr add 192.0.2.1/24 dev va");
	sh("ip -6 addr add 2001:db8:ffff::1/64 dev va nodad");
	/* not /sys: it still shows the host's namespace after unshare */
	mac = sh_out("ip -br link show vb | awk '{print $3}'");
	if (mac)
		mac[strcspn(mac, "\n")] = '\0';
	sh("ip route add 203.0.113.0/24 dev va && ip route add 198.18.0.0/24 dev va");
	sh("ip -6 route add 2001:db8:1::/48 dev va");
	sh("ip neigh add 203.0.113.5 lladdr %s dev va nud permanent", mac);
	sh("ip neigh add 198.18.0.5 lladdr %s dev va nud permanent", mac);
	sh("ip -6 neigh add 2001:db8:1::5 lladdr %s dev va nud permanent", mac);
	free(mac);
	sh("nft add table inet mtt-count && "
	   "nft add counter inet mtt-count marked && "
	   "nft add counter inet mtt-count unmarked && "
	   "nft add chain inet mtt-count pre '{ type filter hook prerouting priority -100; }' && "
	   "nft add rule inet mtt-count pre iif vb udp dport 9 'meta mark & 0x%x == 0x%x' counter name marked && "
	   "nft add rule inet mtt-count pre iif vb udp dport 9 'meta mark & 0x%x != 0x%x' counter name unmarked",
	   m->fwmark_mask, m->fwmark, m->fwmark_mask, m->fwmark);
}

/* ---- batch helper checks ---- */

/* A batch with a stale generation id is refused as a whole (-ERESTART). */
static void check_genid_guard(void)
{
	struct mnl_socket *nl;
	struct mt_nft_batch *b;
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;
	uint32_t gen;
	int r;

	CHECK(mt_nft_socket_open(&nl) == 0);
	CHECK(mt_nft_genid(nl, &gen) == 0);
	sh("nft add table inet mtt-bump"); /* changes the generation */
	b = mt_nft_batch_new(gen);
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, "mtt-genid");
	nlh = mt_nft_batch_msg(b, NFT_MSG_NEWTABLE, NFPROTO_INET, NLM_F_CREATE,
			       0);
	nftnl_table_nlmsg_build_payload(nlh, t);
	CHECK(mt_nft_batch_msg_end(b) == 0);
	r = mt_nft_batch_send(b, nl);
	printf("stale genid batch: %d (%s)\n", r, strerror(-r));
	CHECK(r == -ERESTART);
	sh_quiet = true;
	CHECK(sh("nft list table inet mtt-genid 2>/dev/null") != 0);
	sh_quiet = false;
	mt_nft_batch_free(b);
	nftnl_table_free(t);
	mnl_socket_close(nl);
}

/* Whether this kernel has NFT_MSG_DESTROYSETELEM (6.3+): destroying an
 * absent element succeeds where DELSETELEM says ENOENT. Informational. */
#define NFT_MSG_DESTROYSETELEM_ 30
static void check_destroy(const char *table)
{
	struct mnl_socket *nl;
	struct mt_nft_batch *b;
	struct nftnl_set *s = nftnl_set_alloc();
	struct mt_prefix p;
	struct nlmsghdr *nlh;
	char err[64];
	int r;

	mt_prefix_parse("100.64.0.0/24", true, &p, err, sizeof(err));
	CHECK(mt_nft_socket_open(&nl) == 0);
	b = mt_nft_batch_new(0);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, MT_NFT_MARK_SET4);
	mt_nft_mark_elems_add(s, &p, NULL);
	nlh = mt_nft_batch_msg(b, NFT_MSG_DESTROYSETELEM_, NFPROTO_INET, 0, 0);
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	CHECK(mt_nft_batch_msg_end(b) == 0);
	r = mt_nft_batch_send(b, nl);
	printf("NFT_MSG_DESTROYSETELEM of an absent element: %d (%s)\n", r,
	       r ? strerror(-r) : "supported");
	mt_nft_batch_free(b);
	nftnl_set_free(s);
	mnl_socket_close(nl);
}

int main(void)
{
	static const char *const want1[] = {
		"203.0.113.0/24", "acme",   "198.51.100.0/25", "beta",
		"255.255.255.255/32", "edge", "2001:db8:1::/48", "acme",
		"ffff:ffff::/32", "edge6",
	};
	struct mt_metal m;
	Mt__Kernel__KernelState *st;
	char err[256], *out;
	uint64_t w;
	int r;

	if (geteuid() != 0) {
		fprintf(stderr, "nft_mark_check: needs root, skipped\n");
		return 77;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		perror("unshare(CLONE_NEWNET)");
		return 1;
	}
	sh("ip link set lo up");
	CHECK(mt_metal_init(&m, NULL, err, sizeof(err)) == 0);
	printf("metal: table %s fwmark 0x%x/0x%x\n", m.mark_table, m.fwmark,
	       m.fwmark_mask);
	plan = mt_plan_new();

	/* 1. nothing there yet */
	st = observe(&m);
	CHECK(st->n_mark_tables == 0 && st->n_mark_prefixes == 0);
	mt_kstate_free(st);

	/* 2. create + prefixes, one transaction */
	op_table(false, m.mark_table, m.fwmark, m.fwmark_mask);
	for (size_t i = 0; i < MT_ARRAY_SIZE(want1); i += 2)
		op_prefix(false, want1[i], want1[i + 1]);
	r = apply(&m, &w);
	CHECK(r == 0);
	CHECK(w == 7 + 5);
	for (size_t i = 0; i < plan->n_ops; i++)
		CHECK(res[i] && res[i]->error == 0);
	results_free();
	out = sh_out("nft list table inet mt0-mark");
	printf("%s", out ? out : "(nft list failed)\n");
	CHECK(out && strstr(out, "ip daddr @prefixes4 meta mark set"));
	CHECK(out && strstr(out, "ip6 daddr @prefixes6 meta mark set"));
	CHECK(out && strstr(out, "type filter hook prerouting priority mangle; policy accept;"));
	free(out);
	check_nft_json(m.mark_table, want1, MT_ARRAY_SIZE(want1));

	/* 3. observe it back */
	st = observe(&m);
	CHECK(st->n_mark_tables == 1);
	if (st->n_mark_tables == 1) {
		CHECK(!strcmp(st->mark_tables[0]->name, m.mark_table));
		CHECK(st->mark_tables[0]->fwmark == m.fwmark);
		CHECK(st->mark_tables[0]->fwmask == m.fwmark_mask);
	}
	CHECK(st->n_mark_prefixes == 5);
	for (size_t i = 0; i < MT_ARRAY_SIZE(want1); i += 2) {
		const char *o = owner_of(st, want1[i]);

		CHECK(o && !strcmp(o, want1[i + 1]));
	}
	mt_kstate_free(st);

	/* 4. packets: to a prefix marked, elsewhere not */
	packets_setup(&m);
	send_udp(AF_INET, "203.0.113.5");
	send_udp(AF_INET6, "2001:db8:1::5");
	send_udp(AF_INET, "198.18.0.5");
	usleep(100 * 1000);
	printf("counters: marked %ld unmarked %ld\n", counter("marked"),
	       counter("unmarked"));
	CHECK(counter("marked") == 2);
	CHECK(counter("unmarked") == 1);

	/* 5. the same prefixes again: nothing to write */
	for (size_t i = 0; i < MT_ARRAY_SIZE(want1); i += 2)
		op_prefix(false, want1[i], want1[i + 1]);
	CHECK(apply(&m, &w) == 0);
	CHECK(w == 0);
	results_free();
	/* the whole plan again: the table is rewritten, nothing else */
	op_table(false, m.mark_table, m.fwmark, m.fwmark_mask);
	for (size_t i = 0; i < MT_ARRAY_SIZE(want1); i += 2)
		op_prefix(false, want1[i], want1[i + 1]);
	CHECK(apply(&m, &w) == 0);
	CHECK(w == 7);
	results_free();
	st = observe(&m);
	CHECK(st->n_mark_tables == 1 && st->n_mark_prefixes == 5);
	mt_kstate_free(st);

	/* 6. owner change: delete + add in one transaction */
	op_prefix(false, "203.0.113.0/24", "acme2");
	CHECK(apply(&m, &w) == 0);
	CHECK(w == 2);
	results_free();
	st = observe(&m);
	CHECK(owner_of(st, "203.0.113.0/24") &&
	      !strcmp(owner_of(st, "203.0.113.0/24"), "acme2"));
	CHECK(st->n_mark_prefixes == 5);
	mt_kstate_free(st);

	/* 7. refusals: nothing sent */
	op_prefix(false, "192.0.2.0/24", "gamma");
	op_table(true, "filter", 0, 0);
	CHECK(apply(&m, &w) == -EPERM);
	CHECK(w == 0);
	CHECK(res[0]->error == -ECANCELED && res[1]->error == -EPERM);
	results_free();
	op_prefix(false, "192.0.2.0/24", "gamma");
	op_prefix(false, "203.0.0.0/16", "evil"); /* overlaps acme2's */
	CHECK(apply(&m, &w) == -EEXIST);
	CHECK(res[0]->error == -ECANCELED && res[1]->error == -EEXIST);
	CHECK(strstr(res[1]->message, "acme2") != NULL);
	results_free();

	/* 8. a kernel error aborts the whole transaction: a foreign-shaped
	 * table with our naming whose chain has another priority */
	sh("nft add table inet mt0-bad && nft add chain inet mt0-bad prerouting "
	   "'{ type filter hook prerouting priority 0; }'");
	op_prefix(false, "192.0.2.0/24", "gamma");
	op_table(false, "mt0-bad", m.fwmark, m.fwmark_mask);
	r = apply(&m, &w);
	CHECK(r < 0 && r != -ECANCELED);
	CHECK(w == 0);
	CHECK(res[0]->error == -ECANCELED);
	CHECK(strstr(res[0]->message, "aborted by create nft table inet mt0-bad"));
	CHECK(res[1]->error == r);
	results_free();
	st = observe(&m);
	CHECK(owner_of(st, "192.0.2.0/24") == NULL);
	CHECK(st->n_mark_prefixes == 5);
	mt_kstate_free(st);
	op_table(true, "mt0-bad", 0, 0); /* other mt table: deleted */
	op_table(true, "mt0-never", 0, 0); /* absent: benign */
	CHECK(apply(&m, &w) == 0);
	CHECK(w == 1);
	results_free();
	sh_quiet = true;
	CHECK(sh("nft list table inet mt0-bad 2>/dev/null") != 0);
	sh_quiet = false;

	/* 9. tampering: an extra rule makes the table "altered" */
	sh("nft add rule inet mt0-mark prerouting counter");
	st = observe(&m);
	CHECK(st->n_mark_tables == 0);
	CHECK(st->n_mark_prefixes == 5);
	mt_kstate_free(st);
	op_table(false, m.mark_table, 0x4200, 0xff00); /* repaired, new mark */
	CHECK(apply(&m, &w) == 0);
	results_free();
	st = observe(&m);
	CHECK(st->n_mark_tables == 1 && st->mark_tables[0]->fwmark == 0x4200);
	mt_kstate_free(st);

	/* 10. the batch helper: stale generation refused; destroy support */
	check_genid_guard();
	check_destroy(m.mark_table);

	/* 11. deletes: present, absent; then the table, twice */
	op_prefix(true, "203.0.113.0/24", "acme2");
	op_prefix(true, "203.0.113.0/24", "acme2");
	op_prefix(true, "10.0.0.0/8", "nobody");
	op_prefix(true, "255.255.255.255/32", "edge");
	CHECK(apply(&m, &w) == 0);
	CHECK(w == 2);
	results_free();
	st = observe(&m);
	CHECK(st->n_mark_prefixes == 3);
	mt_kstate_free(st);
	op_table(true, m.mark_table, 0, 0);
	CHECK(apply(&m, &w) == 0);
	CHECK(w == 1);
	results_free();
	op_table(true, m.mark_table, 0, 0);
	CHECK(apply(&m, &w) == 0);
	CHECK(w == 0);
	results_free();
	st = observe(&m);
	CHECK(st->n_mark_tables == 0 && st->n_mark_prefixes == 0);
	mt_kstate_free(st);
	/* a prefix without the table: a clear error */
	op_prefix(false, "192.0.2.0/24", "gamma");
	CHECK(apply(&m, &w) == -ENOENT);
	results_free();

	/* 12. whole address spaces: open intervals (no end element) */
	op_table(false, m.mark_table, m.fwmark, m.fwmark_mask);
	op_prefix(false, "0.0.0.0/0", "all");
	op_prefix(false, "::/0", "all6");
	CHECK(apply(&m, &w) == 0);
	CHECK(w == 9);
	results_free();
	st = observe(&m);
	CHECK(st->n_mark_tables == 1 && st->n_mark_prefixes == 2);
	CHECK(owner_of(st, "0.0.0.0/0") && !strcmp(owner_of(st, "0.0.0.0/0"), "all"));
	CHECK(owner_of(st, "::/0") && !strcmp(owner_of(st, "::/0"), "all6"));
	mt_kstate_free(st);
	send_udp(AF_INET, "198.18.0.5");
	usleep(100 * 1000);
	printf("counters after /0: marked %ld unmarked %ld\n",
	       counter("marked"), counter("unmarked"));
	CHECK(counter("marked") == 3);
	op_prefix(true, "0.0.0.0/0", "all");
	op_prefix(true, "::/0", "all6");
	op_table(true, m.mark_table, 0, 0);
	CHECK(apply(&m, &w) == 0);
	CHECK(w == 3);
	results_free();

	/* 13. a large transaction spans several batch pages and needs big
	 * socket buffers: 4000 prefixes + the table in one batch */
	{
		char pfx[32], own[32];
		struct timespec t0, t1;

		op_table(false, m.mark_table, m.fwmark, m.fwmark_mask);
		for (int i = 0; i < 4000; i++) {
			snprintf(pfx, sizeof(pfx), "10.%d.%d.0/24", i / 256,
				 i % 256);
			snprintf(own, sizeof(own), "c%d", i);
			op_prefix(false, pfx, own);
		}
		clock_gettime(CLOCK_MONOTONIC, &t0);
		w = 0;
		big_results = calloc(plan->n_ops, sizeof(*big_results));
		r = mt_nft_mark_apply(&m, plan->ops, plan->n_ops, big_results,
				      &w);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("big apply: %d, %llu writes, %.1f ms\n", r,
		       (unsigned long long)w,
		       (t1.tv_sec - t0.tv_sec) * 1e3 +
			       (t1.tv_nsec - t0.tv_nsec) / 1e6);
		CHECK(r == 0 && w == 4007);
		for (size_t i = 0; i < plan->n_ops; i++)
			protobuf_c_message_free_unpacked(&big_results[i]->base,
							 NULL);
		free(big_results);
		mt_plan_free(plan);
		plan = mt_plan_new();
		clock_gettime(CLOCK_MONOTONIC, &t0);
		st = mt_kstate_new();
		CHECK(mt_nft_mark_observe(&m, st) == 0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("big observe: %zu prefixes, %.1f ms\n",
		       st->n_mark_prefixes,
		       (t1.tv_sec - t0.tv_sec) * 1e3 +
			       (t1.tv_nsec - t0.tv_nsec) / 1e6);
		CHECK(st->n_mark_prefixes == 4000);
		CHECK(owner_of(st, "10.15.159.0/24") &&
		      !strcmp(owner_of(st, "10.15.159.0/24"), "c3999"));
		mt_kstate_free(st);
		op_table(true, m.mark_table, 0, 0);
		CHECK(apply(&m, &w) == 0);
		results_free();
	}

	mt_plan_free(plan);
	mt_metal_fini(&m);
	printf("%s: %d failures\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
