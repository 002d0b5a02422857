/* mtctl input files: customer configs and metal settings. */
#include "input.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mt_cleanup.h"
#include "mt_json.h"

#define INPUT_MAX (64u << 20) /* far above any sane config file */

enum input_format {
	INPUT_JSON,
	INPUT_PROTOBUF,
};

static const char *display_name(const char *path)
{
	return strcmp(path, "-") == 0 ? "<stdin>" : path;
}

/* Reads all of path ("-" = stdin) into a NUL-terminated buffer. */
static int read_all(const char *path, char **out, size_t *outlen, char *err,
		    size_t errlen)
{
	_cleanup_fclose_ FILE *owned = NULL;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;
	FILE *f;

	if (strcmp(path, "-") == 0) {
		f = stdin;
	} else {
		owned = fopen(path, "rb");
		if (!owned) {
			int r = mt_neg_errno();

			snprintf(err, errlen, "%s: cannot open: %s", path,
				 strerror(-r));
			return r;
		}
		f = owned;
	}
	for (;;) {
		size_t got;

		if (cap - len < 4096) {
			char *nb;

			cap = cap ? cap * 2 : 16384;
			if (cap > INPUT_MAX + 4096) {
				snprintf(err, errlen,
					 "%s: larger than %u MiB: not a config "
					 "file",
					 display_name(path), INPUT_MAX >> 20);
				return -EFBIG;
			}
			nb = realloc(buf, cap);
			if (!nb) {
				snprintf(err, errlen, "%s: out of memory",
					 display_name(path));
				return -ENOMEM;
			}
			buf = nb;
		}
		got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
		if (got == 0) {
			if (ferror(f)) {
				int r = mt_neg_errno();

				snprintf(err, errlen, "%s: read error: %s",
					 display_name(path), strerror(-r));
				return r;
			}
			break;
		}
	}
	buf[len] = '\0';
	*out = MT_TAKE_PTR(buf);
	*outlen = len;
	return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

static enum input_format detect_format(const char *path, const char *buf,
				       size_t len)
{
	if (has_suffix(path, ".json"))
		return INPUT_JSON;
	if (has_suffix(path, ".pb") || has_suffix(path, ".bin"))
		return INPUT_PROTOBUF;
	for (size_t i = 0; i < len; i++) {
		if (isspace((unsigned char)buf[i]))
			continue;
		return buf[i] == '{' ? INPUT_JSON : INPUT_PROTOBUF;
	}
	return INPUT_PROTOBUF;
}

static bool is_blank(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!isspace((unsigned char)buf[i]))
			return false;
	return true;
}

/* Parses the JSON (syntax errors carry a line and column), then decodes it
 * with the descriptor-driven mapping (errors name the JSON path). When
 * list is not NULL, picks list over desc if the document is an object with a
 * "customers" member. */
static int load_json(const char *path, const char *buf, size_t len,
		     const ProtobufCMessageDescriptor *desc,
		     const ProtobufCMessageDescriptor *list,
		     ProtobufCMessage **out, char *err, size_t errlen)
{
	json_auto_t *doc = NULL;
	const ProtobufCMessageDescriptor *d = desc;
	char why[512] = "";
	json_error_t jerr;
	int r;

	doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s",
			 display_name(path), jerr.line, jerr.column, jerr.text);
		return -EINVAL;
	}
	if (!json_is_object(doc)) {
		snprintf(err, errlen,
			 "%s: expected a JSON object (a %s%s), "
			 "got %s",
			 display_name(path), desc->name,
			 list ? " or {\"customers\": [...]}" : "",
			 json_is_array(doc) ? "an array" : "a scalar");
		return -EINVAL;
	}
	if (list && json_object_get(doc, "customers"))
		d = list;
	r = mt_json_to_message(d, doc, out, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "%s: not a valid %s: %s",
			 display_name(path), d->name, why);
		return r;
	}
	return 0;
}

static int load_protobuf(const char *path, const uint8_t *buf, size_t len,
			 bool sniffed, const ProtobufCMessageDescriptor *desc,
			 const ProtobufCMessageDescriptor *list,
			 ProtobufCMessage **out, char *err, size_t errlen)
{
	const ProtobufCMessageDescriptor *d = desc;
	ProtobufCMessage *m;

	/* A CustomerList holds only field 1, length-delimited (tag 0x0a);
	 * a Customer's field 1 is a varint (tag 0x08), so the first byte
	 * tells them apart. */
	if (list && len > 0 && buf[0] == 0x0a)
		d = list;
	m = protobuf_c_message_unpack(d, NULL, len, buf);
	if (!m) {
		snprintf(err, errlen,
			 "%s: %sdoes not decode as binary protobuf %s (%zu "
			 "bytes)",
			 display_name(path),
			 sniffed ? "not JSON (no '{') and " : "", d->name, len);
		return -EINVAL;
	}
	*out = m;
	return 0;
}

static int load(const char *path, const ProtobufCMessageDescriptor *desc,
		const ProtobufCMessageDescriptor *list, ProtobufCMessage **out,
		char *err, size_t errlen)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r;

	r = read_all(path, &buf, &len, err, errlen);
	if (r < 0)
		return r;
	if (is_blank(buf, len)) {
		snprintf(err, errlen, "%s: empty file", display_name(path));
		return -EINVAL;
	}
	if (detect_format(path, buf, len) == INPUT_JSON)
		return load_json(path, buf, len, desc, list, out, err, errlen);
	return load_protobuf(path, (const uint8_t *)buf, len,
			     !has_suffix(path, ".pb") &&
				 !has_suffix(path, ".bin"),
			     desc, list, out, err, errlen);
}

int mtctl_message_load(const char *path, const ProtobufCMessageDescriptor *desc,
		       ProtobufCMessage **out, char *err, size_t errlen)
{
	return load(path, desc, NULL, out, err, errlen);
}

static int push(void **v, size_t n, size_t size)
{
	void *nv = realloc(*v, (n + 1) * size);

	if (!nv)
		return -ENOMEM;
	*v = nv;
	return 0;
}

static int add_customer(struct mtctl_customers *set, Mt__Config__Customer *c,
			const char *path)
{
	if (push((void **)&set->c, set->n, sizeof(*set->c)) < 0 ||
	    push((void **)&set->origin, set->n, sizeof(*set->origin)) < 0)
		return -ENOMEM;
	set->c[set->n] = c;
	set->origin[set->n] = display_name(path);
	set->n++;
	return 0;
}

int mtctl_customers_load(struct mtctl_customers *set, const char *path,
			 char *err, size_t errlen)
{
	ProtobufCMessage *m = NULL;
	size_t before = set->n;
	int r;

	r = load(path, &mt__config__customer__descriptor,
		 &mt__config__customer_list__descriptor, &m, err, errlen);
	if (r < 0)
		return r;
	if (push((void **)&set->msgs, set->n_msgs, sizeof(*set->msgs)) < 0) {
		protobuf_c_message_free_unpacked(m, NULL);
		goto nomem;
	}
	set->msgs[set->n_msgs++] = m;
	if (m->descriptor == &mt__config__customer_list__descriptor) {
		Mt__Config__CustomerList *l = (Mt__Config__CustomerList *)m;

		for (size_t i = 0; i < l->n_customers; i++)
			if (add_customer(set, l->customers[i], path) < 0)
				goto nomem;
	} else if (add_customer(set, (Mt__Config__Customer *)m, path) < 0) {
		goto nomem;
	}
	return (int)(set->n - before);
nomem:
	snprintf(err, errlen, "%s: out of memory", display_name(path));
	return -ENOMEM;
}

void mtctl_customers_fini(struct mtctl_customers *set)
{
	for (size_t i = 0; i < set->n_msgs; i++)
		protobuf_c_message_free_unpacked(set->msgs[i], NULL);
	free(set->msgs);
	free(set->c);
	free(set->origin);
	*set = (struct mtctl_customers){0};
}
