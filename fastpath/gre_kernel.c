#include "gre_kernel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/if_tunnel.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "mt_cleanup.h"
#include "nl.h"

bool mt_gre_kernel_name_reserved(const char *name)
{
	return strcmp(name, "gre0") == 0 || strcmp(name, "gretap0") == 0 ||
	       strcmp(name, "erspan0") == 0;
}

/* ---- build -------------------------------------------------------------- */

int mt_gre_kernel_build(void *buf, size_t len, const struct mt_gre_tunnel *t,
			bool create)
{
	uint16_t gflags = t->has_key ? GRE_KEY : 0;
	uint32_t key = t->has_key ? htonl(t->key) : 0;
	uint32_t mtu =
	    t->mtu
		? t->mtu
		: MT_GRE_DEFAULT_MTU -
		      (t->has_key ? MT_GRE_OVERHEAD_KEY - MT_GRE_OVERHEAD : 0);
	struct nlattr *info, *data;
	struct ifinfomsg *ifi;
	struct mt_nlb b;

	if (!mt_gre_bpf_name_valid(t->name) || t->local == 0 ||
	    t->remote == 0 || t->local == t->remote)
		return -EINVAL;
	ifi =
	    mt_nlb_start(&b, buf, len, RTM_NEWLINK,
			 create ? NLM_F_CREATE | NLM_F_EXCL : 0, sizeof(*ifi));
	if (ifi) {
		ifi->ifi_family = AF_UNSPEC;
		ifi->ifi_change = IFF_UP;
		ifi->ifi_flags = IFF_UP;
	}
	mt_nlb_str(&b, IFLA_IFNAME, t->name);
	mt_nlb_u32(&b, IFLA_MTU, mtu);
	info = mt_nlb_nest(&b, IFLA_LINKINFO);
	mt_nlb_str(&b, IFLA_INFO_KIND, "gre");
	data = mt_nlb_nest(&b, IFLA_INFO_DATA);
	mt_nlb_put(&b, IFLA_GRE_LOCAL, sizeof(t->local), &t->local);
	mt_nlb_put(&b, IFLA_GRE_REMOTE, sizeof(t->remote), &t->remote);
	mt_nlb_u8(&b, IFLA_GRE_TTL, t->ttl ? t->ttl : MT_GRE_DEFAULT_TTL);
	mt_nlb_u8(&b, IFLA_GRE_PMTUDISC, 1);
	mt_nlb_put(&b, IFLA_GRE_IFLAGS, sizeof(gflags), &gflags);
	mt_nlb_put(&b, IFLA_GRE_OFLAGS, sizeof(gflags), &gflags);
	mt_nlb_put(&b, IFLA_GRE_IKEY, sizeof(key), &key);
	mt_nlb_put(&b, IFLA_GRE_OKEY, sizeof(key), &key);
	mt_nlb_nest_end(&b, data);
	mt_nlb_nest_end(&b, info);
	return mt_nlb_end(&b);
}

int mt_gre_kernel_build_delete(void *buf, size_t len, const char *name)
{
	struct ifinfomsg *ifi;
	struct mt_nlb b;

	if (!*name || strlen(name) >= IFNAMSIZ)
		return -EINVAL;
	ifi = mt_nlb_start(&b, buf, len, RTM_DELLINK, 0, sizeof(*ifi));
	if (ifi)
		ifi->ifi_family = AF_UNSPEC;
	mt_nlb_str(&b, IFLA_IFNAME, name);
	return mt_nlb_end(&b);
}

/* ---- parse -------------------------------------------------------------- */

int mt_gre_kernel_parse_data(const struct nlattr *data,
			     struct mt_gre_kernel_link *out)
{
	uint16_t iflags = 0, oflags = 0;
	uint32_t ikey = 0, okey = 0;
	const struct nlattr *a;

	mnl_attr_for_each_nested (a, data) {
		uint16_t type = mnl_attr_get_type(a);
		uint16_t plen = mnl_attr_get_payload_len(a);
		const void *p = mnl_attr_get_payload(a);

		switch (type) {
		case IFLA_GRE_LOCAL:
		case IFLA_GRE_REMOTE:
		case IFLA_GRE_IKEY:
		case IFLA_GRE_OKEY:
			if (plen < 4)
				return -EINVAL;
			break;
		case IFLA_GRE_IFLAGS:
		case IFLA_GRE_OFLAGS:
			if (plen < 2)
				return -EINVAL;
			break;
		case IFLA_GRE_TTL:
		case IFLA_GRE_PMTUDISC:
			if (plen < 1)
				return -EINVAL;
			break;
		default:
			continue;
		}
		switch (type) {
		case IFLA_GRE_LOCAL:
			memcpy(&out->t.local, p, 4);
			break;
		case IFLA_GRE_REMOTE:
			memcpy(&out->t.remote, p, 4);
			break;
		case IFLA_GRE_IKEY:
			memcpy(&ikey, p, 4);
			break;
		case IFLA_GRE_OKEY:
			memcpy(&okey, p, 4);
			break;
		case IFLA_GRE_IFLAGS:
			memcpy(&iflags, p, 2);
			break;
		case IFLA_GRE_OFLAGS:
			memcpy(&oflags, p, 2);
			break;
		case IFLA_GRE_TTL:
			out->t.ttl = *(const uint8_t *)p;
			break;
		case IFLA_GRE_PMTUDISC:
			out->pmtudisc = *(const uint8_t *)p;
			break;
		}
	}
	out->t.has_key = (iflags & GRE_KEY) != 0;
	out->t.key = out->t.has_key ? ntohl(ikey) : 0;
	out->symmetric = (iflags & GRE_KEY) == (oflags & GRE_KEY) &&
			 (!out->t.has_key || ikey == okey);
	return 0;
}

/* IFLA_INFO_KIND "gre" exactly ("gretap", "erspan" are other kinds). */
static bool kind_is_gre(const struct nlattr *a)
{
	uint16_t n = mnl_attr_get_payload_len(a);
	const char *p = mnl_attr_get_payload(a);

	return (n == 3 || (n == 4 && p[3] == '\0')) && memcmp(p, "gre", 3) == 0;
}

int mt_gre_kernel_parse(const struct nlmsghdr *nlh,
			struct mt_gre_kernel_link *out)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a, *b, *data = NULL;
	bool gre = false;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifi))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->ifindex = (uint32_t)ifi->ifi_index;
	out->flags = ifi->ifi_flags;
	mnl_attr_for_each (a, nlh, sizeof(*ifi)) {
		switch (mnl_attr_get_type(a)) {
		case IFLA_IFNAME:
			if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
				return -EINVAL;
			snprintf(out->t.name, sizeof(out->t.name), "%s",
				 mnl_attr_get_str(a));
			break;
		case IFLA_MTU:
			if (mnl_attr_validate(a, MNL_TYPE_U32) < 0)
				return -EINVAL;
			out->t.mtu = mnl_attr_get_u32(a);
			break;
		case IFLA_LINKINFO:
			mnl_attr_for_each_nested (b, a) {
				if (mnl_attr_get_type(b) == IFLA_INFO_KIND)
					gre = kind_is_gre(b);
				else if (mnl_attr_get_type(b) == IFLA_INFO_DATA)
					data = b;
			}
			break;
		}
	}
	if (!gre)
		return -ENOENT;
	return data ? mt_gre_kernel_parse_data(data, out) : 0;
}

/* ---- probe -------------------------------------------------------------- */

struct probe {
	int result; /* 1, 0, -errno */
	char why[200];
};

static void probe_ack(void *data, uint32_t cookie, int err, const char *kmsg)
{
	struct probe *p = data;

	p->result = err == 0 ? 1 : 0;
	if (err)
		snprintf(p->why, sizeof(p->why), "%s%s%s%s", strerror(-err),
			 kmsg ? " (kernel: " : "", kmsg ? kmsg : "",
			 kmsg ? ")" : "");
}

/* The probe's own thread: unshares, so only this thread (and the namespace
 * that dies with it) ever sees the test link. */
static void *probe_thread(void *arg)
{
	struct mt_gre_tunnel t = {.name = "mtprobe0", .ttl = 64};
	struct probe *p = arg;
	struct mt_nl_batch *b = NULL;
	struct mt_nl *nl = NULL;
	size_t room;
	void *buf;
	int r;

	if (unshare(CLONE_NEWNET) < 0) {
		p->result = mt_neg_errno();
		snprintf(p->why, sizeof(p->why),
			 "cannot unshare a private network namespace to probe "
			 "in: %s",
			 strerror(-p->result));
		return NULL;
	}
	/* TEST-NET-1 endpoints: nothing is ever sent, the link lives only in
	 * this namespace. */
	inet_pton(AF_INET, "192.0.2.1", &t.local);
	inet_pton(AF_INET, "192.0.2.2", &t.remote);
	r = mt_nl_open(&nl);
	if (r == 0)
		r = mt_nl_batch_new(&b);
	if (r == 0) {
		buf = mt_nl_batch_current(b, &room);
		r = mt_gre_kernel_build(buf, room, &t, true);
	}
	if (r >= 0) {
		mt_nl_batch_add(b, 0);
		p->result = -EIO;
		snprintf(p->why, sizeof(p->why), "no answer from the kernel");
		mt_nl_batch_flush(b, nl, probe_ack, p);
	} else {
		p->result = r;
		snprintf(p->why, sizeof(p->why), "cannot prepare the probe: %s",
			 strerror(-r));
	}
	mt_nl_batch_free(b);
	mt_nl_close(nl);
	return NULL;
}

int mt_gre_kernel_probe(char *why, size_t len)
{
	struct probe p = {.result = -EIO};
	pthread_t th;
	int r;

	r = -pthread_create(&th, NULL, probe_thread, &p);
	if (r < 0) {
		snprintf(why, len, "cannot start the probe thread: %s",
			 strerror(-r));
		return r;
	}
	pthread_join(th, NULL);
	snprintf(why, len, "%s",
		 p.result == 1 ? "a gre link was created" : p.why);
	return p.result;
}
