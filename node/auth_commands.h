/*
 * auth_commands: the authentication side of mailctl. The command bodies
 * (cmd_domain_settings, cmd_auth) are declared in node/commands.h with
 * the others; this header is for mailctl's client side, which must know,
 * before it sends a password, whether the user's domain keeps the
 * recoverable secret (then the plaintext goes with the hash, as
 * --password-secret; otherwise only the hash leaves mailctl).
 */
#ifndef CM_NODE_AUTH_COMMANDS_H
#define CM_NODE_AUTH_COMMANDS_H

#include "node/user_import.h"

/* Asks through submit ("domain show DOMAIN") whether the domain of
 * address (or a bare domain) stores secrets: 1 yes, 0 no, -1 unknown
 * (no such domain, malformed address: the real command then says why). */
int auth_client_stores_secrets(import_submit_fn *submit, void *ctx, const char *address);

#endif
