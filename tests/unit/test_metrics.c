/* The Prometheus metrics library: registration rules, the exact text
 * format, escaping, deletion, threads, and the scrape server on 127.0.0.1
 * driven by a poll loop here (no root, loopback only). If promtool is on
 * PATH, the output must also pass `promtool check metrics`. */
#include "mt_metrics.h"
#include "mt_test.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "mt_time.h"

/* A guard so a broken server fails the test instead of hanging it; no
 * assertion is made about how long anything takes. */
#define GIVE_UP_MS 20000

static const char *const no_labels[] = {NULL};
static const char *const cust_tunnel[] = {"customer", "tunnel", NULL};

static struct mt_metrics_family *reg_ok(struct mt_metrics *reg,
					enum mt_metrics_type type,
					const char *name, const char *help,
					const char *const *labels,
					const double *buckets, size_t n)
{
	struct mt_metrics_family *f = NULL;
	char err[256] = "";
	int r = mt_metrics_register(reg, type, name, help, labels, buckets, n,
				    &f, err, sizeof(err));

	if (r < 0)
		fprintf(stderr, "register %s: %s\n", name, err);
	CHECK(r == 0 && f);
	return f;
}

/* Registration must fail with want, and err must name culprit. */
static void reg_bad(struct mt_metrics *reg, enum mt_metrics_type type,
		    const char *name, const char *const *labels,
		    const double *buckets, size_t n, int want,
		    const char *culprit)
{
	struct mt_metrics_family *f = NULL;
	char err[256] = "";
	int r = mt_metrics_register(reg, type, name, "help", labels, buckets, n,
				    &f, err, sizeof(err));

	if (r != want)
		fprintf(stderr, "register %s: got %d (%s), want %d\n",
			name ? name : "(null)", r, err, want);
	CHECK(r == want);
	CHECK_CONTAINS(err, culprit);
}

static void test_register_rules(void)
{
	struct mt_metrics *reg = mt_metrics_new();
	static const double b[] = {0.1, 0.5, 1};
	static const double unsorted[] = {0.5, 0.1};
	static const double inf[] = {1, INFINITY};

	CHECK(reg);
	reg_bad(reg, MT_METRICS_GAUGE, "1abc", NULL, NULL, 0, -EINVAL,
		"\"1abc\"");
	reg_bad(reg, MT_METRICS_GAUGE, "a-b", NULL, NULL, 0, -EINVAL,
		"\"a-b\"");
	reg_bad(reg, MT_METRICS_GAUGE, "", NULL, NULL, 0, -EINVAL, "\"\"");
	reg_bad(reg, MT_METRICS_GAUGE, NULL, NULL, NULL, 0, -EINVAL, "(null)");
	reg_bad(reg, MT_METRICS_GAUGE, "caf\xc3\xa9", NULL, NULL, 0, -EINVAL,
		"must match");
	reg_bad(reg, MT_METRICS_COUNTER, "mt_probes", NULL, NULL, 0, -EINVAL,
		"_total");
	reg_bad(reg, MT_METRICS_GAUGE, "g",
		(const char *const[]){"__reserved", NULL}, NULL, 0, -EINVAL,
		"\"__reserved\"");
	reg_bad(reg, MT_METRICS_GAUGE, "g", (const char *const[]){"1x", NULL},
		NULL, 0, -EINVAL, "\"1x\"");
	reg_bad(reg, MT_METRICS_GAUGE, "g", (const char *const[]){"a:b", NULL},
		NULL, 0, -EINVAL, "\"a:b\"");
	reg_bad(reg, MT_METRICS_GAUGE, "g",
		(const char *const[]){"a", "b", "a", NULL}, NULL, 0, -EINVAL,
		"\"a\" repeated");
	reg_bad(reg, MT_METRICS_GAUGE, "g",
		(const char *const[]){"a", "b", "c", "d", "e", "f", "g", "h",
				      "i", NULL},
		NULL, 0, -EINVAL, "more than 8 labels");
	reg_bad(reg, MT_METRICS_HISTOGRAM, "h_seconds",
		(const char *const[]){"le", NULL}, b, 3, -EINVAL, "\"le\"");
	reg_bad(reg, MT_METRICS_HISTOGRAM, "h_seconds", NULL, unsorted, 2,
		-EINVAL, "strictly increasing");
	reg_bad(reg, MT_METRICS_HISTOGRAM, "h_seconds", NULL, inf, 2, -EINVAL,
		"finite");
	reg_bad(reg, MT_METRICS_HISTOGRAM, "h_seconds", NULL, NULL, 0, -EINVAL,
		"0 buckets");
	reg_bad(reg, MT_METRICS_GAUGE, "g", NULL, b, 3, -EINVAL,
		"buckets on a gauge");

	/* What the rules allow: colons in metric names, _ in labels. */
	reg_ok(reg, MT_METRICS_GAUGE, "mt:agent_up", "Up.", NULL, NULL, 0);
	reg_ok(reg, MT_METRICS_GAUGE, "_x", "X.",
	       (const char *const[]){"_a", "B9", NULL}, NULL, 0);
	reg_ok(reg, MT_METRICS_HISTOGRAM, "rtt_seconds", "RTT.", no_labels, b,
	       3);

	/* Names taken, directly or by a histogram's samples. */
	reg_bad(reg, MT_METRICS_GAUGE, "mt:agent_up", NULL, NULL, 0, -EEXIST,
		"mt:agent_up already registered");
	reg_bad(reg, MT_METRICS_GAUGE, "rtt_seconds_count", NULL, NULL, 0,
		-EEXIST, "taken by histogram rtt_seconds");
	reg_ok(reg, MT_METRICS_GAUGE, "lat_sum", "S.", NULL, NULL, 0);
	reg_bad(reg, MT_METRICS_HISTOGRAM, "lat", NULL, b, 3, -EEXIST,
		"lat_sum is taken by gauge lat_sum");
	mt_metrics_free(reg);
}

/* A small registry with every type, labels and special values. */
static struct mt_metrics *small_registry(void)
{
	static const double b[] = {0.005, 0.05, 0.5};
	struct mt_metrics *reg = mt_metrics_new();
	struct mt_metrics_family *probes, *up, *tunnels, *rtt;

	probes = reg_ok(reg, MT_METRICS_COUNTER, "mt_probes_total",
			"Probes sent.", cust_tunnel, NULL, 0);
	up = reg_ok(reg, MT_METRICS_GAUGE, "mt_up", "1 when the agent runs.",
		    NULL, NULL, 0);
	tunnels =
	    reg_ok(reg, MT_METRICS_GAUGE, "mt_tunnels", "Tunnels per customer.",
		   (const char *const[]){"customer", NULL}, NULL, 0);
	rtt = reg_ok(reg, MT_METRICS_HISTOGRAM, "mt_rtt_seconds",
		     "Probe round trip time.",
		     (const char *const[]){"tunnel", NULL}, b, 3);
	reg_ok(reg, MT_METRICS_GAUGE, "mt_empty", "No series yet.",
	       (const char *const[]){"x", NULL}, NULL, 0);

	/* Creation order, not sorted: globex before acme. */
	CHECK(mt_metrics_counter_add(probes, 3, "globex", "gre1") == 0);
	CHECK(mt_metrics_counter_add(probes, 40, "acme", "gre1") == 0);
	CHECK(mt_metrics_counter_add(probes, 2, "acme", "gre1") == 0);
	CHECK(mt_metrics_counter_set(probes, 12345678901234, "acme", "gre2") ==
	      0);
	CHECK(mt_metrics_gauge_set(up, 1) == 0);
	CHECK(mt_metrics_gauge_set(tunnels, 2, "acme") == 0);
	CHECK(mt_metrics_gauge_add(tunnels, 1.5, "globex") == 0);
	CHECK(mt_metrics_gauge_add(tunnels, -0.25, "globex") == 0);
	CHECK(mt_metrics_gauge_set(tunnels, NAN, "initech") == 0);
	CHECK(mt_metrics_gauge_set(tunnels, -INFINITY, "hooli") == 0);
	CHECK(mt_metrics_observe(rtt, 0.001, "gre1") == 0);
	CHECK(mt_metrics_observe(rtt, 0.005, "gre1") == 0); /* le is <= */
	CHECK(mt_metrics_observe(rtt, 0.3, "gre1") == 0);
	CHECK(mt_metrics_observe(rtt, 7, "gre1") == 0);
	return reg;
}

static const char small_golden[] =
    "# HELP mt_probes_total Probes sent.\n"
    "# TYPE mt_probes_total counter\n"
    "mt_probes_total{customer=\"globex\",tunnel=\"gre1\"} 3\n"
    "mt_probes_total{customer=\"acme\",tunnel=\"gre1\"} 42\n"
    "mt_probes_total{customer=\"acme\",tunnel=\"gre2\"} 12345678901234\n"
    "# HELP mt_up 1 when the agent runs.\n"
    "# TYPE mt_up gauge\n"
    "mt_up 1\n"
    "# HELP mt_tunnels Tunnels per customer.\n"
    "# TYPE mt_tunnels gauge\n"
    "mt_tunnels{customer=\"acme\"} 2\n"
    "mt_tunnels{customer=\"globex\"} 1.25\n"
    "mt_tunnels{customer=\"initech\"} NaN\n"
    "mt_tunnels{customer=\"hooli\"} -Inf\n"
    "# HELP mt_rtt_seconds Probe round trip time.\n"
    "# TYPE mt_rtt_seconds histogram\n"
    "mt_rtt_seconds_bucket{tunnel=\"gre1\",le=\"0.005\"} 2\n"
    "mt_rtt_seconds_bucket{tunnel=\"gre1\",le=\"0.05\"} 2\n"
    "mt_rtt_seconds_bucket{tunnel=\"gre1\",le=\"0.5\"} 3\n"
    "mt_rtt_seconds_bucket{tunnel=\"gre1\",le=\"+Inf\"} 4\n"
    "mt_rtt_seconds_sum{tunnel=\"gre1\"} 7.306\n"
    "mt_rtt_seconds_count{tunnel=\"gre1\"} 4\n"
    "# HELP mt_empty No series yet.\n"
    "# TYPE mt_empty gauge\n";

static char *render(struct mt_metrics *reg)
{
	char *out = NULL;
	size_t len = 0;

	CHECK(mt_metrics_render(reg, &out, &len) == 0);
	CHECK(out && strlen(out) == len);
	return out;
}

static void test_render_golden(void)
{
	struct mt_metrics *reg = small_registry();
	char *out = render(reg);

	CHECK_STR(out, small_golden);
	free(out);
	mt_metrics_free(reg);

	reg = mt_metrics_new();
	out = render(reg);
	CHECK_STR(out, ""); /* an empty registry is an empty page */
	free(out);
	mt_metrics_free(reg);
}

static void test_numbers(void)
{
	struct mt_metrics *reg = mt_metrics_new();
	struct mt_metrics_family *g =
	    reg_ok(reg, MT_METRICS_GAUGE, "g", "G.",
		   (const char *const[]){"v", NULL}, NULL, 0);
	char *out;

	mt_metrics_gauge_set(g, 0.1, "a");
	mt_metrics_gauge_set(g, 1e-9, "b");
	mt_metrics_gauge_set(g, 1e300, "c");
	mt_metrics_gauge_set(g, -0.0, "d");
	mt_metrics_gauge_set(g, 1.0 / 3, "e");
	mt_metrics_gauge_set(g, 9007199254740993.0, "f"); /* 2^53 + 1: 2^53 */
	mt_metrics_gauge_set(g, INFINITY, "g");
	out = render(reg);
	CHECK_STR(out, "# HELP g G.\n# TYPE g gauge\n"
		       "g{v=\"a\"} 0.1\n"
		       "g{v=\"b\"} 1e-09\n"
		       "g{v=\"c\"} 1e+300\n"
		       "g{v=\"d\"} -0\n"
		       "g{v=\"e\"} 0.33333333333333331\n"
		       "g{v=\"f\"} 9007199254740992\n"
		       "g{v=\"g\"} +Inf\n");
	free(out);
	mt_metrics_free(reg);
}

static void test_escaping(void)
{
	struct mt_metrics *reg = mt_metrics_new();
	struct mt_metrics_family *g =
	    reg_ok(reg, MT_METRICS_GAUGE, "esc", "a \\ b\nc \"d\"",
		   (const char *const[]){"v", NULL}, NULL, 0);
	char *out;

	CHECK(mt_metrics_gauge_set(g, 1, "back\\slash \"quoted\"\nnext") == 0);
	CHECK(mt_metrics_gauge_set(g, 2, "caf\xc3\xa9 \xe2\x82\xac") == 0);
	/* Invalid UTF-8 (a lone continuation byte, an overlong '/', a
	 * surrogate) is refused, and creates nothing. */
	CHECK(mt_metrics_gauge_set(g, 3, "bad \x80") == -EINVAL);
	CHECK(mt_metrics_gauge_set(g, 3, "\xc0\xaf") == -EINVAL);
	CHECK(mt_metrics_gauge_set(g, 3, "\xed\xa0\x80") == -EINVAL);
	CHECK(mt_metrics_series_count(g) == 2);
	out = render(reg);
	CHECK_STR(out, "# HELP esc a \\\\ b\\nc \"d\"\n"
		       "# TYPE esc gauge\n"
		       "esc{v=\"back\\\\slash \\\"quoted\\\"\\nnext\"} 1\n"
		       "esc{v=\"caf\xc3\xa9 \xe2\x82\xac\"} 2\n");
	free(out);
	mt_metrics_free(reg);
}

static void test_misuse(void)
{
	struct mt_metrics *reg = mt_metrics_new();
	struct mt_metrics_family *c = reg_ok(reg, MT_METRICS_COUNTER, "c_total",
					     "C.", cust_tunnel, NULL, 0);
	struct mt_metrics_family *g =
	    reg_ok(reg, MT_METRICS_GAUGE, "g", "G.", NULL, NULL, 0);
	double v = -1;

	/* Label value counts are checked against the family's, both ways. */
	CHECK(mt_metrics_counter_add(c, 1, "acme") == -EINVAL);
	CHECK(mt_metrics_counter_add(c, 1, "acme", "gre1", "extra") == -EINVAL);
	CHECK(mt_metrics_counter_add(c, 1) == -EINVAL);
	CHECK(mt_metrics_gauge_set(g, 1, "x") == -EINVAL);
	CHECK(mt_metrics_update_v(c, MT_METRICS_OP_COUNTER_ADD, 1,
				  (const char *const[]){"acme", NULL}) ==
	      -EINVAL);
	CHECK(mt_metrics_update_v(
		  c, MT_METRICS_OP_COUNTER_ADD, 1,
		  (const char *const[]){"acme", "gre1", NULL}) == 0);
	/* Counters only go up; operations must fit the type. */
	CHECK(mt_metrics_counter_add(c, -1, "acme", "gre1") == -EINVAL);
	CHECK(mt_metrics_counter_add(c, NAN, "acme", "gre1") == -EINVAL);
	CHECK(mt_metrics_counter_add(c, INFINITY, "acme", "gre1") == -EINVAL);
	CHECK(mt_metrics_gauge_set(c, 1, "acme", "gre1") == -EINVAL);
	CHECK(mt_metrics_counter_add(g, 1) == -EINVAL);
	CHECK(mt_metrics_observe(g, 1) == -EINVAL);
	CHECK(mt_metrics_get(c, &v, "acme", "gre1") == 0 && v == 1);
	CHECK(mt_metrics_get(c, &v, "acme", "gre9") == -ENOENT);
	CHECK(mt_metrics_get(g, &v) == 0 && v == 0); /* exists from the start */
	mt_metrics_free(reg);
}

static void test_delete(void)
{
	struct mt_metrics *reg = mt_metrics_new();
	struct mt_metrics_family *c = reg_ok(reg, MT_METRICS_COUNTER, "c_total",
					     "C.", cust_tunnel, NULL, 0);
	struct mt_metrics_family *g =
	    reg_ok(reg, MT_METRICS_GAUGE, "g", "G.",
		   (const char *const[]){"customer", NULL}, NULL, 0);
	struct mt_metrics_family *u =
	    reg_ok(reg, MT_METRICS_GAUGE, "u", "U.", NULL, NULL, 0);
	struct mt_metrics_family *t =
	    reg_ok(reg, MT_METRICS_GAUGE, "t", "T.",
		   (const char *const[]){"tunnel", NULL}, NULL, 0);
	char *out;

	mt_metrics_counter_add(c, 1, "acme", "gre1");
	mt_metrics_counter_add(c, 2, "acme", "gre2");
	mt_metrics_counter_add(c, 3, "globex", "gre1");
	mt_metrics_gauge_set(g, 1, "acme");
	mt_metrics_gauge_set(g, 2, "globex");
	mt_metrics_gauge_set(t, 5, "acme"); /* "acme" but not as customer */

	CHECK(mt_metrics_delete(c, "acme", "gre1") == 0);
	CHECK(mt_metrics_delete(c, "acme", "gre1") == -ENOENT);
	CHECK(mt_metrics_delete(c, "acme") == -EINVAL);
	CHECK(mt_metrics_delete_v(
		  c, (const char *const[]){"nope", "x", NULL}) == -ENOENT);
	/* Re-created: it moves to the end, and starts from 0. */
	mt_metrics_counter_add(c, 7, "acme", "gre1");
	out = render(reg);
	CHECK_STR(out, "# HELP c_total C.\n# TYPE c_total counter\n"
		       "c_total{customer=\"acme\",tunnel=\"gre2\"} 2\n"
		       "c_total{customer=\"globex\",tunnel=\"gre1\"} 3\n"
		       "c_total{customer=\"acme\",tunnel=\"gre1\"} 7\n"
		       "# HELP g G.\n# TYPE g gauge\n"
		       "g{customer=\"acme\"} 1\n"
		       "g{customer=\"globex\"} 2\n"
		       "# HELP u U.\n# TYPE u gauge\nu 0\n"
		       "# HELP t T.\n# TYPE t gauge\nt{tunnel=\"acme\"} 5\n");
	free(out);

	/* A customer goes away: all its series, in every family. */
	CHECK(mt_metrics_delete_label(reg, "customer", "acme") == 3);
	CHECK(mt_metrics_delete_label(reg, "customer", "acme") == 0);
	CHECK(mt_metrics_delete_label(reg, "nosuchlabel", "acme") == 0);
	CHECK(mt_metrics_series_count(c) == 1);
	CHECK(mt_metrics_series_count(g) == 1);
	CHECK(mt_metrics_series_count(t) == 1);

	mt_metrics_reset(g);
	mt_metrics_reset(u);
	CHECK(mt_metrics_series_count(g) == 0);
	out = render(reg);
	CHECK_STR(out, "# HELP c_total C.\n# TYPE c_total counter\n"
		       "c_total{customer=\"globex\",tunnel=\"gre1\"} 3\n"
		       "# HELP g G.\n# TYPE g gauge\n"
		       "# HELP u U.\n# TYPE u gauge\n"
		       "# HELP t T.\n# TYPE t gauge\nt{tunnel=\"acme\"} 5\n");
	free(out);
	mt_metrics_gauge_set(u, 4);
	CHECK(mt_metrics_series_count(u) == 1);

	/* Many series: the hash grows, deletes keep it consistent. */
	for (int i = 0; i < 5000; i++) {
		char name[16];

		snprintf(name, sizeof(name), "c%d", i);
		CHECK(mt_metrics_gauge_set(g, i, name) == 0);
	}
	for (int i = 0; i < 5000; i += 2) {
		char name[16];

		snprintf(name, sizeof(name), "c%d", i);
		CHECK(mt_metrics_delete(g, name) == 0);
	}
	CHECK(mt_metrics_series_count(g) == 2500);
	for (int i = 0; i < 5000; i++) {
		char name[16];
		double v = -1;

		snprintf(name, sizeof(name), "c%d", i);
		CHECK(mt_metrics_get(g, &v, name) == (i % 2 ? 0 : -ENOENT));
		if (i % 2)
			CHECK(v == i);
	}
	mt_metrics_free(reg);
}

struct collect_ctx {
	struct mt_metrics_family *g;
	int calls;
};

/* Rebuilds the gauge on each scrape, as a daemon would. */
static void collect(struct mt_metrics *reg, void *arg)
{
	struct collect_ctx *ctx = arg;

	ctx->calls++;
	mt_metrics_reset(ctx->g);
	mt_metrics_gauge_set(ctx->g, ctx->calls, "scrape");
}

static void test_collect(void)
{
	struct mt_metrics *reg = mt_metrics_new();
	struct collect_ctx ctx = {0};
	char *out;

	ctx.g = reg_ok(reg, MT_METRICS_GAUGE, "g", "G.",
		       (const char *const[]){"k", NULL}, NULL, 0);
	mt_metrics_gauge_set(ctx.g, 99, "stale");
	mt_metrics_set_collect(reg, collect, &ctx);
	out = render(reg);
	CHECK_STR(out, "# HELP g G.\n# TYPE g gauge\ng{k=\"scrape\"} 1\n");
	free(out);
	out = render(reg);
	CHECK_STR(out, "# HELP g G.\n# TYPE g gauge\ng{k=\"scrape\"} 2\n");
	free(out);
	mt_metrics_set_collect(reg, NULL, NULL);
	out = render(reg);
	CHECK(ctx.calls == 2);
	free(out);
	mt_metrics_free(reg);
}

#define THREAD_ITERS 200000

struct thread_arg {
	struct mt_metrics *reg;
	struct mt_metrics_family *c, *h;
	const char *who;
};

static void *incrementer(void *p)
{
	struct thread_arg *a = p;

	for (int i = 0; i < THREAD_ITERS; i++) {
		mt_metrics_counter_add(a->c, 1, "shared");
		mt_metrics_counter_add(a->c, 1, a->who);
		mt_metrics_observe(a->h, 1);
		/* Series come and go while the other thread updates. */
		if (i % 1000 == 0) {
			mt_metrics_counter_add(a->c, 1, "churn");
			mt_metrics_delete(a->c, "churn");
		}
	}
	return NULL;
}

static void *renderer(void *p)
{
	struct thread_arg *a = p;

	for (int i = 0; i < 200; i++) {
		char *out = NULL;
		size_t len;

		if (mt_metrics_render(a->reg, &out, &len) == 0)
			free(out);
	}
	return NULL;
}

static void test_threads(void)
{
	static const double b[] = {0.5, 2};
	struct mt_metrics *reg = mt_metrics_new();
	struct thread_arg a[3] = {
	    {.reg = reg, .who = "one"},
	    {.reg = reg, .who = "two"},
	    {.reg = reg},
	};
	pthread_t th[3];
	double v = 0;
	char *out;

	a[0].c = a[1].c = reg_ok(reg, MT_METRICS_COUNTER, "n_total", "N.",
				 (const char *const[]){"who", NULL}, NULL, 0);
	a[0].h = a[1].h =
	    reg_ok(reg, MT_METRICS_HISTOGRAM, "h", "H.", NULL, b, 2);
	CHECK(pthread_create(&th[0], NULL, incrementer, &a[0]) == 0);
	CHECK(pthread_create(&th[1], NULL, incrementer, &a[1]) == 0);
	CHECK(pthread_create(&th[2], NULL, renderer, &a[2]) == 0);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);

	CHECK(mt_metrics_get(a[0].c, &v, "shared") == 0 &&
	      v == 2 * THREAD_ITERS);
	CHECK(mt_metrics_get(a[0].c, &v, "one") == 0 && v == THREAD_ITERS);
	CHECK(mt_metrics_get(a[0].c, &v, "two") == 0 && v == THREAD_ITERS);
	out = render(reg);
	CHECK_CONTAINS(out, "h_bucket{le=\"2\"} 400000\n"
			    "h_bucket{le=\"+Inf\"} 400000\n"
			    "h_sum 400000\nh_count 400000\n");
	free(out);
	mt_metrics_free(reg);
}

/* ---- promtool ---- */

static bool on_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	while (path && *path) {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
		if (access(buf, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

/* Pipes text through `promtool check metrics`: 0 passes, otherwise its
 * exit status (1 parse error, 3 lint problems; its messages on stderr). */
static int promtool_check(const char *text)
{
	FILE *p = popen("promtool check metrics", "w");
	int st;

	if (!p)
		return -1;
	fputs(text, p);
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_promtool(void)
{
	struct mt_metrics *reg;
	struct mt_metrics_family *g;
	char *out;

	if (!on_path("promtool")) {
		fprintf(stderr, "skip test_promtool: promtool not on PATH "
				"(Debian package prometheus)\n");
		return;
	}
	/* The checker itself must catch what it should (a counter without
	 * _total): otherwise a pass below would prove nothing. */
	CHECK(promtool_check("# HELP a A.\n# TYPE a counter\na 1\n") != 0);

	reg = small_registry();
	g = reg_ok(reg, MT_METRICS_GAUGE, "mt_escaped", "Tricky \\ help\n.",
		   (const char *const[]){"v", NULL}, NULL, 0);
	mt_metrics_gauge_set(g, 1, "back\\slash \"q\"\nnl caf\xc3\xa9");
	out = render(reg);
	CHECK(promtool_check(out) == 0);
	free(out);
	mt_metrics_free(reg);
}

/* ---- HTTP server ---- */

struct client {
	int fd;
	char *buf;
	size_t len, cap;
	bool eof; /* EOF or reset seen: the server closed it */
	bool reset;
};

static void client_open(struct client *cl, int port, int rcvbuf)
{
	struct sockaddr_in sin = {
	    .sin_family = AF_INET,
	    .sin_port = htons((uint16_t)port),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};

	memset(cl, 0, sizeof(*cl));
	cl->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(cl->fd >= 0);
	if (rcvbuf)
		setsockopt(cl->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
			   sizeof(rcvbuf));
	/* Blocking connect: on loopback the kernel completes it from the
	 * backlog without the server's accept(). */
	CHECK(connect(cl->fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
}

static void client_send(struct client *cl, const char *data, size_t len)
{
	CHECK(send(cl->fd, data, len, MSG_NOSIGNAL) == (ssize_t)len);
}

static void client_read(struct client *cl)
{
	for (;;) {
		ssize_t n;

		if (cl->cap - cl->len < 65536) {
			cl->cap = cl->cap ? cl->cap * 2 : 131072;
			cl->buf = realloc(cl->buf, cl->cap + 1);
		}
		n = recv(cl->fd, cl->buf + cl->len, cl->cap - cl->len,
			 MSG_DONTWAIT);
		if (n > 0) {
			cl->len += (size_t)n;
			cl->buf[cl->len] = '\0';
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0)
			cl->reset = true;
		cl->eof = true;
		return;
	}
}

static void client_close(struct client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	free(cl->buf);
	cl->fd = -1;
	cl->buf = NULL;
}

/* One turn of the caller's loop: poll the server's fd and the clients';
 * process the server only when its fd says so. */
static void loop_once(struct mt_metrics_http *srv, struct client *cl, size_t n,
		      int timeout_ms)
{
	struct pollfd pfd[16] = {
	    {.fd = mt_metrics_http_fd(srv), .events = POLLIN}};

	for (size_t i = 0; i < n; i++)
		pfd[i + 1] = (struct pollfd){.fd = cl[i].eof ? -1 : cl[i].fd,
					     .events = POLLIN};
	CHECK(poll(pfd, n + 1, timeout_ms) >= 0);
	if (pfd[0].revents & POLLIN)
		CHECK(mt_metrics_http_process(srv) == 0);
	for (size_t i = 0; i < n; i++)
		if (pfd[i + 1].revents)
			client_read(&cl[i]);
}

/* Runs the loop until every client saw the server close it. */
static bool loop_until_closed(struct mt_metrics_http *srv, struct client *cl,
			      size_t n)
{
	uint64_t give_up = mt_monotonic_ms() + GIVE_UP_MS;

	for (;;) {
		bool all = true;

		for (size_t i = 0; i < n; i++)
			all = all && cl[i].eof;
		if (all)
			return true;
		if (mt_monotonic_ms() > give_up)
			return false;
		loop_once(srv, cl, n, 1000);
	}
}

/* Runs the server alone until it has closed every connection (after the
 * clients closed theirs, it sees their FIN while draining). */
static bool server_settles(struct mt_metrics_http *srv)
{
	uint64_t give_up = mt_monotonic_ms() + GIVE_UP_MS;

	while (mt_metrics_http_conns(srv) && mt_monotonic_ms() < give_up)
		loop_once(srv, NULL, 0, 1000);
	return mt_metrics_http_conns(srv) == 0;
}

struct response {
	int status;
	char head[2048];
	const char *body;
	size_t body_len;
};

static bool parse_response(const struct client *cl, struct response *r)
{
	const char *end = cl->buf ? strstr(cl->buf, "\r\n\r\n") : NULL;

	memset(r, 0, sizeof(*r));
	if (!end || sscanf(cl->buf, "HTTP/1.1 %d ", &r->status) != 1)
		return false;
	snprintf(r->head, sizeof(r->head), "%.*s", (int)(end - cl->buf + 2),
		 cl->buf);
	r->body = end + 4;
	r->body_len = cl->len - (size_t)(r->body - cl->buf);
	return true;
}

/* Sends req on a fresh connection and reads the answer until close. */
static int exchange(struct mt_metrics_http *srv, const char *req,
		    struct client *cl, struct response *r)
{
	client_open(cl, mt_metrics_http_port(srv), 0);
	client_send(cl, req, strlen(req));
	CHECK(loop_until_closed(srv, cl, 1));
	CHECK(!cl->reset);
	CHECK(parse_response(cl, r));
	return r->status;
}

static struct mt_metrics_http *listen_ok(struct mt_metrics *reg,
					 const char *addr, uint32_t timeout_ms,
					 uint32_t max_conns)
{
	struct mt_metrics_http_opts o;
	struct mt_metrics_http *srv = NULL;
	char err[256] = "";
	int r;

	mt_metrics_http_opts_default(&o);
	o.timeout_ms = timeout_ms;
	o.max_conns = max_conns;
	o.max_request = 1024;
	r = mt_metrics_http_listen(reg, addr, &o, &srv, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "listen %s: %s\n", addr, err);
	CHECK(r == 0 && srv);
	CHECK(srv && mt_metrics_http_port(srv) > 0);
	return srv;
}

static void test_http_requests(void)
{
	struct mt_metrics *reg = small_registry();
	struct mt_metrics_http *srv;
	struct client cl;
	struct response r;
	char big[4096], want[64];

	srv = listen_ok(reg, "127.0.0.1:0", 5000, 4);

	CHECK(exchange(srv,
		       "GET /metrics HTTP/1.1\r\nHost: x\r\n"
		       "Accept-Encoding: gzip\r\n\r\n",
		       &cl, &r) == 200);
	CHECK_CONTAINS(r.head, "\r\nContent-Type: text/plain; version=0.0.4; "
			       "charset=utf-8\r\n");
	CHECK_CONTAINS(r.head, "\r\nConnection: close\r\n");
	snprintf(want, sizeof(want), "\r\nContent-Length: %zu\r\n",
		 strlen(small_golden));
	CHECK_CONTAINS(r.head, want);
	CHECK(r.body_len == strlen(small_golden));
	CHECK_STR(r.body, small_golden);
	client_close(&cl);

	/* HTTP/1.0, bare LF line ends, a query string. */
	CHECK(exchange(srv, "GET /metrics?x=1 HTTP/1.0\n\n", &cl, &r) == 200);
	CHECK_STR(r.body, small_golden);
	client_close(&cl);

	CHECK(exchange(srv, "HEAD /metrics HTTP/1.1\r\n\r\n", &cl, &r) == 200);
	CHECK_CONTAINS(r.head, want); /* the length of what GET would send */
	CHECK(r.body_len == 0);
	client_close(&cl);

	CHECK(exchange(srv, "GET /nope HTTP/1.1\r\n\r\n", &cl, &r) == 404);
	client_close(&cl);
	CHECK(exchange(srv, "GET /metricsx HTTP/1.1\r\n\r\n", &cl, &r) == 404);
	client_close(&cl);
	CHECK(exchange(srv,
		       "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n"
		       "\r\n",
		       &cl, &r) == 405);
	CHECK_CONTAINS(r.head, "\r\nAllow: GET, HEAD\r\n");
	client_close(&cl);
	CHECK(exchange(srv, "DELETE /metrics HTTP/1.1\r\n\r\n", &cl, &r) ==
	      405);
	client_close(&cl);
	CHECK(exchange(srv, "GET /metrics HTTP/2.0\r\n\r\n", &cl, &r) == 400);
	client_close(&cl);
	CHECK(exchange(srv, "garbage\r\n\r\n", &cl, &r) == 400);
	client_close(&cl);
	CHECK(exchange(srv, "GET  /metrics HTTP/1.1\r\n\r\n", &cl, &r) == 400);
	client_close(&cl);

	/* Headers beyond max_request (1024 here) and no end in sight: 431,
	 * and the response survives the unread bytes (no reset). */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "GET /metrics HTTP/1.1\r\nX-Big: ", 30);
	CHECK(exchange(srv, big, &cl, &r) == 431);
	client_close(&cl);

	CHECK(server_settles(srv));
	mt_metrics_http_free(srv);
	mt_metrics_free(reg);
}

static void test_http_deadline(void)
{
	struct mt_metrics *reg = small_registry();
	struct mt_metrics_http *srv;
	struct client cl[2];
	struct response r;
	uint64_t give_up;

	/* 200 ms per connection: tested as "closed eventually", not timed. */
	srv = listen_ok(reg, "127.0.0.1:0", 200, 4);

	/* Connects and sends nothing. */
	client_open(&cl[0], mt_metrics_http_port(srv), 0);
	/* Slowloris: keeps trickling header bytes, never finishes. */
	client_open(&cl[1], mt_metrics_http_port(srv), 0);
	client_send(&cl[1], "GET /metrics HTTP/1.1\r\nX-Slow: ", 31);
	/* One byte per 10 ms at most, so it stays far below max_request
	 * (1024) for seconds: only the deadline can end it. */
	give_up = mt_monotonic_ms() + GIVE_UP_MS;
	while (!(cl[0].eof && cl[1].eof) && mt_monotonic_ms() < give_up) {
		uint64_t next = mt_monotonic_ms() + 10;

		while (mt_monotonic_ms() < next)
			loop_once(srv, cl, 2, 10);
		if (!cl[1].eof)
			send(cl[1].fd, "a", 1, MSG_NOSIGNAL);
	}
	CHECK(cl[0].eof && cl[0].len == 0);
	CHECK(cl[1].eof && cl[1].len == 0);
	CHECK(server_settles(srv));
	client_close(&cl[0]);
	client_close(&cl[1]);

	/* The server still answers afterwards. */
	CHECK(exchange(srv, "GET /metrics HTTP/1.1\r\n\r\n", &cl[0], &r) ==
	      200);
	client_close(&cl[0]);
	mt_metrics_http_free(srv);
	mt_metrics_free(reg);
}

static void test_http_limit(void)
{
	struct mt_metrics *reg = small_registry();
	struct mt_metrics_http *srv;
	struct client cl[4];
	struct response r;
	uint64_t give_up;

	srv = listen_ok(reg, "127.0.0.1:0", 300, 3);
	for (int i = 0; i < 3; i++)
		client_open(&cl[i], mt_metrics_http_port(srv), 0);
	give_up = mt_monotonic_ms() + GIVE_UP_MS;
	while (mt_metrics_http_conns(srv) < 3 && mt_monotonic_ms() < give_up)
		loop_once(srv, cl, 3, 1000);
	CHECK(mt_metrics_http_conns(srv) == 3);

	/* One too many: 503 at once, the others untouched. */
	client_open(&cl[3], mt_metrics_http_port(srv), 0);
	give_up = mt_monotonic_ms() + GIVE_UP_MS;
	while (!cl[3].eof && mt_monotonic_ms() < give_up)
		loop_once(srv, cl, 4, 1000);
	CHECK(parse_response(&cl[3], &r) && r.status == 503);

	/* The three idle ones go at their deadline; then a slot is free. */
	CHECK(loop_until_closed(srv, cl, 4));
	CHECK(server_settles(srv));
	for (int i = 0; i < 4; i++)
		client_close(&cl[i]);
	CHECK(exchange(srv, "GET /metrics HTTP/1.1\r\n\r\n", &cl[0], &r) ==
	      200);
	client_close(&cl[0]);
	mt_metrics_http_free(srv);
	mt_metrics_free(reg);
}

/* A body far larger than a socket buffer, read by a client with a tiny
 * receive window: the server must send it piecewise between turns of the
 * loop (it would block otherwise, or lose the tail). */
static void test_http_large(void)
{
	struct mt_metrics *reg = mt_metrics_new();
	struct mt_metrics_family *c = reg_ok(
	    reg, MT_METRICS_COUNTER, "big_total", "Big.", cust_tunnel, NULL, 0);
	struct mt_metrics_http *srv;
	struct client cl;
	struct response r;
	char *want;
	uint64_t t0, t1;

	for (int i = 0; i < 100000; i++) {
		char cust[32], tun[32];

		snprintf(cust, sizeof(cust), "customer-%d", i / 4);
		snprintf(tun, sizeof(tun), "gre%d", i % 4);
		CHECK(mt_metrics_counter_add(c, i, cust, tun) == 0);
	}
	t0 = mt_monotonic_us();
	want = render(reg);
	t1 = mt_monotonic_us();
	fprintf(stderr, "render of 100000 series: %zu bytes in %llu us\n",
		strlen(want), (unsigned long long)(t1 - t0));

	srv = listen_ok(reg, "127.0.0.1:0", 20000, 4);
	client_open(&cl, mt_metrics_http_port(srv), 4096);
	client_send(&cl, "GET /metrics HTTP/1.1\r\n\r\n", 25);
	CHECK(loop_until_closed(srv, &cl, 1));
	CHECK(parse_response(&cl, &r) && r.status == 200);
	CHECK(r.body_len == strlen(want));
	CHECK(r.body && memcmp(r.body, want, strlen(want)) == 0);
	client_close(&cl);
	free(want);
	mt_metrics_http_free(srv);
	mt_metrics_free(reg);
}

static void test_http_listen_errors(void)
{
	static const struct {
		const char *addr, *want;
	} bad[] = {
	    {"bogus", "\"bogus\": want IPv4:port or [IPv6]:port"},
	    {"", "empty"},
	    {"127.0.0.1", "\"127.0.0.1\": want"},
	    {"127.0.0.1:", "\"127.0.0.1:\": want"},
	    {":9464", "\":9464\": want"},
	    {"127.0.0.1:99999", "port \"99999\" is not 0-65535"},
	    {"127.0.0.1:12ab", "port \"12ab\""},
	    {"localhost:9464", "\"localhost\" is not a numeric IPv4"},
	    {"[::1:9464", "\"[::1:9464\": want"},
	    {"[::1]", "\"[::1]\": want"},
	    {"[127.0.0.1]:80", "not a numeric IPv6"},
	    {"unix:/run/mt/metrics.sock", "unix sockets are not supported"},
	};
	struct mt_metrics *reg = mt_metrics_new();
	struct mt_metrics_http_opts o;
	struct mt_metrics_http *srv = NULL, *srv2 = NULL;
	char err[256], addr[64];
	int r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		r = mt_metrics_http_listen(reg, bad[i].addr, NULL, &srv, err,
					   sizeof(err));
		CHECK(r == -EINVAL);
		CHECK_CONTAINS(err, bad[i].want);
	}
	mt_metrics_http_opts_default(&o);
	o.max_conns = 0;
	CHECK(mt_metrics_http_listen(reg, "127.0.0.1:0", &o, &srv, err,
				     sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "max_conns 0");

	/* A port in use: -EADDRINUSE naming the address. */
	srv = listen_ok(reg, "127.0.0.1:0", 5000, 4);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", mt_metrics_http_port(srv));
	r = mt_metrics_http_listen(reg, addr, NULL, &srv2, err, sizeof(err));
	CHECK(r == -EADDRINUSE);
	CHECK_CONTAINS(err, addr);
	CHECK_CONTAINS(err, "bind");
	mt_metrics_http_free(srv);

	/* An address this machine does not have. */
	r = mt_metrics_http_listen(reg, "192.0.2.1:0", NULL, &srv2, err,
				   sizeof(err));
	CHECK(r == -EADDRNOTAVAIL);
	CHECK_CONTAINS(err, "192.0.2.1:0: bind");
	mt_metrics_free(reg);
}

static void test_http_ipv6(void)
{
	struct mt_metrics *reg = small_registry();
	struct mt_metrics_http *srv = NULL;
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6,
				    .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	struct client cl;
	char err[256];
	int r = mt_metrics_http_listen(reg, "[::1]:0", NULL, &srv, err,
				       sizeof(err));

	if (r == -EAFNOSUPPORT || r == -EADDRNOTAVAIL) {
		fprintf(stderr, "skip test_http_ipv6: %s\n", err);
		mt_metrics_free(reg);
		return;
	}
	CHECK(r == 0);
	sin6.sin6_port = htons((uint16_t)mt_metrics_http_port(srv));
	memset(&cl, 0, sizeof(cl));
	cl.fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(connect(cl.fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0);
	client_send(&cl, "GET /metrics HTTP/1.1\r\n\r\n", 25);
	CHECK(loop_until_closed(srv, &cl, 1));
	CHECK(cl.buf && strncmp(cl.buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	client_close(&cl);
	mt_metrics_http_free(srv);
	mt_metrics_free(reg);
}

int main(void)
{
	/* A promtool that exits early must fail a check, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	RUN(test_register_rules);
	RUN(test_render_golden);
	RUN(test_numbers);
	RUN(test_escaping);
	RUN(test_misuse);
	RUN(test_delete);
	RUN(test_collect);
	RUN(test_threads);
	RUN(test_promtool);
	RUN(test_http_requests);
	RUN(test_http_deadline);
	RUN(test_http_limit);
	RUN(test_http_large);
	RUN(test_http_listen_errors);
	RUN(test_http_ipv6);
	TEST_MAIN_END();
}
