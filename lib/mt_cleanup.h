/* Scoped cleanup helpers (systemd style) and the project's error convention.
 *
 * Functions return 0 (or a count) on success and -errno on failure. The
 * library adapters (libmnl/libnftnl: -1 + errno; nng: positive NNG_E*) live
 * at the boundary, in the files that call those libraries.
 */
#ifndef MT_CLEANUP_H
#define MT_CLEANUP_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define MT_CLEANUP(fn) __attribute__((cleanup(fn)))
#define MT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MT_UNUSED __attribute__((unused))

static inline void mt_freep(void *p)
{
	free(*(void **)p);
}

static inline void mt_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static inline void mt_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

#define _cleanup_free_ MT_CLEANUP(mt_freep)
#define _cleanup_close_ MT_CLEANUP(mt_closep)
#define _cleanup_fclose_ MT_CLEANUP(mt_fclosep)

/* Takes ownership away from a cleanup variable: returns the value and leaves
 * the variable in its "empty" state. */
#define MT_TAKE_PTR(p)                                                         \
	({                                                                     \
		__typeof__(p) _p = (p);                                        \
		(p) = NULL;                                                    \
		_p;                                                            \
	})
#define MT_TAKE_FD(fd)                                                         \
	({                                                                     \
		int _fd = (fd);                                                \
		(fd) = -1;                                                     \
		_fd;                                                           \
	})

/* -errno for the current errno, never 0 (a library that failed without
 * setting errno still reports a failure). */
static inline int mt_neg_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

#endif
