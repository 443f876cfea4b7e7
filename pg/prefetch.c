/* prefetch.c — see prefetch.h. */
#include "pg/prefetch.h"
#include "pg/pgfmt.h"
#include "repo/io.h"
#include "repo/wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int pg_prefetch_spool(struct repo *r, const char *cluster, char *out, size_t n,
		      struct cairn_err *err)
{
	char base[PATH_MAX];
	snprintf(base, sizeof(base), "%s/prefetch", repo_cache_dir(r));
	if (mkdir(base, 0700) != 0 && errno != EEXIST)
		return cairn_err_errno(err, errno, "cannot create %s", base);
	if ((size_t)snprintf(out, n, "%s/%s", base, cluster) >= n)
		return cairn_err_set(err, CAIRN_EUSAGE, "prefetch folder path is too long");
	if (mkdir(out, 0700) != 0 && errno != EEXIST)
		return cairn_err_errno(err, errno, "cannot create %s", out);
	return 0;
}

int pg_prefetch_take(const char *spool, const char *name, const char *dest,
		     struct cairn_err *err)
{
	char src[PATH_MAX], tmp[PATH_MAX + 16];
	snprintf(src, sizeof(src), "%s/%s", spool, name);
	int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return errno == ENOENT ? 0 : cairn_err_errno(err, errno, "cannot open %s", src);
	snprintf(tmp, sizeof(tmp), "%s.cairn-tmp", dest);
	int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return cairn_err_errno(err, errno, "cannot create %s", tmp);
	}
	static uint8_t buf[1 << 20];
	int rc = 0;
	for (;;) {
		ssize_t got = io_read_full(in, buf, sizeof(buf));
		if (got < 0) {
			rc = cairn_err_errno(err, errno, "cannot read %s", src);
			break;
		}
		if (got == 0)
			break;
		if (io_write_all(out, buf, (size_t)got)) {
			rc = cairn_err_errno(err, errno, "cannot write %s", tmp);
			break;
		}
	}
	close(in);
	if (!rc && close(out) != 0)
		rc = cairn_err_errno(err, errno, "cannot write %s", tmp);
	else if (rc)
		close(out);
	if (!rc && rename(tmp, dest) != 0)
		rc = cairn_err_errno(err, errno, "cannot rename %s to %s", tmp, dest);
	if (rc) {
		unlink(tmp);
		return rc;
	}
	unlink(src);
	return 1;
}

/* Drops spooled segments at or before (tli, segno) of the same timeline,
 * leftovers (.tmp) and files older than PREFETCH_MAX_AGE. */
static void sweep(const char *spool, uint32_t tli, uint64_t segno, uint32_t seg_size)
{
	DIR *d = opendir(spool);
	if (!d)
		return;
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct stat st;
		struct pg_walname w;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", spool, de->d_name);
		if (lstat(path, &st) != 0)
			continue;
		int known = pg_walname_parse(de->d_name, seg_size, &w) == 0 &&
			    w.kind == PG_WALNAME_SEGMENT;
		if (!known || now - st.st_mtime > PREFETCH_MAX_AGE ||
		    (w.tli == tli && w.segno <= segno))
			unlink(path);
	}
	closedir(d);
}

int pg_prefetch_run(struct repo *r, const char *cluster, const char *spool,
		    const char *name, uint32_t seg_size, unsigned count,
		    struct cairn_err *err)
{
	struct pg_walname w;
	if (pg_walname_parse(name, seg_size, &w) || w.kind != PG_WALNAME_SEGMENT)
		return cairn_err_set(err, CAIRN_EUSAGE, "%s is not a WAL segment name", name);
	char lock[PATH_MAX];
	snprintf(lock, sizeof(lock), "%s/.lock", spool);
	int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0)
		return cairn_err_errno(err, errno, "cannot open %s", lock);
	if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
		close(lfd);
		return cairn_err_set(err, CAIRN_ELOCKED, "another prefetcher runs on %s", spool);
	}
	sweep(spool, w.tli, w.segno, seg_size);
	int rc = 0;
	for (unsigned k = 1; k <= count && !rc; k++) {
		char next[PG_WALNAME_LEN + 1], path[PATH_MAX], tmp[PATH_MAX + 8];
		struct stat st;
		pg_walname_format(next, w.tli, w.segno + k, seg_size);
		snprintf(path, sizeof(path), "%s/%s", spool, next);
		if (stat(path, &st) == 0)
			continue; /* spooled already */
		struct wal_entry e;
		int src = repo_wal_stat(r, cluster, next, &e, err);
		if (src == CAIRN_ENOTFOUND)
			break; /* the end of the archive, for now */
		if (src) {
			rc = src;
			break;
		}
		wal_entry_free(&e);
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = cairn_err_errno(err, errno, "cannot create %s", tmp);
			break;
		}
		rc = repo_wal_fetch(r, cluster, next, fd, err);
		if (!rc && fsync(fd) != 0)
			rc = cairn_err_errno(err, errno, "cannot sync %s", tmp);
		if (close(fd) != 0 && !rc)
			rc = cairn_err_errno(err, errno, "cannot write %s", tmp);
		if (!rc && rename(tmp, path) != 0)
			rc = cairn_err_errno(err, errno, "cannot rename %s", tmp);
		if (rc)
			unlink(tmp);
	}
	io_fsync_path(spool, 1);
	close(lfd);
	return rc;
}
