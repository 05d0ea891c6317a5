/*
 * mailctl: the administration command.
 *
 *   mailctl [-c FILE] [--store DIR] [--user NAME] COMMAND ...
 *
 * When a maild serves this store's run directory, commands go to it over
 * the control socket (except fsck and the quota report, see submit());
 * otherwise mailctl works offline, opening the store itself (as the
 * service user when run by root). The client side
 * owns what must not cross the socket or block the daemon: reading and
 * hashing passwords, CSV import, progress display, following events, and
 * reading the files of `cert import` (as the invoking user: the daemon
 * runs as another one and may not even see them).
 */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fd_limit.h"
#include "lib/password.h"
#include "lib/textbuf.h"
#include "node/auth_commands.h"
#include "node/commands.h"
#include "node/node_config.h"
#include "node/control.h"
#include "node/privilege.h"
#include "node/user_import.h"
#include "storage/directory.h"
#include "storage/store.h"

#define CONTROL_TIMEOUT_MS 120000

struct mailctl {
	struct node_config *cfg;
	bool online;
	struct directory *dir; /* offline (or a long read-only run), on first use */
	struct store *store;   /* offline only, for the store commands */
	bool dropped;          /* offline: already the service user */
	char secondary[1200];  /* the directory opened as a reader: its folder */
	struct command_env env;
};

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void remove_folder(const char *path)
{
	(void)nftw(path, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void usage(FILE *f)
{
	struct textbuf sb = TEXTBUF_INIT;
	commands_usage(&sb);
	fprintf(f, "usage: mailctl [-c FILE] [--store DIR] [--user NAME] COMMAND ...\n%s", textbuf_str(&sb));
	textbuf_free(&sb);
}

/* need_dir false: commands that only touch files on the store (cert)
 * run without taking the directory. beside_maild: maild holds the
 * directory; it is read as a RocksDB secondary (a folder of its own in
 * the run directory, removed at exit). */
static int open_offline(struct mailctl *m, bool need_dir, bool need_store, bool beside_maild,
			struct textbuf *err)
{
	char node[32];
	struct service_identity id;
	const char *error = NULL;
	char path[1100];

	if ((m->dir != NULL && (m->store != NULL || !need_store)) || (m->dropped && !need_dir))
		return 0;
	if (!m->dropped && (privilege_lookup(m->cfg->user, &id, &error) < 0 ||
			    privilege_mkdir(&id, m->cfg->store_dir, 0750, &error) < 0 ||
			    privilege_drop(&id, &error) < 0)) {
		textbuf_printf(err, "mailctl: %s\n", error);
		return -1;
	}
	m->dropped = true;
	m->env.cfg = m->cfg;
	if (!need_dir)
		return 0;
	snprintf(path, sizeof(path), "%s/directory", m->cfg->store_dir);
	int rc = 0;
	if (m->dir == NULL && beside_maild) {
		snprintf(m->secondary, sizeof(m->secondary), "%s/mailctl-%ld.directory",
			 m->cfg->run_dir, (long)getpid());
		rc = directory_open(path, DIRECTORY_READER, m->secondary, &m->dir, &error);
	} else if (m->dir == NULL) {
		rc = directory_open(path, DIRECTORY_WRITER, NULL, &m->dir, &error);
	}
	if (rc == DIRECTORY_E_LOCKED) {
		textbuf_printf(err, "mailctl: the directory of %s is held by a maild whose control socket "
			      "is not in %s; run mailctl with that node's configuration (-c)\n",
			      m->cfg->store_dir, m->cfg->run_dir);
		return -1;
	}
	if (rc < 0) {
		textbuf_printf(err, "mailctl: cannot open %s: %s\n", path, error ? error : directory_strerror(rc));
		return -1;
	}
	m->env.cfg = m->cfg;
	m->env.dir = m->dir;
	if (need_store) {
		snprintf(node, sizeof(node), "mailctl%ld", (long)getpid());
		struct store_options opts;
		node_config_store_options(m->cfg, node, &opts);
		opts.transient = true;
		rc = store_open(m->cfg->store_dir, &opts, &m->store, &error);
		if (rc < 0) {
			textbuf_printf(err, "mailctl: cannot open the mail store in %s: %s\n", m->cfg->store_dir,
				       error ? error : store_strerror(rc));
			return -1;
		}
		m->env.store = m->store;
	}
	return 0;
}

/* Runs one server-side command, through the daemon or offline. */
static int submit(int argc, char **argv, struct textbuf *out, struct textbuf *err, void *ctx)
{
	struct mailctl *m = ctx;

	/* fsck and the quota report read every user: through maild they would
	 * hold its control socket (one command at a time) for as long as they
	 * take, past the client's timeout. They run here, beside maild, as
	 * another node would (the store is made for that). */
	bool long_read = argc >= 1 && (strcmp(argv[0], "fsck") == 0 || strcmp(argv[0], "quota") == 0);
	if (m->online && !long_read) {
		int rc = control_call(m->cfg->run_dir, argc, argv, CONTROL_TIMEOUT_MS, out, err);
		return rc < 0 ? 1 : rc;
	}
	bool store_cmd = argc >= 1 && (strcmp(argv[0], "mailbox") == 0 || strcmp(argv[0], "quota") == 0 ||
				       strcmp(argv[0], "fsck") == 0 || strcmp(argv[0], "queue") == 0);
	if (open_offline(m, argc < 1 || strcmp(argv[0], "cert") != 0, store_cmd, m->online, err) < 0)
		return 1;
	m->env.progress = isatty(STDERR_FILENO) == 1;
	return commands_run(&m->env, argc, argv, out, err);
}

static int read_password_stdin(char *out, size_t size)
{
	if (fgets(out, (int)size, stdin) == NULL)
		return -1;
	out[strcspn(out, "\r\n")] = '\0';
	return out[0] == '\0' ? -1 : 0;
}

static void random_password(char *out, size_t len)
{
	static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
	unsigned char raw[64];

	if (len > sizeof(raw))
		len = sizeof(raw);
	if (getrandom(raw, len, 0) != (ssize_t)len)
		abort(); /* no entropy: never fall back to a guessable password */
	for (size_t i = 0; i < len; i++)
		out[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
	out[len] = '\0';
	explicit_bzero(raw, sizeof(raw));
}

/*
 * Client side of "user add|passwd|auth-test": replaces a plaintext option
 * (--password PW, --password-stdin, --random-password, or a prompt on a
 * terminal) with --password-hash HASH (or, for auth-test, --password PW).
 * Rewrites argv into new_argv (caller frees the two strings it holds).
 */
static int prepare_password(struct mailctl *m, int argc, char **argv, char ***new_argv_r,
			    int *new_argc_r, char **hash_r, char **stored_r)
{
	bool auth_test = strcmp(argv[1], "auth-test") == 0;
	bool add = strcmp(argv[1], "add") == 0;
	char plain[256] = "";
	bool have = false, shown = false, hashed_given = false;
	char **nv = calloc((size_t)argc + 5, sizeof(*nv));
	int nc = 0;

	if (nv == NULL)
		return -1;
	for (int i = 0; i < argc; i++) {
		if (i >= 3 && strcmp(argv[i], "--password") == 0 && i + 1 < argc) {
			snprintf(plain, sizeof(plain), "%s", argv[++i]);
			have = true;
		} else if (i >= 3 && strcmp(argv[i], "--password-stdin") == 0) {
			if (read_password_stdin(plain, sizeof(plain)) < 0) {
				fprintf(stderr, "mailctl: no password on stdin\n");
				free(nv);
				return -1;
			}
			have = true;
		} else if (i >= 3 && strcmp(argv[i], "--random-password") == 0 && !auth_test) {
			random_password(plain, 16);
			have = shown = true;
		} else {
			hashed_given |= i >= 3 && strcmp(argv[i], "--password-hash") == 0;
			nv[nc++] = argv[i];
		}
	}
	if (!have && !hashed_given && (auth_test || !add) && isatty(STDIN_FILENO)) {
		char *p = getpass("Password: ");
		if (p != NULL && p[0] != '\0') {
			snprintf(plain, sizeof(plain), "%s", p);
			have = true;
		}
	}
	if (!have && !hashed_given && (auth_test || !add)) {
		fprintf(stderr, "mailctl: give a password: --password PW, --password-stdin or --random-password\n");
		free(nv);
		return -1;
	}
	*hash_r = NULL;
	*stored_r = NULL;
	if (have) {
		char hash[PASSWORD_HASH_MAX];
		const char *error = NULL;
		if (auth_test) {
			*hash_r = strdup(plain);
		} else if (password_hash(plain, m->cfg->password.scheme, m->cfg->password.cost, hash,
					 sizeof(hash), &error) < 0) {
			fprintf(stderr, "mailctl: cannot hash the password: %s\n", error);
			free(nv);
			return -1;
		} else {
			*hash_r = strdup(hash);
		}
		if (*hash_r == NULL) {
			free(nv);
			return -1;
		}
		nv[nc++] = auth_test ? "--password" : "--password-hash";
		nv[nc++] = *hash_r;
		/* A domain with shared-secret-auth on keeps the recoverable
		 * secret too (docs/security.md): then, and only then, the
		 * plaintext goes with the hash. */
		if (!auth_test && auth_client_stores_secrets(submit, m, argv[2]) == 1) {
			if ((*stored_r = strdup(plain)) == NULL) {
				explicit_bzero(plain, sizeof(plain));
				free(nv);
				return -1;
			}
			nv[nc++] = "--password-secret";
			nv[nc++] = *stored_r;
		}
		if (shown)
			printf("password for %s: %s\n", argv[2], plain);
	}
	explicit_bzero(plain, sizeof(plain));
	*new_argv_r = nv;
	*new_argc_r = nc;
	return 0;
}

static int run_and_print(struct mailctl *m, int argc, char **argv)
{
	struct textbuf out = TEXTBUF_INIT, err = TEXTBUF_INIT;
	int rc = submit(argc, argv, &out, &err, m);

	fputs(textbuf_str(&out), stdout);
	fputs(textbuf_str(&err), stderr);
	textbuf_free(&out);
	textbuf_free(&err);
	return rc;
}

static int cmd_events(struct mailctl *m, int argc, char **argv)
{
	unsigned count = 0;
	int timeout_ms = 0;
	const char *topic = "";
	struct textbuf err = TEXTBUF_INIT;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
			count = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
			timeout_ms = (int)strtoul(argv[++i], NULL, 10) * 1000;
		else if (argv[i][0] != '-')
			topic = argv[i];
		else {
			fprintf(stderr, "usage: mailctl events [--count N] [--timeout SEC] [TOPIC]\n");
			return 2;
		}
	}
	if (!m->online) {
		fprintf(stderr, "events: no maild is running (no control socket in %s)\n", m->cfg->run_dir);
		return 1;
	}
	int rc = control_follow_events(m->cfg->run_dir, topic, count, timeout_ms, &err);
	fputs(textbuf_str(&err), stderr);
	textbuf_free(&err);
	return rc < 0 ? 1 : 0;
}

/* Reads a PEM file for `cert import`: it must fit one control frame and
 * be text. Returns a malloc'd NUL-terminated copy, or NULL (reported). */
static char *read_pem_file(const char *path, const char *what)
{
	enum { PEM_MAX = 60 * 1024 };
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "mailctl: %s %s: %s\n", what, path, strerror(errno));
		return NULL;
	}
	char *buf = malloc(PEM_MAX + 1);
	size_t n = buf != NULL ? fread(buf, 1, PEM_MAX + 1, f) : 0;
	bool bad = buf == NULL || ferror(f) || n > PEM_MAX || memchr(buf, '\0', n) != NULL;
	fclose(f);
	if (bad) {
		fprintf(stderr, "mailctl: %s %s: not a PEM text file of at most %d bytes\n", what,
			path, PEM_MAX);
		if (buf != NULL) {
			explicit_bzero(buf, PEM_MAX + 1);
			free(buf);
		}
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static void free_secret(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Client side of "cert import NAME CERT KEY|--stored-key [CHAIN] [--force]":
 * the files' contents go to "cert import-pem". */
static int cert_import(struct mailctl *m, int argc, char **argv)
{
	const char *files[3] = { NULL, NULL, NULL }; /* cert, key, chain */
	bool stored_key = false, force = false;
	int nfiles = 0;
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--stored-key") == 0 && nfiles == 1) {
			stored_key = true;
			nfiles++;
		} else if (strcmp(argv[i], "--force") == 0)
			force = true;
		else if (argv[i][0] != '-' && nfiles < 3)
			files[nfiles++] = argv[i];
		else
			nfiles = 9;
	}
	if (nfiles < 2 || nfiles > 3) {
		fprintf(stderr, "usage: mailctl cert import NAME CERT KEY|--stored-key [CHAIN] [--force]\n");
		return 2;
	}
	char *cert = read_pem_file(files[0], "certificate");
	char *key = stored_key || cert == NULL ? NULL : read_pem_file(files[1], "key");
	char *chain = files[2] != NULL && cert != NULL && (stored_key || key != NULL)
			      ? read_pem_file(files[2], "chain")
			      : NULL;
	int rc = 1;
	if (cert != NULL && (stored_key || key != NULL) && (files[2] == NULL || chain != NULL)) {
		char *nv[12];
		int nc = 0;
		nv[nc++] = "cert";
		nv[nc++] = "import-pem";
		nv[nc++] = argv[2];
		nv[nc++] = "--cert";
		nv[nc++] = cert;
		if (stored_key) {
			nv[nc++] = "--stored-key";
		} else {
			nv[nc++] = "--key";
			nv[nc++] = key;
		}
		if (chain != NULL) {
			nv[nc++] = "--chain";
			nv[nc++] = chain;
		}
		if (force)
			nv[nc++] = "--force";
		nv[nc] = NULL;
		rc = run_and_print(m, nc, nv);
	}
	free(cert);
	free_secret(key);
	free(chain);
	return rc;
}

static int dispatch(struct mailctl *m, int argc, char **argv)
{
	if (strcmp(argv[0], "status") == 0 && !m->online) {
		fprintf(stderr, "status: no maild is running (no control socket in %s)\n", m->cfg->run_dir);
		return 1;
	}
	if (strcmp(argv[0], "events") == 0)
		return cmd_events(m, argc, argv);
	if (strcmp(argv[0], "cert") == 0 && argc >= 3 && strcmp(argv[1], "import") == 0)
		return cert_import(m, argc, argv);
	if (strcmp(argv[0], "user") == 0 && argc == 3 && strcmp(argv[1], "import") == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		return user_import_run(argv[2], m->cfg->password.scheme, m->cfg->password.cost,
				       cpus > 0 ? (unsigned)cpus : 1, submit, m);
	}
	if (strcmp(argv[0], "user") == 0 && argc >= 3 &&
	    (strcmp(argv[1], "add") == 0 || strcmp(argv[1], "passwd") == 0 ||
	     strcmp(argv[1], "auth-test") == 0)) {
		char **nv;
		char *secret, *stored;
		int nc;
		if (prepare_password(m, argc, argv, &nv, &nc, &secret, &stored) < 0)
			return 1;
		int rc = run_and_print(m, nc, nv);
		if (secret != NULL) {
			explicit_bzero(secret, strlen(secret));
			free(secret);
		}
		if (stored != NULL) {
			explicit_bzero(stored, strlen(stored));
			free(stored);
		}
		free(nv);
		return rc;
	}
	return run_and_print(m, argc, argv);
}

int main(int argc, char **argv)
{
	struct mailctl m = { 0 };
	struct textbuf errors = TEXTBUF_INIT;
	const char *config_path = NULL, *store = NULL, *user = NULL;
	int i;

	umask(027); /* the same file modes on the store as maild */
	fd_limit_raise();
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			config_path = argv[++i];
		else if (strcmp(argv[i], "--store") == 0 && i + 1 < argc)
			store = argv[++i];
		else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
			user = argv[++i];
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("mailctl (clustermail) %s\n", CM_VERSION);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (node_config_load(config_path, &m.cfg, &errors) < 0 ||
	    (store != NULL && node_config_set_store(m.cfg, store, &errors) < 0)) {
		fputs(textbuf_str(&errors), stderr);
		textbuf_free(&errors);
		node_config_free(&m.cfg);
		return 1;
	}
	if (user != NULL)
		node_config_set_user(m.cfg, user);
	m.online = control_daemon_running(m.cfg->run_dir) == 1;
	int rc = dispatch(&m, argc - i, argv + i);
	if (m.store != NULL)
		store_close(&m.store);
	if (m.dir != NULL)
		directory_close(&m.dir);
	if (m.secondary[0] != '\0')
		remove_folder(m.secondary);
	node_config_free(&m.cfg);
	textbuf_free(&errors);
	return rc;
}
