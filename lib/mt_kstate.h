/* Building KernelState and Plan messages in C.
 *
 * Every string, array and submessage inside a KernelState, Plan or Op built
 * with these helpers is heap-allocated, so the whole tree is released with
 * protobuf_c_message_free_unpacked(&msg->base, NULL), the same call that
 * releases an unpacked message. The add functions return the new, zeroed and
 * initialised object (strings set to ""), or NULL on ENOMEM.
 */
#ifndef MT_KSTATE_H
#define MT_KSTATE_H

#include "kernel.pb-c.h"

Mt__Kernel__KernelState *mt_kstate_new(void);
void mt_kstate_free(Mt__Kernel__KernelState *st);

Mt__Kernel__Netns *mt_kstate_add_netns(Mt__Kernel__KernelState *st);
Mt__Kernel__Link *mt_kstate_add_link(Mt__Kernel__KernelState *st);
Mt__Kernel__Addr *mt_kstate_add_addr(Mt__Kernel__KernelState *st);
Mt__Kernel__Route *mt_kstate_add_route(Mt__Kernel__KernelState *st);
Mt__Kernel__Rule *mt_kstate_add_rule(Mt__Kernel__KernelState *st);
Mt__Kernel__Sysctl *mt_kstate_add_sysctl(Mt__Kernel__KernelState *st);
Mt__Kernel__MarkTable *mt_kstate_add_mark_table(Mt__Kernel__KernelState *st);
Mt__Kernel__MarkPrefix *mt_kstate_add_mark_prefix(Mt__Kernel__KernelState *st);
Mt__Kernel__Tunnel *mt_kstate_add_tunnel(Mt__Kernel__KernelState *st);
Mt__Kernel__MssClamp *mt_kstate_add_mss_clamp(Mt__Kernel__KernelState *st);
Mt__Kernel__Firewall *mt_kstate_add_firewall(Mt__Kernel__KernelState *st);
/* Appends a list (strings "", no prefixes) to a firewall. */
Mt__Kernel__FirewallList *mt_firewall_add_list(Mt__Kernel__Firewall *f);
/* Appends a heap message (e.g. from mt_fw_rule_canonical) to a firewall's
 * rules, taking it; on ENOMEM it is freed. 0 or -ENOMEM. */
int mt_firewall_add_rule(Mt__Kernel__Firewall *f,
			 Mt__Config__FirewallRule *rule);
/* Appends a copy of s to the repeated string field (*v, *n). 0 or
 * -ENOMEM. */
int mt_kstate_add_str(char ***v, size_t *n, const char *s);
/* Appends a nexthop (dev/gateway "", weight 0) to a route. */
Mt__Kernel__Nexthop *mt_route_add_nexthop(Mt__Kernel__Route *r);

/* Replaces *field (a heap string or "") with a copy of s. 0 or -ENOMEM. */
int mt_kstate_set_str(char **field, const char *s);

Mt__Kernel__Plan *mt_plan_new(void);
void mt_plan_free(Mt__Kernel__Plan *p);
/* Appends an op holding a deep copy of obj (a Netns, Link, Addr, Route,
 * Rule, Sysctl, MarkTable, MarkPrefix, Tunnel, MssClamp or Firewall
 * message). NULL on ENOMEM or an object type an Op cannot carry. */
Mt__Kernel__Op *mt_plan_add(Mt__Kernel__Plan *p, Mt__Kernel__Op__Action action,
			    const ProtobufCMessage *obj);

/* Fills *slot (allocating it when NULL) with an op's outcome: error (0 or
 * -errno) and msg ("" for NULL). 0 or -ENOMEM. */
int mt_op_result_set(Mt__Kernel__OpResult **slot, int error, const char *msg);
/* The same with the message operators read: "" on success, else
 * "<mt_op_describe(op)>: <why, or strerror(-error) when why is empty>"
 * and " (kernel: <kmsg>)" when the kernel said more. */
int mt_op_result_describe(Mt__Kernel__OpResult **slot, const Mt__Kernel__Op *op,
			  int error, const char *why, const char *kmsg);

/* A deep copy of any message (pack + unpack). NULL on ENOMEM. */
ProtobufCMessage *mt_message_dup(const ProtobufCMessage *m);

/* "route 203.0.113.0/24 table 2000 dev mt0-acme in netns mt0-acme": a short
 * description of an op's object for logs, errors and mtctl plan. A
 * firewall: "create firewall mt0-acme: default block, 50 rules, lists bad
 * (delta +1 -0), big (100000 prefixes), good (unchanged)" (a list sent
 * without content is one the kernel already holds). */
char *mt_op_describe(const Mt__Kernel__Op *op, char *buf, size_t len);

#endif
