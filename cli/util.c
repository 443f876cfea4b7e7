/* util.c — errors, passphrases, progress and formatting for the commands. */
#include "cli/cli.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

int cli_fail(const struct cli *c, int rc, const struct cairn_err *e)
{
	(void)c;
	cli_progress_done(c);
	fprintf(stderr, "cairn: error: %s\n", e->msg[0] ? e->msg : cairn_strerror(rc));
	const char *hint = NULL;
	switch (rc) {
	case CAIRN_EPASS:
		hint = "give the passphrase of one of the repository's keys (--password-file, "
		       "--password-command or CAIRN_PASSWORD); nothing was changed";
		break;
	case CAIRN_ENOREPO:
		hint = "check -r/--repo (or CAIRN_REPOSITORY), or create a repository with 'cairn init'";
		break;
	case CAIRN_ENOSPC:
		hint = "free space where the repository lives and run the command again: "
		       "nothing written so far is referenced, so nothing is lost";
		break;
	case CAIRN_ECORRUPT:
		hint = "run 'cairn check --read-data' to list every damaged pack, snapshot and file";
		break;
	case CAIRN_EVERSION:
		hint = "this repository was written by a newer cairn: upgrade cairn";
		break;
	case CAIRN_ELOCKED:
		hint = "'cairn locks' lists the locks; a lock goes stale 30 minutes after its "
		       "holder stopped refreshing it (at once when its process is gone from this "
		       "host), and 'cairn unlock --stale' removes stale ones";
		break;
	}
	if (hint)
		fprintf(stderr, "hint: %s\n", hint);
	switch (rc) {
	case CAIRN_EUSAGE:
		return EXIT_USAGE;
	case CAIRN_ECORRUPT:
		return EXIT_DAMAGE;
	default:
		return EXIT_FAIL;
	}
}

int cli_usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "cairn: usage error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nhint: run 'cairn help' for the commands and options\n");
	return EXIT_USAGE;
}

static int progress_shown;

void cli_progress_done(const struct cli *c)
{
	if (c && c->progress && progress_shown) {
		fprintf(stderr, "\r\033[K");
		progress_shown = 0;
	}
}

void cli_warn(void *arg, const char *msg)
{
	struct cli *c = arg;
	cli_progress_done(c);
	fprintf(stderr, "cairn: warning: %s\n", msg);
}

void cli_note(void *arg, const char *msg)
{
	struct cli *c = arg;
	if (c->verbose) {
		cli_progress_done(c);
		fprintf(stderr, "cairn: %s\n", msg);
	}
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void cli_progress(void *arg, uint64_t bytes, uint64_t files)
{
	struct cli *c = arg;
	static double start, last;
	double now = mono();
	if (c->quiet || (!c->progress && !c->verbose))
		return;
	if (start == 0) {
		start = last = now; /* no rate yet: the first line waits */
		return;
	}
	if (now - last < (c->progress ? 0.2 : 5.0))
		return;
	last = now;
	char b[32], rate[32], eta[48] = "";
	double bps = now > start ? bytes / (now - start) : 0;
	fmt_bytes(b, sizeof(b), bytes);
	fmt_bytes(rate, sizeof(rate), (uint64_t)bps);
	/* ETA when the total is known (restore) or expected (a backup with a
	 * parent of about the same size). */
	if (c->progress_total > bytes && bps > 0)
		snprintf(eta, sizeof(eta), ", %.0f%%, ETA %.0f s",
			 100.0 * (double)bytes / (double)c->progress_total,
			 (double)(c->progress_total - bytes) / bps);
	if (c->progress) {
		fprintf(stderr, "\r\033[K%s, %s/s, %llu files, %.0f s%s", b, rate,
			(unsigned long long)files, now - start, eta);
		progress_shown = 1;
	} else {
		fprintf(stderr, "cairn: %s, %s/s, %llu files, %.0f s%s\n", b, rate,
			(unsigned long long)files, now - start, eta);
	}
}

void cli_pass_free(char *p, size_t len)
{
	if (p) {
		sodium_memzero(p, len);
		free(p);
	}
}

/* Reads the first line of fd (without its newline) into a new buffer. */
static int read_line_fd(int fd, char **out, size_t *len)
{
	size_t cap = 256, n = 0;
	char *p = malloc(cap);
	if (!p)
		return -1;
	for (;;) {
		char ch;
		ssize_t r = read(fd, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || ch == '\n')
			break;
		if (n + 1 >= cap) {
			char *q = malloc(cap * 2);
			if (!q) {
				cli_pass_free(p, cap);
				return -1;
			}
			memcpy(q, p, n);
			cli_pass_free(p, cap);
			p = q;
			cap *= 2;
		}
		p[n++] = ch;
	}
	if (n > 0 && p[n - 1] == '\r')
		n--;
	p[n] = '\0';
	*out = p;
	*len = n;
	return 0;
}

static int prompt_tty(const char *prompt, char **out, size_t *len)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct termios old, quiet;
	int have = tcgetattr(fd, &old) == 0;
	if (have) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	if (write(fd, prompt, strlen(prompt)) < 0) {
		/* nothing to do: the read below still works */
	}
	int rc = read_line_fd(fd, out, len);
	if (have)
		tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0) {
		/* ignore */
	}
	close(fd);
	return rc;
}

int cli_get_pass(const struct cli *c, const char *file, int confirm, int fresh, const char *prompt,
		 char **out, size_t *len, struct cairn_err *err)
{
	const char *env;
	*out = NULL;
	*len = 0;
	if (file) {
		int fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return cairn_err_errno(err, errno, "cannot read passphrase file %s", file);
		int rc = read_line_fd(fd, out, len);
		close(fd);
		if (rc)
			return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	} else if (!fresh && c->password_command) {
		FILE *p = popen(c->password_command, "r");
		if (!p)
			return cairn_err_errno(err, errno, "cannot run password command");
		int rc = read_line_fd(fileno(p), out, len);
		int st = pclose(p);
		if (rc || st != 0) {
			cli_pass_free(*out, *len);
			*out = NULL;
			return cairn_err_set(err, CAIRN_EUSAGE,
					     "password command '%s' failed (exit status %d)",
					     c->password_command, st);
		}
	} else if (!fresh && (env = getenv("CAIRN_PASSWORD")) != NULL) {
		*out = strdup(env);
		if (!*out)
			return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		*len = strlen(env);
	} else if (isatty(STDIN_FILENO) || isatty(STDERR_FILENO)) {
		if (prompt_tty(prompt, out, len))
			return cairn_err_set(err, CAIRN_EUSAGE, "cannot read a passphrase from the terminal");
		if (confirm) {
			char *again = NULL;
			size_t alen = 0;
			if (prompt_tty("Enter it again: ", &again, &alen))
				alen = (size_t)-1;
			int same = alen == *len && again && memcmp(again, *out, alen) == 0;
			cli_pass_free(again, alen == (size_t)-1 ? 0 : alen);
			if (!same) {
				cli_pass_free(*out, *len);
				*out = NULL;
				return cairn_err_set(err, CAIRN_EUSAGE, "the passphrases differ");
			}
		}
	} else {
		return cairn_err_set(err, CAIRN_EUSAGE, fresh
				     ? "no new passphrase: give --new-password-file"
				     : "no passphrase: give --password-file, --password-command, or set CAIRN_PASSWORD");
	}
	if (*len == 0) {
		cli_pass_free(*out, 1);
		*out = NULL;
		return cairn_err_set(err, CAIRN_EUSAGE, "the passphrase is empty");
	}
	return 0;
}

/* Reads a host key file; refuses one that others may read. */
static int read_key_file(const char *path, uint8_t repo_id[32], uint8_t master[32],
			 struct cairn_err *err)
{
	uint8_t buf[HOSTKEY_LEN + 1];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cairn_err_errno(err, errno, "cannot open key file %s", path);
	if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
		close(fd);
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "key file %s may be read by other users: run chmod 600 %s", path, path);
	}
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	int rc = hostkey_decode(buf, n < 0 ? 0 : (size_t)n, repo_id, master, err);
	sodium_memzero(buf, sizeof(buf));
	if (rc)
		cairn_err_prefix(err, "%s", path);
	return rc;
}

/* LMDB trusts its pages: a damaged page inside an intact file can make a
 * read fault (SIGBUS) in every later run.  The cache is only a cache:
 * remove its data file so that the next run rebuilds it, and say so. */
static char damaged_cache_file[4200];

static void on_sigbus(int sig)
{
	static const char msg[] =
		"cairn: error: the local index cache is damaged (reading it faulted): it has been "
		"removed and will be rebuilt from the repository\nhint: run the command again\n";
	(void)sig;
	if (damaged_cache_file[0])
		unlink(damaged_cache_file);
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* nothing more can be done in a signal handler */
	}
	_exit(EXIT_FAIL);
}

static void guard_cache(void *arg, const char *dir)
{
	struct sigaction sa;
	(void)arg;
	snprintf(damaged_cache_file, sizeof(damaged_cache_file), "%s/data.mdb", dir);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

int cli_open(struct cli *c, struct repo **r, struct cairn_err *err)
{
	char *pass = NULL;
	size_t plen = 0;
	uint8_t master[32], repo_id[32];
	int rc;
	if (!c->repo)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "no repository: give -r/--repo or set CAIRN_REPOSITORY");
	struct repo_open_opts o;
	memset(&o, 0, sizeof(o));
	if (c->key_file) {
		rc = read_key_file(c->key_file, repo_id, master, err);
		if (rc)
			return rc;
		o.master = master;
		o.master_repo_id = repo_id;
	} else {
		rc = cli_get_pass(c, c->password_file, 0, 0, "Repository passphrase: ", &pass,
				  &plen, err);
		if (rc)
			return rc;
	}
	o.url = c->repo;
	o.storage = &c->storage;
	o.pass = pass;
	o.pass_len = plen;
	o.cache_base = c->cache_dir;
	o.note = cli_note;
	o.note_arg = c;
	o.on_cache_dir = guard_cache;
	/* A prune deletes index objects in its short window: an open that
	 * listed one before and reads it after finds it gone (CAIRN_ENOTFOUND
	 * while the cache is synchronised).  Opening again lists index/ anew;
	 * the window lasts seconds at most. */
	for (int tries = 0;; tries++) {
		rc = repo_open(r, &o, err);
		if (rc != CAIRN_ENOTFOUND || tries == 60)
			break;
		usleep(250 * 1000);
	}
	cli_pass_free(pass, plen);
	sodium_memzero(master, sizeof(master));
	return rc;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

int cli_read_config(struct cli *c, const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		struct cairn_err e;
		cairn_err_errno(&e, errno, "cannot read configuration file %s", path);
		return cli_fail(c, CAIRN_EIO, &e);
	}
	char line[4096];
	int lineno = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *l = trim(line);
		if (!*l || *l == '#')
			continue;
		char *eq = strchr(l, '=');
		if (!eq) {
			fclose(f);
			return cli_usage("%s:%d: expected 'key = value'", path, lineno);
		}
		*eq = '\0';
		char *k = trim(l), *v = trim(eq + 1);
		size_t vl = strlen(v);
		if (vl >= 2 && ((v[0] == '\'' && v[vl - 1] == '\'') || (v[0] == '"' && v[vl - 1] == '"'))) {
			v[vl - 1] = '\0';
			v++;
		}
		if (!strcmp(k, "limit-upload") || !strcmp(k, "limit-download")) {
			uint64_t *dst = !strcmp(k, "limit-upload") ? &c->storage.limit_upload
								   : &c->storage.limit_download;
			char *end;
			errno = 0;
			unsigned long long kib = strtoull(v, &end, 10);
			if (!*v || *end || errno || kib == 0 || kib > (1ull << 40)) {
				fclose(f);
				return cli_usage("%s:%d: %s takes KiB per second (a whole number above 0)",
						 path, lineno, k);
			}
			if (!*dst) /* a flag given on the command line wins */
				*dst = kib * 1024;
			continue;
		}
		if (!strcmp(k, "s3-uri-style") && strcmp(v, "path") && strcmp(v, "host")) {
			fclose(f);
			return cli_usage("%s:%d: s3-uri-style is path or host", path, lineno);
		}
		const char **slot = !strcmp(k, "repo") ? &c->repo
			: !strcmp(k, "key-file") ? &c->key_file
			: !strcmp(k, "password-file") ? &c->password_file
			: !strcmp(k, "password-command") ? &c->password_command
			: !strcmp(k, "cache-dir") ? &c->cache_dir
			: !strcmp(k, "cluster") ? &c->cluster
			: !strcmp(k, "pgdata") ? &c->pgdata
			: !strcmp(k, "pg-conn") ? &c->pg_conn
			: !strcmp(k, "s3-endpoint") ? &c->storage.s3_endpoint
			: !strcmp(k, "s3-region") ? &c->storage.s3_region
			: !strcmp(k, "s3-uri-style") ? &c->storage.s3_uri_style
			: !strcmp(k, "s3-ca-file") ? &c->storage.s3_ca_file : NULL;
		if (!slot) {
			fclose(f);
			return cli_usage("%s:%d: unknown setting '%s'", path, lineno, k);
		}
		if (!*slot) {
			/* The process lives as long as the strings: keep them. */
			char *dup = strdup(v);
			if (!dup) {
				fclose(f);
				return EXIT_FAIL;
			}
			*slot = dup;
		}
	}
	fclose(f);
	return 0;
}

void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

void fmt_bytes(char *out, size_t n, uint64_t bytes)
{
	const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, n, "%llu B", (unsigned long long)bytes);
	else
		snprintf(out, n, "%.1f %s", v, units[u]);
}

void fmt_time(char *out, size_t n, int64_t ns)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

int cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (end == s || errno || *s == '-')
		return -1;
	unsigned shift = 0;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	if (shift) {
		end++;
		if (!strcmp(end, "iB") || !strcmp(end, "B"))
			end += strlen(end);
	}
	if (*end || v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int cli_newest_pg_cluster(struct repo *r, char *out, size_t n, struct cairn_err *err)
{
	struct snapshot *all = NULL;
	size_t ns = 0;
	int rc = repo_snapshots_load(r, &all, &ns, NULL, NULL, err);
	*out = '\0';
	for (size_t i = ns; !rc && i-- > 0;)
		if ((all[i].flags & SNAP_PG) && all[i].cluster) {
			snprintf(out, n, "%s", all[i].cluster);
			break;
		}
	repo_snapshots_free(all, ns);
	return rc;
}
