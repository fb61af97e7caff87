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

/* 1 when [p, p+len) lies inside the item data of a sealed arena. */
ARENA_HIDDEN int arena_contains(const struct arena *a, const void *p, uint64_t len);

#endif
