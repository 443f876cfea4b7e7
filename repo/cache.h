/*
 * cache.h — the per-host LMDB cache of the repository's index: which pack
 * holds each blob, and which index objects have been merged into it.
 *
 * The cache is only a cache: the repository never depends on it, and the
 * whole of it can be rebuilt from the `index/` objects at any time (see
 * index.h for the synchronisation).  It lives in a folder of its own
 * (`<cache-dir>/<repo-id-hex>/`), is shared safely by several processes of
 * the same host (LMDB's own locking), and a cache that cannot be opened
 * (damaged, wrong version, belongs to another repository) is wiped and
 * recreated empty by cache_open.
 *
 * Thread safety: LMDB allows one open environment per file per process:
 * one handle per cache folder per process (a second cache_open of the same
 * folder gives CAIRN_EUSAGE), used by one thread at a time.  A handle is
 * not usable in a child after fork().  Walk callbacks must not call back
 * into the handle (CAIRN_EUSAGE).
 *
 * Errors beyond those listed per function: CAIRN_ECORRUPT when LMDB
 * reports damage or a stored value is malformed (the caller clears and
 * resynchronises), CAIRN_ELOCKED when a rebuild is needed but another
 * process keeps the cache open, CAIRN_ENOSPC / CAIRN_ENOMEM.
 */
#ifndef CAIRN_CACHE_H
#define CAIRN_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "repo/error.h"

#define CAIRN_ID_LEN 32

enum blob_type {
	BLOB_DATA = 1,
	BLOB_TREE = 2,
};

/* Where one blob lives. */
struct blob_loc {
	uint8_t pack[CAIRN_ID_LEN]; /* pack id (its object name, in binary) */
	uint64_t offset;            /* of the sealed blob within the pack */
	uint32_t sealed_len;        /* bytes of the sealed blob */
	uint32_t raw_len;           /* bytes of the plaintext */
	uint8_t type;               /* enum blob_type */
};

/* One index entry: a blob id and its location. */
struct index_entry {
	uint8_t id[CAIRN_ID_LEN];
	struct blob_loc loc;
};

struct cache;

/* Opens (creating if needed) the cache in folder `dir` for the repository
 * whose id is `repo_id`.  A cache that LMDB refuses to open, or that was
 * made for another repository or cache format, is deleted and recreated
 * empty; *rebuilt (may be NULL) is then set to 1, else 0.
 * Errors: CAIRN_EIO (cannot create the folder or files). */
int cache_open(struct cache **out, const char *dir,
	       const uint8_t repo_id[CAIRN_ID_LEN], int *rebuilt,
	       struct cairn_err *err);
void cache_close(struct cache *c); /* NULL-safe */

/* Looks up a blob.  0 and *loc filled, CAIRN_ENOTFOUND, or CAIRN_EIO. */
int cache_lookup(struct cache *c, const uint8_t id[CAIRN_ID_LEN],
		 struct blob_loc *loc, struct cairn_err *err);

/* Every location of a blob: *n is how many (0 if none), the first `max`
 * of them are written to locs.  0, or an error. */
int cache_lookup_all(struct cache *c, const uint8_t id[CAIRN_ID_LEN],
		     struct blob_loc *locs, size_t max, size_t *n,
		     struct cairn_err *err);

/* In one transaction: records every entry as a location vouched for by
 * index object `index_name` (a blob may have several; lookups give one of
 * them) and marks `index_name` as merged.  Merging it again adds nothing. */
int cache_add_index(struct cache *c, const char *index_name,
		    const struct index_entry *entries, size_t n,
		    struct cairn_err *err);

/* 1 if `index_name` was merged, 0 if not, negative on error. */
int cache_has_index(struct cache *c, const char *index_name,
		    struct cairn_err *err);

/* Calls cb for every merged index object name; a non-zero return stops
 * the walk and is returned. */
int cache_each_index(struct cache *c,
		     int (*cb)(void *arg, const char *index_name), void *arg,
		     struct cairn_err *err);

/* Calls cb for every blob location in the cache (any order; a blob with
 * several locations comes once per location). */
int cache_each_blob(struct cache *c,
		    int (*cb)(void *arg, const struct index_entry *e),
		    void *arg, struct cairn_err *err);

/* Forgets the merged index objects `names` (those not merged are ignored):
 * in one small transaction, their names go and their source numbers are
 * marked dead, so that every read ignores the locations they vouched for
 * at once.  The locations themselves are deleted later by cache_sweep. */
int cache_forget_indexes(struct cache *c, const char *const *names, size_t n,
			 struct cairn_err *err);

/* Deletes locations of forgotten index objects, looking at about `budget`
 * values (at least 1000), going on from where the last sweep stopped (by
 * any process).  *removed: locations deleted; *done: nothing is left to
 * sweep.  Both may be NULL. */
int cache_sweep(struct cache *c, size_t budget, uint64_t *removed, int *done,
		struct cairn_err *err);

/* Empties the cache (all blobs, all merged index names). */
int cache_clear(struct cache *c, struct cairn_err *err);

/* Number of locations in the cache (a blob may have several; those of
 * forgotten index objects count until swept). */
int cache_count(struct cache *c, uint64_t *n, struct cairn_err *err);

#endif
