/* The health-check probe on the wire: build, parse back, checksums
 * recomputed independently, truncation and corruption refused, and the
 * socket filter run by a small interpreter of the opcodes it uses. */
#include "mt_probewire.h"
#include "mt_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>

static uint32_t ip(const char *s)
{
	struct in_addr a;

	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

/* RFC 1071, written again here on purpose */
static int csum_ok(const uint8_t *p, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i < n; i += 2)
		s += (uint32_t)(p[i] << 8 | (i + 1 < n ? p[i + 1] : 0));
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s == 0xffff;
}

static struct mt_probe_spec spec(bool request, bool key)
{
	struct mt_probe_spec s = {
		.request = request,
		.outer_src = ip("192.0.2.1"),
		.outer_dst = ip("198.18.21.2"),
		.outer_ttl = 64,
		.has_key = key,
		.key = 0xdeadbeef,
		.inner_src = ip(request ? "10.1.1.0" : "10.1.1.1"),
		.inner_dst = ip(request ? "10.1.1.1" : "192.0.2.1"),
		.ident = 7,
		.token = 0x01020304,
	};
	return s;
}

static void test_build(void)
{
	for (int k = 0; k < 4; k++) {
		bool request = k & 1, key = k & 2;
		struct mt_probe_spec s = spec(request, key);
		uint8_t b[MT_PROBE_MAX_LEN];
		size_t gre = key ? 8 : 4;
		int n = mt_probe_build(&s, 0x12345, 1700000000123456789ull, b,
				       sizeof(b));
		const uint8_t *in = b + 20 + gre, *ic = in + 20;

		CHECK(n == (int)(20 + gre + 20 + 8 + MT_PROBE_PAYLOAD));
		CHECK(b[0] == 0x45 && b[9] == 47 && (b[6] & 0x40)); /* DF */
		CHECK(b[8] == 64 && (b[2] << 8 | b[3]) == n);
		CHECK(csum_ok(b, 20));
		CHECK(b[20] == (key ? 0x20 : 0) && b[22] == 0x08 && b[23] == 0);
		if (key)
			CHECK(b[24] == 0xde && b[27] == 0xef);
		CHECK(in[0] == 0x45 && in[9] == 1 && csum_ok(in, 20));
		CHECK(!memcmp(in + 12, &s.inner_src, 4));
		CHECK(ic[0] == (request ? 8 : 0) && ic[4] == 0 && ic[5] == 7);
		CHECK(ic[6] == 0x23 && ic[7] == 0x45); /* seq low 16 bits */
		CHECK(csum_ok(ic, 8 + MT_PROBE_PAYLOAD));
		CHECK(mt_probe_build(&s, 1, 1, b, (size_t)n - 1) == -ENOSPC);
	}
}

static void test_parse(void)
{
	struct mt_probe_spec s = spec(false, true);
	uint8_t b[MT_PROBE_MAX_LEN], inner[128];
	struct mt_probe_echo e;
	int n = mt_probe_build(&s, 0x12345, 1700000000123456789ull, b,
			       sizeof(b));
	size_t len = (size_t)n - 28; /* the inner packet, as delivered */

	memcpy(inner, b + 28, len);
	CHECK(mt_probe_parse(inner, len, &e) == 0);
	CHECK(e.token == 0x01020304 && e.seq == 0x12345 && e.ident == 7);
	CHECK(e.sent_ns == 1700000000123456789ull);
	CHECK(e.src == ip("10.1.1.1") && e.dst == ip("192.0.2.1"));
	/* trailing bytes (a longer read) are fine */
	CHECK(mt_probe_parse(inner, len + 10, &e) == 0);
	/* every truncation is refused, never read past */
	for (size_t i = 0; i < len; i++)
		CHECK(mt_probe_parse(inner, i, &e) < 0);
	/* a flipped payload byte: ours, bad checksum */
	inner[20 + 8 + 13] ^= 1;
	CHECK(mt_probe_parse(inner, len, &e) == -EBADMSG);
	inner[20 + 8 + 13] ^= 1;
	/* not ours: other magic, an echo request, not ICMP */
	inner[20 + 8] = 'x';
	CHECK(mt_probe_parse(inner, len, &e) == -ENOMSG);
	inner[20 + 8] = 'm';
	inner[20] = 8;
	CHECK(mt_probe_parse(inner, len, &e) == -ENOMSG);
	inner[20] = 0;
	inner[9] = 17;
	CHECK(mt_probe_parse(inner, len, &e) == -ENOMSG);
	inner[9] = 1;
	/* a lying total length */
	inner[2] = 0xff;
	CHECK(mt_probe_parse(inner, len, &e) == -EBADMSG);
	inner[2] = 0;
	CHECK(mt_probe_parse(inner, len, &e) == 0);
}

/* The opcodes mt_probe_filter uses, nothing more. */
static uint32_t run_filter(const struct sock_filter *f, size_t n,
			   const uint8_t *p, size_t len)
{
	uint32_t a = 0, x = 0;

	for (size_t pc = 0; pc < n; pc++) {
		const struct sock_filter *i = &f[pc];
		uint32_t off;

		switch (i->code) {
		case BPF_LD | BPF_B | BPF_ABS:
			if (i->k >= len)
				return 0;
			a = p[i->k];
			break;
		case BPF_LD | BPF_H | BPF_ABS:
			if (i->k + 2 > len)
				return 0;
			a = (uint32_t)(p[i->k] << 8 | p[i->k + 1]);
			break;
		case BPF_LDX | BPF_B | BPF_MSH:
			if (i->k >= len)
				return 0;
			x = (uint32_t)(p[i->k] & 0xf) * 4;
			break;
		case BPF_LD | BPF_B | BPF_IND:
			off = x + i->k;
			if (off >= len)
				return 0;
			a = p[off];
			break;
		case BPF_LD | BPF_W | BPF_IND:
			off = x + i->k;
			if (off + 4 > len)
				return 0;
			a = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 |
			    (uint32_t)p[off + 2] << 8 | p[off + 3];
			break;
		case BPF_JMP | BPF_JEQ | BPF_K:
			pc += a == i->k ? i->jt : i->jf;
			break;
		case BPF_JMP | BPF_JSET | BPF_K:
			pc += (a & i->k) ? i->jt : i->jf;
			break;
		case BPF_RET | BPF_K:
			return i->k;
		default:
			CHECK(!"opcode the interpreter does not know");
			return 0;
		}
	}
	return 0;
}

static void test_filter(void)
{
	struct sock_filter f[MT_PROBE_FILTER_LEN];
	size_t n = mt_probe_filter(f);
	struct mt_probe_spec s = spec(false, false);
	uint8_t b[MT_PROBE_MAX_LEN], p[128];
	int len = mt_probe_build(&s, 1, 1, b, sizeof(b)) - 24;

	CHECK(n == MT_PROBE_FILTER_LEN);
	memcpy(p, b + 24, (size_t)len);
	CHECK(run_filter(f, n, p, (size_t)len) > 0);	/* our echo reply */
	p[20] = 8;
	CHECK(run_filter(f, n, p, (size_t)len) == 0);	/* an echo request */
	p[20] = 0;
	p[28] = 'M';
	CHECK(run_filter(f, n, p, (size_t)len) == 0);	/* other payload */
	p[28] = 'm';
	p[9] = 6;
	CHECK(run_filter(f, n, p, (size_t)len) == 0);	/* TCP */
	p[9] = 1;
	p[6] = 0x20;
	CHECK(run_filter(f, n, p, (size_t)len) == 0);	/* a fragment */
	p[6] = 0;
	/* with IPv4 options: the ICMP header moves */
	memmove(p + 24, p + 20, (size_t)len - 20);
	memset(p + 20, 1, 4); /* NOPs */
	p[0] = 0x46;
	CHECK(run_filter(f, n, p, (size_t)len + 4) > 0);
	CHECK(run_filter(f, n, p, 30) == 0); /* truncated */
}

int main(void)
{
	RUN(test_build);
	RUN(test_parse);
	RUN(test_filter);
	TEST_MAIN_END();
}
