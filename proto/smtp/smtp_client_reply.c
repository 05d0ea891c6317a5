/*
 * Server replies for the SMTP client (RFC 5321 4.2): a 3-digit code, "-"
 * on every line but the last, the same code on every line. The enhanced
 * status code (RFC 2034/3463) is taken from the start of the text when
 * it has the form class.subject.detail with the reply's class; servers
 * that do not announce ENHANCEDSTATUSCODES often send one anyway, and a
 * code of another class (a "250 5.0.0") is text, not a status. The text
 * keeps no codes: each line's own enhanced code is dropped, lines are
 * joined by one space, cut at SMTP_CLIENT_TEXT_MAX, and every byte that
 * is not printable ASCII becomes '?', so the text is safe to log and to
 * put in a DSN.
 */
#include <string.h>

#include "proto/smtp/smtp_client_private.h"

void smtp_client_reply_reader_reset(struct smtp_client_reply_reader *r)
{
	memset(r, 0, sizeof(*r));
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static size_t digits(const char *p, size_t max)
{
	size_t n = 0;
	while (n < max && is_digit(p[n]))
		n++;
	return n;
}

size_t smtp_client_enhanced_code(const char *text, char cls)
{
	if (text[0] != cls || text[1] != '.')
		return 0;
	size_t i = 2, n = digits(text + i, 4);
	if (n == 0 || n > 3 || text[i + n] != '.')
		return 0;
	i += n + 1;
	n = digits(text + i, 4);
	if (n == 0 || n > 3)
		return 0;
	i += n;
	return text[i] == '\0' || text[i] == ' ' ? i : 0;
}

static void text_append(struct smtp_client_reply_reader *r, const char *s)
{
	char *t = r->reply.text;
	if (r->lines > 1 && r->text_len > 0 && r->text_len + 1 < sizeof(r->reply.text))
		t[r->text_len++] = ' ';
	for (; *s != '\0' && r->text_len + 1 < sizeof(r->reply.text); s++) {
		unsigned char ch = (unsigned char)*s;
		t[r->text_len++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	t[r->text_len] = '\0';
}

enum smtp_client_line_result smtp_client_reply_line(struct smtp_client_reply_reader *r,
						    const char *line, const char **text_r,
						    const char **error_r)
{
	if (!(line[0] >= '2' && line[0] <= '5') || !(line[1] >= '0' && line[1] <= '5') ||
	    !is_digit(line[2]) || (line[3] != '\0' && line[3] != ' ' && line[3] != '-')) {
		*error_r = "malformed reply";
		return SMTP_CLIENT_LINE_ERROR;
	}
	int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->lines > 0 && code != r->reply.code) {
		*error_r = "reply code changed within a multiline reply";
		return SMTP_CLIENT_LINE_ERROR;
	}
	if (++r->lines > SMTP_CLIENT_REPLY_LINES_MAX) {
		*error_r = "too many reply lines";
		return SMTP_CLIENT_LINE_ERROR;
	}
	r->reply.code = code;
	const char *text = line[3] == '\0' ? line + 3 : line + 4;
	*text_r = text;

	size_t n = smtp_client_enhanced_code(text, line[0]);
	if (n > 0) {
		if (r->lines == 1)
			memcpy(r->reply.enhanced, text, n), r->reply.enhanced[n] = '\0';
		text += n;
		while (*text == ' ')
			text++;
	}
	text_append(r, text);
	return line[3] == '-' ? SMTP_CLIENT_LINE_MORE : SMTP_CLIENT_LINE_LAST;
}
