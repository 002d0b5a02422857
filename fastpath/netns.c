#include "netns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "mt_cleanup.h"
#include "mt_log.h"

bool mt_netns_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

static int netns_path(const char *name, char *buf, size_t len)
{
	if (!mt_netns_name_valid(name))
		return -EINVAL;
	snprintf(buf, len, "%s/%s", MT_NETNS_RUN_DIR, name);
	return 0;
}

static bool fd_is_nsfs(int fd)
{
	struct statfs sfs;

	return fstatfs(fd, &sfs) == 0 && sfs.f_type == NSFS_MAGIC;
}

/* The device number of nsfs: a file at /run/netns/NAME with this st_dev is
 * a mounted namespace, anything else a stale placeholder. */
static int nsfs_dev(dev_t *dev)
{
	static dev_t cached;
	static bool have;
	struct stat st;

	if (!have) {
		if (stat("/proc/self/ns/net", &st) < 0)
			return mt_neg_errno();
		cached = st.st_dev;
		have = true;
	}
	*dev = cached;
	return 0;
}

int mt_netns_ident(int nsfd, dev_t *dev, ino_t *ino)
{
	struct stat st;

	if (fstat(nsfd, &st) < 0)
		return mt_neg_errno();
	*dev = st.st_dev;
	*ino = st.st_ino;
	return 0;
}

int mt_netns_stat(const char *name, dev_t *dev, ino_t *ino)
{
	char path[sizeof(MT_NETNS_RUN_DIR) + NAME_MAX + 2];
	struct stat st;
	dev_t nsdev;
	int r;

	r = netns_path(name, path, sizeof(path));
	if (r == 0)
		r = nsfs_dev(&nsdev);
	if (r < 0)
		return r;
	if (stat(path, &st) < 0)
		return mt_neg_errno();
	if (st.st_dev != nsdev)
		return -ENOENT;
	*dev = st.st_dev;
	*ino = st.st_ino;
	return 0;
}

int mt_netns_open(const char *name)
{
	char path[sizeof(MT_NETNS_RUN_DIR) + NAME_MAX + 2];
	_cleanup_close_ int fd = -1;
	int r;

	if (!*name) {
		fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		return fd < 0 ? mt_neg_errno() : MT_TAKE_FD(fd);
	}
	r = netns_path(name, path, sizeof(path));
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mt_neg_errno();
	if (!fd_is_nsfs(fd))
		return -ENOENT; /* a placeholder file, not a namespace */
	return MT_TAKE_FD(fd);
}

/* Makes /run/netns exist and be a shared mount, as iproute2's netns_add
 * does: mark it shared; if it is not a mount point yet (EINVAL), bind-mount
 * it onto itself first. */
int mt_netns_run_dir_prepare(void)
{
	bool made_mount = false;

	if (mkdir(MT_NETNS_RUN_DIR, 0755) < 0 && errno != EEXIST)
		return mt_neg_errno();
	while (mount("", MT_NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL) <
	       0) {
		if (errno != EINVAL || made_mount)
			return mt_neg_errno();
		if (mount(MT_NETNS_RUN_DIR, MT_NETNS_RUN_DIR, "none",
			  MS_BIND | MS_REC, NULL) < 0)
			return mt_neg_errno();
		made_mount = true;
	}
	return 0;
}

struct create_args {
	const char *path;
	int err;
};

/* Runs on a thread of its own: the new namespace becomes this thread's,
 * gets pinned by the bind mount, and dies with the thread otherwise. The
 * caller's thread never changes namespace. */
static void *create_thread(void *arg)
{
	struct create_args *a = arg;
	char proc[64];

	if (unshare(CLONE_NEWNET) < 0) {
		a->err = mt_neg_errno();
		return NULL;
	}
	snprintf(proc, sizeof(proc), "/proc/self/task/%d/ns/net", gettid());
	a->err = mount(proc, a->path, "none", MS_BIND, NULL) < 0
		     ? mt_neg_errno()
		     : 0;
	return NULL;
}

static int create(const char *name, bool prepare);

int mt_netns_create(const char *name)
{
	return create(name, true);
}

int mt_netns_create_prepared(const char *name)
{
	return create(name, false);
}

static int create(const char *name, bool prepare)
{
	char path[sizeof(MT_NETNS_RUN_DIR) + NAME_MAX + 2];
	struct create_args a = {.path = path, .err = 0};
	_cleanup_close_ int fd = -1;
	bool created_file = false;
	pthread_t t;
	int r;

	r = netns_path(name, path, sizeof(path));
	if (r < 0)
		return r;
	r = mt_netns_open(name);
	if (r >= 0) {
		close(r);
		return 0;
	}
	if (r != -ENOENT)
		return r;
	r = prepare ? mt_netns_run_dir_prepare() : 0;
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd >= 0)
		created_file = true;
	else if (errno != EEXIST) /* EEXIST: stale placeholder, reuse it */
		return mt_neg_errno();
	r = -pthread_create(&t, NULL, create_thread, &a);
	if (r == 0) {
		pthread_join(t, NULL);
		r = a.err;
	}
	if (r < 0 && created_file)
		unlink(path);
	return r < 0 ? r : 1;
}

int mt_netns_delete(const char *name)
{
	char path[sizeof(MT_NETNS_RUN_DIR) + NAME_MAX + 2];
	bool mounted;
	int r;

	r = netns_path(name, path, sizeof(path));
	if (r < 0)
		return r;
	r = mt_netns_open(name);
	mounted = r >= 0;
	if (mounted)
		close(r);
	if (mounted && umount2(path, MNT_DETACH) < 0)
		return mt_neg_errno();
	if (unlink(path) < 0) {
		if (errno == ENOENT)
			return mounted ? 1 : 0;
		return mt_neg_errno();
	}
	return mounted ? 1 : 0;
}

int mt_netns_list(const char *prefix, struct mt_netns_entry **out, size_t *n)
{
	_cleanup_free_ struct mt_netns_entry *v = NULL;
	size_t cnt = 0, cap = 0, plen = strlen(prefix);
	struct dirent *de;
	dev_t nsdev;
	DIR *d;
	int r;

	*out = NULL;
	*n = 0;
	r = nsfs_dev(&nsdev);
	if (r < 0)
		return r;
	d = opendir(MT_NETNS_RUN_DIR);
	if (!d)
		return errno == ENOENT ? 0 : mt_neg_errno();
	while ((de = readdir(d))) {
		struct stat st;

		if (strncmp(de->d_name, prefix, plen) != 0 ||
		    !mt_netns_name_valid(de->d_name))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 ||
		    st.st_dev != nsdev)
			continue;
		if (cnt == cap) {
			struct mt_netns_entry *g;

			cap = cap ? cap * 2 : 64;
			g = realloc(v, cap * sizeof(*v));
			if (!g) {
				closedir(d);
				return -ENOMEM;
			}
			v = g;
		}
		snprintf(v[cnt].name, sizeof(v[cnt].name), "%s", de->d_name);
		v[cnt].dev = st.st_dev;
		v[cnt].ino = st.st_ino;
		cnt++;
	}
	closedir(d);
	*out = MT_TAKE_PTR(v);
	*n = cnt;
	return 0;
}

int mt_netns_run(int nsfd, int home_fd, int (*fn)(void *arg), void *arg)
{
	int r;

	if (setns(nsfd, CLONE_NEWNET) < 0)
		return mt_neg_errno();
	r = fn(arg);
	if (setns(home_fd, CLONE_NEWNET) < 0) {
		mt_err("cannot return to the metal's network namespace: %s; "
		       "aborting rather than acting in the wrong namespace",
		       strerror(errno));
		abort();
	}
	return r;
}
