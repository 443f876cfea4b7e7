/*
 * pgrestore.c — restores of PostgreSQL base backups; see pgrestore.h.
 *
 * Following a timeline: PostgreSQL asks restore_command for the file of
 * each segment under the newest timeline of the target's history that
 * covers it (at a switch, the segment holding the switchpoint exists under
 * both timelines; the newer one has the new history).  The plan walks the
 * segments the same way and requires each to be archived.
 */
#include "pg/pgrestore.h"
#include "repo/io.h"
#include "repo/wal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- time ---------------------------------------------------------------- */

int pg_parse_time(const char *s, int64_t *ns, char norm[64])
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	int used = 0;
	if (sscanf(s, "%4d-%2d-%2d%*[ T]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) != 6)
		return -1;
	const char *p = s + used;
	long frac = 0;
	if (*p == '.') {
		int digits = 0;
		p++;
		while (isdigit((unsigned char)*p)) {
			if (digits < 9) {
				frac = frac * 10 + (*p - '0');
				digits++;
			}
			p++;
		}
		while (digits++ < 9)
			frac *= 10;
	}
	while (*p == ' ')
		p++;
	int have_zone = 0;
	long offset = 0;
	if (*p == 'Z' || !strncmp(p, "UTC", 3)) {
		have_zone = 1;
		p += *p == 'Z' ? 1 : 3;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, hh = 0, mm = 0, n = 0;
		p++;
		if (sscanf(p, "%2d%n", &hh, &n) != 1)
			return -1;
		p += n;
		if (*p == ':')
			p++;
		if (isdigit((unsigned char)*p)) {
			if (sscanf(p, "%2d%n", &mm, &n) != 1)
				return -1;
			p += n;
		}
		have_zone = 1;
		offset = sign * (hh * 3600L + mm * 60L);
	}
	if (*p)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -1;
	time_t t;
	if (have_zone) {
		t = timegm(&tm) - offset;
	} else {
		tm.tm_isdst = -1;
		t = mktime(&tm);
	}
	if (t == (time_t)-1)
		return -1;
	/* Past 2262 nanoseconds overflow: such a time is "the future". */
	*ns = t >= INT64_MAX / 1000000000 - 1 ? INT64_MAX : (int64_t)t * 1000000000 + frac;
	struct tm u;
	gmtime_r(&t, &u);
	snprintf(norm, 64, "%04d-%02d-%02d %02d:%02d:%02d.%06ld+00", u.tm_year + 1900, u.tm_mon + 1,
		 u.tm_mday, u.tm_hour, u.tm_min, u.tm_sec, frac / 1000);
	return 0;
}

/* ---- the archive's contents ------------------------------------------------ */

struct names {
	char **v;
	size_t n;
};

static int add_name(void *arg, const char *name, uint64_t size)
{
	struct names *l = arg;
	(void)size;
	return strlist_add(&l->v, &l->n, name);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_name(const struct names *l, const char *name)
{
	return l->n && bsearch(&name, l->v, l->n, sizeof(char *), str_cmp) != NULL;
}

static int load_names(struct repo *r, const char *cluster, struct names *l, struct cairn_err *err)
{
	memset(l, 0, sizeof(*l));
	int rc = repo_wal_list(r, cluster, add_name, l, err);
	if (!rc && l->n > 1)
		qsort(l->v, l->n, sizeof(char *), str_cmp);
	return rc;
}

/* Reads an archived text file (a timeline history) into memory. */
static int fetch_text(struct repo *r, const char *cluster, const char *name, char **out,
		      size_t *len, struct cairn_err *err)
{
	int fd = memfd_create("cairn-wal", MFD_CLOEXEC);
	if (fd < 0)
		return cairn_err_errno(err, errno, "memfd_create");
	int rc = repo_wal_fetch(r, cluster, name, fd, err);
	off_t size = rc ? 0 : lseek(fd, 0, SEEK_END);
	if (!rc && (size < 0 || size > (1 << 24)))
		rc = cairn_err_set(err, CAIRN_ECORRUPT, "%s is too large for a history file", name);
	if (!rc) {
		*out = malloc((size_t)size + 1);
		if (!*out)
			rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		else if (pread(fd, *out, (size_t)size, 0) != size)
			rc = cairn_err_errno(err, errno, "reading %s", name);
		if (!rc) {
			(*out)[size] = '\0';
			*len = (size_t)size;
		}
	}
	close(fd);
	return rc;
}

struct history {
	uint32_t tli;            /* the timeline followed */
	struct pg_tli_entry *e;  /* its ancestors */
	size_t n;
	char *text;
};

static void history_free(struct history *h)
{
	free(h->e);
	free(h->text);
	memset(h, 0, sizeof(*h));
}

static int load_history(struct repo *r, const char *cluster, uint32_t tli, struct history *h,
			struct cairn_err *err)
{
	char name[32];
	size_t len = 0;
	memset(h, 0, sizeof(*h));
	h->tli = tli;
	if (tli == 1)
		return 0;
	snprintf(name, sizeof(name), "%08X.history", tli);
	int rc = fetch_text(r, cluster, name, &h->text, &len, err);
	rc = rc ? rc : pg_history_parse(h->text, len, &h->e, &h->n, err);
	if (rc)
		cairn_err_prefix(err, "timeline %u history", tli);
	return rc;
}

/* The timeline to follow: --target-timeline N, "current" (the snapshot's),
 * or the newest archived timeline whose history passes through the
 * snapshot's start. */
static int choose_timeline(struct repo *r, const char *cluster, const struct names *names,
			   const struct snapshot *s, const char *want, struct history *h,
			   struct cairn_err *err)
{
	if (want && strcmp(want, "latest")) {
		uint32_t tli = s->timeline;
		if (strcmp(want, "current")) {
			char *end;
			unsigned long v = strtoul(want, &end, 10);
			if (*end || v == 0 || v > UINT32_MAX)
				return cairn_err_set(err, CAIRN_EUSAGE,
						     "--target-timeline takes latest, current or a number");
			tli = (uint32_t)v;
		}
		int rc = load_history(r, cluster, tli, h, err);
		if (rc)
			return rc;
		if (tli != s->timeline &&
		    pg_history_tli_for_lsn(h->e, h->n, tli, s->start_lsn) != s->timeline) {
			history_free(h);
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "timeline %u does not descend from timeline %u at the snapshot's start",
					     tli, s->timeline);
		}
		return 0;
	}
	uint32_t best = s->timeline;
	for (size_t i = 0; i < names->n; i++) {
		unsigned tli;
		char rest[16];
		if (sscanf(names->v[i], "%8X.%15s", &tli, rest) == 2 && !strcmp(rest, "history") &&
		    tli > best) {
			struct history c;
			struct cairn_err e;
			if (load_history(r, cluster, tli, &c, &e) == 0 &&
			    pg_history_tli_for_lsn(c.e, c.n, tli, s->start_lsn) == s->timeline)
				best = tli;
			history_free(&c);
		}
	}
	return load_history(r, cluster, best, h, err);
}

/* The name of segment `segno` on the path of h: the newest timeline that
 * covers it and is archived (or, if none is, the newest that covers it). */
static int segment_name(const struct history *h, const struct names *names, uint64_t segno,
			uint32_t seg_size, char out[32])
{
	uint64_t start = pg_segno_to_lsn(segno, seg_size), end = start + seg_size;
	int found = 0;
	/* The followed timeline covers [last switchpoint, infinity). */
	uint64_t begin = h->n ? h->e[h->n - 1].end : 0;
	if (begin < end) {
		pg_walname_format(out, h->tli, segno, seg_size);
		if (has_name(names, out))
			return 1;
		found = 1;
	}
	for (size_t i = h->n; i-- > 0;) {
		if (h->e[i].begin < end && h->e[i].end > start) {
			char name[32];
			pg_walname_format(name, h->e[i].tli, segno, seg_size);
			if (has_name(names, name)) {
				memcpy(out, name, 25);
				return 1;
			}
			if (!found) {
				memcpy(out, name, 25);
				found = 1;
			}
		}
	}
	return 0;
}

/* ---- planning ---------------------------------------------------------------- */

/* With --target-timeline N: the history of N, to tell which snapshots lie
 * on it.  0 and h->tli == 0 when no timeline was asked for. */
static int wanted_timeline(struct repo *r, const char *cluster, const char *want,
			   struct history *h, struct cairn_err *err)
{
	memset(h, 0, sizeof(*h));
	if (!want || !strcmp(want, "latest") || !strcmp(want, "current"))
		return 0;
	char *end;
	unsigned long v = strtoul(want, &end, 10);
	if (*end || v == 0 || v > UINT32_MAX)
		return cairn_err_set(err, CAIRN_EUSAGE, "--target-timeline takes latest, current or a number");
	return load_history(r, cluster, (uint32_t)v, h, err);
}

static int pick_snapshot(struct repo *r, const struct pg_restore_opts *o, const char *cluster,
			 int64_t t_ns, uint64_t t_lsn, struct snapshot *out, struct cairn_err *err)
{
	struct history th;
	int hrc = wanted_timeline(r, cluster, o->timeline, &th, err);
	if (hrc)
		return hrc;
	struct snapshot *all = NULL;
	size_t n = 0;
	int rc = repo_snapshots_load(r, &all, &n, NULL, NULL, err);
	if (rc)
		return rc;
	int found = 0, any = 0;
	int64_t first_end = 0;
	for (size_t i = n; i-- > 0;) {
		struct snapshot *s = &all[i];
		if (!(s->flags & SNAP_PG) || (s->flags & SNAP_INCOMPLETE) || !s->cluster ||
		    strcmp(s->cluster, cluster))
			continue;
		any = 1;
		first_end = s->end_time_ns;
		if ((o->kind == PGT_TIME && s->end_time_ns > t_ns) ||
		    (o->kind == PGT_LSN && s->stop_lsn > t_lsn))
			continue;
		/* On the asked timeline's history at its start? */
		if (th.tli && s->timeline != th.tli &&
		    pg_history_tli_for_lsn(th.e, th.n, th.tli, s->start_lsn) != s->timeline)
			continue;
		*out = *s;
		memset(s, 0, sizeof(*s));
		found = 1;
		break;
	}
	repo_snapshots_free(all, n);
	history_free(&th);
	if (found)
		return 0;
	if (!any)
		return cairn_err_set(err, CAIRN_ENOTFOUND, "cluster %s has no base backup", cluster);
	char t[64];
	time_t sec = (time_t)(first_end / 1000000000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	strftime(t, sizeof(t), "%Y-%m-%d %H:%M:%S UTC", &tm);
	return cairn_err_set(err, CAIRN_EUSAGE,
			     "the target is before the first base backup of cluster %s (it ended %s): "
			     "nothing can be restored to it", cluster, t);
}

static int only_cluster(struct repo *r, char *out, size_t n, struct cairn_err *err)
{
	struct snapshot *all = NULL;
	size_t ns = 0;
	int rc = repo_snapshots_load(r, &all, &ns, NULL, NULL, err);
	if (rc)
		return rc;
	const char *one = NULL;
	for (size_t i = 0; i < ns && !rc; i++) {
		if (!(all[i].flags & SNAP_PG) || !all[i].cluster)
			continue;
		if (one && strcmp(one, all[i].cluster))
			rc = cairn_err_set(err, CAIRN_EUSAGE,
					   "the repository holds several clusters: choose one with --cluster "
					   "(see 'cairn info')");
		one = all[i].cluster;
	}
	if (!rc && !one)
		rc = cairn_err_set(err, CAIRN_ENOTFOUND, "the repository has no PostgreSQL base backup");
	if (!rc)
		snprintf(out, n, "%s", one);
	repo_snapshots_free(all, ns);
	return rc;
}

static int check_empty(const char *dir, const char *what, int allow, struct cairn_err *err)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : cairn_err_errno(err, errno, "cannot read %s %s", what, dir);
	struct dirent *de;
	int empty = 1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = 0;
	closedir(d);
	if (!empty && !allow)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "%s %s is not empty: refusing to restore into it (--delta updates an "
				     "existing data directory, --force overwrites)", what, dir);
	return 0;
}

/* Quotes a value for postgresql.conf: '...' with ' doubled. */
static void conf_quote(FILE *f, const char *v)
{
	fputc('\'', f);
	for (; *v; v++) {
		if (*v == '\'')
			fputc('\'', f);
		fputc(*v, f);
	}
	fputc('\'', f);
}

static int write_recovery(const struct pg_restore_opts *o, const struct snapshot *s,
			  const char *time_norm, uid_t uid, gid_t gid, struct cairn_err *err)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	snprintf(path, sizeof(path), "%s/postgresql.auto.conf", o->target_dir);
	snprintf(tmp, sizeof(tmp), "%s/postgresql.auto.conf.cairn-tmp", o->target_dir);
	FILE *in = fopen(path, "re");
	int ofd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *out = ofd >= 0 ? fdopen(ofd, "w") : NULL;
	if (!out) {
		if (ofd >= 0)
			close(ofd);
		if (in)
			fclose(in);
		return cairn_err_errno(err, errno, "cannot write %s", tmp);
	}
	if (in) {
		/* Settings of an earlier recovery would clash with ours. */
		char *line = NULL;
		size_t cap = 0;
		while (getline(&line, &cap, in) > 0) {
			const char *p = line;
			while (*p == ' ' || *p == '\t')
				p++;
			if (!strncmp(p, "restore_command", 15) || !strncmp(p, "recovery_target", 15))
				continue;
			fputs(line, out);
		}
		free(line);
		fclose(in);
	}
	time_t now = time(NULL);
	char when[64];
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
	fprintf(out, "# recovery settings written by cairn restore at %s from snapshot %.8s\n", when,
		s->name);
	fprintf(out, "restore_command = ");
	conf_quote(out, o->restore_command);
	fputc('\n', out);
	const char *kinds[] = {NULL, "recovery_target", "recovery_target_time", "recovery_target_lsn",
			       "recovery_target_xid", "recovery_target_name"};
	if (o->kind != PGT_LATEST) {
		fprintf(out, "%s = ", kinds[o->kind]);
		conf_quote(out, o->kind == PGT_IMMEDIATE ? "immediate"
				: o->kind == PGT_TIME ? time_norm : o->value);
		fprintf(out, "\nrecovery_target_action = ");
		conf_quote(out, o->action ? o->action : "promote");
		fputc('\n', out);
	}
	fprintf(out, "recovery_target_timeline = ");
	conf_quote(out, o->timeline ? o->timeline : "latest");
	fputc('\n', out);
	if (fflush(out) != 0 || fsync(fileno(out)) != 0) {
		fclose(out);
		unlink(tmp);
		return cairn_err_errno(err, errno, "cannot write %s", tmp);
	}
	fclose(out);
	if (rename(tmp, path) != 0)
		return cairn_err_errno(err, errno, "cannot rename %s", tmp);
	snprintf(path, sizeof(path), "%s/recovery.signal", o->target_dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return cairn_err_errno(err, errno, "cannot create %s", path);
	fsync(fd);
	close(fd);
	/* Both names durable before PostgreSQL is started on the folder. */
	if (io_fsync_path(o->target_dir, 1) != 0)
		return cairn_err_errno(err, errno, "cannot sync %s", o->target_dir);
	if (geteuid() == 0) {
		snprintf(path, sizeof(path), "%s/recovery.signal", o->target_dir);
		if (chown(path, uid, gid) != 0)
			return cairn_err_errno(err, errno, "cannot chown %s", path);
		snprintf(path, sizeof(path), "%s/postgresql.auto.conf", o->target_dir);
		if (chown(path, uid, gid) != 0)
			return cairn_err_errno(err, errno, "cannot chown %s", path);
	}
	return 0;
}

int pg_restore_run(struct repo *r, const struct pg_restore_opts *o,
		   struct pg_restore_result *res, struct cairn_err *err)
{
	struct snapshot s;
	struct history h;
	struct names names;
	char cluster[CLUSTER_NAME_MAX + 1], time_norm[64] = "";
	int64_t t_ns = 0;
	uint64_t t_lsn = 0;
	char **map_from = NULL, **map_to = NULL;
	size_t nmaps = 0, nmaps_to = 0;
	int rc;
	memset(&s, 0, sizeof(s));
	memset(&h, 0, sizeof(h));
	memset(&names, 0, sizeof(names));
	memset(res, 0, sizeof(*res));

	/* The target. */
	if (o->kind == PGT_TIME) {
		if (pg_parse_time(o->value, &t_ns, time_norm) != 0)
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "cannot read target time '%s': use 'YYYY-MM-DD HH:MM:SS[.frac][+HH:MM|Z]'",
					     o->value);
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		if (t_ns > (int64_t)now.tv_sec * 1000000000 + now.tv_nsec)
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "target time %s is in the future: nothing is archived for it yet",
					     o->value);
	} else if (o->kind == PGT_LSN && pg_lsn_parse(o->value, &t_lsn) != 0) {
		return cairn_err_set(err, CAIRN_EUSAGE, "cannot read target LSN '%s' (like 0/3000060)",
				     o->value);
	}
	if (o->action && strcmp(o->action, "promote") && strcmp(o->action, "pause") &&
	    strcmp(o->action, "shutdown"))
		return cairn_err_set(err, CAIRN_EUSAGE, "--target-action is promote, pause or shutdown");

	/* The snapshot. */
	if (o->cluster)
		snprintf(cluster, sizeof(cluster), "%s", o->cluster);
	else if (!o->snapshot && (rc = only_cluster(r, cluster, sizeof(cluster), err)) != 0)
		return rc;
	if (o->snapshot) {
		rc = repo_snapshot_find(r, o->snapshot, &s, err);
		if (rc)
			return rc;
		if (!(s.flags & SNAP_PG)) {
			snapshot_free(&s);
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "snapshot %.8s is not a PostgreSQL base backup", o->snapshot);
		}
		if (o->cluster && (!s.cluster || strcmp(o->cluster, s.cluster))) {
			rc = cairn_err_set(err, CAIRN_EUSAGE, "snapshot %.8s belongs to cluster %s, not %s",
					   o->snapshot, s.cluster ? s.cluster : "?", o->cluster);
			snapshot_free(&s);
			return rc;
		}
		snprintf(cluster, sizeof(cluster), "%s", s.cluster);
		if ((o->kind == PGT_TIME && s.end_time_ns > t_ns) ||
		    (o->kind == PGT_LSN && s.stop_lsn > t_lsn)) {
			snapshot_free(&s);
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "the target is before the end of snapshot %.8s: a backup can only "
					     "be recovered to points after it ended (choose an earlier snapshot, "
					     "or leave it out)", o->snapshot);
		}
	} else {
		rc = pick_snapshot(r, o, cluster, t_ns, t_lsn, &s, err);
		if (rc)
			return rc;
	}
	snprintf(res->snapshot, sizeof(res->snapshot), "%s", s.name);
	snprintf(res->cluster, sizeof(res->cluster), "%s", cluster);
	uint32_t seg = s.wal_seg_size;
	struct pg_walname sw, ew;
	if (!seg || !s.start_wal || !s.stop_wal || pg_walname_parse(s.start_wal, seg, &sw) ||
	    pg_walname_parse(s.stop_wal, seg, &ew)) {
		rc = cairn_err_set(err, CAIRN_ECORRUPT, "snapshot %.8s lacks its WAL positions", s.name);
		goto out;
	}

	/* The WAL: every segment from the start to the target must be there. */
	rc = load_names(r, cluster, &names, err);
	rc = rc ? rc : choose_timeline(r, cluster, &names, &s, o->timeline, &h, err);
	if (rc)
		goto out;
	res->timeline = h.tli;
	uint64_t end_segno = o->kind == PGT_LSN ? pg_lsn_to_segno(t_lsn, seg) : ew.segno;
	char name[32] = "";
	for (uint64_t segno = sw.segno;; segno++) {
		int have = segment_name(&h, &names, segno, seg, name);
		if (segno == sw.segno)
			snprintf(res->first_wal, sizeof(res->first_wal), "%s", name);
		if (!have) {
			if (segno <= end_segno) {
				rc = cairn_err_set(err, CAIRN_ENOTFOUND,
						   "WAL segment %s of cluster %s is not archived: the target "
						   "cannot be reached (snapshot %.8s needs %s to %s at least)",
						   name, cluster, s.name, s.start_wal,
						   o->kind == PGT_LSN ? name : s.stop_wal);
				goto out;
			}
			if (o->kind == PGT_TIME) {
				rc = cairn_err_set(err, CAIRN_EUSAGE,
						   "the archived WAL of cluster %s ends at %s, before the target "
						   "time: archive more (pg_switch_wal()) or choose an earlier time",
						   cluster, res->last_wal[0] ? res->last_wal : s.stop_wal);
				goto out;
			}
			break;
		}
		res->segments++;
		snprintf(res->last_wal, sizeof(res->last_wal), "%s", name);
		if (segno < end_segno)
			continue;
		if (o->kind == PGT_LSN || o->kind == PGT_IMMEDIATE)
			break;
		if (o->kind == PGT_TIME) {
			struct wal_entry e;
			rc = repo_wal_stat(r, cluster, name, &e, err);
			if (rc)
				goto out;
			int64_t pushed = e.pushed_ns;
			wal_entry_free(&e);
			if (pushed >= t_ns)
				break; /* archived after the target: the target is in it or before */
		}
	}

	/* The folders. */
	rc = check_empty(o->target_dir, "target folder", o->delta || o->force, err);
	for (size_t i = 0; i < s.ntablespaces && !rc; i++) {
		char *tab = strchr(s.tablespaces[i], '\t');
		if (!tab)
			continue;
		char from[64];
		snprintf(from, sizeof(from), "pg_tblspc/%.*s", (int)(tab - s.tablespaces[i]),
			 s.tablespaces[i]);
		const char *to = tab + 1;
		for (size_t j = 0; j < o->nts; j++)
			if (!strcmp(o->ts_from[j], to))
				to = o->ts_to[j];
		rc = check_empty(to, "tablespace folder", o->delta || o->force, err);
		if (!rc && (strlist_add(&map_from, &nmaps, from) || strlist_add(&map_to, &nmaps_to, to)))
			rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	}
	for (size_t j = 0; j < o->nts && !rc; j++) {
		int known = 0;
		for (size_t i = 0; i < s.ntablespaces; i++) {
			const char *tab = strchr(s.tablespaces[i], '\t');
			known |= tab && !strcmp(tab + 1, o->ts_from[j]);
		}
		if (!known)
			rc = cairn_err_set(err, CAIRN_EUSAGE,
					   "--tablespace-map %s: snapshot %.8s has no tablespace there",
					   o->ts_from[j], s.name);
	}
	if (rc)
		goto out;

	/* Everything checks: now write.  global/pg_control comes last, after
	 * everything else (recovery settings included) is durable: until it
	 * exists PostgreSQL refuses to start on the folder, so a restore that
	 * is interrupted (kill, crash, full disk) leaves a folder nobody can
	 * start by mistake, and `restore --delta` completes it.  A folder that
	 * had one (--delta, --force) loses it first. */
	static const char *const control[] = {"global/pg_control"};
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/global/pg_control", o->target_dir);
	if (unlink(path) != 0 && errno != ENOENT) {
		rc = cairn_err_errno(err, errno, "cannot remove %s", path);
		goto out;
	}
	if (io_fsync_parent(path) != 0) {
		rc = cairn_err_errno(err, errno, "cannot sync the folder of %s", path);
		goto out;
	}
	struct restore_opts ro;
	memset(&ro, 0, sizeof(ro));
	ro.target = o->target_dir;
	ro.overwrite = o->force;
	ro.delta = o->delta;
	ro.excludes = control;
	ro.nexcludes = 1;
	ro.map_from = (const char *const *)map_from;
	ro.map_to = (const char *const *)map_to;
	ro.nmaps = nmaps;
	ro.warn = o->warn;
	ro.progress = o->progress;
	ro.arg = o->arg;
	rc = repo_restore(r, &s, &ro, &res->st, err);
	if (rc)
		goto out;
	struct node root;
	rc = repo_lookup_path(r, &s, "PG_VERSION", &root, err);
	if (rc)
		goto out;
	uid_t uid = root.uid;
	gid_t gid = root.gid;
	node_free(&root);
	/* The links in pg_tblspc are made already; PostgreSQL would remake
	 * them from tablespace_map, to the old places. */
	snprintf(path, sizeof(path), "%s/tablespace_map", o->target_dir);
	if (unlink(path) != 0 && errno != ENOENT) {
		rc = cairn_err_errno(err, errno, "cannot remove %s", path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/pg_wal/archive_status", o->target_dir);
	if (mkdir(path, 0700) == 0 && geteuid() == 0 && chown(path, uid, gid) != 0) {
		rc = cairn_err_errno(err, errno, "cannot chown %s", path);
		goto out;
	}
	rc = write_recovery(o, &s, time_norm, uid, gid, err);
	/* Everything restored so far durable (one syncfs per filesystem
	 * instead of an fsync per file), before pg_control. */
	for (size_t i = 0; i <= nmaps && !rc; i++) {
		const char *dir = i < nmaps ? map_to[i] : o->target_dir;
		if (io_syncfs(dir) != 0)
			rc = cairn_err_errno(err, errno, "cannot sync the files restored under %s", dir);
	}
	if (rc)
		goto out;
	struct restore_stats st2;
	ro.excludes = NULL;
	ro.nexcludes = 0;
	ro.includes = control;
	ro.nincludes = 1;
	rc = repo_restore(r, &s, &ro, &st2, err);
	res->st.files += st2.files;
	res->st.bytes += st2.bytes;
	res->st.damaged += st2.damaged;
	if (rc == CAIRN_ENOTFOUND)
		rc = cairn_err_set(err, CAIRN_ECORRUPT,
				   "snapshot %.8s has no global/pg_control: it is not a base backup", s.name);
	snprintf(path, sizeof(path), "%s/global/pg_control", o->target_dir);
	if (!rc && (io_fsync_path(path, 0) != 0 || io_fsync_parent(path) != 0))
		rc = cairn_err_errno(err, errno, "cannot sync %s", path);
out:
	strlist_free(map_from, nmaps);
	strlist_free(map_to, nmaps_to);
	strlist_free(names.v, names.n);
	history_free(&h);
	snapshot_free(&s);
	return rc;
}

/* ---- info ---------------------------------------------------------------- */

static int range_cmp(const void *a, const void *b)
{
	const struct pg_wal_range *x = a, *y = b;
	if (x->tli != y->tli)
		return x->tli < y->tli ? -1 : 1;
	return x->first < y->first ? -1 : x->first > y->first;
}

int pg_wal_ranges(struct repo *r, const char *cluster, uint32_t seg_size,
		  struct pg_wal_range **out, size_t *n, struct cairn_err *err)
{
	struct names names;
	struct pg_wal_range *v = NULL;
	size_t nv = 0;
	*out = NULL;
	*n = 0;
	int rc = load_names(r, cluster, &names, err);
	for (size_t i = 0; i < names.n && !rc; i++) {
		struct pg_walname w;
		if (pg_walname_parse(names.v[i], seg_size, &w) || w.kind != PG_WALNAME_SEGMENT)
			continue;
		/* names are sorted: a segment continues the last run or starts one */
		if (nv && v[nv - 1].tli == w.tli && v[nv - 1].last + 1 == w.segno) {
			v[nv - 1].last = w.segno;
			continue;
		}
		struct pg_wal_range *nvv = realloc(v, (nv + 1) * sizeof(*v));
		if (!nvv) {
			rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
			break;
		}
		v = nvv;
		v[nv].tli = w.tli;
		v[nv].first = v[nv].last = w.segno;
		nv++;
	}
	strlist_free(names.v, names.n);
	if (rc) {
		free(v);
		return rc;
	}
	if (nv > 1)
		qsort(v, nv, sizeof(*v), range_cmp);
	*out = v;
	*n = nv;
	return 0;
}
