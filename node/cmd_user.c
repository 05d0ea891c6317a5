/*
 * The "user" commands (see commands.h). Passwords arrive here already
 * hashed (--password-hash): mailctl hashes on the client side, so no
 * plaintext crosses the control socket and the daemon's control thread
 * never spends a hash's time. The one exception is auth-test, which must
 * verify a plaintext against the stored hash.
 */
#include "node/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/password.h"
#include "lib/size.h"
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
			return usage_error(err, "add ADDRESS [--password-hash HASH] [--quota SIZE] [--name NAME]");
		if (strcmp(argv[i], "--password-hash") == 0) {
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
			return usage_error(err, "add ADDRESS [--password-hash HASH] [--quota SIZE] [--name NAME]");
		}
	}
	rc = directory_user_add(env->dir, &u, &error);
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
	return 0;
}

/* Reads, changes and writes back one user record. */
static int user_modify(struct command_env *env, const char *address, const char *what,
		       int (*change)(struct directory_user *u, const char *arg, struct textbuf *err),
		       const char *arg, struct textbuf *out, struct textbuf *err)
{
	struct directory_user u;
	const char *error = NULL;
	int rc = directory_user_get(env->dir, address, &u, &error);

	if (rc < 0)
		return command_fail(err, rc, address, error);
	if (change(&u, arg, err) < 0)
		return 1;
	rc = directory_user_update(env->dir, &u, &error);
	if (rc < 0)
		return command_fail(err, rc, address, error);
	textbuf_printf(out, "user %s: %s\n", u.address, what);
	command_event(env, "op=user-%s user=%s", what, u.address);
	return 0;
}

static int change_hash(struct directory_user *u, const char *arg, struct textbuf *err)
{
	if (!password_is_hash(arg)) {
		textbuf_puts(err, "--password-hash: not a crypt(3) hash this server can verify\n");
		return -1;
	}
	snprintf(u->password_hash, sizeof(u->password_hash), "%s", arg);
	return 0;
}

static int change_quota(struct directory_user *u, const char *arg, struct textbuf *err)
{
	return parse_quota(arg, &u->quota_bytes, err);
}

static int change_enabled(struct directory_user *u, const char *arg, struct textbuf *err)
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

/* import-records ADDRESS HASH QUOTA [ADDRESS HASH QUOTA]... : one durable
 * batch. Output: "imported N skipped M", then one err line per skip. */
static int user_import_records(struct command_env *env, int argc, char **argv, struct textbuf *out,
			       struct textbuf *err)
{
	struct directory_batch *b;
	const char *error = NULL;
	unsigned skipped = 0;
	int rc;

	if (argc < 5 || (argc - 2) % 3 != 0)
		return usage_error(err, "import-records ADDRESS HASH QUOTA...");
	b = directory_batch_begin(env->dir);
	if (b == NULL) {
		textbuf_puts(err, "import: cannot start a batch\n");
		return 1;
	}
	for (int i = 2; i < argc; i += 3) {
		struct directory_user u = { .enabled = true, .created = (int64_t)time(NULL) };
		snprintf(u.address, sizeof(u.address), "%s", argv[i]);
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
	if (strcmp(sub, "passwd") == 0 && argc == 5 && strcmp(argv[3], "--password-hash") == 0)
		return user_modify(env, argv[2], "passwd", change_hash, argv[4], out, err);
	if (strcmp(sub, "set-quota") == 0 && argc == 4)
		return user_modify(env, argv[2], "set-quota", change_quota, argv[3], out, err);
	if ((strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0) && argc == 3)
		return user_modify(env, argv[2], sub, change_enabled, sub, out, err);
	if (strcmp(sub, "auth-test") == 0 && argc == 5 && strcmp(argv[3], "--password") == 0)
		return user_auth_test(env, argv[2], argv[4], out, err);
	if (strcmp(sub, "import-records") == 0)
		return user_import_records(env, argc, argv, out, err);
	textbuf_puts(err, "usage: mailctl user add|del|show|list|passwd|set-quota|disable|enable|auth-test|import ...\n");
	return 2;
}
