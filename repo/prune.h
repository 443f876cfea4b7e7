/*
 * prune.h — removing what no snapshot and no WAL entry references, while
 * backups and archive-push go on (FORMAT.md section 15 has the protocol and
 * why it is safe).
 *
 * The caller holds a SHARED lease with role PRUNE (repo/lock.h) for the
 * whole run: it keeps out other prunes, forget and repair, but no writer.
 * Prune then
 *   1. marks every blob that the snapshots' trees and the WAL entries
 *      reference, in a temporary LMDB environment under the cache folder
 *      (memory stays bounded with millions of blobs; removed at the end);
 *   2. reads every index object and plans: a pack none of whose blobs is
 *      referenced, and a pack no index object names (a crashed writer's),
 *      is deleted; one whose unreferenced share of sealed bytes exceeds
 *      max_unused percent is repacked;
 *   3. repacks (reads, verifies and stores the referenced blobs of those
 *      packs again, in new packs, then an index object) and writes
 *      replacement index objects for every index object that names a pack
 *      that goes, holding its entries of the packs that stay;
 *   4. catches up, without any lock, with what writers added meanwhile:
 *      new snapshots and WAL entries are marked too, and a pack that goes
 *      but holds a blob referenced again is kept (rescued: an index object
 *      naming it is written); so are packs that new index objects name;
 *   5. takes the EXCLUSIVE lock for a short window (it waits for a moment
 *      when no writer runs; writers that start meanwhile wait for it),
 *      catches up once more, then deletes the replaced index objects and
 *      then the packs, and releases the lock;
 *   6. brings its local cache up to date (drops the deleted objects' locations).
 * Everything before step 5 only adds objects; a kill at any point leaves
 * a repository that passes check.
 *
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

#define PRUNE_DEFAULT_LOCK_WAIT_NS (3600ull * 1000000000)
#define PRUNE_DEFAULT_DRAIN_NS (3ull * 1000000000)

struct prune_opts {
	double max_unused;       /* percent: repack packs with more unused bytes */
	int dry_run;             /* plan and report only */
	/* The caller's SHARED lease with role REPO_ROLE_PRUNE (may be NULL in
	 * tests); checked before the first delete. */
	struct repo_lock *lease;
	/* How long to keep trying for the exclusive window (0: default, one
	 * hour), and how long one try waits for running writers to finish
	 * (0: default, 3 s).  Writers whose lease is older than 10 s are taken
	 * for long backups: prune does not try while one runs. */
	uint64_t lock_wait_ns, drain_ns;
	void (*report)(void *arg, const char *msg); /* may be NULL */
	/* Called at each step ("mark", "scan", "list-packs", "plan", "repack", "rewrite",
	 * "catchup", "window", "delete-index" before each batch of index
	 * objects deleted, "delete-pack" before each batch of packs, "done");
	 * for tests that stop prune at each of them.  Deletes run 8 at a time
	 * (one thread each) on the local backend, 1000 per request on S3.
	 * May be NULL. */
	void (*step)(void *arg, const char *name);
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
	/* Concurrency: snapshots and WAL entries written by others while
	 * prune ran (marked during catch-up), packs kept because of them, and
	 * how long the exclusive lock was held. */
	uint64_t new_snapshots, new_wal_files, packs_rescued;
	uint64_t window_ns;
};

/* Marks, plans, and (unless dry_run) repacks and deletes as above, then
 * rebuilds the local cache.  0 on success; CAIRN_ECORRUPT (refusing, see
 * above); CAIRN_ELOCKED if the window could not be had in lock_wait_ns or
 * a lease was lost before deleting; storage errors as they come. */
int repo_prune(struct repo *r, const struct prune_opts *o,
	       struct prune_result *res, struct cairn_err *err);

#endif
