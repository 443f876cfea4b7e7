/*
 * backup.c — paths or a stream into a snapshot.
 *
 * Folders are walked depth first with their entries sorted by name; each
 * regular file is read once, cut by the chunker, and every chunk stored as
 * a blob (repo_put_blob dedups).  A folder's tree blob is stored after its
 * entries, so the snapshot's root id is computed bottom-up (Merkle).  The
 * snapshot object is written last, by repo_snapshot_write, after every pack
 * and index it needs is durable.
 *
 * Memory: one read buffer (READ_BUF bytes) plus the trees of the folders on
 * the current path; independent of the amount of data.
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

struct bk {
	struct repo *r;
	const struct backup_opts *o;
	struct snapshot *s;
	uint8_t *buf;
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

static void fill_meta(struct node *nd, const struct stat *st)
{
	nd->mode = st->st_mode & 07777;
	nd->uid = st->st_uid;
	nd->gid = st->st_gid;
	nd->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	nd->inode = st->st_ino;
}

/* Reads fd to the end, chunking; appends blob refs to nd.  Returns 0, a
 * repository error (fatal), or 1 when reading failed (a warning). */
static int store_stream(struct bk *b, int fd, struct node *nd, const char *path)
{
	const struct fastcdc *cdc = repo_get_chunker(b->r);
	size_t have = 0;
	int eof = 0;
	while (!eof || have > 0) {
		while (!eof && have < READ_BUF) {
			ssize_t got = read(fd, b->buf + have, READ_BUF - have);
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
			have += (size_t)got;
			b->s->stats.logical_bytes += (uint64_t)got;
		}
		size_t off = 0;
		while (off < have) {
			size_t n = fastcdc_cut(cdc, b->buf + off, have - off, eof);
			if (n == 0)
				break;
			uint8_t id[32];
			int rc = repo_put_blob(b->r, BLOB_DATA, b->buf + off, n, id, NULL, b->err);
			if (rc)
				return rc;
			if (node_add_blob(nd, id, (uint32_t)n))
				return cairn_err_set(b->err, CAIRN_ENOMEM, "out of memory");
			b->s->stats.blobs++;
			nd->size += n;
			off += n;
		}
		memmove(b->buf, b->buf + off, have - off);
		have -= off;
		progress(b);
	}
	return (nd->flags & NODE_INCOMPLETE) ? 1 : 0;
}

static int save_path(struct bk *b, const char *path, const char *name, struct node *nd,
		     int *skip);

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int save_dir(struct bk *b, const char *path, struct node *nd)
{
	struct tree t = TREE_INIT;
	char **names = NULL;
	size_t n = 0;
	int rc = 0;
	DIR *d = opendir(path);
	if (!d) {
		bk_warn(b, path, "cannot open folder %s: %s (recorded as empty)", path, strerror(errno));
		nd->flags |= NODE_INCOMPLETE;
		goto store;
	}
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
	if (n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		char child[PATH_MAX];
		struct node c;
		int skip = 0;
		if (snprintf(child, sizeof(child), "%s/%s", strcmp(path, "/") ? path : "",
			     names[i]) >= (int)sizeof(child)) {
			bk_warn(b, path, "path too long below %s: skipped", path);
			continue;
		}
		memset(&c, 0, sizeof(c));
		rc = save_path(b, child, names[i], &c, &skip);
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
store:
	rc = repo_put_tree(b->r, &t, nd->subtree, b->err);
	b->s->stats.dirs++;
out:
	strlist_free(names, n);
	tree_free(&t);
	return rc;
}

/* Fills nd for `path`.  *skip when it is not to be stored (vanished,
 * unreadable, or a kind of file we do not store). */
static int save_path(struct bk *b, const char *path, const char *name, struct node *nd,
		     int *skip)
{
	struct stat st;
	int rc = 0;
	*skip = 0;
	nd->name = strdup(name);
	if (!nd->name)
		return cairn_err_set(b->err, CAIRN_ENOMEM, "out of memory");
	if (lstat(path, &st) != 0) {
		bk_warn(b, path, "cannot stat %s: %s (not in the snapshot)", path, strerror(errno));
		*skip = 1;
		return 0;
	}
	fill_meta(nd, &st);
	if (S_ISDIR(st.st_mode)) {
		nd->type = NODE_DIR;
		return save_dir(b, path, nd);
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
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		bk_warn(b, path, "cannot open %s: %s (not in the snapshot)", path, strerror(errno));
		*skip = 1;
		return 0;
	}
	rc = store_stream(b, fd, nd, path);
	close(fd);
	b->s->stats.files++;
	return rc < 0 ? rc : 0;
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

static int save_vnode(struct bk *b, struct vnode *v, const char *path, struct node *nd)
{
	struct tree t = TREE_INIT;
	struct stat st;
	int rc = 0;
	if (lstat(path, &st) == 0)
		fill_meta(nd, &st);
	else
		nd->mode = 0755;
	nd->type = NODE_DIR;
	for (size_t i = 0; i < v->n; i++) {
		char child[PATH_MAX];
		struct node c;
		int skip = 0;
		snprintf(child, sizeof(child), "%s/%s", strcmp(path, "/") ? path : "", v->kids[i].name);
		memset(&c, 0, sizeof(c));
		if (v->kids[i].leaf) {
			rc = save_path(b, child, v->kids[i].name, &c, &skip);
		} else {
			c.name = strdup(v->kids[i].name);
			rc = c.name ? save_vnode(b, &v->kids[i], child, &c)
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
	return rc;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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

int repo_backup(struct repo *r, const struct backup_opts *o, struct snapshot *s,
		struct cairn_err *err)
{
	struct bk b = {r, o, s, NULL, err};
	struct vnode root;
	struct node rootnd;
	int rc;
	memset(s, 0, sizeof(*s));
	memset(&root, 0, sizeof(root));
	memset(&rootnd, 0, sizeof(rootnd));
	s->time_ns = now_ns();
	b.buf = malloc(READ_BUF);
	if (!b.buf || fill_identity(s, o)) {
		rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	if (o->stdin_name) {
		struct tree t = TREE_INIT;
		struct node f;
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
			rc = cairn_err_set(err, CAIRN_EUSAGE, "--stdin-name must name a file");
			goto out;
		}
		rc = store_stream(&b, o->stdin_fd, &f, "standard input");
		if (rc == 1) {
			/* A backup of a stream that failed midway is worthless. */
			node_free(&f);
			rc = cairn_err_set(err, CAIRN_EIO, "reading standard input failed: no snapshot written");
			goto out;
		}
		s->stats.files = 1;
		if (!rc && tree_add(&t, &f))
			rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
		node_free(&f);
		rc = rc ? rc : repo_put_tree(r, &t, s->root, err);
		tree_free(&t);
		if (rc)
			goto out;
		s->flags |= SNAP_STDIN;
		if (strlist_add(&s->paths, &s->npaths, o->stdin_name)) {
			rc = cairn_err_set(err, CAIRN_ENOMEM, "out of memory");
			goto out;
		}
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
		if (root.leaf) {
			/* "/" itself was given. */
			int skip = 0;
			rc = save_path(&b, "/", "/", &rootnd, &skip);
		} else {
			rc = save_vnode(&b, &root, "/", &rootnd);
		}
		if (rc)
			goto out;
		memcpy(s->root, rootnd.subtree, 32);
	}
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
	return rc;
}
