/* Sysctls of a namespace: /proc/sys files opened while inside that
 * namespace (the kernel resolves /proc/sys/net/... against the opener's
 * namespace, and an open file keeps referring to it), cached per namespace
 * handle and key. */
#ifndef MT_FASTPATH_SYSCTL_H
#define MT_FASTPATH_SYSCTL_H

#include <stdbool.h>
#include <stddef.h>

#include "nl.h"

#define MT_SYSCTL_VALUE_MAX 256

/* True for a key relative to /proc/sys made of [a-z0-9_./-], not empty, not
 * starting with '/', without "..". Interface names inside keys are limited
 * to the same characters (mt's names are). */
bool mt_sysctl_key_valid(const char *key);

/* Reads the value of key in the handle's namespace into buf, without the
 * trailing newline. Returns the length, -ENOENT when the key does not exist
 * there (e.g. the interface is gone), -EINVAL for a bad key, or -errno. */
int mt_sysctl_read(struct mt_rtnl *ctx, struct mt_nsh *h, const char *key,
		   char *buf, size_t len);

/* Writes value unless the key already holds it. Returns 1 when written, 0
 * when it already had that value, or -errno. */
int mt_sysctl_write(struct mt_rtnl *ctx, struct mt_nsh *h, const char *key,
		    const char *value);

/* Opens (and caches) every key of keys[0..n) not yet open in h, entering
 * the namespace once for all of them; keys that do not exist are skipped.
 * Returns 0 or -errno. */
int mt_sysctl_open_many(struct mt_rtnl *ctx, struct mt_nsh *h,
			const char *const *keys, size_t n);

/* Closes every cached sysctl file of the handle. */
void mt_sysctl_close_all(struct mt_nsh *h);

#endif
