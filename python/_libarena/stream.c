/* SPDX-License-Identifier: MIT */
/*
 * Streams (Pool.stream()): an _Iter fed by put() from a producer thread and
 * read by get() from a consumer thread, results in put() order.
 */
#include <time.h>

#include "_libarena.h"

static int stream_dispatch_foreign(IterObject *it, PyObject *foreign)
{
	PyObject *x;

	if (!foreign)
		return 0;
	x = PyObject_CallOneArg(it->foreign, foreign);
	Py_DECREF(foreign);
	if (!x)
		return -1;
	Py_DECREF(x);
	return 0;
}

PyObject *Iter_put(IterObject *it, PyObject *arg)
{
	PoolObject *p = it->pool;
	modstate *st = state_of_type(Py_TYPE(p));
	long long v = PyLong_AsLongLong(arg);
	struct arena_sqe sqe;
	struct slot *sl;
	uint64_t s;
	int r;

	if (v == -1 && PyErr_Occurred())
		return NULL;
	if (!it->stream) {
		PyErr_SetString(PyExc_TypeError, "put() is for streams (Pool.stream())");
		return NULL;
	}
	if (pool_check(p) < 0)
		return NULL;
	if (v < 0 || v >= p->arena->count) {
		PyErr_Format(PyExc_IndexError, "item index %lld out of range", v);
		return NULL;
	}
	/* The window: results are handed out in order, so a slow first task
	 * holds back at most `depth` slots of later ones. */
	while (it->tail - it->head >= it->depth) {
		/* binary semaphore, as evt */
		it->room_wait = 1;
		Py_BEGIN_ALLOW_THREADS
		PyThread_acquire_lock_timed(it->room, WAIT_SLICE_NS / 1000, 0);
		Py_END_ALLOW_THREADS
		it->room_wait = 0;
		if (PyErr_CheckSignals() < 0 || pool_check(p) < 0)
			return NULL;
	}
	/* The slot is ours before the task is submitted: the consumer may
	 * reap its completion while we wait, the GIL released, for submit to
	 * return.  Undone if it is not submitted (one producer per stream). */
	s = it->tail;
	sl = &it->slots[s % it->cap];
	sl->state = SLOT_RUNNING;
	sl->index = (uint64_t)v;
	sl->value = NULL;
	it->tail = s + 1;
	if (it->empty_wait) {
		it->empty_wait = 0;
		PyThread_release_lock(it->evt);
	}
	sqe = (struct arena_sqe){ .index = (uint64_t)v, .user_data = it->uid0 + s };
	for (;;) {
		struct submit_arg sa = { &sqe, 1 };
		PyObject *foreign = NULL;

		r = submit_op(p, &sa, 0);
		if (r != -EAGAIN && r != -ETIMEDOUT)
			break;
		/* The pool is full.  A consumer in get() reaps: wait for room
		 * in the library.  Otherwise take what is done without
		 * waiting (never block in reap here: a get() that comes would
		 * find us holding its completions while it waits). */
		if (!it->getting) {
			r = reap_some(p, st, REAP_MAX, 0, it, &foreign);
			if (stream_dispatch_foreign(it, foreign) < 0 || r == -1 || pool_check(p) < 0) {
				r = -EINTR;
				break;
			}
			if (r > 0)
				continue;
		}
		r = wait_sliced(p, submit_op, &sa, 1000 * 1000);
		if (r != -ETIMEDOUT)
			break;
	}
	if (r < 0) {
		if (r != -EINTR)
			set_error(st, r, "submit");
		sl->state = SLOT_FREE;
		it->tail = s;
		return NULL;
	}
	Py_RETURN_NONE;
}

PyObject *Iter_get(IterObject *it, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "timeout", NULL };
	PoolObject *p = it->pool;
	modstate *st = state_of_type(Py_TYPE(p));
	double timeout = -1;
	double deadline = 0;
	PyObject *out = NULL;
	int r;

	PyObject *t = Py_None;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:get", kwlist, &t))
		return NULL;
	if (t != Py_None && (timeout = PyFloat_AsDouble(t)) == -1 && PyErr_Occurred())
		return NULL;
	if (!it->stream) {
		PyErr_SetString(PyExc_TypeError, "get() is for streams (Pool.stream())");
		return NULL;
	}
	if (timeout >= 0) {
		struct timespec now;

		clock_gettime(CLOCK_MONOTONIC, &now);
		deadline = now.tv_sec + now.tv_nsec / 1e9 + timeout;
	}
	for (;;) {
		PyObject *foreign = NULL;
		int64_t slice = WAIT_SLICE_NS;

		if (iter_take(it, &out))
			return out;   /* NULL: the task's exception is raised */
		if (pool_check(p) < 0)
			return NULL;
		if (timeout >= 0) {
			struct timespec now;
			double left;

			clock_gettime(CLOCK_MONOTONIC, &now);
			left = deadline - (now.tv_sec + now.tv_nsec / 1e9);
			if (left <= 0) {
				PyErr_SetString(PyExc_TimeoutError, "no result within the timeout");
				return NULL;
			}
			if (left * 1e9 < slice)
				slice = (int64_t)(left * 1e9) + 1;
		}
		if (it->head == it->tail) {
			/* Nothing put yet: wait for put() to post evt (a
			 * binary semaphore: one post per wait at most). */
			PyLockStatus ls;

			it->empty_wait = 1;
			Py_BEGIN_ALLOW_THREADS
			ls = PyThread_acquire_lock_timed(it->evt, slice / 1000, 0);
			Py_END_ALLOW_THREADS
			(void)ls;
			it->empty_wait = 0;
			if (PyErr_CheckSignals() < 0)
				return NULL;
			continue;
		}
		/* What is done already, without letting the GIL go (a
		 * hand-off to the producer and back costs more than a look). */
		r = reap_some(p, st, REAP_MAX, 0, it, &foreign);
		if (r == 0) {
			it->getting++;
			r = reap_some(p, st, REAP_MAX, slice, it, &foreign);
			it->getting--;
		}
		if (stream_dispatch_foreign(it, foreign) < 0 || r == -1)
			return NULL;
		if (r == -2) {
			PyErr_SetString(PyExc_ValueError, "the pool was stopped");
			return NULL;
		}
	}
}
