/* The proto3 JSON mapping, driven by protobuf-c descriptors (see mt_json.h
 * for the rules). */
#include "mt_json.h"
#include "mt_base64.h"
#include "mt_cleanup.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEMBER(msg, off) ((void *)((char *)(msg) + (off)))
#define CMEMBER(msg, off) ((const void *)((const char *)(msg) + (off)))

char *mt_json_name(const char *proto_name, char *buf, size_t len)
{
	bool upper = false;
	size_t o = 0;

	if (!len)
		return buf;
	for (const char *p = proto_name; *p && o + 1 < len; p++) {
		if (*p == '_') {
			upper = true;
			continue;
		}
		buf[o++] = upper && *p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p;
		upper = false;
	}
	buf[o] = '\0';
	return buf;
}

/* key == the JSON name of proto_name, without building it. */
static bool json_name_eq(const char *key, const char *proto_name)
{
	bool upper = false;
	const char *k = key;

	for (const char *p = proto_name; *p; p++) {
		char want;

		if (*p == '_') {
			upper = true;
			continue;
		}
		want = upper && *p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p;
		upper = false;
		if (*k++ != want)
			return false;
	}
	return *k == '\0';
}

/* ---- message -> JSON ---- */

static size_t elem_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return 4;
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

/* Length of the valid UTF-8 sequence at s, 0 if none starts there. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned c = s[0], cp, min;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		min = 0x10000;
	} else {
		return 0;
	}
	cp = c & (0x7fu >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A JSON string for a C string that protobuf-c did not check for UTF-8:
 * invalid bytes become U+FFFD rather than failing the whole message. */
static json_t *string_to_json(const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	_cleanup_free_ char *fixed = NULL;
	size_t o = 0;

	for (const unsigned char *q = p; *q;) {
		size_t n = utf8_seq(q);

		if (!n)
			goto sanitize;
		q += n;
	}
	return json_string((const char *)p);
sanitize:
	fixed = malloc(strlen((const char *)p) * 3 + 1);
	if (!fixed)
		return NULL;
	while (*p) {
		size_t n = utf8_seq(p);

		if (n) {
			memcpy(fixed + o, p, n);
			o += n;
			p += n;
		} else {
			memcpy(fixed + o, "\xef\xbf\xbd", 3);
			o += 3;
			p++;
		}
	}
	fixed[o] = '\0';
	return json_string(fixed);
}

static json_t *double_to_json(double d)
{
	if (isnan(d))
		return json_string("NaN");
	if (isinf(d))
		return json_string(d > 0 ? "Infinity" : "-Infinity");
	return json_real(d);
}

static json_t *value_to_json(const ProtobufCFieldDescriptor *f, const void *p)
{
	char buf[32];

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		snprintf(buf, sizeof(buf), "%" PRId64, *(const int64_t *)p);
		return json_string(buf);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		snprintf(buf, sizeof(buf), "%" PRIu64, *(const uint64_t *)p);
		return json_string(buf);
	case PROTOBUF_C_TYPE_FLOAT:
		return double_to_json(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return double_to_json(*(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_ENUM: {
		int v = *(const int *)p;
		const ProtobufCEnumValue *ev =
			protobuf_c_enum_descriptor_get_value(f->descriptor, v);

		return ev ? json_string(ev->name) : json_integer(v);
	}
	case PROTOBUF_C_TYPE_STRING:
		return string_to_json(*(char *const *)p);
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;
		_cleanup_free_ char *s = malloc(mt_base64_len(b->len) + 1);

		if (s)
			mt_base64_encode(b->data, b->len, s);

		return s ? json_string(s) : NULL;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;

		return m ? mt_json_from_message(m) : json_null();
	}
	}
	return NULL;
}

static bool is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return *(const uint32_t *)p == 0;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return *(const uint64_t *)p == 0;
	case PROTOBUF_C_TYPE_FLOAT:
		return *(const float *)p == 0;
	case PROTOBUF_C_TYPE_DOUBLE:
		return *(const double *)p == 0;
	case PROTOBUF_C_TYPE_BOOL:
		return !*(const protobuf_c_boolean *)p;
	case PROTOBUF_C_TYPE_ENUM:
		return *(const int *)p == 0;
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;

		return !s || !*s;
	}
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *)p)->len == 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(ProtobufCMessage *const *)p == NULL;
	}
	return true;
}

/* Whether a singular field is to be written. */
static bool field_present(const ProtobufCMessage *msg,
			  const ProtobufCFieldDescriptor *f)
{
	const void *p = CMEMBER(msg, f->offset);

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)CMEMBER(msg, f->quantifier_offset) ==
		       f->id;
	switch (f->label) {
	case PROTOBUF_C_LABEL_REQUIRED:
		return true;
	case PROTOBUF_C_LABEL_OPTIONAL:
		/* proto2: pointers are present when set and not the
		 * default; everything else has a has_ member. */
		if (f->type == PROTOBUF_C_TYPE_STRING ||
		    f->type == PROTOBUF_C_TYPE_MESSAGE) {
			const void *v = *(const void *const *)p;

			return v && v != f->default_value;
		}
		return *(const protobuf_c_boolean *)CMEMBER(
			msg, f->quantifier_offset);
	case PROTOBUF_C_LABEL_NONE:
	default:
		return !is_default(f, p);
	}
}

json_t *mt_json_from_message(const ProtobufCMessage *msg)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;
	json_t *obj = json_object();

	if (!obj)
		return NULL;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		char name[128];
		json_t *v;

		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)CMEMBER(msg,
							    f->quantifier_offset);
			const char *base = *(const char *const *)CMEMBER(
				msg, f->offset);
			size_t sz = elem_size(f->type);

			if (!n)
				continue;
			v = json_array();
			if (!v)
				goto fail;
			for (size_t k = 0; k < n; k++) {
				if (json_array_append_new(
					    v, value_to_json(f, base + k * sz))) {
					json_decref(v);
					goto fail;
				}
			}
		} else if (field_present(msg, f)) {
			v = value_to_json(f, CMEMBER(msg, f->offset));
			if (!v)
				goto fail;
		} else {
			continue;
		}
		mt_json_name(f->name, name, sizeof(name));
		if (json_object_set_new(obj, name, v))
			goto fail;
	}
	return obj;
fail:
	json_decref(obj);
	return NULL;
}

char *mt_json_dump_message(const ProtobufCMessage *msg, int indent)
{
	json_t *j = mt_json_from_message(msg);
	size_t flags;
	char *s;

	if (!j)
		return NULL;
	if (indent > 31)
		indent = 31;
	flags = indent > 0 ? JSON_INDENT(indent) : JSON_COMPACT;
	s = json_dumps(j, flags | JSON_PRESERVE_ORDER);
	json_decref(j);
	return s;
}

/* ---- JSON -> message ---- */

struct jctx {
	char *err;
	size_t errlen;
	char path[512];
	size_t plen;
};

__attribute__((format(printf, 3, 4))) static int fail(struct jctx *c, int r,
						     const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (!c->err || !c->errlen)
		return r;
	if (c->plen)
		n = snprintf(c->err, c->errlen, "%s: ", c->path);
	if (n < 0 || (size_t)n >= c->errlen)
		return r;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return r;
}

static size_t path_push_key(struct jctx *c, const char *key)
{
	size_t old = c->plen;
	int n = snprintf(c->path + old, sizeof(c->path) - old, "%s%s",
			 old ? "." : "", key);

	c->plen = n < 0 ? old : old + (size_t)n;
	if (c->plen >= sizeof(c->path))
		c->plen = sizeof(c->path) - 1;
	return old;
}

static size_t path_push_index(struct jctx *c, size_t i)
{
	size_t old = c->plen;
	int n = snprintf(c->path + old, sizeof(c->path) - old, "[%zu]", i);

	c->plen = n < 0 ? old : old + (size_t)n;
	if (c->plen >= sizeof(c->path))
		c->plen = sizeof(c->path) - 1;
	return old;
}

static void path_pop(struct jctx *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

static const char *jtype(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		return "null";
	}
	return "value";
}

/* The JSON value as it appears in an error message. */
static const char *jtext(const json_t *j, char *buf, size_t len)
{
	if (json_is_integer(j))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
	else if (json_is_real(j)) {
		/* the shortest of %.15g / %.17g that reads back the same */
		snprintf(buf, len, "%.15g", json_real_value(j));
		if (strtod(buf, NULL) != json_real_value(j))
			snprintf(buf, len, "%.17g", json_real_value(j));
	}
	else if (json_is_string(j))
		snprintf(buf, len, "\"%s\"", json_string_value(j));
	else
		snprintf(buf, len, "%s", jtype(j));
	return buf;
}

/* A JSON integer, integral real or decimal string as sign + magnitude.
 * Returns 1 for an integer beyond 64 bits (out of range for any type). */
static int int_from_json(struct jctx *c, const json_t *j, const char *tname,
			 bool *neg, uint64_t *mag)
{
	char buf[96];

	if (json_is_integer(j)) {
		json_int_t v = json_integer_value(j);

		*neg = v < 0;
		*mag = *neg ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
		return 0;
	}
	if (json_is_real(j)) {
		double d = json_real_value(j);

		if (!isfinite(d) || d != trunc(d))
			return fail(c, -EINVAL, "expected an integer (%s), got %s",
				    tname, jtext(j, buf, sizeof(buf)));
		if (fabs(d) >= 18446744073709551616.0)
			return 1;
		*neg = d < 0;
		*mag = (uint64_t)fabs(d);
		return 0;
	}
	if (json_is_string(j)) {
		const char *s = json_string_value(j), *digits = s;
		char *end;

		if (*digits == '-')
			digits++;
		if (*digits < '0' || *digits > '9' ||
		    strspn(digits, "0123456789") != strlen(digits) ||
		    strlen(s) != json_string_length(j))
			return fail(c, -EINVAL,
				    "%s is not a decimal integer (%s)",
				    jtext(j, buf, sizeof(buf)), tname);
		errno = 0;
		*mag = strtoull(digits, &end, 10);
		if (errno == ERANGE)
			return 1;
		*neg = s[0] == '-';
		return 0;
	}
	return fail(c, -EINVAL, "expected an integer (%s), got %s", tname,
		    jtype(j));
}

static int signed_from_json(struct jctx *c, const json_t *j, const char *tname,
			    int64_t min, int64_t max, int64_t *out)
{
	char buf[96];
	uint64_t mag;
	bool neg;
	int r = int_from_json(c, j, tname, &neg, &mag);

	if (r < 0)
		return r;
	if (r || (neg ? mag > (uint64_t)(-(min + 1)) + 1 : mag > (uint64_t)max))
		return fail(c, -EINVAL,
			    "value %s out of range for %s (%" PRId64 "..%" PRId64
			    ")",
			    json_is_string(j) ? json_string_value(j)
					      : jtext(j, buf, sizeof(buf)),
			    tname, min, max);
	*out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
	return 0;
}

static int unsigned_from_json(struct jctx *c, const json_t *j,
			      const char *tname, uint64_t max, uint64_t *out)
{
	char buf[96];
	uint64_t mag;
	bool neg;
	int r = int_from_json(c, j, tname, &neg, &mag);

	if (r < 0)
		return r;
	if (r || (neg && mag) || mag > max)
		return fail(c, -EINVAL,
			    "value %s out of range for %s (0..%" PRIu64 ")",
			    json_is_string(j) ? json_string_value(j)
					      : jtext(j, buf, sizeof(buf)),
			    tname, max);
	*out = mag;
	return 0;
}

static int double_from_json(struct jctx *c, const json_t *j, bool is_float,
			    double *out)
{
	const char *tname = is_float ? "float" : "double";
	char buf[96];

	if (json_is_number(j)) {
		*out = json_number_value(j);
	} else if (json_is_string(j)) {
		const char *s = json_string_value(j);
		char *end;

		if (!strcmp(s, "NaN")) {
			*out = NAN;
		} else if (!strcmp(s, "Infinity")) {
			*out = INFINITY;
		} else if (!strcmp(s, "-Infinity")) {
			*out = -INFINITY;
		} else {
			/* plain decimal notation only: no hex, no "inf" */
			if (!*s || strspn(s, "0123456789+-.eE") != strlen(s))
				goto bad;
			errno = 0;
			*out = strtod(s, &end);
			if (*end || end == s)
				goto bad;
			if (errno == ERANGE && isinf(*out))
				return fail(c, -EINVAL,
					    "value %s out of range for %s", s,
					    tname);
		}
	} else {
		return fail(c, -EINVAL, "expected a number (%s), got %s", tname,
			    jtype(j));
	}
	if (is_float && isfinite(*out) && fabs(*out) > FLT_MAX)
		return fail(c, -EINVAL, "value %s out of range for float",
			    jtext(j, buf, sizeof(buf)));
	return 0;
bad:
	return fail(c, -EINVAL, "%s is not a number (%s)",
		    jtext(j, buf, sizeof(buf)), tname);
}

static int message_from_json(struct jctx *c, const ProtobufCMessageDescriptor *d,
			     const json_t *j, ProtobufCMessage **out);

/* Converts j into the storage of one value of field f at dst (a singular
 * member or one array element). Writes dst only on success. */
static int value_from_json(struct jctx *c, const ProtobufCFieldDescriptor *f,
			   const json_t *j, void *dst)
{
	char buf[96];
	int64_t s;
	uint64_t u;
	double dv;
	int r;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		r = signed_from_json(c, j,
				     f->type == PROTOBUF_C_TYPE_INT32    ? "int32"
				     : f->type == PROTOBUF_C_TYPE_SINT32 ? "sint32"
									 : "sfixed32",
				     INT32_MIN, INT32_MAX, &s);
		if (!r)
			*(int32_t *)dst = (int32_t)s;
		return r;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		r = unsigned_from_json(c, j,
				       f->type == PROTOBUF_C_TYPE_UINT32 ? "uint32"
									 : "fixed32",
				       UINT32_MAX, &u);
		if (!r)
			*(uint32_t *)dst = (uint32_t)u;
		return r;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		r = signed_from_json(c, j,
				     f->type == PROTOBUF_C_TYPE_INT64    ? "int64"
				     : f->type == PROTOBUF_C_TYPE_SINT64 ? "sint64"
									 : "sfixed64",
				     INT64_MIN, INT64_MAX, &s);
		if (!r)
			*(int64_t *)dst = s;
		return r;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		r = unsigned_from_json(c, j,
				       f->type == PROTOBUF_C_TYPE_UINT64 ? "uint64"
									 : "fixed64",
				       UINT64_MAX, &u);
		if (!r)
			*(uint64_t *)dst = u;
		return r;
	case PROTOBUF_C_TYPE_FLOAT:
		r = double_from_json(c, j, true, &dv);
		if (!r)
			*(float *)dst = (float)dv;
		return r;
	case PROTOBUF_C_TYPE_DOUBLE:
		r = double_from_json(c, j, false, &dv);
		if (!r)
			*(double *)dst = dv;
		return r;
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(j))
			return fail(c, -EINVAL, "expected a boolean, got %s",
				    jtype(j));
		*(protobuf_c_boolean *)dst = json_is_true(j);
		return 0;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *ed = f->descriptor;
		const ProtobufCEnumValue *ev;

		if (json_is_string(j)) {
			ev = protobuf_c_enum_descriptor_get_value_by_name(
				ed, json_string_value(j));
			if (!ev)
				return fail(c, -EINVAL,
					    "unknown value %s for enum %s",
					    jtext(j, buf, sizeof(buf)),
					    ed->name);
		} else if (json_is_number(j)) {
			r = signed_from_json(c, j, ed->name, INT32_MIN,
					     INT32_MAX, &s);
			if (r)
				return r;
			ev = protobuf_c_enum_descriptor_get_value(ed, (int)s);
			if (!ev)
				return fail(c, -EINVAL,
					    "unknown value %" PRId64
					    " for enum %s",
					    s, ed->name);
		} else {
			return fail(c, -EINVAL,
				    "expected a value name of enum %s, got %s",
				    ed->name, jtype(j));
		}
		*(int *)dst = ev->value;
		return 0;
	}
	case PROTOBUF_C_TYPE_STRING: {
		char *copy;

		if (!json_is_string(j))
			return fail(c, -EINVAL, "expected a string, got %s",
				    jtype(j));
		if (strlen(json_string_value(j)) != json_string_length(j))
			return fail(c, -EINVAL,
				    "string contains a NUL character");
		copy = strdup(json_string_value(j));
		if (!copy)
			return fail(c, -ENOMEM, "out of memory");
		*(char **)dst = copy;
		return 0;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *b = dst;
		void *data;
		size_t len;

		if (!json_is_string(j))
			return fail(c, -EINVAL,
				    "expected a base64 string, got %s",
				    jtype(j));
		r = mt_base64_decode(json_string_value(j),
				     json_string_length(j), MT_BASE64_LENIENT,
				     &data, &len);
		if (r == -ENOMEM)
			return fail(c, r, "out of memory");
		if (r)
			return fail(c, r, "invalid base64");
		if (!len) {
			free(data);
			data = NULL;
		}
		b->data = data;
		b->len = len;
		return 0;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		ProtobufCMessage *m;

		r = message_from_json(c, f->descriptor, j, &m);
		if (!r)
			*(ProtobufCMessage **)dst = m;
		return r;
	}
	}
	return fail(c, -EINVAL, "unsupported field type %d", (int)f->type);
}

static int find_field(const ProtobufCMessageDescriptor *d, const char *key)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(d, key);

	if (f)
		return (int)(f - d->fields);
	for (unsigned i = 0; i < d->n_fields; i++)
		if (json_name_eq(key, d->fields[i].name))
			return (int)i;
	return -1;
}

static int field_from_json(struct jctx *c, ProtobufCMessage *msg,
			   const ProtobufCFieldDescriptor *f, const json_t *val)
{
	void *p = MEMBER(msg, f->offset);
	size_t sz = elem_size(f->type);
	int r;

	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n, *count = MEMBER(msg, f->quantifier_offset);
		char *arr;

		if (!json_is_array(val))
			return fail(c, -EINVAL, "expected an array, got %s",
				    jtype(val));
		n = json_array_size(val);
		if (!n)
			return 0;
		arr = calloc(n, sz);
		if (!arr)
			return fail(c, -ENOMEM, "out of memory");
		/* Owned by msg from here on: the elements converted so far
		 * are counted, so freeing msg after a failure frees them. */
		*(void **)p = arr;
		*count = 0;
		for (size_t i = 0; i < n; i++) {
			size_t old = path_push_index(c, i);

			r = value_from_json(c, f, json_array_get(val, i),
					    arr + i * sz);
			if (r)
				return r;
			(*count)++;
			path_pop(c, old);
		}
		return 0;
	}
	r = value_from_json(c, f, val, p);
	if (!r && f->label == PROTOBUF_C_LABEL_OPTIONAL &&
	    !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
	    f->type != PROTOBUF_C_TYPE_STRING &&
	    f->type != PROTOBUF_C_TYPE_MESSAGE)
		*(protobuf_c_boolean *)MEMBER(msg, f->quantifier_offset) = 1;
	return r;
}

static int message_from_json(struct jctx *c, const ProtobufCMessageDescriptor *d,
			     const json_t *j, ProtobufCMessage **out)
{
	_cleanup_free_ const char **seen = NULL;
	ProtobufCMessage *msg;
	const char *key;
	json_t *val;
	int r = 0;

	*out = NULL;
	if (!json_is_object(j))
		return fail(c, -EINVAL, "expected an object (%s), got %s",
			    d->name, jtype(j));
	seen = calloc(d->n_fields ? d->n_fields : 1, sizeof(*seen));
	msg = malloc(d->sizeof_message);
	if (!seen || !msg) {
		free(msg);
		return fail(c, -ENOMEM, "out of memory");
	}
	protobuf_c_message_init(d, msg);

	json_object_foreach((json_t *)j, key, val) {
		int idx = find_field(d, key);
		const ProtobufCFieldDescriptor *f;
		size_t old;

		if (idx < 0) {
			r = fail(c, -EINVAL, "unknown field \"%s\" in %s", key,
				 d->name);
			goto fail;
		}
		f = &d->fields[idx];
		if (seen[idx]) {
			r = fail(c, -EINVAL,
				 "field \"%s\" given twice (as \"%s\" and \"%s\")",
				 f->name, seen[idx], key);
			goto fail;
		}
		seen[idx] = key;
		if (json_is_null(val))
			continue;
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t *which = MEMBER(msg, f->quantifier_offset);

			if (*which) {
				const ProtobufCFieldDescriptor *o =
					protobuf_c_message_descriptor_get_field(
						d, *which);
				const char *okey = o ? seen[o - d->fields] : "?";

				r = fail(c, -EINVAL,
					 "\"%s\" and \"%s\" are members of the "
					 "same oneof: set at most one",
					 okey, key);
				goto fail;
			}
			*which = f->id;
		}
		old = path_push_key(c, key);
		r = field_from_json(c, msg, f, val);
		if (r)
			goto fail;
		path_pop(c, old);
	}
	*out = msg;
	return 0;
fail:
	protobuf_c_message_free_unpacked(msg, NULL);
	return r;
}

int mt_json_to_message(const ProtobufCMessageDescriptor *d, json_t *j,
		       ProtobufCMessage **out, char *err, size_t errlen)
{
	struct jctx c = { .err = err, .errlen = errlen };

	if (err && errlen)
		err[0] = '\0';
	return message_from_json(&c, d, j, out);
}

int mt_json_parse_message(const ProtobufCMessageDescriptor *d,
			  const char *text, size_t len, ProtobufCMessage **out,
			  char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *j;
	int r;

	*out = NULL;
	j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
		       &jerr);
	if (!j) {
		if (err && errlen)
			snprintf(err, errlen,
				 "invalid JSON at line %d column %d: %s",
				 jerr.line, jerr.column, jerr.text);
		return json_error_code(&jerr) == json_error_out_of_memory
			       ? -ENOMEM
			       : -EINVAL;
	}
	r = mt_json_to_message(d, j, out, err, errlen);
	json_decref(j);
	return r;
}
