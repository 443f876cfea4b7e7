/* drill.c — restore drills; see drill.h. */
#include "pg/drill.h"
#include "repo/record.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double mono(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void say(const struct pg_drill_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void say(const struct pg_drill_opts *o, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (o->say)
		o->say(o->arg, msg);
}

/* Runs argv, output to `log`; returns the exit status (or -1). */
static int run(char *const argv[], const char *log)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		execv(argv[0], argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int remove_tree(const char *path)
{
	char *argv[] = {"/bin/rm", "-rf", (char *)path, NULL};
	return run(argv, "/dev/null");
}

/* The last lines of a log, for the message. */
static void tail_of(const char *log, char *out, size_t n)
{
	FILE *f = fopen(log, "re");
	out[0] = '\0';
	if (!f)
		return;
	char line[400], last[400] = "";
	while (fgets(line, sizeof(line), f))
		if (line[0] != '\n')
			snprintf(last, sizeof(last), "%s", line);
	fclose(f);
	last[strcspn(last, "\n")] = '\0';
	snprintf(out, n, "%s", last);
}

static int fill_tables(PGconn *db, const char *dbname, struct pg_drill_result *res)
{
	PGresult *q = PQexec(db, "SELECT n.nspname || '.' || c.relname FROM pg_class c "
				 "JOIN pg_namespace n ON n.oid = c.relnamespace "
				 "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog','information_schema') "
				 "ORDER BY c.relpages DESC LIMIT 3");
	if (PQresultStatus(q) != PGRES_TUPLES_OK) {
		PQclear(q);
		return -1;
	}
	for (int i = 0; i < PQntuples(q) && res->ntables < 10; i++) {
		char sql[400];
		char *ident = PQescapeIdentifier(db, PQgetvalue(q, i, 0), strlen(PQgetvalue(q, i, 0)));
		/* schema.table escaped as one identifier would be wrong: split. */
		PQfreemem(ident);
		const char *full = PQgetvalue(q, i, 0), *dot = strchr(full, '.');
		if (!dot)
			continue;
		char schema[128], table[128];
		snprintf(schema, sizeof(schema), "%.*s", (int)(dot - full), full);
		snprintf(table, sizeof(table), "%s", dot + 1);
		char *s1 = PQescapeIdentifier(db, schema, strlen(schema));
		char *t1 = PQescapeIdentifier(db, table, strlen(table));
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.%s", s1, t1);
		PQfreemem(s1);
		PQfreemem(t1);
		PGresult *c = PQexec(db, sql);
		if (PQresultStatus(c) != PGRES_TUPLES_OK) {
			PQclear(c);
			PQclear(q);
			return -1;
		}
		struct pg_drill_table *t = &res->tables[res->ntables++];
		snprintf(t->db, sizeof(t->db), "%s", dbname);
		snprintf(t->name, sizeof(t->name), "%s", full);
		t->rows = atoll(PQgetvalue(c, 0, 0));
		PQclear(c);
	}
	PQclear(q);
	return 0;
}

int pg_drill_run(struct repo *r, const struct pg_drill_opts *o, struct pg_drill_result *res,
		 struct cairn_err *err)
{
	char dir[PATH_MAX], data[PATH_MAX + 8], sock[PATH_MAX + 8], log[PATH_MAX + 16];
	char bin[PATH_MAX], pgctl[PATH_MAX + 16], amcheck[PATH_MAX + 16], opts[PATH_MAX + 256];
	double t0 = mono();
	int started = 0, rc = 0;
	memset(res, 0, sizeof(res[0]));
	if (geteuid() == 0)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "PostgreSQL does not run as root: run verify-restore as the "
				     "database's OS user (e.g. runuser -u postgres -- cairn ...)");
	const char *tmp = o->tmp_base ? o->tmp_base : getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/cairn-drill.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		return cairn_err_errno(err, errno, "cannot create a temporary folder in %s",
				       tmp && *tmp ? tmp : "/tmp");
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(sock, sizeof(sock), "%s/sock", dir);
	snprintf(log, sizeof(log), "%s/server.log", dir);
	mkdir(sock, 0700);

	/* 1. restore to the consistent end */
	struct pg_restore_opts ro;
	struct pg_restore_result rr;
	memset(&ro, 0, sizeof(ro));
	ro.snapshot = o->snapshot;
	ro.cluster = o->cluster;
	ro.target_dir = data;
	ro.kind = PGT_IMMEDIATE;
	ro.restore_command = o->restore_command;
	ro.warn = o->warn;
	ro.arg = o->arg;
	rc = pg_restore_run(r, &ro, &rr, err);
	snprintf(res->snapshot, sizeof(res->snapshot), "%s", rr.snapshot);
	snprintf(res->cluster, sizeof(res->cluster), "%s", rr.cluster);
	if (rc) {
		snprintf(res->detail, sizeof(res->detail), "restore failed: %.450s", err->msg);
		goto done;
	}
	say(o, "restored snapshot %.8s of cluster %s (%llu files)", rr.snapshot, rr.cluster,
	    (unsigned long long)rr.st.files);

	/* 2. a private server: no TCP, its own socket, no archiving */
	struct snapshot s;
	unsigned major = 15;
	if (repo_snapshot_find(r, rr.snapshot, &s, err) == 0) {
		major = s.pg_version / 10000;
		snapshot_free(&s);
	}
	if (o->pg_bin)
		snprintf(bin, sizeof(bin), "%s", o->pg_bin);
	else
		snprintf(bin, sizeof(bin), "/usr/lib/postgresql/%u/bin", major);
	snprintf(pgctl, sizeof(pgctl), "%s/pg_ctl", bin);
	snprintf(amcheck, sizeof(amcheck), "%s/pg_amcheck", bin);
	if (access(pgctl, X_OK) != 0) {
		rc = cairn_err_set(err, CAIRN_EUSAGE,
				   "%s not found: install PostgreSQL %u or give --pg-bin", pgctl, major);
		snprintf(res->detail, sizeof(res->detail), "%.500s", err->msg);
		goto done;
	}
	snprintf(opts, sizeof(opts),
		 "-c listen_addresses='' -c unix_socket_directories='%s' -c port=5432 "
		 "-c archive_mode=off -c max_connections=20",
		 sock);
	char *start[] = {pgctl, "-D", data, "-l", log, "-o", opts, "-w", "-t", "600", "start", NULL};
	if (run(start, "/dev/null") != 0) {
		char last[400];
		tail_of(log, last, sizeof(last));
		rc = cairn_err_set(err, CAIRN_EIO, "the restored cluster did not start: %s", last);
		snprintf(res->detail, sizeof(res->detail), "%.500s", err->msg);
		goto done;
	}
	started = 1;
	say(o, "started a temporary PostgreSQL %u on the restored copy", major);

	/* 3. wait until recovery ends and the server takes connections */
	char conninfo[PATH_MAX + 64];
	snprintf(conninfo, sizeof(conninfo), "host=%s port=5432 dbname=postgres user=%s", sock,
		 getenv("USER") ? getenv("USER") : "postgres");
	unsigned limit = o->timeout ? o->timeout : 600;
	PGconn *db = NULL;
	for (;;) {
		db = PQconnectdb(conninfo);
		if (PQstatus(db) == CONNECTION_OK) {
			PGresult *q = PQexec(db, "SELECT pg_is_in_recovery()");
			int in = PQresultStatus(q) == PGRES_TUPLES_OK && !strcmp(PQgetvalue(q, 0, 0), "t");
			PQclear(q);
			if (!in)
				break;
		}
		PQfinish(db);
		db = NULL;
		if (mono() - t0 > limit) {
			rc = cairn_err_set(err, CAIRN_EIO, "recovery did not end within %u s", limit);
			snprintf(res->detail, sizeof(res->detail), "%.500s", err->msg);
			goto done;
		}
		struct timespec pause = {0, 200 * 1000 * 1000};
		nanosleep(&pause, NULL);
	}

	/* 4. every database answers; the largest tables are counted */
	PGresult *dbs = PQexec(db, "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1");
	if (PQresultStatus(dbs) != PGRES_TUPLES_OK) {
		rc = cairn_err_set(err, CAIRN_EIO, "listing databases failed: %s", PQerrorMessage(db));
		PQclear(dbs);
		PQfinish(db);
		snprintf(res->detail, sizeof(res->detail), "%.500s", err->msg);
		goto done;
	}
	PQfinish(db);
	for (int i = 0; i < PQntuples(dbs) && !rc; i++) {
		char ci[PATH_MAX + 200];
		char *name = PQgetvalue(dbs, i, 0);
		snprintf(ci, sizeof(ci), "host=%s port=5432 user=%s dbname='%s'", sock,
			 getenv("USER") ? getenv("USER") : "postgres", name);
		PGconn *c = PQconnectdb(ci);
		if (PQstatus(c) != CONNECTION_OK || fill_tables(c, name, res) != 0) {
			rc = cairn_err_set(err, CAIRN_EIO, "database %s does not answer: %s", name,
					   PQerrorMessage(c));
			snprintf(res->detail, sizeof(res->detail), "%.500s", err->msg);
		}
		res->databases++;
		PQfinish(c);
	}
	PQclear(dbs);
	if (rc)
		goto done;

	/* 5. pg_amcheck over everything */
	if (access(amcheck, X_OK) == 0) {
		char port[] = "5432", amlog[PATH_MAX + 16];
		snprintf(amlog, sizeof(amlog), "%s/amcheck.log", dir);
		char *am[] = {amcheck, "-h", sock, "-p", port, "--all", "--install-missing",
			      "--heapallindexed", NULL};
		int st = run(am, amlog);
		if (st != 0) {
			char last[400];
			tail_of(amlog, last, sizeof(last));
			rc = cairn_err_set(err, CAIRN_EIO, "pg_amcheck found problems (exit %d): %s", st, last);
			snprintf(res->detail, sizeof(res->detail), "%.500s", err->msg);
			goto done;
		}
		say(o, "pg_amcheck --all --heapallindexed: no problems");
	} else if (o->warn) {
		o->warn(o->arg, "pg_amcheck not found: the drill only checks that the databases answer");
	}
	res->ok = 1;
	snprintf(res->detail, sizeof(res->detail), "%u database(s) answered%s", res->databases,
		 access(amcheck, X_OK) == 0 ? ", pg_amcheck clean" : "");
done:
	if (started) {
		char *stop[] = {pgctl, "-D", data, "-m", "fast", "-w", "stop", NULL};
		if (run(stop, "/dev/null") != 0) {
			char *kill9[] = {pgctl, "-D", data, "-m", "immediate", "-w", "stop", NULL};
			run(kill9, "/dev/null");
		}
	}
	remove_tree(dir);
	res->seconds = mono() - t0;
	/* The outcome goes to the repository, good or bad. */
	struct run_record rec;
	memset(&rec, 0, sizeof(rec));
	snprintf(rec.kind, sizeof(rec.kind), "drill");
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	rec.time_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	rec.ok = res->ok;
	gethostname(rec.host, sizeof(rec.host) - 1);
	snprintf(rec.subject, sizeof(rec.subject), "cluster %.64s snapshot %.8s", res->cluster,
		 res->snapshot);
	snprintf(rec.detail, sizeof(rec.detail), "%.480s (%.0f s)", res->detail, res->seconds);
	struct cairn_err e2;
	if (res->snapshot[0] && repo_record_put(r, &rec, &e2) != 0 && o->warn)
		o->warn(o->arg, "the drill's result could not be recorded in the repository");
	return rc;
}
