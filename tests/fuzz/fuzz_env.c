/* SPDX-License-Identifier: MIT */
/*
 * The ARENA_FD spec a child finds in its environment, through
 * arena_attach_env.  Fds 200-205 hold, for each input: a sealed arena memfd,
 * a channel for it, the same arena unsealed, a pipe, a directory, and a
 * channel for another arena.  Properties: no sanitizer report; on success
 * the arena is usable and the spec's fds are gone (the arena keeps a
 * duplicate); on failure every fd named is left open; no fd leaks.
 */
#define _GNU_SOURCE
#include "fuzz_util.h"

#define FD0 200
#define NFD 6

static void install(void)
{
	struct arena *a = fuzz_arena(), *b;
	int p[2], fds[NFD], i;
	char img[8192];
	ssize_t n;

	fds[0] = dup(arena_fd(a));
	fds[1] = fuzz_channel_fd(a, 1, 4);
	n = pread(arena_fd(a), img, sizeof(img), 0);
	fds[2] = fuzz_memfd(img, n > 0 ? (size_t)n : 0, 0);
	if (pipe(p) < 0)
		abort();
	close(p[1]);
	fds[3] = p[0];
	fds[4] = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (arena_create(&b, NULL) < 0 || arena_seal(b) < 0)
		abort();
	fds[5] = fuzz_channel_fd(b, 2, 8);
	arena_close(b);
	arena_close(a);
	for (i = 0; i < NFD; i++) {
		if (fds[i] < 0 || dup2(fds[i], FD0 + i) < 0)
			abort();
		close(fds[i]);
	}
}

static void uninstall(void)
{
	int i;

	for (i = 0; i < NFD; i++)
		close(FD0 + i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena *a = NULL;
	char spec[256];
	int before, open_before[NFD], i, cfd = -2, r;

	if (size >= sizeof(spec))
		return 0;
	memcpy(spec, data, size);
	spec[size] = 0;
	install();
	before = fuzz_count_fds();
	for (i = 0; i < NFD; i++)
		open_before[i] = fcntl(FD0 + i, F_GETFD) >= 0;
	r = arena_attach_env(&a, (size & 1) ? &cfd : NULL, spec);
	if (r == 0) {
		const void *p;
		size_t l;
		uint64_t k;

		for (k = 0; k < arena_count(a); k++) {
			FUZZ_CHECK(arena_get(a, k, &p, &l) == 0);
			fuzz_touch(p, l);
		}
		FUZZ_CHECK(arena_is_sealed(a));
		if (cfd >= 0)
			close(cfd);
		arena_close(a);
		/* the named fds were consumed: at most two fewer */
		FUZZ_CHECK(fuzz_count_fds() >= before - 2 && fuzz_count_fds() <= before - 1);
	} else {
		FUZZ_CHECK(a == NULL);
		FUZZ_CHECK(cfd == -1 || cfd == -2);
		for (i = 0; i < NFD; i++)
			FUZZ_CHECK(open_before[i] == (fcntl(FD0 + i, F_GETFD) >= 0));
		FUZZ_CHECK(fuzz_count_fds() == before);
	}
	uninstall();
	return 0;
}
