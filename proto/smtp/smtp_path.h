/*
 * RFC 5321 §4.1.2 paths as MAIL FROM/RCPT TO carry them:
 * "<" [source-route ":"] mailbox ">", "<>" for the null reverse path, and
 * "<Postmaster>". A source route is accepted and ignored (§3.6.1 — and
 * the mailbox after it is what relay control judges). Local parts may be
 * dot-strings or quoted strings; domains may be names or address
 * literals; the caller's policy decides what it accepts (flags below).
 * Pure; bounded by SMTP_PATH_MAX.
 */
#ifndef CM_PROTO_SMTP_PATH_H
#define CM_PROTO_SMTP_PATH_H

#include <stdbool.h>
#include <stddef.h>

enum smtp_path_flags {
	SMTP_PATH_QUOTED_LOCAL = 1,   /* local part was a quoted string */
	SMTP_PATH_ADDRESS_LITERAL = 2,/* domain was [1.2.3.4] or [IPv6:...] */
	SMTP_PATH_SOURCE_ROUTE = 4,   /* "@a,@b:" was present (ignored) */
};

/*
 * Parses a path at the start of text (after "FROM:" / "TO:", optional
 * spaces allowed). mailbox_r receives "local@domain" as written (quoted
 * local parts keep their quotes), "" for <>, or "Postmaster". *rest_r
 * points after the closing '>'. Returns 0, or -1 with a static *error_r.
 */
int smtp_path_parse(const char *text, bool allow_null, bool allow_postmaster, char *mailbox_r,
		    size_t mailbox_size, unsigned *flags_r, const char **rest_r, const char **error_r);

#endif
