/* The health-check probe on the wire: see mt_probewire.h. */
#include "mt_probewire.h"

#include <errno.h>
#include <linux/filter.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

uint16_t mt_probe_csum_fold(const uint8_t *buf, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += get16(buf + i);
	if (len & 1)
		sum += (uint32_t)buf[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* An IPv4 header without options; addresses as given (network order). */
static void ipv4(uint8_t *p, uint16_t total, uint16_t id, bool df,
		 uint8_t ttl, uint8_t proto, uint32_t src, uint32_t dst)
{
	p[0] = 0x45;
	p[1] = 0;
	put16(p + 2, total);
	put16(p + 4, id);
	put16(p + 6, df ? 0x4000 : 0);
	p[8] = ttl;
	p[9] = proto;
	put16(p + 10, 0);
	memcpy(p + 12, &src, 4);
	memcpy(p + 16, &dst, 4);
	put16(p + 10, (uint16_t)~mt_probe_csum_fold(p, 20));
}

int mt_probe_build(const struct mt_probe_spec *s, uint32_t seq,
		   uint64_t sent_ns, uint8_t *buf, size_t len)
{
	size_t gre = s->has_key ? 8 : 4;
	size_t icmp_len = 8 + MT_PROBE_PAYLOAD;
	size_t inner_len = 20 + icmp_len, total = 20 + gre + inner_len;
	uint8_t *g = buf + 20, *in = g + gre, *ic = in + 20, *pl = ic + 8;

	if (len < total)
		return -ENOSPC;
	memset(buf, 0, total);
	ipv4(buf, (uint16_t)total, (uint16_t)seq, true, s->outer_ttl, 47,
	     s->outer_src, s->outer_dst);
	put16(g, s->has_key ? 0x2000 : 0);
	put16(g + 2, 0x0800);
	if (s->has_key)
		put32(g + 4, s->key);
	ipv4(in, (uint16_t)inner_len, (uint16_t)seq, false, 64, 1,
	     s->inner_src, s->inner_dst);
	ic[0] = s->request ? 8 : 0;
	ic[1] = 0;
	put16(ic + 4, s->ident);
	put16(ic + 6, (uint16_t)seq);
	memcpy(pl, MT_PROBE_MAGIC, 4);
	pl[4] = MT_PROBE_VERSION;
	put32(pl + 8, s->token);
	put32(pl + 12, seq);
	put32(pl + 16, (uint32_t)(sent_ns >> 32));
	put32(pl + 20, (uint32_t)sent_ns);
	put16(ic + 2, (uint16_t)~mt_probe_csum_fold(ic, icmp_len));
	return (int)total;
}

int mt_probe_parse(const uint8_t *pkt, size_t len, struct mt_probe_echo *out)
{
	size_t ihl, total;
	const uint8_t *ic, *pl;

	if (len < 20 || (pkt[0] >> 4) != 4)
		return -ENOMSG;
	ihl = (size_t)(pkt[0] & 0x0f) * 4;
	if (ihl < 20 || len < ihl)
		return -EBADMSG;
	if (pkt[9] != 1)
		return -ENOMSG;
	total = get16(pkt + 2);
	/* the kernel hands raw sockets the datagram as it arrived: trust the
	 * shorter of the header's length and what was read */
	if (total < ihl || total > len)
		return -EBADMSG;
	if (get16(pkt + 6) & 0x3fff) /* a fragment: not one of ours */
		return -ENOMSG;
	ic = pkt + ihl;
	if (total - ihl < 8 || ic[0] != 0 || ic[1] != 0)
		return -ENOMSG;
	if (total - ihl < 8 + 24)
		return total - ihl >= 8 + 4 && !memcmp(ic + 8, MT_PROBE_MAGIC, 4) ?
			       -EBADMSG :
			       -ENOMSG;
	pl = ic + 8;
	if (memcmp(pl, MT_PROBE_MAGIC, 4) || pl[4] != MT_PROBE_VERSION)
		return -ENOMSG;
	if (mt_probe_csum_fold(pkt, ihl) != 0xffff ||
	    mt_probe_csum_fold(ic, total - ihl) != 0xffff)
		return -EBADMSG;
	memcpy(&out->src, pkt + 12, 4);
	memcpy(&out->dst, pkt + 16, 4);
	out->ttl = pkt[8];
	out->ident = get16(ic + 4);
	out->token = get32(pl + 8);
	out->seq = get32(pl + 12);
	out->sent_ns = (uint64_t)get32(pl + 16) << 32 | get32(pl + 20);
	return 0;
}

size_t mt_probe_filter(struct sock_filter *prog)
{
	/* A raw ICMP socket's filter sees the packet from its IPv4 header:
	 * X = IHL * 4, then the ICMP type at X and the magic at X + 8. */
	const uint32_t magic = (uint32_t)'m' << 24 | (uint32_t)'t' << 16 |
			       (uint32_t)'H' << 8 | (uint32_t)'C';
	struct sock_filter f[MT_PROBE_FILTER_LEN] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),		/* protocol */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 7),	/* ICMP? */
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 6),		/* frag */
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x3fff, 5, 0),
		BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),		/* X = IHL*4 */
		BPF_STMT(BPF_LD | BPF_B | BPF_IND, 0),		/* ICMP type */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2),	/* echo reply? */
		BPF_STMT(BPF_LD | BPF_W | BPF_IND, 8),		/* magic */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, magic, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, 0),			/* drop */
		BPF_STMT(BPF_RET | BPF_K, 0xffff),		/* accept */
		BPF_STMT(BPF_RET | BPF_K, 0),
	};

	memcpy(prog, f, sizeof(f));
	return MT_PROBE_FILTER_LEN;
}
