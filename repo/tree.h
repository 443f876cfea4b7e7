/*
 * tree.h — tree blobs: one directory's entries, the nodes of the Merkle
 * tree that a snapshot's root id commits to.
 *
 *   tree := u8 version(1|2), uvar count, count × node    (sorted by name,
 *                                                        bytewise, unique)
 *   node := u8 type, u8 flags, str16 name, u32 mode, u32 uid, u32 gid,
 *           u64 mtime_ns, u64 size, u64 inode, body, str16 ext
 *   body := file:    version 1: refs
 *                    version 2: u8 0, refs  |  u8 1, listref
 *           dir:     id[32] of the subtree blob
 *           symlink: str16 target
 *   refs := uvar nblobs, nblobs × (id[32], uvar raw_len)
 *   listref := id[32] of a list blob, uvar nblobs, uvar npatch,
 *              npatch × (uvar gap, id[32], uvar raw_len)
 *   list blob (stored as BLOB_TREE) := u8 0xC1, refs
 *
 * List form: a file with many blobs keeps its blob list in a list blob of
 * its own, so an unchanged file costs its tree 32 bytes, and a file whose
 * list differs from an earlier one in a few places stores only those
 * places (the patch: entry index = previous index + 1 + gap) over that
 * list.  A tree is written as version 2 only when a node uses list form.
 *
 * `ext` holds optional fields as (u8 tag, u8 len, len bytes)*; a reader
 * skips tags it does not know.  Tag 1: ctime_ns (u64), the inode change
 * time, used to decide whether a file may be reused unread.  A tree blob is
 * stored as a blob of type BLOB_TREE; its id is the keyed hash of these
 * bytes, so a parent that names it commits to all below.
 *
 * Memory: a struct tree owns its nodes and their strings and blob lists.
 */
#ifndef CAIRN_TREE_H
#define CAIRN_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "repo/buf.h"
#include "repo/error.h"

enum node_type {
	NODE_FILE = 1,
	NODE_DIR = 2,
	NODE_SYMLINK = 3,
};

enum node_flags {
	NODE_INCOMPLETE = 1, /* the file could not be read whole during backup */
};

struct blob_ref {
	uint8_t id[32];
	uint32_t len;
};

/* One patched entry of a list-form file: entry idx is ref. */
struct blob_patch {
	uint64_t idx;
	struct blob_ref ref;
};

/* Files with fewer blobs are stored inline. */
#define TREE_LIST_MIN 64

struct node {
	char *name;
	uint8_t type;
	uint8_t flags;
	uint32_t mode; /* permission bits (07777) */
	uint32_t uid, gid;
	int64_t mtime_ns;
	int64_t ctime_ns;        /* 0: unknown */
	uint64_t size;
	uint64_t inode;
	uint8_t subtree[32];     /* NODE_DIR */
	char *target;            /* NODE_SYMLINK */
	struct blob_ref *blobs;  /* NODE_FILE */
	size_t nblobs, blobs_cap;
	/* NODE_FILE in list form: the blob list is list blob list_id with the
	 * patch applied, list_count entries.  Decoded nodes have no blobs
	 * until repo_node_blobs fills them in (node_release_blobs drops them
	 * again); a writer fills blobs and lets repo_node_store_list choose
	 * the form. */
	uint8_t has_list;
	uint8_t list_id[32];
	uint64_t list_count;
	struct blob_patch *patch;
	size_t npatch;
};

struct tree {
	struct node *nodes;
	size_t n, cap;
};

#define TREE_INIT {NULL, 0, 0}

/* Appends a node, taking ownership of its name/target/blobs (the caller's
 * struct is zeroed). */
int tree_add(struct tree *t, struct node *nd);
/* Appends one blob reference to a file node. */
int node_add_blob(struct node *nd, const uint8_t id[32], uint32_t len);
void node_free(struct node *nd);
/* Copies src's blob list and list form (if any) into dst (a file node
 * with none yet).  0 or CAIRN_ENOMEM. */
int node_copy_blobs(struct node *dst, const struct node *src);
/* A list-form node: frees its filled-in blobs (the form stays). */
void node_release_blobs(struct node *nd);
/* List blobs: encodes v; decodes into *v (malloc'd, *n entries). */
int list_encode(const struct blob_ref *v, size_t n, struct buf *out);
int list_decode(const void *p, size_t n, struct blob_ref **v, size_t *nv,
		struct cairn_err *err);
/* Fills nd->blobs from `base` (its list blob, decoded) and nd's patch.
 * CAIRN_ECORRUPT if they do not fit (an index out of range, an entry
 * neither in base nor patched, lengths not adding up to nd->size). */
int node_apply_list(struct node *nd, const struct blob_ref *base, size_t nbase,
		    struct cairn_err *err);

/* Sorts by name and encodes; CAIRN_EUSAGE if two nodes share a name. */
int tree_encode(struct tree *t, struct buf *out, struct cairn_err *err);
/* Parses a tree blob into t (empty on entry); CAIRN_ECORRUPT on any
 * malformed or unsorted input. */
int tree_decode(const void *p, size_t n, struct tree *t, struct cairn_err *err);
/* Binary search in a decoded (sorted) tree; NULL if absent. */
const struct node *tree_find(const struct tree *t, const char *name);
void tree_free(struct tree *t);

#endif
