/*
 * aliases_file: the /etc/aliases format (aliases(5), as sendmail and
 * Postfix read it), for `mailctl alias import` and `newaliases`.
 *
 *   # comment
 *   postmaster: root
 *   root:       alice, bob@example.org,
 *               "carol"             <- a line starting with whitespace continues
 *   "odd name": \dave                 <- quoted names; \name = that local name
 *   logs:       /var/log/mail.log, |/usr/bin/procmail, :include:/etc/list
 *
 * A push parser: feed bytes as they come, then finish; each complete
 * entry goes to a callback with its line number and its targets
 * classified. File, command and :include: targets are reported as such
 * (the importer refuses them: we deliver only to mailboxes); what cannot
 * be parsed is reported through the error callback with its line number
 * and parsing goes on with the next entry.
 *
 * Limits (input is hostile): ALIASES_LINE_MAX bytes per physical line,
 * ALIASES_ENTRY_MAX bytes per entry with its continuations,
 * ALIASES_TARGETS_MAX targets per entry, ALIASES_ENTRIES_MAX entries per
 * file (beyond it parsing stops with an error). Memory is bounded by
 * these, whatever the input. Pure: no I/O.
 */
#ifndef CM_LIB_ALIASES_FILE_H
#define CM_LIB_ALIASES_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/linebuf.h"
#include "lib/textbuf.h"

#define ALIASES_LINE_MAX 4096
#define ALIASES_ENTRY_MAX 65536
#define ALIASES_TARGETS_MAX 1000
#define ALIASES_ENTRIES_MAX 100000

enum aliases_target_kind {
	ALIASES_TARGET_ADDRESS, /* local@domain */
	ALIASES_TARGET_LOCAL,	/* a name without '@' (a leading backslash removed) */
	ALIASES_TARGET_FILE,	/* /path: append to a file (unsupported) */
	ALIASES_TARGET_COMMAND, /* |command: pipe to a program (unsupported) */
	ALIASES_TARGET_INCLUDE, /* :include:/path (unsupported) */
};

struct aliases_target {
	enum aliases_target_kind kind;
	const char *value; /* quotes and angle brackets removed; the '|', '/' or
			    * ":include:" prefix kept, so it can be shown as written */
};

struct aliases_entry {
	unsigned line;	  /* of the entry's first line */
	const char *name; /* unquoted, never empty */
	const struct aliases_target *targets;
	size_t ntargets; /* >= 1 */
};

/* Return <0 to stop parsing (feed/finish then return that value). The
 * entry's strings are valid only during the call. */
typedef int aliases_entry_cb(const struct aliases_entry *entry, void *ctx);
typedef void aliases_error_cb(unsigned line, const char *message, void *ctx);

struct aliases_parser {
	struct linebuf lines;
	struct textbuf entry; /* the entry being assembled, continuations joined */
	unsigned line;	      /* physical lines read */
	unsigned entry_line;  /* line of the entry in entry, 0 = none */
	bool entry_bad;	      /* the entry already failed (too long): drop it */
	char line_first;      /* first byte of the physical line being read */
	size_t nentries;
	bool stopped;
	struct aliases_target *targets; /* ALIASES_TARGETS_MAX */
	aliases_entry_cb *entry_cb;
	aliases_error_cb *error_cb;
	void *ctx;
};

/* 0, or -1 out of memory. */
int aliases_parser_init(struct aliases_parser *p, aliases_entry_cb *entry_cb,
			aliases_error_cb *error_cb, void *ctx);
void aliases_parser_free(struct aliases_parser *p);
/* Consumes all of data. Returns 0, a callback's negative value, or -1
 * after the entry limit (reported through error_cb); once it has
 * returned <0 every later call returns -1 without parsing. */
int aliases_parser_feed(struct aliases_parser *p, const void *data, size_t len);
/* End of input: the last line and entry. Same returns as feed. */
int aliases_parser_finish(struct aliases_parser *p);

const char *aliases_target_kind_name(enum aliases_target_kind kind);

#endif
