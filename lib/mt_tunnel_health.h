/* A tunnel's health-check config (proto/config.proto HealthCheck) turned
 * into what the prober needs: the state machine's parameters and the
 * probe's addresses. Pure code, no I/O. docs/health.md explains the
 * choices. */
#ifndef MT_TUNNEL_HEALTH_H
#define MT_TUNNEL_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.pb-c.h"
#include "mt_health.h"

/* How one tunnel is probed. Addresses in network byte order. */
struct mt_tunnel_probe {
	bool enabled;
	bool request;	    /* request-style (else reply-style) */
	bool bidirectional; /* the answer comes back inside the tunnel */
	uint32_t outer_src; /* edge_endpoint */
	uint32_t outer_dst; /* router_endpoint */
	uint8_t outer_ttl;
	bool has_key;
	uint32_t key;
	/* the inner packet: reply-style target -> edge side, request-style
	 * edge side -> target; the edge side is the tunnel's own inner
	 * address (bidirectional) or edge_endpoint (unidirectional) */
	uint32_t inner_src, inner_dst;
	uint32_t target;
};

/* The state machine's parameters for tunnel t: mt_health_params_default()
 * with the tunnel's overrides. 0, or -EINVAL with the reason in err
 * ("health_check.rate \"fast\": must be low, mid or high"); the caller adds
 * the customer and tunnel. */
int mt_tunnel_health_params(const Mt__Config__Tunnel *t,
			    struct mt_health_params *p, char *err,
			    size_t errlen);

/* The probe of tunnel t (already validated by mt_validate_tunnels). 0, or
 * -EINVAL with the reason in err: an unknown type or direction, a target
 * that is not the router's inner address nor router_endpoint. */
int mt_tunnel_probe_config(const Mt__Config__Tunnel *t,
			   struct mt_tunnel_probe *out, char *err,
			   size_t errlen);

/* Checks both of the above for tunnel t; 0 or -EINVAL with err. */
int mt_tunnel_health_check(const Mt__Config__Tunnel *t, char *err,
			   size_t errlen);

#endif
