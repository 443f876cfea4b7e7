/* pgcmd.c — the PostgreSQL commands: archive-push, archive-get, and the
 * --pgdata form of backup (called from cmd_backup). */
#include "cli/cli.h"
#include "pg/pgbackup.h"
#include "repo/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
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
	rc = cli_open(c, &r, &err);
	rc = rc ? rc : repo_wal_push(r, cluster, name, fd, &already, &err);
	close(fd);
	repo_close(r);
	if (rc)
		return cli_fail(c, rc, &err);
	if (c->verbose)
		fprintf(stderr, "cairn: %s %s for cluster %s\n", name,
			already ? "was already archived" : "archived", cluster);
	return EXIT_OK;
}

int cmd_archive_get(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	char cluster[CLUSTER_NAME_MAX + 1], tmp[4200];
	if (c->nargs != 2)
		return cli_usage("archive-get needs the WAL file's name and destination (%%f %%p)");
	const char *name = c->args[0], *dest = c->args[1];
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
	struct wal_entry e;
	rc = repo_wal_stat(r, cluster, name, &e, &err);
	if (rc == CAIRN_ENOTFOUND) {
		/* What PostgreSQL expects at the end of the archive: quiet. */
		repo_close(r);
		if (c->verbose)
			fprintf(stderr, "cairn: %s is not archived for cluster %s\n", name, cluster);
		return EXIT_FAIL;
	}
	wal_entry_free(&e);
	/* Verified into a temporary file first: PostgreSQL never sees a file
	 * that failed verification. */
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
	repo_close(r);
	if (!rc)
		return EXIT_OK;
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
	struct snapshot s;
	struct pg_backup_result res;
	memset(&s, 0, sizeof(s));
	int rc = cli_open(c, &r, &err);
	if (rc)
		return cli_fail(c, rc, &err);
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
	rc = pg_backup_run(r, &o, &s, &res, &err);
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
	snapshot_free(&s);
	repo_close(r);
	if (rc == CAIRN_EPARTIAL) {
		fprintf(stderr, "cairn: error: %s\n", err.msg);
		return EXIT_FAIL;
	}
	return rc ? cli_fail(c, rc, &err) : EXIT_OK;
}
