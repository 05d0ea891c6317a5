/*
 * message_address: RFC 5322 address lists (From, To, Cc, ...; 3.4) parsed
 * into what IMAP ENVELOPE shows (struct message_address in
 * lib/message_result.h documents the result and group markers).
 *
 * Accepted beyond the strict grammar, because real mail has it: the
 * obsolete syntax (source routes, words joined by dots with spaces,
 * comments anywhere), 8-bit bytes in words, an addr-spec followed by a
 * comment ("user@host (Real Name)": the comment becomes the name), a
 * missing domain ("undisclosed-recipients", "<user>": host ""), a missing
 * '>' or ';' (runs to the end), stray specials (skipped). Nested groups
 * are not a thing: a ':' inside a group, or without a group name, is
 * skipped.
 *
 * Security stance: input hostile; no recursion; work and memory linear in
 * the input (at most one address per two input bytes).
 */
#ifndef CM_LIB_MESSAGE_ADDRESS_H
#define CM_LIB_MESSAGE_ADDRESS_H

#include <stddef.h>

#include "lib/message_arena.h"
#include "lib/message_result.h"

/* Parses an address list; never fails (what cannot be understood is
 * skipped). The list is allocated in arena; count 0 for none. */
void message_address_list_parse(struct message_arena *arena, const void *value, size_t len,
				struct message_address_list *list_r);

#endif
