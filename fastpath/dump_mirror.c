#include "dump_mirror.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void mt_dump_mirror_reset(struct mt_dump_mirror *m)
{
	for (unsigned i = 0; i < MT_DUMP_MIRROR_PARTS; i++)
		m->part[i].len = 0;
	m->complete = false;
}

void mt_dump_mirror_free(struct mt_dump_mirror *m)
{
	if (!m)
		return;
	for (unsigned i = 0; i < MT_DUMP_MIRROR_PARTS; i++)
		free(m->part[i].buf);
	free(m);
}

int mt_dump_mirror_add(struct mt_dump_mirror *m, unsigned part,
		       const struct nlmsghdr *nlh)
{
	size_t need = NLMSG_ALIGN(nlh->nlmsg_len), cap;
	char *b;

	if (part >= MT_DUMP_MIRROR_PARTS || nlh->nlmsg_len < sizeof(*nlh))
		return -EINVAL;
	cap = m->part[part].cap;
	if (m->part[part].len + need > cap) {
		cap = cap ? cap : 1024;
		while (cap < m->part[part].len + need)
			cap *= 2;
		b = realloc(m->part[part].buf, cap);
		if (!b)
			return -ENOMEM;
		m->part[part].buf = b;
		m->part[part].cap = cap;
	}
	memcpy(m->part[part].buf + m->part[part].len, nlh, nlh->nlmsg_len);
	m->part[part].len += need;
	return 0;
}

void mt_dump_mirror_clear(struct mt_dump_mirror *m, unsigned part)
{
	if (part < MT_DUMP_MIRROR_PARTS)
		m->part[part].len = 0;
	m->complete = false;
}

void mt_dump_mirror_seal(struct mt_dump_mirror *m, dev_t dev, ino_t ino,
			 uint64_t gen)
{
	m->dev = dev;
	m->ino = ino;
	m->gen = gen;
	m->complete = true;
}

bool mt_dump_mirror_usable(const struct mt_dump_mirror *m, dev_t dev,
			   ino_t ino, uint64_t gen)
{
	return m && m->complete && m->dev == dev && m->ino == ino &&
	       m->gen == gen;
}

int mt_dump_mirror_replay(const struct mt_dump_mirror *m, unsigned part,
			  mt_nl_dump_cb cb, void *data)
{
	size_t at = 0;

	if (part >= MT_DUMP_MIRROR_PARTS)
		return -EINVAL;
	while (at < m->part[part].len) {
		const struct nlmsghdr *nlh =
		    (const void *)(m->part[part].buf + at);
		int r = cb(nlh, data);

		if (r)
			return r;
		at += NLMSG_ALIGN(nlh->nlmsg_len);
	}
	return 0;
}

int mt_dump_mirror_record_cb(const struct nlmsghdr *nlh, void *data)
{
	struct mt_dump_recorder *rec = data;
	int r = mt_dump_mirror_add(rec->m, rec->part, nlh);

	return r < 0 ? r : rec->cb(nlh, rec->data);
}

enum mt_mirror_use mt_dump_mirror_begin(struct mt_dump_mirror **m,
					mt_ns_gen_fn fn, void *data,
					const char *name, dev_t dev, ino_t ino,
					bool fresh, uint64_t *gen)
{
	if (!fn || !fn(data, name, dev, ino, gen))
		return MT_MIRROR_NONE;
	if (!fresh && mt_dump_mirror_usable(*m, dev, ino, *gen))
		return MT_MIRROR_REPLAY;
	if (!*m && !(*m = calloc(1, sizeof(**m))))
		return MT_MIRROR_NONE;
	mt_dump_mirror_reset(*m);
	return MT_MIRROR_RECORD;
}

int mt_dump_mirror_finish(struct mt_dump_mirror *m, enum mt_mirror_use use,
			  unsigned part, struct mt_nl *nl, void *buf,
			  size_t len, mt_nl_dump_cb cb, void *data)
{
	struct mt_dump_recorder rec = {m, part, cb, data};

	switch (use) {
	case MT_MIRROR_REPLAY:
		return mt_dump_mirror_replay(m, part, cb, data);
	case MT_MIRROR_RECORD:
		mt_dump_mirror_clear(m, part);
		return mt_nl_dump_finish(nl, buf, len, mt_dump_mirror_record_cb,
					 &rec);
	case MT_MIRROR_NONE:
		break;
	}
	return mt_nl_dump_finish(nl, buf, len, cb, data);
}

void mt_dump_mirror_end(struct mt_dump_mirror *m, enum mt_mirror_use use,
			bool ok, dev_t dev, ino_t ino, uint64_t gen)
{
	if (use != MT_MIRROR_RECORD)
		return;
	if (ok)
		mt_dump_mirror_seal(m, dev, ino, gen);
	else
		mt_dump_mirror_reset(m);
}
