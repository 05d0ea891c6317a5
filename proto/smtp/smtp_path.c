#include "proto/smtp/smtp_path.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* RFC 5321 atext */
static bool is_atext(char c)
{
	return isalnum((unsigned char)c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static const char *parse_dot_string(const char *p)
{
	if (!is_atext(*p))
		return NULL;
	for (;;) {
		while (is_atext(*p))
			p++;
		if (*p != '.')
			return p;
		p++;
		if (!is_atext(*p))
			return NULL;
	}
}

static const char *parse_quoted_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	for (;;) {
		unsigned char c = (unsigned char)*p;
		if (c == '"')
			return p + 1;
		if (c == '\\') {
			if (p[1] < 32 || p[1] > 126)
				return NULL;
			p += 2;
		} else if (c >= 32 && c <= 126) {
			p++;
		} else {
			return NULL;
		}
	}
}

static const char *parse_domain(const char *p)
{
	const char *start = p;
	for (;;) {
		const char *label = p;
		if (!isalnum((unsigned char)*p))
			return NULL;
		while (isalnum((unsigned char)*p) || *p == '-')
			p++;
		if (p[-1] == '-' || p - label > 63)
			return NULL;
		if (*p != '.')
			break;
		p++;
	}
	return p - start > 253 ? NULL : p;
}

static const char *parse_address_literal(const char *p)
{
	if (*p++ != '[')
		return NULL;
	const char *end = strchr(p, ']');
	if (end == NULL || end == p || end - p > 64)
		return NULL;
	for (const char *q = p; q < end; q++)
		if (!(isxdigit((unsigned char)*q) || *q == '.' || *q == ':' || isalpha((unsigned char)*q)))
			return NULL;
	return end + 1;
}

/* "@domain,@domain:" */
static const char *parse_source_route(const char *p)
{
	for (;;) {
		if (*p++ != '@')
			return NULL;
		p = parse_domain(p);
		if (p == NULL)
			return NULL;
		if (*p == ':')
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

int smtp_path_parse(const char *text, bool allow_null, bool allow_postmaster, char *mailbox_r,
		    size_t mailbox_size, unsigned *flags_r, const char **rest_r, const char **error_r)
{
	const char *p = text, *local, *at, *end;
	unsigned flags = 0;

	while (*p == ' ')
		p++;
	if (*p++ != '<') {
		*error_r = "path must be enclosed in <>";
		return -1;
	}
	if (*p == '>') {
		if (!allow_null) {
			*error_r = "null path not allowed here";
			return -1;
		}
		mailbox_r[0] = '\0';
		*flags_r = 0;
		*rest_r = p + 1;
		return 0;
	}
	if (allow_postmaster && strncasecmp(p, "postmaster>", 11) == 0) {
		if (mailbox_size < 11) {
			*error_r = "path too long";
			return -1;
		}
		memcpy(mailbox_r, p, 10);
		mailbox_r[10] = '\0';
		*flags_r = 0;
		*rest_r = p + 11;
		return 0;
	}
	if (*p == '@') {
		p = parse_source_route(p);
		if (p == NULL) {
			*error_r = "malformed source route";
			return -1;
		}
		flags |= SMTP_PATH_SOURCE_ROUTE;
	}
	local = p;
	if (*p == '"') {
		p = parse_quoted_string(p);
		flags |= SMTP_PATH_QUOTED_LOCAL;
	} else {
		p = parse_dot_string(p);
	}
	if (p == NULL || *p != '@') {
		*error_r = "malformed local part";
		return -1;
	}
	at = p++;
	if (*p == '[') {
		end = parse_address_literal(p);
		flags |= SMTP_PATH_ADDRESS_LITERAL;
	} else {
		end = parse_domain(p);
	}
	if (end == NULL || *end != '>') {
		*error_r = "malformed domain";
		return -1;
	}
	if (at - local > 64) {
		*error_r = "local part longer than 64 octets";
		return -1;
	}
	/* RFC 5321 4.1.2: a quoted local part that could be a dot-string is
	 * the same mailbox; it is given unquoted ("alice"@x is alice@x). */
	char plain[65];
	size_t plain_len = 0;
	if (flags & SMTP_PATH_QUOTED_LOCAL) {
		for (const char *q = local + 1; q < at - 1; q++) {
			if (*q == '\\')
				q++;
			plain[plain_len++] = *q;
		}
		plain[plain_len] = '\0';
		const char *e = plain_len > 0 ? parse_dot_string(plain) : NULL;
		if (e != NULL && *e == '\0') {
			flags &= ~SMTP_PATH_QUOTED_LOCAL;
			local = plain;
		} else {
			plain_len = 0;
		}
	}
	size_t local_len = plain_len > 0 ? plain_len : (size_t)(at - local);
	size_t len = local_len + (size_t)(end - at);
	if (len + 1 > mailbox_size) {
		*error_r = "path too long";
		return -1;
	}
	memcpy(mailbox_r, local, local_len);
	memcpy(mailbox_r + local_len, at, (size_t)(end - at));
	mailbox_r[len] = '\0';
	*flags_r = flags;
	*rest_r = end + 1;
	return 0;
}
