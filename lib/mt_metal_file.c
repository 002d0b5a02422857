/* Loading the metal's settings file (mt.config.Metal as proto3 JSON). */
#include "mt_metal_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mt_cleanup.h"
#include "mt_json.h"

#define METAL_FILE_MAX (1 << 20)

int mt_metal_load(const char *path, const char *instance, struct mt_metal *m,
		  char *err, size_t errlen)
{
	Mt__Config__Metal *pb = NULL;
	_cleanup_free_ char *text = NULL;
	char why[400];
	int r;

	if (path) {
		_cleanup_fclose_ FILE *f = fopen(path, "r");
		size_t len;

		if (!f) {
			r = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return r;
		}
		text = malloc(METAL_FILE_MAX);
		if (!text)
			return -ENOMEM;
		len = fread(text, 1, METAL_FILE_MAX - 1, f);
		text[len] = '\0';
		r = mt_json_parse_message(&mt__config__metal__descriptor, text,
					  len, (ProtobufCMessage **)&pb, why,
					  sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path, why);
			return r;
		}
	} else {
		pb = malloc(sizeof(*pb));
		if (!pb)
			return -ENOMEM;
		mt__config__metal__init(pb);
	}
	if (instance) {
		char *copy = strdup(instance);

		if (!copy) {
			protobuf_c_message_free_unpacked(&pb->base, NULL);
			return -ENOMEM;
		}
		if (pb->instance != protobuf_c_empty_string)
			free(pb->instance);
		pb->instance = copy;
	}
	r = mt_metal_init(m, pb, why, sizeof(why));
	protobuf_c_message_free_unpacked(&pb->base, NULL);
	if (r < 0)
		snprintf(err, errlen, "%s: %s", path ? path : "(defaults)", why);
	return r;
}
