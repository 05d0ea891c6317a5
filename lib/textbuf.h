/*
 * textbuf: a length-carrying growable byte buffer, always NUL-terminated so
 * that its text can be handed to C string functions. Allocation failure
 * aborts (there is no sensible recovery from OOM in the daemon's small
 * control paths); the protocol engines bound sizes before appending.
 */
#ifndef CM_TEXTBUF_H
#define CM_TEXTBUF_H

#include <stdarg.h>
#include <stddef.h>

struct textbuf {
	char *data; /* NUL-terminated; NULL until the first append */
	size_t len;
	size_t cap;
};

#define TEXTBUF_INIT { NULL, 0, 0 }

void textbuf_append(struct textbuf *sb, const void *data, size_t len);
void textbuf_puts(struct textbuf *sb, const char *s);
void textbuf_putc(struct textbuf *sb, char c);
void textbuf_printf(struct textbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void textbuf_vprintf(struct textbuf *sb, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
void textbuf_truncate(struct textbuf *sb, size_t len);
/* The text so far; "" for an empty buffer, never NULL. */
const char *textbuf_str(const struct textbuf *sb);
void textbuf_free(struct textbuf *sb);

#endif
