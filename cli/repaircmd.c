/*
 * repaircmd.c — `cairn repair [--dry-run] [--lock-wait DURATION]`: rebuilds
 * the index from the packs (repo/repair.h) under the EXCLUSIVE lock, then
 * lists what cannot be recovered with a structural check: every snapshot
 * file or folder and every archived WAL file that names a blob no pack
 * holds.  Exit 0 when nothing is lost, 3 when something is, 1 on failure.
 * It never deletes a snapshot or a WAL entry.
 */
#include "cli/cli.h"
#include "repo/check.h"
#include "repo/lock.h"
#include "repo/repair.h"

#include <stdlib.h>
#include <string.h>

#define REPAIR_DEFAULT_WAIT_NS (60ull * 1000000000)

struct repair_out {
	struct cli *c;
	int first; /* JSON: no line printed yet */
};

static void repair_line(void *arg, const char *msg)
{
	struct repair_out *x = arg;
	if (x->c->json || x->c->quiet)
		return;
	printf("%s\n", msg);
}

/* What the check finds after the repair cannot be recovered. */
static void lost_line(void *arg, const char *msg)
{
	struct repair_out *x = arg;
	if (x->c->json) {
		printf("%s", x->first ? "" : ",");
		json_str(stdout, msg);
		x->first = 0;
	} else {
		printf("lost: %s\n", msg);
	}
}

int cmd_repair(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct repo_lock *l = NULL;
	struct repair_result res;
	struct check_result cres;
	struct repair_out x = {c, 1};
	memset(&cres, 0, sizeof(cres));
	if (c->nargs)
		return cli_usage("repair takes no arguments");
	int rc = cli_open(c, &r, &err);
	if (rc)
		return cli_fail(c, rc, &err);
	/* Exclusive: no writer may add index objects while the index is
	 * rebuilt.  Writers that start meanwhile wait (and give up after a
	 * minute); running ones are waited for. */
	struct repo_lock_opts lo;
	memset(&lo, 0, sizeof(lo));
	lo.drain_ns = 3ull * 1000000000;
	lo.wait_ns = c->lock_wait_ns ? (uint64_t)c->lock_wait_ns : REPAIR_DEFAULT_WAIT_NS;
	lo.note = cli_note;
	lo.note_arg = c;
	rc = repo_lock_with(r, REPO_LOCK_EXCLUSIVE, &lo, &l, &err);
	if (rc) {
		cairn_err_prefix(&err, "repair needs the repository to itself");
		goto fail;
	}
	struct repair_opts o = {c->dry_run, repair_line, &x};
	rc = repo_repair(r, &o, &res, &err);
	if (rc)
		goto fail;
	if (c->json)
		printf("{\"dry_run\":%s,\"packs\":%llu,\"packs_missing\":%llu,\"packs_indexed\":%llu,"
		       "\"packs_unreadable\":%llu,\"index_objects\":%llu,\"index_damaged\":%llu,"
		       "\"index_dropped\":%llu,\"index_written\":%llu,\"blobs_recovered\":%llu,"
		       "\"blobs_lost\":%llu,\"lost\":[",
		       c->dry_run ? "true" : "false", (unsigned long long)res.packs,
		       (unsigned long long)res.packs_missing, (unsigned long long)res.packs_indexed,
		       (unsigned long long)res.packs_unreadable, (unsigned long long)res.index_objects,
		       (unsigned long long)res.index_damaged, (unsigned long long)res.index_dropped,
		       (unsigned long long)res.index_written, (unsigned long long)res.blobs_recovered,
		       (unsigned long long)res.blobs_lost);
	else if (!c->quiet)
		printf("%s%llu packs (%llu missing), %llu index objects: %llu damaged and %llu naming "
		       "missing packs %s, %llu packs indexed from their directories into %llu new "
		       "index objects\n",
		       c->dry_run ? "dry run: " : "", (unsigned long long)res.packs,
		       (unsigned long long)res.packs_missing, (unsigned long long)res.index_objects,
		       (unsigned long long)res.index_damaged, (unsigned long long)res.index_dropped,
		       c->dry_run ? "would be dropped" : "dropped",
		       (unsigned long long)res.packs_indexed, (unsigned long long)res.index_written);
	if (!c->dry_run) {
		if (!c->json && !c->quiet && (res.blobs_recovered || res.blobs_lost))
			printf("blobs of the missing packs: %llu found in other packs (recovered), %llu "
			       "in none\n",
			       (unsigned long long)res.blobs_recovered, (unsigned long long)res.blobs_lost);
		struct check_opts co;
		memset(&co, 0, sizeof(co));
		co.report = lost_line;
		co.arg = &x;
		rc = repo_check(r, &co, &cres, &err);
	}
	if (c->json)
		printf("],\"damaged_files\":%llu,\"damaged_wal\":%llu}\n",
		       (unsigned long long)cres.damaged_files, (unsigned long long)cres.damaged_wal);
	if (rc == CAIRN_ECORRUPT) {
		err.code = CAIRN_ECORRUPT;
		snprintf(err.msg, sizeof(err.msg),
			 "repair: %llu file(s) in snapshots and %llu WAL file(s) cannot be recovered "
			 "(listed above); the snapshots are kept: files that a later backup stores "
			 "again become whole",
			 (unsigned long long)cres.damaged_files, (unsigned long long)cres.damaged_wal);
		goto fail;
	}
	if (rc)
		goto fail;
	if (!c->json && !c->quiet && !c->dry_run)
		printf("nothing is lost: every snapshot and WAL file is whole\n");
	repo_unlock(l);
	repo_close(r);
	return EXIT_OK;
fail:
	repo_unlock(l);
	repo_close(r);
	return cli_fail(c, rc, &err);
}
