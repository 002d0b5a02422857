/* gre_lab_loader: a small command-line front end to fastpath/gre_bpf.c for
 * the lab and the wire test. It puts BPF GRE tunnels into named namespaces
 * (/run/netns/NAME) — the edge side of a customer and, with the endpoints
 * swapped, the origin router side — and reads the drop counters.
 *
 *   gre_lab_loader [--pin-root DIR] [--instance I] up NETNS NAME LOCAL REMOTE
 *                  [key=K] [ttl=T] [mtu=M] [uplink=DEV] [peer=NETNS:DEV]
 *   gre_lab_loader ... down NETNS NAME
 *   gre_lab_loader ... show NETNS NAME
 *   gre_lab_loader ... drops [NETNS NAME] one "reason count" line per reason
 *                                         (all, or tunnel NAME's)
 *   gre_lab_loader ... detach NETNS DEV
 *
 * peer=NETNS:DEV names the uplink's peer veth, whose MAC becomes the outer
 * Ethernet destination; without it the tunnel uses bpf_redirect_neigh.
 * Maps are pinned under DIR/I (default MT_BPF_PIN_ROOT/lab), so successive
 * runs share them. Exit status: 0 ok, 1 error, 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gre_bpf.h"
#include "mt_cleanup.h"
#include "mt_log.h"
#include "mt_metal.h"
#include "netns.h"

static int usage(void)
{
	fprintf(stderr,
		"usage: gre_lab_loader [--pin-root DIR] [--instance I] CMD\n"
		"  up NETNS NAME LOCAL REMOTE [key=K] [ttl=T] [mtu=M] "
		"[uplink=DEV] [peer=NETNS:DEV]\n"
		"  down NETNS NAME | show NETNS NAME | drops [NETNS NAME] | "
		"detach NETNS DEV\n");
	return 2;
}

static int open_ns(const char *name)
{
	int fd = mt_netns_open(name);

	if (fd < 0)
		fprintf(stderr, "gre_lab_loader: no namespace %s: %s\n", name,
			strerror(-fd));
	return fd;
}

static int cmd_up(struct mt_gre_bpf *g, int argc, char **argv)
{
	struct mt_gre_tunnel t = {0};
	_cleanup_close_ int nsfd = -1;
	char err[512] = "";
	int r;

	if (argc < 4)
		return usage();
	nsfd = open_ns(argv[0]);
	if (nsfd < 0)
		return 1;
	snprintf(t.name, sizeof(t.name), "%s", argv[1]);
	if (inet_pton(AF_INET, argv[2], &t.local) != 1 ||
	    inet_pton(AF_INET, argv[3], &t.remote) != 1) {
		fprintf(stderr, "gre_lab_loader: bad address %s or %s\n",
			argv[2], argv[3]);
		return 2;
	}
	for (int i = 4; i < argc; i++) {
		char *v = strchr(argv[i], '=');

		if (!v)
			return usage();
		*v++ = '\0';
		if (strcmp(argv[i], "key") == 0) {
			t.has_key = true;
			t.key = (uint32_t)strtoul(v, NULL, 0);
		} else if (strcmp(argv[i], "ttl") == 0) {
			t.ttl = (uint8_t)atoi(v);
		} else if (strcmp(argv[i], "mtu") == 0) {
			t.mtu = (uint32_t)atoi(v);
		} else if (strcmp(argv[i], "uplink") == 0) {
			snprintf(t.uplink, sizeof(t.uplink), "%s", v);
		} else if (strcmp(argv[i], "peer") == 0) {
			char *dev = strchr(v, ':');
			_cleanup_close_ int pfd = -1;

			if (!dev)
				return usage();
			*dev++ = '\0';
			pfd = open_ns(v);
			if (pfd < 0)
				return 1;
			r = mt_gre_bpf_link_mac(g, pfd, dev, t.peer_mac);
			if (r < 0) {
				fprintf(stderr, "gre_lab_loader: MAC of %s "
					"in %s: %s\n", dev, v, strerror(-r));
				return 1;
			}
		} else {
			return usage();
		}
	}
	r = mt_gre_bpf_tunnel_up(g, nsfd, &t, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "gre_lab_loader: %s: tunnel %s: %s\n", argv[0],
			t.name, err);
		return 1;
	}
	return 0;
}

static int cmd_down(struct mt_gre_bpf *g, int argc, char **argv)
{
	_cleanup_close_ int nsfd = -1;
	char err[512] = "";

	if (argc != 2)
		return usage();
	nsfd = open_ns(argv[0]);
	if (nsfd < 0)
		return 1;
	if (mt_gre_bpf_tunnel_down(g, nsfd, argv[1], err, sizeof(err)) < 0) {
		fprintf(stderr, "gre_lab_loader: %s: %s\n", argv[0], err);
		return 1;
	}
	return 0;
}

static int cmd_show(struct mt_gre_bpf *g, int argc, char **argv)
{
	_cleanup_close_ int nsfd = -1;
	char l[INET_ADDRSTRLEN], rm[INET_ADDRSTRLEN], wire[IFNAMSIZ];
	struct mt_gre_tunnel t;
	int r;

	if (argc != 2)
		return usage();
	nsfd = open_ns(argv[0]);
	if (nsfd < 0)
		return 1;
	r = mt_gre_bpf_tunnel_get(g, nsfd, argv[1], &t);
	if (r < 0) {
		fprintf(stderr, "gre_lab_loader: %s: %s: %s\n", argv[0],
			argv[1], strerror(-r));
		return 1;
	}
	mt_gre_bpf_wire_name(t.name, wire, sizeof(wire));
	inet_ntop(AF_INET, &t.local, l, sizeof(l));
	inet_ntop(AF_INET, &t.remote, rm, sizeof(rm));
	printf("%s local %s remote %s", t.name, l, rm);
	if (t.has_key)
		printf(" key %u", t.key);
	printf(" ttl %u ifindex %u encap %d decap %d\n", t.ttl, t.wire_ifindex,
	       mt_gre_bpf_attached(g, nsfd, wire),
	       mt_gre_bpf_attached(g, nsfd, MT_GRE_UPLINK));
	return 0;
}

static int cmd_drops(struct mt_gre_bpf *g, int argc, char **argv)
{
	uint64_t v[MT_GRE_DROP_MAX];
	_cleanup_close_ int nsfd = -1;
	struct mt_gre_tunnel t = {0};
	int r;

	if (argc != 0 && argc != 2)
		return usage();
	if (argc == 2) {
		nsfd = open_ns(argv[0]);
		if (nsfd < 0)
			return 1;
		r = mt_gre_bpf_tunnel_get(g, nsfd, argv[1], &t);
		if (r < 0) {
			fprintf(stderr, "gre_lab_loader: %s: %s: %s\n",
				argv[0], argv[1], strerror(-r));
			return 1;
		}
	}
	r = mt_gre_bpf_drops(g, t.wire_ifindex, v);
	if (r < 0) {
		fprintf(stderr, "gre_lab_loader: drops: %s\n", strerror(-r));
		return 1;
	}
	for (unsigned i = 0; i < MT_GRE_DROP_MAX; i++)
		printf("%s %llu\n", mt_gre_drop_name(i),
		       (unsigned long long)v[i]);
	return 0;
}

static int cmd_detach(struct mt_gre_bpf *g, int argc, char **argv)
{
	_cleanup_close_ int nsfd = -1;
	char err[512] = "";

	if (argc != 2)
		return usage();
	nsfd = open_ns(argv[0]);
	if (nsfd < 0)
		return 1;
	if (mt_gre_bpf_detach(g, nsfd, argv[1], err, sizeof(err)) < 0) {
		fprintf(stderr, "gre_lab_loader: %s: %s\n", argv[0], err);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *root = MT_BPF_PIN_ROOT, *instance = "lab";
	struct mt_gre_bpf *g = NULL;
	char err[512] = "";
	int i = 1, r;

	mt_log_init("gre_lab_loader", MT_LOG_WARN);
	for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
		if (strcmp(argv[i], "--pin-root") == 0)
			root = argv[i + 1];
		else if (strcmp(argv[i], "--instance") == 0)
			instance = argv[i + 1];
		else
			return usage();
	}
	if (i >= argc)
		return usage();
	if (mt_gre_bpf_open(root, instance, &g, err, sizeof(err)) < 0) {
		fprintf(stderr, "gre_lab_loader: %s\n", err);
		return 1;
	}
	const char *cmd = argv[i++];

	if (strcmp(cmd, "up") == 0)
		r = cmd_up(g, argc - i, argv + i);
	else if (strcmp(cmd, "down") == 0)
		r = cmd_down(g, argc - i, argv + i);
	else if (strcmp(cmd, "show") == 0)
		r = cmd_show(g, argc - i, argv + i);
	else if (strcmp(cmd, "drops") == 0)
		r = cmd_drops(g, argc - i, argv + i);
	else if (strcmp(cmd, "detach") == 0)
		r = cmd_detach(g, argc - i, argv + i);
	else
		r = usage();
	mt_gre_bpf_free(g);
	return r;
}
