/*
 * record.h — small sealed records of what was done to the repository:
 * restore drills and scrubs, so that any host can tell when the last good
 * one ran (cairn status).
 *
 *   records/<kind>/<time_ns, 20 digits>-<8 random hex>   sealed, "CAIRNRC1"
 *   payload := u64 time_ns, u8 ok, str16 host, str16 subject, str16 detail
 *
 * Names sort by time within a kind.  Records are never rewritten.
 */
#ifndef CAIRN_RECORD_H
#define CAIRN_RECORD_H

#include <stdint.h>

#include "repo/repo.h"

#define RECORD_TEXT 512

struct run_record {
	char kind[16];          /* "drill", "scrub" */
	int64_t time_ns;
	int ok;
	char host[256];
	char subject[RECORD_TEXT]; /* e.g. the snapshot and cluster */
	char detail[RECORD_TEXT];  /* what was checked, or what failed */
};

/* Writes a record (kind: [a-z]+). */
int repo_record_put(struct repo *r, const struct run_record *rec, struct cairn_err *err);
/* The newest record of a kind (and, when want_ok, the newest successful
 * one); CAIRN_ENOTFOUND when there is none. */
int repo_record_latest(struct repo *r, const char *kind, int want_ok, struct run_record *out,
		       struct cairn_err *err);

#endif
