/* mtctl output: aligned human tables and key/value blocks, and the stable
 * machine-readable JSON of -o json. Everything here writes to a FILE the
 * caller names (stdout for results; errors never come through here).
 */
#ifndef MTCTL_OUTPUT_H
#define MTCTL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "kernel.pb-c.h"

enum mtctl_output {
	MTCTL_OUTPUT_TABLE = 0,
	MTCTL_OUTPUT_JSON,
};

/* Parses "table" or "json". Returns 0 or -EINVAL. */
int mtctl_output_parse(const char *s, enum mtctl_output *out);

/* ---- tables ---- */

/* A table of ncols columns. Cells are added in row-major order with
 * mtctl_table_cell; a row is complete after ncols cells. Printing pads every
 * column but the last to its widest cell plus two spaces, and never leaves
 * trailing whitespace. headers may be NULL (no header line: a key/value
 * block is a headerless two-column table). */
struct mtctl_table;

/* Returns NULL on ENOMEM. headers, when not NULL, has ncols entries and must
 * outlive the table. */
struct mtctl_table *mtctl_table_new(const char *const *headers, size_t ncols);
void mtctl_table_free(struct mtctl_table *t);

/* Appends one cell (printf format; NULL or "" = empty cell). Returns 0 or
 * -ENOMEM. */
int mtctl_table_cell(struct mtctl_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Number of complete rows. */
size_t mtctl_table_rows(const struct mtctl_table *t);

/* Prints the table; a last, incomplete row is padded with empty cells. */
void mtctl_table_print(const struct mtctl_table *t, FILE *f);

static inline void mtctl_table_freep(struct mtctl_table **t)
{
	mtctl_table_free(*t);
}

/* ---- JSON ---- */

/* Prints one JSON document (2-space indent, keys in insertion order) and a
 * newline. Steals the reference to j (NULL is reported as an error).
 * Returns 0 or -ENOMEM/-EIO. */
int mtctl_json_print(json_t *j, FILE *f);

/* Prints a message as proto3 JSON (mt_json_from_message). */
int mtctl_json_print_message(const ProtobufCMessage *m, FILE *f);

/* ---- formatting helpers ---- */

/* Joins n strings with sep into buf (truncated with "..." when it does not
 * fit). "-" when n == 0. Returns buf. */
char *mtctl_join(char *const *v, size_t n, const char *sep, char *buf,
		 size_t len);

/* A wall-clock timestamp in ms as "2024-05-01 12:00:03 UTC (3m ago)", or
 * "never" for 0. Returns buf. */
char *mtctl_format_time(uint64_t ms, uint64_t now_ms, char *buf, size_t len);

/* "+ create netns mt0-acme" or "- delete route ..." (mt_op_describe with
 * a leading +/-). Returns buf. */
char *mtctl_format_op(const Mt__Kernel__Op *op, char *buf, size_t len);

#endif
