/* SPDX-License-Identifier: MIT */
/* Helpers shared by the libFuzzer harnesses (tests/fuzz/README.md). */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c)                                                         \
	do {                                                                  \
		if (!(c)) {                                                   \
			fprintf(stderr, "%s:%d: property violated: %s\n",     \
				__FILE__, __LINE__, #c);                      \
			abort();                                              \
		}                                                             \
	} while (0)

/* A memfd holding `len` bytes of `data`; sealed (shrink, grow, write) when
 * `seal`.  -1 on failure. */
static inline int fuzz_memfd(const void *data, size_t len, int seal)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	size_t done = 0;

	if (fd < 0)
		return -1;
	while (done < len) {
		ssize_t n = write(fd, (const char *)data + done, len - done);

		if (n <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A small sealed arena: items of sizes 0, 1, 7, 100, 5000 with known bytes. */
static inline struct arena *fuzz_arena(void)
{
	static const size_t sizes[] = { 0, 1, 7, 100, 5000 };
	struct arena *a = NULL;
	char buf[5000];
	unsigned i;

	if (arena_create(&a, NULL) < 0)
		abort();
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memset(buf, 'a' + (int)i, sizes[i]);
		if (arena_append(a, buf, sizes[i], NULL) < 0)
			abort();
	}
	if (arena_seal(a) < 0)
		abort();
	return a;
}

/* Reads every byte of [p, p+len): a read outside the mapping faults. */
static inline unsigned fuzz_touch(const void *p, size_t len)
{
	const volatile uint8_t *b = p;
	unsigned s = 0;
	size_t i;

	for (i = 0; i < len; i++)
		s += b[i];
	return s;
}

/* [p, p+len) lies within [base, base+size). */
static inline int fuzz_inside(const void *base, uint64_t size, const void *p, uint64_t len)
{
	uintptr_t b = (uintptr_t)base, q = (uintptr_t)p;

	return q >= b && q - b <= size && len <= size - (q - b);
}

static inline int fuzz_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* A channel memfd (the layout a pool creates) serving arena `a`; its fd,
 * or -1.  Uses the library's private chan_create (the harnesses link the
 * library's objects, not the export-filtered archive). */
#include "channel.h"
static inline int fuzz_channel_fd(const struct arena *a, uint32_t workers, uint32_t depth)
{
	struct chan_params prm = { .workers = workers, .depth = depth,
				   .res_bytes = 4096, .arena_size = arena_size(a) };
	struct chan c;
	int fd = -1;

	memset(&c, 0, sizeof(c));
	if (chan_create(&c, &fd, &prm) < 0)
		return -1;
	chan_unmap(&c);
	return fd;
}

#endif
