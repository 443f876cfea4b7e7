/*
 * idset.h — an in-memory hash map from 32-byte ids to a u64 value, for the
 * blobs of the running backup, the trees check has seen, damaged blobs...
 * Ids are uniformly random (hashes), so their first 8 bytes are the hash.
 * Open addressing, linear probing, no deletion (clear instead).
 * Not thread-safe.  Memory: 40 bytes a slot, load factor at most 1/2.
 */
#ifndef CAIRN_IDSET_H
#define CAIRN_IDSET_H

#include <stddef.h>
#include <stdint.h>

struct idset_slot {
	uint8_t id[32];
	uint64_t val; /* stored value + 1; 0 marks an empty slot */
};

struct idset {
	struct idset_slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t n;
};

#define IDSET_INIT {NULL, 0, 0}

/* Inserts or updates; 0 or CAIRN_ENOMEM.  val must be < UINT64_MAX. */
int idset_put(struct idset *s, const uint8_t id[32], uint64_t val);
/* 1 and *val (may be NULL) if present, else 0. */
int idset_get(const struct idset *s, const uint8_t id[32], uint64_t *val);
void idset_clear(struct idset *s); /* keeps memory */
void idset_free(struct idset *s);

#endif
