/*
 * error.h — the one table of cairn's error codes and the error record that
 * carries a message from where a failure happened up to cli/.
 *
 * Every fallible function in chunker/, repo/ and pg/ returns int: 0 on
 * success or one of the negative codes below, and fills a `struct cairn_err`
 * (when the caller passed one) with a one-line message naming what failed
 * and the object, path or id involved.  Library code never prints and never
 * exits; cli/ reports the message once and maps the code to an exit status.
 *
 * The numbers are stable: never renumber or reuse one.  Not thread-safe per
 * record: give each thread its own.
 */
#ifndef CAIRN_ERROR_H
#define CAIRN_ERROR_H

#include <stddef.h>

enum cairn_code {
	CAIRN_OK = 0,
	CAIRN_EIO = -1,        /* an operating-system call failed (errno text in msg) */
	CAIRN_ENOMEM = -2,     /* allocation failed */
	CAIRN_ECORRUPT = -3,   /* bytes from storage fail verification or parsing */
	CAIRN_ENOTFOUND = -4,  /* object, snapshot, path or key not found */
	CAIRN_EEXIST = -5,     /* object already exists (never overwritten) */
	CAIRN_EPASS = -6,      /* no key of the repository opens with this passphrase */
	CAIRN_ENOREPO = -7,    /* the location is not a cairn repository */
	CAIRN_EUSAGE = -8,     /* the caller asked for something impossible */
	CAIRN_ENOSPC = -9,     /* no space left on the storage */
	CAIRN_EVERSION = -10,  /* format version or feature flag we do not know */
	CAIRN_ELOCKED = -11,   /* another process holds a conflicting lock */
	CAIRN_EINTERNAL = -12, /* a bug in cairn: an invariant did not hold */
	CAIRN_ECRYPTO = -13,   /* libsodium refused (e.g. sodium_init failed) */
	CAIRN_EPARTIAL = -14,  /* finished, but some inputs could not be read */
	CAIRN_EAMBIG = -15,    /* an id prefix matches more than one object */
};

#define CAIRN_ERR_MSG 512

struct cairn_err {
	int code;
	char msg[CAIRN_ERR_MSG];
};

/* Fills `e` (may be NULL) with `code` and a printf-formatted message, and
 * returns `code`, so that `return cairn_err_set(e, CAIRN_EIO, ...)` reads
 * naturally. */
int cairn_err_set(struct cairn_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like cairn_err_set with CAIRN_EIO (or CAIRN_ENOSPC for ENOSPC/EDQUOT),
 * appending ": <strerror(errnum)>" to the message. */
int cairn_err_errno(struct cairn_err *e, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with more context ("reading pack X: ..."). */
void cairn_err_prefix(struct cairn_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A short static name for a code ("I/O error", "corrupt data", ...). */
const char *cairn_strerror(int code);

#endif
