/*
 * linebuf: assembles protocol command lines from bytes as they arrive, with
 * a hard limit. Lines end with LF (CRLF or bare LF; the CR is removed). A
 * line longer than the limit is not kept: the caller is told once, and the
 * rest of it, up to its LF, is thrown away — so a hostile client cannot
 * make the buffer grow, and the protocol answers one error per long line.
 * Pure: no I/O; memory is one fixed buffer of limit bytes.
 */
#ifndef CM_LIB_LINEBUF_H
#define CM_LIB_LINEBUF_H

#include <stdbool.h>
#include <stddef.h>

enum linebuf_result {
	LINEBUF_NEED_MORE = 0, /* all input consumed, no complete line */
	LINEBUF_LINE = 1,      /* *line_r is a complete line (NUL-terminated, no CRLF) */
	LINEBUF_TOO_LONG = 2,  /* a line exceeded the limit (reported once per line) */
};

struct linebuf {
	char *buf;
	size_t len;
	size_t limit;
	bool discarding; /* inside an overlong line, skipping to its LF */
	bool has_nul;    /* the current line contained a NUL byte */
};

/* limit: longest line accepted, excluding CRLF. 0 or -1 (out of memory). */
int linebuf_init(struct linebuf *lb, size_t limit);
void linebuf_free(struct linebuf *lb);
/*
 * Consumes bytes from *data, *len bytes long (advanced past what was used) until one
 * line is complete or input runs out. A returned line stays valid until
 * the next call. Lines containing NUL bytes are returned with
 * *has_nul_r = true so protocols can reject them.
 */
enum linebuf_result linebuf_feed(struct linebuf *lb, const char **data, size_t *len,
				 const char **line_r, bool *has_nul_r);
/* Drops any partial line (e.g. after STARTTLS: nothing sent before the
 * handshake may be taken as a command after it). */
void linebuf_reset(struct linebuf *lb);
/* Bytes of a partial line currently held. */
size_t linebuf_pending(const struct linebuf *lb);

#endif
