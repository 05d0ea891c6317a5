/*
 * auth_fake: an in-memory struct auth_iface for tests of the protocol
 * wiring (CONVENTIONS 6): no libsasl2, no directory, no threads, no
 * event loop. It knows the users it is given, speaks PLAIN (with or
 * without an initial response), LOGIN (two challenges) and APOP, and
 * checks plaintext passwords.
 *
 * Outcomes are queued, never delivered from inside the call that asked
 * (as the real interface promises); the test delivers them with
 * auth_fake_complete(), which ignores the failure delay but leaves it in
 * the outcome (fake->delay_ms for every failure of credentials) so the
 * caller's handling can be checked. auth_fake_fail_next() makes the next
 * operation fail with a given reason (TEMPORARY, say).
 */
#ifndef CM_NODE_AUTH_FAKE_H
#define CM_NODE_AUTH_FAKE_H

#include "node/auth.h"

struct auth_fake;

struct auth_fake *auth_fake_new(void);
/* Every handle must be freed first. */
void auth_fake_free(struct auth_fake **fake);
const struct auth_iface *auth_fake_iface(void); /* ctx = the struct auth_fake */

/* secret NULL: no APOP for this user. */
void auth_fake_add_user(struct auth_fake *fake, const char *address, const char *password,
			const char *secret, bool enabled);
/* Delay reported with failed credentials (default 0). */
void auth_fake_set_delay(struct auth_fake *fake, unsigned delay_ms);
void auth_fake_fail_next(struct auth_fake *fake, enum auth_reason reason);
/* Delivers every queued outcome (in order); returns how many. */
unsigned auth_fake_complete(struct auth_fake *fake);
unsigned auth_fake_pending(const struct auth_fake *fake);

#endif
