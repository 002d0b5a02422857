/* The etcd backend's pure parts, without a network: URL parsing, base64,
 * the key schema, txn plans and requests (limits refused before sending),
 * parsing etcd's answers (as the 3.4 gateway really sends them: int64s as
 * strings, default values omitted), the watch messages and the mirror.
 *
 * With arguments, "live URL CHECK [ARG]", it runs one check against a real
 * cluster instead, for tests/integration/test_etcd_client.sh: what mtctl
 * and store_poke cannot make happen on purpose (a compare-and-swap that
 * loses, a txn that fails half way, the watch and its mirror, a replay
 * from a compacted revision, calls while every member is down). It prints
 * "PASS what" or "FAIL what" per step and exits 1 on any failure. */
#include "mt_cleanup.h"
#include "mt_base64.h"
#include "mt_etcd.h"
#include "mt_store.h"
#include "mt_test.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static json_t *parse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);

	if (!j)
		fprintf(stderr, "bad test JSON: %s: %s\n", e.text, s);
	return j;
}

/* The decoded base64 string at j, malloc'd (NULL when it is not one). */
static char *unb64(json_t *j)
{
	const char *s = json_string_value(j);
	void *out = NULL;
	size_t len;

	if (!s || mt_base64_decode(s, strlen(s), 0, &out, &len) < 0)
		return NULL;
	return out;
}

static void test_url(void)
{
	struct mt_etcd_url u;
	char err[512];

	CHECK(mt_etcd_url_parse("etcd://127.0.0.1:2379", &u, err,
				sizeof(err)) == 0);
	CHECK(u.n_members == 1);
	CHECK_STR(u.members[0], "127.0.0.1:2379");
	CHECK_STR(u.prefix, MT_ETCD_DEFAULT_PREFIX);
	CHECK(u.timeout_ms == MT_ETCD_TIMEOUT_MS);
	CHECK(u.max_request_bytes == MT_ETCD_MAX_REQUEST_BYTES);
	CHECK(u.max_txn_ops == MT_ETCD_MAX_TXN_OPS);
	mt_etcd_url_fini(&u);

	CHECK(mt_etcd_url_parse("etcd://a:1,b.example:2,[::1]:3,c/fleet-a", &u,
				err, sizeof(err)) == 0);
	CHECK(u.n_members == 4);
	CHECK_STR(u.members[0], "a:1");
	CHECK_STR(u.members[1], "b.example:2");
	CHECK_STR(u.members[2], "[::1]:3");
	CHECK_STR(u.members[3], "c:2379");
	CHECK_STR(u.prefix, "/fleet-a/");
	mt_etcd_url_fini(&u);

	CHECK(mt_etcd_url_parse("etcd://h/x/y/", &u, err, sizeof(err)) == 0);
	CHECK_STR(u.prefix, "/x/y/");
	mt_etcd_url_fini(&u);
	CHECK(mt_etcd_url_parse("etcd://h/", &u, err, sizeof(err)) == 0);
	CHECK_STR(u.prefix, MT_ETCD_DEFAULT_PREFIX);
	mt_etcd_url_fini(&u);

	CHECK(mt_etcd_url_parse("etcd://h:1?timeout_ms=500&max_txn_ops=64"
				"&max_request_bytes=10485760",
				&u, err, sizeof(err)) == 0);
	CHECK_STR(u.prefix, MT_ETCD_DEFAULT_PREFIX);
	CHECK(u.timeout_ms == 500);
	CHECK(u.max_txn_ops == 64);
	CHECK(u.max_request_bytes == 10485760);
	mt_etcd_url_fini(&u);

	static const struct {
		const char *url, *want;
	} bad[] = {
	    {"etcd://", "no member"},
	    {"etcd:///mt", "no member"},
	    {"etcd://a:0", "member 1 \"a:0\": the port"},
	    {"etcd://a:65536", "the port"},
	    {"etcd://a:x", "the port"},
	    {"etcd://a:", "the port"},
	    {"etcd://a,,b", "member 2 is empty"},
	    {"etcd://a,", "member 2 is empty"},
	    {"etcd://[::1", "[brackets]"},
	    {"etcd://[::1]x", "expected :PORT"},
	    {"etcd://[zz]:1", "not an IPv6"},
	    {"etcd://ho$t:1", "bad character '$' in the host"},
	    {"etcd://:1", "no host"},
	    {"etcd://a/p//q", "empty element"},
	    {"etcd://a/p q", "bad character ' ' in the prefix"},
	    {"etcd://a?bogus=1", "unknown option \"bogus\""},
	    {"etcd://a?timeout_ms=0", "timeout_ms wants a number"},
	    {"etcd://a?timeout_ms", "timeout_ms wants a number"},
	    {"etcd://a?max_txn_ops=1&", "empty option"},
	    {"etcd://a?", ""},
	    {"etcd://1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
	     "more than 16 members"},
	    {"http://a:1", "not etcd://"},
	};
	for (size_t i = 0; i < MT_ARRAY_SIZE(bad); i++) {
		int r = mt_etcd_url_parse(bad[i].url, &u, err, sizeof(err));

		/* "etcd://a?" has no option at all: accepted */
		if (!*bad[i].want) {
			CHECK(r == 0);
			mt_etcd_url_fini(&u);
			continue;
		}
		CHECK(r == -EINVAL);
		CHECK_CONTAINS(err, bad[i].want);
		CHECK_CONTAINS(err, bad[i].url);
		CHECK(u.n_members == 0 && !u.prefix);
	}
}

/* mt_store_open hands etcd:// to the backend; opening sends nothing. */
static void test_open(void)
{
	struct mt_store *s = NULL;
	char err[512] = "";

	CHECK(mt_store_open("etcd://127.0.0.1:1,127.0.0.1:2/fleet", 0, &s, err,
			    sizeof(err)) == 0);
	if (s) {
		CHECK_STR(mt_store_path(s),
			  "etcd://127.0.0.1:1,127.0.0.1:2/fleet/");
		CHECK_STR(mt_store_last_error(s), "");
		mt_store_close(s);
	}
	s = NULL;
	CHECK(mt_store_open("etcd://127.0.0.1:1", MT_STORE_READONLY, &s, err,
			    sizeof(err)) == 0);
	if (s) {
		CHECK(mt_store_put(s, "k", "v", 1, NULL) == -EROFS);
		CHECK(mt_store_delete(s, "k", NULL) == -EROFS);
		/* a bad key is refused before anything is sent */
		CHECK(mt_store_get(s, "", NULL, NULL, NULL) == -EINVAL);
		mt_store_close(s);
	}
	s = NULL;
	CHECK(mt_store_open("etcd://a:99999/x", 0, &s, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(s == NULL);
	CHECK_CONTAINS(err, "port");
	CHECK(mt_store_open("etcds://a:1/x", 0, &s, err, sizeof(err)) ==
	      -EPROTONOSUPPORT);
	CHECK_CONTAINS(err, "unsupported scheme");
}

static void test_base64(void)
{
	static const struct {
		const char *in, *out;
	} vec[] = {
	    {"", ""},
	    {"f", "Zg=="},
	    {"fo", "Zm8="},
	    {"foo", "Zm9v"},
	    {"foob", "Zm9vYg=="},
	    {"foobar", "Zm9vYmFy"},
	    {"/mt/v1/customers/12", "L210L3YxL2N1c3RvbWVycy8xMg=="},
	};
	char enc[64];
	uint8_t bytes[256];
	void *out;
	size_t len;

	for (size_t i = 0; i < MT_ARRAY_SIZE(vec); i++) {
		mt_base64_encode(vec[i].in, strlen(vec[i].in), enc);
		CHECK_STR(enc, vec[i].out);
		CHECK(mt_base64_len(strlen(vec[i].in)) == strlen(vec[i].out));
		CHECK(mt_base64_decode(vec[i].out, strlen(vec[i].out), 0,
				       &out, &len) == 0);
		CHECK(len == strlen(vec[i].in) && !memcmp(out, vec[i].in, len));
		CHECK(((char *)out)[len] == '\0');
		free(out);
	}
	/* every byte value, every length mod 3 */
	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)(255 - i);
	for (size_t n = 250; n <= 256; n++) {
		char big[400];

		mt_base64_encode(bytes, n, big);
		CHECK(mt_base64_decode(big, strlen(big), 0, &out, &len) == 0);
		CHECK(len == n && !memcmp(out, bytes, n));
		free(out);
	}
	static const char *const bad[] = {
	    "Zg=", "Z===", "Zm9v!A==", "Zg==Zg==", "=Zg=", "Zm 9"};
	for (size_t i = 0; i < MT_ARRAY_SIZE(bad); i++)
		CHECK(mt_base64_decode(bad[i], strlen(bad[i]), 0, &out, &len) ==
		      -EINVAL);
}

static void test_keys(void)
{
	char *k = mt_etcd_data_key("/mt/", "customers/12"), *end;
	size_t len;

	CHECK_STR(k, "/mt/v1/customers/12");
	free(k);
	k = mt_etcd_data_key("/fleet/a/", "");
	CHECK_STR(k, "/fleet/a/v1/");
	free(k);

	end = mt_etcd_prefix_end("/mt/v1/", 7, &len);
	CHECK(len == 7 && !memcmp(end, "/mt/v10", 7));
	free(end);
	end = mt_etcd_prefix_end("a\xff\xff", 3, &len);
	CHECK(len == 1 && end[0] == 'b');
	free(end);
	/* all 0xff: no upper end, which etcd spells "\0" */
	end = mt_etcd_prefix_end("\xff\xff", 2, &len);
	CHECK(len == 1 && end[0] == '\0');
	free(end);
	/* the write marker is outside the data range */
	CHECK(strcmp("/mt/" MT_ETCD_MARKER, "/mt/v1/") < 0 ||
	      strcmp("/mt/" MT_ETCD_MARKER, "/mt/v10") >= 0);
}

static void test_plan(void)
{
	struct mt_etcd_plan p;
	char err[256], key[MT_STORE_KEY_MAX + 2];
	struct mt_store_op ops[] = {
	    {MT_STORE_OP_PUT, "customers/2", "one", 3},
	    {MT_STORE_OP_DELETE, "customers/1", NULL, 0},
	    {MT_STORE_OP_PUT, "customers/2", "two", 3},
	    {MT_STORE_OP_PUT, "x", "x", 1},
	    {MT_STORE_OP_DELETE, "x", NULL, 0},
	    {MT_STORE_OP_DELETE, "y", NULL, 0},
	    {MT_STORE_OP_PUT, "y", "", 0},
	};

	CHECK(mt_etcd_plan_build(ops, MT_ARRAY_SIZE(ops), &p, err,
				 sizeof(err)) == 0);
	CHECK(p.n == 4);
	if (p.n == 4) {
		/* in the order each key first appears; the last op wins */
		CHECK_STR(p.ops[0].key, "customers/2");
		CHECK(p.ops[0].put && p.ops[0].len == 3 &&
		      !memcmp(p.ops[0].val, "two", 3) && !p.ops[0].must_exist);
		CHECK_STR(p.ops[1].key, "customers/1");
		CHECK(!p.ops[1].put && p.ops[1].must_exist);
		/* put then delete: absent after, whatever was there */
		CHECK_STR(p.ops[2].key, "x");
		CHECK(!p.ops[2].put && !p.ops[2].must_exist);
		/* delete then put: present after, but the delete needs it */
		CHECK_STR(p.ops[3].key, "y");
		CHECK(p.ops[3].put && p.ops[3].len == 0 && p.ops[3].must_exist);
	}
	mt_etcd_plan_fini(&p);

	struct mt_store_op twice[] = {
	    {MT_STORE_OP_DELETE, "a", NULL, 0},
	    {MT_STORE_OP_DELETE, "a", NULL, 0},
	};
	CHECK(mt_etcd_plan_build(twice, 2, &p, err, sizeof(err)) == -ENOENT);
	CHECK_CONTAINS(err, "delete a");

	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	struct mt_store_op badkey[] = {{MT_STORE_OP_PUT, key, "v", 1}};
	CHECK(mt_etcd_plan_build(badkey, 1, &p, err, sizeof(err)) == -EINVAL);
	badkey[0].key = "";
	CHECK(mt_etcd_plan_build(badkey, 1, &p, err, sizeof(err)) == -EINVAL);
	badkey[0].key = "k";
	badkey[0].val = NULL;
	CHECK(mt_etcd_plan_build(badkey, 1, &p, err, sizeof(err)) == -EINVAL);
	CHECK(mt_etcd_plan_build(NULL, 0, &p, err, sizeof(err)) == 0 &&
	      p.n == 0);
}

static const struct mt_etcd_schema schema = {
    .prefix = "/mt/",
    .max_request_bytes = MT_ETCD_MAX_REQUEST_BYTES,
    .max_txn_ops = MT_ETCD_MAX_TXN_OPS,
};

static void test_txn_request(void)
{
	struct mt_store_op ops[] = {
	    {MT_STORE_OP_PUT, "customers/1", "v", 1},
	    {MT_STORE_OP_DELETE, "customers/2", NULL, 0},
	};
	struct mt_etcd_plan p;
	json_t *req, *a;
	char err[512], *s;

	CHECK(mt_etcd_plan_build(ops, 1, &p, err, sizeof(err)) == 0);
	CHECK(mt_etcd_txn_request(&schema, &p, 0, &req, err, sizeof(err)) == 0);
	/* no compare; the put and the write marker */
	CHECK(json_array_size(json_object_get(req, "compare")) == 0);
	a = json_object_get(req, "success");
	CHECK(json_array_size(a) == 2);
	s = unb64(json_object_get(
	    json_object_get(json_array_get(a, 0), "request_put"), "key"));
	CHECK_STR(s, "/mt/v1/customers/1");
	free(s);
	s = unb64(json_object_get(
	    json_object_get(json_array_get(a, 0), "request_put"), "value"));
	CHECK_STR(s, "v");
	free(s);
	s = unb64(json_object_get(
	    json_object_get(json_array_get(a, 1), "request_put"), "key"));
	CHECK_STR(s, "/mt/" MT_ETCD_MARKER);
	free(s);
	CHECK(json_array_size(json_object_get(req, "failure")) == 0);
	json_decref(req);
	mt_etcd_plan_fini(&p);

	/* compare-and-swap at 7 with a delete that needs its key */
	CHECK(mt_etcd_plan_build(ops, 2, &p, err, sizeof(err)) == 0);
	CHECK(mt_etcd_txn_request(&schema, &p, 7, &req, err, sizeof(err)) == 0);
	a = json_object_get(req, "compare");
	CHECK(json_array_size(a) == 3);
	CHECK_STR(
	    json_string_value(json_object_get(json_array_get(a, 0), "target")),
	    "MOD");
	CHECK_STR(
	    json_string_value(json_object_get(json_array_get(a, 0), "result")),
	    "LESS");
	CHECK_STR(json_string_value(
		      json_object_get(json_array_get(a, 0), "mod_revision")),
		  "8");
	s = unb64(json_object_get(json_array_get(a, 0), "key"));
	CHECK_STR(s, "/mt/v1/");
	free(s);
	s = unb64(json_object_get(json_array_get(a, 0), "range_end"));
	CHECK_STR(s, "/mt/v10");
	free(s);
	s = unb64(json_object_get(json_array_get(a, 1), "key"));
	CHECK_STR(s, "/mt/" MT_ETCD_MARKER);
	free(s);
	CHECK(!json_object_get(json_array_get(a, 1), "range_end"));
	CHECK_STR(
	    json_string_value(json_object_get(json_array_get(a, 2), "target")),
	    "VERSION");
	CHECK_STR(
	    json_string_value(json_object_get(json_array_get(a, 2), "version")),
	    "0");
	CHECK(json_array_size(json_object_get(req, "success")) == 3);
	a = json_object_get(req, "failure");
	CHECK(json_array_size(a) == 2);
	CHECK(json_array_size(json_object_get(
		  json_object_get(json_array_get(a, 0), "request_txn"),
		  "compare")) == 2);
	CHECK(json_is_true(json_object_get(
	    json_object_get(json_array_get(a, 1), "request_range"),
	    "count_only")));
	json_decref(req);
	mt_etcd_plan_fini(&p);

	/* n == 0 with a compare: no write, no marker */
	CHECK(mt_etcd_plan_build(NULL, 0, &p, err, sizeof(err)) == 0);
	CHECK(mt_etcd_txn_request(&schema, &p, 3, &req, err, sizeof(err)) == 0);
	CHECK(json_array_size(json_object_get(req, "success")) == 0);
	CHECK(json_array_size(json_object_get(req, "compare")) == 2);
	json_decref(req);
}

/* The largest value for key that mt_etcd_txn_size lets through. */
static size_t max_value(const char *key)
{
	struct mt_etcd_plan_op op = {.key = key, .put = true};
	struct mt_etcd_plan p = {.ops = &op, .n = 1};
	size_t lo = 0, hi = MT_ETCD_MAX_REQUEST_BYTES;

	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;

		op.len = mid;
		if (mt_etcd_txn_size(&schema, &p, 0) <=
		    MT_ETCD_MAX_REQUEST_BYTES)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

static void test_txn_limits(void)
{
	const char *key = "customers/4294967295";
	size_t max = max_value(key), full = strlen("/mt/v1/") + strlen(key);
	char *val = calloc(1, max + 1), err[512];
	struct mt_store_op op = {MT_STORE_OP_PUT, key, val, max};
	struct mt_etcd_plan p;
	json_t *req = NULL;

	/* Measured on etcd 3.4.23 with the default 1.5 MiB: a plain put of
	 * key + value passes up to about 1572840 bytes (24-30 bytes of
	 * protobuf around them). The estimate must be at least that (never
	 * send what etcd refuses) and not far above it (do not refuse what
	 * etcd takes). */
	CHECK(max + full + 24 <= MT_ETCD_MAX_REQUEST_BYTES);
	CHECK(max + full + 256 > MT_ETCD_MAX_REQUEST_BYTES);
	CHECK(mt_etcd_plan_build(&op, 1, &p, err, sizeof(err)) == 0);
	CHECK(mt_etcd_txn_request(&schema, &p, 0, &req, err, sizeof(err)) == 0);
	json_decref(req);
	mt_etcd_plan_fini(&p);

	op.len = max + 1;
	CHECK(mt_etcd_plan_build(&op, 1, &p, err, sizeof(err)) == 0);
	CHECK(mt_etcd_txn_request(&schema, &p, 0, &req, err, sizeof(err)) ==
	      -EMSGSIZE);
	CHECK(req == NULL);
	CHECK_CONTAINS(err, key);
	CHECK_CONTAINS(err, "max_request_bytes");
	CHECK_CONTAINS(err, "not sent");
	mt_etcd_plan_fini(&p);
	free(val);

	/* 127 keys + the marker fit etcd's 128 operations; 128 do not */
	struct mt_store_op many[128];
	char keys[128][16];

	for (size_t i = 0; i < 128; i++) {
		snprintf(keys[i], sizeof(keys[i]), "customers/%zu", i + 1);
		many[i] =
		    (struct mt_store_op){MT_STORE_OP_PUT, keys[i], "v", 1};
	}
	CHECK(mt_etcd_plan_build(many, 127, &p, err, sizeof(err)) == 0);
	CHECK(mt_etcd_txn_request(&schema, &p, 5, &req, err, sizeof(err)) == 0);
	json_decref(req);
	mt_etcd_plan_fini(&p);
	CHECK(mt_etcd_plan_build(many, 128, &p, err, sizeof(err)) == 0);
	CHECK(mt_etcd_txn_request(&schema, &p, 5, &req, err, sizeof(err)) ==
	      -E2BIG);
	CHECK_CONTAINS(err, "max_txn_ops");
	mt_etcd_plan_fini(&p);
	/* many small values over the size limit together */
	struct mt_etcd_schema small = schema;

	small.max_request_bytes = 4096;
	CHECK(mt_etcd_plan_build(many, 100, &p, err, sizeof(err)) == 0);
	CHECK(mt_etcd_txn_request(&small, &p, 0, &req, err, sizeof(err)) == 0);
	json_decref(req);
	mt_etcd_plan_fini(&p);
	val = calloc(1, 4096);
	many[0].val = val;
	many[0].len = 4000;
	CHECK(mt_etcd_plan_build(many, 2, &p, err, sizeof(err)) == 0);
	CHECK(mt_etcd_txn_request(&small, &p, 0, &req, err, sizeof(err)) ==
	      -EMSGSIZE);
	CHECK_CONTAINS(err, "a txn of 2 keys");
	mt_etcd_plan_fini(&p);
	free(val);
}

static void test_txn_result(void)
{
	struct mt_store_op ops[] = {
	    {MT_STORE_OP_DELETE, "customers/1", NULL, 0},
	    {MT_STORE_OP_DELETE, "customers/2", NULL, 0},
	};
	struct mt_etcd_plan p;
	char err[256];
	uint64_t rev = 0;
	json_t *j;

	CHECK(mt_etcd_plan_build(ops, 2, &p, err, sizeof(err)) == 0);
	j = parse("{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\","
		  "\"revision\":\"9\",\"raft_term\":\"2\"},\"succeeded\":true,"
		  "\"responses\":[{\"response_delete_range\":{\"header\":"
		  "{\"revision\":\"9\"},\"deleted\":\"1\"}}]}");
	CHECK(mt_etcd_txn_result(j, &p, 0, &rev, err, sizeof(err)) == 0);
	CHECK(rev == 9);
	json_decref(j);

	/* "succeeded" false is omitted; the nested compare-and-swap too */
	j = parse("{\"header\":{\"revision\":\"9\"},\"responses\":["
		  "{\"response_txn\":{\"header\":{}}},"
		  "{\"response_range\":{\"header\":{}}}]}");
	CHECK(mt_etcd_txn_result(j, &p, 5, &rev, err, sizeof(err)) == -EAGAIN);
	CHECK_CONTAINS(err, "after revision 5");
	json_decref(j);

	j = parse("{\"header\":{\"revision\":\"9\"},\"responses\":["
		  "{\"response_txn\":{\"header\":{},\"succeeded\":true}},"
		  "{\"response_range\":{\"header\":{},\"count\":\"1\"}},"
		  "{\"response_range\":{\"header\":{}}}]}");
	CHECK(mt_etcd_txn_result(j, &p, 5, &rev, err, sizeof(err)) == -ENOENT);
	CHECK_CONTAINS(err, "delete customers/2: no such key");
	json_decref(j);

	j = parse("{\"header\":{\"revision\":\"9\"},\"responses\":["
		  "{\"response_range\":{\"header\":{}}},"
		  "{\"response_range\":{\"header\":{},\"count\":\"1\"}}]}");
	CHECK(mt_etcd_txn_result(j, &p, 0, &rev, err, sizeof(err)) == -ENOENT);
	CHECK_CONTAINS(err, "customers/1");
	json_decref(j);

	j = parse("{}");
	CHECK(mt_etcd_txn_result(j, &p, 0, &rev, err, sizeof(err)) == -EBADMSG);
	json_decref(j);
	mt_etcd_plan_fini(&p);
}

static void test_range(void)
{
	struct mt_store_kv *kvs = NULL;
	size_t n = 0, cap = 0, last_len = 0;
	uint64_t rev = 0;
	bool more = false;
	char *last = NULL, *s;
	json_t *j, *req;

	req = mt_etcd_range_request("/mt/v1/", 7, "/mt/v10", 7, 42, 500);
	s = unb64(json_object_get(req, "key"));
	CHECK_STR(s, "/mt/v1/");
	free(s);
	CHECK_STR(json_string_value(json_object_get(req, "revision")), "42");
	CHECK_STR(json_string_value(json_object_get(req, "limit")), "500");
	json_decref(req);
	req = mt_etcd_range_request("k", 1, NULL, 0, 0, 0);
	CHECK(!json_object_get(req, "range_end") &&
	      !json_object_get(req, "revision") &&
	      !json_object_get(req, "limit"));
	json_decref(req);

	/* as etcd 3.4.23 answers: b's empty value omitted; a key that is
	 * not a store key (the data prefix alone) skipped */
	j = parse(
	    "{\"header\":{\"cluster_id\":\"32\",\"member_id\":\"33\","
	    "\"revision\":\"10\",\"raft_term\":\"2\"},\"kvs\":["
	    "{\"key\":\"L210L3YxLw==\",\"create_revision\":\"2\","
	    "\"mod_revision\":\"2\",\"version\":\"1\"},"
	    "{\"key\":\"L210L3YxL2E=\",\"create_revision\":\"2\","
	    "\"mod_revision\":\"8\",\"version\":\"3\",\"value\":\"aGVsbG8=\"},"
	    "{\"key\":\"L210L3YxL2I=\",\"create_revision\":\"3\","
	    "\"mod_revision\":\"3\",\"version\":\"1\"}],"
	    "\"more\":true,\"count\":\"7\"}");
	CHECK(mt_etcd_range_parse(j, "/mt/v1/", &kvs, &n, &cap, &rev, &more,
				  &last, &last_len) == 0);
	CHECK(rev == 10 && more);
	CHECK(n == 2);
	if (n == 2) {
		CHECK_STR(kvs[0].key, "a");
		CHECK(kvs[0].len == 5 && !strcmp(kvs[0].val, "hello"));
		CHECK(kvs[0].mod_rev == 8);
		CHECK_STR(kvs[1].key, "b");
		CHECK(kvs[1].len == 0 && kvs[1].val &&
		      ((char *)kvs[1].val)[0] == '\0');
		CHECK(kvs[1].mod_rev == 3);
	}
	CHECK(last_len == 8 && last && !memcmp(last, "/mt/v1/b", 8));
	free(last);
	json_decref(j);

	/* no key: "kvs", "more" and "count" are all omitted */
	j = parse("{\"header\":{\"revision\":\"11\"}}");
	CHECK(mt_etcd_range_parse(j, "/mt/v1/", &kvs, &n, &cap, &rev, &more,
				  NULL, NULL) == 0);
	CHECK(n == 2 && rev == 11 && !more);
	json_decref(j);
	mt_store_kvs_free(kvs, n);

	j = parse("{\"kvs\":[]}");
	kvs = NULL;
	n = cap = 0;
	CHECK(mt_etcd_range_parse(j, "/mt/v1/", &kvs, &n, &cap, &rev, &more,
				  NULL, NULL) == -EBADMSG);
	json_decref(j);
}

static void test_errors(void)
{
	static const struct {
		const char *json;
		int want;
		bool unapplied;
	} cases[] = {
	    {"{\"error\":\"etcdserver: request is too large\",\"message\":"
	     "\"etcdserver: request is too large\",\"code\":3}",
	     -EMSGSIZE, false},
	    {"{\"error\":\"etcdserver: too many operations in txn request\","
	     "\"message\":\"etcdserver: too many operations in txn "
	     "request\",\"code\":3}",
	     -E2BIG, false},
	    {"{\"error\":\"etcdserver: duplicate key given in txn request\","
	     "\"message\":\"etcdserver: duplicate key given in txn "
	     "request\",\"code\":3}",
	     -EINVAL, false},
	    {"{\"error\":\"etcdserver: mvcc: required revision has been "
	     "compacted\",\"message\":\"etcdserver: mvcc: required "
	     "revision has been compacted\",\"code\":11}",
	     -ESTALE, false},
	    {"{\"error\":\"etcdserver: mvcc: required revision is a future "
	     "revision\",\"message\":\"etcdserver: mvcc: required revision "
	     "is a future revision\",\"code\":11}",
	     -ERANGE, false},
	    {"{\"error\":\"etcdserver: no leader\",\"message\":"
	     "\"etcdserver: no leader\",\"code\":14}",
	     -EHOSTUNREACH, true},
	    {"{\"error\":\"etcdserver: request timed out\",\"message\":"
	     "\"etcdserver: request timed out\",\"code\":14}",
	     -ETIMEDOUT, false},
	    {"{\"error\":\"etcdserver: mvcc: database space exceeded\","
	     "\"message\":\"etcdserver: mvcc: database space exceeded\","
	     "\"code\":8}",
	     -ENOSPC, false},
	    /* a watch stream's form */
	    {"{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":"
	     "\"etcdserver: no leader\",\"http_status\":\"Service "
	     "Unavailable\"}}",
	     -EHOSTUNREACH, true},
	};
	char err[256];
	bool unapplied;

	for (size_t i = 0; i < MT_ARRAY_SIZE(cases); i++) {
		json_t *j = parse(cases[i].json);

		CHECK(mt_etcd_error(j, 400, &unapplied, err, sizeof(err)) ==
		      cases[i].want);
		CHECK(unapplied == cases[i].unapplied);
		CHECK_CONTAINS(err, "etcdserver: ");
		json_decref(j);
	}
	/* "404 page not found": something else listens there */
	CHECK(mt_etcd_error(NULL, 404, &unapplied, err, sizeof(err)) ==
	      -EPROTO);
	CHECK_CONTAINS(err, "HTTP 404");
}

static void test_watch(void)
{
	struct mt_etcd_watch_msg m;
	char err[256], *s;
	json_t *j = mt_etcd_watch_request("/mt/v1/", 12);

	s = unb64(
	    json_object_get(json_object_get(j, "create_request"), "range_end"));
	CHECK_STR(s, "/mt/v10");
	free(s);
	CHECK_STR(json_string_value(json_object_get(
		      json_object_get(j, "create_request"), "start_revision")),
		  "12");
	json_decref(j);

	j = parse(
	    "{\"result\":{\"header\":{\"cluster_id\":\"3\",\"member_id\":"
	    "\"3\",\"revision\":\"7\",\"raft_term\":\"2\"},\"created\":true}}");
	CHECK(mt_etcd_watch_parse(j, "/mt/v1/", &m, err, sizeof(err)) == 0);
	CHECK(m.created && !m.canceled && m.n_events == 0 && m.header_rev == 7);
	mt_etcd_watch_msg_fini(&m);
	json_decref(j);

	/* PUT is type 0 and omitted; an empty value is omitted */
	j = parse(
	    "{\"result\":{\"header\":{\"revision\":\"9\"},\"events\":["
	    "{\"kv\":{\"key\":\"L210L3YxL2E=\",\"create_revision\":\"8\","
	    "\"mod_revision\":\"8\",\"version\":\"1\",\"value\":\"YWdhaW4=\"}},"
	    "{\"kv\":{\"key\":\"L210L3YxL2I=\",\"mod_revision\":\"8\"}},"
	    "{\"kv\":{\"key\":\"L210L3YxLw==\",\"mod_revision\":\"9\"}},"
	    "{\"type\":\"DELETE\",\"kv\":{\"key\":\"L210L3YxL2E=\","
	    "\"mod_revision\":\"9\"}}]}}");
	CHECK(mt_etcd_watch_parse(j, "/mt/v1/", &m, err, sizeof(err)) == 0);
	CHECK(m.n_events == 3 && m.last_rev == 9);
	if (m.n_events == 3) {
		CHECK(!m.events[0].deleted);
		CHECK_STR(m.events[0].key, "a");
		CHECK(m.events[0].len == 5 &&
		      !strcmp(m.events[0].val, "again"));
		CHECK(m.events[0].mod_rev == 8);
		CHECK(!m.events[1].deleted && m.events[1].len == 0 &&
		      m.events[1].val);
		CHECK(m.events[2].deleted && !m.events[2].val);
		CHECK_STR(m.events[2].key, "a");
		CHECK(m.events[2].mod_rev == 9);
	}
	mt_etcd_watch_msg_fini(&m);
	json_decref(j);

	j = parse("{\"result\":{\"header\":{\"cluster_id\":\"3\",\"raft_term\":"
		  "\"2\"},\"canceled\":true,\"compact_revision\":\"8\"}}");
	CHECK(mt_etcd_watch_parse(j, "/mt/v1/", &m, err, sizeof(err)) == 0);
	CHECK(m.canceled && m.compact_revision == 8);
	mt_etcd_watch_msg_fini(&m);
	json_decref(j);

	j = parse("{\"result\":{\"header\":{},\"canceled\":true,"
		  "\"cancel_reason\":\"permission denied\"}}");
	CHECK(mt_etcd_watch_parse(j, "/mt/v1/", &m, err, sizeof(err)) == 0);
	CHECK(m.canceled && !m.compact_revision);
	CHECK_CONTAINS(err, "permission denied");
	mt_etcd_watch_msg_fini(&m);
	json_decref(j);

	j = parse("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":"
		  "\"etcdserver: no leader\"}}");
	CHECK(mt_etcd_watch_parse(j, "/mt/v1/", &m, err, sizeof(err)) ==
	      -EHOSTUNREACH);
	json_decref(j);
}

static struct mt_etcd_event event(const char *key, const char *val,
				  uint64_t rev)
{
	struct mt_etcd_event e = {
	    .deleted = !val, .key = strdup(key), .mod_rev = rev};

	if (val) {
		e.val = strdup(val);
		e.len = strlen(val);
	}
	return e;
}

static void apply(struct mt_etcd_mirror *mr, struct mt_etcd_event *evs,
		  size_t n)
{
	struct mt_etcd_watch_msg m = {.events = calloc(n, sizeof(*evs)),
				      .n_events = n};

	memcpy(m.events, evs, n * sizeof(*evs));
	for (size_t i = 0; i < n; i++)
		if (evs[i].mod_rev > m.last_rev)
			m.last_rev = evs[i].mod_rev;
	CHECK(mt_etcd_mirror_apply(mr, &m) == 0);
	mt_etcd_watch_msg_fini(&m);
}

static void test_mirror(void)
{
	struct mt_etcd_mirror mr = {.rev = 4};
	struct mt_etcd_event evs[4];
	const struct mt_store_kv *kv;
	struct mt_store_kv *kvs;
	size_t n;

	evs[0] = event("customers/2", "two", 5);
	evs[1] = event("customers/10", "ten", 5);
	evs[2] = event("heartbeat", "t", 6);
	evs[3] = event("customers/1", "one", 7);
	apply(&mr, evs, 4);
	CHECK(mr.n == 4 && mr.rev == 7);
	/* sorted bytewise, as etcd and LMDB sort */
	CHECK(mr.n == 4 && !strcmp(mr.kv[0].key, "customers/1") &&
	      !strcmp(mr.kv[1].key, "customers/10") &&
	      !strcmp(mr.kv[2].key, "customers/2") &&
	      !strcmp(mr.kv[3].key, "heartbeat"));

	evs[0] = event("customers/2", "TWO", 8);
	evs[1] = event("customers/10", NULL, 9);
	evs[2] = event("customers/99", NULL, 9); /* absent: nothing */
	apply(&mr, evs, 3);
	CHECK(mr.n == 3 && mr.rev == 9);
	kv = mt_etcd_mirror_find(&mr, "customers/2");
	CHECK(kv && kv->len == 3 && !strcmp(kv->val, "TWO") &&
	      kv->mod_rev == 8);
	CHECK(!mt_etcd_mirror_find(&mr, "customers/10"));

	CHECK(mt_etcd_mirror_range(&mr, "customers/", 7, &kvs, &n) == 0);
	CHECK(n == 2);
	if (n == 2) {
		CHECK_STR(kvs[0].key, "customers/1");
		/* written at 7, not after: no copy, but len and mod_rev */
		CHECK(!kvs[0].val && kvs[0].len == 3 && kvs[0].mod_rev == 7);
		CHECK_STR(kvs[1].key, "customers/2");
		CHECK(kvs[1].val && !strcmp(kvs[1].val, "TWO"));
	}
	mt_store_kvs_free(kvs, n);
	CHECK(mt_etcd_mirror_range(&mr, "", 0, &kvs, &n) == 0 && n == 3);
	mt_store_kvs_free(kvs, n);
	CHECK(mt_etcd_mirror_range(&mr, "nothing/", 0, &kvs, &n) == 0 &&
	      n == 0 && !kvs);

	/* an event the mirror drops (not a store key) still moves rev */
	struct mt_etcd_watch_msg m = {.last_rev = 12};

	CHECK(mt_etcd_mirror_apply(&mr, &m) == 0 && mr.rev == 12);
	mt_etcd_mirror_fini(&mr);
	CHECK(mr.n == 0 && !mr.kv);
}

/* ---- live checks against a real cluster ---- */

static int live_failures;

#define LIVE(what, cond)                                        \
	do {                                                    \
		bool _ok = (cond);                              \
		printf("%s %s\n", _ok ? "PASS" : "FAIL", what); \
		fflush(stdout);                                 \
		live_failures += !_ok;                          \
	} while (0)

static struct mt_store *live_open(const char *url)
{
	struct mt_store *s = NULL;
	char err[512];

	if (mt_store_open(url, 0, &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "open %s: %s\n", url, err);
		exit(2);
	}
	return s;
}

static int put(struct mt_store *s, const char *key, const char *val,
	       uint64_t *rev)
{
	return mt_store_put(s, key, val, strlen(val), rev);
}

static bool absent(struct mt_store *s, const char *key)
{
	return mt_store_get(s, key, NULL, NULL, NULL) == -ENOENT;
}

/* Compare-and-swap between two handles, as mtctl does it: range, decide,
 * txn with the range's revision. */
static void live_cas(const char *url)
{
	struct mt_store *a = live_open(url), *b = live_open(url);
	struct mt_store_op op = {MT_STORE_OP_PUT, "cas/mine", "m", 1};
	struct mt_store_kv *kvs;
	uint64_t rev, rev2, got;
	size_t n;

	LIVE("cas: range", mt_store_range(a, "", &kvs, &n, &rev) == 0);
	mt_store_kvs_free(kvs, n);
	LIVE("cas: another writer puts",
	     put(b, "cas/other", "o", &rev2) == 0 && rev2 > rev);
	LIVE("cas: a txn at the old revision is refused with EAGAIN",
	     mt_store_txn(a, &op, 1, rev, NULL) == -EAGAIN);
	LIVE("cas: and wrote nothing", absent(a, "cas/mine"));
	LIVE("cas: a txn at the current revision goes through",
	     mt_store_range(a, "", &kvs, &n, &rev) == 0 &&
		 mt_store_txn(a, &op, 1, rev, &got) == 0 && got > rev);
	mt_store_kvs_free(kvs, n);

	/* a delete leaves nothing in the range to compare: the write
	 * marker catches it */
	LIVE("cas: range again", mt_store_range(a, "", &kvs, &n, &rev) == 0);
	mt_store_kvs_free(kvs, n);
	LIVE("cas: another writer deletes",
	     mt_store_delete(b, "cas/other", NULL) == 0);
	op.key = "cas/after-delete";
	LIVE("cas: a txn across a delete is refused with EAGAIN",
	     mt_store_txn(a, &op, 1, rev, NULL) == -EAGAIN);
	LIVE("cas: and wrote nothing", absent(a, "cas/after-delete"));
	/* writes outside the data range do not conflict (etcdctl wrote
	 * one before this ran) but leave nothing to check here */
	LIVE("cas: a txn of no op checks and reports the revision",
	     mt_store_revision(a, &rev) == 0 &&
		 mt_store_txn(a, NULL, 0, rev, &got) == 0 && got >= rev &&
		 mt_store_txn(a, NULL, 0, 1, NULL) == -EAGAIN);
	mt_store_close(a);
	mt_store_close(b);
}

/* All or nothing: a batch whose last delete finds no key writes none of
 * its puts. Prints the revision of the good batch for etcdctl to check. */
static void live_txn(const char *url)
{
	struct mt_store *s = live_open(url);
	struct mt_store_op bad[] = {
	    {MT_STORE_OP_PUT, "txn/a", "A", 1},
	    {MT_STORE_OP_PUT, "txn/b", "B", 1},
	    {MT_STORE_OP_DELETE, "txn/missing", NULL, 0},
	};
	struct mt_store_op redo[] = {
	    {MT_STORE_OP_PUT, "txn/c", "C", 1},
	    {MT_STORE_OP_DELETE, "txn/c", NULL, 0},
	};
	uint64_t before = 0, after = 0, rev = 0, ma = 0, mb = 0;

	mt_store_revision(s, &before);
	LIVE("txn: a batch with a delete of an absent key fails with ENOENT",
	     mt_store_txn(s, bad, 3, 0, NULL) == -ENOENT);
	LIVE("txn: the error names the key",
	     strstr(mt_store_last_error(s), "txn/missing") != NULL);
	LIVE("txn: none of its puts was written",
	     absent(s, "txn/a") && absent(s, "txn/b"));
	mt_store_revision(s, &after);
	LIVE("txn: the revision did not move", after == before);
	LIVE("txn: the batch without the delete goes through in one revision",
	     mt_store_txn(s, bad, 2, 0, &rev) == 0 &&
		 mt_store_get(s, "txn/a", NULL, NULL, &ma) == 0 &&
		 mt_store_get(s, "txn/b", NULL, NULL, &mb) == 0 && ma == rev &&
		 mb == rev);
	LIVE("txn: put then delete of one key in one batch leaves it absent",
	     mt_store_txn(s, redo, 2, 0, NULL) == 0 && absent(s, "txn/c"));
	printf("rev=%" PRIu64 "\n", rev);
	mt_store_close(s);
}

/* Waits for the watch fd, drains it; the drain's result. */
static int wait_fd(struct mt_store *s, int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	if (poll(&p, 1, timeout_ms) != 1)
		return -ETIMEDOUT;
	return mt_store_watch_drain(s);
}

/* Waits until reads through s show key with value val (NULL: absent). */
static bool wait_value(struct mt_store *s, int fd, const char *key,
		       const char *val)
{
	for (int i = 0; i < 100; i++) {
		void *v = NULL;
		int r = mt_store_get(s, key, &v, NULL, NULL);
		bool ok = val ? r == 0 && !strcmp(v, val) : r == -ENOENT;

		free(v);
		if (ok)
			return true;
		wait_fd(s, fd, 100);
	}
	return false;
}

/* The watch: changes by another handle wake the fd and show in the
 * mirror, deletions by absence; a handle reads its own writes. */
static void live_watch(const char *url)
{
	struct mt_store *w = live_open(url), *o = live_open(url);
	int fd = mt_store_watch_open(w);
	struct mt_store_kv *kvs = NULL;
	uint64_t rev = 0, prev;
	size_t n = 0;
	bool found = false;

	LIVE("watch: open gives an fd", fd >= 0);
	LIVE("watch: the mirror goes live",
	     mt_store_wait_revision(w, 0, 10000, &prev) == 0);
	LIVE("watch: another handle's put wakes the fd",
	     put(o, "watch/k", "one", &rev) == 0 && wait_fd(w, fd, 10000) == 0);
	LIVE("watch: and shows in the mirror",
	     wait_value(w, fd, "watch/k", "one"));
	LIVE("watch: wait_revision sees it",
	     mt_store_wait_revision(w, prev, 10000, &prev) == 0 && prev >= rev);
	LIVE("watch: another handle's delete wakes the fd",
	     mt_store_delete(o, "watch/k", NULL) == 0 &&
		 wait_fd(w, fd, 10000) == 0);
	LIVE("watch: and the key is absent from range_since",
	     wait_value(w, fd, "watch/k", NULL) &&
		 mt_store_range_since(w, "watch/", 0, &kvs, &n, &rev) == 0);
	for (size_t i = 0; i < n; i++)
		found |= !strcmp(kvs[i].key, "watch/k");
	LIVE("watch: (not in the snapshot)", !found);
	mt_store_kvs_free(kvs, n);
	LIVE("watch: a handle reads its own write at once",
	     put(w, "watch/own", "mine", NULL) == 0 &&
		 wait_value(w, -1, "watch/own", "mine"));
	mt_store_close(w);
	mt_store_close(o);
}

/* A watch resuming after revision REV: -ESTALE once when that history is
 * compacted (and the mirror is the full store again), never otherwise. */
static void live_watch_since(const char *url, uint64_t after, bool stale)
{
	struct mt_store *w = live_open(url);
	int fd = mt_store_watch_open_at(w, after), r = 0;
	struct mt_store_kv *kvs = NULL;
	size_t n = 0;
	uint64_t rev = 0;

	LIVE("watch-since: open gives an fd", fd >= 0);
	/* every wakeup until the mirror is live, then one more look */
	for (int i = 0; i < 100 && r != -ESTALE; i++) {
		r = wait_fd(w, fd, 100);
		if (r == -ETIMEDOUT && mt_store_revision(w, &rev) == 0) {
			r = mt_store_watch_drain(w);
			break;
		}
	}
	if (stale) {
		LIVE("watch-since: the drain reports the resync (ESTALE)",
		     r == -ESTALE);
		LIVE("watch-since: once", mt_store_watch_drain(w) == 0);
	} else {
		LIVE("watch-since: no resync", r != -ESTALE);
	}
	LIVE("watch-since: the store reads in full afterwards",
	     mt_store_range(w, "", &kvs, &n, &rev) == 0 && n > 0);
	mt_store_kvs_free(kvs, n);
	mt_store_close(w);
}

/* Every member down: calls fail with EHOSTUNREACH (or ETIMEDOUT) and a
 * message naming the members, with the watch too. */
static void live_down(const char *url)
{
	struct mt_store *s = live_open(url), *w = live_open(url);
	struct mt_store_kv *kvs = NULL;
	uint64_t rev;
	size_t n = 0;
	int r = mt_store_revision(s, &rev), fd;

	LIVE("down: a read fails with EHOSTUNREACH or ETIMEDOUT",
	     r == -EHOSTUNREACH || r == -ETIMEDOUT);
	LIVE("down: the error says no member answered",
	     strstr(mt_store_last_error(s), "no etcd member answered") != NULL);
	printf("error: %s\n", mt_store_last_error(s));
	r = put(s, "down/k", "v", NULL);
	LIVE("down: a write fails likewise",
	     r == -EHOSTUNREACH || r == -ETIMEDOUT);
	fd = mt_store_watch_open(w);
	LIVE("down: the watch opens (an agent starts on its last-known-good)",
	     fd >= 0);
	r = mt_store_range_since(w, "", 0, &kvs, &n, &rev);
	LIVE("down: reads through the watch fail too",
	     r == -EHOSTUNREACH || r == -ETIMEDOUT);
	printf("error: %s\n", mt_store_last_error(w));
	mt_store_close(s);
	mt_store_close(w);
}

static int live(int argc, char **argv)
{
	if (argc < 4)
		goto usage;
	if (!strcmp(argv[3], "cas"))
		live_cas(argv[2]);
	else if (!strcmp(argv[3], "txn"))
		live_txn(argv[2]);
	else if (!strcmp(argv[3], "watch"))
		live_watch(argv[2]);
	else if (!strcmp(argv[3], "watch-since") && argc == 6)
		live_watch_since(argv[2], strtoull(argv[4], NULL, 10),
				 !strcmp(argv[5], "stale"));
	else if (!strcmp(argv[3], "down"))
		live_down(argv[2]);
	else
		goto usage;
	return live_failures ? 1 : 0;
usage:
	fprintf(stderr,
		"usage: test_etcd live URL cas|txn|watch|down\n"
		"       test_etcd live URL watch-since REV stale|fresh\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "live"))
		return live(argc, argv);
	RUN(test_url);
	RUN(test_open);
	RUN(test_base64);
	RUN(test_keys);
	RUN(test_plan);
	RUN(test_txn_request);
	RUN(test_txn_limits);
	RUN(test_txn_result);
	RUN(test_range);
	RUN(test_errors);
	RUN(test_watch);
	RUN(test_mirror);
	TEST_MAIN_END();
}
