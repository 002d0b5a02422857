/* The etcd backend of the config store (docs/store.md "The etcd backend").
 *
 * mt_store_open() hands "etcd://" URLs to mt_etcd_open(); every mt_store_*
 * call on such a handle lands here. The client speaks etcd 3.4's v3 JSON
 * gateway (POST /v3/kv/range, /v3/kv/txn, /v3/watch) with libcurl and
 * jansson: keys and values travel base64-encoded, int64s as strings, and
 * fields holding their default value are omitted from answers.
 *
 *   etcd://HOST[:PORT][,HOST[:PORT]...][/PREFIX][?OPTION=VALUE[&...]]
 *
 * A store key K ("customers/12") is the etcd key PREFIX "v1/" K: the "v1"
 * is the version of the key schema. Every write transaction also puts the
 * write marker PREFIX "v1.written" (outside the data range), so that a
 * compare-and-swap sees deletions too.
 *
 * Revisions are etcd's: the store revision is the cluster's
 * header.revision (shared by every key of the cluster, so it also moves
 * for writes elsewhere), a key's mod_rev its mod_revision. Every write
 * still bumps it, and a txn is one etcd txn: one revision, all or nothing.
 *
 * Reads go to the cluster (linearizable) until mt_store_watch_open(): from
 * then on a background thread keeps a local mirror of the data range from
 * one watch stream, and get/range/range_since/revision read the mirror (no
 * network round trip), after the watch has seen this handle's own writes.
 * After a compaction made the watch lose history, the mirror is rebuilt
 * from a full read and mt_store_watch_drain() returns -ESTALE once.
 *
 * A handle is used from one thread (the watch thread is internal).
 * Detailed errors go to the log (mt_warn) and mt_etcd_last_error().
 */
#ifndef MT_ETCD_H
#define MT_ETCD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_store.h"

#define MT_ETCD_DEFAULT_PORT 2379
#define MT_ETCD_DEFAULT_PREFIX "/mt/"
/* The key schema version, the first path element under the prefix. */
#define MT_ETCD_SCHEMA "v1"
#define MT_ETCD_MARKER "v1.written"
#define MT_ETCD_MAX_MEMBERS 16
#define MT_ETCD_PREFIX_MAX 200
/* etcd 3.4's defaults for --max-request-bytes and --max-txn-ops. */
#define MT_ETCD_MAX_REQUEST_BYTES 1572864
#define MT_ETCD_MAX_TXN_OPS 128
#define MT_ETCD_TIMEOUT_MS 2000

struct mt_etcd;

/* ---- the handle (called through mt_store_*) ---- */

/* Parses url; no network traffic (a cluster that is down must not stop an
 * agent from starting on its last-known-good copy). -EINVAL with err
 * naming what is wrong. */
int mt_etcd_open(const char *url, unsigned flags, struct mt_etcd **out,
		 char *err, size_t errlen);
void mt_etcd_close(struct mt_etcd *e);
/* The normalised URL (members, prefix), for messages. */
const char *mt_etcd_url(const struct mt_etcd *e);
/* What the last failed call on this handle failed on, "" if none. */
const char *mt_etcd_last_error(const struct mt_etcd *e);

int mt_etcd_revision(struct mt_etcd *e, uint64_t *rev);
int mt_etcd_get(struct mt_etcd *e, const char *key, void **val, size_t *len,
		uint64_t *mod_rev);
int mt_etcd_range_since(struct mt_etcd *e, const char *prefix,
			uint64_t after_rev, struct mt_store_kv **kvs, size_t *n,
			uint64_t *rev);
int mt_etcd_txn(struct mt_etcd *e, const struct mt_store_op *ops, size_t n,
		uint64_t expect_rev, uint64_t *rev_out);
/* Starts the watch thread (once) and returns its eventfd. after_rev != 0:
 * the mirror starts from the store as it was at after_rev and replays
 * every change since (the resync signal then says whether that history
 * was still there); 0: from the current revision. */
int mt_etcd_watch_open(struct mt_etcd *e, uint64_t after_rev);
/* 0, or -ESTALE once after the mirror was rebuilt (history compacted). */
int mt_etcd_watch_drain(struct mt_etcd *e);
int mt_etcd_wait_revision(struct mt_etcd *e, uint64_t after,
			  unsigned timeout_ms, uint64_t *rev);

/* ---- pure parts (no network), exported for tests/unit/test_etcd.c ---- */

struct mt_etcd_url {
	char *members[MT_ETCD_MAX_MEMBERS]; /* "host:port", "[v6]:port" */
	size_t n_members;
	char *prefix; /* starts and ends with '/' */
	unsigned timeout_ms;
	size_t max_request_bytes;
	unsigned max_txn_ops;
};

/* Parses an etcd:// URL (see the top). Options: timeout_ms (1..600000,
 * per request and member), max_request_bytes, max_txn_ops (the cluster's
 * limits, when not etcd's defaults). -EINVAL with err naming the part. */
int mt_etcd_url_parse(const char *url, struct mt_etcd_url *u, char *err,
		      size_t errlen);
void mt_etcd_url_fini(struct mt_etcd_url *u);

/* "<prefix>v1/" key, malloc'd. */
char *mt_etcd_data_key(const char *prefix, const char *key);
/* The end of the range of keys starting with the len bytes at key, as
 * etcd's range_end wants it (the last byte below 0xff incremented, the
 * bytes after it dropped; "\0" when every byte is 0xff: no upper end),
 * malloc'd with its length in *end_len. */
char *mt_etcd_prefix_end(const char *key, size_t len, size_t *end_len);

/* The effect of a batch of store ops, one entry per key (etcd refuses a
 * txn naming a key twice), in the order each key first appears. */
struct mt_etcd_plan_op {
	const char *key; /* the store key */
	bool put;
	const void *val;
	size_t len;
	bool must_exist; /* a delete of a key the batch did not put first */
};

struct mt_etcd_plan {
	struct mt_etcd_plan_op *ops;
	size_t n;
};

/* Collapses ops as LMDB would apply them in order: the last op on a key
 * wins; a delete of a key the batch put first needs no existing key; a
 * second delete of a key (no put in between) is -ENOENT with err naming
 * it. -EINVAL for a bad key (1..MT_STORE_KEY_MAX bytes) or op. */
int mt_etcd_plan_build(const struct mt_store_op *ops, size_t n,
		       struct mt_etcd_plan *p, char *err, size_t errlen);
void mt_etcd_plan_fini(struct mt_etcd_plan *p);

struct mt_etcd_schema {
	const char *prefix; /* as in struct mt_etcd_url */
	size_t max_request_bytes;
	unsigned max_txn_ops;
};

/* The /v3/kv/txn request for plan: the compare-and-swap when expect_rev
 * != 0, an existence compare per must_exist delete, the writes and the
 * write marker; the failure branch reports which compare failed. Refused
 * before anything is built: -EMSGSIZE when the request would exceed
 * max_request_bytes (measured by mt_etcd_txn_size), -E2BIG when it has
 * more than max_txn_ops operations; err says which key and by how much. */
int mt_etcd_txn_request(const struct mt_etcd_schema *sc,
			const struct mt_etcd_plan *p, uint64_t expect_rev,
			json_t **req, char *err, size_t errlen);
/* The size in bytes of the protobuf request etcd checks against
 * --max-request-bytes (an upper bound: a little over the real size). */
size_t mt_etcd_txn_size(const struct mt_etcd_schema *sc,
			const struct mt_etcd_plan *p, uint64_t expect_rev);
/* Reads a txn answer: 0 and *rev = header.revision when it succeeded;
 * -EAGAIN when the compare-and-swap failed; -ENOENT when a delete's key
 * was absent (err names it); -EBADMSG for an answer that is not one. */
int mt_etcd_txn_result(json_t *resp, const struct mt_etcd_plan *p,
		       uint64_t expect_rev, uint64_t *rev, char *err,
		       size_t errlen);

/* The /v3/kv/range request: [key, range_end) (range_end NULL: key
 * alone), at revision (0: the newest), at most limit keys (0: all). */
json_t *mt_etcd_range_request(const char *key, size_t key_len,
			      const char *range_end, size_t end_len,
			      uint64_t revision, int64_t limit);
/* The key-values of a range answer, appended to *kvs (*n entries, *cap
 * allocated) with the data prefix stripped (data_key: "<prefix>v1/");
 * keys outside it, with a NUL or too long for a store key are skipped
 * with a warning. *rev = header.revision, *more = more keys follow,
 * last_key/last_len (may be NULL): the last etcd key in the answer
 * (malloc'd). */
int mt_etcd_range_parse(json_t *resp, const char *data_key,
			struct mt_store_kv **kvs, size_t *n, size_t *cap,
			uint64_t *rev, bool *more, char **last_key,
			size_t *last_len);

/* Maps an etcd error answer (the gateway's {"error", "code", "message"},
 * or a watch stream's {"error": {"grpc_code", "message"}}) or a non-JSON
 * answer with HTTP status http to -errno, with the message in err.
 * *unapplied (may be NULL) says the request surely was not applied, so a
 * write may be sent to another member (no leader, overloaded). */
int mt_etcd_error(json_t *resp, long http, bool *unapplied, char *err,
		  size_t errlen);

/* ---- the watch stream and the mirror ---- */

struct mt_etcd_event {
	bool deleted;
	char *key; /* the store key (prefix stripped) */
	void *val; /* NUL-terminated, NULL for a delete */
	size_t len;
	uint64_t mod_rev;
};

struct mt_etcd_watch_msg {
	bool created;
	bool canceled;
	uint64_t compact_revision; /* canceled because history is gone */
	uint64_t header_rev;
	struct mt_etcd_event *events;
	size_t n_events;
	uint64_t last_rev; /* the newest mod_revision, skipped events too */
};

/* The /v3/watch create request for [data_key, its end) from revision
 * start (> 0). */
json_t *mt_etcd_watch_request(const char *data_key, uint64_t start);
/* Parses one message of a watch stream. An error message is returned as
 * mt_etcd_error() maps it. Events on keys that are not store keys are
 * dropped with a warning. */
int mt_etcd_watch_parse(json_t *msg, const char *data_key,
			struct mt_etcd_watch_msg *m, char *err, size_t errlen);
void mt_etcd_watch_msg_fini(struct mt_etcd_watch_msg *m);

/* A sorted copy of the data range: store keys -> values and mod_revs, at
 * revision rev (of the snapshot it was built from, then of the last event
 * applied). */
struct mt_etcd_mirror {
	struct mt_store_kv *kv;
	size_t n, cap;
	uint64_t rev;
};

/* Applies the events of m in order (taking their keys and values: m's
 * events are left empty) and moves rev to m's last_rev. */
int mt_etcd_mirror_apply(struct mt_etcd_mirror *mr,
			 struct mt_etcd_watch_msg *m);
/* Like mt_store_range_since, from the mirror. */
int mt_etcd_mirror_range(const struct mt_etcd_mirror *mr, const char *prefix,
			 uint64_t after_rev, struct mt_store_kv **kvs,
			 size_t *n);
/* The entry of key, or NULL. */
const struct mt_store_kv *mt_etcd_mirror_find(const struct mt_etcd_mirror *mr,
					      const char *key);
void mt_etcd_mirror_fini(struct mt_etcd_mirror *mr);

#endif
