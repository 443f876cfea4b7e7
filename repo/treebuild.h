/*
 * treebuild.h — a snapshot's trees from entries that arrive in any order,
 * as they come out of an archive (a tar stream), rather than from walking
 * a folder.
 *
 * The builder holds every entry in memory (O(number of entries); file data
 * is not kept: each file's bytes are cut by the repository's chunker and
 * stored as they arrive, exactly as repo/backup.c stores a file read from
 * disk, so the same bytes give the same blobs either way).  tb_finish then
 * encodes and stores every tree bottom-up and returns the root tree id.
 *
 * Paths are relative to the root ("base/1/1234"); empty components, "."
 * components and a trailing '/' are ignored, ".." is refused.  "" (or
 * ".") names the root itself, which has no node of its own: a directory
 * entry for it is accepted and ignored.
 *
 * Rules:
 *   - Parents may arrive after their children, or never: a missing folder
 *     is created implicitly with mode 0700, the current time, and the
 *     owner of the entry that needed it.  When the folder's own entry
 *     arrives later it supplies the metadata and keeps the children.
 *   - Duplicates: the later entry wins.  A folder replaced by a file or a
 *     link loses what was below it; an entry placed below a file or a link
 *     turns that path into an implicit folder.
 *   - Only one file is open at a time: tb_file_begin … tb_file_write* …
 *     tb_file_end.  Adding another entry while a file is open is a usage
 *     error.
 *
 * Errors: every function returns 0 or a negative code of repo/error.h
 * (CAIRN_EUSAGE for a bad path or call order, CAIRN_ENOMEM, or what
 * repo_put_blob / repo_put_tree return) and fills err.  Failure is
 * sticky: after any error, every later call returns the same code.
 *
 * Blobs are durable only after repo_flush, as usual.  Not thread-safe:
 * one builder per thread, and no other writer of the same repository
 * handle meanwhile.
 */
#ifndef CAIRN_TREEBUILD_H
#define CAIRN_TREEBUILD_H

#include <stddef.h>
#include <stdint.h>

#include "repo/repo.h"

struct tree_builder;

/* An entry's metadata.  mode: permission bits (masked to 07777). */
struct tb_meta {
	uint32_t mode;
	uint32_t uid, gid;
	int64_t mtime_ns;
};

/* Counters: before tb_finish, only `bytes`, as data arrives; tb_finish
 * recounts all four from the trees it stores (a replaced file's bytes no
 * longer count). */
struct tb_stats {
	uint64_t files;   /* regular files */
	uint64_t dirs;    /* folders, the root included */
	uint64_t blobs;   /* data blob references, repeats counted */
	uint64_t bytes;   /* bytes of file data */
};

/* A new builder storing into r (borrowed: r must outlive the builder).
 * NULL when out of memory. */
struct tree_builder *tb_new(struct repo *r);
/* NULL-safe. */
void tb_free(struct tree_builder *tb);

int tb_add_dir(struct tree_builder *tb, const char *path,
	       const struct tb_meta *meta, struct cairn_err *err);
int tb_add_symlink(struct tree_builder *tb, const char *path,
		   const char *target, const struct tb_meta *meta,
		   struct cairn_err *err);

/* A regular file: begin, its bytes in any pieces, end. */
int tb_file_begin(struct tree_builder *tb, const char *path,
		  const struct tb_meta *meta, struct cairn_err *err);
int tb_file_write(struct tree_builder *tb, const void *data, size_t len,
		  struct cairn_err *err);
int tb_file_end(struct tree_builder *tb, struct cairn_err *err);
/* The open file is cut every `size` bytes (at most the chunker's max) at
 * fixed offsets instead of by the chunker, as backup_opts.fixed_chunk.
 * Call right after tb_file_begin.  0, or CAIRN_EUSAGE with no file open. */
int tb_file_fixed_chunk(struct tree_builder *tb, uint32_t size);

/* Stores every tree, children before parents, and writes the root tree's
 * id.  A file still open is a usage error.  After it (success or not) the
 * builder accepts nothing more but tb_stats and tb_free. */
int tb_finish(struct tree_builder *tb, uint8_t root_id[32],
	      struct cairn_err *err);

/* Counters so far; valid until tb_free. */
const struct tb_stats *tb_get_stats(const struct tree_builder *tb);

#endif
