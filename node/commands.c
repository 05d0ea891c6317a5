/*
 * Command dispatch and the directory commands other than users (see
 * commands.h): domains, aliases, groups, address resolution.
 */
#include "node/commands.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "storage/directory.h"

static const char usage_text[] =
	"commands:\n"
	"  status                                  node, uptime, services, connections (needs maild)\n"
	"  events [--count N] [--timeout SEC] [TOPIC]   follow live events (needs maild)\n"
	"  domain add DOMAIN | del DOMAIN [--force] | list | show DOMAIN\n"
	"  domain set DOMAIN shared-secret-auth on|off | kerberos-realm REALM|none\n"
	"  user add ADDRESS [--password PW | --password-stdin | --random-password | --password-hash HASH]\n"
	"           [--quota SIZE] [--name NAME]\n"
	"  user del ADDRESS | show ADDRESS | list [DOMAIN]\n"
	"  user passwd ADDRESS [--password PW | --password-stdin | --random-password | --password-hash HASH]\n"
	"  user set-quota ADDRESS SIZE            SIZE like 500M, 2G; 0 = unlimited\n"
	"  user disable ADDRESS | enable ADDRESS\n"
	"  user auth-test ADDRESS [--password PW | --password-stdin] [--mechanism MECH]\n"
	"  user import FILE                        CSV address,password[,quota]; crypt(3) hashes kept as they are\n"
	"  alias add SOURCE TARGET... | del SOURCE [TARGET] | list [DOMAIN|SOURCE]   (SOURCE @domain = catch-all)\n"
	"  alias import FILE [--domain DOMAIN]     /etc/aliases format; default: the first local domain\n"
	"  group add ADDRESS [--name NAME] | del ADDRESS | list [DOMAIN|GROUP]\n"
	"  group add-member GROUP MEMBER... | del-member GROUP MEMBER\n"
	"  resolve ADDRESS                         where mail for ADDRESS goes\n"
	"  mailbox list USER | create USER NAME [--special-use \\Sent] | delete USER NAME\n"
	"  quota report [DOMAIN] [--over PERCENT]  usage against each user's quota\n"
	"  fsck [USER] [--repair]                  verify (and repair) the mail store\n"
	"  cert list                               certificates on the store, their names, expiry, use\n"
	"  cert generate NAME --names A,B [--days N] [--key rsa2048|p256] [--force]   self-signed\n"
	"  cert csr NAME --names A,B [--key rsa2048|p256]   new key (kept on the store) and a CSR\n"
	"  cert import NAME CERT KEY|--stored-key [CHAIN] [--force]   PEM files, read by mailctl\n"
	"  cert assign NAME DOMAIN|--default|--service SERVICE\n"
	"  cert unassign DOMAIN|--default|--service SERVICE | del NAME\n"
	"  cert reload                             serve what is on the store now (needs maild; or SIGHUP)\n"
	"  auth stats                              login counters and delays of this node (needs maild)\n"
	"  queue list                              every spool and the maildrop, with counts by state and domain\n"
	"  queue show ID | delete ID | hold ID | release ID | flush [ID]   (flush needs maild)\n"
	"  queue adopt SPOOL                       take over another node's spool (needs maild)\n";

void commands_usage(struct textbuf *out)
{
	textbuf_puts(out, usage_text);
}

void command_event(struct command_env *env, const char *fmt, ...)
{
	struct textbuf text = TEXTBUF_INIT;
	va_list ap;

	if (env->publish == NULL)
		return;
	va_start(ap, fmt);
	textbuf_vprintf(&text, fmt, ap);
	va_end(ap);
	env->publish("directory", textbuf_str(&text), env->ctx);
	textbuf_free(&text);
}

int command_fail(struct textbuf *err, int dir_error, const char *what, const char *detail)
{
	textbuf_printf(err, "%s: %s\n", what,
		      detail != NULL ? detail : directory_strerror(dir_error));
	return 1;
}

static int usage_error(struct textbuf *err, const char *text)
{
	textbuf_printf(err, "usage: mailctl %s\n", text);
	return 2;
}

static int print_name(const char *name, void *ctx)
{
	textbuf_printf(ctx, "%s\n", name);
	return 0;
}

int cmd_domain(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err)
{
	const char *error = NULL;
	int rc;

	if (argc >= 2 && (strcmp(argv[1], "set") == 0 || strcmp(argv[1], "show") == 0))
		return cmd_domain_settings(env, argc, argv, out, err);
	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		rc = directory_domain_list(env->dir, print_name, out);
		return rc < 0 ? command_fail(err, rc, "domain list", NULL) : 0;
	}
	if (argc == 3 && strcmp(argv[1], "add") == 0) {
		rc = directory_domain_add(env->dir, argv[2], &error);
		if (rc < 0)
			return command_fail(err, rc, argv[2], error);
		textbuf_printf(out, "domain %s added\n", argv[2]);
		command_event(env, "op=domain-add domain=%s", argv[2]);
		return 0;
	}
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "del") == 0) {
		bool force = argc == 4 && strcmp(argv[3], "--force") == 0;
		if (argc == 4 && !force)
			return usage_error(err, "domain del DOMAIN [--force]");
		rc = directory_domain_del(env->dir, argv[2], force, &error);
		if (rc == DIRECTORY_E_NOTEMPTY)
			return command_fail(err, rc, argv[2],
					    "domain still has users, aliases or groups (delete them, or use --force)");
		if (rc < 0)
			return command_fail(err, rc, argv[2], error);
		textbuf_printf(out, "domain %s deleted\n", argv[2]);
		command_event(env, "op=domain-del domain=%s force=%d", argv[2], force);
		return 0;
	}
	return usage_error(err, "domain add DOMAIN | del DOMAIN [--force] | list");
}

static int print_alias(const char *source, const char *target, void *ctx)
{
	textbuf_printf(ctx, "%s\t%s\n", source, target);
	return 0;
}

int cmd_alias(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err)
{
	const char *error = NULL;
	int rc, failed = 0;

	if (argc >= 2 && strcmp(argv[1], "import") == 0)
		return cmd_alias_import(env, argc, argv, out, err);
	if (argc >= 4 && strcmp(argv[1], "add") == 0) {
		for (int i = 3; i < argc; i++) {
			rc = directory_alias_add(env->dir, argv[2], argv[i], &error);
			if (rc < 0) {
				textbuf_printf(err, "%s -> %s: %s\n", argv[2], argv[i],
					      error ? error : directory_strerror(rc));
				failed++;
				continue;
			}
			textbuf_printf(out, "alias %s -> %s added\n", argv[2], argv[i]);
			command_event(env, "op=alias-add source=%s target=%s", argv[2], argv[i]);
		}
		return failed ? 1 : 0;
	}
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "del") == 0) {
		const char *target = argc == 4 ? argv[3] : NULL;
		rc = directory_alias_del(env->dir, argv[2], target, &error);
		if (rc < 0)
			return command_fail(err, rc, argv[2], error);
		textbuf_printf(out, "alias %s%s%s deleted\n", argv[2], target ? " -> " : "", target ? target : "");
		command_event(env, "op=alias-del source=%s target=%s", argv[2], target ? target : "*");
		return 0;
	}
	if ((argc == 2 || argc == 3) && strcmp(argv[1], "list") == 0) {
		const char *arg = argc == 3 ? argv[2] : NULL;
		bool is_source = arg != NULL && strchr(arg, '@') != NULL;
		rc = directory_alias_list(env->dir, is_source ? NULL : arg, is_source ? arg : NULL,
					  print_alias, out, &error);
		return rc < 0 ? command_fail(err, rc, "alias list", error) : 0;
	}
	return usage_error(err, "alias add SOURCE TARGET... | del SOURCE [TARGET] | list [DOMAIN|SOURCE] | "
			   "import FILE [--domain DOMAIN]");
}

static int print_group(const struct directory_group *g, void *ctx)
{
	textbuf_printf(ctx, "%s\t%s\n", g->address, g->display_name);
	return 0;
}

static int group_members(struct command_env *env, int argc, char **argv, struct textbuf *out,
			 struct textbuf *err, bool add)
{
	const char *error = NULL;
	int failed = 0;

	for (int i = 3; i < argc; i++) {
		int rc = add ? directory_group_member_add(env->dir, argv[2], argv[i], &error)
			     : directory_group_member_del(env->dir, argv[2], argv[i], &error);
		if (rc < 0) {
			textbuf_printf(err, "%s %s: %s\n", argv[2], argv[i], error ? error : directory_strerror(rc));
			failed++;
			continue;
		}
		textbuf_printf(out, "%s %s %s\n", argv[i], add ? "added to" : "removed from", argv[2]);
		command_event(env, "op=group-%s group=%s member=%s", add ? "add-member" : "del-member",
			      argv[2], argv[i]);
	}
	return failed ? 1 : 0;
}

int cmd_group(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err)
{
	const char *error = NULL;
	int rc;

	if ((argc == 3 || argc == 5) && strcmp(argv[1], "add") == 0) {
		struct directory_group g = { 0 };
		if (argc == 5 && strcmp(argv[3], "--name") != 0)
			return usage_error(err, "group add ADDRESS [--name NAME]");
		snprintf(g.address, sizeof(g.address), "%s", argv[2]);
		if (argc == 5)
			snprintf(g.display_name, sizeof(g.display_name), "%s", argv[4]);
		rc = directory_group_add(env->dir, &g, &error);
		if (rc < 0)
			return command_fail(err, rc, argv[2], error);
		textbuf_printf(out, "group %s added\n", g.address);
		command_event(env, "op=group-add group=%s", g.address);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "del") == 0) {
		rc = directory_group_del(env->dir, argv[2], &error);
		if (rc < 0)
			return command_fail(err, rc, argv[2], error);
		textbuf_printf(out, "group %s deleted\n", argv[2]);
		command_event(env, "op=group-del group=%s", argv[2]);
		return 0;
	}
	if (argc >= 4 && strcmp(argv[1], "add-member") == 0)
		return group_members(env, argc, argv, out, err, true);
	if (argc >= 4 && strcmp(argv[1], "del-member") == 0)
		return group_members(env, argc, argv, out, err, false);
	if ((argc == 2 || argc == 3) && strcmp(argv[1], "list") == 0) {
		if (argc == 3 && strchr(argv[2], '@') != NULL)
			rc = directory_group_members(env->dir, argv[2], print_name, out, &error);
		else
			rc = directory_group_list(env->dir, argc == 3 ? argv[2] : NULL, print_group, out, &error);
		return rc < 0 ? command_fail(err, rc, "group list", error) : 0;
	}
	return usage_error(err, "group add ADDRESS [--name NAME] | del ADDRESS | list [DOMAIN|GROUP] | "
			   "add-member GROUP MEMBER... | del-member GROUP MEMBER...");
}

static int print_recipient(const char *address, bool local, void *ctx)
{
	textbuf_printf(ctx, "%s\t%s\n", address, local ? "local" : "remote");
	return 0;
}

int cmd_resolve(struct command_env *env, int argc, char **argv, struct textbuf *out, struct textbuf *err)
{
	const char *error = NULL;
	int rc;

	if (argc != 2)
		return usage_error(err, "resolve ADDRESS");
	rc = directory_resolve(env->dir, argv[1], print_recipient, out, &error);
	if (rc == 0) {
		textbuf_printf(out, "%s\tremote (not a local domain)\n", argv[1]);
		return 0;
	}
	if (rc == DIRECTORY_E_NOTFOUND)
		return command_fail(err, rc, argv[1], "no such recipient in a local domain");
	return rc < 0 ? command_fail(err, rc, argv[1], error) : 0;
}

int commands_run(struct command_env *env, int argc, char **argv, struct textbuf *out,
		 struct textbuf *err)
{
	static const struct {
		const char *name;
		int (*fn)(struct command_env *, int, char **, struct textbuf *, struct textbuf *);
	} table[] = {
		{ "domain", cmd_domain }, { "user", cmd_user },   { "alias", cmd_alias },
		{ "group", cmd_group },   { "resolve", cmd_resolve }, { "cert", cmd_cert },
		{ "auth", cmd_auth },
		{ "mailbox", cmd_mailbox }, { "quota", cmd_quota }, { "fsck", cmd_fsck },
		{ "queue", cmd_queue },
	};

	if (argc < 1) {
		commands_usage(err);
		return 2;
	}
	if (strcmp(argv[0], "status") == 0) {
		if (env->status == NULL) {
			textbuf_puts(err, "status: no maild is running for this store\n");
			return 1;
		}
		env->status(out, env->ctx);
		return 0;
	}
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(argv[0], table[i].name) == 0)
			return table[i].fn(env, argc, argv, out, err);
	textbuf_printf(err, "unknown command '%s'\n", argv[0]);
	commands_usage(err);
	return 2;
}
