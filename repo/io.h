/*
 * io.h — small POSIX I/O helpers shared by repo/ (and the modules above
 * it): whole reads and writes that survive short transfers and EINTR.
 */
#ifndef CAIRN_IO_H
#define CAIRN_IO_H

#include <stddef.h>
#include <sys/types.h>

/* Writes all n bytes (in pieces of at most 1 GiB), retrying on EINTR and
 * short writes.  0, or -1 with errno set (EIO if write returned 0). */
int io_write_all(int fd, const void *p, size_t n);

/* Durability.  io_fsync_dirfd: fsync of a folder's descriptor, accepting
 * EINVAL (some filesystems cannot fsync a folder; PostgreSQL accepts it
 * too).  io_fsync_path: opens `path` (a folder when dir is set; links are
 * not followed) and fsyncs it.  io_fsync_parent: the folder holding
 * `path` (0 if that folder does not exist).  io_syncfs: every file of the
 * filesystem holding folder `dir` (Linux syncfs).  0, or -1 with errno. */
int io_fsync_dirfd(int fd);
int io_fsync_path(const char *path, int dir);
int io_fsync_parent(const char *path);
int io_syncfs(const char *dir);

/* Reads until n bytes or end of file, retrying on EINTR and short reads.
 * The number of bytes read (< n only at end of file), or -1 with errno. */
ssize_t io_read_full(int fd, void *p, size_t n);

#endif
