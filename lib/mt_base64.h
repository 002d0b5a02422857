/* Base64 (RFC 4648), shared by the JSON mapping (protobuf bytes fields)
 * and the etcd client (keys and values on the v3 JSON gateway). */
#ifndef MT_BASE64_H
#define MT_BASE64_H

#include <stddef.h>

/* The length of the encoding of n bytes, without the NUL. */
size_t mt_base64_len(size_t n);

/* Standard alphabet with padding into out, which holds mt_base64_len(n) + 1
 * bytes (NUL-terminated). */
void mt_base64_encode(const void *in, size_t n, char *out);

enum {
	/* also the URL-safe alphabet ("-", "_"), padding optional (proto3
	 * JSON accepts both); otherwise standard and padded, nothing else */
	MT_BASE64_LENIENT = 1 << 0,
};

/* Decodes n characters of in into a malloc'd buffer (followed by a NUL
 * not counted in *outlen). 0, -EINVAL (not base64 under flags), -ENOMEM. */
int mt_base64_decode(const char *in, size_t n, unsigned flags, void **out,
		     size_t *outlen);

#endif
