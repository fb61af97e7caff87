/* SPDX-License-Identifier: MIT */
/*
 * The arena image: the ABI shared by every process that maps an arena.
 *
 *   [0, data_off)                   header (struct arena_hdr), zero padded
 *   [data_off, data_off+data_size)  item bytes, each item aligned to `align`
 *   [table_off, table_off+count*16) table: per item {offset from data_off, len}
 *
 * Everything is little-endian fixed-width; no pointers.  The table follows the
 * data so that items can be appended without knowing their number in advance.
 * A reader trusts nothing here: arena_validate() checks every field against
 * the real file size before any item is read.
 */
#ifndef ARENA_FORMAT_H
#define ARENA_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define ARENA_MAGIC      0x414e455241424c4cull /* "LLBARENA" little-endian */
#define ARENA_FORMAT_VERSION 1u
#define ARENA_DATA_OFF   4096u   /* header page; items up to 4096-aligned */
#define ARENA_MAX_ALIGN  4096u
#define ARENA_HDR_F_COMPLETE 1u  /* table and header written by arena_seal */
#define ARENA_HDR_F_KNOWN    ARENA_HDR_F_COMPLETE

struct arena_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t hdr_size;      /* sizeof(struct arena_hdr) of the writer */
	uint32_t flags;         /* ARENA_HDR_F_* */
	uint32_t align;         /* item alignment, power of two */
	uint64_t count;         /* number of items */
	uint64_t table_off;     /* from the start of the file */
	uint64_t data_off;      /* from the start of the file */
	uint64_t data_size;     /* bytes of the data area */
	uint64_t file_size;     /* whole image */
	uint64_t reserved[8];   /* zero */
};
_Static_assert(sizeof(struct arena_hdr) == 128, "arena header is 128 bytes");
_Static_assert(offsetof(struct arena_hdr, count) == 24, "arena header layout");
_Static_assert(offsetof(struct arena_hdr, file_size) == 56, "arena header layout");

struct arena_entry {
	uint64_t off;           /* from data_off */
	uint64_t len;
};
_Static_assert(sizeof(struct arena_entry) == 16, "table entry is 16 bytes");

#endif
