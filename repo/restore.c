/*
 * restore.c — snapshot trees back to files: restore, ls, cat.
 *
 * Every blob is verified on the way out (repo_get_blob: AEAD tag, then the
 * keyed hash against the id the tree names).  A file whose data fails is
 * removed, never left with wrong bytes, and restore goes on with the rest.
 * Folder modes and times are set after their contents are written.
 */
#include "repo/fs.h"
#include "repo/io.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *skip_slashes(const char *p)
{
	while (*p == '/')
		p++;
	return p;
}

int repo_lookup_path(struct repo *r, const struct snapshot *s, const char *path,
		     struct node *nd, struct cairn_err *err)
{
	struct tree t = TREE_INIT;
	uint8_t cur[32];
	const char *p = skip_slashes(path);
	memset(nd, 0, sizeof(*nd));
	memcpy(cur, s->root, 32);
	if (!*p) {
		nd->type = NODE_DIR;
		nd->mode = 0755;
		memcpy(nd->subtree, s->root, 32);
		nd->name = strdup("/");
		return nd->name ? 0 : cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	}
	while (*p) {
		char comp[NAME_MAX + 1];
		size_t len = strcspn(p, "/");
		if (len > NAME_MAX)
			return cairn_err_set(err, CAIRN_ENOTFOUND, "no %s in snapshot %.8s", path, s->name);
		memcpy(comp, p, len);
		comp[len] = '\0';
		int rc = repo_get_tree(r, cur, &t, err);
		if (rc)
			return rc;
		const struct node *c = tree_find(&t, comp);
		p = skip_slashes(p + len);
		if (!c || (*p && c->type != NODE_DIR)) {
			tree_free(&t);
			return cairn_err_set(err, CAIRN_ENOTFOUND, "no %s in snapshot %.8s", path, s->name);
		}
		if (!*p) {
			/* Move the node out of the tree before freeing it. */
			struct node *m = (struct node *)c;
			*nd = *m;
			memset(m, 0, sizeof(*m));
		} else {
			memcpy(cur, c->subtree, 32);
		}
		tree_free(&t);
	}
	return 0;
}

static int walk(struct repo *r, const uint8_t tree_id[32], char *path, size_t plen,
		fs_walk_fn cb, void *arg, struct cairn_err *err)
{
	struct tree t = TREE_INIT;
	int rc = repo_get_tree(r, tree_id, &t, err);
	for (size_t i = 0; i < t.n && !rc; i++) {
		struct node *c = &t.nodes[i];
		size_t nl = strlen(c->name);
		if (plen + 1 + nl >= PATH_MAX)
			continue;
		path[plen] = '/';
		memcpy(path + plen + 1, c->name, nl + 1);
		struct cairn_err le;
		int lrc = repo_node_blobs(r, c, &le);
		if (lrc && lrc != CAIRN_ECORRUPT && lrc != CAIRN_ENOTFOUND) {
			*err = le;
			rc = lrc;
			break;
		}
		rc = cb(arg, path, c);
		node_release_blobs(c);
		if (!rc && c->type == NODE_DIR)
			rc = walk(r, c->subtree, path, plen + 1 + nl, cb, arg, err);
		path[plen] = '\0';
	}
	tree_free(&t);
	return rc;
}

int repo_walk(struct repo *r, const struct snapshot *s, const char *path,
	      fs_walk_fn cb, void *arg, struct cairn_err *err)
{
	struct node nd;
	char buf[PATH_MAX];
	int rc = repo_lookup_path(r, s, path, &nd, err);
	if (rc)
		return rc;
	const char *p = skip_slashes(path);
	snprintf(buf, sizeof(buf), "/%s", p);
	size_t len = strlen(buf);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	struct cairn_err le;
	rc = repo_node_blobs(r, &nd, &le);
	if (rc == CAIRN_ECORRUPT || rc == CAIRN_ENOTFOUND)
		rc = 0;
	else if (rc)
		*err = le;
	rc = rc ? rc : cb(arg, buf, &nd);
	if (!rc && nd.type == NODE_DIR)
		rc = walk(r, nd.subtree, buf, len == 1 ? 0 : len, cb, arg, err);
	node_free(&nd);
	return rc;
}

struct wsink {
	int fd;
	int sparse;       /* fd is a new regular file: skip zeros, leave holes */
	uint64_t off;     /* bytes of the file so far */
	uint64_t *bytes;
	struct cairn_err *err;
};

static int all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static int write_sink(void *arg, size_t i, const uint8_t *p, size_t n)
{
	struct wsink *w = arg;
	(void)i;
	if (w->sparse && all_zero(p, n)) {
		if (lseek(w->fd, (off_t)n, SEEK_CUR) < 0)
			return cairn_err_errno(w->err, errno, "seek failed");
	} else if (io_write_all(w->fd, p, n)) {
		return cairn_err_errno(w->err, errno, "write failed");
	}
	w->off += n;
	if (w->bytes)
		*w->bytes += n;
	return 0;
}

/* Writes a file node's data to fd (sparse: a new regular file, where
 * all-zero blobs become holes).  Returns 0, CAIRN_ECORRUPT or
 * CAIRN_ENOTFOUND for damage (err says which blob and pack), CAIRN_EIO
 * for a write failure. */
static int write_node_data(struct repo *r, struct node *nd, int fd, int sparse,
			   uint64_t *bytes, struct cairn_err *err)
{
	struct wsink w = {fd, sparse, 0, bytes, err};
	int rc = repo_node_blobs(r, nd, err);
	rc = rc ? rc : repo_get_blobs(r, BLOB_DATA, nd->blobs, nd->nblobs, write_sink, &w, err);
	/* A file that ends in a hole gets its length. */
	if (!rc && sparse && ftruncate(fd, (off_t)w.off) != 0)
		rc = cairn_err_errno(err, errno, "write failed");
	return rc;
}

int repo_cat(struct repo *r, const struct snapshot *s, const char *path, int fd,
	     struct cairn_err *err)
{
	struct node nd;
	int rc = repo_lookup_path(r, s, path, &nd, err);
	if (rc)
		return rc;
	if (nd.type != NODE_FILE)
		rc = cairn_err_set(err, CAIRN_EUSAGE, "%s is not a file", path);
	else
		rc = write_node_data(r, &nd, fd, 0, NULL, err);
	if (rc == CAIRN_ENOTFOUND)
		rc = CAIRN_ECORRUPT; /* the tree names a blob nobody has */
	node_free(&nd);
	return rc;
}

struct rs {
	struct repo *r;
	const struct restore_opts *o;
	struct restore_stats *st;
	struct cairn_err *err;
	int is_root;
	uint64_t matched; /* nodes an --include named */
};

static void rs_warn(struct rs *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rs_warn(struct rs *x, const char *fmt, ...)
{
	char msg[1536];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (x->o->warn)
		x->o->warn(x->o->arg, msg);
}

/* 1 if snapshot path `p` is to be restored: no includes, or p is an
 * include, below one, or above one (a folder on the way). */
static int wanted(const struct restore_opts *o, const char *p, int *below)
{
	*below = o->nincludes == 0;
	if (*below)
		return 1;
	int want = 0;
	for (size_t i = 0; i < o->nincludes; i++) {
		const char *inc = skip_slashes(o->includes[i]);
		size_t il = strlen(inc), pl = strlen(p);
		while (il > 0 && inc[il - 1] == '/')
			il--;
		if (il == 0 || (pl >= il && !strncmp(p, inc, il) && (p[il] == '\0' || p[il] == '/'))) {
			*below = 1;
			return 1;
		}
		if (il > pl && !strncmp(p, inc, pl) && inc[pl] == '/')
			want = 1;
	}
	return want;
}

/* 1 if snapshot path `p` is an exclude or below one. */
static int excluded(const struct restore_opts *o, const char *p)
{
	for (size_t i = 0; i < o->nexcludes; i++) {
		const char *ex = skip_slashes(o->excludes[i]);
		size_t el = strlen(ex);
		while (el > 0 && ex[el - 1] == '/')
			el--;
		if (el && !strncmp(p, ex, el) && (p[el] == '\0' || p[el] == '/'))
			return 1;
	}
	return 0;
}

static void set_meta(struct rs *x, const char *path, const struct node *nd)
{
	struct timespec ts[2];
	if (x->is_root) {
		uid_t uid = x->o->set_owner ? (uid_t)x->o->owner_uid : nd->uid;
		gid_t gid = x->o->set_owner ? (gid_t)x->o->owner_gid : nd->gid;
		if (lchown(path, uid, gid) != 0)
			rs_warn(x, "cannot set owner of %s: %s", path, strerror(errno));
	}
	if (nd->type != NODE_SYMLINK && chmod(path, nd->mode) != 0)
		rs_warn(x, "cannot set mode of %s: %s", path, strerror(errno));
	ts[0].tv_sec = ts[1].tv_sec = nd->mtime_ns / 1000000000;
	ts[0].tv_nsec = ts[1].tv_nsec = nd->mtime_ns % 1000000000;
	utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

/* Removes a path and, for a folder, everything below it (links are
 * removed, never followed). */
static int remove_all(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d)) != NULL && !rc) {
		char child[PATH_MAX];
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (snprintf(child, sizeof(child), "%s/%s", path, de->d_name) >= (int)sizeof(child)) {
			rc = -1;
			break;
		}
		rc = remove_all(child);
	}
	closedir(d);
	return rc ? rc : rmdir(path);
}

/* Delta: 1 if the file at dst already holds exactly the node's data: same
 * size, and each piece of it, cut where the snapshot's blobs were cut (by
 * the chunker or at fixed offsets), has the blob's id. */
static int same_content(struct rs *x, const char *dst, const struct node *nd)
{
	struct stat st;
	if (lstat(dst, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != nd->size)
		return 0;
	int fd = open(dst, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	size_t cap = 0;
	for (size_t i = 0; i < nd->nblobs; i++)
		if (nd->blobs[i].len > cap)
			cap = nd->blobs[i].len;
	uint8_t *buf = malloc(cap ? cap : 1);
	int same = buf != NULL;
	for (size_t i = 0; same && i < nd->nblobs; i++) {
		size_t want = nd->blobs[i].len;
		same = io_read_full(fd, buf, want) == (ssize_t)want;
		if (same) {
			uint8_t id[32];
			blob_id(id, repo_get_keys(x->r), BLOB_DATA, buf, want);
			same = memcmp(nd->blobs[i].id, id, 32) == 0;
		}
	}
	free(buf);
	close(fd);
	return same;
}

static int restore_tree(struct rs *x, const uint8_t tree_id[32], const char *rel,
			const char *dst, int below);

static const char *mapped(const struct restore_opts *o, const char *rel)
{
	for (size_t i = 0; i < o->nmaps; i++)
		if (!strcmp(o->map_from[i], rel))
			return o->map_to[i];
	return NULL;
}

static int restore_node(struct rs *x, struct node *nd, const char *rel,
			const char *dst, int below)
{
	int rc = 0;
	if (nd->type == NODE_DIR) {
		const char *to = mapped(x->o, rel);
		struct stat st;
		if (to) {
			/* Restored elsewhere, with a link in its place. */
			char cur[PATH_MAX];
			ssize_t n = readlink(dst, cur, sizeof(cur) - 1);
			if (n < 0 || (size_t)n != strlen(to) || strncmp(cur, to, (size_t)n)) {
				if (x->o->delta && remove_all(dst) != 0)
					return cairn_err_errno(x->err, errno, "cannot remove %s", dst);
				if (symlink(to, dst) != 0)
					return cairn_err_errno(x->err, errno, "cannot create link %s", dst);
			}
			dst = to;
		}
		/* Never write through a link or over a file: only a real folder
		 * is reused. */
		if (lstat(dst, &st) == 0 && !S_ISDIR(st.st_mode)) {
			if (!x->o->delta && !x->o->overwrite)
				return cairn_err_set(x->err, CAIRN_EUSAGE,
						     "%s exists and is not a folder (use --force to replace it)",
						     dst);
			if (remove_all(dst) != 0)
				return cairn_err_errno(x->err, errno, "cannot remove %s", dst);
		}
		if (mkdir(dst, 0700) != 0 && errno != EEXIST)
			return cairn_err_errno(x->err, errno, "cannot create folder %s", dst);
		rc = restore_tree(x, nd->subtree, rel, dst, below);
		if (!rc) {
			set_meta(x, dst, nd);
			x->st->dirs++;
		}
		return rc;
	}
	if (!below)
		return 0;
	struct cairn_err le;
	if (x->o->delta && nd->type == NODE_FILE && repo_node_blobs(x->r, nd, &le) == 0 &&
	    same_content(x, dst, nd)) {
		node_release_blobs(nd);
		set_meta(x, dst, nd);
		x->st->unchanged++;
		x->st->files++;
		return 0;
	}
	if (x->o->overwrite || x->o->delta) {
		struct stat st;
		if (lstat(dst, &st) == 0 && (S_ISDIR(st.st_mode) ? remove_all(dst) : unlink(dst)) != 0)
			return cairn_err_errno(x->err, errno, "cannot replace %s", dst);
	}
	if (nd->type == NODE_SYMLINK) {
		if (symlink(nd->target, dst) != 0)
			return cairn_err_errno(x->err, errno, "cannot create link %s", dst);
		set_meta(x, dst, nd);
		return 0;
	}
	int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return cairn_err_errno(x->err, errno, "cannot create %s", dst);
	struct cairn_err e;
	rc = write_node_data(x->r, nd, fd, 1, &x->st->bytes, &e);
	node_release_blobs(nd);
	if (!rc && close(fd) != 0)
		rc = cairn_err_errno(&e, errno, "cannot write %s", dst);
	else if (rc)
		close(fd);
	if (rc == CAIRN_ECORRUPT || rc == CAIRN_ENOTFOUND) {
		/* Damage: no wrong or partial bytes are left behind. */
		unlink(dst);
		x->st->damaged++;
		rs_warn(x, "not restored: /%s: %s", rel, e.msg);
		return 0;
	}
	if (rc) {
		unlink(dst);
		*x->err = e;
		return rc;
	}
	if (nd->flags & NODE_INCOMPLETE)
		rs_warn(x, "/%s was incomplete when it was backed up", rel);
	set_meta(x, dst, nd);
	x->st->files++;
	if (x->o->progress)
		x->o->progress(x->o->arg, x->st->bytes, x->st->files);
	return 0;
}

/* Delta: removes what dst holds that tree t does not. */
static int remove_extra(struct rs *x, const struct tree *t, const char *dst)
{
	DIR *d = opendir(dst);
	if (!d)
		return 0;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d)) != NULL && !rc) {
		char child[PATH_MAX];
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || tree_find(t, de->d_name))
			continue;
		snprintf(child, sizeof(child), "%s/%s", dst, de->d_name);
		if (remove_all(child) != 0)
			rc = cairn_err_errno(x->err, errno, "cannot remove %s", child);
		else
			x->st->removed++;
	}
	closedir(d);
	return rc;
}

static int restore_tree(struct rs *x, const uint8_t tree_id[32], const char *rel,
			const char *dst, int below)
{
	struct tree t = TREE_INIT;
	struct cairn_err e;
	int rc = repo_get_tree(x->r, tree_id, &t, &e);
	if (rc == CAIRN_ECORRUPT || rc == CAIRN_ENOTFOUND) {
		x->st->damaged++;
		rs_warn(x, "not restored: folder /%s: %s", rel, e.msg);
		return 0;
	}
	if (rc) {
		*x->err = e;
		return rc;
	}
	if (x->o->delta && below)
		rc = remove_extra(x, &t, dst);
	for (size_t i = 0; i < t.n && !rc; i++) {
		struct node *c = &t.nodes[i];
		char crel[PATH_MAX], cdst[PATH_MAX];
		int cbelow = below;
		if (snprintf(crel, sizeof(crel), "%s%s%s", rel, *rel ? "/" : "", c->name) >=
			    (int)sizeof(crel) ||
		    snprintf(cdst, sizeof(cdst), "%s/%s", dst, c->name) >= (int)sizeof(cdst)) {
			rc = cairn_err_set(x->err, CAIRN_EUSAGE, "path too long: %s", crel);
			break;
		}
		if ((!below && !wanted(x->o, crel, &cbelow)) || excluded(x->o, crel))
			continue;
		if (!below && cbelow)
			x->matched++;
		rc = restore_node(x, c, crel, cdst, cbelow);
	}
	tree_free(&t);
	return rc;
}

int repo_restore(struct repo *r, const struct snapshot *s, const struct restore_opts *o,
		 struct restore_stats *st, struct cairn_err *err)
{
	struct rs x = {r, o, st, err, geteuid() == 0, 0};
	memset(st, 0, sizeof(*st));
	if (mkdir(o->target, 0700) != 0 && errno != EEXIST)
		return cairn_err_errno(err, errno, "cannot create target folder %s", o->target);
	int below = 0;
	wanted(o, "", &below);
	int rc = restore_tree(&x, s->root, "", o->target, below);
	if (!rc && o->nincludes && !below && x.matched == 0)
		rc = cairn_err_set(err, CAIRN_ENOTFOUND, "no path of snapshot %.8s matches --include",
				   s->name);
	if (!rc && st->damaged)
		rc = cairn_err_set(err, CAIRN_ECORRUPT,
				   "%llu file(s) or folder(s) could not be restored: their data fails verification",
				   (unsigned long long)st->damaged);
	return rc;
}
