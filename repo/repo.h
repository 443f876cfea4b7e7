/*
 * repo.h — the repository: the one API that pg/ and cli/ use.
 *
 * A `struct repo` is an open repository: its storage, its keys, its
 * chunker, its LMDB cache, and — while writing — the open packs and the
 * blobs written by this process that the cache does not know yet.
 *
 * The order of writes lives here (repo_flush, repo_snapshot_write):
 *   1. packs are written whole and durably (storage put);
 *   2. then the index object naming them, then the cache learns them;
 *   3. then the snapshot that references them.
 * A crash at any point leaves at most packs that no index names (garbage
 * for prune), never a reference to something missing.
 *
 * Thread safety: none; one handle per thread.  Memory: strings and structs
 * filled by these functions are owned by the caller unless stated.
 */
#ifndef CAIRN_REPO_H
#define CAIRN_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "chunker/fastcdc.h"
#include "repo/buf.h"
#include "repo/cache.h"
#include "repo/crypto.h"
#include "repo/error.h"
#include "repo/snapshot.h"
#include "repo/storage.h"
#include "repo/tree.h"

struct repo;

#define REPO_VERSION 1
#define REPO_DEFAULT_PACK_SIZE (16u * 1024 * 1024)
#define REPO_DEFAULT_ZSTD_LEVEL 3

struct repo_config {
	uint32_t version;
	uint8_t id[32];
	struct fastcdc_params chunker;
	uint32_t pack_size; /* target bytes per pack */
};

struct repo_init_opts {
	const char *url;
	const struct storage_opts *storage; /* may be NULL */
	const char *pass;
	size_t pass_len;
	struct kdf_params kdf;
	struct fastcdc_params chunker; /* zeroes: defaults */
	uint32_t pack_size;            /* 0: default */
	const char *host;
	const char *user;
};

/* Creates a repository at opts->url: config and a first key.  Refuses
 * (CAIRN_EEXIST) where a config already exists.  Writes the id (hex) of the
 * new repository into id_hex. */
int repo_init(const struct repo_init_opts *o, char id_hex[65],
	      struct cairn_err *err);

struct repo_open_opts {
	const char *url;
	const struct storage_opts *storage; /* may be NULL */
	const char *pass; /* passphrase ... */
	size_t pass_len;
	const uint8_t *master; /* ... or the master key itself (host key file), */
	const uint8_t *master_repo_id; /* which must belong to this repository */
	const char *cache_base; /* NULL: $XDG_CACHE_HOME/cairn or ~/.cache/cairn */
	int zstd_level;         /* 0: default */
	/* Called with the cache folder before the cache is opened (the CLI
	 * guards against LMDB faulting on a damaged file); may be NULL. */
	void (*on_cache_dir)(void *arg, const char *dir);
	/* Called with notes worth a -v line (cache rebuilt, ...); may be NULL. */
	void (*note)(void *arg, const char *msg);
	void *note_arg;
};

/* Opens a repository: reads config, finds a key that opens with the
 * passphrase (CAIRN_EPASS if none), opens and synchronises the cache.
 * CAIRN_ENOREPO when the location has no repository. */
int repo_open(struct repo **out, const struct repo_open_opts *o,
	      struct cairn_err *err);
/* Closes without flushing: whatever was not flushed is lost (it was never
 * referenced).  NULL-safe. */
void repo_close(struct repo *r);

const struct repo_config *repo_get_config(const struct repo *r);
struct storage *repo_get_storage(struct repo *r);
const struct fastcdc *repo_get_chunker(const struct repo *r);
const struct repo_keys *repo_get_keys(const struct repo *r);
/* The folder of this repository's local cache. */
const char *repo_cache_dir(const struct repo *r);
/* Name of the key file that opened the repository ("" for a master key). */
const char *repo_key_in_use(const struct repo *r);

/* ---- blobs ------------------------------------------------------------ */

struct repo_write_stats {
	uint64_t new_blobs;
	uint64_t new_bytes;    /* plaintext bytes of new blobs */
	uint64_t stored_bytes; /* sealed bytes of new blobs */
	uint64_t packs;        /* packs written */
};

/* Stores a blob unless the repository has it already; *added (may be NULL)
 * tells which.  The blob is durable only after repo_flush. */
int repo_put_blob(struct repo *r, uint8_t type, const void *p, size_t n,
		  uint8_t id[32], int *added, struct cairn_err *err);
/* The same, but stores the blob even when the index names it already (in
 * a pack that prune is about to delete); a blob this handle wrote since
 * its last index object is not written twice. */
int repo_put_blob_force(struct repo *r, uint8_t type, const void *p, size_t n,
			uint8_t id[32], struct cairn_err *err);
/* Reads a blob, verified (AEAD tag and keyed hash), into out.
 * CAIRN_ENOTFOUND if no index names it; CAIRN_ECORRUPT if it fails
 * verification (the message names the pack). */
int repo_get_blob(struct repo *r, uint8_t type, const uint8_t id[32],
		  struct buf *out, struct cairn_err *err);
/* Where a blob lives (cache lookup, after this process's own writes are
 * flushed).  CAIRN_ENOTFOUND if unknown. */
int repo_find_blob(struct repo *r, const uint8_t id[32], struct blob_loc *loc,
		   struct cairn_err *err);
/* 1 if the repository holds blob `id` of `type` in a pack that exists (as
 * listed once per handle), 0 if not, <0 on error. */
int repo_has_blob(struct repo *r, uint8_t type, const uint8_t id[32],
		  struct cairn_err *err);
/* Finishes the open packs, writes them, then the index object naming them,
 * then records them in the cache. */
int repo_flush(struct repo *r, struct cairn_err *err);
const struct repo_write_stats *repo_get_write_stats(const struct repo *r);

/* Batches, on every core (par.h): stores blobs in[0..n) of one type like
 * repo_put_blob each, writing their ids to ids[i]: hashed in parallel,
 * looked up in order, the new ones sealed in parallel and added to the
 * packs in order. */
struct blob_in {
	const void *p;
	size_t n;
};
int repo_put_blobs(struct repo *r, uint8_t type, const struct blob_in *in, size_t n,
		   uint8_t (*ids)[32], struct cairn_err *err);
/* Reads the blobs refs[0..n) of one type, opened and verified in parallel
 * (neighbours in a pack come in one read), and hands each to sink in
 * order.  At the first blob that cannot be read or fails verification
 * (CAIRN_ECORRUPT, CAIRN_ENOTFOUND, err naming blob or pack) it returns,
 * after the blobs before it went to sink; a non-zero return of sink stops
 * and is returned. */
int repo_get_blobs(struct repo *r, uint8_t type, const struct blob_ref *refs, size_t n,
		   int (*sink)(void *arg, size_t i, const uint8_t *p, size_t len), void *arg,
		   struct cairn_err *err);

/* Loads and decodes a tree blob. */
int repo_get_tree(struct repo *r, const uint8_t id[32], struct tree *t,
		  struct cairn_err *err);
/* Encodes and stores a tree blob. */
int repo_put_tree(struct repo *r, struct tree *t, uint8_t id[32],
		  struct cairn_err *err);
/* A decoded list-form file node: loads its list blob and fills nd->blobs
 * (nothing to do for an inline node or one filled already).  0, or
 * CAIRN_ECORRUPT / CAIRN_ENOTFOUND when the list blob is damaged, missing
 * or does not fit the node (err names the file), or another error. */
int repo_node_blobs(struct repo *r, struct node *nd, struct cairn_err *err);
/* A file node just written (nd->blobs filled): chooses its form.  Fewer
 * than TREE_LIST_MIN blobs stay inline; otherwise, if `prev` (the same
 * file in the parent snapshot, or NULL) is in list form and the lists
 * differ in at most 1/8 of the entries, nd becomes prev's list blob plus a
 * patch; else the list is stored as a list blob of its own (deduplicated
 * like any blob).  nd->blobs stay filled. */
int repo_node_store_list(struct repo *r, struct node *nd, const struct node *prev,
			 struct cairn_err *err);

/* ---- index ------------------------------------------------------------ */

/* Brings the cache up to date with index/: merges index objects it has not
 * seen, and rebuilds it from scratch if one it merged is gone. */
int repo_sync_index(struct repo *r, struct cairn_err *err);
/* Index objects that could not be read or opened when the cache was last
 * synchronised (they are skipped: their blobs are unknown until repair). */
void repo_each_bad_index(struct repo *r,
			 void (*cb)(void *arg, const char *name,
				    const struct cairn_err *e),
			 void *arg);
/* Deletes up to about `budget` cache locations of index objects that are
 * gone (SIZE_MAX: all of them); every sync does SWEEP_PER_SYNC. */
#define SWEEP_PER_SYNC 200000
int repo_sweep_cache(struct repo *r, size_t budget, struct cairn_err *err);
/* Forgets the cache and rebuilds it from index/. */
int repo_rebuild_index(struct repo *r, struct cairn_err *err);

/* Calls cb for every blob the cache knows (any order); cb must not call
 * back into the repository. */
int cache_each_blob_of(struct repo *r,
		       int (*cb)(void *arg, const struct index_entry *e),
		       void *arg, struct cairn_err *err);

/* For check: every location the cache knows for blob `id` (see
 * cache_lookup_all). */
int cache_locs_of(struct repo *r, const uint8_t id[32], struct blob_loc *locs,
		  size_t max, size_t *n, struct cairn_err *err);

/* Reads and opens one index object (`name`: 64 hex digits); *out is
 * malloc'd (caller frees).  CAIRN_ECORRUPT when it is damaged,
 * CAIRN_ENOTFOUND when it is gone. */
int repo_index_read(struct repo *r, const char *name, struct index_entry **out,
		    size_t *n, struct cairn_err *err);
/* Writes entries e[0..n) as a new index object, durably (the cache is not
 * told: callers rebuild it); sets its name. */
int repo_index_write(struct repo *r, const struct index_entry *e, size_t n,
		     char name[65], struct cairn_err *err);

/* ---- snapshots -------------------------------------------------------- */

/* Flushes, then writes the snapshot object (last); sets s->name. */
int repo_snapshot_write(struct repo *r, struct snapshot *s,
			struct cairn_err *err);
/* All snapshots, oldest first (caller frees with repo_snapshots_free).
 * A snapshot object that cannot be read is reported through `bad` (may be
 * NULL) and skipped. */
int repo_snapshots_load(struct repo *r, struct snapshot **out, size_t *n,
			void (*bad)(void *arg, const char *name,
				    const struct cairn_err *e),
			void *bad_arg, struct cairn_err *err);
void repo_snapshots_free(struct snapshot *s, size_t n);
/* Resolves "latest", a full name, or a unique prefix of >= 8 hex digits. */
int repo_snapshot_find(struct repo *r, const char *ref, struct snapshot *out,
		       struct cairn_err *err);

/* ---- keys ------------------------------------------------------------- */

int repo_key_list(struct repo *r, struct key_info **out, size_t *n,
		  struct cairn_err *err);
/* Adds a key file for another passphrase; writes its name. */
int repo_key_add(struct repo *r, const char *pass, size_t pass_len,
		 const struct kdf_params *kdf, const char *host,
		 const char *user, char name[65], struct cairn_err *err);
/* Removes a key file named by its name or a unique prefix; refuses the key
 * in use and the last key (CAIRN_EUSAGE). */
int repo_key_remove(struct repo *r, const char *ref, struct cairn_err *err);

/* ---- config ----------------------------------------------------------- */

/* The config ends with a MAC under the keys' cfg_key: config_encode
 * appends it, config_verify checks it once the keys are known. */
int config_encode(const struct repo_config *c, const struct repo_keys *k,
		  struct buf *out);
int config_decode(const void *p, size_t n, struct repo_config *c,
		  struct cairn_err *err);
int config_verify(const void *p, size_t n, const struct repo_keys *k,
		  struct cairn_err *err);

/* ---- index objects ---------------------------------------------------- */

/* Payload of an index object (sealed with magic "CAIRNIX1"). */
int index_encode(const struct index_entry *e, size_t n, struct buf *out);
int index_decode(const void *p, size_t n, struct index_entry **out,
		 size_t *nout, struct cairn_err *err);

#endif
