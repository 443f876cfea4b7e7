/*
 * remote.h — base backups over PostgreSQL's replication protocol, with no
 * access to the database host's files.
 *
 * One physical replication connection (the role needs the REPLICATION
 * attribute, or to be a superuser, and pg_hba.conf a `replication` line
 * for this client): IDENTIFY_SYSTEM, SHOW of a few settings, then the
 * BASE_BACKUP command of PostgreSQL 15 and later.  The server streams one
 * tar archive per tablespace and one for PGDATA (with backup_label and
 * tablespace_map added, pg_wal empty, and what a base backup skips left
 * out); each entry goes through repo/treebuild.h into the repository as
 * it arrives.  The snapshot has the shape of a local backup (pgbackup.h):
 * the root tree is PGDATA, each tablespace a folder pg_tblspc/<oid>/, and
 * backup_label and (when not empty) tablespace_map are files at the root;
 * standby.signal, recovery.signal and pg_wal/archive_status are left out
 * as there.  Entries have the server's owners and modes, and mtimes in
 * whole seconds (tar's); the snapshot's PATH is "host:port" of the server,
 * or "remote:<system identifier>" over a Unix socket.  Restore treats both
 * kinds the same.
 *
 * Page checksums are verified by the server while it reads (PostgreSQL's
 * own base backup does it); its warnings about failures are counted into
 * res->checksum_errors and passed to o->warn.  res->pages_checked stays 0
 * (the server does not say how many it checked).  Nothing is reused from
 * an earlier snapshot: every byte crosses the network, but only new
 * chunks are stored.
 *
 * Like the local backup, it then waits (bounded by o->archive_timeout)
 * until the backup's last WAL segment has reached the repository through
 * archive-push, and only then writes the snapshot.
 *
 * Uses only the repo/ API for storage.  Not thread-safe.
 */
#ifndef CAIRN_PG_REMOTE_H
#define CAIRN_PG_REMOTE_H

#include "pg/pgbackup.h"

/* Takes a base backup over a replication connection and writes its
 * snapshot.  Of o: conninfo (NULL or "": libpq's PG* environment;
 * "replication=true" is added), cluster, host, tags, ignore_checksum_errors,
 * archive_timeout, warn, progress and arg are used; pgdata must be NULL
 * and full_read is implied.
 *
 * Returns 0; or CAIRN_EPARTIAL when the snapshot was written but the
 * server reported pages that failed their checksums (and
 * ignore_checksum_errors is off); or an error, with no snapshot written:
 * CAIRN_EIO (cannot connect, the server failed the backup, the WAL did not
 * reach the repository in time), CAIRN_EUSAGE (a server older than 15, a
 * bad cluster name, pgdata given), CAIRN_ECORRUPT (the server sent
 * something that is not a well-formed tar stream or protocol message), or
 * a repository error. */
int pg_remote_backup_run(struct repo *r, const struct pg_backup_opts *o,
			 struct snapshot *s, struct pg_backup_result *res,
			 struct cairn_err *err);

#endif
