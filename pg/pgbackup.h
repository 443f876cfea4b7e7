/*
 * pgbackup.h — base backups of a running PostgreSQL cluster.
 *
 * A session is held open with libpq from pg_backup_start() to
 * pg_backup_stop(); in between, the files of PGDATA (and of every
 * tablespace, stored under pg_tblspc/<oid>/) are read directly and stored
 * through repo_backup, skipping what a base backup must skip.  backup_label
 * and tablespace_map, as returned by pg_backup_stop(), become files at the
 * snapshot's root.  With data checksums on, every page read is verified.
 *
 * Uses only the repo/ API for storage.  Not thread-safe.
 */
#ifndef CAIRN_PGBACKUP_H
#define CAIRN_PGBACKUP_H

#include <libpq-fe.h>

#include "repo/fs.h"
#include "pg/pgfmt.h"

struct pg_backup_opts {
	const char *pgdata;
	const char *conninfo;   /* NULL or "": libpq's PG* environment */
	const char *cluster;    /* NULL: derived from the system identifier */
	const char *host;
	const char *const *tags;
	size_t ntags;
	int full_read;          /* read every file, reuse nothing */
	/* Relation files are cut every page_chunk bytes (a multiple of the
	 * cluster's block size, at most the chunker's max); 0: the default,
	 * PG_PAGE_CHUNK; PG_PAGE_CHUNK_OFF: content-defined like other files. */
	uint32_t page_chunk;
	int ignore_checksum_errors;
	/* Seconds to wait for the backup's last WAL segment to reach the
	 * repository (0: 60).  Without it the backup cannot be restored. */
	unsigned archive_timeout;
	fs_warn_fn warn;
	fs_progress_fn progress;
	void *arg;
};

/* Chosen by measurement: bench/chunk_sizes.sh, bench/RESULTS.md. */
#define PG_PAGE_CHUNK (16u * 1024)
#define PG_PAGE_CHUNK_OFF UINT32_MAX

struct pg_backup_result {
	uint64_t checksum_errors;
	uint64_t pages_checked;
	int checksums_enabled;
	int have_parent;
	char parent[65];
};

/* Takes a base backup and writes its snapshot.  Returns 0, or
 * CAIRN_EPARTIAL when the snapshot was written but pages failed their
 * checksums (and ignore_checksum_errors is off) or files could not be
 * read, or an error (no snapshot written). */
int pg_backup_run(struct repo *r, const struct pg_backup_opts *o,
		  struct snapshot *s, struct pg_backup_result *res,
		  struct cairn_err *err);

/* The cut size for relation files that o->page_chunk asks for, given the
 * cluster's block size and the repository's largest chunk (0: off).
 * CAIRN_EUSAGE when it is not a whole number of blocks or too large. */
int pg_page_chunk(const struct pg_backup_opts *o, uint32_t blcksz, uint32_t chunk_max,
		  uint32_t *out, struct cairn_err *err);

/* The first line of libpq's error for `res` (or the connection; c may be
 * NULL), without its "ERROR:  "/"FATAL:  " prefix, in buf. */
const char *pg_pq_msg(PGconn *c, const PGresult *res, char *buf, size_t n);

/* Reads PGDATA/global/pg_control. */
int pg_read_control(const char *pgdata, struct pg_control *ctl,
		    struct cairn_err *err);

/* The default cluster name of a data folder: its system identifier in
 * decimal (out: at least 21 bytes). */
int pg_cluster_name(const char *pgdata, char *out, size_t n,
		    struct cairn_err *err);

#endif
