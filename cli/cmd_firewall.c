/* mtctl firewall show NAME|ID: a customer's firewall rules in order with
 * their counters and whether the kernel has them, the default action, and
 * the named lists. Rules are edited in the customer config (put/apply). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "mt_cleanup.h"
#include "mtctl.h"

/* Elements of one field shown in MATCH before "...(+N)". */
#define MATCH_ITEMS_MAX 4

#define S(s) ((s) ? (s) : "")

struct buf {
	char *p;
	size_t len, n;
};

static void put(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends to b (truncating at its end), a space first unless b is empty. */
static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (b->n + 1 >= b->len)
		return;
	if (b->n)
		b->p[b->n++] = ' ';
	b->p[b->n] = '\0';
	va_start(ap, fmt);
	w = vsnprintf(b->p + b->n, b->len - b->n, fmt, ap);
	va_end(ap);
	if (w > 0)
		b->n +=
		    (size_t)w < b->len - b->n ? (size_t)w : b->len - b->n - 1;
}

/* "KEY a,b,c" or "KEY a,b,c,d,...(+5)". */
static void put_items(struct buf *b, const char *key, char *const *v, size_t n)
{
	char items[512];
	size_t k = n > MATCH_ITEMS_MAX + 1 ? MATCH_ITEMS_MAX : n;

	if (!n)
		return;
	mtctl_join(v, k, ",", items, sizeof(items));
	if (k < n)
		put(b, "%s %s,...(+%zu)", key, items, n - k);
	else
		put(b, "%s %s", key, items);
}

static void put_range(struct buf *b, const char *key,
		      const Mt__Config__Range *r)
{
	if (!r)
		return;
	if (r->min == r->max)
		put(b, "%s %u", key, r->min);
	else
		put(b, "%s %u-%u", key, r->min, r->max);
}

/* The protocol, when it alone does not say the family. */
static bool family_implied(const Mt__Config__FirewallRule *r)
{
	return r->n_src_prefixes || r->n_dst_prefixes || *S(r->src_list) ||
	       *S(r->dst_list) || !strcmp(S(r->protocol), "icmp") ||
	       !strcmp(S(r->protocol), "icmpv6");
}

static bool is_number(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* A compact, nft-like summary of what a canonical rule matches:
 * "tcp dport 22,80-90 src @bad", "ipv6 frag", "any". */
static void format_match(const Mt__Config__FirewallRule *r, char *out,
			 size_t len)
{
	struct buf b = {out, len, 0};

	out[0] = '\0';
	if (*S(r->family) && !family_implied(r))
		put(&b, "%s", r->family);
	if (*S(r->protocol))
		put(&b, is_number(r->protocol) ? "proto %s" : "%s",
		    r->protocol);
	put_items(&b, "sport", r->src_ports, r->n_src_ports);
	put_items(&b, "dport", r->dst_ports, r->n_dst_ports);
	if (r->tcp_flags) {
		char flags[128] = "";
		size_t n = 0;

		for (size_t i = 0; i < r->tcp_flags->n_set && n < sizeof(flags);
		     i++)
			n += (size_t)snprintf(flags + n, sizeof(flags) - n,
					      "%s%s", n ? "," : "",
					      r->tcp_flags->set[i]);
		for (size_t i = 0;
		     i < r->tcp_flags->n_clear && n < sizeof(flags); i++)
			n += (size_t)snprintf(flags + n, sizeof(flags) - n,
					      "%s!%s", n ? "," : "",
					      r->tcp_flags->clear[i]);
		put(&b, "flags %s", flags);
	}
	if (r->icmp) {
		if (r->icmp->code_present_case ==
		    MT__CONFIG__ICMP_MATCH__CODE_PRESENT_CODE)
			put(&b, "type %u code %u", r->icmp->type,
			    r->icmp->code);
		else
			put(&b, "type %u", r->icmp->type);
	}
	if (*S(r->src_list))
		put(&b, "src @%s", r->src_list);
	else
		put_items(&b, "src", r->src_prefixes, r->n_src_prefixes);
	if (*S(r->dst_list))
		put(&b, "dst @%s", r->dst_list);
	else
		put_items(&b, "dst", r->dst_prefixes, r->n_dst_prefixes);
	put_range(&b, "length", r->length);
	put_range(&b, "ttl", r->ttl);
	if (r->fragment)
		put(&b, "frag");
	if (!b.n)
		put(&b, "any");
}

/* "block", "allow", "rate_limit 1000/s burst 5", "rate_limit 125000
 * bytes/s", each with " (monitor)" in monitor mode. */
static void format_action(const Mt__Config__FirewallRule *r, char *out,
			  size_t len)
{
	const Mt__Config__RateLimit *rl = r->rate_limit;
	struct buf b = {out, len, 0};

	out[0] = '\0';
	put(&b, "%s", S(r->action));
	if (rl && rl->packets_per_second) {
		put(&b, "%" PRIu64 "/s", rl->packets_per_second);
		if (rl->burst)
			put(&b, "burst %" PRIu64, rl->burst);
	} else if (rl && rl->bytes_per_second) {
		put(&b, "%" PRIu64 " bytes/s", rl->bytes_per_second);
		if (rl->burst)
			put(&b, "burst %" PRIu64 " bytes", rl->burst);
	}
	if (r->monitor)
		put(&b, "(monitor)");
}

static void counter_cells(struct mtctl_table *t,
			  const Mt__Kernel__FirewallCounters *c, bool limits)
{
	if (c) {
		mtctl_table_cell(t, "%" PRIu64, c->packets);
		mtctl_table_cell(t, "%" PRIu64, c->bytes);
	} else {
		mtctl_table_cell(t, "-");
		mtctl_table_cell(t, "-");
	}
	if (limits && c)
		mtctl_table_cell(t, "%" PRIu64, c->limited_packets);
	else
		mtctl_table_cell(t, "-");
}

static void print_rules(const Mt__Rpc__FirewallStatus *s)
{
	MT_CLEANUP(mtctl_table_freep) struct mtctl_table *t = NULL;
	static const char *const headers[] = {
	    "ID",    "ACTION",	"MATCH", "PACKETS",
	    "BYTES", "LIMITED", "STATE", "DESCRIPTION",
	};
	char action[128], match[2048];

	t = mtctl_table_new(headers, MT_ARRAY_SIZE(headers));
	if (!t)
		return;
	for (size_t i = 0; i < s->n_rules; i++) {
		const Mt__Rpc__FirewallRuleStatus *rs = s->rules[i];
		const Mt__Config__FirewallRule *r = rs->rule;

		if (!r)
			continue;
		format_action(r, action, sizeof(action));
		format_match(r, match, sizeof(match));
		mtctl_table_cell(t, "%u", r->id);
		mtctl_table_cell(t, "%s", action);
		mtctl_table_cell(t, "%s", match);
		counter_cells(t, rs->counters,
			      !strcmp(S(r->action), "rate_limit"));
		mtctl_table_cell(t, "%s",
				 rs->installed ? "installed" : "pending");
		mtctl_table_cell(t, "%s", S(r->description));
	}
	/* what no rule decided */
	mtctl_table_cell(t, "default");
	mtctl_table_cell(t, "%s", S(s->default_action));
	mtctl_table_cell(t, "-");
	counter_cells(t, s->default_counters, false);
	/* the kernel's default action is only known to be the config's
	 * when the whole firewall is in sync */
	mtctl_table_cell(t, "%s",
			 s->default_counters && s->in_sync ? "installed" : "-");
	mtctl_table_print(t, stdout);
}

static void print_lists(const Mt__Rpc__FirewallStatus *s)
{
	MT_CLEANUP(mtctl_table_freep) struct mtctl_table *t = NULL;
	static const char *const headers[] = {
	    "LIST",
	    "FAMILY",
	    "PREFIXES",
	    "STATE",
	};

	t = mtctl_table_new(headers, MT_ARRAY_SIZE(headers));
	if (!t)
		return;
	for (size_t i = 0; i < s->n_lists; i++) {
		const Mt__Rpc__FirewallListStatus *l = s->lists[i];

		mtctl_table_cell(t, "%s", S(l->name));
		mtctl_table_cell(t, "%s", S(l->family));
		mtctl_table_cell(t, "%u", l->count);
		mtctl_table_cell(t, "%s",
				 l->installed ? "installed" : "pending");
	}
	mtctl_table_print(t, stdout);
}

static int firewall_show(struct mtctl *ctx, const char *arg)
{
	Mt__Rpc__CustomerRef in = MT__RPC__CUSTOMER_REF__INIT;
	_cleanup_message_ ProtobufCMessage *out = NULL;
	const Mt__Rpc__FirewallStatus *s;
	struct mtctl_ref ref;
	int r;

	r = mtctl_ref_parse(arg, &ref);
	if (r != MTCTL_EXIT_OK)
		return r;
	in.id = ref.id;
	in.name = (char *)(ref.name ? ref.name : "");
	r = mtctl_agent_call(ctx, "ShowFirewall", &in.base, &out,
			     "firewall show", NULL);
	if (r != MTCTL_EXIT_OK)
		return r;
	if (ctx->output == MTCTL_OUTPUT_JSON)
		return mtctl_json_print_message(out, stdout) < 0
			   ? MTCTL_EXIT_FAILED
			   : MTCTL_EXIT_OK;
	s = (const Mt__Rpc__FirewallStatus *)out;
	printf("customer %s: %zu rule%s, default %s, kernel %s\n\n",
	       S(s->customer), s->n_rules, s->n_rules == 1 ? "" : "s",
	       S(s->default_action),
	       s->in_sync ? "in sync" : "NOT in sync with the config");
	print_rules(s);
	if (s->n_lists) {
		putchar('\n');
		print_lists(s);
	}
	return MTCTL_EXIT_OK;
}

int mtctl_cmd_firewall(struct mtctl *ctx, int argc, char **argv)
{
	if (argc < 2)
		return mtctl_usage_error("firewall: which subcommand? (show "
					 "NAME|ID; rules are edited with put)");
	if (strcmp(argv[1], "show") != 0)
		return mtctl_usage_error("firewall: unknown subcommand '%s' "
					 "(show; rules are edited with put)",
					 argv[1]);
	if (argc != 3)
		return mtctl_usage_error("firewall show: %s",
					 argc < 3 ? "which customer? (NAME|ID)"
						  : "one customer at a time");
	return firewall_show(ctx, argv[2]);
}
