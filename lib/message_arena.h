/*
 * message_arena: the memory pool of one parsed message (struct
 * message_result). Everything a result points to (strings, parameter and
 * address arrays, header fields, envelopes) lives here and is freed in one
 * call with the result. It counts the bytes handed out, so the parser can
 * stop keeping optional data once a result passes MESSAGE_RESULT_MAX;
 * the count is advisory, allocation itself never fails for being over it.
 *
 * Allocation failure (malloc returning NULL) aborts, as textbuf does: the
 * sizes asked for are bounded by lib/message_limits.h, so it means the
 * process is out of memory, not that input was hostile.
 */
#ifndef CM_LIB_MESSAGE_ARENA_H
#define CM_LIB_MESSAGE_ARENA_H

#include <stdbool.h>
#include <stddef.h>

struct message_arena;

struct message_arena *message_arena_create(void);
/* Frees every block; sets *arena to NULL. NULL is a no-op. */
void message_arena_destroy(struct message_arena **arena);

/* Zeroed memory aligned for any type; size 0 gives a valid unique pointer. */
void *message_arena_alloc(struct message_arena *arena, size_t size);
/* A NUL-terminated copy of len bytes. NUL bytes inside are replaced by 0x80
 * so that the copy is a C string of the same length (0x80 is never valid
 * UTF-8 on its own, so it does not pass for text). */
char *message_arena_strndup(struct message_arena *arena, const void *data, size_t len);
/* A byte-exact copy of len bytes plus a terminating NUL (inner NULs kept). */
char *message_arena_memdup(struct message_arena *arena, const void *data, size_t len);
/* Bytes handed out so far. */
size_t message_arena_used(const struct message_arena *arena);

#endif
