/*
 * check.h — verifying a repository.
 *
 * Structure (always): every index entry names an existing pack; every
 * snapshot's trees load and verify (AEAD tag and keyed hash: the Merkle ids
 * are recomputed from the leaves up as each tree is read); every data blob
 * a file names is indexed in an existing pack; every archived WAL entry
 * opens and every blob it names is indexed in an existing pack.
 * Data (read_data): every pack is read whole; its name must be the hash of
 * its bytes, its directory must open, and every blob in it must open and
 * hash to its id.  Damage is reported with the packs, snapshots and file
 * paths it affects.
 */
#ifndef CAIRN_CHECK_H
#define CAIRN_CHECK_H

#include "repo/fs.h"

struct check_opts {
	int read_data;
	/* Scrub jobs: read only some packs (with read_data).  subset_n > 0:
	 * the packs whose id (first 4 bytes, little-endian) mod subset_n is
	 * subset_k - 1, so N daily runs K = 1..N cover everything;
	 * subset_percent > 0: a random share; since_last_ns > 0: the packs no
	 * scrub has read for that long (scrub state is kept in the repository,
	 * scrub/<time>-<random>, so any host may run it). */
	unsigned subset_k, subset_n;
	double subset_percent;
	int64_t since_last_ns;
	fs_warn_fn report;   /* one line per problem found */
	fs_progress_fn progress;
	void *arg;
};

struct check_result {
	uint64_t snapshots, trees, data_blobs, packs, packs_read;
	uint64_t problems;      /* lines reported */
	uint64_t damaged_packs;
	uint64_t damaged_files; /* (snapshot, path) pairs affected */
	uint64_t wal_files;     /* archived WAL files checked */
	uint64_t damaged_wal;   /* archived WAL files affected */
};

/* 0 when nothing is wrong; CAIRN_ECORRUPT when damage was found (all of it
 * reported); another error when the check itself could not run. */
int repo_check(struct repo *r, const struct check_opts *o,
	       struct check_result *res, struct cairn_err *err);

#endif
