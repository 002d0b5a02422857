/* Kernel drift detection: rtnetlink notification sockets in the metal and
 * in every owned customer namespace, and /run/netns watched for names of
 * ours deleted by hand. A change to an object mt owns that mt did not make
 * itself (the notification's port id is not one of mt-fastpath's own
 * sockets) is reported as a drift event, which mt-agent answers with a
 * reconcile of that customer. nftables are polled instead (mt_nft_mark_poll
 * for the metal's marking table, mt_nft_cust_poll for the customers'). */
#ifndef MT_MONITOR_H
#define MT_MONITOR_H

#include "nl.h"

struct mt_monitor;

typedef void (*mt_monitor_cb)(void *data, const char *owner,
			      const char *netns, const char *what);

int mt_monitor_new(struct mt_rtnl *ctx, mt_monitor_cb cb, void *data,
		   struct mt_monitor **out);
void mt_monitor_free(struct mt_monitor *mon);

/* Watches every owned namespace that exists now and stops watching those
 * that are gone. Call after each applied plan that created or deleted a
 * namespace (it lists them all). Returns 0 or -errno. */
int mt_monitor_sync(struct mt_monitor *mon);

/* mt-fastpath is about to delete namespace name itself: its name leaving
 * /run/netns is not drift. (A namespace deleted by hand is: mt-fastpath's
 * own descriptors keep it alive, so its links stay and rtnetlink says
 * nothing; the monitor watches /run/netns for that.) */
void mt_monitor_own_delete(struct mt_monitor *mon, const char *name);

/* Called (before the drift is reported) for a namespace of ours deleted by
 * hand: the caller lets go of every descriptor it holds in it, so that the
 * kernel frees it and its veth (whose metal end mt re-creates). */
typedef void (*mt_monitor_gone_cb)(void *data, const char *netns);
void mt_monitor_set_gone_cb(struct mt_monitor *mon, mt_monitor_gone_cb fn,
			    void *data);

/* An epoll fd, readable when some notification is pending. */
int mt_monitor_fd(const struct mt_monitor *mon);
/* Reads the notifications pending on the sockets epoll reports ready (at
 * most 64 of them) and reports drift through the callback. Returns the
 * number of drift events or -errno. */
int mt_monitor_process(struct mt_monitor *mon);
/* The same until no socket has anything pending: after it, every change
 * made before the call is counted in its namespace's generation. */
int mt_monitor_drain(struct mt_monitor *mon);

/* The generation of the watch on namespace netns ("" = the metal) if that
 * watch is on exactly the namespace dev/ino: an mt_ns_gen_fn (nl.h) with
 * data = the monitor. It changes with every rtnetlink notification read in
 * that namespace and every loss of them. */
bool mt_monitor_ns_gen(void *data, const char *netns, dev_t dev, ino_t ino,
		       uint64_t *gen);

#endif
