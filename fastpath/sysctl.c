#include "sysctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "mt_cleanup.h"
#include "netns.h"

struct mt_sysctl_fd {
	struct mt_sysctl_fd *next;
	int fd;
	char key[];
};

/* Open files of one namespace, hashed by key: the metal holds one per owned
 * link, a thousand on a full metal. */
struct mt_sysctl_cache {
	struct mt_sysctl_fd **b;
	size_t nb, n;
};

static uint32_t key_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static struct mt_sysctl_fd **bucket(struct mt_sysctl_cache *c, const char *key)
{
	return &c->b[key_hash(key) & (c->nb - 1)];
}

static int cache_grow(struct mt_sysctl_cache *c)
{
	size_t nb = c->nb ? c->nb * 2 : 8;
	struct mt_sysctl_fd **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < c->nb; i++) {
		struct mt_sysctl_fd *s = c->b[i], *next;

		for (; s; s = next) {
			struct mt_sysctl_fd **to =
			    &b[key_hash(s->key) & (nb - 1)];

			next = s->next;
			s->next = *to;
			*to = s;
		}
	}
	free(c->b);
	c->b = b;
	c->nb = nb;
	return 0;
}

bool mt_sysctl_key_valid(const char *key)
{
	if (!*key || key[0] == '/' || strstr(key, ".."))
		return false;
	for (const char *p = key; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == '.' || *p == '/' || *p == '-'))
			return false;
	return true;
}

struct open_args {
	char path[512];
};

static int open_path(void *arg)
{
	struct open_args *a = arg;
	int fd = open(a->path, O_RDWR | O_CLOEXEC);

	if (fd < 0 && errno == EACCES) /* a read-only key */
		fd = open(a->path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? mt_neg_errno() : fd;
}

static struct mt_sysctl_fd *cached(struct mt_nsh *h, const char *key);
static int cache_add(struct mt_nsh *h, const char *key, int fd);

/* The cached fd of key in h, opened inside h's namespace on first use. */
static int sysctl_fd(struct mt_rtnl *ctx, struct mt_nsh *h, const char *key)
{
	struct mt_sysctl_fd *s = cached(h, key);
	struct open_args a;
	int fd;

	if (s)
		return s->fd;
	if (!mt_sysctl_key_valid(key))
		return -EINVAL;
	if ((size_t)snprintf(a.path, sizeof(a.path), "/proc/sys/%s", key) >=
	    sizeof(a.path))
		return -ENAMETOOLONG;
	if (h == ctx->metal_ns)
		fd = open_path(&a);
	else
		fd = mt_netns_run(h->nsfd, ctx->metal_ns->nsfd, open_path, &a);
	if (fd < 0)
		return fd;
	return cache_add(h, key, fd);
}

static struct mt_sysctl_fd *cached(struct mt_nsh *h, const char *key)
{
	if (!h->sysctls || !h->sysctls->nb)
		return NULL;
	for (struct mt_sysctl_fd *s = *bucket(h->sysctls, key); s; s = s->next)
		if (strcmp(s->key, key) == 0)
			return s;
	return NULL;
}

static int cache_add(struct mt_nsh *h, const char *key, int fd)
{
	struct mt_sysctl_fd *s = malloc(sizeof(*s) + strlen(key) + 1);
	struct mt_sysctl_cache *c = h->sysctls;
	struct mt_sysctl_fd **b;

	if (!c)
		c = h->sysctls = calloc(1, sizeof(*c));
	if (!s || !c || (c->n >= c->nb && cache_grow(c) < 0)) {
		free(s);
		close(fd);
		return -ENOMEM;
	}
	s->fd = fd;
	strcpy(s->key, key);
	b = bucket(c, key);
	s->next = *b;
	*b = s;
	c->n++;
	return fd;
}

struct open_many_args {
	const char *const *keys;
	int *fds;
	size_t n;
};

static int open_many_inside(void *arg)
{
	struct open_many_args *m = arg;
	struct open_args a;

	for (size_t i = 0; i < m->n; i++) {
		m->fds[i] = -1;
		if (!m->keys[i])
			continue;
		snprintf(a.path, sizeof(a.path), "/proc/sys/%s", m->keys[i]);
		m->fds[i] = open_path(&a);
	}
	return 0;
}

int mt_sysctl_open_many(struct mt_rtnl *ctx, struct mt_nsh *h,
			const char *const *keys, size_t n)
{
	_cleanup_free_ const char **want = calloc(n ? n : 1, sizeof(*want));
	_cleanup_free_ int *fds = calloc(n ? n : 1, sizeof(*fds));
	struct open_many_args m = {.keys = NULL, .fds = fds, .n = n};
	size_t missing = 0;
	int r = 0;

	if (!want || !fds)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (cached(h, keys[i]) || !mt_sysctl_key_valid(keys[i]) ||
		    strlen(keys[i]) > 400)
			continue;
		want[i] = keys[i];
		missing++;
	}
	if (!missing)
		return 0;
	m.keys = want;
	if (h == ctx->metal_ns)
		open_many_inside(&m);
	else
		r = mt_netns_run(h->nsfd, ctx->metal_ns->nsfd, open_many_inside,
				 &m);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (fds[i] < 0)
			continue;
		if (r == 0 && cache_add(h, want[i], fds[i]) < 0)
			r = -ENOMEM;
		else if (r < 0)
			close(fds[i]);
	}
	return r;
}

static void sysctl_forget(struct mt_nsh *h, const char *key)
{
	if (!cached(h, key))
		return;
	for (struct mt_sysctl_fd **pp = bucket(h->sysctls, key); *pp;
	     pp = &(*pp)->next) {
		if (strcmp((*pp)->key, key) == 0) {
			struct mt_sysctl_fd *s = *pp;

			*pp = s->next;
			close(s->fd);
			free(s);
			h->sysctls->n--;
			return;
		}
	}
}

void mt_sysctl_close_all(struct mt_nsh *h)
{
	struct mt_sysctl_cache *c = h->sysctls;

	if (!c)
		return;
	for (size_t i = 0; i < c->nb; i++) {
		while (c->b[i]) {
			struct mt_sysctl_fd *s = c->b[i];

			c->b[i] = s->next;
			close(s->fd);
			free(s);
		}
	}
	free(c->b);
	free(c);
	h->sysctls = NULL;
}

/* A cached file whose sysctl table went away (its interface was deleted)
 * fails with ENOENT: reopen once, the key may exist again. */
#define RETRY_STALE(expr)                      \
	({                                     \
		int _r = (expr);               \
		if (_r == -ENOENT) {           \
			sysctl_forget(h, key); \
			_r = (expr);           \
		}                              \
		_r;                            \
	})

static int read_once(struct mt_rtnl *ctx, struct mt_nsh *h, const char *key,
		     char *buf, size_t len)
{
	int fd = sysctl_fd(ctx, h, key);
	ssize_t n;

	if (fd < 0)
		return fd;
	n = pread(fd, buf, len - 1, 0);
	if (n < 0)
		return mt_neg_errno();
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	return (int)n;
}

int mt_sysctl_read(struct mt_rtnl *ctx, struct mt_nsh *h, const char *key,
		   char *buf, size_t len)
{
	return RETRY_STALE(read_once(ctx, h, key, buf, len));
}

static int write_once(struct mt_rtnl *ctx, struct mt_nsh *h, const char *key,
		      const char *value)
{
	int fd = sysctl_fd(ctx, h, key);
	size_t n = strlen(value);

	if (fd < 0)
		return fd;
	if (pwrite(fd, value, n, 0) != (ssize_t)n)
		return mt_neg_errno();
	return 1;
}

int mt_sysctl_write(struct mt_rtnl *ctx, struct mt_nsh *h, const char *key,
		    const char *value)
{
	char cur[MT_SYSCTL_VALUE_MAX];
	int r;

	r = mt_sysctl_read(ctx, h, key, cur, sizeof(cur));
	if (r < 0)
		return r;
	if (strcmp(cur, value) == 0)
		return 0;
	return RETRY_STALE(write_once(ctx, h, key, value));
}
