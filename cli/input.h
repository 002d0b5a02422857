/* mtctl input files: customer configs and the metal settings, as proto3 JSON
 * or binary protobuf.
 *
 * The format is decided by the file name's extension (.json = JSON; .pb or
 * .bin = binary protobuf) and otherwise by sniffing: a file whose first
 * non-whitespace byte is '{' is JSON. "-" reads standard input (sniffed).
 *
 * Errors are written into err (a full sentence that names the file and, for
 * JSON, the line/column or the JSON path) and reported as -errno: -ENOENT,
 * -EACCES, ... for unreadable files, -EINVAL for content that does not parse.
 */
#ifndef MTCTL_INPUT_H
#define MTCTL_INPUT_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "config.pb-c.h"

/* Customers gathered from several files, in file order. The customers point
 * into the unpacked messages kept in msgs. */
struct mtctl_customers {
	Mt__Config__Customer **c;
	const char **origin; /* the file each customer came from */
	size_t n;
	ProtobufCMessage **msgs; /* owned: what the files decoded to */
	size_t n_msgs;
};

void mtctl_customers_fini(struct mtctl_customers *set);

/* Appends the customers of one file (a Customer or a CustomerList, the
 * latter recognised in JSON by its "customers" member, in binary by its
 * first field). path must outlive set. Returns the number of customers
 * added (a CustomerList may hold none) or -errno with err filled. */
int mtctl_customers_load(struct mtctl_customers *set, const char *path,
			 char *err, size_t errlen);

/* Loads one message of type desc from path. On success *out is the
 * unpacked message (free with protobuf_c_message_free_unpacked). */
int mtctl_message_load(const char *path, const ProtobufCMessageDescriptor *desc,
		       ProtobufCMessage **out, char *err, size_t errlen);

#endif
