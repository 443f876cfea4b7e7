/*
 * pgbackup.c — base backups from a running cluster; see pgbackup.h.
 *
 * What is skipped follows PostgreSQL's documentation ("Making a Base
 * Backup Using the Low Level API") and its own base backup: the contents
 * of pg_wal, pg_replslot, pg_dynshmem, pg_notify, pg_serial, pg_snapshots,
 * pg_stat_tmp and pg_subtrans (the folders are kept, empty);
 * postmaster.pid, postmaster.opts, pg_internal.init, an old backup_label
 * or tablespace_map, backup_manifest, postgresql.auto.conf.tmp, temporary
 * files and folders (pgsql_tmp*), and the non-init forks of unlogged
 * relations (recovery recreates them from the init fork).
 *
 * Why it is safe to copy files while the server writes them: every change
 * made after pg_backup_start() is in the WAL from the backup's start LSN,
 * which recovery replays before the cluster is consistent.  For the same
 * reason a page whose LSN is at or after the start LSN is not checked
 * against its checksum (it may be half-written: replay rewrites it), and a
 * failing page is read again once before it is reported.
 */
#include "pg/pgbackup.h"
#include "pg/checksum.h"
#include "repo/io.h"
#include "repo/wal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int pg_read_control(const char *pgdata, struct pg_control *ctl, struct cairn_err *err)
{
	char path[PATH_MAX];
	uint8_t buf[PG_CONTROL_FILE_SIZE];
	snprintf(path, sizeof(path), "%s/PG_VERSION", pgdata);
	if (access(path, F_OK) != 0)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "%s is not a PostgreSQL data directory (it has no PG_VERSION)", pgdata);
	snprintf(path, sizeof(path), "%s/global/pg_control", pgdata);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cairn_err_errno(err, errno, "cannot open %s", path);
	ssize_t have = io_read_full(fd, buf, sizeof(buf));
	close(fd);
	if (have < 0)
		return cairn_err_errno(err, errno, "cannot read %s", path);
	int rc = pg_control_parse(buf, (size_t)have, ctl, err);
	if (rc)
		cairn_err_prefix(err, "%s", path);
	return rc;
}

int pg_cluster_name(const char *pgdata, char *out, size_t n, struct cairn_err *err)
{
	struct pg_control ctl;
	int rc = pg_read_control(pgdata, &ctl, err);
	if (!rc)
		snprintf(out, n, "%llu", (unsigned long long)ctl.system_identifier);
	return rc;
}

/* ---- libpq ------------------------------------------------------------- */

struct pgb {
	const struct pg_backup_opts *o;
	struct pg_backup_result *res;
	struct repo *r;
	PGconn *conn;
	uint64_t start_lsn;
	uint32_t wal_seg_size;
	int checksums;
	int stopped;
	int archiving;  /* WAL reaches the repository: wait for it */
	int denied;     /* the last query failed for lack of privilege */
	char cluster[CLUSTER_NAME_MAX + 1];
	uint32_t server_version;
	/* the page being assembled for checksum verification */
	char cur_rel[PATH_MAX];
	int cur_is_rel;
	uint32_t cur_segno;
	uint8_t page[PG_PAGE_SIZE];
	size_t page_have;
	uint64_t page_off;
	char **tablespaces; /* "oid\tpath" */
	size_t ntablespaces;
	uint32_t page_chunk; /* bytes; 0: relation files are chunked like others */
};

static void pgb_warn(struct pgb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void pgb_warn(struct pgb *b, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (b->o->warn)
		b->o->warn(b->o->arg, msg);
}

const char *pg_pq_msg(PGconn *c, const PGresult *res, char *buf, size_t n)
{
	const char *m = res ? PQresultErrorMessage(res) : NULL;
	if (!m || !*m)
		m = c ? PQerrorMessage(c) : "out of memory";
	if (!m || !*m)
		m = "unknown error";
	if (!strncmp(m, "ERROR:  ", 8) || !strncmp(m, "FATAL:  ", 8))
		m += 8;
	snprintf(buf, n, "%s", m);
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/* Runs a query returning one row; *out owns the result (PQclear). */
static int query1(struct pgb *b, const char *sql, int nparams, const char *const *params,
		  PGresult **out, struct cairn_err *err)
{
	char m[512];
	PGresult *res = PQexecParams(b->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		b->denied = state && !strcmp(state, "42501");
		int rc = cairn_err_set(err, CAIRN_EIO, "PostgreSQL: %s",
				       pg_pq_msg(b->conn, res, m, sizeof(m)));
		PQclear(res);
		return rc;
	}
	*out = res;
	return 0;
}

static int pg_connect(struct pgb *b, struct cairn_err *err)
{
	char m[512];
	b->conn = PQconnectdb(b->o->conninfo ? b->o->conninfo : "");
	if (!b->conn || PQstatus(b->conn) != CONNECTION_OK)
		return cairn_err_set(err, CAIRN_EIO, "cannot connect to PostgreSQL: %s",
				     pg_pq_msg(b->conn, NULL, m, sizeof(m)));
	PQsetNoticeProcessor(b->conn, NULL, NULL);
	return 0;
}

/* ---- what to skip -------------------------------------------------------- */

static const char *const skip_contents[] = {
	"pg_wal", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial",
	"pg_snapshots", "pg_stat_tmp", "pg_subtrans", NULL,
};

static const char *const skip_files[] = {
	"postmaster.pid", "postmaster.opts", "backup_label", "backup_label.old",
	"tablespace_map", "tablespace_map.old", "backup_manifest",
	"postgresql.auto.conf.tmp", "recovery.signal", "standby.signal", NULL,
};

static int in_list(const char *const *l, const char *s)
{
	for (; *l; l++)
		if (!strcmp(*l, s))
			return 1;
	return 0;
}

static int filter(void *arg, const char *rel, const struct stat *st)
{
	struct pgb *b = arg;
	const char *base = strrchr(rel, '/');
	base = base ? base + 1 : rel;
	(void)b;
	if (!strncmp(base, "pgsql_tmp", 9))
		return BK_SKIP;
	if (!strchr(rel, '/')) {
		if (S_ISDIR(st->st_mode) && in_list(skip_contents, rel))
			return BK_EMPTY;
		if (in_list(skip_files, rel))
			return BK_SKIP;
	}
	/* pg_internal.init and its temporary copies pg_internal.init.<pid> */
	if (!strncmp(base, "pg_internal.init", 16))
		return BK_SKIP;
	/* Temporary relations: t<backend>_<relfilenode>[_fork][.seg] */
	if (S_ISREG(st->st_mode) && base[0] == 't' && isdigit((unsigned char)base[1])) {
		const char *q = base + 1;
		while (isdigit((unsigned char)*q))
			q++;
		uint32_t sn;
		int ii;
		if (*q == '_' && pg_relation_file(q + 1, &sn, &ii))
			return BK_SKIP;
	}
	/* Tablespaces: the link in pg_tblspc is followed, its target stored. */
	if (!strncmp(rel, "pg_tblspc/", 10) && !strchr(rel + 10, '/') && S_ISLNK(st->st_mode))
		return BK_FOLLOW;
	/* Unlogged relations: only the init fork is needed. */
	uint32_t segno;
	int is_init;
	if (S_ISREG(st->st_mode) && pg_relation_file(base, &segno, &is_init) && !is_init) {
		char dir[PATH_MAX], init[PATH_MAX + 32];
		size_t dl = (size_t)(base - rel);
		size_t digits = strspn(base, "0123456789");
		if (dl + digits < sizeof(dir)) {
			memcpy(dir, rel, dl);
			dir[dl] = '\0';
			snprintf(init, sizeof(init), "%s/%s%.*s_init", b->o->pgdata, dir, (int)digits, base);
			if (access(init, F_OK) == 0)
				return BK_SKIP;
		}
	}
	return BK_KEEP;
}

int pg_page_chunk(const struct pg_backup_opts *o, uint32_t blcksz, uint32_t chunk_max,
		  uint32_t *out, struct cairn_err *err)
{
	uint32_t v = o->page_chunk;
	*out = 0;
	if (v == PG_PAGE_CHUNK_OFF)
		return 0;
	if (!v && blcksz) /* the default, in whole blocks */
		v = (PG_PAGE_CHUNK + blcksz - 1) / blcksz * blcksz;
	if (!blcksz || v % blcksz || v > chunk_max)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "--page-chunk %u: must be a multiple of the cluster's block "
				     "size (%u) and at most the repository's largest chunk (%u)",
				     v, blcksz, chunk_max);
	*out = v;
	return 0;
}

/* Relation files are changed a page at a time, in place: cut them at
 * fixed offsets, page_chunk bytes apart (section 13 of FORMAT.md). */
static uint32_t fixed_chunk(void *arg, const char *rel)
{
	struct pgb *b = arg;
	uint32_t segno;
	return b->page_chunk && pg_relation_path(rel, &segno) ? b->page_chunk : 0;
}

/* ---- checksums ------------------------------------------------------------ */

static void check_page(struct pgb *b, const uint8_t *page, uint64_t off)
{
	uint16_t expected, found;
	uint32_t blkno = b->cur_segno * PG_SEGMENT_PAGES + (uint32_t)(off / PG_PAGE_SIZE);
	if (pg_page_lsn(page) >= b->start_lsn)
		return; /* changed during the backup: WAL replay rewrites it */
	b->res->pages_checked++;
	if (pg_page_verify(page, blkno, &expected, &found) != PAGE_BAD)
		return;
	/* Read it again: it may have been caught mid-write. */
	char path[PATH_MAX * 2];
	uint8_t again[PG_PAGE_SIZE];
	snprintf(path, sizeof(path), "%s/%s", b->o->pgdata, b->cur_rel);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = pread(fd, again, sizeof(again), (off_t)off);
		close(fd);
		if (n == (ssize_t)sizeof(again) &&
		    (pg_page_lsn(again) >= b->start_lsn ||
		     pg_page_verify(again, blkno, &expected, &found) != PAGE_BAD))
			return;
	}
	b->res->checksum_errors++;
	if (b->res->checksum_errors <= 100)
		pgb_warn(b, "checksum mismatch in %s, block %u: expected 0x%04x, found 0x%04x",
			 b->cur_rel, blkno, expected, found);
	else if (b->res->checksum_errors == 101)
		pgb_warn(b, "more checksum mismatches: not listing them all");
}

static int on_data(void *arg, const char *rel, uint64_t off, const uint8_t *p, size_t n,
		   struct cairn_err *err)
{
	struct pgb *b = arg;
	(void)err;
	if (!b->checksums)
		return 0;
	if (off == 0 || strcmp(rel, b->cur_rel) != 0) {
		snprintf(b->cur_rel, sizeof(b->cur_rel), "%s", rel);
		b->cur_is_rel = pg_relation_path(rel, &b->cur_segno);
		b->page_have = 0;
		b->page_off = off;
	}
	if (!b->cur_is_rel)
		return 0;
	while (n > 0) {
		if (b->page_have == 0 && n >= PG_PAGE_SIZE && off % PG_PAGE_SIZE == 0) {
			check_page(b, p, off);
			p += PG_PAGE_SIZE;
			off += PG_PAGE_SIZE;
			n -= PG_PAGE_SIZE;
			continue;
		}
		if (b->page_have == 0)
			b->page_off = off;
		size_t take = PG_PAGE_SIZE - b->page_have;
		if (take > n)
			take = n;
		memcpy(b->page + b->page_have, p, take);
		b->page_have += take;
		p += take;
		off += take;
		n -= take;
		if (b->page_have == PG_PAGE_SIZE) {
			check_page(b, b->page, b->page_off);
			b->page_have = 0;
		}
	}
	return 0;
}

/* ---- start and stop ------------------------------------------------------ */

static int add_file(struct repo *r, struct tree *t, const char *name, const char *text,
		    struct cairn_err *err)
{
	struct node nd;
	memset(&nd, 0, sizeof(nd));
	size_t len = strlen(text);
	nd.name = strdup(name);
	nd.type = NODE_FILE;
	nd.mode = 0600;
	nd.uid = geteuid();
	nd.gid = getegid();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	nd.mtime_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	nd.size = len;
	int rc = nd.name ? 0 : CAIRN_ENOMEM;
	if (!rc && len) {
		uint8_t id[32];
		rc = repo_put_blob(r, BLOB_DATA, text, len, id, NULL, err);
		if (!rc && node_add_blob(&nd, id, (uint32_t)len))
			rc = CAIRN_ENOMEM;
	}
	/* Take the owner from PG_VERSION's neighbours: the tree's first node. */
	if (t->n) {
		nd.uid = t->nodes[0].uid;
		nd.gid = t->nodes[0].gid;
	}
	if (!rc && tree_add(t, &nd))
		rc = CAIRN_ENOMEM;
	node_free(&nd);
	if (rc == CAIRN_ENOMEM)
		cairn_err_set(err, rc, "out of memory");
	return rc;
}

/* Waits until `name` is archived in the repository.  A backup whose WAL
 * never arrives cannot be restored: then no snapshot is written. */
static int wait_archived(struct pgb *b, const char *name, struct cairn_err *err)
{
	unsigned limit = b->o->archive_timeout ? b->o->archive_timeout : 60;
	struct timespec t0, now, pause = {0, 100 * 1000 * 1000};
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct wal_entry e;
		struct cairn_err e2;
		int rc = repo_wal_stat(b->r, b->cluster, name, &e, &e2);
		if (rc == 0) {
			wal_entry_free(&e);
			return 0;
		}
		if (rc != CAIRN_ENOTFOUND) {
			*err = e2;
			return rc;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec >= (time_t)limit)
			return cairn_err_set(err, CAIRN_EIO,
					     "WAL segment %s did not reach the repository within %u s: "
					     "check archive_command in PostgreSQL's log (it must run "
					     "'cairn archive-push %%p' for cluster %s); no snapshot was written",
					     name, limit, b->cluster);
		nanosleep(&pause, NULL);
	}
}

/* At the root, after every file: pg_backup_stop(), then backup_label and
 * tablespace_map become files of the snapshot, and the snapshot gets the
 * PostgreSQL fields. */
static int dir_done(void *arg, const char *rel, struct tree *t, struct snapshot *s,
		    struct cairn_err *err)
{
	struct pgb *b = arg;
	PGresult *res = NULL;
	struct pg_backup_label lab;
	char walname[PG_WALNAME_LEN + 1];
	if (*rel)
		return 0;
	/* Not PostgreSQL's own wait: it waits forever when archiving fails.
	 * We wait, bounded, for the segment to reach *this* repository. */
	int rc = query1(b, "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)",
			0, NULL, &res, err);
	if (rc)
		return rc;
	b->stopped = 1;
	uint64_t stop_lsn = 0;
	const char *label = PQgetvalue(res, 0, 1), *spcmap = PQgetvalue(res, 0, 2);
	if (pg_lsn_parse(PQgetvalue(res, 0, 0), &stop_lsn) != 0 ||
	    pg_backup_label_parse(label, strlen(label), &lab, err) != 0) {
		PQclear(res);
		return cairn_err_set(err, CAIRN_EIO, "PostgreSQL returned a backup label cairn cannot read");
	}
	rc = add_file(b->r, t, "backup_label", label, err);
	if (!rc && spcmap && *spcmap)
		rc = add_file(b->r, t, "tablespace_map", spcmap, err);
	PQclear(res);
	if (rc)
		return rc;
	s->flags |= SNAP_PG;
	s->cluster = strdup(b->cluster);
	s->pg_version = b->server_version;
	s->timeline = lab.start_tli;
	s->start_lsn = lab.start_lsn;
	s->stop_lsn = stop_lsn;
	s->start_wal = strdup(lab.start_wal_file);
	pg_walname_format(walname, lab.start_tli,
			  pg_lsn_to_segno(stop_lsn ? stop_lsn - 1 : 0, b->wal_seg_size), b->wal_seg_size);
	s->stop_wal = strdup(walname);
	s->wal_seg_size = b->wal_seg_size;
	s->from_standby = lab.from == PG_BACKUP_FROM_STANDBY;
	for (size_t i = 0; i < b->ntablespaces; i++)
		if (strlist_add(&s->tablespaces, &s->ntablespaces, b->tablespaces[i]))
			return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	if (!s->cluster || !s->start_wal || !s->stop_wal)
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	return b->archiving ? wait_archived(b, s->stop_wal, err) : 0;
}

static int list_tablespaces(struct pgb *b, struct cairn_err *err)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/pg_tblspc", b->o->pgdata);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d)) != NULL && !rc) {
		char link[PATH_MAX * 2], target[PATH_MAX], entry[PATH_MAX + 300];
		if (de->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%s", dir, de->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		snprintf(entry, sizeof(entry), "%s\t%s", de->d_name, target);
		if (strlist_add(&b->tablespaces, &b->ntablespaces, entry))
			rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	}
	closedir(d);
	return rc;
}

/* The newest complete snapshot of this cluster: files unchanged since it
 * are not read again. */
static int find_parent(struct repo *r, const char *cluster, struct snapshot *out,
		       struct cairn_err *err)
{
	struct snapshot *all = NULL;
	size_t n = 0;
	int found = 0;
	int rc = repo_snapshots_load(r, &all, &n, NULL, NULL, err);
	for (size_t i = n; !rc && i-- > 0;)
		if ((all[i].flags & SNAP_PG) && !(all[i].flags & SNAP_INCOMPLETE) && all[i].cluster &&
		    !strcmp(all[i].cluster, cluster)) {
			*out = all[i];
			memset(&all[i], 0, sizeof(all[i]));
			found = 1;
			break;
		}
	repo_snapshots_free(all, n);
	return rc ? rc : found;
}

int pg_backup_run(struct repo *r, const struct pg_backup_opts *o, struct snapshot *s,
		  struct pg_backup_result *res, struct cairn_err *err)
{
	struct pgb b;
	struct pg_control ctl;
	struct snapshot parent;
	PGresult *q = NULL;
	char abs[PATH_MAX], label[128];
	int rc;
	memset(&b, 0, sizeof(b));
	memset(&parent, 0, sizeof(parent));
	memset(res, 0, sizeof(*res));
	memset(s, 0, sizeof(*s));
	b.o = o;
	b.res = res;
	b.r = r;
	if (!realpath(o->pgdata, abs))
		return cairn_err_errno(err, errno, "cannot back up %s", o->pgdata);
	struct pg_backup_opts local = *o;
	local.pgdata = abs;
	b.o = &local;
	rc = pg_read_control(abs, &ctl, err);
	if (rc)
		return rc;
	b.wal_seg_size = ctl.xlog_seg_size;
	b.checksums = ctl.data_checksum_version != 0;
	rc = pg_page_chunk(o, ctl.blcksz, repo_get_chunker(r)->max, &b.page_chunk, err);
	if (rc)
		return rc;
	res->checksums_enabled = b.checksums;
	if (o->cluster)
		snprintf(b.cluster, sizeof(b.cluster), "%s", o->cluster);
	else
		snprintf(b.cluster, sizeof(b.cluster), "%llu", (unsigned long long)ctl.system_identifier);
	if (wal_cluster_name_ok(b.cluster))
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "invalid cluster name '%s': use 1-64 of a-z 0-9 _ . -", b.cluster);

	rc = pg_connect(&b, err);
	if (rc)
		goto out;
	rc = query1(&b,
		    "SELECT current_setting('server_version_num'), current_setting('archive_mode'),"
		    " pg_is_in_recovery()::text",
		    0, NULL, &q, err);
	if (rc)
		goto out;
	b.server_version = (uint32_t)strtoul(PQgetvalue(q, 0, 0), NULL, 10);
	int standby = !strcmp(PQgetvalue(q, 0, 2), "true");
	const char *am = PQgetvalue(q, 0, 1);
	b.archiving = strcmp(am, "off") && (!standby || !strcmp(am, "always"));
	if (!b.archiving)
		pgb_warn(&b, "archive_mode is %s%s: the WAL this backup needs must reach the repository "
			     "(archive_command = 'cairn archive-push %%p'), or it cannot be restored",
			 am, standby ? " on this standby" : "");
	PQclear(q);
	q = NULL;
	if (b.server_version / 10000 != 15 && b.server_version / 10000 < 15) {
		rc = cairn_err_set(err, CAIRN_EUSAGE, "PostgreSQL %u is not supported (15 or later)",
				   b.server_version);
		goto out;
	}
	/* The server must be the one whose files we read. */
	if (query1(&b, "SELECT system_identifier::text FROM pg_control_system()", 0, NULL, &q,
		   NULL) == 0) {
		if (strtoull(PQgetvalue(q, 0, 0), NULL, 10) != ctl.system_identifier) {
			rc = cairn_err_set(err, CAIRN_EUSAGE,
					   "the server at --pg-conn is not the cluster in %s "
					   "(system identifiers %s and %llu differ)",
					   abs, PQgetvalue(q, 0, 0),
					   (unsigned long long)ctl.system_identifier);
			goto out;
		}
		PQclear(q);
		q = NULL;
	}
	rc = list_tablespaces(&b, err);
	if (rc)
		goto out;
	if (!o->full_read) {
		rc = find_parent(r, b.cluster, &parent, err);
		if (rc < 0)
			goto out;
		if (rc == 1) {
			res->have_parent = 1;
			snprintf(res->parent, sizeof(res->parent), "%s", parent.name);
		}
	}
	snprintf(label, sizeof(label), "cairn %lld", (long long)time(NULL));
	const char *params[1] = {label};
	rc = query1(&b, "SELECT pg_backup_start($1, true)::text", 1, params, &q, err);
	if (rc && b.denied) {
		cairn_err_set(err, CAIRN_EIO,
			      "the role may not run a backup: as a superuser, run GRANT EXECUTE ON FUNCTION "
			      "pg_backup_start(text, boolean) TO <role>; GRANT EXECUTE ON FUNCTION "
			      "pg_backup_stop(boolean) TO <role>; (or connect as a superuser)");
		goto out;
	}
	if (rc)
		goto out;
	if (pg_lsn_parse(PQgetvalue(q, 0, 0), &b.start_lsn) != 0) {
		rc = cairn_err_set(err, CAIRN_EIO, "PostgreSQL returned an unreadable start LSN");
		goto out;
	}
	PQclear(q);
	q = NULL;

	struct backup_opts bo;
	memset(&bo, 0, sizeof(bo));
	bo.root_dir = abs;
	bo.host = o->host;
	bo.tags = o->tags;
	bo.ntags = o->ntags;
	bo.parent = res->have_parent ? &parent : NULL;
	bo.warn = o->warn;
	bo.progress = o->progress;
	bo.arg = o->arg;
	/* pg_control last, as PostgreSQL's own base backup does: a backup of a
	 * standby is consistent from the minimum recovery point recorded in
	 * the pg_control it copied, which must be newer than every file. */
	static const char *const last[] = {"global", "global/pg_control"};
	bo.last = last;
	bo.nlast = 2;
	bo.filter = filter;
	bo.on_data = on_data;
	bo.dir_done = dir_done;
	bo.fixed_chunk = fixed_chunk;
	bo.hook_arg = &b;
	rc = repo_backup(r, &bo, s, err);
	if (rc == 0 && res->checksum_errors && !o->ignore_checksum_errors)
		rc = cairn_err_set(err, CAIRN_EPARTIAL,
				   "snapshot %.8s written, but %llu page(s) failed their checksums "
				   "(listed above; --ignore-checksum-errors accepts this)",
				   s->name, (unsigned long long)res->checksum_errors);
out:
	PQclear(q);
	if (b.conn && !b.stopped && b.start_lsn) {
		/* Leave the server as we found it: end the backup. */
		PGresult *x = PQexec(b.conn, "SELECT pg_backup_stop(false)");
		PQclear(x);
	}
	PQfinish(b.conn);
	strlist_free(b.tablespaces, b.ntablespaces);
	snapshot_free(&parent);
	return rc;
}
