/*
 * Mail addresses and domain names as the account directory and the
 * protocols accept them: RFC 5321 dot-atom local parts (no quoted local
 * parts, no source routes, no address literals), LDH domain names.
 * Normalised form: lowercase, no surrounding whitespace or angle brackets.
 * Pure: no I/O, no allocation.
 */
#ifndef CM_LIB_ADDRESS_H
#define CM_LIB_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#define ADDRESS_LOCAL_MAX 64
#define ADDRESS_DOMAIN_MAX 253

struct address {
	char local[ADDRESS_LOCAL_MAX + 1];   /* "" for a catch-all "@domain" */
	char domain[ADDRESS_DOMAIN_MAX + 1];
};

/* Parses "local@domain". allow_catchall accepts "@domain" (local = "").
 * Returns 0, or -1 with *error_r set to a static explanation. */
int address_parse(const char *text, bool allow_catchall, struct address *addr_r,
		  const char **error_r);
/* The same checks, with the local part kept as written (the domain is
 * still lowercased): RFC 5321 leaves a local part's case to its domain,
 * so an address to hand on to another domain keeps it. */
int address_parse_cased(const char *text, bool allow_catchall, struct address *addr_r,
			const char **error_r);
/* Validates and lowercases a domain name into out (ADDRESS_DOMAIN_MAX+1). */
int domain_normalize(const char *text, char *out, size_t out_size, const char **error_r);
/* Writes "local@domain" (or "@domain") into out; returns 0, -1 if too small. */
int address_format(const struct address *addr, char *out, size_t out_size);

#endif
