/* SPDX-License-Identifier: MIT */
/*
 * Tasks into a pool: submit() for a list of indices, submit_range() for
 * consecutive items, and the ops under them that iterators and streams call
 * too.
 */
#include "_libarena.h"

int submit_op(PoolObject *self, void *arg, int64_t t)
{
	struct submit_arg *sa = arg;
	int r = arena_pool_submit(self->p, sa->sqes, sa->n, t);

	return r == 0 ? -ETIMEDOUT : r;
}

PyObject *Pool_submit(PoolObject *self, PyObject *args)
{
	modstate *st = state_of_type(Py_TYPE(self));
	struct arena_sqe sqes[SUBMIT_MAX];
	unsigned long long uid;
	long long timeout_ns = -1;
	PyObject *indices, *seq;
	Py_ssize_t n, k, done = 0;
	int r = 0;

	if (!PyArg_ParseTuple(args, "OK|L:submit", &indices, &uid, &timeout_ns))
		return NULL;
	if (pool_check(self) < 0)
		return NULL;
	seq = PySequence_Fast(indices, "indices must be a sequence of ints");
	if (!seq)
		return NULL;
	n = PySequence_Fast_GET_SIZE(seq);
	while (done < n) {
		struct submit_arg sa = { sqes, 0 };

		for (k = done; k < n && sa.n < SUBMIT_MAX; k++, sa.n++) {
			long long i = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, k));

			if (i == -1 && PyErr_Occurred())
				goto fail;
			if (i < 0 || i >= self->arena->count) {
				PyErr_Format(PyExc_IndexError, "item index %lld out of range", i);
				goto fail;
			}
			sqes[sa.n] = (struct arena_sqe){ .index = (uint64_t)i,
							 .user_data = uid + (uint64_t)k };
		}
		r = wait_sliced(self, submit_op, &sa, timeout_ns);
		if (r == -EINTR)
			goto fail;
		if (r == -EAGAIN || r == -ETIMEDOUT)
			break;
		if (r < 0) {
			set_error(st, r, "submit");
			goto fail;
		}
		done += r;
	}
	Py_DECREF(seq);
	return PyLong_FromSsize_t(done);
fail:
	Py_DECREF(seq);
	if (done > 0) {
		/* Tasks are in flight: say how many so the caller can track
		 * them, on the exception. */
		PyObject *t, *v, *tb;

		PyErr_Fetch(&t, &v, &tb);
		PyErr_NormalizeException(&t, &v, &tb);
		if (v) {
			PyObject *d = PyLong_FromSsize_t(done);

			if (d) {
				PyObject_SetAttrString(v, "submitted", d);
				Py_DECREF(d);
			}
		}
		PyErr_Restore(t, v, tb);
	}
	return NULL;
}

int range_op(PoolObject *self, void *arg, int64_t t)
{
	struct range_arg *ra = arg;
	int r;
#ifdef HAVE_SUBMIT_RANGE
	r = arena_pool_submit_range(self->p, ra->first, ra->count, ra->uid, 0, t);
#else
	struct arena_sqe sqes[SUBMIT_MAX];
	uint32_t k, n = ra->count < SUBMIT_MAX ? ra->count : SUBMIT_MAX;

	for (k = 0; k < n; k++)
		sqes[k] = (struct arena_sqe){ .index = ra->first + k, .user_data = ra->uid + k };
	r = arena_pool_submit(self->p, sqes, n, t);
#endif
	return r == 0 ? -ETIMEDOUT : r;
}

PyObject *Pool_submit_range(PoolObject *self, PyObject *args)
{
	modstate *st = state_of_type(Py_TYPE(self));
	unsigned long long first, count, uid;
	long long timeout_ns = -1;
	uint64_t done = 0;
	int r;

	if (!PyArg_ParseTuple(args, "KKK|L:submit_range", &first, &count, &uid, &timeout_ns))
		return NULL;
	if (pool_check(self) < 0)
		return NULL;
	if (count && (first >= (uint64_t)self->arena->count || count > (uint64_t)self->arena->count - first)) {
		PyErr_SetString(PyExc_IndexError, "item range out of range");
		return NULL;
	}
	while (done < count) {
		struct range_arg ra = { first + done, uid + done,
					count - done > UINT32_MAX ? UINT32_MAX : (uint32_t)(count - done) };

		r = wait_sliced(self, range_op, &ra, timeout_ns);
		if (r == -EINTR)
			return NULL;
		if (r == -EAGAIN || r == -ETIMEDOUT)
			break;
		if (r < 0)
			return set_error(st, r, "submit");
		done += (uint64_t)r;
	}
	return PyLong_FromUnsignedLongLong(done);
}
