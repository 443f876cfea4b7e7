/*
 * prune.h — removing what no snapshot and no WAL entry references.
 *
 * Mark: every snapshot's trees (tree blobs and the data blobs of files) and
 * every archived WAL entry (its data blobs) are walked, and the ids they
 * reference are recorded in a temporary LMDB environment under the cache
 * folder (memory stays bounded with millions of blobs; the folder is
 * removed at the end).
 * Sweep: every index object is read; a pack none of whose blobs is
 * referenced is deleted; a pack whose unreferenced share (of sealed bytes)
 * exceeds max_unused percent is repacked: its referenced blobs are read,
 * verified and written to new packs (and a new index object); packs that
 * no index object names (left by a crashed writer) are deleted.
 *
 * Order (FORMAT.md section 15), each step durable before the next:
 *   1. new packs of repacked blobs, then their index object;
 *   2. replacement index objects for every index object that names a
 *      pack to delete, holding its entries of the packs that stay;
 *   3. the replaced index objects are deleted;
 *   4. then the packs.
 * A crash at any point leaves a repository that passes check: at worst
 * duplicate copies of blobs and duplicate index entries (valid), or packs
 * no index names (garbage for the next prune).
 *
 * The caller must hold the repository's EXCLUSIVE lock (repo_lock) from
 * before repo_prune until it returns: prune relies on no writer adding
 * references meanwhile (FORMAT.md section 15, "what a deleter may assume").
 * Prune refuses (CAIRN_ECORRUPT) to run on a repository where a snapshot,
 * a tree, a WAL entry or an index object cannot be read, or where a
 * referenced blob is in no index: run check (and repair) first.
 *
 * Not thread-safe (one repo handle).  Never prints: lines go to `report`.
 */
#ifndef CAIRN_PRUNE_H
#define CAIRN_PRUNE_H

#include <stdint.h>

#include "repo/error.h"
#include "repo/repo.h"

struct repo_lock;

struct prune_opts {
	double max_unused;      /* percent: repack packs with more unused bytes */
	int dry_run;            /* plan and report only */
	struct repo_lock *lock; /* checked before the first delete (may be NULL) */
	void (*report)(void *arg, const char *msg); /* may be NULL */
	void *arg;
};

struct prune_result {
	uint64_t snapshots, wal_files;
	uint64_t referenced;      /* distinct blob ids referenced (trees + data) */
	uint64_t packs, pack_bytes;          /* before */
	uint64_t packs_deleted, bytes_deleted;   /* unused and unindexed packs */
	uint64_t packs_unindexed;
	uint64_t packs_repacked, bytes_repacked; /* old packs replaced */
	uint64_t blobs_repacked, bytes_written;  /* sealed bytes of new packs */
	uint64_t index_written, index_deleted;
};

/* Marks, plans, and (unless dry_run) repacks and deletes as above, then
 * rebuilds the local cache.  0 on success; CAIRN_ECORRUPT (refusing, see
 * above); CAIRN_ELOCKED if the lock was lost before deleting; storage
 * errors as they come. */
int repo_prune(struct repo *r, const struct prune_opts *o,
	       struct prune_result *res, struct cairn_err *err);

#endif
