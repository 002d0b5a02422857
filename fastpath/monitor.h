/* Kernel drift detection: netlink notification sockets in the metal and in
 * every owned customer namespace. A change to an object mt owns that mt did
 * not make itself (the notification's port id is not one of mt-fastpath's
 * own sockets, or the nft transaction was committed by another process) is
 * reported as a drift event, which mt-agent answers with a reconcile of that
 * customer. */
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

/* An epoll fd, readable when some notification is pending. */
int mt_monitor_fd(const struct mt_monitor *mon);
/* Reads every pending notification and reports drift through the
 * callback. Returns the number of drift events or -errno. */
int mt_monitor_process(struct mt_monitor *mon);

#endif
