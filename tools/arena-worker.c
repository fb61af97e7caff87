/* SPDX-License-Identifier: MIT */
/*
 * arena-worker: the program a pool execs for its workers when
 * arena_pool_opts.worker_path names it.  It runs the default task (copy the
 * item) or a task function loaded from a shared object with --task.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arena.h>

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [--task LIB.so:SYMBOL]\n"
		"\n"
		"Worker process for a libarena pool started with worker_path.  It\n"
		"attaches to the arena and channel named in ARENA_FD and ARENA_WORKER\n"
		"(set by the pool) and runs tasks until the pool stops.\n"
		"\n"
		"  --task LIB.so:SYMBOL  run SYMBOL from LIB.so, an arena_task_fn\n"
		"                        (int SYMBOL(struct arena_task *)); default:\n"
		"                        arena_task_get_item (copy or reference item)\n"
		"  --help                this text\n"
		"\n"
		"Exit status: 0 after the pool stops; 1 when the environment or the\n"
		"channel is invalid or the task cannot be loaded; 2 on bad usage.\n",
		prog);
}

/* Loads "lib.so:symbol" (the last ':' separates, so paths may hold one). */
static arena_task_fn load_task(const char *spec)
{
	char *lib = strdup(spec), *sym;
	void *h, *f;

	if (!lib) {
		fprintf(stderr, "arena-worker: out of memory\n");
		return NULL;
	}
	sym = strrchr(lib, ':');
	if (!sym || sym == lib || !sym[1]) {
		fprintf(stderr, "arena-worker: --task wants LIB.so:SYMBOL, got '%s'\n", spec);
		free(lib);
		return NULL;
	}
	*sym++ = 0;
	h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "arena-worker: %s\n", dlerror());
		free(lib);
		return NULL;
	}
	dlerror();
	f = dlsym(h, sym);
	if (!f) {
		const char *e = dlerror();

		fprintf(stderr, "arena-worker: %s: %s\n", sym, e ? e : "symbol is NULL");
		free(lib);
		return NULL;
	}
	free(lib);
	/* The handle stays open: the task runs until exit. */
	return (arena_task_fn)(uintptr_t)f;
}

int main(int argc, char **argv)
{
	const char *task = NULL;
	arena_task_fn fn = NULL;
	int i, r;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout, argv[0]);
			return 0;
		} else if (!strcmp(argv[i], "--task") && i + 1 < argc) {
			task = argv[++i];
		} else if (!strncmp(argv[i], "--task=", 7)) {
			task = argv[i] + 7;
		} else {
			fprintf(stderr, "arena-worker: unknown argument '%s'\n", argv[i]);
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (task) {
		fn = load_task(task);
		if (!fn)
			return 1;
	}
	r = arena_worker_main(fn, NULL);
	if (r < 0) {
		fprintf(stderr, "arena-worker: %s%s\n", arena_strerror(r),
			r == -EINVAL ? " (ARENA_FD/ARENA_WORKER missing or malformed: "
				       "start me from a pool with worker_path)" :
			r == -EBADF ? " (ARENA_WORKER's wake fd is not a pipe's write end)" : "");
		return 1;
	}
	return r;
}
