/* libFuzzer harness: lib/aliases_file.c must never read or write out of
 * bounds, and whole and split input must give the same entries. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/aliases_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int render(const struct aliases_entry *e, void *ctx)
{
	textbuf_printf(ctx, "%u %s", e->line, e->name);
	for (size_t i = 0; i < e->ntargets; i++)
		textbuf_printf(ctx, " %d:%s", (int)e->targets[i].kind, e->targets[i].value);
	textbuf_putc(ctx, '\n');
	return 0;
}

static void parse(const uint8_t *data, size_t size, size_t split, struct textbuf *out)
{
	struct aliases_parser p;
	if (aliases_parser_init(&p, render, NULL, out) < 0)
		abort();
	if (aliases_parser_feed(&p, data, split) == 0 &&
	    aliases_parser_feed(&p, data + split, size - split) == 0)
		(void)aliases_parser_finish(&p);
	aliases_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct textbuf whole = TEXTBUF_INIT, split = TEXTBUF_INIT;
	parse(data, size, size, &whole);
	parse(data, size, size / 2, &split);
	if (strcmp(textbuf_str(&whole), textbuf_str(&split)) != 0)
		abort();
	textbuf_free(&whole);
	textbuf_free(&split);
	return 0;
}
