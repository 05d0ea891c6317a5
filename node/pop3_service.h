/*
 * pop3_service: the POP3 engine (proto/pop3) served by maild, for the
 * services pop3 (STLS when a certificate exists) and pop3s (implicit TLS,
 * handshaken by the listener before open). node/pop3_service.c says how.
 */
#ifndef CM_NODE_POP3_SERVICE_H
#define CM_NODE_POP3_SERVICE_H

#include "node/listener.h"

/* One set of hooks for both services; the listener's service_ctx is the
 * struct service_instance (node/services.h) that says which one. */
extern const struct service_ops pop3_service_ops;

#endif
