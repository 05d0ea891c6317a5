/*
 * libFuzzer harness for lib/dsn: report fields and the original message
 * come from the input (fields split at NUL bytes: the remote server's
 * diagnostic, addresses, ORCPT/ENVID xtext are all network data). What
 * the report itself writes (everything before the returned original)
 * must have no bare CR or LF and no line over 998 bytes: no header
 * injection, no broken MIME. Nowhere may a line end in a bare LF, and
 * the report ends with its closing boundary.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/dsn.h"
#include "lib/textbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELDS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t mode = data[0];
	char *copy = malloc(size);
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';
	const char *f[FIELDS];
	size_t used = 0, n = 0;
	while (n < FIELDS) {
		f[n++] = copy + used;
		size_t len = strlen(copy + used);
		used += len + (used + len < size - 1 ? 1 : 0);
		if (used >= size - 1)
			break;
	}
	while (n < FIELDS)
		f[n++] = "";
	const char *original = used < size - 1 ? copy + used : "";
	size_t original_len = size - 1 - used;

	struct dsn_rcpt rcpt = {
	    .address = f[0],
	    .orcpt = f[1][0] != '\0' ? f[1] : NULL,
	    .status = f[2],
	    .remote_mta = f[3][0] != '\0' ? f[3] : NULL,
	    .diagnostic = f[4],
	    .last_attempt = 1700000000,
	    .will_retry_until = (mode & 4) ? 1700400000 : 0,
	};
	struct dsn_report r = {
	    .kind = (enum dsn_kind)(mode % 3),
	    .reporting_mta = "mx.example.test",
	    .from = "MAILER-DAEMON@mx.example.test",
	    .to = f[5],
	    .queue_id = "1G6SKT2VJ000001",
	    .envid = f[6][0] != '\0' ? f[6] : NULL,
	    .received_from_mta = f[7],
	    .arrival = 1700000000,
	    .now = 1700000100,
	    .rcpts = &rcpt,
	    .nrcpt = 1,
	    .headers_only = (mode & 8) != 0,
	    .max_original = (mode & 16) ? 64 : 100000,
	    .message_id_domain = "mx.example.test",
	};
	struct textbuf out = TEXTBUF_INIT;
	struct dsn_writer *w = dsn_begin(&r, &out);
	if (w != NULL) {
		size_t step = (mode >> 5) + 1;
		for (size_t off = 0; off < original_len; off += step)
			dsn_original(w, original + off,
				     original_len - off < step ? original_len - off : step, &out);
		dsn_end(&w, &out);
		/* The original is the third part: what precedes its delimiter
		 * is ours. (Searching for its Content-Type would find the same
		 * text inside a returned header that carries it.) */
		size_t ours = out.len;
		const char *b = strstr(out.data, "boundary=\"");
		const char *b_end = b != NULL ? strchr(b + 10, '"') : NULL;
		if (b_end == NULL)
			abort();
		char delim[96];
		int dlen = snprintf(delim, sizeof(delim), "\r\n--%.*s\r\n", (int)(b_end - b - 10), b + 10);
		const char *at = out.data;
		for (int part = 0; part < 3 && at != NULL; part++)
			if ((at = strstr(at, delim)) != NULL && part < 2)
				at += dlen;
		if (at != NULL)
			ours = (size_t)(at - out.data);
		size_t line = 0;
		for (size_t i = 0; i < out.len; i++) {
			char c = out.data[i];
			if (c == '\n' && (i == 0 || out.data[i - 1] != '\r'))
				abort(); /* a bare LF */
			if (i >= ours)
				continue;
			if (c == '\r') {
				if (i + 1 >= out.len || out.data[i + 1] != '\n')
					abort(); /* a bare CR */
				line = 0;
				i++;
			} else if (++line > 998) {
				abort();
			}
		}
		if (out.len < 4 || memcmp(out.data + out.len - 4, "--\r\n", 4) != 0)
			abort();
	}
	textbuf_free(&out);
	free(copy);
	return 0;
}
