/* The dump mirror (fastpath/dump_mirror.h): what is recorded is replayed in
 * order, byte for byte, per part; a mirror is usable only complete, for its
 * own namespace and generation. No root, no socket. */
#include <errno.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>

#include "dump_mirror.h"
#include "mt_test.h"

/* A message of type RTM_NEWLINK carrying payload_len bytes of value v. */
static struct nlmsghdr *make_msg(char *buf, uint32_t payload_len, char v)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)buf;

	memset(nlh, 0, sizeof(*nlh));
	nlh->nlmsg_len = NLMSG_LENGTH(payload_len);
	nlh->nlmsg_type = RTM_NEWLINK;
	memset(NLMSG_DATA(nlh), v, payload_len);
	return nlh;
}

struct seen {
	int n;
	uint32_t len[64];
	char first[64];
	int stop_at; /* return -EIO at this message, 0 = never */
};

static int collect(const struct nlmsghdr *nlh, void *data)
{
	struct seen *s = data;

	s->len[s->n] = nlh->nlmsg_len;
	s->first[s->n] = *(const char *)NLMSG_DATA(nlh);
	s->n++;
	return s->stop_at && s->n == s->stop_at ? -EIO : 0;
}

static void test_record_replay(void)
{
	struct mt_dump_mirror *m = calloc(1, sizeof(*m));
	char buf[4096];
	struct seen s = {0};

	CHECK(m != NULL);
	/* lengths that are not multiples of 4, and enough to grow the part */
	for (int i = 0; i < 40; i++)
		CHECK(mt_dump_mirror_add(m, 2,
					 make_msg(buf, 1 + (uint32_t)i * 37,
						  (char)('a' + i % 26))) == 0);
	CHECK(mt_dump_mirror_add(m, 3, make_msg(buf, 8, 'z')) == 0);
	CHECK(mt_dump_mirror_replay(m, 2, collect, &s) == 0);
	CHECK(s.n == 40);
	for (int i = 0; i < 40 && i < s.n; i++) {
		CHECK(s.len[i] == NLMSG_LENGTH(1 + (uint32_t)i * 37));
		CHECK(s.first[i] == (char)('a' + i % 26));
	}
	/* parts are separate; an empty part replays nothing */
	memset(&s, 0, sizeof(s));
	CHECK(mt_dump_mirror_replay(m, 3, collect, &s) == 0 && s.n == 1 &&
	      s.first[0] == 'z');
	memset(&s, 0, sizeof(s));
	CHECK(mt_dump_mirror_replay(m, 0, collect, &s) == 0 && s.n == 0);
	/* a callback's error stops the replay and is returned */
	memset(&s, 0, sizeof(s));
	s.stop_at = 5;
	CHECK(mt_dump_mirror_replay(m, 2, collect, &s) == -EIO && s.n == 5);
	/* clearing a part empties it alone */
	mt_dump_mirror_clear(m, 2);
	memset(&s, 0, sizeof(s));
	CHECK(mt_dump_mirror_replay(m, 2, collect, &s) == 0 && s.n == 0);
	memset(&s, 0, sizeof(s));
	CHECK(mt_dump_mirror_replay(m, 3, collect, &s) == 0 && s.n == 1);
	/* out of range parts, short messages */
	CHECK(mt_dump_mirror_add(m, MT_DUMP_MIRROR_PARTS, make_msg(buf, 4, 'x')) ==
	      -EINVAL);
	CHECK(mt_dump_mirror_replay(m, MT_DUMP_MIRROR_PARTS, collect, &s) ==
	      -EINVAL);
	make_msg(buf, 4, 'x')->nlmsg_len = 3;
	CHECK(mt_dump_mirror_add(m, 1, (struct nlmsghdr *)buf) == -EINVAL);
	mt_dump_mirror_free(m);
}

static void test_usable(void)
{
	struct mt_dump_mirror *m = calloc(1, sizeof(*m));
	char buf[256];
	struct seen s = {0};

	CHECK(m != NULL);
	CHECK(!mt_dump_mirror_usable(NULL, 1, 2, 3));
	CHECK(!mt_dump_mirror_usable(m, 0, 0, 0)); /* never sealed */
	CHECK(mt_dump_mirror_add(m, 0, make_msg(buf, 16, 'q')) == 0);
	mt_dump_mirror_seal(m, 7, 42, 9);
	CHECK(mt_dump_mirror_usable(m, 7, 42, 9));
	CHECK(!mt_dump_mirror_usable(m, 7, 42, 10)); /* something happened */
	CHECK(!mt_dump_mirror_usable(m, 7, 43, 9));  /* another namespace */
	CHECK(!mt_dump_mirror_usable(m, 8, 42, 9));
	/* a part being dumped again makes it incomplete until sealed */
	mt_dump_mirror_clear(m, 1);
	CHECK(!mt_dump_mirror_usable(m, 7, 42, 9));
	mt_dump_mirror_seal(m, 7, 42, 9);
	CHECK(mt_dump_mirror_usable(m, 7, 42, 9));
	/* a reset starts over: nothing usable, nothing to replay */
	mt_dump_mirror_reset(m);
	CHECK(!mt_dump_mirror_usable(m, 7, 42, 9));
	CHECK(mt_dump_mirror_replay(m, 0, collect, &s) == 0 && s.n == 0);
	mt_dump_mirror_free(m);
	mt_dump_mirror_free(NULL);
}

/* The recorder passes every message on and keeps a copy. */
static void test_recorder(void)
{
	struct mt_dump_mirror *m = calloc(1, sizeof(*m));
	struct seen live = {0}, again = {0};
	struct mt_dump_recorder rec = {m, 4, collect, &live};
	char buf[256];

	CHECK(m != NULL);
	for (int i = 0; i < 3; i++)
		CHECK(mt_dump_mirror_record_cb(make_msg(buf, 20, (char)('k' + i)),
					       &rec) == 0);
	CHECK(live.n == 3);
	CHECK(mt_dump_mirror_replay(m, 4, collect, &again) == 0);
	CHECK(again.n == 3 && memcmp(again.first, live.first, 3) == 0);
	mt_dump_mirror_free(m);
}

/* A drift monitor stand-in: namespace "w" (dev 1, ino 2) is watched at
 * generation *data; anything else is not. */
static bool fake_gen(void *data, const char *name, dev_t dev, ino_t ino,
		     uint64_t *gen)
{
	if (strcmp(name, "w") != 0 || dev != 1 || ino != 2)
		return false;
	*gen = *(uint64_t *)data;
	return true;
}

/* begin/end decide, per observe, replay against record against nothing. */
static void test_begin_end(void)
{
	struct mt_dump_mirror *m = NULL;
	uint64_t now = 5, gen = 0;
	char buf[64];

	/* no monitor, or a namespace it does not watch: nothing kept */
	CHECK(mt_dump_mirror_begin(&m, NULL, &now, "w", 1, 2, false, &gen) ==
	      MT_MIRROR_NONE && !m);
	CHECK(mt_dump_mirror_begin(&m, fake_gen, &now, "w", 1, 3, false,
				   &gen) == MT_MIRROR_NONE && !m);
	/* watched, nothing recorded yet: record (the mirror is made) */
	CHECK(mt_dump_mirror_begin(&m, fake_gen, &now, "w", 1, 2, false,
				   &gen) == MT_MIRROR_RECORD && m && gen == 5);
	CHECK(mt_dump_mirror_add(m, 0, make_msg(buf, 8, 'a')) == 0);
	/* a failed recording is not kept */
	mt_dump_mirror_end(m, MT_MIRROR_RECORD, false, 1, 2, gen);
	CHECK(mt_dump_mirror_begin(&m, fake_gen, &now, "w", 1, 2, false,
				   &gen) == MT_MIRROR_RECORD);
	mt_dump_mirror_end(m, MT_MIRROR_RECORD, true, 1, 2, gen);
	/* unchanged: replay; fresh: record again; changed: record */
	CHECK(mt_dump_mirror_begin(&m, fake_gen, &now, "w", 1, 2, false,
				   &gen) == MT_MIRROR_REPLAY);
	CHECK(mt_dump_mirror_begin(&m, fake_gen, &now, "w", 1, 2, true,
				   &gen) == MT_MIRROR_RECORD);
	mt_dump_mirror_end(m, MT_MIRROR_RECORD, true, 1, 2, gen);
	now = 6;
	CHECK(mt_dump_mirror_begin(&m, fake_gen, &now, "w", 1, 2, false,
				   &gen) == MT_MIRROR_RECORD && gen == 6);
	/* end of a use that records nothing leaves the mirror as it is */
	mt_dump_mirror_end(m, MT_MIRROR_RECORD, true, 1, 2, gen);
	mt_dump_mirror_end(m, MT_MIRROR_REPLAY, false, 1, 2, gen);
	CHECK(mt_dump_mirror_usable(m, 1, 2, 6));
	mt_dump_mirror_free(m);
}

int main(void)
{
	RUN(test_record_replay);
	RUN(test_usable);
	RUN(test_recorder);
	RUN(test_begin_end);
	TEST_MAIN_END();
}
