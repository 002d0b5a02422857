/* BPF_PROG_TEST_RUN tables for the GRE programs: packets in, verdict and
 * packet out, drop counters. Needs root (BPF load); exits 77 otherwise. Runs
 * in a private network namespace of its own (unshare); test_run's skb->dev is
 * that namespace's lo (ifindex 1), so entries are keyed by ifindex 1. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gre_bpf.h"
#include "mt_cleanup.h"
#include "mt_test.h"
#include "netns.h"

static struct mt_gre_bpf *g;

static const uint8_t DEV_MAC[6] = {0x02, 0, 0, 0, 0, 0x01};
static const uint8_t WIRE_MAC[6] = {0x02, 0, 0, 0, 0, 0x02};
static const uint8_t UPLINK_MAC[6] = {0x02, 0, 0, 0, 0, 0x03};
static const uint8_t PEER_MAC[6] = {0x02, 0, 0, 0, 0, 0x04};
static const uint8_t OTHER_MAC[6] = {0x02, 0, 0, 0, 0, 0x99};

#define LOCAL "192.0.2.10"
#define REMOTE "203.0.113.1"
#define IFINDEX_LO 1 /* test_run's skb->dev: lo of our namespace */
#define UPLINK_IFINDEX 7
#define WIRE_IFINDEX 9

/* ---- checksums and packets ---------------------------------------------- */

static uint32_t sum16(const void *p, size_t len, uint32_t sum)
{
	const uint8_t *b = p;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (len & 1)
		sum += (uint32_t)(b[len - 1] << 8);
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* True when an IPv4 header at p has a valid checksum. */
static bool ip_csum_ok(const uint8_t *p)
{
	return fold(sum16(p, (size_t)(p[0] & 0xf) * 4, 0)) == 0;
}

/* True when the TCP/UDP/ICMP checksum of the IPv4 packet at p is valid. */
static bool l4_csum_ok(const uint8_t *p)
{
	size_t ihl = (size_t)(p[0] & 0xf) * 4;
	size_t tot = (size_t)(p[2] << 8 | p[3]);
	uint32_t s = 0;
	uint8_t proto = p[9];

	if (proto == IPPROTO_ICMP)
		return fold(sum16(p + ihl, tot - ihl, 0)) == 0;
	s = sum16(p + 12, 8, 0);
	s += proto;
	s += (uint32_t)(tot - ihl);
	return fold(sum16(p + ihl, tot - ihl, s)) == 0;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* An IPv4 packet of proto with payload bytes of L4 data (after the L4
 * header), valid checksums. Returns its length. */
static size_t build_inner(uint8_t *p, uint8_t proto, size_t payload)
{
	size_t l4h = proto == IPPROTO_TCP ? 20 : 8, tot = 20 + l4h + payload;
	uint8_t *l4 = p + 20;
	uint32_t s;

	memset(p, 0, tot);
	p[0] = 0x45;
	p[1] = 0x28; /* a DSCP, to check TOS inheritance */
	put16(p + 2, (uint16_t)tot);
	put16(p + 4, 0x1234);
	p[8] = 63;
	p[9] = proto;
	inet_pton(AF_INET, "198.51.100.7", p + 12);
	inet_pton(AF_INET, "203.0.113.50", p + 16);
	put16(p + 10, fold(sum16(p, 20, 0)));
	for (size_t i = 0; i < payload; i++)
		l4[l4h + i] = (uint8_t)(i * 7 + 1);
	if (proto == IPPROTO_TCP) {
		put16(l4, 40000);
		put16(l4 + 2, 80);
		l4[12] = 0x50;
		l4[13] = 0x18;
		put16(l4 + 14, 65535);
	} else if (proto == IPPROTO_UDP) {
		put16(l4, 40000);
		put16(l4 + 2, 53);
		put16(l4 + 4, (uint16_t)(l4h + payload));
	} else {
		l4[0] = 8; /* echo request */
		put16(l4 + 4, 1);
		put16(l4 + 6, 1);
	}
	if (proto == IPPROTO_ICMP) {
		put16(l4 + 2, fold(sum16(l4, l4h + payload, 0)));
	} else {
		s = sum16(p + 12, 8, 0) + proto + (uint32_t)(l4h + payload);
		put16(l4 + (proto == IPPROTO_TCP ? 16 : 6),
		      fold(sum16(l4, l4h + payload, s)));
	}
	return tot;
}

static size_t put_eth(uint8_t *p, const uint8_t dst[6], const uint8_t src[6],
		      uint16_t proto)
{
	memcpy(p, dst, 6);
	memcpy(p + 6, src, 6);
	put16(p + 12, proto);
	return 14;
}

struct gre_opts {
	const char *src, *dst;
	uint16_t flags;	 /* GRE flags+version word */
	uint16_t proto;	 /* 0 = 0x0800 */
	uint32_t key;
	bool bad_csum;
	uint8_t ihl;	 /* 0 = 5 */
	uint16_t frag;	 /* frag_off word */
	int tot_adjust;	 /* added to the outer total length */
	uint8_t inner_proto;
};

/* Ethernet + outer IPv4 + GRE as described + an inner IPv4/TCP packet. */
static size_t build_gre(uint8_t *p, const struct gre_opts *o)
{
	size_t ihl = o->ihl ? o->ihl : 5, off, gre_off, inner_len;
	uint16_t f = o->flags;

	off = put_eth(p, UPLINK_MAC, PEER_MAC, ETH_P_IP);
	uint8_t *ip = p + off;

	memset(ip, 0, ihl * 4);
	ip[0] = (uint8_t)(0x40 | ihl);
	put16(ip + 6, o->frag ? o->frag : 0x4000);
	ip[8] = 64;
	ip[9] = 47;
	inet_pton(AF_INET, o->src ? o->src : REMOTE, ip + 12);
	inet_pton(AF_INET, o->dst ? o->dst : LOCAL, ip + 16);
	gre_off = off + ihl * 4;
	uint8_t *gre = p + gre_off, *q = gre + 4;

	put16(gre, f);
	put16(gre + 2, o->proto ? o->proto : 0x0800);
	if (f & MT_GRE_F_CSUM) {
		memset(q, 0, 4);
		q += 4;
	}
	if (f & MT_GRE_F_KEY) {
		uint32_t k = htonl(o->key);

		memcpy(q, &k, 4);
		q += 4;
	}
	if (f & MT_GRE_F_SEQ) {
		memset(q, 0, 3);
		q[3] = 1;
		q += 4;
	}
	inner_len = build_inner(q, o->inner_proto ? o->inner_proto
						  : IPPROTO_TCP, 100);
	size_t gre_len = (size_t)(q - gre) + inner_len;

	if (f & MT_GRE_F_CSUM) {
		uint16_t c = fold(sum16(gre, gre_len, 0));

		put16(gre + 4, o->bad_csum ? (uint16_t)(c ^ 0x5a5a) : c);
	}
	put16(ip + 2, (uint16_t)((int)(ihl * 4 + gre_len) + o->tot_adjust));
	put16(ip + 10, fold(sum16(ip, ihl * 4, 0)));
	return gre_off + gre_len;
}

/* ---- running the programs ----------------------------------------------- */

struct run {
	int ret;
	uint8_t out[2048];
	uint32_t out_len;
};

static int run_prog(int fd, const uint8_t *in, size_t len, struct run *r)
{
	DECLARE_LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in,
			    .data_size_in = (uint32_t)len,
			    .data_out = r->out,
			    .data_size_out = sizeof(r->out), .repeat = 1);
	int e = bpf_prog_test_run_opts(fd, &o);

	r->ret = (int)o.retval;
	r->out_len = o.data_size_out;
	if (e < 0)
		fprintf(stderr, "test_run: %s\n", strerror(errno));
	return e;
}

/* The tunnel whose counters a drop lands on: the decap tunnel's wire
 * ifindex, or the encap key (lo). */
static uint32_t counted_tunnel;

static void drops_now(uint64_t all[MT_GRE_DROP_MAX],
		      uint64_t tun[MT_GRE_DROP_MAX])
{
	CHECK(mt_gre_bpf_drops(g, 0, all) == 0);
	CHECK(mt_gre_bpf_drops(g, counted_tunnel, tun) == 0);
}

/* Runs prog on in and checks the verdict; for a drop, that exactly one
 * counter (reason) went up by one globally, and for counted_tunnel when
 * per_tunnel (the drop happened after the tunnel was identified). */
static void expect_t(int fd, const uint8_t *in, size_t len, int verdict,
		     int reason, bool per_tunnel, struct run *r,
		     const char *what)
{
	uint64_t a0[MT_GRE_DROP_MAX], n0[MT_GRE_DROP_MAX];
	uint64_t a1[MT_GRE_DROP_MAX], n1[MT_GRE_DROP_MAX];
	int before = mt_test_failures;

	drops_now(a0, n0);
	CHECK(run_prog(fd, in, len, r) == 0);
	CHECK(r->ret == verdict);
	drops_now(a1, n1);
	for (int i = 0; i < MT_GRE_DROP_MAX; i++) {
		uint64_t want = i == reason ? 1 : 0;

		CHECK(a1[i] - a0[i] == want);
		CHECK(n1[i] - n0[i] == (per_tunnel ? want : 0));
	}
	if (mt_test_failures != before)
		fprintf(stderr, "  in case: %s (verdict %d, want %d)\n", what,
			r->ret, verdict);
}

static void expect(int fd, const uint8_t *in, size_t len, int verdict,
		   int reason, struct run *r, const char *what)
{
	expect_t(fd, in, len, verdict, reason, false, r, what);
}

static void set_tunnel(bool keyed, bool neigh)
{
	struct mt_gre_tx_key tk = {.ifindex = IFINDEX_LO};
	struct mt_gre_tx_val tv = {.flags = (keyed ? MT_GRE_TUN_KEY : 0) |
					    (neigh ? MT_GRE_TUN_NEIGH : 0),
				   .key = htonl(0xdeadbeef),
				   .uplink_ifindex = UPLINK_IFINDEX,
				   .ttl = 42};
	struct mt_gre_rx_key rk = {.uplink_ifindex = IFINDEX_LO};
	struct mt_gre_rx_val rv = {.ifindex = WIRE_IFINDEX,
				   .flags = keyed ? MT_GRE_TUN_KEY : 0,
				   .key = htonl(0xdeadbeef)};

	inet_pton(AF_INET, LOCAL, &tv.local);
	inet_pton(AF_INET, REMOTE, &tv.remote);
	memcpy(tv.uplink_mac, UPLINK_MAC, 6);
	memcpy(tv.peer_mac, PEER_MAC, 6);
	rk.local = tv.local;
	rk.remote = tv.remote;
	memcpy(rv.dev_mac, DEV_MAC, 6);
	memcpy(rv.wire_mac, WIRE_MAC, 6);
	CHECK(bpf_map_update_elem(mt_gre_bpf_tx_map_fd(g), &tk, &tv,
				  BPF_ANY) == 0);
	CHECK(bpf_map_update_elem(mt_gre_bpf_rx_map_fd(g), &rk, &rv,
				  BPF_ANY) == 0);
}

/* ---- encap -------------------------------------------------------------- */

static void check_encap(uint8_t proto, bool keyed, bool neigh)
{
	uint8_t in[1600];
	size_t hl = keyed ? 28 : 24, len, inner;
	struct run r;
	const uint8_t *o, *gre;
	uint32_t a;

	set_tunnel(keyed, neigh);
	len = put_eth(in, DEV_MAC, OTHER_MAC, ETH_P_IP);
	inner = build_inner(in + len, proto, 333);
	len += inner;
	CHECK(ip_csum_ok(in + 14) && l4_csum_ok(in + 14));
	expect(mt_gre_bpf_encap_fd(g), in, len, TC_ACT_REDIRECT, -1, &r,
	       "encap");
	CHECK(r.out_len == len + hl);
	if (r.out_len != len + hl)
		return;
	if (!neigh) {
		CHECK(memcmp(r.out, PEER_MAC, 6) == 0);
		CHECK(memcmp(r.out + 6, UPLINK_MAC, 6) == 0);
	}
	CHECK(r.out[12] == 0x08 && r.out[13] == 0x00);
	o = r.out + 14;
	CHECK(o[0] == 0x45);
	CHECK(o[1] == 0x28); /* inherited */
	CHECK((size_t)(o[2] << 8 | o[3]) == inner + hl);
	CHECK((o[6] << 8 | o[7]) == 0x4000); /* DF */
	CHECK(o[8] == 42);
	CHECK(o[9] == 47);
	memcpy(&a, o + 12, 4);
	CHECK(a == inet_addr(LOCAL));
	memcpy(&a, o + 16, 4);
	CHECK(a == inet_addr(REMOTE));
	CHECK(ip_csum_ok(o));
	gre = o + 20;
	CHECK((gre[0] << 8 | gre[1]) == (keyed ? MT_GRE_F_KEY : 0));
	CHECK((gre[2] << 8 | gre[3]) == 0x0800);
	if (keyed)
		CHECK(memcmp(gre + 4, "\xde\xad\xbe\xef", 4) == 0);
	/* The inner packet is untouched, checksums still valid. */
	CHECK(memcmp(o + hl, in + 14, inner) == 0);
	CHECK(ip_csum_ok(o + hl) && l4_csum_ok(o + hl));
}

static void test_encap(void)
{
	uint8_t protos[] = {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP};

	for (size_t i = 0; i < sizeof(protos); i++) {
		check_encap(protos[i], false, false);
		check_encap(protos[i], true, false);
	}
	check_encap(IPPROTO_TCP, true, true); /* bpf_redirect_neigh */
}

static void test_encap_drops(void)
{
	struct mt_gre_tx_key tk = {.ifindex = IFINDEX_LO};
	uint8_t in[256];
	struct run r;
	size_t len;

	set_tunnel(false, false);
	len = put_eth(in, DEV_MAC, OTHER_MAC, ETH_P_IPV6);
	memset(in + len, 0x60, 40);
	expect(mt_gre_bpf_encap_fd(g), in, len + 40, TC_ACT_SHOT,
	       MT_GRE_DROP_ENCAP_NOT_IPV4, &r, "encap ipv6");
	len = put_eth(in, DEV_MAC, OTHER_MAC, ETH_P_IP);
	/* (a truncated IPv4 header cannot be tested: test_run refuses an
	 * ETH_P_IP frame shorter than an IPv4 header) */
	build_inner(in + len, IPPROTO_UDP, 10);
	in[len] = 0x65; /* version 6 behind an IPv4 ethertype */
	expect(mt_gre_bpf_encap_fd(g), in, len + 38, TC_ACT_SHOT,
	       MT_GRE_DROP_ENCAP_NOT_IPV4, &r, "encap bad version");
	len += build_inner(in + len, IPPROTO_UDP, 10);
	CHECK(bpf_map_delete_elem(mt_gre_bpf_tx_map_fd(g), &tk) == 0);
	expect(mt_gre_bpf_encap_fd(g), in, len, TC_ACT_SHOT,
	       MT_GRE_DROP_ENCAP_NO_TUNNEL, &r, "encap no tunnel");
}

/* ---- decap -------------------------------------------------------------- */

static void check_decap_ok(bool keyed, const struct gre_opts *o,
			   const char *what)
{
	uint8_t in[1600];
	size_t len, hl;
	struct run r;

	set_tunnel(keyed, false);
	len = build_gre(in, o);
	hl = 20 + 4 + ((o->flags & MT_GRE_F_CSUM) ? 4 : 0) +
	     ((o->flags & MT_GRE_F_KEY) ? 4 : 0);
	expect(mt_gre_bpf_decap_fd(g), in, len, TC_ACT_REDIRECT, -1, &r,
	       what);
	CHECK(r.out_len == len - hl);
	if (r.out_len != len - hl)
		return;
	CHECK(memcmp(r.out, DEV_MAC, 6) == 0);
	CHECK(memcmp(r.out + 6, WIRE_MAC, 6) == 0);
	CHECK(r.out[12] == 0x08 && r.out[13] == 0x00);
	CHECK(memcmp(r.out + 14, in + 14 + hl, len - 14 - hl) == 0);
	CHECK(ip_csum_ok(r.out + 14) && l4_csum_ok(r.out + 14));
}

static void test_decap(void)
{
	check_decap_ok(false, &(struct gre_opts){0}, "plain");
	check_decap_ok(false, &(struct gre_opts){.inner_proto = IPPROTO_UDP},
		       "plain udp");
	check_decap_ok(true,
		       &(struct gre_opts){.flags = MT_GRE_F_KEY,
					  .key = 0xdeadbeef},
		       "keyed");
	check_decap_ok(false, &(struct gre_opts){.flags = MT_GRE_F_CSUM},
		       "checksummed");
	check_decap_ok(true,
		       &(struct gre_opts){.flags = MT_GRE_F_CSUM |
						   MT_GRE_F_KEY,
					  .key = 0xdeadbeef},
		       "checksummed keyed");
}

struct drop_case {
	const char *what;
	bool keyed;
	struct gre_opts o;
	int reason;
	bool per_tunnel; /* dropped after the tunnel matched */
};

static void test_decap_drops(void)
{
	const struct drop_case cases[] = {
		{"wrong source", false, {.src = "203.0.113.66"},
		 MT_GRE_DROP_NO_TUNNEL, false},
		{"wrong destination", false, {.dst = "192.0.2.11"},
		 MT_GRE_DROP_NO_TUNNEL, false},
		{"wrong key", true, {.flags = MT_GRE_F_KEY, .key = 1},
		 MT_GRE_DROP_WRONG_KEY, true},
		{"key missing", true, {0}, MT_GRE_DROP_WRONG_KEY, true},
		{"key unexpected", false, {.flags = MT_GRE_F_KEY, .key = 1},
		 MT_GRE_DROP_WRONG_KEY, true},
		{"bad checksum", false,
		 {.flags = MT_GRE_F_CSUM, .bad_csum = true},
		 MT_GRE_DROP_BAD_CSUM, true},
		{"version 1", false, {.flags = 1}, MT_GRE_DROP_BAD_VERSION,
		 true},
		{"routing flag", false, {.flags = MT_GRE_F_ROUTING},
		 MT_GRE_DROP_BAD_FLAGS, true},
		{"recursion", false, {.flags = 0x0100}, MT_GRE_DROP_BAD_FLAGS,
		 true},
		{"reserved bit", false, {.flags = 0x0008},
		 MT_GRE_DROP_BAD_FLAGS, true},
		{"sequence", false, {.flags = MT_GRE_F_SEQ},
		 MT_GRE_DROP_SEQUENCE, true},
		{"ipv6 payload", false, {.proto = 0x86dd},
		 MT_GRE_DROP_BAD_PROTO, true},
		{"teb payload", false, {.proto = 0x6558},
		 MT_GRE_DROP_BAD_PROTO, true},
		{"ip options", false, {.ihl = 6}, MT_GRE_DROP_IP_OPTIONS,
		 false},
		{"more fragments", false, {.frag = 0x2000},
		 MT_GRE_DROP_FRAGMENT, false},
		{"fragment offset", false, {.frag = 0x0010},
		 MT_GRE_DROP_FRAGMENT, false},
		{"total length too long", false, {.tot_adjust = 1},
		 MT_GRE_DROP_MALFORMED, false},
		{"total length too short", false, {.tot_adjust = -110},
		 MT_GRE_DROP_MALFORMED, true},
	};
	uint8_t in[1600];
	struct run r;
	size_t len;

	for (size_t i = 0; i < MT_ARRAY_SIZE(cases); i++) {
		set_tunnel(cases[i].keyed, false);
		len = build_gre(in, &cases[i].o);
		expect_t(mt_gre_bpf_decap_fd(g), in, len, TC_ACT_SHOT,
			 cases[i].reason, cases[i].per_tunnel, &r,
			 cases[i].what);
	}

	/* GRE cut short after the outer header */
	set_tunnel(false, false);
	len = build_gre(in, &(struct gre_opts){0});
	in[14 + 3] = 20 + 2 + 20; /* tot_len: 2 bytes of GRE + 20 */
	in[14 + 2] = 0;
	in[14 + 10] = in[14 + 11] = 0;
	put16(in + 14 + 10, fold(sum16(in + 14, 20, 0)));
	expect_t(mt_gre_bpf_decap_fd(g), in, 14 + 20 + 2 + 20, TC_ACT_SHOT,
		 MT_GRE_DROP_MALFORMED, false, &r, "truncated gre");
	/* inner packet not IPv4 */
	len = build_gre(in, &(struct gre_opts){0});
	in[14 + 24] = 0x65;
	expect_t(mt_gre_bpf_decap_fd(g), in, len, TC_ACT_SHOT,
		 MT_GRE_DROP_MALFORMED, true, &r, "inner not ipv4");
}

static void test_decap_passes(void)
{
	uint8_t in[1600];
	struct run r;
	size_t len;

	set_tunnel(false, false);
	/* plain IPv4 TCP, UDP, ICMP to the edge endpoint */
	uint8_t protos[] = {IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP};

	for (size_t i = 0; i < sizeof(protos); i++) {
		len = put_eth(in, UPLINK_MAC, PEER_MAC, ETH_P_IP);
		len += build_inner(in + len, protos[i], 64);
		expect(mt_gre_bpf_decap_fd(g), in, len, TC_ACT_OK, -1, &r,
		       "non-gre ipv4");
		CHECK(r.out_len == len && memcmp(r.out, in, len) == 0);
	}
	/* ARP and IPv6 */
	len = put_eth(in, UPLINK_MAC, PEER_MAC, ETH_P_ARP);
	memset(in + len, 1, 28);
	expect(mt_gre_bpf_decap_fd(g), in, len + 28, TC_ACT_OK, -1, &r,
	       "arp");
	len = put_eth(in, UPLINK_MAC, PEER_MAC, ETH_P_IPV6);
	memset(in + len, 0x60, 60);
	in[len + 6] = 47; /* next header GRE: still not ours */
	expect(mt_gre_bpf_decap_fd(g), in, len + 60, TC_ACT_OK, -1, &r,
	       "ipv6");
}

/* ---- userspace pieces ----------------------------------------------------- */

static void test_names(void)
{
	char buf[IFNAMSIZ];

	for (unsigned i = 0; i < MT_GRE_DROP_MAX; i++) {
		CHECK(strcmp(mt_gre_drop_name(i), "unknown") != 0);
		for (unsigned j = 0; j < i; j++)
			CHECK(strcmp(mt_gre_drop_name(i),
				     mt_gre_drop_name(j)) != 0);
	}
	CHECK_STR(mt_gre_drop_name(MT_GRE_DROP_MAX), "unknown");
	CHECK(mt_gre_bpf_wire_name("gre1", buf, sizeof(buf)) == 0);
	CHECK_STR(buf, "gre1.t");
	CHECK(mt_gre_bpf_wire_name("abcdefghijklm", buf, sizeof(buf)) == 0);
	CHECK_STR(buf, "abcdefghijklm.t");
	CHECK(mt_gre_bpf_wire_name("abcdefghijklmn", buf, sizeof(buf)) ==
	      -EINVAL);
	CHECK(mt_gre_bpf_wire_name("gre.1", buf, sizeof(buf)) == -EINVAL);
	CHECK(mt_gre_bpf_wire_name("", buf, sizeof(buf)) == -EINVAL);
	CHECK(mt_gre_bpf_wire_name("lo", buf, sizeof(buf)) == -EINVAL);
	CHECK(mt_gre_bpf_wire_name("gre1", buf, 4) == -ENOSPC);
}

/* Entries of namespaces that are gone are swept; a second sweep finds
 * nothing. set_tunnel's entries carry netns cookie 0. */
static void test_sweep(void)
{
	const uint64_t live[] = {12345};
	struct mt_gre_tx_key tk = {.ifindex = IFINDEX_LO};
	struct mt_gre_tx_val tv;

	set_tunnel(false, false);
	CHECK(mt_gre_bpf_sweep(g, live, 1) >= 2);
	CHECK(bpf_map_lookup_elem(mt_gre_bpf_tx_map_fd(g), &tk, &tv) < 0);
	CHECK(mt_gre_bpf_sweep(g, live, 1) == 0);
}

int main(void)
{
	char err[256] = "";
	int nsfd;

	if (geteuid() != 0) {
		fprintf(stderr, "skip: loading BPF needs root\n");
		return 77;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return 1;
	}
	if (mt_gre_bpf_open(NULL, NULL, &g, err, sizeof(err)) < 0) {
		fprintf(stderr, "mt_gre_bpf_open: %s\n", err);
		return 1;
	}
	nsfd = mt_netns_open("");
	if (nsfd < 0) {
		fprintf(stderr, "own namespace: %s\n", strerror(-nsfd));
		return 1;
	}
	counted_tunnel = WIRE_IFINDEX;
	RUN(test_names);
	RUN(test_encap);
	RUN(test_encap_drops);
	RUN(test_decap);
	RUN(test_decap_drops);
	RUN(test_decap_passes);
	RUN(test_sweep);
	close(nsfd);
	mt_gre_bpf_free(g);
	TEST_MAIN_END();
}
