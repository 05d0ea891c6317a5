/*
 * The "user" commands (see commands.h). Passwords arrive here already
 * hashed (--password-hash): mailctl hashes on the client side, so the
 * daemon's control thread never spends a hash's time. Two exceptions
 * carry a plaintext: auth-test, which must verify one, and
 * --password-secret, which mailctl adds only for users of a domain with
 * shared-secret-auth on (the recoverable secret CRAM-MD5, DIGEST-MD5,
 * SCRAM and APOP need; docs/security.md). Setting a password without a
 * secret clears the stored one, so an old password can never keep
 * working through a shared-secret mechanism.
 */
#include "node/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/password.h"
#include "lib/size.h"
#include "node/auth.h"
#include "node/node_config.h"
#include "node/sasl_client.h"
#include "storage/directory.h"

static int usage_error(struct textbuf *err, const char *text)
{
	textbuf_printf(err, "usage: mailctl user %s\n", text);
	return 2;
}

static void format_quota(uint64_t bytes, char *out, size_t size)
{
	if (bytes == 0)
		snprintf(out, size, "unlimited");
	else
		size_format(bytes, out, size);
}

static int parse_quota(const char *text, uint64_t *bytes_r, struct textbuf *err)
{
	if (strcmp(text, "unlimited") == 0 || strcmp(text, "none") == 0) {
		*bytes_r = 0;
		return 0;
	}
	if (size_parse(text, bytes_r) < 0) {
		textbuf_printf(err, "'%s' is not a quota (like 500M, 2G, 0 for unlimited)\n", text);
		return -1;
	}
	return 0;
}

static const char *hash_scheme(const char *hash)
{
	if (hash[0] == '\0')
		return "none (no password login)";
	if (strncmp(hash, "$y$", 3) == 0 || strncmp(hash, "$gy$", 4) == 0 || strncmp(hash, "$7$", 3) == 0)
		return "yescrypt";
	if (strncmp(hash, "$6$", 3) == 0)
		return "sha512-crypt";
	if (strncmp(hash, "$5$", 3) == 0)
		return "sha256-crypt";
	if (strncmp(hash, "$2", 2) == 0)
		return "bcrypt";
	return "other crypt(3)";
}

static int user_add(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err)
{
	struct directory_user u = { .enabled = true, .created = (int64_t)time(NULL) };
	const char *error = NULL;
	int rc;

	snprintf(u.address, sizeof(u.address), "%s", argv[2]);
	for (int i = 3; i < argc; i += 2) {
		if (i + 1 >= argc)
			return usage_error(err, "add ADDRESS [--password-hash HASH [--password-secret S]] "
					   "[--quota SIZE] [--name NAME]");
		if (strcmp(argv[i], "--password-secret") == 0) {
			if (strlen(argv[i + 1]) >= sizeof(u.secret)) {
				textbuf_puts(err, "--password-secret: too long\n");
				return 1;
			}
			snprintf(u.secret, sizeof(u.secret), "%s", argv[i + 1]);
		} else if (strcmp(argv[i], "--password-hash") == 0) {
			if (!password_is_hash(argv[i + 1])) {
				textbuf_puts(err, "--password-hash: not a crypt(3) hash this server can verify\n");
				return 1;
			}
			snprintf(u.password_hash, sizeof(u.password_hash), "%s", argv[i + 1]);
		} else if (strcmp(argv[i], "--quota") == 0) {
			if (parse_quota(argv[i + 1], &u.quota_bytes, err) < 0)
				return 1;
		} else if (strcmp(argv[i], "--name") == 0) {
			snprintf(u.display_name, sizeof(u.display_name), "%s", argv[i + 1]);
		} else {
			return usage_error(err, "add ADDRESS [--password-hash HASH [--password-secret S]] "
					   "[--quota SIZE] [--name NAME]");
		}
	}
	rc = directory_user_add(env->dir, &u, &error);
	explicit_bzero(u.secret, sizeof(u.secret));
	if (rc < 0)
		return command_fail(err, rc, argv[2], error);
	textbuf_printf(out, "user %s added\n", u.address);
	command_event(env, "op=user-add user=%s", u.address);
	return 0;
}

static int print_user(const struct directory_user *u, void *ctx)
{
	char quota[32];
	format_quota(u->quota_bytes, quota, sizeof(quota));
	textbuf_printf(ctx, "%s\t%s\t%s\t%s\n", u->address, quota, u->enabled ? "enabled" : "disabled",
		      u->display_name);
	return 0;
}

static int user_show(struct command_env *env, const char *address, struct textbuf *out, struct textbuf *err)
{
	struct directory_user u;
	const char *error = NULL;
	char quota[32], created[32] = "?";
	time_t t;
	struct tm tm;

	int rc = directory_user_get(env->dir, address, &u, &error);
	if (rc < 0)
		return command_fail(err, rc, address, error);
	format_quota(u.quota_bytes, quota, sizeof(quota));
	t = (time_t)u.created;
	if (gmtime_r(&t, &tm) != NULL)
		strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	textbuf_printf(out, "address:  %s\nname:     %s\nstate:    %s\nquota:    %s\npassword: %s\ncreated:  %s\n",
		      u.address, u.display_name, u.enabled ? "enabled" : "disabled", quota,
		      hash_scheme(u.password_hash), created);
	textbuf_printf(out, "secret:   %s\n",
		       u.secret[0] != '\0' ? "stored (CRAM-MD5, DIGEST-MD5, SCRAM, APOP)" : "none");
	explicit_bzero(u.secret, sizeof(u.secret));
	return 0;
}

/* Reads, changes and writes back one user record. */
static int user_modify(struct command_env *env, const char *address, const char *what,
		       int (*change)(struct directory_user *u, const void *arg, struct textbuf *err),
		       const void *arg, struct textbuf *out, struct textbuf *err)
{
	struct directory_user u;
	const char *error = NULL;
	int rc = directory_user_get(env->dir, address, &u, &error);

	if (rc < 0)
		return command_fail(err, rc, address, error);
	if (change(&u, arg, err) < 0)
		return 1;
	rc = directory_user_update(env->dir, &u, &error);
	explicit_bzero(u.secret, sizeof(u.secret));
	if (rc < 0)
		return command_fail(err, rc, address, error);
	textbuf_printf(out, "user %s: %s\n", u.address, what);
	command_event(env, "op=user-%s user=%s", what, u.address);
	return 0;
}

/* passwd: the new hash, and the new secret or none (never the old one). */
struct new_password {
	const char *hash, *secret;
};

static int change_password(struct directory_user *u, const void *arg, struct textbuf *err)
{
	const struct new_password *np = arg;
	if (!password_is_hash(np->hash)) {
		textbuf_puts(err, "--password-hash: not a crypt(3) hash this server can verify\n");
		return -1;
	}
	if (np->secret != NULL && strlen(np->secret) >= sizeof(u->secret)) {
		textbuf_puts(err, "--password-secret: too long\n");
		return -1;
	}
	snprintf(u->password_hash, sizeof(u->password_hash), "%s", np->hash);
	snprintf(u->secret, sizeof(u->secret), "%s", np->secret != NULL ? np->secret : "");
	return 0;
}

static int change_quota(struct directory_user *u, const void *arg, struct textbuf *err)
{
	return parse_quota(arg, &u->quota_bytes, err);
}

static int change_enabled(struct directory_user *u, const void *arg, struct textbuf *err)
{
	(void)err;
	u->enabled = strcmp(arg, "enable") == 0;
	return 0;
}

static int user_auth_test(struct command_env *env, const char *address, const char *password,
			  struct textbuf *out, struct textbuf *err)
{
	struct directory_user u;
	const char *error = NULL;
	int rc = directory_user_get(env->dir, address, &u, &error);

	if (rc < 0)
		return command_fail(err, rc, address, error);
	if (!u.enabled) {
		textbuf_printf(err, "%s: account disabled\n", u.address);
		return 1;
	}
	if (password_verify(password, u.password_hash) != 1) {
		textbuf_printf(err, "%s: password does not match\n", u.address);
		return 1;
	}
	textbuf_printf(out, "%s: password ok\n", u.address);
	return 0;
}

/* auth-test --mechanism M: a real SASL client (or APOP) against the
 * node's own authentication layer, through the same code the protocols
 * use; offline, against a temporary one. Counts and logs like any login. */
static int user_auth_test_mech(struct command_env *env, const char *address, const char *password,
			       const char *mech, struct textbuf *out, struct textbuf *err)
{
	struct auth *auth = env->auth, *own = NULL;
	struct auth_session_params p = { .service = "imap", .peer = "mailctl", .tls = true };
	struct auth_outcome o;
	const char *error = NULL;
	int rc = 1;

	if (auth == NULL) {
		struct auth_settings set = env->cfg->auth;
		set.password_scheme = env->cfg->password.scheme;
		set.password_cost = env->cfg->password.cost;
		set.now_ms = NULL;
		if (auth_create(&set, env->dir, &own, &error) < 0) {
			textbuf_printf(err, "auth-test: %s\n", error);
			return 1;
		}
		auth = own;
	}
	struct auth_session *s = auth_session_new(auth, &p);
	if (s == NULL) {
		textbuf_puts(err, "auth-test: out of memory\n");
		auth_destroy(&own);
		return 1;
	}
	if (strcasecmp(mech, "APOP") == 0) {
		char ts[AUTH_APOP_TIMESTAMP_MAX], hex[33];
		if (auth_apop_timestamp(auth, ts, sizeof(ts)) < 0 ||
		    auth_apop_digest(ts, password, hex) < 0) {
			textbuf_puts(err, "auth-test: cannot compute an APOP digest\n");
			goto out;
		}
		auth_apop(s, address, ts, hex, &o);
	} else {
		struct sasl_client_creds creds = { .authcid = address, .password = password };
		if (sasl_client_exchange(s, "imap", auth_hostname(auth), mech, &creds, &o, &error) < 0) {
			textbuf_printf(err, "%s: %s: %s\n", address, mech, error);
			goto out;
		}
	}
	if (o.status == AUTH_OK) {
		textbuf_printf(out, "%s: %s ok\n", o.user, o.mechanism);
		rc = 0;
	} else {
		textbuf_printf(err, "%s: %s failed: %s (%s)\n", address, mech, auth_reason_name(o.reason),
			       o.detail != NULL ? o.detail : "");
	}
out:
	auth_session_free(&s);
	auth_destroy(&own);
	return rc;
}

/* import-records [--with-secrets] ADDRESS HASH QUOTA [SECRET] ... : one
 * durable batch; with --with-secrets each record has a fourth field, the
 * recoverable secret or "". Output: "imported N skipped M", then one err
 * line per skip. */
static int user_import_records(struct command_env *env, int argc, char **argv, struct textbuf *out,
			       struct textbuf *err)
{
	struct directory_batch *b;
	const char *error = NULL;
	unsigned skipped = 0;
	bool secrets = argc > 2 && strcmp(argv[2], "--with-secrets") == 0;
	int first = secrets ? 3 : 2, fields = secrets ? 4 : 3;
	int rc;

	if (argc < first + fields || (argc - first) % fields != 0)
		return usage_error(err, "import-records [--with-secrets] ADDRESS HASH QUOTA [SECRET]...");
	b = directory_batch_begin(env->dir);
	if (b == NULL) {
		textbuf_puts(err, "import: cannot start a batch\n");
		return 1;
	}
	for (int i = first; i < argc; i += fields) {
		struct directory_user u = { .enabled = true, .created = (int64_t)time(NULL) };
		snprintf(u.address, sizeof(u.address), "%s", argv[i]);
		if (secrets && strlen(argv[i + 3]) >= sizeof(u.secret)) {
			textbuf_printf(err, "%s: secret too long\n", argv[i]);
			skipped++;
			continue;
		}
		if (secrets)
			snprintf(u.secret, sizeof(u.secret), "%s", argv[i + 3]);
		if (!password_is_hash(argv[i + 1])) {
			textbuf_printf(err, "%s: password is not a usable crypt(3) hash\n", argv[i]);
			skipped++;
			continue;
		}
		snprintf(u.password_hash, sizeof(u.password_hash), "%s", argv[i + 1]);
		if (parse_quota(argv[i + 2], &u.quota_bytes, err) < 0) {
			skipped++;
			continue;
		}
		rc = directory_batch_user_add(b, &u, &error);
		explicit_bzero(u.secret, sizeof(u.secret));
		if (rc < 0) {
			textbuf_printf(err, "%s: %s\n", argv[i], error ? error : directory_strerror(rc));
			skipped++;
		}
	}
	size_t n = directory_batch_count(b);
	rc = n > 0 ? directory_batch_commit(b, &error) : 0;
	directory_batch_free(&b);
	if (rc < 0)
		return command_fail(err, rc, "import", error);
	textbuf_printf(out, "imported %zu skipped %u\n", n, skipped);
	if (n > 0)
		command_event(env, "op=user-import count=%zu skipped=%u", n, skipped);
	return 0;
}

static int user_list(struct command_env *env, const char *domain, struct textbuf *out, struct textbuf *err)
{
	const char *error = NULL;
	int rc = directory_user_list(env->dir, domain, print_user, out, &error);
	return rc < 0 ? command_fail(err, rc, "user list", error) : 0;
}

int cmd_user(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err)
{
	const char *sub = argc >= 2 ? argv[1] : "";
	const char *error = NULL;
	int rc;

	if (strcmp(sub, "add") == 0 && argc >= 3)
		return user_add(env, argc, argv, out, err);
	if (strcmp(sub, "list") == 0 && argc <= 3)
		return user_list(env, argc == 3 ? argv[2] : NULL, out, err);
	if (strcmp(sub, "show") == 0 && argc == 3)
		return user_show(env, argv[2], out, err);
	if (strcmp(sub, "del") == 0 && argc == 3) {
		rc = directory_user_del(env->dir, argv[2], &error);
		if (rc < 0)
			return command_fail(err, rc, argv[2], error);
		textbuf_printf(out, "user %s deleted\n", argv[2]);
		command_event(env, "op=user-del user=%s", argv[2]);
		return 0;
	}
	if (strcmp(sub, "passwd") == 0 && (argc == 5 || argc == 7) &&
	    strcmp(argv[3], "--password-hash") == 0 &&
	    (argc == 5 || strcmp(argv[5], "--password-secret") == 0)) {
		struct new_password np = { argv[4], argc == 7 ? argv[6] : NULL };
		return user_modify(env, argv[2], "passwd", change_password, &np, out, err);
	}
	if (strcmp(sub, "set-quota") == 0 && argc == 4)
		return user_modify(env, argv[2], "set-quota", change_quota, argv[3], out, err);
	if ((strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0) && argc == 3)
		return user_modify(env, argv[2], sub, change_enabled, sub, out, err);
	if (strcmp(sub, "auth-test") == 0 && (argc == 5 || argc == 7)) {
		/* mailctl appends --password after the options it passes on. */
		const char *password = NULL, *mech = NULL;
		bool bad = false;
		for (int i = 3; i + 1 < argc; i += 2) {
			if (strcmp(argv[i], "--password") == 0)
				password = argv[i + 1];
			else if (strcmp(argv[i], "--mechanism") == 0)
				mech = argv[i + 1];
			else
				bad = true;
		}
		if (!bad && password != NULL && mech == NULL)
			return user_auth_test(env, argv[2], password, out, err);
		if (!bad && password != NULL && mech != NULL)
			return user_auth_test_mech(env, argv[2], password, mech, out, err);
		return usage_error(err, "auth-test ADDRESS --password PW [--mechanism MECH]");
	}
	if (strcmp(sub, "import-records") == 0)
		return user_import_records(env, argc, argv, out, err);
	textbuf_puts(err, "usage: mailctl user add|del|show|list|passwd|set-quota|disable|enable|auth-test|import ...\n");
	return 2;
}
