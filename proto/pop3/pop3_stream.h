/*
 * RETR/TOP body encoding, streaming: turns stored message bytes into the
 * POP3 multi-line form chunk by chunk — CRLF line ends (bare LF becomes
 * CRLF), a '.' starting a line doubled (RFC 1939 §3), for TOP only the
 * header, the blank line and n body lines — and ends with ".\r\n". The
 * whole message is never in memory. Pure.
 */
#ifndef CM_PROTO_POP3_STREAM_H
#define CM_PROTO_POP3_STREAM_H

#include <stdbool.h>
#include <stddef.h>

struct pop3_stream {
	bool top;                 /* TOP: stop after the header and `lines` body lines */
	unsigned long lines_left;
	bool in_header;
	bool line_start;
	bool held_cr;             /* a CR whose LF may arrive in the next chunk */
	bool done;                /* TOP limit reached: ignore the rest */
	size_t line_len;          /* content bytes of the current line so far */
};

void pop3_stream_init(struct pop3_stream *st, bool top, unsigned long lines);
/* Encodes len bytes of in into out, which must hold 2 * len bytes.
 * Returns the bytes written. Sets st->done when TOP has all it needs. */
size_t pop3_stream_encode(struct pop3_stream *st, const char *in, size_t len, char *out);
/* The end: a final CRLF if the message did not end with one, then ".\r\n".
 * out must hold POP3_STREAM_FINISH_MAX bytes. Returns bytes written. */
#define POP3_STREAM_FINISH_MAX 6
size_t pop3_stream_finish(struct pop3_stream *st, char *out);

#endif
