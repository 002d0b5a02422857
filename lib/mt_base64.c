/* Base64: see mt_base64.h. */
#include "mt_base64.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

static const char b64_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t mt_base64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

void mt_base64_encode(const void *in, size_t n, char *out)
{
	const uint8_t *b = in;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)b[i + 1] << 8;
		if (i + 2 < n)
			v |= b[i + 2];
		*out++ = b64_chars[(v >> 18) & 63];
		*out++ = b64_chars[(v >> 12) & 63];
		*out++ = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
		*out++ = i + 2 < n ? b64_chars[v & 63] : '=';
	}
	*out = '\0';
}

static int b64_value(char c, unsigned flags)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || (c == '-' && (flags & MT_BASE64_LENIENT)))
		return 62;
	if (c == '/' || (c == '_' && (flags & MT_BASE64_LENIENT)))
		return 63;
	return -1;
}

int mt_base64_decode(const char *in, size_t n, unsigned flags, void **out,
		     size_t *outlen)
{
	size_t end = n, o = 0, bits = 0;
	uint32_t acc = 0;
	uint8_t *buf;

	if (flags & MT_BASE64_LENIENT) {
		while (end && in[end - 1] == '=')
			end--;
	} else {
		/* whole quanta, and "=" only as one or two pads at the end */
		if (n % 4)
			return -EINVAL;
		while (end && n - end < 2 && in[end - 1] == '=')
			end--;
	}
	if (end % 4 == 1)
		return -EINVAL;
	buf = malloc(end / 4 * 3 + 3);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < end; i++) {
		int v = b64_value(in[i], flags);

		if (v < 0) {
			free(buf);
			return -EINVAL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (uint8_t)(acc >> bits);
		}
	}
	buf[o] = '\0';
	*out = buf;
	*outlen = o;
	return 0;
}
