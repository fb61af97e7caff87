/* SPDX-License-Identifier: MIT */
/*
 * Task functions for exec'd workers in the tests, loaded by arena-worker with
 * --task build/tests/libtesttask.so:SYMBOL.  arena_get() resolves against the
 * worker program, which exports libarena's symbols (-rdynamic).
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>

#include <arena.h>

int test_upper(struct arena_task *t);
int test_poison(struct arena_task *t);

/* The item, ASCII letters upper-cased. */
int test_upper(struct arena_task *t)
{
	const unsigned char *src;
	unsigned char *dst = t->out;
	const void *d;
	size_t len, i;
	int r;

	r = arena_get(t->arena, t->index, &d, &len);
	if (r < 0)
		return r;
	if (len > t->out_cap || len > INT32_MAX)
		return -EMSGSIZE;
	src = d;
	for (i = 0; i < len; i++)
		dst[i] = src[i] >= 'a' && src[i] <= 'z' ? (unsigned char)(src[i] - 32) : src[i];
	return (int)len;
}

/* Kills its worker every time: the pool must turn it into -EOWNERDEAD.
 * SIGKILL rather than a fault, so sanitizer builds print no report. */
int test_poison(struct arena_task *t)
{
	raise(SIGKILL);
	return 0;
}
