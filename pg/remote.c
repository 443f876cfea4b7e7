/*
 * remote.c — base backups over the replication protocol; see remote.h.
 *
 * The protocol (PostgreSQL 15, "Streaming Replication Protocol",
 * BASE_BACKUP with the parenthesized option list): the server answers with
 *   1. a result set of one row: the start LSN and its timeline;
 *   2. a result set with a row per tablespace: spcoid, spclocation, size
 *      (PGDATA's row has a NULL oid and location);
 *   3. one CopyOutResponse whose CopyData messages each start with a type
 *      byte: 'n' a new archive (archive name, tablespace location: two
 *      strings), 'd' archive data, 'p' progress (int64), 'm' the manifest
 *      (not asked for here);
 *   4. after CopyDone, a result set of one row: the end LSN and timeline;
 *      then, if pages failed their checksums, an ERROR with SQLSTATE
 *      XX001 (after the backup itself was complete), and the command's
 *      completion.
 * The archives are ustar streams; the server does not send the two zero
 * blocks that end a tar file (pg_basebackup adds them), so an archive
 * ends at the next 'n' or at CopyDone, and must end between entries.
 * PostgreSQL sends the tablespaces' archives first and PGDATA's last.
 *
 * The tar reader below is a small state machine fed the CopyData payloads
 * as they come; it accepts ustar (name + prefix), GNU long names ('L',
 * 'K'), pax extended headers ('x': path, linkpath, size) and base-256
 * numbers, so that it does not depend on what exactly the server's tar
 * writer does for long names or large files.
 */
#include "pg/remote.h"
#include "repo/treebuild.h"
#include "repo/wal.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TAR_BLOCK 512
/* Longest GNU long name or pax header accepted. */
#define TAR_EXT_MAX (1024u * 1024)
/* backup_label is kept in memory to be parsed: PostgreSQL's is < 2 KiB. */
#define LABEL_MAX (64u * 1024)
/* ERRCODE_DATA_CORRUPTED: PostgreSQL's error after checksum failures. */
#define SQLSTATE_DATA_CORRUPTED "XX001"

enum tar_state {
	TS_HEADER,  /* collecting a 512-byte header */
	TS_DATA,    /* a file's bytes, to the tree builder */
	TS_EXT,     /* a long name or pax header's bytes, collected */
	TS_SKIP,    /* bytes to pass over (padding, members not stored) */
	TS_END,     /* after a zero block: the rest is ignored */
};

struct tarp {
	enum tar_state state;
	uint8_t hdr[TAR_BLOCK];
	size_t hdr_have;
	uint64_t left;          /* bytes of the current state still to come */
	uint64_t pad;           /* padding after the data */
	uint64_t offset;        /* bytes of this archive consumed */
	uint64_t hdr_off;       /* where the last header began, for messages */
	char ext_kind;          /* TS_EXT: 'L', 'K' or 'x' */
	struct buf ext;
	char *long_name;        /* for the next header, from 'L' or pax path */
	char *long_link;        /* from 'K' or pax linkpath */
	int have_pax_size;
	uint64_t pax_size;
	int in_file;            /* a tree-builder file is open */
	int capture;            /* the open file is backup_label: keep it */
};

struct rb {
	const struct pg_backup_opts *o;
	struct pg_backup_result *res;
	struct repo *r;
	PGconn *conn;
	struct tree_builder *tb;
	/* the archive being read */
	char archive[64];
	char prefix[64];        /* "" or "pg_tblspc/<oid>/" */
	int base;               /* it is PGDATA's */
	int have_archive;
	int have_base;
	struct tarp tp;
	struct buf label;       /* backup_label as it arrived */
	int have_label;
	/* from the server */
	uint64_t sysid;
	uint32_t server_version;
	uint32_t wal_seg_size;
	uint64_t start_lsn, stop_lsn;
	uint32_t start_tli, stop_tli;
	char **tablespaces;     /* "oid\tpath" */
	size_t ntablespaces;
	uint8_t *ts_seen;       /* per tablespace: its archive came */
	char cluster[CLUSTER_NAME_MAX + 1];
	uint32_t page_chunk;    /* relation files are cut at fixed offsets */
	/* checksum reports (see on_notice) */
	uint64_t ck_blocks;     /* per-block warnings */
	uint64_t ck_extra;      /* failures a file's total adds beyond those */
	uint64_t ck_total;      /* the overall total, when given */
	int ck_failed;          /* the final XX001 error came */
	/* progress */
	uint64_t files;
	uint64_t bytes;
	uint64_t last_progress;
};

static void rb_warn(struct rb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rb_warn(struct rb *b, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (b->o->warn)
		b->o->warn(b->o->arg, msg);
}

static void progress(struct rb *b, int force)
{
	if (!b->o->progress)
		return;
	if (!force && b->bytes - b->last_progress < 4u * 1024 * 1024)
		return;
	b->last_progress = b->bytes;
	b->o->progress(b->o->arg, b->bytes, b->files);
}

/* ---- tar ----------------------------------------------------------------- */

/* A numeric field: octal digits (leading blanks, ended by a blank or NUL),
 * or base-256 (first byte 0x80, then big-endian).  -1 when malformed,
 * negative or too large. */
static int tar_num(const uint8_t *f, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	*out = 0;
	if (f[0] & 0x80) {
		if (f[0] != 0x80)
			return -1; /* negative (0xff) or unused bits set */
		for (i = 1; i < len; i++) {
			if (v >> 56)
				return -1;
			v = v << 8 | f[i];
		}
		*out = v;
		return 0;
	}
	while (i < len && f[i] == ' ')
		i++;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -1;
		v = v * 8 + (uint64_t)(f[i] - '0');
	}
	for (; i < len; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return -1;
	*out = v;
	return 0;
}

static int tar_corrupt(struct rb *b, struct cairn_err *err, const char *what)
{
	return cairn_err_set(err, CAIRN_ECORRUPT,
			     "the server's archive %s is not a tar stream cairn can read: %s "
			     "(header at byte %llu)",
			     b->archive, what, (unsigned long long)b->tp.hdr_off);
}

static void tar_reset(struct tarp *t)
{
	free(t->long_name);
	free(t->long_link);
	buf_free(&t->ext);
	memset(t, 0, sizeof(*t));
}

/* Joins the archive's prefix and a member name into a new string. */
static char *member_path(const struct rb *b, const char *name)
{
	size_t pl = strlen(b->prefix), nl = strlen(name);
	char *p = malloc(pl + nl + 1);
	if (p) {
		memcpy(p, b->prefix, pl);
		memcpy(p + pl, name, nl + 1);
	}
	return p;
}

/* The member name without "./", leading or trailing slashes, into a new
 * string. */
static char *clean_name(const char *name)
{
	while (name[0] == '.' && name[1] == '/')
		name += 2;
	while (*name == '/')
		name++;
	char *c = strdup(name);
	if (c) {
		size_t l = strlen(c);
		while (l > 0 && c[l - 1] == '/')
			c[--l] = '\0';
	}
	return c;
}

/* Parses a pax extended header (records "LEN key=value\n"): path,
 * linkpath and size are used, the rest ignored. */
static int pax_parse(struct rb *b, struct cairn_err *err)
{
	struct tarp *t = &b->tp;
	const char *p = (const char *)t->ext.data, *end = p + t->ext.len;
	while (p < end) {
		char *q;
		/* The buffer ends with a NUL (tar_feed adds one): strtoul stops. */
		unsigned long len = strtoul(p, &q, 10);
		if (q == p || *q != ' ' || len > (size_t)(end - p) || q + 1 > p + len - 1 ||
		    p[len - 1] != '\n')
			return tar_corrupt(b, err, "malformed pax header");
		const char *kv = q + 1, *eq = memchr(kv, '=', (size_t)(p + len - 1 - kv));
		if (!eq)
			return tar_corrupt(b, err, "malformed pax record");
		size_t klen = (size_t)(eq - kv), vlen = (size_t)(p + len - 1 - (eq + 1));
		const char *v = eq + 1;
		if ((klen == 4 && !memcmp(kv, "path", 4)) || (klen == 8 && !memcmp(kv, "linkpath", 8))) {
			char **dst = klen == 4 ? &t->long_name : &t->long_link;
			free(*dst);
			*dst = strndup(v, vlen);
			if (!*dst)
				return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		} else if (klen == 4 && !memcmp(kv, "size", 4)) {
			char num[32];
			if (vlen == 0 || vlen >= sizeof(num))
				return tar_corrupt(b, err, "bad pax size");
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			errno = 0;
			t->pax_size = strtoull(num, &q, 10);
			if (errno || *q)
				return tar_corrupt(b, err, "bad pax size");
			t->have_pax_size = 1;
		}
		p += len;
	}
	return 0;
}

/* The end of a long name ('L'/'K') or pax header's data. */
static int ext_done(struct rb *b, struct cairn_err *err)
{
	struct tarp *t = &b->tp;
	int rc = 0;
	if (t->ext_kind == 'x') {
		rc = pax_parse(b, err);
	} else {
		char **dst = t->ext_kind == 'L' ? &t->long_name : &t->long_link;
		free(*dst);
		*dst = strndup((const char *)t->ext.data, t->ext.len); /* ends at its NUL */
		if (!*dst)
			rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	}
	buf_reset(&t->ext);
	return rc;
}

/* After a member's data: its padding, then the next header. */
static void to_padding(struct tarp *t)
{
	if (t->pad) {
		t->state = TS_SKIP;
		t->left = t->pad;
		t->pad = 0;
	} else {
		t->state = TS_HEADER;
	}
}

static int file_done(struct rb *b, struct cairn_err *err)
{
	struct tarp *t = &b->tp;
	int rc = tb_file_end(b->tb, err);
	t->in_file = 0;
	if (t->capture) {
		t->capture = 0;
		b->have_label = 1;
	}
	b->files++;
	progress(b, 0);
	return rc;
}

/* A whole header is in t->hdr: act on it. */
static int header(struct rb *b, struct cairn_err *err)
{
	struct tarp *t = &b->tp;
	const uint8_t *h = t->hdr;
	int zero = 1;
	for (size_t i = 0; i < TAR_BLOCK && zero; i++)
		zero = h[i] == 0;
	if (zero) {
		t->state = TS_END;
		return 0;
	}
	/* Checksum: the header's bytes summed with the field itself as blanks,
	 * unsigned (POSIX) or, by old writers, signed. */
	uint64_t stored, usum = 0;
	int64_t ssum = 0;
	for (size_t i = 0; i < TAR_BLOCK; i++) {
		uint8_t c = (i >= 148 && i < 156) ? ' ' : h[i];
		usum += c;
		ssum += (int8_t)c;
	}
	if (tar_num(h + 148, 8, &stored) || (stored != usum && (int64_t)stored != ssum))
		return tar_corrupt(b, err, "header checksum mismatch");

	uint64_t mode, uid, gid, mtime, size;
	if (tar_num(h + 100, 8, &mode) || tar_num(h + 108, 8, &uid) || tar_num(h + 116, 8, &gid) ||
	    tar_num(h + 124, 12, &size))
		return tar_corrupt(b, err, "bad number in a header");
	if (tar_num(h + 136, 12, &mtime) || mtime > INT64_MAX / 1000000000)
		mtime = 0; /* a time we cannot represent: unknown */
	char type = (char)h[156];
	/* A pax "size" is for the next member, not for another extension. */
	if (t->have_pax_size && type != 'L' && type != 'K' && type != 'x')
		size = t->pax_size;
	if (size > INT64_MAX)
		return tar_corrupt(b, err, "member too large");
	uint64_t pad = (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;

	if (type == 'L' || type == 'K' || type == 'x') {
		if (size > TAR_EXT_MAX)
			return tar_corrupt(b, err, "extended header too long");
		t->ext_kind = type;
		buf_reset(&t->ext);
		t->state = size ? TS_EXT : TS_HEADER;
		t->left = size;
		t->pad = pad;
		if (!size)
			return ext_done(b, err);
		return 0;
	}

	/* The member's name: long name, or ustar prefix + "/" + name. */
	char raw[256 + 2], link[101];
	const char *name = raw;
	if (t->long_name) {
		name = t->long_name;
	} else {
		size_t nl = strnlen((const char *)h, 100);
		size_t pl = 0;
		/* POSIX ustar ("ustar\0" "00") has a prefix field; GNU tar's
		 * "ustar  \0" puts other things there. */
		if (!memcmp(h + 257, "ustar\0", 6))
			pl = strnlen((const char *)h + 345, 155);
		if (pl) {
			memcpy(raw, h + 345, pl);
			raw[pl] = '/';
			memcpy(raw + pl + 1, h, nl);
			raw[pl + 1 + nl] = '\0';
		} else {
			memcpy(raw, h, nl);
			raw[nl] = '\0';
		}
	}
	size_t ll = strnlen((const char *)h + 157, 100);
	memcpy(link, h + 157, ll);
	link[ll] = '\0';
	const char *target = t->long_link ? t->long_link : link;
	/* Old archives mark folders by a trailing '/' alone. */
	size_t namelen = strlen(name);
	if ((type == '0' || type == '\0') && namelen && name[namelen - 1] == '/')
		type = '5';

	char *clean = clean_name(name), *path = clean ? member_path(b, clean) : NULL;
	char *tgt = strdup(target);
	free(t->long_name);
	free(t->long_link);
	t->long_name = t->long_link = NULL;
	t->have_pax_size = 0;
	int rc = 0;
	if (!clean || !path || !tgt) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	struct tb_meta m = {(uint32_t)(mode & 07777), (uint32_t)uid, (uint32_t)gid,
			    (int64_t)mtime * 1000000000};
	int top = !strchr(clean, '/');
	t->state = TS_SKIP;
	t->left = size + pad;
	t->pad = 0;
	switch (type) {
	case '0':
	case '\0':
	case '7':
		if (b->base && top &&
		    (!strcmp(clean, "standby.signal") || !strcmp(clean, "recovery.signal")))
			break; /* as the local backup: a restored copy must not stay a standby */
		if (b->base && size == 0 && !strcmp(clean, "tablespace_map"))
			break; /* as the local backup, which stores only a non-empty one */
		rc = tb_file_begin(b->tb, path, &m, err);
		if (rc)
			break;
		uint32_t segno;
		if (b->page_chunk && pg_relation_path(path, &segno))
			tb_file_fixed_chunk(b->tb, b->page_chunk);
		t->in_file = 1;
		t->capture = b->base && !strcmp(clean, "backup_label");
		if (t->capture)
			buf_reset(&b->label);
		t->state = TS_DATA;
		t->left = size;
		t->pad = pad;
		if (size == 0) {
			rc = file_done(b, err);
			to_padding(t);
		}
		break;
	case '5':
		/* The local backup stores pg_wal empty; restore makes this one. */
		if (b->base && !strcmp(clean, "pg_wal/archive_status"))
			break;
		rc = tb_add_dir(b->tb, path, &m, err);
		break;
	case '2':
		/* A tablespace's link in PGDATA: its contents are the folder
		 * (the tablespace's own archive), as in a local backup. */
		if (b->base && !strncmp(clean, "pg_tblspc/", 10) && !strchr(clean + 10, '/')) {
			m.mode = 0700;
			rc = tb_add_dir(b->tb, path, &m, err);
		} else {
			rc = tb_add_symlink(b->tb, path, tgt, &m, err);
		}
		break;
	case '1':
		rb_warn(b, "%s in the server's archive %s is a hard link: not stored", clean, b->archive);
		break;
	default:
		break; /* devices, FIFOs, global pax headers: nothing to store */
	}
	if (rc == CAIRN_EUSAGE) { /* a name the tree cannot hold */
		char why[CAIRN_ERR_MSG];
		snprintf(why, sizeof(why), "%s", err ? err->msg : "bad member name");
		rc = tar_corrupt(b, err, why);
	}
	if (t->state == TS_SKIP && t->left == 0)
		t->state = TS_HEADER;
out:
	free(clean);
	free(path);
	free(tgt);
	return rc;
}

/* Feeds n bytes of the current archive. */
static int tar_feed(struct rb *b, const uint8_t *p, size_t n, struct cairn_err *err)
{
	struct tarp *t = &b->tp;
	int rc = 0;
	while (n > 0 && !rc) {
		size_t take;
		switch (t->state) {
		case TS_HEADER:
			if (t->hdr_have == 0)
				t->hdr_off = t->offset;
			take = TAR_BLOCK - t->hdr_have;
			if (take > n)
				take = n;
			memcpy(t->hdr + t->hdr_have, p, take);
			t->hdr_have += take;
			if (t->hdr_have == TAR_BLOCK) {
				t->hdr_have = 0;
				rc = header(b, err);
			}
			break;
		case TS_DATA:
			take = t->left < n ? (size_t)t->left : n;
			rc = tb_file_write(b->tb, p, take, err);
			if (!rc && t->capture) {
				if (b->label.len + take > LABEL_MAX)
					rc = tar_corrupt(b, err, "backup_label is too large");
				else if (buf_append(&b->label, p, take))
					rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
			}
			b->bytes += take;
			t->left -= take;
			if (!rc && t->left == 0) {
				rc = file_done(b, err);
				to_padding(t);
			}
			break;
		case TS_EXT:
			take = t->left < n ? (size_t)t->left : n;
			if (buf_append(&t->ext, p, take))
				rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
			t->left -= take;
			if (!rc && t->left == 0) {
				/* A NUL after the bytes, not counted in len. */
				if (buf_append(&t->ext, "", 1))
					rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
				else
					t->ext.len--;
			}
			if (!rc && t->left == 0) {
				rc = ext_done(b, err);
				to_padding(t);
			}
			break;
		case TS_SKIP:
			take = t->left < n ? (size_t)t->left : n;
			t->left -= take;
			if (t->left == 0)
				t->state = TS_HEADER;
			break;
		case TS_END:
		default:
			take = n;
			break;
		}
		p += take;
		n -= take;
		t->offset += take;
	}
	return rc;
}

/* The current archive ends: it must end between members. */
static int archive_end(struct rb *b, struct cairn_err *err)
{
	struct tarp *t = &b->tp;
	int rc = 0;
	if (!b->have_archive)
		return 0;
	if ((t->state != TS_HEADER && t->state != TS_END) || t->hdr_have != 0)
		rc = tar_corrupt(b, err, "it ends in the middle of a member");
	else if (t->long_name || t->long_link || t->have_pax_size)
		rc = tar_corrupt(b, err, "it ends after an extended header");
	b->have_archive = 0;
	if (b->base)
		b->have_base = 1;
	tar_reset(t);
	return rc;
}

/* ---- the COPY stream --------------------------------------------------- */

static int is_digits(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* 'n': the name and location of the next archive. */
static int new_archive(struct rb *b, const char *p, size_t n, struct cairn_err *err)
{
	const char *name = p, *nul = memchr(p, '\0', n);
	if (!nul)
		return cairn_err_set(err, CAIRN_ECORRUPT, "the server sent a malformed new-archive message");
	const char *loc = nul + 1, *nul2 = memchr(loc, '\0', n - (size_t)(loc - p));
	if (!nul2)
		return cairn_err_set(err, CAIRN_ECORRUPT, "the server sent a malformed new-archive message");
	int rc = archive_end(b, err);
	if (rc)
		return rc;
	snprintf(b->archive, sizeof(b->archive), "%s", name);
	size_t nl = strlen(name);
	if (!strcmp(name, "base.tar")) {
		if (b->have_base)
			return cairn_err_set(err, CAIRN_ECORRUPT, "the server sent base.tar twice");
		b->base = 1;
		b->prefix[0] = '\0';
	} else if (nl > 4 && nl < 32 && !strcmp(name + nl - 4, ".tar") && is_digits(name, nl - 4)) {
		/* A tablespace: one the server listed, at that place, once. */
		size_t i;
		for (i = 0; i < b->ntablespaces; i++) {
			const char *ts = b->tablespaces[i];
			if (!strncmp(ts, name, nl - 4) && ts[nl - 4] == '\t' && !strcmp(ts + nl - 3, loc))
				break;
		}
		if (i == b->ntablespaces)
			return cairn_err_set(err, CAIRN_ECORRUPT,
					     "the server sent archive %s (%s) for a tablespace it did not list",
					     name, loc);
		if (b->ts_seen[i]++)
			return cairn_err_set(err, CAIRN_ECORRUPT, "the server sent archive %s twice", name);
		b->base = 0;
		snprintf(b->prefix, sizeof(b->prefix), "pg_tblspc/%.*s/", (int)(nl - 4), name);
	} else {
		return cairn_err_set(err, CAIRN_EVERSION,
				     "the server sent an archive cairn does not know: '%s' "
				     "(compressed, or from a newer PostgreSQL?)", name);
	}
	b->have_archive = 1;
	tar_reset(&b->tp);
	return 0;
}

static int copy_message(struct rb *b, const uint8_t *p, size_t n, int *manifest,
			struct cairn_err *err)
{
	if (n == 0)
		return cairn_err_set(err, CAIRN_ECORRUPT, "the server sent an empty COPY message");
	switch (p[0]) {
	case 'n':
		*manifest = 0;
		return new_archive(b, (const char *)p + 1, n - 1, err);
	case 'd':
		if (*manifest)
			return 0; /* not asked for: ignored */
		if (!b->have_archive)
			return cairn_err_set(err, CAIRN_ECORRUPT,
					     "the server sent archive data before naming an archive");
		return tar_feed(b, p + 1, n - 1, err);
	case 'p':
		if (n != 9)
			return cairn_err_set(err, CAIRN_ECORRUPT,
					     "the server sent a malformed progress message");
		progress(b, 0);
		return 0;
	case 'm': {
		int rc = archive_end(b, err);
		*manifest = 1;
		return rc;
	}
	default:
		return cairn_err_set(err, CAIRN_ECORRUPT,
				     "the server sent a COPY message of unknown type 0x%02x", p[0]);
	}
}

/* ---- notices: the server's checksum reports ------------------------------- */

static void on_notice(void *arg, const PGresult *res)
{
	struct rb *b = arg;
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (!msg)
		return;
	if (strstr(msg, "checksum")) {
		const char *q;
		unsigned long long v;
		if (strstr(msg, "checksum verification failed in file")) {
			b->ck_blocks++;
		} else if ((q = strstr(msg, " has a total of ")) && sscanf(q, " has a total of %llu", &v) == 1) {
			/* The first 5 failures of a file each have a warning. */
			if (v > 5)
				b->ck_extra += v - 5;
		} else if (sscanf(msg, "%llu total checksum verification failure", &v) == 1) {
			b->ck_total = v;
		}
		uint64_t count = b->ck_blocks + b->ck_extra;
		if (count <= 100 || !strstr(msg, "verification failed in file"))
			rb_warn(b, "PostgreSQL: %s", msg);
		else if (count == 101)
			rb_warn(b, "more checksum mismatches: not listing them all");
		return;
	}
	if (sev && !strcmp(sev, "WARNING"))
		rb_warn(b, "PostgreSQL: %s", msg);
}

/* ---- the session ------------------------------------------------------- */

static int connect_replication(struct rb *b, struct cairn_err *err)
{
	char m[400];
	const char *kw[] = {"dbname", "replication", "fallback_application_name", NULL};
	const char *val[] = {b->o->conninfo ? b->o->conninfo : "", "true", "cairn", NULL};
	b->conn = PQconnectdbParams(kw, val, 1);
	if (!b->conn || PQstatus(b->conn) != CONNECTION_OK)
		return cairn_err_set(err, CAIRN_EIO,
				     "cannot connect to PostgreSQL for replication: %s (the role needs the "
				     "REPLICATION attribute, and pg_hba.conf a 'replication' line for "
				     "this client)",
				     pg_pq_msg(b->conn, NULL, m, sizeof(m)));
	PQsetNoticeReceiver(b->conn, on_notice, b);
	return 0;
}

/* Runs a replication command returning one row of at least `cols`
 * columns; *out owns the result. */
static int command1(struct rb *b, const char *cmd, int cols, PGresult **out,
		    struct cairn_err *err)
{
	char m[400];
	PGresult *res = PQexec(b->conn, cmd);
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    PQnfields(res) < cols) {
		int rc = cairn_err_set(err, CAIRN_EIO, "PostgreSQL: %s failed: %s", cmd,
				       res && PQresultStatus(res) == PGRES_TUPLES_OK
					       ? "unexpected answer"
					       : pg_pq_msg(b->conn, res, m, sizeof(m)));
		PQclear(res);
		return rc;
	}
	*out = res;
	return 0;
}

/* SHOW `name` into out. */
static int show(struct rb *b, const char *name, char *out, size_t n, struct cairn_err *err)
{
	char cmd[80];
	PGresult *res = NULL;
	snprintf(cmd, sizeof(cmd), "SHOW %s", name);
	int rc = command1(b, cmd, 1, &res, err);
	if (!rc)
		snprintf(out, n, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return rc;
}

/* "16MB", "1GB", "512kB" or a byte count, as SHOW wal_segment_size says. */
static int parse_size(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (!strcmp(end, "kB"))
		v *= 1024;
	else if (!strcmp(end, "MB"))
		v *= 1024 * 1024;
	else if (!strcmp(end, "GB"))
		v *= 1024 * 1024 * 1024;
	else if (*end && strcmp(end, "B"))
		return -1;
	if (v > UINT32_MAX || !pg_wal_seg_size_valid((uint32_t)v))
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* Waits until `name` is archived in the repository (as pgbackup.c does):
 * a backup whose WAL never arrives cannot be restored. */
static int wait_archived(struct rb *b, const char *name, struct cairn_err *err)
{
	unsigned limit = b->o->archive_timeout ? b->o->archive_timeout : 60;
	struct timespec t0, now, pause = {0, 100 * 1000 * 1000};
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct wal_entry e;
		struct cairn_err e2 = {0, ""};
		int rc = repo_wal_stat(b->r, b->cluster, name, &e, &e2);
		if (rc == 0) {
			wal_entry_free(&e);
			return 0;
		}
		if (rc != CAIRN_ENOTFOUND) {
			if (err)
				*err = e2;
			return rc;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec >= (time_t)limit)
			return cairn_err_set(err, CAIRN_EIO,
					     "WAL segment %s did not reach the repository within %u s: "
					     "check archive_command in PostgreSQL's log (it must run "
					     "'cairn archive-push %%p' for cluster %s); no snapshot was written",
					     name, limit, b->cluster);
		nanosleep(&pause, NULL);
	}
}

/* The two result sets before the COPY: start position, tablespaces. */
static int read_header(struct rb *b, struct cairn_err *err)
{
	char m[400];
	int sets = 0;
	for (;;) {
		PGresult *res = PQgetResult(b->conn);
		if (!res)
			return cairn_err_set(err, CAIRN_EIO,
					     "PostgreSQL ended BASE_BACKUP before sending any data");
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
			PQclear(res);
			if (sets != 2)
				return cairn_err_set(err, CAIRN_ECORRUPT,
						     "PostgreSQL sent %d result sets before the backup "
						     "data, not 2", sets);
			return 0;
		}
		if (st != PGRES_TUPLES_OK) {
			int rc = cairn_err_set(err, CAIRN_EIO, "PostgreSQL refused BASE_BACKUP: %s",
					       pg_pq_msg(b->conn, res, m, sizeof(m)));
			PQclear(res);
			return rc;
		}
		int rc = 0;
		if (sets == 0) {
			if (PQntuples(res) != 1 || PQnfields(res) < 2 ||
			    pg_lsn_parse(PQgetvalue(res, 0, 0), &b->start_lsn) ||
			    (b->start_tli = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10)) == 0)
				rc = cairn_err_set(err, CAIRN_ECORRUPT,
						   "PostgreSQL sent an unreadable backup start position");
		} else if (sets == 1) {
			for (int i = 0; i < PQntuples(res) && !rc; i++) {
				if (PQnfields(res) < 2 || PQgetisnull(res, i, 0))
					continue; /* PGDATA itself */
				const char *oid = PQgetvalue(res, i, 0), *loc = PQgetvalue(res, i, 1);
				char *entry = malloc(strlen(oid) + strlen(loc) + 2);
				if (!is_digits(oid, strlen(oid)) || strlen(oid) > 10) {
					rc = cairn_err_set(err, CAIRN_ECORRUPT,
							   "PostgreSQL listed a tablespace with oid '%.20s'", oid);
				} else if (!entry) {
					rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
				} else {
					sprintf(entry, "%s\t%s", oid, loc);
					if (strlist_add(&b->tablespaces, &b->ntablespaces, entry))
						rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
				}
				free(entry);
			}
		}
		sets++;
		PQclear(res);
		if (!rc && sets == 2) {
			b->ts_seen = calloc(b->ntablespaces + 1, 1);
			if (!b->ts_seen)
				rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		}
		if (rc)
			return rc;
	}
}

/* After the COPY: the end position; then what the command ended with. */
static int read_trailer(struct rb *b, struct cairn_err *err)
{
	char m[400];
	int rc = 0, have_end = 0;
	PGresult *res;
	while ((res = PQgetResult(b->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_TUPLES_OK && !have_end) {
			if (PQntuples(res) != 1 || PQnfields(res) < 2 ||
			    pg_lsn_parse(PQgetvalue(res, 0, 0), &b->stop_lsn)) {
				if (!rc)
					rc = cairn_err_set(err, CAIRN_ECORRUPT,
							   "PostgreSQL sent an unreadable backup end position");
			} else {
				b->stop_tli = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
				have_end = 1;
			}
		} else if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR) {
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			if (state && !strcmp(state, SQLSTATE_DATA_CORRUPTED) && have_end)
				b->ck_failed = 1; /* the backup is whole; pages failed */
			else if (!rc)
				rc = cairn_err_set(err, CAIRN_EIO, "PostgreSQL failed the backup: %s",
						   pg_pq_msg(b->conn, res, m, sizeof(m)));
		} else if (st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
			/* Not expected: end it rather than loop. */
			PQclear(res);
			return rc ? rc
				  : cairn_err_set(err, CAIRN_ECORRUPT,
						  "PostgreSQL started a second COPY during BASE_BACKUP");
		}
		PQclear(res);
	}
	if (!rc && !have_end)
		rc = cairn_err_set(err, CAIRN_EIO, "PostgreSQL did not send the backup's end position: %s",
				   pg_pq_msg(b->conn, NULL, m, sizeof(m)));
	return rc;
}

static int stream(struct rb *b, struct cairn_err *err)
{
	char m[400];
	int manifest = 0, rc = 0;
	for (;;) {
		char *data = NULL;
		int n = PQgetCopyData(b->conn, &data, 0);
		if (n == -1)
			break; /* CopyDone, or the server ended it with an error */
		if (n < 0)
			return cairn_err_set(err, CAIRN_EIO, "receiving the backup from PostgreSQL failed: %s",
					     pg_pq_msg(b->conn, NULL, m, sizeof(m)));
		rc = copy_message(b, (const uint8_t *)data, (size_t)n, &manifest, err);
		PQfreemem(data);
		if (rc)
			return rc;
	}
	/* An error from the server explains a short stream better than the
	 * tar reader would: read the results first. */
	rc = read_trailer(b, err);
	if (!rc)
		rc = archive_end(b, err);
	if (!rc && !b->have_base)
		rc = cairn_err_set(err, CAIRN_ECORRUPT, "PostgreSQL's backup had no archive of PGDATA");
	for (size_t i = 0; i < b->ntablespaces && !rc; i++)
		if (!b->ts_seen[i])
			rc = cairn_err_set(err, CAIRN_ECORRUPT,
					   "PostgreSQL's backup had no archive of tablespace %s",
					   b->tablespaces[i]);
	return rc;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Host, user, program, tags, path: as repo_backup fills them. */
static int fill_identity(struct rb *b, struct snapshot *s)
{
	const struct pg_backup_opts *o = b->o;
	char host[256], path[600];
	if (o->host)
		snprintf(host, sizeof(host), "%s", o->host);
	else if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	struct passwd *pw = getpwuid(geteuid());
	s->host = strdup(host);
	s->user = strdup(pw ? pw->pw_name : "unknown");
	s->program = strdup("cairn " CAIRN_VERSION_STRING);
	if (!s->host || !s->user || !s->program)
		return CAIRN_ENOMEM;
	for (size_t i = 0; i < o->ntags; i++)
		if (strlist_add(&s->tags, &s->ntags, o->tags[i]))
			return CAIRN_ENOMEM;
	/* What was backed up: the server's network address, or (on a Unix
	 * socket, which names no machine) the cluster. */
	const char *h = PQhost(b->conn), *port = PQport(b->conn);
	if (h && *h && h[0] != '/')
		snprintf(path, sizeof(path), "%s:%s", h, port && *port ? port : "5432");
	else
		snprintf(path, sizeof(path), "remote:%llu", (unsigned long long)b->sysid);
	return strlist_add(&s->paths, &s->npaths, path) ? CAIRN_ENOMEM : 0;
}

int pg_remote_backup_run(struct repo *r, const struct pg_backup_opts *o, struct snapshot *s,
			 struct pg_backup_result *res, struct cairn_err *err)
{
	struct rb b;
	PGresult *q = NULL;
	char val[128], label[128], cmd[512], walname[PG_WALNAME_LEN + 1];
	int rc;
	memset(&b, 0, sizeof(b));
	memset(res, 0, sizeof(*res));
	memset(s, 0, sizeof(*s));
	b.o = o;
	b.res = res;
	b.r = r;
	if (o->pgdata)
		return cairn_err_set(err, CAIRN_EUSAGE,
				     "a remote backup reads no files: give --pg-conn, not --pgdata");
	s->time_ns = now_ns();

	rc = connect_replication(&b, err);
	if (rc)
		goto out;
	b.server_version = (uint32_t)PQserverVersion(b.conn);
	if (b.server_version < 150000) {
		rc = cairn_err_set(err, CAIRN_EUSAGE,
				   "PostgreSQL %u.%u is too old for a remote backup: cairn uses the "
				   "BASE_BACKUP command of PostgreSQL 15 and later (back up on the "
				   "database host with --pgdata instead)",
				   b.server_version / 10000,
				   b.server_version >= 100000 ? b.server_version % 10000
							      : b.server_version / 100 % 100);
		goto out;
	}
	rc = command1(&b, "IDENTIFY_SYSTEM", 2, &q, err);
	if (rc)
		goto out;
	char *end;
	errno = 0;
	b.sysid = strtoull(PQgetvalue(q, 0, 0), &end, 10);
	int bad = errno || *end || b.sysid == 0;
	PQclear(q);
	q = NULL;
	if (bad) {
		rc = cairn_err_set(err, CAIRN_ECORRUPT, "PostgreSQL sent an unreadable system identifier");
		goto out;
	}
	if (o->cluster)
		snprintf(b.cluster, sizeof(b.cluster), "%s", o->cluster);
	else
		snprintf(b.cluster, sizeof(b.cluster), "%llu", (unsigned long long)b.sysid);
	if (wal_cluster_name_ok(b.cluster)) {
		rc = cairn_err_set(err, CAIRN_EUSAGE,
				   "invalid cluster name '%s': use 1-64 of a-z 0-9 _ . -", b.cluster);
		goto out;
	}
	rc = show(&b, "wal_segment_size", val, sizeof(val), err);
	if (!rc && parse_size(val, &b.wal_seg_size))
		rc = cairn_err_set(err, CAIRN_ECORRUPT, "PostgreSQL's wal_segment_size '%s' is unreadable",
				   val);
	if (rc)
		goto out;
	rc = show(&b, "data_checksums", val, sizeof(val), err);
	if (rc)
		goto out;
	res->checksums_enabled = !strcmp(val, "on");
	rc = show(&b, "block_size", val, sizeof(val), err);
	if (rc)
		goto out;
	rc = pg_page_chunk(o, (uint32_t)strtoul(val, NULL, 10), repo_get_chunker(r)->max,
			   &b.page_chunk, err);
	if (rc)
		goto out;
	char archive_mode[32];
	rc = show(&b, "archive_mode", archive_mode, sizeof(archive_mode), err);
	if (rc)
		goto out;
	if (!strcmp(archive_mode, "off"))
		rb_warn(&b, "archive_mode is off: the WAL this backup needs must reach the repository "
			    "(archive_command = 'cairn archive-push %%p'), or it cannot be restored");

	b.tb = tb_new(r);
	if (!b.tb) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	/* No quote can appear in the label: it is ours. */
	snprintf(label, sizeof(label), "cairn %lld", (long long)time(NULL));
	snprintf(cmd, sizeof(cmd),
		 "BASE_BACKUP ( LABEL '%s', CHECKPOINT 'fast', WAIT false, MANIFEST 'no', "
		 "TABLESPACE_MAP true )", label);
	if (!PQsendQuery(b.conn, cmd)) {
		rc = cairn_err_set(err, CAIRN_EIO, "PostgreSQL: cannot send BASE_BACKUP: %s",
				   pg_pq_msg(b.conn, NULL, val, sizeof(val)));
		goto out;
	}
	rc = read_header(&b, err);
	if (!rc)
		rc = stream(&b, err);
	if (rc)
		goto out;
	progress(&b, 1);

	/* The label the server wrote tells whether it is a standby. */
	struct pg_backup_label lab;
	if (!b.have_label) {
		rc = cairn_err_set(err, CAIRN_ECORRUPT, "PostgreSQL's backup had no backup_label");
		goto out;
	}
	rc = pg_backup_label_parse((const char *)b.label.data, b.label.len, &lab, err);
	if (rc) {
		cairn_err_prefix(err, "the backup_label PostgreSQL sent");
		goto out;
	}
	if (lab.start_lsn != b.start_lsn) {
		rc = cairn_err_set(err, CAIRN_ECORRUPT,
				   "PostgreSQL's backup_label does not match the start it reported");
		goto out;
	}
	res->checksum_errors = b.ck_blocks + b.ck_extra;
	if (b.ck_total > res->checksum_errors)
		res->checksum_errors = b.ck_total;
	if (b.ck_failed && res->checksum_errors == 0)
		res->checksum_errors = 1;

	rc = tb_finish(b.tb, s->root, err);
	if (rc)
		goto out;
	const struct tb_stats *ts = tb_get_stats(b.tb);
	s->stats.logical_bytes = ts->bytes;
	s->stats.files = ts->files;
	s->stats.dirs = ts->dirs;
	s->stats.blobs = ts->blobs;
	if (fill_identity(&b, s)) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	s->flags |= SNAP_PG;
	s->cluster = strdup(b.cluster);
	s->sysid = b.sysid;
	s->pg_version = b.server_version;
	s->timeline = b.start_tli;
	s->start_lsn = b.start_lsn;
	s->stop_lsn = b.stop_lsn;
	s->start_wal = strdup(lab.start_wal_file);
	pg_walname_format(walname, b.stop_tli ? b.stop_tli : b.start_tli,
			  pg_lsn_to_segno(b.stop_lsn ? b.stop_lsn - 1 : 0, b.wal_seg_size),
			  b.wal_seg_size);
	s->stop_wal = strdup(walname);
	s->wal_seg_size = b.wal_seg_size;
	s->from_standby = lab.from == PG_BACKUP_FROM_STANDBY;
	int nomem = !s->cluster || !s->start_wal || !s->stop_wal;
	for (size_t i = 0; i < b.ntablespaces && !nomem; i++)
		nomem = strlist_add(&s->tablespaces, &s->ntablespaces, b.tablespaces[i]) != 0;
	if (nomem) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}

	/* Not PostgreSQL's own wait (WAIT false): it waits forever when
	 * archiving fails.  We wait, bounded, for *this* repository. */
	int archiving = strcmp(archive_mode, "off") &&
			(!s->from_standby || !strcmp(archive_mode, "always"));
	if (!archiving && s->from_standby && strcmp(archive_mode, "off"))
		rb_warn(&b, "archive_mode is %s on this standby: the WAL this backup needs must reach "
			    "the repository (archive_mode = always there, or archiving on the "
			    "primary), or it cannot be restored", archive_mode);
	if (archiving) {
		rc = wait_archived(&b, s->stop_wal, err);
		if (rc)
			goto out;
	}

	/* Flush first so that the stats count every blob of this backup. */
	rc = repo_flush(r, err);
	if (rc)
		goto out;
	const struct repo_write_stats *ws = repo_get_write_stats(r);
	s->stats.new_bytes = ws->new_bytes;
	s->stats.stored_bytes = ws->stored_bytes;
	s->stats.new_blobs = ws->new_blobs;
	s->end_time_ns = now_ns();
	rc = repo_snapshot_write(r, s, err);
	if (rc == 0 && res->checksum_errors && !o->ignore_checksum_errors)
		rc = cairn_err_set(err, CAIRN_EPARTIAL,
				   "snapshot %.8s written, but PostgreSQL reported %llu page(s) that failed "
				   "their checksums (listed above; --ignore-checksum-errors accepts this)",
				   s->name, (unsigned long long)res->checksum_errors);
out:
	PQclear(q);
	/* Closing the connection ends a backup still running on the server. */
	PQfinish(b.conn);
	tb_free(b.tb);
	tar_reset(&b.tp);
	buf_free(&b.label);
	strlist_free(b.tablespaces, b.ntablespaces);
	free(b.ts_seen);
	return rc;
}
