/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the cmocka test programs: fd counting, child status
 * checks.  A forked child never calls cmocka asserts: it _exit()s with a code
 * and the parent asserts on the wait status.
 */
#ifndef ARENA_TESTUTIL_H
#define ARENA_TESTUTIL_H

#define _GNU_SOURCE
#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

/* Number of open fds of this process. */
static inline int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* Number of pidfds this process holds (fds that are anon_inode:[pidfd]). */
static inline int count_pidfds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], link[64];
		ssize_t l;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		l = readlink(path, link, sizeof(link) - 1);
		if (l <= 0)
			continue;
		link[l] = 0;
		n += strcmp(link, "anon_inode:[pidfd]") == 0;
	}
	closedir(d);
	return n;
}

/* Number of mappings of this process (lines of /proc/self/maps). */
static inline int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, c;

	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Reads /proc/<name>/stat into buf (n bytes) and returns its fields after
 * the command, the state first (the command may hold spaces and ')'), or
 * NULL when the process is gone or the line is cut short. */
static inline const char *proc_stat(const char *name, char *buf, size_t n)
{
	char path[300], *rp;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/stat", name);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	buf[0] = 0;
	if (!fgets(buf, (int)n, f))
		buf[0] = 0;
	fclose(f);
	rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' ? rp + 2 : NULL;
}

/* The parent of process `name` (a /proc entry), or -1. */
static inline int proc_ppid(const char *name)
{
	char buf[512];
	const char *st;
	int ppid = -1;

	if (name[0] < '0' || name[0] > '9')
		return -1;
	st = proc_stat(name, buf, sizeof(buf));
	if (!st || sscanf(st, "%*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

/* Number of children of this process that exist (zombies included), found
 * by scanning /proc: children forked by any of our threads count. */
static inline int count_children(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0, me = getpid();

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (proc_ppid(e->d_name) == me)
			n++;
	closedir(d);
	return n;
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Waits for pid and returns its exit code, or 128+signal. */
static inline int wait_code(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

/* 1 when running under a sanitizer build (slower: shrink big loops). */
static inline int under_sanitizer(void)
{
	const char *s = getenv("SAN");
	return s && *s;
}

/* 1 under make valgrind: a traced child's exit code is valgrind's when it
 * finds a leak in what the child inherited, and an exec always finds
 * valgrind itself. */
static inline int under_valgrind(void)
{
	const char *s = getenv("SAN");
	return s && !strcmp(s, "valgrind");
}

#ifdef TESTUTIL_POOL_KNOBS /* defined by programs that use lib/pool_test.h */
#include <errno.h>
#include "arena.h"
#include "pool_test.h"

/*
 * arena_pool_create, through the test knobs no_pidfd and runs when asked: a
 * pool without pidfds must hold none at all (a knob that did nothing fails
 * the test with -EBADFD).
 */
static inline int pool_create_knobs(struct arena_pool **p, const struct arena *a,
				    const struct arena_pool_opts *o, int no_pidfd, int runs)
{
	struct arena_pool_test_opts t = { .o = *o, .no_pidfd = no_pidfd != 0,
					  .runs = runs != 0 };
	int before = count_pidfds(), r;

	if (!no_pidfd && !runs)
		return arena_pool_create(p, a, o);
	t.o.flags |= ARENA_POOL_TEST_OPTS;
	r = arena_pool_create(p, a, &t.o);
	if (r == 0 && no_pidfd && count_pidfds() != before)
		return -EBADFD;
	return r;
}

static inline int pool_create_pidfd_or_not(struct arena_pool **p, const struct arena *a,
					   const struct arena_pool_opts *o, int no_pidfd)
{
	return pool_create_knobs(p, a, o, no_pidfd, 0);
}
#endif

#endif
