/* The config store: string keys -> byte values, with a store revision
 * that every committed write transaction bumps (docs/store.md). Two
 * backends behind one API, picked by mt_store_open() from the URL:
 *
 *   lmdb:PATH, lmdb://PATH or a plain path: the embedded LMDB store below.
 *   etcd://HOST:PORT[,HOST:PORT...][/PREFIX][?OPTIONS]: an etcd cluster
 *     (lib/mt_etcd.h, docs/store.md "The etcd backend").
 *
 * The embedded store is an LMDB environment (a directory):
 * - Each value records mod_rev, the store revision of the write that last
 *   modified it. A delete bumps the revision too.
 * - Several processes may open the same store at once (mtctl writes while
 *   mt-agent reads and writes): LMDB's own locking serialises writers;
 *   readers never block. Opening the same directory twice in one process
 *   shares one LMDB environment (LMDB forbids two in one process).
 * - The map grows on demand (MDB_MAP_FULL: grow and retry), and a handle
 *   adopts a map another process grew (MDB_MAP_RESIZED).
 * - Change notification: mt_store_watch_open() gives an inotify fd on the
 *   directory; after each commit the writer rewrites the file "changed"
 *   (IN_CLOSE_WRITE), and data.mdb writes raise IN_MODIFY. A readable fd
 *   means "may have changed": re-read the revision. An event can arrive
 *   before the commit it belongs to is visible (data.mdb IN_MODIFY comes
 *   before the meta page is written; LMDB readers see a commit slightly
 *   after the txnid moved), so a caller that sees no new revision after an
 *   event keeps watching and retries briefly; mt_store_wait_revision() does
 *   exactly that.
 *
 * Keys: 1..MT_STORE_KEY_MAX bytes, no NUL; anything else is -EINVAL.
 * Errors: -errno. LMDB codes are mapped: not found -ENOENT, map full (after
 * growing to MT_STORE_MAP_MAX) -ENOSPC, readers table full -EBUSY,
 * corruption or version mismatch -EBADMSG. etcd adds: -EMSGSIZE (a
 * request over the cluster's size limit, refused before it is sent),
 * -E2BIG (too many keys for one txn), -EHOSTUNREACH (no member answered),
 * -ETIMEDOUT, -ESTALE (from mt_store_watch_drain: resync);
 * mt_store_last_error() says what exactly failed.
 *
 * An LMDB handle may be used from several threads, an etcd handle from
 * one (its watch thread is internal); do not use a handle in a child after
 * fork() (open a new one there).
 */
#ifndef MT_STORE_H
#define MT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "config.pb-c.h"

#define MT_STORE_KEY_MAX 400
/* Maps start at MT_STORE_MAP_MIN and double when full, up to MT_STORE_MAP_MAX. */
#define MT_STORE_MAP_MIN (8ull << 20)
#define MT_STORE_MAP_MAX (64ull << 30)

enum {
	MT_STORE_READONLY = 1u << 0, /* no writes; the directory must exist */
};

struct mt_store;

struct mt_store_kv {
	char *key;
	void *val;
	size_t len;
	uint64_t mod_rev;
};

enum mt_store_op_type {
	MT_STORE_OP_PUT,
	MT_STORE_OP_DELETE,
};

struct mt_store_op {
	enum mt_store_op_type type;
	const char *key;
	const void *val; /* PUT only */
	size_t len;
};

/* Opens (creating when missing, mode 0700, parents included) the store at
 * url: "lmdb:/path/dir", "lmdb:///path/dir" or a plain path; or the etcd
 * cluster of an "etcd://" url (no network traffic yet: a bad url is
 * -EINVAL, an unreachable cluster shows on the first call). Other schemes
 * are -EPROTONOSUPPORT. With MT_STORE_READONLY an LMDB store must already
 * exist (-ENOENT); writes fail with -EROFS. On failure err says why, naming
 * the path or the part of the url. */
int mt_store_open(const char *url, unsigned flags, struct mt_store **out,
		  char *err, size_t errlen);
/* Closes the handle and its watch fd. Accepts NULL. */
void mt_store_close(struct mt_store *s);
/* The directory of the store (etcd: the normalised url). */
const char *mt_store_path(const struct mt_store *s);
/* What the last failed call on s failed on, in words ("" if none or not
 * known: LMDB errors are all in their errno). */
const char *mt_store_last_error(const struct mt_store *s);

/* The current store revision (0 for a store never written). */
int mt_store_revision(struct mt_store *s, uint64_t *rev);

/* Sets key to the len bytes at val in one write txn. *rev_out (may be
 * NULL) = the new store revision = the value's mod_rev. -EROFS on a
 * read-only handle. */
int mt_store_put(struct mt_store *s, const char *key, const void *val,
		 size_t len, uint64_t *rev_out);
/* Deletes key (-ENOENT when absent, nothing written). */
int mt_store_delete(struct mt_store *s, const char *key, uint64_t *rev_out);
/* A malloc'd copy of key's value in *val (free(); followed by a NUL byte
 * not counted in *len, so text values read as strings), its length and
 * mod_rev (both may be NULL). -ENOENT when absent. */
int mt_store_get(struct mt_store *s, const char *key, void **val, size_t *len,
		 uint64_t *mod_rev);
/* All keys starting with prefix ("" = all), sorted bytewise, with copies of
 * their values (NUL-terminated as in mt_store_get) and mod_revs, read in one snapshot, and that snapshot's
 * store revision in *rev (may be NULL). *kvs is NULL when *n is 0. Free
 * with mt_store_kvs_free(). */
int mt_store_range(struct mt_store *s, const char *prefix,
		   struct mt_store_kv **kvs, size_t *n, uint64_t *rev);
/* mt_store_range, but values are copied only for keys written after
 * after_rev (mod_rev > after_rev); the others have val NULL (len and
 * mod_rev are set). For a reader that keeps what it read before: a
 * snapshot of 1000 customers then copies only what changed. */
int mt_store_range_since(struct mt_store *s, const char *prefix,
			 uint64_t after_rev, struct mt_store_kv **kvs,
			 size_t *n, uint64_t *rev);
void mt_store_kvs_free(struct mt_store_kv *kvs, size_t n);

/* Applies n puts/deletes in order in one write txn: one revision bump, all
 * or nothing. expect_rev != 0: -EAGAIN (nothing written) unless the store
 * revision is expect_rev when the txn starts (compare-and-swap). A delete of
 * an absent key fails the txn with -ENOENT. n == 0 writes nothing and
 * reports the current revision (after the expect_rev check). */
int mt_store_txn(struct mt_store *s, const struct mt_store_op *ops, size_t n,
		 uint64_t expect_rev, uint64_t *rev_out);

/* An fd (owned by the handle, the same one on every call) that becomes
 * readable when the store may have changed. -errno on failure.
 * etcd: starts the watch; from then on the handle's reads come from a
 * local mirror kept current by the watch (they fail while no member is
 * reachable). */
int mt_store_watch_open(struct mt_store *s);
/* mt_store_watch_open for a caller that has seen the store up to
 * after_rev (0: none): etcd replays every change after it, or, when that
 * history is compacted, resyncs and says so with -ESTALE from the next
 * mt_store_watch_drain(). LMDB keeps no history: the same as
 * mt_store_watch_open(). */
int mt_store_watch_open_at(struct mt_store *s, uint64_t after_rev);
/* Consumes the pending events on the watch fd (never blocks). 0 or -errno;
 * etcd: -ESTALE (once, events consumed too) after the watch lost history
 * to a compaction and the store was read again in full: the caller must
 * treat its next read as a full resync (it is logged). */
int mt_store_watch_drain(struct mt_store *s);
/* Waits until the store revision is > after, polling the watch fd (no sleep
 * loops), for at most timeout_ms. 0 with *rev (may be NULL) the revision
 * seen, or -ETIMEDOUT with *rev the last revision read. */
int mt_store_wait_revision(struct mt_store *s, uint64_t after,
			   unsigned timeout_ms, uint64_t *rev);

/* ---- the customer schema: "customers/<id>" -> packed mt.config.Customer ---- */

#define MT_STORE_CUSTOMERS_PREFIX "customers/"
/* The orchestrator's heartbeat: its wall clock in ms, decimal text. */
#define MT_STORE_HEARTBEAT_KEY "heartbeat"

/* "customers/<id>" (decimal, no padding) in buf; returns buf. */
char *mt_store_customer_key(uint32_t id, char *buf, size_t len);
/* The id in a "customers/<id>" key: 0, or -EINVAL for any other key
 * (padding, signs, trailing bytes, 0, > UINT32_MAX). */
int mt_store_customer_key_parse(const char *key, uint32_t *id);
/* Packs c and puts it under its id (c->id 0: -EINVAL). */
int mt_store_put_customer(struct mt_store *s, const Mt__Config__Customer *c,
			  uint64_t *rev);
/* -ENOENT when there is no such customer. */
int mt_store_delete_customer(struct mt_store *s, uint32_t id, uint64_t *rev);

#endif
