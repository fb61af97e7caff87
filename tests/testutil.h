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

/* Number of children of this process that exist (zombies included), found
 * by scanning /proc: children forked by any of our threads count. */
static inline int count_children(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0, me = getpid();

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], buf[512], *rp;
		FILE *f;
		int ppid;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		buf[0] = 0;
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
		rp = strrchr(buf, ')');
		if (rp && sscanf(rp + 2, "%*c %d", &ppid) == 1 && ppid == me)
			n++;
	}
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

#endif
