/*
 * fs.h — files and folders in and out of a repository: backup of paths or
 * a stream into a snapshot, restore of a snapshot to a folder, listing and
 * reading files of a snapshot.
 *
 * Snapshot shape: a backup of paths stores each absolute path under the
 * root tree by its components (/var/lib/x → var/lib/x); a backup of a
 * stream stores one file under the root tree.
 *
 * Library code: warnings go to the `warn` callback, never to stdout/stderr.
 */
#ifndef CAIRN_FS_H
#define CAIRN_FS_H

#include <stddef.h>
#include <stdint.h>

#include <sys/stat.h>

#include "repo/repo.h"

typedef void (*fs_warn_fn)(void *arg, const char *msg);
typedef void (*fs_progress_fn)(void *arg, uint64_t bytes, uint64_t files);

/* What a filter says of one entry. */
enum backup_filter {
	BK_KEEP = 0,   /* store it */
	BK_SKIP = 1,   /* leave it out */
	BK_EMPTY = 2,  /* a folder (or a link to one): store an empty folder */
	BK_FOLLOW = 3, /* a symlink to a folder: store the folder it points to */
};

struct backup_opts {
	const char *const *paths; /* absolute or relative; made absolute */
	size_t npaths;
	const char *root_dir;     /* instead of paths: this folder is the root */
	const char *stdin_name;   /* instead of paths: stdin_fd as this file */
	int stdin_fd;
	const char *host;         /* NULL: hostname */
	const char *const *tags;
	size_t ntags;
	int ignore_unreadable;    /* unreadable paths: warn, but return 0 */
	/* Reuse, unread, the blob lists of files whose size, mtime, ctime and
	 * inode equal those in this snapshot, and whose mtime was safely older
	 * than when it was taken.  NULL: read everything. */
	const struct snapshot *parent;
	fs_warn_fn warn;
	fs_progress_fn progress;
	void *arg;

	/* Hooks (may be NULL), all given hook_arg.  `rel` is the entry's path
	 * in the snapshot without a leading '/' ("" for the root). */
	int (*filter)(void *hook_arg, const char *rel, const struct stat *st);
	/* Entries (rel paths) read after their siblings, in this order: e.g.
	 * PostgreSQL's global/pg_control, which must be copied last. */
	const char *const *last;
	size_t nlast;
	/* Every byte read from a regular file, in order; a non-zero return is
	 * a fatal error (err filled). */
	int (*on_data)(void *hook_arg, const char *rel, uint64_t off,
		       const uint8_t *p, size_t n, struct cairn_err *err);
	/* A folder's entries are complete, its tree not yet stored: the hook
	 * may add nodes (repo_put_blob + tree_add) and, for the root, fill in
	 * the snapshot. */
	int (*dir_done)(void *hook_arg, const char *rel, struct tree *t,
			struct snapshot *s, struct cairn_err *err);
	/* Non-zero: the file is cut into pieces of exactly this many bytes
	 * (the last one shorter) at fixed offsets, instead of content-defined
	 * chunks.  For files changed in place at fixed offsets, such as
	 * PostgreSQL relation files (8 KiB pages): one changed page then
	 * costs one piece.  At most the chunker's max. */
	uint32_t (*fixed_chunk)(void *hook_arg, const char *rel);
	void *hook_arg;
};

/* Backs up and writes the snapshot (s filled, s->name set).  Returns 0; or
 * CAIRN_EPARTIAL when the snapshot was written but some paths could not be
 * read (listed in s->errors, each also passed to warn) and
 * ignore_unreadable is off; or an error, with no snapshot written. */
int repo_backup(struct repo *r, const struct backup_opts *o,
		struct snapshot *s, struct cairn_err *err);

struct restore_opts {
	const char *target;          /* folder; created if missing */
	const char *const *includes; /* snapshot paths to restore (all: none) */
	size_t nincludes;
	const char *const *excludes; /* snapshot paths not restored (nor below) */
	size_t nexcludes;
	int overwrite;               /* replace existing files in target */
	/* Delta: the target already holds a version of the snapshot; files
	 * whose content already matches are left alone (checked by chunking
	 * and hashing them), others rewritten, and entries the snapshot does
	 * not have are removed. */
	int delta;
	/* Folders restored elsewhere: the contents of snapshot folder
	 * map_from[i] ("pg_tblspc/16384") go to map_to[i], and a symlink to
	 * map_to[i] takes the folder's place. */
	const char *const *map_from;
	const char *const *map_to;
	size_t nmaps;
	/* When running as root: restored entries get the snapshot's owners,
	 * or, with set_owner, owner_uid/owner_gid. */
	int set_owner;
	unsigned owner_uid, owner_gid;
	fs_warn_fn warn;
	fs_progress_fn progress;
	void *arg;
};

struct restore_stats {
	uint64_t files, dirs, bytes;
	uint64_t damaged; /* files not restored because a blob failed checks */
	uint64_t unchanged; /* delta: files already right, not written */
	uint64_t removed;   /* delta: entries removed */
};

/* Restores.  A file whose data fails verification is not written (the
 * partial file is removed), reported through warn, and counted; the others
 * are restored, and the call then returns CAIRN_ECORRUPT. */
int repo_restore(struct repo *r, const struct snapshot *s,
		 const struct restore_opts *o, struct restore_stats *st,
		 struct cairn_err *err);

/* Finds the node at `path` ("a/b/c", leading '/' ignored; "" or "/" is the
 * root, returned as a folder node named "/").  nd is owned by the caller
 * (node_free). */
int repo_lookup_path(struct repo *r, const struct snapshot *s,
		     const char *path, struct node *nd, struct cairn_err *err);

/* Calls cb for every node at and below `path`, parents before children,
 * with the node's full path in the snapshot.  File nodes come with their
 * blob lists filled in (none if a list blob is damaged or missing). */
typedef int (*fs_walk_fn)(void *arg, const char *path, const struct node *nd);
int repo_walk(struct repo *r, const struct snapshot *s, const char *path,
	      fs_walk_fn cb, void *arg, struct cairn_err *err);

/* Writes the file at `path` to fd, verified blob by blob. */
int repo_cat(struct repo *r, const struct snapshot *s, const char *path,
	     int fd, struct cairn_err *err);

#endif
