#include "nl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "dump_mirror.h"
#include "mt_cleanup.h"
#include "mt_log.h"
#include "netns.h"
#include "sysctl.h"

/* ---- bounded message builder ------------------------------------------ */

void *mt_nlb_start(struct mt_nlb *b, void *buf, size_t len, uint16_t type,
		   uint16_t flags, size_t hdrlen)
{
	b->nlh = buf;
	b->len = len;
	b->full = len < MNL_NLMSG_HDRLEN + MNL_ALIGN(hdrlen);
	if (b->full)
		return NULL;
	/* libmnl 1.0.4 leaves attribute padding as it finds it */
	memset(buf, 0, len);
	b->nlh = mnl_nlmsg_put_header(buf);
	b->nlh->nlmsg_type = type;
	b->nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	return mnl_nlmsg_put_extra_header(b->nlh, hdrlen);
}

void mt_nlb_put(struct mt_nlb *b, uint16_t type, size_t len, const void *data)
{
	if (!b->full && !mnl_attr_put_check(b->nlh, b->len, type, len, data))
		b->full = true;
}

void mt_nlb_u8(struct mt_nlb *b, uint16_t type, uint8_t v)
{
	mt_nlb_put(b, type, sizeof(v), &v);
}

void mt_nlb_u32(struct mt_nlb *b, uint16_t type, uint32_t v)
{
	mt_nlb_put(b, type, sizeof(v), &v);
}

void mt_nlb_str(struct mt_nlb *b, uint16_t type, const char *s)
{
	mt_nlb_put(b, type, strlen(s) + 1, s);
}

struct nlattr *mt_nlb_nest(struct mt_nlb *b, uint16_t type)
{
	struct nlattr *n = NULL;

	if (!b->full)
		n = mnl_attr_nest_start_check(b->nlh, b->len, type);
	if (!n)
		b->full = true;
	return n;
}

void mt_nlb_nest_end(struct mt_nlb *b, struct nlattr *nest)
{
	if (!b->full && nest)
		mnl_attr_nest_end(b->nlh, nest);
}

int mt_nlb_end(struct mt_nlb *b)
{
	return b->full ? -EMSGSIZE : (int)b->nlh->nlmsg_len;
}

/* ---- sockets ------------------------------------------------------------ */

int mt_nl_open(struct mt_nl **out)
{
	static const int one = 1;
	int rcvbuf = 4 * 1024 * 1024;
	struct timeval tmo = {.tv_sec = 10};
	struct mt_nl *nl;
	int fd;

	nl = calloc(1, sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl->sock)
		goto fail;
	if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0)
		goto fail;
	fd = mnl_socket_get_fd(nl->sock);
	/* Best effort: older kernels lack some of these; none is needed for
	 * correctness (observe filters in userspace as well). */
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
	/* ACK skbs cost ~1 KiB of receive buffer each: make room for a whole
	 * batch. FORCE needs CAP_NET_ADMIN; fall back to the capped one. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf,
		       sizeof(rcvbuf)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo));
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = 1;
	*out = nl;
	return 0;
fail:;
	int r = mt_neg_errno();

	if (nl->sock)
		mnl_socket_close(nl->sock);
	free(nl);
	return r;
}

void mt_nl_close(struct mt_nl *nl)
{
	if (!nl)
		return;
	mnl_socket_close(nl->sock);
	free(nl);
}

int mt_nl_fd(const struct mt_nl *nl)
{
	return mnl_socket_get_fd(nl->sock);
}

/* ---- extended ACKs ------------------------------------------------------ */

static int ext_ack_attr(const struct nlattr *a, void *data)
{
	const char **msg = data;

	if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
	    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
		*msg = mnl_attr_get_str(a);
	return MNL_CB_OK;
}

const char *mt_nl_ack_msg(const struct nlmsghdr *nlh)
{
	const char *msg = NULL;
	size_t off, plen = mnl_nlmsg_get_payload_len(nlh);
	const char *p = mnl_nlmsg_get_payload(nlh);

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return NULL;
	if (nlh->nlmsg_type == NLMSG_DONE) {
		off = sizeof(int);
	} else {
		const struct nlmsgerr *e = (const void *)p;

		if (plen < sizeof(*e))
			return NULL;
		off = sizeof(*e);
		/* Without NLM_F_CAPPED the request follows the header. */
		if (!(nlh->nlmsg_flags & NLM_F_CAPPED) &&
		    e->msg.nlmsg_len > sizeof(e->msg))
			off += MNL_ALIGN(e->msg.nlmsg_len - sizeof(e->msg));
	}
	if (off >= plen)
		return NULL;
	mnl_attr_parse_payload(p + off, plen - off, ext_ack_attr, &msg);
	return msg;
}

/* ---- batches ------------------------------------------------------------ */

struct mt_nl_batch {
	struct mnl_nlmsg_batch *b;
	char *buf;
	uint32_t seq;
	/* per message: cookie and seq; the last one may be an overflow */
	uint32_t cookies[MT_NL_BATCH_MSGS + 1];
	uint32_t seqs[MT_NL_BATCH_MSGS + 1];
	bool acked[MT_NL_BATCH_MSGS + 1];
	size_t n;
	bool overflow;
	char rbuf[8192]; /* ACKs are small; see mt_nl_dump_finish on size */
};

int mt_nl_batch_new(struct mt_nl_batch **out)
{
	struct mt_nl_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	/* One message of room past the limit: mnl_nlmsg_batch_next reports
	 * the message that crossed it as overflow and keeps it for later. */
	b->buf = malloc(MT_NL_BATCH_BYTES + MT_NL_MSG_MAX);
	if (!b->buf) {
		free(b);
		return -ENOMEM;
	}
	b->b = mnl_nlmsg_batch_start(b->buf, MT_NL_BATCH_BYTES);
	b->seq = (uint32_t)time(NULL);
	*out = b;
	return 0;
}

void mt_nl_batch_free(struct mt_nl_batch *b)
{
	if (!b)
		return;
	mnl_nlmsg_batch_stop(b->b);
	free(b->buf);
	free(b);
}

void *mt_nl_batch_current(struct mt_nl_batch *b, size_t *room)
{
	*room = MT_NL_MSG_MAX;
	return mnl_nlmsg_batch_current(b->b);
}

bool mt_nl_batch_add(struct mt_nl_batch *b, uint32_t cookie)
{
	struct nlmsghdr *nlh = mnl_nlmsg_batch_current(b->b);

	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = ++b->seq;
	b->cookies[b->n] = cookie;
	b->seqs[b->n] = nlh->nlmsg_seq;
	b->n++;
	if (!mnl_nlmsg_batch_next(b->b))
		b->overflow = true;
	return b->overflow || b->n >= MT_NL_BATCH_MSGS;
}

size_t mt_nl_batch_count(const struct mt_nl_batch *b)
{
	return b->n;
}

/* Receives one datagram; waits up to 10 s (SO_RCVTIMEO) for it. */
static ssize_t nl_recv(struct mt_nl *nl, void *buf, size_t len, int flags)
{
	ssize_t r;

	do
		r = recv(mt_nl_fd(nl), buf, len, flags);
	while (r < 0 && errno == EINTR);
	return r < 0 ? mt_neg_errno() : r;
}

/* Moves a message that overflowed the batch to the front of the next. */
static void batch_reset(struct mt_nl_batch *b, size_t sent)
{
	size_t keep = b->n - sent;

	mnl_nlmsg_batch_reset(b->b);
	if (keep) {
		b->cookies[0] = b->cookies[sent];
		b->seqs[0] = b->seqs[sent];
	}
	b->n = keep;
	b->overflow = false;
}

int mt_nl_batch_flush(struct mt_nl_batch *b, struct mt_nl *nl, mt_nl_ack_cb cb,
		      void *data)
{
	size_t sent = b->n - (b->overflow ? 1 : 0), pending = sent;
	size_t bytes = mnl_nlmsg_batch_size(b->b);
	int lost = 0;
	ssize_t r;

	if (sent == 0)
		return 0;
	memset(b->acked, 0, sizeof(b->acked));
	if (mnl_socket_sendto(nl->sock, mnl_nlmsg_batch_head(b->b), bytes) <
	    0) {
		int err = mt_neg_errno();

		for (size_t i = 0; i < sent; i++)
			cb(data, b->cookies[i], err, NULL);
		batch_reset(b, sent);
		return 0;
	}
	/* rtnetlink handles the whole sendmsg synchronously, so every ACK is
	 * queued by now; a missing one was dropped (ENOBUFS). */
	while (pending > 0) {
		r = nl_recv(nl, b->rbuf, sizeof(b->rbuf),
			    lost ? MSG_DONTWAIT : 0);
		if (r == -ENOBUFS) {
			lost = -ENOBUFS;
			continue;
		}
		if (r < 0) {
			if (!lost)
				lost = r == -EAGAIN ? -ETIMEDOUT : (int)r;
			break;
		}
		int left = (int)r;

		for (const struct nlmsghdr *nlh = (const void *)b->rbuf;
		     mnl_nlmsg_ok(nlh, left);
		     nlh = mnl_nlmsg_next(nlh, &left)) {
			const struct nlmsgerr *e;
			uint32_t idx = nlh->nlmsg_seq - b->seqs[0];

			if (nlh->nlmsg_type != NLMSG_ERROR || idx >= sent ||
			    b->acked[idx] ||
			    mnl_nlmsg_get_payload_len(nlh) < sizeof(*e))
				continue; /* not one of ours: stale */
			e = mnl_nlmsg_get_payload(nlh);
			b->acked[idx] = true;
			pending--;
			cb(data, b->cookies[idx], e->error,
			   e->error ? mt_nl_ack_msg(nlh) : NULL);
		}
	}
	for (size_t i = 0; i < sent; i++)
		if (!b->acked[i])
			cb(data, b->cookies[i], lost, NULL);
	batch_reset(b, sent);
	return (int)sent;
}

/* ---- dumps -------------------------------------------------------------- */

int mt_nl_dump_start(struct mt_nl *nl, struct nlmsghdr *req)
{
	req->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req->nlmsg_seq = ++nl->seq;
	if (mnl_socket_sendto(nl->sock, req, req->nlmsg_len) < 0)
		return mt_neg_errno();
	return 0;
}

int mt_nl_dump_finish(struct mt_nl *nl, void *buf, size_t len, mt_nl_dump_cb cb,
		      void *data)
{
	bool intr = false, done = false;
	int err = 0;

	while (!done) {
		ssize_t r = nl_recv(nl, buf, len, 0);
		int left = (int)r;

		if (r < 0)
			return (int)r; /* socket state unknown: reopen it */
		for (const struct nlmsghdr *nlh = buf; mnl_nlmsg_ok(nlh, left);
		     nlh = mnl_nlmsg_next(nlh, &left)) {
			if (nlh->nlmsg_seq != nl->seq ||
			    nlh->nlmsg_pid != nl->portid)
				continue;
			if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
				intr = true;
			if (nlh->nlmsg_type == NLMSG_DONE) {
				const int *e = mnl_nlmsg_get_payload(nlh);

				if (!err &&
				    mnl_nlmsg_get_payload_len(nlh) >=
					sizeof(int) &&
				    *e < 0)
					err = *e;
				done = true;
				break;
			}
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e =
				    mnl_nlmsg_get_payload(nlh);

				if (!err && e->error)
					err = e->error;
				done = true;
				break;
			}
			if (!err && nlh->nlmsg_type >= NLMSG_MIN_TYPE)
				err = cb(nlh, data);
		}
	}
	if (intr)
		return -EAGAIN;
	return err;
}

int mt_nl_dump(struct mt_nl *nl, struct nlmsghdr *req, void *buf, size_t len,
	       mt_nl_dump_cb cb, void *data)
{
	int r = mt_nl_dump_start(nl, req);

	return r < 0 ? r : mt_nl_dump_finish(nl, buf, len, cb, data);
}

int mt_nl_get(struct mt_nl *nl, struct nlmsghdr *req, void *buf, size_t len,
	      mt_nl_dump_cb cb, void *data)
{
	req->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	req->nlmsg_seq = ++nl->seq;
	if (mnl_socket_sendto(nl->sock, req, req->nlmsg_len) < 0)
		return mt_neg_errno();
	/* The reply, then the ACK (an NLMSG_ERROR), which ends the read. */
	return mt_nl_dump_finish(nl, buf, len, cb, data);
}

/* ---- the context -------------------------------------------------------- */

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static void nsh_free(struct mt_nsh *h)
{
	if (!h)
		return;
	mt_sysctl_close_all(h);
	mt_dump_mirror_free(h->mirror);
	mt_nl_close(h->nl);
	if (h->nsfd >= 0)
		close(h->nsfd);
	free(h->name);
	free(h);
}

static int open_nl_inside(void *arg)
{
	return mt_nl_open(arg);
}

static int nsh_open_nl(struct mt_rtnl *ctx, struct mt_nsh *h);

/* Opens a handle: the namespace fd, then the socket created inside it. */
static int nsh_open(struct mt_rtnl *ctx, const char *name, struct mt_nsh **out)
{
	struct mt_nsh *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return -ENOMEM;
	h->nsfd = -1;
	h->name = strdup(name);
	if (!h->name) {
		r = -ENOMEM;
		goto fail;
	}
	r = mt_netns_open(name);
	if (r < 0)
		goto fail;
	h->nsfd = r;
	r = mt_netns_ident(h->nsfd, &h->dev, &h->ino);
	if (r < 0)
		goto fail;
	r = nsh_open_nl(ctx, h);
	if (r < 0)
		goto fail;
	*out = h;
	return 0;
fail:
	nsh_free(h);
	return r;
}

static int nsh_open_nl(struct mt_rtnl *ctx, struct mt_nsh *h)
{
	if (!*h->name)
		return mt_nl_open(&h->nl);
	return mt_netns_run(h->nsfd, ctx->metal_ns->nsfd, open_nl_inside,
			    &h->nl);
}

int mt_rtnl_ns_reopen(struct mt_rtnl *ctx, struct mt_nsh *h)
{
	if (h->mirror)
		mt_dump_mirror_reset(h->mirror);
	mt_nl_close(h->nl);
	h->nl = NULL;
	return nsh_open_nl(ctx, h);
}

static int buckets_grow(struct mt_rtnl *ctx)
{
	size_t nb = ctx->n_buckets ? ctx->n_buckets * 2 : 256;
	struct mt_nsh **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < ctx->n_buckets; i++) {
		struct mt_nsh *h = ctx->buckets[i], *next;

		for (; h; h = next) {
			uint32_t k = name_hash(h->name) & (nb - 1);

			next = h->next;
			h->next = b[k];
			b[k] = h;
		}
	}
	free(ctx->buckets);
	ctx->buckets = b;
	ctx->n_buckets = nb;
	return 0;
}

int mt_rtnl_new(const struct mt_metal *metal, struct mt_rtnl **out)
{
	struct mt_rtnl *ctx = calloc(1, sizeof(*ctx));
	struct rlimit rl;
	int r;

	if (!ctx)
		return -ENOMEM;
	ctx->metal = metal;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ctx->rbuf = malloc(MT_NL_DUMP_BUF);
	r = ctx->rbuf ? buckets_grow(ctx) : -ENOMEM;
	if (r == 0)
		r = mt_nl_batch_new(&ctx->batch);
	if (r == 0)
		r = nsh_open(ctx, "", &ctx->metal_ns);
	if (r < 0) {
		mt_rtnl_free(ctx);
		return r;
	}
	*out = ctx;
	return 0;
}

void mt_rtnl_free(struct mt_rtnl *ctx)
{
	if (!ctx)
		return;
	for (size_t i = 0; i < ctx->n_buckets; i++) {
		struct mt_nsh *h = ctx->buckets[i], *next;

		for (; h; h = next) {
			next = h->next;
			nsh_free(h);
		}
	}
	free(ctx->buckets);
	nsh_free(ctx->metal_ns);
	mt_nl_batch_free(ctx->batch);
	free(ctx->rbuf);
	free(ctx);
}

struct mt_nsh *mt_rtnl_ns_find(struct mt_rtnl *ctx, const char *name)
{
	if (!*name)
		return ctx->metal_ns;
	for (struct mt_nsh *h =
		 ctx->buckets[name_hash(name) & (ctx->n_buckets - 1)];
	     h; h = h->next)
		if (strcmp(h->name, name) == 0)
			return h;
	return NULL;
}

int mt_rtnl_ns_get(struct mt_rtnl *ctx, const char *name, struct mt_nsh **out)
{
	struct mt_nsh *h = mt_rtnl_ns_find(ctx, name);
	uint32_t k;
	int r;

	if (h) {
		*out = h;
		return 0;
	}
	if (ctx->n_ns >= ctx->n_buckets) {
		r = buckets_grow(ctx);
		if (r < 0)
			return r;
	}
	r = nsh_open(ctx, name, &h);
	if (r < 0)
		return r;
	k = name_hash(name) & (ctx->n_buckets - 1);
	h->next = ctx->buckets[k];
	ctx->buckets[k] = h;
	ctx->n_ns++;
	*out = h;
	return 0;
}

void mt_rtnl_ns_drop(struct mt_rtnl *ctx, const char *name)
{
	struct mt_nsh **pp;

	if (!*name)
		return;
	pp = &ctx->buckets[name_hash(name) & (ctx->n_buckets - 1)];
	for (; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) {
			struct mt_nsh *h = *pp;

			*pp = h->next;
			nsh_free(h);
			ctx->n_ns--;
			return;
		}
	}
}

void mt_rtnl_ns_foreach(struct mt_rtnl *ctx,
			void (*fn)(struct mt_rtnl *ctx, struct mt_nsh *h,
				   void *data),
			void *data)
{
	for (size_t i = 0; i < ctx->n_buckets; i++) {
		struct mt_nsh *h = ctx->buckets[i], *next;

		for (; h; h = next) {
			next = h->next;
			fn(ctx, h, data);
		}
	}
}
