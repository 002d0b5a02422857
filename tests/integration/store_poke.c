/* store_poke: writes a value straight into an mt store, bypassing every
 * validation mtctl and mt-agent do, so integration tests can show what the
 * agent does with a bad value that reached the store anyway (a buggy
 * orchestrator, a corrupted replica).
 *
 *   store_poke STORE_URL KEY FILE         the raw bytes of FILE ("-": stdin)
 *   store_poke --json STORE_URL KEY FILE  FILE holds an mt.config.Customer as
 *                                         JSON; it is packed as protobuf
 *                                         without any validation
 *
 * Prints the new store revision. Exit 0, 1 on a store error, 2 on usage or
 * input errors.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.pb-c.h"
#include "mt_cleanup.h"
#include "mt_json.h"
#include "mt_store.h"

static int read_all(const char *path, char **buf, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t cap = 4096, n = 0;
	char *b = NULL;
	int r = 0;

	if (!f)
		return -errno;
	for (;;) {
		char *nb = realloc(b, cap);

		if (!nb) {
			r = -ENOMEM;
			break;
		}
		b = nb;
		n += fread(b + n, 1, cap - n, f);
		if (n < cap)
			break;
		cap *= 2;
	}
	if (r == 0 && ferror(f))
		r = -EIO;
	if (f != stdin)
		fclose(f);
	if (r < 0) {
		free(b);
		return r;
	}
	*buf = b;
	*len = n;
	return 0;
}

int main(int argc, char **argv)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_free_ uint8_t *packed = NULL;
	struct mt_store *store = NULL;
	bool json = false;
	char err[512];
	const void *val;
	size_t len = 0;
	uint64_t rev = 0;
	int r;

	if (argc > 1 && strcmp(argv[1], "--json") == 0) {
		json = true;
		argv++;
		argc--;
	}
	if (argc != 4) {
		fprintf(stderr,
			"usage: store_poke [--json] STORE_URL KEY FILE\n");
		return 2;
	}
	r = read_all(argv[3], &buf, &len);
	if (r < 0) {
		fprintf(stderr, "store_poke: %s: %s\n", argv[3], strerror(-r));
		return 2;
	}
	val = buf;
	if (json) {
		ProtobufCMessage *m = NULL;

		r = mt_json_parse_message(&mt__config__customer__descriptor,
					  buf, len, &m, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "store_poke: %s: %s\n", argv[3], err);
			return 2;
		}
		len = protobuf_c_message_get_packed_size(m);
		packed = malloc(len ? len : 1);
		if (!packed) {
			protobuf_c_message_free_unpacked(m, NULL);
			return 1;
		}
		protobuf_c_message_pack(m, packed);
		protobuf_c_message_free_unpacked(m, NULL);
		val = packed;
	}
	r = mt_store_open(argv[1], 0, &store, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "store_poke: %s\n", err);
		return 1;
	}
	r = mt_store_put(store, argv[2], val, len, &rev);
	mt_store_close(store);
	if (r < 0) {
		fprintf(stderr, "store_poke: put %s: %s\n", argv[2],
			strerror(-r));
		return 1;
	}
	printf("%lu\n", (unsigned long)rev);
	return 0;
}
