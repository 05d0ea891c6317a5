#include "lib/textbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void textbuf_reserve(struct textbuf *sb, size_t extra)
{
	if (sb->len + extra + 1 <= sb->cap)
		return;
	size_t cap = sb->cap ? sb->cap : 64;
	while (cap < sb->len + extra + 1) {
		if (cap > ((size_t)-1) / 2)
			abort();
		cap *= 2;
	}
	char *p = realloc(sb->data, cap);
	if (p == NULL)
		abort();
	sb->data = p;
	sb->cap = cap;
}

void textbuf_append(struct textbuf *sb, const void *data, size_t len)
{
	textbuf_reserve(sb, len);
	if (len > 0)
		memcpy(sb->data + sb->len, data, len);
	sb->len += len;
	sb->data[sb->len] = '\0';
}

void textbuf_puts(struct textbuf *sb, const char *s)
{
	textbuf_append(sb, s, strlen(s));
}

void textbuf_putc(struct textbuf *sb, char c)
{
	textbuf_append(sb, &c, 1);
}

void textbuf_vprintf(struct textbuf *sb, const char *fmt, va_list ap)
{
	va_list ap2;
	if (fmt == NULL)
		return; /* also keeps GCC's -Wformat-truncation quiet under UBSan */
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	textbuf_reserve(sb, (size_t)n);
	vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
}

void textbuf_printf(struct textbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	textbuf_vprintf(sb, fmt, ap);
	va_end(ap);
}

void textbuf_truncate(struct textbuf *sb, size_t len)
{
	if (len < sb->len) {
		sb->len = len;
		sb->data[len] = '\0';
	}
}

const char *textbuf_str(const struct textbuf *sb)
{
	return sb->data ? sb->data : "";
}

void textbuf_free(struct textbuf *sb)
{
	free(sb->data);
	sb->data = NULL;
	sb->len = sb->cap = 0;
}
