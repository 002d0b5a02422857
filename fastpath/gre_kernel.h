/* The kernel GRE tunnel driver: a tunnel NAME in a customer namespace is an
 * ip_gre link ("gre" kind) made inside that namespace. Pure message
 * builders and parsers (no socket; round-trip tested), and the probe that
 * tells whether this kernel has ip_gre at all.
 *
 * A gre link mt makes: IFLA_GRE_LOCAL / IFLA_GRE_REMOTE (the endpoints),
 * IFLA_GRE_TTL (never 0 = "inherit": mt always sets one), IFLA_GRE_PMTUDISC
 * 1 (DF on the outer packet), with a key IFLA_GRE_IKEY = IFLA_GRE_OKEY =
 * key and IFLA_GRE_IFLAGS = IFLA_GRE_OFLAGS = GRE_KEY (both directions, as
 * `ip link add ... key K` does), MTU on the device, IFF_UP.
 *
 * The kernel's fallback devices (gre0, gretap0, erspan0, made in every
 * namespace once ip_gre is loaded) are not tunnels: they have no endpoints,
 * and mt_gre_kernel_name_reserved names them so apply can refuse them.
 */
#ifndef MT_FASTPATH_GRE_KERNEL_H
#define MT_FASTPATH_GRE_KERNEL_H

#include <libmnl/libmnl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gre_bpf.h" /* struct mt_gre_tunnel */

/* What a gre link message says. */
struct mt_gre_kernel_link {
	/* name, local, remote (network order), has_key, key (host order),
	 * ttl, mtu; uplink and peer_mac unused. */
	struct mt_gre_tunnel t;
	uint32_t ifindex;
	uint32_t flags;	  /* ifi_flags */
	uint8_t pmtudisc; /* IFLA_GRE_PMTUDISC */
	/* The two directions agree (ikey == okey, key flag in both): mt
	 * never makes a link where they differ. */
	bool symmetric;
};

/* True for the names of the kernel's own per-namespace gre devices. */
bool mt_gre_kernel_name_reserved(const char *name);

/* RTM_NEWLINK for gre link t->name in the receiving socket's namespace:
 * create = true makes it (NLM_F_CREATE|NLM_F_EXCL); false changes an
 * existing one in place (the kernel's changelink; every parameter is sent,
 * a missing key clears the key, so the link ends up exactly as described).
 * MTU t->mtu (0 = 1476, 1472 with a key), TTL t->ttl (0 = 64), IFF_UP.
 * Returns the message length, -EMSGSIZE, or -EINVAL for a name that is not
 * a valid tunnel name or endpoints that are 0 or equal. Pure. */
int mt_gre_kernel_build(void *buf, size_t len, const struct mt_gre_tunnel *t,
			bool create);
/* RTM_DELLINK by name. Pure. */
int mt_gre_kernel_build_delete(void *buf, size_t len, const char *name);

/* Parses the IFLA_INFO_DATA nest of a gre link into out (endpoints, key,
 * ttl, pmtudisc, symmetric); other fields untouched. 0 or -EINVAL. */
int mt_gre_kernel_parse_data(const struct nlattr *data,
			     struct mt_gre_kernel_link *out);
/* Parses an RTM_NEWLINK (a dump reply, or a request built above): 0 and
 * out filled when it describes a gre link, -ENOENT when its kind is not
 * "gre", -EINVAL when malformed. */
int mt_gre_kernel_parse(const struct nlmsghdr *nlh,
			struct mt_gre_kernel_link *out);

/* Does this kernel make gre links? Tries for real: a short-lived thread
 * unshares a private network namespace (never the caller's), creates a gre
 * link there and exits, and the namespace disappears with it. Returns 1
 * (yes), 0 (no: why says what the kernel answered) or -errno when the
 * probe itself could not run (no CAP_SYS_ADMIN for unshare, ...; why says
 * so). */
int mt_gre_kernel_probe(char *why, size_t len);

#endif
