#include "nft_cust.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "mt_cleanup.h"
#include "mt_kstate.h"
#include "mt_log.h"
#include "netns.h"
#include "nft_batch.h"
#include "nft_cust_rules.h"
#include "nft_fw_plan.h"
#include "nft_fw_rules.h"

#define READ_ATTEMPTS 5
#define APPLY_ATTEMPTS 4
#define RECV_BUF_SIZE (64 * 1024)
#define REQ_MSG_SIZE 512 /* one GET or dump request */

/* ---- the socket cache ---- */

struct cust_ns {
	struct cust_ns *next; /* hash chain */
	char name[NAME_MAX + 1];
	dev_t dev; /* the namespace the socket lives in */
	ino_t ino;
	struct mnl_socket *nl;
	/* The last consistent read of mt's table there, still the kernel's
	 * while the namespace's generation id is st.genid. */
	struct mt_nft_cust_state st;
	struct mt_nft_fw_state fw; /* the firewall, of the same read */
	bool cached;
	bool seen; /* scratch for observe's sweep */
	/* The generation id mt has accounted for: that of its last read, or
	 * the one its own last commit left. Another one in the kernel means
	 * someone else committed there (mt_nft_cust_poll). */
	uint32_t known_genid;
	bool known;
};

struct mt_nft_cust {
	const struct mt_metal *m;
	int home_fd; /* the metal's namespace */
	struct cust_ns **buckets;
	size_t n_buckets, n;
	size_t poll_next; /* the bucket mt_nft_cust_poll asks next */
	char *rbuf; /* RECV_BUF_SIZE */
};

static bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int mt_nft_cust_new(const struct mt_metal *m, struct mt_nft_cust **out)
{
	struct mt_nft_cust *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	c->m = m;
	c->n_buckets = 256;
	c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
	c->rbuf = malloc(RECV_BUF_SIZE);
	if (!c->buckets || !c->rbuf) {
		free(c->buckets);
		free(c->rbuf);
		free(c);
		return -ENOMEM;
	}
	r = mt_netns_open("");
	if (r < 0) {
		free(c->buckets);
		free(c->rbuf);
		free(c);
		return r;
	}
	c->home_fd = r;
	raise_nofile();
	*out = c;
	return 0;
}

static void ns_free(struct cust_ns *ns)
{
	if (ns->nl)
		mnl_socket_close(ns->nl);
	mt_nft_cust_state_fini(&ns->st);
	mt_nft_fw_state_fini(&ns->fw);
	free(ns);
}

void mt_nft_cust_free(struct mt_nft_cust *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_buckets; i++) {
		struct cust_ns *ns = c->buckets[i], *next;

		for (; ns; ns = next) {
			next = ns->next;
			ns_free(ns);
		}
	}
	free(c->buckets);
	free(c->rbuf);
	if (c->home_fd >= 0)
		close(c->home_fd);
	free(c);
}

static struct cust_ns **ns_slot(struct mt_nft_cust *c, const char *name)
{
	struct cust_ns **p = &c->buckets[name_hash(name) % c->n_buckets];

	while (*p && strcmp((*p)->name, name) != 0)
		p = &(*p)->next;
	return p;
}

/* Forgets the socket of name (no-op when none is cached). */
static void ns_drop(struct mt_nft_cust *c, const char *name)
{
	struct cust_ns **p = ns_slot(c, name), *ns = *p;

	if (!ns)
		return;
	*p = ns->next;
	c->n--;
	ns_free(ns);
}

void mt_nft_cust_forget_netns(struct mt_nft_cust *c, const char *name)
{
	if (c && name)
		ns_drop(c, name);
}

static void buckets_grow(struct mt_nft_cust *c)
{
	size_t n = c->n_buckets * 4;
	struct cust_ns **b = calloc(n, sizeof(*b));

	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < c->n_buckets; i++) {
		struct cust_ns *ns = c->buckets[i], *next;

		for (; ns; ns = next) {
			size_t h = name_hash(ns->name) % n;

			next = ns->next;
			ns->next = b[h];
			b[h] = ns;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->n_buckets = n;
}

static int open_inside(void *arg)
{
	return mt_nft_socket_open(arg);
}

/* The socket of namespace name, whose /run/netns entry is dev/ino (read by
 * the caller): the cached one when it lives in that namespace, else a new
 * one opened inside it. -ENOENT when the namespace is gone. */
static int ns_get(struct mt_nft_cust *c, const char *name, dev_t dev, ino_t ino,
		  struct cust_ns **out)
{
	struct cust_ns **p = ns_slot(c, name), *ns = *p;
	_cleanup_close_ int nsfd = -1;
	int r;

	if (ns && ns->dev == dev && ns->ino == ino) {
		*out = ns;
		return 0;
	}
	if (ns)
		ns_drop(c, name); /* replaced behind our back */
	if (strlen(name) >= sizeof(ns->name))
		return -ENAMETOOLONG;
	nsfd = mt_netns_open(name);
	if (nsfd < 0)
		return nsfd;
	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	snprintf(ns->name, sizeof(ns->name), "%s", name);
	/* The identity of what is entered, not of what was listed. */
	r = mt_netns_ident(nsfd, &ns->dev, &ns->ino);
	if (r == 0)
		r = mt_netns_run(nsfd, c->home_fd, open_inside, &ns->nl);
	if (r < 0) {
		ns_free(ns);
		return r;
	}
	if (c->n >= c->n_buckets)
		buckets_grow(c);
	p = ns_slot(c, name);
	ns->next = *p;
	*p = ns;
	c->n++;
	*out = ns;
	return 0;
}

/* ---- reading one namespace ---- */

/* A read is a few rounds of requests, each round sent in one sendmsg and
 * answered in order. The GETs go without NLM_F_ACK: each is answered by
 * exactly one message, its reply or an error. A socket runs one dump at a
 * time, so a round holds at most one dump, after its GETs and before the
 * generation id that closes it: the kernel runs the requests of one skb in
 * turn and produces a dump's first part while handling its request, so
 * that id is taken after the dump was read (a dump that needs more parts
 * is flagged NLM_F_DUMP_INTR if the ruleset changes between them).
 *
 * Round 1: generation id, the table, chains mss, fw and fw_rules, set
 * fw_lists, the rules of the whole table (a dump), generation id. Only a
 * namespace holding mt's firewall needs more: the sets of the table (a
 * dump: never the elements of the list sets, they can hold a million
 * prefixes), the elements of fw_lists, and those of each anonymous set a
 * rule of fw_rules uses, one round each, each closed by a generation id.
 * The read is consistent when the first and the last id agree. */
enum q_kind { Q_GEN, Q_TABLE, Q_CHAIN, Q_SET, Q_RULES, Q_SETS, Q_ELEMS };

#define ROUND_MAX 10

struct query {
	enum q_kind kind;
	const char *name; /* chain or set */
	int slot;	  /* Q_GEN: 0 the first id, 1 the last */
	uint32_t seq;
	bool done;
	int err;
};

struct read_ctx {
	struct query q[ROUND_MAX];
	size_t n;
	uint32_t gen[2]; /* the first id, the last one */
	bool intr;
	int cb_err;
	const char *table;
	struct mt_nft_cust_state *st;
	struct mt_nft_fw_state *fw;
};

static void q_add(struct read_ctx *rc, enum q_kind kind, const char *name,
		  int slot)
{
	rc->q[rc->n++] =
	    (struct query){.kind = kind, .name = name, .slot = slot};
}

static bool q_dump(enum q_kind k)
{
	return k == Q_RULES || k == Q_SETS || k == Q_ELEMS;
}

/* Builds the requests of rc into buf (ROUND_MAX * REQ_MSG_SIZE). 0 or
 * -ENOMEM. */
static int build_requests(char *buf, size_t *len, struct read_ctx *rc)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nftnl_chain *ch = nftnl_chain_alloc();
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nftnl_set *s = nftnl_set_alloc();
	size_t off = 0;
	int ret = -ENOMEM;

	/* Without its filter a dump would list every table's objects. */
	if (!t || !ch || !r || !s)
		goto out;
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, rc->table);
	nftnl_chain_set_u32(ch, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(ch, NFTNL_CHAIN_TABLE, rc->table);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, rc->table);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, rc->table);

	memset(buf, 0, ROUND_MAX * REQ_MSG_SIZE); /* libmnl leaves padding */
	for (size_t i = 0; i < rc->n; i++) {
		static const uint16_t type[] = {
		    [Q_GEN] = NFT_MSG_GETGEN,
		    [Q_TABLE] = NFT_MSG_GETTABLE,
		    [Q_CHAIN] = NFT_MSG_GETCHAIN,
		    [Q_SET] = NFT_MSG_GETSET,
		    [Q_RULES] = NFT_MSG_GETRULE,
		    [Q_SETS] = NFT_MSG_GETSET,
		    [Q_ELEMS] = NFT_MSG_GETSETELEM,
		};
		struct query *q = &rc->q[i];
		struct nlmsghdr *nlh;

		q->seq = mt_nft_seq_next();
		nlh = nftnl_nlmsg_build_hdr(
		    buf + off, type[q->kind],
		    q->kind == Q_GEN ? AF_UNSPEC : NFPROTO_INET,
		    q_dump(q->kind) ? NLM_F_DUMP : 0, q->seq);
		switch (q->kind) {
		case Q_TABLE:
			nftnl_table_nlmsg_build_payload(nlh, t);
			break;
		case Q_CHAIN:
			nftnl_chain_set_str(ch, NFTNL_CHAIN_NAME, q->name);
			nftnl_chain_nlmsg_build_payload(nlh, ch);
			break;
		case Q_RULES:
			nftnl_rule_nlmsg_build_payload(nlh, r);
			break;
		case Q_SET:
		case Q_ELEMS:
			nftnl_set_set_str(s, NFTNL_SET_NAME, q->name);
			if (q->kind == Q_SET)
				nftnl_set_nlmsg_build_payload(nlh, s);
			else
				nftnl_set_elems_nlmsg_build_payload(nlh, s);
			break;
		case Q_SETS:
			nftnl_set_unset(s, NFTNL_SET_NAME);
			nftnl_set_nlmsg_build_payload(nlh, s);
			break;
		default:
			break;
		}
		off += NLMSG_ALIGN(nlh->nlmsg_len);
	}
	*len = off;
	ret = 0;
out:
	if (t)
		nftnl_table_free(t);
	if (ch)
		nftnl_chain_free(ch);
	if (r)
		nftnl_rule_free(r);
	if (s)
		nftnl_set_free(s);
	return ret;
}

static int parse_table(struct read_ctx *rc, const struct nlmsghdr *nlh)
{
	struct nftnl_table *t = nftnl_table_alloc();
	uint32_t flags;

	if (!t)
		return -ENOMEM;
	if (nftnl_table_nlmsg_parse(nlh, t) < 0) {
		nftnl_table_free(t);
		return -EBADMSG;
	}
	flags = nftnl_table_is_set(t, NFTNL_TABLE_FLAGS)
		    ? nftnl_table_get_u32(t, NFTNL_TABLE_FLAGS)
		    : 0;
	rc->st->table = rc->fw->table = true;
	rc->st->dormant = rc->fw->dormant = flags & NFT_TABLE_F_DORMANT;
	rc->st->owned = flags & NFT_TABLE_F_OWNER;
	nftnl_table_free(t);
	return 0;
}

static int parse_chain(struct read_ctx *rc, const struct nlmsghdr *nlh)
{
	struct nftnl_chain *ch = nftnl_chain_alloc();
	const char *name;
	int r = 0;

	if (!ch)
		return -ENOMEM;
	if (nftnl_chain_nlmsg_parse(nlh, ch) < 0) {
		nftnl_chain_free(ch);
		return -EBADMSG;
	}
	name = nftnl_chain_get_str(ch, NFTNL_CHAIN_NAME);
	if (name && strcmp(name, MT_NFT_CUST_MSS_CHAIN) == 0) {
		rc->st->chain = true;
		rc->st->chain_ok = mt_nft_cust_mss_chain_ok(ch);
	} else {
		r = mt_nft_fw_state_chain(rc->fw, ch);
	}
	nftnl_chain_free(ch);
	return r;
}

static int parse_rule(struct read_ctx *rc, const struct nlmsghdr *nlh)
{
	struct nftnl_rule *rule = nftnl_rule_alloc();
	const char *tb, *chn;

	if (!rule)
		return -ENOMEM;
	if (nftnl_rule_nlmsg_parse(nlh, rule) < 0) {
		nftnl_rule_free(rule);
		return -EBADMSG;
	}
	tb = nftnl_rule_get_str(rule, NFTNL_RULE_TABLE);
	chn = nftnl_rule_get_str(rule, NFTNL_RULE_CHAIN);
	/* the kernel filtered the dump; be sure anyway */
	if (!tb || !chn || strcmp(tb, rc->table) != 0) {
		nftnl_rule_free(rule);
		return 0;
	}
	if (strcmp(chn, MT_NFT_CUST_MSS_CHAIN) == 0) {
		int r = mt_nft_cust_state_add(rc->st, rule);

		nftnl_rule_free(rule);
		return r;
	}
	return mt_nft_fw_state_rule_msg(rc->fw, rule, nlh); /* takes it */
}

static int parse_set(struct read_ctx *rc, const struct nlmsghdr *nlh)
{
	struct nftnl_set *s = nftnl_set_alloc();

	if (!s)
		return -ENOMEM;
	if (nftnl_set_nlmsg_parse(nlh, s) < 0) {
		nftnl_set_free(s);
		return -EBADMSG;
	}
	if (!streq(nftnl_set_get_str(s, NFTNL_SET_TABLE), rc->table)) {
		nftnl_set_free(s);
		return 0;
	}
	return mt_nft_fw_state_set_msg(rc->fw, s, nlh); /* takes it */
}

static int parse_elems(struct read_ctx *rc, const struct query *q,
		       const struct nlmsghdr *nlh)
{
	struct nftnl_set *s;
	int r;

	if (strcmp(q->name, MT_NFT_FW_LISTS_SET) != 0)
		return mt_nft_fw_state_set_elems_msg(rc->fw, q->name, nlh);
	if (!(s = nftnl_set_alloc()))
		return -ENOMEM;
	r = nftnl_set_elems_nlmsg_parse(nlh, s) < 0
		? -EBADMSG
		: mt_nft_fw_state_lists_elems(rc->fw, s);
	nftnl_set_free(s);
	return r;
}

static int parse_reply(struct read_ctx *rc, const struct query *q,
		       const struct nlmsghdr *nlh)
{
	switch (q->kind) {
	case Q_GEN: {
		struct nftnl_gen *g = nftnl_gen_alloc();
		int r = 0;

		if (!g)
			return -ENOMEM;
		if (nftnl_gen_nlmsg_parse(nlh, g) < 0)
			r = -EBADMSG;
		else
			rc->gen[q->slot] = nftnl_gen_get_u32(g, NFTNL_GEN_ID);
		nftnl_gen_free(g);
		return r;
	}
	case Q_TABLE:
		return parse_table(rc, nlh);
	case Q_CHAIN:
		return parse_chain(rc, nlh);
	case Q_SET:
	case Q_SETS:
		return parse_set(rc, nlh);
	case Q_RULES:
		return parse_rule(rc, nlh);
	case Q_ELEMS:
		return parse_elems(rc, q, nlh);
	}
	return 0;
}

static int parse_err(const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
		return -EBADMSG;
	return e->error > 0 ? -e->error : e->error;
}

/* One round: send the requests of rc, read every answer. */
static int read_round(struct mt_nft_cust *c, struct cust_ns *ns,
		      struct read_ctx *rc)
{
	char req[ROUND_MAX * REQ_MSG_SIZE];
	uint32_t portid = mnl_socket_get_portid(ns->nl);
	size_t len, left = rc->n;
	int r = build_requests(req, &len, rc);

	if (r < 0)
		return r;
	if (mnl_socket_sendto(ns->nl, req, len) < 0)
		return mt_neg_errno();
	while (left) {
		ssize_t got =
		    mnl_socket_recvfrom(ns->nl, c->rbuf, RECV_BUF_SIZE);
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)c->rbuf;
		int rem = (int)got;

		if (got < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : mt_neg_errno();
		}
		for (; mnl_nlmsg_ok(nlh, rem);
		     nlh = mnl_nlmsg_next(nlh, &rem)) {
			struct query *q = NULL;

			if (nlh->nlmsg_pid != portid)
				continue;
			for (size_t i = 0; i < rc->n && !q; i++)
				if (!rc->q[i].done &&
				    nlh->nlmsg_seq == rc->q[i].seq)
					q = &rc->q[i];
			if (!q)
				continue; /* stale: an earlier read's */
			if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
				rc->intr = true;
			if (nlh->nlmsg_type == NLMSG_ERROR ||
			    nlh->nlmsg_type == NLMSG_DONE) {
				if (nlh->nlmsg_type == NLMSG_ERROR)
					q->err = parse_err(nlh);
				q->done = true;
				left--;
				continue;
			}
			if (!rc->cb_err)
				rc->cb_err = parse_reply(rc, q, nlh);
			/* A GET without NLM_F_ACK: its one reply ends it. */
			if (!q_dump(q->kind)) {
				q->done = true;
				left--;
			}
		}
	}
	if (rc->cb_err)
		return rc->cb_err;
	for (size_t i = 0; i < rc->n; i++) {
		/* No table, chain or set: ENOENT, which is an answer (for
		 * elements: the set went away, the generation says so). */
		if (rc->q[i].err == -ENOENT && rc->q[i].kind != Q_GEN &&
		    rc->q[i].kind != Q_RULES && rc->q[i].kind != Q_SETS)
			continue;
		if (rc->q[i].err)
			return rc->q[i].err;
	}
	return 0;
}

/* A later round of rc: one dump and the generation id that closes it. */
static int read_more(struct mt_nft_cust *c, struct cust_ns *ns,
		     struct read_ctx *rc, enum q_kind kind, const char *name)
{
	rc->n = 0;
	q_add(rc, kind, name, 0);
	q_add(rc, Q_GEN, NULL, 1);
	return read_round(c, ns, rc);
}

/* The rest of the firewall, once round 1 has found some of it. */
static int read_fw(struct mt_nft_cust *c, struct cust_ns *ns,
		   struct read_ctx *rc)
{
	struct mt_nft_fw_state *fw = rc->fw;
	const char *name;
	int r;

	if (!fw->chain && !fw->rchain && !fw->lset)
		return mt_nft_fw_state_finish(fw);
	if ((r = read_more(c, ns, rc, Q_SETS, NULL)) < 0)
		return r;
	if (fw->lset &&
	    (r = read_more(c, ns, rc, Q_ELEMS, MT_NFT_FW_LISTS_SET)) < 0)
		return r;
	for (size_t i = 0; (name = mt_nft_fw_state_anon(fw, i)); i++) {
		/* a copy: parsing the elements into the set replaces the
		 * set's name string */
		char set[NFT_SET_MAXNAMELEN];

		snprintf(set, sizeof(set), "%s", name);
		if ((r = read_more(c, ns, rc, Q_ELEMS, set)) < 0)
			return r;
	}
	return mt_nft_fw_state_finish(fw);
}

/* A consistent read of mt's table in ns into ns->st and ns->fw: the
 * first and last generation ids agree and no dump part was interrupted,
 * else read again. The firewall is read into a new state that may take
 * over the parsed rules of the previous read (ns->fw, however old: its
 * rules are keyed by what the kernel returned for them, see
 * mt_nft_fw_state_rule_msg), so that a read after a small change parses
 * only the rules that changed; it then replaces ns->fw. */
static int read_full(struct mt_nft_cust *c, struct cust_ns *ns)
{
	struct mt_nft_cust_state *st = &ns->st;
	struct mt_nft_fw_state fresh = {0}, *fw = &fresh;

	for (int attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
		struct read_ctx rc = {
		    .st = st, .fw = fw, .table = c->m->cust_nft_table};
		int r;

		mt_nft_cust_state_fini(st);
		mt_nft_fw_state_fini(fw);
		fw->prev = &ns->fw;
		q_add(&rc, Q_GEN, NULL, 0);
		q_add(&rc, Q_TABLE, NULL, 0);
		q_add(&rc, Q_CHAIN, MT_NFT_CUST_MSS_CHAIN, 0);
		q_add(&rc, Q_CHAIN, MT_NFT_FW_CHAIN, 0);
		q_add(&rc, Q_CHAIN, MT_NFT_FW_RULES_CHAIN, 0);
		q_add(&rc, Q_SET, MT_NFT_FW_LISTS_SET, 0);
		q_add(&rc, Q_RULES, NULL, 0);
		q_add(&rc, Q_GEN, NULL, 1);
		r = read_round(c, ns, &rc);
		if (r == 0)
			r = st->table ? read_fw(c, ns, &rc)
				      : mt_nft_fw_state_finish(fw);
		if (r < 0) {
			mt_nft_fw_state_fini(fw);
			return r;
		}
		if (!rc.intr && rc.gen[0] == rc.gen[1]) {
			st->genid = rc.gen[0];
			mt_nft_fw_state_fini(&ns->fw);
			ns->fw = fresh;
			ns->fw.prev = NULL;
			return 0;
		}
	}
	mt_nft_fw_state_fini(fw);
	return -EAGAIN;
}

/* The state of mt's table in ns (*out and *fw point into ns). Listing a
 * chain costs about four times as much as asking for the generation id,
 * so the last read is kept and reused while the namespace's generation id
 * has not moved (any commit there, by anyone, moves it); fresh forces a
 * new read (for the rules' counters). On a failure that leaves the socket
 * in an unknown state (a timeout, half a dump unread) the namespace is
 * dropped from the cache: the caller must not use ns after an error. */
static int ns_state(struct mt_nft_cust *c, struct cust_ns *ns, bool fresh,
		    const struct mt_nft_cust_state **out,
		    const struct mt_nft_fw_state **fw)
{
	int r;

	if (ns->cached && !fresh) {
		struct read_ctx rc = {.st = &ns->st,
				      .fw = &ns->fw,
				      .table = c->m->cust_nft_table};

		q_add(&rc, Q_GEN, NULL, 0);
		r = read_round(c, ns, &rc);
		if (r == 0 && rc.gen[0] == ns->st.genid) {
			*out = &ns->st;
			*fw = &ns->fw;
			ns->known_genid = ns->st.genid;
			ns->known = true;
			return 0;
		}
		ns->cached = false;
		if (r < 0)
			goto fail;
	}
	ns->cached = false;
	r = read_full(c, ns);
	if (r < 0)
		goto fail;
	/* A table owned by another socket disappears with it without a
	 * generation change: never trust a copy of that. */
	ns->cached = !ns->st.owned;
	ns->known_genid = ns->st.genid;
	ns->known = true;
	*out = &ns->st;
	*fw = &ns->fw;
	return 0;
fail:
	mt_nft_cust_state_fini(&ns->st);
	mt_nft_fw_state_fini(&ns->fw);
	if (r != -ENOMEM && r != -EPERM && r != -EAGAIN)
		ns_drop(c, ns->name);
	return r;
}

/* ---- apply ---- */

static bool is_fw(const Mt__Kernel__Op *op)
{
	return op->object_case == MT__KERNEL__OP__OBJECT_FIREWALL;
}

/* The namespace of an op this module groups (NULL: not one). */
static const char *op_netns(const Mt__Kernel__Op *op)
{
	if (op->object_case == MT__KERNEL__OP__OBJECT_MSS_CLAMP &&
	    op->mss_clamp)
		return op->mss_clamp->netns;
	if (is_fw(op) && op->firewall)
		return op->firewall->netns;
	return NULL;
}

static char *op_desc(const Mt__Kernel__Op *op, char *buf, size_t len)
{
	return is_fw(op) ? mt_nft_fw_op_describe(op, buf, len)
			 : mt_op_describe(op, buf, len);
}

static void result_set(Mt__Kernel__OpResult **results, size_t i, int error,
		       const char *msg)
{
	(void)mt_op_result_set(&results[i], error, msg);
}

/* "<op>: [<what>: ]<strerror>[: <why>]" */
static void result_err(Mt__Kernel__Op *const *ops,
		       Mt__Kernel__OpResult **results, size_t i, int error,
		       const char *what, const char *why)
{
	char desc[256], msg[1024];

	snprintf(msg, sizeof(msg), "%s: %s%s%s%s%s",
		 op_desc(ops[i], desc, sizeof(desc)), what ? what : "",
		 what ? ": " : "", strerror(-error), why && *why ? ": " : "",
		 why ? why : "");
	result_set(results, i, error, msg);
}

/* Every op of a namespace's group: the failing one with its error, the
 * others cancelled. */
static void group_abort(Mt__Kernel__Op *const *ops, const size_t *idx, size_t n,
			Mt__Kernel__OpResult **results, size_t failed,
			int error, const char *what, const char *why)
{
	char fdesc[256], desc[256], msg[768];

	op_desc(ops[failed], fdesc, sizeof(fdesc));
	for (size_t k = 0; k < n; k++) {
		if (idx[k] == failed) {
			result_err(ops, results, failed, error, what, why);
			continue;
		}
		snprintf(msg, sizeof(msg),
			 "%s: not applied: transaction aborted by %s",
			 op_desc(ops[idx[k]], desc, sizeof(desc)), fdesc);
		result_set(results, idx[k], -ECANCELED, msg);
	}
}

static void group_all(Mt__Kernel__Op *const *ops, const size_t *idx, size_t n,
		      Mt__Kernel__OpResult **results, int error,
		      const char *why)
{
	for (size_t k = 0; k < n; k++)
		result_err(ops, results, idx[k], error, NULL, why);
}

/* Starts a message of an nftnl object, builds its payload, closes it. */
#define BATCH_OBJ(b, type, flags, tag, build, obj)                    \
	({                                                            \
		struct nlmsghdr *_nlh = mt_nft_batch_msg(             \
		    (b), (type), NFPROTO_INET, (flags), (long)(tag)); \
		int _r = -ENOMEM;                                     \
		if (_nlh) {                                           \
			build(_nlh, (obj));                           \
			_r = mt_nft_batch_msg_end(b);                 \
		}                                                     \
		_r;                                                   \
	})

/* Appends the message of one planned clamp step. */
static int batch_act(struct mt_nft_batch *b, const char *table,
		     const struct mt_nft_cust_act *a)
{
	struct nftnl_table *t;
	struct nftnl_chain *ch;
	struct nftnl_rule *rule;
	int r = -ENOMEM;

	switch (a->type) {
	case MT_NFT_CUST_NEWTABLE:
		if (!(t = mt_nft_cust_table_new(table)))
			return -ENOMEM;
		r = BATCH_OBJ(b, NFT_MSG_NEWTABLE, NLM_F_CREATE, a->op,
			      nftnl_table_nlmsg_build_payload, t);
		nftnl_table_free(t);
		return r;
	case MT_NFT_CUST_NEWCHAIN:
		if (!(ch = mt_nft_cust_mss_chain_new(table)))
			return -ENOMEM;
		r = BATCH_OBJ(b, NFT_MSG_NEWCHAIN, NLM_F_CREATE, a->op,
			      nftnl_chain_nlmsg_build_payload, ch);
		nftnl_chain_free(ch);
		return r;
	case MT_NFT_CUST_DELCHAIN:
		/* By name only (with a hook the kernel would take it for a
		 * hook deletion of a netdev chain); the rules go with it. */
		if (!(ch = nftnl_chain_alloc()))
			return -ENOMEM;
		nftnl_chain_set_u32(ch, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
		nftnl_chain_set_str(ch, NFTNL_CHAIN_TABLE, table);
		nftnl_chain_set_str(ch, NFTNL_CHAIN_NAME,
				    MT_NFT_CUST_MSS_CHAIN);
		r = BATCH_OBJ(b, NFT_MSG_DELCHAIN, 0, a->op,
			      nftnl_chain_nlmsg_build_payload, ch);
		nftnl_chain_free(ch);
		return r;
	case MT_NFT_CUST_DELRULE:
		if (!(rule = nftnl_rule_alloc()))
			return -ENOMEM;
		nftnl_rule_set_u32(rule, NFTNL_RULE_FAMILY, NFPROTO_INET);
		nftnl_rule_set_str(rule, NFTNL_RULE_TABLE, table);
		nftnl_rule_set_str(rule, NFTNL_RULE_CHAIN,
				   MT_NFT_CUST_MSS_CHAIN);
		nftnl_rule_set_u64(rule, NFTNL_RULE_HANDLE, a->handle);
		r = BATCH_OBJ(b, NFT_MSG_DELRULE, 0, a->op,
			      nftnl_rule_nlmsg_build_payload, rule);
		nftnl_rule_free(rule);
		return r;
	case MT_NFT_CUST_NEWRULE:
		rule = mt_nft_cust_mss_rule_new(table, a->dev, a->mss, a->dir);
		if (!rule)
			return errno == EINVAL ? -EINVAL : -ENOMEM;
		r = BATCH_OBJ(b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND,
			      a->op, nftnl_rule_nlmsg_build_payload, rule);
		nftnl_rule_free(rule);
		return r;
	}
	return -EINVAL;
}

/* The messages of one attempt: the clamps' steps (tagged with their op's
 * index), then the firewall's (tagged -1 - step index). */
static int batch_build(struct mt_nft_batch *b, const char *table,
		       const struct mt_nft_cust_act *acts, size_t n_acts,
		       const struct mt_nft_fw_step *steps, size_t n_steps)
{
	bool newtable = false;
	uint32_t set_id = 1;
	int r = 0;

	for (size_t i = 0; i < n_acts && r == 0; i++) {
		newtable |= acts[i].type == MT_NFT_CUST_NEWTABLE;
		r = batch_act(b, table, &acts[i]);
	}
	for (size_t i = 0; i < n_steps && r == 0; i++) {
		if (steps[i].type == MT_NFT_FW_NEWTABLE && newtable)
			continue; /* once is enough */
		r = mt_nft_fw_step_batch(b, table, &steps[i], &set_id,
					 -1 - (long)i);
	}
	return r;
}

/* The transaction of one namespace's ops (checked, in order; want: its
 * firewall op, NULL when none). Returns 0 or the error of the group
 * (results filled either way). */
static int group_apply(struct mt_nft_cust *c, const char *netns,
		       Mt__Kernel__Op *const *ops, const size_t *idx, size_t n,
		       const struct mt_nft_fw_want *want,
		       Mt__Kernel__OpResult **results, uint64_t *writes)
{
	const char *table = c->m->cust_nft_table;
	_cleanup_free_ size_t *midx = calloc(n, sizeof(*midx));
	struct cust_ns *ns;
	size_t n_m = 0;
	dev_t dev;
	ino_t ino;
	int r;

	if (!midx) {
		group_all(ops, idx, n, results, -ENOMEM, NULL);
		return -ENOMEM;
	}
	for (size_t k = 0; k < n; k++)
		if (!is_fw(ops[idx[k]]))
			midx[n_m++] = idx[k];

	r = mt_netns_stat(netns, &dev, &ino);
	if (r == 0)
		r = ns_get(c, netns, dev, ino, &ns);
	if (r == -ENOENT) {
		int ret = 0;

		ns_drop(c, netns);
		for (size_t k = 0; k < n; k++) {
			if (ops[idx[k]]->action ==
			    MT__KERNEL__OP__ACTION__DELETE) {
				result_set(results, idx[k], 0, "");
				continue;
			}
			result_err(ops, results, idx[k], -ENOENT, NULL,
				   "the namespace does not exist");
			ret = -ENOENT;
		}
		return ret;
	}
	if (r < 0) {
		group_all(ops, idx, n, results, r,
			  "opening an nftables socket in the namespace");
		return r;
	}

	for (int attempt = 0; attempt < APPLY_ATTEMPTS; attempt++) {
		_cleanup_nft_batch_ struct mt_nft_batch *b = NULL;
		_cleanup_free_ struct mt_nft_cust_act *acts = NULL;
		_cleanup_free_ struct mt_nft_fw_step *steps = NULL;
		const struct mt_nft_cust_state *st;
		const struct mt_nft_fw_state *fw;
		const char *extack = NULL;
		size_t n_acts = 0, n_steps = 0, count;
		uint32_t uid = 1;
		char err[512];

		r = ns_state(c, ns, false, &st, &fw);
		if (r < 0) {
			group_all(ops, idx, n, results, r,
				  "reading mt's nft table in the namespace");
			return r;
		}
		r = mt_nft_cust_plan(st, ops, midx, n_m, &acts, &n_acts);
		if (r == 0 && want)
			r = mt_nft_fw_plan(fw, want, &uid, &steps, &n_steps,
					   err, sizeof(err));
		if (r == -ESTALE) {
			group_abort(ops, idx, n, results, want->op, r, NULL,
				    err);
			return r;
		}
		b = r == 0 ? mt_nft_batch_new(st->genid) : NULL;
		if (!b) {
			r = -ENOMEM;
			group_all(ops, idx, n, results, r, NULL);
			return r;
		}
		r = batch_build(b, table, acts, n_acts, steps, n_steps);
		if (r < 0) {
			group_all(ops, idx, n, results, r,
				  "building the nft transaction");
			return r;
		}
		count = mt_nft_batch_count(b);
		r = mt_nft_batch_send(b, ns->nl);
		/* A commit moves the generation id: the next read lists the
		 * table again (the new rules' handles are the kernel's). */
		if (count)
			ns->cached = false;
		if (r == -ERESTART)
			continue; /* the ruleset changed since the read */
		if (r == 0) {
			uint32_t g;

			/* our own commit: its generation is accounted for
			 * (a foreign commit in the microseconds before this
			 * read goes unnoticed by the poll; the periodic
			 * reconcile still repairs it) */
			if (count && mt_nft_genid(ns->nl, &g) == 0) {
				ns->known_genid = g;
				ns->known = true;
			}
			if (writes)
				*writes += count;
			for (size_t k = 0; k < n; k++)
				result_set(results, idx[k], 0, "");
			return 0;
		}
		/* Aborted: the first failing message names its op (and for
		 * the firewall the rule or list). */
		for (size_t i = 0; i < count; i++) {
			int e = mt_nft_batch_error(b, i, &extack);
			long tag = mt_nft_batch_tag(b, i);
			char what[64];

			if (!e)
				continue;
			if (tag >= 0) {
				group_abort(ops, idx, n, results, (size_t)tag,
					    e, NULL, extack);
			} else {
				const struct mt_nft_fw_step *s =
				    &steps[-1 - tag];
				const char *why = extack;

				/* a list delta against elements changed by
				 * hand (the digest does not see them) */
				if (!why && e == -EEXIST &&
				    s->type == MT_NFT_FW_ADDELEMS)
					why = "a prefix overlaps an element the "
					      "kernel's set holds (added by "
					      "hand?); a full reload of the "
					      "list repairs it";
				else if (!why && e == -ENOENT &&
					 s->type == MT_NFT_FW_DELELEMS)
					why = "a prefix to remove is not in the "
					      "kernel's set (removed by "
					      "hand?); a full reload of the "
					      "list repairs it";
				group_abort(
				    ops, idx, n, results, s->op, e,
				    mt_nft_fw_step_what(s, what, sizeof(what)),
				    why);
			}
			return e;
		}
		if (mt_nft_batch_error_batch(b, &extack) == 0)
			ns_drop(c, netns); /* a local failure: fresh socket */
		group_all(ops, idx, n, results, r,
			  extack ? extack : "nft transaction failed");
		return r;
	}
	r = -EAGAIN;
	group_all(ops, idx, n, results, r,
		  "the namespace's nftables ruleset kept changing");
	return r;
}

/* Groups ops by namespace, keeping their order within a namespace. */
static int idx_cmp(const void *a, const void *b, void *data)
{
	Mt__Kernel__Op *const *ops = data;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = strcmp(op_netns(ops[x]), op_netns(ops[y]));

	if (c)
		return c;
	return x < y ? -1 : x > y;
}

/* Refuses (with -EINVAL) every firewall op of the group after the first:
 * a namespace has one firewall, an op says all of it. Returns the first. */
static size_t group_fw(Mt__Kernel__Op *const *ops, const size_t *idx, size_t n,
		       int *refused, Mt__Kernel__OpResult **results)
{
	size_t fw = SIZE_MAX;

	for (size_t k = 0; k < n; k++) {
		char first[256], why[320];

		if (!is_fw(ops[idx[k]]) || refused[idx[k]])
			continue;
		if (fw == SIZE_MAX) {
			fw = idx[k];
			continue;
		}
		snprintf(why, sizeof(why),
			 "one firewall op per namespace and plan (already: "
			 "%s)",
			 op_desc(ops[fw], first, sizeof(first)));
		refused[idx[k]] = -EINVAL;
		result_err(ops, results, idx[k], -EINVAL, NULL, why);
	}
	return fw;
}

int mt_nft_cust_apply(struct mt_nft_cust *c, Mt__Kernel__Op *const *ops,
		      size_t n, Mt__Kernel__OpResult **results,
		      uint64_t *writes)
{
	_cleanup_free_ size_t *idx = NULL;
	_cleanup_free_ int *refused = NULL;
	_cleanup_free_ struct mt_nft_fw_want *wants = NULL;
	size_t n_idx = 0;
	int ret = 0;

	if (n == 0)
		return 0;
	idx = calloc(n, sizeof(*idx));
	refused = calloc(n, sizeof(*refused));
	wants = calloc(n, sizeof(*wants));
	if (!idx || !refused || !wants) {
		for (size_t i = 0; i < n; i++)
			result_err(ops, results, i, -ENOMEM, NULL, NULL);
		return -ENOMEM;
	}

	/* Refusals first: an op that is malformed or not ours is answered
	 * here, and nothing is sent to its namespace. A firewall op is
	 * prepared here once (its rules compiled, its lists parsed). */
	for (size_t i = 0; i < n; i++) {
		char err[512];

		refused[i] =
		    is_fw(ops[i])
			? mt_nft_fw_want_prepare(c->m, c->m->cust_nft_table,
						 ops[i], i, &wants[i], err,
						 sizeof(err))
			: mt_nft_cust_op_check(c->m, ops[i], err, sizeof(err));
		if (refused[i])
			result_err(ops, results, i, refused[i], NULL, err);
		if (op_netns(ops[i]))
			idx[n_idx++] = i;
	}
	qsort_r(idx, n_idx, sizeof(*idx), idx_cmp, (void *)ops);

	for (size_t k = 0, j; k < n_idx; k = j) {
		const char *netns = op_netns(ops[idx[k]]);
		size_t bad = n, fw;

		for (j = k;
		     j < n_idx && strcmp(op_netns(ops[idx[j]]), netns) == 0;
		     j++)
			;
		fw = group_fw(ops, &idx[k], j - k, refused, results);
		for (size_t q = k; q < j && bad == n; q++)
			if (refused[idx[q]])
				bad = idx[q];
		if (bad == n) {
			(void)group_apply(c, netns, ops, &idx[k], j - k,
					  fw == SIZE_MAX ? NULL : &wants[fw],
					  results, writes);
			continue;
		}
		/* A refused op cancels the others of its namespace. */
		for (size_t q = k; q < j; q++) {
			char fdesc[256], desc[256], msg[768];

			if (refused[idx[q]])
				continue;
			snprintf(msg, sizeof(msg),
				 "%s: not applied: transaction aborted by %s",
				 op_desc(ops[idx[q]], desc, sizeof(desc)),
				 op_desc(ops[bad], fdesc, sizeof(fdesc)));
			result_set(results, idx[q], -ECANCELED, msg);
		}
	}
	for (size_t i = 0; i < n; i++)
		mt_nft_fw_want_fini(&wants[i]);
	for (size_t i = 0; i < n && !ret; i++)
		if (results[i] && results[i]->error)
			ret = results[i]->error;
	return ret;
}

/* ---- observe ---- */

struct seen_clamp {
	size_t ns;	    /* index into the namespace list */
	char dev[IFNAMSIZ]; /* "" = the dirty marker */
	uint32_t mss;
};

struct seen {
	struct seen_clamp *v;
	size_t n, cap;
	Mt__Kernel__Firewall **fw; /* in namespace order */
	size_t n_fw, cap_fw;
};

static void seen_fini(struct seen *s)
{
	free(s->v);
	for (size_t i = 0; i < s->n_fw; i++)
		if (s->fw[i])
			protobuf_c_message_free_unpacked(&s->fw[i]->base, NULL);
	free(s->fw);
}

static int seen_fw(struct seen *s, Mt__Kernel__Firewall *fw)
{
	if (s->n_fw == s->cap_fw) {
		size_t cap = s->cap_fw ? s->cap_fw * 2 : 16;
		Mt__Kernel__Firewall **g = realloc(s->fw, cap * sizeof(*g));

		if (!g) {
			protobuf_c_message_free_unpacked(&fw->base, NULL);
			return -ENOMEM;
		}
		s->fw = g;
		s->cap_fw = cap;
	}
	s->fw[s->n_fw++] = fw;
	return 0;
}

#define _cleanup_seen_ MT_CLEANUP(seen_fini)

static int seen_add(struct seen *s, size_t ns, const char *dev, uint32_t mss)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct seen_clamp *g = realloc(s->v, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		s->v = g;
		s->cap = cap;
	}
	s->v[s->n].ns = ns;
	snprintf(s->v[s->n].dev, sizeof(s->v[s->n].dev), "%s", dev);
	s->v[s->n].mss = mss;
	s->n++;
	return 0;
}

/* Reads one namespace into s. A namespace that vanished is skipped. */
static int observe_ns(struct mt_nft_cust *c, const struct mt_netns_entry *e,
		      size_t ns_i, bool counters, struct seen *s)
{
	_cleanup_free_ struct mt_nft_cust_clamp *cl = NULL;
	const struct mt_nft_cust_state *st;
	const struct mt_nft_fw_state *fw;
	struct cust_ns *ns;
	size_t n_cl = 0;
	bool dirty;
	int r;

	r = ns_get(c, e->name, e->dev, e->ino, &ns);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	ns->seen = true;
	r = ns_state(c, ns, counters, &st, &fw);
	if (r == 0)
		r = mt_nft_cust_clamps(st, &cl, &n_cl, &dirty);
	if (r < 0)
		return r;
	if (mt_nft_fw_state_present(fw)) {
		Mt__Kernel__Firewall *f;

		r = mt_nft_fw_observed(
		    fw, e->name, mt_metal_owner(c->m, e->name), counters, &f);
		if (r == 0)
			r = seen_fw(s, f);
		if (r < 0)
			return r;
	}
	/* The marker's dev "" sorts before every device. */
	if (dirty && (r = seen_add(s, ns_i, "", 0)) < 0)
		return r;
	for (size_t i = 0; i < n_cl; i++)
		if ((r = seen_add(s, ns_i, cl[i].dev, cl[i].mss)) < 0)
			return r;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mt_netns_entry *)a)->name,
		      ((const struct mt_netns_entry *)b)->name);
}

/* The namespaces to observe: all owned ones, or those of the owners. */
static int observe_list(struct mt_nft_cust *c, const char *const *owners,
			size_t n_owners, struct mt_netns_entry **out,
			size_t *n_out)
{
	struct mt_netns_entry *v;
	size_t n = 0;
	int r;

	if (!n_owners) {
		r = mt_netns_list(c->m->prefix, out, n_out);
		if (r < 0)
			return r;
		/* "mt0-" alone is not a customer's. */
		for (size_t i = 0; i < *n_out; i++)
			if (mt_metal_owner(c->m, (*out)[i].name))
				(*out)[n++] = (*out)[i];
		*n_out = n;
		goto sort;
	}
	v = calloc(n_owners, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n_owners; i++) {
		struct mt_netns_entry *e = &v[n];

		if (!owners[i] || !*owners[i] ||
		    (size_t)snprintf(e->name, sizeof(e->name), "%s%s",
				     c->m->prefix,
				     owners[i]) >= sizeof(e->name) ||
		    !mt_netns_name_valid(e->name))
			continue;
		r = mt_netns_stat(e->name, &e->dev, &e->ino);
		if (r == -ENOENT)
			continue;
		if (r < 0) {
			free(v);
			return r;
		}
		n++;
	}
	*out = v;
	*n_out = n;
sort:
	if (*n_out)
		qsort(*out, *n_out, sizeof(**out), entry_cmp);
	/* Owners given twice count once. */
	n = 0;
	for (size_t i = 0; i < *n_out; i++)
		if (!n || strcmp((*out)[n - 1].name, (*out)[i].name) != 0)
			(*out)[n++] = (*out)[i];
	*n_out = n;
	return 0;
}

/* After a full observe: sockets of namespaces that are gone are closed (a
 * cached socket keeps a deleted namespace alive). */
static void sweep(struct mt_nft_cust *c)
{
	for (size_t i = 0; i < c->n_buckets; i++) {
		struct cust_ns **p = &c->buckets[i];

		while (*p) {
			struct cust_ns *ns = *p;

			if (ns->seen) {
				ns->seen = false;
				p = &ns->next;
				continue;
			}
			*p = ns->next;
			c->n--;
			ns_free(ns);
		}
	}
}

static void seen_clear(struct mt_nft_cust *c)
{
	for (size_t i = 0; i < c->n_buckets; i++)
		for (struct cust_ns *ns = c->buckets[i]; ns; ns = ns->next)
			ns->seen = false;
}

/* st unchanged on error: drops the clamps appended after before. */
static void clamps_rollback(Mt__Kernel__KernelState *st, size_t before)
{
	while (st->n_mss_clamps > before) {
		Mt__Kernel__MssClamp *x = st->mss_clamps[--st->n_mss_clamps];

		protobuf_c_message_free_unpacked(&x->base, NULL);
	}
}

int mt_nft_cust_observe_counters(struct mt_nft_cust *c,
				 const char *const *owners, size_t n_owners,
				 bool counters, Mt__Kernel__KernelState *st)
{
	_cleanup_free_ struct mt_netns_entry *list = NULL;
	_cleanup_seen_ struct seen s = {0};
	size_t n_list = 0, before = st->n_mss_clamps;
	Mt__Kernel__Firewall **fws;
	int r;

	r = observe_list(c, owners, n_owners, &list, &n_list);
	if (r < 0)
		return r;
	seen_clear(c);
	for (size_t i = 0; i < n_list; i++)
		if ((r = observe_ns(c, &list[i], i, counters, &s)) < 0)
			return r;
	if (!n_owners)
		sweep(c);

	for (size_t i = 0; i < s.n; i++) {
		const char *ns = list[s.v[i].ns].name;
		Mt__Kernel__MssClamp *mc = mt_kstate_add_mss_clamp(st);

		if (!mc || mt_kstate_set_str(&mc->netns, ns) < 0 ||
		    mt_kstate_set_str(&mc->dev, s.v[i].dev) < 0 ||
		    mt_kstate_set_str(&mc->owner, mt_metal_owner(c->m, ns)) <
			0) {
			clamps_rollback(st, before);
			return -ENOMEM;
		}
		mc->mss = s.v[i].mss;
	}
	if (!s.n_fw)
		return 0;
	fws = realloc(st->firewalls, (st->n_firewalls + s.n_fw) * sizeof(*fws));
	if (!fws) {
		clamps_rollback(st, before);
		return -ENOMEM;
	}
	st->firewalls = fws;
	memcpy(fws + st->n_firewalls, s.fw, s.n_fw * sizeof(*fws));
	st->n_firewalls += s.n_fw;
	s.n_fw = 0; /* handed over */
	return 0;
}

int mt_nft_cust_observe(struct mt_nft_cust *c, const char *const *owners,
			size_t n_owners, Mt__Kernel__KernelState *st)
{
	return mt_nft_cust_observe_counters(c, owners, n_owners, false, st);
}

/* ---- drift ---- */

int mt_nft_cust_poll(struct mt_nft_cust *c, unsigned slices,
		     mt_nft_cust_drift_fn cb, void *data)
{
	size_t budget = slices > 1 ? (c->n + slices - 1) / slices : c->n;
	size_t asked = 0;
	int n = 0;

	if (!budget)
		budget = 1;
	/* whole buckets, from where the last call stopped */
	for (size_t k = 0; k < c->n_buckets && asked < budget; k++) {
		size_t i = c->poll_next;

		c->poll_next = (c->poll_next + 1) % c->n_buckets;
		for (struct cust_ns *ns = c->buckets[i]; ns; ns = ns->next) {
			const char *owner = mt_metal_owner(c->m, ns->name);
			uint32_t g;

			asked++;
			if (!ns->nl || !ns->known || !owner ||
			    mt_nft_genid(ns->nl, &g) < 0)
				continue; /* (a vanished namespace: observe
					   * lets go of it) */
			if (g == ns->known_genid)
				continue;
			ns->known_genid = g;
			cb(data, owner, ns->name);
			n++;
		}
	}
	return n;
}
