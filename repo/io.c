/* io.c — see io.h. */
#include "repo/io.h"

#include <errno.h>
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
