/* Root check of the customer firewall in mt's nft table of a customer
 * namespace (fastpath/nft_cust.c + nft_fw_plan.c + nft_fw_rules.c) against
 * the real kernel.
 *
 * Isolation as in nft_cust_check.c: a mount namespace of its own with a
 * private tmpfs on /run/netns and a network namespace of its own (the
 * "metal"); the throwaway customer namespaces ("mtt-...", metal instance
 * "t") exist only there and go away with the process. The nft / ip CLIs
 * run as children, to look independently.
 *
 * Checks: create (with an MSS clamp in the same transaction), `nft -j list
 * table` (chains, rule tags, sets, the fw_lists element), observe (rules
 * equal, lists, default, not dirty, counters), the same plan again (0
 * writes), one rule changed (exactly 1 message, the other rules' handles
 * unchanged), insert / move / delete, a rule deleted by hand (observed
 * rules differ; repaired), a foreign rule (dirty; removed), atomicity (a
 * rule referring to a list the kernel does not have: the transaction
 * fails, the error names the rule, the old rules stay), a 100k-prefix list
 * loaded and changed by a 1-prefix delta (times printed), a stale delta
 * (-ESTALE), refusals, N customers x 50 rules loaded and one rule of one
 * changed (1 message), DELETE (the mss chain stays).
 *
 * Usage: nft_fw_check [N] (as root; N defaults to 1000). Exit 0 = pass, 77 =
 * skipped (not root), 1 = failures. */
#include <errno.h>
#include <jansson.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mt_fw.h"
#include "mt_kstate.h"
#include "mt_metal.h"
#include "netns.h"
#include "nft_cust.h"
#include "kcheck.h"

#define NS_A "mtt-a"
#define NS_B "mtt-b"
#define TABLE "mtt-cust"

static int sh(const char *f, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *f, ...)
{
	char cmd[2048];
	va_list ap;
	int r;

	va_start(ap, f);
	vsnprintf(cmd, sizeof(cmd), f, ap);
	va_end(ap);
	r = system(cmd);
	if (r != 0)
		fprintf(stderr, "command failed (%d): %s\n", r, cmd);
	return r;
}

static char *sh_out(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *sh_out(const char *f, ...)
{
	char cmd[2048];
	va_list ap;
	FILE *p;
	char *buf = NULL;
	size_t len = 0;

	va_start(ap, f);
	vsnprintf(cmd, sizeof(cmd), f, ap);
	va_end(ap);
	p = popen(cmd, "r");
	if (!p)
		return NULL;
	if (getdelim(&buf, &len, '\0', p) < 0) {
		free(buf);
		buf = NULL;
	}
	pclose(p);
	return buf;
}

/* ---- the desired firewall, as the agent builds it ---- */

#define RULES_MAX 50
#define LISTS_MAX 4

/* One config rule in a compact form. */
struct spec {
	uint32_t id;
	const char *action, *proto, *dport, *src_list, *family;
	const char *dport2; /* a second port: an anonymous set */
	uint64_t pps;
};

struct fwdesc {
	const char *default_action;
	struct spec rules[RULES_MAX];
	size_t n_rules;
	const char *list_names[LISTS_MAX];
	char **list_prefixes[LISTS_MAX];
	size_t list_n[LISTS_MAX];
	size_t n_lists;
};

/* The kernel Firewall of d for netns: canonical rules (mt_fw_rule_
 * canonical, as the agent does), full list content. Heap, free with
 * protobuf_c_message_free_unpacked. */
static Mt__Kernel__Firewall *firewall(const char *netns, const struct fwdesc *d)
{
	Mt__Config__Firewall cfw = MT__CONFIG__FIREWALL__INIT;
	Mt__Config__IpList il[LISTS_MAX], *ilp[LISTS_MAX];
	Mt__Kernel__Firewall *kf = malloc(sizeof(*kf));
	char err[256];

	mt__kernel__firewall__init(kf);
	mt_kstate_set_str(&kf->netns, netns);
	mt_kstate_set_str(&kf->default_action, d->default_action);
	for (size_t i = 0; i < d->n_lists; i++) {
		mt__config__ip_list__init(&il[i]);
		il[i].name = (char *)d->list_names[i];
		il[i].prefixes = d->list_prefixes[i];
		il[i].n_prefixes = d->list_n[i];
		ilp[i] = &il[i];
	}
	cfw.lists = ilp;
	cfw.n_lists = d->n_lists;
	kf->rules = calloc(d->n_rules + 1, sizeof(*kf->rules));
	for (size_t i = 0; i < d->n_rules; i++) {
		const struct spec *s = &d->rules[i];
		Mt__Config__FirewallRule r = MT__CONFIG__FIREWALL_RULE__INIT;
		Mt__Config__RateLimit rl = MT__CONFIG__RATE_LIMIT__INIT;
		char *ports[2] = {(char *)s->dport, (char *)s->dport2};
		Mt__Config__FirewallRule *c = NULL;

		r.id = s->id;
		r.action = (char *)s->action;
		if (s->proto)
			r.protocol = (char *)s->proto;
		if (s->dport) {
			r.dst_ports = ports;
			r.n_dst_ports = s->dport2 ? 2 : 1;
		}
		if (s->src_list)
			r.src_list = (char *)s->src_list;
		if (s->family)
			r.family = (char *)s->family;
		if (s->pps) {
			rl.packets_per_second = s->pps;
			r.rate_limit = &rl;
		}
		if (mt_fw_rule_canonical(&cfw, &r, &c, err, sizeof(err)) < 0) {
			/* a rule the agent would refuse (a list that is not
			 * there): canonical by hand, as it stands */
			c = (Mt__Config__FirewallRule *)mt_message_dup(&r.base);
			if (!*c->family)
				mt_kstate_set_str(&c->family, "ipv4");
		}
		kf->rules[kf->n_rules++] = c;
	}
	kf->lists = calloc(d->n_lists + 1, sizeof(*kf->lists));
	for (size_t i = 0; i < d->n_lists; i++) {
		Mt__Kernel__FirewallList *l = malloc(sizeof(*l));
		struct mt_fw_list fl;

		mt__kernel__firewall_list__init(l);
		mt_kstate_set_str(&l->name, d->list_names[i]);
		CHECK(mt_fw_list_compile(d->list_names[i], d->list_prefixes[i],
					 d->list_n[i], &fl, err,
					 sizeof(err)) == 0);
		mt_kstate_set_str(&l->family, mt_fw_family_name(fl.family));
		mt_kstate_set_str(&l->digest, fl.digest);
		l->count = (uint32_t)fl.n;
		mt_fw_list_fini(&fl);
		l->prefixes = calloc(d->list_n[i] + 1, sizeof(char *));
		for (size_t k = 0; k < d->list_n[i]; k++)
			l->prefixes[k] = strdup(d->list_prefixes[i][k]);
		l->n_prefixes = d->list_n[i];
		kf->lists[kf->n_lists++] = l;
	}
	return kf;
}

/* ---- plans ---- */

#define OPS_MAX 8
static Mt__Kernel__Op *ops[OPS_MAX];
static size_t n_ops;
static Mt__Kernel__OpResult *res[OPS_MAX];

static void ops_reset(void)
{
	for (size_t i = 0; i < n_ops; i++) {
		protobuf_c_message_free_unpacked(&ops[i]->base, NULL);
		if (res[i])
			protobuf_c_message_free_unpacked(&res[i]->base, NULL);
		ops[i] = NULL;
		res[i] = NULL;
	}
	n_ops = 0;
}

/* Takes fw. */
static void op_fw(Mt__Kernel__Op__Action action, Mt__Kernel__Firewall *fw)
{
	Mt__Kernel__Op *op = malloc(sizeof(*op));

	mt__kernel__op__init(op);
	op->action = action;
	op->object_case = MT__KERNEL__OP__OBJECT_FIREWALL;
	op->firewall = fw;
	ops[n_ops++] = op;
}

static void op_fw_d(Mt__Kernel__Op__Action action, const char *netns,
		    const struct fwdesc *d)
{
	op_fw(action, firewall(netns, d));
}

static void op_mss(const char *netns, const char *dev, uint32_t mss)
{
	Mt__Kernel__Op *op = malloc(sizeof(*op));
	Mt__Kernel__MssClamp *c = malloc(sizeof(*c));

	mt__kernel__mss_clamp__init(c);
	mt_kstate_set_str(&c->netns, netns);
	mt_kstate_set_str(&c->dev, dev);
	c->mss = mss;
	mt__kernel__op__init(op);
	op->action = CREATE;
	op->object_case = MT__KERNEL__OP__OBJECT_MSS_CLAMP;
	op->mss_clamp = c;
	ops[n_ops++] = op;
}

static int apply(struct mt_nft_cust *c, uint64_t *writes, double *ms)
{
	double t0 = now_ms();
	int r;

	*writes = 0;
	for (size_t i = 0; i < n_ops; i++)
		if (res[i]) {
			protobuf_c_message_free_unpacked(&res[i]->base, NULL);
			res[i] = NULL;
		}
	r = mt_nft_cust_apply(c, ops, n_ops, res, writes);
	if (ms)
		*ms = now_ms() - t0;
	printf("apply: %d (%s), %zu ops, %llu writes, %.2f ms\n", r,
	       r ? strerror(-r) : "ok", n_ops, (unsigned long long)*writes,
	       now_ms() - t0);
	for (size_t i = 0; i < n_ops; i++)
		if (res[i] && res[i]->error)
			printf("  [%zu] %d %s\n", i, res[i]->error,
			       res[i]->message);
	return r;
}

/* Replaces rule id of fw_rules in ns by hand (nft replace ... handle):
 * its listed text with `from` changed to `to` (both NULL: unchanged),
 * comment and handle kept. 0 or -1. */
static int hand_edit(const char *ns, uint32_t id, const char *from,
		     const char *to)
{
	char *out = sh_out("ip netns exec %s nft -a list chain inet %s "
			   "fw_rules",
			   ns, TABLE);
	char tag[32], text[1024], *line, *end, *h, *at, *ctr;
	unsigned long long handle;
	int r = -1;

	snprintf(tag, sizeof(tag), "comment \"mt fw %u ", id);
	line = out ? strstr(out, tag) : NULL;
	while (line && line > out && line[-1] != '\n')
		line--;
	end = line ? strchr(line, '\n') : NULL;
	if (!end)
		goto out;
	*end = '\0';
	h = strstr(line, " # handle ");
	if (!h || sscanf(h, " # handle %llu", &handle) != 1)
		goto out;
	*h = '\0';
	while (*line == '\t' || *line == ' ')
		line++;
	/* "counter packets N bytes M" -> "counter" */
	if ((ctr = strstr(line, "counter packets ")) &&
	    (at = strstr(ctr, " bytes ")) && (at = strchr(at + 7, ' ')))
		memmove(ctr + 7, at, strlen(at) + 1);
	if (from) {
		at = strstr(line, from);
		if (!at)
			goto out;
		*at = '\0';
		snprintf(text, sizeof(text), "%s%s%s", line, to,
			 at + strlen(from));
	} else {
		snprintf(text, sizeof(text), "%s", line);
	}
	r = sh("ip netns exec %s nft 'replace rule inet %s fw_rules handle "
	       "%llu %s'",
	       ns, TABLE, handle, text) == 0
		? 0
		: -1;
out:
	free(out);
	return r;
}

/* ---- observe ---- */

/* The observed Firewall of ns (a copy; NULL when none). */
static Mt__Kernel__Firewall *observe_fw(struct mt_nft_cust *c, const char *ns,
					bool counters)
{
	Mt__Kernel__KernelState *st = mt_kstate_new();
	Mt__Kernel__Firewall *fw = NULL;
	int r = mt_nft_cust_observe_counters(c, NULL, 0, counters, st);

	CHECK(r == 0);
	for (size_t i = 0; i < st->n_firewalls; i++)
		if (streq(st->firewalls[i]->netns, ns))
			fw = (Mt__Kernel__Firewall *)mt_message_dup(
			    &st->firewalls[i]->base);
	mt_kstate_free(st);
	return fw;
}

static const char *ids_str(const Mt__Kernel__Firewall *fw)
{
	static char buf[512];
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; fw && i < fw->n_rules; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%u",
					i ? " " : "", fw->rules[i]->id);
	return buf;
}

/* The observed firewall of ns is exactly d (rules equal in order, lists,
 * default action, not dirty). */
static bool observed_is(struct mt_nft_cust *c, const char *ns,
			const struct fwdesc *d, int line)
{
	Mt__Kernel__Firewall *want = firewall(ns, d);
	Mt__Kernel__Firewall *got = observe_fw(c, ns, false);
	bool ok = got && !got->dirty && got->n_rules == want->n_rules &&
		  got->n_lists == want->n_lists &&
		  streq(got->default_action,
			*want->default_action ? want->default_action : "allow");

	for (size_t i = 0; ok && i < want->n_rules; i++)
		ok = mt_fw_rule_equal(got->rules[i], want->rules[i]);
	for (size_t i = 0; ok && i < want->n_lists; i++)
		ok = streq(got->lists[i]->name, want->lists[i]->name) &&
		     streq(got->lists[i]->digest, want->lists[i]->digest) &&
		     got->lists[i]->count == want->lists[i]->count;
	if (!ok) {
		fprintf(stderr,
			"line %d: observed %s: rules [%s] dirty %d default %s "
			"lists %zu\n",
			line, ns, ids_str(got), got ? got->dirty : -1,
			got ? got->default_action : "-",
			got ? got->n_lists : 0);
		failures++;
	}
	protobuf_c_message_free_unpacked(&want->base, NULL);
	if (got)
		protobuf_c_message_free_unpacked(&got->base, NULL);
	return ok;
}

#define OBSERVED_IS(c, ns, d) observed_is((c), (ns), (d), __LINE__)

/* ---- nft -j ---- */

struct nft_view {
	bool fw, fw_rules, fw_lists, mss;
	bool fw_ok;
	char sets[8][32];
	size_t n_sets;
	uint32_t ids[64]; /* fw_rules in order: tag ids */
	uint64_t handles[64];
	size_t n_rules;
	size_t n_base;
	bool foreign; /* a rule without an "mt " comment */
};

static void nft_view(const char *ns, struct nft_view *v)
{
	char *out =
	    sh_out("ip netns exec %s nft -j list table inet %s", ns, TABLE);
	json_t *root, *items, *it;
	json_error_t jerr;
	size_t i;

	memset(v, 0, sizeof(*v));
	CHECK(out != NULL);
	if (!out)
		return;
	root = json_loads(out, 0, &jerr);
	free(out);
	CHECK(root != NULL);
	if (!root)
		return;
	items = json_object_get(root, "nftables");
	json_array_foreach(items, i, it)
	{
		json_t *ch = json_object_get(it, "chain");
		json_t *ru = json_object_get(it, "rule");
		json_t *se = json_object_get(it, "set");

		if (ch) {
			const char *n =
			    json_string_value(json_object_get(ch, "name"));

			if (streq(n, "fw")) {
				v->fw = true;
				v->fw_ok =
				    streq(json_string_value(
					      json_object_get(ch, "hook")),
					  "forward") &&
				    json_integer_value(
					json_object_get(ch, "prio")) == 0 &&
				    streq(json_string_value(
					      json_object_get(ch, "policy")),
					  "accept");
			}
			v->fw_rules |= streq(n, "fw_rules");
			v->mss |= streq(n, "mss");
		}
		if (se && v->n_sets < 8) {
			const char *n =
			    json_string_value(json_object_get(se, "name"));

			v->fw_lists |= streq(n, "fw_lists");
			snprintf(v->sets[v->n_sets++], sizeof(v->sets[0]), "%s",
				 n ? n : "");
		}
		if (ru) {
			const char *chn =
			    json_string_value(json_object_get(ru, "chain"));
			const char *cm =
			    json_string_value(json_object_get(ru, "comment"));
			unsigned id = 0, k = 0, n = 0;

			if (!cm || strncmp(cm, "mt ", 3) != 0)
				v->foreign = true;
			if (streq(chn, "fw"))
				v->n_base++;
			if (!streq(chn, "fw_rules") || v->n_rules >= 64)
				continue;
			if (cm)
				sscanf(cm, "mt fw %u %u/%u", &id, &k, &n);
			v->ids[v->n_rules] = id;
			v->handles[v->n_rules++] = (uint64_t)json_integer_value(
			    json_object_get(ru, "handle"));
		}
	}
	json_decref(root);
}

static uint64_t handle_of(const struct nft_view *v, uint32_t id)
{
	for (size_t i = 0; i < v->n_rules; i++)
		if (v->ids[i] == id)
			return v->handles[i];
	return 0;
}

/* ---- isolation ---- */

static int isolate(void)
{
	if (unshare(CLONE_NEWNS) < 0) {
		perror("unshare(CLONE_NEWNS)");
		return -1;
	}
	if (mount("none", "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) {
		perror("mount --make-rslave /");
		return -1;
	}
	mkdir("/run", 0755);
	mkdir(MT_NETNS_RUN_DIR, 0755);
	if (mount("mtt-netns", MT_NETNS_RUN_DIR, "tmpfs", 0, "mode=0755") < 0) {
		perror("mount tmpfs " MT_NETNS_RUN_DIR);
		return -1;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		perror("unshare(CLONE_NEWNET)");
		return -1;
	}
	return 0;
}

/* ---- the big list ---- */

/* n /32s, every other address from 11.0.0.0 (no two adjacent) */
static char **big_prefixes(size_t n, size_t skip, const char *extra)
{
	char **v = calloc(n + 2, sizeof(*v));
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		uint32_t a = (11u << 24) + 2u * (uint32_t)i;

		if (i == skip)
			continue;
		v[k] = malloc(24);
		snprintf(v[k++], 24, "%u.%u.%u.%u/32", a >> 24, (a >> 16) & 255,
			 (a >> 8) & 255, a & 255);
	}
	if (extra)
		v[k++] = strdup(extra);
	return v;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static void big_list(struct mt_nft_cust *c)
{
	const size_t n = 100000;
	char **full = big_prefixes(n, SIZE_MAX, NULL);
	char **next = big_prefixes(n, 7, "12.0.0.0/24");
	struct fwdesc d = {
	    .default_action = "allow",
	    .rules = {{.id = 1, .action = "block", .src_list = "big"}},
	    .n_rules = 1,
	    .list_names = {"big"},
	    .list_prefixes = {full},
	    .list_n = {n},
	    .n_lists = 1,
	};
	Mt__Kernel__Firewall *fw, *obs;
	struct mt_fw_list fl;
	char err[256], *out;
	uint64_t w;
	double ms;
	int r;

	/* load */
	op_fw_d(CREATE, NS_B, &d);
	r = apply(c, &w, &ms);
	CHECK(r == 0);
	printf("big list: %zu prefixes (%zu elements) loaded in %.1f ms, "
	       "%llu messages\n",
	       n, 2 * n, ms, (unsigned long long)w);
	ops_reset();
	OBSERVED_IS(c, NS_B, &d);
	out = sh_out("ip netns exec %s nft get element inet %s l4_big "
		     "'{ 11.0.0.14 }' 2>&1",
		     NS_B, TABLE);
	CHECK(out && strstr(out, "11.0.0.14"));
	free(out);

	/* the same again: nothing (the digest stands for the content) */
	op_fw_d(CREATE, NS_B, &d);
	r = apply(c, &w, &ms);
	CHECK(r == 0 && w == 0);
	printf("big list: unchanged, %.2f ms\n", ms);
	ops_reset();

	/* a 1-prefix delta (one out, one in) */
	fw = firewall(NS_B, &d);
	CHECK(mt_fw_list_compile("big", next, n, &fl, err, sizeof(err)) == 0);
	{
		Mt__Kernel__FirewallList *l = fw->lists[0];

		for (size_t i = 0; i < l->n_prefixes; i++)
			free(l->prefixes[i]);
		free(l->prefixes);
		l->prefixes = NULL;
		l->n_prefixes = 0;
		l->delta = true;
		mt_kstate_set_str(&l->base_digest, l->digest);
		mt_kstate_set_str(&l->digest, fl.digest);
		l->count = (uint32_t)fl.n;
		l->add = calloc(1, sizeof(char *));
		l->add[0] = strdup("12.0.0.0/24");
		l->n_add = 1;
		l->remove = calloc(1, sizeof(char *));
		l->remove[0] = strdup("11.0.0.14/32");
		l->n_remove = 1;
	}
	mt_fw_list_fini(&fl);
	op_fw(CREATE, (Mt__Kernel__Firewall *)mt_message_dup(&fw->base));
	r = apply(c, &w, &ms);
	CHECK(r == 0);
	/* DELSETELEM + NEWSETELEM + the fw_lists element replaced */
	CHECK(w == 4);
	printf("big list: 1-prefix delta in %.2f ms, %llu messages\n", ms,
	       (unsigned long long)w);
	ops_reset();
	d.list_prefixes[0] = next;
	OBSERVED_IS(c, NS_B, &d);
	out = sh_out("ip netns exec %s nft get element inet %s l4_big "
		     "'{ 11.0.0.14 }' 2>&1",
		     NS_B, TABLE);
	CHECK(out && !strstr(out, "elements"));
	free(out);
	out = sh_out("ip netns exec %s nft get element inet %s l4_big "
		     "'{ 12.0.0.9 }' 2>&1",
		     NS_B, TABLE);
	CHECK(out && strstr(out, "12.0.0.0/24"));
	free(out);

	/* the same delta again: the kernel holds its result, not its base */
	op_fw(CREATE, fw);
	fw = NULL;
	{
		Mt__Kernel__FirewallList *l = ops[0]->firewall->lists[0];

		mt_kstate_set_str(&l->digest, "0123456789abcdef");
	}
	r = apply(c, &w, NULL);
	CHECK(r == -ESTALE && w == 0);
	CHECK(res[0] && strstr(res[0]->message, "list \"big\"") &&
	      strstr(res[0]->message, "full reload"));
	ops_reset();

	/* observe with counters stays cheap with a big list */
	{
		double t0 = now_ms();

		obs = observe_fw(c, NS_B, true);
		printf("big list: observe with counters %.2f ms\n",
		       now_ms() - t0);
		CHECK(obs && obs->n_counters == 2);
		if (obs)
			protobuf_c_message_free_unpacked(&obs->base, NULL);
	}
	strv_free(full);
	strv_free(next);
}

/* ---- scale: n customers x 50 rules, then one rule changed in one ---- */

/* The firewall of netns observed alone (owner = the name after "mtt-"),
 * with or without counters; a copy, NULL when none. */
static Mt__Kernel__Firewall *observe_one(struct mt_nft_cust *c,
					 const char *netns, bool counters)
{
	const char *owner = netns + strlen("mtt-");
	Mt__Kernel__KernelState *st = mt_kstate_new();
	Mt__Kernel__Firewall *fw = NULL;

	CHECK(mt_nft_cust_observe_counters(c, &owner, 1, counters, st) == 0);
	if (st->n_firewalls == 1)
		fw = (Mt__Kernel__Firewall *)mt_message_dup(
		    &st->firewalls[0]->base);
	mt_kstate_free(st);
	return fw;
}

/* The cost of the observe that follows each one-rule change (the
 * agent's store -> kernel loop), of an observe with counters, and of one
 * with nothing changed: averages over a few rounds. */
static void observe_after_change(struct mt_nft_cust *c, const char *netns,
				 struct fwdesc *d)
{
	enum { ROUNDS = 20 };
	double t_apply = 0, t_obs = 0, t_ctr = 0, t_same = 0, t0;
	char port[8];
	uint64_t w;
	int bad = 0;

	for (int k = 0; k < ROUNDS; k++) {
		Mt__Kernel__Firewall *fw;

		snprintf(port, sizeof(port), "%d", 7000 + k);
		d->rules[7].dport = port;
		op_fw_d(CREATE, netns, d);
		w = 0;
		t0 = now_ms();
		bad += mt_nft_cust_apply(c, ops, n_ops, res, &w) != 0 || w != 1;
		t_apply += now_ms() - t0;
		ops_reset();
		t0 = now_ms();
		fw = observe_one(c, netns, false);
		t_obs += now_ms() - t0;
		bad += !fw || fw->n_rules != d->n_rules || fw->dirty ||
		       fw->rules[7]->n_dst_ports != 1 ||
		       strcmp(fw->rules[7]->dst_ports[0], port) != 0;
		if (fw)
			protobuf_c_message_free_unpacked(&fw->base, NULL);
		t0 = now_ms();
		fw = observe_one(c, netns, true);
		t_ctr += now_ms() - t0;
		bad += !fw || fw->n_counters != d->n_rules + 1;

		if (fw)
			protobuf_c_message_free_unpacked(&fw->base, NULL);
		t0 = now_ms();
		fw = observe_one(c, netns, false);
		t_same += now_ms() - t0;
		bad += !fw || fw->n_rules != d->n_rules;
		if (fw)
			protobuf_c_message_free_unpacked(&fw->base, NULL);
	}
	CHECK(bad == 0);
	printf("one-rule change (%zu rules, avg of %d): apply %.2f ms, "
	       "observe after it %.2f ms, observe with counters %.2f ms, "
	       "observe unchanged %.2f ms\n",
	       d->n_rules, ROUNDS, t_apply / ROUNDS, t_obs / ROUNDS,
	       t_ctr / ROUNDS, t_same / ROUNDS);
}

static void scale(struct mt_nft_cust *c, int n)
{
	struct fwdesc d = {.default_action = "allow", .n_rules = RULES_MAX};
	char ports[RULES_MAX][8], name[32];
	Mt__Kernel__Op **big = calloc((size_t)n, sizeof(*big));
	Mt__Kernel__OpResult **br = calloc((size_t)n, sizeof(*br));
	Mt__Kernel__Firewall *one;
	uint64_t w = 0;
	double t0;
	int r, bad = 0;

	for (int i = 0; i < RULES_MAX; i++) {
		snprintf(ports[i], sizeof(ports[i]), "%d", 1000 + i);
		d.rules[i] =
		    (struct spec){.id = (uint32_t)(i + 1) * 10,
				  .action = i % 2 ? "block" : "allow",
				  .proto = i % 3 ? "tcp" : "udp",
				  .dport = ports[i],
				  /* every fifth: an anonymous set */
				  .dport2 = i % 5 == 4 ? "9999" : NULL};
	}
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "mtt-s%04d", i);
		if (mt_netns_create(name) < 0)
			bad++;
	}
	CHECK(bad == 0);
	one = firewall("mtt-s0000", &d);
	for (int i = 0; i < n; i++) {
		Mt__Kernel__Firewall *f =
		    (Mt__Kernel__Firewall *)mt_message_dup(&one->base);

		snprintf(name, sizeof(name), "mtt-s%04d", i);
		mt_kstate_set_str(&f->netns, name);
		big[i] = malloc(sizeof(*big[i]));
		mt__kernel__op__init(big[i]);
		big[i]->action = CREATE;
		big[i]->object_case = MT__KERNEL__OP__OBJECT_FIREWALL;
		big[i]->firewall = f;
	}
	t0 = now_ms();
	r = mt_nft_cust_apply(c, big, (size_t)n, br, &w);
	printf("scale: %d customers x %d rules from empty: %.0f ms, %llu "
	       "messages\n",
	       n, RULES_MAX, now_ms() - t0, (unsigned long long)w);
	CHECK(r == 0);
	{
		Mt__Kernel__KernelState *st = mt_kstate_new();

		t0 = now_ms();
		CHECK(mt_nft_cust_observe(c, NULL, 0, st) == 0);
		printf("scale: observe all after the load: %.0f ms, %zu "
		       "firewalls\n",
		       now_ms() - t0, st->n_firewalls);
		CHECK(st->n_firewalls >= (size_t)n);
		mt_kstate_free(st);
		st = mt_kstate_new();
		t0 = now_ms();
		CHECK(mt_nft_cust_observe(c, NULL, 0, st) == 0);
		printf("scale: observe all again (cached): %.1f ms\n",
		       now_ms() - t0);
		mt_kstate_free(st);
	}
	/* one rule of one customer */
	d.rules[7].dport = "7777";
	ops_reset();
	snprintf(name, sizeof(name), "mtt-s%04d", n / 2);
	op_fw_d(CREATE, name, &d);
	{
		double ms;

		r = apply(c, &w, &ms);
		printf("scale: one rule changed in 1 of %d customers: %.2f ms, "
		       "%llu messages\n",
		       n, ms, (unsigned long long)w);
		CHECK(r == 0 && w == 1);
	}
	ops_reset();
	observe_after_change(c, name, &d);
	for (int i = 0; i < n; i++) {
		protobuf_c_message_free_unpacked(&big[i]->base, NULL);
		if (br[i])
			protobuf_c_message_free_unpacked(&br[i]->base, NULL);
	}
	free(big);
	free(br);
	protobuf_c_message_free_unpacked(&one->base, NULL);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "mtt-s%04d", i);
		mt_nft_cust_forget_netns(c, name);
		mt_netns_delete(name);
	}
}

int main(int argc, char **argv)
{
	int n_scale = argc > 1 ? atoi(argv[1]) : 1000;
	Mt__Config__Metal pbm = MT__CONFIG__METAL__INIT;
	struct mt_nft_cust *c = NULL;
	struct mt_metal m;
	struct nft_view v, v2;
	Mt__Kernel__Firewall *fw;
	char err[256], *out;
	char *bad[] = {"192.0.2.0/24", "198.51.100.0/24", "203.0.113.7/32"};
	uint64_t w;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		fprintf(stderr, "nft_fw_check: needs root, skipped\n");
		return 77;
	}
	if (isolate() < 0)
		return 1;
	pbm.instance = "t";
	if (mt_metal_init(&m, &pbm, err, sizeof(err)) < 0) {
		fprintf(stderr, "metal: %s\n", err);
		return 1;
	}
	CHECK(!strcmp(m.cust_nft_table, TABLE));
	CHECK(mt_netns_create(NS_A) == 1);
	CHECK(mt_netns_create(NS_B) == 1);
	CHECK(mt_nft_cust_new(&m, &c) == 0);
	if (!c)
		goto out;

	struct fwdesc d = {
	    .default_action = "block",
	    .rules =
		{
		    {.id = 10,
		     .action = "allow",
		     .proto = "tcp",
		     .dport = "22"},
		    {.id = 20,
		     .action = "block",
		     .proto = "udp",
		     .dport = "53"},
		    {.id = 30, .action = "allow", .src_list = "bad"},
		    {.id = 40,
		     .action = "rate_limit",
		     .proto = "icmp",
		     .pps = 100},
		},
	    .n_rules = 4,
	    .list_names = {"bad"},
	    .list_prefixes = {bad},
	    .list_n = {3},
	    .n_lists = 1,
	};

	/* 1. nothing there */
	fw = observe_fw(c, NS_A, false);
	CHECK(fw == NULL);

	/* 2. create, with a clamp of the same namespace: one transaction */
	op_fw_d(CREATE, NS_A, &d);
	op_mss(NS_A, "gre1", 1436);
	r = apply(c, &w, NULL);
	CHECK(r == 0);
	CHECK(res[0] && res[0]->error == 0 && res[1] && res[1]->error == 0);
	ops_reset();
	OBSERVED_IS(c, NS_A, &d);
	nft_view(NS_A, &v);
	CHECK(v.fw && v.fw_ok && v.fw_rules && v.fw_lists && v.mss);
	CHECK(v.n_base == 2); /* jump, default */
	CHECK(!v.foreign);
	printf("nft: %zu sets, fw_rules ids:", v.n_sets);
	for (size_t i = 0; i < v.n_rules; i++)
		printf(" %u", v.ids[i]);
	printf("\n");
	CHECK(v.n_rules >= 4 && v.ids[0] == 10 && handle_of(&v, 40));
	out = sh_out("ip netns exec %s nft list table inet %s", NS_A, TABLE);
	printf("%s", out ? out : "(nft list failed)\n");
	CHECK(out && strstr(out, "set l4_bad") && strstr(out, "set fw_lists"));
	CHECK(out && strstr(out, "jump fw_rules"));
	free(out);

	/* 3. the same again: nothing written */
	op_fw_d(CREATE, NS_A, &d);
	op_mss(NS_A, "gre1", 1436);
	CHECK(apply(c, &w, NULL) == 0 && w == 0);
	ops_reset();

	/* counters */
	fw = observe_fw(c, NS_A, true);
	CHECK(fw && fw->n_counters == 5 && fw->counters[4]->id == 0);
	if (fw)
		protobuf_c_message_free_unpacked(&fw->base, NULL);

	/* 4. one rule changed: exactly one message, in place */
	d.rules[1].dport = "5353";
	op_fw_d(CREATE, NS_A, &d);
	CHECK(apply(c, &w, NULL) == 0);
	CHECK(w == 1);
	ops_reset();
	OBSERVED_IS(c, NS_A, &d);
	nft_view(NS_A, &v2);
	CHECK(v2.n_rules == v.n_rules);
	CHECK(handle_of(&v2, 10) == handle_of(&v, 10));
	CHECK(handle_of(&v2, 30) == handle_of(&v, 30));
	/* a replaced rule keeps its handle (and its place) */
	CHECK(handle_of(&v2, 20) == handle_of(&v, 20));
	out = sh_out("ip netns exec %s nft list chain inet %s fw_rules", NS_A,
		     TABLE);
	CHECK(out && strstr(out, "udp dport 5353") &&
	      !strstr(out, "udp dport 53 "));
	free(out);
	for (size_t i = 0; i < v.n_rules; i++)
		CHECK(v2.ids[i] == v.ids[i]);

	/* 5. insert (15), move (40 to the head), delete (30) */
	d.rules[0] = (struct spec){
	    .id = 40, .action = "rate_limit", .proto = "icmp", .pps = 100};
	d.rules[1] = (struct spec){
	    .id = 10, .action = "allow", .proto = "tcp", .dport = "22"};
	d.rules[2] = (struct spec){
	    .id = 15, .action = "allow", .proto = "tcp", .dport = "443"};
	d.rules[3] = (struct spec){
	    .id = 20, .action = "block", .proto = "udp", .dport = "5353"};
	d.n_rules = 4;
	op_fw_d(CREATE, NS_A, &d);
	CHECK(apply(c, &w, NULL) == 0);
	printf("insert + move + delete: %llu messages\n",
	       (unsigned long long)w);
	ops_reset();
	OBSERVED_IS(c, NS_A, &d);
	nft_view(NS_A, &v);
	CHECK(v.ids[0] == 40 && !handle_of(&v, 30));
	CHECK(handle_of(&v, 10) == handle_of(&v2, 10));

	/* 6. a rule deleted by hand: observed rules differ; repaired */
	sh("ip netns exec %s nft delete rule inet %s fw_rules handle %llu",
	   NS_A, TABLE, (unsigned long long)handle_of(&v, 15));
	fw = observe_fw(c, NS_A, false);
	printf("after a hand delete: rules [%s]\n", ids_str(fw));
	CHECK(fw && !strcmp(ids_str(fw), "40 10 20") && !fw->dirty);
	if (fw)
		protobuf_c_message_free_unpacked(&fw->base, NULL);
	op_fw_d(CREATE, NS_A, &d);
	CHECK(apply(c, &w, NULL) == 0 && w == 1);
	ops_reset();
	OBSERVED_IS(c, NS_A, &d);

	/* a rule changed by hand so that it no longer parses: dirty, left
	 * out, restored */
	nft_view(NS_A, &v);
	sh("ip netns exec %s nft replace rule inet %s fw_rules handle %llu "
	   "tcp dport 23 accept comment '\"mt fw 10 1/1\"'",
	   NS_A, TABLE, (unsigned long long)handle_of(&v, 10));
	fw = observe_fw(c, NS_A, false);
	CHECK(fw && fw->dirty && !strcmp(ids_str(fw), "40 15 20"));
	if (fw)
		protobuf_c_message_free_unpacked(&fw->base, NULL);
	op_fw_d(CREATE, NS_A, &d);
	CHECK(apply(c, &w, NULL) == 0 && w == 2);
	ops_reset();
	OBSERVED_IS(c, NS_A, &d);

	/* 7. a foreign rule: dirty; removed */
	sh("ip netns exec %s nft add rule inet %s fw_rules counter accept",
	   NS_A, TABLE);
	sh("ip netns exec %s nft insert rule inet %s fw counter", NS_A, TABLE);
	fw = observe_fw(c, NS_A, false);
	CHECK(fw && fw->dirty && !strcmp(ids_str(fw), "40 10 15 20"));
	if (fw)
		protobuf_c_message_free_unpacked(&fw->base, NULL);
	op_fw_d(CREATE, NS_A, &d);
	CHECK(apply(c, &w, NULL) == 0 && w == 2);
	ops_reset();
	OBSERVED_IS(c, NS_A, &d);
	nft_view(NS_A, &v);
	CHECK(!v.foreign);

	/* 8. atomicity: rule 50 refers to a list the kernel does not have;
	 * in the same plan rule 10 changes and a clamp is added: nothing of
	 * it applies, the error names rule 50 */
	nft_view(NS_A, &v2);
	{
		struct fwdesc e = d;

		e.rules[1].dport = "2222";
		e.rules[e.n_rules++] = (struct spec){.id = 50,
						     .action = "block",
						     .src_list = "nope",
						     .family = "ipv4"};
		op_mss(NS_A, "gre2", 1400);
		op_fw_d(CREATE, NS_A, &e);
		r = apply(c, &w, NULL);
		CHECK(r != 0 && w == 0);
		CHECK(res[1] && res[1]->error != 0 &&
		      strstr(res[1]->message, "rule 50"));
		CHECK(res[0] && res[0]->error == -ECANCELED);
		ops_reset();
		OBSERVED_IS(c, NS_A, &d);
		nft_view(NS_A, &v);
		CHECK(v.n_rules == v2.n_rules);
		CHECK(handle_of(&v, 10) == handle_of(&v2, 10));
		CHECK(v.n_base == 2);
		out = sh_out("ip netns exec %s nft list chain inet %s mss",
			     NS_A, TABLE);
		CHECK(out && !strstr(out, "gre2")); /* no clamp for gre2 */
		free(out);
	}

	/* 9. refusals: nothing sent */
	{
		struct fwdesc e = d;

		e.default_action = "reject";
		op_fw_d(CREATE, NS_A, &e);
		r = apply(c, &w, NULL);
		CHECK(r == -EINVAL && w == 0);
		CHECK(res[0] && strstr(res[0]->message, "reject"));
		ops_reset();
		op_fw_d(CREATE, "mt0-acme", &d);
		r = apply(c, &w, NULL);
		CHECK(r == -EPERM && w == 0);
		ops_reset();
		op_fw_d(CREATE, NS_A, &d);
		op_fw_d(DELETE, NS_A, &d);
		r = apply(c, &w, NULL);
		CHECK(r != 0 && w == 0);
		CHECK(res[1] && res[1]->error == -EINVAL &&
		      strstr(res[1]->message, "one firewall op"));
		CHECK(res[0] && res[0]->error == -ECANCELED);
		ops_reset();
	}

	/* 10. the list changes, the default changes */
	bad[2] = "203.0.113.0/24";
	d.default_action = "allow";
	d.rules[d.n_rules++] =
	    (struct spec){.id = 30, .action = "allow", .src_list = "bad"};
	op_fw_d(CREATE, NS_A, &d);
	CHECK(apply(c, &w, NULL) == 0);
	ops_reset();
	OBSERVED_IS(c, NS_A, &d);

	/* a rule with an anonymous set, changed in place: the new set and
	 * the replacing rule */
	d.rules[d.n_rules++] = (struct spec){.id = 60,
					     .action = "allow",
					     .proto = "tcp",
					     .dport = "80",
					     .dport2 = "443"};
	op_fw_d(CREATE, NS_A, &d);
	CHECK(apply(c, &w, NULL) == 0 && w == 3);
	ops_reset();
	OBSERVED_IS(c, NS_A, &d);
	d.rules[d.n_rules - 1].dport2 = "8443";
	op_fw_d(CREATE, NS_A, &d);
	CHECK(apply(c, &w, NULL) == 0 && w == 3);
	ops_reset();
	OBSERVED_IS(c, NS_A, &d);
	out = sh_out("ip netns exec %s nft list chain inet %s fw_rules", NS_A,
		     TABLE);
	CHECK(out && strstr(out, "tcp dport { 80, 8443 }"));
	free(out);

	/* rules edited by hand in place (same handle, same comment with its
	 * digest) after an observe that kept their parsed form: the edit is
	 * seen (the rule is damaged: dirty, left out), also in a rule whose
	 * anonymous set is replaced by another that may reuse its name;
	 * the same text put back is intact again */
	CHECK(hand_edit(NS_A, 20, NULL, NULL) == 0);
	OBSERVED_IS(c, NS_A, &d);
	CHECK(hand_edit(NS_A, 20, "dport 5353", "dport 5354") == 0);
	fw = observe_fw(c, NS_A, false);
	CHECK(fw && fw->dirty && !strstr(ids_str(fw), "20"));
	if (fw)
		protobuf_c_message_free_unpacked(&fw->base, NULL);
	CHECK(hand_edit(NS_A, 20, "dport 5354", "dport 5353") == 0);
	OBSERVED_IS(c, NS_A, &d);
	/* two edits: the kernel names a new anonymous set with the lowest
	 * free "__set%d", the old one still exists during the replace: the
	 * second edit brings the rule's set name back (the rule's own bytes
	 * are as before), with other content */
	CHECK(hand_edit(NS_A, 60, "8443 }", "8445 }") == 0);
	CHECK(hand_edit(NS_A, 60, "8445 }", "8444 }") == 0);
	fw = observe_fw(c, NS_A, true);
	CHECK(fw && fw->dirty && !strstr(ids_str(fw), "60"));
	if (fw)
		protobuf_c_message_free_unpacked(&fw->base, NULL);
	op_fw_d(CREATE, NS_A, &d);
	CHECK(apply(c, &w, NULL) == 0);
	ops_reset();
	OBSERVED_IS(c, NS_A, &d);

	/* 11. a 100k-prefix list */
	big_list(c);

	/* 12. scale */
	if (n_scale > 0)
		scale(c, n_scale);

	/* 13. DELETE: the firewall goes, the mss chain stays */
	op_fw_d(DELETE, NS_A, &d);
	CHECK(apply(c, &w, NULL) == 0 && w == 4); /* 2 chains, 2 sets */
	ops_reset();
	fw = observe_fw(c, NS_A, false);
	CHECK(fw == NULL);
	nft_view(NS_A, &v);
	CHECK(!v.fw && !v.fw_rules && !v.fw_lists && v.mss && v.n_sets == 0);
	{
		Mt__Kernel__KernelState *st = mt_kstate_new();

		CHECK(mt_nft_cust_observe(c, NULL, 0, st) == 0);
		CHECK(st->n_mss_clamps == 1 && st->n_firewalls == 1);
		mt_kstate_free(st);
	}
	op_fw_d(DELETE, NS_A, &d);
	CHECK(apply(c, &w, NULL) == 0 && w == 0);
	ops_reset();
	op_fw_d(DELETE, NS_B, &d);
	CHECK(apply(c, &w, NULL) == 0);
	ops_reset();

out:
	ops_reset();
	mt_nft_cust_free(c);
	mt_netns_delete(NS_A);
	mt_netns_delete(NS_B);
	mt_metal_fini(&m);
	printf("%s (%d failed checks)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
