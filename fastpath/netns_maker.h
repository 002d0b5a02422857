/* Creating a plan's new namespaces on threads of their own while the rest
 * of the plan goes on. A cold converge creates a thousand namespaces; each
 * is a file in /run/netns, a thread that unshares and a bind mount, mostly
 * outside the RTNL lock, so it overlaps with the links, addresses and
 * routes of the namespaces already made (rtnl_apply.c). Two threads take
 * the names in the order given; whoever needs one waits for that one
 * only. */
#ifndef MT_FASTPATH_NETNS_MAKER_H
#define MT_FASTPATH_NETNS_MAKER_H

#include <stddef.h>

struct mt_netns_maker;

/* Starts creating names[0..n) (mt_netns_create_prepared, taken in order,
 * after one mt_netns_run_dir_prepare). The names must
 * stay valid until mt_netns_maker_finish. Returns 0 or -errno (nothing
 * started: the caller creates them itself). */
int mt_netns_maker_start(const char *const *names, size_t n,
			 struct mt_netns_maker **out);

/* If name is one of the maker's, waits until it is done. Returns 1 when it
 * was one of them, 0 when not. */
int mt_netns_maker_wait(struct mt_netns_maker *m, const char *name);

/* Waits for all, then stores each one's mt_netns_create result in
 * results[0..n) (1 created, 0 existed, -errno) and frees the maker. */
void mt_netns_maker_finish(struct mt_netns_maker *m, int *results);

#endif
