/* The fast loop's planning: a tunnel's health change becomes a tiny plan
 * (only the customer's tunnel routes that move), and a restarted agent
 * reads the penalties the kernel's routes still carry. Pure code, no I/O.
 */
#ifndef MT_HEALTH_PLAN_H
#define MT_HEALTH_PLAN_H

#include <stdint.h>

#include "config.pb-c.h"
#include "desired.h"
#include "kernel.pb-c.h"
#include "mt_metal.h"

/* Appends to plan the ops that move customer c's tunnel routes from the
 * penalties before to the penalties after (either NULL: none): the routes
 * whose metric changes are created at their new metric first (make
 * before break) and deleted at the old one. Nothing else of the customer
 * is looked at, so the plan costs no observe; it assumes the kernel holds
 * what before describes, and the slow loop's next reconcile repairs it if
 * not. Returns the number of ops (>= 0), -EINVAL, -ENOMEM. */
int mt_health_plan(const struct mt_metal *m, const Mt__Config__Customer *c,
		   const struct mt_desired_penalties *before,
		   const struct mt_desired_penalties *after,
		   Mt__Kernel__Plan *plan);

/* The penalty the kernel's routes show for tunnel of customer c: for each
 * configured route through the tunnel, the observed cust_table route of
 * that prefix that carries the tunnel (dev or nexthop) with the lowest
 * metric, minus the configured priority; the largest of these (a
 * restarted agent must not send traffic into a tunnel it had put down).
 * 0 when no route through the tunnel is installed. */
uint32_t mt_health_observed_penalty(const struct mt_metal *m,
				    const Mt__Config__Customer *c,
				    const char *tunnel,
				    const Mt__Kernel__KernelState *observed);

#endif
