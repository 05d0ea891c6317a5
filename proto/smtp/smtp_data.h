/*
 * The DATA decoder: turns the dot-stuffed DATA stream into message bytes
 * and finds its end, CRLF "." CRLF, chunk by chunk without holding lines.
 * Only a line that began after a real CRLF can end the message: a "."
 * after a bare LF is ordinary data, and any bare LF or bare CR is
 * recorded so that the engine rejects the message (SMTP smuggling).
 * Pure.
 */
#ifndef CM_PROTO_SMTP_DATA_H
#define CM_PROTO_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>

enum smtp_data_state {
	SMTP_DATA_LINE_START, /* after CRLF (or at the start of DATA) */
	SMTP_DATA_MID,
	SMTP_DATA_CR,         /* saw CR, waiting for LF */
	SMTP_DATA_DOT,        /* a line (after CRLF) that began with "." */
	SMTP_DATA_DOT_CR,     /* ".\r" at the start of a line */
};

struct smtp_data {
	enum smtp_data_state state;
	bool bare_line_end;   /* a bare LF or CR was seen */
	bool done;            /* CRLF.CRLF seen */
};

void smtp_data_init(struct smtp_data *d);
/*
 * Decodes up to len bytes of in into out (which must hold len + 1 bytes:
 * a held CR can be released along with the next byte). Stops right after
 * the end marker. Returns bytes consumed; *out_len_r bytes were produced.
 */
size_t smtp_data_decode(struct smtp_data *d, const char *in, size_t len, char *out, size_t *out_len_r);

#endif
