/*
 * The "cert" commands (see commands.h): certificates on the shared store,
 * run in maild's control thread or offline in mailctl against --store.
 *
 *   cert list
 *   cert generate NAME --names LIST [--days N] [--key rsa2048|p256] [--force]
 *   cert csr NAME --names LIST [--key rsa2048|p256]
 *   cert import-pem NAME --cert PEM (--key PEM | --stored-key) [--chain PEM] [--force]
 *        (what mailctl sends for "cert import NAME CERT KEY|--stored-key [CHAIN]"
 *        after reading the files on the client side)
 *   cert assign NAME DOMAIN | --default | --service SERVICE
 *   cert unassign DOMAIN | --default | --service SERVICE
 *   cert del NAME
 *   cert reload
 *
 * Changes take effect on a node at its next reload (`cert reload` or
 * SIGHUP); every node of a cluster reads the same files. A change checks
 * its arguments and makes its keys and certificates (written and synced
 * under temporary names) first, and takes the store's certificate lock
 * only for the final step: the renames into place, or the read, change
 * and write of the assignments. maild's reload takes the same lock on its
 * main loop, so nothing slow may run under it. Security stance:
 * a key arrives only in --key PEM (wiped in place once used) or is made
 * here; keys are written 0600; output, events and errors never contain
 * key material.
 */
#include "node/commands.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/address.h"
#include "node/node_config.h"
#include "node/tls_cert.h"
#include "node/tls_store.h"

#define CERT_DEFAULT_DAYS 365

static int usage_error(struct textbuf *err, const char *text)
{
	textbuf_printf(err, "usage: mailctl cert %s\n", text);
	return 2;
}

static int fail(struct textbuf *err, const char *what, const char *why)
{
	textbuf_printf(err, "%s: %s\n", what, why);
	return 1;
}

static void cert_event(struct command_env *env, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void cert_event(struct command_env *env, const char *fmt, ...)
{
	struct textbuf text = TEXTBUF_INIT;
	va_list ap;
	if (env->publish == NULL)
		return;
	va_start(ap, fmt);
	textbuf_vprintf(&text, fmt, ap);
	va_end(ap);
	env->publish("tls", textbuf_str(&text), env->ctx);
	textbuf_free(&text);
}

static const char *store(struct command_env *env)
{
	return env->cfg->store_dir;
}

static void reload_hint(struct command_env *env, struct textbuf *out)
{
	if (env->tls_reload != NULL)
		textbuf_puts(out,
			     "run 'mailctl cert reload' (on every node) to serve the change\n");
}

static void time_text(time_t t, char *out, size_t size)
{
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, size, "?");
}

/* ---- list ---- */

struct list_ctx {
	struct command_env *env;
	struct tls_assignments *a;
	struct textbuf *out, *err;
	time_t now;
	unsigned listed;
	unsigned failures;
};

static void used_by(const struct tls_assignments *a, const char *name, struct textbuf *out)
{
	size_t n = 0;
	for (int kind = TLS_ASSIGN_DEFAULT; kind <= TLS_ASSIGN_SERVICE; kind++) {
		for (size_t i = 0; i < a->n; i++) {
			const struct tls_assignment *it = &a->items[i];
			if ((int)it->kind != kind || strcmp(it->cert, name) != 0)
				continue;
			textbuf_puts(out, n++ > 0 ? ", " : "");
			if (it->kind == TLS_ASSIGN_DEFAULT)
				textbuf_puts(out, "default");
			else
				textbuf_printf(out, "%s %s",
					       it->kind == TLS_ASSIGN_DOMAIN ? "domain" : "service",
					       it->target);
		}
	}
	if (n == 0)
		textbuf_puts(out, "nothing (mailctl cert assign)");
}

static int list_one(const char *name, void *arg)
{
	struct list_ctx *lc = arg;
	struct textbuf pem = TEXTBUF_INIT, chain = TEXTBUF_INIT, names = TEXTBUF_INIT;
	struct tls_cert_info info;
	const char *error = NULL;
	char from[32], until[32];

	textbuf_printf(lc->out, "%s\n", name);
	lc->listed++;
	if (tls_store_read(store(lc->env), TLS_STORE_CERT, name, &pem, &error) <= 0 ||
	    tls_cert_inspect(pem.data, pem.len, lc->now, &info, &error) < 0) {
		textbuf_printf(lc->out, "  ERROR:      %s\n", error != NULL ? error : "unreadable");
		lc->failures++;
		textbuf_free(&pem);
		return 0;
	}
	tls_store_read(store(lc->env), TLS_STORE_CHAIN, name, &chain, &error);
	time_text(info.not_before, from, sizeof(from));
	time_text(info.not_after, until, sizeof(until));
	tls_names_join(&info.names, &names);
	textbuf_printf(lc->out, "  subject:    %s\n", info.subject);
	textbuf_printf(lc->out, "  names:      %s\n", names.len > 0 ? names.data : "(none)");
	textbuf_printf(lc->out, "  issuer:     %s%s\n", info.issuer,
		       info.self_signed ? " (self-signed)" : "");
	textbuf_printf(lc->out, "  not before: %s\n", from);
	textbuf_printf(lc->out, "  not after:  %s\n", until);
	if (info.days_left < 0)
		textbuf_printf(lc->out, "  days left:  %ld  WARNING: EXPIRED\n", info.days_left);
	else if (info.days_left < TLS_EXPIRY_WARN_DAYS)
		textbuf_printf(lc->out, "  days left:  %ld  WARNING: expires in under %d days\n",
			       info.days_left, TLS_EXPIRY_WARN_DAYS);
	else
		textbuf_printf(lc->out, "  days left:  %ld\n", info.days_left);
	textbuf_printf(lc->out, "  key:        %s\n", info.key);
	textbuf_printf(lc->out, "  chain:      %zu intermediate%s\n",
		       tls_pem_count_certs(chain.data, chain.len),
		       tls_pem_count_certs(chain.data, chain.len) == 1 ? "" : "s");
	textbuf_printf(lc->out, "  sha256:     %s\n", info.sha256);
	textbuf_puts(lc->out, "  used by:    ");
	used_by(lc->a, name, lc->out);
	textbuf_putc(lc->out, '\n');
	tls_cert_info_free(&info);
	textbuf_free(&names);
	textbuf_free(&chain);
	textbuf_free(&pem);
	return 0;
}

static int list_pending(const char *name, void *arg)
{
	struct list_ctx *lc = arg;
	lc->listed++;
	textbuf_printf(lc->out,
		       "%s (pending: key and CSR on the store; after signing: "
		       "mailctl cert import %s CERT --stored-key)\n",
		       name, name);
	return 0;
}

static int cert_list(struct command_env *env, struct textbuf *out, struct textbuf *err)
{
	struct tls_assignments a;
	const char *error = NULL;
	if (tls_assignments_load(store(env), &a, err) < 0)
		return 1;
	struct list_ctx lc = { .env = env, .a = &a, .out = out, .err = err, .now = time(NULL) };
	int rc = tls_store_list(store(env), TLS_STORE_CERT, list_one, &lc, &error);
	if (rc == 0)
		rc = tls_store_list(store(env), TLS_STORE_PENDING_KEY, list_pending, &lc, &error);
	/* assignments naming a certificate that is not there */
	for (size_t i = 0; i < a.n; i++) {
		struct textbuf probe = TEXTBUF_INIT;
		const struct tls_assignment *it = &a.items[i];
		if (tls_store_read(store(env), TLS_STORE_CERT, it->cert, &probe, &error) == 0)
			textbuf_printf(out,
				       "WARNING: %s%s is assigned '%s', which does not exist\n",
				       it->kind == TLS_ASSIGN_DEFAULT  ? "the default"
				       : it->kind == TLS_ASSIGN_DOMAIN ? "domain "
								       : "service ",
				       it->target, it->cert);
		textbuf_free(&probe);
	}
	tls_assignments_free(&a);
	if (rc < 0)
		return fail(err, "cert list", error);
	if (lc.listed == 0)
		textbuf_printf(err, "no certificates in %s/tls (mailctl cert generate or import)\n",
			       store(env));
	return lc.failures > 0 ? 1 : 0;
}

/* ---- generate, csr ---- */

struct make_opts {
	const char *names;
	unsigned days;
	enum tls_key_type key;
	bool force;
};

static int parse_make_opts(int argc, char **argv, bool allow_days, struct make_opts *o,
			   struct textbuf *err)
{
	*o = (struct make_opts){ .days = CERT_DEFAULT_DAYS, .key = TLS_KEY_RSA2048 };
	for (int i = 3; i < argc; i++) {
		bool has_value = i + 1 < argc;
		if (strcmp(argv[i], "--names") == 0 && has_value) {
			o->names = argv[++i];
		} else if (strcmp(argv[i], "--days") == 0 && has_value && allow_days) {
			char *end;
			unsigned long d = strtoul(argv[++i], &end, 10);
			if (*end != '\0' || d == 0 || d > 3650) {
				textbuf_puts(err, "--days must be 1..3650\n");
				return -1;
			}
			o->days = (unsigned)d;
		} else if (strcmp(argv[i], "--key") == 0 && has_value) {
			if (tls_key_type_parse(argv[++i], &o->key) < 0) {
				textbuf_puts(err, "--key must be rsa2048 or p256\n");
				return -1;
			}
		} else if (strcmp(argv[i], "--force") == 0 && allow_days) {
			o->force = true;
		} else {
			return -2;
		}
	}
	return o->names != NULL ? 0 : -2;
}

/* The exclusive certificate lock, for a change's final step: the
 * descriptor for tls_store_unlock, or -1 (told in err). */
static int cert_lock(struct command_env *env, struct textbuf *err)
{
	const char *error = NULL;
	int lock = tls_store_lock(store(env), true, &error);
	if (lock < 0)
		fail(err, "cert", error);
	return lock;
}

/* 0 when NAME may be written (no certificate of that name, or force),
 * -1 when not or on an error (told in err). Checked before the slow part,
 * so that a refusal comes at once, and again under the lock, where it
 * counts. */
static int cert_may_write(struct command_env *env, const char *name, bool force,
			  struct textbuf *err)
{
	struct textbuf probe = TEXTBUF_INIT;
	const char *error = NULL;
	int rc = tls_store_read(store(env), TLS_STORE_CERT, name, &probe, &error);
	textbuf_free(&probe);
	if (rc < 0)
		textbuf_printf(err, "%s: %s\n", name, error);
	else if (rc == 1 && !force)
		fail(err, name, "a certificate of this name exists (--force replaces it)");
	return rc < 0 || (rc == 1 && !force) ? -1 : 0;
}

/* A certificate's files, staged before the lock and installed under it. */
struct cert_files {
	struct tls_store_staged key, chain, crt; /* key and chain may hold nothing */
	bool remove_chain;
};

/* Stages crt, the chain (none: the old one is removed at install) and
 * key (NULL: the key is already in place). */
static int cert_files_stage(struct command_env *env, const char *name, const struct textbuf *crt,
			    const struct textbuf *chain, const struct textbuf *key,
			    struct cert_files *f, const char **error_r)
{
	memset(f, 0, sizeof(*f));
	f->remove_chain = chain->len == 0;
	if (key != NULL && tls_store_stage(store(env), TLS_STORE_KEY, name, key->data, key->len,
					   &f->key, error_r) < 0)
		return -1;
	if (chain->len > 0 && tls_store_stage(store(env), TLS_STORE_CHAIN, name, chain->data,
					      chain->len, &f->chain, error_r) < 0)
		return -1;
	return tls_store_stage(store(env), TLS_STORE_CERT, name, crt->data, crt->len, &f->crt,
			       error_r);
}

/* Under the lock: the key first, so a reader never finds a new
 * certificate beside an old key for long; the chain replaced or removed. */
static int cert_files_install(struct command_env *env, const char *name, struct cert_files *f,
			      const char **error_r)
{
	if (tls_store_install(&f->key, error_r) < 0 || tls_store_install(&f->chain, error_r) < 0)
		return -1;
	if (f->remove_chain && tls_store_remove(store(env), TLS_STORE_CHAIN, name, error_r) < 0)
		return -1;
	return tls_store_install(&f->crt, error_r);
}

static void cert_files_discard(struct cert_files *f)
{
	tls_store_discard(&f->key);
	tls_store_discard(&f->chain);
	tls_store_discard(&f->crt);
}

static int cert_generate(struct command_env *env, int argc, char **argv, struct textbuf *out,
			 struct textbuf *err)
{
	static const char usage[] =
	    "generate NAME --names A,B [--days N] [--key rsa2048|p256] [--force]";
	struct make_opts o;
	struct tls_names names;
	const char *error = NULL;
	const char *name = argv[2];

	int prc = parse_make_opts(argc, argv, true, &o, err);
	if (prc == -2)
		return usage_error(err, usage);
	if (prc < 0)
		return 1;
	if (!tls_store_name_valid(name))
		return fail(err, name, "not a certificate name (letters, digits, '.', '_', '-')");
	if (cert_may_write(env, name, o.force, err) < 0)
		return 1;
	if (tls_names_parse(o.names, &names, &error) < 0)
		return fail(err, "--names", error);
	struct textbuf crt = TEXTBUF_INIT, key = TEXTBUF_INIT, chain = TEXTBUF_INIT;
	struct cert_files files = {0};
	time_t now = time(NULL);
	int rc = 1, lock = -1;
	if (tls_cert_generate(&names, o.key, o.days, now, &crt, &key, &error) < 0 ||
	    cert_files_stage(env, name, &crt, &chain, &key, &files, &error) < 0) {
		fail(err, name, error);
		goto out;
	}
	if ((lock = cert_lock(env, err)) < 0 || cert_may_write(env, name, o.force, err) < 0)
		goto out;
	if (cert_files_install(env, name, &files, &error) < 0) {
		fail(err, name, error);
		goto out;
	}
	tls_store_unlock(lock);
	lock = -1;
	char until[32];
	struct textbuf joined = TEXTBUF_INIT;
	time_text(now + (time_t)o.days * 86400, until, sizeof(until));
	tls_names_join(&names, &joined);
	textbuf_printf(out, "certificate %s generated: self-signed, %s, names %s, valid until %s\n",
		       name, o.key == TLS_KEY_P256 ? "EC P-256" : "RSA 2048", joined.data, until);
	textbuf_free(&joined);
	cert_event(env, "op=cert-generate name=%s days=%u", name, o.days);
	reload_hint(env, out);
	rc = 0;
out:
	tls_store_unlock(lock);
	cert_files_discard(&files);
	tls_wipe(&key);
	textbuf_free(&crt);
	tls_names_free(&names);
	return rc;
}

static int cert_csr(struct command_env *env, int argc, char **argv, struct textbuf *out,
		    struct textbuf *err)
{
	struct make_opts o;
	struct tls_names names;
	const char *error = NULL;
	const char *name = argv[2];

	if (parse_make_opts(argc, argv, false, &o, err) < 0)
		return usage_error(err, "csr NAME --names A,B [--key rsa2048|p256]");
	if (!tls_store_name_valid(name))
		return fail(err, name, "not a certificate name (letters, digits, '.', '_', '-')");
	if (tls_names_parse(o.names, &names, &error) < 0)
		return fail(err, "--names", error);
	struct textbuf csr = TEXTBUF_INIT, key = TEXTBUF_INIT;
	struct tls_store_staged staged_key = {0}, staged_csr = {0};
	int rc = 1, lock = -1;
	if (tls_cert_request(&names, o.key, &csr, &key, &error) < 0 ||
	    tls_store_stage(store(env), TLS_STORE_PENDING_KEY, name, key.data, key.len, &staged_key,
			    &error) < 0 ||
	    tls_store_stage(store(env), TLS_STORE_PENDING_CSR, name, csr.data, csr.len, &staged_csr,
			    &error) < 0) {
		fail(err, name, error);
		goto out;
	}
	if ((lock = cert_lock(env, err)) < 0)
		goto out;
	if (tls_store_install(&staged_key, &error) < 0 ||
	    tls_store_install(&staged_csr, &error) < 0) {
		fail(err, name, error);
		goto out;
	}
	tls_store_unlock(lock);
	lock = -1;
	char path[1200];
	tls_store_path(store(env), TLS_STORE_PENDING_CSR, name, path, sizeof(path));
	/* stdout is the CSR alone, so that "> NAME.csr" works */
	textbuf_append(out, csr.data, csr.len);
	textbuf_printf(err,
		       "CSR for %s written to %s; the key stays on the store. When the CA has "
		       "signed it: mailctl cert import %s CERT --stored-key [CHAIN]\n",
		       name, path, name);
	cert_event(env, "op=cert-csr name=%s", name);
	rc = 0;
out:
	tls_store_unlock(lock);
	tls_store_discard(&staged_key);
	tls_store_discard(&staged_csr);
	tls_wipe(&key);
	textbuf_free(&csr);
	tls_names_free(&names);
	return rc;
}

/* ---- import ---- */

static int cert_import(struct command_env *env, int argc, char **argv, struct textbuf *out,
		       struct textbuf *err)
{
	static const char usage[] =
	    "import-pem NAME --cert PEM (--key PEM | --stored-key) [--chain PEM] [--force]";
	const char *name = argv[2], *cert = NULL, *chain = NULL;
	char *key_arg = NULL;
	bool stored_key = false, force = false;
	const char *error = NULL;

	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
			cert = argv[++i];
		else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key_arg = argv[++i];
		else if (strcmp(argv[i], "--chain") == 0 && i + 1 < argc)
			chain = argv[++i];
		else if (strcmp(argv[i], "--stored-key") == 0)
			stored_key = true;
		else if (strcmp(argv[i], "--force") == 0)
			force = true;
		else
			return usage_error(err, usage);
	}
	struct textbuf key = TEXTBUF_INIT;
	if (key_arg != NULL) {
		textbuf_puts(&key, key_arg);
		explicit_bzero(key_arg, strlen(key_arg));
	}
	struct textbuf leaf = TEXTBUF_INIT, chain_out = TEXTBUF_INIT, key_out = TEXTBUF_INIT;
	struct textbuf notes = TEXTBUF_INIT, key_now = TEXTBUF_INIT;
	struct cert_files files = {0};
	int rc = 1, lock = -1;
	if (cert == NULL || (key_arg != NULL) == stored_key) {
		rc = usage_error(err, usage);
		goto out;
	}
	if (!tls_store_name_valid(name)) {
		fail(err, name, "not a certificate name (letters, digits, '.', '_', '-')");
		goto out;
	}
	if (cert_may_write(env, name, force, err) < 0)
		goto out;
	if (stored_key) {
		int got = tls_store_read(store(env), TLS_STORE_PENDING_KEY, name, &key, &error);
		if (got <= 0) {
			fail(err, name,
			     got == 0 ? "no stored key: make one with 'mailctl cert csr' first"
				      : error);
			goto out;
		}
	}
	if (tls_cert_check_import(cert, strlen(cert), key.data != NULL ? key.data : "", key.len,
				  chain, chain != NULL ? strlen(chain) : 0, time(NULL), &leaf,
				  &chain_out, &key_out, &notes, &error) < 0) {
		fail(err, name, error);
		goto out;
	}
	textbuf_append(err, notes.data, notes.len);
	if (cert_files_stage(env, name, &leaf, &chain_out, stored_key ? NULL : &key_out, &files,
			     &error) < 0) {
		fail(err, name, error);
		goto out;
	}
	if ((lock = cert_lock(env, err)) < 0 || cert_may_write(env, name, force, err) < 0)
		goto out;
	/* the stored key checked above is still the one to adopt (a 'cert
	 * csr' of the same name may have replaced it before the lock) */
	if (stored_key) {
		int got = tls_store_read(store(env), TLS_STORE_PENDING_KEY, name, &key_now, &error);
		if (got <= 0 || key_now.len != key.len ||
		    memcmp(key_now.data, key.data, key.len) != 0) {
			fail(err, name,
			     got < 0
				 ? error
				 : "the stored key changed meanwhile (another 'mailctl cert csr')");
			goto out;
		}
	}
	if ((stored_key && tls_store_adopt_pending_key(store(env), name, &error) < 0) ||
	    cert_files_install(env, name, &files, &error) < 0) {
		fail(err, name, error);
		goto out;
	}
	if (stored_key)
		tls_store_remove(store(env), TLS_STORE_PENDING_CSR, name, &error);
	tls_store_unlock(lock);
	lock = -1;
	struct tls_cert_info info;
	if (tls_cert_inspect(leaf.data, leaf.len, time(NULL), &info, &error) == 0) {
		struct textbuf joined = TEXTBUF_INIT;
		tls_names_join(&info.names, &joined);
		textbuf_printf(
		    out, "certificate %s imported: %s, names %s, %ld days left, %zu in chain\n",
		    name, info.subject, joined.len > 0 ? joined.data : "(none)", info.days_left,
		    tls_pem_count_certs(chain_out.data, chain_out.len));
		textbuf_free(&joined);
		tls_cert_info_free(&info);
	}
	cert_event(env, "op=cert-import name=%s", name);
	reload_hint(env, out);
	rc = 0;
out:
	tls_store_unlock(lock);
	cert_files_discard(&files);
	tls_wipe(&key);
	tls_wipe(&key_now);
	tls_wipe(&key_out);
	textbuf_free(&leaf);
	textbuf_free(&chain_out);
	textbuf_free(&notes);
	return rc;
}

/* ---- assignments ---- */

/* Parses DOMAIN | --default | --service SERVICE at argv[i]. */
static int parse_target(int argc, char **argv, int i, enum tls_assign_kind *kind_r, char *target,
			size_t size, struct textbuf *err)
{
	const char *why = NULL;
	if (argc == i + 1 && strcmp(argv[i], "--default") == 0) {
		*kind_r = TLS_ASSIGN_DEFAULT;
		target[0] = '\0';
		return 0;
	}
	if (argc == i + 2 && strcmp(argv[i], "--service") == 0) {
		if (node_config_service_id(argv[i + 1]) < 0) {
			textbuf_printf(err,
				       "'%s' is not a service (smtp, submission, smtps, imap, "
				       "imaps, pop3, pop3s, http)\n",
				       argv[i + 1]);
			return -1;
		}
		*kind_r = TLS_ASSIGN_SERVICE;
		snprintf(target, size, "%s", argv[i + 1]);
		return 0;
	}
	if (argc == i + 1 && argv[i][0] != '-') {
		if (domain_normalize(argv[i], target, size, &why) < 0) {
			textbuf_printf(err, "'%s' is not a domain: %s\n", argv[i], why);
			return -1;
		}
		*kind_r = TLS_ASSIGN_DOMAIN;
		return 0;
	}
	return -2;
}

static const char *target_text(enum tls_assign_kind kind, const char *target, char *buf,
			       size_t size)
{
	if (kind == TLS_ASSIGN_DEFAULT)
		return "the default";
	snprintf(buf, size, "%s %s", kind == TLS_ASSIGN_DOMAIN ? "domain" : "service", target);
	return buf;
}

static int cert_assign_locked(struct command_env *env, const char *name, enum tls_assign_kind kind,
			      const char *target, bool assign, struct textbuf *out,
			      struct textbuf *err)
{
	char what[300];
	const char *error = NULL;
	struct textbuf pem = TEXTBUF_INIT;
	struct tls_cert_info info;
	if (assign) {
		int got = tls_store_read(store(env), TLS_STORE_CERT, name, &pem, &error);
		if (got <= 0 ||
		    tls_cert_inspect(pem.data, pem.len, time(NULL), &info, &error) < 0) {
			textbuf_free(&pem);
			return fail(err, name,
				    got == 0 ? "no such certificate (mailctl cert list)" : error);
		}
		if (kind == TLS_ASSIGN_DOMAIN && !tls_cert_covers_domain(&info, target))
			textbuf_printf(err,
				       "warning: none of %s's names is %s or under it; clients "
				       "asking for %s will see a name mismatch\n",
				       name, target, target);
		if (info.days_left < 0)
			textbuf_printf(err, "warning: %s has expired\n", name);
		tls_cert_info_free(&info);
		textbuf_free(&pem);
	}
	struct tls_assignments a;
	if (tls_assignments_load(store(env), &a, err) < 0)
		return 1;
	int changed = tls_assignments_set(&a, kind, target, name);
	int rc = 0;
	if (!assign && changed == 0) {
		rc = fail(err, target_text(kind, target, what, sizeof(what)), "has no certificate");
	} else if (changed > 0 && tls_assignments_save(store(env), &a, &error) < 0) {
		rc = fail(err, "cert assign", error);
	} else if (assign) {
		textbuf_printf(out, "%s is served certificate %s\n",
			       target_text(kind, target, what, sizeof(what)), name);
		cert_event(env, "op=cert-assign name=%s target=%s%s", name,
			   kind == TLS_ASSIGN_SERVICE ? "service:" : "",
			   kind == TLS_ASSIGN_DEFAULT ? "default" : target);
		reload_hint(env, out);
	} else {
		textbuf_printf(out, "%s no longer has its own certificate\n",
			       target_text(kind, target, what, sizeof(what)));
		cert_event(env, "op=cert-unassign target=%s%s",
			   kind == TLS_ASSIGN_SERVICE ? "service:" : "",
			   kind == TLS_ASSIGN_DEFAULT ? "default" : target);
		reload_hint(env, out);
	}
	tls_assignments_free(&a);
	return rc;
}

static int cert_assign(struct command_env *env, int argc, char **argv, bool assign,
		       struct textbuf *out, struct textbuf *err)
{
	enum tls_assign_kind kind;
	char target[TLS_DOMAIN_MAX + 1];
	const char *name = assign ? argv[2] : NULL;

	int prc = parse_target(argc, argv, assign ? 3 : 2, &kind, target, sizeof(target), err);
	if (prc == -2)
		return usage_error(err, assign ? "assign NAME DOMAIN|--default|--service SERVICE"
					       : "unassign DOMAIN|--default|--service SERVICE");
	if (prc < 0)
		return 1;
	if (assign && !tls_store_name_valid(name))
		return fail(err, name, "not a certificate name");
	/* what is checked and what is written, under the lock: a certificate
	 * deleted meanwhile must not be assigned */
	int lock = cert_lock(env, err);
	if (lock < 0)
		return 1;
	int rc = cert_assign_locked(env, name, kind, target, assign, out, err);
	tls_store_unlock(lock);
	return rc;
}

/* Under the lock: an assignment made meanwhile must not lose its files. */
static int cert_del_locked(struct command_env *env, const char *name, struct textbuf *out,
			   struct textbuf *err)
{
	struct tls_assignments a;
	const char *error = NULL;
	if (tls_assignments_load(store(env), &a, err) < 0)
		return 1;
	size_t uses = tls_assignments_uses(&a, name);
	tls_assignments_free(&a);
	if (uses > 0)
		return fail(err, name, "still assigned (mailctl cert unassign first)");
	int removed = 0;
	static const enum tls_store_kind kinds[] = { TLS_STORE_CERT, TLS_STORE_CHAIN, TLS_STORE_KEY,
						     TLS_STORE_PENDING_KEY, TLS_STORE_PENDING_CSR };
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		int rc = tls_store_remove(store(env), kinds[i], name, &error);
		if (rc < 0)
			return fail(err, name, error);
		removed += rc;
	}
	if (removed == 0)
		return fail(err, name, "no such certificate");
	textbuf_printf(out, "certificate %s deleted\n", name);
	cert_event(env, "op=cert-del name=%s", name);
	return 0;
}

static int cert_del(struct command_env *env, const char *name, struct textbuf *out,
		    struct textbuf *err)
{
	if (!tls_store_name_valid(name))
		return fail(err, name, "not a certificate name");
	int lock = cert_lock(env, err);
	if (lock < 0)
		return 1;
	int rc = cert_del_locked(env, name, out, err);
	tls_store_unlock(lock);
	return rc;
}

int cmd_cert(struct command_env *env, int argc, char **argv, struct textbuf *out,
	     struct textbuf *err)
{
	const char *sub = argc >= 2 ? argv[1] : "";

	if (strcmp(sub, "list") == 0 && argc == 2)
		return cert_list(env, out, err);
	if (strcmp(sub, "reload") == 0 && argc == 2) {
		if (env->tls_reload == NULL) {
			textbuf_puts(err,
				     "cert reload: no maild is running for this store; it loads "
				     "the certificates when it starts\n");
			return 1;
		}
		return env->tls_reload(out, err, env->ctx) < 0 ? 1 : 0;
	}
	/* each change takes the lock itself, for its final step only */
	if (strcmp(sub, "generate") == 0 && argc >= 3)
		return cert_generate(env, argc, argv, out, err);
	if (strcmp(sub, "csr") == 0 && argc >= 3)
		return cert_csr(env, argc, argv, out, err);
	if (strcmp(sub, "import-pem") == 0 && argc >= 3)
		return cert_import(env, argc, argv, out, err);
	if (strcmp(sub, "assign") == 0 && argc >= 4)
		return cert_assign(env, argc, argv, true, out, err);
	if (strcmp(sub, "unassign") == 0 && argc >= 3)
		return cert_assign(env, argc, argv, false, out, err);
	if (strcmp(sub, "del") == 0 && argc == 3)
		return cert_del(env, argv[2], out, err);
	textbuf_puts(
	    err, "usage: mailctl cert list|generate|csr|import|assign|unassign|del|reload ...\n");
	return 2;
}
