/* mtctl output: human tables and -o json. */
#include "output.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mt_cleanup.h"
#include "mt_json.h"
#include "mt_kstate.h"

#define COL_GAP 2

struct mtctl_table {
	const char *const *headers;
	size_t ncols;
	char **cells;
	size_t n, cap;
};

int mtctl_output_parse(const char *s, enum mtctl_output *out)
{
	if (strcmp(s, "table") == 0)
		*out = MTCTL_OUTPUT_TABLE;
	else if (strcmp(s, "json") == 0)
		*out = MTCTL_OUTPUT_JSON;
	else
		return -EINVAL;
	return 0;
}

struct mtctl_table *mtctl_table_new(const char *const *headers, size_t ncols)
{
	struct mtctl_table *t;

	if (ncols == 0)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->headers = headers;
	t->ncols = ncols;
	return t;
}

void mtctl_table_free(struct mtctl_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

int mtctl_table_cell(struct mtctl_table *t, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16 * t->ncols;
		char **c = realloc(t->cells, cap * sizeof(*c));

		if (!c)
			return -ENOMEM;
		t->cells = c;
		t->cap = cap;
	}
	if (!fmt) {
		s = strdup("");
	} else {
		va_start(ap, fmt);
		r = vasprintf(&s, fmt, ap);
		va_end(ap);
		if (r < 0)
			s = NULL;
	}
	if (!s)
		return -ENOMEM;
	/* A cell is one line: tabs and newlines would break the columns. */
	for (char *p = s; *p; p++)
		if (*p == '\n' || *p == '\t' || *p == '\r')
			*p = ' ';
	t->cells[t->n++] = s;
	return 0;
}

size_t mtctl_table_rows(const struct mtctl_table *t)
{
	return t->n / t->ncols;
}

static const char *cell(const struct mtctl_table *t, size_t row, size_t col)
{
	size_t i = row * t->ncols + col;

	return i < t->n ? t->cells[i] : "";
}

static void print_row(const struct mtctl_table *t, const size_t *width,
		      const char *(*get)(const struct mtctl_table *, size_t,
					 size_t),
		      size_t row, FILE *f)
{
	size_t last = 0;

	/* The last non-empty cell ends the line: no trailing spaces. */
	for (size_t c = 0; c < t->ncols; c++)
		if (*get(t, row, c))
			last = c + 1;
	for (size_t c = 0; c < last; c++) {
		const char *s = get(t, row, c);

		fputs(s, f);
		if (c + 1 < last)
			fprintf(f, "%*s", (int)(width[c] - strlen(s) + COL_GAP),
				"");
	}
	fputc('\n', f);
}

static const char *header(const struct mtctl_table *t, size_t row, size_t col)
{
	return t->headers[col];
}

void mtctl_table_print(const struct mtctl_table *t, FILE *f)
{
	size_t rows = (t->n + t->ncols - 1) / t->ncols;
	_cleanup_free_ size_t *width = calloc(t->ncols, sizeof(*width));

	if (!width)
		return;
	for (size_t c = 0; c < t->ncols; c++) {
		if (t->headers)
			width[c] = strlen(t->headers[c]);
		for (size_t r = 0; r < rows; r++) {
			size_t l = strlen(cell(t, r, c));

			if (l > width[c])
				width[c] = l;
		}
	}
	if (t->headers)
		print_row(t, width, header, 0, f);
	for (size_t r = 0; r < rows; r++)
		print_row(t, width, cell, r, f);
}

int mtctl_json_print(json_t *j, FILE *f)
{
	int r;

	if (!j)
		return -ENOMEM;
	r = json_dumpf(j, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (r < 0)
		return -EIO;
	fputc('\n', f);
	return 0;
}

int mtctl_json_print_message(const ProtobufCMessage *m, FILE *f)
{
	return mtctl_json_print(mt_json_from_message(m), f);
}

char *mtctl_join(char *const *v, size_t n, const char *sep, char *buf,
		 size_t len)
{
	size_t off = 0;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (n == 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	for (size_t i = 0; i < n; i++) {
		int w =
		    snprintf(buf + off, len - off, "%s%s", i ? sep : "", v[i]);

		if (w < 0 || (size_t)w >= len - off) {
			if (len > 4)
				strcpy(buf + len - 4, "...");
			break;
		}
		off += (size_t)w;
	}
	return buf;
}

static void format_ago(uint64_t d, char *buf, size_t len)
{
	if (d < 60000)
		snprintf(buf, len, "%llus ago", (unsigned long long)d / 1000);
	else if (d < 3600000)
		snprintf(buf, len, "%llum ago", (unsigned long long)d / 60000);
	else if (d < 86400000)
		snprintf(buf, len, "%lluh%02llum ago",
			 (unsigned long long)d / 3600000,
			 (unsigned long long)(d / 60000) % 60);
	else
		snprintf(buf, len, "%llud ago",
			 (unsigned long long)d / 86400000);
}

char *mtctl_format_time(uint64_t ms, uint64_t now_ms, char *buf, size_t len)
{
	time_t secs = (time_t)(ms / 1000);
	char when[32], ago[32];
	struct tm tm;

	if (ms == 0) {
		snprintf(buf, len, "never");
		return buf;
	}
	if (!gmtime_r(&secs, &tm) ||
	    !strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(when, sizeof(when), "%llu ms", (unsigned long long)ms);
	if (now_ms >= ms) {
		format_ago(now_ms - ms, ago, sizeof(ago));
		snprintf(buf, len, "%s (%s)", when, ago);
	} else {
		snprintf(buf, len, "%s", when);
	}
	return buf;
}

char *mtctl_format_op(const Mt__Kernel__Op *op, char *buf, size_t len)
{
	char what[384];
	bool del = op->action == MT__KERNEL__OP__ACTION__DELETE;

	/* mt_op_describe starts with the verb ("create netns mt0-acme"). */
	mt_op_describe(op, what, sizeof(what));
	snprintf(buf, len, "%c %s", del ? '-' : '+', what);
	return buf;
}
