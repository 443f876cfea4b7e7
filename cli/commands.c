/* commands.c — one function per cairn command; see `cairn help`. */
#include "cli/cli.h"
#include "repo/check.h"
#include "repo/fs.h"
#include "repo/idset.h"
#include "repo/record.h"

#include <time.h>
#include "repo/lock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cmd_init(struct cli *c)
{
	struct cairn_err err = {0, ""};
	char *pass = NULL, id[65];
	size_t plen = 0;
	if (!c->repo)
		return cli_usage("no repository: give -r/--repo or set CAIRN_REPOSITORY");
	int rc = cli_get_pass(c, c->password_file, 1, 0, "New repository passphrase: ", &pass, &plen,
			      &err);
	if (rc)
		return cli_fail(c, rc, &err);
	struct repo_init_opts o;
	memset(&o, 0, sizeof(o));
	o.url = c->repo;
	o.storage = &c->storage;
	o.pass = pass;
	o.pass_len = plen;
	o.kdf.opslimit = CAIRN_KDF_OPS;
	o.kdf.memlimit = CAIRN_KDF_MEM;
	o.host = c->host;
	o.chunker = c->chunk_sizes;
	rc = repo_init(&o, id, &err);
	cli_pass_free(pass, plen);
	if (rc)
		return cli_fail(c, rc, &err);
	if (c->json)
		printf("{\"repository\":\"%s\",\"location\":", id), json_str(stdout, c->repo), printf("}\n");
	else if (!c->quiet)
		printf("created cairn repository %.8s at %s\n"
		       "keep the passphrase safe: without it the data cannot be read back\n",
		       id, c->repo);
	return EXIT_OK;
}

static int same_paths(const struct snapshot *s, char **abs, size_t n)
{
	if (s->npaths != n || (s->flags & (SNAP_STDIN | SNAP_PG)))
		return 0;
	for (size_t i = 0; i < n; i++) {
		size_t j = 0;
		while (j < n && strcmp(s->paths[j], abs[i]))
			j++;
		if (j == n)
			return 0;
	}
	return 1;
}

/* The newest snapshot of the same host and the same paths: its files
 * that have not changed are not read again.  1 found, 0 none, <0 error. */
static int find_parent(struct cli *c, struct repo *r, struct snapshot *out,
		       struct cairn_err *err)
{
	struct snapshot *all = NULL;
	size_t n = 0;
	char host[256], *abs[MAX_LIST];
	size_t nabs = 0;
	int found = 0;
	if (c->host)
		snprintf(host, sizeof(host), "%s", c->host);
	else if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	for (size_t i = 0; i < c->nargs; i++) {
		abs[nabs] = realpath(c->args[i], NULL);
		if (abs[nabs])
			nabs++;
	}
	int rc = repo_snapshots_load(r, &all, &n, NULL, NULL, err);
	for (size_t i = n; rc == 0 && i-- > 0;)
		if (all[i].host && !strcmp(all[i].host, host) && same_paths(&all[i], abs, nabs) &&
		    !(all[i].flags & SNAP_INCOMPLETE)) {
			*out = all[i];
			memset(&all[i], 0, sizeof(all[i]));
			found = 1;
			break;
		}
	for (size_t i = 0; i < nabs; i++)
		free(abs[i]);
	repo_snapshots_free(all, n);
	return rc < 0 ? rc : found;
}

int cmd_backup(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct repo_lock *lk = NULL;
	struct snapshot s;
	memset(&s, 0, sizeof(s));
	if ((c->pgdata || c->remote) && (c->use_stdin || c->nargs))
		return cli_usage("give either --pgdata, --remote, paths or --stdin");
	if (c->pgdata && c->remote)
		return cli_usage("--remote reads over the network: leave out --pgdata");
	if (c->remote && !c->pg_conn)
		return cli_usage("--remote needs --pg-conn CONNINFO");
	if (c->pgdata || c->remote)
		return cmd_backup_pg(c);
	if (c->use_stdin && !c->stdin_name)
		return cli_usage("--stdin needs --stdin-name NAME");
	if (c->use_stdin && c->nargs)
		return cli_usage("give either paths or --stdin, not both");
	if (!c->use_stdin && !c->nargs)
		return cli_usage("backup needs PATH... or --stdin --stdin-name NAME");
	int rc = cli_open(c, &r, &err);
	rc = rc ? rc : cli_lease_take(c, r, &lk, &err);
	if (rc) {
		repo_close(r);
		return cli_fail(c, rc, &err);
	}
	struct snapshot parent;
	memset(&parent, 0, sizeof(parent));
	int have_parent = 0;
	if (!c->use_stdin && !c->full_read) {
		rc = find_parent(c, r, &parent, &err);
		if (rc < 0) {
			repo_unlock(lk);
			repo_close(r);
			return cli_fail(c, rc, &err);
		}
		have_parent = rc == 1;
	}
	struct backup_opts o;
	memset(&o, 0, sizeof(o));
	o.parent = have_parent ? &parent : NULL;
	c->progress_total = have_parent ? parent.stats.logical_bytes : 0;
	o.paths = c->args;
	o.npaths = c->nargs;
	o.stdin_name = c->use_stdin ? c->stdin_name : NULL;
	o.stdin_fd = STDIN_FILENO;
	o.host = c->host;
	o.tags = c->tags;
	o.ntags = c->ntags;
	o.ignore_unreadable = c->ignore_unreadable;
	o.warn = cli_warn;
	o.progress = cli_progress;
	o.arg = c;
	rc = repo_backup(r, &o, &s, &err);
	cli_progress_done(c);
	if (rc == 0 || rc == CAIRN_EPARTIAL) {
		char tot[32], rd[32], nw[32], st[32];
		fmt_bytes(tot, sizeof(tot), s.stats.logical_bytes);
		fmt_bytes(rd, sizeof(rd), s.stats.logical_bytes - s.stats.reused_bytes);
		fmt_bytes(nw, sizeof(nw), s.stats.new_bytes);
		fmt_bytes(st, sizeof(st), s.stats.stored_bytes);
		if (c->json)
			printf("{\"snapshot\":\"%s\",\"parent\":%s%s%s,\"bytes_total\":%llu,"
			       "\"bytes_read\":%llu,\"bytes_new\":%llu,"
			       "\"bytes_stored\":%llu,\"files\":%llu,\"errors\":%llu}\n",
			       s.name, have_parent ? "\"" : "", have_parent ? parent.name : "null",
			       have_parent ? "\"" : "", (unsigned long long)s.stats.logical_bytes,
			       (unsigned long long)(s.stats.logical_bytes - s.stats.reused_bytes),
			       (unsigned long long)s.stats.new_bytes,
			       (unsigned long long)s.stats.stored_bytes,
			       (unsigned long long)s.stats.files, (unsigned long long)s.stats.errors);
		else if (!c->quiet)
			printf("snapshot %s saved\n%llu files, %s (%s read%s%.8s), "
			       "%s new, %s stored after compression\n",
			       s.name, (unsigned long long)s.stats.files, tot, rd,
			       s.stats.reused_bytes ? ", the rest unchanged since " : "",
			       s.stats.reused_bytes && have_parent ? parent.name : "", nw, st);
	}
	if (rc == CAIRN_EPARTIAL) {
		cairn_err_prefix(&err, "backup incomplete");
		fprintf(stderr, "cairn: error: %s\nhint: the paths are listed above; use --ignore-unreadable to accept this\n",
			err.msg);
		rc = EXIT_FAIL;
	} else if (rc) {
		rc = cli_fail(c, rc, &err);
	} else {
		char what[100];
		snprintf(what, sizeof(what), "snapshot %.8s was saved", s.name);
		rc = cli_lease_check(c, lk, what);
	}
	repo_unlock(lk);
	snapshot_free(&s);
	snapshot_free(&parent);
	repo_close(r);
	return rc;
}

static void print_list(FILE *f, char **v, size_t n)
{
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', f);
		json_str(f, v[i]);
	}
	fputc(']', f);
}

static void bad_snapshot(void *arg, const char *name, const struct cairn_err *e)
{
	(void)arg;
	fprintf(stderr, "cairn: warning: snapshot %.16s cannot be read: %s\n", name, e->msg);
}

int cmd_snapshots(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct snapshot *s = NULL;
	size_t n = 0;
	int rc = cli_open(c, &r, &err);
	rc = rc ? rc : repo_snapshots_load(r, &s, &n, bad_snapshot, c, &err);
	if (rc) {
		repo_close(r);
		return cli_fail(c, rc, &err);
	}
	if (c->json) {
		printf("[");
		for (size_t i = 0; i < n; i++) {
			char root[65], t[32];
			hex_encode(root, s[i].root, 32);
			fmt_time(t, sizeof(t), s[i].time_ns);
			printf("%s{\"id\":\"%s\",\"short_id\":\"%.8s\",\"time\":\"%s\",\"time_unix_ns\":%lld,"
			       "\"host\":",
			       i ? "," : "", s[i].name, s[i].name, t, (long long)s[i].time_ns);
			json_str(stdout, s[i].host ? s[i].host : "");
			printf(",\"user\":");
			json_str(stdout, s[i].user ? s[i].user : "");
			printf(",\"paths\":");
			print_list(stdout, s[i].paths, s[i].npaths);
			printf(",\"tags\":");
			print_list(stdout, s[i].tags, s[i].ntags);
			printf(",\"root\":\"%s\",\"incomplete\":%s,\"bytes_read\":%llu,\"bytes_new\":%llu,"
			       "\"bytes_stored\":%llu,\"files\":%llu}",
			       root, (s[i].flags & SNAP_INCOMPLETE) ? "true" : "false",
			       (unsigned long long)s[i].stats.logical_bytes,
			       (unsigned long long)s[i].stats.new_bytes,
			       (unsigned long long)s[i].stats.stored_bytes,
			       (unsigned long long)s[i].stats.files);
		}
		printf("]\n");
	} else {
		printf("%-8s  %-19s  %-16s  %-10s  %s\n", "ID", "Time", "Host", "Size", "Paths / tags");
		for (size_t i = 0; i < n; i++) {
			char t[32], sz[32];
			fmt_time(t, sizeof(t), s[i].time_ns);
			fmt_bytes(sz, sizeof(sz), s[i].stats.logical_bytes);
			printf("%.8s  %-19s  %-16.16s  %-10s  ", s[i].name, t, s[i].host ? s[i].host : "",
			       sz);
			for (size_t j = 0; j < s[i].npaths; j++)
				printf("%s%s", j ? " " : "", s[i].paths[j]);
			for (size_t j = 0; j < s[i].ntags; j++)
				printf(" [%s]", s[i].tags[j]);
			if (s[i].flags & SNAP_INCOMPLETE)
				printf(" (incomplete)");
			printf("\n");
		}
		printf("%zu snapshot(s)\n", n);
	}
	repo_snapshots_free(s, n);
	repo_close(r);
	return EXIT_OK;
}

struct ls_ctx {
	struct cli *c;
	int first;
};

static int ls_one(void *arg, const char *path, const struct node *nd)
{
	struct ls_ctx *l = arg;
	static const char *types[] = {"?", "file", "dir", "symlink"};
	const char *type = nd->type <= 3 ? types[nd->type] : "?";
	if (l->c->json) {
		printf("%s{\"path\":", l->first ? "" : ",\n");
		json_str(stdout, path);
		printf(",\"type\":\"%s\",\"mode\":\"%04o\",\"size\":%llu,\"mtime_unix_ns\":%lld,"
		       "\"uid\":%u,\"gid\":%u",
		       type, nd->mode, (unsigned long long)nd->size, (long long)nd->mtime_ns, nd->uid,
		       nd->gid);
		if (nd->type == NODE_SYMLINK) {
			printf(",\"target\":");
			json_str(stdout, nd->target);
		}
		printf("}");
	} else {
		char t[32];
		fmt_time(t, sizeof(t), nd->mtime_ns);
		printf("%c%04o %10llu %s %s%s%s%s\n", nd->type == NODE_DIR ? 'd' : nd->type == NODE_SYMLINK ? 'l' : '-',
		       nd->mode, (unsigned long long)nd->size, t, path,
		       nd->type == NODE_SYMLINK ? " -> " : "", nd->type == NODE_SYMLINK ? nd->target : "",
		       (nd->flags & NODE_INCOMPLETE) ? " (incomplete)" : "");
	}
	l->first = 0;
	return 0;
}

int cmd_ls(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct snapshot s;
	memset(&s, 0, sizeof(s));
	if (c->nargs < 1 || c->nargs > 2)
		return cli_usage("ls needs SNAPSHOT [PATH]");
	int rc = cli_open(c, &r, &err);
	rc = rc ? rc : repo_snapshot_find(r, c->args[0], &s, &err);
	struct ls_ctx l = {c, 1};
	if (!rc) {
		if (c->json)
			printf("[");
		rc = repo_walk(r, &s, c->nargs > 1 ? c->args[1] : "/", ls_one, &l, &err);
		if (c->json)
			printf("]\n");
	}
	snapshot_free(&s);
	repo_close(r);
	return rc ? cli_fail(c, rc, &err) : EXIT_OK;
}

int cmd_cat(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct snapshot s;
	memset(&s, 0, sizeof(s));
	if (c->nargs != 2)
		return cli_usage("cat needs SNAPSHOT PATH");
	int rc = cli_open(c, &r, &err);
	rc = rc ? rc : repo_snapshot_find(r, c->args[0], &s, &err);
	rc = rc ? rc : repo_cat(r, &s, c->args[1], STDOUT_FILENO, &err);
	snapshot_free(&s);
	repo_close(r);
	return rc ? cli_fail(c, rc, &err) : EXIT_OK;
}

static int dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT ? 1 : -1;
	struct dirent *de;
	int empty = 1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

int cmd_restore(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct snapshot s;
	struct restore_stats st;
	memset(&s, 0, sizeof(s));
	if (!c->target)
		return cli_usage("restore needs --target DIR");
	if (c->nargs == 0 || c->target_kind || c->cluster || c->delta || c->nts ||
	    c->target_action || c->target_timeline)
		return cmd_restore_pg(c);
	if (c->nargs != 1)
		return cli_usage("restore needs SNAPSHOT --target DIR");
	int empty = dir_is_empty(c->target);
	if (empty < 0) {
		cairn_err_errno(&err, errno, "cannot read target folder %s", c->target);
		return cli_fail(c, CAIRN_EIO, &err);
	}
	if (!empty && !c->force) {
		cairn_err_set(&err, CAIRN_EUSAGE,
			      "target folder %s is not empty: refusing to restore into it (use --force to overwrite)",
			      c->target);
		return cli_fail(c, CAIRN_EUSAGE, &err);
	}
	int rc = cli_open(c, &r, &err);
	rc = rc ? rc : repo_snapshot_find(r, c->args[0], &s, &err);
	if (!rc && (s.flags & SNAP_PG)) {
		/* A PostgreSQL backup always restores with its recovery set up. */
		snapshot_free(&s);
		repo_close(r);
		return cmd_restore_pg(c);
	}
	if (!rc) {
		struct restore_opts o;
		memset(&o, 0, sizeof(o));
		o.target = c->target;
		o.includes = c->includes;
		o.nincludes = c->nincludes;
		o.overwrite = c->force;
		c->progress_total = c->nincludes ? 0 : s.stats.logical_bytes;
		o.warn = cli_warn;
		o.progress = cli_progress;
		o.arg = c;
		rc = repo_restore(r, &s, &o, &st, &err);
		cli_progress_done(c);
		if ((rc == 0 || rc == CAIRN_ECORRUPT) && !c->quiet) {
			char b[32];
			fmt_bytes(b, sizeof(b), st.bytes);
			if (c->json)
				printf("{\"snapshot\":\"%s\",\"files\":%llu,\"dirs\":%llu,\"bytes\":%llu,"
				       "\"damaged\":%llu}\n",
				       s.name, (unsigned long long)st.files, (unsigned long long)st.dirs,
				       (unsigned long long)st.bytes, (unsigned long long)st.damaged);
			else
				printf("restored snapshot %.8s to %s: %llu files, %llu folders, %s%s\n", s.name,
				       c->target, (unsigned long long)st.files, (unsigned long long)st.dirs,
				       b, st.damaged ? " (some damaged files were NOT restored)" : "");
		}
	}
	snapshot_free(&s);
	repo_close(r);
	return rc ? cli_fail(c, rc, &err) : EXIT_OK;
}

static void check_report(void *arg, const char *msg)
{
	struct cli *c = arg;
	cli_progress_done(c);
	printf("%s\n", msg);
}

int cmd_check(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct check_result res;
	memset(&res, 0, sizeof(res));
	int rc = cli_open(c, &r, &err);
	if (!rc) {
		struct check_opts o = {.read_data = c->read_data,
				       .subset_k = c->subset_k,
				       .subset_n = c->subset_n,
				       .subset_percent = c->subset_percent,
				       .since_last_ns = c->since_last_ns,
				       .report = check_report,
				       .arg = c};
		rc = repo_check(r, &o, &res, &err);
		if (c->read_data && (rc == 0 || rc == CAIRN_ECORRUPT)) {
			/* A scrub: recorded for status, on any host. */
			struct run_record rec;
			struct cairn_err e2;
			struct timespec now;
			memset(&rec, 0, sizeof(rec));
			snprintf(rec.kind, sizeof(rec.kind), "scrub");
			clock_gettime(CLOCK_REALTIME, &now);
			rec.time_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
			rec.ok = rc == 0;
			gethostname(rec.host, sizeof(rec.host) - 1);
			snprintf(rec.subject, sizeof(rec.subject), "%llu of %llu pack(s) read",
				 (unsigned long long)res.packs_read, (unsigned long long)res.packs);
			snprintf(rec.detail, sizeof(rec.detail), "%llu problem(s)",
				 (unsigned long long)res.problems);
			if (repo_record_put(r, &rec, &e2) != 0)
				cli_warn(c, "the scrub's result could not be recorded in the repository");
		}
	}
	repo_close(r);
	if ((rc == 0 || rc == CAIRN_ECORRUPT) && !c->quiet) {
		if (c->json)
			printf("{\"snapshots\":%llu,\"trees\":%llu,\"data_blobs\":%llu,\"packs\":%llu,"
			       "\"packs_read\":%llu,\"problems\":%llu,\"damaged_packs\":%llu,"
			       "\"damaged_files\":%llu,\"wal_files\":%llu,\"damaged_wal\":%llu}\n",
			       (unsigned long long)res.snapshots, (unsigned long long)res.trees,
			       (unsigned long long)res.data_blobs, (unsigned long long)res.packs,
			       (unsigned long long)res.packs_read, (unsigned long long)res.problems,
			       (unsigned long long)res.damaged_packs, (unsigned long long)res.damaged_files,
			       (unsigned long long)res.wal_files, (unsigned long long)res.damaged_wal);
		else
			printf("checked %llu snapshot(s), %llu tree(s), %llu WAL file(s), %llu data blob(s), "
			       "%llu pack(s)%s: %s\n",
			       (unsigned long long)res.snapshots, (unsigned long long)res.trees,
			       (unsigned long long)res.wal_files,
			       (unsigned long long)res.data_blobs, (unsigned long long)res.packs,
			       !c->read_data ? ""
			       : (c->subset_n || c->subset_percent > 0 || c->since_last_ns) ? " (data of the chosen packs read)"
			       : " (all data read)",
			       rc ? "DAMAGE FOUND" : "no errors");
	}
	return rc ? cli_fail(c, rc, &err) : EXIT_OK;
}

/* Writes the master key to a new file, mode 0600, durably. */
static int export_host_key(struct cli *c, const char *path)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	uint8_t out[HOSTKEY_LEN];
	int rc = cli_open(c, &r, &err);
	if (rc)
		return cli_fail(c, rc, &err);
	hostkey_encode(out, repo_get_config(r)->id, repo_get_keys(r)->master);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = cairn_err_errno(&err, errno, "cannot create key file %s%s", path,
				     errno == EEXIST ? " (it exists: refusing to overwrite)" : "");
	} else {
		ssize_t w = write(fd, out, sizeof(out));
		if (w != (ssize_t)sizeof(out) || fsync(fd) != 0) {
			rc = cairn_err_errno(&err, errno ? errno : EIO, "cannot write key file %s", path);
			unlink(path);
		}
		if (close(fd) != 0 && !rc) {
			rc = cairn_err_errno(&err, errno, "cannot write key file %s", path);
			unlink(path);
		}
	}
	sodium_memzero(out, sizeof(out));
	repo_close(r);
	if (rc)
		return cli_fail(c, rc, &err);
	if (!c->quiet)
		printf("wrote host key file %s: it opens the repository without a passphrase, keep it "
		       "as secret (use it with --key-file or CAIRN_KEY_FILE)\n", path);
	return EXIT_OK;
}

int cmd_key(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	if (c->nargs < 1)
		return cli_usage("key needs add, list, remove ID or passwd");
	const char *sub = c->args[0];
	if (strcmp(sub, "add") && strcmp(sub, "list") && strcmp(sub, "remove") &&
	    strcmp(sub, "passwd") && strcmp(sub, "export-host-key"))
		return cli_usage("unknown key command '%s' (add, list, remove ID, passwd, "
				 "export-host-key FILE)", sub);
	if (!strcmp(sub, "remove") && c->nargs != 2)
		return cli_usage("key remove needs the key's ID");
	if (!strcmp(sub, "export-host-key"))
		return c->nargs == 2 ? export_host_key(c, c->args[1])
				     : cli_usage("key export-host-key needs FILE");
	int rc = cli_open(c, &r, &err);
	if (rc)
		return cli_fail(c, rc, &err);
	if (!strcmp(sub, "list")) {
		struct key_info *v = NULL;
		size_t n = 0;
		rc = repo_key_list(r, &v, &n, &err);
		if (!rc) {
			if (c->json)
				printf("[");
			else
				printf("   %-8s  %-19s  %-20s  %s\n", "ID", "Created", "Host", "User");
			for (size_t i = 0; i < n; i++) {
				char t[32];
				int cur = !strcmp(v[i].name, repo_key_in_use(r));
				fmt_time(t, sizeof(t), (int64_t)v[i].created * 1000000000);
				if (c->json) {
					printf("%s{\"id\":\"%s\",\"current\":%s,\"created\":\"%s\",\"host\":",
					       i ? "," : "", v[i].name, cur ? "true" : "false", t);
					json_str(stdout, v[i].host);
					printf(",\"user\":");
					json_str(stdout, v[i].user);
					printf("}");
				} else {
					printf("%s %.8s  %-19s  %-20s  %s\n", cur ? "*" : " ", v[i].name, t,
					       v[i].host, v[i].user);
				}
			}
			if (c->json)
				printf("]\n");
		}
		free(v);
	} else if (!strcmp(sub, "remove")) {
		rc = repo_key_remove(r, c->args[1], &err);
		if (!rc && !c->quiet)
			printf("removed key %s\n", c->args[1]);
	} else {
		char *pass = NULL, name[65];
		size_t plen = 0;
		struct kdf_params kdf = {CAIRN_KDF_OPS, CAIRN_KDF_MEM};
		if (!strcmp(sub, "passwd") && !repo_key_in_use(r)[0])
			rc = cairn_err_set(&err, CAIRN_EUSAGE,
					   "key passwd changes the passphrase in use: open the repository "
					   "with that passphrase, not a host key file");
		if (!rc)
			rc = cli_get_pass(c, c->new_password_file, 1, 1, "New passphrase: ", &pass,
					  &plen, &err);
		rc = rc ? rc : repo_key_add(r, pass, plen, &kdf, c->host, NULL, name, &err);
		cli_pass_free(pass, plen);
		if (!rc && !strcmp(sub, "passwd")) {
			char old[65];
			snprintf(old, sizeof(old), "%s", repo_key_in_use(r));
			char key[80];
			snprintf(key, sizeof(key), "keys/%s", old);
			/* The new key is durable before the old one goes. */
			rc = storage_del(repo_get_storage(r), key, &err);
			if (!rc && !c->quiet)
				printf("passphrase changed: key %.8s replaces %.8s\n", name, old);
		} else if (!rc && !c->quiet) {
			printf("added key %.8s\n", name);
		}
	}
	repo_close(r);
	return rc ? cli_fail(c, rc, &err) : EXIT_OK;
}

struct stats_ctx {
	struct repo *r;
	struct idset seen;
	uint64_t logical, files, blobs, unique_raw, unique_stored;
	struct cairn_err *err;
};

static int stats_walk(void *arg, const char *path, const struct node *nd)
{
	struct stats_ctx *x = arg;
	(void)path;
	if (nd->type != NODE_FILE)
		return 0;
	x->files++;
	x->logical += nd->size;
	for (size_t i = 0; i < nd->nblobs; i++) {
		x->blobs++;
		if (idset_get(&x->seen, nd->blobs[i].id, NULL))
			continue;
		struct blob_loc loc;
		int rc = repo_find_blob(x->r, nd->blobs[i].id, &loc, x->err);
		if (rc)
			return rc;
		if (idset_put(&x->seen, nd->blobs[i].id, 0))
			return CAIRN_ENOMEM;
		x->unique_raw += loc.raw_len;
		x->unique_stored += loc.sealed_len;
	}
	return 0;
}

struct pack_count {
	uint64_t n, bytes;
};

static int count_pack(void *arg, const char *key, uint64_t size)
{
	struct pack_count *p = arg;
	(void)key;
	p->n++;
	p->bytes += size;
	return 0;
}

int cmd_stats(struct cli *c)
{
	struct cairn_err err = {0, ""};
	struct repo *r = NULL;
	struct snapshot *s = NULL;
	size_t n = 0;
	struct pack_count pc = {0, 0};
	if (c->nargs > 1)
		return cli_usage("stats takes at most one SNAPSHOT");
	int rc = cli_open(c, &r, &err);
	if (rc)
		return cli_fail(c, rc, &err);
	struct stats_ctx x;
	memset(&x, 0, sizeof(x));
	x.r = r;
	x.err = &err;
	if (c->nargs == 1) {
		s = calloc(1, sizeof(*s));
		n = 1;
		rc = s ? repo_snapshot_find(r, c->args[0], s, &err)
		       : cairn_err_set(&err, CAIRN_ENOMEM, "out of memory");
	} else {
		rc = repo_snapshots_load(r, &s, &n, bad_snapshot, c, &err);
	}
	for (size_t i = 0; i < n && !rc; i++)
		rc = repo_walk(r, &s[i], "/", stats_walk, &x, &err);
	rc = rc ? rc : storage_list(repo_get_storage(r), "packs/", count_pack, &pc, &err);
	if (!rc) {
		double ratio = x.unique_stored ? (double)x.logical / (double)x.unique_stored : 0;
		if (c->json) {
			printf("{\"snapshots\":%zu,\"files\":%llu,\"logical_bytes\":%llu,\"blobs\":%llu,"
			       "\"unique_blobs\":%zu,\"unique_bytes\":%llu,\"stored_bytes\":%llu,"
			       "\"packs\":%llu,\"pack_bytes\":%llu,\"dedup_ratio\":%.3f}\n",
			       n, (unsigned long long)x.files, (unsigned long long)x.logical,
			       (unsigned long long)x.blobs, x.seen.n, (unsigned long long)x.unique_raw,
			       (unsigned long long)x.unique_stored, (unsigned long long)pc.n,
			       (unsigned long long)pc.bytes, ratio);
		} else {
			char lb[32], ub[32], sb[32], pb[32];
			fmt_bytes(lb, sizeof(lb), x.logical);
			fmt_bytes(ub, sizeof(ub), x.unique_raw);
			fmt_bytes(sb, sizeof(sb), x.unique_stored);
			fmt_bytes(pb, sizeof(pb), pc.bytes);
			printf("snapshots:     %zu\nfiles:         %llu\nlogical size:  %s\n"
			       "blobs:         %llu (%zu unique, %s)\nstored size:   %s (after dedup, compression, encryption)\n"
			       "packs:         %llu in the repository, %s\ndedup ratio:   %.2fx (logical / stored)\n",
			       n, (unsigned long long)x.files, lb, (unsigned long long)x.blobs, x.seen.n, ub,
			       sb, (unsigned long long)pc.n, pb, ratio);
		}
	}
	idset_free(&x.seen);
	repo_snapshots_free(s, n);
	repo_close(r);
	return rc ? cli_fail(c, rc, &err) : EXIT_OK;
}
