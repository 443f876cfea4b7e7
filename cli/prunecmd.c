/*
 * prunecmd.c — `cairn forget` (retention: repo/forget.h, and the WAL that
 * follows the backups) and `cairn prune` (repo/prune.h).
 *
 * Locks.  forget takes a SHARED lock with role FORGET: it deletes only
 * snapshot objects and WAL entries, which no concurrent writer needs — a
 * backup that took a forgotten snapshot as its parent reuses blobs, and
 * blobs are deleted only by prune; an archive-push running meanwhile
 * writes a NEW segment, while forget removes only WAL older than a kept
 * backup's start.  So forget never stops backups or archive-push.  It does
 * not run beside a prune (the roles conflict): prune marks each WAL entry
 * once, by name, and must not see one deleted and written again.
 *
 * prune takes a SHARED lock with role PRUNE for its whole run, and the
 * EXCLUSIVE lock only for its short deletion window (FORMAT.md section
 * 15): backups and archive-push go on meanwhile; one that starts during
 * the window waits for it (cli_lease_take).
 *
 * Test hooks: with CAIRN_TEST_PRUNE_KILL=STEP[:N] in the environment, prune
 * kills itself (SIGKILL) at the N-th (default first) time it reaches STEP
 * (prune.h names the steps), so that tests stop it at each of them; with
 * CAIRN_TEST_PRUNE_PAUSE=STEP:FILE it waits at STEP until FILE exists, so
 * that tests run a writer at a chosen point of a prune.
 */
#include "cli/cli.h"
#include "pg/pgfmt.h"
#include "repo/forget.h"
#include "repo/lock.h"
#include "repo/prune.h"
#include "repo/wal.h"

#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void report_line(void *arg, const char *msg)
{
	struct cli *c = arg;
	if (!c->json && !c->quiet)
		printf("%s\n", msg);
	else if (c->json && c->verbose)
		fprintf(stderr, "cairn: %s\n", msg); /* JSON on stdout, the lines here */
}

/* Test hooks (see the top of this file). */
struct kill_at {
	char step[64];
	long n, seen;
	char pause_step[64];
	const char *pause_file;
	int paused;
};

static void test_hooks_init(struct kill_at *k)
{
	const char *v = getenv("CAIRN_TEST_PRUNE_KILL");
	if (v && *v) {
		const char *colon = strchr(v, ':');
		size_t n = colon ? (size_t)(colon - v) : strlen(v);
		snprintf(k->step, sizeof(k->step), "%.*s", (int)n, v);
		k->n = colon ? strtol(colon + 1, NULL, 10) : 1;
	}
	v = getenv("CAIRN_TEST_PRUNE_PAUSE");
	const char *colon = v ? strchr(v, ':') : NULL;
	if (colon) {
		snprintf(k->pause_step, sizeof(k->pause_step), "%.*s", (int)(colon - v), v);
		k->pause_file = colon + 1;
	}
}

static void test_step(struct kill_at *k, const char *name)
{
	if (k->pause_file && !k->paused && !strcmp(name, k->pause_step)) {
		/* Until the test creates the file (at most a minute). */
		k->paused = 1;
		for (int i = 0; i < 1200 && access(k->pause_file, F_OK) != 0; i++)
			usleep(50 * 1000);
	}
	if (!k->step[0] || strcmp(name, k->step) || ++k->seen < k->n)
		return;
	fflush(stdout);
	kill(getpid(), SIGKILL);
}

struct prune_ctx {
	struct cli *c;
	struct kill_at kill;
};

static void prune_report(void *arg, const char *msg)
{
	struct prune_ctx *x = arg;
	report_line(x->c, msg);
}

static void prune_step(void *arg, const char *name)
{
	struct prune_ctx *x = arg;
	if (x->c->verbose)
		fprintf(stderr, "cairn: prune: %s\n", name);
	test_step(&x->kill, name);
}

static int run_prune(struct cli *c, struct repo *r)
{
	struct cairn_err err = {0, ""};
	struct repo_lock *l = NULL;
	struct prune_result res;
	struct prune_ctx x;
	memset(&x, 0, sizeof(x));
	x.c = c;
	test_hooks_init(&x.kill);
	/* Shared, role prune: other prunes and forget are refused (forget is
	 * waited for a while: it is short), writers go on. */
	struct repo_lock_opts lo;
	memset(&lo, 0, sizeof(lo));
	lo.role = REPO_ROLE_PRUNE;
	lo.wait_ns = 60ull * 1000000000;
	lo.note = cli_note;
	lo.note_arg = c;
	int rc = repo_lock_with(r, REPO_LOCK_SHARED, &lo, &l, &err);
	if (rc) {
		cairn_err_prefix(&err, "prune cannot start");
		return cli_fail(c, rc, &err);
	}
	struct prune_opts o;
	memset(&o, 0, sizeof(o));
	o.max_unused = c->max_unused;
	o.dry_run = c->dry_run;
	o.lease = l;
	o.lock_wait_ns = (uint64_t)c->lock_wait_ns;
	o.report = prune_report;
	o.step = prune_step;
	o.arg = &x;
	rc = repo_prune(r, &o, &res, &err);
	repo_unlock(l);
	if (rc)
		return cli_fail(c, rc, &err);
	char before[32], del[32], rep[32], wr[32];
	fmt_bytes(before, sizeof(before), res.pack_bytes);
	fmt_bytes(del, sizeof(del), res.bytes_deleted);
	fmt_bytes(rep, sizeof(rep), res.bytes_repacked);
	fmt_bytes(wr, sizeof(wr), res.bytes_written);
	if (c->json) {
		printf("{\"dry_run\":%s,\"snapshots\":%llu,\"wal_files\":%llu,\"referenced_blobs\":%llu,"
		       "\"packs\":%llu,\"pack_bytes\":%llu,\"packs_deleted\":%llu,\"bytes_deleted\":%llu,"
		       "\"packs_unindexed\":%llu,\"packs_repacked\":%llu,\"bytes_repacked\":%llu,"
		       "\"blobs_repacked\":%llu,\"bytes_written\":%llu,\"index_written\":%llu,"
		       "\"index_deleted\":%llu,\"new_snapshots\":%llu,\"new_wal_files\":%llu,"
		       "\"packs_rescued\":%llu,\"window_s\":%.3f}\n",
		       c->dry_run ? "true" : "false", (unsigned long long)res.snapshots,
		       (unsigned long long)res.wal_files, (unsigned long long)res.referenced,
		       (unsigned long long)res.packs, (unsigned long long)res.pack_bytes,
		       (unsigned long long)res.packs_deleted, (unsigned long long)res.bytes_deleted,
		       (unsigned long long)res.packs_unindexed, (unsigned long long)res.packs_repacked,
		       (unsigned long long)res.bytes_repacked, (unsigned long long)res.blobs_repacked,
		       (unsigned long long)res.bytes_written, (unsigned long long)res.index_written,
		       (unsigned long long)res.index_deleted, (unsigned long long)res.new_snapshots,
		       (unsigned long long)res.new_wal_files, (unsigned long long)res.packs_rescued,
		       (double)res.window_ns / 1e9);
	} else if (!c->quiet) {
		printf("%s%llu snapshots, %llu WAL files, %llu blobs referenced; %llu packs (%s)\n"
		       "%s %llu packs (%s), repack %llu packs (%s) into %s\n",
		       c->dry_run ? "dry run: " : "", (unsigned long long)res.snapshots,
		       (unsigned long long)res.wal_files, (unsigned long long)res.referenced,
		       (unsigned long long)res.packs, before,
		       c->dry_run ? "would delete" : "deleted", (unsigned long long)res.packs_deleted,
		       del, (unsigned long long)res.packs_repacked, rep, wr);
		if (res.new_snapshots || res.new_wal_files || res.packs_rescued)
			printf("written meanwhile by others: %llu snapshots, %llu WAL files (%llu packs "
			       "kept for them)\n",
			       (unsigned long long)res.new_snapshots,
			       (unsigned long long)res.new_wal_files,
			       (unsigned long long)res.packs_rescued);
		if (res.window_ns)
			printf("writers were held off for %.2f s\n", (double)res.window_ns / 1e9);
	}
	return EXIT_OK;
}

int cmd_prune(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	if (c->nargs)
		return cli_usage("prune takes no arguments");
	int rc = cli_open(c, &r, &err);
	if (rc)
		return cli_fail(c, rc, &err);
	rc = run_prune(c, r);
	repo_close(r);
	return rc;
}

/* ---- forget ---------------------------------------------------------------- */

struct seg_list {
	uint64_t *v;
	size_t n, cap;
};

static int seg_add(struct seg_list *l, uint64_t s)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 64;
		uint64_t *v = realloc(l->v, nc * sizeof(*v));
		if (!v)
			return -1;
		l->v = v;
		l->cap = nc;
	}
	l->v[l->n++] = s;
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* What WAL of one cluster stays: the kept snapshots, newest first. */
struct wal_rule {
	const struct snapshot **kept;
	size_t nkept;
	unsigned keep_wal_for;
	uint32_t seg;
	uint64_t floor;      /* below: removed */
	uint64_t pitr_floor; /* below (and not in a kept backup's own range): removed */
};

struct wal_scan {
	struct wal_rule *w;
	char **names;
	size_t nnames;
	struct seg_list segs;
	int rc;
};

static int wal_scan_one(void *arg, const char *name, uint64_t size)
{
	struct wal_scan *s = arg;
	struct wal_rule *w = s->w;
	struct pg_walname wn;
	(void)size;
	if (pg_walname_parse(name, w->seg, &wn) != 0 || wn.kind == PG_WALNAME_HISTORY)
		return 0; /* history files (and names we do not know) stay */
	int gone = wn.segno < w->floor;
	if (!gone && wn.kind != PG_WALNAME_BACKUP_LABEL && wn.segno < w->pitr_floor) {
		gone = 1;
		for (size_t i = w->keep_wal_for; i < w->nkept && gone; i++) {
			struct pg_walname a, b;
			if (pg_walname_parse(w->kept[i]->start_wal, w->seg, &a) == 0 &&
			    pg_walname_parse(w->kept[i]->stop_wal, w->seg, &b) == 0 &&
			    wn.segno >= a.segno && wn.segno <= b.segno)
				gone = 0;
		}
	}
	if (!gone)
		return 0;
	if (strlist_add(&s->names, &s->nnames, name) ||
	    (wn.kind != PG_WALNAME_BACKUP_LABEL && seg_add(&s->segs, wn.segno)))
		return s->rc = CAIRN_ENOMEM;
	return 0;
}

/* Plans and (unless dry-run) removes the WAL of one cluster that no kept
 * snapshot needs; prints the ranges. */
static int forget_wal(struct cli *c, struct repo *r, const char *cluster,
		      const struct snapshot **kept, size_t nkept, int *first_json,
		      struct cairn_err *err)
{
	struct wal_rule w = {kept, nkept, c->keep_wal_for, 0, 0, 0};
	struct wal_scan s = {&w, NULL, 0, {NULL, 0, 0}, 0};
	struct pg_walname a;
	int rc = 0;
	if (!nkept)
		return 0; /* no backup kept: the WAL stays (nothing to measure from) */
	w.seg = kept[0]->wal_seg_size ? kept[0]->wal_seg_size : PG_WAL_SEG_SIZE_DEFAULT;
	if (!pg_wal_seg_size_valid(w.seg))
		return 0;
	/* kept is newest first: the floor is the oldest kept start. */
	if (pg_walname_parse(kept[nkept - 1]->start_wal, w.seg, &a) != 0)
		return 0;
	w.floor = a.segno;
	w.pitr_floor = w.floor;
	if (c->keep_wal_for && c->keep_wal_for < nkept &&
	    pg_walname_parse(kept[c->keep_wal_for - 1]->start_wal, w.seg, &a) == 0)
		w.pitr_floor = a.segno;
	rc = repo_wal_list(r, cluster, wal_scan_one, &s, err);
	if (s.rc)
		rc = cairn_err_set(err, s.rc, "out of memory");
	if (rc)
		goto out;
	qsort(s.segs.v, s.segs.n, sizeof(uint64_t), u64_cmp);
	/* Ranges of consecutive segment numbers. */
	for (size_t i = 0; i < s.segs.n;) {
		size_t j = i;
		while (j + 1 < s.segs.n && s.segs.v[j + 1] <= s.segs.v[j] + 1)
			j++;
		char from[PG_WALNAME_LEN + 1], to[PG_WALNAME_LEN + 1];
		pg_walname_format(from, 1, s.segs.v[i], w.seg);
		pg_walname_format(to, 1, s.segs.v[j], w.seg);
		/* Timeline-independent numbers: print them without the timeline. */
		if (c->json) {
			printf("%s{\"cluster\":", *first_json ? "" : ",");
			json_str(stdout, cluster);
			printf(",\"wal_removed_from\":\"%s\",\"wal_removed_to\":\"%s\"}", from + 8, to + 8);
			*first_json = 0;
		} else if (!c->quiet) {
			printf("cluster %s: %s WAL segments %s .. %s (%zu)\n", cluster,
			       c->dry_run ? "would remove" : "removing", from + 8, to + 8, j - i + 1);
		}
		i = j + 1;
	}
	if (!s.nnames && !c->json && !c->quiet)
		printf("cluster %s: no WAL to remove\n", cluster);
	for (size_t i = 0; i < s.nnames && !c->dry_run && !rc; i++) {
		char key[200];
		size_t len = (size_t)snprintf(key, sizeof(key), "wal/%s/", cluster);
		for (const char *p = s.names[i]; *p && len + 1 < sizeof(key); p++)
			key[len++] = (char)tolower((unsigned char)*p);
		key[len] = '\0';
		rc = storage_del(repo_get_storage(r), key, err);
		if (rc == CAIRN_ENOTFOUND)
			rc = 0;
	}
out:
	strlist_free(s.names, s.nnames);
	free(s.segs.v);
	return rc;
}

int cmd_forget(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct repo_lock *l = NULL;
	struct snapshot *all = NULL, *s = NULL;
	size_t nall = 0, n = 0;
	struct forget_decision *d = NULL;
	const struct snapshot **kept = NULL;
	int rc, ret = EXIT_OK, first_json = 1;
	if (c->nargs)
		return cli_usage("forget takes no arguments");
	struct forget_policy p = {c->keep_last, c->keep_hourly, c->keep_daily, c->keep_weekly,
				  c->keep_monthly, c->keep_yearly, c->keep_within_ns,
				  c->keep_tags, c->nkeep_tags};
	rc = cli_open(c, &r, &err);
	/* Shared, role forget: see the top of this file. */
	struct repo_lock_opts lo;
	memset(&lo, 0, sizeof(lo));
	lo.role = REPO_ROLE_FORGET;
	lo.wait_ns = 60ull * 1000000000; /* for a window or a repair, not for a prune */
	rc = rc ? rc : repo_lock_with(r, REPO_LOCK_SHARED, &lo, &l, &err);
	rc = rc ? rc : repo_snapshots_load(r, &all, &nall, NULL, NULL, &err);
	if (rc)
		goto fail;
	s = calloc(nall ? nall : 1, sizeof(*s));
	d = calloc(nall ? nall : 1, sizeof(*d));
	kept = calloc(nall ? nall : 1, sizeof(*kept));
	if (!s || !d || !kept) {
		rc = cairn_err_set(&err, CAIRN_ENOMEM, "out of memory");
		goto fail;
	}
	/* --cluster: only that cluster's base backups (shallow copies). */
	for (size_t i = 0; i < nall; i++)
		if (!c->cluster || ((all[i].flags & SNAP_PG) && all[i].cluster &&
				    !strcmp(all[i].cluster, c->cluster)))
			s[n++] = all[i];
	rc = forget_plan(s, n, &p, d, &err);
	if (rc)
		goto fail;
	if (c->json)
		printf("{\"dry_run\":%s,\"snapshots\":[", c->dry_run ? "true" : "false");
	/* Per group, in order of first appearance; snapshots newest first. */
	for (size_t g = n; g-- > 0;) {
		int seen = 0;
		for (size_t k = n; k-- > g + 1;)
			if (!strcmp(d[k].group, d[g].group))
				seen = 1;
		if (seen)
			continue;
		if (!c->json && !c->quiet)
			printf("%s:\n", d[g].group);
		for (size_t i = g + 1; i-- > 0;) {
			if (strcmp(d[i].group, d[g].group))
				continue;
			char t[32];
			fmt_time(t, sizeof(t), s[i].time_ns);
			if (c->json) {
				printf("%s{\"id\":\"%s\",\"time\":\"%s\",\"group\":", first_json ? "" : ",",
				       s[i].name, t);
				json_str(stdout, d[i].group);
				printf(",\"keep\":%s,\"reasons\":", d[i].keep ? "true" : "false");
				json_str(stdout, d[i].reasons);
				printf("}");
				first_json = 0;
			} else if (!c->quiet) {
				printf("  %-6s %.8s  %s  %s\n", d[i].keep ? "keep" : "remove", s[i].name, t,
				       d[i].keep ? d[i].reasons : "");
			}
		}
	}
	if (c->json)
		printf("],\"wal\":[");
	first_json = 1;
	/* Snapshots first, then the WAL that only they needed. */
	for (size_t i = 0; i < n && !c->dry_run; i++) {
		if (d[i].keep)
			continue;
		char key[100];
		snprintf(key, sizeof(key), "snapshots/%s", s[i].name);
		rc = storage_del(repo_get_storage(r), key, &err);
		if (rc == CAIRN_ENOTFOUND)
			rc = 0;
		if (rc)
			goto fail;
	}
	/* WAL, per cluster of a PostgreSQL group. */
	for (size_t g = 0; g < n; g++) {
		if (!(s[g].flags & SNAP_PG) || !s[g].cluster)
			continue;
		int done = 0;
		for (size_t k = 0; k < g; k++)
			if ((s[k].flags & SNAP_PG) && s[k].cluster && !strcmp(s[k].cluster, s[g].cluster))
				done = 1;
		if (done)
			continue;
		size_t nk = 0;
		for (size_t i = n; i-- > 0;)
			if (d[i].keep && (s[i].flags & SNAP_PG) && s[i].cluster &&
			    !strcmp(s[i].cluster, s[g].cluster) && s[i].start_wal && s[i].stop_wal)
				kept[nk++] = &s[i];
		rc = forget_wal(c, r, s[g].cluster, kept, nk, &first_json, &err);
		if (rc)
			goto fail;
	}
	if (c->json)
		printf("]}\n");
	repo_unlock(l);
	l = NULL;
	if (c->prune)
		ret = run_prune(c, r);
	goto out;
fail:
	ret = cli_fail(c, rc, &err);
out:
	repo_unlock(l);
	free(s);
	free(d);
	free(kept);
	repo_snapshots_free(all, nall);
	repo_close(r);
	return ret;
}
