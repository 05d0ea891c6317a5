/*
 * mailbox_name: validation, normalisation and filesystem encoding of
 * mailbox names (see mailbox_name.h for the security stance).
 */
#include "storage/mailbox_name.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "storage/mailbox.h"
#include "storage/store_internal.h"

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	/* C1 control characters (U+0080..U+009F) are refused like C0 ones. */
	if (cp >= 0x80 && cp <= 0x9f)
		return 0;
	return len;
}

int mailbox_name_encode(const char *s, size_t len, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool esc = c == '%' || c == '/' || c < 0x20 || c == 0x7f || (i == 0 && c == '.');
		if (o + (esc ? 3 : 1) > MAILBOX_COMPONENT_ENC_MAX)
			return -1;
		if (esc) {
			snprintf(out + o, 4, "%%%02X", c);
			o += 3;
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return len == 0 ? -1 : 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int mailbox_name_decode(const char *enc, char *out, size_t out_size)
{
	size_t o = 0;
	for (size_t i = 0; enc[i] != '\0'; i++) {
		char c = enc[i];
		if (c == '%') {
			int hi = hexval(enc[i + 1]);
			int lo = hi < 0 ? -1 : hexval(enc[i + 2]);
			if (lo < 0)
				return -1;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (o + 1 >= out_size)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	/* Only the canonical encoding is ours. */
	char again[MAILBOX_COMPONENT_ENC_MAX + 1];
	if (o == 0 || memchr(out, '\0', o) != NULL || mailbox_name_encode(out, o, again) < 0 ||
	    strcmp(again, enc) != 0)
		return -1;
	return 0;
}

bool mailbox_name_is_inbox(const char *name)
{
	return strcmp(name, "INBOX") == 0;
}

bool mailbox_name_is_below(const char *child, const char *parent)
{
	size_t n = strlen(parent);
	return strncmp(child, parent, n) == 0 && child[n] == '/';
}

int mailbox_name_normalize(const char *name, char *out, const char **error_r)
{
	size_t len = strlen(name);
	if (len == 0)
		return store_fail(error_r, STORE_E_INVALID, "empty mailbox name");
	if (len > MAILBOX_NAME_MAX)
		return store_fail(error_r, STORE_E_LIMIT, "mailbox name longer than %d bytes",
				  MAILBOX_NAME_MAX);
	const unsigned char *p = (const unsigned char *)name;
	size_t depth = 1, comp_start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && p[i] != '/') {
			if (p[i] < 0x20 || p[i] == 0x7f)
				return store_fail(error_r, STORE_E_INVALID,
						  "control character in mailbox name");
			size_t n = utf8_seq(p + i, len - i);
			if (n == 0)
				return store_fail(error_r, STORE_E_INVALID,
						  "mailbox name is not valid UTF-8");
			i += n - 1;
			continue;
		}
		size_t clen = i - comp_start;
		if (clen == 0)
			return store_fail(error_r, STORE_E_INVALID,
					  "empty component in mailbox name \"%s\"", name);
		if ((clen == 1 && name[comp_start] == '.') ||
		    (clen == 2 && name[comp_start] == '.' && name[comp_start + 1] == '.'))
			return store_fail(error_r, STORE_E_INVALID,
					  "\".\" and \"..\" are not mailbox names");
		char enc[MAILBOX_COMPONENT_ENC_MAX + 1];
		if (mailbox_name_encode(name + comp_start, clen, enc) < 0)
			return store_fail(error_r, STORE_E_LIMIT, "mailbox name component too long");
		if (i < len && ++depth > MAILBOX_DEPTH_MAX)
			return store_fail(error_r, STORE_E_LIMIT, "mailbox hierarchy deeper than %d",
					  MAILBOX_DEPTH_MAX);
		comp_start = i + 1;
	}
	memcpy(out, name, len + 1);
	if (strncasecmp(out, "INBOX", 5) == 0 && (out[5] == '\0' || out[5] == '/'))
		memcpy(out, "INBOX", 5);
	return 0;
}

int mailbox_name_to_path(const char *name, struct textbuf *path, const char **error_r)
{
	const char *p = name;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		char enc[MAILBOX_COMPONENT_ENC_MAX + 1];
		if (mailbox_name_encode(p, n, enc) < 0)
			return store_fail(error_r, STORE_E_INVALID, "bad mailbox name");
		if (p != name)
			textbuf_putc(path, '/');
		textbuf_puts(path, enc);
		if (slash == NULL)
			return 0;
		p = slash + 1;
	}
}
