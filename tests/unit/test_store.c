/* The LMDB store in a throwaway directory: reads and writes, revisions,
 * compare-and-swap, persistence, a second process writing while this one
 * watches, and map growth. */
#include "mt_store.h"
#include "mt_test.h"
#include "mt_time.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[64];

static char *store_dir(const char *name)
{
	static char buf[128];

	snprintf(buf, sizeof(buf), "%s/%s", tmpdir, name);
	return buf;
}

static struct mt_store *open_ok(const char *url, unsigned flags)
{
	struct mt_store *s = NULL;
	char err[256] = "";

	CHECK(mt_store_open(url, flags, &s, err, sizeof(err)) == 0);
	if (!s)
		fprintf(stderr, "open %s: %s\n", url, err);
	return s;
}

static uint64_t revision(struct mt_store *s)
{
	uint64_t rev = UINT64_MAX;

	CHECK(mt_store_revision(s, &rev) == 0);
	return rev;
}

static void check_value(struct mt_store *s, const char *key, const char *want,
			uint64_t want_rev)
{
	void *val = NULL;
	size_t len = 0;
	uint64_t mod = 0;

	CHECK(mt_store_get(s, key, &val, &len, &mod) == 0);
	CHECK(len == strlen(want) && val && memcmp(val, want, len) == 0);
	CHECK(mod == want_rev);
	if (mod != want_rev)
		fprintf(stderr, "%s: mod_rev %" PRIu64 ", want %" PRIu64 "\n",
			key, mod, want_rev);
	free(val);
}

static void test_basic(void)
{
	struct mt_store *s = open_ok(store_dir("a/b/basic"), 0);
	char big[MT_STORE_KEY_MAX + 2];
	uint64_t rev = 0;
	void *val;
	struct stat st;

	if (!s)
		return;
	CHECK(stat(store_dir("a/b/basic"), &st) == 0 &&
	      (st.st_mode & 0777) == 0700);
	CHECK(revision(s) == 0);
	CHECK(mt_store_get(s, "a", &val, NULL, NULL) == -ENOENT);

	CHECK(mt_store_put(s, "a", "one", 3, &rev) == 0 && rev == 1);
	CHECK(mt_store_put(s, "b", "two", 3, &rev) == 0 && rev == 2);
	CHECK(mt_store_put(s, "a", "three", 5, &rev) == 0 && rev == 3);
	check_value(s, "a", "three", 3);
	check_value(s, "b", "two", 2);
	/* an empty value is a value */
	CHECK(mt_store_put(s, "empty", NULL, 0, &rev) == 0 && rev == 4);
	check_value(s, "empty", "", 4);

	CHECK(mt_store_delete(s, "b", &rev) == 0 && rev == 5);
	CHECK(mt_store_get(s, "b", &val, NULL, NULL) == -ENOENT);
	CHECK(mt_store_delete(s, "b", &rev) == -ENOENT);
	CHECK(revision(s) == 5);

	/* keys: 1..400 bytes */
	CHECK(mt_store_put(s, "", "x", 1, NULL) == -EINVAL);
	CHECK(mt_store_put(s, NULL, "x", 1, NULL) == -EINVAL);
	memset(big, 'k', sizeof(big));
	big[MT_STORE_KEY_MAX + 1] = '\0';
	CHECK(mt_store_put(s, big, "x", 1, NULL) == -EINVAL);
	CHECK(mt_store_get(s, big, &val, NULL, NULL) == -EINVAL);
	big[MT_STORE_KEY_MAX] = '\0';
	CHECK(mt_store_put(s, big, "x", 1, &rev) == 0 && rev == 6);
	check_value(s, big, "x", 6);
	CHECK(revision(s) == 6);
	mt_store_close(s);
	mt_store_close(NULL);
}

static void test_range(void)
{
	struct mt_store *s = open_ok(store_dir("range"), 0);
	struct mt_store_kv *kvs;
	size_t n;
	uint64_t rev;

	if (!s)
		return;
	mt_store_put(s, "customers/2", "c2", 2, NULL);
	mt_store_put(s, "customers/10", "c10", 3, NULL);
	mt_store_put(s, "customers/1", "c1", 2, NULL);
	mt_store_put(s, "customersX", "no", 2, NULL);
	mt_store_put(s, "other/x", "ox", 2, NULL);
	mt_store_put(s, "customers/2", "c2b", 3, NULL);

	CHECK(mt_store_range(s, "customers/", &kvs, &n, &rev) == 0);
	CHECK(rev == 6 && n == 3);
	if (n == 3) {
		CHECK_STR(kvs[0].key, "customers/1");
		CHECK(kvs[0].mod_rev == 3 && kvs[0].len == 2 &&
		      !memcmp(kvs[0].val, "c1", 2));
		CHECK_STR(kvs[1].key, "customers/10");
		CHECK(kvs[1].mod_rev == 2);
		CHECK_STR(kvs[2].key, "customers/2");
		CHECK(kvs[2].mod_rev == 6 && kvs[2].len == 3 &&
		      !memcmp(kvs[2].val, "c2b", 3));
	}
	mt_store_kvs_free(kvs, n);

	CHECK(mt_store_range(s, "", &kvs, &n, NULL) == 0 && n == 5);
	if (n == 5) {
		CHECK_STR(kvs[3].key, "customersX");
		CHECK_STR(kvs[4].key, "other/x");
	}
	mt_store_kvs_free(kvs, n);
	CHECK(mt_store_range(s, "zzz", &kvs, &n, &rev) == 0);
	CHECK(n == 0 && kvs == NULL && rev == 6);
	CHECK(mt_store_range(s, "other/x", &kvs, &n, NULL) == 0 && n == 1);
	mt_store_kvs_free(kvs, n);
	/* values only of what was written after revision 3 */
	CHECK(mt_store_range_since(s, "customers/", 3, &kvs, &n, &rev) == 0);
	CHECK(rev == 6 && n == 3);
	if (n == 3) {
		CHECK(kvs[0].val == NULL && kvs[0].len == 2 &&
		      kvs[0].mod_rev == 3);
		CHECK(kvs[1].val == NULL && kvs[1].len == 3 &&
		      kvs[1].mod_rev == 2);
		CHECK(kvs[2].val && kvs[2].len == 3 &&
		      !memcmp(kvs[2].val, "c2b", 3));
	}
	mt_store_kvs_free(kvs, n);
	mt_store_close(s);
}

static void test_txn(void)
{
	struct mt_store *s = open_ok(store_dir("txn"), 0);
	struct mt_store_op ops[] = {
		{ MT_STORE_OP_PUT, "x", "1", 1 },
		{ MT_STORE_OP_PUT, "y", "2", 1 },
		{ MT_STORE_OP_DELETE, "a", NULL, 0 },
		{ MT_STORE_OP_PUT, "x", "3", 1 }, /* later ops win */
	};
	struct mt_store_op bad[] = {
		{ MT_STORE_OP_PUT, "z", "9", 1 },
		{ MT_STORE_OP_DELETE, "nope", NULL, 0 },
	};
	struct mt_store_op badkey[] = {
		{ MT_STORE_OP_PUT, "z", "9", 1 },
		{ MT_STORE_OP_PUT, "", "9", 1 },
	};
	uint64_t rev = 0;
	void *val;

	if (!s)
		return;
	CHECK(mt_store_put(s, "a", "A", 1, &rev) == 0 && rev == 1);
	CHECK(mt_store_txn(s, ops, 4, 0, &rev) == 0 && rev == 2);
	CHECK(revision(s) == 2);
	check_value(s, "x", "3", 2);
	check_value(s, "y", "2", 2);
	CHECK(mt_store_get(s, "a", &val, NULL, NULL) == -ENOENT);

	/* compare-and-swap */
	CHECK(mt_store_txn(s, ops, 2, 1, &rev) == -EAGAIN);
	CHECK(revision(s) == 2);
	CHECK(mt_store_txn(s, ops, 2, 2, &rev) == 0 && rev == 3);
	check_value(s, "x", "1", 3);
	CHECK(mt_store_txn(s, ops, 2, 2, &rev) == -EAGAIN);

	/* all or nothing */
	CHECK(mt_store_txn(s, bad, 2, 0, &rev) == -ENOENT);
	CHECK(mt_store_txn(s, badkey, 2, 0, &rev) == -EINVAL);
	CHECK(mt_store_get(s, "z", &val, NULL, NULL) == -ENOENT);
	CHECK(revision(s) == 3);

	/* no ops: the revision, after the check */
	rev = 0;
	CHECK(mt_store_txn(s, NULL, 0, 0, &rev) == 0 && rev == 3);
	CHECK(mt_store_txn(s, NULL, 0, 2, &rev) == -EAGAIN);
	CHECK(revision(s) == 3);
	mt_store_close(s);
}

static void test_reopen(void)
{
	char url[160], err[256] = "";
	struct mt_store *s, *s2, *ro;
	uint64_t rev;

	snprintf(url, sizeof(url), "lmdb:%s", store_dir("reopen"));
	s = open_ok(url, 0);
	if (!s)
		return;
	mt_store_put(s, "k", "v1", 2, NULL);
	mt_store_put(s, "k", "v2", 2, NULL);
	mt_store_put(s, "j", "w", 1, NULL);
	mt_store_close(s);

	s = open_ok(store_dir("reopen"), 0);
	if (!s)
		return;
	CHECK(revision(s) == 3);
	check_value(s, "k", "v2", 2);
	check_value(s, "j", "w", 3);

	/* a second handle in the same process shares the environment */
	snprintf(url, sizeof(url), "lmdb://%s", store_dir("reopen"));
	s2 = open_ok(url, 0);
	ro = open_ok(store_dir("reopen"), MT_STORE_READONLY);
	if (s2 && ro) {
		CHECK(mt_store_put(s2, "k", "v3", 2, &rev) == 0 && rev == 4);
		mt_store_close(s2);
		check_value(s, "k", "v3", 4);
		check_value(ro, "k", "v3", 4);
		CHECK(mt_store_put(ro, "k", "x", 1, NULL) == -EROFS);
		CHECK(mt_store_delete(ro, "k", NULL) == -EROFS);
		CHECK_STR(mt_store_path(ro), mt_store_path(s));
	}
	mt_store_close(ro);
	mt_store_close(s);

	/* read-only alone, after every writer closed */
	ro = open_ok(store_dir("reopen"), MT_STORE_READONLY);
	if (ro) {
		CHECK(revision(ro) == 4);
		mt_store_close(ro);
	}

	CHECK(mt_store_open(store_dir("missing"), MT_STORE_READONLY, &s, err,
			    sizeof(err)) == -ENOENT);
	CHECK(s == NULL);
	CHECK_CONTAINS(err, "missing");
	CHECK(mt_store_open("zk://127.0.0.1:2181", 0, &s, err, sizeof(err)) ==
	      -EPROTONOSUPPORT);
	CHECK_CONTAINS(err, "unsupported scheme");
	CHECK(mt_store_open("lmdb:", 0, &s, err, sizeof(err)) == -EINVAL);
	CHECK(mt_store_open("/dev/null", 0, &s, err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "/dev/null");
}

static void test_customers(void)
{
	struct mt_store *s = open_ok(store_dir("customers"), 0);
	Mt__Config__Customer c = MT__CONFIG__CUSTOMER__INIT, *back;
	char *prefixes[] = { "203.0.113.0/24" };
	uint64_t rev, mod;
	char key[32];
	uint32_t id;
	void *val;
	size_t len;

	CHECK_STR(mt_store_customer_key(7, key, sizeof(key)), "customers/7");
	CHECK(mt_store_customer_key_parse("customers/7", &id) == 0 && id == 7);
	CHECK(mt_store_customer_key_parse("customers/4294967295", &id) == 0 &&
	      id == UINT32_MAX);
	CHECK(mt_store_customer_key_parse("customers/4294967296", &id) == -EINVAL);
	CHECK(mt_store_customer_key_parse("customers/07", &id) == -EINVAL);
	CHECK(mt_store_customer_key_parse("customers/0", &id) == -EINVAL);
	CHECK(mt_store_customer_key_parse("customers/", &id) == -EINVAL);
	CHECK(mt_store_customer_key_parse("customers/7x", &id) == -EINVAL);
	CHECK(mt_store_customer_key_parse("customers/+7", &id) == -EINVAL);
	CHECK(mt_store_customer_key_parse("metal/7", &id) == -EINVAL);
	if (!s)
		return;

	c.id = 7;
	c.name = "acme";
	c.n_prefixes = 1;
	c.prefixes = prefixes;
	CHECK(mt_store_put_customer(s, &c, &rev) == 0 && rev == 1);
	CHECK(mt_store_get(s, "customers/7", &val, &len, &mod) == 0);
	CHECK(mod == 1);
	back = mt__config__customer__unpack(NULL, len, val);
	CHECK(back && back->id == 7 && !strcmp(back->name, "acme") &&
	      back->n_prefixes == 1);
	if (back)
		mt__config__customer__free_unpacked(back, NULL);
	free(val);

	/* a value that does not decode is only that customer's problem */
	CHECK(mt_store_put(s, "customers/8", "\xff\xff\xff", 3, &rev) == 0);
	CHECK(rev == 2);
	{
		struct mt_store_kv *kvs;
		size_t n;
		int good = 0, bad = 0;

		CHECK(mt_store_range(s, MT_STORE_CUSTOMERS_PREFIX, &kvs, &n,
				     &rev) == 0);
		CHECK(n == 2 && rev == 2);
		for (size_t i = 0; i < n; i++) {
			back = mt__config__customer__unpack(NULL, kvs[i].len,
							    kvs[i].val);
			CHECK(mt_store_customer_key_parse(kvs[i].key, &id) == 0);
			if (back) {
				good += id == 7;
				mt__config__customer__free_unpacked(back, NULL);
			} else {
				bad += id == 8;
			}
		}
		CHECK(good == 1 && bad == 1);
		mt_store_kvs_free(kvs, n);
	}
	CHECK(mt_store_delete(s, "customers/8", &rev) == 0 && rev == 3);

	c.id = 0;
	CHECK(mt_store_put_customer(s, &c, &rev) == -EINVAL);
	CHECK(mt_store_delete_customer(s, 7, &rev) == 0 && rev == 4);
	CHECK(mt_store_delete_customer(s, 7, &rev) == -ENOENT);
	CHECK(mt_store_delete_customer(s, 0, &rev) == -EINVAL);
	mt_store_close(s);
}

static void test_wait_timeout(void)
{
	struct mt_store *s = open_ok(store_dir("timeout"), 0);
	uint64_t t0, rev = 99;
	int fd;

	if (!s)
		return;
	fd = mt_store_watch_open(s);
	CHECK(fd >= 0);
	CHECK(mt_store_watch_open(s) == fd);
	t0 = mt_monotonic_ms();
	CHECK(mt_store_wait_revision(s, 0, 50, &rev) == -ETIMEDOUT);
	CHECK(rev == 0);
	CHECK(mt_monotonic_ms() - t0 >= 50 && mt_monotonic_ms() - t0 < 1000);
	/* a write in this process wakes its own watch too */
	mt_store_put(s, "k", "v", 1, NULL);
	CHECK(poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, 0) == 1);
	CHECK(mt_store_watch_drain(s) == 0);
	CHECK(poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, 0) == 0);
	CHECK(mt_store_wait_revision(s, 0, 0, &rev) == 0 && rev == 1);
	mt_store_close(s);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#define ROUNDS 20
#define BIG_VALUES 40
#define BIG_LEN (1u << 20)

/* The child: its own handle (opened after fork), one put per "go" byte,
 * then many 1 MiB values so the map grows past the parent's mapping. */
static int child_main(int go_fd, int ready_fd)
{
	struct mt_store *s = NULL;
	char err[256], c, key[32];
	char *big;
	int fails = 0;

	if (mt_store_open(store_dir("shared"), 0, &s, err, sizeof(err))) {
		fprintf(stderr, "child: %s\n", err);
		return 100;
	}
	if (write(ready_fd, "r", 1) != 1)
		return 101;
	for (int i = 0; i < ROUNDS; i++) {
		if (read(go_fd, &c, 1) != 1)
			return 102;
		snprintf(key, sizeof(key), "round/%d", i);
		fails += mt_store_put(s, key, "x", 1, NULL) != 0;
	}
	if (read(go_fd, &c, 1) != 1)
		return 103;
	big = malloc(BIG_LEN);
	for (int i = 0; big && i < BIG_VALUES; i++) {
		memset(big, 'a' + i % 26, BIG_LEN);
		snprintf(key, sizeof(key), "big/%02d", i);
		fails += mt_store_put(s, key, big, BIG_LEN, NULL) != 0;
	}
	free(big);
	mt_store_close(s);
	return fails;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void test_two_processes(void)
{
	int go[2], ready[2], status = -1, fd;
	double wake[ROUNDS], visible[ROUNDS];
	struct mt_store *s;
	struct mt_store_kv *kvs;
	uint64_t rev;
	size_t n;
	pid_t pid;
	char c;

	CHECK(pipe(go) == 0 && pipe(ready) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(go[1]);
		close(ready[0]);
		_exit(child_main(go[0], ready[1]));
	}
	close(go[0]);
	close(ready[1]);
	s = open_ok(store_dir("shared"), 0);
	CHECK(read(ready[0], &c, 1) == 1);
	if (!s)
		goto out;
	fd = mt_store_watch_open(s);
	CHECK(fd >= 0);
	for (int i = 0; i < ROUNDS; i++) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		double t0;

		mt_store_watch_drain(s);
		rev = revision(s);
		t0 = now_ms();
		CHECK(write(go[1], "g", 1) == 1);
		CHECK(poll(&pfd, 1, 2000) == 1);
		wake[i] = now_ms() - t0;
		CHECK(mt_store_wait_revision(s, rev, 2000, &rev) == 0);
		visible[i] = now_ms() - t0;
		CHECK(rev == (uint64_t)i + 1);
	}
	qsort(wake, ROUNDS, sizeof(double), cmp_double);
	qsort(visible, ROUNDS, sizeof(double), cmp_double);
	fprintf(stderr,
		"child write -> parent watch fd readable: min %.3f median %.3f "
		"max %.3f ms; -> new revision read: min %.3f median %.3f "
		"max %.3f ms (%d rounds, includes the child's commit + fsync)\n",
		wake[0], wake[ROUNDS / 2], wake[ROUNDS - 1], visible[0],
		visible[ROUNDS / 2], visible[ROUNDS - 1], ROUNDS);
	CHECK(visible[ROUNDS / 2] < 500);

	/* The child grows the map well past this handle's mapping; reads
	 * here must adopt the new size (MDB_MAP_RESIZED). */
	CHECK(write(go[1], "g", 1) == 1);
	CHECK(waitpid(pid, &status, 0) == pid);
	pid = 0;
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(revision(s) == ROUNDS + BIG_VALUES);
	CHECK(mt_store_range(s, "big/", &kvs, &n, &rev) == 0);
	CHECK(n == BIG_VALUES && rev == ROUNDS + BIG_VALUES);
	for (size_t i = 0; i < n; i++)
		CHECK(kvs[i].len == BIG_LEN &&
		      ((char *)kvs[i].val)[BIG_LEN - 1] == 'a' + (char)(i % 26));
	mt_store_kvs_free(kvs, n);
	/* and this handle can write on top of the grown map */
	CHECK(mt_store_put(s, "after", "1", 1, &rev) == 0 &&
	      rev == ROUNDS + BIG_VALUES + 1);
out:
	mt_store_close(s);
	close(go[1]);
	close(ready[0]);
	if (pid > 0)
		waitpid(pid, &status, 0);
}

#define CAS_WRITERS 3
#define CAS_INCREMENTS 50

/* One writer process: read-modify-write a counter with compare-and-swap,
 * retrying on -EAGAIN. Returns the number of failures. */
static int cas_writer(void)
{
	struct mt_store *s = NULL;
	char err[256];
	int fails = 0;

	if (mt_store_open(store_dir("cas"), 0, &s, err, sizeof(err)))
		return 100;
	for (int i = 0; i < CAS_INCREMENTS; i++) {
		for (int attempt = 0;; attempt++) {
			struct mt_store_kv *kvs;
			char buf[32];
			uint64_t rev;
			size_t n;
			long v;
			int r;

			if (mt_store_range(s, "counter", &kvs, &n, &rev) ||
			    n != 1)
				return 101;
			v = strtol(kvs[0].val, NULL, 10);
			mt_store_kvs_free(kvs, n);
			snprintf(buf, sizeof(buf), "%ld", v + 1);
			r = mt_store_txn(s,
					 &(struct mt_store_op){ MT_STORE_OP_PUT,
								"counter", buf,
								strlen(buf) },
					 1, rev, NULL);
			if (r == 0)
				break;
			if (r != -EAGAIN || attempt > 10000) {
				fails++;
				break;
			}
		}
	}
	mt_store_close(s);
	return fails;
}

/* Concurrent writers in separate processes lose no update. */
static void test_cas_concurrent(void)
{
	pid_t pids[CAS_WRITERS];
	struct mt_store *s;
	void *val = NULL;
	int status;

	s = open_ok(store_dir("cas"), 0);
	if (!s)
		return;
	CHECK(mt_store_put(s, "counter", "0", 1, NULL) == 0);
	mt_store_close(s);
	for (int i = 0; i < CAS_WRITERS; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(cas_writer());
	}
	for (int i = 0; i < CAS_WRITERS; i++) {
		CHECK(pids[i] > 0 && waitpid(pids[i], &status, 0) == pids[i]);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	s = open_ok(store_dir("cas"), MT_STORE_READONLY);
	if (!s)
		return;
	CHECK(mt_store_get(s, "counter", &val, NULL, NULL) == 0);
	CHECK(val && atoi(val) == CAS_WRITERS * CAS_INCREMENTS);
	CHECK(revision(s) == 1 + CAS_WRITERS * CAS_INCREMENTS);
	free(val);
	mt_store_close(s);
}

static void test_map_growth(void)
{
	struct mt_store *s = open_ok(store_dir("growth"), 0);
	struct mt_store_op ops[24];
	size_t len = 512 * 1024, n;
	struct mt_store_kv *kvs;
	char keys[24][16];
	char *big = malloc(24u << 20);
	uint64_t rev;
	struct stat st;

	if (!s || !big)
		goto out;
	/* many large values, one txn each: 40 MiB through an 8 MiB map */
	for (int i = 0; i < 80; i++) {
		char key[32];

		memset(big, 'A' + i % 26, len);
		snprintf(key, sizeof(key), "v/%03d", i);
		CHECK(mt_store_put(s, key, big, len, &rev) == 0);
	}
	CHECK(revision(s) == 80);
	CHECK(mt_store_range(s, "v/", &kvs, &n, NULL) == 0 && n == 80);
	for (size_t i = 0; i < n; i++)
		CHECK(kvs[i].len == len && kvs[i].mod_rev == i + 1 &&
		      ((char *)kvs[i].val)[len / 2] == 'A' + (char)(i % 26));
	mt_store_kvs_free(kvs, n);

	/* one txn larger than the map at its start */
	for (int i = 0; i < 24; i++) {
		snprintf(keys[i], sizeof(keys[i]), "t/%02d", i);
		ops[i] = (struct mt_store_op){ MT_STORE_OP_PUT, keys[i], big,
					       1u << 20 };
	}
	memset(big, 'z', 1u << 20);
	CHECK(mt_store_txn(s, ops, 24, 80, &rev) == 0 && rev == 81);
	/* a single 24 MiB value */
	memset(big, 'q', 24u << 20);
	CHECK(mt_store_put(s, "huge", big, 24u << 20, &rev) == 0 && rev == 82);
	mt_store_close(s);

	s = open_ok(store_dir("growth"), MT_STORE_READONLY);
	if (s) {
		void *val = NULL;
		size_t vlen = 0;

		CHECK(mt_store_get(s, "huge", &val, &vlen, NULL) == 0);
		CHECK(vlen == 24u << 20 && ((char *)val)[vlen - 1] == 'q');
		free(val);
		CHECK(mt_store_get(s, "t/23", &val, &vlen, &rev) == 0);
		CHECK(vlen == 1u << 20 && rev == 81);
		free(val);
	}
	CHECK(stat(store_dir("growth/data.mdb"), &st) == 0 &&
	      st.st_size > (64 << 20));
out:
	free(big);
	mt_store_close(s);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mt-test-store-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_basic);
	RUN(test_range);
	RUN(test_txn);
	RUN(test_reopen);
	RUN(test_customers);
	RUN(test_wait_timeout);
	RUN(test_two_processes);
	RUN(test_cas_concurrent);
	RUN(test_map_growth);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	TEST_MAIN_END();
}
