/* par.c — see par.h. */
#include "repo/par.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define PAR_MAX 64

struct job {
	par_fn fn;
	void *arg;
	size_t n;
	atomic_size_t next;
};

struct worker {
	struct job *job;
	unsigned id;
};

static void run(struct job *j, unsigned id)
{
	for (;;) {
		size_t i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
		if (i >= j->n)
			return;
		j->fn(j->arg, i, id);
	}
}

static void *thread_main(void *p)
{
	struct worker *w = p;
	run(w->job, w->id);
	return NULL;
}

void par_for(unsigned nworkers, size_t n, par_fn fn, void *arg)
{
	par_for_with(nworkers, n, fn, arg, NULL, NULL);
}

void par_for_with(unsigned nworkers, size_t n, par_fn fn, void *arg,
		  void (*first)(void *), void *first_arg)
{
	struct job j = {fn, arg, n, 0};
	pthread_t th[PAR_MAX];
	struct worker w[PAR_MAX];
	unsigned started = 0;
	if (nworkers > PAR_MAX)
		nworkers = PAR_MAX;
	if (nworkers > n + (first != NULL))
		nworkers = (unsigned)n + (first != NULL);
	for (unsigned k = 1; k < nworkers; k++) {
		w[started].job = &j;
		w[started].id = k;
		if (pthread_create(&th[started], NULL, thread_main, &w[started]) != 0)
			break;
		started++;
	}
	if (first)
		first(first_arg);
	run(&j, 0);
	for (unsigned k = 0; k < started; k++)
		pthread_join(th[k], NULL);
}

unsigned par_workers(void)
{
	const char *e = getenv("CAIRN_THREADS");
	if (e && *e) {
		char *end;
		unsigned long v = strtoul(e, &end, 10);
		if (!*end && v >= 1 && v <= PAR_MAX)
			return (unsigned)v;
	}
	long c = sysconf(_SC_NPROCESSORS_ONLN);
	if (c < 1)
		return 1;
	return c > PAR_MAX_DEFAULT ? PAR_MAX_DEFAULT : (unsigned)c;
}
