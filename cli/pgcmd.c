/* pgcmd.c — the PostgreSQL commands: archive-push, archive-get, and the
 * --pgdata form of backup (called from cmd_backup). */
#include "cli/cli.h"
#include "pg/pgbackup.h"
#include "pg/pgrestore.h"
#include "pg/prefetch.h"
#include "pg/remote.h"
#include "repo/lock.h"
#include "repo/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int cli_cluster(struct cli *c, char *out, size_t n, struct cairn_err *err)
{
	if (c->cluster) {
		if (wal_cluster_name_ok(c->cluster))
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "invalid cluster name '%s': use 1-64 of a-z 0-9 _ . -",
					     c->cluster);
		snprintf(out, n, "%s", c->cluster);
		return 0;
	}
	int rc = pg_cluster_name(c->pgdata ? c->pgdata : ".", out, n, err);
	if (rc)
		cairn_err_prefix(err, "no --cluster given, and the cluster cannot be told from %s",
				 c->pgdata ? c->pgdata : "the current folder");
	return rc;
}

int cmd_archive_push(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	char cluster[CLUSTER_NAME_MAX + 1];
	if (c->nargs != 1)
		return cli_usage("archive-push needs the WAL file's path (%%p)");
	const char *path = c->args[0];
	const char *name = strrchr(path, '/');
	name = name ? name + 1 : path;
	int rc = cli_cluster(c, cluster, sizeof(cluster), &err);
	if (rc)
		return cli_fail(c, rc, &err);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cairn_err_errno(&err, errno, "cannot open WAL file %s", path);
		return cli_fail(c, CAIRN_EIO, &err);
	}
	int already = 0;
	struct repo_lock *lk = NULL;
	rc = cli_open(c, &r, &err);
	rc = rc ? rc : cli_lease_take(c, r, &lk, &err);
	rc = rc ? rc : repo_wal_push(r, cluster, name, fd, &already, &err);
	close(fd);
	if (rc) {
		repo_unlock(lk);
		repo_close(r);
		return cli_fail(c, rc, &err);
	}
	char what[100];
	snprintf(what, sizeof(what), "%s was archived", name);
	rc = cli_lease_check(c, lk, what);
	repo_unlock(lk);
	repo_close(r);
	if (rc)
		return rc;
	if (c->verbose)
		fprintf(stderr, "cairn: %s %s for cluster %s\n", name,
			already ? "was already archived" : "archived", cluster);
	return EXIT_OK;
}

/* Segments archive-get fetches ahead (CAIRN_PREFETCH, 0 to 64). */
#define PREFETCH_DEFAULT 8
static unsigned prefetch_count(void)
{
	const char *e = getenv("CAIRN_PREFETCH");
	if (!e || !*e)
		return PREFETCH_DEFAULT;
	char *end;
	unsigned long v = strtoul(e, &end, 10);
	return *end || v > 64 ? PREFETCH_DEFAULT : (unsigned)v;
}

/* Starts a detached prefetcher for the segments after `name` and returns
 * at once (PostgreSQL waits for restore_command to exit, not for it).  It
 * opens the repository anew: no handle crosses a fork. */
static void prefetch_start(struct cli *c, const char *cluster, const char *spool,
			   const char *name, uint32_t seg_size, unsigned count)
{
	pid_t pid = fork();
	if (pid < 0)
		return;
	if (pid > 0) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		return;
	}
	/* First child: a new session, and a grandchild that nobody waits on. */
	if (setsid() < 0 || fork() != 0)
		_exit(0);
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
	}
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	char again[4096];
	c->quiet = 1;
	/* The spool (and so the cache) must still be there: a prefetcher
	 * never recreates a cache folder that was removed meanwhile. */
	if (access(spool, F_OK) != 0)
		_exit(0);
	if (cli_open(c, &r, &err) == 0 && pg_prefetch_spool(r, cluster, again, sizeof(again), &err) == 0)
		pg_prefetch_run(r, cluster, again, name, seg_size, count, &err);
	repo_close(r);
	_exit(0);
}

int cmd_archive_get(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	char cluster[CLUSTER_NAME_MAX + 1], tmp[4200], spool[4096];
	if (c->nargs != 2)
		return cli_usage("archive-get needs the WAL file's name and destination (%%f %%p)");
	const char *name = c->args[0], *dest = c->args[1];
	unsigned ahead = prefetch_count();
	struct pg_walname w;
	/* A segment's name (with the smallest segment size, the widest low
	 * part): only segments are prefetched. */
	int segment = pg_walname_parse(name, 1u << 20, &w) == 0 && w.kind == PG_WALNAME_SEGMENT;
	int rc = cli_cluster(c, cluster, sizeof(cluster), &err);
	if (rc) {
		cli_fail(c, rc, &err);
		return EXIT_FATAL_FOR_PG;
	}
	rc = cli_open(c, &r, &err);
	if (rc) {
		repo_close(r);
		cli_fail(c, rc, &err);
		return EXIT_FATAL_FOR_PG;
	}
	/* Fetched ahead by the previous call? */
	int have_spool = ahead && segment &&
			 pg_prefetch_spool(r, cluster, spool, sizeof(spool), &err) == 0;
	int spooled = have_spool && pg_prefetch_take(spool, name, dest, &err) == 1;
	uint64_t size = 0;
	if (spooled) {
		struct stat st;
		if (stat(dest, &st) == 0)
			size = (uint64_t)st.st_size;
		if (c->verbose)
			fprintf(stderr, "cairn: %s taken from the prefetch spool\n", name);
	} else {
		struct wal_entry e;
		rc = repo_wal_stat(r, cluster, name, &e, &err);
		if (rc == CAIRN_ENOTFOUND) {
			/* What PostgreSQL expects at the end of the archive: quiet. */
			repo_close(r);
			if (c->verbose)
				fprintf(stderr, "cairn: %s is not archived for cluster %s\n", name, cluster);
			return EXIT_FAIL;
		}
		size = e.size;
		wal_entry_free(&e);
		/* Verified into a temporary file first: PostgreSQL never sees a
		 * file that failed verification. */
		snprintf(tmp, sizeof(tmp), "%s.cairn-tmp", dest);
		int fd = rc ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (!rc && fd < 0)
			rc = cairn_err_errno(&err, errno, "cannot create %s", tmp);
		if (!rc)
			rc = repo_wal_fetch(r, cluster, name, fd, &err);
		if (fd >= 0 && close(fd) != 0 && !rc)
			rc = cairn_err_errno(&err, errno, "cannot write %s", tmp);
		if (!rc && rename(tmp, dest) != 0)
			rc = cairn_err_errno(&err, errno, "cannot rename %s to %s", tmp, dest);
		if (rc)
			unlink(tmp);
	}
	repo_close(r);
	if (!rc) {
		/* A segment's size is the cluster's segment size: the names of
		 * the next ones follow from it. */
		if (have_spool && size <= UINT32_MAX &&
		    pg_walname_parse(name, (uint32_t)size, &w) == 0 && w.kind == PG_WALNAME_SEGMENT)
			prefetch_start(c, cluster, spool, name, (uint32_t)size, ahead);
		return EXIT_OK;
	}
	cli_fail(c, rc, &err);
	/* PostgreSQL takes any exit status up to 125 as "no such file" and
	 * would end recovery there, promoting a cluster that misses WAL; 127
	 * (like "command not found") makes it stop recovery instead. */
	return EXIT_FATAL_FOR_PG;
}

int cmd_backup_pg(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct repo_lock *lk = NULL;
	struct snapshot s;
	struct pg_backup_result res;
	memset(&s, 0, sizeof(s));
	int rc = cli_open(c, &r, &err);
	rc = rc ? rc : cli_lease_take(c, r, &lk, &err);
	if (rc) {
		repo_close(r);
		return cli_fail(c, rc, &err);
	}
	struct pg_backup_opts o;
	memset(&o, 0, sizeof(o));
	o.pgdata = c->pgdata;
	o.conninfo = c->pg_conn;
	o.cluster = c->cluster;
	o.host = c->host;
	o.tags = c->tags;
	o.ntags = c->ntags;
	o.full_read = c->full_read;
	o.ignore_checksum_errors = c->ignore_checksum_errors;
	o.warn = cli_warn;
	o.progress = cli_progress;
	o.arg = c;
	o.archive_timeout = c->archive_timeout;
	o.page_chunk = c->page_chunk;
	rc = c->remote ? pg_remote_backup_run(r, &o, &s, &res, &err)
		       : pg_backup_run(r, &o, &s, &res, &err);
	cli_progress_done(c);
	if (rc == 0 || rc == CAIRN_EPARTIAL) {
		char tot[32], rd[32], nw[32], st[32], start[32], stop[32];
		fmt_bytes(tot, sizeof(tot), s.stats.logical_bytes);
		fmt_bytes(rd, sizeof(rd), s.stats.logical_bytes - s.stats.reused_bytes);
		fmt_bytes(nw, sizeof(nw), s.stats.new_bytes);
		fmt_bytes(st, sizeof(st), s.stats.stored_bytes);
		pg_lsn_format(start, s.start_lsn);
		pg_lsn_format(stop, s.stop_lsn);
		if (c->json)
			printf("{\"snapshot\":\"%s\",\"cluster\":\"%s\",\"timeline\":%u,"
			       "\"start_lsn\":\"%s\",\"stop_lsn\":\"%s\",\"start_wal\":\"%s\","
			       "\"stop_wal\":\"%s\",\"parent\":%s%s%s,\"bytes_total\":%llu,"
			       "\"bytes_read\":%llu,\"bytes_new\":%llu,\"bytes_stored\":%llu,"
			       "\"files\":%llu,\"pages_checked\":%llu,\"checksum_errors\":%llu}\n",
			       s.name, s.cluster ? s.cluster : "", s.timeline, start, stop,
			       s.start_wal ? s.start_wal : "", s.stop_wal ? s.stop_wal : "",
			       res.have_parent ? "\"" : "", res.have_parent ? res.parent : "null",
			       res.have_parent ? "\"" : "",
			       (unsigned long long)s.stats.logical_bytes,
			       (unsigned long long)(s.stats.logical_bytes - s.stats.reused_bytes),
			       (unsigned long long)s.stats.new_bytes,
			       (unsigned long long)s.stats.stored_bytes,
			       (unsigned long long)s.stats.files,
			       (unsigned long long)res.pages_checked,
			       (unsigned long long)res.checksum_errors);
		else if (!c->quiet)
			printf("snapshot %s saved\ncluster %s, timeline %u, WAL %s to %s (%s .. %s)\n"
			       "%llu files, %s (%s read%s%.8s), %s new, "
			       "%s stored after compression\n%s\n",
			       s.name, s.cluster, s.timeline, start, stop, s.start_wal, s.stop_wal,
			       (unsigned long long)s.stats.files, tot, rd,
			       s.stats.reused_bytes ? ", the rest unchanged since " : "",
			       s.stats.reused_bytes && res.have_parent ? res.parent : "", nw, st,
			       res.checksums_enabled ? "page checksums verified" : "page checksums are off in this cluster");
	}
	int lease = EXIT_OK;
	if (rc == 0) {
		char what[100];
		snprintf(what, sizeof(what), "snapshot %.8s was saved", s.name);
		lease = cli_lease_check(c, lk, what);
	}
	repo_unlock(lk);
	snapshot_free(&s);
	repo_close(r);
	if (rc == CAIRN_EPARTIAL) {
		fprintf(stderr, "cairn: error: %s\n", err.msg);
		return EXIT_FAIL;
	}
	return rc ? cli_fail(c, rc, &err) : lease;
}

/* Appends one shell word, single-quoted. */
static int shell_word(char *out, size_t n, size_t *len, const char *w)
{
	if (*len + 4 >= n)
		return -1;
	if (*len)
		out[(*len)++] = ' ';
	out[(*len)++] = '\'';
	for (; *w; w++) {
		const char *piece = *w == '\'' ? "'\\''" : NULL;
		size_t pl = piece ? 4 : 1;
		if (*len + pl + 2 >= n)
			return -1;
		if (piece) {
			memcpy(out + *len, piece, pl);
			*len += pl;
		} else {
			out[(*len)++] = *w;
		}
	}
	out[(*len)++] = '\'';
	out[*len] = '\0';
	return 0;
}

/* The restore_command PostgreSQL will run: this cairn, the same
 * repository and the same non-interactive way to open it; no secret in
 * the command itself. */
int cli_restore_command(struct cli *c, const char *cluster, char *out, size_t n,
			struct cairn_err *err)
{
	char self[4096], abs[4096];
	size_t len = 0;
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl < 0)
		return cairn_err_errno(err, errno, "cannot find the cairn binary's path");
	self[sl] = '\0';
	out[0] = '\0';
	int rc = shell_word(out, n, &len, self);
#define ADD_PATH(flag, path)                                                    \
	do {                                                                    \
		if (!rc && (path)) {                                            \
			const char *p_ = realpath((path), abs) ? abs : (path);  \
			rc = shell_word(out, n, &len, flag);                    \
			rc = rc ? rc : shell_word(out, n, &len, p_);            \
		}                                                               \
	} while (0)
	if (c->config) {
		ADD_PATH("--config", c->config);
	} else {
		if (!c->key_file && !c->password_file && !c->password_command)
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "PostgreSQL's restore_command must open the repository without a "
					     "prompt: give --key-file (see 'cairn key export-host-key'), "
					     "--password-file or --config");
		if (!rc && strstr(c->repo, "://") == NULL) {
			const char *p = realpath(c->repo, abs) ? abs : c->repo;
			rc = shell_word(out, n, &len, "-r");
			rc = rc ? rc : shell_word(out, n, &len, p);
		} else if (!rc) {
			rc = shell_word(out, n, &len, "-r");
			rc = rc ? rc : shell_word(out, n, &len, c->repo);
		}
		ADD_PATH("--key-file", c->key_file);
		if (!c->key_file)
			ADD_PATH("--password-file", c->password_file);
		if (!rc && !c->key_file && !c->password_file && c->password_command) {
			rc = shell_word(out, n, &len, "--password-command");
			rc = rc ? rc : shell_word(out, n, &len, c->password_command);
		}
		ADD_PATH("--cache-dir", c->cache_dir);
	}
#undef ADD_PATH
	rc = rc ? rc : shell_word(out, n, &len, "archive-get");
	rc = rc ? rc : shell_word(out, n, &len, "--cluster");
	rc = rc ? rc : shell_word(out, n, &len, cluster);
	if (!rc && len + 8 < n) {
		memcpy(out + len, " %f %p", 7);
		len += 6;
	} else {
		rc = -1;
	}
	return rc ? cairn_err_set(err, CAIRN_EUSAGE, "restore_command would be too long") : 0;
}

int cmd_restore_pg(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct pg_restore_opts o;
	struct pg_restore_result res;
	char cmd[8192];
	if (c->nargs > 1)
		return cli_usage("restore takes at most one SNAPSHOT");
	if (c->nincludes)
		return cli_usage("--include does not apply to a PostgreSQL restore");
	memset(&o, 0, sizeof(o));
	o.snapshot = c->nargs ? c->args[0] : NULL;
	o.cluster = c->cluster;
	o.target_dir = c->target;
	o.kind = !c->target_kind ? PGT_LATEST
		 : !strcmp(c->target_kind, "time") ? PGT_TIME
		 : !strcmp(c->target_kind, "lsn") ? PGT_LSN
		 : !strcmp(c->target_kind, "xid") ? PGT_XID
		 : !strcmp(c->target_kind, "name") ? PGT_NAME : PGT_IMMEDIATE;
	o.value = c->target_value;
	o.action = c->target_action;
	o.timeline = c->target_timeline;
	o.ts_from = c->ts_from;
	o.ts_to = c->ts_to;
	o.nts = c->nts;
	o.delta = c->delta;
	o.force = c->force;
	o.warn = cli_warn;
	o.progress = cli_progress;
	o.arg = c;
	int rc = cli_open(c, &r, &err);
	char cluster[CLUSTER_NAME_MAX + 1] = "";
	if (!rc && c->cluster)
		snprintf(cluster, sizeof(cluster), "%s", c->cluster);
	if (!rc && !*cluster && o.snapshot) {
		struct snapshot s;
		rc = repo_snapshot_find(r, o.snapshot, &s, &err);
		if (!rc) {
			snprintf(cluster, sizeof(cluster), "%s", s.cluster ? s.cluster : "");
			if (!(s.flags & SNAP_PG))
				rc = cairn_err_set(&err, CAIRN_EUSAGE,
						   "snapshot %.8s is not a PostgreSQL base backup: recovery "
						   "options do not apply", o.snapshot);
			snapshot_free(&s);
		}
	}
	if (!rc) {
		/* The cluster for restore_command: known now, or the single one
		 * pg_restore_run will find (it reports several). */
		if (!*cluster)
			rc = cli_newest_pg_cluster(r, cluster, sizeof(cluster), &err);
		if (!rc)
			rc = cli_restore_command(c, *cluster ? cluster : "unknown", cmd, sizeof(cmd), &err);
	}
	o.restore_command = cmd;
	if (!rc)
		rc = pg_restore_run(r, &o, &res, &err);
	cli_progress_done(c);
	repo_close(r);
	if (rc == 0 && !c->quiet) {
		char b[32];
		fmt_bytes(b, sizeof(b), res.st.bytes);
		if (c->json) {
			printf("{\"snapshot\":\"%s\",\"cluster\":\"%s\",\"timeline\":%u,\"first_wal\":\"%s\","
			       "\"last_wal\":\"%s\",\"files\":%llu,\"bytes\":%llu,\"unchanged\":%llu,"
			       "\"removed\":%llu}\n",
			       res.snapshot, res.cluster, res.timeline, res.first_wal, res.last_wal,
			       (unsigned long long)res.st.files, (unsigned long long)res.st.bytes,
			       (unsigned long long)res.st.unchanged, (unsigned long long)res.st.removed);
		} else {
			printf("restored snapshot %.8s of cluster %s to %s: %llu files, %s", res.snapshot,
			       res.cluster, c->target, (unsigned long long)res.st.files, b);
			if (c->delta)
				printf(" (%llu unchanged, %llu removed)", (unsigned long long)res.st.unchanged,
				       (unsigned long long)res.st.removed);
			printf("\nrecovery: timeline %u, WAL %s .. %s archived; target %s%s%s\n"
			       "start PostgreSQL on %s to recover\n",
			       res.timeline, res.first_wal, res.last_wal,
			       c->target_kind ? c->target_kind : "end of the archive",
			       c->target_value ? " " : "", c->target_value ? c->target_value : "",
			       c->target);
		}
	}
	return rc ? cli_fail(c, rc, &err) : EXIT_OK;
}

struct info_cluster {
	char **names;
	size_t n;
};

static int add_cluster(void *arg, const char *cluster)
{
	struct info_cluster *ic = arg;
	for (size_t i = 0; i < ic->n; i++)
		if (!strcmp(ic->names[i], cluster))
			return 0;
	return strlist_add(&ic->names, &ic->n, cluster);
}

int cmd_info(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct snapshot *all = NULL;
	size_t n = 0;
	struct info_cluster ic = {NULL, 0};
	int rc = cli_open(c, &r, &err);
	rc = rc ? rc : repo_snapshots_load(r, &all, &n, NULL, NULL, &err);
	for (size_t i = 0; i < n && !rc; i++)
		if ((all[i].flags & SNAP_PG) && all[i].cluster)
			rc = add_cluster(&ic, all[i].cluster);
	rc = rc ? rc : repo_wal_clusters(r, add_cluster, &ic, &err);
	if (c->json)
		printf("[");
	for (size_t k = 0; k < ic.n && !rc; k++) {
		const char *cl = ic.names[k];
		if (c->cluster && strcmp(c->cluster, cl))
			continue;
		uint32_t seg = 16u << 20;
		for (size_t i = 0; i < n; i++)
			if ((all[i].flags & SNAP_PG) && all[i].cluster && !strcmp(all[i].cluster, cl) &&
			    all[i].wal_seg_size)
				seg = all[i].wal_seg_size;
		struct pg_wal_range *rg = NULL;
		size_t nr = 0;
		rc = pg_wal_ranges(r, cl, seg, &rg, &nr, &err);
		if (rc)
			break;
		if (c->json) {
			printf("%s{\"cluster\":", k ? "," : "");
			json_str(stdout, cl);
			printf(",\"snapshots\":[");
		} else {
			printf("cluster %s\n  base backups:\n", cl);
		}
		int first = 1;
		for (size_t i = 0; i < n; i++) {
			const struct snapshot *s = &all[i];
			if (!(s->flags & SNAP_PG) || !s->cluster || strcmp(s->cluster, cl))
				continue;
			char t[32], te[32], a[32], b[32];
			fmt_time(t, sizeof(t), s->time_ns);
			fmt_time(te, sizeof(te), s->end_time_ns);
			pg_lsn_format(a, s->start_lsn);
			pg_lsn_format(b, s->stop_lsn);
			/* Reach: from its end to the end of the WAL run holding its start. */
			struct pg_walname w;
			const char *reach = "none (WAL missing)";
			char reachbuf[64];
			if (s->start_wal && pg_walname_parse(s->start_wal, seg, &w) == 0) {
				struct pg_walname e;
				int have_end = s->stop_wal && pg_walname_parse(s->stop_wal, seg, &e) == 0;
				for (size_t j = 0; j < nr; j++)
					if (rg[j].tli == w.tli && rg[j].first <= w.segno && w.segno <= rg[j].last &&
					    have_end && e.segno <= rg[j].last) {
						char last[32];
						pg_walname_format(last, rg[j].tli, rg[j].last, seg);
						snprintf(reachbuf, sizeof(reachbuf), "up to the end of %s", last);
						reach = reachbuf;
					}
			}
			if (c->json) {
				printf("%s{\"id\":\"%s\",\"start\":\"%s\",\"end\":\"%s\",\"timeline\":%u,"
				       "\"start_lsn\":\"%s\",\"stop_lsn\":\"%s\",\"pitr\":",
				       first ? "" : ",", s->name, t, te, s->timeline, a, b);
				json_str(stdout, reach);
				printf(",\"incomplete\":%s}", (s->flags & SNAP_INCOMPLETE) ? "true" : "false");
			} else {
				printf("    %.8s  %s .. %s  timeline %u  LSN %s .. %s  PITR: %s%s\n", s->name,
				       t, te, s->timeline, a, b, reach,
				       (s->flags & SNAP_INCOMPLETE) ? " (incomplete)" : "");
			}
			first = 0;
		}
		if (!c->json)
			printf("  archived WAL:\n");
		else
			printf("],\"wal\":[");
		for (size_t j = 0; j < nr; j++) {
			char f[32], l[32];
			pg_walname_format(f, rg[j].tli, rg[j].first, seg);
			pg_walname_format(l, rg[j].tli, rg[j].last, seg);
			if (c->json)
				printf("%s{\"timeline\":%u,\"first\":\"%s\",\"last\":\"%s\",\"segments\":%llu}",
				       j ? "," : "", rg[j].tli, f, l,
				       (unsigned long long)(rg[j].last - rg[j].first + 1));
			else
				printf("    timeline %u: %s .. %s (%llu segments)\n", rg[j].tli, f, l,
				       (unsigned long long)(rg[j].last - rg[j].first + 1));
		}
		if (nr > 1 && !c->json)
			printf("    (%zu runs: a gap between runs of one timeline cannot be replayed across)\n",
			       nr);
		if (c->json)
			printf("]}");
		free(rg);
	}
	if (c->json && !rc)
		printf("]\n");
	strlist_free(ic.names, ic.n);
	repo_snapshots_free(all, n);
	repo_close(r);
	return rc ? cli_fail(c, rc, &err) : EXIT_OK;
}
