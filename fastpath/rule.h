/* rtnetlink policy rules: build (Rule -> RTM_NEWRULE/RTM_DELRULE) and parse
 * (RTM_NEWRULE -> Rule). Pure, no socket.
 *
 * A Rule has no address family: mt applies each Rule to IPv4 AND IPv6 (one
 * message per family), and observe reports a rule once when it exists in
 * either family. */
#ifndef MT_FASTPATH_RULE_H
#define MT_FASTPATH_RULE_H

#include <stdint.h>

#include "kernel.pb-c.h"
#include "nl.h"

struct mt_rule_meta {
	uint8_t family;
	uint8_t action;	  /* FR_ACT_* */
	uint8_t protocol; /* FRA_PROTOCOL, 0 = unset */
};

/* Builds the message for an op on r in family (AF_INET or AF_INET6): action
 * "lookup table", FRA_PRIORITY, FRA_FWMARK/FRA_FWMASK unless both are 0 (no
 * fwmark match; fwmark with fwmask 0 means mask 0xffffffff to the kernel),
 * FRA_TABLE, and on CREATE FRA_PROTOCOL MT_RTPROT with CREATE|EXCL (rules
 * cannot be replaced; an identical rule answers EEXIST). Returns the length,
 * -EAFNOSUPPORT or -EMSGSIZE. */
int mt_rule_build(void *buf, size_t len, Mt__Kernel__Op__Action action,
		  const Mt__Kernel__Rule *r, int family);
/* RTM_GETRULE dump request for all families. */
int mt_rule_build_dump(void *buf, size_t len);

/* Parses an RTM_NEWRULE into r (priority, fwmark, fwmask, table). */
int mt_rule_parse(const struct nlmsghdr *nlh, Mt__Kernel__Rule *r,
		  struct mt_rule_meta *meta);

#endif
