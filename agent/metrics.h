/* mt-agent's Prometheus metrics (lib/mt_metrics.h), served over HTTP on
 * the address given with --metrics. docs/metrics.md lists them. */
#ifndef MT_AGENT_METRICS_H
#define MT_AGENT_METRICS_H

#include <stddef.h>

struct agent;
struct agent_metrics;

/* Registers the families and listens on addr ("127.0.0.1:9464"). 0, or
 * -errno with err naming the address or the family. */
int agent_metrics_open(struct agent *a, const char *addr,
		       struct agent_metrics **out, char *err, size_t errlen);
void agent_metrics_free(struct agent_metrics *m);
/* The fd to poll (readable: call agent_metrics_process). */
int agent_metrics_fd(const struct agent_metrics *m);
void agent_metrics_process(struct agent_metrics *m);

#endif
