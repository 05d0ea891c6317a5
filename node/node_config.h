/*
 * maild configuration: one libconfig file (docs/configuration.md documents
 * every key), or the embedded defaults when no file is given. Values are
 * validated when loaded; errors name file:line. Relative paths are made
 * absolute against the current directory at load time.
 */
#ifndef CM_NODE_NODE_CONFIG_H
#define CM_NODE_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/cidr.h"
#include "lib/password.h"
#include "lib/textbuf.h"
#include "node/auth.h"
#include "node/listener.h"
#include "node/log.h"
#include "node/tls.h"
#include "storage/store.h"

enum node_config_service_id {
	SERVICE_SMTP,
	SERVICE_SUBMISSION,
	SERVICE_SMTPS,
	SERVICE_IMAP,
	SERVICE_IMAPS,
	SERVICE_POP3,
	SERVICE_POP3S,
	SERVICE_HTTP,
	SERVICE_COUNT,
};

struct node_config_service {
	const char *name;  /* static: "smtp", "submission", ... */
	bool enabled;
	char address[64];
	int port;          /* 0 = any free port (tests) */
	enum listener_tls_mode tls; /* implicit for smtps/imaps/pop3s, starttls or none */
	bool require_tls;  /* default: true unless address is a loopback address */
	bool require_tls_set; /* require_tls came from the file */
};

/* Relay domains and DNSBL zones a configuration may list. */
#define NODE_CONFIG_RELAY_DOMAINS_MAX 128
#define NODE_CONFIG_DNSBL_MAX 16
#define NODE_CONFIG_DOMAIN_SIZE 256

/* The "smtp" group. Flat (no pointers), so that it is copied by value. */
struct node_config_smtp {
	uint64_t max_message_size; /* bytes; SIZE and the DATA/BDAT limit */
	unsigned max_recipients;   /* per message */
	/* relay control (node/smtp_policy.c) */
	struct cidr_list trusted_networks; /* clients that may relay */
	char relay_domains[NODE_CONFIG_RELAY_DOMAINS_MAX][NODE_CONFIG_DOMAIN_SIZE];
	size_t n_relay_domains;		   /* lowercase; ".example.org" = its subdomains */
	/* DNSBL (node/smtp_dnsbl.c) */
	char dnsbl[NODE_CONFIG_DNSBL_MAX][NODE_CONFIG_DOMAIN_SIZE];
	size_t n_dnsbl;			   /* zones, lowercase */
	struct cidr_list dnsbl_exceptions; /* clients never looked up */
	char resolver[80];		   /* "addr" or "addr:port"; "" = /etc/resolv.conf */
	unsigned dnsbl_timeout;		   /* seconds */
	/* per-client limits */
	unsigned max_messages_per_minute; /* per client address; 0 = unlimited */
	unsigned command_timeout;	  /* seconds waiting for a command */
	unsigned data_timeout;		  /* seconds for one message's DATA/BDAT */
};

struct node_config {
	char source[1024];       /* file path, or "(defaults)" */
	unsigned node_id;        /* 1..65535, the corosync node id in a cluster */
	char store_dir[1024];    /* absolute */
	char run_dir[1024];      /* absolute: control socket, events socket, blackbox;
				  * default: "run" beside the store directory */
	bool run_dir_set;        /* run_dir came from the file, not derived */
	char user[64];           /* service user when started as root */
	char hostname[256];      /* this node's name in greetings and Received: (default: gethostname) */
	struct node_config_smtp smtp;
	struct {
		bool fsync_each;    /* "fsync": per-file fsync() rounds instead of syncfs() */
		bool reader_locks;  /* readers lock the index log (NFS) */
	} storage;
	struct node_config_queue {
		unsigned max_lifetime;	  /* seconds a message may stay queued (5 days) */
		unsigned delay_warning;	  /* seconds before a delay notice, 0 = none (4 h) */
		unsigned min_backoff;	  /* seconds between attempts, doubling up to max_backoff */
		unsigned max_backoff;
		unsigned max_deliveries;  /* messages being delivered at once */
		unsigned destination_concurrency; /* connections per destination */
		unsigned max_connections; /* outbound connections at once, all destinations */
		unsigned connect_timeout; /* seconds */
		unsigned command_timeout; /* seconds per reply */
		unsigned port;		  /* SMTP port of the hosts found by MX lookup (25) */
		unsigned bounce_size_limit; /* bytes of the original returned in a bounce */
		unsigned quota_warning;	  /* % of a quota whose crossing a delivery logs, 0 = none */
		bool starttls;		  /* opportunistic STARTTLS */
		bool notify_postmaster;	  /* postmaster gets a copy of bounces (headers only) */
		char relayhost[256];	  /* "" = MX; "[host]:port" or "domain" */
		char postmaster[321];	  /* "" = postmaster@hostname */
		char archive[321];	  /* mailbox receiving a copy of every message, "" = none */
		struct {
			char domain[256];
			char nexthop[256];
		} transport[64];	  /* per-domain nexthop overrides */
		size_t ntransport;
	} queue;
	struct {
		enum log_target target;
		char file[1024];
		char facility[32];
		int level;
	} log;
	struct {
		unsigned threads;
		unsigned max_connections;
		unsigned max_connections_per_address;
		size_t connection_input_limit;
		size_t connection_output_limit;
		unsigned idle_timeout;
		unsigned drain_timeout;
		unsigned store_threads;  /* job threads for blocking store work (deliveries wait in fsync) */
	} server;
	struct {
		char tcp[128];           /* optional extra ZeroMQ endpoint, e.g. tcp://127.0.0.1:7025 */
	} control;
	struct {
		enum password_scheme scheme;
		unsigned long cost;
	} password;
	struct tls_settings tls;
	struct auth_settings auth; /* the "auth" group (node/auth.h); now_ms unused */
	unsigned auth_threads;     /* auth.threads: password-checking threads, 0 = one per CPU */
	struct node_config_service services[SERVICE_COUNT];
};

/* path NULL = embedded defaults. On error returns -1 and appends one line
 * per problem ("file:line: message") to errors. */
int node_config_load(const char *path, struct node_config **cfg_r, struct textbuf *errors);
void node_config_free(struct node_config **cfg);
/* --store on the command line wins over the file. 0 or -1 (errors). */
int node_config_set_store(struct node_config *cfg, const char *dir, struct textbuf *errors);
/* The mail store's options from the storage settings; node_id names the
 * opener's temporary area (kept by reference). */
void node_config_store_options(const struct node_config *cfg, const char *node_id,
			       struct store_options *o);
/* --user on the command line wins over the file. */
void node_config_set_user(struct node_config *cfg, const char *user);
const char *node_config_service_name(enum node_config_service_id id);
/* The service id for a name; -1 if there is no such service. */
int node_config_service_id(const char *name);
/* require_tls not set in the file (require_tls_set false): on unless the
 * service listens on loopback only, where plaintext cannot cross a
 * network, or is implicit TLS. Runs at load; a reload that keeps the
 * running address and TLS mode runs it again on them, so the default
 * follows the address actually bound, not the one in the file. */
void node_config_service_derive_require_tls(struct node_config_service *svc);
/* "implicit", "starttls", "none". */
const char *node_config_tls_mode_name(enum listener_tls_mode mode);

#endif
