/*
 * `mailctl alias import FILE [--domain DOMAIN]` (and `newaliases`): an
 * /etc/aliases file (lib/aliases_file.h) into the directory's aliases.
 *
 *  - A name without '@' becomes name@DOMAIN; a name with one is taken as
 *    it is. Local target names become target@DOMAIN; addresses stay.
 *  - DOMAIN defaults to the first local domain in `mailctl domain list`
 *    order (alphabetical): /etc/aliases knows no domains, and a one-domain
 *    installation then needs no option.
 *  - An alias that exists gets exactly the file's targets (added ones
 *    added first, then stale ones removed, so it never goes without one).
 *  - File (/path), command (|cmd) and :include: targets are refused with
 *    one warning line each (we deliver only to mailboxes); an entry left
 *    without a deliverable target is skipped. Entries the parser rejects
 *    are warned about with their line and skipped.
 *  - One summary line: "imported N, skipped M".
 *
 * The file is read by the process running the command: maild (as the
 * service user) when it runs, so the path must then be absolute.
 */
#include "node/commands.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/address.h"
#include "lib/aliases_file.h"
#include "storage/directory.h"

#define IMPORT_READ_CHUNK 65536

struct alias_import {
	struct command_env *env;
	const char *file;
	char domain[DIRECTORY_DOMAIN_MAX];
	struct textbuf *out, *err;
	unsigned imported, updated, skipped, unchanged;
	int failed; /* a directory write failed: the exit code is 1 */
};

static void import_warn(struct alias_import *im, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void import_warn(struct alias_import *im, unsigned line, const char *fmt, ...)
{
	va_list ap;
	textbuf_printf(im->err, "%s:%u: ", im->file, line);
	va_start(ap, fmt);
	textbuf_vprintf(im->err, fmt, ap);
	va_end(ap);
	textbuf_putc(im->err, '\n');
}

static void parse_error(unsigned line, const char *message, void *ctx)
{
	struct alias_import *im = ctx;
	import_warn(im, line, "%s; skipped", message);
	im->skipped++;
}

/* name or name@domain into a normalised address in out. 0 or -1 (error_r). */
/* name, qualified with domain when it has none; a target keeps its local
 * part's case (storage/directory_alias.c says why). */
static int qualify(const char *name, const char *domain, bool target, char *out, size_t size,
		   const char **error_r)
{
	char text[DIRECTORY_ADDRESS_MAX + 8];
	struct address a;

	if (strchr(name, '@') != NULL)
		snprintf(text, sizeof(text), "%s", name);
	else if ((size_t)snprintf(text, sizeof(text), "%s@%s", name, domain) >= sizeof(text)) {
		*error_r = "too long";
		return -1;
	}
	if ((target ? address_parse_cased(text, false, &a, error_r)
		    : address_parse(text, false, &a, error_r)) < 0)
		return -1;
	return address_format(&a, out, size) < 0 ? (*error_r = "too long", -1) : 0;
}

struct target_list {
	char (*addr)[DIRECTORY_ADDRESS_MAX];
	size_t n, cap;
};

/* The entry of l that is a (any case), or NULL. Targets differing only in
 * case are one target for the directory, written two ways. */
static const char *target_list_find(const struct target_list *l, const char *a)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->addr[i], a) == 0)
			return l->addr[i];
	return NULL;
}

/* Every stored target, however many (mailctl alias add has no cap): the
 * ones a file entry does not name must all be found to be removed. */
static int collect_target(const char *source, const char *target, void *ctx)
{
	struct target_list *l = ctx;
	(void)source;
	if (l->n == l->cap) {
		size_t cap = l->cap * 2;
		void *grown = realloc(l->addr, cap * DIRECTORY_ADDRESS_MAX);
		if (grown == NULL)
			return DIRECTORY_E_IO; /* not -1: that is NOTFOUND */
		l->addr = grown;
		l->cap = cap;
	}
	snprintf(l->addr[l->n++], DIRECTORY_ADDRESS_MAX, "%s", target);
	return 0;
}

/* Makes source's targets exactly want. */
static int replace_targets(struct alias_import *im, unsigned line, const char *source,
			   const struct target_list *want, bool *existed_r, bool *changed_r)
{
	struct directory *dir = im->env->dir;
	struct target_list have = { calloc(ALIASES_TARGETS_MAX, DIRECTORY_ADDRESS_MAX), 0,
				    ALIASES_TARGETS_MAX };
	const char *error = NULL;
	int rc = 0;

	if (have.addr == NULL)
		return -1;
	*changed_r = false;
	rc = directory_alias_list(dir, NULL, source, collect_target, &have, &error);
	if (rc < 0 && rc != DIRECTORY_E_NOTFOUND) {
		import_warn(im, line, "alias %s: %s", source, error ? error : directory_strerror(rc));
		goto out;
	}
	rc = 0;
	*existed_r = have.n > 0;
	for (size_t i = 0; i < want->n && rc == 0; i++) {
		const char *had = target_list_find(&have, want->addr[i]);
		if (had != NULL && strcmp(had, want->addr[i]) == 0)
			continue;
		/* Written differently now: the new spelling replaces the old. */
		if (had != NULL && (rc = directory_alias_del(dir, source, had, &error)) < 0) {
			import_warn(im, line, "alias %s -> %s: %s", source, had,
				    error ? error : directory_strerror(rc));
			break;
		}
		rc = directory_alias_add(dir, source, want->addr[i], &error);
		if (rc < 0)
			import_warn(im, line, "alias %s -> %s: %s", source, want->addr[i],
				    error ? error : directory_strerror(rc));
		else
			*changed_r = true;
	}
	for (size_t i = 0; i < have.n && rc == 0; i++) {
		if (target_list_find(want, have.addr[i]) != NULL)
			continue;
		rc = directory_alias_del(dir, source, have.addr[i], &error);
		if (rc < 0)
			import_warn(im, line, "alias %s -> %s: %s", source, have.addr[i],
				    error ? error : directory_strerror(rc));
		else
			*changed_r = true;
	}
out:
	free(have.addr);
	return rc;
}

static int import_entry(const struct aliases_entry *e, void *ctx)
{
	struct alias_import *im = ctx;
	char source[DIRECTORY_ADDRESS_MAX];
	struct target_list want = { calloc(ALIASES_TARGETS_MAX, DIRECTORY_ADDRESS_MAX), 0,
				    ALIASES_TARGETS_MAX };
	const char *error = NULL;

	if (want.addr == NULL)
		return -1;
	if (qualify(e->name, im->domain, false, source, sizeof(source), &error) < 0) {
		import_warn(im, e->line, "alias %s: %s; skipped", e->name, error);
		im->skipped++;
		goto out;
	}
	for (size_t i = 0; i < e->ntargets; i++) {
		const struct aliases_target *t = &e->targets[i];
		char addr[DIRECTORY_ADDRESS_MAX];
		if (t->kind != ALIASES_TARGET_ADDRESS && t->kind != ALIASES_TARGET_LOCAL) {
			import_warn(im, e->line, "alias %s: %s target %s is not supported (mail is "
				    "delivered to mailboxes only); target skipped",
				    e->name, aliases_target_kind_name(t->kind), t->value);
			continue;
		}
		if (qualify(t->value, im->domain, true, addr, sizeof(addr), &error) < 0) {
			import_warn(im, e->line, "alias %s: target %s: %s; target skipped", e->name,
				    t->value, error);
			continue;
		}
		if (strcasecmp(addr, source) == 0) {
			import_warn(im, e->line, "alias %s: points to itself; target skipped", e->name);
			continue;
		}
		if (target_list_find(&want, addr) == NULL)
			snprintf(want.addr[want.n++], DIRECTORY_ADDRESS_MAX, "%s", addr);
	}
	if (want.n == 0) {
		import_warn(im, e->line, "alias %s: no target a mailbox can receive; skipped", e->name);
		im->skipped++;
		goto out;
	}
	bool existed = false, changed = false;
	if (replace_targets(im, e->line, source, &want, &existed, &changed) < 0) {
		im->skipped++;
		im->failed = 1;
		goto out;
	}
	if (!changed)
		im->unchanged++;
	else if (existed)
		im->updated++;
	im->imported++;
out:
	free(want.addr);
	return 0;
}

/* The scan is in key order: the first name is the one; stop there. */
static int first_domain(const char *name, void *ctx)
{
	snprintf(ctx, DIRECTORY_DOMAIN_MAX, "%s", name);
	return 1;
}

int cmd_alias_import(struct command_env *env, int argc, char **argv, struct textbuf *out,
		     struct textbuf *err)
{
	struct alias_import im = { .env = env, .out = out, .err = err };
	const char *domain = NULL, *error = NULL;
	int rc;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--domain") == 0 && i + 1 < argc)
			domain = argv[++i];
		else if (argv[i][0] != '-' && im.file == NULL)
			im.file = argv[i];
		else
			im.file = NULL, i = argc;
	}
	if (im.file == NULL) {
		textbuf_puts(err, "usage: mailctl alias import FILE [--domain DOMAIN]\n");
		return 2;
	}
	if (env->publish != NULL && im.file[0] != '/') {
		textbuf_printf(err, "alias import: %s: give an absolute path (maild reads the file)\n",
			       im.file);
		return 2;
	}
	if (domain == NULL) {
		rc = directory_domain_list(env->dir, first_domain, im.domain);
		if (rc < 0)
			return command_fail(err, rc, "alias import", NULL);
		if (im.domain[0] == '\0') {
			textbuf_puts(err, "alias import: no local domain yet (mailctl domain add DOMAIN)\n");
			return 1;
		}
	} else {
		if (domain_normalize(domain, im.domain, sizeof(im.domain), &error) < 0) {
			textbuf_printf(err, "alias import: %s: %s\n", domain, error);
			return 2;
		}
		rc = directory_domain_exists(env->dir, im.domain);
		if (rc <= 0)
			return command_fail(err, rc < 0 ? rc : DIRECTORY_E_NODOMAIN, im.domain,
					    rc < 0 ? NULL : "not a local domain");
	}
	/* The daemon runs this on its control thread: a FIFO or a device
	 * (/dev/zero) would hold it for good, so only a regular file will
	 * do, opened without waiting for a writer. */
	int fd = open(im.file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		textbuf_printf(err, "alias import: %s: not a regular file\n", im.file);
		return 1;
	}
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (f == NULL) {
		textbuf_printf(err, "alias import: %s: %s\n", im.file, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	struct aliases_parser p;
	char *buf = malloc(IMPORT_READ_CHUNK);
	if (buf == NULL || aliases_parser_init(&p, import_entry, parse_error, &im) < 0) {
		free(buf);
		fclose(f);
		textbuf_puts(err, "alias import: out of memory\n");
		return 1;
	}
	size_t n;
	rc = 0;
	while (rc == 0 && (n = fread(buf, 1, IMPORT_READ_CHUNK, f)) > 0)
		rc = aliases_parser_feed(&p, buf, n);
	if (ferror(f)) {
		textbuf_printf(err, "alias import: %s: read error\n", im.file);
		im.failed = 1;
	} else if (rc == 0) {
		rc = aliases_parser_finish(&p);
	}
	if (rc < 0)
		im.failed = 1;
	aliases_parser_free(&p);
	free(buf);
	fclose(f);
	textbuf_printf(out, "alias import %s into %s: imported %u (%u updated, %u unchanged), skipped %u\n",
		       im.file, im.domain, im.imported, im.updated, im.unchanged, im.skipped);
	command_event(env, "op=alias-import domain=%s imported=%u skipped=%u", im.domain,
		      im.imported, im.skipped);
	return im.failed;
}
