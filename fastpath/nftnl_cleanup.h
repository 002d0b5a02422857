/* __attribute__((cleanup)) helpers for libnftnl objects (mt_cleanup.h
 * style), shared by the nftables modules of mt-fastpath:
 *   _cleanup_rule_ struct nftnl_rule *r = nftnl_rule_alloc();  */
#ifndef MT_NFTNL_CLEANUP_H
#define MT_NFTNL_CLEANUP_H

#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>

#include "mt_cleanup.h"

static inline void mt_nftnl_rule_freep(struct nftnl_rule **r)
{
	if (*r)
		nftnl_rule_free(*r);
}

static inline void mt_nftnl_set_freep(struct nftnl_set **s)
{
	if (*s)
		nftnl_set_free(*s);
}

static inline void mt_nftnl_chain_freep(struct nftnl_chain **c)
{
	if (*c)
		nftnl_chain_free(*c);
}

static inline void mt_nftnl_udata_freep(struct nftnl_udata_buf **u)
{
	if (*u)
		nftnl_udata_buf_free(*u);
}

#define _cleanup_rule_ MT_CLEANUP(mt_nftnl_rule_freep)
#define _cleanup_set_ MT_CLEANUP(mt_nftnl_set_freep)
#define _cleanup_chain_ MT_CLEANUP(mt_nftnl_chain_freep)
#define _cleanup_udata_ MT_CLEANUP(mt_nftnl_udata_freep)

#endif
