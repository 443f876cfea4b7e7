/*
 * prefetch.h — archive-get ahead of PostgreSQL's recovery.
 *
 * PostgreSQL's restore_command fetches one WAL segment per call and waits
 * for it before replaying: with the repository a network away, replay
 * waits on every segment.  After serving segment N, archive-get starts a
 * detached prefetcher that fetches the next segments of the same timeline
 * (those archived) into a spool folder in the local cache; the call for
 * N+1 then takes it from there.
 *
 * Spool: <cache dir>/prefetch/<cluster>/<NAME>, each written as
 * <NAME>.tmp, verified in full (repo_wal_fetch), synced, then renamed: a
 * file named like a segment is complete.  One prefetcher per spool at a
 * time (flock on .lock).  Segments at or before the one asked for, and
 * files older than PREFETCH_MAX_AGE, are removed.  WAL entries are never
 * overwritten, so a spooled segment is the archived one.
 */
#ifndef CAIRN_PREFETCH_H
#define CAIRN_PREFETCH_H

#include <stdint.h>

#include "repo/repo.h"

#define PREFETCH_MAX_AGE 600 /* seconds */

/* The spool folder of `cluster` (made, mode 0700, if missing). */
int pg_prefetch_spool(struct repo *r, const char *cluster, char *out, size_t n,
		      struct cairn_err *err);

/* Moves spooled `name` to `dest` (through dest.cairn-tmp, synced): 1 if it
 * was there, 0 if not (nothing written), or an error. */
int pg_prefetch_take(const char *spool, const char *name, const char *dest,
		     struct cairn_err *err);

/* Spools up to `count` segments after segment `name` (size seg_size) of
 * the same timeline that are archived and not spooled yet, stopping at
 * the first one that is not archived; drops what is at or before `name`
 * or too old.  Returns 0, or CAIRN_ELOCKED when another prefetcher holds the
 * spool (nothing done), or an error. */
int pg_prefetch_run(struct repo *r, const char *cluster, const char *spool,
		    const char *name, uint32_t seg_size, unsigned count,
		    struct cairn_err *err);

#endif
