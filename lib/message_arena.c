/*
 * Bump allocator over a list of blocks: blocks grow from 1 KiB to 64 KiB
 * so a one-part message costs one small malloc; a request larger than a
 * block gets a block of its own.
 */
#include "lib/message_arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_FIRST_BLOCK 1024
#define ARENA_MAX_BLOCK (64 * 1024)

struct arena_block {
	struct arena_block *next;
	size_t size, used;
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

struct message_arena {
	struct arena_block *blocks;
	size_t next_size;
	size_t used;
};

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);
	if (p == NULL)
		abort();
	return p;
}

struct message_arena *message_arena_create(void)
{
	struct message_arena *arena = xcalloc(1, sizeof(*arena));
	arena->next_size = ARENA_FIRST_BLOCK;
	return arena;
}

void message_arena_destroy(struct message_arena **arena_p)
{
	struct message_arena *arena = *arena_p;
	if (arena == NULL)
		return;
	struct arena_block *b = arena->blocks;
	while (b != NULL) {
		struct arena_block *next = b->next;
		free(b);
		b = next;
	}
	free(arena);
	*arena_p = NULL;
}

void *message_arena_alloc(struct message_arena *arena, size_t size)
{
	size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (need < size)
		abort();
	if (need == 0)
		need = ARENA_ALIGN;
	struct arena_block *b = arena->blocks;
	if (b == NULL || b->size - b->used < need) {
		size_t bsize = arena->next_size;
		if (arena->next_size < ARENA_MAX_BLOCK)
			arena->next_size *= 2;
		if (bsize < need)
			bsize = need;
		if (bsize > SIZE_MAX - sizeof(*b))
			abort();
		struct arena_block *nb = malloc(sizeof(*nb) + bsize);
		if (nb == NULL)
			abort();
		nb->size = bsize;
		nb->used = 0;
		/* A dedicated large block goes behind the current one so the
		 * current block's free space stays usable. */
		if (b != NULL && bsize == need && b->size - b->used > ARENA_ALIGN) {
			nb->next = b->next;
			b->next = nb;
		} else {
			nb->next = b;
			arena->blocks = nb;
		}
		b = nb;
	}
	void *p = b->data + b->used;
	b->used += need;
	arena->used += need;
	memset(p, 0, need);
	return p;
}

char *message_arena_memdup(struct message_arena *arena, const void *data, size_t len)
{
	if (len == SIZE_MAX)
		abort();
	char *p = message_arena_alloc(arena, len + 1);
	if (len > 0)
		memcpy(p, data, len);
	p[len] = '\0';
	return p;
}

char *message_arena_strndup(struct message_arena *arena, const void *data, size_t len)
{
	char *p = message_arena_memdup(arena, data, len);
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\0')
			p[i] = (char)0x80;
	}
	return p;
}

size_t message_arena_used(const struct message_arena *arena)
{
	return arena->used;
}
