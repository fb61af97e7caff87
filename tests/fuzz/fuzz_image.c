/* SPDX-License-Identifier: MIT */
/*
 * An arena image from a peer: arena_open_fd (sealed and unsealed memfds) and
 * arena_open_file, then every item is read (a bad table entry that passed
 * validation faults or trips ASan).
 * Input: byte 0 = mode (bit 0: seal, bit 1: through arena_open_file, bit 2:
 * raw image), then either the raw image or, by default, the 128-byte header
 * followed by the bytes from offset 4096 on (the header page's padding is
 * zero), so that small inputs reach the table and the items.
 */
#define _GNU_SOURCE
#include "fuzz_util.h"

#define DATA_OFF 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena *a = NULL;
	struct arena_info info;
	uint8_t mode, *img = NULL;
	size_t len;
	uint64_t i, n;
	int fd, r;

	if (size < 1 || size > (1u << 20))
		return 0;
	mode = data[0];
	data++, size--;
	if (mode & 4) {
		len = size;
		img = malloc(len ? len : 1);
		if (!img)
			return 0;
		memcpy(img, data, len);
	} else {
		size_t h = size < 128 ? size : 128;

		len = size <= 128 ? h : DATA_OFF + (size - 128);
		img = calloc(1, len ? len : 1);
		if (!img)
			return 0;
		memcpy(img, data, h);
		if (size > 128)
			memcpy(img + DATA_OFF, data + 128, size - 128);
	}
	fd = fuzz_memfd(img, len, mode & 1);
	free(img);
	if (fd < 0)
		return 0;
	if (mode & 2) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		r = arena_open_file(&a, path);
	} else {
		r = arena_open_fd(&a, fd, (mode & 1) ? 0 : ARENA_OPEN_UNSEALED);
	}
	close(fd);
	if (r < 0) {
		FUZZ_CHECK(a == NULL);
		return 0;
	}
	FUZZ_CHECK(arena_info(a, &info) == 0);
	n = arena_count(a);
	FUZZ_CHECK(n == info.count);
	for (i = 0; i < n; i++) {
		const void *p;
		size_t l;

		FUZZ_CHECK(arena_get(a, i, &p, &l) == 0);
		FUZZ_CHECK(l == 0 || fuzz_inside(arena_base(a), arena_size(a), p, l));
		fuzz_touch(p, l);
	}
	{
		const void *p;
		size_t l;

		FUZZ_CHECK(arena_get(a, n, &p, &l) == -ERANGE);
	}
	arena_close(a);
	return 0;
}
