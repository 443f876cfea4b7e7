/* opscmd.c — operations: verify-restore (restore drills) and status
 * (monitoring, human, JSON or Prometheus textfile). */
#include "cli/cli.h"
#include "pg/drill.h"
#include "pg/pgrestore.h"
#include "repo/record.h"
#include "repo/wal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void drill_say(void *arg, const char *msg)
{
	struct cli *c = arg;
	if (!c->quiet && !c->json)
		fprintf(stderr, "cairn: %s\n", msg);
}

int cmd_verify_restore(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct pg_drill_result res;
	char cmd[8192], cluster[CLUSTER_NAME_MAX + 1] = "";
	if (c->nargs > 1)
		return cli_usage("verify-restore takes at most one SNAPSHOT");
	int rc = cli_open(c, &r, &err);
	if (!rc) {
		if (c->cluster) {
			snprintf(cluster, sizeof(cluster), "%s", c->cluster);
		} else {
			struct snapshot s;
			rc = c->nargs ? repo_snapshot_find(r, c->args[0], &s, &err) : CAIRN_ENOTFOUND;
			if (rc == 0) {
				snprintf(cluster, sizeof(cluster), "%s", s.cluster ? s.cluster : "");
				snapshot_free(&s);
			} else if (!c->nargs) {
				rc = cli_newest_pg_cluster(r, cluster, sizeof(cluster), &err);
			}
		}
	}
	if (!rc)
		rc = cli_restore_command(c, *cluster ? cluster : "unknown", cmd, sizeof(cmd), &err);
	if (!rc) {
		struct pg_drill_opts o;
		memset(&o, 0, sizeof(o));
		o.snapshot = c->nargs ? c->args[0] : NULL;
		o.cluster = c->cluster;
		o.restore_command = cmd;
		o.warn = cli_warn;
		o.say = drill_say;
		o.arg = c;
		rc = pg_drill_run(r, &o, &res, &err);
		if (c->json) {
			printf("{\"snapshot\":\"%s\",\"cluster\":", res.snapshot);
			json_str(stdout, res.cluster);
			printf(",\"ok\":%s,\"seconds\":%.1f,\"databases\":%u,\"detail\":",
			       res.ok ? "true" : "false", res.seconds, res.databases);
			json_str(stdout, res.detail);
			printf(",\"tables\":[");
			for (size_t i = 0; i < res.ntables; i++) {
				printf("%s{\"database\":", i ? "," : "");
				json_str(stdout, res.tables[i].db);
				printf(",\"table\":");
				json_str(stdout, res.tables[i].name);
				printf(",\"rows\":%lld}", res.tables[i].rows);
			}
			printf("]}\n");
		} else if (!c->quiet && res.snapshot[0]) {
			printf("restore drill of snapshot %.8s (cluster %s): %s in %.0f s\n", res.snapshot,
			       res.cluster, res.ok ? "PASSED" : "FAILED", res.seconds);
			printf("  %s\n", res.detail);
			for (size_t i = 0; i < res.ntables; i++)
				printf("  %s: %s: %lld rows\n", res.tables[i].db, res.tables[i].name,
				       res.tables[i].rows);
		}
	}
	repo_close(r);
	return rc ? cli_fail(c, rc, &err) : EXIT_OK;
}

/* ---- status ---------------------------------------------------------------- */

struct newest_wal {
	char name[WAL_NAME_MAX + 1];
};

static int keep_newest(void *arg, const char *name, uint64_t size)
{
	struct newest_wal *w = arg;
	(void)size;
	if (strlen(name) == 24 && strcmp(name, w->name) > 0)
		snprintf(w->name, sizeof(w->name), "%s", name);
	return 0;
}

struct pack_sum {
	uint64_t n, bytes;
};

static int sum_pack(void *arg, const char *key, uint64_t size)
{
	struct pack_sum *p = arg;
	(void)key;
	p->n++;
	p->bytes += size;
	return 0;
}

struct clusters {
	char **v;
	size_t n;
};

static int add_cl(void *arg, const char *cluster)
{
	struct clusters *l = arg;
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], cluster))
			return 0;
	return strlist_add(&l->v, &l->n, cluster);
}

static double age_s(int64_t then_ns)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return ((double)now.tv_sec * 1e9 + now.tv_nsec - (double)then_ns) / 1e9;
}

int cmd_status(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct snapshot *all = NULL;
	size_t n = 0;
	struct clusters cl = {NULL, 0};
	struct pack_sum ps = {0, 0};
	int prom = c->prometheus;
	int rc = cli_open(c, &r, &err);
	rc = rc ? rc : repo_snapshots_load(r, &all, &n, NULL, NULL, &err);
	for (size_t i = 0; !rc && i < n; i++)
		if ((all[i].flags & SNAP_PG) && all[i].cluster)
			rc = add_cl(&cl, all[i].cluster);
	rc = rc ? rc : repo_wal_clusters(r, add_cl, &cl, &err);
	rc = rc ? rc : storage_list(repo_get_storage(r), "packs/", sum_pack, &ps, &err);
	if (rc)
		goto out;
	uint64_t logical = 0;
	for (size_t i = 0; i < n; i++)
		logical += all[i].stats.logical_bytes;
	struct run_record drill, scrub;
	int have_drill = repo_record_latest(r, "drill", 0, &drill, &err) == 0;
	int have_scrub = repo_record_latest(r, "scrub", 0, &scrub, &err) == 0;
	if (prom) {
		printf("# HELP cairn_repository_logical_bytes Bytes of all snapshots' sources.\n"
		       "# TYPE cairn_repository_logical_bytes gauge\n"
		       "cairn_repository_logical_bytes %llu\n"
		       "# HELP cairn_repository_stored_bytes Bytes of all packs.\n"
		       "# TYPE cairn_repository_stored_bytes gauge\n"
		       "cairn_repository_stored_bytes %llu\n"
		       "# TYPE cairn_repository_snapshots gauge\ncairn_repository_snapshots %zu\n",
		       (unsigned long long)logical, (unsigned long long)ps.bytes, n);
		if (have_drill)
			printf("# HELP cairn_drill_ok 1 if the last restore drill passed.\n"
			       "# TYPE cairn_drill_ok gauge\ncairn_drill_ok %d\n"
			       "# TYPE cairn_drill_age_seconds gauge\ncairn_drill_age_seconds %.0f\n",
			       drill.ok, age_s(drill.time_ns));
		if (have_scrub)
			printf("# TYPE cairn_scrub_ok gauge\ncairn_scrub_ok %d\n"
			       "# TYPE cairn_scrub_age_seconds gauge\ncairn_scrub_age_seconds %.0f\n",
			       scrub.ok, age_s(scrub.time_ns));
	} else if (c->json) {
		printf("{\"snapshots\":%zu,\"logical_bytes\":%llu,\"stored_bytes\":%llu,\"packs\":%llu,",
		       n, (unsigned long long)logical, (unsigned long long)ps.bytes,
		       (unsigned long long)ps.n);
		printf("\"last_drill\":");
		if (have_drill) {
			printf("{\"ok\":%s,\"age_seconds\":%.0f,\"subject\":", drill.ok ? "true" : "false",
			       age_s(drill.time_ns));
			json_str(stdout, drill.subject);
			printf(",\"detail\":");
			json_str(stdout, drill.detail);
			printf("}");
		} else {
			printf("null");
		}
		printf(",\"last_scrub\":");
		if (have_scrub)
			printf("{\"ok\":%s,\"age_seconds\":%.0f}", scrub.ok ? "true" : "false",
			       age_s(scrub.time_ns));
		else
			printf("null");
		printf(",\"clusters\":[");
	} else {
		char lb[32], sb[32];
		fmt_bytes(lb, sizeof(lb), logical);
		fmt_bytes(sb, sizeof(sb), ps.bytes);
		printf("repository: %zu snapshot(s), %s logical, %s stored in %llu pack(s)\n", n, lb, sb,
		       (unsigned long long)ps.n);
		if (have_drill)
			printf("last restore drill: %s, %.1f h ago (%s)\n", drill.ok ? "passed" : "FAILED",
			       age_s(drill.time_ns) / 3600, drill.subject);
		else
			printf("last restore drill: never (run 'cairn verify-restore')\n");
		if (have_scrub)
			printf("last scrub: %s, %.1f h ago\n", scrub.ok ? "passed" : "FAILED",
			       age_s(scrub.time_ns) / 3600);
	}
	for (size_t k = 0; k < cl.n; k++) {
		const char *name = cl.v[k];
		if (c->cluster && strcmp(c->cluster, name))
			continue;
		const struct snapshot *newest = NULL, *oldest = NULL;
		uint32_t seg = 16u << 20;
		for (size_t i = 0; i < n; i++)
			if ((all[i].flags & SNAP_PG) && all[i].cluster && !strcmp(all[i].cluster, name)) {
				if (!oldest)
					oldest = &all[i];
				newest = &all[i];
				if (all[i].wal_seg_size)
					seg = all[i].wal_seg_size;
			}
		struct newest_wal nw = {""};
		rc = repo_wal_list(r, name, keep_newest, &nw, &err);
		if (rc)
			goto out;
		double wal_age = -1;
		if (nw.name[0]) {
			struct wal_entry e;
			if (repo_wal_stat(r, name, nw.name, &e, &err) == 0) {
				wal_age = age_s(e.pushed_ns);
				wal_entry_free(&e);
			}
		}
		struct pg_wal_range *rg = NULL;
		size_t nr = 0;
		rc = pg_wal_ranges(r, name, seg, &rg, &nr, &err);
		if (rc)
			goto out;
		size_t gaps = 0;
		for (size_t j = 1; j < nr; j++)
			gaps += rg[j].tli == rg[j - 1].tli;
		free(rg);
		double snap_age = newest ? age_s(newest->end_time_ns) : -1;
		if (prom) {
			printf("cairn_snapshot_age_seconds{cluster=\"%s\"} %.0f\n"
			       "cairn_wal_age_seconds{cluster=\"%s\"} %.0f\n"
			       "cairn_wal_gaps{cluster=\"%s\"} %zu\n",
			       name, snap_age, name, wal_age, name, gaps);
			if (oldest)
				printf("cairn_pitr_window_start_seconds{cluster=\"%s\"} %lld\n", name,
				       (long long)(oldest->end_time_ns / 1000000000));
		} else if (c->json) {
			printf("%s{\"cluster\":", k ? "," : "");
			json_str(stdout, name);
			printf(",\"newest_snapshot\":%s%s%s,\"snapshot_age_seconds\":%.0f,"
			       "\"newest_wal\":\"%s\",\"wal_age_seconds\":%.0f,\"wal_gaps\":%zu,"
			       "\"pitr_from_unix\":%lld}",
			       newest ? "\"" : "", newest ? newest->name : "null", newest ? "\"" : "",
			       snap_age, nw.name, wal_age, gaps,
			       oldest ? (long long)(oldest->end_time_ns / 1000000000) : 0LL);
		} else {
			char t[32] = "-";
			if (oldest)
				fmt_time(t, sizeof(t), oldest->end_time_ns);
			printf("cluster %s\n  newest base backup: %s (%.1f h ago)\n"
			       "  newest archived WAL: %s (%.0f s ago)\n  archive gaps: %zu\n"
			       "  point-in-time recovery possible from %s to the newest WAL%s\n",
			       name, newest ? newest->name : "none", snap_age / 3600,
			       nw.name[0] ? nw.name : "none", wal_age, gaps, t,
			       gaps ? " (except across the gaps)" : "");
		}
	}
	if (c->json && !prom)
		printf("]}\n");
out:
	strlist_free(cl.v, cl.n);
	repo_snapshots_free(all, n);
	repo_close(r);
	return rc ? cli_fail(c, rc, &err) : EXIT_OK;
}
