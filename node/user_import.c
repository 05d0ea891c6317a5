/*
 * Bulk user import (see user_import.h). Each batch: parse up to
 * IMPORT_BATCH records, hash the plaintext ones with a pool of threads
 * pulling indexes from an atomic counter, then submit the batch. The
 * plaintext is wiped from memory as soon as its hash exists — except for
 * users of a domain with shared-secret-auth on, whose plaintext is sent
 * along as their recoverable secret ("import-records --with-secrets")
 * and wiped with the batch.
 */
#include "node/user_import.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/csv.h"
#include "node/auth_commands.h"
#include "node/control.h"

#define IMPORT_LINE_MAX 4096

struct import_record {
	unsigned line;
	char address[320];
	char quota[32];
	char secret[PASSWORD_HASH_MAX]; /* plaintext, then its hash */
	char plain[PASSWORD_HASH_MAX];  /* kept only for shared-secret domains */
	bool keep_plain;
	bool needs_hash;
	bool failed;
};

/* A batch is one control request: its four fields per record (each with
 * its 4-byte length prefix; the arrays bound their NUL-terminated text),
 * the protocol name and three header items must fit (control.h). */
_Static_assert(IMPORT_BATCH * (4 * 4 + sizeof(((struct import_record *)0)->address) +
			       sizeof(((struct import_record *)0)->secret) +
			       sizeof(((struct import_record *)0)->quota) +
			       sizeof(((struct import_record *)0)->plain)) +
			       256 <= CONTROL_MAX_REQUEST &&
		       IMPORT_BATCH * 4 + 4 <= CONTROL_MAX_ARGS,
	       "an import batch must fit one control request");

struct import_state {
	struct import_record *recs;
	size_t n;
	atomic_size_t next;
	enum password_scheme scheme;
	unsigned long cost;
	unsigned long read, imported, skipped, total_lines;
	double started;
	bool tty;
	bool progress_shown;
	/* Which domains store secrets (asked once per domain). */
	struct {
		char name[320];
		int stores;
	} domains[64];
	unsigned ndomains;
};

/* 1 when the domain of address stores secrets; asks the daemon (or the
 * offline store) once per domain. */
static int stores_secrets(struct import_state *st, const char *address, import_submit_fn *submit,
			  void *ctx)
{
	const char *at = strrchr(address, '@');
	const char *domain = at != NULL ? at + 1 : address;
	for (unsigned i = 0; i < st->ndomains; i++)
		if (strcasecmp(st->domains[i].name, domain) == 0)
			return st->domains[i].stores;
	int stores = auth_client_stores_secrets(submit, ctx, address) == 1;
	if (st->ndomains < sizeof(st->domains) / sizeof(st->domains[0]) &&
	    strlen(domain) < sizeof(st->domains[0].name)) {
		snprintf(st->domains[st->ndomains].name, sizeof(st->domains[0].name), "%s", domain);
		st->domains[st->ndomains++].stores = stores;
	}
	return stores;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *hash_worker(void *arg)
{
	struct import_state *st = arg;
	size_t i;

	while ((i = atomic_fetch_add(&st->next, 1)) < st->n) {
		struct import_record *r = &st->recs[i];
		char hash[PASSWORD_HASH_MAX];
		const char *error = NULL;
		if (!r->needs_hash)
			continue;
		if (password_hash(r->secret, st->scheme, st->cost, hash, sizeof(hash), &error) < 0) {
			fprintf(stderr, "line %u: %s: cannot hash password: %s\n", r->line, r->address,
				error ? error : "?");
			r->failed = true;
		} else {
			memcpy(r->secret, hash, sizeof(hash));
		}
		explicit_bzero(hash, sizeof(hash));
	}
	return NULL;
}

static void hash_batch(struct import_state *st, unsigned threads)
{
	pthread_t tids[64];
	unsigned started = 0;

	atomic_store(&st->next, 0);
	if (threads > 64)
		threads = 64;
	for (unsigned t = 1; t < threads; t++)
		if (pthread_create(&tids[started], NULL, hash_worker, st) == 0)
			started++;
	hash_worker(st);
	for (unsigned t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
}

/* Parses one line into rec; returns 1 for a record, 0 to skip silently
 * (blank, comment), 2 for the header, -1 bad. first: no other line but
 * blanks and comments came before (the header may only be that one). */
static int parse_line(char *line, unsigned lineno, bool first, struct import_record *rec)
{
	char *f[4];
	int n;

	line[strcspn(line, "\r\n")] = '\0';
	char *p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	n = csv_split(p, f, 4);
	if (n == 2 || n == 3) {
		if (first && strcmp(f[0], "address") == 0)
			return 2;
		if (strlen(f[0]) >= sizeof(rec->address) || strlen(f[1]) >= sizeof(rec->secret) ||
		    (n == 3 && strlen(f[2]) >= sizeof(rec->quota)) || f[1][0] == '\0') {
			fprintf(stderr, "line %u: field too long or empty password\n", lineno);
			return -1;
		}
		memset(rec, 0, sizeof(*rec));
		rec->line = lineno;
		snprintf(rec->address, sizeof(rec->address), "%s", f[0]);
		snprintf(rec->secret, sizeof(rec->secret), "%s", f[1]);
		snprintf(rec->quota, sizeof(rec->quota), "%s", n == 3 && f[2][0] ? f[2] : "0");
		rec->needs_hash = !password_is_hash(rec->secret);
		if (rec->needs_hash && password_has_hash_prefix(rec->secret)) {
			fprintf(stderr, "line %u: %s: the password looks like a crypt(3) hash but "
				"is not a usable one (cut off?); skipped\n", lineno, rec->address);
			explicit_bzero(p, strlen(p));
			return -1;
		}
		explicit_bzero(p, strlen(p));
		return 1;
	}
	fprintf(stderr, "line %u: expected address,password[,quota]%s\n", lineno,
		n == CSV_E_QUOTE ? " (unbalanced quotes)" : "");
	explicit_bzero(line, strlen(line));
	return -1;
}

static void show_progress(struct import_state *st, bool final)
{
	double elapsed = now_seconds() - st->started;
	double rate = elapsed > 0 ? (double)st->read / elapsed : 0;

	if (st->tty) {
		unsigned long total = st->total_lines ? st->total_lines : st->read;
		unsigned pct = total ? (unsigned)(st->read * 100 / total) : 100;
		if (pct > 100)
			pct = 100;
		char bar[31];
		memset(bar, '#', pct * 30 / 100);
		memset(bar + pct * 30 / 100, '.', 30 - pct * 30 / 100);
		bar[30] = '\0';
		fprintf(stderr, "\rimport [%s] %3u%% %lu/%lu  %.0f users/s", bar, pct, st->read, total, rate);
		st->progress_shown = true;
		if (final)
			fputc('\n', stderr);
	}
	if (final)
		printf("import: %lu records, %lu imported, %lu skipped in %.1f s (%.0f users/s)\n",
		       st->read, st->imported, st->skipped, elapsed, rate);
}

static int submit_batch(struct import_state *st, import_submit_fn *submit, void *ctx)
{
	char **argv = calloc(st->n * 4 + 4, sizeof(*argv));
	struct textbuf out = TEXTBUF_INIT, err = TEXTBUF_INIT;
	int argc = 0, rc;
	unsigned long imported = 0, skipped = 0;
	bool with_secrets = false;

	if (argv == NULL)
		return -1;
	for (size_t i = 0; i < st->n; i++)
		with_secrets |= st->recs[i].keep_plain && !st->recs[i].failed;
	argv[argc++] = "user";
	argv[argc++] = "import-records";
	if (with_secrets)
		argv[argc++] = "--with-secrets";
	int header = argc;
	for (size_t i = 0; i < st->n; i++) {
		struct import_record *r = &st->recs[i];
		if (r->failed) {
			st->skipped++;
			continue;
		}
		argv[argc++] = r->address;
		argv[argc++] = r->secret;
		argv[argc++] = r->quota;
		if (with_secrets)
			argv[argc++] = r->keep_plain ? r->plain : "";
	}
	if (argc == header) {
		free(argv);
		return 0;
	}
	rc = submit(argc, argv, &out, &err, ctx);
	free(argv);
	if (err.len > 0) {
		if (st->progress_shown)
			fputc('\n', stderr);
		fputs(textbuf_str(&err), stderr);
	}
	if (rc != 0 || sscanf(textbuf_str(&out), "imported %lu skipped %lu", &imported, &skipped) != 2) {
		textbuf_free(&out);
		textbuf_free(&err);
		return -1;
	}
	st->imported += imported;
	st->skipped += skipped;
	textbuf_free(&out);
	textbuf_free(&err);
	return 0;
}

static unsigned long count_lines(FILE *f)
{
	char buf[65536];
	unsigned long lines = 0;
	size_t n;

	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		for (size_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	rewind(f);
	return lines;
}

int user_import_run(const char *path, enum password_scheme scheme, unsigned long cost,
		    unsigned threads, import_submit_fn *submit, void *ctx)
{
	struct import_state st = { .scheme = scheme, .cost = cost, .started = now_seconds(),
				   .tty = isatty(STDERR_FILENO) == 1 };
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char line[IMPORT_LINE_MAX];
	unsigned lineno = 0;
	bool first_line = true;
	int exit_code = 0;
	struct stat sb;

	if (f == NULL) {
		fprintf(stderr, "import: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (st.tty && fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode))
		st.total_lines = count_lines(f);
	st.recs = calloc(IMPORT_BATCH, sizeof(*st.recs));
	if (st.recs == NULL) {
		if (f != stdin)
			fclose(f);
		return 1;
	}
	for (bool eof = false; !eof;) {
		st.n = 0;
		while (st.n < IMPORT_BATCH) {
			if (fgets(line, sizeof(line), f) == NULL) {
				eof = true;
				break;
			}
			lineno++;
			if (strchr(line, '\n') == NULL && !feof(f)) {
				fprintf(stderr, "line %u: longer than %d bytes\n", lineno, IMPORT_LINE_MAX);
				int c;
				while ((c = fgetc(f)) != EOF && c != '\n')
					;
				st.skipped++;
				st.read++;
				continue;
			}
			int r = parse_line(line, lineno, first_line, &st.recs[st.n]);
			if (r != 0)
				first_line = false;
			if (r == 0 || r == 2)
				continue;
			st.read++;
			if (r < 0) {
				st.skipped++;
				continue;
			}
			struct import_record *rec = &st.recs[st.n++];
			if (rec->needs_hash && stores_secrets(&st, rec->address, submit, ctx)) {
				memcpy(rec->plain, rec->secret, sizeof(rec->plain));
				rec->keep_plain = true;
			}
		}
		hash_batch(&st, threads);
		if (submit_batch(&st, submit, ctx) < 0) {
			fprintf(stderr, "import: stopped at line %u: the batch was not committed\n", lineno);
			exit_code = 1;
			break;
		}
		explicit_bzero(st.recs, sizeof(*st.recs) * IMPORT_BATCH);
		show_progress(&st, false);
	}
	if (ferror(f)) {
		fprintf(stderr, "import: %s: read error\n", path);
		exit_code = 1;
	}
	show_progress(&st, true);
	if (st.skipped > 0)
		exit_code = 1;
	explicit_bzero(line, sizeof(line));
	free(st.recs);
	if (f != stdin)
		fclose(f);
	return exit_code;
}
