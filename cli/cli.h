/*
 * cli.h — the process context of the `cairn` command and the helpers its
 * commands share: options, passphrases, output, exit codes.
 *
 * cli/ is the only place that prints or exits.  Errors are reported once,
 * as "cairn: error: <what failed>" and an optional "hint: " line.
 */
#ifndef CAIRN_CLI_H
#define CAIRN_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "repo/repo.h"

enum exit_code {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
	EXIT_DAMAGE = 3,
	/* archive-get only: a failure that must stop PostgreSQL's recovery. */
	EXIT_FATAL_FOR_PG = 127,
};

#define MAX_LIST 256

struct cli {
	/* global */
	const char *repo;
	const char *password_file;
	const char *password_command;
	const char *cache_dir;
	const char *key_file;
	const char *config;
	const char *cluster;
	struct storage_opts storage; /* --s3-*, --limit-* */
	int json, quiet, verbose;
	int progress; /* stderr is a TTY and not quiet */
	uint64_t progress_total; /* bytes expected, for an ETA (0: unknown) */
	/* command options */
	const char *args[MAX_LIST];
	size_t nargs;
	const char *tags[MAX_LIST];
	size_t ntags;
	const char *includes[MAX_LIST];
	size_t nincludes;
	const char *host;
	const char *target;
	const char *stdin_name;
	const char *new_password_file;
	const char *pgdata;
	const char *pg_conn;
	/* restore of a PostgreSQL backup */
	const char *target_kind; /* option name given: time, lsn, xid, name, immediate */
	const char *target_value;
	const char *target_action;
	const char *target_timeline;
	const char *ts_from[MAX_LIST], *ts_to[MAX_LIST];
	size_t nts;
	int delta;
	int remote;
	int prometheus;
	unsigned subset_k, subset_n; /* check --read-data-subset */
	double subset_percent;
	int64_t since_last_ns;       /* check --read-data-since-last */
	unsigned archive_timeout;
	uint32_t page_chunk;               /* backup --pgdata; 0: default */
	struct fastcdc_params chunk_sizes; /* init; zeroes: defaults */
	int use_stdin, force, read_data, ignore_unreadable, full_read;
	int stale; /* unlock --stale */
	/* forget, prune */
	unsigned keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly;
	int64_t keep_within_ns;
	const char *keep_tags[MAX_LIST];
	size_t nkeep_tags;
	unsigned keep_wal_for;
	int dry_run, prune;
	double max_unused; /* percent */
	int max_unused_set;
	int64_t lock_wait_ns; /* prune: --lock-wait (0: default) */
	int ignore_checksum_errors;
};

/* Prints "cairn: error: ..." (and a hint for well-known codes) and returns
 * the exit code for `rc`. */
int cli_fail(const struct cli *c, int rc, const struct cairn_err *e);
/* Prints a usage error and returns EXIT_USAGE. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "65536", "64K", "64KiB", "1M": bytes.  0, or -1 if malformed. */
int cli_parse_size(const char *s, uint64_t *out);
void cli_warn(void *arg, const char *msg);
void cli_note(void *arg, const char *msg);
void cli_progress(void *arg, uint64_t bytes, uint64_t files);
void cli_progress_done(const struct cli *c);

/* The passphrase: `file` (--password-file), --password-command,
 * CAIRN_PASSWORD, or a prompt on the terminal.  `confirm` asks twice (new
 * passphrases); `fresh` skips the command and the environment (a second,
 * new passphrase: only `file` or the terminal can give it).
 * *out is malloc'd; wipe and free it with cli_pass_free. */
int cli_get_pass(const struct cli *c, const char *file, int confirm,
		 int fresh, const char *prompt, char **out, size_t *len,
		 struct cairn_err *err);
void cli_pass_free(char *p, size_t len);

/* Opens the repository named by -r / CAIRN_REPOSITORY. */
int cli_open(struct cli *c, struct repo **r, struct cairn_err *err);

/* Output helpers. */
void json_str(FILE *f, const char *s);
void fmt_bytes(char *out, size_t n, uint64_t bytes);
void fmt_time(char *out, size_t n, int64_t ns);

int cmd_init(struct cli *c);
int cmd_backup(struct cli *c);
int cmd_snapshots(struct cli *c);
int cmd_ls(struct cli *c);
int cmd_cat(struct cli *c);
int cmd_restore(struct cli *c);
int cmd_check(struct cli *c);
int cmd_key(struct cli *c);
int cmd_stats(struct cli *c);
int cmd_archive_push(struct cli *c);
int cmd_archive_get(struct cli *c);
int cmd_backup_pg(struct cli *c);
int cmd_restore_pg(struct cli *c);
int cmd_info(struct cli *c);
int cmd_verify_restore(struct cli *c);
int cmd_status(struct cli *c);
/* The restore_command PostgreSQL runs for a restored cluster: this cairn,
 * the same repository, the same non-interactive way to open it. */
int cli_restore_command(struct cli *c, const char *cluster, char *out, size_t n,
			struct cairn_err *err);
int cmd_locks(struct cli *c);
int cmd_forget(struct cli *c);
int cmd_prune(struct cli *c);
int cmd_unlock(struct cli *c);
int cmd_repair(struct cli *c);

/* Writers' leases (lockcmd.c).  cli_lease_take takes a shared lock on r
 * (*l NULL on failure; release with repo_unlock before repo_close).
 * cli_lease_check, once the command has succeeded, reports a lease lost
 * meanwhile ("<what>, but ...") and returns EXIT_FAIL; else EXIT_OK. */
struct repo_lock;
int cli_lease_take(struct cli *c, struct repo *r, struct repo_lock **l,
		   struct cairn_err *err);
int cli_lease_check(struct cli *c, struct repo_lock *l, const char *what);

/* Reads `key = value` lines of a configuration file into unset fields
 * of c (repo, key-file, password-file, password-command, cache-dir,
 * cluster, pgdata, pg-conn, s3-endpoint, s3-region, s3-uri-style,
 * s3-ca-file, limit-upload, limit-download).  0, or an exit code after
 * reporting. */
int cli_read_config(struct cli *c, const char *path);
/* The cluster name for WAL commands: --cluster, else the system
 * identifier in PGDATA's pg_control (the current folder when run by
 * PostgreSQL). */
int cli_cluster(struct cli *c, char *out, size_t n, struct cairn_err *err);
/* The cluster of the newest PostgreSQL snapshot into out ("" if none). */
int cli_newest_pg_cluster(struct repo *r, char *out, size_t n, struct cairn_err *err);

#endif
