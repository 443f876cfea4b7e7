/* io.c — see io.h. */
#include "repo/io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>

#define IO_PIECE ((size_t)1 << 30)

int io_write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n < IO_PIECE ? n : IO_PIECE);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) { /* not for a regular file or a pipe */
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

ssize_t io_read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t got = 0;
	while (got < n) {
		size_t want = n - got < IO_PIECE ? n - got : IO_PIECE;
		ssize_t r = read(fd, p + got, want);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int io_fsync_dirfd(int fd)
{
	if (fsync(fd) == 0 || errno == EINVAL)
		return 0;
	return -1;
}

int io_fsync_path(const char *path, int dir)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | (dir ? O_DIRECTORY : 0));
	if (fd < 0)
		return -1;
	int rc = dir ? io_fsync_dirfd(fd) : fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

int io_fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	if ((size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	char *slash = strrchr(dir, '/');
	if (!slash)
		return io_fsync_path(".", 1);
	*slash = '\0';
	if (io_fsync_path(*dir ? dir : "/", 1) != 0)
		return errno == ENOENT ? 0 : -1;
	return 0;
}

int io_syncfs(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = syncfs(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}
