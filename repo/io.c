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
