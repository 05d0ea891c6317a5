#include "proto/smtp/smtp_data.h"

void smtp_data_init(struct smtp_data *d)
{
	*d = (struct smtp_data){ .state = SMTP_DATA_LINE_START };
}

size_t smtp_data_decode(struct smtp_data *d, const char *in, size_t len, char *out, size_t *out_len_r)
{
	size_t i = 0, o = 0;

	while (i < len && !d->done) {
		char c = in[i++];
		switch (d->state) {
		case SMTP_DATA_LINE_START:
			if (c == '.') {
				d->state = SMTP_DATA_DOT;
				break;
			}
			/* fall through */
		case SMTP_DATA_MID:
			if (c == '\r') {
				d->state = SMTP_DATA_CR;
			} else {
				if (c == '\n')
					d->bare_line_end = true;
				out[o++] = c;
				/* after a bare LF no dot can end the message */
				d->state = SMTP_DATA_MID;
			}
			break;
		case SMTP_DATA_CR:
			out[o++] = '\r';
			if (c == '\n') {
				out[o++] = '\n';
				d->state = SMTP_DATA_LINE_START;
			} else {
				d->bare_line_end = true;
				d->state = SMTP_DATA_MID;
				i--; /* the byte after a bare CR is seen again as ordinary data */
			}
			break;
		case SMTP_DATA_DOT:
			if (c == '\r') {
				d->state = SMTP_DATA_DOT_CR;
			} else {
				/* the leading dot was stuffing: drop it, keep c */
				d->state = SMTP_DATA_MID;
				i--;
			}
			break;
		case SMTP_DATA_DOT_CR:
			if (c == '\n') {
				d->done = true;
			} else {
				d->bare_line_end = true;
				out[o++] = '\r';
				d->state = SMTP_DATA_MID;
				i--;
			}
			break;
		}
	}
	*out_len_r = o;
	return i;
}
