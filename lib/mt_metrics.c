/* Prometheus metrics: the registry, the text format 0.0.4 and the scrape
 * server. See mt_metrics.h for the contract. */
#include "mt_metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include "mt_cleanup.h"
#include "mt_time.h"

/* ---- registry ---- */

/* One series. key holds the label values back to back, each NUL-terminated,
 * for lookups; labels the same values already rendered and escaped
 * (`customer="acme",tunnel="gre1"`, "" without labels), so a scrape only
 * copies bytes. */
struct series {
	struct series *hnext;	    /* hash chain */
	struct series *prev, *next; /* creation order */
	uint32_t hash;
	char *key;
	size_t keylen;
	char *labels;
	double value;	    /* counter, gauge; histogram: the sum */
	uint64_t count;	    /* histogram: observations */
	uint64_t buckets[]; /* histogram: per bucket, not cumulative */
};

struct mt_metrics_family {
	struct mt_metrics *reg;
	struct mt_metrics_family *next;
	enum mt_metrics_type type;
	char *name, *help;
	size_t n_labels;
	char *labels[MT_METRICS_MAX_LABELS];
	size_t n_buckets;
	double buckets[MT_METRICS_MAX_BUCKETS];

	struct series **table; /* hash of the series, table_size a power of 2 */
	size_t table_size, n_series;
	struct series *first, *last;
};

struct mt_metrics {
	pthread_mutex_t lock;
	struct mt_metrics_family *first, *last;
	mt_metrics_collect_fn collect;
	void *collect_ctx;
};

struct mt_metrics *mt_metrics_new(void)
{
	struct mt_metrics *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return NULL;
	pthread_mutex_init(&reg->lock, NULL);
	return reg;
}

static void series_free(struct series *s)
{
	if (!s)
		return;
	free(s->key);
	free(s->labels);
	free(s);
}

static void family_free(struct mt_metrics_family *f)
{
	struct series *s, *next;

	for (s = f->first; s; s = next) {
		next = s->next;
		series_free(s);
	}
	for (size_t i = 0; i < f->n_labels; i++)
		free(f->labels[i]);
	free(f->table);
	free(f->name);
	free(f->help);
	free(f);
}

void mt_metrics_free(struct mt_metrics *reg)
{
	struct mt_metrics_family *f, *next;

	if (!reg)
		return;
	for (f = reg->first; f; f = next) {
		next = f->next;
		family_free(f);
	}
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

void mt_metrics_set_collect(struct mt_metrics *reg, mt_metrics_collect_fn fn,
			    void *ctx)
{
	pthread_mutex_lock(&reg->lock);
	reg->collect = fn;
	reg->collect_ctx = ctx;
	pthread_mutex_unlock(&reg->lock);
}

/* ---- validation ---- */

static bool name_valid(const char *s, bool colon)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++) {
		char c = *s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' ||
		      (colon && c == ':')))
			return false;
	}
	return true;
}

/* Well-formed UTF-8: no overlong forms, no surrogates, nothing past
 * U+10FFFF (what Prometheus's parser accepts). */
static bool utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s) {
		unsigned char c = *s;
		uint32_t cp;
		int n;

		if (c < 0x80) {
			s++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (int i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		s += n + 1;
	}
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The sample names a family owns: its name, and a histogram's three
 * suffixed names. Two families must not share any. */
static size_t family_names(enum mt_metrics_type type, const char *name,
			   char out[4][256])
{
	static const char *const hist[] = {"_bucket", "_sum", "_count"};
	size_t n = 0;

	snprintf(out[n++], 256, "%s", name);
	if (type == MT_METRICS_HISTOGRAM)
		for (size_t i = 0; i < MT_ARRAY_SIZE(hist); i++)
			snprintf(out[n++], 256, "%s%s", name, hist[i]);
	return n;
}

static const char *const type_names[] = {
    [MT_METRICS_COUNTER] = "counter",
    [MT_METRICS_GAUGE] = "gauge",
    [MT_METRICS_HISTOGRAM] = "histogram",
};

static int check_family(const struct mt_metrics *reg, enum mt_metrics_type type,
			const char *name, const char *help,
			const char *const *labels, const double *buckets,
			size_t n_buckets, char *err, size_t errlen)
{
	char mine[4][256], theirs[4][256];
	size_t n_mine, n_labels = 0;

	if ((unsigned)type >= MT_ARRAY_SIZE(type_names)) {
		snprintf(err, errlen, "metric type %d unknown", (int)type);
		return -EINVAL;
	}
	if (!name || !name_valid(name, true) || strlen(name) > 200) {
		snprintf(err, errlen,
			 "metric name \"%s\": must match "
			 "[a-zA-Z_:][a-zA-Z0-9_:]* (at most 200 characters)",
			 name ? name : "(null)");
		return -EINVAL;
	}
	if (type == MT_METRICS_COUNTER && !ends_with(name, "_total")) {
		snprintf(err, errlen,
			 "counter \"%s\": counter names must end in _total",
			 name);
		return -EINVAL;
	}
	if (!help || !utf8_valid(help)) {
		snprintf(err, errlen, "metric %s: help text is not UTF-8",
			 name);
		return -EINVAL;
	}
	for (; labels && labels[n_labels]; n_labels++) {
		const char *l = labels[n_labels];

		if (n_labels == MT_METRICS_MAX_LABELS) {
			snprintf(err, errlen, "metric %s: more than %d labels",
				 name, MT_METRICS_MAX_LABELS);
			return -EINVAL;
		}
		if (!name_valid(l, false) || strncmp(l, "__", 2) == 0) {
			snprintf(err, errlen,
				 "metric %s: label name \"%s\": must match "
				 "[a-zA-Z_][a-zA-Z0-9_]* and not start with __",
				 name, l);
			return -EINVAL;
		}
		if (type == MT_METRICS_HISTOGRAM && strcmp(l, "le") == 0) {
			snprintf(err, errlen,
				 "histogram %s: label name \"le\" is reserved "
				 "for its buckets",
				 name);
			return -EINVAL;
		}
		for (size_t j = 0; j < n_labels; j++) {
			if (strcmp(labels[j], l) == 0) {
				snprintf(
				    err, errlen,
				    "metric %s: label name \"%s\" repeated",
				    name, l);
				return -EINVAL;
			}
		}
	}
	if (type == MT_METRICS_HISTOGRAM) {
		if (n_buckets < 1 || n_buckets > MT_METRICS_MAX_BUCKETS ||
		    !buckets) {
			snprintf(err, errlen,
				 "histogram %s: %zu buckets, want 1-%d", name,
				 n_buckets, MT_METRICS_MAX_BUCKETS);
			return -EINVAL;
		}
		for (size_t i = 0; i < n_buckets; i++) {
			if (!isfinite(buckets[i]) ||
			    (i > 0 && buckets[i] <= buckets[i - 1])) {
				snprintf(err, errlen,
					 "histogram %s: bucket bounds must be "
					 "finite and strictly increasing "
					 "(bucket %zu: %g)",
					 name, i, buckets[i]);
				return -EINVAL;
			}
		}
	} else if (n_buckets) {
		snprintf(err, errlen, "metric %s: buckets on a %s", name,
			 type_names[type]);
		return -EINVAL;
	}

	n_mine = family_names(type, name, mine);
	for (const struct mt_metrics_family *f = reg->first; f; f = f->next) {
		size_t n_theirs = family_names(f->type, f->name, theirs);

		for (size_t i = 0; i < n_mine; i++) {
			for (size_t j = 0; j < n_theirs; j++) {
				if (strcmp(mine[i], theirs[j]) != 0)
					continue;
				if (i == 0 && j == 0)
					snprintf(err, errlen,
						 "metric %s already registered",
						 name);
				else
					snprintf(err, errlen,
						 "metric %s: sample name %s is "
						 "taken by %s %s",
						 name, mine[i],
						 type_names[f->type], f->name);
				return -EEXIST;
			}
		}
	}
	return 0;
}

/* ---- series ---- */

/* FNV-1a over the values and their terminators (so ("ab","c") and
 * ("a","bc") differ). */
static uint32_t values_hash(const char *const *values, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = (const unsigned char *)values[i];

		do {
			h ^= *p;
			h *= 16777619u;
		} while (*p++);
	}
	return h;
}

static bool series_matches(const struct series *s, const char *const *values,
			   size_t n)
{
	const char *p = s->key;

	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(values[i]);

		if ((size_t)(p - s->key) + len >= s->keylen ||
		    memcmp(p, values[i], len + 1) != 0)
			return false;
		p += len + 1;
	}
	return true;
}

static struct series *series_find(const struct mt_metrics_family *f,
				  const char *const *values, uint32_t hash)
{
	struct series *s;

	if (!f->table)
		return NULL;
	for (s = f->table[hash & (f->table_size - 1)]; s; s = s->hnext)
		if (s->hash == hash && series_matches(s, values, f->n_labels))
			return s;
	return NULL;
}

/* A growable output buffer; a failed allocation sticks (oom) and later
 * appends do nothing, so callers check once at the end. */
struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static bool sb_reserve(struct sbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (b->len + more < b->cap)
		return true;
	cap = b->cap ? b->cap : 16;
	while (cap <= b->len + more)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	b->p[b->len] = '\0';
	return true;
}

/* Gives back the slack of a buffer kept for long (a series' strings). */
static void sb_shrink(struct sbuf *b)
{
	char *p;

	if (b->oom || !b->p)
		return;
	p = realloc(b->p, b->len + 1);
	if (p) {
		b->p = p;
		b->cap = b->len + 1;
	}
}

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (!sb_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* Appends s escaped for the text format: backslash and newline always,
 * double quote in label values only (HELP lines keep it as is). */
static void sb_escape(struct sbuf *b, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			sb_put(b, "\\\\", 2);
		else if (*s == '\n')
			sb_put(b, "\\n", 2);
		else if (*s == '"' && quote)
			sb_put(b, "\\\"", 2);
		else
			sb_put(b, s, 1);
	}
}

/* The shortest of %.15g/%.17g that reads back as v; Prometheus's own
 * spellings of the special values. Integers print as integers. (Assumes the
 * C locale's decimal point, as every mt daemon runs.) */
static void fmt_double(char *buf, size_t len, double v)
{
	if (isnan(v))
		snprintf(buf, len, "NaN");
	else if (isinf(v))
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		snprintf(buf, len, "%.0f", v);
	else if (snprintf(buf, len, "%.15g", v), strtod(buf, NULL) != v)
		snprintf(buf, len, "%.17g", v);
}

static int table_grow(struct mt_metrics_family *f)
{
	size_t size = f->table_size ? f->table_size * 2 : 16;
	struct series **t = calloc(size, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (struct series *s = f->first; s; s = s->next) {
		size_t i = s->hash & (size - 1);

		s->hnext = t[i];
		t[i] = s;
	}
	free(f->table);
	f->table = t;
	f->table_size = size;
	return 0;
}

static struct series *series_new(struct mt_metrics_family *f,
				 const char *const *values, uint32_t hash)
{
	struct sbuf key = {0}, labels = {0};
	struct series *s;
	size_t i;

	if (f->n_series >= f->table_size && table_grow(f) < 0)
		return NULL;
	s = calloc(1, sizeof(*s) + (f->type == MT_METRICS_HISTOGRAM
					? f->n_buckets * sizeof(uint64_t)
					: 0));
	if (!s)
		return NULL;
	sb_reserve(&labels, 0);
	sb_reserve(&key, 0);
	for (i = 0; i < f->n_labels; i++) {
		sb_put(&key, values[i], strlen(values[i]) + 1);
		if (i)
			sb_puts(&labels, ",");
		sb_puts(&labels, f->labels[i]);
		sb_puts(&labels, "=\"");
		sb_escape(&labels, values[i], true);
		sb_puts(&labels, "\"");
	}
	if (key.oom || labels.oom) {
		free(key.p);
		free(labels.p);
		free(s);
		return NULL;
	}
	sb_shrink(&key);
	sb_shrink(&labels);
	s->key = key.p;
	s->keylen = key.len;
	s->labels = labels.p;
	s->hash = hash;
	s->hnext = f->table[hash & (f->table_size - 1)];
	f->table[hash & (f->table_size - 1)] = s;
	s->prev = f->last;
	if (f->last)
		f->last->next = s;
	else
		f->first = s;
	f->last = s;
	f->n_series++;
	return s;
}

static void series_unlink(struct mt_metrics_family *f, struct series *s)
{
	struct series **pp = &f->table[s->hash & (f->table_size - 1)];

	while (*pp != s)
		pp = &(*pp)->hnext;
	*pp = s->hnext;
	if (s->prev)
		s->prev->next = s->next;
	else
		f->first = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		f->last = s->prev;
	f->n_series--;
	series_free(s);
}

int mt_metrics_register(struct mt_metrics *reg, enum mt_metrics_type type,
			const char *name, const char *help,
			const char *const *labels, const double *buckets,
			size_t n_buckets, struct mt_metrics_family **out,
			char *err, size_t errlen)
{
	struct mt_metrics_family *f;
	int r;

	pthread_mutex_lock(&reg->lock);
	r = check_family(reg, type, name, help, labels, buckets, n_buckets, err,
			 errlen);
	if (r < 0)
		goto out;
	r = -ENOMEM;
	f = calloc(1, sizeof(*f));
	if (!f)
		goto out;
	f->reg = reg;
	f->type = type;
	f->name = strdup(name);
	f->help = strdup(help);
	if (!f->name || !f->help)
		goto fail;
	for (; labels && labels[f->n_labels]; f->n_labels++)
		if (!(f->labels[f->n_labels] = strdup(labels[f->n_labels])))
			goto fail;
	f->n_buckets = n_buckets;
	if (n_buckets)
		memcpy(f->buckets, buckets, n_buckets * sizeof(*buckets));
	/* A label-less family has one series, exported from the start. */
	if (!f->n_labels && !series_new(f, NULL, values_hash(NULL, 0)))
		goto fail;
	if (reg->last)
		reg->last->next = f;
	else
		reg->first = f;
	reg->last = f;
	*out = f;
	r = 0;
	goto out;
fail:
	snprintf(err, errlen, "metric %s: out of memory", name);
	family_free(f);
out:
	pthread_mutex_unlock(&reg->lock);
	return r;
}

/* Reads exactly f->n_labels non-NULL values then the NULL sentinel. */
static int va_values(const struct mt_metrics_family *f, va_list ap,
		     const char **values)
{
	for (size_t i = 0; i < f->n_labels; i++)
		if (!(values[i] = va_arg(ap, const char *)))
			return -EINVAL;
	return va_arg(ap, const char *) ? -EINVAL : 0;
}

static int array_values(const struct mt_metrics_family *f,
			const char *const *in, const char **values)
{
	size_t i = 0;

	for (; in && in[i]; i++) {
		if (i == f->n_labels)
			return -EINVAL;
		values[i] = in[i];
	}
	return i == f->n_labels ? 0 : -EINVAL;
}

static void apply(struct series *s, const struct mt_metrics_family *f,
		  enum mt_metrics_op op, double v)
{
	size_t i;

	switch (op) {
	case MT_METRICS_OP_COUNTER_ADD:
	case MT_METRICS_OP_GAUGE_ADD:
		s->value += v;
		break;
	case MT_METRICS_OP_COUNTER_SET:
	case MT_METRICS_OP_GAUGE_SET:
		s->value = v;
		break;
	case MT_METRICS_OP_OBSERVE:
		/* Buckets are few (<= 32): a linear scan beats a search. */
		for (i = 0; i < f->n_buckets && v > f->buckets[i]; i++)
			;
		if (i < f->n_buckets)
			s->buckets[i]++;
		s->count++;
		s->value += v;
		break;
	}
}

static bool op_fits(const struct mt_metrics_family *f, enum mt_metrics_op op,
		    double v)
{
	switch (op) {
	case MT_METRICS_OP_COUNTER_ADD:
	case MT_METRICS_OP_COUNTER_SET:
		return f->type == MT_METRICS_COUNTER && isfinite(v) && v >= 0;
	case MT_METRICS_OP_GAUGE_SET:
	case MT_METRICS_OP_GAUGE_ADD:
		return f->type == MT_METRICS_GAUGE;
	case MT_METRICS_OP_OBSERVE:
		return f->type == MT_METRICS_HISTOGRAM && !isnan(v);
	}
	return false;
}

static int update(struct mt_metrics_family *f, enum mt_metrics_op op, double v,
		  const char *const *values)
{
	uint32_t hash = values_hash(values, f->n_labels);
	struct series *s;
	int r = 0;

	if (!op_fits(f, op, v))
		return -EINVAL;
	pthread_mutex_lock(&f->reg->lock);
	s = series_find(f, values, hash);
	if (!s) {
		/* Checked on creation only: a stored key is valid UTF-8, so
		 * an invalid value never matches one. */
		for (size_t i = 0; i < f->n_labels && !r; i++)
			if (!utf8_valid(values[i]))
				r = -EINVAL;
		if (!r && !(s = series_new(f, values, hash)))
			r = -ENOMEM;
	}
	if (s)
		apply(s, f, op, v);
	pthread_mutex_unlock(&f->reg->lock);
	return r;
}

int mt_metrics_update_l(struct mt_metrics_family *fam, enum mt_metrics_op op,
			double v, ...)
{
	const char *values[MT_METRICS_MAX_LABELS];
	va_list ap;
	int r;

	va_start(ap, v);
	r = va_values(fam, ap, values);
	va_end(ap);
	return r < 0 ? r : update(fam, op, v, values);
}

int mt_metrics_update_v(struct mt_metrics_family *fam, enum mt_metrics_op op,
			double v, const char *const *in)
{
	const char *values[MT_METRICS_MAX_LABELS];
	int r = array_values(fam, in, values);

	return r < 0 ? r : update(fam, op, v, values);
}

int mt_metrics_get_l(struct mt_metrics_family *fam, double *v, ...)
{
	const char *values[MT_METRICS_MAX_LABELS];
	struct series *s;
	va_list ap;
	int r;

	va_start(ap, v);
	r = va_values(fam, ap, values);
	va_end(ap);
	if (r < 0)
		return r;
	pthread_mutex_lock(&fam->reg->lock);
	s = series_find(fam, values, values_hash(values, fam->n_labels));
	if (s)
		*v = s->value;
	pthread_mutex_unlock(&fam->reg->lock);
	return s ? 0 : -ENOENT;
}

static int series_delete(struct mt_metrics_family *f, const char *const *values)
{
	struct series *s;

	pthread_mutex_lock(&f->reg->lock);
	s = series_find(f, values, values_hash(values, f->n_labels));
	if (s)
		series_unlink(f, s);
	pthread_mutex_unlock(&f->reg->lock);
	return s ? 0 : -ENOENT;
}

int mt_metrics_delete_l(struct mt_metrics_family *fam, ...)
{
	const char *values[MT_METRICS_MAX_LABELS];
	va_list ap;
	int r;

	va_start(ap, fam);
	r = va_values(fam, ap, values);
	va_end(ap);
	return r < 0 ? r : series_delete(fam, values);
}

int mt_metrics_delete_v(struct mt_metrics_family *fam, const char *const *in)
{
	const char *values[MT_METRICS_MAX_LABELS];
	int r = array_values(fam, in, values);

	return r < 0 ? r : series_delete(fam, values);
}

int mt_metrics_delete_label(struct mt_metrics *reg, const char *label,
			    const char *value)
{
	int n = 0;

	pthread_mutex_lock(&reg->lock);
	for (struct mt_metrics_family *f = reg->first; f; f = f->next) {
		struct series *s, *next;
		size_t idx;

		for (idx = 0; idx < f->n_labels; idx++)
			if (strcmp(f->labels[idx], label) == 0)
				break;
		if (idx == f->n_labels)
			continue;
		for (s = f->first; s; s = next) {
			const char *p = s->key;

			next = s->next;
			for (size_t i = 0; i < idx; i++)
				p += strlen(p) + 1;
			if (strcmp(p, value) == 0) {
				series_unlink(f, s);
				n++;
			}
		}
	}
	pthread_mutex_unlock(&reg->lock);
	return n;
}

void mt_metrics_reset(struct mt_metrics_family *fam)
{
	pthread_mutex_lock(&fam->reg->lock);
	while (fam->first)
		series_unlink(fam, fam->first);
	pthread_mutex_unlock(&fam->reg->lock);
}

size_t mt_metrics_series_count(struct mt_metrics_family *fam)
{
	size_t n;

	pthread_mutex_lock(&fam->reg->lock);
	n = fam->n_series;
	pthread_mutex_unlock(&fam->reg->lock);
	return n;
}

/* ---- exposition ---- */

/* name[suffix]{labels[,le="bound"]} value */
static void render_sample(struct sbuf *b, const struct mt_metrics_family *f,
			  const char *suffix, const struct series *s,
			  const char *le, double v)
{
	char num[40];

	sb_puts(b, f->name);
	sb_puts(b, suffix);
	if (*s->labels || le) {
		sb_puts(b, "{");
		sb_puts(b, s->labels);
		if (le) {
			sb_puts(b, *s->labels ? ",le=\"" : "le=\"");
			sb_puts(b, le);
			sb_puts(b, "\"");
		}
		sb_puts(b, "}");
	}
	fmt_double(num, sizeof(num), v);
	sb_puts(b, " ");
	sb_puts(b, num);
	sb_puts(b, "\n");
}

static void render_family(struct sbuf *b, const struct mt_metrics_family *f)
{
	char le[40];

	sb_puts(b, "# HELP ");
	sb_puts(b, f->name);
	sb_puts(b, " ");
	sb_escape(b, f->help, false);
	sb_puts(b, "\n# TYPE ");
	sb_puts(b, f->name);
	sb_puts(b, " ");
	sb_puts(b, type_names[f->type]);
	sb_puts(b, "\n");
	for (const struct series *s = f->first; s; s = s->next) {
		uint64_t cum = 0;

		if (f->type != MT_METRICS_HISTOGRAM) {
			render_sample(b, f, "", s, NULL, s->value);
			continue;
		}
		for (size_t i = 0; i < f->n_buckets; i++) {
			cum += s->buckets[i];
			fmt_double(le, sizeof(le), f->buckets[i]);
			render_sample(b, f, "_bucket", s, le, (double)cum);
		}
		render_sample(b, f, "_bucket", s, "+Inf", (double)s->count);
		render_sample(b, f, "_sum", s, NULL, s->value);
		render_sample(b, f, "_count", s, NULL, (double)s->count);
	}
}

int mt_metrics_render(struct mt_metrics *reg, char **out, size_t *len)
{
	struct sbuf b = {0};
	mt_metrics_collect_fn collect;
	void *ctx;

	pthread_mutex_lock(&reg->lock);
	collect = reg->collect;
	ctx = reg->collect_ctx;
	pthread_mutex_unlock(&reg->lock);
	/* Unlocked: the hook updates the registry through the locked API. */
	if (collect)
		collect(reg, ctx);

	pthread_mutex_lock(&reg->lock);
	sb_reserve(&b, 0);
	for (const struct mt_metrics_family *f = reg->first; f; f = f->next)
		render_family(&b, f);
	pthread_mutex_unlock(&reg->lock);
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/* ---- HTTP server ---- */

enum conn_state {
	CONN_FREE = 0,
	CONN_READ,  /* reading the request headers */
	CONN_WRITE, /* sending head + body */
	CONN_DRAIN, /* response sent and write side shut: read until EOF */
};

struct conn {
	enum conn_state state;
	int fd;
	uint32_t gen; /* tells a reused slot from a stale epoll event */
	uint64_t deadline_ms;
	char *req;
	size_t req_len;
	struct sbuf head;
	char *body;
	size_t body_len, sent;
};

struct mt_metrics_http {
	struct mt_metrics *reg;
	struct mt_metrics_http_opts o;
	int epfd, lfd, tfd;
	int port;
	struct conn *conns;
	size_t n_open;
	bool listen_paused; /* out of fds: retry at resume_ms */
	uint64_t resume_ms;
	uint64_t armed_ms; /* what the timerfd is armed for, 0: nothing */
};

#define TAG_LISTENER UINT64_MAX
#define TAG_TIMER (UINT64_MAX - 1)
#define ACCEPT_BATCH 16
#define LISTEN_RETRY_MS 1000

static const char http_503[] = "HTTP/1.1 503 Service Unavailable\r\n"
			       "Content-Type: text/plain; charset=utf-8\r\n"
			       "Content-Length: 22\r\n"
			       "Connection: close\r\n\r\n"
			       "too many connections\r\n";

void mt_metrics_http_opts_default(struct mt_metrics_http_opts *o)
{
	*o = (struct mt_metrics_http_opts){
	    .timeout_ms = 5000,
	    .max_conns = 16,
	    .max_request = 8192,
	};
}

static uint64_t conn_tag(const struct mt_metrics_http *srv,
			 const struct conn *c)
{
	return (uint64_t)c->gen << 32 | (uint64_t)(c - srv->conns);
}

static int conn_watch(struct mt_metrics_http *srv, struct conn *c, int op,
		      uint32_t events)
{
	struct epoll_event ev = {.events = events,
				 .data.u64 = conn_tag(srv, c)};

	return epoll_ctl(srv->epfd, op, c->fd, &ev) < 0 ? mt_neg_errno() : 0;
}

static void conn_close(struct mt_metrics_http *srv, struct conn *c)
{
	/* close() drops the fd from the epoll set: it is never dup'ed. */
	close(c->fd);
	free(c->req);
	free(c->head.p);
	free(c->body);
	*c = (struct conn){.gen = c->gen + 1, .fd = -1};
	srv->n_open--;
}

/* Sends what is left of head + body; on completion shuts the write side
 * (the client sees EOF) and drains, so that request bytes still in flight
 * do not turn the close into a reset that could destroy the response. */
static void conn_flush(struct mt_metrics_http *srv, struct conn *c)
{
	while (c->sent < c->head.len + c->body_len) {
		struct iovec iov[2];
		struct msghdr msg = {.msg_iov = iov};
		ssize_t n;

		if (c->sent < c->head.len) {
			iov[0] = (struct iovec){c->head.p + c->sent,
						c->head.len - c->sent};
			iov[1] = (struct iovec){c->body, c->body_len};
			msg.msg_iovlen = c->body_len ? 2 : 1;
		} else {
			size_t off = c->sent - c->head.len;

			iov[0] =
			    (struct iovec){c->body + off, c->body_len - off};
			msg.msg_iovlen = 1;
		}
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (c->state != CONN_WRITE) {
				c->state = CONN_WRITE;
				if (conn_watch(srv, c, EPOLL_CTL_MOD, EPOLLOUT))
					conn_close(srv, c);
			}
			return;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			conn_close(srv, c);
			return;
		}
		c->sent += (size_t)n;
	}
	free(c->body);
	c->body = NULL;
	shutdown(c->fd, SHUT_WR);
	c->state = CONN_DRAIN;
	if (conn_watch(srv, c, EPOLL_CTL_MOD, EPOLLIN))
		conn_close(srv, c);
}

/* Queues a response and starts sending it. body is taken over (free()d). */
static void conn_respond(struct mt_metrics_http *srv, struct conn *c,
			 int status, const char *reason, const char *type,
			 char *body, size_t body_len, bool head_only,
			 const char *extra)
{
	char line[256];

	snprintf(line, sizeof(line),
		 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n",
		 status, reason, type, body_len);
	sb_puts(&c->head, line);
	if (extra)
		sb_puts(&c->head, extra);
	sb_puts(&c->head, "\r\n");
	free(c->req);
	c->req = NULL;
	if (head_only) {
		free(body);
		body = NULL;
		body_len = 0;
	}
	c->body = body;
	c->body_len = body_len;
	if (c->head.oom) {
		conn_close(srv, c);
		return;
	}
	conn_flush(srv, c);
}

static void conn_error(struct mt_metrics_http *srv, struct conn *c, int status,
		       const char *reason, const char *extra)
{
	size_t n = strlen(reason) + 1;
	char *body = malloc(n + 1);

	if (!body) {
		conn_close(srv, c);
		return;
	}
	snprintf(body, n + 1, "%s\n", reason);
	conn_respond(srv, c, status, reason, "text/plain; charset=utf-8", body,
		     n, false, extra);
}

static bool token_char(char ch)
{
	return ch > ' ' && ch < 0x7f;
}

/* Splits the request line "METHOD SP target SP HTTP/1.x" in place. */
static bool parse_request_line(char *p, char **method, char **target)
{
	*method = p;
	for (; token_char(*p); p++)
		;
	if (*p != ' ' || p == *method)
		return false;
	*p++ = '\0';
	*target = p;
	for (; token_char(*p); p++)
		;
	if (*p != ' ' || **target != '/')
		return false;
	*p++ = '\0';
	return strcmp(p, "HTTP/1.0") == 0 || strcmp(p, "HTTP/1.1") == 0;
}

/* Answers a complete header block. Only the request line matters: no
 * keep-alive, no content negotiation (Accept-Encoding is ignored: identity
 * is always acceptable). */
static void conn_request(struct mt_metrics_http *srv, struct conn *c)
{
	char *method, *target, *q, *body;
	size_t path_len, len;
	bool head;

	*strpbrk(c->req, "\r\n") = '\0'; /* the block has one: complete */
	if (!parse_request_line(c->req, &method, &target)) {
		conn_error(srv, c, 400, "Bad Request", NULL);
		return;
	}
	q = strchr(target, '?');
	path_len = q ? (size_t)(q - target) : strlen(target);
	if (path_len != strlen("/metrics") ||
	    memcmp(target, "/metrics", path_len) != 0) {
		conn_error(srv, c, 404, "Not Found", NULL);
		return;
	}
	head = strcmp(method, "HEAD") == 0;
	if (!head && strcmp(method, "GET") != 0) {
		conn_error(srv, c, 405, "Method Not Allowed",
			   "Allow: GET, HEAD\r\n");
		return;
	}
	if (mt_metrics_render(srv->reg, &body, &len) < 0) {
		conn_error(srv, c, 500, "Internal Server Error", NULL);
		return;
	}
	conn_respond(srv, c, 200, "OK",
		     "text/plain; version=0.0.4; charset=utf-8", body, len,
		     head, NULL);
}

/* The end of the header block: an empty line (CRLF CRLF, or bare LF LF
 * from hand-typed requests). Only the bytes just read and the three before
 * them need looking at. */
static bool headers_complete(const struct conn *c, size_t from)
{
	size_t i = from > 3 ? from - 3 : 0;

	for (; i < c->req_len; i++) {
		if (c->req[i] != '\n')
			continue;
		if (i >= 1 && c->req[i - 1] == '\n')
			return true;
		if (i >= 2 && c->req[i - 1] == '\r' && c->req[i - 2] == '\n')
			return true;
	}
	return false;
}

static void conn_read(struct mt_metrics_http *srv, struct conn *c)
{
	for (;;) {
		size_t before = c->req_len;
		ssize_t n;

		if (c->req_len == srv->o.max_request) {
			conn_error(srv, c, 431,
				   "Request Header Fields Too Large", NULL);
			return;
		}
		n = recv(c->fd, c->req + c->req_len,
			 srv->o.max_request - c->req_len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			conn_close(srv, c); /* gone before asking */
			return;
		}
		c->req_len += (size_t)n;
		c->req[c->req_len] = '\0';
		/* A NUL would hide the rest from the string functions. */
		if (memchr(c->req + before, '\0', (size_t)n)) {
			conn_error(srv, c, 400, "Bad Request", NULL);
			return;
		}
		if (headers_complete(c, before)) {
			conn_request(srv, c);
			return;
		}
	}
}

static void conn_drain(struct mt_metrics_http *srv, struct conn *c)
{
	char buf[4096];

	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_close(srv, c); /* EOF or error: done */
		return;
	}
}

static void conn_event(struct mt_metrics_http *srv, struct conn *c,
		       uint32_t events)
{
	switch (c->state) {
	case CONN_READ:
		conn_read(srv, c);
		break;
	case CONN_WRITE:
		conn_flush(srv, c);
		break;
	case CONN_DRAIN:
		conn_drain(srv, c);
		break;
	case CONN_FREE:
		break;
	}
}

static void listener_pause(struct mt_metrics_http *srv, bool pause,
			   uint64_t now)
{
	struct epoll_event ev = {.events = pause ? 0 : EPOLLIN,
				 .data.u64 = TAG_LISTENER};

	srv->listen_paused = pause;
	srv->resume_ms = pause ? now + LISTEN_RETRY_MS : 0;
	epoll_ctl(srv->epfd, EPOLL_CTL_MOD, srv->lfd, &ev);
}

static void accept_some(struct mt_metrics_http *srv, uint64_t now)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd =
		    accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c = NULL;

		if (fd < 0) {
			/* Out of fds or memory: the listener would stay
			 * readable and spin the caller's loop, so stop
			 * watching it for a while. */
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				listener_pause(srv, true, now);
			return; /* EAGAIN, or an aborted connection */
		}
		for (size_t j = 0; j < srv->o.max_conns && !c; j++)
			if (srv->conns[j].state == CONN_FREE)
				c = &srv->conns[j];
		if (!c) {
			send(fd, http_503, sizeof(http_503) - 1,
			     MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		c->req = malloc(srv->o.max_request + 1);
		if (!c->req) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->state = CONN_READ;
		c->deadline_ms = now + srv->o.timeout_ms;
		srv->n_open++;
		if (conn_watch(srv, c, EPOLL_CTL_ADD, EPOLLIN) < 0)
			conn_close(srv, c);
	}
}

/* Closes what is past its deadline and arms the timerfd for the next one. */
static void expire(struct mt_metrics_http *srv, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	struct itimerspec its = {0};

	if (srv->listen_paused && now >= srv->resume_ms)
		listener_pause(srv, false, now);
	if (srv->listen_paused)
		next = srv->resume_ms;
	for (size_t i = 0; i < srv->o.max_conns; i++) {
		struct conn *c = &srv->conns[i];

		if (c->state == CONN_FREE)
			continue;
		if (now >= c->deadline_ms)
			conn_close(srv, c);
		else if (c->deadline_ms < next)
			next = c->deadline_ms;
	}
	if (next == UINT64_MAX)
		next = 0; /* disarm */
	if (next == srv->armed_ms)
		return;
	its.it_value.tv_sec = (time_t)(next / 1000);
	its.it_value.tv_nsec = (long)(next % 1000) * 1000000;
	if (timerfd_settime(srv->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		srv->armed_ms = next;
}

int mt_metrics_http_process(struct mt_metrics_http *srv)
{
	struct epoll_event evs[64];
	uint64_t now;
	int n;

	n = epoll_wait(srv->epfd, evs, MT_ARRAY_SIZE(evs), 0);
	if (n < 0)
		return errno == EINTR ? 0 : mt_neg_errno();
	now = mt_monotonic_ms();
	for (int i = 0; i < n; i++) {
		uint64_t tag = evs[i].data.u64;
		uint32_t idx = (uint32_t)tag;
		struct conn *c;

		if (tag == TAG_LISTENER) {
			accept_some(srv, now);
		} else if (tag == TAG_TIMER) {
			uint64_t ticks;
			ssize_t MT_UNUSED r =
			    read(srv->tfd, &ticks, sizeof(ticks));
		} else if (idx < srv->o.max_conns) {
			c = &srv->conns[idx];
			if (c->state != CONN_FREE &&
			    c->gen == (uint32_t)(tag >> 32))
				conn_event(srv, c, evs[i].events);
		}
	}
	expire(srv, mt_monotonic_ms());
	return 0;
}

/* "a.b.c.d:port" or "[v6]:port", numeric only (a daemon resolves no
 * names). */
static int parse_addr(const char *addr, struct sockaddr_storage *ss,
		      socklen_t *sslen, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *hs = addr, *he, *p;
	unsigned long port = 0;
	bool v6 = false;

	if (!addr || !*addr) {
		snprintf(err, errlen, "metrics listen address is empty");
		return -EINVAL;
	}
	if (strncmp(addr, "unix:", 5) == 0) {
		snprintf(err, errlen,
			 "metrics listen address \"%s\": unix sockets are not "
			 "supported (Prometheus scrapes over TCP)",
			 addr);
		return -EINVAL;
	}
	if (*addr == '[') {
		hs = addr + 1;
		he = strchr(hs, ']');
		colon = he ? he + 1 : NULL;
		v6 = true;
	} else {
		colon = strrchr(addr, ':');
		he = colon;
	}
	if (!colon || *colon != ':' || !colon[1] || he == hs ||
	    (size_t)(he - hs) >= sizeof(host)) {
		snprintf(err, errlen,
			 "metrics listen address \"%s\": want IPv4:port or "
			 "[IPv6]:port",
			 addr);
		return -EINVAL;
	}
	for (p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9' || port > 65535)
			break;
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (*p || port > 65535) {
		snprintf(err, errlen,
			 "metrics listen address \"%s\": port \"%s\" is not "
			 "0-65535",
			 addr, colon + 1);
		return -EINVAL;
	}
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';

	memset(ss, 0, sizeof(*ss));
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
			*sslen = sizeof(*s6);
			return 0;
		}
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
			*sslen = sizeof(*s4);
			return 0;
		}
	}
	snprintf(err, errlen,
		 "metrics listen address \"%s\": \"%s\" is not a numeric %s "
		 "address",
		 addr, host, v6 ? "IPv6" : "IPv4");
	return -EINVAL;
}

static int check_opts(const struct mt_metrics_http_opts *o, char *err,
		      size_t errlen)
{
	if (o->timeout_ms < 1 || o->timeout_ms > 600000) {
		snprintf(err, errlen,
			 "metrics server: timeout_ms %u out of range 1-600000",
			 o->timeout_ms);
		return -EINVAL;
	}
	if (o->max_conns < 1 || o->max_conns > 4096) {
		snprintf(err, errlen,
			 "metrics server: max_conns %u out of range 1-4096",
			 o->max_conns);
		return -EINVAL;
	}
	if (o->max_request < 256 || o->max_request > 1048576) {
		snprintf(err, errlen,
			 "metrics server: max_request %u out of range "
			 "256-1048576",
			 o->max_request);
		return -EINVAL;
	}
	return 0;
}

int mt_metrics_http_listen(struct mt_metrics *reg, const char *addr,
			   const struct mt_metrics_http_opts *opts,
			   struct mt_metrics_http **out, char *err,
			   size_t errlen)
{
	struct mt_metrics_http *srv;
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct epoll_event ev = {.events = EPOLLIN};
	const char *step;
	int one = 1, r;

	r = parse_addr(addr, &ss, &sslen, err, errlen);
	if (r < 0)
		return r;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->reg = reg;
	srv->epfd = srv->lfd = srv->tfd = -1;
	if (opts)
		srv->o = *opts;
	else
		mt_metrics_http_opts_default(&srv->o);
	r = check_opts(&srv->o, err, errlen);
	if (r < 0)
		goto fail;
	r = -ENOMEM;
	srv->conns = calloc(srv->o.max_conns, sizeof(*srv->conns));
	if (!srv->conns) {
		snprintf(err, errlen, "metrics listener %s: out of memory",
			 addr);
		goto fail;
	}
	for (size_t i = 0; i < srv->o.max_conns; i++)
		srv->conns[i].fd = -1;

	step = "socket";
	srv->lfd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->lfd < 0)
		goto fail_errno;
	/* A restarted daemon must not wait out TIME_WAIT of its old port. */
	setsockopt(srv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* "[::]" means IPv6 only: "0.0.0.0" is spelled out when wanted. */
	if (ss.ss_family == AF_INET6)
		setsockopt(srv->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			   sizeof(one));
	step = "bind";
	if (bind(srv->lfd, (struct sockaddr *)&ss, sslen) < 0)
		goto fail_errno;
	step = "listen";
	if (listen(srv->lfd, 64) < 0)
		goto fail_errno;
	step = "getsockname";
	sslen = sizeof(ss);
	if (getsockname(srv->lfd, (struct sockaddr *)&ss, &sslen) < 0)
		goto fail_errno;
	srv->port = ntohs(ss.ss_family == AF_INET6
			      ? ((struct sockaddr_in6 *)&ss)->sin6_port
			      : ((struct sockaddr_in *)&ss)->sin_port);

	step = "epoll_create1";
	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv->epfd < 0)
		goto fail_errno;
	step = "timerfd_create";
	srv->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (srv->tfd < 0)
		goto fail_errno;
	step = "epoll_ctl";
	ev.data.u64 = TAG_LISTENER;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->lfd, &ev) < 0)
		goto fail_errno;
	ev.data.u64 = TAG_TIMER;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->tfd, &ev) < 0)
		goto fail_errno;
	*out = srv;
	return 0;

fail_errno:
	r = mt_neg_errno();
	snprintf(err, errlen, "metrics listener %s: %s: %s", addr, step,
		 strerror(-r));
fail:
	mt_metrics_http_free(srv);
	return r;
}

void mt_metrics_http_free(struct mt_metrics_http *srv)
{
	if (!srv)
		return;
	for (size_t i = 0; srv->conns && i < srv->o.max_conns; i++)
		if (srv->conns[i].state != CONN_FREE)
			conn_close(srv, &srv->conns[i]);
	free(srv->conns);
	if (srv->tfd >= 0)
		close(srv->tfd);
	if (srv->lfd >= 0)
		close(srv->lfd);
	if (srv->epfd >= 0)
		close(srv->epfd);
	free(srv);
}

int mt_metrics_http_fd(const struct mt_metrics_http *srv)
{
	return srv->epfd;
}

int mt_metrics_http_port(const struct mt_metrics_http *srv)
{
	return srv->port;
}

size_t mt_metrics_http_conns(const struct mt_metrics_http *srv)
{
	return srv->n_open;
}
