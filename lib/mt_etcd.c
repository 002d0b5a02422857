/* The etcd backend of the config store (mt_etcd.h, docs/store.md).
 *
 * Sections: the pure parts (URL, base64, key schema, txn plans and
 * requests, answers, the watch messages, the mirror), then the HTTP client
 * with failover, the handle's calls, and the watch thread.
 */
#include "mt_etcd.h"
#include "mt_base64.h"
#include "mt_cleanup.h"
#include "mt_log.h"
#include "mt_time.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* Keys per page of a range read: bounds the size of one answer. */
#define RANGE_PAGE 500
/* Backoff between rounds of the watch over every member, when all fail. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000
/* A watch stream silent for this long has its member probed with a read:
 * a member that is stopped or stuck keeps the connection open but sends
 * nothing, and TCP keepalives do not see it. */
#define PROBE_IDLE_MS 5000

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t len,
							 const char *fmt, ...)
{
	va_list ap;

	if (!err || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static uint64_t json_u64(json_t *j)
{
	const char *s = json_string_value(j);
	uint64_t v = 0;

	if (json_is_integer(j))
		return json_integer_value(j) > 0
			   ? (uint64_t)json_integer_value(j)
			   : 0;
	if (!s)
		return 0;
	for (; *s >= '0' && *s <= '9'; s++)
		v = v * 10 + (uint64_t)(*s - '0');
	return *s ? 0 : v;
}

static json_t *json_u64_new(uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return json_string(buf);
}

/* ---- URL ---- */

static bool is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool is_prefix_char(char c)
{
	return is_host_char(c) || c == '/' || c == '~' || c == ':' ||
	       c == '@' || c == '+' || c == '=';
}

/* A decimal in [min, max], the whole string. */
static int parse_uint(const char *s, size_t len, unsigned long long min,
		      unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (!len || len > 12)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long long)(s[i] - '0');
	}
	if (v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_member(const char *url, size_t idx, const char *s, size_t len,
			char **out, char *err, size_t errlen)
{
	const char *host = s, *colon = NULL;
	size_t hlen;
	unsigned long long port = MT_ETCD_DEFAULT_PORT;

	if (!len) {
		seterr(err, errlen, "store url %s: member %zu is empty", url,
		       idx + 1);
		return -EINVAL;
	}
	if (*s == '[') {
		const char *close = memchr(s, ']', len);

		if (!close || close == s + 1) {
			seterr(err, errlen,
			       "store url %s: member %zu \"%.*s\": an IPv6 "
			       "address needs [brackets]",
			       url, idx + 1, (int)len, s);
			return -EINVAL;
		}
		for (const char *c = s + 1; c < close; c++)
			if (!strchr("0123456789abcdefABCDEF:.", *c)) {
				seterr(err, errlen,
				       "store url %s: member %zu \"%.*s\": "
				       "not an IPv6 address",
				       url, idx + 1, (int)len, s);
				return -EINVAL;
			}
		hlen = (size_t)(close - s) + 1;
		if (hlen < len) {
			if (s[hlen] != ':') {
				seterr(err, errlen,
				       "store url %s: member %zu \"%.*s\": "
				       "expected :PORT after ]",
				       url, idx + 1, (int)len, s);
				return -EINVAL;
			}
			colon = s + hlen;
		}
	} else {
		colon = memchr(s, ':', len);
		hlen = colon ? (size_t)(colon - s) : len;
		for (size_t i = 0; i < hlen; i++)
			if (!is_host_char(s[i])) {
				seterr(err, errlen,
				       "store url %s: member %zu \"%.*s\": "
				       "bad character '%c' in the host",
				       url, idx + 1, (int)len, s, s[i]);
				return -EINVAL;
			}
		if (!hlen || hlen > 253) {
			seterr(err, errlen,
			       "store url %s: member %zu \"%.*s\": %s host",
			       url, idx + 1, (int)len, s,
			       hlen ? "too long a" : "no");
			return -EINVAL;
		}
	}
	if (colon && parse_uint(colon + 1, len - (size_t)(colon + 1 - s), 1,
				65535, &port) < 0) {
		seterr(err, errlen,
		       "store url %s: member %zu \"%.*s\": the port is not a "
		       "number in 1..65535",
		       url, idx + 1, (int)len, s);
		return -EINVAL;
	}
	if (asprintf(out, "%.*s:%llu", (int)hlen, host, port) < 0)
		return -ENOMEM;
	return 0;
}

static int parse_option(const char *url, const char *s, size_t len,
			struct mt_etcd_url *u, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		unsigned long long min, max;
	} opts[] = {
	    {"timeout_ms", 1, 600000},
	    {"max_request_bytes", 4096, 1ull << 31},
	    {"max_txn_ops", 1, 1000000},
	};
	const char *eq = memchr(s, '=', len);
	size_t nlen = eq ? (size_t)(eq - s) : len;
	unsigned long long v;

	for (size_t i = 0; i < MT_ARRAY_SIZE(opts); i++) {
		if (strlen(opts[i].name) != nlen ||
		    strncmp(opts[i].name, s, nlen))
			continue;
		if (!eq || parse_uint(eq + 1, len - nlen - 1, opts[i].min,
				      opts[i].max, &v) < 0) {
			seterr(err, errlen,
			       "store url %s: option %s wants a number in "
			       "%llu..%llu",
			       url, opts[i].name, opts[i].min, opts[i].max);
			return -EINVAL;
		}
		if (i == 0)
			u->timeout_ms = (unsigned)v;
		else if (i == 1)
			u->max_request_bytes = (size_t)v;
		else
			u->max_txn_ops = (unsigned)v;
		return 0;
	}
	seterr(err, errlen,
	       "store url %s: unknown option \"%.*s\" (timeout_ms, "
	       "max_request_bytes, max_txn_ops)",
	       url, (int)nlen, s);
	return -EINVAL;
}

int mt_etcd_url_parse(const char *url, struct mt_etcd_url *u, char *err,
		      size_t errlen)
{
	const char *p, *end, *q;
	size_t plen;
	int r;

	memset(u, 0, sizeof(*u));
	u->timeout_ms = MT_ETCD_TIMEOUT_MS;
	u->max_request_bytes = MT_ETCD_MAX_REQUEST_BYTES;
	u->max_txn_ops = MT_ETCD_MAX_TXN_OPS;
	if (!url || strncmp(url, "etcd://", 7)) {
		seterr(err, errlen, "store url %s: not etcd://",
		       url ? url : "(null)");
		return -EINVAL;
	}
	p = url + 7;
	end = p + strcspn(p, "/?");
	if (end == p) {
		seterr(err, errlen,
		       "store url %s: no member (etcd://HOST:PORT[,...]"
		       "/PREFIX)",
		       url);
		return -EINVAL;
	}
	while (p <= end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;

		if (u->n_members == MT_ETCD_MAX_MEMBERS) {
			seterr(err, errlen,
			       "store url %s: more than %d members", url,
			       MT_ETCD_MAX_MEMBERS);
			r = -EINVAL;
			goto fail;
		}
		r = parse_member(url, u->n_members, p, (size_t)(stop - p),
				 &u->members[u->n_members], err, errlen);
		if (r < 0)
			goto fail;
		u->n_members++;
		p = stop + 1;
	}

	/* the prefix: the path, '/' appended; none or "/": the default */
	p = end;
	q = p + strcspn(p, "?");
	plen = (size_t)(q - p);
	if (plen <= 1) {
		u->prefix = strdup(MT_ETCD_DEFAULT_PREFIX);
	} else {
		for (size_t i = 0; i < plen; i++)
			if (!is_prefix_char(p[i])) {
				seterr(err, errlen,
				       "store url %s: bad character '%c' in "
				       "the prefix",
				       url, p[i]);
				r = -EINVAL;
				goto fail;
			}
		if (memmem(p, plen, "//", 2) || plen > MT_ETCD_PREFIX_MAX) {
			seterr(err, errlen, "store url %s: the prefix %s", url,
			       plen > MT_ETCD_PREFIX_MAX
				   ? "is too long"
				   : "has an empty element (//)");
			r = -EINVAL;
			goto fail;
		}
		if (asprintf(&u->prefix, "%.*s%s", (int)plen, p,
			     p[plen - 1] == '/' ? "" : "/") < 0)
			u->prefix = NULL;
	}
	if (!u->prefix) {
		r = -ENOMEM;
		goto fail;
	}

	/* options */
	if (*q == '?') {
		for (p = q + 1; *p;) {
			size_t olen = strcspn(p, "&");

			if (!olen) {
				seterr(err, errlen,
				       "store url %s: empty option", url);
				r = -EINVAL;
				goto fail;
			}
			r = parse_option(url, p, olen, u, err, errlen);
			if (r < 0)
				goto fail;
			p += olen;
			if (*p == '&' && !*++p) {
				seterr(err, errlen,
				       "store url %s: empty option", url);
				r = -EINVAL;
				goto fail;
			}
		}
	}
	return 0;
fail:
	mt_etcd_url_fini(u);
	return r;
}

void mt_etcd_url_fini(struct mt_etcd_url *u)
{
	for (size_t i = 0; i < u->n_members; i++)
		free(u->members[i]);
	free(u->prefix);
	memset(u, 0, sizeof(*u));
}

static json_t *b64_json(const void *p, size_t n)
{
	char *s = malloc(mt_base64_len(n) + 1);
	json_t *j;

	if (!s)
		return NULL;
	mt_base64_encode(p, n, s);
	j = json_string(s);
	free(s);
	return j;
}

/* ---- the key schema ---- */

char *mt_etcd_data_key(const char *prefix, const char *key)
{
	char *s;

	if (asprintf(&s, "%s" MT_ETCD_SCHEMA "/%s", prefix, key ? key : "") < 0)
		return NULL;
	return s;
}

char *mt_etcd_prefix_end(const char *key, size_t len, size_t *end_len)
{
	char *end = malloc(len + 1);

	if (!end)
		return NULL;
	memcpy(end, key, len);
	while (len && (uint8_t)end[len - 1] == 0xff)
		len--;
	if (!len) {
		end[0] = '\0';
		*end_len = 1;
		return end;
	}
	end[len - 1] = (char)((uint8_t)end[len - 1] + 1);
	*end_len = len;
	return end;
}

static bool store_key_ok(const char *key)
{
	size_t len = key ? strlen(key) : 0;

	return len && len <= MT_STORE_KEY_MAX;
}

/* ---- txn plans ---- */

struct key_ref {
	const char *key;
	size_t i;
};

static int cmp_key_ref(const void *x, const void *y)
{
	const struct key_ref *a = x, *b = y;
	int c = strcmp(a->key, b->key);

	if (c)
		return c;
	return a->i < b->i ? -1 : a->i > b->i;
}

struct plan_slot {
	size_t first; /* the index of the key's first op, for the order */
	struct mt_etcd_plan_op op;
};

static int cmp_slot(const void *x, const void *y)
{
	const struct plan_slot *a = x, *b = y;

	return a->first < b->first ? -1 : a->first > b->first;
}

int mt_etcd_plan_build(const struct mt_store_op *ops, size_t n,
		       struct mt_etcd_plan *p, char *err, size_t errlen)
{
	_cleanup_free_ struct key_ref *refs = NULL;
	_cleanup_free_ struct plan_slot *slots = NULL;
	size_t ns = 0;

	memset(p, 0, sizeof(*p));
	if (!n)
		return 0;
	if (!ops)
		return -EINVAL;
	refs = calloc(n, sizeof(*refs));
	slots = calloc(n, sizeof(*slots));
	if (!refs || !slots)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!store_key_ok(ops[i].key)) {
			seterr(err, errlen,
			       "op %zu: a store key is 1..%d bytes", i + 1,
			       MT_STORE_KEY_MAX);
			return -EINVAL;
		}
		if (ops[i].type != MT_STORE_OP_PUT &&
		    ops[i].type != MT_STORE_OP_DELETE) {
			seterr(err, errlen, "op %zu on %s: unknown type", i + 1,
			       ops[i].key);
			return -EINVAL;
		}
		if (ops[i].type == MT_STORE_OP_PUT && ops[i].len &&
		    !ops[i].val) {
			seterr(err, errlen, "op %zu on %s: no value", i + 1,
			       ops[i].key);
			return -EINVAL;
		}
		refs[i] = (struct key_ref){ops[i].key, i};
	}
	qsort(refs, n, sizeof(*refs), cmp_key_ref);
	for (size_t g = 0; g < n;) {
		/* the ops on one key, in order */
		enum { UNKNOWN, PRESENT, ABSENT } state = UNKNOWN;
		struct plan_slot *s = &slots[ns++];
		size_t k = g;

		s->first = refs[g].i;
		s->op.key = refs[g].key;
		for (; k < n && !strcmp(refs[k].key, refs[g].key); k++) {
			const struct mt_store_op *o = &ops[refs[k].i];

			if (o->type == MT_STORE_OP_PUT) {
				state = PRESENT;
				s->op.put = true;
				s->op.val = o->val;
				s->op.len = o->len;
				continue;
			}
			if (state == ABSENT) {
				seterr(err, errlen,
				       "delete %s: deleted twice in one txn",
				       o->key);
				return -ENOENT;
			}
			if (state == UNKNOWN)
				s->op.must_exist = true;
			state = ABSENT;
			s->op.put = false;
			s->op.val = NULL;
			s->op.len = 0;
		}
		g = k;
	}
	qsort(slots, ns, sizeof(*slots), cmp_slot);
	p->ops = calloc(ns, sizeof(*p->ops));
	if (!p->ops)
		return -ENOMEM;
	for (size_t i = 0; i < ns; i++)
		p->ops[i] = slots[i].op;
	p->n = ns;
	return 0;
}

void mt_etcd_plan_fini(struct mt_etcd_plan *p)
{
	free(p->ops);
	memset(p, 0, sizeof(*p));
}

/* ---- txn requests ---- */

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* A length-delimited protobuf field, counting 2 bytes of tag (an upper
 * bound for every field number in etcd's messages). */
static size_t pb_field(size_t payload)
{
	return 2 + varint_len(payload) + payload;
}

static size_t pb_compare(size_t key, size_t end, uint64_t rev)
{
	/* result, target, key, the value, range_end */
	return pb_field(4 + pb_field(key) + 2 + varint_len(rev) +
			(end ? pb_field(end) : 0));
}

struct txn_keys {
	size_t data_len; /* strlen("<prefix>v1/") */
	size_t marker_len;
};

static void txn_keys(const struct mt_etcd_schema *sc, struct txn_keys *k)
{
	k->data_len = strlen(sc->prefix) + strlen(MT_ETCD_SCHEMA) + 1;
	k->marker_len = strlen(sc->prefix) + strlen(MT_ETCD_MARKER);
}

size_t mt_etcd_txn_size(const struct mt_etcd_schema *sc,
			const struct mt_etcd_plan *p, uint64_t expect_rev)
{
	struct txn_keys k;
	size_t cas = 0, txn = 0;

	txn_keys(sc, &k);
	if (expect_rev) {
		cas = pb_compare(k.data_len, k.data_len, expect_rev + 1) +
		      pb_compare(k.marker_len, 0, expect_rev + 1);
		txn += cas + pb_field(pb_field(cas)); /* and in failure */
	}
	for (size_t i = 0; i < p->n; i++) {
		size_t key = k.data_len + strlen(p->ops[i].key);

		if (p->ops[i].put)
			txn += pb_field(
			    pb_field(pb_field(key) + pb_field(p->ops[i].len)));
		else
			txn += pb_field(pb_field(pb_field(key)));
		if (p->ops[i].must_exist)
			txn += pb_compare(key, 0, 0) +
			       pb_field(pb_field(pb_field(key) + 2));
	}
	if (p->n)
		txn += pb_field(pb_field(pb_field(k.marker_len)));
	/* the raft request around it: header (id, username) and slack */
	return pb_field(txn) + 64;
}

static json_t *compare_json(const char *target, const char *result,
			    const char *key, size_t key_len, const char *end,
			    size_t end_len, const char *field, uint64_t v)
{
	json_t *c = json_object();

	json_object_set_new(c, "target", json_string(target));
	json_object_set_new(c, "result", json_string(result));
	json_object_set_new(c, "key", b64_json(key, key_len));
	if (end)
		json_object_set_new(c, "range_end", b64_json(end, end_len));
	json_object_set_new(c, field, json_u64_new(v));
	return c;
}

/* The compare-and-swap: nothing in the data range and no write marker
 * modified after expect_rev. */
static json_t *cas_compares(const struct mt_etcd_schema *sc,
			    uint64_t expect_rev)
{
	_cleanup_free_ char *data = mt_etcd_data_key(sc->prefix, "");
	_cleanup_free_ char *marker = NULL;
	_cleanup_free_ char *end = NULL;
	size_t end_len = 0;
	json_t *a = json_array();

	if (asprintf(&marker, "%s" MT_ETCD_MARKER, sc->prefix) < 0)
		marker = NULL;
	if (data)
		end = mt_etcd_prefix_end(data, strlen(data), &end_len);
	if (!a || !data || !marker || !end) {
		json_decref(a);
		return NULL;
	}
	json_array_append_new(a, compare_json("MOD", "LESS", data, strlen(data),
					      end, end_len, "mod_revision",
					      expect_rev + 1));
	json_array_append_new(a, compare_json("MOD", "LESS", marker,
					      strlen(marker), NULL, 0,
					      "mod_revision", expect_rev + 1));
	return a;
}

int mt_etcd_txn_request(const struct mt_etcd_schema *sc,
			const struct mt_etcd_plan *p, uint64_t expect_rev,
			json_t **req, char *err, size_t errlen)
{
	size_t size = mt_etcd_txn_size(sc, p, expect_rev), n_exist = 0;
	json_t *cmp, *succ, *fail, *t;
	_cleanup_free_ char *marker = NULL;

	*req = NULL;
	for (size_t i = 0; i < p->n; i++)
		n_exist += p->ops[i].must_exist;
	if (p->n + 1 > sc->max_txn_ops ||
	    n_exist + (expect_rev ? 2 : 0) > sc->max_txn_ops) {
		seterr(err, errlen,
		       "a txn of %zu keys needs %zu operations; etcd accepts "
		       "at most %u per txn (max_txn_ops): split the batch",
		       p->n, p->n + 1, sc->max_txn_ops);
		return -E2BIG;
	}
	if (size > sc->max_request_bytes) {
		if (p->n == 1 && p->ops[0].put)
			seterr(err, errlen,
			       "the value of %s is %zu bytes: with its key and "
			       "the txn around it the request is %zu bytes, "
			       "over etcd's limit of %zu bytes "
			       "(max_request_bytes): not sent",
			       p->ops[0].key, p->ops[0].len, size,
			       sc->max_request_bytes);
		else
			seterr(err, errlen,
			       "a txn of %zu keys is %zu bytes, over etcd's "
			       "limit of %zu bytes (max_request_bytes): not "
			       "sent; split the batch",
			       p->n, size, sc->max_request_bytes);
		return -EMSGSIZE;
	}
	if (asprintf(&marker, "%s" MT_ETCD_MARKER, sc->prefix) < 0)
		return -ENOMEM;

	t = json_object();
	cmp = expect_rev ? cas_compares(sc, expect_rev) : json_array();
	succ = json_array();
	fail = json_array();
	if (!t || !cmp || !succ || !fail)
		goto nomem;
	if (expect_rev) {
		json_t *cas = cas_compares(sc, expect_rev);

		if (!cas)
			goto nomem;
		json_array_append_new(
		    fail,
		    json_pack("{s:{s:o}}", "request_txn", "compare", cas));
	}
	for (size_t i = 0; i < p->n; i++) {
		const struct mt_etcd_plan_op *o = &p->ops[i];
		_cleanup_free_ char *key = mt_etcd_data_key(sc->prefix, o->key);
		json_t *op;

		if (!key)
			goto nomem;
		if (o->put) {
			op = json_pack("{s:{s:o}}", "request_put", "key",
				       b64_json(key, strlen(key)));
			if (op && o->len)
				json_object_set_new(
				    json_object_get(op, "request_put"), "value",
				    b64_json(o->val, o->len));
		} else {
			op = json_pack("{s:{s:o}}", "request_delete_range",
				       "key", b64_json(key, strlen(key)));
		}
		if (!op || json_array_append_new(succ, op))
			goto nomem;
		if (!o->must_exist)
			continue;
		json_array_append_new(cmp, compare_json("VERSION", "GREATER",
							key, strlen(key), NULL,
							0, "version", 0));
		json_array_append_new(
		    fail,
		    json_pack("{s:{s:o, s:b}}", "request_range", "key",
			      b64_json(key, strlen(key)), "count_only", 1));
	}
	if (p->n)
		json_array_append_new(
		    succ, json_pack("{s:{s:o}}", "request_put", "key",
				    b64_json(marker, strlen(marker))));
	json_object_set_new(t, "compare", cmp);
	json_object_set_new(t, "success", succ);
	json_object_set_new(t, "failure", fail);
	*req = t;
	return 0;
nomem:
	json_decref(t);
	json_decref(cmp);
	json_decref(succ);
	json_decref(fail);
	return -ENOMEM;
}

static uint64_t header_rev(json_t *resp)
{
	return json_u64(
	    json_object_get(json_object_get(resp, "header"), "revision"));
}

int mt_etcd_txn_result(json_t *resp, const struct mt_etcd_plan *p,
		       uint64_t expect_rev, uint64_t *rev, char *err,
		       size_t errlen)
{
	json_t *rs = json_object_get(resp, "responses");
	size_t idx = 0;

	if (!json_is_object(resp) || !json_object_get(resp, "header")) {
		seterr(err, errlen, "txn answer without a header");
		return -EBADMSG;
	}
	*rev = header_rev(resp);
	if (json_is_true(json_object_get(resp, "succeeded")))
		return 0;
	if (expect_rev) {
		json_t *nested =
		    json_object_get(json_array_get(rs, idx++), "response_txn");

		if (!json_is_true(json_object_get(nested, "succeeded"))) {
			seterr(err, errlen,
			       "the store changed after revision %" PRIu64,
			       expect_rev);
			return -EAGAIN;
		}
	}
	for (size_t i = 0; i < p->n; i++) {
		json_t *rr;

		if (!p->ops[i].must_exist)
			continue;
		rr = json_object_get(json_array_get(rs, idx++),
				     "response_range");
		if (json_u64(json_object_get(rr, "count")) == 0) {
			seterr(err, errlen, "delete %s: no such key",
			       p->ops[i].key);
			return -ENOENT;
		}
	}
	seterr(err, errlen, "txn failed but every compare held");
	return -EBADMSG;
}

/* ---- range requests and answers ---- */

json_t *mt_etcd_range_request(const char *key, size_t key_len,
			      const char *range_end, size_t end_len,
			      uint64_t revision, int64_t limit)
{
	json_t *r = json_object();

	if (!r)
		return NULL;
	json_object_set_new(r, "key", b64_json(key, key_len));
	if (range_end)
		json_object_set_new(r, "range_end",
				    b64_json(range_end, end_len));
	if (revision)
		json_object_set_new(r, "revision", json_u64_new(revision));
	if (limit > 0)
		json_object_set_new(r, "limit", json_u64_new((uint64_t)limit));
	return r;
}

/* The store key of an etcd key (base64 in j), malloc'd; NULL with *bad set
 * when it is not one (outside the data range, a NUL, too long). */
static char *store_key_of(json_t *j, const char *data_key, bool *bad,
			  void **raw, size_t *raw_len)
{
	const char *s = json_string_value(j);
	size_t dl = strlen(data_key), len;
	void *k;
	char *key;

	*bad = false;
	if (!s || mt_base64_decode(s, strlen(s), 0, &k, &len) < 0) {
		*bad = true;
		return NULL;
	}
	if (len <= dl || memcmp(k, data_key, dl) || memchr(k, '\0', len) ||
	    len - dl > MT_STORE_KEY_MAX) {
		*bad = true;
		mt_warn("etcd key \"%.*s\" is not a store key under %s: "
			"ignored",
			(int)(len > 200 ? 200 : len), (char *)k, data_key);
		if (raw) {
			*raw = k;
			*raw_len = len;
		} else {
			free(k);
		}
		return NULL;
	}
	key = strdup((char *)k + dl);
	if (raw) {
		*raw = k;
		*raw_len = len;
	} else {
		free(k);
	}
	return key;
}

static int value_of(json_t *j, void **val, size_t *len)
{
	const char *s = json_string_value(j);

	/* an empty value is omitted from the answer */
	return mt_base64_decode(s ? s : "", s ? strlen(s) : 0, 0, val, len);
}

int mt_etcd_range_parse(json_t *resp, const char *data_key,
			struct mt_store_kv **kvs, size_t *n, size_t *cap,
			uint64_t *rev, bool *more, char **last_key,
			size_t *last_len)
{
	json_t *arr = json_object_get(resp, "kvs"), *kv;
	size_t i;

	if (!json_is_object(resp) || !json_object_get(resp, "header"))
		return -EBADMSG;
	if (rev)
		*rev = header_rev(resp);
	if (more)
		*more = json_is_true(json_object_get(resp, "more"));
	if (last_key) {
		*last_key = NULL;
		*last_len = 0;
	}
	json_array_foreach(arr, i, kv)
	{
		struct mt_store_kv *e;
		void *raw = NULL;
		size_t raw_len = 0;
		bool bad;
		char *key =
		    store_key_of(json_object_get(kv, "key"), data_key, &bad,
				 last_key ? &raw : NULL, &raw_len);
		int r;

		if (last_key && raw) {
			free(*last_key);
			*last_key = raw;
			*last_len = raw_len;
		}
		if (!key) {
			if (bad)
				continue;
			return -ENOMEM;
		}
		if (*n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 16;
			struct mt_store_kv *g =
			    realloc(*kvs, ncap * sizeof(*g));

			if (!g) {
				free(key);
				return -ENOMEM;
			}
			*kvs = g;
			*cap = ncap;
		}
		e = &(*kvs)[*n];
		*e = (struct mt_store_kv){.key = key};
		r = value_of(json_object_get(kv, "value"), &e->val, &e->len);
		if (r < 0) {
			free(key);
			return r == -EINVAL ? -EBADMSG : r;
		}
		e->mod_rev = json_u64(json_object_get(kv, "mod_revision"));
		(*n)++;
	}
	return 0;
}

/* ---- errors ---- */

int mt_etcd_error(json_t *resp, long http, bool *unapplied, char *err,
		  size_t errlen)
{
	json_t *e = json_object_get(resp, "error");
	const char *msg = NULL;
	json_int_t code = -1;

	if (unapplied)
		*unapplied = false;
	if (json_is_object(e)) {
		msg = json_string_value(json_object_get(e, "message"));
		if (json_is_integer(json_object_get(e, "grpc_code")))
			code =
			    json_integer_value(json_object_get(e, "grpc_code"));
	} else if (e) {
		msg = json_string_value(json_object_get(resp, "message"));
		if (!msg)
			msg = json_string_value(e);
		if (json_is_integer(json_object_get(resp, "code")))
			code =
			    json_integer_value(json_object_get(resp, "code"));
	}
	if (!msg) {
		seterr(err, errlen,
		       "HTTP %ld: not an answer of etcd's v3 JSON gateway",
		       http);
		return -EPROTO;
	}
	seterr(err, errlen, "%s", msg);
	switch (code) {
	case 1: /* Canceled */
		return -ECANCELED;
	case 3: /* InvalidArgument */
		if (strstr(msg, "too large"))
			return -EMSGSIZE;
		if (strstr(msg, "too many operations"))
			return -E2BIG;
		return -EINVAL;
	case 4: /* DeadlineExceeded */
		return -ETIMEDOUT;
	case 5: /* NotFound */
		return -ENOENT;
	case 6: /* AlreadyExists */
		return -EEXIST;
	case 7:	 /* PermissionDenied */
	case 16: /* Unauthenticated */
		return -EACCES;
	case 8: /* ResourceExhausted */
		return strstr(msg, "space") ? -ENOSPC : -EMSGSIZE;
	case 9: /* FailedPrecondition */
		return -EINVAL;
	case 11: /* OutOfRange: revisions compacted or in the future */
		return strstr(msg, "compacted") ? -ESTALE : -ERANGE;
	case 14: /* Unavailable */
		/* refused before it was proposed to raft */
		if (unapplied)
			*unapplied = strstr(msg, "no leader") ||
				     strstr(msg, "too many requests") ||
				     strstr(msg, "unhealthy cluster") ||
				     strstr(msg, "not capable");
		return strstr(msg, "timed out") ? -ETIMEDOUT : -EHOSTUNREACH;
	default:
		return -EIO;
	}
}

/* ---- watch messages ---- */

json_t *mt_etcd_watch_request(const char *data_key, uint64_t start)
{
	size_t end_len;
	_cleanup_free_ char *end =
	    mt_etcd_prefix_end(data_key, strlen(data_key), &end_len);

	if (!end)
		return NULL;
	return json_pack("{s:{s:o, s:o, s:o}}", "create_request", "key",
			 b64_json(data_key, strlen(data_key)), "range_end",
			 b64_json(end, end_len), "start_revision",
			 json_u64_new(start));
}

void mt_etcd_watch_msg_fini(struct mt_etcd_watch_msg *m)
{
	for (size_t i = 0; i < m->n_events; i++) {
		free(m->events[i].key);
		free(m->events[i].val);
	}
	free(m->events);
	memset(m, 0, sizeof(*m));
}

int mt_etcd_watch_parse(json_t *msg, const char *data_key,
			struct mt_etcd_watch_msg *m, char *err, size_t errlen)
{
	json_t *res = json_object_get(msg, "result"), *evs, *ev;
	size_t i;

	memset(m, 0, sizeof(*m));
	if (json_object_get(msg, "error"))
		return mt_etcd_error(msg, 200, NULL, err, errlen);
	if (!json_is_object(res)) {
		seterr(err, errlen, "watch message without a result");
		return -EBADMSG;
	}
	m->header_rev = header_rev(res);
	m->created = json_is_true(json_object_get(res, "created"));
	m->canceled = json_is_true(json_object_get(res, "canceled"));
	m->compact_revision =
	    json_u64(json_object_get(res, "compact_revision"));
	if (m->canceled && !m->compact_revision)
		seterr(err, errlen, "watch canceled by etcd: %s",
		       json_string_value(json_object_get(res, "cancel_reason"))
			   ?: "no reason given");
	evs = json_object_get(res, "events");
	if (!json_array_size(evs))
		return 0;
	m->events = calloc(json_array_size(evs), sizeof(*m->events));
	if (!m->events)
		return -ENOMEM;
	json_array_foreach(evs, i, ev)
	{
		struct mt_etcd_event *e = &m->events[m->n_events];
		json_t *kv = json_object_get(ev, "kv");
		const char *type =
		    json_string_value(json_object_get(ev, "type"));
		bool bad;
		int r;

		*e = (struct mt_etcd_event){0};
		if (json_u64(json_object_get(kv, "mod_revision")) > m->last_rev)
			m->last_rev =
			    json_u64(json_object_get(kv, "mod_revision"));
		/* PUT is the default (0) and so omitted */
		e->deleted = type && !strcmp(type, "DELETE");
		e->key = store_key_of(json_object_get(kv, "key"), data_key,
				      &bad, NULL, NULL);
		if (!e->key) {
			if (bad)
				continue;
			mt_etcd_watch_msg_fini(m);
			return -ENOMEM;
		}
		e->mod_rev = json_u64(json_object_get(kv, "mod_revision"));
		m->n_events++;
		if (e->deleted)
			continue;
		r = value_of(json_object_get(kv, "value"), &e->val, &e->len);
		if (r < 0) {
			mt_etcd_watch_msg_fini(m);
			seterr(err, errlen, "watch event with a bad value");
			return r == -EINVAL ? -EBADMSG : r;
		}
	}
	return 0;
}

/* ---- the mirror ---- */

/* The index of the first entry >= key. */
static size_t mirror_lower(const struct mt_etcd_mirror *mr, const char *key)
{
	size_t lo = 0, hi = mr->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(mr->kv[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct mt_store_kv *mt_etcd_mirror_find(const struct mt_etcd_mirror *mr,
					      const char *key)
{
	size_t i = mirror_lower(mr, key);

	return i < mr->n && !strcmp(mr->kv[i].key, key) ? &mr->kv[i] : NULL;
}

int mt_etcd_mirror_apply(struct mt_etcd_mirror *mr, struct mt_etcd_watch_msg *m)
{
	/* events on keys that are not store keys move the revision too */
	if (m->last_rev > mr->rev)
		mr->rev = m->last_rev;
	for (size_t j = 0; j < m->n_events; j++) {
		struct mt_etcd_event *ev = &m->events[j];
		size_t i = mirror_lower(mr, ev->key);
		bool found = i < mr->n && !strcmp(mr->kv[i].key, ev->key);

		if (ev->mod_rev > mr->rev)
			mr->rev = ev->mod_rev;
		if (ev->deleted) {
			if (found) {
				free(mr->kv[i].key);
				free(mr->kv[i].val);
				memmove(&mr->kv[i], &mr->kv[i + 1],
					(mr->n - i - 1) * sizeof(*mr->kv));
				mr->n--;
			}
			continue;
		}
		if (found) {
			free(mr->kv[i].val);
			free(ev->key);
		} else {
			if (mr->n == mr->cap) {
				size_t ncap = mr->cap ? mr->cap * 2 : 64;
				struct mt_store_kv *g =
				    realloc(mr->kv, ncap * sizeof(*g));

				if (!g)
					return -ENOMEM;
				mr->kv = g;
				mr->cap = ncap;
			}
			memmove(&mr->kv[i + 1], &mr->kv[i],
				(mr->n - i) * sizeof(*mr->kv));
			mr->n++;
			mr->kv[i].key = ev->key;
		}
		mr->kv[i].val = ev->val;
		mr->kv[i].len = ev->len;
		mr->kv[i].mod_rev = ev->mod_rev;
		ev->key = NULL;
		ev->val = NULL;
	}
	return 0;
}

int mt_etcd_mirror_range(const struct mt_etcd_mirror *mr, const char *prefix,
			 uint64_t after_rev, struct mt_store_kv **kvs,
			 size_t *n)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	size_t i = mirror_lower(mr, prefix ? prefix : ""), end = i, cnt;
	struct mt_store_kv *out;

	*kvs = NULL;
	*n = 0;
	while (end < mr->n &&
	       !strncmp(mr->kv[end].key, prefix ? prefix : "", plen))
		end++;
	cnt = end - i;
	if (!cnt)
		return 0;
	out = calloc(cnt, sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (size_t k = 0; k < cnt; k++) {
		const struct mt_store_kv *src = &mr->kv[i + k];

		out[k].key = strdup(src->key);
		out[k].len = src->len;
		out[k].mod_rev = src->mod_rev;
		if (out[k].key && src->mod_rev > after_rev) {
			out[k].val = malloc(src->len + 1);
			if (out[k].val) {
				memcpy(out[k].val, src->val, src->len);
				((char *)out[k].val)[src->len] = '\0';
			}
		}
		if (!out[k].key || (src->mod_rev > after_rev && !out[k].val)) {
			mt_store_kvs_free(out, k + 1);
			return -ENOMEM;
		}
	}
	*kvs = out;
	*n = cnt;
	return 0;
}

void mt_etcd_mirror_fini(struct mt_etcd_mirror *mr)
{
	mt_store_kvs_free(mr->kv, mr->n);
	memset(mr, 0, sizeof(*mr));
}

/* ---- the HTTP client ---- */

struct buf {
	char *p;
	size_t n, cap;
};

static int buf_add(struct buf *b, const char *p, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *g;

		while (cap < b->n + n + 1)
			cap *= 2;
		g = realloc(b->p, cap);
		if (!g)
			return -ENOMEM;
		b->p = g;
		b->cap = cap;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
	b->p[b->n] = '\0';
	return 0;
}

static size_t buf_write(char *p, size_t size, size_t nmemb, void *ud)
{
	return buf_add(ud, p, size * nmemb) ? 0 : size * nmemb;
}

/* One thread's HTTP client: a curl handle (keeping its connection to the
 * member it last talked to) and its answer buffer. */
struct conn {
	CURL *curl;
	struct curl_slist *hdr;
	struct buf body;
	char cerr[CURL_ERROR_SIZE];
};

static struct curl_slist *json_headers(bool stream)
{
	struct curl_slist *h =
	    curl_slist_append(NULL, "Content-Type: application/json");

	/* libcurl waits up to 1 s for "100 Continue" on large bodies */
	if (h)
		h = curl_slist_append(h, "Expect:");
	/* The gateway passes Grpc-Metadata-* on as gRPC metadata: a watch
	 * with hasleader is canceled when its member loses the leader, so
	 * a partitioned member cannot hold it silently. */
	if (h && stream)
		h = curl_slist_append(h, "Grpc-Metadata-hasleader: true");
	return h;
}

static void curl_common(CURL *c, unsigned timeout_ms)
{
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	/* etcd members are reached directly, whatever http_proxy says */
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 5L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 2L);
}

static int conn_init(struct conn *c, unsigned timeout_ms)
{
	memset(c, 0, sizeof(*c));
	c->curl = curl_easy_init();
	c->hdr = json_headers(false);
	if (!c->curl || !c->hdr)
		return -ENOMEM;
	curl_common(c->curl, timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->hdr);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &c->body);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->cerr);
	return 0;
}

static void conn_fini(struct conn *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->hdr);
	free(c->body.p);
	memset(c, 0, sizeof(*c));
}

enum watch_state {
	WATCH_SYNCING, /* building the mirror or reconnecting the watch */
	WATCH_LIVE,    /* the mirror is current */
	WATCH_DOWN,    /* every member failed; stays so until live again */
};

struct mt_etcd {
	struct mt_etcd_url u;
	struct mt_etcd_schema sc;
	char *url;	/* normalised, for messages */
	char *data_key; /* "<prefix>v1/" */
	char *marker;	/* "<prefix>v1.written" */
	unsigned flags;
	atomic_uint good;    /* the member to try first */
	atomic_bool good_ok; /* it answered in this handle */
	struct conn conn;    /* the caller's */
	char err[1024];	     /* the last error of a call (the caller's) */
	uint64_t last_write_rev;

	/* the watch: its thread, the mirror and its state under lock */
	bool watching;
	pthread_t thread;
	int efd;
	CURLM *multi;
	atomic_bool stop;
	uint64_t watch_after;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* the mirror or the state changed, or stop */
	struct mt_etcd_mirror mirror;
	bool have_mirror; /* built at least once */
	enum watch_state state;
	int down_err;
	char down_msg[1024];
	bool resync;
};

static bool curl_not_sent(CURL *c, CURLcode rc, size_t body_len)
{
	curl_off_t up = 0;

	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
	    rc == CURLE_COULDNT_RESOLVE_PROXY)
		return true;
	/* the gateway acts only on a whole body */
	curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &up);
	return up < (curl_off_t)body_len;
}

static void append(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* How one attempt on one member ended. */
enum attempt {
	ATTEMPT_ANSWERED, /* etcd answered (*resp, or an error of etcd's) */
	ATTEMPT_FAILED,	  /* the member failed and surely did not apply it */
	ATTEMPT_UNKNOWN,  /* sent, then lost: it may have been applied */
};

/* POSTs body to path on one member. The return value is the errno of
 * etcd's answer or of the failure; msg says what happened. */
static int attempt(struct mt_etcd *e, struct conn *c, unsigned idx,
		   const char *path, const char *body, size_t len, bool write,
		   json_t **resp, enum attempt *how, char *msg, size_t msglen)
{
	const char *member = e->u.members[idx];
	char url[320];
	long http = 0;
	bool unapplied;
	CURLcode rc;
	json_t *j;
	int r;

	*resp = NULL;
	snprintf(url, sizeof(url), "http://%s%s", member, path);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)len);
	c->body.n = 0;
	c->cerr[0] = '\0';
	rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK) {
		seterr(msg, msglen, "%s",
		       *c->cerr ? c->cerr : curl_easy_strerror(rc));
		*how = write && !curl_not_sent(c->curl, rc, len)
			   ? ATTEMPT_UNKNOWN
			   : ATTEMPT_FAILED;
		return rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
						      : -EHOSTUNREACH;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &http);
	j = json_loadb(c->body.p ? c->body.p : "", c->body.n, 0, NULL);
	if (http == 200 && json_is_object(j) && !json_object_get(j, "error")) {
		*how = ATTEMPT_ANSWERED;
		*resp = j;
		return 0;
	}
	r = mt_etcd_error(j, http, &unapplied, msg, msglen);
	json_decref(j);
	/* not etcd, or a member that cannot serve now (no leader, timed
	 * out waiting for raft): for a write that etcd may have proposed,
	 * the outcome is unknown */
	if (r == -EPROTO)
		*how = ATTEMPT_FAILED;
	else if (r == -EHOSTUNREACH || r == -ETIMEDOUT)
		*how = !write || unapplied ? ATTEMPT_FAILED : ATTEMPT_UNKNOWN;
	else
		*how = ATTEMPT_ANSWERED;
	return r;
}

static int etcd_call(struct mt_etcd *e, struct conn *c, const char *path,
		     json_t *req, bool write, json_t **resp, char *err,
		     size_t errlen);

/* A cheap linearizable read (the write marker's count) to find a member
 * that answers. */
static int probe(struct mt_etcd *e, struct conn *c, char *err, size_t errlen)
{
	json_t *req =
	    json_pack("{s:o, s:b}", "key",
		      b64_json(e->marker, strlen(e->marker)), "count_only", 1);
	json_t *resp = NULL;
	int r;

	if (!req)
		return -ENOMEM;
	r = etcd_call(e, c, "/v3/kv/range", req, false, &resp, err, errlen);
	json_decref(req);
	json_decref(resp);
	return r;
}

/* POSTs req to path, starting with the member that last answered and
 * going on to the next on a connection error, a timeout, an answer that
 * is not etcd's, or an unavailable member. A write is sent only to a
 * member that answered before (a probe finds one first), and goes to
 * another member only when it surely was not applied (not sent, or
 * refused before raft); otherwise its outcome is unknown and the call
 * fails (the next one starts at the next member). *resp: the answer of
 * the member that took it. */
static int etcd_call(struct mt_etcd *e, struct conn *c, const char *path,
		     json_t *req, bool write, json_t **resp, char *err,
		     size_t errlen)
{
	_cleanup_free_ char *body = json_dumps(req, JSON_COMPACT);
	size_t m = e->u.n_members, len;
	unsigned start;
	bool timed_out = false;
	char why[1024] = "";

	*resp = NULL;
	if (!body)
		return -ENOMEM;
	/* A member that takes a connection and then never answers (stopped,
	 * stuck) would leave a write's outcome unknown: find one that
	 * answers first. */
	if (write && !atomic_load(&e->good_ok)) {
		int r = probe(e, c, err, errlen);

		if (r < 0)
			return r;
	}
	len = strlen(body);
	start = atomic_load(&e->good) % m;
	for (size_t i = 0; i < m; i++) {
		unsigned idx = (unsigned)((start + i) % m);
		const char *member = e->u.members[idx];
		enum attempt how;
		char msg[512];
		int r = attempt(e, c, idx, path, body, len, write, resp, &how,
				msg, sizeof(msg));

		if (how == ATTEMPT_FAILED) {
			if (r == -ETIMEDOUT)
				timed_out = true;
			append(why, sizeof(why), "%s%s: %s", *why ? "; " : "",
			       member, msg);
			continue;
		}
		if (how == ATTEMPT_UNKNOWN) {
			atomic_store(&e->good, (idx + 1) % m);
			atomic_store(&e->good_ok, false);
			seterr(err, errlen,
			       "etcd member %s: %s after the request was sent: "
			       "it may or may not have been applied",
			       member, msg);
			return r;
		}
		if (i)
			mt_info("etcd: member %s answered (%s)", member, why);
		atomic_store(&e->good, idx);
		atomic_store(&e->good_ok, true);
		if (r < 0)
			seterr(err, errlen, "etcd member %s: %s", member, msg);
		return r;
	}
	seterr(err, errlen, "no etcd member answered (%s)", why);
	return timed_out ? -ETIMEDOUT : -EHOSTUNREACH;
}

/* Reads [key-prefix range) at revision at_rev (0: the newest) page by
 * page, all pages at the first page's revision (one snapshot). */
static int net_range(struct mt_etcd *e, struct conn *c, const char *prefix,
		     uint64_t at_rev, struct mt_store_kv **kvs, size_t *n,
		     uint64_t *rev_out, char *err, size_t errlen)
{
	_cleanup_free_ char *key = mt_etcd_data_key(e->u.prefix, prefix);
	_cleanup_free_ char *end = NULL, *cur = NULL;
	size_t end_len = 0, cur_len, cap = 0;
	uint64_t rev = at_rev;
	int r = 0;

	*kvs = NULL;
	*n = 0;
	if (!key)
		return -ENOMEM;
	end = mt_etcd_prefix_end(key, strlen(key), &end_len);
	cur = strdup(key);
	if (!end || !cur)
		return -ENOMEM;
	cur_len = strlen(cur);
	for (;;) {
		json_t *req = mt_etcd_range_request(cur, cur_len, end, end_len,
						    rev, RANGE_PAGE);
		json_t *resp = NULL;
		char *last = NULL;
		size_t last_len = 0;
		uint64_t page_rev = 0;
		bool more = false;

		if (!req) {
			r = -ENOMEM;
			break;
		}
		r = etcd_call(e, c, "/v3/kv/range", req, false, &resp, err,
			      errlen);
		json_decref(req);
		if (r < 0)
			break;
		r = mt_etcd_range_parse(resp, e->data_key, kvs, n, &cap,
					&page_rev, &more, &last, &last_len);
		json_decref(resp);
		if (r < 0) {
			free(last);
			seterr(err, errlen,
			       "etcd: a range answer that does "
			       "not parse");
			break;
		}
		if (!rev)
			rev = page_rev;
		if (!more || !last) {
			free(last);
			break;
		}
		/* the next page starts right after the last key */
		free(cur);
		cur = realloc(last, last_len + 1);
		if (!cur) {
			free(last);
			r = -ENOMEM;
			break;
		}
		cur[last_len] = '\0';
		cur_len = last_len + 1;
	}
	if (r < 0) {
		mt_store_kvs_free(*kvs, *n);
		*kvs = NULL;
		*n = 0;
		return r;
	}
	if (!*n) {
		free(*kvs);
		*kvs = NULL;
	}
	*rev_out = rev;
	return 0;
}

/* ---- the handle ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Records the error of a failed call and logs it (a compare-and-swap
 * conflict or a missing key is an answer, not a failure: not logged). */
static int fail(struct mt_etcd *e, int r)
{
	if (r < 0 && r != -EAGAIN && r != -ENOENT)
		mt_warn("store %s: %s", e->url, e->err);
	return r;
}

/* A read through the handle's connection: req is consumed; a failure is
 * logged (fail) and returned. */
static int range_call(struct mt_etcd *e, json_t *req, json_t **resp)
{
	int r = etcd_call(e, &e->conn, "/v3/kv/range", req, false, resp,
			  e->err, sizeof(e->err));

	json_decref(req);
	return r < 0 ? fail(e, r) : r;
}

int mt_etcd_open(const char *url, unsigned flags, struct mt_etcd **out,
		 char *err, size_t errlen)
{
	struct mt_etcd *e;
	pthread_condattr_t ca;
	int r;

	*out = NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->efd = -1;
	r = mt_etcd_url_parse(url, &e->u, err, errlen);
	if (r < 0) {
		free(e);
		return r;
	}
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		seterr(err, errlen, "libcurl: %s",
		       curl_easy_strerror(curl_init_rc));
		r = -EIO;
		goto fail;
	}
	e->flags = flags;
	e->sc =
	    (struct mt_etcd_schema){.prefix = e->u.prefix,
				    .max_request_bytes = e->u.max_request_bytes,
				    .max_txn_ops = e->u.max_txn_ops};
	e->data_key = mt_etcd_data_key(e->u.prefix, "");
	if (asprintf(&e->marker, "%s" MT_ETCD_MARKER, e->u.prefix) < 0)
		e->marker = NULL;
	e->url = malloc(16 + MT_ETCD_MAX_MEMBERS * 270 + strlen(e->u.prefix));
	if (!e->data_key || !e->marker || !e->url) {
		r = -ENOMEM;
		goto fail;
	}
	strcpy(e->url, "etcd://");
	for (size_t i = 0; i < e->u.n_members; i++) {
		if (i)
			strcat(e->url, ",");
		strcat(e->url, e->u.members[i]);
	}
	strcat(e->url, e->u.prefix);
	r = conn_init(&e->conn, e->u.timeout_ms);
	if (r < 0)
		goto fail;
	pthread_mutex_init(&e->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e->cond, &ca);
	pthread_condattr_destroy(&ca);
	*out = e;
	return 0;
fail:
	conn_fini(&e->conn);
	free(e->data_key);
	free(e->marker);
	free(e->url);
	mt_etcd_url_fini(&e->u);
	free(e);
	return r;
}

const char *mt_etcd_url(const struct mt_etcd *e)
{
	return e->url;
}

const char *mt_etcd_last_error(const struct mt_etcd *e)
{
	return e->err;
}

static void deadline_after(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* Locks the mirror once it can answer for this handle: it has seen this
 * handle's own writes, and the watch is live or reconnecting after a lost
 * stream (the mirror is then a consistent snapshot of a moment ago, as a
 * live one is). Waits at most the request timeout (for the first build, or
 * for the watch to deliver this handle's write); fails at once while every
 * member is down, so that a caller's loop is never held up by an outage. */
static int mirror_lock(struct mt_etcd *e)
{
	struct timespec ts;

	deadline_after(&ts, e->u.timeout_ms);
	pthread_mutex_lock(&e->lock);
	for (;;) {
		if ((e->state == WATCH_LIVE ||
		     (e->state == WATCH_SYNCING && e->have_mirror)) &&
		    e->mirror.rev >= e->last_write_rev)
			return 0;
		if (e->state == WATCH_DOWN) {
			int r = e->down_err;

			seterr(e->err, sizeof(e->err), "%s", e->down_msg);
			pthread_mutex_unlock(&e->lock);
			return r;
		}
		if (pthread_cond_timedwait(&e->cond, &e->lock, &ts) ==
		    ETIMEDOUT)
			break;
	}
	if (e->state == WATCH_LIVE)
		seterr(e->err, sizeof(e->err),
		       "the watch has not delivered revision %" PRIu64
		       " (this handle's last write) within %u ms",
		       e->last_write_rev, e->u.timeout_ms);
	else
		seterr(e->err, sizeof(e->err),
		       "the watch is not connected after %u ms%s%s",
		       e->u.timeout_ms, *e->down_msg ? ": " : "", e->down_msg);
	pthread_mutex_unlock(&e->lock);
	return -ETIMEDOUT;
}

int mt_etcd_revision(struct mt_etcd *e, uint64_t *rev)
{
	json_t *req, *resp = NULL;
	int r;

	if (e->watching) {
		r = mirror_lock(e);
		if (r < 0)
			return fail(e, r);
		*rev = e->mirror.rev;
		pthread_mutex_unlock(&e->lock);
		return 0;
	}
	/* any answer carries the revision: ask for the marker's count */
	req =
	    json_pack("{s:o, s:b}", "key",
		      b64_json(e->marker, strlen(e->marker)), "count_only", 1);
	if (!req)
		return -ENOMEM;
	r = range_call(e, req, &resp);
	if (r < 0)
		return r;
	*rev = header_rev(resp);
	json_decref(resp);
	return 0;
}

static int copy_out(const struct mt_store_kv *kv, void **val, size_t *len,
		    uint64_t *mod_rev)
{
	if (val) {
		char *c = malloc(kv->len + 1);

		if (!c)
			return -ENOMEM;
		memcpy(c, kv->val, kv->len);
		c[kv->len] = '\0';
		*val = c;
	}
	if (len)
		*len = kv->len;
	if (mod_rev)
		*mod_rev = kv->mod_rev;
	return 0;
}

int mt_etcd_get(struct mt_etcd *e, const char *key, void **val, size_t *len,
		uint64_t *mod_rev)
{
	_cleanup_free_ char *k = NULL;
	struct mt_store_kv *kvs = NULL;
	size_t n = 0, cap = 0;
	json_t *req, *resp = NULL;
	int r;

	if (!store_key_ok(key))
		return -EINVAL;
	if (e->watching) {
		const struct mt_store_kv *kv;

		r = mirror_lock(e);
		if (r < 0)
			return fail(e, r);
		kv = mt_etcd_mirror_find(&e->mirror, key);
		r = kv ? copy_out(kv, val, len, mod_rev) : -ENOENT;
		pthread_mutex_unlock(&e->lock);
		return r;
	}
	k = mt_etcd_data_key(e->u.prefix, key);
	if (!k)
		return -ENOMEM;
	req = mt_etcd_range_request(k, strlen(k), NULL, 0, 0, 0);
	if (!req)
		return -ENOMEM;
	r = range_call(e, req, &resp);
	if (r < 0)
		return r;
	r = mt_etcd_range_parse(resp, e->data_key, &kvs, &n, &cap, NULL, NULL,
				NULL, NULL);
	json_decref(resp);
	if (r == 0)
		r = n ? copy_out(&kvs[0], val, len, mod_rev) : -ENOENT;
	mt_store_kvs_free(kvs, n);
	return r;
}

int mt_etcd_range_since(struct mt_etcd *e, const char *prefix,
			uint64_t after_rev, struct mt_store_kv **kvs, size_t *n,
			uint64_t *rev)
{
	uint64_t at = 0;
	int r;

	*kvs = NULL;
	*n = 0;
	if (prefix && strlen(prefix) > MT_STORE_KEY_MAX)
		return -EINVAL;
	if (e->watching) {
		r = mirror_lock(e);
		if (r < 0)
			return fail(e, r);
		r = mt_etcd_mirror_range(&e->mirror, prefix, after_rev, kvs, n);
		if (rev)
			*rev = e->mirror.rev;
		pthread_mutex_unlock(&e->lock);
		return r;
	}
	/* Without the mirror every value travels anyway; those the caller
	 * already has are dropped here. A compaction between two pages
	 * restarts the read. */
	for (int tries = 0;; tries++) {
		r = net_range(e, &e->conn, prefix ? prefix : "", 0, kvs, n, &at,
			      e->err, sizeof(e->err));
		if (r != -ESTALE || tries == 3)
			break;
	}
	if (r < 0)
		return fail(e, r);
	for (size_t i = 0; i < *n; i++)
		if ((*kvs)[i].mod_rev <= after_rev) {
			free((*kvs)[i].val);
			(*kvs)[i].val = NULL;
		}
	if (rev)
		*rev = at;
	return 0;
}

int mt_etcd_txn(struct mt_etcd *e, const struct mt_store_op *ops, size_t n,
		uint64_t expect_rev, uint64_t *rev_out)
{
	struct mt_etcd_plan p;
	json_t *req = NULL, *resp = NULL;
	uint64_t rev = 0;
	int r;

	if (e->flags & MT_STORE_READONLY)
		return -EROFS;
	if (n && !ops)
		return -EINVAL;
	r = mt_etcd_plan_build(ops, n, &p, e->err, sizeof(e->err));
	if (r < 0)
		return r;
	r = mt_etcd_txn_request(&e->sc, &p, expect_rev, &req, e->err,
				sizeof(e->err));
	if (r < 0) {
		mt_etcd_plan_fini(&p);
		return fail(e, r);
	}
	r = etcd_call(e, &e->conn, "/v3/kv/txn", req, p.n > 0, &resp, e->err,
		      sizeof(e->err));
	json_decref(req);
	if (r == 0)
		r = mt_etcd_txn_result(resp, &p, expect_rev, &rev, e->err,
				       sizeof(e->err));
	json_decref(resp);
	if (r == 0 && p.n && rev > e->last_write_rev)
		e->last_write_rev = rev;
	mt_etcd_plan_fini(&p);
	if (r < 0)
		return fail(e, r);
	if (rev_out)
		*rev_out = rev;
	return 0;
}

/* ---- the watch thread ---- */

static void notify(struct mt_etcd *e)
{
	uint64_t one = 1;

	if (write(e->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		mt_warn("store %s: eventfd: %m", e->url);
}

/* Sets the state (under e->lock), wakes waiting readers and the poller. */
static void set_state(struct mt_etcd *e, enum watch_state st, int err,
		      const char *msg)
{
	bool changed;

	pthread_mutex_lock(&e->lock);
	changed = e->state != st;
	e->state = st;
	if (st == WATCH_DOWN) {
		e->down_err = err;
		snprintf(e->down_msg, sizeof(e->down_msg), "%s", msg);
	}
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
	if (changed)
		notify(e);
}

/* Sleeps ms or until close. */
static void backoff_wait(struct mt_etcd *e, unsigned ms)
{
	struct timespec ts;

	deadline_after(&ts, ms);
	pthread_mutex_lock(&e->lock);
	while (!atomic_load(&e->stop) &&
	       pthread_cond_timedwait(&e->cond, &e->lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&e->lock);
}

struct stream {
	struct mt_etcd *e;
	struct buf in;
	size_t scanned; /* in.p[0..scanned) holds no newline */
	int result;	/* 0 while running */
	uint64_t compact;
	bool created;
	unsigned member;
	uint64_t heard_ms; /* when the member last proved alive */
	char msg[512];
};

/* One message of the stream; a nonzero return ends the stream. */
static int stream_message(struct stream *s, const char *line, size_t len)
{
	struct mt_etcd *e = s->e;
	struct mt_etcd_watch_msg m;
	json_t *j = json_loadb(line, len, 0, NULL);
	int r;

	s->heard_ms = mt_monotonic_ms();
	if (!j) {
		seterr(s->msg, sizeof(s->msg),
		       "a watch message that is not JSON");
		return -EBADMSG;
	}
	r = mt_etcd_watch_parse(j, e->data_key, &m, s->msg, sizeof(s->msg));
	json_decref(j);
	if (r < 0)
		return r;
	if (m.canceled) {
		s->compact = m.compact_revision;
		mt_etcd_watch_msg_fini(&m);
		return s->compact ? -ESTALE : -ECANCELED;
	}
	if (m.created && !s->created) {
		s->created = true;
		/* a member that keeps a watch answers: calls may start there */
		if (!atomic_load(&e->good_ok))
			atomic_store(&e->good, s->member);
		set_state(e, WATCH_LIVE, 0, "");
	}
	if (m.n_events || m.last_rev) {
		pthread_mutex_lock(&e->lock);
		r = mt_etcd_mirror_apply(&e->mirror, &m);
		pthread_cond_broadcast(&e->cond);
		pthread_mutex_unlock(&e->lock);
		notify(e);
	}
	mt_etcd_watch_msg_fini(&m);
	if (r < 0)
		seterr(s->msg, sizeof(s->msg), "out of memory");
	return r;
}

static size_t stream_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct stream *s = ud;
	size_t n = size * nmemb;

	if (buf_add(&s->in, p, n) < 0) {
		s->result = -ENOMEM;
		return 0;
	}
	for (;;) {
		char *nl =
		    memchr(s->in.p + s->scanned, '\n', s->in.n - s->scanned);
		size_t len;
		int r;

		if (!nl) {
			s->scanned = s->in.n;
			return n;
		}
		len = (size_t)(nl - s->in.p);
		r = len ? stream_message(s, s->in.p, len) : 0;
		memmove(s->in.p, nl + 1, s->in.n - len - 1);
		s->in.n -= len + 1;
		s->scanned = 0;
		if (r) {
			s->result = r;
			return 0; /* ends the transfer */
		}
	}
}

/* Whether the member of a silent stream still answers a read. */
static int probe_member(struct mt_etcd *e, struct conn *c, unsigned idx,
			struct stream *s)
{
	json_t *req =
	    json_pack("{s:o, s:b}", "key",
		      b64_json(e->marker, strlen(e->marker)), "count_only", 1);
	_cleanup_free_ char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_t *resp = NULL;
	enum attempt how;
	char msg[512];
	int r;

	json_decref(req);
	if (!body)
		return -ENOMEM;
	r = attempt(e, c, idx, "/v3/kv/range", body, strlen(body), false, &resp,
		    &how, msg, sizeof(msg));
	json_decref(resp);
	if (r < 0)
		seterr(s->msg, sizeof(s->msg),
		       "the stream is silent and the member does not answer "
		       "a read: %s",
		       msg);
	return r;
}

/* Runs one watch stream on member idx from revision start until it ends:
 * 0 when closing, -ESTALE (s->compact set) when history is compacted,
 * else an error with s->msg. */
static int watch_stream(struct mt_etcd *e, struct conn *pc, unsigned idx,
			uint64_t start, struct stream *s)
{
	const char *member = e->u.members[idx];
	json_t *req = mt_etcd_watch_request(e->data_key, start);
	_cleanup_free_ char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	struct curl_slist *hdr = json_headers(true);
	uint64_t created_by = mt_monotonic_ms() + e->u.timeout_ms;
	CURL *c = curl_easy_init();
	char url[320], cerr[CURL_ERROR_SIZE] = "";
	int r = 0;

	json_decref(req);
	if (!body || !hdr || !c) {
		curl_slist_free_all(hdr);
		if (c)
			curl_easy_cleanup(c);
		seterr(s->msg, sizeof(s->msg), "out of memory");
		return -ENOMEM;
	}
	snprintf(url, sizeof(url), "http://%s/v3/watch", member);
	curl_common(c, e->u.timeout_ms);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, stream_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_multi_add_handle(e->multi, c);
	for (;;) {
		int running = 0, left;
		uint64_t now;
		CURLMsg *msg;

		curl_multi_perform(e->multi, &running);
		if (s->result) {
			r = s->result;
			break;
		}
		if (atomic_load(&e->stop))
			break;
		msg = curl_multi_info_read(e->multi, &left);
		if (msg && msg->msg == CURLMSG_DONE) {
			long http = 0;
			json_t *j;

			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
			j = json_loadb(s->in.p ? s->in.p : "", s->in.n, 0,
				       NULL);
			if (msg->data.result != CURLE_OK) {
				r = msg->data.result == CURLE_OPERATION_TIMEDOUT
					? -ETIMEDOUT
					: -EHOSTUNREACH;
				seterr(s->msg, sizeof(s->msg), "%s",
				       *cerr ? cerr
					     : curl_easy_strerror(
						   msg->data.result));
			} else if (j || http != 200) {
				/* an error answer instead of a stream */
				r = mt_etcd_error(j, http, NULL, s->msg,
						  sizeof(s->msg));
			} else {
				r = -ECONNRESET;
				seterr(s->msg, sizeof(s->msg),
				       "the watch stream ended");
			}
			json_decref(j);
			break;
		}
		now = mt_monotonic_ms();
		if (!s->created && now >= created_by) {
			r = -ETIMEDOUT;
			seterr(s->msg, sizeof(s->msg),
			       "no answer to the watch request within %u ms",
			       e->u.timeout_ms);
			break;
		}
		if (s->created && now >= s->heard_ms + PROBE_IDLE_MS) {
			r = probe_member(e, pc, idx, s);
			if (r < 0)
				break;
			s->heard_ms = mt_monotonic_ms();
			continue;
		}
		curl_multi_poll(
		    e->multi, NULL, 0,
		    !s->created
			? (int)(created_by - now)
			: (int)(s->heard_ms + PROBE_IDLE_MS - now > 1000
				    ? 1000
				    : s->heard_ms + PROBE_IDLE_MS - now),
		    NULL);
	}
	curl_multi_remove_handle(e->multi, c);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdr);
	return r;
}

/* Replaces the mirror with the data range as it is at revision base (0:
 * now). -ESTALE/-ERANGE: base is compacted or in the future. */
static int mirror_build(struct mt_etcd *e, struct conn *c, uint64_t base,
			char *msg, size_t msglen)
{
	struct mt_etcd_mirror fresh = {0};
	int r = net_range(e, c, "", base, &fresh.kv, &fresh.n, &fresh.rev, msg,
			  msglen);

	if (r < 0)
		return r;
	fresh.cap = fresh.n;
	pthread_mutex_lock(&e->lock);
	mt_etcd_mirror_fini(&e->mirror);
	e->mirror = fresh;
	e->have_mirror = true;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
	/* a new mirror is a change, whatever the state was */
	notify(e);
	return 0;
}

static void flag_resync(struct mt_etcd *e)
{
	pthread_mutex_lock(&e->lock);
	e->resync = true;
	pthread_mutex_unlock(&e->lock);
}

/* libcurl's progress callback: nonzero aborts the transfer. */
static int abort_on_stop(void *ud, curl_off_t dltotal, curl_off_t dlnow,
			 curl_off_t ultotal, curl_off_t ulnow)
{
	struct mt_etcd *e = ud;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return atomic_load(&e->stop);
}

static void *watch_main(void *arg)
{
	struct mt_etcd *e = arg;
	struct conn c;
	uint64_t base = e->watch_after;
	unsigned member = atomic_load(&e->good) % e->u.n_members;
	unsigned backoff = BACKOFF_MIN_MS;
	size_t fails = 0;
	bool synced = false, down = false;
	char msg[1024];

	if (conn_init(&c, e->u.timeout_ms) < 0) {
		set_state(e, WATCH_DOWN, -ENOMEM, "watch: out of memory");
		return NULL;
	}
	/* Used once in a while (a full read, a probe): no idle connection
	 * kept besides the stream. */
	curl_easy_setopt(c.curl, CURLOPT_FORBID_REUSE, 1L);
	/* close() must not wait for a member that does not answer */
	curl_easy_setopt(c.curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c.curl, CURLOPT_XFERINFOFUNCTION, abort_on_stop);
	curl_easy_setopt(c.curl, CURLOPT_XFERINFODATA, e);
	while (!atomic_load(&e->stop)) {
		struct stream s = {.e = e};
		int r;

		if (!synced) {
			r = mirror_build(e, &c, base, msg, sizeof(msg));
			if ((r == -ESTALE || r == -ERANGE) && base) {
				mt_warn("store %s: cannot replay the changes "
					"after revision %" PRIu64 " (%s): full "
					"resync from the current revision",
					e->url, base, msg);
				base = 0;
				flag_resync(e);
				continue;
			}
			if (r == -ESTALE) {
				/* compacted between two pages: read again */
				backoff_wait(e, BACKOFF_MIN_MS);
				continue;
			}
			if (r < 0) {
				if (!down)
					mt_warn("store %s: %s; reads fail "
						"until a member is back",
						e->url, msg);
				down = true;
				set_state(e, WATCH_DOWN, r, msg);
				backoff_wait(e, backoff);
				backoff = backoff * 2 > BACKOFF_MAX_MS
					      ? BACKOFF_MAX_MS
					      : backoff * 2;
				continue;
			}
			synced = true;
			member = atomic_load(&e->good) % e->u.n_members;
			if (base)
				mt_info("store %s: mirror of %zu keys at "
					"revision %" PRIu64 ", replaying from "
					"there",
					e->url, e->mirror.n, e->mirror.rev);
			set_state(e, WATCH_LIVE, 0, "");
		}
		pthread_mutex_lock(&e->lock);
		base = e->mirror.rev;
		pthread_mutex_unlock(&e->lock);
		s.member = member;
		r = watch_stream(e, &c, member, base + 1, &s);
		free(s.in.p);
		if (s.created) {
			fails = 0;
			backoff = BACKOFF_MIN_MS;
			if (down)
				mt_info("store %s: watching again from "
					"member %s",
					e->url, e->u.members[member]);
			down = false;
		}
		if (atomic_load(&e->stop))
			break;
		if (r == -ESTALE) {
			mt_warn("store %s: the watch from revision %" PRIu64
				" lost history (compacted up to revision "
				"%" PRIu64 "): full resync; the caller "
				"must reload everything",
				e->url, base + 1, s.compact);
			synced = false;
			base = 0;
			flag_resync(e);
			continue;
		}
		/* the member failed: the next one, from where we were */
		if (!down)
			mt_warn("store %s: watch on member %s: %s", e->url,
				e->u.members[member], s.msg);
		member = (member + 1) % (unsigned)e->u.n_members;
		if (++fails < e->u.n_members) {
			if (!down)
				set_state(e, WATCH_SYNCING, 0, "");
			continue;
		}
		if (!down)
			mt_warn("store %s: no member keeps a watch; reads "
				"fail until one is back",
				e->url);
		down = true;
		snprintf(msg, sizeof(msg),
			 "no etcd member answered the watch "
			 "(last: %s)",
			 s.msg);
		set_state(e, WATCH_DOWN,
			  r == -ETIMEDOUT ? -ETIMEDOUT : -EHOSTUNREACH, msg);
		fails = 0;
		backoff_wait(e, backoff);
		backoff =
		    backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	conn_fini(&c);
	return NULL;
}

int mt_etcd_watch_open(struct mt_etcd *e, uint64_t after_rev)
{
	sigset_t all, old;
	int r;

	if (e->watching)
		return e->efd;
	e->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (e->efd < 0)
		return mt_neg_errno();
	e->multi = curl_multi_init();
	if (!e->multi) {
		close(e->efd);
		e->efd = -1;
		return -ENOMEM;
	}
	e->watch_after = after_rev;
	e->state = WATCH_SYNCING;
	atomic_store(&e->stop, false);
	/* the thread takes no signals: the caller's loop owns them */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&e->thread, NULL, watch_main, e);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		curl_multi_cleanup(e->multi);
		e->multi = NULL;
		close(e->efd);
		e->efd = -1;
		return r;
	}
	e->watching = true;
	return e->efd;
}

int mt_etcd_watch_drain(struct mt_etcd *e)
{
	uint64_t v;
	bool resync;

	if (!e->watching)
		return -EBADF;
	while (read(e->efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
	pthread_mutex_lock(&e->lock);
	resync = e->resync;
	e->resync = false;
	pthread_mutex_unlock(&e->lock);
	if (resync) {
		seterr(e->err, sizeof(e->err),
		       "the watch lost history (compaction): the mirror was "
		       "rebuilt from a full read; reload everything");
		mt_warn("store %s: %s", e->url, e->err);
		return -ESTALE;
	}
	return 0;
}

int mt_etcd_wait_revision(struct mt_etcd *e, uint64_t after,
			  unsigned timeout_ms, uint64_t *rev)
{
	struct timespec ts;
	int r = mt_etcd_watch_open(e, 0);

	if (r < 0)
		return r;
	deadline_after(&ts, timeout_ms);
	pthread_mutex_lock(&e->lock);
	for (;;) {
		if (e->state == WATCH_LIVE && e->mirror.rev > after) {
			r = 0;
			break;
		}
		if (pthread_cond_timedwait(&e->cond, &e->lock, &ts) ==
		    ETIMEDOUT) {
			r = e->state == WATCH_DOWN ? e->down_err : -ETIMEDOUT;
			break;
		}
	}
	if (rev)
		*rev = e->mirror.rev;
	pthread_mutex_unlock(&e->lock);
	return r;
}

void mt_etcd_close(struct mt_etcd *e)
{
	if (!e)
		return;
	if (e->watching) {
		atomic_store(&e->stop, true);
		pthread_mutex_lock(&e->lock);
		pthread_cond_broadcast(&e->cond);
		pthread_mutex_unlock(&e->lock);
		curl_multi_wakeup(e->multi);
		pthread_join(e->thread, NULL);
		curl_multi_cleanup(e->multi);
		close(e->efd);
	}
	mt_etcd_mirror_fini(&e->mirror);
	pthread_cond_destroy(&e->cond);
	pthread_mutex_destroy(&e->lock);
	conn_fini(&e->conn);
	free(e->data_key);
	free(e->marker);
	free(e->url);
	mt_etcd_url_fini(&e->u);
	free(e);
}
