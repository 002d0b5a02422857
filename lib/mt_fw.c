/* The customer firewall model (lib/mt_fw.h): validation, canonical rules,
 * compiled lists. */
#include "mt_fw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mt_cleanup.h"
#include "mt_validate.h"

#define STR(s) ((s) ? (s) : "")

/* ---- small helpers ---- */

const char *mt_fw_family_name(int family)
{
	switch (family) {
	case AF_INET:
		return "ipv4";
	case AF_INET6:
		return "ipv6";
	default:
		return NULL;
	}
}

int mt_fw_family_parse(const char *s)
{
	if (!s)
		return 0;
	if (strcmp(s, "ipv4") == 0)
		return AF_INET;
	if (strcmp(s, "ipv6") == 0)
		return AF_INET6;
	return 0;
}

const char *mt_fw_default_action(const char *s)
{
	if (!s || !*s || strcmp(s, "allow") == 0)
		return "allow";
	if (strcmp(s, "block") == 0)
		return "block";
	return NULL;
}

/* Field by field, driven by the descriptor, with the packer's view of
 * equality: a proto3 scalar or string at its default is the same as unset
 * (NULL or ""), a oneof member counts only when it is the case, a
 * submessage present (even empty) differs from one absent. Unknown fields
 * are ignored. So two messages are equal here exactly when
 * protobuf_c_message_pack writes the same known fields, without packing
 * (50k rule pairs compare in a few ms instead of ~40). */
static bool msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b);

static size_t elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	default:
		return 4;
	}
}

static bool value_equal(const ProtobufCFieldDescriptor *f, const void *x,
			const void *y)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		return !strcmp(STR(*(char *const *)x), STR(*(char *const *)y));
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *p = x, *q = y;

		return p->len == q->len &&
		       (!p->len || !memcmp(p->data, q->data, p->len));
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *p = *(ProtobufCMessage *const *)x;
		const ProtobufCMessage *q = *(ProtobufCMessage *const *)y;

		if (!p || !q)
			return p == q;
		return msg_equal(p, q);
	}
	case PROTOBUF_C_TYPE_BOOL:
		return !*(const protobuf_c_boolean *)x ==
		       !*(const protobuf_c_boolean *)y;
	default:
		return !memcmp(x, y, elem_size(f->type));
	}
}

static bool msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	const ProtobufCMessageDescriptor *d = a->descriptor;

	if (a == b)
		return true;
	if (b->descriptor != d)
		return false;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *pa = (const char *)a + f->offset;
		const char *pb = (const char *)b + f->offset;

		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t na = *(const size_t *)((const char *)a +
						      f->quantifier_offset);
			size_t nb = *(const size_t *)((const char *)b +
						      f->quantifier_offset);
			const char *va = *(const char *const *)pa;
			const char *vb = *(const char *const *)pb;
			size_t sz = elem_size(f->type);

			if (na != nb)
				return false;
			for (size_t k = 0; k < na; k++)
				if (!value_equal(f, va + k * sz, vb + k * sz))
					return false;
			continue;
		}
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t ca = *(const uint32_t *)((const char *)a +
							  f->quantifier_offset);
			uint32_t cb = *(const uint32_t *)((const char *)b +
							  f->quantifier_offset);

			if ((ca == f->id) != (cb == f->id))
				return false;
			if (ca != f->id)
				continue;
		} else if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
			   f->quantifier_offset &&
			   f->type != PROTOBUF_C_TYPE_STRING &&
			   f->type != PROTOBUF_C_TYPE_MESSAGE) {
			/* proto2 optional scalars: has_ flags */
			protobuf_c_boolean ha = *(const protobuf_c_boolean *)(
				(const char *)a + f->quantifier_offset);
			protobuf_c_boolean hb = *(const protobuf_c_boolean *)(
				(const char *)b + f->quantifier_offset);

			if (!ha != !hb)
				return false;
			if (!ha)
				continue;
		}
		if (!value_equal(f, pa, pb))
			return false;
	}
	return true;
}

bool mt_fw_rule_equal(const Mt__Config__FirewallRule *a,
		      const Mt__Config__FirewallRule *b)
{
	if (a == b)
		return true;
	if (!a || !b)
		return false;
	return msg_equal(&a->base, &b->base);
}

/* ---- lists ---- */

static size_t addr_len(int family)
{
	return family == AF_INET6 ? 16 : 4;
}

/* mt_prefix_parse(s, strict) for list contents, with a fast path for the
 * common "a.b.c.d/len" (a 100k list parses in ~3 ms instead of ~12). The
 * fast path takes only what mt_prefix_parse accepts with the same result
 * (decimal octets without leading zeros, a length of 1-2 digits, no host
 * bits); anything else, errors included, goes to mt_prefix_parse. */
static int fw_prefix_parse(const char *s, struct mt_prefix *p, char *err,
			   size_t errlen)
{
	const char *q = s;
	uint32_t a = 0, len = 32;

	if (!s)
		goto slow;
	for (int i = 0; i < 4; i++) {
		uint32_t o = 0;
		int nd = 0;

		while (*q >= '0' && *q <= '9' && nd < 4) {
			o = o * 10 + (uint32_t)(*q++ - '0');
			nd++;
		}
		if (nd == 0 || nd > 3 || o > 255 || (nd > 1 && q[-nd] == '0'))
			goto slow;
		a = a << 8 | o;
		if (i < 3 && *q++ != '.')
			goto slow;
	}
	if (*q == '/') {
		q++;
		if (q[0] < '0' || q[0] > '9')
			goto slow;
		len = (uint32_t)(q[0] - '0');
		if (q[1] >= '0' && q[1] <= '9') {
			len = len * 10 + (uint32_t)(q[1] - '0');
			q++;
		}
		q++;
		if (len > 32)
			goto slow;
	}
	if (*q || (len < 32 && (a & (0xffffffffu >> len))))
		goto slow;
	memset(p, 0, sizeof(*p));
	p->family = AF_INET;
	p->len = (uint8_t)len;
	p->addr[0] = (uint8_t)(a >> 24);
	p->addr[1] = (uint8_t)(a >> 16);
	p->addr[2] = (uint8_t)(a >> 8);
	p->addr[3] = (uint8_t)a;
	return 0;
slow:
	return mt_prefix_parse(s, true, p, err, errlen);
}

static int prefix_cmp_v(const void *a, const void *b)
{
	return mt_prefix_cmp(a, b);
}

/* Sorts p by mt_prefix_cmp. An IPv4-only array is radix-sorted on the
 * 40-bit key (address, length): O(n), ~1 ms for 100k, where qsort with
 * mt_prefix_cmp takes ~30 ms. Falls back to qsort for IPv6 or on ENOMEM. */
static void prefixes_sort(struct mt_prefix *p, size_t n)
{
	_cleanup_free_ uint64_t *k = NULL;
	_cleanup_free_ uint64_t *t = NULL;
	size_t i;

	for (i = 0; i < n && p[i].family == AF_INET; i++)
		;
	if (i < n || n < 64 || !(k = malloc(n * sizeof(*k))) ||
	    !(t = malloc(n * sizeof(*t)))) {
		qsort(p, n, sizeof(*p), prefix_cmp_v);
		return;
	}
	for (i = 0; i < n; i++)
		k[i] = (uint64_t)p[i].addr[0] << 32 |
		       (uint64_t)p[i].addr[1] << 24 |
		       (uint64_t)p[i].addr[2] << 16 |
		       (uint64_t)p[i].addr[3] << 8 | p[i].len;
	for (int shift = 0; shift < 40; shift += 8) {
		size_t cnt[256] = { 0 }, pos = 0;
		uint64_t *sw;

		for (i = 0; i < n; i++)
			cnt[(k[i] >> shift) & 255]++;
		if (cnt[(k[0] >> shift) & 255] == n)
			continue; /* every key has this byte: nothing to do */
		for (int b = 0; b < 256; b++) {
			size_t c = cnt[b];

			cnt[b] = pos;
			pos += c;
		}
		for (i = 0; i < n; i++)
			t[cnt[(k[i] >> shift) & 255]++] = k[i];
		sw = k;
		k = t;
		t = sw;
	}
	for (i = 0; i < n; i++) {
		memset(&p[i], 0, sizeof(p[i]));
		p[i].family = AF_INET;
		p[i].len = (uint8_t)(k[i] & 255);
		p[i].addr[0] = (uint8_t)(k[i] >> 32);
		p[i].addr[1] = (uint8_t)(k[i] >> 24);
		p[i].addr[2] = (uint8_t)(k[i] >> 16);
		p[i].addr[3] = (uint8_t)(k[i] >> 8);
	}
}

/* Sorts p and drops duplicates and prefixes covered by another one. After
 * sorting by (family, address, length), a prefix covered by another comes
 * after it, and every prefix between the two is covered too, so comparing
 * with the last kept prefix is enough. Returns the new count. */
static size_t prefixes_normalise(struct mt_prefix *p, size_t n)
{
	size_t k = 0;

	if (n == 0)
		return 0;
	prefixes_sort(p, n);
	for (size_t i = 1; i < n; i++) {
		if (mt_prefix_contains(&p[k], &p[i]))
			continue;
		p[++k] = p[i];
	}
	return k + 1;
}

void mt_fw_list_digest(int family, const struct mt_prefix *p, size_t n,
		       char out[MT_FW_DIGEST_STRLEN])
{
	uint64_t h = 0xcbf29ce484222325ull;
	const uint64_t prime = 0x100000001b3ull;
	uint8_t fam = family == AF_INET6 ? 6 : 4;

	h = (h ^ fam) * prime;
	for (size_t i = 0; i < n; i++) {
		size_t al = addr_len(p[i].family);

		h = (h ^ p[i].len) * prime;
		for (size_t j = 0; j < al; j++)
			h = (h ^ p[i].addr[j]) * prime;
	}
	snprintf(out, MT_FW_DIGEST_STRLEN, "%016llx", (unsigned long long)h);
}

int mt_fw_list_compile(const char *name, char *const *prefixes, size_t n,
		       struct mt_fw_list *out, char *err, size_t errlen)
{
	_cleanup_free_ struct mt_prefix *p = NULL;
	char perr[160];
	int family = 0;

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", STR(name));
	if (n) {
		p = malloc(n * sizeof(*p));
		if (!p)
			return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (fw_prefix_parse(prefixes[i], &p[i], perr, sizeof(perr)) <
		    0) {
			snprintf(err, errlen, "list \"%s\": prefixes[%zu]: %s",
				 STR(name), i, perr);
			return -EINVAL;
		}
		if (family == 0) {
			family = p[i].family;
		} else if (p[i].family != family) {
			snprintf(err, errlen,
				 "list \"%s\": prefixes[%zu] \"%s\": an %s prefix in an %s list (one family per list)",
				 STR(name), i, prefixes[i],
				 mt_fw_family_name(p[i].family),
				 mt_fw_family_name(family));
			return -EINVAL;
		}
	}
	out->family = family ? family : AF_INET;
	out->n = prefixes_normalise(p, n);
	if (out->n && out->n < n) {
		struct mt_prefix *q = realloc(p, out->n * sizeof(*p));

		if (q)
			p = q;
	}
	out->prefixes = out->n ? MT_TAKE_PTR(p) : NULL;
	mt_fw_list_digest(out->family, out->prefixes, out->n, out->digest);
	return 0;
}

void mt_fw_list_fini(struct mt_fw_list *l)
{
	if (!l)
		return;
	free(l->prefixes);
	l->prefixes = NULL;
	l->n = 0;
}

int mt_fw_list_delta(const struct mt_fw_list *from, const struct mt_fw_list *to,
		     struct mt_prefix **add, size_t *n_add,
		     struct mt_prefix **remove, size_t *n_remove)
{
	_cleanup_free_ struct mt_prefix *a = NULL;
	_cleanup_free_ struct mt_prefix *r = NULL;
	size_t i = 0, j = 0, na = 0, nr = 0;

	*add = *remove = NULL;
	*n_add = *n_remove = 0;
	/* Upper bounds first, one pass to count. */
	while (i < from->n || j < to->n) {
		int c = i == from->n ? 1 : j == to->n ? -1 :
			mt_prefix_cmp(&from->prefixes[i], &to->prefixes[j]);

		if (c == 0) {
			i++;
			j++;
		} else if (c < 0) {
			nr++;
			i++;
		} else {
			na++;
			j++;
		}
	}
	if (na && !(a = malloc(na * sizeof(*a))))
		return -ENOMEM;
	if (nr && !(r = malloc(nr * sizeof(*r))))
		return -ENOMEM;
	i = j = na = nr = 0;
	while (i < from->n || j < to->n) {
		int c = i == from->n ? 1 : j == to->n ? -1 :
			mt_prefix_cmp(&from->prefixes[i], &to->prefixes[j]);

		if (c == 0) {
			i++;
			j++;
		} else if (c < 0) {
			r[nr++] = from->prefixes[i++];
		} else {
			a[na++] = to->prefixes[j++];
		}
	}
	*add = MT_TAKE_PTR(a);
	*n_add = na;
	*remove = MT_TAKE_PTR(r);
	*n_remove = nr;
	return 0;
}

/* ---- one rule, parsed ---- */

enum fw_action { ACT_ALLOW, ACT_BLOCK, ACT_RATE_LIMIT };

static const char *const action_names[] = { "allow", "block", "rate_limit" };

struct proto_name {
	int num;
	const char *name;
};

static const struct proto_name proto_names[] = {
	{ 6, "tcp" },	{ 17, "udp" }, { 1, "icmp" }, { 58, "icmpv6" },
	{ 47, "gre" },	{ 50, "esp" }, { 51, "ah" },  { 132, "sctp" },
};

/* In the canonical order. */
static const char *const tcp_flag_names[] = { "fin", "syn", "rst", "psh",
					      "ack", "urg", "ece", "cwr" };

struct port_range {
	uint32_t lo, hi;
};

/* A rule's fields parsed and checked; err texts name the field and value
 * but not the customer or the rule (the callers add those). */
struct fw_parsed {
	enum fw_action action;
	int family;			/* 0 = both */
	struct mt_prefix *pfx[2];	/* src, dst; malloc'd */
	size_t n_pfx[2];
	int proto;			/* -1 = any */
	struct port_range *ports[2];	/* src, dst; malloc'd */
	size_t n_ports[2];
	unsigned flags_set, flags_clear;
	bool has_flags;
};

static void fw_parsed_fini(struct fw_parsed *p)
{
	for (int d = 0; d < 2; d++) {
		free(p->pfx[d]);
		free(p->ports[d]);
	}
}

static bool name_char(char ch, bool first)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       (!first && (ch == '_' || ch == '-'));
}

static bool valid_list_name(const char *s)
{
	if (!s || !name_char(*s, true))
		return false;
	for (const char *q = s + 1; *q; q++)
		if (!name_char(*q, false))
			return false;
	return strlen(s) <= MT_FW_LIST_NAME_MAX;
}

/* Parses "0".."255" (digits only). */
static int parse_u8_number(const char *s)
{
	unsigned v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 3)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v <= 255 ? (int)v : -1;
}

/* -1 for "", the protocol number, or -2 when unknown. */
static int parse_proto(const char *s)
{
	if (!s || !*s)
		return -1;
	for (size_t i = 0; i < MT_ARRAY_SIZE(proto_names); i++)
		if (strcasecmp(s, proto_names[i].name) == 0)
			return proto_names[i].num;
	int v = parse_u8_number(s);
	return v >= 0 ? v : -2;
}

static const char *proto_name(int num)
{
	for (size_t i = 0; i < MT_ARRAY_SIZE(proto_names); i++)
		if (proto_names[i].num == num)
			return proto_names[i].name;
	return NULL;
}

/* Parses a decimal port 0..65535 of exactly len characters. */
static int parse_port(const char *s, size_t len, uint32_t *out)
{
	uint32_t v = 0;

	if (len == 0 || len > 5)
		return len > 5 && strspn(s, "0123456789") >= len ? -ERANGE
								  : -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v > 65535)
		return -ERANGE;
	*out = v;
	return 0;
}

static int parse_port_range(const char *s, struct port_range *r, char *err,
			    size_t errlen)
{
	const char *dash = strchr(s, '-');
	size_t l1 = dash ? (size_t)(dash - s) : strlen(s);
	int e;

	e = parse_port(s, l1, &r->lo);
	if (e == 0 && dash)
		e = parse_port(dash + 1, strlen(dash + 1), &r->hi);
	else if (e == 0)
		r->hi = r->lo;
	if (e == -ERANGE) {
		snprintf(err, errlen, "port outside 0-65535");
		return -EINVAL;
	}
	if (e < 0) {
		snprintf(err, errlen,
			 "malformed port: must be N or A-B (0-65535)");
		return -EINVAL;
	}
	if (r->lo > r->hi) {
		snprintf(err, errlen, "range %u-%u: start above end", r->lo,
			 r->hi);
		return -EINVAL;
	}
	return 0;
}

/* The family of the list called name in fw (that of its first prefix,
 * AF_INET when empty), -ENOENT when there is none, -EINVAL when its first
 * prefix does not parse. */
static int list_family(const Mt__Config__Firewall *fw, const char *name)
{
	for (size_t i = 0; fw && i < fw->n_lists; i++) {
		const Mt__Config__IpList *l = fw->lists[i];
		struct mt_prefix p;
		char e[128];

		if (!l || strcmp(STR(l->name), name) != 0)
			continue;
		if (l->n_prefixes == 0)
			return AF_INET;
		if (mt_prefix_parse(l->prefixes[0], true, &p, e, sizeof(e)) < 0)
			return -EINVAL;
		return p.family;
	}
	return -ENOENT;
}

/* Agrees the rule's family with one more source of it. *fam is 0 until
 * something decides it; *why names what did. */
static int family_agree(int *fam, char *why, size_t whylen, int f,
			const char *what, char *err, size_t errlen)
{
	if (*fam == 0) {
		*fam = f;
		snprintf(why, whylen, "%s", what);
		return 0;
	}
	if (*fam == f)
		return 0;
	snprintf(err, errlen, "%s is %s but %s is %s", what,
		 mt_fw_family_name(f), why, mt_fw_family_name(*fam));
	return -EINVAL;
}

static const char *const dir_name[2] = { "src", "dst" };

static int parse_prefix_field(char *const *v, size_t n, const char *field,
			      struct mt_prefix **out, char *err, size_t errlen)
{
	char perr[160];

	if (n > MT_FW_INLINE_MAX) {
		snprintf(err, errlen, "%s: %zu prefixes, at most %u", field,
			 n, MT_FW_INLINE_MAX);
		return -EINVAL;
	}
	if (n == 0)
		return 0;
	*out = calloc(n, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (mt_prefix_parse(v[i], true, &(*out)[i], perr,
				    sizeof(perr)) < 0) {
			snprintf(err, errlen, "%s[%zu] \"%s\": %s", field, i,
				 STR(v[i]), perr);
			return -EINVAL;
		}
		if ((*out)[i].family != (*out)[0].family) {
			snprintf(err, errlen,
				 "%s[%zu] \"%s\": %s, but %s[0] \"%s\" is %s (one family per field)",
				 field, i, v[i],
				 mt_fw_family_name((*out)[i].family), field,
				 v[0], mt_fw_family_name((*out)[0].family));
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_flags(char *const *v, size_t n, const char *field,
		       unsigned *mask, char *err, size_t errlen)
{
	if (n > MT_ARRAY_SIZE(tcp_flag_names) * 4) {
		snprintf(err, errlen, "%s: %zu flags, at most %zu", field, n,
			 MT_ARRAY_SIZE(tcp_flag_names) * 4);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		size_t k;

		for (k = 0; k < MT_ARRAY_SIZE(tcp_flag_names); k++)
			if (strcasecmp(STR(v[i]), tcp_flag_names[k]) == 0)
				break;
		if (k == MT_ARRAY_SIZE(tcp_flag_names)) {
			snprintf(err, errlen,
				 "%s[%zu] \"%s\": unknown flag (fin syn rst psh ack urg ece cwr)",
				 field, i, STR(v[i]));
			return -EINVAL;
		}
		*mask |= 1u << k;
	}
	return 0;
}

static int parse_range(const Mt__Config__Range *r, const char *field,
		       uint32_t max, char *err, size_t errlen)
{
	if (!r)
		return 0;
	if (r->max > max) {
		snprintf(err, errlen, "%s: max %u: above %u", field, r->max,
			 max);
		return -EINVAL;
	}
	if (r->min > r->max) {
		snprintf(err, errlen, "%s: min %u above max %u", field, r->min,
			 r->max);
		return -EINVAL;
	}
	return 0;
}

/* Parses and checks rule r of fw (everything but the id's uniqueness).
 * 0, -EINVAL with err, or -ENOMEM. p is filled on success and must be
 * released with fw_parsed_fini either way. */
static int rule_parse(const Mt__Config__Firewall *fw,
		      const Mt__Config__FirewallRule *r, struct fw_parsed *p,
		      char *err, size_t errlen)
{
	char why[64], what[96];
	const char *s;
	size_t k;
	int e;

	memset(p, 0, sizeof(*p));
	p->proto = -1;
	if (r->id < 1 || r->id > MT_FW_RULE_ID_MAX) {
		snprintf(err, errlen, "id %u: must be 1-%u", r->id,
			 MT_FW_RULE_ID_MAX);
		return -EINVAL;
	}
	s = STR(r->description);
	if (strlen(s) > MT_FW_DESC_MAX) {
		snprintf(err, errlen,
			 "description: %zu characters, at most %u", strlen(s),
			 MT_FW_DESC_MAX);
		return -EINVAL;
	}
	for (k = 0; s[k]; k++)
		if ((unsigned char)s[k] < 0x20 || (unsigned char)s[k] > 0x7e) {
			snprintf(err, errlen,
				 "description: character %zu (0x%02x) is not printable ASCII",
				 k, (unsigned char)s[k]);
			return -EINVAL;
		}

	/* action and rate limit */
	for (k = 0; k < MT_ARRAY_SIZE(action_names); k++)
		if (strcasecmp(STR(r->action), action_names[k]) == 0)
			break;
	if (k == MT_ARRAY_SIZE(action_names)) {
		snprintf(err, errlen,
			 "action \"%s\": must be allow, block or rate_limit",
			 STR(r->action));
		return -EINVAL;
	}
	p->action = (enum fw_action)k;
	if (p->action != ACT_RATE_LIMIT && r->rate_limit) {
		snprintf(err, errlen,
			 "rate_limit: only with action rate_limit (action is \"%s\")",
			 r->action);
		return -EINVAL;
	}
	if (p->action == ACT_RATE_LIMIT) {
		const Mt__Config__RateLimit *rl = r->rate_limit;

		if (!rl || (!rl->packets_per_second &&
			    !rl->bytes_per_second)) {
			snprintf(err, errlen,
				 "rate_limit: a rate of 0: set packets_per_second or bytes_per_second");
			return -EINVAL;
		}
		if (rl->packets_per_second && rl->bytes_per_second) {
			snprintf(err, errlen,
				 "rate_limit: packets_per_second %llu and bytes_per_second %llu: set only one",
				 (unsigned long long)rl->packets_per_second,
				 (unsigned long long)rl->bytes_per_second);
			return -EINVAL;
		}
		if (rl->burst > UINT32_MAX) {
			snprintf(err, errlen,
				 "rate_limit: burst %llu: at most %u",
				 (unsigned long long)rl->burst, UINT32_MAX);
			return -EINVAL;
		}
		/* the kernel refuses (EOVERFLOW) a byte rate plus burst
		 * beyond ~1.8e10; keep both kinds well inside */
		if (rl->packets_per_second + rl->bytes_per_second + rl->burst >
		    MT_FW_RATE_MAX) {
			snprintf(err, errlen,
				 "rate_limit: rate %llu plus burst %llu: at most %llu in all",
				 (unsigned long long)(rl->packets_per_second +
						      rl->bytes_per_second),
				 (unsigned long long)rl->burst,
				 (unsigned long long)MT_FW_RATE_MAX);
			return -EINVAL;
		}
	}

	/* family, prefixes, lists, protocol */
	s = STR(r->family);
	if (*s && !(p->family = mt_fw_family_parse(s))) {
		snprintf(err, errlen,
			 "family \"%s\": must be ipv4, ipv6 or \"\" (both)", s);
		return -EINVAL;
	}
	snprintf(why, sizeof(why), "family");
	for (int d = 0; d < 2; d++) {
		char *const *v = d ? r->dst_prefixes : r->src_prefixes;
		size_t n = d ? r->n_dst_prefixes : r->n_src_prefixes;
		const char *list = STR(d ? r->dst_list : r->src_list);
		char field[16];

		snprintf(field, sizeof(field), "%s_prefixes", dir_name[d]);
		if (n && *list) {
			snprintf(err, errlen,
				 "%s_list \"%s\" and %s: not both for one direction",
				 dir_name[d], list, field);
			return -EINVAL;
		}
		e = parse_prefix_field(v, n, field, &p->pfx[d], err, errlen);
		if (e < 0)
			return e;
		p->n_pfx[d] = n;
		if (n) {
			snprintf(what, sizeof(what), "%s[0] \"%s\"", field,
				 v[0]);
			e = family_agree(&p->family, why, sizeof(why),
					 p->pfx[d][0].family, what, err,
					 errlen);
			if (e < 0)
				return e;
		}
		if (*list) {
			int f = list_family(fw, list);

			if (f < 0) {
				snprintf(err, errlen,
					 "%s_list \"%s\": no such list in firewall.lists",
					 dir_name[d], list);
				return -EINVAL;
			}
			snprintf(what, sizeof(what), "%s_list \"%s\"",
				 dir_name[d], list);
			e = family_agree(&p->family, why, sizeof(why), f,
					 what, err, errlen);
			if (e < 0)
				return e;
		}
	}
	s = STR(r->protocol);
	p->proto = parse_proto(s);
	if (p->proto == -2) {
		snprintf(err, errlen,
			 "protocol \"%s\": unknown (tcp, udp, icmp, icmpv6, gre, esp, ah, sctp or a number 0-255)",
			 s);
		return -EINVAL;
	}
	if (p->proto == 1 || p->proto == 58) {
		snprintf(what, sizeof(what), "protocol \"%s\"", s);
		e = family_agree(&p->family, why, sizeof(why),
				 p->proto == 1 ? AF_INET : AF_INET6, what, err,
				 errlen);
		if (e < 0)
			return e;
	}

	/* ports */
	for (int d = 0; d < 2; d++) {
		char *const *v = d ? r->dst_ports : r->src_ports;
		size_t n = d ? r->n_dst_ports : r->n_src_ports;
		char perr[96];

		if (n == 0)
			continue;
		if (n > MT_FW_INLINE_MAX) {
			snprintf(err, errlen, "%s_ports: %zu entries, at most %u",
				 dir_name[d], n, MT_FW_INLINE_MAX);
			return -EINVAL;
		}
		p->ports[d] = calloc(n, sizeof(*p->ports[d]));
		if (!p->ports[d])
			return -ENOMEM;
		for (size_t i = 0; i < n; i++)
			if (parse_port_range(STR(v[i]), &p->ports[d][i], perr,
					     sizeof(perr)) < 0) {
				snprintf(err, errlen, "%s_ports[%zu] \"%s\": %s",
					 dir_name[d], i, STR(v[i]), perr);
				return -EINVAL;
			}
		p->n_ports[d] = n;
		if (p->proto != 6 && p->proto != 17 && p->proto != 132) {
			snprintf(err, errlen,
				 "%s_ports[0] \"%s\": ports only with protocol tcp, udp or sctp (protocol is \"%s\")",
				 dir_name[d], STR(v[0]), s);
			return -EINVAL;
		}
	}

	/* tcp flags */
	if (r->tcp_flags && (r->tcp_flags->n_set || r->tcp_flags->n_clear)) {
		unsigned both;

		e = parse_flags(r->tcp_flags->set, r->tcp_flags->n_set,
				"tcp_flags.set", &p->flags_set, err, errlen);
		if (e == 0)
			e = parse_flags(r->tcp_flags->clear,
					r->tcp_flags->n_clear,
					"tcp_flags.clear", &p->flags_clear,
					err, errlen);
		if (e < 0)
			return e;
		both = p->flags_set & p->flags_clear;
		if (both) {
			snprintf(err, errlen,
				 "tcp_flags: \"%s\" both set and clear",
				 tcp_flag_names[__builtin_ctz(both)]);
			return -EINVAL;
		}
		if (p->proto != 6) {
			snprintf(err, errlen,
				 "tcp_flags: only with protocol tcp (protocol is \"%s\")",
				 s);
			return -EINVAL;
		}
		p->has_flags = true;
	}

	/* icmp */
	if (r->icmp) {
		if (p->proto != 1 && p->proto != 58) {
			snprintf(err, errlen,
				 "icmp: only with protocol icmp or icmpv6 (protocol is \"%s\")",
				 s);
			return -EINVAL;
		}
		if (r->icmp->type > 255) {
			snprintf(err, errlen, "icmp.type %u: must be 0-255",
				 r->icmp->type);
			return -EINVAL;
		}
		if (r->icmp->code_present_case ==
			    MT__CONFIG__ICMP_MATCH__CODE_PRESENT_CODE &&
		    r->icmp->code > 255) {
			snprintf(err, errlen, "icmp.code %u: must be 0-255",
				 r->icmp->code);
			return -EINVAL;
		}
	}
	e = parse_range(r->length, "length", 65535, err, errlen);
	if (e == 0)
		e = parse_range(r->ttl, "ttl", 255, err, errlen);
	return e;
}

/* ---- validation ---- */

#define fail mt_validate_fail

struct id_idx {
	uint32_t id;
	size_t idx;
};

static int id_idx_cmp(const void *a, const void *b)
{
	const struct id_idx *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int check_lists(const Mt__Config__Customer *c,
		       const Mt__Config__Firewall *fw, char *err,
		       size_t errlen)
{
	char perr[160];

	if (fw->n_lists > MT_FW_LISTS_MAX)
		return fail(err, errlen, c,
			    "firewall.lists: %zu lists, at most %u",
			    fw->n_lists, MT_FW_LISTS_MAX);
	for (size_t i = 0; i < fw->n_lists; i++) {
		const Mt__Config__IpList *l = fw->lists[i];
		const char *name = l ? STR(l->name) : "";
		struct mt_prefix p;
		int family = 0;

		if (!l || !valid_list_name(name))
			return fail(err, errlen, c,
				    "firewall.lists[%zu] \"%s\": name must match [a-z0-9][a-z0-9_-]*, at most %u characters",
				    i, name, MT_FW_LIST_NAME_MAX);
		for (size_t j = 0; j < i; j++)
			if (strcmp(STR(fw->lists[j]->name), name) == 0)
				return fail(err, errlen, c,
					    "firewall.lists[%zu] \"%s\": name already used by lists[%zu]",
					    i, name, j);
		if (l->n_prefixes > MT_FW_LIST_PREFIXES_MAX)
			return fail(err, errlen, c,
				    "firewall.lists[%zu] \"%s\": %zu prefixes, at most %u",
				    i, name, l->n_prefixes,
				    MT_FW_LIST_PREFIXES_MAX);
		for (size_t j = 0; j < l->n_prefixes; j++) {
			if (fw_prefix_parse(l->prefixes[j], &p, perr,
					    sizeof(perr)) < 0)
				return fail(err, errlen, c,
					    "firewall.lists[%zu] \"%s\": prefixes[%zu] \"%s\": %s",
					    i, name, j, STR(l->prefixes[j]),
					    perr);
			if (family == 0)
				family = p.family;
			else if (p.family != family)
				return fail(err, errlen, c,
					    "firewall.lists[%zu] \"%s\": prefixes[%zu] \"%s\": %s in an %s list (one family per list)",
					    i, name, j, l->prefixes[j],
					    mt_fw_family_name(p.family),
					    mt_fw_family_name(family));
		}
	}
	return 0;
}

int mt_validate_firewall(const struct mt_metal *m,
			 const Mt__Config__Customer *c, char *err,
			 size_t errlen)
{
	const Mt__Config__Firewall *fw = c->firewall;
	_cleanup_free_ struct id_idx *ids = NULL;
	char rerr[MT_VALIDATE_ERR_MAX];
	int e;

	(void)m;
	if (!fw)
		return 0;
	if (!mt_fw_default_action(fw->default_action))
		return fail(err, errlen, c,
			    "firewall.default_action \"%s\": must be allow or block",
			    STR(fw->default_action));
	e = check_lists(c, fw, err, errlen);
	if (e < 0)
		return e;
	if (fw->n_rules > MT_FW_RULES_MAX)
		return fail(err, errlen, c,
			    "firewall.rules: %zu rules, at most %u",
			    fw->n_rules, MT_FW_RULES_MAX);
	if (fw->n_rules == 0)
		return 0;
	ids = calloc(fw->n_rules, sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	for (size_t i = 0; i < fw->n_rules; i++) {
		const Mt__Config__FirewallRule *r = fw->rules[i];
		struct fw_parsed p;

		if (!r)
			return fail(err, errlen, c,
				    "firewall.rules[%zu]: empty", i);
		e = rule_parse(fw, r, &p, rerr, sizeof(rerr));
		fw_parsed_fini(&p);
		if (e == -ENOMEM)
			return e;
		if (e < 0)
			return fail(err, errlen, c,
				    "firewall.rules[%zu] (id %u): %s", i,
				    r->id, rerr);
		ids[i].id = r->id;
		ids[i].idx = i;
	}
	qsort(ids, fw->n_rules, sizeof(*ids), id_idx_cmp);
	for (size_t i = 1; i < fw->n_rules; i++)
		if (ids[i].id == ids[i - 1].id)
			return fail(err, errlen, c,
				    "firewall.rules[%zu] (id %u): id %u already used by rules[%zu]",
				    ids[i].idx, ids[i].id, ids[i].id,
				    ids[i - 1].idx);
	return 0;
}

/* ---- canonical form ---- */

static int port_range_cmp(const void *a, const void *b)
{
	const struct port_range *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->hi < y->hi ? -1 : x->hi > y->hi;
}

/* Sorts and merges overlapping and adjacent ranges; the new count. */
static size_t ports_normalise(struct port_range *v, size_t n)
{
	size_t k = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), port_range_cmp);
	for (size_t i = 1; i < n; i++) {
		if (v[i].lo <= v[k].hi + 1) {
			if (v[i].hi > v[k].hi)
				v[k].hi = v[i].hi;
			continue;
		}
		v[++k] = v[i];
	}
	return k + 1;
}

/* Strings of one canonical field, formatted into one buffer. */
struct strv {
	char **v;
	char (*buf)[MT_PREFIX_STRLEN];
	size_t n;
};

static void strv_fini(struct strv *s)
{
	free(s->v);
	free(s->buf);
}

static int strv_alloc(struct strv *s, size_t n)
{
	memset(s, 0, sizeof(*s));
	if (n == 0)
		return 0;
	s->v = calloc(n, sizeof(*s->v));
	s->buf = calloc(n, sizeof(*s->buf));
	if (!s->v || !s->buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		s->v[i] = s->buf[i];
	return 0;
}

/* Decimal digits of v at p; returns the end. */
static char *put_u32(char *p, uint32_t v)
{
	char tmp[10];
	int n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* mt_prefix_format without printf for IPv4 (inet_ntop formats with
 * sprintf, which dominated canonicalising rules with prefixes). */
static void fmt_prefix(const struct mt_prefix *p, char *buf, size_t len)
{
	char *q = buf;

	if (p->family != AF_INET || len < MT_PREFIX_STRLEN) {
		mt_prefix_format(p, buf, len);
		return;
	}
	for (int i = 0; i < 4; i++) {
		q = put_u32(q, p->addr[i]);
		*q++ = i < 3 ? '.' : '/';
	}
	q = put_u32(q, p->len);
	*q = '\0';
}

/* "N" or "A-B"; buf holds at least 12 bytes. */
static void fmt_ports(const struct port_range *r, char *buf)
{
	char *q = put_u32(buf, r->lo);

	if (r->hi != r->lo) {
		*q++ = '-';
		q = put_u32(q, r->hi);
	}
	*q = '\0';
}

/* A heap copy of the view c, in the layout protobuf_c_message_free_unpacked
 * releases: every string, array and submessage malloc'd, empty strings
 * pointing at protobuf_c_empty_string (as unpacked messages do). Cheaper
 * than packing and unpacking (the desired state of 1000 customers with 50
 * rules each canonicalises 50k rules per full reconcile). NULL on ENOMEM. */
struct heap {
	bool oom;
};

static char *heap_str(struct heap *h, const char *s)
{
	char *d;

	if (!s || !*s)
		return (char *)protobuf_c_empty_string;
	d = strdup(s);
	if (!d) {
		h->oom = true;
		return (char *)protobuf_c_empty_string;
	}
	return d;
}

static char **heap_strv(struct heap *h, char *const *v, size_t n,
			size_t *n_out)
{
	char **d;

	*n_out = 0;
	if (n == 0)
		return NULL;
	d = malloc(n * sizeof(*d));
	if (!d) {
		h->oom = true;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		d[i] = heap_str(h, v[i]);
	*n_out = n;
	return d;
}

static void *heap_msg(struct heap *h, const void *src, size_t size)
{
	ProtobufCMessage *d;

	if (!src)
		return NULL;
	d = malloc(size);
	if (!d) {
		h->oom = true;
		return NULL;
	}
	memcpy(d, src, size);
	d->n_unknown_fields = 0;
	d->unknown_fields = NULL;
	return d;
}

static Mt__Config__FirewallRule *rule_to_heap(const Mt__Config__FirewallRule *c)
{
	Mt__Config__FirewallRule *r = malloc(sizeof(*r));
	struct heap h = { false };

	if (!r)
		return NULL;
	mt__config__firewall_rule__init(r);
	r->id = c->id;
	r->description = heap_str(&h, c->description);
	r->action = heap_str(&h, c->action);
	r->rate_limit = heap_msg(&h, c->rate_limit, sizeof(*c->rate_limit));
	r->monitor = c->monitor;
	r->family = heap_str(&h, c->family);
	r->src_prefixes = heap_strv(&h, c->src_prefixes, c->n_src_prefixes,
				    &r->n_src_prefixes);
	r->dst_prefixes = heap_strv(&h, c->dst_prefixes, c->n_dst_prefixes,
				    &r->n_dst_prefixes);
	r->src_list = heap_str(&h, c->src_list);
	r->dst_list = heap_str(&h, c->dst_list);
	r->protocol = heap_str(&h, c->protocol);
	r->src_ports = heap_strv(&h, c->src_ports, c->n_src_ports,
				 &r->n_src_ports);
	r->dst_ports = heap_strv(&h, c->dst_ports, c->n_dst_ports,
				 &r->n_dst_ports);
	if (c->tcp_flags) {
		r->tcp_flags = heap_msg(&h, c->tcp_flags, sizeof(*c->tcp_flags));
		if (r->tcp_flags) {
			r->tcp_flags->set =
				heap_strv(&h, c->tcp_flags->set,
					  c->tcp_flags->n_set,
					  &r->tcp_flags->n_set);
			r->tcp_flags->clear =
				heap_strv(&h, c->tcp_flags->clear,
					  c->tcp_flags->n_clear,
					  &r->tcp_flags->n_clear);
		}
	}
	r->icmp = heap_msg(&h, c->icmp, sizeof(*c->icmp));
	r->length = heap_msg(&h, c->length, sizeof(*c->length));
	r->fragment = c->fragment;
	r->ttl = heap_msg(&h, c->ttl, sizeof(*c->ttl));
	if (h.oom) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return NULL;
	}
	return r;
}

int mt_fw_rule_canonical(const Mt__Config__Firewall *fw,
			 const Mt__Config__FirewallRule *r,
			 Mt__Config__FirewallRule **out, char *err,
			 size_t errlen)
{
	Mt__Config__FirewallRule c = MT__CONFIG__FIREWALL_RULE__INIT;
	Mt__Config__RateLimit rl = MT__CONFIG__RATE_LIMIT__INIT;
	Mt__Config__TcpFlags tf = MT__CONFIG__TCP_FLAGS__INIT;
	char *fset[MT_ARRAY_SIZE(tcp_flag_names)];
	char *fclear[MT_ARRAY_SIZE(tcp_flag_names)];
	struct strv pfx[2] = { 0 }, ports[2] = { 0 };
	char proto[12];
	struct fw_parsed p;
	int e;

	*out = NULL;
	e = rule_parse(fw, r, &p, err, errlen);
	if (e < 0)
		goto out;
	c.id = r->id;
	c.description = r->description ? r->description : c.description;
	c.monitor = r->monitor;
	c.fragment = r->fragment;
	c.action = (char *)action_names[p.action];
	if (p.action == ACT_RATE_LIMIT) {
		rl.packets_per_second = r->rate_limit->packets_per_second;
		rl.bytes_per_second = r->rate_limit->bytes_per_second;
		rl.burst = r->rate_limit->burst;
		if (rl.packets_per_second && rl.burst == 0)
			rl.burst = 5;
		c.rate_limit = &rl;
	}
	if (p.family)
		c.family = (char *)mt_fw_family_name(p.family);
	for (int d = 0; d < 2; d++) {
		size_t n = prefixes_normalise(p.pfx[d], p.n_pfx[d]);

		e = strv_alloc(&pfx[d], n);
		if (e < 0)
			goto out;
		for (size_t i = 0; i < n; i++)
			fmt_prefix(&p.pfx[d][i], pfx[d].buf[i],
				   sizeof(pfx[d].buf[i]));
		pfx[d].n = n;
		n = ports_normalise(p.ports[d], p.n_ports[d]);
		e = strv_alloc(&ports[d], n);
		if (e < 0)
			goto out;
		for (size_t i = 0; i < n; i++)
			fmt_ports(&p.ports[d][i], ports[d].buf[i]);
		ports[d].n = n;
	}
	c.src_prefixes = pfx[0].v;
	c.n_src_prefixes = pfx[0].n;
	c.dst_prefixes = pfx[1].v;
	c.n_dst_prefixes = pfx[1].n;
	c.src_ports = ports[0].v;
	c.n_src_ports = ports[0].n;
	c.dst_ports = ports[1].v;
	c.n_dst_ports = ports[1].n;
	if (r->src_list && *r->src_list)
		c.src_list = r->src_list;
	if (r->dst_list && *r->dst_list)
		c.dst_list = r->dst_list;
	if (p.proto >= 0) {
		const char *nm = proto_name(p.proto);

		if (nm)
			snprintf(proto, sizeof(proto), "%s", nm);
		else
			snprintf(proto, sizeof(proto), "%d", p.proto);
		c.protocol = proto;
	}
	if (p.has_flags) {
		for (size_t k = 0; k < MT_ARRAY_SIZE(tcp_flag_names); k++) {
			if (p.flags_set & (1u << k))
				fset[tf.n_set++] = (char *)tcp_flag_names[k];
			if (p.flags_clear & (1u << k))
				fclear[tf.n_clear++] =
					(char *)tcp_flag_names[k];
		}
		tf.set = fset;
		tf.clear = fclear;
		c.tcp_flags = &tf;
	}
	c.icmp = r->icmp;
	c.length = r->length;
	c.ttl = r->ttl;

	*out = rule_to_heap(&c);
	e = *out ? 0 : -ENOMEM;
out:
	if (e == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	fw_parsed_fini(&p);
	for (int d = 0; d < 2; d++) {
		strv_fini(&pfx[d]);
		strv_fini(&ports[d]);
	}
	return e;
}
