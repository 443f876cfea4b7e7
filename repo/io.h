/*
 * io.h — small POSIX I/O helpers shared by repo/ (and the modules above
 * it): whole writes that survive short writes and EINTR.
 */
#ifndef CAIRN_IO_H
#define CAIRN_IO_H

#include <stddef.h>

/* Writes all n bytes (in pieces of at most 1 GiB), retrying on EINTR and
 * short writes.  0, or -1 with errno set (EIO if write returned 0). */
int io_write_all(int fd, const void *p, size_t n);

#endif
