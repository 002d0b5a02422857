#include "mt_prefix.h"
#include "mt_test.h"

#include <errno.h>

static void test_parse_v4(void)
{
	struct mt_prefix p;
	char err[128], buf[MT_PREFIX_STRLEN];

	CHECK(mt_prefix_parse("203.0.113.0/24", true, &p, err, sizeof(err)) == 0);
	CHECK(p.family == AF_INET && p.len == 24);
	CHECK_STR(mt_prefix_format(&p, buf, sizeof(buf)), "203.0.113.0/24");
	CHECK(mt_prefix_parse("192.0.2.7", true, &p, err, sizeof(err)) == 0);
	CHECK(p.len == 32);
}

static void test_parse_errors(void)
{
	struct mt_prefix p;
	char err[128];

	CHECK(mt_prefix_parse("203.0.113.1/24", true, &p, err, sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "host bits set");
	CHECK_CONTAINS(err, "203.0.113.0/24");
	CHECK(mt_prefix_parse("203.0.113.1/24", false, &p, err, sizeof(err)) == 0);
	CHECK(mt_prefix_parse("300.0.0.0/8", true, &p, err, sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "bad address");
	CHECK(mt_prefix_parse("10.0.0.0/33", true, &p, err, sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "length must be 0-32");
	CHECK(mt_prefix_parse("10.0.0.0/", true, &p, err, sizeof(err)) == -EINVAL);
	CHECK(mt_prefix_parse("10.0.0.0/8x", true, &p, err, sizeof(err)) == -EINVAL);
	CHECK(mt_prefix_parse("", true, &p, err, sizeof(err)) == -EINVAL);
	CHECK(mt_prefix_parse("/8", true, &p, err, sizeof(err)) == -EINVAL);
	CHECK(mt_addr_parse("1.2.3.4/32", &p, err, sizeof(err)) == -EINVAL);
}

static void test_v6(void)
{
	struct mt_prefix p, q;
	char err[128], buf[MT_PREFIX_STRLEN];

	CHECK(mt_prefix_parse("2001:db8::/32", true, &p, err, sizeof(err)) == 0);
	CHECK(p.family == AF_INET6 && p.len == 32);
	CHECK_STR(mt_prefix_format(&p, buf, sizeof(buf)), "2001:db8::/32");
	CHECK(mt_prefix_parse("2001:db8:1::/48", true, &q, err, sizeof(err)) == 0);
	CHECK(mt_prefix_contains(&p, &q));
	CHECK(!mt_prefix_contains(&q, &p));
	CHECK(mt_prefix_overlaps(&q, &p));
	CHECK(mt_prefix_parse("2001:db8::/129", true, &p, err, sizeof(err)) < 0);
}

static void test_overlap(void)
{
	struct mt_prefix a, b, c;
	char err[64];

	mt_prefix_parse("198.51.100.0/24", true, &a, err, sizeof(err));
	mt_prefix_parse("198.51.100.128/25", true, &b, err, sizeof(err));
	mt_prefix_parse("198.51.101.0/24", true, &c, err, sizeof(err));
	CHECK(mt_prefix_overlaps(&a, &b));
	CHECK(mt_prefix_overlaps(&b, &a));
	CHECK(!mt_prefix_overlaps(&a, &c));
	CHECK(mt_prefix_cmp(&a, &b) < 0);
	CHECK(mt_prefix_cmp(&a, &c) < 0);
	CHECK(mt_prefix_equal(&a, &a));
}

static void test_reserved(void)
{
	struct mt_prefix p;
	char err[64];

	mt_prefix_parse("127.0.0.0/8", true, &p, err, sizeof(err));
	CHECK_CONTAINS(mt_prefix_reserved_range(&p), "loopback");
	mt_prefix_parse("0.0.0.0/0", true, &p, err, sizeof(err));
	CHECK(mt_prefix_reserved_range(&p) != NULL);
	mt_prefix_parse("224.1.0.0/16", true, &p, err, sizeof(err));
	CHECK_CONTAINS(mt_prefix_reserved_range(&p), "multicast");
	mt_prefix_parse("fe80::/64", true, &p, err, sizeof(err));
	CHECK_CONTAINS(mt_prefix_reserved_range(&p), "link local");
	mt_prefix_parse("203.0.113.0/24", true, &p, err, sizeof(err));
	CHECK(mt_prefix_reserved_range(&p) == NULL);
	mt_prefix_parse("8.8.8.0/24", true, &p, err, sizeof(err));
	CHECK(mt_prefix_reserved_range(&p) == NULL);
}

static void test_nth(void)
{
	struct mt_prefix pool, a;
	char err[64], buf[MT_PREFIX_STRLEN];

	mt_prefix_parse("169.254.0.0/16", true, &pool, err, sizeof(err));
	CHECK(mt_prefix_nth_v4(&pool, 513, &a) == 0);
	CHECK_STR(mt_addr_format(&a, buf, sizeof(buf)), "169.254.2.1");
	CHECK(mt_prefix_nth_v4(&pool, 65536, &a) == -ERANGE);
}

int main(void)
{
	RUN(test_parse_v4);
	RUN(test_parse_errors);
	RUN(test_v6);
	RUN(test_overlap);
	RUN(test_reserved);
	RUN(test_nth);
	TEST_MAIN_END();
}
