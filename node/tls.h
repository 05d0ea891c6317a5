/*
 * TLS for maild's services: the server contexts built from the
 * certificates on the store (node/tls_store.h), chosen per connection by
 * service and by SNI, reloadable while connections run. The listener
 * (node/listener_tls.c) asks for one SSL object per connection here and
 * hands it to libevent's OpenSSL bufferevents; protocol engines never see
 * OpenSSL at all (they use conn_starttls() and friends, node/listener.h).
 *
 * Security stance:
 *  - TLS 1.2 minimum by default (1.3 configurable), Mozilla's
 *    "intermediate" cipher list, server cipher preference, security level
 *    2 (RSA >= 2048, ECC >= 224 bits, SHA-1 signatures refused), no
 *    compression, no renegotiation.
 *  - Certificate choice: the SNI name, matched against the domain
 *    assignments (the domain itself or any subdomain of it; the longest
 *    matching domain wins); otherwise the service's certificate; otherwise
 *    the default. A service with none of these has no TLS.
 *  - Session resumption: a session cache per context, and session tickets
 *    whose keys are derived from a secret by time period (HMAC-SHA256 of
 *    the period number), so they rotate every ticket_key_rotation seconds
 *    without coordination. A ticket is accepted during the period it was
 *    issued in and the next one, and renewed in the second. The secret is
 *    random per process unless ticket_key_file names a shared one, in
 *    which case every node that reads the same file accepts every other
 *    node's tickets. Ticket keys survive certificate reloads.
 *  - Client certificates are requested only when configured, and then
 *    recorded (for logs and Received headers), never trusted: nothing
 *    authenticates by them.
 *
 * Threading: tls_server_reload and tls_server_set_settings may run on any
 * thread (SIGHUP on the main thread, `mailctl cert reload` on the control
 * thread) and are serialised inside. A reload builds a complete new
 * generation of contexts and swaps it in; connections keep the generation
 * they started with until they close. tls_server_new_session is called on
 * worker threads.
 *
 * Return values: 0 ok, 1 where stated, -1 error with a message (error_r
 * valid until the next tls_* call on the same thread, or appended to a
 * textbuf where the signature says so).
 */
#ifndef CM_NODE_TLS_H
#define CM_NODE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/textbuf.h"

struct ssl_st;

/* Mozilla "intermediate" (server side TLS guidelines, version 5). */
#define TLS_INTERMEDIATE_CIPHERS                                                                   \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                               \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define TLS_INTERMEDIATE_CIPHERSUITES                                                              \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define TLS_INTERMEDIATE_GROUPS "X25519:prime256v1:secp384r1"

enum tls_protocol {
	TLS_PROTOCOL_1_2,
	TLS_PROTOCOL_1_3,
};

struct tls_settings {
	enum tls_protocol min_protocol;
	char ciphers[512];	/* TLS 1.2 cipher list, OpenSSL syntax */
	char ciphersuites[256]; /* TLS 1.3 suites */
	char groups[128];	/* key exchange groups */
	bool prefer_server_ciphers;
	unsigned session_cache_size;  /* sessions per context; 0 = no cache */
	unsigned session_timeout;     /* seconds a session may be resumed */
	unsigned ticket_key_rotation; /* seconds; 0 = no session tickets */
	char ticket_key_file[1024];   /* shared ticket secret; "" = random per process */
	bool request_client_certificate;
	unsigned handshake_timeout; /* seconds; used by the listener */
};

void tls_settings_defaults(struct tls_settings *s);
/* "TLSv1.2" / "TLSv1.3". 0 or -1. */
int tls_protocol_parse(const char *text, enum tls_protocol *p_r);
const char *tls_protocol_name(enum tls_protocol p);
/* Checks that OpenSSL accepts the cipher list, suites and groups. 0 or -1. */
int tls_settings_check(const struct tls_settings *s, const char **error_r);

struct tls_server;

/* Creates a server with no certificates yet (every service has no TLS
 * until the first successful reload). 0 or -1. */
int tls_server_create(const struct tls_settings *s, const char *store_dir, struct tls_server **ts_r,
		      const char **error_r);
/* New settings for the next reload. */
void tls_server_set_settings(struct tls_server *ts, const struct tls_settings *s);
/* Reads <store>/tls (assignments, the certificates and keys they name,
 * the ticket secret file if configured), builds every context, and swaps
 * them in. 0 with a one-line summary appended to summary, or -1 with the
 * reasons appended to errors: the running generation then stays. */
int tls_server_reload(struct tls_server *ts, struct textbuf *summary, struct textbuf *errors);
/* 1 when a connection to service would get a certificate, 0 if not. */
int tls_server_has_certificate(struct tls_server *ts, const char *service);
/* A server-side SSL object for one connection of service (accept state
 * is the caller's). It holds a reference to the current generation until
 * SSL_free. 0, or -1 (no certificate for the service, out of memory). */
int tls_server_new_session(struct tls_server *ts, const char *service, struct ssl_st **ssl_r,
			   const char **error_r);
/* Frees ts; SSL objects made from it must be gone. NULL-safe; sets *ts to NULL. */
void tls_server_destroy(struct tls_server **ts);

struct tls_session_info {
	char protocol[16];	  /* "TLSv1.3" */
	char cipher[64];	  /* "TLS_AES_256_GCM_SHA384" */
	char sni[256];		  /* the name the client asked for; "" if none */
	char certificate[65];	  /* which of our certificates was served */
	char client_subject[256]; /* RFC 2253; "" without a client certificate */
	bool resumed;
};

/* Ends an established session cleanly: queues close_notify (best effort:
 * not when the transport is full) and marks the session as shut down, so
 * that it stays resumable from the session cache. Call only once the
 * plaintext output has been handed to the session. */
void tls_session_close(struct ssl_st *ssl);
/* Describes an established session. */
void tls_session_describe(struct ssl_st *ssl, struct tls_session_info *info);
/* Text for an OpenSSL error code (as libevent reports them). */
void tls_error_text(unsigned long code, char *buf, size_t size);

#endif
