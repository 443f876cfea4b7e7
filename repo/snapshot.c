/* snapshot.c — encoding and parsing of snapshot records; see snapshot.h. */
#include "repo/snapshot.h"

#include <stdlib.h>
#include <string.h>

#define CRITICAL 0x8000

int strlist_add(char ***list, size_t *n, const char *s)
{
	char **p = realloc(*list, (*n + 1) * sizeof(*p));
	if (!p)
		return CAIRN_ENOMEM;
	*list = p;
	p[*n] = strdup(s);
	if (!p[*n])
		return CAIRN_ENOMEM;
	(*n)++;
	return 0;
}

void strlist_free(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static int put_field(struct buf *b, uint16_t tag, const void *p, size_t n)
{
	int rc = buf_put_u16(b, tag);
	rc = rc ? rc : buf_put_u32(b, (uint32_t)n);
	return rc ? rc : buf_append(b, p, n);
}

static int put_str(struct buf *b, uint16_t tag, const char *s)
{
	return s ? put_field(b, tag, s, strlen(s)) : 0;
}

static int put_u32(struct buf *b, uint16_t tag, uint32_t v)
{
	uint8_t p[4];
	le_put32(p, v);
	return put_field(b, tag, p, 4);
}

static int put_u64(struct buf *b, uint16_t tag, uint64_t v)
{
	uint8_t p[8];
	le_put64(p, v);
	return put_field(b, tag, p, 8);
}

int snapshot_encode(const struct snapshot *s, struct buf *out)
{
	uint8_t st[8 * SNAP_NSTATS], fl[4];
	const uint64_t *sv = &s->stats.logical_bytes;
	int rc;

	buf_reset(out);
	rc = put_field(out, SNAP_T_ROOT, s->root, 32);
	rc = rc ? rc : put_u64(out, SNAP_T_TIME, (uint64_t)s->time_ns);
	rc = rc ? rc : put_u64(out, SNAP_T_END_TIME, (uint64_t)s->end_time_ns);
	rc = rc ? rc : put_str(out, SNAP_T_HOST, s->host);
	rc = rc ? rc : put_str(out, SNAP_T_USER, s->user);
	rc = rc ? rc : put_str(out, SNAP_T_PROGRAM, s->program);
	for (size_t i = 0; i < s->npaths && !rc; i++)
		rc = put_str(out, SNAP_T_PATH, s->paths[i]);
	for (size_t i = 0; i < s->ntags && !rc; i++)
		rc = put_str(out, SNAP_T_TAG, s->tags[i]);
	for (size_t i = 0; i < s->nerrors && !rc; i++)
		rc = put_str(out, SNAP_T_ERROR, s->errors[i]);
	if (!rc && s->has_parent)
		rc = put_field(out, SNAP_T_PARENT, s->parent, 32);
	/* struct snap_stats is SNAP_NSTATS u64 fields in declaration order. */
	for (int i = 0; i < SNAP_NSTATS; i++)
		le_put64(st + 8 * i, sv[i]);
	rc = rc ? rc : put_field(out, SNAP_T_STATS, st, sizeof(st));
	le_put32(fl, s->flags);
	rc = rc ? rc : put_field(out, SNAP_T_FLAGS, fl, 4);
	if (s->flags & SNAP_PG) {
		rc = rc ? rc : put_str(out, SNAP_T_CLUSTER, s->cluster);
		rc = rc ? rc : put_u64(out, SNAP_T_SYSID, s->sysid);
		rc = rc ? rc : put_u32(out, SNAP_T_PG_VERSION, s->pg_version);
		rc = rc ? rc : put_u32(out, SNAP_T_TIMELINE, s->timeline);
		rc = rc ? rc : put_u64(out, SNAP_T_START_LSN, s->start_lsn);
		rc = rc ? rc : put_u64(out, SNAP_T_STOP_LSN, s->stop_lsn);
		rc = rc ? rc : put_str(out, SNAP_T_START_WAL, s->start_wal);
		rc = rc ? rc : put_str(out, SNAP_T_STOP_WAL, s->stop_wal);
		rc = rc ? rc : put_u32(out, SNAP_T_WAL_SEG_SIZE, s->wal_seg_size);
		rc = rc ? rc : put_u32(out, SNAP_T_FROM_STANDBY, s->from_standby);
		for (size_t i = 0; i < s->ntablespaces && !rc; i++)
			rc = put_str(out, SNAP_T_TABLESPACE, s->tablespaces[i]);
	}
	return rc;
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
	if (memchr(p, '\0', n))
		return NULL;
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

int snapshot_decode(const void *p, size_t n, struct snapshot *s,
		    struct cairn_err *err)
{
	struct rd r = rd_make(p, n);
	int have_root = 0;
	memset(s, 0, sizeof(*s));
	while (rd_left(&r) > 0) {
		uint16_t tag = rd_u16(&r);
		uint32_t len = rd_u32(&r);
		const uint8_t *v = rd_bytes(&r, len);
		if (r.bad)
			goto bad;
		char *str = NULL;
		switch (tag) {
		case SNAP_T_ROOT:
		case SNAP_T_PARENT:
			if (len != 32)
				goto bad;
			memcpy(tag == SNAP_T_ROOT ? s->root : s->parent, v, 32);
			if (tag == SNAP_T_ROOT)
				have_root = 1;
			else
				s->has_parent = 1;
			break;
		case SNAP_T_TIME:
		case SNAP_T_END_TIME:
			if (len != 8)
				goto bad;
			*(tag == SNAP_T_TIME ? &s->time_ns : &s->end_time_ns) = (int64_t)le_get64(v);
			break;
		case SNAP_T_STATS: {
			uint64_t *sv = &s->stats.logical_bytes;
			if (len < 64 || len % 8)
				goto bad;
			/* Older writers wrote fewer fields: the rest stay 0. */
			for (uint32_t i = 0; i < len / 8 && i < SNAP_NSTATS; i++)
				sv[i] = le_get64(v + 8 * i);
			break;
		}
		case SNAP_T_FLAGS:
		case SNAP_T_PG_VERSION:
		case SNAP_T_TIMELINE:
		case SNAP_T_WAL_SEG_SIZE:
		case SNAP_T_FROM_STANDBY:
			if (len != 4)
				goto bad;
			*(tag == SNAP_T_FLAGS ? &s->flags
			  : tag == SNAP_T_PG_VERSION ? &s->pg_version
			  : tag == SNAP_T_TIMELINE ? &s->timeline
			  : tag == SNAP_T_WAL_SEG_SIZE ? &s->wal_seg_size
			  : &s->from_standby) = le_get32(v);
			break;
		case SNAP_T_SYSID:
		case SNAP_T_START_LSN:
		case SNAP_T_STOP_LSN:
			if (len != 8)
				goto bad;
			*(tag == SNAP_T_SYSID ? &s->sysid
			  : tag == SNAP_T_START_LSN ? &s->start_lsn : &s->stop_lsn) = le_get64(v);
			break;
		case SNAP_T_HOST:
		case SNAP_T_USER:
		case SNAP_T_PROGRAM:
		case SNAP_T_PATH:
		case SNAP_T_TAG:
		case SNAP_T_ERROR:
		case SNAP_T_CLUSTER:
		case SNAP_T_START_WAL:
		case SNAP_T_STOP_WAL:
		case SNAP_T_TABLESPACE:
			str = dup_bytes(v, len);
			if (!str)
				goto bad;
			if (tag == SNAP_T_HOST && !s->host) {
				s->host = str;
			} else if (tag == SNAP_T_USER && !s->user) {
				s->user = str;
			} else if (tag == SNAP_T_PROGRAM && !s->program) {
				s->program = str;
			} else if (tag == SNAP_T_CLUSTER && !s->cluster) {
				s->cluster = str;
			} else if (tag == SNAP_T_START_WAL && !s->start_wal) {
				s->start_wal = str;
			} else if (tag == SNAP_T_STOP_WAL && !s->stop_wal) {
				s->stop_wal = str;
			} else {
				int rc = 0;
				if (tag == SNAP_T_PATH)
					rc = strlist_add(&s->paths, &s->npaths, str);
				else if (tag == SNAP_T_TAG)
					rc = strlist_add(&s->tags, &s->ntags, str);
				else if (tag == SNAP_T_ERROR)
					rc = strlist_add(&s->errors, &s->nerrors, str);
				else if (tag == SNAP_T_TABLESPACE)
					rc = strlist_add(&s->tablespaces, &s->ntablespaces, str);
				else
					rc = -1; /* a repeated single-valued field */
				free(str);
				if (rc)
					goto bad;
			}
			break;
		default:
			if (tag & CRITICAL) {
				snapshot_free(s);
				return cairn_err_set(err, CAIRN_EVERSION,
						     "snapshot uses feature %u that this cairn does not know: upgrade cairn",
						     tag);
			}
			break;
		}
	}
	if (!have_root)
		goto bad;
	return 0;
bad:
	snapshot_free(s);
	return cairn_err_set(err, CAIRN_ECORRUPT, "snapshot record is malformed");
}

void snapshot_free(struct snapshot *s)
{
	if (!s)
		return;
	free(s->host);
	free(s->user);
	free(s->program);
	strlist_free(s->paths, s->npaths);
	strlist_free(s->tags, s->ntags);
	strlist_free(s->errors, s->nerrors);
	free(s->cluster);
	free(s->start_wal);
	free(s->stop_wal);
	strlist_free(s->tablespaces, s->ntablespaces);
	memset(s, 0, sizeof(*s));
}
