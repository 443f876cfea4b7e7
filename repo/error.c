/* error.c — formatting of error records; see error.h. */
#include "repo/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Copies s to dst + at, truncating, always NUL-terminated. */
static void append(char *dst, size_t cap, size_t at, const char *s)
{
	size_t len = strlen(s);
	if (len > cap - at - 1)
		len = cap - at - 1;
	memcpy(dst + at, s, len);
	dst[at + len] = '\0';
}

int cairn_err_set(struct cairn_err *e, int code, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
		e->code = code;
	}
	return code;
}

int cairn_err_errno(struct cairn_err *e, int errnum, const char *fmt, ...)
{
	int code = (errnum == ENOSPC || errnum == EDQUOT) ? CAIRN_ENOSPC : CAIRN_EIO;
	if (errnum == ENOMEM)
		code = CAIRN_ENOMEM;
	if (e) {
		char what[CAIRN_ERR_MSG - 64];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(what, sizeof(what), fmt, ap);
		va_end(ap);
		int n = snprintf(e->msg, sizeof(e->msg), "%s: ", what);
		if (n > 0 && (size_t)n < sizeof(e->msg))
			append(e->msg, sizeof(e->msg), (size_t)n, strerror(errnum));
		e->code = code;
	}
	return code;
}

void cairn_err_prefix(struct cairn_err *e, const char *fmt, ...)
{
	if (!e)
		return;
	char pre[CAIRN_ERR_MSG / 2], old[CAIRN_ERR_MSG];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	/* Truncation is fine: the message stays one readable line. */
	int n = snprintf(e->msg, sizeof(e->msg), "%s: ", pre);
	if (n > 0 && (size_t)n < sizeof(e->msg))
		append(e->msg, sizeof(e->msg), (size_t)n, old);
}

const char *cairn_strerror(int code)
{
	switch (code) {
	case CAIRN_OK: return "success";
	case CAIRN_EIO: return "I/O error";
	case CAIRN_ENOMEM: return "out of memory";
	case CAIRN_ECORRUPT: return "corrupt data";
	case CAIRN_ENOTFOUND: return "not found";
	case CAIRN_EEXIST: return "already exists";
	case CAIRN_EPASS: return "wrong passphrase";
	case CAIRN_ENOREPO: return "not a cairn repository";
	case CAIRN_EUSAGE: return "usage error";
	case CAIRN_ENOSPC: return "no space left";
	case CAIRN_EVERSION: return "unsupported format version";
	case CAIRN_ELOCKED: return "locked";
	case CAIRN_EINTERNAL: return "internal error";
	case CAIRN_ECRYPTO: return "crypto library error";
	case CAIRN_EPARTIAL: return "some inputs could not be read";
	case CAIRN_EAMBIG: return "ambiguous id prefix";
	}
	return "unknown error";
}
