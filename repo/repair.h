/*
 * repair.h — rebuilding the index from the packs (FORMAT.md section 15,
 * "repair").
 *
 * Packs are self-describing (pack.h): each ends with a sealed directory of
 * its blobs.  repo_repair
 *   1. lists packs/ and reads every index object; an index object that
 *      cannot be read or opened (damaged), or that names a pack that does
 *      not exist, is to be dropped; the others stay;
 *   2. reads the directory of every pack that no index object that stays
 *      names (two ranged reads each: trailer, then directory) — where a
 *      directory cannot be read, the pack's entries in the dropped index
 *      objects are used instead, if any;
 *   3. writes new index objects naming those packs' blobs, durably;
 *   4. only then deletes the dropped index objects, and rebuilds the local
 *      cache.
 * A blob that a lost pack held but that another pack holds too (a later
 * backup stored it again, finding the pack gone) is found there from then
 * on: the snapshots that need it restore again.  What no pack holds stays
 * lost; repair never deletes a snapshot or a WAL entry, and the caller
 * lists what is lost with a structural check (check.h).
 *
 * The caller holds the EXCLUSIVE lock (no writer adds index objects
 * meanwhile).  Killed at any point, the repository is no worse: new index
 * objects name only packs that exist, and an index object is deleted only
 * after its replacements are durable.
 *
 * Not thread-safe (one repo handle).  Never prints: lines go to `report`.
 */
#ifndef CAIRN_REPAIR_H
#define CAIRN_REPAIR_H

#include <stdint.h>

#include "repo/error.h"
#include "repo/repo.h"

struct repair_opts {
	int dry_run;                                /* plan and report only */
	void (*report)(void *arg, const char *msg); /* may be NULL */
	void *arg;
};

struct repair_result {
	uint64_t packs;             /* packs listed */
	uint64_t packs_missing;     /* named by an index object, but gone */
	uint64_t packs_indexed;     /* directories read into new index objects */
	uint64_t packs_unreadable;  /* no directory and no entries elsewhere */
	uint64_t index_objects;     /* listed */
	uint64_t index_damaged;     /* dropped: cannot be read or opened */
	uint64_t index_dropped;     /* dropped: name a missing pack */
	uint64_t index_written;
	uint64_t blobs_recovered;   /* of missing packs, held by another pack */
	uint64_t blobs_lost;        /* of missing packs, held by no pack */
};

/* Rebuilds the index as above.  0 on success (whatever was lost: the
 * caller checks); storage errors as they come. */
int repo_repair(struct repo *r, const struct repair_opts *o,
		struct repair_result *res, struct cairn_err *err);

#endif
