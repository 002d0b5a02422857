/* What the root-only kernel checks (the *_check.c programs in
 * tests/integration, and tests/vm/gre_kernel_check.c) share: CHECK that counts failures and goes
 * on, the op actions, a monotonic clock, rotating format buffers. Each
 * check ends with kcheck_exit(). Header-only: every check is one program. */
#ifndef MT_KCHECK_H
#define MT_KCHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kernel.pb-c.h"

static int failures;

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c)) {                                                    \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #c);                                 \
			failures++;                                            \
		}                                                              \
	} while (0)

#define CREATE MT__KERNEL__OP__ACTION__CREATE
#define DELETE MT__KERNEL__OP__ACTION__DELETE

static inline double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* printf into one of 64 rotating buffers of 256 bytes (valid for the next
 * 63 calls): for names and commands built inline. */
static inline char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static inline char *fmt(const char *f, ...)
{
	static char bufs[64][256];
	static int k;
	char *b = bufs[k++ % 64];
	va_list ap;

	va_start(ap, f);
	vsnprintf(b, sizeof(bufs[0]), f, ap);
	va_end(ap);
	return b;
}

static inline bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

#endif
