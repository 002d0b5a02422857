#include "nft_fw_rules.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <net/if.h>
#include <netinet/in.h>

#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>

#include "mt_cleanup.h"
#include "nftnl_cleanup.h"
#include "mt_metal.h"

/* nft(8)'s datatype ids, kept in NFTA_SET_KEY_TYPE for `nft list` to print
 * the keys (nftables include/datatype.h). */
#define KEY_TYPE_IPV4 7
#define KEY_TYPE_IPV6 8
#define KEY_TYPE_SERVICE 13
#define KEY_TYPE_IFNAME 41

#define ANON_SET_NAME "__set%d"
#define ANON_SET_FLAGS (NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_INTERVAL)
#define COMMENT_MAX 128 /* NFTNL_UDATA_COMMENT_MAXLEN */
#define TAG "mt fw"
#define JUMP_COMMENT "mt fw jump"
#define DEFAULT_COMMENT "mt fw default"
#define EXPRS_MAX 48 /* more than any part mt writes */
#define ELEMS_MAX (2 * MT_FW_INLINE_MAX + 2)

#define TCP_FLAGS_OFFSET 13
#define IPV4_FRAG_OFFSET 6
#define IPV4_FRAG_MASK 0x3fff /* MF + fragment offset */
#define IPV4_TTL_OFFSET 8
#define IPV6_HOPLIMIT_OFFSET 7
#define IPV6_FRAG_HDR 44 /* NEXTHDR_FRAGMENT */

static void pb_rule_freep(Mt__Config__FirewallRule **r)
{
	if (*r)
		protobuf_c_message_free_unpacked(&(*r)->base, NULL);
}

#define _cleanup_pb_rule_ MT_CLEANUP(pb_rule_freep)

/* ---- a rule, decoded ----
 *
 * Compiling goes protobuf -> struct fwr (checking that the rule is in the
 * canonical form) -> nftnl; parsing goes nftnl -> struct fwr -> protobuf,
 * and then compiles that protobuf again to compare it with what was read. */

enum { ACT_ALLOW, ACT_BLOCK, ACT_RATE };
enum { ADDR_NONE, ADDR_PREFIXES, ADDR_LIST };

struct addr_match {
	int kind;
	size_t n;
	struct mt_prefix p[MT_FW_INLINE_MAX];
	char list[MT_FW_LIST_NAME_MAX + 1];
};

struct port_match {
	size_t n;
	uint16_t lo[MT_FW_INLINE_MAX], hi[MT_FW_INLINE_MAX];
};

struct fwr {
	uint32_t id;
	char desc[MT_FW_DESC_MAX + 1];
	int action;
	bool monitor;
	bool bytes; /* the rate is in bytes per second */
	uint64_t rate, burst;
	int family; /* 0 (both), AF_INET, AF_INET6 */
	struct addr_match src, dst;
	int proto; /* -1: any */
	struct port_match sport, dport;
	bool has_flags;
	uint8_t fset, fclear;
	bool has_icmp, has_code;
	uint8_t itype, icode;
	bool has_len;
	uint16_t lmin, lmax;
	bool fragment;
	bool has_ttl;
	uint8_t tmin, tmax;
};

static size_t addr_len(int family)
{
	return family == AF_INET6 ? 16 : 4;
}

static const char *const action_names[] = {"allow", "block", "rate_limit"};

static const struct {
	uint8_t num;
	const char *name;
} protos[] = {
	{IPPROTO_TCP, "tcp"},	  {IPPROTO_UDP, "udp"},
	{IPPROTO_ICMP, "icmp"},	  {IPPROTO_ICMPV6, "icmpv6"},
	{IPPROTO_GRE, "gre"},	  {IPPROTO_ESP, "esp"},
	{IPPROTO_AH, "ah"},	  {IPPROTO_SCTP, "sctp"},
};

/* fin syn rst psh ack urg ece cwr: bit i is flag i */
static const char *const tcp_flag_names[] = {"fin", "syn", "rst", "psh",
					     "ack", "urg", "ece", "cwr"};

static const char *proto_name(int p)
{
	for (size_t i = 0; i < MT_ARRAY_SIZE(protos); i++)
		if (protos[i].num == p)
			return protos[i].name;
	return NULL;
}

static const char *family_name(int f)
{
	return f == AF_INET ? "ipv4" : f == AF_INET6 ? "ipv6" : "";
}

static bool list_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MT_FW_LIST_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '_' && c != '-')))
			return false;
	}
	return true;
}

static bool desc_valid(const char *s)
{
	size_t n = strlen(s);

	if (n > MT_FW_DESC_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

/* Decimal without sign or leading zeros, at most max; *end after it. */
static bool parse_uint(const char *s, uint64_t max, uint64_t *v,
		       const char **end)
{
	uint64_t x = 0;
	const char *p = s;

	if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		x = x * 10 + (uint64_t)(*p - '0');
		if (x > max)
			return false;
	}
	*v = x;
	*end = p;
	return true;
}

/* ---- protobuf -> struct fwr, checking the canonical form ---- */

static bool addr_from_pb(char *const *s, size_t n, const char *list,
			 int family, struct addr_match *m)
{
	if (n && *list)
		return false;
	if (*list) {
		if (!family || !list_name_valid(list))
			return false;
		m->kind = ADDR_LIST;
		snprintf(m->list, sizeof(m->list), "%s", list);
		return true;
	}
	if (!n)
		return true;
	if (!family || n > MT_FW_INLINE_MAX)
		return false;
	m->kind = ADDR_PREFIXES;
	m->n = n;
	for (size_t i = 0; i < n; i++) {
		char buf[MT_PREFIX_STRLEN], err[64];

		if (mt_prefix_parse(s[i], true, &m->p[i], err, sizeof(err)) <
			0 ||
		    m->p[i].family != family ||
		    strcmp(mt_prefix_format(&m->p[i], buf, sizeof(buf)),
			   s[i]) != 0)
			return false;
		if (i && mt_prefix_cmp(&m->p[i - 1], &m->p[i]) >= 0)
			return false;
		/* sorted: a prefix covering p[i] comes before it */
		for (size_t j = 0; j < i; j++)
			if (mt_prefix_contains(&m->p[j], &m->p[i]))
				return false;
	}
	return true;
}

static bool ports_from_pb(char *const *s, size_t n, struct port_match *m)
{
	if (n > MT_FW_INLINE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint64_t lo, hi;
		const char *e;

		if (!parse_uint(s[i], 65535, &lo, &e))
			return false;
		hi = lo;
		if (*e == '-' && (!parse_uint(e + 1, 65535, &hi, &e) ||
				  hi <= lo))
			return false;
		if (*e)
			return false;
		/* sorted, neither overlapping nor adjacent */
		if (i && lo <= (uint64_t)m->hi[i - 1] + 1)
			return false;
		m->lo[i] = (uint16_t)lo;
		m->hi[i] = (uint16_t)hi;
	}
	m->n = n;
	return true;
}

static bool flags_from_pb(char *const *s, size_t n, uint8_t *bits)
{
	int last = -1;

	for (size_t i = 0; i < n; i++) {
		int k = -1;

		for (int j = 0; j < 8; j++)
			if (strcmp(s[i], tcp_flag_names[j]) == 0)
				k = j;
		if (k <= last)
			return false; /* unknown, duplicate or out of order */
		last = k;
		*bits |= (uint8_t)(1u << k);
	}
	return true;
}

static bool proto_from_pb(const char *s, int *proto)
{
	uint64_t v;
	const char *e;

	*proto = -1;
	if (!*s)
		return true;
	for (size_t i = 0; i < MT_ARRAY_SIZE(protos); i++) {
		if (strcmp(s, protos[i].name) == 0) {
			*proto = protos[i].num;
			return true;
		}
	}
	if (!parse_uint(s, 255, &v, &e) || *e || proto_name((int)v))
		return false;
	*proto = (int)v;
	return true;
}

static int fwr_from_pb(const Mt__Config__FirewallRule *r, struct fwr *w)
{
	const char *s;
	bool ports_ok, tcp;

	memset(w, 0, sizeof(*w));
	if (r->id < 1 || r->id > MT_FW_RULE_ID_MAX || !r->description ||
	    !desc_valid(r->description) || !r->action || !r->family ||
	    !r->src_list || !r->dst_list || !r->protocol)
		return -EINVAL;
	w->id = r->id;
	snprintf(w->desc, sizeof(w->desc), "%s", r->description);
	w->action = -1;
	for (int i = 0; i < (int)MT_ARRAY_SIZE(action_names); i++)
		if (strcmp(r->action, action_names[i]) == 0)
			w->action = i;
	if (w->action < 0 || (w->action == ACT_RATE) != !!r->rate_limit)
		return -EINVAL;
	w->monitor = r->monitor;
	if (r->rate_limit) {
		const Mt__Config__RateLimit *l = r->rate_limit;

		if (!l->packets_per_second == !l->bytes_per_second)
			return -EINVAL;
		w->bytes = l->bytes_per_second != 0;
		w->rate = w->bytes ? l->bytes_per_second : l->packets_per_second;
		w->burst = l->burst;
		/* NFTA_LIMIT_BURST is 32 bits; a packet burst of 0 is the
		 * kernel's 5, which the canonical form spells out. */
		if (w->burst > UINT32_MAX || (!w->bytes && w->burst == 0))
			return -EINVAL;
	}
	s = r->family;
	if (*s && !(w->family = strcmp(s, "ipv4") == 0	 ? AF_INET
				: strcmp(s, "ipv6") == 0 ? AF_INET6
							 : 0))
		return -EINVAL;
	if (!addr_from_pb(r->src_prefixes, r->n_src_prefixes, r->src_list,
			  w->family, &w->src) ||
	    !addr_from_pb(r->dst_prefixes, r->n_dst_prefixes, r->dst_list,
			  w->family, &w->dst))
		return -EINVAL;
	if (!proto_from_pb(r->protocol, &w->proto))
		return -EINVAL;
	if ((w->proto == IPPROTO_ICMP && w->family != AF_INET) ||
	    (w->proto == IPPROTO_ICMPV6 && w->family != AF_INET6))
		return -EINVAL;
	tcp = w->proto == IPPROTO_TCP;
	ports_ok = tcp || w->proto == IPPROTO_UDP || w->proto == IPPROTO_SCTP;
	if ((r->n_src_ports || r->n_dst_ports) && !ports_ok)
		return -EINVAL;
	if (!ports_from_pb(r->src_ports, r->n_src_ports, &w->sport) ||
	    !ports_from_pb(r->dst_ports, r->n_dst_ports, &w->dport))
		return -EINVAL;
	if (r->tcp_flags) {
		const Mt__Config__TcpFlags *f = r->tcp_flags;

		if (!tcp || (!f->n_set && !f->n_clear) ||
		    !flags_from_pb(f->set, f->n_set, &w->fset) ||
		    !flags_from_pb(f->clear, f->n_clear, &w->fclear) ||
		    (w->fset & w->fclear))
			return -EINVAL;
		w->has_flags = true;
	}
	if (r->icmp) {
		const Mt__Config__IcmpMatch *m = r->icmp;

		if ((w->proto != IPPROTO_ICMP && w->proto != IPPROTO_ICMPV6) ||
		    m->type > 255)
			return -EINVAL;
		w->has_icmp = true;
		w->itype = (uint8_t)m->type;
		if (m->code_present_case ==
		    MT__CONFIG__ICMP_MATCH__CODE_PRESENT_CODE) {
			if (m->code > 255)
				return -EINVAL;
			w->has_code = true;
			w->icode = (uint8_t)m->code;
		}
	}
	if (r->length) {
		if (r->length->min > r->length->max || r->length->max > 65535)
			return -EINVAL;
		w->has_len = true;
		w->lmin = (uint16_t)r->length->min;
		w->lmax = (uint16_t)r->length->max;
	}
	w->fragment = r->fragment;
	if (r->ttl) {
		if (r->ttl->min > r->ttl->max || r->ttl->max > 255)
			return -EINVAL;
		w->has_ttl = true;
		w->tmin = (uint8_t)r->ttl->min;
		w->tmax = (uint8_t)r->ttl->max;
	}
	return 0;
}

/* ---- struct fwr -> protobuf ---- */

static int pb_str(char **dst, const char *s)
{
	*dst = strdup(s);
	return *dst ? 0 : -ENOMEM;
}

static int pb_prefixes(const struct addr_match *m, size_t *n, char ***v)
{
	if (m->kind != ADDR_PREFIXES)
		return 0;
	*v = calloc(m->n, sizeof(**v));
	if (!*v)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++) {
		char buf[MT_PREFIX_STRLEN];

		mt_prefix_format(&m->p[i], buf, sizeof(buf));
		if (pb_str(&(*v)[i], buf) < 0)
			return -ENOMEM;
		(*n)++;
	}
	return 0;
}

static int pb_ports(const struct port_match *m, size_t *n, char ***v)
{
	if (!m->n)
		return 0;
	*v = calloc(m->n, sizeof(**v));
	if (!*v)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++) {
		char buf[16];

		if (m->lo[i] == m->hi[i])
			snprintf(buf, sizeof(buf), "%u", m->lo[i]);
		else
			snprintf(buf, sizeof(buf), "%u-%u", m->lo[i],
				 m->hi[i]);
		if (pb_str(&(*v)[i], buf) < 0)
			return -ENOMEM;
		(*n)++;
	}
	return 0;
}

static int pb_flags(uint8_t bits, size_t *n, char ***v)
{
	if (!bits)
		return 0;
	*v = calloc(8, sizeof(**v));
	if (!*v)
		return -ENOMEM;
	for (int i = 0; i < 8; i++) {
		if (!(bits & (1u << i)))
			continue;
		if (pb_str(&(*v)[*n], tcp_flag_names[i]) < 0)
			return -ENOMEM;
		(*n)++;
	}
	return 0;
}

static Mt__Config__Range *pb_range(uint32_t min, uint32_t max)
{
	Mt__Config__Range *x = malloc(sizeof(*x));

	if (x) {
		mt__config__range__init(x);
		x->min = min;
		x->max = max;
	}
	return x;
}

static int fwr_to_pb_fill(const struct fwr *w, Mt__Config__FirewallRule *r)
{
	char proto[16];
	const char *pn = proto_name(w->proto);

	r->id = w->id;
	r->monitor = w->monitor;
	r->fragment = w->fragment;
	if (w->proto < 0)
		proto[0] = '\0';
	else if (pn)
		snprintf(proto, sizeof(proto), "%s", pn);
	else
		snprintf(proto, sizeof(proto), "%d", w->proto);
	if (pb_str(&r->description, w->desc) < 0 ||
	    pb_str(&r->action, action_names[w->action]) < 0 ||
	    pb_str(&r->family, family_name(w->family)) < 0 ||
	    pb_str(&r->src_list, w->src.kind == ADDR_LIST ? w->src.list : "") <
		0 ||
	    pb_str(&r->dst_list, w->dst.kind == ADDR_LIST ? w->dst.list : "") <
		0 ||
	    pb_str(&r->protocol, proto) < 0 ||
	    pb_prefixes(&w->src, &r->n_src_prefixes, &r->src_prefixes) < 0 ||
	    pb_prefixes(&w->dst, &r->n_dst_prefixes, &r->dst_prefixes) < 0 ||
	    pb_ports(&w->sport, &r->n_src_ports, &r->src_ports) < 0 ||
	    pb_ports(&w->dport, &r->n_dst_ports, &r->dst_ports) < 0)
		return -ENOMEM;
	if (w->action == ACT_RATE) {
		Mt__Config__RateLimit *l = malloc(sizeof(*l));

		if (!l)
			return -ENOMEM;
		mt__config__rate_limit__init(l);
		r->rate_limit = l;
		if (w->bytes)
			l->bytes_per_second = w->rate;
		else
			l->packets_per_second = w->rate;
		l->burst = w->burst;
	}
	if (w->has_flags && (w->fset || w->fclear)) {
		Mt__Config__TcpFlags *f = malloc(sizeof(*f));

		if (!f)
			return -ENOMEM;
		mt__config__tcp_flags__init(f);
		r->tcp_flags = f;
		if (pb_flags(w->fset, &f->n_set, &f->set) < 0 ||
		    pb_flags(w->fclear, &f->n_clear, &f->clear) < 0)
			return -ENOMEM;
	}
	if (w->has_icmp) {
		Mt__Config__IcmpMatch *m = malloc(sizeof(*m));

		if (!m)
			return -ENOMEM;
		mt__config__icmp_match__init(m);
		r->icmp = m;
		m->type = w->itype;
		if (w->has_code) {
			m->code_present_case =
			    MT__CONFIG__ICMP_MATCH__CODE_PRESENT_CODE;
			m->code = w->icode;
		}
	}
	if (w->has_len && !(r->length = pb_range(w->lmin, w->lmax)))
		return -ENOMEM;
	if (w->has_ttl && !(r->ttl = pb_range(w->tmin, w->tmax)))
		return -ENOMEM;
	return 0;
}

static int fwr_to_pb(const struct fwr *w, Mt__Config__FirewallRule **out)
{
	_cleanup_pb_rule_ Mt__Config__FirewallRule *r = malloc(sizeof(*r));
	int ret;

	if (!r)
		return -ENOMEM;
	mt__config__firewall_rule__init(r);
	/* NULL until filled, so that a half-built message frees cleanly */
	r->description = r->action = r->family = NULL;
	r->src_list = r->dst_list = r->protocol = NULL;
	ret = fwr_to_pb_fill(w, r);
	if (ret < 0)
		return ret;
	*out = MT_TAKE_PTR(r);
	return 0;
}

/* ---- comments (userdata) ---- */

struct comment {
	const char *str;
	int n;
};

static int comment_cb(const struct nftnl_udata *attr, void *data)
{
	struct comment *c = data;
	const char *v = nftnl_udata_get(attr);
	uint8_t len = nftnl_udata_len(attr);

	c->n++;
	/* NFTNL_UDATA_RULE_COMMENT == NFTNL_UDATA_SET_ELEM_COMMENT == 0 */
	if (nftnl_udata_type(attr) == NFTNL_UDATA_RULE_COMMENT && len > 0 &&
	    v[len - 1] == '\0' && strlen(v) == (size_t)len - 1)
		c->str = v;
	return 0;
}

/* The comment of a userdata blob holding exactly one comment, or NULL. */
static const char *udata_comment(const void *ud, uint32_t len)
{
	struct comment c = {0};

	if (!ud || !len || nftnl_udata_parse(ud, len, comment_cb, &c) < 0 ||
	    c.n != 1)
		return NULL;
	return c.str;
}

static const char *rule_comment(const struct nftnl_rule *r)
{
	uint32_t len = 0;
	const void *ud = nftnl_rule_is_set(r, NFTNL_RULE_USERDATA)
			     ? nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len)
			     : NULL;

	return udata_comment(ud, len);
}

/* A userdata blob with the one comment s (type 0), into *u. */
static struct nftnl_udata_buf *comment_udata(const char *s)
{
	struct nftnl_udata_buf *u =
	    nftnl_udata_buf_alloc(NFTNL_UDATA_COMMENT_MAXLEN + 8);

	if (u && !nftnl_udata_put_strz(u, NFTNL_UDATA_RULE_COMMENT, s)) {
		nftnl_udata_buf_free(u);
		return NULL;
	}
	return u;
}

static int rule_set_comment(struct nftnl_rule *r, const char *s)
{
	_cleanup_udata_ struct nftnl_udata_buf *u = comment_udata(s);

	if (!u)
		return -ENOMEM;
	nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(u),
			    nftnl_udata_buf_len(u));
	return 0;
}

/* ---- the rule's digest ---- */

struct fnv {
	uint64_t h;
};

static void fnv_bytes(struct fnv *f, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		f->h ^= b[i];
		f->h *= 0x100000001b3ull;
	}
}

static void fnv_u64(struct fnv *f, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	fnv_bytes(f, b, sizeof(b));
}

static void fnv_str(struct fnv *f, const char *s)
{
	fnv_bytes(f, s, strlen(s) + 1);
}

static void fnv_addr(struct fnv *f, const struct addr_match *m)
{
	fnv_u64(f, (uint64_t)m->kind);
	fnv_u64(f, m->n);
	for (size_t i = 0; m->kind == ADDR_PREFIXES && i < m->n; i++) {
		fnv_u64(f, (uint64_t)m->p[i].family);
		fnv_u64(f, m->p[i].len);
		fnv_bytes(f, m->p[i].addr, addr_len(m->p[i].family));
	}
	fnv_str(f, m->kind == ADDR_LIST ? m->list : "");
}

static void fnv_ports(struct fnv *f, const struct port_match *m)
{
	fnv_u64(f, m->n);
	for (size_t i = 0; i < m->n; i++)
		fnv_u64(f, (uint64_t)m->lo[i] << 16 | m->hi[i]);
}

/* 64-bit FNV-1a over every field of w, as 16 hex digits: written into the
 * comment of each part, so that a part changed by hand into another valid
 * rule (another port, another verdict) is not taken for one of mt's. */
static void fwr_digest(const struct fwr *w, char out[MT_FW_DIGEST_STRLEN])
{
	struct fnv f = {.h = 0xcbf29ce484222325ull};

	fnv_u64(&f, w->id);
	fnv_str(&f, w->desc);
	fnv_u64(&f, (uint64_t)w->action);
	fnv_u64(&f, w->monitor);
	fnv_u64(&f, w->action == ACT_RATE ? w->bytes : 0);
	fnv_u64(&f, w->action == ACT_RATE ? w->rate : 0);
	fnv_u64(&f, w->action == ACT_RATE ? w->burst : 0);
	fnv_u64(&f, (uint64_t)w->family);
	fnv_addr(&f, &w->src);
	fnv_addr(&f, &w->dst);
	fnv_u64(&f, (uint64_t)(int64_t)w->proto);
	fnv_ports(&f, &w->sport);
	fnv_ports(&f, &w->dport);
	fnv_u64(&f, w->has_flags ? 0x100u | w->fset : 0);
	fnv_u64(&f, w->has_flags ? w->fclear : 0);
	fnv_u64(&f, w->has_icmp ? 0x100u | w->itype : 0);
	fnv_u64(&f, w->has_icmp && w->has_code ? 0x100u | w->icode : 0);
	fnv_u64(&f, w->has_len ? 1ull << 32 | (uint32_t)w->lmin << 16 | w->lmax
			       : 0);
	fnv_u64(&f, w->fragment);
	fnv_u64(&f, w->has_ttl ? 0x10000u | (uint32_t)w->tmin << 8 | w->tmax
			       : 0);
	snprintf(out, MT_FW_DIGEST_STRLEN, "%016" PRIx64, f.h);
}

/* "mt fw ID K/N DIGEST", then " monitor ACTION" for a monitor rule, then
 * " DESCRIPTION" when there is one. */
static void part_comment(const struct fwr *w, uint32_t k, uint32_t n,
			 char *buf, size_t len)
{
	char digest[MT_FW_DIGEST_STRLEN];
	int o;

	fwr_digest(w, digest);
	o = snprintf(buf, len, TAG " %" PRIu32 " %" PRIu32 "/%" PRIu32 " %s",
		     w->id, k, n, digest);

	if (w->monitor)
		o += snprintf(buf + o, len - (size_t)o, " monitor %s",
			      action_names[w->action]);
	if (w->desc[0])
		snprintf(buf + o, len - (size_t)o, " %s", w->desc);
}

/* Parses "mt fw ID K/N" at the start of s; *rest after it (at '\0', or
 * after the space that follows). */
static bool tag_parse(const char *s, uint32_t *id, uint32_t *k, uint32_t *n,
		      const char **rest)
{
	uint64_t a, b, c;
	const char *e;

	if (!s || strncmp(s, TAG " ", sizeof(TAG)) != 0)
		return false;
	s += sizeof(TAG);
	if (!parse_uint(s, MT_FW_RULE_ID_MAX, &a, &e) || a == 0 || *e != ' ')
		return false;
	if (!parse_uint(e + 1, MT_NFT_FW_PARTS_MAX, &b, &e) || *e != '/')
		return false;
	if (!parse_uint(e + 1, MT_NFT_FW_PARTS_MAX, &c, &e) || b < 1 ||
	    b > c || (*e && *e != ' '))
		return false;
	*id = (uint32_t)a;
	*k = (uint32_t)b;
	*n = (uint32_t)c;
	*rest = *e ? e + 1 : e;
	return true;
}

int mt_nft_fw_rule_tag(const struct nftnl_rule *r, uint32_t *id,
		       uint32_t *part, uint32_t *n_parts)
{
	const char *rest;

	return tag_parse(rule_comment(r), id, part, n_parts, &rest) ? 0
								    : -ENOENT;
}

/* ---- building expressions ---- */

static struct nftnl_expr *expr_new(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);

	if (e)
		nftnl_rule_add_expr(r, e);
	return e;
}

static bool put_meta(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = expr_new(r, "meta");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	return true;
}

static bool put_cmp(struct nftnl_rule *r, uint32_t op, const void *data,
		    uint32_t len)
{
	struct nftnl_expr *e = expr_new(r, "cmp");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	return true;
}

static bool put_cmp_u8(struct nftnl_rule *r, uint32_t op, uint8_t v)
{
	return put_cmp(r, op, &v, 1);
}

static bool put_payload(struct nftnl_rule *r, uint32_t base, uint32_t off,
			uint32_t len)
{
	struct nftnl_expr *e = expr_new(r, "payload");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	return true;
}

/* reg 1 = (reg 1 & mask) ^ 0 */
static bool put_bitwise(struct nftnl_rule *r, const void *mask, uint32_t len)
{
	static const uint8_t zero[16];
	struct nftnl_expr *e = expr_new(r, "bitwise");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_OP, NFT_BITWISE_BOOL);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
	return true;
}

/* reg 1 (4 bytes) to network byte order: meta length compared by range */
static bool put_hton32(struct nftnl_rule *r)
{
	struct nftnl_expr *e = expr_new(r, "byteorder");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_LEN, 4);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_SIZE, 4);
	return true;
}

/* exthdr frag exists: reg 1 = 1 when the packet has a fragment header */
static bool put_exthdr_frag(struct nftnl_rule *r)
{
	struct nftnl_expr *e = expr_new(r, "exthdr");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_DREG, NFT_REG_1);
	nftnl_expr_set_u8(e, NFTNL_EXPR_EXTHDR_TYPE, IPV6_FRAG_HDR);
	nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_OFFSET, 0);
	nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_LEN, 1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_FLAGS, NFT_EXTHDR_F_PRESENT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_OP, NFT_EXTHDR_OP_IPV6);
	return true;
}

static bool put_lookup(struct nftnl_rule *r, const char *set, const uint32_t *id)
{
	struct nftnl_expr *e = expr_new(r, "lookup");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set);
	if (id)
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, *id);
	return true;
}

static bool put_counter(struct nftnl_rule *r)
{
	return expr_new(r, "counter") != NULL;
}

static bool put_verdict(struct nftnl_rule *r, int verdict, const char *chain)
{
	struct nftnl_expr *e = expr_new(r, "immediate");

	if (!e)
		return false;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
	if (chain)
		nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
	return true;
}

/* limit rate over RATE/second burst BURST [bytes] */
static bool put_limit(struct nftnl_rule *r, const struct fwr *w)
{
	struct nftnl_expr *e = expr_new(r, "limit");

	if (!e)
		return false;
	nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, w->rate);
	nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, 1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, (uint32_t)w->burst);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE,
			   w->bytes ? NFT_LIMIT_PKT_BYTES : NFT_LIMIT_PKTS);
	nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_FLAGS, NFT_LIMIT_F_INV);
	return true;
}

static struct nftnl_rule *rule_alloc(const char *table, const char *chain)
{
	struct nftnl_rule *r = nftnl_rule_alloc();

	if (!r)
		return NULL;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	return r;
}

/* ---- interval elements ---- */

/* The last address of p, into last; false when it is the top of the
 * address space (all ones). */
static bool prefix_last(const struct mt_prefix *p, uint8_t last[16])
{
	size_t len = addr_len(p->family);
	bool top = true;

	memcpy(last, p->addr, len);
	for (size_t i = 0; i < len; i++) {
		int bits = (int)p->len - (int)i * 8; /* prefix bits in byte i */
		uint8_t host = bits >= 8 ? 0 : bits <= 0 ? 0xff
							 : (uint8_t)(0xff >> bits);

		last[i] |= host;
		if (last[i] != 0xff)
			top = false;
	}
	return !top;
}

/* x += 1 (big endian); false on overflow */
static bool be_inc(uint8_t *x, size_t len)
{
	for (size_t i = len; i-- > 0;)
		if (++x[i] != 0)
			return true;
	return false;
}

/* x -= 1 (big endian); false on underflow */
static bool be_dec(uint8_t *x, size_t len)
{
	for (size_t i = len; i-- > 0;)
		if (x[i]-- != 0)
			return true;
	return false;
}

static bool elem_add(struct nftnl_set *s, const void *key, uint32_t len,
		     bool end)
{
	struct nftnl_set_elem *e = nftnl_set_elem_alloc();

	if (!e)
		return false;
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, len);
	if (end)
		nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_FLAGS,
				       NFT_SET_ELEM_INTERVAL_END);
	nftnl_set_elem_add(s, e);
	return true;
}

/* The interval [start, last] of a prefix: its start, and unless it reaches
 * the top of the space its end (last + 1) flagged INTERVAL_END. */
static bool prefix_elems_add(struct nftnl_set *s, const struct mt_prefix *p)
{
	uint32_t len = (uint32_t)addr_len(p->family);
	uint8_t end[16];

	if (!elem_add(s, p->addr, len, false))
		return false;
	if (!prefix_last(p, end))
		return true;
	be_inc(end, len);
	return elem_add(s, end, len, true);
}

static bool port_elems_add(struct nftnl_set *s, uint16_t lo, uint16_t hi)
{
	uint16_t a = htons(lo), b = htons((uint16_t)(hi + 1));

	return elem_add(s, &a, 2, false) &&
	       (hi == 65535 || elem_add(s, &b, 2, true));
}

/* One element as read: its key and whether it ends an interval. */
struct el {
	uint8_t key[16];
	uint32_t len;
	bool end;
};

static int el_cmp(const void *a, const void *b)
{
	const struct el *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	/* an interval's end before the next one's start at the same key */
	return (int)y->end - (int)x->end;
}

/* The elements of s (keys of klen bytes, nothing but a key and the
 * interval-end flag), sorted, into v (ELEMS_MAX). -ENOENT when s holds
 * anything else or too many, -ENOMEM. */
static int elems_read(const struct nftnl_set *s, uint32_t klen, struct el *v,
		      size_t *n)
{
	static const uint16_t other[] = {
	    NFTNL_SET_ELEM_VERDICT,    NFTNL_SET_ELEM_CHAIN,
	    NFTNL_SET_ELEM_DATA,       NFTNL_SET_ELEM_TIMEOUT,
	    NFTNL_SET_ELEM_EXPIRATION, NFTNL_SET_ELEM_USERDATA,
	    NFTNL_SET_ELEM_EXPR,       NFTNL_SET_ELEM_OBJREF,
	    NFTNL_SET_ELEM_KEY_END,    NFTNL_SET_ELEM_EXPRESSIONS,
	};
	struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
	struct nftnl_set_elem *e;
	int ret = 0;

	if (!it)
		return -ENOMEM;
	*n = 0;
	while (!ret && (e = nftnl_set_elems_iter_next(it))) {
		uint32_t len = 0, flags = 0;
		const void *k = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);

		if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS))
			flags = nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS);
		for (size_t i = 0; i < MT_ARRAY_SIZE(other); i++)
			if (nftnl_set_elem_is_set(e, other[i]))
				ret = -ENOENT;
		if (!k || len != klen || (flags & ~NFT_SET_ELEM_INTERVAL_END) ||
		    *n == ELEMS_MAX)
			ret = -ENOENT;
		if (ret)
			break;
		memcpy(v[*n].key, k, len);
		v[*n].len = len;
		v[*n].end = flags & NFT_SET_ELEM_INTERVAL_END;
		(*n)++;
	}
	nftnl_set_elems_iter_destroy(it);
	if (!ret && *n)
		qsort(v, *n, sizeof(*v), el_cmp);
	return ret;
}

/* Sorted elements as inclusive intervals [lo, hi]: each start followed by
 * its end, the last start alone when it reaches the top. Rewrites v in
 * place: v[2i] = lo, v[2i + 1] = hi. false when they do not pair up. */
static bool elems_intervals(struct el *v, size_t n, size_t *n_iv)
{
	size_t k = 0;

	for (size_t i = 0; i < n; k++) {
		struct el lo = v[i], hi;

		if (lo.end)
			return false;
		if (i + 1 == n) {
			hi = lo;
			memset(hi.key, 0xff, hi.len);
			i += 1;
		} else if (v[i + 1].end) {
			hi = v[i + 1];
			if (!be_dec(hi.key, hi.len) ||
			    memcmp(hi.key, lo.key, lo.len) < 0)
				return false;
			i += 2;
		} else {
			return false;
		}
		v[2 * k] = lo;
		v[2 * k + 1] = hi;
	}
	*n_iv = k;
	return true;
}

/* The prefix that is exactly [lo, hi], or false. */
static bool interval_prefix(int family, const uint8_t *lo, const uint8_t *hi,
			    struct mt_prefix *p)
{
	size_t len = addr_len(family);
	size_t bits = 0;

	while (bits < len * 8) {
		uint8_t m = (uint8_t)(0x80 >> (bits % 8));

		if ((lo[bits / 8] & m) != (hi[bits / 8] & m))
			break;
		bits++;
	}
	for (size_t b = bits; b < len * 8; b++) {
		uint8_t m = (uint8_t)(0x80 >> (b % 8));

		if ((lo[b / 8] & m) || !(hi[b / 8] & m))
			return false;
	}
	memset(p, 0, sizeof(*p));
	p->family = family;
	p->len = (uint8_t)bits;
	memcpy(p->addr, lo, len);
	return true;
}

/* ---- compiling ---- */

enum part_kind {
	PART_MAIN,  /* matches, counter, the verdict (monitor: none) */
	PART_LIMIT, /* matches, counter, limit over, counter, drop */
	PART_PASS,  /* matches, counter, accept */
};

struct build {
	const char *table;
	uint32_t *set_id;
	struct mt_nft_fw_compiled *out;
};

static struct nftnl_set *anon_set_new(struct build *b, uint32_t key_type,
				      uint32_t key_len)
{
	struct mt_nft_fw_compiled *c = b->out;
	struct nftnl_set *s;

	if (c->n_sets == MT_ARRAY_SIZE(c->sets))
		return NULL;
	s = nftnl_set_alloc();
	if (!s)
		return NULL;
	if (*b->set_id == 0)
		(*b->set_id)++; /* 0 is the named sets' id */
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, b->table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, ANON_SET_NAME);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, ANON_SET_FLAGS);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, key_type);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, key_len);
	nftnl_set_set_u32(s, NFTNL_SET_ID, (*b->set_id)++);
	c->sets[c->n_sets++] = s;
	return s;
}

static bool put_anon_lookup(struct nftnl_rule *r, const struct nftnl_set *s)
{
	uint32_t id = nftnl_set_get_u32(s, NFTNL_SET_ID);

	return put_lookup(r, ANON_SET_NAME, &id);
}

static bool put_addr(struct build *b, struct nftnl_rule *r, int fam,
		     bool src, const struct addr_match *m)
{
	uint32_t len = (uint32_t)addr_len(fam);
	uint32_t off = fam == AF_INET ? (src ? 12 : 16) : (src ? 8 : 24);

	if (m->kind == ADDR_NONE)
		return true;
	if (!put_payload(r, NFT_PAYLOAD_NETWORK_HEADER, off, len))
		return false;
	if (m->kind == ADDR_LIST) {
		char name[MT_NFT_FW_LIST_SET_NAME_MAX];

		mt_nft_fw_list_set_name(fam, m->list, name, sizeof(name));
		return put_lookup(r, name, NULL);
	}
	if (m->n == 1) {
		const struct mt_prefix *p = &m->p[0];
		uint8_t mask[16] = {0};

		if (p->len < len * 8) {
			for (uint32_t i = 0; i < p->len; i++)
				mask[i / 8] |= (uint8_t)(0x80 >> (i % 8));
			if (!put_bitwise(r, mask, len))
				return false;
		}
		return put_cmp(r, NFT_CMP_EQ, p->addr, len);
	}
	struct nftnl_set *s = anon_set_new(
	    b, fam == AF_INET ? KEY_TYPE_IPV4 : KEY_TYPE_IPV6, len);

	if (!s)
		return false;
	for (size_t i = 0; i < m->n; i++)
		if (!prefix_elems_add(s, &m->p[i]))
			return false;
	return put_anon_lookup(r, s);
}

static bool put_ports(struct build *b, struct nftnl_rule *r, uint32_t off,
		      const struct port_match *m)
{
	if (!m->n)
		return true;
	if (!put_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, off, 2))
		return false;
	if (m->n == 1) {
		uint16_t lo = htons(m->lo[0]), hi = htons(m->hi[0]);

		if (m->lo[0] == m->hi[0])
			return put_cmp(r, NFT_CMP_EQ, &lo, 2);
		return put_cmp(r, NFT_CMP_GTE, &lo, 2) &&
		       put_cmp(r, NFT_CMP_LTE, &hi, 2);
	}
	struct nftnl_set *s = anon_set_new(b, KEY_TYPE_SERVICE, 2);

	if (!s)
		return false;
	for (size_t i = 0; i < m->n; i++)
		if (!port_elems_add(s, m->lo[i], m->hi[i]))
			return false;
	return put_anon_lookup(r, s);
}

/* == v, or >= lo and <= hi, on a 1-byte load */
static bool put_range_u8(struct nftnl_rule *r, uint8_t lo, uint8_t hi)
{
	if (lo == hi)
		return put_cmp_u8(r, NFT_CMP_EQ, lo);
	return put_cmp_u8(r, NFT_CMP_GTE, lo) && put_cmp_u8(r, NFT_CMP_LTE, hi);
}

static bool put_matches(struct build *b, struct nftnl_rule *r,
			const struct fwr *w, int fam)
{
	if (fam && (!put_meta(r, NFT_META_NFPROTO) ||
		    !put_cmp_u8(r, NFT_CMP_EQ,
				fam == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6)))
		return false;
	if (!put_addr(b, r, fam, true, &w->src) ||
	    !put_addr(b, r, fam, false, &w->dst))
		return false;
	if (w->proto >= 0 && (!put_meta(r, NFT_META_L4PROTO) ||
			      !put_cmp_u8(r, NFT_CMP_EQ, (uint8_t)w->proto)))
		return false;
	if (!put_ports(b, r, 0, &w->sport) || !put_ports(b, r, 2, &w->dport))
		return false;
	if (w->has_flags) {
		uint8_t mask = w->fset | w->fclear;

		if (!put_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER,
				 TCP_FLAGS_OFFSET, 1) ||
		    !put_bitwise(r, &mask, 1) ||
		    !put_cmp_u8(r, NFT_CMP_EQ, w->fset))
			return false;
	}
	if (w->has_icmp) {
		if (!put_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1) ||
		    !put_cmp_u8(r, NFT_CMP_EQ, w->itype))
			return false;
		if (w->has_code &&
		    (!put_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 1, 1) ||
		     !put_cmp_u8(r, NFT_CMP_EQ, w->icode)))
			return false;
	}
	if (w->has_len) {
		/* meta length is a host-order u32: == directly, a range
		 * after converting it to network order (as nft(8) does) */
		uint32_t v = w->lmin, lo = htonl(w->lmin), hi = htonl(w->lmax);

		if (!put_meta(r, NFT_META_LEN))
			return false;
		if (w->lmin == w->lmax ? !put_cmp(r, NFT_CMP_EQ, &v, 4)
				       : !put_hton32(r) ||
					     !put_cmp(r, NFT_CMP_GTE, &lo, 4) ||
					     !put_cmp(r, NFT_CMP_LTE, &hi, 4))
			return false;
	}
	if (w->fragment && fam == AF_INET) {
		uint16_t mask = htons(IPV4_FRAG_MASK), zero = 0;

		if (!put_payload(r, NFT_PAYLOAD_NETWORK_HEADER,
				 IPV4_FRAG_OFFSET, 2) ||
		    !put_bitwise(r, &mask, 2) ||
		    !put_cmp(r, NFT_CMP_NEQ, &zero, 2))
			return false;
	}
	if (w->fragment && fam == AF_INET6 &&
	    (!put_exthdr_frag(r) || !put_cmp_u8(r, NFT_CMP_EQ, 1)))
		return false;
	if (w->has_ttl &&
	    (!put_payload(r, NFT_PAYLOAD_NETWORK_HEADER,
			  fam == AF_INET ? IPV4_TTL_OFFSET
					 : IPV6_HOPLIMIT_OFFSET,
			  1) ||
	     !put_range_u8(r, w->tmin, w->tmax)))
		return false;
	return put_counter(r);
}

static int part_new(struct build *b, const struct fwr *w, int fam,
		    enum part_kind kind, uint32_t k, uint32_t n)
{
	_cleanup_rule_ struct nftnl_rule *r =
	    rule_alloc(b->table, MT_NFT_FW_RULES_CHAIN);
	char comment[COMMENT_MAX];
	bool ok;

	if (!r || !put_matches(b, r, w, fam))
		return -ENOMEM;
	switch (kind) {
	case PART_LIMIT:
		ok = put_limit(r, w) && put_counter(r) &&
		     put_verdict(r, NF_DROP, NULL);
		break;
	case PART_PASS:
		ok = put_verdict(r, NF_ACCEPT, NULL);
		break;
	default:
		if (w->monitor)
			ok = w->action != ACT_RATE ||
			     (put_limit(r, w) && put_counter(r));
		else
			ok = put_verdict(r, w->action == ACT_ALLOW ? NF_ACCEPT
								   : NF_DROP,
					 NULL);
		break;
	}
	if (!ok)
		return -ENOMEM;
	part_comment(w, k, n, comment, sizeof(comment));
	if (rule_set_comment(r, comment) < 0)
		return -ENOMEM;
	b->out->parts[b->out->n_parts++] = MT_TAKE_PTR(r);
	return 0;
}

static int fwr_compile(const char *table, const struct fwr *w,
		       uint32_t *set_id, struct mt_nft_fw_compiled *out)
{
	struct build b = {.table = table, .set_id = set_id, .out = out};
	int fams[2], nf = 0, ret;
	bool split = w->action == ACT_RATE && !w->monitor;
	uint32_t n, k = 0;

	if (w->family)
		fams[nf++] = w->family;
	else if (w->fragment || w->has_ttl)
		fams[nf++] = AF_INET, fams[nf++] = AF_INET6;
	else
		fams[nf++] = 0;
	n = (uint32_t)nf * (split ? 2 : 1);
	for (int f = 0; f < nf; f++) {
		if (split) {
			if ((ret = part_new(&b, w, fams[f], PART_LIMIT, ++k,
					    n)) < 0 ||
			    (ret = part_new(&b, w, fams[f], PART_PASS, ++k,
					    n)) < 0)
				return ret;
		} else if ((ret = part_new(&b, w, fams[f], PART_MAIN, ++k, n)) <
			   0) {
			return ret;
		}
	}
	return 0;
}

int mt_nft_fw_rule_compile(const char *table,
			   const Mt__Config__FirewallRule *r,
			   uint32_t *set_id, struct mt_nft_fw_compiled *out)
{
	_cleanup_free_ struct fwr *w = calloc(1, sizeof(*w));
	uint32_t first = *set_id;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!w)
		return -ENOMEM;
	if (!table || !r || (ret = fwr_from_pb(r, w)) < 0)
		return -EINVAL;
	ret = fwr_compile(table, w, set_id, out);
	if (ret < 0) {
		mt_nft_fw_compiled_fini(out);
		*set_id = first;
	}
	return ret;
}

void mt_nft_fw_compiled_fini(struct mt_nft_fw_compiled *c)
{
	for (size_t i = 0; i < c->n_sets; i++)
		nftnl_set_free(c->sets[i]);
	for (size_t i = 0; i < c->n_parts; i++)
		nftnl_rule_free(c->parts[i]);
	memset(c, 0, sizeof(*c));
}

/* ---- comparing what was read with what mt writes ---- */

static bool all_zero(const void *p, uint32_t len)
{
	const uint8_t *b = p;

	for (uint32_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

static bool expr_is(const struct nftnl_expr *e, const char *name)
{
	const char *n = e ? nftnl_expr_get_str(e, NFTNL_EXPR_NAME) : NULL;

	return n && strcmp(n, name) == 0;
}

static const struct nftnl_set *
compiled_set(const struct mt_nft_fw_compiled *c, uint32_t id)
{
	for (size_t i = 0; c && i < c->n_sets; i++)
		if (nftnl_set_get_u32(c->sets[i], NFTNL_SET_ID) == id)
			return c->sets[i];
	return NULL;
}

static bool set_u32_is(const struct nftnl_set *s, uint16_t attr, uint32_t v)
{
	return nftnl_set_is_set(s, attr) && nftnl_set_get_u32(s, attr) == v;
}

/* A dumped anonymous set against the one mt would make: flags, key and
 * the same elements. */
static int anon_set_same(const struct nftnl_set *got,
			 const struct nftnl_set *want)
{
	_cleanup_free_ struct el *a = calloc(ELEMS_MAX, sizeof(*a));
	_cleanup_free_ struct el *b = calloc(ELEMS_MAX, sizeof(*b));
	uint32_t klen = nftnl_set_get_u32(want, NFTNL_SET_KEY_LEN);
	size_t na, nb;
	int ret;

	if (!a || !b)
		return -ENOMEM;
	if (!set_u32_is(got, NFTNL_SET_FLAGS, ANON_SET_FLAGS) ||
	    !set_u32_is(got, NFTNL_SET_KEY_LEN, klen) ||
	    !set_u32_is(got, NFTNL_SET_KEY_TYPE,
			nftnl_set_get_u32(want, NFTNL_SET_KEY_TYPE)) ||
	    nftnl_set_is_set(got, NFTNL_SET_DATA_TYPE))
		return -ENOENT;
	if ((ret = elems_read(got, klen, a, &na)) < 0 ||
	    (ret = elems_read(want, klen, b, &nb)) < 0)
		return ret;
	if (na != nb)
		return -ENOENT;
	for (size_t i = 0; i < na; i++)
		if (el_cmp(&a[i], &b[i]) != 0)
			return -ENOENT;
	return 0;
}

/* The lookups: a named set by name; an anonymous one by its content. */
static int lookup_same(const struct nftnl_expr *g, const struct nftnl_expr *w,
		       const struct mt_nft_fw_compiled *c,
		       mt_nft_fw_set_find_fn find, void *ctx)
{
	const char *gn = nftnl_expr_is_set(g, NFTNL_EXPR_LOOKUP_SET)
			     ? nftnl_expr_get_str(g, NFTNL_EXPR_LOOKUP_SET)
			     : NULL;
	const char *wn = nftnl_expr_get_str(w, NFTNL_EXPR_LOOKUP_SET);
	const struct nftnl_set *gs, *ws;

	if (!gn)
		return -ENOENT;
	if (!nftnl_expr_is_set(w, NFTNL_EXPR_LOOKUP_SET_ID))
		return strcmp(gn, wn) == 0 &&
			       strncmp(gn, "__", 2) != 0
			   ? 0
			   : -ENOENT;
	ws = compiled_set(c, nftnl_expr_get_u32(w, NFTNL_EXPR_LOOKUP_SET_ID));
	if (!ws || strncmp(gn, "__set", 5) != 0 || !find ||
	    !(gs = find(gn, ctx)))
		return -ENOENT;
	return anon_set_same(gs, ws);
}

/* Every attribute of expression g as in w (unset = zero), counter values
 * aside. */
static int expr_same(const struct nftnl_expr *g, const struct nftnl_expr *w,
		     const struct mt_nft_fw_compiled *c,
		     mt_nft_fw_set_find_fn find, void *ctx)
{
	const char *name = nftnl_expr_get_str(w, NFTNL_EXPR_NAME);
	bool counter = strcmp(name, "counter") == 0;
	bool lookup = strcmp(name, "lookup") == 0;

	if (!expr_is(g, name))
		return -ENOENT;
	for (uint16_t a = NFTNL_EXPR_BASE; a < 32; a++) {
		uint32_t gl = 0, wl = 0;
		const void *gd, *wd;

		if (counter)
			break; /* packets and bytes are the kernel's */
		if (lookup &&
		    (a == NFTNL_EXPR_LOOKUP_SET || a == NFTNL_EXPR_LOOKUP_SET_ID))
			continue;
		gd = nftnl_expr_is_set(g, a) ? nftnl_expr_get(g, a, &gl) : NULL;
		wd = nftnl_expr_is_set(w, a) ? nftnl_expr_get(w, a, &wl) : NULL;
		if (gd && wd) {
			if (gl != wl || memcmp(gd, wd, gl) != 0)
				return -ENOENT;
		} else if ((gd && !all_zero(gd, gl)) ||
			   (wd && !all_zero(wd, wl))) {
			return -ENOENT;
		}
	}
	return lookup ? lookup_same(g, w, c, find, ctx) : 0;
}

static bool rule_str_is(const struct nftnl_rule *r, uint16_t attr,
			const char *want)
{
	return !nftnl_rule_is_set(r, attr) ||
	       strcmp(nftnl_rule_get_str(r, attr), want) == 0;
}

/* Rule got (dumped) is exactly rule want (built): chain, family, the
 * expressions and the userdata. 0, -ENOENT or -ENOMEM. */
static int rule_same(const struct nftnl_rule *got,
		     const struct nftnl_rule *want,
		     const struct mt_nft_fw_compiled *c,
		     mt_nft_fw_set_find_fn find, void *ctx)
{
	struct nftnl_expr_iter *gi, *wi;
	struct nftnl_expr *g, *w;
	uint32_t gl = 0, wl = 0;
	const void *gu, *wu;
	int ret = 0;

	if (!rule_str_is(got, NFTNL_RULE_CHAIN,
			 nftnl_rule_get_str(want, NFTNL_RULE_CHAIN)) ||
	    (nftnl_rule_is_set(got, NFTNL_RULE_FAMILY) &&
	     nftnl_rule_get_u32(got, NFTNL_RULE_FAMILY) != NFPROTO_INET) ||
	    nftnl_rule_is_set(got, NFTNL_RULE_COMPAT_PROTO))
		return -ENOENT;
	gu = nftnl_rule_is_set(got, NFTNL_RULE_USERDATA)
		 ? nftnl_rule_get_data(got, NFTNL_RULE_USERDATA, &gl)
		 : NULL;
	wu = nftnl_rule_get_data(want, NFTNL_RULE_USERDATA, &wl);
	if (!gu || gl != wl || memcmp(gu, wu, gl) != 0)
		return -ENOENT;
	gi = nftnl_expr_iter_create(got);
	wi = nftnl_expr_iter_create(want);
	if (!gi || !wi)
		ret = -ENOMEM;
	while (!ret) {
		g = nftnl_expr_iter_next(gi);
		w = nftnl_expr_iter_next(wi);
		if (!g || !w) {
			ret = g || w ? -ENOENT : 0;
			break;
		}
		ret = expr_same(g, w, c, find, ctx);
	}
	if (gi)
		nftnl_expr_iter_destroy(gi);
	if (wi)
		nftnl_expr_iter_destroy(wi);
	return ret;
}

/* ---- parsing a part ---- */

struct ex {
	const struct nftnl_expr *e[EXPRS_MAX];
	size_t n, i;
};

static int ex_load(const struct nftnl_rule *r, struct ex *x)
{
	struct nftnl_expr_iter *it = nftnl_expr_iter_create(r);
	struct nftnl_expr *e;
	int ret = 0;

	if (!it)
		return -ENOMEM;
	x->n = x->i = 0;
	while ((e = nftnl_expr_iter_next(it))) {
		if (x->n == EXPRS_MAX) {
			ret = -ENOENT;
			break;
		}
		x->e[x->n++] = e;
	}
	nftnl_expr_iter_destroy(it);
	return ret;
}

static const struct nftnl_expr *ex_at(const struct ex *x, size_t ahead)
{
	return x->i + ahead < x->n ? x->e[x->i + ahead] : NULL;
}

static uint32_t u32_or_0(const struct nftnl_expr *e, uint16_t attr)
{
	return nftnl_expr_is_set(e, attr) ? nftnl_expr_get_u32(e, attr) : 0;
}

static bool is_meta(const struct nftnl_expr *e, uint32_t key)
{
	return expr_is(e, "meta") && u32_or_0(e, NFTNL_EXPR_META_KEY) == key;
}

static bool is_payload(const struct nftnl_expr *e, uint32_t base, uint32_t off,
		       uint32_t len)
{
	return expr_is(e, "payload") &&
	       u32_or_0(e, NFTNL_EXPR_PAYLOAD_BASE) == base &&
	       u32_or_0(e, NFTNL_EXPR_PAYLOAD_OFFSET) == off &&
	       u32_or_0(e, NFTNL_EXPR_PAYLOAD_LEN) == len;
}

/* A comparison op of exactly len bytes, copied to out. */
static bool is_cmp(const struct nftnl_expr *e, uint32_t op, void *out,
		   uint32_t len)
{
	uint32_t have = 0;
	const void *d;

	if (!expr_is(e, "cmp") || u32_or_0(e, NFTNL_EXPR_CMP_OP) != op ||
	    !nftnl_expr_is_set(e, NFTNL_EXPR_CMP_DATA))
		return false;
	d = nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA, &have);
	if (!d || have != len)
		return false;
	memcpy(out, d, len);
	return true;
}

static bool is_bitwise(const struct nftnl_expr *e, void *mask, uint32_t len)
{
	uint32_t have = 0;
	const void *d;

	if (!expr_is(e, "bitwise") ||
	    !nftnl_expr_is_set(e, NFTNL_EXPR_BITWISE_MASK))
		return false;
	d = nftnl_expr_get(e, NFTNL_EXPR_BITWISE_MASK, &have);
	if (!d || have != len)
		return false;
	memcpy(mask, d, len);
	return true;
}

static const struct nftnl_set *anon_set(const struct nftnl_expr *e,
					mt_nft_fw_set_find_fn find, void *ctx)
{
	const char *name = nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_SET)
			       ? nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET)
			       : NULL;

	if (!name || strncmp(name, "__set", 5) != 0 || !find)
		return NULL;
	return find(name, ctx);
}

static int set_prefixes(const struct nftnl_set *s, int fam,
			struct addr_match *m)
{
	_cleanup_free_ struct el *v = calloc(ELEMS_MAX, sizeof(*v));
	size_t n, n_iv;
	int ret;

	if (!v)
		return -ENOMEM;
	if ((ret = elems_read(s, (uint32_t)addr_len(fam), v, &n)) < 0)
		return ret;
	if (!elems_intervals(v, n, &n_iv) || n_iv > MT_FW_INLINE_MAX)
		return -ENOENT;
	for (size_t i = 0; i < n_iv; i++)
		if (!interval_prefix(fam, v[2 * i].key, v[2 * i + 1].key,
				     &m->p[i]))
			return -ENOENT;
	m->kind = ADDR_PREFIXES;
	m->n = n_iv;
	return 0;
}

static int set_ports(const struct nftnl_set *s, struct port_match *m)
{
	_cleanup_free_ struct el *v = calloc(ELEMS_MAX, sizeof(*v));
	size_t n, n_iv;
	int ret;

	if (!v)
		return -ENOMEM;
	if ((ret = elems_read(s, 2, v, &n)) < 0)
		return ret;
	if (!elems_intervals(v, n, &n_iv) || n_iv > MT_FW_INLINE_MAX)
		return -ENOENT;
	for (size_t i = 0; i < n_iv; i++) {
		m->lo[i] = (uint16_t)(v[2 * i].key[0] << 8 | v[2 * i].key[1]);
		m->hi[i] =
		    (uint16_t)(v[2 * i + 1].key[0] << 8 | v[2 * i + 1].key[1]);
	}
	m->n = n_iv;
	return 0;
}

static int parse_addr(struct ex *x, int fam, bool src, struct addr_match *m,
		      mt_nft_fw_set_find_fn find, void *ctx)
{
	uint32_t len = (uint32_t)addr_len(fam);
	uint32_t off = fam == AF_INET ? (src ? 12 : 16) : (src ? 8 : 24);
	const struct nftnl_expr *e;
	uint8_t mask[16], addr[16];

	if (!fam || !is_payload(ex_at(x, 0), NFT_PAYLOAD_NETWORK_HEADER, off,
				len))
		return 0;
	x->i++;
	e = ex_at(x, 0);
	if (expr_is(e, "lookup")) {
		const char *name =
		    nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_SET)
			? nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET)
			: "";
		const struct nftnl_set *s;

		x->i++;
		if ((s = anon_set(e, find, ctx)))
			return set_prefixes(s, fam, m);
		if (strncmp(name, fam == AF_INET ? "l4_" : "l6_", 3) != 0 ||
		    !list_name_valid(name + 3))
			return -ENOENT;
		m->kind = ADDR_LIST;
		snprintf(m->list, sizeof(m->list), "%s", name + 3);
		return 0;
	}
	memset(mask, 0xff, sizeof(mask));
	if (is_bitwise(e, mask, len))
		e = ex_at(x, 1), x->i++;
	if (!is_cmp(e, NFT_CMP_EQ, addr, len))
		return -ENOENT;
	x->i++;
	m->kind = ADDR_PREFIXES;
	m->n = 1;
	memset(&m->p[0], 0, sizeof(m->p[0]));
	m->p[0].family = fam;
	memcpy(m->p[0].addr, addr, len);
	/* the prefix length is the mask's leading ones (a mask that is not
	 * one shows up when the rule is compiled again) */
	while (m->p[0].len < len * 8 &&
	       (mask[m->p[0].len / 8] & (0x80 >> (m->p[0].len % 8))))
		m->p[0].len++;
	return 0;
}

static int parse_ports(struct ex *x, uint32_t off, struct port_match *m,
		       mt_nft_fw_set_find_fn find, void *ctx)
{
	const struct nftnl_expr *e;
	uint16_t lo, hi;

	if (!is_payload(ex_at(x, 0), NFT_PAYLOAD_TRANSPORT_HEADER, off, 2))
		return 0;
	x->i++;
	e = ex_at(x, 0);
	if (expr_is(e, "lookup")) {
		const struct nftnl_set *s = anon_set(e, find, ctx);

		x->i++;
		return s ? set_ports(s, m) : -ENOENT;
	}
	if (is_cmp(e, NFT_CMP_EQ, &lo, 2)) {
		x->i++;
		hi = lo;
	} else if (is_cmp(e, NFT_CMP_GTE, &lo, 2) &&
		   is_cmp(ex_at(x, 1), NFT_CMP_LTE, &hi, 2)) {
		x->i += 2;
	} else {
		return -ENOENT;
	}
	m->n = 1;
	m->lo[0] = ntohs(lo);
	m->hi[0] = ntohs(hi);
	return 0;
}

/* == v or >= lo, <= hi after a 1-byte load; false when neither */
static bool parse_range_u8(struct ex *x, uint8_t *lo, uint8_t *hi)
{
	if (is_cmp(ex_at(x, 0), NFT_CMP_EQ, lo, 1)) {
		*hi = *lo;
		x->i++;
		return true;
	}
	if (is_cmp(ex_at(x, 0), NFT_CMP_GTE, lo, 1) &&
	    is_cmp(ex_at(x, 1), NFT_CMP_LTE, hi, 1)) {
		x->i += 2;
		return true;
	}
	return false;
}

enum verdict { V_NONE, V_ACCEPT, V_DROP, V_LIMIT, V_LIMIT_DROP };

struct part_info {
	int fam;
	enum verdict verdict;
	uint64_t packets, bytes, limited;
};

static bool parse_counter(struct ex *x, uint64_t *packets, uint64_t *bytes)
{
	const struct nftnl_expr *e = ex_at(x, 0);

	if (!expr_is(e, "counter"))
		return false;
	if (packets && nftnl_expr_is_set(e, NFTNL_EXPR_CTR_PACKETS))
		*packets = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
	if (bytes && nftnl_expr_is_set(e, NFTNL_EXPR_CTR_BYTES))
		*bytes = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES);
	x->i++;
	return true;
}

static bool parse_verdict(struct ex *x, int *verdict)
{
	const struct nftnl_expr *e = ex_at(x, 0);

	if (!expr_is(e, "immediate") ||
	    !nftnl_expr_is_set(e, NFTNL_EXPR_IMM_VERDICT))
		return false;
	*verdict = (int)nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT);
	x->i++;
	return true;
}

/* The matches of one part into w, its family guard, verdict and counters
 * into p. Lenient about details: what it misreads, comparing the rule
 * compiled again finds. */
static int part_parse(const struct nftnl_rule *r, mt_nft_fw_set_find_fn find,
		      void *ctx, struct fwr *w, struct part_info *p)
{
	struct ex x;
	uint8_t b = 0, lo = 0, hi = 0;
	int ret, v;

	memset(p, 0, sizeof(*p));
	if ((ret = ex_load(r, &x)) < 0)
		return ret;
	if (is_meta(ex_at(&x, 0), NFT_META_NFPROTO) &&
	    is_cmp(ex_at(&x, 1), NFT_CMP_EQ, &b, 1)) {
		x.i += 2;
		p->fam = b == NFPROTO_IPV4   ? AF_INET
			 : b == NFPROTO_IPV6 ? AF_INET6
					     : -1;
		if (p->fam < 0)
			return -ENOENT;
	}
	if ((ret = parse_addr(&x, p->fam, true, &w->src, find, ctx)) < 0 ||
	    (ret = parse_addr(&x, p->fam, false, &w->dst, find, ctx)) < 0)
		return ret;
	w->proto = -1;
	if (is_meta(ex_at(&x, 0), NFT_META_L4PROTO) &&
	    is_cmp(ex_at(&x, 1), NFT_CMP_EQ, &b, 1)) {
		x.i += 2;
		w->proto = b;
	}
	if ((ret = parse_ports(&x, 0, &w->sport, find, ctx)) < 0 ||
	    (ret = parse_ports(&x, 2, &w->dport, find, ctx)) < 0)
		return ret;
	if (is_payload(ex_at(&x, 0), NFT_PAYLOAD_TRANSPORT_HEADER,
		       TCP_FLAGS_OFFSET, 1)) {
		uint8_t mask = 0, val = 0;

		if (!is_bitwise(ex_at(&x, 1), &mask, 1) ||
		    !is_cmp(ex_at(&x, 2), NFT_CMP_EQ, &val, 1))
			return -ENOENT;
		x.i += 3;
		w->has_flags = true;
		w->fset = val;
		w->fclear = mask & (uint8_t)~val;
	}
	if (is_payload(ex_at(&x, 0), NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1)) {
		if (!is_cmp(ex_at(&x, 1), NFT_CMP_EQ, &w->itype, 1))
			return -ENOENT;
		x.i += 2;
		w->has_icmp = true;
		if (is_payload(ex_at(&x, 0), NFT_PAYLOAD_TRANSPORT_HEADER, 1,
			       1)) {
			if (!is_cmp(ex_at(&x, 1), NFT_CMP_EQ, &w->icode, 1))
				return -ENOENT;
			x.i += 2;
			w->has_code = true;
		}
	}
	if (is_meta(ex_at(&x, 0), NFT_META_LEN)) {
		uint32_t a, z;

		if (is_cmp(ex_at(&x, 1), NFT_CMP_EQ, &a, 4)) {
			x.i += 2;
			z = a;
		} else if (expr_is(ex_at(&x, 1), "byteorder") &&
			   is_cmp(ex_at(&x, 2), NFT_CMP_GTE, &a, 4) &&
			   is_cmp(ex_at(&x, 3), NFT_CMP_LTE, &z, 4)) {
			x.i += 4;
			a = ntohl(a);
			z = ntohl(z);
		} else {
			return -ENOENT;
		}
		if (a > 65535 || z > 65535)
			return -ENOENT;
		w->has_len = true;
		w->lmin = (uint16_t)a;
		w->lmax = (uint16_t)z;
	}
	if (p->fam == AF_INET &&
	    is_payload(ex_at(&x, 0), NFT_PAYLOAD_NETWORK_HEADER,
		       IPV4_FRAG_OFFSET, 2)) {
		x.i += 3; /* & mask != 0: checked by the comparison */
		w->fragment = true;
	} else if (p->fam == AF_INET6 && expr_is(ex_at(&x, 0), "exthdr")) {
		x.i += 2;
		w->fragment = true;
	}
	if (p->fam &&
	    is_payload(ex_at(&x, 0), NFT_PAYLOAD_NETWORK_HEADER,
		       p->fam == AF_INET ? IPV4_TTL_OFFSET
					 : IPV6_HOPLIMIT_OFFSET,
		       1)) {
		x.i++;
		if (!parse_range_u8(&x, &lo, &hi))
			return -ENOENT;
		w->has_ttl = true;
		w->tmin = lo;
		w->tmax = hi;
	}
	if (x.i > x.n || !parse_counter(&x, &p->packets, &p->bytes))
		return -ENOENT;
	if (expr_is(ex_at(&x, 0), "limit")) {
		const struct nftnl_expr *e = ex_at(&x, 0);

		w->action = ACT_RATE;
		w->bytes = u32_or_0(e, NFTNL_EXPR_LIMIT_TYPE) ==
			   NFT_LIMIT_PKT_BYTES;
		w->rate = nftnl_expr_is_set(e, NFTNL_EXPR_LIMIT_RATE)
			      ? nftnl_expr_get_u64(e, NFTNL_EXPR_LIMIT_RATE)
			      : 0;
		w->burst = u32_or_0(e, NFTNL_EXPR_LIMIT_BURST);
		x.i++;
		if (!parse_counter(&x, &p->limited, NULL))
			return -ENOENT;
		p->verdict = V_LIMIT;
		if (parse_verdict(&x, &v)) {
			if (v != NF_DROP)
				return -ENOENT;
			p->verdict = V_LIMIT_DROP;
		}
	} else if (parse_verdict(&x, &v)) {
		if (v == NF_ACCEPT)
			p->verdict = V_ACCEPT;
		else if (v == NF_DROP)
			p->verdict = V_DROP;
		else
			return -ENOENT;
	}
	return x.i == x.n ? 0 : -ENOENT;
}

/* Family, action and monitor of a rule from its parts, the description
 * from the comment of its first. */
static int rule_shape(const struct part_info *pi, size_t n, const char *rest,
		      struct fwr *w)
{
	bool v4 = false, v6 = false, none = false;
	const char *a;

	for (size_t i = 0; i < n; i++) {
		v4 |= pi[i].fam == AF_INET;
		v6 |= pi[i].fam == AF_INET6;
		none |= pi[i].fam == 0;
	}
	if (none && (v4 || v6))
		return -ENOENT;
	w->family = v4 && v6 ? 0 : v4 ? AF_INET : v6 ? AF_INET6 : 0;
	switch (pi[0].verdict) {
	case V_ACCEPT:
		w->action = ACT_ALLOW;
		break;
	case V_DROP:
		w->action = ACT_BLOCK;
		break;
	case V_LIMIT_DROP:
		break;
	case V_LIMIT:
	case V_NONE:
		w->monitor = true;
		break;
	}
	/* the digest (checked with the comment when compiled again) */
	if (strlen(rest) < MT_FW_DIGEST_STRLEN - 1)
		return -ENOENT;
	rest += MT_FW_DIGEST_STRLEN - 1;
	if (*rest && *rest++ != ' ')
		return -ENOENT;
	if (w->monitor) {
		/* " monitor ACTION" then the description */
		if (strncmp(rest, "monitor ", 8) != 0)
			return -ENOENT;
		a = rest + 8;
		rest = NULL;
		for (int i = 0; i < (int)MT_ARRAY_SIZE(action_names); i++) {
			size_t l = strlen(action_names[i]);

			if (strncmp(a, action_names[i], l) == 0 &&
			    (a[l] == '\0' || a[l] == ' ')) {
				if (pi[0].verdict == V_NONE)
					w->action = i;
				rest = a[l] ? a + l + 1 : a + l;
			}
		}
		if (!rest)
			return -ENOENT;
	}
	if (strlen(rest) > MT_FW_DESC_MAX)
		return -ENOENT;
	snprintf(w->desc, sizeof(w->desc), "%s", rest);
	return 0;
}

int mt_nft_fw_rule_parse(const struct nftnl_rule *const *parts, size_t n,
			 mt_nft_fw_set_find_fn find, void *ctx,
			 Mt__Config__FirewallRule **out, uint64_t *packets,
			 uint64_t *bytes, uint64_t *limited)
{
	_cleanup_free_ struct fwr *w = calloc(1, sizeof(*w));
	_cleanup_free_ struct fwr *scratch = calloc(1, sizeof(*scratch));
	_cleanup_pb_rule_ Mt__Config__FirewallRule *rule = NULL;
	struct mt_nft_fw_compiled c;
	struct part_info pi[MT_NFT_FW_PARTS_MAX];
	uint64_t pk = 0, by = 0, lim = 0;
	const char *rest = NULL, *table;
	uint32_t id = 0, set_id = 1;
	int ret;

	*out = NULL;
	if (!w || !scratch)
		return -ENOMEM;
	if (n == 0 || n > MT_NFT_FW_PARTS_MAX)
		return -ENOENT;
	for (size_t i = 0; i < n; i++) {
		uint32_t pid, k, nn;
		const char *r;

		if (!tag_parse(rule_comment(parts[i]), &pid, &k, &nn, &r) ||
		    (i && pid != id) || k != i + 1 || nn != n)
			return -ENOENT;
		if (i == 0) {
			id = pid;
			rest = r;
		}
		memset(scratch, 0, sizeof(*scratch));
		ret = part_parse(parts[i], find, ctx, i ? scratch : w, &pi[i]);
		if (ret < 0)
			return ret;
	}
	w->id = id;
	if ((ret = rule_shape(pi, n, rest, w)) < 0 ||
	    (ret = fwr_to_pb(w, &rule)) < 0)
		return ret;

	table = nftnl_rule_is_set(parts[0], NFTNL_RULE_TABLE)
		    ? nftnl_rule_get_str(parts[0], NFTNL_RULE_TABLE)
		    : "";
	ret = mt_nft_fw_rule_compile(table, rule, &set_id, &c);
	if (ret < 0)
		return ret == -ENOMEM ? ret : -ENOENT;
	if (c.n_parts != n)
		ret = -ENOENT;
	for (size_t i = 0; !ret && i < n; i++)
		ret = rule_same(parts[i], c.parts[i], &c, find, ctx);
	mt_nft_fw_compiled_fini(&c);
	if (ret < 0)
		return ret;

	for (size_t i = 0; i < n; i++) {
		/* the pass part of a rate limit recounts what its limit
		 * part let through */
		if (!(w->action == ACT_RATE && pi[i].verdict == V_ACCEPT)) {
			pk += pi[i].packets;
			by += pi[i].bytes;
		}
		lim += pi[i].limited;
	}
	if (packets)
		*packets += pk;
	if (bytes)
		*bytes += by;
	if (limited)
		*limited += lim;
	*out = MT_TAKE_PTR(rule);
	return 0;
}

/* ---- chains and base rules ---- */

static struct nftnl_chain *chain_alloc(const char *table, const char *name)
{
	struct nftnl_chain *c = nftnl_chain_alloc();

	if (!c)
		return NULL;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
	return c;
}

struct nftnl_chain *mt_nft_fw_chain_new(const char *table)
{
	struct nftnl_chain *c = chain_alloc(table, MT_NFT_FW_CHAIN);

	if (!c)
		return NULL;
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_FORWARD);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, MT_NFT_FW_PRIO);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	return c;
}

struct nftnl_chain *mt_nft_fw_rules_chain_new(const char *table)
{
	return chain_alloc(table, MT_NFT_FW_RULES_CHAIN);
}

static bool chain_name_is(const struct nftnl_chain *c, const char *want)
{
	const char *name = nftnl_chain_is_set(c, NFTNL_CHAIN_NAME)
			       ? nftnl_chain_get_str(c, NFTNL_CHAIN_NAME)
			       : NULL;

	return name && strcmp(name, want) == 0;
}

static bool chain_flags_ok(const struct nftnl_chain *c, uint32_t allowed)
{
	return !nftnl_chain_is_set(c, NFTNL_CHAIN_FLAGS) ||
	       (nftnl_chain_get_u32(c, NFTNL_CHAIN_FLAGS) & ~allowed) == 0;
}

bool mt_nft_fw_chain_ok(const struct nftnl_chain *c)
{
	const char *type = nftnl_chain_is_set(c, NFTNL_CHAIN_TYPE)
			       ? nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE)
			       : NULL;

	return chain_name_is(c, MT_NFT_FW_CHAIN) && type &&
	       strcmp(type, "filter") == 0 &&
	       nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM) &&
	       nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM) == NF_INET_FORWARD &&
	       nftnl_chain_is_set(c, NFTNL_CHAIN_PRIO) &&
	       nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO) == MT_NFT_FW_PRIO &&
	       nftnl_chain_is_set(c, NFTNL_CHAIN_POLICY) &&
	       nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY) == NF_ACCEPT &&
	       !nftnl_chain_is_set(c, NFTNL_CHAIN_DEV) &&
	       !nftnl_chain_is_set(c, NFTNL_CHAIN_DEVICES) &&
	       chain_flags_ok(c, NFT_CHAIN_BASE);
}

bool mt_nft_fw_rules_chain_ok(const struct nftnl_chain *c)
{
	return chain_name_is(c, MT_NFT_FW_RULES_CHAIN) &&
	       !nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM) &&
	       !nftnl_chain_is_set(c, NFTNL_CHAIN_TYPE) &&
	       !nftnl_chain_is_set(c, NFTNL_CHAIN_DEV) &&
	       !nftnl_chain_is_set(c, NFTNL_CHAIN_DEVICES) &&
	       chain_flags_ok(c, 0);
}

/* iifname MT_CUST_VETH, the whole IFNAMSIZ buffer NUL padded */
static bool put_iifname(struct nftnl_rule *r)
{
	char name[IFNAMSIZ] = {0};

	snprintf(name, sizeof(name), "%s", MT_CUST_VETH);
	return put_meta(r, NFT_META_IIFNAME) &&
	       put_cmp(r, NFT_CMP_EQ, name, sizeof(name));
}

struct nftnl_rule *mt_nft_fw_jump_rule_new(const char *table)
{
	_cleanup_rule_ struct nftnl_rule *r =
	    rule_alloc(table, MT_NFT_FW_CHAIN);

	if (!r || !put_iifname(r) ||
	    !put_verdict(r, NFT_JUMP, MT_NFT_FW_RULES_CHAIN) ||
	    rule_set_comment(r, JUMP_COMMENT) < 0)
		return NULL;
	return MT_TAKE_PTR(r);
}

struct nftnl_rule *mt_nft_fw_default_rule_new(const char *table,
					      const char *action)
{
	_cleanup_rule_ struct nftnl_rule *r = NULL;
	int verdict;

	if (!action) {
		errno = EINVAL;
		return NULL;
	}
	if (strcmp(action, "allow") == 0) {
		verdict = NF_ACCEPT;
	} else if (strcmp(action, "block") == 0) {
		verdict = NF_DROP;
	} else {
		errno = EINVAL;
		return NULL;
	}
	r = rule_alloc(table, MT_NFT_FW_CHAIN);
	if (!r || !put_iifname(r) || !put_counter(r) ||
	    !put_verdict(r, verdict, NULL) ||
	    rule_set_comment(r, DEFAULT_COMMENT) < 0)
		return NULL;
	return MT_TAKE_PTR(r);
}

int mt_nft_fw_base_rule_parse(const struct nftnl_rule *r,
			      enum mt_nft_fw_base_kind *kind,
			      const char **action, uint64_t *packets,
			      uint64_t *bytes)
{
	static const char *const actions[] = {"allow", "block"};
	const char *table = nftnl_rule_is_set(r, NFTNL_RULE_TABLE)
				? nftnl_rule_get_str(r, NFTNL_RULE_TABLE)
				: "";
	_cleanup_rule_ struct nftnl_rule *want = mt_nft_fw_jump_rule_new(table);
	int ret;

	if (!want)
		return -ENOMEM;
	ret = rule_same(r, want, NULL, NULL, NULL);
	if (ret != -ENOENT) {
		if (ret == 0 && kind)
			*kind = MT_NFT_FW_BASE_JUMP;
		return ret;
	}
	for (size_t i = 0; i < MT_ARRAY_SIZE(actions); i++) {
		struct ex x;

		nftnl_rule_free(want);
		want = mt_nft_fw_default_rule_new(table, actions[i]);
		if (!want)
			return -ENOMEM;
		ret = rule_same(r, want, NULL, NULL, NULL);
		if (ret == -ENOENT)
			continue;
		if (ret < 0)
			return ret;
		if ((ret = ex_load(r, &x)) < 0)
			return ret;
		x.i = 2; /* meta, cmp, then the counter */
		if (packets)
			*packets = 0;
		if (bytes)
			*bytes = 0;
		parse_counter(&x, packets, bytes);
		if (kind)
			*kind = MT_NFT_FW_BASE_DEFAULT;
		if (action)
			*action = actions[i];
		return 0;
	}
	return -ENOENT;
}

/* ---- lists ---- */

void mt_nft_fw_list_set_name(int family, const char *name, char *buf,
			     size_t len)
{
	snprintf(buf, len, "%s_%s", family == AF_INET6 ? "l6" : "l4", name);
}

static struct nftnl_set *set_named(const char *table, const char *name)
{
	struct nftnl_set *s = nftnl_set_alloc();

	if (!s)
		return NULL;
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(s, NFTNL_SET_NAME, name);
	return s;
}

/* nft(8)'s byte orders (BYTEORDER_HOST_ENDIAN, _BIG_ENDIAN) */
#define KEY_HOST_ENDIAN 1
#define KEY_BIG_ENDIAN 2

/* A named set for NEWSET. The kernel wants an NFTA_SET_ID even then: 0,
 * which the anonymous sets never use (lookups name a named set, never by
 * id). The key's byte order goes into the userdata as nft(8) writes it:
 * without it `nft list` prints an ifname key as "". */
static struct nftnl_set *set_decl(const char *table, const char *name,
				  uint32_t byteorder)
{
	_cleanup_set_ struct nftnl_set *s = set_named(table, name);
	_cleanup_udata_ struct nftnl_udata_buf *u = nftnl_udata_buf_alloc(16);

	if (!s || !u ||
	    !nftnl_udata_put_u32(u, NFTNL_UDATA_SET_KEYBYTEORDER, byteorder))
		return NULL;
	nftnl_set_set_u32(s, NFTNL_SET_ID, 0);
	nftnl_set_set_data(s, NFTNL_SET_USERDATA, nftnl_udata_buf_data(u),
			   nftnl_udata_buf_len(u));
	return MT_TAKE_PTR(s);
}

struct nftnl_set *mt_nft_fw_list_set_new(const char *table, int family,
					 const char *name)
{
	char buf[MT_NFT_FW_LIST_SET_NAME_MAX];
	struct nftnl_set *s;

	mt_nft_fw_list_set_name(family, name, buf, sizeof(buf));
	s = set_decl(table, buf, KEY_BIG_ENDIAN);
	if (!s)
		return NULL;
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_INTERVAL);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, family == AF_INET6
						     ? KEY_TYPE_IPV6
						     : KEY_TYPE_IPV4);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, (uint32_t)addr_len(family));
	return s;
}

struct nftnl_set *mt_nft_fw_lists_set_new(const char *table)
{
	struct nftnl_set *s =
	    set_decl(table, MT_NFT_FW_LISTS_SET, KEY_HOST_ENDIAN);

	if (!s)
		return NULL;
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, 0);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, KEY_TYPE_IFNAME);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, IFNAMSIZ);
	return s;
}

static uint32_t set_u32_or_0(const struct nftnl_set *s, uint16_t attr)
{
	return nftnl_set_is_set(s, attr) ? nftnl_set_get_u32(s, attr) : 0;
}

/* A plain set: no data, no timeout, no element expressions. */
static bool set_plain(const struct nftnl_set *s)
{
	return !nftnl_set_is_set(s, NFTNL_SET_DATA_TYPE) &&
	       !nftnl_set_is_set(s, NFTNL_SET_DATA_LEN) &&
	       !nftnl_set_is_set(s, NFTNL_SET_OBJ_TYPE) &&
	       set_u32_or_0(s, NFTNL_SET_TIMEOUT) == 0 &&
	       !nftnl_set_is_set(s, NFTNL_SET_EXPR) &&
	       !nftnl_set_is_set(s, NFTNL_SET_EXPRESSIONS);
}

bool mt_nft_fw_list_set_ok(const struct nftnl_set *s, int *family)
{
	const char *name = nftnl_set_is_set(s, NFTNL_SET_NAME)
			       ? nftnl_set_get_str(s, NFTNL_SET_NAME)
			       : "";
	int fam = strncmp(name, "l4_", 3) == 0	 ? AF_INET
		  : strncmp(name, "l6_", 3) == 0 ? AF_INET6
						 : 0;

	if (!fam || !list_name_valid(name + 3) || !set_plain(s) ||
	    set_u32_or_0(s, NFTNL_SET_FLAGS) != NFT_SET_INTERVAL ||
	    set_u32_or_0(s, NFTNL_SET_KEY_TYPE) !=
		(fam == AF_INET ? KEY_TYPE_IPV4 : KEY_TYPE_IPV6) ||
	    set_u32_or_0(s, NFTNL_SET_KEY_LEN) != addr_len(fam))
		return false;
	if (family)
		*family = fam;
	return true;
}

bool mt_nft_fw_lists_set_ok(const struct nftnl_set *s)
{
	const char *name = nftnl_set_is_set(s, NFTNL_SET_NAME)
			       ? nftnl_set_get_str(s, NFTNL_SET_NAME)
			       : "";

	return strcmp(name, MT_NFT_FW_LISTS_SET) == 0 && set_plain(s) &&
	       set_u32_or_0(s, NFTNL_SET_FLAGS) == 0 &&
	       set_u32_or_0(s, NFTNL_SET_KEY_TYPE) == KEY_TYPE_IFNAME &&
	       set_u32_or_0(s, NFTNL_SET_KEY_LEN) == IFNAMSIZ;
}

struct nftnl_set *mt_nft_fw_list_elems_new(const char *table, const char *set,
					   const struct mt_prefix *p, size_t n)
{
	_cleanup_set_ struct nftnl_set *s = NULL;

	if (n > MT_NFT_FW_ELEMS_PER_MSG) {
		errno = EINVAL;
		return NULL;
	}
	s = set_named(table, set);
	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!prefix_elems_add(s, &p[i]))
			return NULL;
	return MT_TAKE_PTR(s);
}

static void lists_comment(int family, const char *digest, uint32_t count,
			  char *buf, size_t len)
{
	snprintf(buf, len, "%s %s %" PRIu32, family_name(family), digest,
		 count);
}

struct nftnl_set *mt_nft_fw_lists_elem_new(const char *table, const char *name,
					   int family, const char *digest,
					   uint32_t count)
{
	_cleanup_set_ struct nftnl_set *s = NULL;
	_cleanup_udata_ struct nftnl_udata_buf *u = NULL;
	struct nftnl_set_elem *e;
	char key[IFNAMSIZ] = {0}, comment[COMMENT_MAX];

	if (!name || !list_name_valid(name) || !digest ||
	    (family != AF_INET && family != AF_INET6)) {
		errno = EINVAL;
		return NULL;
	}
	s = set_named(table, MT_NFT_FW_LISTS_SET);
	if (!s)
		return NULL;
	snprintf(key, sizeof(key), "%s", name);
	lists_comment(family, digest, count, comment, sizeof(comment));
	u = comment_udata(comment);
	e = nftnl_set_elem_alloc();
	if (!u || !e) {
		if (e)
			nftnl_set_elem_free(e);
		return NULL;
	}
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, sizeof(key));
	nftnl_set_elem_set(e, NFTNL_SET_ELEM_USERDATA, nftnl_udata_buf_data(u),
			   nftnl_udata_buf_len(u));
	nftnl_set_elem_add(s, e);
	return MT_TAKE_PTR(s);
}

static bool digest_valid(const char *s, size_t n)
{
	if (n != MT_FW_DIGEST_STRLEN - 1)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int mt_nft_fw_lists_elem_parse(const struct nftnl_set_elem *e, char *name,
			       int *family, char digest[MT_FW_DIGEST_STRLEN],
			       uint32_t *count)
{
	struct nftnl_set_elem *se = (struct nftnl_set_elem *)e;
	uint32_t klen = 0, ulen = 0;
	const char *key, *c, *sp1, *sp2, *end;
	const void *ud;
	char want[COMMENT_MAX];
	uint64_t n;
	int fam;

	key = nftnl_set_elem_get(se, NFTNL_SET_ELEM_KEY, &klen);
	ud = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_USERDATA)
		 ? nftnl_set_elem_get(se, NFTNL_SET_ELEM_USERDATA, &ulen)
		 : NULL;
	if (!key || klen != IFNAMSIZ || strnlen(key, klen) == klen ||
	    !all_zero(key + strlen(key), klen - (uint32_t)strlen(key)) ||
	    !list_name_valid(key))
		return -ENOENT;
	if ((nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS) &&
	     nftnl_set_elem_get_u32(se, NFTNL_SET_ELEM_FLAGS)) ||
	    nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_DATA) ||
	    nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_VERDICT) ||
	    nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_KEY_END))
		return -ENOENT;
	/* "FAMILY DIGEST COUNT" */
	c = udata_comment(ud, ulen);
	if (!c || !(sp1 = strchr(c, ' ')) || !(sp2 = strchr(sp1 + 1, ' ')))
		return -ENOENT;
	fam = (size_t)(sp1 - c) == 4 && strncmp(c, "ipv4", 4) == 0   ? AF_INET
	      : (size_t)(sp1 - c) == 4 && strncmp(c, "ipv6", 4) == 0 ? AF_INET6
								     : 0;
	if (!fam || !digest_valid(sp1 + 1, (size_t)(sp2 - sp1 - 1)) ||
	    !parse_uint(sp2 + 1, UINT32_MAX, &n, &end) || *end)
		return -ENOENT;
	memcpy(digest, sp1 + 1, MT_FW_DIGEST_STRLEN - 1);
	digest[MT_FW_DIGEST_STRLEN - 1] = '\0';
	/* and the blob is exactly the one mt writes */
	lists_comment(fam, digest, (uint32_t)n, want, sizeof(want));
	{
		_cleanup_udata_ struct nftnl_udata_buf *u = comment_udata(want);

		if (!u)
			return -ENOMEM;
		if (nftnl_udata_buf_len(u) != ulen ||
		    memcmp(nftnl_udata_buf_data(u), ud, ulen) != 0)
			return -ENOENT;
	}
	snprintf(name, MT_FW_LIST_NAME_MAX + 1, "%s", key);
	*family = fam;
	*count = (uint32_t)n;
	return 0;
}
