/*
 * The fixture of the directory's unit tests: a writer on a fresh RocksDB
 * in its own temporary folder, removed afterwards. Include after
 * <cmocka.h>; define _XOPEN_SOURCE 700 first (nftw).
 */
#ifndef CM_TEST_DIRECTORY_FIXTURE_H
#define CM_TEST_DIRECTORY_FIXTURE_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/directory.h"

/* A crypt(3) hash the directory accepts; its password is irrelevant here. */
#define HASH                                                                                       \
	"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"                                       \
	"O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"

struct fixture {
	char tmp[64];
	char path[128];
	struct directory *dir;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* Opens the writer; *f_r is freed by fixture_teardown. 0 or -1. */
static int fixture_setup(struct fixture **f_r)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *error = NULL;
	if (f == NULL)
		return -1;
	strcpy(f->tmp, "/tmp/cm-test-dir-XXXXXX");
	if (mkdtemp(f->tmp) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/directory", f->tmp);
	if (directory_open(f->path, DIRECTORY_WRITER, NULL, &f->dir, &error) != DIRECTORY_OK) {
		fprintf(stderr, "open: %s\n", error);
		nftw(f->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		free(f);
		return -1;
	}
	*f_r = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	directory_close(&f->dir);
	nftw(f->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

#endif
