#include "proto/pop3/pop3_stream.h"

void pop3_stream_init(struct pop3_stream *st, bool top, unsigned long lines)
{
	*st = (struct pop3_stream){ .top = top, .lines_left = lines, .in_header = true,
				    .line_start = true };
}

/* A line ended: account for TOP's header/body line budget. */
static void end_of_line(struct pop3_stream *st)
{
	if (st->in_header) {
		if (st->line_len == 0) {
			st->in_header = false;
			if (st->top && st->lines_left == 0)
				st->done = true;
		}
	} else if (st->top && --st->lines_left == 0) {
		st->done = true;
	}
	st->line_len = 0;
	st->line_start = true;
}

static size_t put_content(struct pop3_stream *st, char c, char *out)
{
	size_t n = 0;
	if (st->line_start && c == '.')
		out[n++] = '.';
	out[n++] = c;
	st->line_start = false;
	st->line_len++;
	return n;
}

size_t pop3_stream_encode(struct pop3_stream *st, const char *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len && !st->done; i++) {
		char c = in[i];
		if (st->held_cr) {
			st->held_cr = false;
			if (c == '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
				end_of_line(st);
				continue;
			}
			/* a bare CR is content */
			o += put_content(st, '\r', out + o);
		}
		if (c == '\r') {
			st->held_cr = true;
		} else if (c == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			end_of_line(st);
		} else {
			o += put_content(st, c, out + o);
		}
	}
	return o;
}

size_t pop3_stream_finish(struct pop3_stream *st, char *out)
{
	size_t o = 0;

	if (st->held_cr && !st->done) {
		out[o++] = '\r';
		st->line_start = false;
	}
	st->held_cr = false;
	if (!st->line_start) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	out[o++] = '.';
	out[o++] = '\r';
	out[o++] = '\n';
	return o;
}
