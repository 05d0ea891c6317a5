/*
 * sendmail: the sendmail-compatible command for local scripts, also run
 * as mailq (= sendmail -bp) and newaliases (= sendmail -bi), as Postfix's.
 *
 *   sendmail [-C FILE] [-t] [-i] [-f SENDER] [-F NAME] [-v] [RECIPIENT...] < message
 *   sendmail -bs        SMTP on stdin/stdout (no AUTH, no STARTTLS)
 *   sendmail -bp        the queue (mailq)
 *   sendmail -bi        /etc/aliases (or -oA FILE) into the directory (newaliases)
 *   sendmail -q         ask the running maild to try every deferred message now
 *
 * A message is written into the store's maildrop (storage/queue.h;
 * sendmail_submit.c) with no password and no network: the caller's
 * identity is the Unix user running sendmail; maild picks it up. Run by
 * root, sendmail becomes the service user (config "user") before touching
 * the store, as mailctl does, so the store keeps one owner; another user
 * needs write access to <store>/spool/maildrop (docs/operator-guide.md).
 *
 * Accepted and ignored, as Postfix does: -B, -L, -N, -O, -R, -V, -X, -e,
 * -h, -p (with their argument), -G, -I is -bi, -U, -c, -m, -n, -x, -bm,
 * -q<interval>, and -o options other than -oi and -oA (-oem, -oee, -odi,
 * -om, ...). Unsupported modes (-bd, -bD, -bv, -bt, ...) are usage errors.
 *
 * Exit codes are sysexits(3): 64 usage, 65 bad message (too large), 67 bad
 * address, 70 internal error, 75 temporary failure (store, daemon).
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/textbuf.h"
#include "node/commands.h"
#include "node/control.h"
#include "node/node_config.h"
#include "node/privilege.h"
#include "node/queue_report.h"
#include "node/sendmail.h"
#include "storage/directory.h"
#include "storage/queue.h"
#include "storage/store.h"

#define SENDMAIL_CONTROL_TIMEOUT_MS 120000
#define SENDMAIL_DEFAULT_ALIASES "/etc/aliases"

enum sendmail_mode {
	MODE_SUBMIT,
	MODE_SMTP,    /* -bs */
	MODE_LIST,    /* -bp, mailq */
	MODE_ALIASES, /* -bi, -I, newaliases */
	MODE_FLUSH,   /* -q */
};

struct sendmail_opts {
	enum sendmail_mode mode;
	const char *config;
	const char *alias_file;
	const char *domain; /* newaliases --domain */
	struct sendmail_submitter who;
	char **rcpts;
	int nrcpts;
};

static int usage(const char *problem)
{
	if (problem != NULL)
		fprintf(stderr, "sendmail: %s\n", problem);
	fputs("usage: sendmail [-C FILE] [-t] [-i] [-f SENDER] [-F NAME] [-v] [RECIPIENT...] < message\n"
	      "       sendmail -bs | -bp | -bi [-oA FILE] [--domain DOMAIN] | -q\n"
	      "       mailq | newaliases [-oA FILE] [--domain DOMAIN]\n",
	      stderr);
	return SENDMAIL_EX_USAGE;
}

static bool takes_argument(char c)
{
	return strchr("BCFLNORVXbefhopr", c) != NULL;
}

/* An option's argument: the rest of its word, else the next word (then
 * *i moves past it), else NULL. */
static const char *option_argument(const char *rest, int argc, char **argv, int *i)
{
	if (rest[0] != '\0')
		return rest;
	return *i + 1 < argc ? argv[++*i] : NULL;
}

/* 0, or an exit code. */
static int parse_options(int argc, char **argv, struct sendmail_opts *o)
{
	o->who.dot_ends = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			while (++i < argc)
				argv[o->nrcpts++] = argv[i];
			break;
		}
		if (a[0] != '-' || a[1] == '\0') {
			argv[o->nrcpts++] = argv[i]; /* recipients, compacted in place */
			continue;
		}
		if (strcmp(a, "--config") == 0 || strcmp(a, "--domain") == 0) {
			if (i + 1 >= argc)
				return usage("option requires an argument");
			*(a[2] == 'c' ? &o->config : &o->domain) = argv[++i];
			continue;
		}
		if (strcmp(a, "--help") == 0)
			return usage(NULL), -1;
		if (strcmp(a, "--version") == 0) {
			printf("sendmail (clustermail) %s\n", CM_VERSION);
			return -1;
		}
		for (const char *p = a + 1; *p != '\0'; p++) {
			char c = *p;
			const char *val = NULL;
			if (c == 'q') {
				/* -q alone flushes; -q<interval>, -qR..., -qI... are accepted */
				if (p[1] == '\0' && p == a + 1)
					o->mode = MODE_FLUSH;
				break;
			}
			if (takes_argument(c)) {
				val = option_argument(p + 1, argc, argv, &i);
				if (val == NULL)
					return usage("option requires an argument");
			}
			switch (c) {
			case 'b':
				if (strcmp(val, "s") == 0)
					o->mode = MODE_SMTP;
				else if (strcmp(val, "p") == 0)
					o->mode = MODE_LIST;
				else if (strcmp(val, "i") == 0)
					o->mode = MODE_ALIASES;
				else if (strcmp(val, "m") != 0)
					return usage("unsupported mode: only -bm, -bs, -bp and -bi");
				break;
			case 'C':
				o->config = val;
				break;
			case 'F':
				o->who.full_name = val;
				break;
			case 'f':
			case 'r':
				o->who.sender = val;
				break;
			case 'o':
				if (val[0] == 'i' && val[1] == '\0')
					o->who.dot_ends = false;
				else if (val[0] == 'A')
					o->alias_file = option_argument(val + 1, argc, argv, &i);
				if (val[0] == 'A' && o->alias_file == NULL)
					return usage("-oA needs a file");
				break;
			case 'I':
				o->mode = MODE_ALIASES;
				break;
			case 'i':
				o->who.dot_ends = false;
				break;
			case 't':
				o->who.extract = true;
				break;
			case 'v':
				o->who.verbose = true;
				break;
			case 'G': case 'U': case 'c': case 'm': case 'n': case 'x':
			case 'B': case 'L': case 'N': case 'O': case 'R': case 'V': case 'X':
			case 'e': case 'h': case 'p':
				break;
			default:
				fprintf(stderr, "sendmail: unknown option -%c\n", c);
				return usage(NULL);
			}
			if (val != NULL)
				break;
		}
	}
	o->rcpts = argv;
	return 0;
}

/* Who runs us, before any privilege change. */
static int identify(struct sendmail_submitter *who)
{
	who->uid = getuid();
	struct passwd *pw = getpwuid(who->uid);
	if (pw == NULL || pw->pw_name == NULL || pw->pw_name[0] == '\0') {
		fprintf(stderr, "sendmail: unable to find your login name (uid %lu)\n",
			(unsigned long)who->uid);
		return SENDMAIL_EX_NOUSER;
	}
	snprintf(who->login, sizeof(who->login), "%s", pw->pw_name);
	if (pw->pw_gecos != NULL)
		snprintf(who->gecos, sizeof(who->gecos), "%.*s", (int)strcspn(pw->pw_gecos, ","),
			 pw->pw_gecos);
	return 0;
}

/* Root becomes the service user; anyone else stays who they are. A
 * store that no maild has used yet is created, as mailctl does. */
static int become_service_user(const struct node_config *cfg)
{
	struct service_identity id;
	const char *error = NULL;
	if (privilege_lookup(cfg->user, &id, &error) < 0 ||
	    privilege_mkdir(&id, cfg->store_dir, 0750, &error) < 0 || privilege_drop(&id, &error) < 0) {
		fprintf(stderr, "sendmail: %s\n", error);
		return SENDMAIL_EX_TEMPFAIL;
	}
	return 0;
}

/* As the service user. 0, or an exit code. */
static int open_store(const struct node_config *cfg, struct store **store_r)
{
	/* sendmail writes no mailbox files: one temporary-area name for all */
	struct store_options opts;
	node_config_store_options(cfg, "sendmail", &opts);
	const char *error = NULL;
	int rc = become_service_user(cfg);
	if (rc != 0)
		return rc;
	rc = store_open(cfg->store_dir, &opts, store_r, &error);
	if (rc < 0) {
		fprintf(stderr, "sendmail: cannot open the mail store %s: %s\n", cfg->store_dir,
			error ? error : store_strerror(rc));
		return SENDMAIL_EX_TEMPFAIL;
	}
	return 0;
}

static int print_and_free(int rc, struct textbuf *out, struct textbuf *err)
{
	fputs(textbuf_str(out), stdout);
	fputs(textbuf_str(err), stderr);
	textbuf_free(out);
	textbuf_free(err);
	return rc;
}

static int run_list(const struct node_config *cfg)
{
	struct store *store = NULL;
	struct textbuf out = TEXTBUF_INIT, err = TEXTBUF_INIT;
	int rc = open_store(cfg, &store);
	if (rc != 0)
		return rc;
	rc = queue_report_list(store, false, &out, &err) == 0 ? 0 : SENDMAIL_EX_TEMPFAIL;
	store_close(&store);
	return print_and_free(rc, &out, &err);
}

static int run_flush(const struct node_config *cfg)
{
	struct textbuf out = TEXTBUF_INIT, err = TEXTBUF_INIT;
	char *argv[] = { "queue", "flush", NULL };

	if (control_daemon_running(cfg->run_dir) != 1) {
		fprintf(stderr, "sendmail: -q: no maild is running (no control socket in %s)\n",
			cfg->run_dir);
		return SENDMAIL_EX_TEMPFAIL;
	}
	int rc = control_call(cfg->run_dir, 2, argv, SENDMAIL_CONTROL_TIMEOUT_MS, &out, &err);
	return print_and_free(rc == 0 ? 0 : rc < 0 ? SENDMAIL_EX_TEMPFAIL : SENDMAIL_EX_SOFTWARE,
			      &out, &err);
}

/* newaliases: "alias import" through maild, or offline with the
 * directory opened here (as mailctl does). */
static int run_aliases(const struct node_config *cfg, const struct sendmail_opts *o)
{
	char path[PATH_MAX];
	const char *file = o->alias_file != NULL ? o->alias_file : SENDMAIL_DEFAULT_ALIASES;
	struct textbuf out = TEXTBUF_INIT, err = TEXTBUF_INIT;
	char *argv[6];
	int argc = 0, rc;

	if (realpath(file, path) == NULL) {
		fprintf(stderr, "newaliases: %s: %s\n", file, strerror(errno));
		return SENDMAIL_EX_DATAERR;
	}
	argv[argc++] = "alias";
	argv[argc++] = "import";
	argv[argc++] = path;
	if (o->domain != NULL) {
		argv[argc++] = "--domain";
		argv[argc++] = (char *)o->domain;
	}
	argv[argc] = NULL;
	if (control_daemon_running(cfg->run_dir) == 1) {
		rc = control_call(cfg->run_dir, argc, argv, SENDMAIL_CONTROL_TIMEOUT_MS, &out, &err);
		return print_and_free(rc == 0 ? 0 : rc < 0 ? SENDMAIL_EX_TEMPFAIL : SENDMAIL_EX_DATAERR,
				      &out, &err);
	}
	if ((rc = become_service_user(cfg)) != 0)
		return rc;
	struct directory *dir = NULL;
	const char *error = NULL;
	char dpath[1100];
	snprintf(dpath, sizeof(dpath), "%s/directory", cfg->store_dir);
	rc = directory_open(dpath, DIRECTORY_WRITER, NULL, &dir, &error);
	if (rc < 0) {
		fprintf(stderr, "newaliases: cannot open %s: %s\n", dpath,
			rc == DIRECTORY_E_LOCKED ? "held by a maild whose control socket is elsewhere (-C)"
			: error ? error : directory_strerror(rc));
		return SENDMAIL_EX_TEMPFAIL;
	}
	struct command_env env = { .cfg = cfg, .dir = dir };
	rc = cmd_alias_import(&env, argc, argv, &out, &err);
	directory_close(&dir);
	return print_and_free(rc == 0 ? 0 : rc == 2 ? SENDMAIL_EX_USAGE : SENDMAIL_EX_DATAERR, &out, &err);
}

static int open_maildrop(const struct node_config *cfg, struct store **store_r, struct queue **q_r)
{
	const char *error = NULL;
	int rc = open_store(cfg, store_r);
	if (rc != 0)
		return rc;
	rc = queue_open(*store_r, "maildrop", q_r, &error);
	if (rc < 0) {
		fprintf(stderr, "sendmail: cannot open the maildrop: %s\n", error ? error : store_strerror(rc));
		store_close(store_r);
		return SENDMAIL_EX_TEMPFAIL;
	}
	return 0;
}

static int run_submit(const struct node_config *cfg, struct sendmail_opts *o)
{
	struct sendmail_submit s = { .cfg = cfg };
	struct textbuf err = TEXTBUF_INIT;
	char sender[QUEUE_ADDRESS_MAX];
	struct store *store = NULL;
	struct queue *maildrop = NULL;
	char buf[65536];
	int rc;

	if (o->nrcpts == 0 && !o->who.extract)
		return usage("no recipients (give them as arguments, or -t)");
	if ((rc = sendmail_sender(cfg, &o->who, sender, &err)) != 0)
		goto out;
	for (int i = 0; i < o->nrcpts && rc == 0; i++)
		rc = sendmail_add_rcpts(&s, o->rcpts[i], &err);
	if (rc != 0)
		goto out;
	if ((rc = open_maildrop(cfg, &store, &maildrop)) != 0)
		goto out;
	if ((rc = sendmail_submit_begin(&s, cfg, maildrop, &o->who, sender, true, &err)) != 0)
		goto out;
	bool done = false;
	while (!done) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			textbuf_printf(&err, "sendmail: reading the message: %s\n", strerror(errno));
			rc = SENDMAIL_EX_TEMPFAIL;
			goto out;
		}
		if (n == 0)
			break;
		if ((rc = sendmail_submit_feed(&s, buf, (size_t)n, &done, &err)) != 0)
			goto out;
	}
	if ((rc = sendmail_submit_commit(&s, &err)) == 0 && o->who.verbose)
		fprintf(stderr, "sendmail: queued as %s for %zu recipient%s\n", s.env.id, s.env.nrcpt,
			s.env.nrcpt == 1 ? "" : "s");
out:
	sendmail_submit_abort(&s);
	if (maildrop != NULL)
		queue_close(&maildrop);
	if (store != NULL)
		store_close(&store);
	fputs(textbuf_str(&err), stderr);
	textbuf_free(&err);
	return rc;
}

static int run_smtp(const struct node_config *cfg, struct sendmail_opts *o)
{
	struct store *store = NULL;
	struct queue *maildrop = NULL;
	int rc = open_maildrop(cfg, &store, &maildrop);
	if (rc != 0)
		return rc;
	rc = sendmail_bs_run(cfg, maildrop, &o->who, STDIN_FILENO, STDOUT_FILENO);
	queue_close(&maildrop);
	store_close(&store);
	return rc;
}

int main(int argc, char **argv)
{
	struct sendmail_opts o = { 0 };
	struct node_config *cfg = NULL;
	struct textbuf errors = TEXTBUF_INIT;
	const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

	umask(027); /* the same file modes on the store as maild */
	int rc = parse_options(argc, argv, &o);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	if (strcmp(name, "mailq") == 0)
		o.mode = MODE_LIST;
	else if (strcmp(name, "newaliases") == 0)
		o.mode = MODE_ALIASES;
	if (o.mode != MODE_SUBMIT && o.nrcpts > 0)
		return usage("recipients are only for sending mail");
	if (o.mode == MODE_SUBMIT || o.mode == MODE_SMTP) {
		if ((rc = identify(&o.who)) != 0)
			return rc;
	}
	if (node_config_load(o.config, &cfg, &errors) < 0) {
		fputs(textbuf_str(&errors), stderr);
		textbuf_free(&errors);
		return SENDMAIL_EX_TEMPFAIL;
	}
	textbuf_free(&errors);
	switch (o.mode) {
	case MODE_SUBMIT:
		rc = run_submit(cfg, &o);
		break;
	case MODE_SMTP:
		rc = run_smtp(cfg, &o);
		break;
	case MODE_LIST:
		rc = run_list(cfg);
		break;
	case MODE_ALIASES:
		rc = run_aliases(cfg, &o);
		break;
	case MODE_FLUSH:
		rc = run_flush(cfg);
		break;
	}
	node_config_free(&cfg);
	return rc;
}
