/*
 * Which protocol engines this build serves. Each service of the
 * configuration (smtp, submission, smtps, imap, imaps, pop3, pop3s, http)
 * is listened on only when its engine is registered in services.c; a
 * service without an engine is reported by `mailctl status` and
 * `maild --check-config` as not built, never bound to a socket that
 * would accept and close.
 */
#ifndef CM_NODE_SERVICES_H
#define CM_NODE_SERVICES_H

#include "node/node_config.h"
#include "node/listener.h"

/* The engine serving service id, or NULL when this build has none. */
const struct service_ops *services_engine(enum node_config_service_id id);

#endif
