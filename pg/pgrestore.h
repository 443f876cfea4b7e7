/*
 * pgrestore.h — restoring a PostgreSQL base backup, to its consistent end
 * or to a point in time, and describing what a repository can restore.
 *
 * Before anything is written the plan is checked: the snapshot (given, or
 * the newest that ended before the target), the timeline to follow (its
 * history files must be archived), and every WAL segment from the
 * snapshot's start to the target must be archived — else the restore is
 * refused naming the first missing segment.  Then the files are restored
 * (tablespaces to their original or mapped folders, linked from
 * pg_tblspc), and recovery.signal plus the recovery settings are written
 * to postgresql.auto.conf, with restore_command calling cairn.
 */
#ifndef CAIRN_PGRESTORE_H
#define CAIRN_PGRESTORE_H

#include "pg/pgfmt.h"
#include "repo/fs.h"

enum pg_target {
	PGT_LATEST = 0, /* replay all archived WAL */
	PGT_IMMEDIATE,  /* stop as soon as the backup is consistent */
	PGT_TIME,
	PGT_LSN,
	PGT_XID,
	PGT_NAME,
};

struct pg_restore_opts {
	const char *snapshot;       /* NULL: chosen from the target */
	const char *cluster;        /* NULL: the only cluster with snapshots */
	const char *target_dir;
	enum pg_target kind;
	const char *value;          /* the target as given */
	const char *action;         /* promote (default), pause, shutdown */
	const char *timeline;       /* NULL or "latest", "current", or a number */
	const char *const *ts_from; /* --tablespace-map OLD=NEW */
	const char *const *ts_to;
	size_t nts;
	const char *restore_command; /* with %f and %p */
	int delta;
	int force;
	fs_warn_fn warn;
	fs_progress_fn progress;
	void *arg;
};

struct pg_restore_result {
	char snapshot[65];
	char cluster[65];
	uint32_t timeline;       /* followed */
	char first_wal[32];
	char last_wal[32];       /* newest segment the plan needs or can reach */
	uint64_t segments;       /* checked along the way */
	struct restore_stats st;
};

int pg_restore_run(struct repo *r, const struct pg_restore_opts *o,
		   struct pg_restore_result *res, struct cairn_err *err);

/* Parses a target time ("2026-11-22 10:00:00[.frac][Z|UTC|+HH[:MM]|-HH[:MM]]",
 * 'T' also accepted; without a zone: local time) into unix ns, and writes
 * the same instant in UTC as PostgreSQL reads it ("...+00"). */
int pg_parse_time(const char *s, int64_t *ns, char norm[64]);

/* One contiguous run of archived segments of one timeline. */
struct pg_wal_range {
	uint32_t tli;
	uint64_t first, last; /* segment numbers */
};

/* The archived WAL of a cluster as contiguous runs per timeline, sorted;
 * the history files' timelines in *tlis (malloc'd). */
int pg_wal_ranges(struct repo *r, const char *cluster, uint32_t wal_seg_size,
		  struct pg_wal_range **out, size_t *n, struct cairn_err *err);

#endif
