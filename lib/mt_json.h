/* The proto3 JSON mapping for any protobuf-c message, driven by its
 * descriptor (no per-message code).
 *
 * Output (mt_json_from_message, mt_json_dump_message):
 *   - field names are the lowerCamelCase JSON names ("tunnel_endpoints" ->
 *     "tunnelEndpoints"), in field-number order;
 *   - fields holding their default value (0, false, "", empty bytes, enum 0,
 *     absent submessage, empty repeated) are omitted; a oneof member that is
 *     set is always written, even when it holds a default value;
 *   - int64, sint64, sfixed64, uint64 and fixed64 are decimal strings; the
 *     32-bit integers are numbers; bytes are standard base64 with padding;
 *     enums are their value names (a value the descriptor does not know is
 *     written as its number); float/double NaN and infinities are "NaN",
 *     "Infinity", "-Infinity".
 *
 * Input (mt_json_to_message, mt_json_parse_message):
 *   - a field may be named by its JSON name or its proto name, but only once;
 *   - every integer type accepts a JSON integer, an integral JSON real
 *     (1e3) or a decimal string ("42"); values must fit the field's type;
 *   - enums accept a value name or the number of a known value;
 *   - bytes accept standard or URL-safe base64, padded or not;
 *   - null means "default" for any singular field; null is refused inside
 *     an array;
 *   - at most one member of a oneof may be set (non-null);
 *   - anything else (unknown field names, wrong JSON types, out-of-range
 *     values, strings with a NUL character) is refused with an error that
 *     names the JSON path, e.g.
 *       customers[2].prefixes[0]: expected a string, got number
 *       customers[0]: unknown field "prefixs" in mt.config.Customer
 *
 * Messages built here are allocated with malloc (strings with strdup, every
 * message initialised by its descriptor's init), so they are released with
 * protobuf_c_message_free_unpacked(msg, NULL).
 *
 * Not supported (our protos use none of them): maps, Any, the well-known
 * wrapper/timestamp types, proto2 extensions. Unknown fields that a message
 * carries from unpacking are not written.
 */
#ifndef MT_JSON_H
#define MT_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* A new JSON object for msg. NULL on ENOMEM. The caller owns the reference
 * (json_decref). */
json_t *mt_json_from_message(const ProtobufCMessage *msg);

/* Builds a new message of type d from the JSON value j (which must be an
 * object; j is not consumed). On success *out holds the message (free with
 * protobuf_c_message_free_unpacked(*out, NULL)) and 0 is returned. On
 * failure *out is NULL, err holds a message naming the JSON path, and the
 * return is -EINVAL (bad input) or -ENOMEM. err may be NULL. */
int mt_json_to_message(const ProtobufCMessageDescriptor *d, json_t *j,
		       ProtobufCMessage **out, char *err, size_t errlen);

/* As mt_json_to_message, from JSON text of len bytes (need not be
 * NUL-terminated). Duplicate keys in an object are refused. Syntax errors
 * name the line and column. */
int mt_json_parse_message(const ProtobufCMessageDescriptor *d,
			  const char *text, size_t len, ProtobufCMessage **out,
			  char *err, size_t errlen);

/* msg as JSON text (malloc'd, no trailing newline): compact when indent is
 * 0, else pretty-printed with indent spaces (max 31). NULL on ENOMEM. */
char *mt_json_dump_message(const ProtobufCMessage *msg, int indent);

/* The lowerCamelCase JSON name of a proto field name, as protoc computes it
 * ("tunnel_endpoints" -> "tunnelEndpoints"), written to buf (truncated to
 * len). Returns buf. */
char *mt_json_name(const char *proto_name, char *buf, size_t len);

#endif
