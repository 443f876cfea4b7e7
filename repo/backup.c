/*
 * backup.c — paths, a folder, or a stream into a snapshot.
 *
 * Folders are walked depth first with their entries sorted by name; each
 * regular file is read once, cut by the chunker (or, when the fixed_chunk
 * hook says so, at fixed offsets), and every chunk stored as a blob
 * (repo_put_blob dedups).  A folder's tree blob is stored after its
 * entries, so the snapshot's root id is computed bottom-up (Merkle).  The
 * snapshot object is written last, by repo_snapshot_write, after every pack
 * and index it needs is durable.
 *
 * Reuse from a parent snapshot ("incremental in time"): a file whose size,
 * mtime, ctime and inode equal the parent's record, and whose recorded
 * mtime was more than REUSE_MARGIN older than the parent backup's start,
 * keeps the parent's blob list without being read.  Any write to a file
 * after the parent read it changes its mtime and ctime to a time later
 * than that start (ctime cannot be set by a user), so the file is read
 * again.  When the clock now reads earlier than the parent's start (the
 * clock was set back), nothing is reused.
 *
 * Memory: one read buffer (READ_BUF bytes) plus the trees of the folders on
 * the current path (and their parent trees); independent of data size.
 */
#include "repo/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (8u * 1024 * 1024)
#define REUSE_MARGIN_NS (2LL * 1000000000)

struct bk {
	struct repo *r;
	const struct backup_opts *o;
	struct snapshot *s;
	uint8_t *buf;
	size_t bufsize; /* READ_BUF, or twice the largest chunk if more */
	struct blob_in *bin; /* the pieces of the buffer, one batch */
	uint8_t (*bids)[32];
	size_t bcap;
	int reuse; /* parent given and the clock did not go back */
	struct cairn_err *err;
};

static void bk_warn(struct bk *b, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void bk_warn(struct bk *b, const char *path, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	b->s->stats.errors++;
	if (b->s->nerrors < 1000)
		strlist_add(&b->s->errors, &b->s->nerrors, path);
	if (b->o->warn)
		b->o->warn(b->o->arg, msg);
}

static void progress(struct bk *b)
{
	if (b->o->progress)
		b->o->progress(b->o->arg, b->s->stats.logical_bytes, b->s->stats.files);
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static void fill_meta(struct node *nd, const struct stat *st)
{
	nd->mode = st->st_mode & 07777;
	nd->uid = st->st_uid;
	nd->gid = st->st_gid;
	nd->mtime_ns = ts_ns(&st->st_mtim);
	nd->ctime_ns = ts_ns(&st->st_ctim);
	nd->inode = st->st_ino;
}

/* Reads fd to the end, chunking; appends blob refs to nd.  Returns 0, a
 * repository error (fatal), or 1 when reading failed (a warning). */
static int store_stream(struct bk *b, int fd, struct node *nd, const char *path,
			const char *rel)
{
	const struct fastcdc *cdc = repo_get_chunker(b->r);
	size_t fixed = b->o->fixed_chunk ? b->o->fixed_chunk(b->o->hook_arg, rel) : 0;
	if (fixed > cdc->max)
		fixed = cdc->max;
	size_t have = 0;
	uint64_t off_read = 0;
	int eof = 0;
	while (!eof || have > 0) {
		while (!eof && have < b->bufsize) {
			ssize_t got = read(fd, b->buf + have, b->bufsize - have);
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0) {
				bk_warn(b, path, "cannot read %s: %s (recorded as incomplete)", path,
					strerror(errno));
				nd->flags |= NODE_INCOMPLETE;
				eof = 1;
				break;
			}
			if (got == 0) {
				eof = 1;
				break;
			}
			if (b->o->on_data) {
				int rc = b->o->on_data(b->o->hook_arg, rel, off_read, b->buf + have,
						       (size_t)got, b->err);
				if (rc)
					return rc;
			}
			off_read += (uint64_t)got;
			have += (size_t)got;
			b->s->stats.logical_bytes += (uint64_t)got;
		}
		/* Cut what the buffer holds, then store the pieces as one batch
		 * (hashed and sealed on every core). */
		size_t off = 0, nb = 0;
		while (off < have) {
			size_t n;
			if (fixed)
				n = have - off >= fixed ? fixed : eof ? have - off : 0;
			else
				n = fastcdc_cut(cdc, b->buf + off, have - off, eof);
			if (n == 0)
				break;
			if (nb == b->bcap) {
				size_t ncap = b->bcap ? 2 * b->bcap : 256;
				struct blob_in *v = realloc(b->bin, ncap * sizeof(*v));
				uint8_t(*ids)[32] = v ? realloc(b->bids, ncap * 32) : NULL;
				if (v)
					b->bin = v;
				if (!ids)
					return cairn_err_set(b->err, CAIRN_ENOMEM, "out of memory");
				b->bids = ids;
				b->bcap = ncap;
			}
			b->bin[nb].p = b->buf + off;
			b->bin[nb++].n = n;
			off += n;
		}
		int rc = repo_put_blobs(b->r, BLOB_DATA, b->bin, nb, b->bids, b->err);
		if (rc)
			return rc;
		for (size_t i = 0; i < nb; i++) {
			if (node_add_blob(nd, b->bids[i], (uint32_t)b->bin[i].n))
				return cairn_err_set(b->err, CAIRN_ENOMEM, "out of memory");
			b->s->stats.blobs++;
			nd->size += b->bin[i].n;
		}
		memmove(b->buf, b->buf + off, have - off);
		have -= off;
		progress(b);
	}
	return (nd->flags & NODE_INCOMPLETE) ? 1 : 0;
}

/* The parent's record of a file may stand for it when nothing about the
 * file has changed since the parent read it; see the top of this file. */
static int reusable(struct bk *b, const struct node *p, const struct node *nd,
		    const struct stat *st)
{
	if (!b->reuse || !p || p->type != NODE_FILE || (p->flags & NODE_INCOMPLETE))
		return 0;
	if (p->size != (uint64_t)st->st_size || p->mtime_ns != nd->mtime_ns ||
	    p->inode != nd->inode || !p->ctime_ns || p->ctime_ns != nd->ctime_ns)
		return 0;
	if (p->mtime_ns >= b->o->parent->time_ns - REUSE_MARGIN_NS ||
	    p->ctime_ns >= b->o->parent->time_ns - REUSE_MARGIN_NS)
		return 0; /* changed too close to when the parent read it */
	/* Every blob (and the list blob of a list-form file) must still be
	 * indexed in a pack that exists (it is, unless the repository was
	 * damaged): otherwise read the file.  The parent's tree is ours, so
	 * its node may have its blob list filled in. */
	struct cairn_err le;
	if (p->has_list && (repo_has_blob(b->r, BLOB_TREE, p->list_id, &le) != 1 ||
			    repo_node_blobs(b->r, (struct node *)p, &le) != 0))
		return 0;
	for (size_t i = 0; i < p->nblobs; i++) {
		struct cairn_err e;
		if (repo_has_blob(b->r, BLOB_DATA, p->blobs[i].id, &e) != 1)
			return 0;
	}
	return 1;
}

static int save_path(struct bk *b, const char *path, const char *rel, const char *name,
		     const struct node *pnode, struct node *nd, int *skip);

/* The parent's node a new blob list may be patched over: a file of the
 * parent snapshot (reuse on), whatever its content. */
static const struct node *reuse_base(const struct bk *b, const struct node *p)
{
	return b->reuse && p && p->type == NODE_FILE ? p : NULL;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int join(char *out, size_t n, const char *dir, const char *name)
{
	if (!*dir)
		return snprintf(out, n, "%s", name) >= (int)n ? -1 : 0;
	return snprintf(out, n, "%s/%s", strcmp(dir, "/") ? dir : "", name) >= (int)n ? -1 : 0;
}

/* Moves the entries named in o->last to the end, in that order (the tree
 * is sorted when encoded, so only the reading order changes). */
static void move_last(struct bk *b, const char *rel, char **names, size_t n)
{
	for (size_t k = 0; k < b->o->nlast; k++) {
		const char *want = b->o->last[k];
		size_t rl = strlen(rel);
		if (rl && (strncmp(want, rel, rl) || want[rl] != '/'))
			continue;
		const char *base = want + (rl ? rl + 1 : 0);
		if (strchr(base, '/'))
			continue;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(names[i], base)) {
				char *m = names[i];
				memmove(names + i, names + i + 1, (n - i - 1) * sizeof(*names));
				names[n - 1] = m;
				break;
			}
	}
}

/* Stores folder `path` into nd->subtree.  `ptree`: the parent snapshot's
 * tree of the same folder, or NULL.  `empty`: store no entries. */
static int save_dir(struct bk *b, const char *path, const char *rel, const uint8_t *ptree,
		    int empty, struct node *nd)
{
	struct tree t = TREE_INIT, pt = TREE_INIT;
	char **names = NULL;
	size_t n = 0;
	int rc = 0;
	if (ptree && b->reuse) {
		struct cairn_err e;
		if (repo_get_tree(b->r, ptree, &pt, &e) != 0)
			tree_free(&pt); /* unreadable parent: just read everything */
	}
	DIR *d = empty ? NULL : opendir(path);
	if (!d && !empty) {
		bk_warn(b, path, "cannot open folder %s: %s (recorded as empty)", path, strerror(errno));
		nd->flags |= NODE_INCOMPLETE;
	}
	if (d) {
		struct dirent *de;
		errno = 0;
		while ((de = readdir(d)) != NULL) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (strlist_add(&names, &n, de->d_name)) {
				closedir(d);
				rc = cairn_err_set(b->err, CAIRN_ENOMEM, "out of memory");
				goto out;
			}
		}
		if (errno) {
			bk_warn(b, path, "cannot list folder %s: %s", path, strerror(errno));
			nd->flags |= NODE_INCOMPLETE;
		}
		closedir(d);
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
	move_last(b, rel, names, n);
	for (size_t i = 0; i < n; i++) {
		char child[PATH_MAX], crel[PATH_MAX];
		struct node c;
		int skip = 0;
		if (join(child, sizeof(child), path, names[i]) ||
		    join(crel, sizeof(crel), rel, names[i])) {
			bk_warn(b, path, "path too long below %s: skipped", path);
			continue;
		}
		memset(&c, 0, sizeof(c));
		rc = save_path(b, child, crel, names[i], pt.n ? tree_find(&pt, names[i]) : NULL, &c,
			       &skip);
		if (rc) {
			node_free(&c);
			goto out;
		}
		if (skip) {
			node_free(&c);
			continue;
		}
		if (tree_add(&t, &c)) {
			node_free(&c);
			rc = cairn_err_set(b->err, CAIRN_ENOMEM, "out of memory");
			goto out;
		}
	}
	if (b->o->dir_done) {
		rc = b->o->dir_done(b->o->hook_arg, rel, &t, b->s, b->err);
		if (rc)
			goto out;
	}
	rc = repo_put_tree(b->r, &t, nd->subtree, b->err);
	b->s->stats.dirs++;
out:
	strlist_free(names, n);
	tree_free(&t);
	tree_free(&pt);
	return rc;
}

/* Fills nd for `path`.  *skip when it is not to be stored (vanished,
 * unreadable, filtered out, or a kind of file we do not store). */
static int save_path(struct bk *b, const char *path, const char *rel, const char *name,
		     const struct node *pnode, struct node *nd, int *skip)
{
	struct stat st;
	int rc = 0, verdict = BK_KEEP;
	*skip = 0;
	nd->name = strdup(name);
	if (!nd->name)
		return cairn_err_set(b->err, CAIRN_ENOMEM, "out of memory");
	if (lstat(path, &st) != 0) {
		bk_warn(b, path, "cannot stat %s: %s (not in the snapshot)", path, strerror(errno));
		*skip = 1;
		return 0;
	}
	if (b->o->filter)
		verdict = b->o->filter(b->o->hook_arg, rel, &st);
	if (verdict == BK_SKIP) {
		*skip = 1;
		return 0;
	}
	if ((verdict == BK_FOLLOW || verdict == BK_EMPTY) && S_ISLNK(st.st_mode) &&
	    stat(path, &st) != 0) {
		bk_warn(b, path, "cannot follow %s: %s (not in the snapshot)", path, strerror(errno));
		*skip = 1;
		return 0;
	}
	fill_meta(nd, &st);
	if (S_ISDIR(st.st_mode)) {
		nd->type = NODE_DIR;
		return save_dir(b, path, rel, pnode && pnode->type == NODE_DIR ? pnode->subtree : NULL,
				verdict == BK_EMPTY, nd);
	}
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n < 0) {
			bk_warn(b, path, "cannot read link %s: %s (not in the snapshot)", path,
				strerror(errno));
			*skip = 1;
			return 0;
		}
		target[n] = '\0';
		nd->type = NODE_SYMLINK;
		nd->target = strdup(target);
		if (!nd->target)
			return cairn_err_set(b->err, CAIRN_ENOMEM, "out of memory");
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		/* Sockets, FIFOs and devices carry no data to back up. */
		*skip = 1;
		return 0;
	}
	nd->type = NODE_FILE;
	b->s->stats.files++;
	if (reusable(b, pnode, nd, &st)) {
		if (node_copy_blobs(nd, pnode))
			return cairn_err_set(b->err, CAIRN_ENOMEM, "out of memory");
		nd->size = pnode->size;
		b->s->stats.blobs += pnode->nblobs;
		b->s->stats.reused_bytes += pnode->size;
		b->s->stats.logical_bytes += pnode->size;
		node_release_blobs(nd);
		node_release_blobs((struct node *)pnode);
		return 0;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		b->s->stats.files--;
		bk_warn(b, path, "cannot open %s: %s (not in the snapshot)", path, strerror(errno));
		*skip = 1;
		return 0;
	}
	rc = store_stream(b, fd, nd, path, rel);
	close(fd);
	if (rc < 0)
		return rc;
	/* A long blob list goes to a list blob, or a patch over the parent's
	 * (tree.h); the tree then holds only that. */
	rc = repo_node_store_list(b->r, nd, reuse_base(b, pnode), b->err);
	node_release_blobs(nd);
	return rc;
}

/* The paths given, made absolute and sorted, form a tree of components;
 * folders on the way (e.g. "var" and "lib" for /var/lib/x) get the
 * metadata of the real folders. */
struct vnode {
	char *name;
	int leaf;
	struct vnode *kids;
	size_t n;
};

static void vnode_free(struct vnode *v)
{
	for (size_t i = 0; i < v->n; i++)
		vnode_free(&v->kids[i]);
	free(v->kids);
	free(v->name);
}

static int vnode_insert(struct vnode *v, char *rest)
{
	while (*rest == '/')
		rest++;
	if (!*rest || v->leaf) {
		v->leaf = 1; /* a path given covers all below it */
		return 0;
	}
	char *slash = strchr(rest, '/');
	size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
	for (size_t i = 0; i < v->n; i++)
		if (strlen(v->kids[i].name) == len && !strncmp(v->kids[i].name, rest, len))
			return vnode_insert(&v->kids[i], rest + len);
	struct vnode *k = realloc(v->kids, (v->n + 1) * sizeof(*k));
	if (!k)
		return CAIRN_ENOMEM;
	v->kids = k;
	memset(&k[v->n], 0, sizeof(*k));
	k[v->n].name = strndup(rest, len);
	if (!k[v->n].name)
		return CAIRN_ENOMEM;
	v->n++;
	return vnode_insert(&k[v->n - 1], rest + len);
}

static int save_vnode(struct bk *b, struct vnode *v, const char *path, const char *rel,
		      const uint8_t *ptree, struct node *nd)
{
	struct tree t = TREE_INIT, pt = TREE_INIT;
	struct stat st;
	int rc = 0;
	if (lstat(path, &st) == 0)
		fill_meta(nd, &st);
	else
		nd->mode = 0755;
	nd->type = NODE_DIR;
	if (ptree && b->reuse) {
		struct cairn_err e;
		if (repo_get_tree(b->r, ptree, &pt, &e) != 0)
			tree_free(&pt);
	}
	for (size_t i = 0; i < v->n; i++) {
		char child[PATH_MAX], crel[PATH_MAX];
		struct node c;
		int skip = 0;
		join(child, sizeof(child), path, v->kids[i].name);
		join(crel, sizeof(crel), rel, v->kids[i].name);
		const struct node *pn = pt.n ? tree_find(&pt, v->kids[i].name) : NULL;
		memset(&c, 0, sizeof(c));
		if (v->kids[i].leaf) {
			rc = save_path(b, child, crel, v->kids[i].name, pn, &c, &skip);
		} else {
			c.name = strdup(v->kids[i].name);
			rc = c.name ? save_vnode(b, &v->kids[i], child, crel,
						 pn && pn->type == NODE_DIR ? pn->subtree : NULL, &c)
				    : cairn_err_set(b->err, CAIRN_ENOMEM, "out of memory");
		}
		if (!rc && !skip && tree_add(&t, &c))
			rc = cairn_err_set(b->err, CAIRN_ENOMEM, "out of memory");
		node_free(&c);
		if (rc)
			goto out;
	}
	rc = repo_put_tree(b->r, &t, nd->subtree, b->err);
	b->s->stats.dirs++;
out:
	tree_free(&t);
	tree_free(&pt);
	return rc;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts_ns(&ts);
}

static int fill_identity(struct snapshot *s, const struct backup_opts *o)
{
	char host[256];
	if (o->host) {
		snprintf(host, sizeof(host), "%s", o->host);
	} else if (gethostname(host, sizeof(host)) != 0) {
		snprintf(host, sizeof(host), "unknown");
	}
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
	return 0;
}

static int backup_stdin(struct bk *b, struct cairn_err *err)
{
	const struct backup_opts *o = b->o;
	struct snapshot *s = b->s;
	struct tree t = TREE_INIT;
	struct node f;
	int rc;
	memset(&f, 0, sizeof(f));
	const char *base = strrchr(o->stdin_name, '/');
	base = base ? base + 1 : o->stdin_name;
	f.name = strdup(base);
	f.type = NODE_FILE;
	f.mode = 0644;
	f.uid = geteuid();
	f.gid = getegid();
	f.mtime_ns = s->time_ns;
	if (!f.name || !*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		node_free(&f);
		return cairn_err_set(err, CAIRN_EUSAGE, "--stdin-name must name a file");
	}
	rc = store_stream(b, o->stdin_fd, &f, "standard input", base);
	if (rc == 1) {
		/* A backup of a stream that failed midway is worthless. */
		node_free(&f);
		return cairn_err_set(err, CAIRN_EIO, "reading standard input failed: no snapshot written");
	}
	s->stats.files = 1;
	if (!rc && tree_add(&t, &f))
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	node_free(&f);
	rc = rc ? rc : repo_put_tree(b->r, &t, s->root, err);
	tree_free(&t);
	if (rc)
		return rc;
	s->flags |= SNAP_STDIN;
	if (strlist_add(&s->paths, &s->npaths, o->stdin_name))
		return cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
	return 0;
}

int repo_backup(struct repo *r, const struct backup_opts *o, struct snapshot *s,
		struct cairn_err *err)
{
	struct bk b = {r, o, s, NULL, READ_BUF, NULL, NULL, 0, 0, err};
	struct vnode root;
	struct node rootnd;
	int rc;
	memset(s, 0, sizeof(*s));
	memset(&root, 0, sizeof(root));
	memset(&rootnd, 0, sizeof(rootnd));
	s->time_ns = now_ns();
	if (o->parent) {
		b.reuse = s->time_ns >= o->parent->time_ns;
		if (!b.reuse && o->warn)
			o->warn(o->arg, "the clock reads earlier than the parent snapshot's time: "
					"reading every file instead of reusing unchanged ones");
		if (b.reuse) {
			s->has_parent = 1;
			hex_decode(s->parent, 32, o->parent->name);
		}
	}
	/* The chunker must always be offered a whole chunk's worth of bytes. */
	if (b.bufsize < 2 * (size_t)repo_get_chunker(r)->max)
		b.bufsize = 2 * (size_t)repo_get_chunker(r)->max;
	b.buf = malloc(b.bufsize);
	if (!b.buf || fill_identity(s, o)) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	if (o->stdin_name) {
		rc = backup_stdin(&b, err);
	} else if (o->root_dir) {
		struct stat st;
		char abs[PATH_MAX];
		if (!realpath(o->root_dir, abs) || stat(abs, &st) != 0 || !S_ISDIR(st.st_mode)) {
			rc = errno ? cairn_err_errno(err, errno, "cannot back up %s", o->root_dir)
				   : cairn_err_set(err, CAIRN_EUSAGE, "%s is not a folder", o->root_dir);
			goto out;
		}
		if (strlist_add(&s->paths, &s->npaths, abs)) {
			rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
			goto out;
		}
		fill_meta(&rootnd, &st);
		rootnd.type = NODE_DIR;
		rc = save_dir(&b, abs, "", o->parent ? o->parent->root : NULL, 0, &rootnd);
		memcpy(s->root, rootnd.subtree, 32);
	} else {
		if (o->npaths == 0) {
			rc = cairn_err_set(err, CAIRN_EUSAGE, "nothing to back up: give paths or --stdin");
			goto out;
		}
		for (size_t i = 0; i < o->npaths; i++) {
			char abs[PATH_MAX];
			struct stat st;
			if (!realpath(o->paths[i], abs) || lstat(abs, &st) != 0) {
				rc = cairn_err_errno(err, errno, "cannot back up %s", o->paths[i]);
				goto out;
			}
			if (vnode_insert(&root, abs) || strlist_add(&s->paths, &s->npaths, abs)) {
				rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
				goto out;
			}
		}
		const uint8_t *ptree = o->parent ? o->parent->root : NULL;
		if (root.leaf) {
			/* "/" itself was given. */
			struct stat st;
			rc = lstat("/", &st) ? cairn_err_errno(err, errno, "cannot stat /") : 0;
			if (!rc) {
				fill_meta(&rootnd, &st);
				rc = save_dir(&b, "/", "", ptree, 0, &rootnd);
			}
		} else {
			rc = save_vnode(&b, &root, "/", "", ptree, &rootnd);
		}
		memcpy(s->root, rootnd.subtree, 32);
	}
	if (rc)
		goto out;
	/* Flush first so that the stats count every blob of this backup (the
	 * handle's write stats start at zero when the repository is opened). */
	const struct repo_write_stats *ws = repo_get_write_stats(r);
	rc = repo_flush(r, err);
	if (rc)
		goto out;
	s->stats.new_bytes = ws->new_bytes;
	s->stats.stored_bytes = ws->stored_bytes;
	s->stats.new_blobs = ws->new_blobs;
	if (s->stats.errors)
		s->flags |= SNAP_INCOMPLETE;
	s->end_time_ns = now_ns();
	rc = repo_snapshot_write(r, s, err);
	if (!rc && s->stats.errors && !o->ignore_unreadable)
		rc = cairn_err_set(err, CAIRN_EPARTIAL,
				   "snapshot %.8s written, but %llu path(s) could not be read",
				   s->name, (unsigned long long)s->stats.errors);
out:
	node_free(&rootnd);
	vnode_free(&root);
	free(b.buf);
	free(b.bin);
	free(b.bids);
	return rc;
}
