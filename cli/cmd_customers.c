/* mtctl commands on customer configs: customers list/show, put/apply,
 * delete. Each works through mt-agent, or with --store directly on the
 * store (for when the agent is down). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "mt_cleanup.h"
#include "mt_store.h"
#include "mt_validate.h"
#include "mtctl.h"

#define STORE_RETRIES 5 /* compare-and-swap retries when the store moves */

static void store_closep(struct mt_store **s)
{
	mt_store_close(*s);
}

#define _cleanup_store_ MT_CLEANUP(store_closep)

/* ---- the customers as they are now (agent or store) ---- */

/* Opens --store. write = the command writes; must_exist = refuse to create
 * a store that is not there (a mistyped path must not yield an empty
 * store). */
static int store_open(struct mtctl *ctx, bool write, bool must_exist,
		      struct mt_store **out)
{
	char err[512];
	int r;

	if (must_exist || !write) {
		r = mt_store_open(ctx->store_url, MT_STORE_READONLY, out, err,
				  sizeof(err));
		if (r == -EPROTONOSUPPORT || r == -EINVAL)
			return mtctl_usage_error("--store '%s': %s",
						 ctx->store_url, err);
		if (r == -ENOENT)
			return mtctl_fail(MTCTL_EXIT_FAILED,
					  "--store '%s': "
					  "no store there (%s)",
					  ctx->store_url, strerror(-r));
		if (r < 0)
			return mtctl_fail(MTCTL_EXIT_FAILED, "--store: %s",
					  err);
		if (!write)
			return MTCTL_EXIT_OK;
		mt_store_close(*out);
		*out = NULL;
	}
	r = mt_store_open(ctx->store_url, 0, out, err, sizeof(err));
	if (r == -EPROTONOSUPPORT || r == -EINVAL)
		return mtctl_usage_error("--store '%s': %s", ctx->store_url,
					 err);
	if (r < 0)
		return mtctl_fail(MTCTL_EXIT_FAILED, "--store: %s", err);
	return MTCTL_EXIT_OK;
}

static void store_kvs_freep(struct mt_store_kv **kvs, size_t n)
{
	mt_store_kvs_free(*kvs, n);
}

/* Reads every customer of the store into a CustomerList shaped like the
 * agent's answer (status: state "stored", revision = the value's mod_rev),
 * so both paths print the same. Undecodable values are skipped with a
 * warning (the agent rejects them too). */
static int store_customers(struct mt_store *s, Mt__Rpc__CustomerList **out,
			   uint64_t *rev)
{
	struct mt_store_kv *kvs = NULL;
	Mt__Rpc__CustomerList *l;
	size_t n = 0;
	int r;

	*out = NULL;
	r = mt_store_range(s, MT_STORE_CUSTOMERS_PREFIX, &kvs, &n, rev);
	if (r < 0)
		return mtctl_fail(MTCTL_EXIT_FAILED,
				  "reading the store at "
				  "%s: %s",
				  mt_store_path(s), strerror(-r));
	l = malloc(sizeof(*l));
	if (l) {
		mt__rpc__customer_list__init(l);
		l->customers = calloc(n ? n : 1, sizeof(*l->customers));
		l->status = calloc(n ? n : 1, sizeof(*l->status));
	}
	if (!l || !l->customers || !l->status)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		Mt__Config__Customer *c;
		Mt__Rpc__CustomerStatus *st;
		uint32_t id;

		if (mt_store_customer_key_parse(kvs[i].key, &id) < 0) {
			fprintf(stderr,
				"mtctl: warning: store key '%s' is "
				"not customers/<id>: skipped\n",
				kvs[i].key);
			continue;
		}
		c = mt__config__customer__unpack(NULL, kvs[i].len, kvs[i].val);
		if (!c) {
			fprintf(stderr,
				"mtctl: warning: store key '%s': "
				"value (%zu bytes) does not decode as "
				"mt.config.Customer: skipped\n",
				kvs[i].key, kvs[i].len);
			continue;
		}
		if (c->id != id)
			fprintf(stderr,
				"mtctl: warning: store key '%s' holds "
				"customer id %u\n",
				kvs[i].key, c->id);
		l->customers[l->n_customers++] = c;
		st = malloc(sizeof(*st));
		if (!st)
			goto nomem;
		mt__rpc__customer_status__init(st);
		l->status[l->n_status++] = st;
		st->id = c->id;
		st->revision = kvs[i].mod_rev;
		st->name = strdup(c->name);
		st->state = strdup("stored");
		st->error = strdup("");
		if (!st->name || !st->state || !st->error)
			goto nomem;
	}
	store_kvs_freep(&kvs, n);
	*out = l;
	return MTCTL_EXIT_OK;
nomem:
	store_kvs_freep(&kvs, n);
	if (l)
		protobuf_c_message_free_unpacked(&l->base, NULL);
	return mtctl_fail(MTCTL_EXIT_FAILED, "out of memory");
}

/* The current customers, from the store (--store) or the agent. */
static int current_customers(struct mtctl *ctx, struct mt_store *s,
			     Mt__Rpc__CustomerList **out, uint64_t *rev)
{
	Mt__Rpc__Empty in = MT__RPC__EMPTY__INIT;
	ProtobufCMessage *m;
	int r;

	if (s)
		return store_customers(s, out, rev);
	r = mtctl_agent_call(ctx, "ListCustomers", &in.base, &m,
			     "listing customers", NULL);
	*out = (Mt__Rpc__CustomerList *)m;
	return r;
}

static const Mt__Rpc__CustomerStatus *
find_status(const Mt__Rpc__CustomerList *l, uint32_t id)
{
	for (size_t i = 0; i < l->n_status; i++)
		if (l->status[i]->id == id)
			return l->status[i];
	return NULL;
}

/* ---- customers list | show ---- */

static int print_list(const Mt__Rpc__CustomerList *l)
{
	static const char *const headers[] = {"ID", "NAME", "PREFIXES",
					      "ENDPOINTS", "STATE"};
	MT_CLEANUP(mtctl_table_freep) struct mtctl_table *t = NULL;
	char buf[1024];

	if (l->n_customers == 0) {
		puts("No customers.");
		return MTCTL_EXIT_OK;
	}
	t = mtctl_table_new(headers, MT_ARRAY_SIZE(headers));
	if (!t)
		return mtctl_fail(MTCTL_EXIT_FAILED, "out of memory");
	for (size_t i = 0; i < l->n_customers; i++) {
		const Mt__Config__Customer *c = l->customers[i];
		const Mt__Rpc__CustomerStatus *st = find_status(l, c->id);

		mtctl_table_cell(t, "%u", c->id);
		mtctl_table_cell(t, "%s", c->name);
		mtctl_table_cell(t, "%s",
				 mtctl_join(c->prefixes, c->n_prefixes, ",",
					    buf, sizeof(buf)));
		mtctl_table_cell(t, "%s",
				 mtctl_join(c->tunnel_endpoints,
					    c->n_tunnel_endpoints, ",", buf,
					    sizeof(buf)));
		mtctl_table_cell(t, "%s", st && *st->state ? st->state : "-");
	}
	mtctl_table_print(t, stdout);
	return MTCTL_EXIT_OK;
}

/* key: value lines; a list gets one line per item (key on the first). */
static void kv_list(struct mtctl_table *t, const char *key, char *const *v,
		    size_t n)
{
	mtctl_table_cell(t, "%s", key);
	if (n == 0)
		mtctl_table_cell(t, "-");
	for (size_t i = 0; i < n; i++) {
		if (i)
			mtctl_table_cell(t, NULL);
		mtctl_table_cell(t, "%s", v[i]);
	}
}

static int print_customer(const Mt__Config__Customer *c,
			  const Mt__Rpc__CustomerStatus *st)
{
	MT_CLEANUP(mtctl_table_freep) struct mtctl_table *t = NULL;

	t = mtctl_table_new(NULL, 2);
	if (!t)
		return mtctl_fail(MTCTL_EXIT_FAILED, "out of memory");
	mtctl_table_cell(t, "id:");
	mtctl_table_cell(t, "%u", c->id);
	mtctl_table_cell(t, "name:");
	mtctl_table_cell(t, "%s", c->name);
	kv_list(t, "prefixes:", c->prefixes, c->n_prefixes);
	kv_list(t, "tunnel endpoints:", c->tunnel_endpoints,
		c->n_tunnel_endpoints);
	for (size_t i = 0; i < c->n_tunnels; i++) {
		mtctl_table_cell(t, i ? NULL : "tunnels:");
		mtctl_table_cell(t, "%s", c->tunnels[i]->name);
	}
	for (size_t i = 0; i < c->n_routes; i++) {
		const Mt__Config__TunnelRoute *rt = c->routes[i];

		mtctl_table_cell(t, i ? NULL : "routes:");
		mtctl_table_cell(t, "%s via %s priority %u weight %u",
				 rt->prefix, rt->tunnel, rt->priority,
				 rt->weight);
	}
	if (st) {
		mtctl_table_cell(t, "state:");
		mtctl_table_cell(t, "%s", *st->state ? st->state : "-");
		mtctl_table_cell(t, "revision:");
		mtctl_table_cell(t, "%llu", (unsigned long long)st->revision);
		if (*st->error) {
			mtctl_table_cell(t, "error:");
			mtctl_table_cell(t, "%s", st->error);
		}
	}
	mtctl_table_print(t, stdout);
	return MTCTL_EXIT_OK;
}

static int customers_show(struct mtctl *ctx, struct mt_store *s,
			  const char *arg)
{
	Mt__Rpc__CustomerRef ref = MT__RPC__CUSTOMER_REF__INIT;
	_cleanup_message_ Mt__Rpc__CustomerList *l = NULL;
	const Mt__Config__Customer *c = NULL;
	struct mtctl_ref cref;
	char what[128];
	int r;

	r = mtctl_ref_parse(arg, &cref);
	if (r != MTCTL_EXIT_OK)
		return r;
	snprintf(what, sizeof(what), "customer %s", arg);
	if (s) {
		r = store_customers(s, &l, NULL);
	} else {
		ref.id = cref.id;
		ref.name = (char *)(cref.name ? cref.name : "");
		r = mtctl_agent_call(ctx, "GetCustomer", &ref.base,
				     (ProtobufCMessage **)&l, what, NULL);
	}
	if (r != MTCTL_EXIT_OK)
		return r;
	for (size_t i = 0; i < l->n_customers && !c; i++)
		if (mtctl_ref_match(&cref, l->customers[i]))
			c = l->customers[i];
	if (!c)
		return mtctl_fail(MTCTL_EXIT_FAILED, "no customer %s%s", arg,
				  s ? " in the store" : "");
	if (ctx->output == MTCTL_OUTPUT_JSON)
		return mtctl_json_print_message(&c->base, stdout) < 0
			   ? MTCTL_EXIT_FAILED
			   : MTCTL_EXIT_OK;
	return print_customer(c, find_status(l, c->id));
}

int mtctl_cmd_customers(struct mtctl *ctx, int argc, char **argv)
{
	_cleanup_store_ struct mt_store *s = NULL;
	_cleanup_message_ Mt__Rpc__CustomerList *l = NULL;
	const char *sub = argc > 1 ? argv[1] : "list";
	int r;

	if (strcmp(sub, "list") == 0) {
		if (argc > 2)
			return mtctl_usage_error("customers list: unexpected "
						 "argument '%s'",
						 argv[2]);
	} else if (strcmp(sub, "show") == 0) {
		if (argc != 3)
			return mtctl_usage_error(
			    "customers show: %s",
			    argc < 3 ? "which customer? (NAME|ID)"
				     : "one customer at a time");
	} else {
		return mtctl_usage_error("customers: unknown subcommand '%s' "
					 "(list or show)",
					 sub);
	}
	if (ctx->store_url) {
		r = store_open(ctx, false, true, &s);
		if (r != MTCTL_EXIT_OK)
			return r;
	}
	if (strcmp(sub, "show") == 0)
		return customers_show(ctx, s, argv[2]);
	r = current_customers(ctx, s, &l, NULL);
	if (r != MTCTL_EXIT_OK)
		return r;
	if (ctx->output == MTCTL_OUTPUT_JSON)
		return mtctl_json_print_message(&l->base, stdout) < 0
			   ? MTCTL_EXIT_FAILED
			   : MTCTL_EXIT_OK;
	return print_list(l);
}

/* ---- put / apply ---- */

static void customers_finip(struct mtctl_customers *set)
{
	mtctl_customers_fini(set);
}

/* Validates the whole batch: each customer alone, then against the rest of
 * the batch and the current customers that the batch does not replace.
 * Prints every problem; returns the number of invalid customers or -ENOMEM. */
static int validate_batch(const struct mt_metal *m,
			  const struct mtctl_customers *set,
			  const Mt__Rpc__CustomerList *cur)
{
	_cleanup_free_ Mt__Config__Customer **others = NULL;
	size_t n_others = 0;
	char err[MT_VALIDATE_ERR_MAX + 64];
	int bad = 0;

	others = calloc(set->n + cur->n_customers + 1, sizeof(*others));
	if (!others)
		return -ENOMEM;
	for (size_t i = 0; i < set->n; i++)
		others[n_others++] = set->c[i];
	for (size_t i = 0; i < cur->n_customers; i++) {
		bool replaced = false;

		for (size_t j = 0; j < set->n && !replaced; j++)
			replaced = set->c[j]->id == cur->customers[i]->id;
		if (!replaced)
			others[n_others++] = cur->customers[i];
	}
	for (size_t i = 0; i < set->n; i++) {
		const Mt__Config__Customer *c = set->c[i];
		bool dup = false;
		int r;

		/* The validator skips others with c's id (the old version of
		 * c), so the same id twice in the batch is caught here. */
		for (size_t j = 0; j < i && !dup; j++) {
			if (set->c[j]->id != c->id || c->id == 0)
				continue;
			fprintf(stderr,
				"mtctl: %s: customer %u \"%s\" is "
				"given twice (first in %s)\n",
				set->origin[i], c->id, c->name, set->origin[j]);
			dup = true;
		}
		if (dup) {
			bad++;
			continue;
		}
		r = mt_validate_customer_set(m, c, others, n_others, err,
					     sizeof(err));
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			fprintf(stderr, "mtctl: %s: %s\n", set->origin[i], err);
			bad++;
		}
	}
	return bad;
}

static json_t *put_result(const Mt__Config__Customer *c, const char *origin,
			  uint64_t rev)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)rev);
	return json_pack("{s:i, s:s, s:s, s:s}", "id", (json_int_t)c->id,
			 "name", c->name, "file", origin, "revision", buf);
}

static void print_put(const struct mtctl *ctx, json_t *results,
		      const Mt__Config__Customer *c, const char *origin,
		      uint64_t rev)
{
	if (ctx->output == MTCTL_OUTPUT_JSON)
		json_array_append_new(results, put_result(c, origin, rev));
	else
		printf("customer %u \"%s\" (%s): stored at revision %llu\n",
		       c->id, c->name, origin, (unsigned long long)rev);
}

static int put_agent(struct mtctl *ctx, const struct mtctl_customers *set,
		     json_t *results)
{
	for (size_t i = 0; i < set->n; i++) {
		_cleanup_message_ ProtobufCMessage *out = NULL;
		const Mt__Config__Customer *c = set->c[i];
		char what[256];
		int r;

		snprintf(what, sizeof(what), "%s: customer %u \"%s\" refused",
			 set->origin[i], c->id, c->name);
		r = mtctl_agent_call(ctx, "PutCustomer", &c->base, &out, what,
				     NULL);
		if (r != MTCTL_EXIT_OK) {
			if (i + 1 < set->n)
				fprintf(stderr,
					"mtctl: stopped: %zu of %zu "
					"customers were stored, the rest not "
					"sent\n",
					i, set->n);
			return r;
		}
		print_put(ctx, results, c, set->origin[i],
			  ((Mt__Rpc__PutReply *)out)->revision);
	}
	return MTCTL_EXIT_OK;
}

/* One store transaction for the whole batch, conditional on the revision
 * that was validated against. */
static int put_store(struct mt_store *s, const struct mtctl_customers *set,
		     uint64_t expect_rev, uint64_t *rev)
{
	_cleanup_free_ struct mt_store_op *ops = NULL;
	_cleanup_free_ char *keys = NULL;
	uint8_t **bufs;
	int r;

	ops = calloc(set->n, sizeof(*ops));
	keys = calloc(set->n, 32);
	bufs = calloc(set->n, sizeof(*bufs));
	if (!ops || !keys || !bufs) {
		free(bufs);
		return -ENOMEM;
	}
	r = 0;
	for (size_t i = 0; i < set->n && r == 0; i++) {
		size_t len =
		    protobuf_c_message_get_packed_size(&set->c[i]->base);

		bufs[i] = malloc(len ? len : 1);
		if (!bufs[i]) {
			r = -ENOMEM;
			break;
		}
		protobuf_c_message_pack(&set->c[i]->base, bufs[i]);
		ops[i].type = MT_STORE_OP_PUT;
		ops[i].key =
		    mt_store_customer_key(set->c[i]->id, keys + 32 * i, 32);
		ops[i].val = bufs[i];
		ops[i].len = len;
	}
	if (r == 0)
		r = mt_store_txn(s, ops, set->n, expect_rev, rev);
	for (size_t i = 0; i < set->n; i++)
		free(bufs[i]);
	free(bufs);
	return r;
}

static int put_validate(struct mtctl *ctx, struct mt_store *s,
			const struct mt_metal *m,
			const struct mtctl_customers *set, uint64_t *rev)
{
	_cleanup_message_ Mt__Rpc__CustomerList *cur = NULL;
	int r;

	r = current_customers(ctx, s, &cur, rev);
	if (r != MTCTL_EXIT_OK)
		return r;
	r = validate_batch(m, set, cur);
	if (r < 0)
		return mtctl_fail(MTCTL_EXIT_FAILED, "out of memory");
	if (r > 0)
		return mtctl_fail(MTCTL_EXIT_FAILED,
				  "nothing was %s: %d of "
				  "%zu customers %s invalid",
				  s ? "written" : "sent", r, set->n,
				  r == 1 ? "is" : "are");
	return MTCTL_EXIT_OK;
}

int mtctl_cmd_put(struct mtctl *ctx, int argc, char **argv)
{
	MT_CLEANUP(customers_finip) struct mtctl_customers set = {0};
	json_auto_t *results = NULL;
	_cleanup_store_ struct mt_store *s = NULL;
	struct mt_metal m;
	bool bad_file = false;
	char err[1024];
	uint64_t rev = 0, new_rev = 0;
	int r;

	if (argc < 2)
		return mtctl_usage_error("%s: no file given (FILE..., - for "
					 "stdin)",
					 argv[0]);
	for (int i = 1, stdin_seen = 0; i < argc; i++)
		if (strcmp(argv[i], "-") == 0 && stdin_seen++)
			return mtctl_usage_error("%s: stdin ('-') given twice",
						 argv[0]);
	for (int i = 1; i < argc; i++) {
		r = mtctl_customers_load(&set, argv[i], err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "mtctl: %s\n", err);
			bad_file = true;
		}
	}
	if (bad_file)
		return mtctl_fail(MTCTL_EXIT_INPUT, "nothing was %s",
				  ctx->store_url ? "written" : "sent");
	if (set.n == 0)
		return mtctl_fail(MTCTL_EXIT_INPUT,
				  "%s: the files hold no "
				  "customer",
				  argv[0]);
	r = mtctl_metal_load(ctx, &m);
	if (r != MTCTL_EXIT_OK)
		return r;
	if (ctx->store_url) {
		r = store_open(ctx, true, false, &s);
		if (r != MTCTL_EXIT_OK)
			goto out;
	}
	results = json_array();
	if (!results) {
		r = mtctl_fail(MTCTL_EXIT_FAILED, "out of memory");
		goto out;
	}
	if (!s) {
		r = put_validate(ctx, NULL, &m, &set, &rev);
		if (r == MTCTL_EXIT_OK)
			r = put_agent(ctx, &set, results);
		goto print;
	}
	/* Direct: validate against the store and write the batch in one
	 * transaction that fails if anyone wrote in between; then retry. */
	for (int attempt = 0;; attempt++) {
		r = put_validate(ctx, s, &m, &set, &rev);
		if (r != MTCTL_EXIT_OK)
			goto out;
		r = put_store(s, &set, rev, &new_rev);
		if (r != -EAGAIN || attempt == STORE_RETRIES)
			break;
	}
	if (r < 0) {
		r = mtctl_fail(MTCTL_EXIT_FAILED,
			       "writing to the store at %s: "
			       "%s: nothing was written",
			       mt_store_path(s), strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < set.n; i++)
		print_put(ctx, results, set.c[i], set.origin[i], new_rev);
	r = MTCTL_EXIT_OK;
print:
	if (ctx->output == MTCTL_OUTPUT_JSON &&
	    (r == MTCTL_EXIT_OK || json_array_size(results) > 0) &&
	    mtctl_json_print(json_pack("{s:O}", "customers", results), stdout) <
		0 &&
	    r == MTCTL_EXIT_OK)
		r = MTCTL_EXIT_FAILED;
out:
	mt_metal_fini(&m);
	return r;
}

/* ---- delete ---- */

static json_t *delete_result(const char *arg, uint32_t id, uint64_t rev)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)rev);
	if (id)
		return json_pack("{s:s, s:i, s:s}", "customer", arg, "id",
				 (json_int_t)id, "revision", buf);
	return json_pack("{s:s, s:s}", "customer", arg, "revision", buf);
}

static int delete_agent(struct mtctl *ctx, const struct mtctl_ref *refs,
			size_t n, json_t *results)
{
	int ret = MTCTL_EXIT_OK;

	for (size_t i = 0; i < n; i++) {
		Mt__Rpc__CustomerRef ref = MT__RPC__CUSTOMER_REF__INIT;
		_cleanup_message_ ProtobufCMessage *out = NULL;
		uint64_t rev;
		char what[128];
		int r;

		ref.id = refs[i].id;
		ref.name = (char *)(refs[i].name ? refs[i].name : "");
		snprintf(what, sizeof(what), "delete %s", refs[i].arg);
		r = mtctl_agent_call(ctx, "DeleteCustomer", &ref.base, &out,
				     what, NULL);
		if (r == MTCTL_EXIT_UNREACHABLE || r == MTCTL_EXIT_USAGE)
			return r;
		if (r != MTCTL_EXIT_OK) {
			ret = r;
			continue;
		}
		rev = ((Mt__Rpc__PutReply *)out)->revision;
		if (ctx->output == MTCTL_OUTPUT_JSON)
			json_array_append_new(
			    results, delete_result(refs[i].arg, 0, rev));
		else
			printf("customer %s: deleted at revision %llu\n",
			       refs[i].arg, (unsigned long long)rev);
	}
	return ret;
}

/* Deletes the customers that exist in one conditional transaction; names
 * that match nothing are reported (exit 1) but do not stop the rest. */
static int delete_store(struct mtctl *ctx, struct mt_store *s,
			const struct mtctl_ref *refs, size_t n, json_t *results)
{
	for (int attempt = 0;; attempt++) {
		_cleanup_message_ Mt__Rpc__CustomerList *cur = NULL;
		_cleanup_free_ struct mt_store_op *ops = NULL;
		_cleanup_free_ char *keys = NULL;
		_cleanup_free_ uint32_t *ids = NULL;
		_cleanup_free_ const char **args = NULL;
		size_t n_ops = 0;
		uint64_t rev, new_rev;
		int ret = MTCTL_EXIT_OK, r;

		r = store_customers(s, &cur, &rev);
		if (r != MTCTL_EXIT_OK)
			return r;
		ops = calloc(n, sizeof(*ops));
		keys = calloc(n, 32);
		ids = calloc(n, sizeof(*ids));
		args = calloc(n, sizeof(*args));
		if (!ops || !keys || !ids || !args)
			return mtctl_fail(MTCTL_EXIT_FAILED, "out of memory");
		for (size_t i = 0; i < n; i++) {
			const Mt__Config__Customer *c = NULL;
			bool again = false;

			for (size_t j = 0; j < cur->n_customers && !c; j++)
				if (mtctl_ref_match(&refs[i],
						    cur->customers[j]))
					c = cur->customers[j];
			if (!c) {
				if (attempt == 0)
					mtctl_fail(MTCTL_EXIT_FAILED,
						   "delete %s: no such "
						   "customer in the store",
						   refs[i].arg);
				ret = MTCTL_EXIT_FAILED;
				continue;
			}
			for (size_t j = 0; j < n_ops && !again; j++)
				again = ids[j] == c->id;
			if (again)
				continue;
			args[n_ops] = refs[i].arg;
			ops[n_ops].type = MT_STORE_OP_DELETE;
			ops[n_ops].key =
			    mt_store_customer_key(c->id, keys + 32 * n_ops, 32);
			ids[n_ops++] = c->id;
		}
		if (n_ops == 0)
			return ret;
		r = mt_store_txn(s, ops, n_ops, rev, &new_rev);
		if (r == -EAGAIN && attempt < STORE_RETRIES)
			continue;
		if (r < 0)
			return mtctl_fail(MTCTL_EXIT_FAILED,
					  "deleting from "
					  "the store at %s: %s: nothing was "
					  "deleted",
					  mt_store_path(s), strerror(-r));
		for (size_t i = 0; i < n_ops; i++) {
			if (ctx->output == MTCTL_OUTPUT_JSON)
				json_array_append_new(
				    results,
				    delete_result(args[i], ids[i], new_rev));
			else
				printf("customer %s (id %u): deleted at "
				       "revision %llu\n",
				       args[i], ids[i],
				       (unsigned long long)new_rev);
		}
		return ret;
	}
}

int mtctl_cmd_delete(struct mtctl *ctx, int argc, char **argv)
{
	json_auto_t *results = NULL;
	_cleanup_store_ struct mt_store *s = NULL;
	_cleanup_free_ struct mtctl_ref *refs = NULL;
	size_t n = (size_t)argc - 1;
	int r;

	if (argc < 2)
		return mtctl_usage_error("delete: which customer? "
					 "(NAME|ID...)");
	refs = calloc(n, sizeof(*refs));
	results = json_array();
	if (!refs || !results)
		return mtctl_fail(MTCTL_EXIT_FAILED, "out of memory");
	for (size_t i = 0; i < n; i++) {
		r = mtctl_ref_parse(argv[i + 1], &refs[i]);
		if (r != MTCTL_EXIT_OK)
			return r;
	}
	if (ctx->store_url) {
		r = store_open(ctx, true, true, &s);
		if (r != MTCTL_EXIT_OK)
			return r;
		r = delete_store(ctx, s, refs, n, results);
	} else {
		r = delete_agent(ctx, refs, n, results);
	}
	if (ctx->output == MTCTL_OUTPUT_JSON &&
	    (r == MTCTL_EXIT_OK || json_array_size(results) > 0) &&
	    mtctl_json_print(json_pack("{s:O}", "deleted", results), stdout) <
		0 &&
	    r == MTCTL_EXIT_OK)
		r = MTCTL_EXIT_FAILED;
	return r;
}
