/* The replies of a namespace's last dumps, kept so that the next observe can
 * answer from them instead of asking the kernel again, as long as nothing
 * happened in that namespace since.
 *
 * "Nothing happened" is the drift monitor's word (monitor.h): it counts every
 * rtnetlink notification (and every loss of notifications) per namespace in
 * a generation. The kernel notifies every change to a link, address, route
 * or rule synchronously, before the change's own request returns, so once
 * the monitor's sockets are drained an unchanged generation means unchanged
 * dumps. (Routes the kernel flushes without a notification, when a link goes
 * down or an address goes away, follow a link or address notification in
 * the same namespace.) A mirror is only taken while the namespace is
 * watched, and only used for the namespace it was taken in (nsfs identity).
 *
 * The mirror holds raw netlink messages, one buffer per part (a kind of
 * dump); a replay hands them to the same callback a dump would have. */
#ifndef MT_FASTPATH_DUMP_MIRROR_H
#define MT_FASTPATH_DUMP_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/netlink.h>

#include "nl.h"

#define MT_DUMP_MIRROR_PARTS 8

struct mt_dump_mirror {
	dev_t dev; /* the namespace the dumps came from */
	ino_t ino;
	uint64_t gen;  /* its monitor generation when they were taken */
	bool complete; /* every part of the last observe was recorded */
	struct {
		char *buf;
		size_t len, cap;
	} part[MT_DUMP_MIRROR_PARTS];
};

/* Starts a new recording: every part emptied, not complete. */
void mt_dump_mirror_reset(struct mt_dump_mirror *m);
void mt_dump_mirror_free(struct mt_dump_mirror *m);

/* Appends one message to part. Returns 0 or -ENOMEM / -EINVAL. */
int mt_dump_mirror_add(struct mt_dump_mirror *m, unsigned part,
		       const struct nlmsghdr *nlh);
/* Empties one part (its dump is being repeated). */
void mt_dump_mirror_clear(struct mt_dump_mirror *m, unsigned part);

/* Marks the recording complete: taken in namespace dev/ino at gen. */
void mt_dump_mirror_seal(struct mt_dump_mirror *m, dev_t dev, ino_t ino,
			 uint64_t gen);
/* A complete mirror of namespace dev/ino whose generation is still gen. */
bool mt_dump_mirror_usable(const struct mt_dump_mirror *m, dev_t dev,
			   ino_t ino, uint64_t gen);

/* Calls cb(nlh, data) for each message of part, in the order recorded;
 * stops at and returns the first nonzero return. */
int mt_dump_mirror_replay(const struct mt_dump_mirror *m, unsigned part,
			  mt_nl_dump_cb cb, void *data);

/* What an observe does with a namespace's mirror. */
enum mt_mirror_use {
	MT_MIRROR_NONE,	  /* dump, keep nothing */
	MT_MIRROR_RECORD, /* dump and record the replies */
	MT_MIRROR_REPLAY, /* nothing happened since: replay the mirror */
};

/* Decides it for namespace name (nsfs identity dev/ino) whose mirror is *m:
 * replay when fn (the drift monitor's, nl.h) says the namespace is watched
 * at the generation *m was sealed at and fresh is false; else record (*m
 * allocated when missing, and emptied); none when fn is NULL, the namespace
 * is not watched, or memory is short. *gen: what a recording is sealed
 * with. */
enum mt_mirror_use mt_dump_mirror_begin(struct mt_dump_mirror **m,
					mt_ns_gen_fn fn, void *data,
					const char *name, dev_t dev, ino_t ino,
					bool fresh, uint64_t *gen);

/* Finishes one part's dump the way use says: replays the part, or reads
 * the dump started on nl (mt_nl_dump_finish with buf/len), recording it
 * into the part first when use is MT_MIRROR_RECORD. */
int mt_dump_mirror_finish(struct mt_dump_mirror *m, enum mt_mirror_use use,
			  unsigned part, struct mt_nl *nl, void *buf,
			  size_t len, mt_nl_dump_cb cb, void *data);

/* Ends a recording (no-op for other uses): sealed for dev/ino at gen when
 * ok, emptied otherwise. */
void mt_dump_mirror_end(struct mt_dump_mirror *m, enum mt_mirror_use use,
			bool ok, dev_t dev, ino_t ino, uint64_t gen);

/* A dump callback that records each message into a part, then passes it
 * on: give mt_nl_dump_finish record_cb and a struct mt_dump_recorder. */
struct mt_dump_recorder {
	struct mt_dump_mirror *m;
	unsigned part;
	mt_nl_dump_cb cb;
	void *data;
};
int mt_dump_mirror_record_cb(const struct nlmsghdr *nlh, void *data);

#endif
