/*
 * drill.h — restore drills: prove a backup restores and runs.
 *
 * The snapshot is restored into a temporary folder (to its consistent end,
 * with WAL from the repository), a temporary PostgreSQL is started on it
 * (no TCP: a private socket folder), recovery is awaited, pg_amcheck runs
 * over every database, every database answers a query and the largest
 * tables are counted; then the server is stopped and the folder removed,
 * whatever happened.  The outcome is recorded in the repository
 * (records/drill/...), so that `cairn status` on any host shows when the
 * last good drill ran.
 *
 * Runs as the database's OS user (PostgreSQL refuses root).
 */
#ifndef CAIRN_DRILL_H
#define CAIRN_DRILL_H

#include "pg/pgrestore.h"

struct pg_drill_opts {
	const char *snapshot;        /* NULL: the cluster's newest */
	const char *cluster;         /* NULL: the only one */
	const char *restore_command; /* as for restore */
	const char *pg_bin;          /* NULL: /usr/lib/postgresql/<major>/bin */
	const char *tmp_base;        /* NULL: $TMPDIR or /tmp */
	unsigned timeout;            /* seconds for recovery (0: 600) */
	fs_warn_fn warn;
	fs_warn_fn say;              /* progress lines ("restored", "started") */
	void *arg;
};

struct pg_drill_table {
	char db[64], name[128];
	long long rows;
};

struct pg_drill_result {
	char snapshot[65];
	char cluster[65];
	int ok;
	double seconds;
	unsigned databases;
	struct pg_drill_table tables[10];
	size_t ntables;
	char detail[512]; /* what failed, or a summary */
};

/* 0 when the drill passed; CAIRN_ECORRUPT (damage met while restoring)
 * or CAIRN_EIO (the server did not start, recovery failed, amcheck found
 * corruption, a query failed) otherwise — res->detail says what.  The
 * record is written in both cases (if the repository can be written). */
int pg_drill_run(struct repo *r, const struct pg_drill_opts *o,
		 struct pg_drill_result *res, struct cairn_err *err);

#endif
