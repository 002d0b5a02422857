#include "mt_metal.h"
#include "mt_test.h"

#include <errno.h>

static void test_defaults(void)
{
	struct mt_metal m;
	char err[256], buf[64];
	struct mt_prefix a, b;

	CHECK(mt_metal_init(&m, NULL, err, sizeof(err)) == 0);
	CHECK_STR(m.prefix, "mt0-");
	CHECK_STR(m.mark_table, "mt0-mark");
	CHECK(m.gre_table == 2000 && m.cust_table == 2001);
	CHECK(m.fwmark == 0x4d540000 && m.fwmark_mask == 0xffff0000);
	CHECK(mt_metal_name_max(&m) == 11);
	CHECK(mt_metal_ifname(&m, "acme", buf, sizeof(buf)) == 0);
	CHECK_STR(buf, "mt0-acme");
	CHECK(mt_metal_ifname(&m, "abcdefghijkl", buf, sizeof(buf)) ==
	      -ENAMETOOLONG);
	CHECK_STR(mt_metal_owner(&m, "mt0-acme"), "acme");
	CHECK(mt_metal_owner(&m, "mt01-acme") == NULL);
	CHECK(mt_metal_owner(&m, "mt0-") == NULL);
	CHECK(mt_metal_owner(&m, "eth0") == NULL);
	CHECK(mt_metal_link_addrs(&m, 1, &a, &b) == 0);
	CHECK_STR(mt_prefix_format(&a, buf, sizeof(buf)), "169.254.0.2/31");
	CHECK_STR(mt_prefix_format(&b, buf, sizeof(buf)), "169.254.0.3/31");
	CHECK(mt_metal_link_addrs(&m, 0, &a, &b) == -ERANGE);
	CHECK(mt_metal_max_customer_id(&m) == 32767);
	CHECK(mt_metal_link_addrs(&m, 32767, &a, &b) == 0);
	CHECK_STR(mt_prefix_format(&b, buf, sizeof(buf)), "169.254.255.255/31");
	CHECK(mt_metal_link_addrs(&m, 32768, &a, &b) == -ERANGE);
	mt_metal_fini(&m);
}

static void test_settings(void)
{
	Mt__Config__Metal pb = MT__CONFIG__METAL__INIT;
	char *own[] = { "198.18.0.0/24" };
	struct mt_metal m;
	struct mt_prefix p;
	char err[256];

	pb.instance = "lab";
	pb.own_prefixes = own;
	pb.n_own_prefixes = 1;
	pb.link_pool = "100.64.0.0/24";
	CHECK(mt_metal_init(&m, &pb, err, sizeof(err)) == 0);
	CHECK_STR(m.prefix, "mtlab-");
	CHECK(mt_metal_max_customer_id(&m) == 127);
	mt_prefix_parse("198.18.0.2", true, &p, err, sizeof(err));
	CHECK(mt_metal_owns_address(&m, &p));
	mt_prefix_parse("100.64.0.9", true, &p, err, sizeof(err));
	CHECK(mt_metal_owns_address(&m, &p));
	mt_prefix_parse("203.0.113.0/24", true, &p, err, sizeof(err));
	CHECK(!mt_metal_owns_address(&m, &p));
	mt_metal_fini(&m);
}

static void test_errors(void)
{
	Mt__Config__Metal pb = MT__CONFIG__METAL__INIT;
	char *own[] = { "not-a-prefix" };
	struct mt_metal m;
	char err[256];

	pb.instance = "TOOLONG";
	CHECK(mt_metal_init(&m, &pb, err, sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "metal.instance \"TOOLONG\"");
	pb.instance = "a";
	pb.link_pool = "10.0.0.0/31";
	CHECK(mt_metal_init(&m, &pb, err, sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "metal.link_pool");
	pb.link_pool = "";
	pb.gre_table = 254;
	CHECK(mt_metal_init(&m, &pb, err, sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "reserved table");
	pb.gre_table = 0;
	pb.fwmark = 0x1;
	CHECK(mt_metal_init(&m, &pb, err, sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "outside metal.fwmark_mask");
	pb.fwmark = 0;
	pb.own_prefixes = own;
	pb.n_own_prefixes = 1;
	CHECK(mt_metal_init(&m, &pb, err, sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "metal.own_prefixes[0]");
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_settings);
	RUN(test_errors);
	TEST_MAIN_END();
}
