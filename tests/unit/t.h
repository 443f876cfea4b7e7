/*
 * t.h — the unit tests' tiny harness.  CHECK records a failure and goes on;
 * t_done() prints "N passed, N failed" (the closing line CI reads) and
 * returns the exit status.
 */
#ifndef CAIRN_T_H
#define CAIRN_T_H

#include <stdio.h>

static int t_pass, t_fail;

#define CHECK(cond)                                                        \
	do {                                                               \
		if (cond) {                                                \
			t_pass++;                                          \
		} else {                                                   \
			t_fail++;                                          \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                          \
		}                                                          \
	} while (0)

#define CHECK_RC(expr, want)                                               \
	do {                                                               \
		int t_rc_ = (expr);                                        \
		if (t_rc_ == (want)) {                                     \
			t_pass++;                                          \
		} else {                                                   \
			t_fail++;                                          \
			fprintf(stderr, "%s:%d: %s returned %d, want %d\n",    \
				__FILE__, __LINE__, #expr, t_rc_, (want)); \
		}                                                          \
	} while (0)

static inline int t_done(void)
{
	printf("%d passed, %d failed\n", t_pass, t_fail);
	return t_fail ? 1 : 0;
}

#endif
