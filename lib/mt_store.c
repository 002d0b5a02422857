/* The config store (see mt_store.h and docs/store.md): the backend
 * dispatch and the embedded LMDB store. An etcd:// handle carries an
 * mt_etcd (lib/mt_etcd.c) and every call goes there; the rest of this file
 * is the LMDB store.
 *
 * Layout: two named databases in one environment.
 *   "kv"   key bytes (no NUL) -> 8-byte little-endian mod_rev + value bytes
 *   "meta" "revision"         -> 8-byte little-endian store revision
 * Every write transaction reads the revision, applies its operations with
 * mod_rev = revision + 1, stores the new revision and commits.
 */
#include "mt_store.h"
#include "mt_cleanup.h"
#include "mt_etcd.h"
#include "mt_log.h"
#include "mt_time.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR_LEN 8
#define REV_KEY "revision"
#define CHANGED_FILE "changed"
/* After a watch event without a new revision, re-check this often, this
 * many times, before waiting for the next event again: LMDB readers can
 * see a commit slightly after the writer's txnid moved. */
#define RETRY_MS 1
#define RETRIES 5

/* One LMDB environment per directory per process (LMDB forbids opening
 * the same environment twice in a process: closing one copy would drop
 * the other's fcntl locks). */
struct mt_env {
	struct mt_env *next;
	dev_t dev;
	ino_t ino;
	pid_t pid;
	unsigned flags;
	int refs;
	MDB_env *env;
	MDB_dbi kv, meta;
	/* Every transaction holds it shared; changing the map size (which
	 * LMDB allows only with no transaction active in the process) holds
	 * it exclusively. */
	pthread_rwlock_t lock;
};

struct mt_store {
	struct mt_etcd *etcd; /* an etcd:// store: everything else is unused */
	struct mt_env *e;
	unsigned flags;
	char *dir;
	char *changed_path;
	pthread_mutex_t watch_lock;
	int watch_fd;
};

static pthread_mutex_t envs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mt_env *envs;

__attribute__((format(printf, 3, 4))) static int seterr(char *err, size_t len,
						       const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return 0;
}

/* The one adapter from LMDB's return codes to -errno. */
static int mdb_errno(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
		return -ENOSPC;
	case MDB_READERS_FULL:
	case MDB_TLS_FULL:
		return -EBUSY;
	case MDB_TXN_FULL:
	case MDB_BAD_VALSIZE:
		return -E2BIG;
	case MDB_MAP_RESIZED:
		return -ESTALE;
	case MDB_DBS_FULL:
		return -EMFILE;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
	case MDB_PANIC:
	case MDB_INCOMPATIBLE:
	case MDB_BAD_RSLOT:
	case MDB_BAD_TXN:
	case MDB_BAD_DBI:
		return -EBADMSG;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

static void put_le64(void *p, uint64_t v)
{
	uint8_t *b = p;

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const void *p)
{
	const uint8_t *b = p;
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static int check_key(const char *key, MDB_val *k)
{
	size_t len = key ? strlen(key) : 0;

	if (!len || len > MT_STORE_KEY_MAX)
		return -EINVAL;
	k->mv_data = (void *)key;
	k->mv_size = len;
	return 0;
}

/* ---- transactions, with map resizing ---- */

/* Adopts a map size another process set (MDB_MAP_RESIZED). */
static int adopt_mapsize(struct mt_env *e)
{
	int rc;

	pthread_rwlock_wrlock(&e->lock);
	rc = mdb_env_set_mapsize(e->env, 0);
	pthread_rwlock_unlock(&e->lock);
	return mdb_errno(rc);
}

/* Doubles the map after MDB_MAP_FULL. -ENOSPC at MT_STORE_MAP_MAX. */
static int grow_mapsize(struct mt_env *e, size_t seen)
{
	MDB_envinfo info;
	int rc = 0;

	pthread_rwlock_wrlock(&e->lock);
	mdb_env_info(e->env, &info);
	/* Another thread may have grown it while we waited for the lock. */
	if (info.me_mapsize <= seen) {
		if (info.me_mapsize >= MT_STORE_MAP_MAX)
			rc = ENOSPC;
		else
			rc = mdb_env_set_mapsize(e->env, info.me_mapsize * 2);
		if (!rc)
			mt_debug("store: map grown to %zu MiB",
				 info.me_mapsize * 2 >> 20);
	}
	pthread_rwlock_unlock(&e->lock);
	return mdb_errno(rc);
}

static size_t mapsize(struct mt_env *e)
{
	MDB_envinfo info;

	mdb_env_info(e->env, &info);
	return info.me_mapsize;
}

/* Begins a transaction and takes e->lock shared; txn_end() releases it. */
static int txn_begin(struct mt_env *e, unsigned flags, MDB_txn **txn)
{
	for (int tries = 0;; tries++) {
		int rc, r;

		pthread_rwlock_rdlock(&e->lock);
		rc = mdb_txn_begin(e->env, NULL, flags, txn);
		if (rc == MDB_SUCCESS)
			return 0;
		pthread_rwlock_unlock(&e->lock);
		if (rc != MDB_MAP_RESIZED || tries >= 8)
			return mdb_errno(rc);
		r = adopt_mapsize(e);
		if (r)
			return r;
	}
}

static void txn_abort(struct mt_env *e, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&e->lock);
}

static int txn_commit(struct mt_env *e, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);

	pthread_rwlock_unlock(&e->lock);
	return mdb_errno(rc);
}

static int read_revision(struct mt_env *e, MDB_txn *txn, uint64_t *rev)
{
	MDB_val k = { .mv_size = strlen(REV_KEY), .mv_data = REV_KEY }, v;
	int rc = mdb_get(txn, e->meta, &k, &v);

	if (rc == MDB_NOTFOUND) {
		*rev = 0;
		return 0;
	}
	if (rc)
		return mdb_errno(rc);
	if (v.mv_size != 8)
		return -EBADMSG;
	*rev = get_le64(v.mv_data);
	return 0;
}

static int write_revision(struct mt_env *e, MDB_txn *txn, uint64_t rev)
{
	MDB_val k = { .mv_size = strlen(REV_KEY), .mv_data = REV_KEY };
	uint8_t buf[8];
	MDB_val v = { .mv_size = sizeof(buf), .mv_data = buf };

	put_le64(buf, rev);
	return mdb_errno(mdb_put(txn, e->meta, &k, &v, 0));
}

/* Rewrites "changed" after a commit: IN_CLOSE_WRITE for watchers, sent
 * after the commit is visible. Its content (the revision) is a hint for
 * people; only the event matters. */
static void touch_changed(struct mt_store *s, uint64_t rev)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%020" PRIu64 "\n", rev);
	_cleanup_close_ int fd =
		open(s->changed_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		mt_warn("store: cannot write %s (watchers rely on data.mdb "
			"events): %m",
			s->changed_path);
}

static int apply_ops(struct mt_env *e, MDB_txn *txn,
		     const struct mt_store_op *ops, size_t n, uint64_t rev)
{
	for (size_t i = 0; i < n; i++) {
		MDB_val k, v;
		int r = check_key(ops[i].key, &k), rc;

		if (r)
			return r;
		switch (ops[i].type) {
		case MT_STORE_OP_PUT:
			if (ops[i].len > SIZE_MAX - HDR_LEN ||
			    (ops[i].len && !ops[i].val))
				return -EINVAL;
			v.mv_size = HDR_LEN + ops[i].len;
			rc = mdb_put(txn, e->kv, &k, &v, MDB_RESERVE);
			if (rc)
				return mdb_errno(rc);
			put_le64(v.mv_data, rev);
			if (ops[i].len)
				memcpy((char *)v.mv_data + HDR_LEN, ops[i].val,
				       ops[i].len);
			break;
		case MT_STORE_OP_DELETE:
			rc = mdb_del(txn, e->kv, &k, NULL);
			if (rc)
				return mdb_errno(rc);
			break;
		default:
			return -EINVAL;
		}
	}
	return 0;
}

int mt_store_txn(struct mt_store *s, const struct mt_store_op *ops, size_t n,
		 uint64_t expect_rev, uint64_t *rev_out)
{
	struct mt_env *e = s->e;

	if (s->etcd)
		return mt_etcd_txn(s->etcd, ops, n, expect_rev, rev_out);
	if (s->flags & MT_STORE_READONLY)
		return -EROFS;
	if (n && !ops)
		return -EINVAL;
	/* Each attempt after MDB_MAP_FULL runs with a doubled map. */
	for (;;) {
		size_t seen = mapsize(e);
		uint64_t rev;
		MDB_txn *txn;
		int r = txn_begin(e, 0, &txn);

		if (r)
			return r;
		r = read_revision(e, txn, &rev);
		if (!r && expect_rev && rev != expect_rev)
			r = -EAGAIN;
		if (r || !n) {
			txn_abort(e, txn);
			if (!r && rev_out)
				*rev_out = rev;
			return r;
		}
		r = apply_ops(e, txn, ops, n, rev + 1);
		if (!r)
			r = write_revision(e, txn, rev + 1);
		if (r)
			txn_abort(e, txn);
		else
			r = txn_commit(e, txn);
		if (r == -ENOSPC) {
			r = grow_mapsize(e, seen);
			if (r)
				return r;
			continue;
		}
		if (r)
			return r;
		touch_changed(s, rev + 1);
		if (rev_out)
			*rev_out = rev + 1;
		return 0;
	}
}

int mt_store_put(struct mt_store *s, const char *key, const void *val,
		 size_t len, uint64_t *rev_out)
{
	struct mt_store_op op = {
		.type = MT_STORE_OP_PUT, .key = key, .val = val, .len = len
	};

	return mt_store_txn(s, &op, 1, 0, rev_out);
}

int mt_store_delete(struct mt_store *s, const char *key, uint64_t *rev_out)
{
	struct mt_store_op op = { .type = MT_STORE_OP_DELETE, .key = key };

	return mt_store_txn(s, &op, 1, 0, rev_out);
}

/* ---- reads ---- */

int mt_store_revision(struct mt_store *s, uint64_t *rev)
{
	MDB_txn *txn;
	int r;

	if (s->etcd)
		return mt_etcd_revision(s->etcd, rev);
	r = txn_begin(s->e, MDB_RDONLY, &txn);
	if (r)
		return r;
	r = read_revision(s->e, txn, rev);
	txn_abort(s->e, txn);
	return r;
}

static int copy_value(const MDB_val *v, void **val, size_t *len,
		      uint64_t *mod_rev)
{
	size_t n;

	if (v->mv_size < HDR_LEN)
		return -EBADMSG;
	n = v->mv_size - HDR_LEN;
	if (mod_rev)
		*mod_rev = get_le64(v->mv_data);
	if (len)
		*len = n;
	if (val) {
		/* one spare NUL byte: text values can be used as strings */
		char *copy = malloc(n + 1);

		if (!copy)
			return -ENOMEM;
		memcpy(copy, (const char *)v->mv_data + HDR_LEN, n);
		copy[n] = '\0';
		*val = copy;
	}
	return 0;
}

int mt_store_get(struct mt_store *s, const char *key, void **val, size_t *len,
		 uint64_t *mod_rev)
{
	MDB_txn *txn;
	MDB_val k, v;
	int r;

	if (s->etcd)
		return mt_etcd_get(s->etcd, key, val, len, mod_rev);
	r = check_key(key, &k);
	if (r)
		return r;
	r = txn_begin(s->e, MDB_RDONLY, &txn);
	if (r)
		return r;
	r = mdb_errno(mdb_get(txn, s->e->kv, &k, &v));
	if (!r)
		r = copy_value(&v, val, len, mod_rev);
	txn_abort(s->e, txn);
	return r;
}

void mt_store_kvs_free(struct mt_store_kv *kvs, size_t n)
{
	if (!kvs)
		return;
	for (size_t i = 0; i < n; i++) {
		free(kvs[i].key);
		free(kvs[i].val);
	}
	free(kvs);
}

int mt_store_range(struct mt_store *s, const char *prefix,
		   struct mt_store_kv **kvs, size_t *n, uint64_t *rev)
{
	return mt_store_range_since(s, prefix, 0, kvs, n, rev);
}

int mt_store_range_since(struct mt_store *s, const char *prefix,
			 uint64_t after_rev, struct mt_store_kv **kvs,
			 size_t *n, uint64_t *rev)
{
	size_t plen = prefix ? strlen(prefix) : 0, cnt = 0, cap = 0;
	struct mt_store_kv *out = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k = { .mv_size = plen, .mv_data = (void *)prefix }, v;
	MDB_txn *txn;
	uint64_t snap_rev;
	int r, rc;

	if (s->etcd)
		return mt_etcd_range_since(s->etcd, prefix, after_rev, kvs, n,
					   rev);
	*kvs = NULL;
	*n = 0;
	if (plen > MT_STORE_KEY_MAX)
		return -EINVAL;
	r = txn_begin(s->e, MDB_RDONLY, &txn);
	if (r)
		return r;
	r = read_revision(s->e, txn, &snap_rev);
	if (r)
		goto out;
	r = mdb_errno(mdb_cursor_open(txn, s->e->kv, &cur));
	if (r)
		goto out;
	rc = mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
	for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct mt_store_kv *kv;

		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen))
			break;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct mt_store_kv *grown =
				realloc(out, ncap * sizeof(*out));

			if (!grown) {
				r = -ENOMEM;
				goto out;
			}
			out = grown;
			cap = ncap;
		}
		kv = &out[cnt];
		*kv = (struct mt_store_kv){ 0 };
		kv->key = strndup(k.mv_data, k.mv_size);
		if (!kv->key) {
			r = -ENOMEM;
			goto out;
		}
		cnt++;
		r = copy_value(&v, NULL, &kv->len, &kv->mod_rev);
		if (r == 0 && kv->mod_rev > after_rev)
			r = copy_value(&v, &kv->val, NULL, NULL);
		if (r)
			goto out;
	}
	if (rc != MDB_NOTFOUND && rc != MDB_SUCCESS)
		r = mdb_errno(rc);
out:
	if (cur)
		mdb_cursor_close(cur);
	txn_abort(s->e, txn);
	if (r) {
		mt_store_kvs_free(out, cnt);
		return r;
	}
	if (!cnt) {
		free(out);
		out = NULL;
	}
	*kvs = out;
	*n = cnt;
	if (rev)
		*rev = snap_rev;
	return 0;
}

/* ---- open / close ---- */

static int mkdir_p(const char *path, char *err, size_t errlen)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *c = p + 1;; c++) {
		if (*c == '/' || !*c) {
			char save = *c;

			*c = '\0';
			if (mkdir(p, 0700) && errno != EEXIST) {
				int r = -errno;

				seterr(err, errlen, "cannot create %s: %s", p,
				       strerror(-r));
				return r;
			}
			*c = save;
			if (!save)
				break;
		}
	}
	return 0;
}

static int env_open(const char *dir, unsigned flags, struct mt_env *e,
		    char *err, size_t errlen)
{
	unsigned mflags = MDB_NOTLS, dflags = 0;
	MDB_txn *txn;
	int r, rc, dead = 0;

	if (flags & MT_STORE_READONLY)
		mflags |= MDB_RDONLY;
	rc = mdb_env_create(&e->env);
	if (rc)
		return mdb_errno(rc);
	mdb_env_set_maxdbs(e->env, 4);
	/* No mapsize before open: the one recorded in the environment (maybe
	 * grown by another process) is used; only raise it to our minimum. */
	rc = mdb_env_open(e->env, dir, mflags, 0600);
	if (rc) {
		r = mdb_errno(rc);
		seterr(err, errlen, "cannot open LMDB store %s: %s", dir,
		       mdb_strerror(rc));
		goto fail;
	}
	if (!(flags & MT_STORE_READONLY) && mapsize(e) < MT_STORE_MAP_MIN)
		mdb_env_set_mapsize(e->env, MT_STORE_MAP_MIN);
	/* Reader slots of processes that died inside a read txn pin old
	 * pages (the map would only grow): release them. */
	if (!mdb_reader_check(e->env, &dead) && dead)
		mt_info("store %s: cleared %d stale reader slot(s)", dir, dead);
	if (!(flags & MT_STORE_READONLY))
		dflags = MDB_CREATE;

	r = txn_begin(e, flags & MT_STORE_READONLY ? MDB_RDONLY : 0, &txn);
	if (r) {
		seterr(err, errlen, "cannot open LMDB store %s: %s", dir,
		       strerror(-r));
		goto fail;
	}
	rc = mdb_dbi_open(txn, "kv", dflags, &e->kv);
	if (!rc)
		rc = mdb_dbi_open(txn, "meta", dflags, &e->meta);
	if (rc) {
		txn_abort(e, txn);
		r = mdb_errno(rc);
		seterr(err, errlen, "store %s: %s", dir,
		       rc == MDB_NOTFOUND ? "not an mt store (no kv/meta databases)"
					  : mdb_strerror(rc));
		goto fail;
	}
	r = txn_commit(e, txn);
	if (r) {
		seterr(err, errlen, "store %s: %s", dir, strerror(-r));
		goto fail;
	}
	return 0;
fail:
	mdb_env_close(e->env);
	e->env = NULL;
	return r;
}

/* "lmdb:/dir", "lmdb:///dir", "lmdb:dir" or a plain path -> the path. */
static int url_path(const char *url, const char **path, char *err,
		    size_t errlen)
{
	const char *colon = strstr(url, "://");

	if (!strncmp(url, "lmdb://", 7)) {
		*path = url + 7;
	} else if (!strncmp(url, "lmdb:", 5)) {
		*path = url + 5;
	} else if (colon && strspn(url, "abcdefghijklmnopqrstuvwxyz0123456789+.-") ==
				    (size_t)(colon - url)) {
		seterr(err, errlen,
		       "store url %s: unsupported scheme (expected lmdb:/path "
		       "or etcd://host:port/prefix)",
		       url);
		return -EPROTONOSUPPORT;
	} else {
		*path = url;
	}
	if (!**path) {
		seterr(err, errlen, "store url %s: empty path", url);
		return -EINVAL;
	}
	return 0;
}

int mt_store_open(const char *url, unsigned flags, struct mt_store **out,
		  char *err, size_t errlen)
{
	_cleanup_free_ struct mt_store *s = NULL;
	struct mt_env *e;
	const char *path;
	struct stat st;
	int r;

	*out = NULL;
	seterr(err, errlen, "%s", "");
	if (url && !strncmp(url, "etcd://", 7)) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -ENOMEM;
		s->flags = flags;
		s->watch_fd = -1;
		r = mt_etcd_open(url, flags, &s->etcd, err, errlen);
		if (r < 0)
			return r;
		*out = MT_TAKE_PTR(s);
		return 0;
	}
	r = url_path(url ? url : "", &path, err, errlen);
	if (r)
		return r;
	if (!(flags & MT_STORE_READONLY)) {
		r = mkdir_p(path, err, errlen);
		if (r)
			return r;
	}
	if (stat(path, &st)) {
		r = -errno;
		seterr(err, errlen, "store %s: %s", path, strerror(errno));
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		seterr(err, errlen, "store %s: not a directory", path);
		return -ENOTDIR;
	}

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->flags = flags;
	s->watch_fd = -1;
	pthread_mutex_init(&s->watch_lock, NULL);
	s->dir = realpath(path, NULL);
	if (!s->dir || asprintf(&s->changed_path, "%s/" CHANGED_FILE,
				s->dir) < 0) {
		free(s->dir);
		return -ENOMEM;
	}

	pthread_mutex_lock(&envs_lock);
	for (e = envs; e; e = e->next)
		if (e->dev == st.st_dev && e->ino == st.st_ino &&
		    e->pid == getpid())
			break;
	if (e && (e->flags & MT_STORE_READONLY) &&
	    !(flags & MT_STORE_READONLY)) {
		seterr(err, errlen,
		       "store %s is already open read-only in this process",
		       s->dir);
		r = -EBUSY;
		goto fail_unlock;
	}
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e) {
			r = -ENOMEM;
			goto fail_unlock;
		}
		pthread_rwlock_init(&e->lock, NULL);
		r = env_open(s->dir, flags, e, err, errlen);
		if (r) {
			pthread_rwlock_destroy(&e->lock);
			free(e);
			goto fail_unlock;
		}
		e->dev = st.st_dev;
		e->ino = st.st_ino;
		e->pid = getpid();
		e->flags = flags;
		e->next = envs;
		envs = e;
	}
	e->refs++;
	pthread_mutex_unlock(&envs_lock);
	s->e = e;
	*out = MT_TAKE_PTR(s);
	return 0;

fail_unlock:
	pthread_mutex_unlock(&envs_lock);
	free(s->dir);
	free(s->changed_path);
	return r;
}

void mt_store_close(struct mt_store *s)
{
	struct mt_env **pp;

	if (!s)
		return;
	if (s->etcd) {
		mt_etcd_close(s->etcd);
		free(s);
		return;
	}
	if (s->watch_fd >= 0)
		close(s->watch_fd);
	pthread_mutex_lock(&envs_lock);
	if (--s->e->refs == 0) {
		for (pp = &envs; *pp; pp = &(*pp)->next)
			if (*pp == s->e) {
				*pp = s->e->next;
				break;
			}
		/* An environment inherited across fork() belongs to the
		 * parent: leave LMDB's state alone. */
		if (s->e->pid == getpid())
			mdb_env_close(s->e->env);
		pthread_rwlock_destroy(&s->e->lock);
		free(s->e);
	}
	pthread_mutex_unlock(&envs_lock);
	pthread_mutex_destroy(&s->watch_lock);
	free(s->dir);
	free(s->changed_path);
	free(s);
}

const char *mt_store_path(const struct mt_store *s)
{
	return s->etcd ? mt_etcd_url(s->etcd) : s->dir;
}

const char *mt_store_last_error(const struct mt_store *s)
{
	return s->etcd ? mt_etcd_last_error(s->etcd) : "";
}

/* ---- change notification ---- */

int mt_store_watch_open_at(struct mt_store *s, uint64_t after_rev)
{
	if (s->etcd)
		return mt_etcd_watch_open(s->etcd, after_rev);
	return mt_store_watch_open(s);
}

int mt_store_watch_open(struct mt_store *s)
{
	int fd, r;

	if (s->etcd)
		return mt_etcd_watch_open(s->etcd, 0);
	pthread_mutex_lock(&s->watch_lock);
	if (s->watch_fd >= 0) {
		fd = s->watch_fd;
		goto out;
	}
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0) {
		fd = mt_neg_errno();
		goto out;
	}
	/* The directory, not the files: "changed" may not exist yet, and
	 * a restored data.mdb is a new inode. */
	if (inotify_add_watch(fd, s->dir,
			      IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO |
				      IN_CREATE | IN_DELETE_SELF |
				      IN_MOVE_SELF) < 0) {
		r = mt_neg_errno();
		close(fd);
		fd = r;
		goto out;
	}
	s->watch_fd = fd;
out:
	pthread_mutex_unlock(&s->watch_lock);
	return fd;
}

int mt_store_watch_drain(struct mt_store *s)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	if (s->etcd)
		return mt_etcd_watch_drain(s->etcd);
	if (s->watch_fd < 0)
		return -EBADF;
	for (;;) {
		ssize_t n = read(s->watch_fd, buf, sizeof(buf));

		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		return n < 0 ? -errno : 0;
	}
}

int mt_store_wait_revision(struct mt_store *s, uint64_t after,
			   unsigned timeout_ms, uint64_t *rev)
{
	uint64_t deadline = mt_monotonic_ms() + timeout_ms, cur = 0;
	int fd, retries = 0;

	if (s->etcd)
		return mt_etcd_wait_revision(s->etcd, after, timeout_ms, rev);
	fd = mt_store_watch_open(s);
	if (fd < 0)
		return fd;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now;
		int r, wait, n;

		/* Drain before reading: an event for a later commit stays
		 * queued and ends the next poll at once. */
		r = mt_store_watch_drain(s);
		if (!r)
			r = mt_store_revision(s, &cur);
		if (rev)
			*rev = cur;
		if (r)
			return r;
		if (cur > after)
			return 0;
		now = mt_monotonic_ms();
		if (now >= deadline)
			return -ETIMEDOUT;
		wait = deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
		if (retries > 0 && wait > RETRY_MS) {
			wait = RETRY_MS;
			retries--;
		}
		n = poll(&pfd, 1, wait);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			retries = RETRIES;
	}
}

/* ---- the customer schema ---- */

char *mt_store_customer_key(uint32_t id, char *buf, size_t len)
{
	snprintf(buf, len, MT_STORE_CUSTOMERS_PREFIX "%" PRIu32, id);
	return buf;
}

int mt_store_customer_key_parse(const char *key, uint32_t *id)
{
	const size_t plen = strlen(MT_STORE_CUSTOMERS_PREFIX);
	const char *d;
	uint64_t v = 0;

	if (!key || strncmp(key, MT_STORE_CUSTOMERS_PREFIX, plen))
		return -EINVAL;
	d = key + plen;
	if (*d < '1' || *d > '9' || strlen(d) > 10 ||
	    strspn(d, "0123456789") != strlen(d))
		return -EINVAL;
	for (; *d; d++)
		v = v * 10 + (uint64_t)(*d - '0');
	if (v > UINT32_MAX)
		return -EINVAL;
	*id = (uint32_t)v;
	return 0;
}

int mt_store_put_customer(struct mt_store *s, const Mt__Config__Customer *c,
			  uint64_t *rev)
{
	_cleanup_free_ uint8_t *buf = NULL;
	char key[32];
	size_t len;

	if (!c || !c->id)
		return -EINVAL;
	len = protobuf_c_message_get_packed_size(&c->base);
	buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	protobuf_c_message_pack(&c->base, buf);
	return mt_store_put(s, mt_store_customer_key(c->id, key, sizeof(key)),
			    buf, len, rev);
}

int mt_store_delete_customer(struct mt_store *s, uint32_t id, uint64_t *rev)
{
	char key[32];

	if (!id)
		return -EINVAL;
	return mt_store_delete(s, mt_store_customer_key(id, key, sizeof(key)),
			       rev);
}
