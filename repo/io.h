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

/* Reads until n bytes or end of file, retrying on EINTR and short reads.
 * The number of bytes read (< n only at end of file), or -1 with errno. */
ssize_t io_read_full(int fd, void *p, size_t n);

#endif
