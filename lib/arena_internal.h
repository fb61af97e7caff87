/* SPDX-License-Identifier: MIT */
/* The arena handle, shared by the files of the library (never exported). */
#ifndef ARENA_INTERNAL_H
#define ARENA_INTERNAL_H

#include <stdint.h>
#include "arena.h"
#include "arena_format.h"
#include "sys.h"

struct arena {
	int fd;
	int sealed;             /* 1: read-only mapping of a complete image */
	uint32_t flags;         /* ARENA_CREATE_* while building */
	uint32_t align;
	uint8_t *map;
	uint64_t map_len;
	/* Read side, valid after seal/open: */
	const struct arena_entry *table;
	uint64_t count;
	const uint8_t *data;
	uint64_t data_size;
	uint64_t size;          /* image size */
	/* Build side: */
	struct arena_entry *btable;
	uint64_t bcap;
	uint64_t file_len;      /* current memfd size while building */
};

/* Validates an image of `size` bytes at map.  Returns 0 or -EBADMSG/-EPROTONOSUPPORT. */
ARENA_HIDDEN int arena_validate(const uint8_t *map, uint64_t size);

/* Item i of an arena with a mapping, i < count: arena_get() without its
 * argument checks, for the worker's hot path.  0 or -EBADMSG. */
static inline int arena_item(const struct arena *a, uint64_t i, const void **data,
			     size_t *len)
{
	const struct arena_entry *t = a->sealed || a->table ? a->table : a->btable;
	uint64_t off = t[i].off, ln = t[i].len;

	/* Checked on every read: an arena opened unsealed may change. */
	if (off > a->data_size || ln > a->data_size - off)
		return -EBADMSG;
	*data = ln ? a->data + off : NULL;
	*len = ln;
	return 0;
}

/* 1 when [p, p+len) lies inside the item data of a sealed arena. */
ARENA_HIDDEN int arena_contains(const struct arena *a, const void *p, uint64_t len);

#endif
