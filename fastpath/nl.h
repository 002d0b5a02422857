/* rtnetlink plumbing for mt-fastpath: one socket per network namespace,
 * bounded message builders, batches of many messages per sendmsg with one
 * ACK per message mapped back by sequence number, and a dump helper.
 *
 * Everything here follows the project convention: 0 (or a count/length) on
 * success, -errno on failure. libmnl's "-1 + errno" stays inside nl.c.
 *
 * struct mt_rtnl is the context the rtnetlink layer runs on (see
 * rtnl_apply.h and rtnl_observe.h): the metal's settings plus a cache of one
 * handle per namespace (its netns fd, its netlink socket, its open sysctl
 * files). It is not thread-safe: use it from one thread. Opening a handle
 * enters the namespace briefly on the calling thread (mt_netns_run), so that
 * thread should not be the one running the daemon's event loop.
 */
#ifndef MT_FASTPATH_NL_H
#define MT_FASTPATH_NL_H

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mt_metal.h"

/* Largest single message the builders produce (a veth pair with its peer is
 * well under 512 bytes). */
#define MT_NL_MSG_MAX 1024
/* A batch flushes when it holds this many bytes or messages. The message
 * cap keeps the ACKs of one batch inside the socket's receive buffer. */
#define MT_NL_BATCH_BYTES (64 * 1024)
#define MT_NL_BATCH_MSGS 256
/* Receive buffer for dumps (the kernel sizes dump skbs to the reader). */
#define MT_NL_DUMP_BUF (32 * 1024)

/* ---- bounded message builder ------------------------------------------ */

/* A message under construction in a caller-provided buffer. Every put is
 * checked against the buffer; the first one that does not fit latches
 * `full`, and mt_nlb_end then returns -EMSGSIZE. */
struct mt_nlb {
	struct nlmsghdr *nlh;
	size_t len;
	bool full;
};

/* Starts a message of type/flags with a zeroed family header of hdrlen
 * bytes; returns that header, or NULL (and b->full) if it does not fit.
 * NLM_F_REQUEST is always set; seq is left 0 for the batch to assign. */
void *mt_nlb_start(struct mt_nlb *b, void *buf, size_t len, uint16_t type,
		   uint16_t flags, size_t hdrlen);
void mt_nlb_put(struct mt_nlb *b, uint16_t type, size_t len, const void *data);
void mt_nlb_u8(struct mt_nlb *b, uint16_t type, uint8_t v);
void mt_nlb_u32(struct mt_nlb *b, uint16_t type, uint32_t v);
void mt_nlb_str(struct mt_nlb *b, uint16_t type, const char *s);
struct nlattr *mt_nlb_nest(struct mt_nlb *b, uint16_t type);
void mt_nlb_nest_end(struct mt_nlb *b, struct nlattr *nest);
/* The message length, or -EMSGSIZE if anything did not fit. */
int mt_nlb_end(struct mt_nlb *b);

/* ---- sockets ------------------------------------------------------------ */

struct mt_nl {
	struct mnl_socket *sock;
	uint32_t portid;
	uint32_t seq;
};

/* Opens a NETLINK_ROUTE socket in the calling thread's current network
 * namespace, with extended ACKs, capped ACKs, strict dump checking (so the
 * kernel filters route dumps by table and protocol) and a receive buffer
 * large enough for a full batch of ACKs. */
int mt_nl_open(struct mt_nl **out);
void mt_nl_close(struct mt_nl *nl);
int mt_nl_fd(const struct mt_nl *nl);

/* ---- batches ------------------------------------------------------------ */

/* Called once per message of a flushed batch, in the order the ACKs arrive:
 * cookie as given to mt_nl_batch_add, err 0 or -errno, kmsg the kernel's
 * extended ACK text or NULL. */
typedef void (*mt_nl_ack_cb)(void *data, uint32_t cookie, int err,
			     const char *kmsg);

struct mt_nl_batch;

int mt_nl_batch_new(struct mt_nl_batch **out);
void mt_nl_batch_free(struct mt_nl_batch *b);
/* Where the next message is built; at least MT_NL_MSG_MAX bytes. */
void *mt_nl_batch_current(struct mt_nl_batch *b, size_t *room);
/* Commits the message just built at mt_nl_batch_current: sets NLM_F_ACK and
 * a fresh sequence number, remembers cookie. Returns true when the batch is
 * full and must be flushed before the next message is built. */
bool mt_nl_batch_add(struct mt_nl_batch *b, uint32_t cookie);
size_t mt_nl_batch_count(const struct mt_nl_batch *b);
/* Sends the batch on nl in one sendmsg, then reads every ACK (even after
 * errors) and calls cb once for each message sent. A message whose ACK never
 * came (receive buffer overrun, timeout) gets -ENOBUFS/-ETIMEDOUT; if the
 * send itself fails every message gets that error. Returns the number of
 * messages handed to the kernel (0 when the send failed). The batch is
 * empty afterwards, except for a message that overflowed it, which moves to
 * the front of the next batch. */
int mt_nl_batch_flush(struct mt_nl_batch *b, struct mt_nl *nl, mt_nl_ack_cb cb,
		      void *data);

/* ---- dumps -------------------------------------------------------------- */

/* Called for each message of a dump reply; returns 0 or -errno (the first
 * error stops further calls but the dump is still read to its end). */
typedef int (*mt_nl_dump_cb)(const struct nlmsghdr *nlh, void *data);

/* Sends a dump request (NLM_F_REQUEST|NLM_F_DUMP and a sequence number are
 * set here). Dumps on different sockets may be started before any is
 * finished: this is how observe overlaps many namespaces. */
int mt_nl_dump_start(struct mt_nl *nl, struct nlmsghdr *req);
/* Reads the reply of the dump started last on nl to its NLMSG_DONE.
 * Returns 0, -EAGAIN when the kernel flagged the dump NLM_F_DUMP_INTR (the
 * caller must discard what cb collected and dump again), the kernel's error
 * or the callback's first error. */
int mt_nl_dump_finish(struct mt_nl *nl, void *buf, size_t len, mt_nl_dump_cb cb,
		      void *data);
int mt_nl_dump(struct mt_nl *nl, struct nlmsghdr *req, void *buf, size_t len,
	       mt_nl_dump_cb cb, void *data);

/* A non-dump request (RTM_GETLINK by IFLA_IFNAME, ...): sends req with
 * NLM_F_REQUEST|NLM_F_ACK and a sequence number, calls cb for each reply
 * message, and returns 0 or the kernel's error (-ENODEV: no such link) or
 * the callback's first error. */
int mt_nl_get(struct mt_nl *nl, struct nlmsghdr *req, void *buf, size_t len,
	      mt_nl_dump_cb cb, void *data);

/* The kernel's extended ACK message in an NLMSG_ERROR or NLMSG_DONE
 * message, or NULL. */
const char *mt_nl_ack_msg(const struct nlmsghdr *nlh);

/* ---- the context: one handle per namespace ------------------------------ */

struct mt_sysctl_cache;
struct mt_dump_mirror;

/* A cached namespace handle. name "" is the metal. */
struct mt_nsh {
	struct mt_nsh *next; /* hash chain */
	char *name;
	dev_t dev; /* nsfs identity of the namespace */
	ino_t ino;
	int nsfd;
	struct mt_nl *nl;
	struct mt_sysctl_cache *sysctls; /* owned by sysctl.c */
	struct mt_dump_mirror *mirror;	 /* observe's last dumps (dump_mirror.h) */
	bool seen;			 /* scratch for observe's sweep */
};

/* The drift monitor's generation of namespace name (dev/ino: its nsfs
 * identity; "" = the metal): true and *gen when a watch on exactly that
 * namespace exists, false when none does (then nothing may be mirrored). */
typedef bool (*mt_ns_gen_fn)(void *data, const char *name, dev_t dev,
			     ino_t ino, uint64_t *gen);

struct mt_rtnl {
	const struct mt_metal *metal;
	struct mt_nsh *metal_ns;
	struct mt_nsh **buckets;
	size_t n_buckets;
	size_t n_ns; /* cached named namespaces (metal not counted) */
	struct mt_nl_batch *batch;
	char *rbuf;	    /* MT_NL_DUMP_BUF bytes for dumps */
	bool run_dir_ready; /* /run/netns is a shared mount */
	/* Set by the owner of the drift monitor when one watches the
	 * namespaces: observe may then answer from dump mirrors. */
	mt_ns_gen_fn ns_gen;
	void *ns_gen_data;
};

/* Creates the context for the namespace the calling thread is in (the
 * metal). metal must outlive it. Raises RLIMIT_NOFILE's soft limit to the
 * hard limit: each cached namespace holds about six descriptors (netns fd,
 * netlink socket, sysctl files). Returns 0 or -errno. */
int mt_rtnl_new(const struct mt_metal *metal, struct mt_rtnl **out);
void mt_rtnl_free(struct mt_rtnl *ctx);

/* The handle of namespace name ("" = metal), opened on first use (netns fd,
 * then the netlink socket created inside the namespace). -ENOENT when no
 * namespace is mounted at /run/netns/NAME. */
int mt_rtnl_ns_get(struct mt_rtnl *ctx, const char *name, struct mt_nsh **out);
/* The cached handle or NULL; never opens anything. */
struct mt_nsh *mt_rtnl_ns_find(struct mt_rtnl *ctx, const char *name);
/* Closes and forgets the handle of name (no-op when not cached, never the
 * metal). Call when the namespace is deleted: the cached descriptors keep a
 * deleted namespace alive. */
void mt_rtnl_ns_drop(struct mt_rtnl *ctx, const char *name);
/* Replaces the handle's netlink socket with a fresh one (after a transport
 * error left the old one in an unknown state, e.g. half a dump unread). */
int mt_rtnl_ns_reopen(struct mt_rtnl *ctx, struct mt_nsh *h);
/* Calls fn for every cached named namespace (not the metal); fn may drop
 * the handle it is given. */
void mt_rtnl_ns_foreach(struct mt_rtnl *ctx,
			void (*fn)(struct mt_rtnl *ctx, struct mt_nsh *h,
				   void *data),
			void *data);

#endif
