/* A minimal test harness: each test is a function; CHECK records a failure
 * and goes on; the exit status is the number of failed checks (0 = pass). */
#ifndef MT_TEST_H
#define MT_TEST_H

#include <stdio.h>
#include <string.h>

static int mt_test_failures;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			mt_test_failures++;                                    \
		}                                                              \
	} while (0)

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *_a = (a), *_b = (b);                               \
		if (!_a || !_b || strcmp(_a, _b) != 0) {                       \
			fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__,   \
				__LINE__, _a ? _a : "(null)",                 \
				_b ? _b : "(null)");                           \
			mt_test_failures++;                                    \
		}                                                              \
	} while (0)

/* err contains the substring want */
#define CHECK_CONTAINS(err, want)                                              \
	do {                                                                   \
		const char *_e = (err), *_w = (want);                          \
		if (!_e || !strstr(_e, _w)) {                                  \
			fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", \
				__FILE__, __LINE__, _e ? _e : "(null)", _w);   \
			mt_test_failures++;                                    \
		}                                                              \
	} while (0)

#define RUN(test)                                                              \
	do {                                                                   \
		int _before = mt_test_failures;                                \
		test();                                                        \
		fprintf(stderr, "%s %s\n",                                     \
			mt_test_failures == _before ? "ok  " : "FAIL", #test); \
	} while (0)

#define TEST_MAIN_END() return mt_test_failures ? 1 : 0

#endif
