/*
 * main.c — `cairn`: parses the command line and runs one command.
 *
 * Options may come before or after the command.  Global options have
 * environment fallbacks (CAIRN_REPOSITORY, CAIRN_PASSWORD_FILE,
 * CAIRN_PASSWORD_COMMAND, CAIRN_CACHE_DIR); secrets never on the command
 * line.  Exit codes: 0 success, 1 failure, 2 usage, 3 damage found.
 */
#include "cli/cli.h"
#include "pg/pgbackup.h"
#include "repo/forget.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help_text[] =
	"cairn " CAIRN_VERSION_STRING " - encrypted, deduplicated backups\n"
	"\n"
	"usage: cairn [global options] COMMAND [options] [arguments]\n"
	"\n"
	"commands:\n"
	"  init [--chunk-sizes MIN,AVG,MAX]\n"
	"                                create a repository (chunker sizes: 16K,64K,256K)\n"
	"  backup PATH... [--tag T] [--host H] [--ignore-unreadable] [--full-read]\n"
	"  backup --stdin --stdin-name NAME [--tag T]\n"
	"  backup --pgdata DIR [--pg-conn CONNINFO] [--cluster NAME] [--tag T]\n"
	"  backup --remote --pg-conn CONNINFO [--cluster NAME] [--tag T]\n"
	"         [--full-read] [--ignore-checksum-errors] [--archive-timeout SECONDS]\n"
	"         [--page-chunk SIZE|off]  relation files are cut every SIZE bytes (16K)\n"
	"                                base backup of a running PostgreSQL cluster (--remote:\n"
	"                                over the replication protocol, no file access needed)\n"
	"                                store paths (or standard input) as a new snapshot;\n"
	"                                files unchanged since the last snapshot of the same\n"
	"                                paths and host are not read again (--full-read: read all)\n"
	"  snapshots                     list snapshots\n"
	"  ls SNAPSHOT [PATH]            list the files of a snapshot\n"
	"  cat SNAPSHOT PATH             write one file of a snapshot to standard output\n"
	"  restore SNAPSHOT --target DIR [--include PATH]... [--force]\n"
	"                                restore a snapshot (refuses a non-empty DIR without --force)\n"
	"  restore [SNAPSHOT] --target DIR [--cluster NAME] [--target-time TS | --target-lsn LSN\n"
	"          | --target-xid XID | --target-name NAME | --immediate]\n"
	"          [--target-action promote|pause|shutdown] [--target-timeline latest|current|N]\n"
	"          [--tablespace-map OLD=NEW]... [--delta]\n"
	"                                restore a PostgreSQL base backup and set up recovery to\n"
	"                                the target (default: all archived WAL); without SNAPSHOT,\n"
	"                                the newest backup that ended before the target; refuses a\n"
	"                                target the archived WAL cannot reach\n"
	"  info [--cluster NAME]         per cluster: base backups, archived WAL, PITR windows\n"
	"  verify-restore [SNAPSHOT] [--cluster NAME]\n"
	"                                restore drill: restore into a temporary folder, start a\n"
	"                                private PostgreSQL, recover, pg_amcheck, query every\n"
	"                                database; the result is recorded in the repository\n"
	"  status [--cluster NAME] [--json | --prometheus]\n"
	"                                backup and WAL age, archive gaps, PITR window, last drill\n"
	"                                and scrub, logical vs stored bytes (--prometheus: the\n"
	"                                node_exporter textfile format)\n"
	"  check [--read-data]           verify the repository's structure (and all data)\n"
	"  check --read-data-subset K/N | P%  |  --read-data-since-last DURATION\n"
	"                                scrub jobs: read one of N slices, a random share, or\n"
	"                                what no scrub read for DURATION (any host; recorded)\n"
	"  key list | key add | key remove ID | key passwd\n"
	"                                manage the passphrases that open the repository\n"
	"                                (new passphrase: --new-password-file F, or a prompt)\n"
	"  stats [SNAPSHOT]              logical and stored bytes, blobs, packs, dedup ratio\n"
	"  archive-push PATH [--cluster NAME]\n"
	"                                archive_command: store one WAL file, durably\n"
	"  archive-get NAME PATH [--cluster NAME]\n"
	"                                restore_command: fetch one WAL file (exit 1 if absent)\n"
	"  key export-host-key FILE      write the master key to FILE (mode 0600) for --key-file\n"
	"  forget [--cluster NAME] [--keep-last N] [--keep-hourly N] [--keep-daily N]\n"
	"         [--keep-weekly N] [--keep-monthly N] [--keep-yearly N] [--keep-within DURATION]\n"
	"         [--keep-tag T]... [--keep-wal-for N] [--dry-run] [--prune]\n"
	"                                retention: per cluster (or host and paths) keep what a\n"
	"                                rule keeps, remove the other snapshots and the WAL only\n"
	"                                they needed (--keep-wal-for N: PITR reach only for the N\n"
	"                                newest backups); --prune: prune afterwards\n"
	"  prune [--max-unused PERCENT] [--dry-run] [--lock-wait DURATION]\n"
	"                                delete packs nothing references, repack packs with more\n"
	"                                than PERCENT (default 10) unused; backups and archive-push\n"
	"                                go on meanwhile, except for a short window when it deletes\n"
	"                                (it waits up to DURATION, default 1h, for a moment without\n"
	"                                backups running)\n"
	"  repair [--dry-run] [--lock-wait DURATION]\n"
	"                                rebuild the index from the packs (drop index objects that\n"
	"                                name missing packs), then list what cannot be recovered\n"
	"                                (exit 3); never deletes a snapshot\n"
	"  locks                         list the repository's locks (writers hold one while they\n"
	"                                run) and whether each is stale\n"
	"  unlock --stale                remove stale locks (expired, or of a process that is gone\n"
	"                                from this host); there is no --all\n"
	"  unlock ID [--force]           remove one lock (a live one only with --force)\n"
	"  help                          this text\n"
	"\n"
	"A SNAPSHOT is 'latest', a full id, or a unique prefix of at least 8 hex digits.\n"
	"\n"
	"global options:\n"
	"  -r, --repo URL                repository location (env CAIRN_REPOSITORY)\n"
	"  --password-file F             read the passphrase from F (env CAIRN_PASSWORD_FILE)\n"
	"  --password-command CMD        run CMD for the passphrase (env CAIRN_PASSWORD_COMMAND)\n"
	"                                (else env CAIRN_PASSWORD, else a prompt on the terminal)\n"
	"  --key-file F                  open with a host key file instead of a passphrase\n"
	"                                (env CAIRN_KEY_FILE)\n"
	"  --config F                    read settings from F: lines 'key = value' with keys\n"
	"                                repo, key-file, password-file, password-command,\n"
	"                                cache-dir, cluster, pgdata, pg-conn, s3-endpoint,\n"
	"                                s3-region, s3-uri-style, s3-ca-file, limit-upload,\n"
	"                                limit-download (env CAIRN_CONFIG; flags and env win)\n"
	"  --s3-endpoint URL             for s3://BUCKET/PREFIX repositories (env CAIRN_S3_ENDPOINT);\n"
	"                                credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,\n"
	"                                AWS_SESSION_TOKEN\n"
	"  --s3-region R                 default us-east-1\n"
	"  --s3-uri-style path|host      path (default) or virtual-host style\n"
	"  --s3-ca-file F                trust a private CA (TLS is always verified)\n"
	"  --limit-upload KIB, --limit-download KIB\n"
	"                                bandwidth caps in KiB/s\n"
	"  --cache-dir DIR               local index cache (env CAIRN_CACHE_DIR;\n"
	"                                default $XDG_CACHE_HOME/cairn or ~/.cache/cairn)\n"
	"  --json                        machine-readable output\n"
	"  -q, --quiet                   print only errors\n"
	"  -v, --verbose                 say more (progress lines even when not on a terminal)\n"
	"\n"
	"exit codes: 0 success, 1 failure, 2 usage error, 3 damage found (check or restore\n"
	"met data that fails verification)\n";

enum opt_kind { FLAG, VALUE };

struct opt {
	const char *lng;
	char shrt;
	enum opt_kind kind;
	int id;
};

enum {
	O_REPO, O_PWFILE, O_PWCMD, O_CACHE, O_JSON, O_QUIET, O_VERBOSE, O_HELP,
	O_TAG, O_HOST, O_STDIN, O_STDIN_NAME, O_TARGET, O_INCLUDE, O_FORCE,
	O_READ_DATA, O_NEW_PWFILE, O_IGNORE_UNREADABLE, O_FULL_READ,
	O_KEY_FILE, O_CONFIG, O_CLUSTER, O_PGDATA, O_PG_CONN, O_IGNORE_CHECKSUMS,
	O_T_TIME, O_T_LSN, O_T_XID, O_T_NAME, O_T_IMMEDIATE, O_T_ACTION, O_T_TIMELINE,
	O_TS_MAP, O_DELTA, O_ARCHIVE_TIMEOUT, O_REMOTE,
	O_S3_ENDPOINT, O_S3_REGION, O_S3_URI_STYLE, O_S3_CA_FILE, O_LIMIT_UP, O_LIMIT_DOWN,
	O_STALE,
	O_PROMETHEUS, O_RD_SUBSET, O_RD_SINCE,
	O_K_LAST, O_K_HOURLY, O_K_DAILY, O_K_WEEKLY, O_K_MONTHLY, O_K_YEARLY, O_K_WITHIN,
	O_K_TAG, O_K_WAL_FOR, O_DRY_RUN, O_PRUNE, O_MAX_UNUSED,
	O_PAGE_CHUNK, O_CHUNK_SIZES, O_LOCK_WAIT,
};

static const struct opt opts[] = {
	{"repo", 'r', VALUE, O_REPO},
	{"password-file", 0, VALUE, O_PWFILE},
	{"password-command", 0, VALUE, O_PWCMD},
	{"cache-dir", 0, VALUE, O_CACHE},
	{"json", 0, FLAG, O_JSON},
	{"quiet", 'q', FLAG, O_QUIET},
	{"verbose", 'v', FLAG, O_VERBOSE},
	{"help", 'h', FLAG, O_HELP},
	{"tag", 0, VALUE, O_TAG},
	{"host", 0, VALUE, O_HOST},
	{"stdin", 0, FLAG, O_STDIN},
	{"stdin-name", 0, VALUE, O_STDIN_NAME},
	{"target", 0, VALUE, O_TARGET},
	{"include", 0, VALUE, O_INCLUDE},
	{"force", 0, FLAG, O_FORCE},
	{"read-data", 0, FLAG, O_READ_DATA},
	{"new-password-file", 0, VALUE, O_NEW_PWFILE},
	{"ignore-unreadable", 0, FLAG, O_IGNORE_UNREADABLE},
	{"full-read", 0, FLAG, O_FULL_READ},
	{"key-file", 0, VALUE, O_KEY_FILE},
	{"config", 0, VALUE, O_CONFIG},
	{"cluster", 0, VALUE, O_CLUSTER},
	{"pgdata", 0, VALUE, O_PGDATA},
	{"pg-conn", 0, VALUE, O_PG_CONN},
	{"ignore-checksum-errors", 0, FLAG, O_IGNORE_CHECKSUMS},
	{"target-time", 0, VALUE, O_T_TIME},
	{"target-lsn", 0, VALUE, O_T_LSN},
	{"target-xid", 0, VALUE, O_T_XID},
	{"target-name", 0, VALUE, O_T_NAME},
	{"immediate", 0, FLAG, O_T_IMMEDIATE},
	{"target-action", 0, VALUE, O_T_ACTION},
	{"target-timeline", 0, VALUE, O_T_TIMELINE},
	{"tablespace-map", 0, VALUE, O_TS_MAP},
	{"delta", 0, FLAG, O_DELTA},
	{"archive-timeout", 0, VALUE, O_ARCHIVE_TIMEOUT},
	{"remote", 0, FLAG, O_REMOTE},
	{"prometheus", 0, FLAG, O_PROMETHEUS},
	{"read-data-subset", 0, VALUE, O_RD_SUBSET},
	{"read-data-since-last", 0, VALUE, O_RD_SINCE},
	{"s3-endpoint", 0, VALUE, O_S3_ENDPOINT},
	{"s3-region", 0, VALUE, O_S3_REGION},
	{"s3-uri-style", 0, VALUE, O_S3_URI_STYLE},
	{"s3-ca-file", 0, VALUE, O_S3_CA_FILE},
	{"limit-upload", 0, VALUE, O_LIMIT_UP},
	{"limit-download", 0, VALUE, O_LIMIT_DOWN},
	{"stale", 0, FLAG, O_STALE},
	{"keep-last", 0, VALUE, O_K_LAST},
	{"keep-hourly", 0, VALUE, O_K_HOURLY},
	{"keep-daily", 0, VALUE, O_K_DAILY},
	{"keep-weekly", 0, VALUE, O_K_WEEKLY},
	{"keep-monthly", 0, VALUE, O_K_MONTHLY},
	{"keep-yearly", 0, VALUE, O_K_YEARLY},
	{"keep-within", 0, VALUE, O_K_WITHIN},
	{"keep-tag", 0, VALUE, O_K_TAG},
	{"keep-wal-for", 0, VALUE, O_K_WAL_FOR},
	{"dry-run", 0, FLAG, O_DRY_RUN},
	{"prune", 0, FLAG, O_PRUNE},
	{"max-unused", 0, VALUE, O_MAX_UNUSED},
	{"page-chunk", 0, VALUE, O_PAGE_CHUNK},
	{"chunk-sizes", 0, VALUE, O_CHUNK_SIZES},
	{"lock-wait", 0, VALUE, O_LOCK_WAIT},
};

/* Which command-specific options each command accepts. */
static int allowed(const char *cmd, int id)
{
	if (id <= O_HELP || id == O_KEY_FILE || id == O_CONFIG ||
	    (id >= O_S3_ENDPOINT && id <= O_LIMIT_DOWN))
		return 1;
	if (!strcmp(cmd, "backup"))
		return id == O_TAG || id == O_HOST || id == O_STDIN || id == O_STDIN_NAME ||
		       id == O_IGNORE_UNREADABLE || id == O_FULL_READ || id == O_PGDATA ||
		       id == O_PG_CONN || id == O_CLUSTER || id == O_IGNORE_CHECKSUMS ||
		       id == O_ARCHIVE_TIMEOUT || id == O_REMOTE || id == O_PAGE_CHUNK;
	if (!strcmp(cmd, "info"))
		return id == O_CLUSTER;
	if (!strcmp(cmd, "verify-restore"))
		return id == O_CLUSTER;
	if (!strcmp(cmd, "status"))
		return id == O_CLUSTER || id == O_PROMETHEUS;
	if (!strcmp(cmd, "archive-push") || !strcmp(cmd, "archive-get"))
		return id == O_CLUSTER;
	if (!strcmp(cmd, "init"))
		return id == O_HOST || id == O_CHUNK_SIZES;
	if (!strcmp(cmd, "restore"))
		return id == O_TARGET || id == O_INCLUDE || id == O_FORCE || id == O_CLUSTER ||
		       (id >= O_T_TIME && id <= O_DELTA);
	if (!strcmp(cmd, "check"))
		return id == O_READ_DATA || id == O_RD_SUBSET || id == O_RD_SINCE;
	if (!strcmp(cmd, "key"))
		return id == O_NEW_PWFILE || id == O_HOST;
	if (!strcmp(cmd, "unlock"))
		return id == O_STALE || id == O_FORCE;
	if (!strcmp(cmd, "forget"))
		return id == O_CLUSTER || (id >= O_K_LAST && id <= O_PRUNE) || id == O_MAX_UNUSED ||
		       id == O_LOCK_WAIT;
	if (!strcmp(cmd, "prune"))
		return id == O_DRY_RUN || id == O_MAX_UNUSED || id == O_LOCK_WAIT;
	if (!strcmp(cmd, "repair"))
		return id == O_DRY_RUN || id == O_LOCK_WAIT;
	return 0;
}

static int push(const char **list, size_t *n, const char *v)
{
	if (*n >= MAX_LIST)
		return -1;
	list[(*n)++] = v;
	return 0;
}

static int set_opt(struct cli *c, int id, const char *v)
{
	switch (id) {
	case O_REPO: c->repo = v; break;
	case O_PWFILE: c->password_file = v; break;
	case O_PWCMD: c->password_command = v; break;
	case O_CACHE: c->cache_dir = v; break;
	case O_JSON: c->json = 1; break;
	case O_QUIET: c->quiet = 1; break;
	case O_VERBOSE: c->verbose++; break;
	case O_TAG: return push(c->tags, &c->ntags, v);
	case O_HOST: c->host = v; break;
	case O_STDIN: c->use_stdin = 1; break;
	case O_STDIN_NAME: c->stdin_name = v; break;
	case O_TARGET: c->target = v; break;
	case O_INCLUDE: return push(c->includes, &c->nincludes, v);
	case O_FORCE: c->force = 1; break;
	case O_READ_DATA: c->read_data = 1; break;
	case O_NEW_PWFILE: c->new_password_file = v; break;
	case O_IGNORE_UNREADABLE: c->ignore_unreadable = 1; break;
	case O_FULL_READ: c->full_read = 1; break;
	case O_KEY_FILE: c->key_file = v; break;
	case O_CONFIG: c->config = v; break;
	case O_CLUSTER: c->cluster = v; break;
	case O_PGDATA: c->pgdata = v; break;
	case O_PG_CONN: c->pg_conn = v; break;
	case O_IGNORE_CHECKSUMS: c->ignore_checksum_errors = 1; break;
	case O_T_TIME: case O_T_LSN: case O_T_XID: case O_T_NAME: case O_T_IMMEDIATE:
		if (c->target_kind)
			return -2;
		c->target_kind = id == O_T_TIME ? "time" : id == O_T_LSN ? "lsn"
			       : id == O_T_XID ? "xid" : id == O_T_NAME ? "name" : "immediate";
		c->target_value = v;
		break;
	case O_T_ACTION: c->target_action = v; break;
	case O_T_TIMELINE: c->target_timeline = v; break;
	case O_TS_MAP: {
		const char *eq = strchr(v, '=');
		if (!eq || eq == v || !eq[1] || c->nts >= MAX_LIST)
			return -3;
		char *from = strndup(v, (size_t)(eq - v));
		if (!from)
			return -1;
		c->ts_from[c->nts] = from;
		c->ts_to[c->nts++] = eq + 1;
		break;
	}
	case O_DELTA: c->delta = 1; break;
	case O_REMOTE: c->remote = 1; break;
	case O_PROMETHEUS: c->prometheus = 1; break;
	case O_RD_SUBSET: {
		unsigned k, n;
		double pct;
		char tail;
		c->read_data = 1;
		if (sscanf(v, "%u/%u%c", &k, &n, &tail) == 2 && n > 0 && k >= 1 && k <= n) {
			c->subset_k = k;
			c->subset_n = n;
		} else if (sscanf(v, "%lf%%%c", &pct, &tail) == 1 && pct > 0 && pct <= 100 &&
			   strchr(v, '%')) {
			c->subset_percent = pct;
		} else {
			return -7;
		}
		break;
	}
	case O_RD_SINCE: {
		int64_t d = forget_parse_duration(v);
		if (d <= 0)
			return -8;
		c->read_data = 1;
		c->since_last_ns = d;
		break;
	}
	case O_STALE: c->stale = 1; break;
	case O_K_LAST: case O_K_HOURLY: case O_K_DAILY: case O_K_WEEKLY: case O_K_MONTHLY:
	case O_K_YEARLY: case O_K_WAL_FOR: {
		char *end;
		unsigned long k = strtoul(v, &end, 10);
		if (!*v || *end || k == 0 || k > 1000000)
			return -9;
		unsigned *f[] = {&c->keep_last, &c->keep_hourly, &c->keep_daily, &c->keep_weekly,
				 &c->keep_monthly, &c->keep_yearly};
		if (id == O_K_WAL_FOR)
			c->keep_wal_for = (unsigned)k;
		else
			*f[id - O_K_LAST] = (unsigned)k;
		break;
	}
	case O_K_WITHIN: {
		int64_t d = forget_parse_duration(v);
		if (d <= 0)
			return -10;
		c->keep_within_ns = d;
		break;
	}
	case O_K_TAG: return push(c->keep_tags, &c->nkeep_tags, v);
	case O_DRY_RUN: c->dry_run = 1; break;
	case O_LOCK_WAIT: {
		int64_t d = forget_parse_duration(v);
		if (d <= 0)
			return -14;
		c->lock_wait_ns = d;
		break;
	}
	case O_PRUNE: c->prune = 1; break;
	case O_MAX_UNUSED: {
		char *end;
		double pct = strtod(v, &end);
		if (!*v || (*end && strcmp(end, "%")) || !(pct >= 0 && pct <= 100))
			return -11;
		c->max_unused = pct;
		c->max_unused_set = 1;
		break;
	}
	case O_S3_ENDPOINT: c->storage.s3_endpoint = v; break;
	case O_S3_REGION: c->storage.s3_region = v; break;
	case O_S3_URI_STYLE:
		if (strcmp(v, "path") && strcmp(v, "host"))
			return -5;
		c->storage.s3_uri_style = v;
		break;
	case O_S3_CA_FILE: c->storage.s3_ca_file = v; break;
	case O_LIMIT_UP:
	case O_LIMIT_DOWN: {
		char *end;
		unsigned long long kib = strtoull(v, &end, 10);
		if (*end || kib == 0 || kib > (1ull << 40))
			return -6;
		*(id == O_LIMIT_UP ? &c->storage.limit_upload : &c->storage.limit_download) = kib * 1024;
		break;
	}
	case O_PAGE_CHUNK: {
		uint64_t b;
		if (!strcmp(v, "off")) {
			c->page_chunk = PG_PAGE_CHUNK_OFF;
			break;
		}
		if (cli_parse_size(v, &b) || b == 0 || b > (64u << 20))
			return -12;
		c->page_chunk = (uint32_t)b;
		break;
	}
	case O_CHUNK_SIZES: {
		uint64_t b[3];
		char buf[64], *save = NULL, *tok;
		size_t k = 0;
		snprintf(buf, sizeof(buf), "%s", v);
		for (tok = strtok_r(buf, ",", &save); tok && k < 3; tok = strtok_r(NULL, ",", &save))
			if (cli_parse_size(tok, &b[k++]) || b[k - 1] > (64u << 20))
				return -13;
		if (k != 3 || tok)
			return -13;
		c->chunk_sizes.min = (uint32_t)b[0];
		c->chunk_sizes.avg = (uint32_t)b[1];
		c->chunk_sizes.max = (uint32_t)b[2];
		break;
	}
	case O_ARCHIVE_TIMEOUT: {
		char *end;
		unsigned long t = strtoul(v, &end, 10);
		if (*end || t == 0 || t > 86400)
			return -4;
		c->archive_timeout = (unsigned)t;
		break;
	}
	}
	return 0;
}

static const char *env_or(const char *v, const char *name)
{
	const char *e = getenv(name);
	return v ? v : (e && *e ? e : NULL);
}

int main(int argc, char **argv)
{
	static struct cli c;
	const char *cmd = NULL;
	int help = 0, dashdash = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (dashdash || a[0] != '-' || a[1] == '\0') {
			if (!cmd)
				cmd = a;
			else if (push(c.args, &c.nargs, a))
				return cli_usage("too many arguments");
			continue;
		}
		if (!strcmp(a, "--")) {
			dashdash = 1;
			continue;
		}
		const struct opt *o = NULL;
		const char *val = NULL;
		if (a[1] == '-') {
			const char *name = a + 2, *eq = strchr(name, '=');
			size_t len = eq ? (size_t)(eq - name) : strlen(name);
			for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
				if (strlen(opts[k].lng) == len && !strncmp(opts[k].lng, name, len))
					o = &opts[k];
			if (o && eq) {
				if (o->kind == FLAG)
					return cli_usage("option --%s takes no value", o->lng);
				val = eq + 1;
			}
		} else if (a[2] == '\0') {
			for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++)
				if (opts[k].shrt == a[1])
					o = &opts[k];
		}
		if (!o)
			return cli_usage("unknown option %s", a);
		if (o->kind == VALUE && !val) {
			if (i + 1 >= argc)
				return cli_usage("option %s needs a value", a);
			val = argv[++i];
		}
		if (o->id == O_HELP) {
			help = 1;
			continue;
		}
		if (cmd && !allowed(cmd, o->id))
			return cli_usage("option %s does not apply to '%s'", a, cmd);
		int src = set_opt(&c, o->id, val);
		if (src == -2)
			return cli_usage("give one recovery target (--target-time, --target-lsn, "
					 "--target-xid, --target-name or --immediate)");
		if (src == -3)
			return cli_usage("--tablespace-map takes OLD=NEW (two folders)");
		if (src == -4)
			return cli_usage("--archive-timeout takes seconds (1 to 86400)");
		if (src == -5)
			return cli_usage("--s3-uri-style is path or host");
		if (src == -7)
			return cli_usage("--read-data-subset takes K/N (1 <= K <= N) or P%% (0 < P <= 100)");
		if (src == -8)
			return cli_usage("--read-data-since-last takes a duration like 7d, 12h or 1w");
		if (src == -9)
			return cli_usage("%s takes a whole number above 0", a);
		if (src == -10)
			return cli_usage("--keep-within takes a duration like 7d, 12h or 1w");
		if (src == -11)
			return cli_usage("--max-unused takes a percentage from 0 to 100");
		if (src == -12)
			return cli_usage("--page-chunk takes a size like 16K (a multiple of the block "
					 "size) or off");
		if (src == -13)
			return cli_usage("--chunk-sizes takes MIN,AVG,MAX like 16K,64K,256K");
		if (src == -14)
			return cli_usage("--lock-wait takes a duration like 30s, 10min or 1h");
		if (src == -6)
			return cli_usage("%s takes KiB per second (a whole number above 0)", a);
		if (src)
			return cli_usage("too many %s options", a);
	}
	if (help || !cmd || !strcmp(cmd, "help")) {
		fputs(help_text, help || cmd ? stdout : stderr);
		return help || cmd ? EXIT_OK : EXIT_USAGE;
	}
	/* Options given before the command were not checked against it. */
	if (c.ntags && strcmp(cmd, "backup"))
		return cli_usage("--tag applies to 'backup'");
	c.config = env_or(c.config, "CAIRN_CONFIG");
	c.repo = env_or(c.repo, "CAIRN_REPOSITORY");
	c.key_file = env_or(c.key_file, "CAIRN_KEY_FILE");
	c.cluster = env_or(c.cluster, "CAIRN_CLUSTER");
	c.storage.s3_endpoint = env_or(c.storage.s3_endpoint, "CAIRN_S3_ENDPOINT");
	c.password_file = env_or(c.password_file, "CAIRN_PASSWORD_FILE");
	c.password_command = env_or(c.password_command, "CAIRN_PASSWORD_COMMAND");
	c.cache_dir = env_or(c.cache_dir, "CAIRN_CACHE_DIR");
	if (c.config) {
		int rc = cli_read_config(&c, c.config);
		if (rc)
			return rc;
	}
	if (!c.max_unused_set)
		c.max_unused = 10.0;
	c.progress = !c.quiet && !c.json && isatty(STDERR_FILENO);
	if (sodium_init() < 0) {
		fprintf(stderr, "cairn: error: libsodium failed to initialise\n");
		return EXIT_FAIL;
	}

	static const struct {
		const char *name;
		int (*fn)(struct cli *);
	} cmds[] = {
		{"init", cmd_init}, {"backup", cmd_backup}, {"snapshots", cmd_snapshots},
		{"ls", cmd_ls}, {"cat", cmd_cat}, {"restore", cmd_restore},
		{"check", cmd_check}, {"key", cmd_key}, {"stats", cmd_stats},
		{"archive-push", cmd_archive_push}, {"archive-get", cmd_archive_get},
		{"info", cmd_info},
		{"verify-restore", cmd_verify_restore}, {"status", cmd_status},
		{"locks", cmd_locks}, {"unlock", cmd_unlock},
		{"forget", cmd_forget}, {"prune", cmd_prune}, {"repair", cmd_repair},
	};
	for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++)
		if (!strcmp(cmd, cmds[k].name)) {
			int rc = cmds[k].fn(&c);
			fflush(stdout);
			if (ferror(stdout)) {
				fprintf(stderr, "cairn: error: writing to standard output failed\n");
				return EXIT_FAIL;
			}
			return rc;
		}
	return cli_usage("unknown command '%s'", cmd);
}
