/*
 * address: parsing and normalisation of mail addresses and domain names
 * for the account directory and the protocol engines (see lib/address.h).
 *
 * Security stance: the input is whatever a remote client or an operator
 * typed, so everything outside a deliberately narrow grammar is refused:
 *   local part  RFC 5321 dot-atom over atext without '%' and '!' (no
 *               percent hack, no bang paths), no quoted strings, 1..64
 *               octets (empty only for a catch-all "@domain").
 *   domain      LDH labels of 1..63 octets, no leading or trailing hyphen,
 *               at least one label, at most 253 octets in total, no
 *               trailing dot, and a last label that is not all digits (a
 *               bare dotted quad is an address literal in disguise).
 *               Address literals ("[1.2.3.4]") are refused.
 * No source routes ("@a,@b:u@d"), one '@' only, 7-bit only. Surrounding
 * whitespace and one pair of angle brackets are removed; the result is
 * lowercased (address_parse_cased keeps the local part's case). Nothing
 * here allocates or does I/O.
 */
#include "lib/address.h"

#include <stdio.h>
#include <string.h>

static bool address_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static char address_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool address_is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 5322 atext, minus '%' and '!' which only ever served relay hacks. */
static bool address_is_atext(char c)
{
	return address_is_alnum(c) || (c != '\0' && strchr("#$&'*+-/=?^_`{|}~", c) != NULL);
}

/* Trims whitespace around [*start, *end) in place. */
static void address_trim(const char **start, const char **end)
{
	while (*start < *end && address_is_space(**start))
		(*start)++;
	while (*end > *start && address_is_space((*end)[-1]))
		(*end)--;
}

/* Validates the domain in [p, end) and writes it lowercased into out. */
static int domain_check(const char *p, const char *end, char *out, size_t out_size,
			const char **error_r)
{
	size_t len = (size_t)(end - p);

	if (len == 0) {
		*error_r = "empty domain";
		return -1;
	}
	if (*p == '[') {
		*error_r = "address literals are not accepted";
		return -1;
	}
	if (len > ADDRESS_DOMAIN_MAX) {
		*error_r = "domain longer than 253 characters";
		return -1;
	}
	if (len + 1 > out_size) {
		*error_r = "domain does not fit the output buffer";
		return -1;
	}
	size_t label_len = 0;
	bool label_digits = true;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		if (c == '.') {
			if (label_len == 0) {
				*error_r = "empty label in domain";
				return -1;
			}
			if (p[i - 1] == '-') {
				*error_r = "domain label ends with a hyphen";
				return -1;
			}
			label_len = 0;
			label_digits = true;
		} else if (address_is_alnum(c) || c == '-') {
			if (c == '-' && label_len == 0) {
				*error_r = "domain label starts with a hyphen";
				return -1;
			}
			if (++label_len > 63) {
				*error_r = "domain label longer than 63 characters";
				return -1;
			}
			if (c < '0' || c > '9')
				label_digits = false;
		} else {
			*error_r = "invalid character in domain";
			return -1;
		}
		out[i] = address_lower(c);
	}
	if (label_len == 0) {
		*error_r = "domain ends with a dot";
		return -1;
	}
	if (p[len - 1] == '-') {
		*error_r = "domain label ends with a hyphen";
		return -1;
	}
	if (label_digits) {
		*error_r = "numeric top-level label (use a domain name)";
		return -1;
	}
	out[len] = '\0';
	return 0;
}

/* Validates the dot-atom local part in [p, end) into out (lowercased
 * unless keep_case). */
static int local_check(const char *p, const char *end, bool keep_case, char *out,
		       const char **error_r)
{
	size_t len = (size_t)(end - p);

	if (len > ADDRESS_LOCAL_MAX) {
		*error_r = "local part longer than 64 characters";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		if (c == '.') {
			if (i == 0 || i + 1 == len || p[i + 1] == '.') {
				*error_r = "misplaced dot in local part";
				return -1;
			}
		} else if (c == '"' || c == '\\') {
			*error_r = "quoted local parts are not accepted";
			return -1;
		} else if (c == '%' || c == '!') {
			*error_r = "'%' and '!' routing is not accepted";
			return -1;
		} else if (!address_is_atext(c)) {
			*error_r = "invalid character in local part";
			return -1;
		}
		out[i] = keep_case ? c : address_lower(c);
	}
	out[len] = '\0';
	return 0;
}

static int parse(const char *text, bool allow_catchall, bool keep_case, struct address *addr_r,
		 const char **error_r)
{
	const char *dummy;
	if (error_r == NULL)
		error_r = &dummy;
	addr_r->local[0] = '\0';
	addr_r->domain[0] = '\0';
	if (text == NULL) {
		*error_r = "no address";
		return -1;
	}

	const char *start = text, *end = text + strlen(text);
	address_trim(&start, &end);
	if (start < end && (*start == '<' || end[-1] == '>')) {
		if (end - start < 2 || *start != '<' || end[-1] != '>') {
			*error_r = "unbalanced angle brackets";
			return -1;
		}
		start++;
		end--;
	}
	if (start == end) {
		*error_r = "empty address";
		return -1;
	}
	if (*start == '@' && memchr(start, ':', (size_t)(end - start)) != NULL) {
		*error_r = "source routes are not accepted";
		return -1;
	}
	if (*start == '"') {
		*error_r = "quoted local parts are not accepted";
		return -1;
	}
	const char *at = memchr(start, '@', (size_t)(end - start));
	if (at == NULL) {
		*error_r = "missing '@'";
		return -1;
	}
	if (memchr(at + 1, '@', (size_t)(end - at - 1)) != NULL) {
		*error_r = "more than one '@'";
		return -1;
	}
	if (at == start && !allow_catchall) {
		*error_r = "empty local part";
		return -1;
	}
	if (local_check(start, at, keep_case, addr_r->local, error_r) < 0 ||
	    domain_check(at + 1, end, addr_r->domain, sizeof(addr_r->domain), error_r) < 0) {
		addr_r->local[0] = '\0';
		addr_r->domain[0] = '\0';
		return -1;
	}
	return 0;
}

int address_parse(const char *text, bool allow_catchall, struct address *addr_r,
		  const char **error_r)
{
	return parse(text, allow_catchall, false, addr_r, error_r);
}

int address_parse_cased(const char *text, bool allow_catchall, struct address *addr_r,
			const char **error_r)
{
	return parse(text, allow_catchall, true, addr_r, error_r);
}

int domain_normalize(const char *text, char *out, size_t out_size, const char **error_r)
{
	const char *dummy;
	if (error_r == NULL)
		error_r = &dummy;
	if (out_size > 0)
		out[0] = '\0';
	if (text == NULL) {
		*error_r = "no domain";
		return -1;
	}
	const char *start = text, *end = text + strlen(text);
	address_trim(&start, &end);
	if (domain_check(start, end, out, out_size, error_r) < 0) {
		if (out_size > 0)
			out[0] = '\0';
		return -1;
	}
	return 0;
}

int address_format(const struct address *addr, char *out, size_t out_size)
{
	int n = snprintf(out, out_size, "%s@%s", addr->local, addr->domain);
	if (n < 0 || (size_t)n >= out_size)
		return -1;
	return 0;
}
