/*
 * snapshot.h — snapshot records: what one backup was (root tree, when,
 * where from, what it cost), stored as sealed objects snapshots/<name>
 * with magic "CAIRNSN1".
 *
 *   payload := field*
 *   field   := u16 tag, u32 len, len bytes
 *
 * Tags below 0x8000 are optional: a reader that does not know one skips
 * it.  Tags with bit 0x8000 set are critical: a reader that does not know
 * one refuses the snapshot (CAIRN_EVERSION).  Strings are UTF-8 bytes
 * without NUL; repeated tags make lists in order.
 *
 * Memory: a struct snapshot owns its strings; snapshot_free releases them.
 */
#ifndef CAIRN_SNAPSHOT_H
#define CAIRN_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "repo/buf.h"
#include "repo/error.h"

enum snap_tag {
	SNAP_T_ROOT = 1,     /* id[32] of the root tree */
	SNAP_T_TIME = 2,     /* u64 unix time in ns, when the backup started */
	SNAP_T_HOST = 3,     /* string */
	SNAP_T_USER = 4,     /* string */
	SNAP_T_PATH = 5,     /* string, repeated: what was backed up */
	SNAP_T_TAG = 6,      /* string, repeated */
	SNAP_T_PARENT = 7,   /* id[32] (binary snapshot name) */
	SNAP_T_STATS = 8,    /* 8 or more × u64: struct snap_stats, in order */
	SNAP_T_PROGRAM = 9,  /* string: "cairn 0.1.0" */
	SNAP_T_FLAGS = 10,   /* u32: enum snap_flags */
	SNAP_T_ERROR = 11,   /* string, repeated: a path that could not be read */
	SNAP_T_END_TIME = 12,/* u64 unix time in ns, when the backup finished */
	/* PostgreSQL base backups (SNAP_PG): */
	SNAP_T_CLUSTER = 20,   /* string: cluster name ([a-z0-9_.-]) */
	SNAP_T_SYSID = 21,     /* u64: the cluster's system identifier */
	SNAP_T_PG_VERSION = 22,/* u32: server_version_num, e.g. 150004 */
	SNAP_T_TIMELINE = 23,  /* u32: timeline the backup started on */
	SNAP_T_START_LSN = 24, /* u64 */
	SNAP_T_STOP_LSN = 25,  /* u64 */
	SNAP_T_START_WAL = 26, /* string: first WAL segment the backup needs */
	SNAP_T_STOP_WAL = 27,  /* string: last WAL segment the backup needs */
	SNAP_T_WAL_SEG_SIZE = 28, /* u32 */
	SNAP_T_TABLESPACE = 29,/* string "oid<TAB>path", repeated */
	SNAP_T_FROM_STANDBY = 30, /* u32: 1 if taken from a standby */
};

enum snap_flags {
	SNAP_INCOMPLETE = 1, /* some paths could not be read (see errors) */
	SNAP_STDIN = 2,      /* made from standard input */
	SNAP_PG = 4,         /* a PostgreSQL base backup: the root is PGDATA,
			      * tablespaces under pg_tblspc/<oid>/ */
};

struct snap_stats {
	uint64_t logical_bytes; /* bytes of the sources (read or reused) */
	uint64_t new_bytes;     /* bytes of plaintext in blobs that were new */
	uint64_t stored_bytes;  /* bytes those new blobs take sealed */
	uint64_t files;
	uint64_t dirs;
	uint64_t blobs;         /* blobs referenced */
	uint64_t new_blobs;
	uint64_t errors;
	uint64_t reused_bytes;  /* bytes taken unread from the parent snapshot */
};
#define SNAP_NSTATS 9

struct snapshot {
	char name[65];   /* object name, hex (set by write and load) */
	uint8_t root[32];
	int64_t time_ns;
	int64_t end_time_ns;
	char *host;
	char *user;
	char *program;
	char **paths;
	size_t npaths;
	char **tags;
	size_t ntags;
	char **errors;
	size_t nerrors;
	int has_parent;
	uint8_t parent[32];
	uint32_t flags;
	struct snap_stats stats;
	/* PostgreSQL (SNAP_PG) */
	char *cluster;
	uint64_t sysid;
	uint32_t pg_version;
	uint32_t timeline;
	uint64_t start_lsn, stop_lsn;
	char *start_wal, *stop_wal;
	uint32_t wal_seg_size;
	char **tablespaces; /* "oid\tpath" */
	size_t ntablespaces;
	uint32_t from_standby;
};

/* Appends a copy of s to a string list. */
int strlist_add(char ***list, size_t *n, const char *s);
void strlist_free(char **list, size_t n);

int snapshot_encode(const struct snapshot *s, struct buf *out);
/* Parses a payload into s (zeroed first).  CAIRN_ECORRUPT / CAIRN_EVERSION. */
int snapshot_decode(const void *p, size_t n, struct snapshot *s,
		    struct cairn_err *err);
void snapshot_free(struct snapshot *s);

#endif
