/*
 * auth_commands: "domain set|show" (a domain's authentication settings)
 * and "auth stats", plus the client-side question mailctl asks before
 * sending a password (see node/auth_commands.h).
 *
 *   domain show DOMAIN
 *   domain set DOMAIN shared-secret-auth on|off
 *   domain set DOMAIN kerberos-realm REALM|none
 *   auth stats                      counters of this node (needs maild)
 *
 * Turning shared-secret-auth off deletes every stored secret of the
 * domain at once (storage/directory_domain.c); turning it on stores
 * nothing by itself: each user's secret is stored the next time the
 * password is set (user add/passwd/import).
 */
#include "node/auth_commands.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "node/auth.h"
#include "node/commands.h"
#include "storage/directory.h"

static int usage(struct textbuf *err)
{
	textbuf_puts(err, "usage: mailctl domain show DOMAIN\n"
			  "       mailctl domain set DOMAIN shared-secret-auth on|off\n"
			  "       mailctl domain set DOMAIN kerberos-realm REALM|none\n");
	return 2;
}

static int domain_show(struct command_env *env, const char *name, struct textbuf *out,
		       struct textbuf *err)
{
	struct directory_domain d;
	const char *error = NULL;
	char created[32] = "?";
	struct tm tm;

	int rc = directory_domain_get(env->dir, name, &d, &error);
	if (rc < 0)
		return command_fail(err, rc, name, error);
	time_t t = (time_t)d.created;
	if (gmtime_r(&t, &tm) != NULL)
		strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	textbuf_printf(out,
		       "domain:             %s\n"
		       "created:            %s\n"
		       "shared-secret-auth: %s\n"
		       "kerberos-realm:     %s\n",
		       d.name, created, d.shared_secret_auth ? "on" : "off",
		       d.kerberos_realm[0] != '\0' ? d.kerberos_realm : "none");
	return 0;
}

static int domain_set(struct command_env *env, const char *name, const char *key, const char *value,
		      struct textbuf *out, struct textbuf *err)
{
	struct directory_domain d;
	const char *error = NULL;
	bool was_shared;

	int rc = directory_domain_get(env->dir, name, &d, &error);
	if (rc < 0)
		return command_fail(err, rc, name, error);
	was_shared = d.shared_secret_auth;
	if (strcmp(key, "shared-secret-auth") == 0) {
		if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
			return usage(err);
		d.shared_secret_auth = strcmp(value, "on") == 0;
	} else if (strcmp(key, "kerberos-realm") == 0) {
		snprintf(d.kerberos_realm, sizeof(d.kerberos_realm), "%s",
			 strcmp(value, "none") == 0 ? "" : value);
	} else {
		return usage(err);
	}
	rc = directory_domain_update(env->dir, &d, &error);
	if (rc < 0)
		return command_fail(err, rc, name, error);
	if (env->auth != NULL)
		auth_refresh(env->auth);
	textbuf_printf(out, "domain %s: %s %s\n", d.name, key, value);
	if (strcmp(key, "shared-secret-auth") == 0 && d.shared_secret_auth && !was_shared)
		textbuf_puts(
		    out, "note: secrets are stored as passwords are set from now on "
			 "(user passwd, user add, user import); existing users have none yet\n");
	if (strcmp(key, "shared-secret-auth") == 0 && !d.shared_secret_auth && was_shared)
		textbuf_puts(out, "note: every stored secret of the domain was deleted\n");
	command_event(env, "op=domain-set domain=%s %s=%s", d.name, key, value);
	return 0;
}

int cmd_domain_settings(struct command_env *env, int argc, char **argv, struct textbuf *out,
			struct textbuf *err)
{
	if (argc == 3 && strcmp(argv[1], "show") == 0)
		return domain_show(env, argv[2], out, err);
	if (argc == 5 && strcmp(argv[1], "set") == 0)
		return domain_set(env, argv[2], argv[3], argv[4], out, err);
	return usage(err);
}

int cmd_auth(struct command_env *env, int argc, char **argv, struct textbuf *out,
	     struct textbuf *err)
{
	if (argc == 2 && strcmp(argv[1], "stats") == 0) {
		if (env->auth == NULL) {
			textbuf_puts(err, "auth stats: no maild is running for this store\n");
			return 1;
		}
		auth_stats_format(env->auth, out);
		return 0;
	}
	textbuf_puts(err, "usage: mailctl auth stats\n");
	return 2;
}

int auth_client_stores_secrets(import_submit_fn *submit, void *ctx, const char *address)
{
	struct textbuf out = TEXTBUF_INIT, err = TEXTBUF_INIT;
	const char *at = strrchr(address, '@');
	char domain[300];
	int ret = -1;

	snprintf(domain, sizeof(domain), "%s", at != NULL ? at + 1 : address);
	char *argv[] = {"domain", "show", domain, NULL};
	if (domain[0] != '\0' && submit(3, argv, &out, &err, ctx) == 0) {
		const char *line = strstr(textbuf_str(&out), "shared-secret-auth: ");
		if (line != NULL)
			ret = strncmp(line + 20, "on", 2) == 0 ? 1 : 0;
	}
	textbuf_free(&out);
	textbuf_free(&err);
	return ret;
}
