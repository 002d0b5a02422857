/* IP prefixes and addresses: parsing, formatting, containment, overlap. Pure
 * code, no I/O. */
#ifndef MT_PREFIX_H
#define MT_PREFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MT_PREFIX_STRLEN 50 /* "ffff:...:ffff/128" plus NUL, with room */

struct mt_prefix {
	int family;        /* AF_INET or AF_INET6 */
	uint8_t len;       /* prefix length in bits */
	uint8_t addr[16];  /* network byte order; 4 bytes used for AF_INET */
};

/* Parses "a.b.c.d/len" or "x::y/len". With strict, host bits must be zero
 * ("10.0.0.1/24" is rejected). A string without "/len" is a host address
 * (/32 or /128). Returns 0, or -EINVAL with a reason in err. */
int mt_prefix_parse(const char *s, bool strict, struct mt_prefix *p,
		    char *err, size_t errlen);

/* Parses a host address (no "/len"); the result has len 32 or 128. */
int mt_addr_parse(const char *s, struct mt_prefix *p, char *err,
		  size_t errlen);

/* Formats as "addr/len"; buf must hold MT_PREFIX_STRLEN. Returns buf. */
char *mt_prefix_format(const struct mt_prefix *p, char *buf, size_t len);
/* Formats the address alone, without "/len". */
char *mt_addr_format(const struct mt_prefix *p, char *buf, size_t len);

/* True when a contains every address of b (same family). */
bool mt_prefix_contains(const struct mt_prefix *a, const struct mt_prefix *b);
/* True when the two prefixes share at least one address. */
bool mt_prefix_overlaps(const struct mt_prefix *a, const struct mt_prefix *b);
bool mt_prefix_equal(const struct mt_prefix *a, const struct mt_prefix *b);

/* Total order (family, address, length): for sorting and merge walks. */
int mt_prefix_cmp(const struct mt_prefix *a, const struct mt_prefix *b);

/* The address at offset n inside p (IPv4 only; n counts hosts from the
 * network address). Returns -ERANGE when n is outside the prefix. */
int mt_prefix_nth_v4(const struct mt_prefix *p, uint32_t n,
		     struct mt_prefix *out);

/* Name of the reserved or martian range that contains or overlaps p, or NULL
 * when p is ordinary global unicast space. Covers RFC 6890 special-purpose
 * ranges (this network, loopback, link local, multicast, class E, limited
 * broadcast, ::/128, ::1, fe80::/10, ff00::/8, ...). Documentation ranges
 * (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are allowed
 * so examples and the lab can use them. */
const char *mt_prefix_reserved_range(const struct mt_prefix *p);

#endif
