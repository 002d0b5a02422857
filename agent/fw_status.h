/* What mtctl firewall show prints: a customer's firewall config joined with
 * the firewall mt-fastpath observed in its namespace. Pure code, no I/O. */
#ifndef MT_FW_STATUS_H
#define MT_FW_STATUS_H

#include <stddef.h>

#include "config.pb-c.h"
#include "kernel.pb-c.h"
#include "mt_metal.h"
#include "rpc.pb-c.h"

/* Builds the FirewallStatus of customer c (a config in force, i.e. valid)
 * against observed (which may hold other customers' objects):
 *   - customer: c's name; default_action: the config's, "allow" when c has
 *     no firewall or leaves it empty;
 *   - rules: one per configured rule, in config order, each in canonical
 *     form (mt_fw_rule_canonical); installed when the kernel has a rule with
 *     that id equal to it (mt_fw_rule_equal); counters: a copy of the
 *     kernel's counters with that id (also for a rule the kernel holds in
 *     another form), NULL when there are none;
 *   - default_counters: a copy of the kernel's counters with id 0, or NULL;
 *   - lists: one per configured list, in config order: family and count of
 *     the compiled list (mt_fw_list_compile), installed when the kernel has
 *     a list of that name, family and digest;
 *   - in_sync: the kernel's firewall is the config's: same default action,
 *     the same rules in the same order and nothing else, every list
 *     installed and no other list, not dirty. No firewall in the config
 *     (or an empty one with default allow) is in sync with no kernel
 *     firewall and with an empty one that allows.
 * *out is a new heap message (protobuf_c_message_free_unpacked(out, NULL)).
 * 0, -ENOMEM, or -EINVAL with err naming the customer and the rule (index
 * and id) or list that does not compile (c was not valid). */
int mt_fw_status_build(const struct mt_metal *m, const Mt__Config__Customer *c,
		       const Mt__Kernel__KernelState *observed,
		       Mt__Rpc__FirewallStatus **out, char *err, size_t errlen);

#endif
