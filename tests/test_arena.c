/* SPDX-License-Identifier: MIT */
/*
 * The arena: build, seal and read round trips (random sizes, empty items,
 * batches, in-place writes, alignment), readers in forked children, very many
 * and very large items, a sparse arena beyond 4 GiB, and an opener that must
 * refuse every corrupt, truncated, unsealed or wrong kind of fd with the
 * documented error and without leaking fds or mappings.
 *
 * Seeded PRNG: set ARENA_TEST_SEED to replay a run (the seed is printed);
 * ARENA_TEST_FILTER=pattern runs only the matching tests.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arena.h>
#include "arena_format.h" /* the image layout, to corrupt it field by field */

#define SEALS_ALL (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

static uint64_t g_seed;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Deterministic bytes of item i: the contents never need to be stored. */
static void fill_item(uint64_t i, void *buf, size_t len)
{
	uint64_t s = g_seed ^ (i * 0x2545f4914f6cdd1dull), v = 0;
	uint8_t *p = buf;
	size_t k;

	for (k = 0; k < len; k++) {
		if ((k & 7) == 0)
			v = splitmix(&s);
		p[k] = (uint8_t)(v >> ((k & 7) * 8));
	}
}

/* 0 when [p, p+len) holds item i's bytes; usable in a child. */
static int item_matches(uint64_t i, const void *p, size_t len)
{
	uint8_t small[4096], *buf = len <= sizeof(small) ? small : malloc(len);
	int bad;

	if (!buf)
		return 2;
	fill_item(i, buf, len);
	bad = len && memcmp(buf, p, len) != 0;
	if (buf != small)
		free(buf);
	return bad;
}

/* Lines of /proc/self/maps backed by a memfd: the arena's own mappings. */
static int count_memfd_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "/memfd:") != NULL;
	fclose(f);
	return n;
}

struct leaks {
	int fds, maps, memfd_maps;
};

static void leaks_begin(struct leaks *l)
{
	l->fds = count_fds();
	l->maps = count_maps();
	l->memfd_maps = count_memfd_maps();
}

static void leaks_end(const struct leaks *l)
{
	assert_int_equal(count_fds(), l->fds);
	assert_int_equal(count_memfd_maps(), l->memfd_maps);
	/* The sanitizers' allocators map and unmap on their own. */
	if (!under_sanitizer())
		assert_int_equal(count_maps(), l->maps);
}

/* A memfd holding len bytes of img with the given seals (0 = none). */
static int memfd_with(const void *img, size_t len, int seals)
{
	int fd = memfd_create("test-image", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	const char *p = img;
	size_t done = 0;

	assert_true(fd >= 0);
	while (done < len) {
		ssize_t w = write(fd, p + done, len - done);

		assert_true(w > 0);
		done += (size_t)w;
	}
	if (seals)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

/* Opens img as a sealed memfd; returns arena_open_fd's result. */
static int open_image(const void *img, size_t len, struct arena **out)
{
	int fd = memfd_with(img, len, SEALS_ALL), r;

	r = arena_open_fd(out, fd, 0);
	close(fd);
	return r;
}

/* A copy of a sealed arena's image (malloc). */
static uint8_t *image_of(const struct arena *a, size_t *len)
{
	uint8_t *img;

	*len = arena_size(a);
	img = malloc(*len);
	assert_non_null(img);
	memcpy(img, arena_base(a), *len);
	return img;
}

/* Expected contents of an arena built by build_random(). */
struct expect {
	uint64_t n;
	size_t *len;
};

/* Checks every item against fill_item(); returns 0 or a code (for children). */
static int verify(const struct arena *a, const struct expect *e)
{
	uint64_t i;

	if (arena_count(a) != e->n)
		return 10;
	for (i = 0; i < e->n; i++) {
		const void *p = (const void *)1;
		size_t len = 1;

		if (arena_get(a, i, &p, &len) != 0)
			return 11;
		if (len != e->len[i])
			return 12;
		if (len == 0 && p != NULL)
			return 13;
		if (item_matches(i, p, len))
			return 14;
	}
	if (arena_get(a, e->n, &(const void *){ 0 }, &(size_t){ 0 }) != -ERANGE)
		return 15;
	return 0;
}

static size_t random_len(uint64_t *s)
{
	uint64_t r = splitmix(s);

	switch (r % 10) {
	case 0: return 0;
	case 1: case 2: case 3: case 4: return 1 + (r >> 8) % 64;
	case 5: case 6: case 7: return (r >> 8) % 4097;
	case 8: return (r >> 8) % 70000;
	default: return 4096 * (1 + (r >> 8) % 4); /* exact pages */
	}
}

/*
 * Builds n items with a random mix of append, append_many and
 * append_uninit; checks indexes and alignment as it goes.
 */
static void build_random(struct arena *a, uint64_t n, uint32_t align,
			 struct expect *e, uint64_t seed)
{
	uint64_t s = seed, i = 0, idx;
	uint8_t *buf = malloc(70000 * 16);

	assert_non_null(buf);
	e->n = n;
	e->len = calloc(n ? n : 1, sizeof(*e->len));
	assert_non_null(e->len);
	while (i < n) {
		uint64_t how = splitmix(&s) % 3;

		if (how == 0) {
			size_t len = random_len(&s);

			fill_item(i, buf, len);
			idx = UINT64_MAX;
			assert_int_equal(arena_append(a, len ? buf : NULL, len, &idx), 0);
			assert_int_equal(idx, i);
			e->len[i++] = len;
		} else if (how == 1) {
			struct iovec iov[16];
			size_t k, m = 1 + splitmix(&s) % 16, off = 0;

			if (m > n - i)
				m = n - i;
			for (k = 0; k < m; k++) {
				size_t len = random_len(&s);

				fill_item(i + k, buf + off, len);
				iov[k].iov_base = len ? buf + off : NULL;
				iov[k].iov_len = len;
				e->len[i + k] = len;
				off += len;
			}
			idx = UINT64_MAX;
			assert_int_equal(arena_append_many(a, iov, m, &idx), 0);
			assert_int_equal(idx, i);
			i += m;
		} else {
			size_t len = random_len(&s), k;
			void *p = NULL;

			idx = UINT64_MAX;
			assert_int_equal(arena_append_uninit(a, len, &idx, &p), 0);
			assert_int_equal(idx, i);
			assert_non_null(p);
			assert_int_equal((uintptr_t)p % align, 0);
			for (k = 0; k < len; k++) /* documented: zero until written */
				if (((uint8_t *)p)[k])
					fail_msg("append_uninit byte %zu of item %" PRIu64 " not zero", k, i);
			fill_item(i, p, len);
			e->len[i++] = len;
		}
		assert_int_equal(arena_count(a), i);
	}
	free(buf);
}

static void check_alignment(const struct arena *a, uint32_t align)
{
	uint64_t i;

	for (i = 0; i < arena_count(a); i++) {
		const void *p;
		size_t len;

		assert_int_equal(arena_get(a, i, &p, &len), 0);
		if (p)
			assert_int_equal((uintptr_t)p % align, 0);
	}
}

/* Forks a child that runs verify() on the inherited arena and on one opened
 * from the fd; returns the child's exit code. */
static int verify_in_child(const struct arena *a, const struct expect *e)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct arena *b;
		int r = verify(a, e);

		if (r)
			_exit(r);
		if (arena_open_fd(&b, arena_fd(a), 0) != 0)
			_exit(20);
		r = verify(b, e);
		arena_close(b);
		_exit(r ? 20 + r : 0);
	}
	return wait_code(pid);
}

/* ------------------------------------------------------------------------ */
/* Building and reading                                                      */
/* ------------------------------------------------------------------------ */

static void test_round_trip(void **state)
{
	static const uint32_t aligns[] = { 0, 1, 2, 4, 8, 16, 64, 512, 4096 };
	size_t k;

	(void)state;
	for (k = 0; k < sizeof(aligns) / sizeof(aligns[0]); k++) {
		struct arena_create_opts o = { .align = aligns[k], .name = "rt" };
		uint32_t align = aligns[k] ? aligns[k] : 8;
		struct arena *a, *b;
		struct arena_info info;
		struct expect e;
		struct leaks l;
		struct stat st;
		int fd;

		leaks_begin(&l);
		assert_int_equal(arena_create(&a, &o), 0);
		assert_int_equal(arena_is_sealed(a), 0);
		assert_true(arena_fd(a) >= 0);
		build_random(a, 600, align, &e, g_seed + k);
		/* readable while building too */
		assert_int_equal(verify(a, &e), 0);
		assert_int_equal(arena_seal(a), 0);
		assert_int_equal(arena_is_sealed(a), 1);
		assert_int_equal(verify(a, &e), 0);
		check_alignment(a, align);

		assert_int_equal(arena_info(a, &info), 0);
		assert_int_equal(info.count, e.n);
		assert_int_equal(info.align, align);
		assert_int_equal(info.version, ARENA_FORMAT_VERSION);
		assert_int_equal(info.data_off, ARENA_DATA_OFF);
		assert_int_equal(info.seals & SEALS_ALL, SEALS_ALL);
		assert_int_equal(info.size, arena_size(a));
		assert_int_equal(fstat(arena_fd(a), &st), 0);
		assert_int_equal((uint64_t)st.st_size, arena_size(a));
		assert_int_equal(info.table_off + e.n * 16, arena_size(a));

		/* open from a duplicate of the fd; the caller keeps its own */
		fd = dup(arena_fd(a));
		assert_true(fd >= 0);
		assert_int_equal(arena_open_fd(&b, fd, 0), 0);
		assert_int_equal(close(fd), 0);
		assert_int_not_equal(arena_fd(b), fd);
		assert_true(fcntl(arena_fd(b), F_GETFD) & FD_CLOEXEC);
		assert_int_equal(arena_is_sealed(b), 1);
		assert_int_equal(arena_size(b), arena_size(a));
		assert_int_equal(verify(b, &e), 0);
		check_alignment(b, align);

		assert_int_equal(verify_in_child(a, &e), 0);
		arena_close(b);
		arena_close(a);
		free(e.len);
		leaks_end(&l);
	}
}

static void test_empty_items(void **state)
{
	struct arena *a, *b;
	struct iovec iov[3] = { { NULL, 0 }, { (void *)"x", 0 }, { NULL, 0 } };
	const void *p;
	size_t len;
	uint64_t idx, i;
	void *u = NULL;
	struct leaks l;

	(void)state;
	leaks_begin(&l);
	/* An arena with no items at all. */
	assert_int_equal(arena_create(&a, NULL), 0);
	assert_int_equal(arena_count(a), 0);
	assert_int_equal(arena_get(a, 0, &p, &len), -ERANGE);
	assert_int_equal(arena_seal(a), 0);
	assert_int_equal(arena_count(a), 0);
	assert_int_equal(arena_size(a), ARENA_DATA_OFF);
	assert_int_equal(arena_open_fd(&b, arena_fd(a), 0), 0);
	assert_int_equal(arena_count(b), 0);
	assert_int_equal(arena_get(b, 0, &p, &len), -ERANGE);
	arena_close(b);
	arena_close(a);

	/* Only empty items, by every append path. */
	assert_int_equal(arena_create(&a, NULL), 0);
	assert_int_equal(arena_append(a, NULL, 0, &idx), 0);
	assert_int_equal(idx, 0);
	assert_int_equal(arena_append(a, "abc", 0, &idx), 0);
	assert_int_equal(idx, 1);
	assert_int_equal(arena_append_many(a, iov, 3, &idx), 0);
	assert_int_equal(idx, 2);
	assert_int_equal(arena_append_many(a, NULL, 0, &idx), 0);
	assert_int_equal(idx, 5);
	assert_int_equal(arena_append_uninit(a, 0, &idx, &u), 0);
	assert_int_equal(idx, 5);
	assert_int_equal(arena_append(a, "z", 1, NULL), 0);
	assert_int_equal(arena_seal(a), 0);
	assert_int_equal(arena_count(a), 7);
	for (i = 0; i < 6; i++) {
		p = (const void *)1;
		len = 1;
		assert_int_equal(arena_get(a, i, &p, &len), 0);
		assert_int_equal(len, 0);
		assert_null(p);
	}
	assert_int_equal(arena_get(a, 6, &p, &len), 0);
	assert_int_equal(len, 1);
	assert_memory_equal(p, "z", 1);
	arena_close(a);
	leaks_end(&l);
}

static void test_bad_args(void **state)
{
	static const struct arena_create_opts bad[] = {
		{ .flags = 2 }, { .flags = 1u << 31 }, { .flags = UINT32_MAX },
		{ .align = 3 }, { .align = 12 }, { .align = 8192 },
		{ .align = 1u << 31 }, { .align = UINT32_MAX }, { .align = 4097 },
	};
	struct arena_create_opts good = { .flags = ARENA_CREATE_SPARSE, .align = 4096 };
	struct arena *a = (struct arena *)&good;
	struct iovec iov[2] = { { (void *)"ab", 2 }, { NULL, 5 } };
	const void *p;
	size_t k, len;
	struct leaks l;

	(void)state;
	leaks_begin(&l);
	for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		a = (struct arena *)&good;
		assert_int_equal(arena_create(&a, &bad[k]), -EINVAL);
		assert_ptr_equal(a, (struct arena *)&good); /* untouched */
	}
	assert_int_equal(arena_create(NULL, NULL), -EINVAL);
	assert_int_equal(arena_create(&a, &good), 0);
	arena_close(a);

	assert_int_equal(arena_create(&a, NULL), 0);
	assert_int_equal(arena_append(a, NULL, 1, NULL), -EINVAL);
	/* a NULL base with a length fails before any item is appended */
	assert_int_equal(arena_append_many(a, iov, 2, NULL), -EINVAL);
	assert_int_equal(arena_append_many(a, NULL, 1, NULL), -EINVAL);
	assert_int_equal(arena_count(a), 0);
	assert_int_equal(arena_append_uninit(a, SIZE_MAX, NULL, NULL), -EFBIG);
	assert_int_equal(arena_count(a), 0);
	assert_int_equal(arena_get(a, 0, &p, &len), -ERANGE);
	assert_int_equal(arena_get(a, 0, NULL, &len), -EINVAL);
	assert_int_equal(arena_append(NULL, "x", 1, NULL), -EINVAL);
	assert_int_equal(arena_seal(NULL), -EINVAL);
	assert_int_equal(arena_count(NULL), 0);
	assert_int_equal(arena_size(NULL), 0);
	assert_int_equal(arena_is_sealed(NULL), 0);
	assert_null(arena_base(NULL));
	arena_close(NULL);
	arena_close(a);
	leaks_end(&l);
}

static void test_sealed_is_readonly(void **state)
{
	struct arena *a;
	struct iovec iov = { (void *)"abc", 3 };
	void *u = (void *)1;
	uint64_t idx = 42;
	const void *p;
	size_t len;
	struct leaks l;

	(void)state;
	leaks_begin(&l);
	assert_int_equal(arena_create(&a, NULL), 0);
	assert_int_equal(arena_append(a, "hello", 5, NULL), 0);
	assert_int_equal(arena_seal(a), 0);
	assert_int_equal(arena_append(a, "x", 1, &idx), -EROFS);
	assert_int_equal(arena_append(a, NULL, 0, &idx), -EROFS);
	assert_int_equal(arena_append_many(a, &iov, 1, &idx), -EROFS);
	assert_int_equal(arena_append_uninit(a, 8, &idx, &u), -EROFS);
	assert_int_equal(idx, 42);
	assert_ptr_equal(u, (void *)1);
	assert_int_equal(arena_seal(a), -EROFS);
	assert_int_equal(arena_count(a), 1);
	assert_int_equal(arena_get(a, 0, &p, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(p, "hello", 5);

	/* The kernel enforces it too: no write, grow or shrink, no new mapping
	 * for writing, and the seals are themselves sealed. */
	assert_int_equal(write(arena_fd(a), "x", 1), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(arena_fd(a), 0), -1);
	assert_int_equal(ftruncate(arena_fd(a), 1 << 20), -1);
	assert_true(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED,
			 arena_fd(a), 0) == MAP_FAILED);
	assert_int_equal(fcntl(arena_fd(a), F_ADD_SEALS, F_SEAL_FUTURE_WRITE), -1);
	arena_close(a);
	leaks_end(&l);
}

/* out-of-range indexes on building, sealed and opened arenas */
static void test_ranges(void **state)
{
	struct arena *a, *b;
	const void *p = (const void *)1;
	size_t len = 7;
	uint64_t bad[] = { 3, 4, 1ull << 32, INT64_MAX, UINT64_MAX - 1, UINT64_MAX };
	size_t k;

	(void)state;
	assert_int_equal(arena_create(&a, NULL), 0);
	assert_int_equal(arena_append(a, "a", 1, NULL), 0);
	assert_int_equal(arena_append(a, "bb", 2, NULL), 0);
	assert_int_equal(arena_append(a, "ccc", 3, NULL), 0);
	for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
		assert_int_equal(arena_get(a, bad[k], &p, &len), -ERANGE);
	assert_int_equal(arena_seal(a), 0);
	assert_int_equal(arena_open_fd(&b, arena_fd(a), 0), 0);
	for (k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		assert_int_equal(arena_get(a, bad[k], &p, &len), -ERANGE);
		assert_int_equal(arena_get(b, bad[k], &p, &len), -ERANGE);
	}
	/* a failed get leaves the out-parameters alone */
	assert_ptr_equal(p, (const void *)1);
	assert_int_equal(len, 7);
	assert_int_equal(arena_get(b, 2, &p, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(p, "ccc", 3);
	arena_close(b);
	arena_close(a);
}

/* An item appended from bytes of the same arena (they move when it grows). */
static void test_self_append(void **state)
{
	struct arena *a;
	const void *p;
	size_t len, k;
	uint8_t *big = malloc(3 << 20);
	struct iovec iov[2];

	(void)state;
	assert_non_null(big);
	fill_item(0, big, 3 << 20);
	assert_int_equal(arena_create(&a, NULL), 0);
	assert_int_equal(arena_append(a, big, 600 << 10, NULL), 0);
	/* item 1 = copy of item 0, forcing growth of the 1 MiB start size */
	assert_int_equal(arena_get(a, 0, &p, &len), 0);
	assert_int_equal(arena_append(a, p, len, NULL), 0);
	/* items 2, 3 = copies of items 0 and 1 in one batch */
	for (k = 0; k < 2; k++) {
		assert_int_equal(arena_get(a, k, &p, &len), 0);
		iov[k].iov_base = (void *)p;
		iov[k].iov_len = len;
	}
	assert_int_equal(arena_append_many(a, iov, 2, NULL), 0);
	assert_int_equal(arena_seal(a), 0);
	for (k = 0; k < 4; k++) {
		assert_int_equal(arena_get(a, k, &p, &len), 0);
		assert_int_equal(len, 600 << 10);
		assert_memory_equal(p, big, len);
	}
	arena_close(a);
	free(big);
}

/* A seal that fails half way (someone sealed the fd against shrinking). */
static void test_seal_failure(void **state)
{
	struct arena *a;
	const void *p;
	size_t len;
	struct leaks l;
	int r;

	(void)state;
	leaks_begin(&l);
	assert_int_equal(arena_create(&a, NULL), 0);
	assert_int_equal(arena_append(a, "data", 4, NULL), 0);
	assert_int_equal(fcntl(arena_fd(a), F_ADD_SEALS, F_SEAL_SHRINK), 0);
	r = arena_seal(a);
	assert_int_equal(r, -EPERM);
	assert_int_equal(arena_is_sealed(a), 0);
	/* The handle is unusable but must fail cleanly, not crash. */
	assert_true(arena_append(a, "x", 1, NULL) < 0);
	assert_true(arena_append_uninit(a, 1, NULL, &(void *){ NULL }) < 0);
	assert_true(arena_get(a, 0, &p, &len) < 0);
	assert_true(arena_seal(a) < 0);
	arena_close(a);
	leaks_end(&l);
}

/* ------------------------------------------------------------------------ */
/* Size                                                                      */
/* ------------------------------------------------------------------------ */

static void test_many_small(void **state)
{
	uint64_t n = under_sanitizer() ? 50000 : 200000, i;
	struct arena *a, *b;
	uint8_t buf[64];
	struct leaks l;
	pid_t pid;

	(void)state;
	leaks_begin(&l);
	assert_int_equal(arena_create(&a, &(struct arena_create_opts){ .align = 1 }), 0);
	for (i = 0; i < n; i++) {
		size_t len = i % 23;
		uint64_t idx;

		fill_item(i, buf, len);
		assert_int_equal(arena_append(a, buf, len, &idx), 0);
		if (idx != i)
			fail_msg("index %" PRIu64 " for item %" PRIu64, idx, i);
	}
	assert_int_equal(arena_seal(a), 0);
	assert_int_equal(arena_count(a), n);
	assert_int_equal(arena_open_fd(&b, arena_fd(a), 0), 0);
	for (i = 0; i < n; i++) {
		const void *p;
		size_t len;

		if (arena_get(b, i, &p, &len) || len != i % 23 || item_matches(i, p, len))
			fail_msg("item %" PRIu64 " wrong", i);
	}
	/* Data packed with align 1: no padding at all. */
	{
		struct arena_info info;
		uint64_t total = 0;

		for (i = 0; i < n; i++)
			total += i % 23;
		assert_int_equal(arena_info(b, &info), 0);
		assert_int_equal(info.data_size, total);
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (i = 0; i < n; i++) {
			const void *p;
			size_t len;

			if (arena_get(b, i, &p, &len) || len != i % 23 || item_matches(i, p, len))
				_exit(1);
		}
		_exit(arena_count(a) == n ? 0 : 2);
	}
	assert_int_equal(wait_code(pid), 0);
	arena_close(b);
	arena_close(a);
	leaks_end(&l);
}

static void test_huge_items(void **state)
{
	/* 64 MiB; 16 under sanitizers, whose shadow of the copies costs GiBs */
	const size_t big = under_sanitizer() ? 16u << 20 : 64u << 20;
	struct arena *a;
	struct expect e = { 0 };
	size_t lens[4] = { big, 10, big, big + 3 };
	uint8_t *buf = malloc(big + 3);
	void *u;
	struct stat st;
	struct leaks l;

	(void)state;
	assert_non_null(buf);
	leaks_begin(&l);
	assert_int_equal(arena_create(&a, NULL), 0);
	fill_item(0, buf, big);
	assert_int_equal(arena_append(a, buf, big, NULL), 0);
	fill_item(1, buf, 10);
	assert_int_equal(arena_append(a, buf, 10, NULL), 0);
	assert_int_equal(arena_append_uninit(a, big, NULL, &u), 0);
	fill_item(2, u, big);
	/* not a reservation-sized item */
	fill_item(3, buf, big + 3);
	assert_int_equal(arena_append_many(a, &(struct iovec){ buf, big + 3 }, 1, NULL), 0);
	/* Not sparse: the pages are reserved as the arena grows. */
	assert_int_equal(fstat(arena_fd(a), &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 >= 3 * (uint64_t)big);
	assert_int_equal(arena_seal(a), 0);
	e.n = 4;
	e.len = lens;
	assert_int_equal(verify(a, &e), 0);
	assert_int_equal(verify_in_child(a, &e), 0);
	arena_close(a);
	leaks_end(&l);
	free(buf);
}

/* A sparse arena larger than 4 GiB: offsets must stay 64-bit everywhere. */
static int check_sparse(const struct arena *a, uint64_t huge)
{
	const uint8_t *p;
	const void *q;
	size_t len;

	if (arena_count(a) != 2 || arena_size(a) <= huge)
		return 1;
	if (arena_get(a, 0, &q, &len) || len != huge)
		return 2;
	p = q;
	if (p[0] != 0xa5 || p[1] != 0 || p[huge / 2] != 0 || p[huge - 2] != 0 ||
	    p[huge - 1] != 0x5a)
		return 3;
	if (arena_get(a, 1, &q, &len) || len != 5 || memcmp(q, "after", 5))
		return 4;
	if ((uint64_t)((const uint8_t *)q - (const uint8_t *)arena_base(a)) - ARENA_DATA_OFF <=
	    (4ull << 30))
		return 5;
	return 0;
}

static void test_sparse_over_4g(void **state)
{
	const uint64_t huge = 5ull << 30;
	struct arena *a, *b;
	struct arena_info info;
	struct leaks l;
	struct stat st;
	uint8_t *p;
	void *u;
	pid_t pid;
	int r;

	(void)state;
	if (sizeof(size_t) < 8)
		skip();
	leaks_begin(&l);
	r = arena_create(&a, &(struct arena_create_opts){ .flags = ARENA_CREATE_SPARSE });
	if (r == -ENOMEM || r == -ENOSPC || r == -EFBIG) {
		print_message("sparse arena: create: %s, skipped\n", arena_strerror(r));
		skip();
	}
	assert_int_equal(r, 0);
	r = arena_append_uninit(a, huge, NULL, &u);
	if (r == -ENOMEM || r == -ENOSPC || r == -EFBIG) {
		print_message("sparse arena: 5 GiB item: %s, skipped\n", arena_strerror(r));
		arena_close(a);
		skip();
	}
	assert_int_equal(r, 0);
	p = u;
	p[0] = 0xa5;            /* touch two pages only */
	p[huge - 1] = 0x5a;
	/* A hole: nearly nothing is allocated. */
	assert_int_equal(fstat(arena_fd(a), &st), 0);
	assert_true((uint64_t)st.st_size > huge);
	assert_true((uint64_t)st.st_blocks * 512 < (64ull << 20));
	assert_int_equal(arena_append(a, "after", 5, NULL), 0);
	assert_int_equal(arena_seal(a), 0);
	assert_int_equal(check_sparse(a, huge), 0);
	assert_int_equal(arena_info(a, &info), 0);
	assert_true(info.table_off > huge);
	assert_int_equal(arena_open_fd(&b, arena_fd(a), 0), 0);
	assert_int_equal(check_sparse(b, huge), 0);
	arena_close(b);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (arena_open_fd(&b, arena_fd(a), 0))
			_exit(9);
		r = check_sparse(b, huge);
		arena_close(b);
		_exit(r ? r : check_sparse(a, huge));
	}
	assert_int_equal(wait_code(pid), 0);
	arena_close(a);
	leaks_end(&l);
}

/* ------------------------------------------------------------------------ */
/* Opening what others give us                                               */
/* ------------------------------------------------------------------------ */

/* A small good arena with items at 8 but not 16-aligned offsets. */
static uint8_t *good_image(size_t *len)
{
	static const size_t lens[] = { 3, 0, 100, 5, 4000, 1 };
	struct arena *a;
	uint8_t buf[4000], *img;
	size_t k;

	assert_int_equal(arena_create(&a, NULL), 0);
	for (k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		fill_item(k, buf, lens[k]);
		assert_int_equal(arena_append(a, buf, lens[k], NULL), 0);
	}
	assert_int_equal(arena_seal(a), 0);
	img = image_of(a, len);
	arena_close(a);
	return img;
}

enum { SET, ADD, XOR };

struct corruption {
	const char *what;
	size_t off;     /* into the image */
	int width;      /* 4 or 8 */
	int mode;
	uint64_t val;
	int expect;
};

#define HDR(f) offsetof(struct arena_hdr, f), (int)sizeof(((struct arena_hdr *)0)->f)

static void apply(uint8_t *img, const struct corruption *c)
{
	uint64_t v = 0;

	memcpy(&v, img + c->off, (size_t)c->width); /* little-endian */
	switch (c->mode) {
	case SET: v = c->val; break;
	case ADD: v += c->val; break;
	default: v ^= c->val; break;
	}
	memcpy(img + c->off, &v, (size_t)c->width);
}

static void test_corrupt_header(void **state)
{
	static const struct corruption cs[] = {
		{ "magic=0", HDR(magic), SET, 0, -EBADMSG },
		{ "magic^1", HDR(magic), XOR, 1, -EBADMSG },
		{ "magic^top", HDR(magic), XOR, 1ull << 63, -EBADMSG },
		{ "version=0", HDR(version), SET, 0, -EPROTONOSUPPORT },
		{ "version=2", HDR(version), SET, 2, -EPROTONOSUPPORT },
		{ "version=max", HDR(version), SET, UINT32_MAX, -EPROTONOSUPPORT },
		{ "hdr_size=0", HDR(hdr_size), SET, 0, -EBADMSG },
		{ "hdr_size=127", HDR(hdr_size), SET, 127, -EBADMSG },
		{ "hdr_size=129", HDR(hdr_size), SET, 129, -EBADMSG },
		{ "hdr_size=4096", HDR(hdr_size), SET, 4096, -EBADMSG },
		{ "flags=0", HDR(flags), SET, 0, -EBADMSG },
		{ "flags|2", HDR(flags), XOR, 2, -EBADMSG },
		{ "flags|top", HDR(flags), XOR, 1u << 31, -EBADMSG },
		{ "align=0", HDR(align), SET, 0, -EBADMSG },
		{ "align=3", HDR(align), SET, 3, -EBADMSG },
		{ "align=24", HDR(align), SET, 24, -EBADMSG },
		{ "align=8192", HDR(align), SET, 8192, -EBADMSG },
		{ "align=2^31", HDR(align), SET, 1u << 31, -EBADMSG },
		{ "align=16 (items not aligned)", HDR(align), SET, 16, -EBADMSG },
		{ "align=4096 (items not aligned)", HDR(align), SET, 4096, -EBADMSG },
		{ "count+1", HDR(count), ADD, 1, -EBADMSG },
		{ "count-1", HDR(count), ADD, UINT64_MAX, -EBADMSG },
		{ "count=0", HDR(count), SET, 0, -EBADMSG },
		{ "count=2^60", HDR(count), SET, 1ull << 60, -EBADMSG },
		{ "count=max", HDR(count), SET, UINT64_MAX, -EBADMSG },
		{ "table_off+8", HDR(table_off), ADD, 8, -EBADMSG },
		{ "table_off-8", HDR(table_off), ADD, (uint64_t)-8, -EBADMSG },
		{ "table_off+1", HDR(table_off), ADD, 1, -EBADMSG },
		{ "table_off=0", HDR(table_off), SET, 0, -EBADMSG },
		{ "table_off=4096", HDR(table_off), SET, 4096, -EBADMSG },
		{ "table_off=max", HDR(table_off), SET, UINT64_MAX, -EBADMSG },
		{ "table_off=max&~7", HDR(table_off), SET, UINT64_MAX & ~7ull, -EBADMSG },
		{ "data_off=0", HDR(data_off), SET, 0, -EBADMSG },
		{ "data_off=128", HDR(data_off), SET, 128, -EBADMSG },
		{ "data_off=8192", HDR(data_off), SET, 8192, -EBADMSG },
		{ "data_off=max", HDR(data_off), SET, UINT64_MAX, -EBADMSG },
		{ "data_size-1", HDR(data_size), ADD, UINT64_MAX, -EBADMSG },
		{ "data_size+8", HDR(data_size), ADD, 8, -EBADMSG },
		{ "data_size=0", HDR(data_size), SET, 0, -EBADMSG },
		{ "data_size=max", HDR(data_size), SET, UINT64_MAX, -EBADMSG },
		{ "data_size=max-4095", HDR(data_size), SET, UINT64_MAX - 4095, -EBADMSG },
		{ "file_size+1", HDR(file_size), ADD, 1, -EBADMSG },
		{ "file_size-1", HDR(file_size), ADD, UINT64_MAX, -EBADMSG },
		{ "file_size=0", HDR(file_size), SET, 0, -EBADMSG },
		{ "file_size=max", HDR(file_size), SET, UINT64_MAX, -EBADMSG },
	};
	struct arena *a;
	struct leaks l;
	size_t len, k;
	uint8_t *img = good_image(&len), *bad = malloc(len);
	struct arena_hdr h;

	(void)state;
	assert_non_null(bad);
	/* the untouched image opens */
	assert_int_equal(open_image(img, len, &a), 0);
	assert_int_equal(arena_count(a), 6);
	arena_close(a);
	memcpy(&h, img, sizeof(h));
	assert_int_equal(h.file_size, len);
	assert_int_equal(h.align, 8);

	leaks_begin(&l);
	for (k = 0; k < sizeof(cs) / sizeof(cs[0]); k++) {
		int r;

		memcpy(bad, img, len);
		apply(bad, &cs[k]);
		a = (struct arena *)1;
		r = open_image(bad, len, &a);
		if (r != cs[k].expect)
			fail_msg("%s: got %d (%s), want %d", cs[k].what, r,
				 arena_strerror(r), cs[k].expect);
		assert_ptr_equal(a, (struct arena *)1);
	}
	/* every reserved word */
	for (k = 0; k < 8; k++) {
		struct corruption c = { "reserved", offsetof(struct arena_hdr, reserved) + 8 * k,
					8, SET, 1ull << (k * 7), -EBADMSG };

		memcpy(bad, img, len);
		apply(bad, &c);
		assert_int_equal(open_image(bad, len, &a), -EBADMSG);
	}
	/* the header is 128 bytes; the rest of its page is not read */
	memcpy(bad, img, len);
	bad[sizeof(struct arena_hdr)] = 0xff;
	bad[ARENA_DATA_OFF - 1] = 0xff;
	assert_int_equal(open_image(bad, len, &a), 0);
	arena_close(a);
	leaks_end(&l);
	free(bad);
	free(img);
}

static void test_corrupt_table(void **state)
{
	struct arena *a;
	struct leaks l;
	size_t len, k, e;
	uint8_t *img = good_image(&len), *bad = malloc(len);
	struct arena_hdr h;

	(void)state;
	assert_non_null(bad);
	memcpy(&h, img, sizeof(h));
	leaks_begin(&l);
	for (e = 0; e < h.count; e += h.count - 1) { /* first and last entry */
		const uint64_t ds = h.data_size;
		const struct { uint64_t off, len; } ents[] = {
			{ ds + 1, 0 }, { ds + 8, 0 }, { 0, ds + 1 }, { ds, 1 },
			{ ds - 1, 2 }, { 8, ds }, { UINT64_MAX, 0 }, { 0, UINT64_MAX },
			{ 8, UINT64_MAX - 7 }, { UINT64_MAX - 7, 16 },
			{ 1ull << 32, 1 }, { 4, 1 }, /* misaligned for align 8 */
		};

		for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
			uint8_t *t = bad + h.table_off + e * 16;
			int r;

			memcpy(bad, img, len);
			memcpy(t, &ents[k].off, 8);
			memcpy(t + 8, &ents[k].len, 8);
			r = open_image(bad, len, &a);
			if (r != -EBADMSG)
				fail_msg("entry %zu {%" PRIu64 ", %" PRIu64 "}: got %d", e,
					 ents[k].off, ents[k].len, r);
		}
		/* in bounds and aligned: fine (the table may alias items) */
		memcpy(bad, img, len);
		memcpy(bad + h.table_off + e * 16, &(uint64_t){ 0 }, 8);
		memcpy(bad + h.table_off + e * 16 + 8, &ds, 8);
		assert_int_equal(open_image(bad, len, &a), 0);
		arena_close(a);
	}
	leaks_end(&l);
	free(bad);
	free(img);
}

/* Random bytes anywhere in the header and table: never a crash, only a
 * documented error or an arena whose every item lies inside its data. */
static void test_fuzz(void **state)
{
	int rounds = under_sanitizer() ? 1000 : 3000, i;
	uint64_t s = g_seed ^ 0xf00d;
	size_t len;
	uint8_t *img = good_image(&len), *bad = malloc(len);
	struct arena_hdr h;
	struct leaks l;
	int opened = 0;

	(void)state;
	assert_non_null(bad);
	memcpy(&h, img, sizeof(h));
	leaks_begin(&l);
	for (i = 0; i < rounds; i++) {
		int flips = 1 + (int)(splitmix(&s) % 4), f, r;
		struct arena *a;

		memcpy(bad, img, len);
		for (f = 0; f < flips; f++) {
			uint64_t v = splitmix(&s);
			size_t at = v & 1 ? (v >> 8) % sizeof(struct arena_hdr)
					  : h.table_off + (v >> 8) % (len - h.table_off);

			bad[at] ^= (uint8_t)(1u << ((v >> 4) & 7));
		}
		r = open_image(bad, len, &a);
		if (r == 0) {
			uint64_t k;

			opened++;
			for (k = 0; k < arena_count(a); k++) {
				const void *p;
				size_t n;
				const uint8_t *base = arena_base(a);

				assert_int_equal(arena_get(a, k, &p, &n), 0);
				if (n) {
					assert_true((const uint8_t *)p >= base + ARENA_DATA_OFF);
					assert_true((const uint8_t *)p + n <= base + h.table_off);
				}
			}
			arena_close(a);
		} else if (r != -EBADMSG && r != -EPROTONOSUPPORT) {
			fail_msg("fuzz round %d: unexpected %d", i, r);
		}
	}
	leaks_end(&l);
	print_message("fuzz: %d of %d corrupt images still valid\n", opened, rounds);
	free(bad);
	free(img);
}

static void test_truncated(void **state)
{
	struct arena *a;
	struct leaks l;
	size_t len, n;
	uint8_t *img = good_image(&len);

	(void)state;
	leaks_begin(&l);
	for (n = 0; n <= ARENA_DATA_OFF + 256 && n < len; n++) {
		int r = open_image(img, n, &a);

		if (r != -EBADMSG)
			fail_msg("image cut to %zu bytes: got %d", n, r);
	}
	for (n = len - 64; n < len; n++)
		assert_int_equal(open_image(img, n, &a), -EBADMSG);
	/* too long (garbage after the table) is corrupt too */
	{
		uint8_t *longer = calloc(1, len + 16);

		assert_non_null(longer);
		memcpy(longer, img, len);
		assert_int_equal(open_image(longer, len + 16, &a), -EBADMSG);
		free(longer);
	}
	assert_int_equal(open_image(img, len, &a), 0);
	arena_close(a);
	leaks_end(&l);
	free(img);
}

static void test_unsealed(void **state)
{
	static const int partial[] = { 0, F_SEAL_SEAL, F_SEAL_SHRINK | F_SEAL_GROW,
				       F_SEAL_WRITE, F_SEAL_GROW | F_SEAL_WRITE,
				       F_SEAL_SHRINK | F_SEAL_WRITE | F_SEAL_SEAL };
	struct arena *a;
	struct leaks l;
	size_t len, k;
	uint8_t *img = good_image(&len);
	const void *p;
	size_t n;
	int fd;

	(void)state;
	leaks_begin(&l);
	for (k = 0; k < sizeof(partial) / sizeof(partial[0]); k++) {
		fd = memfd_with(img, len, partial[k]);
		assert_int_equal(arena_open_fd(&a, fd, 0), -EPERM);
		assert_int_equal(arena_open_fd(&a, fd, ARENA_OPEN_UNSEALED), 0);
		assert_int_equal(arena_is_sealed(a), 0);
		assert_int_equal(arena_count(a), 6);
		assert_int_equal(arena_get(a, 4, &p, &n), 0);
		assert_int_equal(n, 4000);
		assert_int_equal(item_matches(4, p, n), 0);
		arena_close(a);
		close(fd);
	}
	/* the three that matter, without F_SEAL_SEAL: sealed enough */
	fd = memfd_with(img, len, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
	assert_int_equal(arena_open_fd(&a, fd, 0), 0);
	assert_int_equal(arena_is_sealed(a), 1);
	arena_close(a);
	close(fd);
	/* a memfd that cannot be sealed at all */
	fd = memfd_create("nosealing", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, img, len), (ssize_t)len);
	assert_int_equal(arena_open_fd(&a, fd, 0), -EPERM);
	assert_int_equal(arena_open_fd(&a, fd, ARENA_OPEN_UNSEALED), 0);
	arena_close(a);
	/* unknown flags */
	assert_int_equal(arena_open_fd(&a, fd, 2), -EINVAL);
	assert_int_equal(arena_open_fd(&a, fd, UINT32_MAX), -EINVAL);
	assert_int_equal(arena_open_fd(NULL, fd, 0), -EINVAL);
	close(fd);
	/* A corrupt unsealed image is still refused. */
	img[0] ^= 1;
	fd = memfd_with(img, len, 0);
	assert_int_equal(arena_open_fd(&a, fd, ARENA_OPEN_UNSEALED), -EBADMSG);
	close(fd);
	leaks_end(&l);
	free(img);
}

static void test_wrong_fds(void **state)
{
	char dir[] = "/tmp/arena-test-XXXXXX", path[64];
	struct arena *a = (struct arena *)1;
	struct leaks l;
	size_t len;
	uint8_t *img = good_image(&len);
	int p[2], sv[2], fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	leaks_begin(&l);
	assert_int_equal(arena_open_fd(&a, -1, 0), -EBADF);
	assert_int_equal(arena_open_fd(&a, INT_MIN, 0), -EBADF);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	close(fd); /* now a closed fd number */
	assert_int_equal(arena_open_fd(&a, fd, 0), -EBADF);
	assert_int_equal(arena_open_fd(&a, fd, ARENA_OPEN_UNSEALED), -EBADF);

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write(p[1], img, 4096), 4096);
	assert_int_equal(arena_open_fd(&a, p[0], 0), -EINVAL);
	assert_int_equal(arena_open_fd(&a, p[1], ARENA_OPEN_UNSEALED), -EINVAL);
	close(p[0]);
	close(p[1]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(arena_open_fd(&a, sv[0], ARENA_OPEN_UNSEALED), -EINVAL);
	close(sv[0]);
	close(sv[1]);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(arena_open_fd(&a, fd, 0), -EINVAL);
	assert_int_equal(arena_open_fd(&a, fd, ARENA_OPEN_UNSEALED), -EINVAL);
	close(fd);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(arena_open_fd(&a, fd, ARENA_OPEN_UNSEALED), -EINVAL);
	close(fd);
	assert_ptr_equal(a, (struct arena *)1);

	/* A regular file holds a good image but can change: not sealed. */
	snprintf(path, sizeof(path), "%s/image", dir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, img, len), (ssize_t)len);
	assert_int_equal(arena_open_fd(&a, fd, 0), -EPERM);
	assert_int_equal(arena_open_fd(&a, fd, ARENA_OPEN_UNSEALED), 0);
	assert_int_equal(arena_is_sealed(a), 0);
	assert_int_equal(arena_count(a), 6);
	arena_close(a);
	close(fd);
	/* write-only: cannot be mapped */
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_true(arena_open_fd(&a, fd, ARENA_OPEN_UNSEALED) < 0);
	close(fd);
	assert_int_equal(unlink(path), 0);
	leaks_end(&l);
	assert_int_equal(rmdir(dir), 0);
	free(img);
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */
/* ------------------------------------------------------------------------ */

static void test_save_load(void **state)
{
	char dir[] = "/tmp/arena-test-XXXXXX", path[80], other[80];
	struct arena *a, *b;
	struct expect e;
	struct leaks l;
	struct stat st;
	size_t len;
	uint8_t *img;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a.arena", dir);
	snprintf(other, sizeof(other), "%s/missing/a.arena", dir);
	assert_int_equal(arena_create(&a, &(struct arena_create_opts){ .align = 64 }), 0);
	build_random(a, 300, 64, &e, g_seed ^ 77);
	leaks_begin(&l);
	assert_int_equal(arena_save(a, path), -EINVAL); /* not sealed yet */
	assert_int_equal(arena_seal(a), 0);
	assert_int_equal(arena_save(a, path), 0);
	assert_int_equal(arena_save(a, other), -ENOENT);
	assert_int_equal(arena_save(a, NULL), -EINVAL);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal((uint64_t)st.st_size, arena_size(a));

	assert_int_equal(arena_open_file(&b, path), 0);
	assert_int_equal(arena_is_sealed(b), 1);
	assert_int_equal(verify(b, &e), 0);
	check_alignment(b, 64);
	assert_memory_equal(arena_base(b), arena_base(a), arena_size(a));
	/* a later change to the file cannot reach the loaded arena */
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "XXXX", 4, ARENA_DATA_OFF), 4);
	close(fd);
	assert_int_equal(verify(b, &e), 0);
	assert_int_equal(verify_in_child(b, &e), 0);
	arena_close(b);

	/* a saved image of an opened arena is the same image */
	assert_int_equal(arena_save(a, path), 0);
	assert_int_equal(arena_open_file(&b, path), 0);
	assert_int_equal(arena_save(b, path), 0);
	arena_close(b);
	assert_int_equal(arena_open_file(&b, path), 0);
	assert_int_equal(verify(b, &e), 0);
	arena_close(b);

	img = image_of(a, &len);
	/* corrupt: magic, then version, then a table entry */
	img[0] ^= 0x40;
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_int_equal(write(fd, img, len), (ssize_t)len);
	close(fd);
	assert_int_equal(arena_open_file(&b, path), -EBADMSG);
	img[0] ^= 0x40;
	img[offsetof(struct arena_hdr, version)] = 9;
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_int_equal(write(fd, img, len), (ssize_t)len);
	close(fd);
	assert_int_equal(arena_open_file(&b, path), -EPROTONOSUPPORT);
	img[offsetof(struct arena_hdr, version)] = ARENA_FORMAT_VERSION;
	memset(img + len - 16, 0xff, 16);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_int_equal(write(fd, img, len), (ssize_t)len);
	close(fd);
	assert_int_equal(arena_open_file(&b, path), -EBADMSG);
	/* truncated: by one byte, to the header, to nothing */
	assert_int_equal(arena_save(a, path), 0);
	assert_int_equal(truncate(path, (off_t)len - 1), 0);
	assert_int_equal(arena_open_file(&b, path), -EBADMSG);
	assert_int_equal(truncate(path, 4096), 0);
	assert_int_equal(arena_open_file(&b, path), -EBADMSG);
	assert_int_equal(truncate(path, 100), 0);
	assert_int_equal(arena_open_file(&b, path), -EBADMSG);
	assert_int_equal(truncate(path, 0), 0);
	assert_int_equal(arena_open_file(&b, path), -EBADMSG);
	/* not there, not a file */
	assert_int_equal(arena_open_file(&b, other), -ENOENT);
	assert_int_equal(arena_open_file(&b, dir), -EINVAL);
	assert_int_equal(arena_open_file(&b, NULL), -EINVAL);
	assert_int_equal(arena_open_file(NULL, path), -EINVAL);
	leaks_end(&l);

	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	arena_close(a);
	free(img);
	free(e.len);
}

static void test_strerror(void **state)
{
	static const int codes[] = {
		0, -EBADMSG, -EPROTONOSUPPORT, -EPERM, -ERANGE, -EMSGSIZE,
		-EOWNERDEAD, -ECANCELED, -EAGAIN, -ETIMEDOUT, -EROFS, -EPIPE,
		-ENODATA, -EINVAL, -ENOMEM, -EBADF, -ENOSPC, -EFBIG, -EPERM,
		-ENOENT, -ECONNRESET, -ESRCH, 1, 12345, -12345, INT_MAX, INT_MIN,
	};
	size_t k;

	(void)state;
	for (k = 0; k < sizeof(codes) / sizeof(codes[0]); k++) {
		const char *s = arena_strerror(codes[k]);

		assert_non_null(s);
		assert_true(strlen(s) > 0);
	}
	/* libarena's meanings differ from the plain errno text */
	assert_string_not_equal(arena_strerror(-EBADMSG), strerror(EBADMSG));
	assert_string_not_equal(arena_strerror(-EPERM), strerror(EPERM));
	assert_string_not_equal(arena_strerror(-ERANGE), strerror(ERANGE));
	assert_string_not_equal(arena_strerror(-EOWNERDEAD), strerror(EOWNERDEAD));
	assert_string_equal(arena_strerror(-ENOENT), strerror(ENOENT));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_empty_items),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_sealed_is_readonly),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_self_append),
		cmocka_unit_test(test_seal_failure),
		cmocka_unit_test(test_many_small),
		cmocka_unit_test(test_huge_items),
		cmocka_unit_test(test_sparse_over_4g),
		cmocka_unit_test(test_corrupt_header),
		cmocka_unit_test(test_corrupt_table),
		cmocka_unit_test(test_fuzz),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_unsealed),
		cmocka_unit_test(test_wrong_fds),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_strerror),
	};
	const char *s = getenv("ARENA_TEST_SEED"), *only = getenv("ARENA_TEST_FILTER");

	g_seed = s && *s ? strtoull(s, NULL, 0) : now_ns();
	print_message("test_arena: seed %" PRIu64 " (ARENA_TEST_SEED)\n", g_seed);
	if (only && *only)
		cmocka_set_test_filter(only); /* e.g. "test_sparse*" */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
