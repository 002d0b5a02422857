#include "mt_prefix.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static int addr_bytes(int family)
{
	return family == AF_INET ? 4 : 16;
}

static void mask_host_bits(struct mt_prefix *p)
{
	int n = addr_bytes(p->family);

	for (int i = 0; i < n; i++) {
		int bits = (int)p->len - i * 8;

		if (bits >= 8)
			continue;
		p->addr[i] &= bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
	}
}

static int parse_addr(const char *s, struct mt_prefix *p)
{
	memset(p, 0, sizeof(*p));
	if (inet_pton(AF_INET, s, p->addr) == 1) {
		p->family = AF_INET;
		p->len = 32;
		return 0;
	}
	if (inet_pton(AF_INET6, s, p->addr) == 1) {
		p->family = AF_INET6;
		p->len = 128;
		return 0;
	}
	return -EINVAL;
}

int mt_prefix_parse(const char *s, bool strict, struct mt_prefix *p,
		    char *err, size_t errlen)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash;
	struct mt_prefix masked;
	size_t alen;

	if (!s || !*s) {
		snprintf(err, errlen, "empty prefix");
		return -EINVAL;
	}
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(addr)) {
		snprintf(err, errlen, "malformed prefix \"%s\"", s);
		return -EINVAL;
	}
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (parse_addr(addr, p) < 0) {
		snprintf(err, errlen, "malformed prefix \"%s\": bad address", s);
		return -EINVAL;
	}
	if (slash) {
		const char *l = slash + 1;
		char *end;
		long v;

		if (*l < '0' || *l > '9') {
			snprintf(err, errlen,
				 "malformed prefix \"%s\": bad length", s);
			return -EINVAL;
		}
		errno = 0;
		v = strtol(l, &end, 10);
		if (errno || *end || v < 0 || v > p->len) {
			snprintf(err, errlen,
				 "malformed prefix \"%s\": length must be 0-%u",
				 s, p->len);
			return -EINVAL;
		}
		p->len = (uint8_t)v;
	}
	masked = *p;
	mask_host_bits(&masked);
	if (strict && memcmp(masked.addr, p->addr, sizeof(p->addr)) != 0) {
		char buf[MT_PREFIX_STRLEN];

		snprintf(err, errlen,
			 "malformed prefix \"%s\": host bits set (did you mean %s?)",
			 s, mt_prefix_format(&masked, buf, sizeof(buf)));
		return -EINVAL;
	}
	return 0;
}

int mt_addr_parse(const char *s, struct mt_prefix *p, char *err,
		  size_t errlen)
{
	if (!s || !*s || strchr(s, '/') || parse_addr(s, p) < 0) {
		snprintf(err, errlen, "malformed address \"%s\"", s ? s : "");
		return -EINVAL;
	}
	return 0;
}

char *mt_addr_format(const struct mt_prefix *p, char *buf, size_t len)
{
	if (!inet_ntop(p->family, p->addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

char *mt_prefix_format(const struct mt_prefix *p, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	mt_addr_format(p, a, sizeof(a));
	snprintf(buf, len, "%s/%u", a, p->len);
	return buf;
}

/* Compares the first bits bits of two addresses. */
static bool same_bits(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t m = (uint8_t)(0xff << (8 - rest));
	return (a[full] & m) == (b[full] & m);
}

bool mt_prefix_contains(const struct mt_prefix *a, const struct mt_prefix *b)
{
	return a->family == b->family && a->len <= b->len &&
	       same_bits(a->addr, b->addr, a->len);
}

bool mt_prefix_overlaps(const struct mt_prefix *a, const struct mt_prefix *b)
{
	return mt_prefix_contains(a, b) || mt_prefix_contains(b, a);
}

bool mt_prefix_equal(const struct mt_prefix *a, const struct mt_prefix *b)
{
	return mt_prefix_cmp(a, b) == 0;
}

int mt_prefix_cmp(const struct mt_prefix *a, const struct mt_prefix *b)
{
	int r;

	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	r = memcmp(a->addr, b->addr, (size_t)addr_bytes(a->family));
	if (r)
		return r < 0 ? -1 : 1;
	return a->len == b->len ? 0 : (a->len < b->len ? -1 : 1);
}

int mt_prefix_nth_v4(const struct mt_prefix *p, uint32_t n,
		     struct mt_prefix *out)
{
	uint32_t base, size;

	if (p->family != AF_INET)
		return -EAFNOSUPPORT;
	size = p->len == 0 ? UINT32_MAX : (uint32_t)1 << (32 - p->len);
	if (p->len != 0 && n >= size)
		return -ERANGE;
	memcpy(&base, p->addr, 4);
	base = htonl(ntohl(base) + n);
	memset(out, 0, sizeof(*out));
	out->family = AF_INET;
	out->len = 32;
	memcpy(out->addr, &base, 4);
	return 0;
}

struct reserved_range {
	const char *prefix;
	const char *name;
};

/* RFC 6890 and friends. Documentation ranges are deliberately absent. */
static const struct reserved_range reserved_ranges[] = {
	{ "0.0.0.0/8", "\"this network\" 0.0.0.0/8" },
	{ "10.0.0.0/8", "private 10.0.0.0/8" },
	{ "100.64.0.0/10", "shared address space 100.64.0.0/10" },
	{ "127.0.0.0/8", "loopback 127.0.0.0/8" },
	{ "169.254.0.0/16", "link local 169.254.0.0/16" },
	{ "172.16.0.0/12", "private 172.16.0.0/12" },
	{ "192.0.0.0/24", "IETF protocol assignments 192.0.0.0/24" },
	{ "192.168.0.0/16", "private 192.168.0.0/16" },
	{ "198.18.0.0/15", "benchmarking 198.18.0.0/15" },
	{ "224.0.0.0/4", "multicast 224.0.0.0/4" },
	{ "240.0.0.0/4", "reserved 240.0.0.0/4" },
	{ "::/128", "unspecified ::/128" },
	{ "::1/128", "loopback ::1/128" },
	{ "::ffff:0:0/96", "IPv4-mapped ::ffff:0:0/96" },
	{ "64:ff9b::/96", "NAT64 64:ff9b::/96" },
	{ "100::/64", "discard-only 100::/64" },
	{ "fc00::/7", "unique local fc00::/7" },
	{ "fe80::/10", "link local fe80::/10" },
	{ "ff00::/8", "multicast ff00::/8" },
};

const char *mt_prefix_reserved_range(const struct mt_prefix *p)
{
	static struct mt_prefix parsed[MT_ARRAY_LEN(reserved_ranges)];
	static bool ready;

	if (!ready) {
		for (size_t i = 0; i < MT_ARRAY_LEN(reserved_ranges); i++) {
			char err[8];

			mt_prefix_parse(reserved_ranges[i].prefix, true,
					&parsed[i], err, sizeof(err));
		}
		ready = true;
	}
	for (size_t i = 0; i < MT_ARRAY_LEN(reserved_ranges); i++)
		if (mt_prefix_overlaps(&parsed[i], p))
			return reserved_ranges[i].name;
	return NULL;
}
