/* Prometheus metrics for mt's daemons: a registry, the text exposition format
 * 0.0.4 and a small non-blocking HTTP server for scraping. No dependencies
 * beyond libc and pthreads; nothing shells out.
 *
 * Registry. struct mt_metrics holds metric families (counters, gauges,
 * histograms with fixed buckets), each with a name, a help text and a fixed
 * list of label names, all validated against the Prometheus rules when the
 * family is registered. A series is addressed by its label values, one per
 * label name, in order:
 *
 *	mt_metrics_counter_add(probes, 1, "acme", "gre1");
 *
 * and created on first use (label-less families get their one series at 0 on
 * registration, so they are exported before the first update). The update
 * macros append a NULL sentinel: passing too few or too many label values is
 * refused with -EINVAL, never read past. Label values are any UTF-8 (invalid
 * UTF-8 is refused, a Prometheus scrape would fail on it); the output
 * escapes backslash, double quote and newline.
 *
 * Order. Families are rendered in registration order, the series of a
 * family in creation order (a deleted and re-created series moves to the
 * end). Output is therefore stable from one scrape to the next.
 *
 * Values are doubles, as in Prometheus (integers are exact up to 2^53).
 * Counters only go up (mt_metrics_counter_add refuses a negative or NaN
 * increment); mt_metrics_counter_set exists to mirror a counter kept
 * elsewhere (a BPF map, a kernel statistic), where a drop to a lower value
 * is a counter reset that Prometheus handles. Counter names must end in
 * "_total" (the convention, enforced so all of mt's counters agree).
 *
 * Thread safety. One mutex per registry guards everything in it: any thread
 * may register, update, delete and render at any time (the agent updates
 * from its main loop and its prober thread). Every call holds the lock for a
 * hash lookup, except rendering, which holds it while it formats the whole
 * registry (measured here: 100,000 series, 5.6 MB of text, in 25-50 ms).
 * Family pointers stay valid until mt_metrics_free().
 *
 * Errors: 0 (or a count) on success, -errno on failure.
 */
#ifndef MT_METRICS_H
#define MT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MT_METRICS_MAX_LABELS 8	  /* label names per family */
#define MT_METRICS_MAX_BUCKETS 32 /* histogram buckets, +Inf not counted */

enum mt_metrics_type {
	MT_METRICS_COUNTER,
	MT_METRICS_GAUGE,
	MT_METRICS_HISTOGRAM,
};

struct mt_metrics;
struct mt_metrics_family;

/* Returns a new empty registry, or NULL (out of memory). */
struct mt_metrics *mt_metrics_new(void);
/* Frees the registry, its families and series. Accepts NULL. A server made
 * by mt_metrics_http_listen() on it must be freed first. */
void mt_metrics_free(struct mt_metrics *reg);

/* Registers a family. labels is a NULL-terminated array of label names (NULL
 * or {NULL}: no labels), copied. For MT_METRICS_HISTOGRAM, buckets holds
 * n_buckets strictly increasing finite upper bounds (copied; the +Inf bucket
 * is implicit); otherwise pass NULL, 0.
 *
 * Rules: a metric name matches [a-zA-Z_:][a-zA-Z0-9_:]*, a counter's ends in
 * "_total"; label names match [a-zA-Z_][a-zA-Z0-9_]*, do not start with "__"
 * (reserved by Prometheus), are not repeated, and are not "le" in a
 * histogram; no sample name may collide with another family's (a histogram
 * "x" owns x_bucket, x_sum and x_count); help is any UTF-8 text.
 *
 * Returns 0 and *out, -EINVAL (a rule broken), -EEXIST (name taken) with a
 * message naming the culprit in err, or -ENOMEM. */
int mt_metrics_register(struct mt_metrics *reg, enum mt_metrics_type type,
			const char *name, const char *help,
			const char *const *labels, const double *buckets,
			size_t n_buckets, struct mt_metrics_family **out,
			char *err, size_t errlen);

/* Called by mt_metrics_render() (hence by every scrape) right before the
 * registry is formatted, without the registry's lock held, on the thread
 * that renders: the place to refresh gauges that are cheaper to compute on
 * demand (mt_metrics_reset() then set). fn NULL removes the hook. */
typedef void (*mt_metrics_collect_fn)(struct mt_metrics *reg, void *ctx);
void mt_metrics_set_collect(struct mt_metrics *reg, mt_metrics_collect_fn fn,
			    void *ctx);

/* ---- updates ----
 *
 * Every macro takes the family, a value and then one label value per label
 * name. The *_v variants take the label values as a NULL-terminated array,
 * for callers that build them at run time. All return 0, or -EINVAL (wrong
 * number of label values, invalid UTF-8, an operation that does not fit the
 * family's type, a negative counter increment, a NaN), -ENOMEM. */

enum mt_metrics_op {
	MT_METRICS_OP_COUNTER_ADD,
	MT_METRICS_OP_COUNTER_SET,
	MT_METRICS_OP_GAUGE_SET,
	MT_METRICS_OP_GAUGE_ADD,
	MT_METRICS_OP_OBSERVE, /* histograms */
};

int mt_metrics_update_l(struct mt_metrics_family *fam, enum mt_metrics_op op,
			double v, ...) __attribute__((sentinel));
int mt_metrics_update_v(struct mt_metrics_family *fam, enum mt_metrics_op op,
			double v, const char *const *values);

#define mt_metrics_counter_add(fam, v, ...)                                   \
	mt_metrics_update_l(fam, MT_METRICS_OP_COUNTER_ADD, v, ##__VA_ARGS__, \
			    (const char *)NULL)
#define mt_metrics_counter_set(fam, v, ...)                                   \
	mt_metrics_update_l(fam, MT_METRICS_OP_COUNTER_SET, v, ##__VA_ARGS__, \
			    (const char *)NULL)
#define mt_metrics_gauge_set(fam, v, ...)                                   \
	mt_metrics_update_l(fam, MT_METRICS_OP_GAUGE_SET, v, ##__VA_ARGS__, \
			    (const char *)NULL)
#define mt_metrics_gauge_add(fam, v, ...)                                   \
	mt_metrics_update_l(fam, MT_METRICS_OP_GAUGE_ADD, v, ##__VA_ARGS__, \
			    (const char *)NULL)
#define mt_metrics_observe(fam, v, ...)                                   \
	mt_metrics_update_l(fam, MT_METRICS_OP_OBSERVE, v, ##__VA_ARGS__, \
			    (const char *)NULL)

/* The value of a counter or gauge series (a histogram: its sum), into *v.
 * 0, -ENOENT (no such series), -EINVAL. */
int mt_metrics_get_l(struct mt_metrics_family *fam, double *v, ...)
	__attribute__((sentinel));
#define mt_metrics_get(fam, v, ...) \
	mt_metrics_get_l(fam, v, ##__VA_ARGS__, (const char *)NULL)

/* Deletes one series (a tunnel that went away). 0, -ENOENT, -EINVAL. */
int mt_metrics_delete_l(struct mt_metrics_family *fam, ...)
	__attribute__((sentinel));
int mt_metrics_delete_v(struct mt_metrics_family *fam,
			const char *const *values);
#define mt_metrics_delete(fam, ...) \
	mt_metrics_delete_l(fam, ##__VA_ARGS__, (const char *)NULL)

/* Deletes, in every family that has a label named label, every series whose
 * value for it is value (a customer that went away: every series with
 * customer="acme"). Returns the number of series deleted. */
int mt_metrics_delete_label(struct mt_metrics *reg, const char *label,
			    const char *value);

/* Deletes every series of the family (gauges rebuilt on each scrape; a
 * label-less family's series too: it is absent until set again). */
void mt_metrics_reset(struct mt_metrics_family *fam);

/* Number of series in the family. */
size_t mt_metrics_series_count(struct mt_metrics_family *fam);

/* ---- exposition ---- */

/* Runs the collect hook, then formats the registry in the Prometheus text
 * format 0.0.4 into a new NUL-terminated buffer (*out, *len without the NUL;
 * free() it). Families without series still get their # HELP and # TYPE
 * lines. 0 or -ENOMEM. */
int mt_metrics_render(struct mt_metrics *reg, char **out, size_t *len);

/* ---- HTTP server ----
 *
 * Serves GET (and HEAD) /metrics (a query string is ignored) as
 * "text/plain; version=0.0.4; charset=utf-8"; other paths get 404, other
 * methods 405, requests that do not parse 400, headers longer than
 * max_request bytes 431. HTTP/1.0 and 1.1; every response is
 * "Connection: close" (Prometheus opens a connection per scrape anyway, and
 * there is no keep-alive state to bound).
 *
 * Single-threaded and non-blocking, driven by the caller's loop: poll
 * mt_metrics_http_fd() (an epoll fd holding the listener, the connections
 * and a timerfd for the deadlines) for POLLIN and call
 * mt_metrics_http_process() when it is readable. Each call does a bounded
 * amount of work and never waits: the response (rendered once per request)
 * is sent with non-blocking sends and the rest kept per connection until the
 * socket is writable again.
 *
 * Bounds, all in struct mt_metrics_http_opts: each connection has
 * timeout_ms [5000] in total, from accept until it is closed (reading the
 * request, sending the response, waiting for the client's close), after
 * which it is closed whatever it is doing. That is a deadline, not an idle
 * timeout: a slowloris client that trickles a byte now and then cannot keep
 * a slot.
 * At most max_conns [16] connections at once; one more is answered 503 (best
 * effort, one non-blocking send) and closed. Requests up to max_request
 * [8192] bytes of headers.
 *
 * The one long step is rendering, done in mt_metrics_http_process() when a
 * request is complete (see the cost above), under the registry's lock.
 * The server itself is not thread-safe: call it from one thread (the
 * registry may be updated from any). The registry must outlive it. */

struct mt_metrics_http_opts {
	uint32_t timeout_ms;  /* 5000; 1..600000 */
	uint32_t max_conns;   /* 16; 1..4096 */
	uint32_t max_request; /* 8192; 256..1048576 */
};

struct mt_metrics_http;

void mt_metrics_http_opts_default(struct mt_metrics_http_opts *o);

/* Listens on addr: "IPv4:port" ("127.0.0.1:9464", "0.0.0.0:9464") or
 * "[IPv6]:port" ("[::1]:9464", "[::]:9464": IPv6 only), numeric, port
 * 0..65535, 0 for an ephemeral port (read it with mt_metrics_http_port()).
 * opts NULL: the defaults. Returns 0 and *out; -EINVAL for an address that
 * does not parse or opts out of range, or the -errno of socket/bind/listen
 * (-EADDRINUSE...), with a message naming the address in err; -ENOMEM. */
int mt_metrics_http_listen(struct mt_metrics *reg, const char *addr,
			   const struct mt_metrics_http_opts *opts,
			   struct mt_metrics_http **out, char *err,
			   size_t errlen);

/* Stops listening and closes every connection. Accepts NULL. */
void mt_metrics_http_free(struct mt_metrics_http *srv);

/* The fd to poll for POLLIN. */
int mt_metrics_http_fd(const struct mt_metrics_http *srv);

/* Accepts, reads, answers, writes and expires what is ready; never blocks.
 * Calling it when nothing is ready is harmless. Returns 0, or -errno of
 * epoll_wait (the server stays usable). */
int mt_metrics_http_process(struct mt_metrics_http *srv);

/* The bound port (useful after port 0). */
int mt_metrics_http_port(const struct mt_metrics_http *srv);

/* Connections currently open (for tests and for a gauge of its own). */
size_t mt_metrics_http_conns(const struct mt_metrics_http *srv);

#endif
