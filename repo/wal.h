/*
 * wal.h — archived WAL files: one sealed entry object per file, named
 * wal/<cluster>/<file name in lowercase>, listing the blobs of the file's
 * content and the keyed hash of the whole, so that listing a prefix tells
 * which WAL a restore can reach.
 *
 *   entry   := sealed object, magic "CAIRNWL2" (or "CAIRNWL1"), payload:
 *              str16 cluster, str16 file name (as PostgreSQL names it),
 *              u64 size, hash[32], u64 pushed_ns, uvar nblobs,
 *              nblobs × (id[32], uvar raw_len)
 *   hash    := WL2: keyed BLAKE2b-256 (id_key) over the byte 0x58 ('X')
 *              then every (id[32], u32 raw_len) of the list: the blob ids
 *              commit to the content, so the content is hashed once (for
 *              the ids), not twice;
 *              WL1 (read only): over the byte 0x57 ('W') then the whole
 *              content
 *
 * The cluster and file name inside the sealed payload must equal the
 * object's key: an entry cannot be moved to another name unnoticed.
 *
 * Push is durable and idempotent: the blobs' packs, then their index, then
 * the entry (never overwritten).  Pushing a name that exists with the same
 * content succeeds; with different content fails with CAIRN_EEXIST.
 */
#ifndef CAIRN_WAL_H
#define CAIRN_WAL_H

#include <stdint.h>

#include "repo/repo.h"

#define WAL_NAME_MAX 64
#define CLUSTER_NAME_MAX 64

struct wal_entry {
	char cluster[CLUSTER_NAME_MAX + 1];
	char name[WAL_NAME_MAX + 1];
	uint64_t size;
	uint8_t hash[32];
	int version;      /* 1: WL1 (hash over the content), 2: WL2 (over the list) */
	int64_t pushed_ns;
	struct blob_ref *blobs;
	size_t nblobs;
};

/* 0 if `name` is a valid cluster name: 1 to 64 of [a-z0-9_.-], not
 * starting with '.' and without "..". */
int wal_cluster_name_ok(const char *name);

/* Archives the content of fd (read to the end) as `name`.  *already is set
 * when an identical file was archived before (nothing written).
 * CAIRN_EEXIST when `name` exists with other content. */
int repo_wal_push(struct repo *r, const char *cluster, const char *name, int fd,
		  int *already, struct cairn_err *err);

/* Loads an entry; CAIRN_ENOTFOUND if not archived. */
int repo_wal_stat(struct repo *r, const char *cluster, const char *name,
		  struct wal_entry *e, struct cairn_err *err);
void wal_entry_free(struct wal_entry *e);

/* Writes the archived file to fd, verified (the entry's hash over its
 * list on loading, every blob as it is opened, in parallel, then the size
 * and, for WL1, the whole hash): CAIRN_ECORRUPT on any mismatch,
 * CAIRN_ENOTFOUND if not archived. */
int repo_wal_fetch(struct repo *r, const char *cluster, const char *name, int fd,
		   struct cairn_err *err);

/* Calls cb with the name (as PostgreSQL spells it) of every archived file
 * of a cluster, in no particular order. */
int repo_wal_list(struct repo *r, const char *cluster,
		  int (*cb)(void *arg, const char *name, uint64_t obj_size),
		  void *arg, struct cairn_err *err);

/* Calls cb once per cluster that has archived WAL. */
int repo_wal_clusters(struct repo *r, int (*cb)(void *arg, const char *cluster),
		      void *arg, struct cairn_err *err);

#endif
