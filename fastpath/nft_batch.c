#include "nft_batch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <arpa/inet.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <libnftnl/batch.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>

#define BATCH_PAGE_SIZE (64 * 1024)
#define RECV_BUF_SIZE (64 * 1024)
/* Receive buffer reserved per message: an ACK skb costs well under 1 KiB
 * (capped ACKs carry only the offending header plus the extack text). */
#define ACK_BUDGET 1024
#define QUERY_TIMEOUT_S 5
#define MSG_CLEAR 4096 /* <= MT_NFT_MSG_MAX */

struct batch_msg {
	long tag;
	int error;
	char *extack;
	bool acked;
};

struct mt_nft_batch {
	struct nftnl_batch *nb;
	uint32_t seq_begin;     /* message i has seq_begin + 1 + i */
	struct batch_msg *msgs;
	size_t n, cap;
	bool open;              /* a message was started and not ended */
	bool sent;
	int batch_error;
	char *batch_extack;
};

static uint32_t seq_counter;

/* Advances the process-wide counter by n and returns the first number of the
 * block, seeding it from the clock on first use. */
static uint32_t seq_take(uint32_t n)
{
	uint32_t s = __atomic_load_n(&seq_counter, __ATOMIC_RELAXED);

	if (s == 0)
		__atomic_compare_exchange_n(&seq_counter, &s, (uint32_t)time(NULL),
					    false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED);
	return __atomic_fetch_add(&seq_counter, n, __ATOMIC_RELAXED) + 1;
}

uint32_t mt_nft_seq_next(void)
{
	return seq_take(1);
}

static int setsockopt_int(int fd, int level, int opt, int val)
{
	if (setsockopt(fd, level, opt, &val, sizeof(val)) < 0)
		return -errno;
	return 0;
}

int mt_nft_socket_open(struct mnl_socket **out)
{
	struct mnl_socket *nl;
	struct timeval tv = { .tv_sec = QUERY_TIMEOUT_S };
	int fd, r;

	nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl)
		return mt_neg_errno();
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = mt_neg_errno();
		mnl_socket_close(nl);
		return r;
	}
	fd = mnl_socket_get_fd(nl);
	/* Extended ACKs carry the kernel's reason; capped ACKs keep an error
	 * from echoing the whole offending message. Both are best effort. */
	(void)setsockopt_int(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
	(void)setsockopt_int(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
	/* A query that the kernel never answers must not hang the caller. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	*out = nl;
	return 0;
}

void mt_nft_socket_closep(struct mnl_socket **nl)
{
	if (*nl)
		mnl_socket_close(*nl);
}

/* Parses an NLMSG_ERROR message: its error and the extack text, if any. */
static int ack_parse(const struct nlmsghdr *nlh, int *error,
		     const char **extack)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;
	size_t off = sizeof(*e);

	*extack = NULL;
	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
		return -EBADMSG;
	*error = e->error > 0 ? -e->error : e->error;
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return 0;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
		if (e->msg.nlmsg_len < sizeof(struct nlmsghdr))
			return 0;
		off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
	}
	if (MNL_ALIGN(off) > mnl_nlmsg_get_payload_len(nlh))
		return 0;
	mnl_attr_for_each(attr, nlh, off) {
		if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0)
			*extack = mnl_attr_get_str(attr);
	}
	return 0;
}

int mt_nft_query(struct mnl_socket *nl, struct nlmsghdr *req, mnl_cb_t cb,
		 void *data, char *extack, size_t extack_len)
{
	_cleanup_free_ char *buf = malloc(RECV_BUF_SIZE);
	uint32_t portid = mnl_socket_get_portid(nl);
	uint32_t seq = req->nlmsg_seq;
	bool intr = false, done = false;
	int ret = 0;

	if (extack && extack_len)
		extack[0] = '\0';
	if (!buf)
		return -ENOMEM;
	if (mnl_socket_sendto(nl, req, req->nlmsg_len) < 0)
		return mt_neg_errno();
	while (!done) {
		ssize_t len = mnl_socket_recvfrom(nl, buf, RECV_BUF_SIZE);
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
		int rem = (int)len;

		if (len < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : mt_neg_errno();
		}
		for (; mnl_nlmsg_ok(nlh, rem); nlh = mnl_nlmsg_next(nlh, &rem)) {
			if (nlh->nlmsg_seq != seq || nlh->nlmsg_pid != portid)
				continue; /* a stale reply to an earlier call */
			if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
				intr = true;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				const char *msg;
				int err = 0;

				if (ack_parse(nlh, &err, &msg) < 0)
					err = -EBADMSG;
				if (err && !ret) {
					ret = err;
					if (msg && extack && extack_len)
						snprintf(extack, extack_len,
							 "%s", msg);
				}
				done = true;
				break;
			}
			if (nlh->nlmsg_type == NLMSG_DONE) {
				done = true;
				break;
			}
			if (ret || !cb)
				continue;
			switch (cb(nlh, data)) {
			case MNL_CB_ERROR:
				ret = mt_neg_errno();
				break;
			case MNL_CB_STOP:
				cb = NULL; /* drain the rest, ignore it */
				break;
			default:
				break;
			}
		}
	}
	if (ret)
		return ret;
	return intr ? -EINTR : 0;
}

static int gen_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_gen *gen = nftnl_gen_alloc();
	uint32_t *genid = data;

	if (!gen) {
		errno = ENOMEM;
		return MNL_CB_ERROR;
	}
	if (nftnl_gen_nlmsg_parse(nlh, gen) < 0) {
		nftnl_gen_free(gen);
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	*genid = nftnl_gen_get_u32(gen, NFTNL_GEN_ID);
	nftnl_gen_free(gen);
	return MNL_CB_OK;
}

int mt_nft_genid(struct mnl_socket *nl, uint32_t *genid)
{
	char buf[512] = { 0 }; /* libmnl leaves padding unset */
	struct nlmsghdr *nlh;

	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK,
				    mt_nft_seq_next());
	return mt_nft_query(nl, nlh, gen_cb, genid, NULL, 0);
}

struct mt_nft_batch *mt_nft_batch_new(uint32_t genid)
{
	struct mt_nft_batch *b = calloc(1, sizeof(*b));
	struct nlmsghdr *nlh;

	if (!b)
		return NULL;
	b->nb = nftnl_batch_alloc(BATCH_PAGE_SIZE, MT_NFT_MSG_MAX);
	if (!b->nb) {
		free(b);
		return NULL;
	}
	b->seq_begin = mt_nft_seq_next();
	memset(nftnl_batch_buffer(b->nb), 0, MSG_CLEAR);
	nlh = nftnl_batch_begin(nftnl_batch_buffer(b->nb), b->seq_begin);
	if (genid)
		mnl_attr_put_u32(nlh, NFNL_BATCH_GENID, htonl(genid));
	if (nftnl_batch_update(b->nb) < 0) {
		mt_nft_batch_free(b);
		return NULL;
	}
	return b;
}

void mt_nft_batch_free(struct mt_nft_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		free(b->msgs[i].extack);
	free(b->msgs);
	free(b->batch_extack);
	if (b->nb)
		nftnl_batch_free(b->nb);
	free(b);
}

void mt_nft_batch_freep(struct mt_nft_batch **b)
{
	mt_nft_batch_free(*b);
}

struct nlmsghdr *mt_nft_batch_msg(struct mt_nft_batch *b, uint16_t type,
				  uint16_t family, uint16_t flags, long tag)
{
	if (b->open || b->sent) {
		errno = EINVAL;
		return NULL;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct batch_msg *grown = realloc(b->msgs, cap * sizeof(*grown));

		if (!grown)
			return NULL;
		b->msgs = grown;
		b->cap = cap;
	}
	b->msgs[b->n] = (struct batch_msg){ .tag = tag };
	b->open = true;
	/* libmnl does not zero attribute padding: clear the usual extent of a
	 * message so nothing uninitialised goes to the kernel. */
	memset(nftnl_batch_buffer(b->nb), 0, MSG_CLEAR);
	/* Sequence numbers of a batch are consecutive from seq_begin, so an
	 * ACK maps back to its message by subtraction. */
	return nftnl_nlmsg_build_hdr(nftnl_batch_buffer(b->nb), type, family,
				     flags | NLM_F_ACK,
				     b->seq_begin + 1 + (uint32_t)b->n);
}

int mt_nft_batch_msg_end(struct mt_nft_batch *b)
{
	struct nlmsghdr *nlh = nftnl_batch_buffer(b->nb);

	if (!b->open)
		return -EINVAL;
	b->open = false;
	if (nlh->nlmsg_len > MT_NFT_MSG_MAX)
		return -EMSGSIZE;
	if (nftnl_batch_update(b->nb) < 0)
		return -ENOMEM;
	b->n++;
	return 0;
}

size_t mt_nft_batch_count(const struct mt_nft_batch *b)
{
	return b->n;
}

long mt_nft_batch_tag(const struct mt_nft_batch *b, size_t i)
{
	return i < b->n ? b->msgs[i].tag : -1;
}

int mt_nft_batch_error(const struct mt_nft_batch *b, size_t i,
		       const char **extack)
{
	if (i >= b->n) {
		if (extack)
			*extack = NULL;
		return -EINVAL;
	}
	if (extack)
		*extack = b->msgs[i].extack;
	return b->msgs[i].error;
}

int mt_nft_batch_error_batch(const struct mt_nft_batch *b,
			     const char **extack)
{
	if (extack)
		*extack = b->batch_extack;
	return b->batch_error;
}

/* Grows a socket buffer to at least want bytes (the FORCE variant needs
 * CAP_NET_ADMIN, which a process writing nft rules has). */
static void sockbuf_grow(int fd, int opt, int force_opt, size_t want)
{
	int cur = 0;
	socklen_t len = sizeof(cur);

	if (want > INT32_MAX / 2)
		want = INT32_MAX / 2;
	/* The kernel reports twice what was set. */
	if (getsockopt(fd, SOL_SOCKET, opt, &cur, &len) == 0 &&
	    (size_t)cur / 2 >= want)
		return;
	if (setsockopt_int(fd, SOL_SOCKET, force_opt, (int)want) < 0)
		(void)setsockopt_int(fd, SOL_SOCKET, opt, (int)want);
}

static void record_ack(struct mt_nft_batch *b, uint32_t seq, int err,
		       const char *extack)
{
	uint32_t off = seq - b->seq_begin;
	struct batch_msg *m;

	if (off == 0 || off > b->n) { /* BEGIN or END: the whole batch */
		if (err && !b->batch_error) {
			b->batch_error = err;
			if (extack)
				b->batch_extack = strdup(extack);
		}
		return;
	}
	m = &b->msgs[off - 1];
	m->acked = true;
	if (err && !m->error) {
		m->error = err;
		if (extack)
			m->extack = strdup(extack);
	}
}

/* Reads every ACK of a sent batch. nfnetlink processes a batch inside
 * sendmsg(), so by the time it returns all ACKs are queued: drain until the
 * socket is empty (as nftables' mnl_batch_talk does). */
static int read_acks(struct mt_nft_batch *b, struct mnl_socket *nl)
{
	_cleanup_free_ char *buf = malloc(RECV_BUF_SIZE);
	int fd = mnl_socket_get_fd(nl);
	uint32_t portid = mnl_socket_get_portid(nl);
	bool lost = false;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t len = recv(fd, buf, RECV_BUF_SIZE, MSG_DONTWAIT);
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
		int rem = (int)len;

		if (len < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			if (errno == ENOBUFS) { /* ACKs dropped: overrun */
				lost = true;
				continue;
			}
			return -errno;
		}
		for (; mnl_nlmsg_ok(nlh, rem); nlh = mnl_nlmsg_next(nlh, &rem)) {
			const char *extack;
			int err = 0;

			if (nlh->nlmsg_pid != portid ||
			    nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			if (nlh->nlmsg_seq - b->seq_begin > b->n + 1)
				continue; /* not this batch */
			if (ack_parse(nlh, &err, &extack) < 0)
				continue;
			record_ack(b, nlh->nlmsg_seq, err, extack);
		}
	}
	return lost ? -ENOBUFS : 0;
}

int mt_nft_batch_send(struct mt_nft_batch *b, struct mnl_socket *nl)
{
	struct sockaddr_nl snl = { .nl_family = AF_NETLINK };
	_cleanup_free_ struct iovec *iov = NULL;
	struct msghdr msg = { 0 };
	size_t total = 0;
	int fd = mnl_socket_get_fd(nl);
	int n_iov, r;
	bool all_acked = true;

	if (b->open || b->sent)
		return -EINVAL;
	if (b->n == 0)
		return 0;
	b->sent = true;
	memset(nftnl_batch_buffer(b->nb), 0, MSG_CLEAR);
	/* Keep later requests on any socket off this batch's numbers. */
	(void)seq_take((uint32_t)b->n + 1);
	nftnl_batch_end(nftnl_batch_buffer(b->nb), b->seq_begin + 1 +
						   (uint32_t)b->n);
	if (nftnl_batch_update(b->nb) < 0)
		return -ENOMEM;

	n_iov = nftnl_batch_iovec_len(b->nb);
	iov = calloc((size_t)n_iov, sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	nftnl_batch_iovec(b->nb, iov, (uint32_t)n_iov);
	for (int i = 0; i < n_iov; i++)
		total += iov[i].iov_len;

	/* The kernel takes a batch only in one skb: the send buffer must hold
	 * all of it, and the receive buffer every ACK. */
	sockbuf_grow(fd, SO_SNDBUF, SO_SNDBUFFORCE, total + 4096);
	sockbuf_grow(fd, SO_RCVBUF, SO_RCVBUFFORCE, (b->n + 2) * ACK_BUDGET);

	msg.msg_name = &snl;
	msg.msg_namelen = sizeof(snl);
	msg.msg_iov = iov;
	msg.msg_iovlen = (size_t)n_iov;
	do {
		r = (int)sendmsg(fd, &msg, 0);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;

	r = read_acks(b, nl);
	if (b->batch_error)
		return b->batch_error;
	for (size_t i = 0; i < b->n; i++) {
		if (b->msgs[i].error)
			return b->msgs[i].error;
		if (!b->msgs[i].acked)
			all_acked = false;
	}
	if (r < 0)
		return r == -ENOBUFS ? -EIO : r;
	return all_acked ? 0 : -EIO;
}
