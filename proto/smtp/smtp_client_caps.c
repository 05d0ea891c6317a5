/*
 * EHLO keywords (RFC 5321 4.1.1.1): each line after the first of a 250
 * EHLO reply is "keyword [params]", case-insensitive. Unknown keywords
 * are ignored. SIZE (RFC 1870) may carry the server's limit; "SIZE",
 * "SIZE 0" and an unparsable or overflowing number mean no limit we can
 * act on.
 */
#include <string.h>
#include <strings.h>

#include "proto/smtp/smtp_client_private.h"

static const struct {
	const char *keyword;
	unsigned ext;
} keywords[] = {
    {"PIPELINING", SMTP_EXT_PIPELINING},
    {"SIZE", SMTP_EXT_SIZE},
    {"8BITMIME", SMTP_EXT_8BITMIME},
    {"STARTTLS", SMTP_EXT_STARTTLS},
    {"DSN", SMTP_EXT_DSN},
    {"ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES},
    {"SMTPUTF8", SMTP_EXT_SMTPUTF8},
    {"CHUNKING", SMTP_EXT_CHUNKING},
};

static uint64_t size_param(const char *p)
{
	uint64_t v = 0;
	while (*p == ' ')
		p++;
	if (*p < '0' || *p > '9')
		return 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	return *p == '\0' || *p == ' ' ? v : 0;
}

void smtp_client_caps_line(const char *text, unsigned *ext, uint64_t *size_limit)
{
	size_t len = 0;
	while (text[len] != '\0' && text[len] != ' ')
		len++;
	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
		if (strlen(keywords[i].keyword) == len &&
		    strncasecmp(text, keywords[i].keyword, len) == 0) {
			*ext |= keywords[i].ext;
			if (keywords[i].ext == SMTP_EXT_SIZE)
				*size_limit = size_param(text + len);
			return;
		}
	}
}
