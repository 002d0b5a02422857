/* Named network namespaces, compatible with `ip netns`: a namespace NAME is
 * an nsfs bind mount at /run/netns/NAME, and /run/netns itself is a shared
 * mount so the mounts propagate between mount namespaces (iproute2 does the
 * same). Also the one audited helper that enters a namespace. */
#ifndef MT_FASTPATH_NETNS_H
#define MT_FASTPATH_NETNS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define MT_NETNS_RUN_DIR "/run/netns"

struct mt_netns_entry {
	char name[NAME_MAX + 1];
	dev_t dev; /* nsfs identity: equal dev+ino = the same namespace */
	ino_t ino;
};

/* True for a name usable as /run/netns/NAME: 1-255 characters of
 * [A-Za-z0-9_.-], not starting with '.', so it can never leave the
 * directory. */
bool mt_netns_name_valid(const char *name);

/* Creates namespace name (a short-lived thread unshares CLONE_NEWNET and
 * bind-mounts its /proc/self/task/<tid>/ns/net). An existing one is kept;
 * a stale empty file left by an interrupted create is reused. Returns 1 when
 * created, 0 when it existed, or -errno. */
int mt_netns_create(const char *name);
/* The same without first making sure /run/netns exists and is a shared
 * mount: for many creations in a row, after one mt_netns_run_dir_prepare
 * (which iproute2 does before each `netns add`). Safe on several threads. */
int mt_netns_create_prepared(const char *name);
/* Makes /run/netns exist and be a shared mount. Returns 0 or -errno. */
int mt_netns_run_dir_prepare(void);

/* Unmounts and unlinks /run/netns/NAME; the kernel frees the namespace (and
 * its links) once the last reference is gone. Returns 1 when deleted, 0 when
 * it did not exist, or -errno. */
int mt_netns_delete(const char *name);

/* Opens the namespace (O_RDONLY|O_CLOEXEC), checking it really is one.
 * name "" opens the calling thread's own namespace. -ENOENT if absent. */
int mt_netns_open(const char *name);

/* The nsfs identity of the namespace mounted at /run/netns/NAME; -ENOENT
 * when nothing (or a stale placeholder) is there. */
int mt_netns_stat(const char *name, dev_t *dev, ino_t *ino);

/* The nsfs identity of an open namespace fd. */
int mt_netns_ident(int nsfd, dev_t *dev, ino_t *ino);

/* The mounted namespaces whose name starts with prefix ("" = all), in
 * directory order; stale files that are not mounts are skipped. *out is
 * malloc'd (free it). Returns 0 or -errno; no /run/netns = empty list. */
int mt_netns_list(const char *prefix, struct mt_netns_entry **out, size_t *n);

/* Runs fn(arg) with the calling thread switched into the namespace nsfd,
 * then switches it back to home_fd (the caller's namespace). Returns fn's
 * result, or -errno if the namespace cannot be entered (fn not run). If the
 * thread cannot get back home it aborts the process: continuing in a
 * customer's namespace would apply the metal's changes to the wrong place. */
int mt_netns_run(int nsfd, int home_fd, int (*fn)(void *arg), void *arg);

#endif
