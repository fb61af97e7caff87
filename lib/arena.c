/* SPDX-License-Identifier: MIT */
/*
 * The arena: build a sequence of items in a memfd, seal it, and open sealed
 * images received from elsewhere with full validation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena_internal.h"

#define ARENA_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)
/* What a reader needs for the data to be immutable and never SIGBUS. */
#define ARENA_SEALS_NEEDED (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
#define GROW_MIN (1u << 20)
#define GROW_MAX_STEP (64ull << 20)
#define PAGE 4096u

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

const char *arena_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case -EBADMSG: return "corrupt arena or channel (a field is out of bounds)";
	case -EPROTONOSUPPORT: return "unsupported arena/channel format version";
	case -EPERM: return "not sealed (an fd without F_SEAL_SHRINK|GROW|WRITE, or the seals were refused)";
	case -ERANGE: return "item index out of range";
	case -EMSGSIZE: return "result does not fit in the worker's result area";
	case -EOWNERDEAD: return "task killed its worker too many times";
	case -ECANCELED: return "task cancelled by stop";
	case -EAGAIN: return "would block (queue full or empty)";
	case -ETIMEDOUT: return "timed out";
	case -EROFS: return "arena is sealed";
	case -EPIPE: return "pool is stopped";
	case -ENODATA: return "nothing in flight";
	default: return err < 0 && err != INT_MIN ? strerror(-err) : "unknown";
	}
}

int arena_create(struct arena **out, const struct arena_create_opts *opts)
{
	uint32_t align = opts && opts->align ? opts->align : 8;
	uint32_t flags = opts ? opts->flags : 0;
	struct arena *a;
	int r;

	if (!out || (flags & ~ARENA_CREATE_SPARSE) || align > ARENA_MAX_ALIGN ||
	    (align & (align - 1)))
		return -EINVAL;
	/* A field this library does not know is not silently ignored. */
	for (unsigned k = 0; opts && k < sizeof(opts->reserved) / sizeof(opts->reserved[0]); k++)
		if (opts->reserved[k])
			return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->fd = -1;
	a->flags = flags;
	a->align = align;
	r = sys_memfd_create(opts && opts->name ? opts->name : "arena",
			     MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (r < 0)
		goto fail;
	a->fd = r;
	a->file_len = GROW_MIN;
	r = (flags & ARENA_CREATE_SPARSE) ? sys_ftruncate(a->fd, a->file_len)
					  : sys_fallocate(a->fd, 0, a->file_len);
	if (r < 0)
		goto fail;
	r = sys_mmap((void **)&a->map, a->file_len, PROT_READ | PROT_WRITE,
		     MAP_SHARED, a->fd, 0);
	if (r < 0)
		goto fail;
	a->map_len = a->file_len;
	a->data = a->map + ARENA_DATA_OFF;
	*out = a;
	return 0;
fail:
	if (a->fd >= 0)
		sys_close(a->fd);
	free(a);
	return r;
}

/* Makes the memfd (and the mapping) at least `end` bytes long. */
static int grow_file(struct arena *a, uint64_t end)
{
	uint64_t len = a->file_len;
	void *m;
	int r;

	if (end <= len)
		return 0;
	while (len < end)
		len += len < GROW_MAX_STEP ? len : GROW_MAX_STEP;
	len = align_up(len, PAGE);
	/*
	 * Reserve the pages now (fallocate) so that a memory shortage is an
	 * error of this call and never a SIGBUS when the bytes are written.
	 */
	r = (a->flags & ARENA_CREATE_SPARSE) ? sys_ftruncate(a->fd, len)
					     : sys_fallocate(a->fd, a->file_len, len - a->file_len);
	if (r < 0)
		return r;
	m = mremap(a->map, a->map_len, len, MREMAP_MAYMOVE);
	if (m == MAP_FAILED)
		return SYS_ERR();
	a->map = m;
	a->map_len = len;
	a->file_len = len;
	a->data = a->map + ARENA_DATA_OFF;
	return 0;
}

static int table_reserve(struct arena *a, uint64_t n)
{
	uint64_t cap = a->bcap ? a->bcap : 1024;
	struct arena_entry *t;

	if (a->count + n <= a->bcap)
		return 0;
	while (cap < a->count + n)
		cap *= 2;
	if (cap > SIZE_MAX / sizeof(*t))
		return -ENOMEM;
	t = realloc(a->btable, cap * sizeof(*t));
	if (!t)
		return -ENOMEM;
	a->btable = t;
	a->bcap = cap;
	return 0;
}

/* 0 while items may be appended; -EROFS once sealed. */
static int check_building(const struct arena *a)
{
	if (!a)
		return -EINVAL;
	if (a->sealed)
		return -EROFS;
	if (!a->map)
		return -EINVAL; /* a failed arena_seal() left no mapping */
	return 0;
}

int arena_append_uninit(struct arena *a, size_t len, uint64_t *index, void **data)
{
	uint64_t off, end;
	int r;

	r = check_building(a);
	if (r < 0)
		return r;
	off = align_up(a->data_size, a->align);
	if (len > UINT64_MAX / 2 || off + len < off)
		return -EFBIG;
	end = ARENA_DATA_OFF + off + len;
	r = table_reserve(a, 1);
	if (r < 0)
		return r;
	r = grow_file(a, end);
	if (r < 0)
		return r;
	a->btable[a->count].off = off;
	a->btable[a->count].len = len;
	if (index)
		*index = a->count;
	if (data)
		*data = a->map + ARENA_DATA_OFF + off;
	a->count++;
	a->data_size = off + len;
	return 0;
}

/* Offset of p in the building mapping, or UINT64_MAX when outside it. */
static uint64_t map_offset(const struct arena *a, const void *p)
{
	uintptr_t q = (uintptr_t)p, m = (uintptr_t)a->map;

	return a->map && q >= m && q - m < a->map_len ? q - m : UINT64_MAX;
}

int arena_append(struct arena *a, const void *data, size_t len, uint64_t *index)
{
	uint64_t src;
	void *dst;
	int r;

	if (len && !data)
		return -EINVAL;
	/*
	 * The bytes may be the arena's own (an item copied with arena_get()
	 * while building): growing may move the mapping, so remember them as
	 * an offset.  Only the address is compared, never dereferenced.
	 */
	src = a && !a->sealed ? map_offset(a, data) : UINT64_MAX;
	r = arena_append_uninit(a, len, index, &dst);
	if (r == 0 && len)
		memmove(dst, src == UINT64_MAX ? data : a->map + src, len);
	return r;
}

int arena_append_many(struct arena *a, const struct iovec *items, size_t n,
		      uint64_t *first)
{
	uint64_t total = 0, start, old_len;
	uintptr_t old_map;
	size_t i;
	int r;

	if (!a || (n && !items))
		return -EINVAL;
	if (a->sealed)
		return -EROFS;
	if (!a->map)
		return -EINVAL; /* a failed arena_seal() left no mapping */
	for (i = 0; i < n; i++) {
		if (items[i].iov_len && !items[i].iov_base)
			return -EINVAL;
		if (items[i].iov_len > UINT64_MAX / 4 || total > UINT64_MAX / 4)
			return -EFBIG;
		total += align_up(items[i].iov_len, a->align);
	}
	old_map = (uintptr_t)a->map;
	old_len = a->map_len;
	/* One reservation for the batch, so a shortage fails before any item. */
	r = grow_file(a, ARENA_DATA_OFF + align_up(a->data_size, a->align) + total);
	if (r == 0)
		r = table_reserve(a, n);
	if (r < 0)
		return r;
	start = a->count;
	for (i = 0; i < n; i++) {
		const void *p = items[i].iov_base;
		uintptr_t q = (uintptr_t)p;

		/* Items taken from this arena moved with the mapping. */
		if (p && q >= old_map && q - old_map < old_len)
			p = a->map + (q - old_map);
		r = arena_append(a, p, items[i].iov_len, NULL);
		if (r < 0)
			return r;
	}
	if (first)
		*first = start;
	return 0;
}

int arena_seal(struct arena *a)
{
	struct arena_hdr hdr;
	uint64_t table_off, size;
	void *m;
	int r;

	r = check_building(a);
	if (r < 0)
		return r;
	table_off = align_up(ARENA_DATA_OFF + a->data_size, 8);
	size = table_off + a->count * sizeof(struct arena_entry);
	r = grow_file(a, size);
	if (r < 0)
		return r;
	if (a->count)
		memcpy(a->map + table_off, a->btable, a->count * sizeof(struct arena_entry));
	memset(&hdr, 0, sizeof(hdr));
	hdr.magic = ARENA_MAGIC;
	hdr.version = ARENA_FORMAT_VERSION;
	hdr.hdr_size = sizeof(hdr);
	hdr.flags = ARENA_HDR_F_COMPLETE;
	hdr.align = a->align;
	hdr.count = a->count;
	hdr.table_off = table_off;
	hdr.data_off = ARENA_DATA_OFF;
	hdr.data_size = a->data_size;
	hdr.file_size = size;
	memcpy(a->map, &hdr, sizeof(hdr));
	/* F_SEAL_WRITE fails while a writable shared mapping exists. */
	munmap(a->map, a->map_len);
	a->map = NULL;
	r = sys_ftruncate(a->fd, size);
	if (r == 0)
		r = sys_add_seals(a->fd, ARENA_SEALS);
	if (r == 0)
		r = sys_mmap(&m, size, PROT_READ, MAP_SHARED, a->fd, 0);
	if (r < 0) {
		/* The handle cannot be used any more; arena_close() still frees it. */
		a->map_len = 0;
		return r;
	}
	free(a->btable);
	a->btable = NULL;
	a->map = m;
	a->map_len = size;
	a->size = size;
	a->sealed = 1;
	a->table = (const struct arena_entry *)(a->map + table_off);
	a->data = a->map + ARENA_DATA_OFF;
	return 0;
}

/*
 * Checks the image and leaves the checked copy of its header in *out: the
 * caller must use that copy, never the mapping's header, which an unsealed
 * fd's owner may rewrite after the check.
 */
static int validate(const uint8_t *map, uint64_t size, struct arena_hdr *out)
{
	struct arena_hdr h;
	uint64_t i, table_bytes;
	const struct arena_entry *t;

	if (size < sizeof(h))
		return -EBADMSG;
	memcpy(&h, map, sizeof(h)); /* one copy; only the copy is checked and used */
	if (h.magic != ARENA_MAGIC)
		return -EBADMSG;
	if (h.version != ARENA_FORMAT_VERSION)
		return -EPROTONOSUPPORT;
	if (h.hdr_size != sizeof(h) || (h.flags & ~ARENA_HDR_F_KNOWN) ||
	    !(h.flags & ARENA_HDR_F_COMPLETE))
		return -EBADMSG;
	for (i = 0; i < 8; i++)
		if (h.reserved[i])
			return -EBADMSG;
	if (!h.align || h.align > ARENA_MAX_ALIGN || (h.align & (h.align - 1)))
		return -EBADMSG;
	if (h.file_size != size || h.data_off != ARENA_DATA_OFF || h.data_off > size ||
	    h.data_size > size - h.data_off)
		return -EBADMSG;
	if (h.table_off < h.data_off + h.data_size || h.table_off > size || (h.table_off & 7))
		return -EBADMSG;
	if (h.count > (size - h.table_off) / sizeof(struct arena_entry))
		return -EBADMSG;
	table_bytes = h.count * sizeof(struct arena_entry);
	if (h.table_off + table_bytes != size)
		return -EBADMSG;
	t = (const struct arena_entry *)(map + h.table_off);
	for (i = 0; i < h.count; i++) {
		uint64_t off = t[i].off, len = t[i].len;

		if (off > h.data_size || len > h.data_size - off)
			return -EBADMSG;
		/* Readers may rely on the alignment the header promises. */
		if (off & (h.align - 1))
			return -EBADMSG;
	}
	*out = h;
	return 0;
}

int arena_validate(const uint8_t *map, uint64_t size)
{
	struct arena_hdr h;

	return validate(map, size, &h);
}

static int open_mapped(struct arena *a, uint64_t size)
{
	struct arena_hdr h;
	void *m;
	int r;

	if (size < sizeof(struct arena_hdr))
		return -EBADMSG;
	r = sys_mmap(&m, size, PROT_READ, MAP_SHARED, a->fd, 0);
	if (r < 0)
		return r;
	a->map = m;
	a->map_len = size;
	r = validate(a->map, size, &h);
	if (r < 0)
		return r;
	/*
	 * Only the validated copy is used: the header in an unsealed fd may
	 * have changed since, and a count or table_off read again from it
	 * would put table reads outside the mapping.  The table entries
	 * themselves are checked again by every arena_get().
	 */
	a->count = h.count;
	a->align = h.align;
	a->data = a->map + h.data_off;
	a->data_size = h.data_size;
	a->table = (const struct arena_entry *)(a->map + h.table_off);
	a->size = size;
	return 0;
}

int arena_open_fd(struct arena **out, int fd, uint32_t flags)
{
	struct arena *a;
	uint64_t size;
	int reg, seals, r;

	if (!out || (flags & ~ARENA_OPEN_UNSEALED))
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->fd = sys_dup_cloexec(fd);
	if (a->fd < 0) {
		r = a->fd;
		free(a);
		return r;
	}
	r = sys_fstat_size(a->fd, &size, &reg);
	if (r == 0 && !reg)
		r = -EINVAL;
	if (r == 0) {
		seals = sys_get_seals(a->fd);
		if (seals == -EINVAL)   /* not a memfd (or a file without sealing) */
			seals = 0;
		if (seals < 0)
			r = seals;
		else if ((seals & ARENA_SEALS_NEEDED) != ARENA_SEALS_NEEDED &&
			 !(flags & ARENA_OPEN_UNSEALED))
			r = -EPERM;
		else
			a->sealed = (seals & ARENA_SEALS_NEEDED) == ARENA_SEALS_NEEDED;
	}
	if (r == 0)
		r = open_mapped(a, size);
	if (r < 0) {
		arena_close(a);
		return r;
	}
	*out = a;
	return 0;
}

int arena_save(const struct arena *a, const char *path)
{
	int fd, r;

	if (!a || !path)
		return -EINVAL;
	if (!a->sealed && !a->table)
		return -EINVAL;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return SYS_ERR();
	r = sys_write_all(fd, a->map, a->size);
	if (r == 0 && fsync(fd) < 0)
		r = SYS_ERR();
	if (sys_close(fd) < 0 && r == 0)
		r = -EIO;
	return r;
}

int arena_open_file(struct arena **out, const char *path)
{
	uint64_t size, done = 0;
	uint8_t *m = NULL;
	int fd, mfd = -1, reg, r;

	if (!out || !path)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return SYS_ERR();
	r = sys_fstat_size(fd, &size, &reg);
	if (r == 0 && !reg)
		r = -EINVAL;
	if (r == 0 && size < sizeof(struct arena_hdr))
		r = -EBADMSG;
	if (r == 0)
		r = mfd = sys_memfd_create("arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (r >= 0)
		r = sys_fallocate(mfd, 0, size);
	if (r == 0)
		r = sys_mmap((void **)&m, size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	/* Copy: a file can change under its readers, a sealed memfd cannot. */
	while (r == 0 && done < size) {
		ssize_t n = pread(fd, m + done, size - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = SYS_ERR();
		else if (n == 0)
			r = -EBADMSG; /* file shrank while being read */
		else
			done += (uint64_t)n;
	}
	if (m)
		munmap(m, size);
	if (r == 0)
		r = sys_add_seals(mfd, ARENA_SEALS);
	if (r == 0)
		r = arena_open_fd(out, mfd, 0);
	if (mfd >= 0)
		sys_close(mfd);
	sys_close(fd);
	return r;
}

uint64_t arena_count(const struct arena *a)
{
	return a ? a->count : 0;
}

int arena_get(const struct arena *a, uint64_t i, const void **data, size_t *len)
{
	if (!a || !data || !len)
		return -EINVAL;
	if (i >= a->count)
		return -ERANGE;
	if (!a->map)
		return -EINVAL; /* a failed arena_seal() left no mapping */
	return arena_item(a, i, data, len);
}

int arena_fd(const struct arena *a)
{
	return a ? a->fd : -EINVAL;
}

uint64_t arena_size(const struct arena *a)
{
	if (!a)
		return 0;
	return a->table ? a->size : ARENA_DATA_OFF + a->data_size;
}

int arena_is_sealed(const struct arena *a)
{
	return a && a->sealed;
}

const void *arena_base(const struct arena *a)
{
	return a ? a->map : NULL;
}

int arena_contains(const struct arena *a, const void *p, uint64_t len)
{
	uintptr_t s = (uintptr_t)a->data, q = (uintptr_t)p;

	if (!a->table || q < s)
		return 0;
	return q - s <= a->data_size && len <= a->data_size - (q - s);
}

int arena_info(const struct arena *a, struct arena_info *info)
{
	int seals;

	if (!a || !info)
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	info->count = a->count;
	info->size = arena_size(a);
	info->data_size = a->data_size;
	info->data_off = ARENA_DATA_OFF;
	info->align = a->align;
	info->version = ARENA_FORMAT_VERSION;
	if (a->table) {
		const struct arena_hdr *h = (const void *)a->map;

		/* where this handle reads the table (the validated offset) */
		info->table_off = (uint64_t)((const uint8_t *)a->table - a->map);
		info->flags = h->flags;
	}
	seals = sys_get_seals(a->fd);
	info->seals = seals < 0 ? 0 : (uint32_t)seals;
	return 0;
}

void arena_close(struct arena *a)
{
	if (!a)
		return;
	if (a->map)
		munmap(a->map, a->map_len);
	if (a->fd >= 0)
		sys_close(a->fd);
	free(a->btable);
	free(a);
}
