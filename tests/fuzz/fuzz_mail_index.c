/*
 * libFuzzer harness: reading mailbox index files (storage/index_format.c,
 * storage/index_apply.c, storage/index_read.c's replay) must never read
 * out of bounds, crash or loop on anything a shared disk can hold. The
 * first input byte picks what the rest is taken for:
 *   0  a log file, replayed into a full view
 *   1  a log file, replayed into a light view
 *   2  a snapshot, decoded and loaded into a full view
 *   3  a snapshot, header and keyword table only (what STATUS reads)
 *   4  one log record, decoded and its payload walked
 *   5, 6  like 0 and 1, and 7 like 2, but the harness first makes every
 *      checksum right, so that mutations reach the checks behind them
 *      (record shapes, UID and MODSEQ order, state blocks)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/index_format.h"
#include "storage/index_view.h"
#include "storage/store_crc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_record(const struct index_rec *rec)
{
	struct mail_record m;
	switch (rec->type) {
	case INDEX_REC_APPEND:
		for (uint32_t i = 0; i < rec->count; i++)
			index_rec_msg(rec, i, &m);
		for (uint32_t i = 0; i < index_rec_carry_count(rec); i++)
			(void)index_rec_carry_guid(rec, i)[15];
		break;
	case INDEX_REC_FLAGS:
	case INDEX_REC_EXPUNGE:
		for (uint32_t i = 0; i < rec->count; i++)
			(void)index_rec_range(rec, i);
		break;
	default:
		break;
	}
}

static void fix_log(uint8_t *p, size_t len)
{
	if (len < INDEX_LOG_HEADER_SIZE)
		return;
	uint32_t c = store_crc32c(0, p, INDEX_LOG_SYNCED_OFFSET);
	c = store_crc32c(c, p + 40, INDEX_LOG_HEADER_SIZE - 44);
	index_set_le32(p + INDEX_LOG_HEADER_SIZE - 4, c);
	size_t off = INDEX_LOG_HEADER_SIZE;
	while (len - off >= INDEX_REC_HEADER_SIZE + INDEX_REC_TRAILER_SIZE) {
		uint32_t rs = index_le32(p + off);
		if (rs < INDEX_REC_HEADER_SIZE + INDEX_REC_TRAILER_SIZE || rs % 8 != 0 || rs > len - off)
			return;
		index_set_le32(p + off + rs - 8, rs);
		index_set_le32(p + off + rs - 4, 0);
		index_set_le32(p + off + 4, store_crc32c(0, p + off + 8, rs - 8));
		off += rs;
	}
}

static void fix_snapshot(uint8_t *p, size_t len)
{
	if (len < INDEX_SNAP_HEADER_SIZE)
		return;
	index_set_le32(p + 112, store_crc32c(0, p + INDEX_SNAP_HEADER_SIZE, len - INDEX_SNAP_HEADER_SIZE));
	index_set_le32(p + INDEX_SNAP_HEADER_SIZE - 4, store_crc32c(0, p, INDEX_SNAP_HEADER_SIZE - 4));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0] % 8;
	/* A private copy, so that reading past the input is caught exactly. */
	uint8_t *buf = malloc(size - 1 + 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data + 1, size - 1);
	size_t len = size - 1;
	if (mode == 5 || mode == 6) {
		fix_log(buf, len);
		mode -= 5;
	} else if (mode == 7) {
		fix_snapshot(buf, len);
		mode = 2;
	}
	struct index_view v;
	struct index_snap snap;
	struct index_rec rec;
	index_view_init(&v, mode != 1);
	switch (mode) {
	case 0:
	case 1:
		(void)index_replay_buffer(&v, buf, len, NULL);
		break;
	case 2:
		if (index_snap_decode(buf, len, &snap, NULL) == 0)
			(void)index_load_snapshot(&v, &snap, NULL);
		break;
	case 3:
		if (index_snap_header_decode(buf, len, &snap, NULL) == 0 &&
		    len >= INDEX_SNAP_HEADER_SIZE + snap.keyword_bytes)
			(void)index_snap_keywords_check(buf + INDEX_SNAP_HEADER_SIZE, snap.keyword_bytes,
							snap.state.keywords);
		break;
	case 4:
		if (index_rec_decode(buf, len, &rec, NULL) == INDEX_DECODE_OK)
			walk_record(&rec);
		break;
	}
	index_view_clear(&v);
	free(buf);
	return 0;
}
