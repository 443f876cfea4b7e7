/*
 * par.h — data parallelism for the CPU-heavy stages (hashing, compressing,
 * sealing and opening blobs): run a function over the indexes of a batch
 * on several threads, the caller being one of them.
 *
 * Threads are started per batch and joined before par_for returns, so no
 * thread outlives a call and callers need no locking beyond what their
 * function touches: item i's work must touch only item i's data and the
 * per-worker state named by `worker` (0 is the calling thread, 1 .. n-1
 * the others).
 */
#ifndef CAIRN_PAR_H
#define CAIRN_PAR_H

#include <stddef.h>

typedef void (*par_fn)(void *arg, size_t i, unsigned worker);

/* Calls fn(arg, i, worker) once for every i in [0, n), on up to nworkers
 * threads; items are handed out one at a time, so uneven items balance.
 * If threads cannot be started, the caller does the rest alone. */
void par_for(unsigned nworkers, size_t n, par_fn fn, void *arg);

/* The same, but the calling thread first runs first(first_arg) while the
 * other threads start on the items, then joins them: a pipeline stage
 * (say, writing out the previous batch) beside this batch's work. */
void par_for_with(unsigned nworkers, size_t n, par_fn fn, void *arg,
		  void (*first)(void *), void *first_arg);

/* Workers to use: the CAIRN_THREADS environment variable (1 .. 64) if set,
 * else the online CPUs, at most PAR_MAX_DEFAULT. */
#define PAR_MAX_DEFAULT 8
unsigned par_workers(void);

#endif
