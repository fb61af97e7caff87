/* SPDX-License-Identifier: MIT */
/*
 * The consumer side of a pool: completions reaped, their records (written by
 * a worker: checked before use) decoded into results or exceptions, and
 * handed to the iterator that owns them or returned to the caller.
 */
#include "_libarena.h"

/* An exception instance for a failed completion (not raised). */
static PyObject *status_error(modstate *st, const struct arena_cqe *c)
{
	PyObject *t, *v, *tb;
	char what[96];

	snprintf(what, sizeof(what), "task for item %llu", (unsigned long long)c->index);
	set_error_ex(st, c->status, what, ERR_TASK, NULL);
	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	Py_XDECREF(t);
	Py_XDECREF(tb);
	return v;
}

/* The exception a task raised, with the worker's traceback as its cause and a
 * note naming the item. */
static PyObject *task_error(modstate *st, const struct arena_cqe *c, PyObject *payload)
{
	PyObject *exc, *text, *cause, *note;

	if (!PyTuple_Check(payload) || (PyTuple_GET_SIZE(payload) != 2 && PyTuple_GET_SIZE(payload) != 4))
		return set_error(st, -EBADMSG, "task error record");
	if (PyTuple_GET_SIZE(payload) == 2) {
		exc = Py_NewRef(PyTuple_GET_ITEM(payload, 0));
		text = PyTuple_GET_ITEM(payload, 1);
	} else {
		exc = PyObject_CallFunction(st->TaskError, "OO", PyTuple_GET_ITEM(payload, 1),
					    PyTuple_GET_ITEM(payload, 2));
		text = PyTuple_GET_ITEM(payload, 3);
	}
	if (!exc)
		return NULL;
	if (!PyExceptionInstance_Check(exc)) {
		Py_DECREF(exc);
		return set_error(st, -EBADMSG, "task error record");
	}
	cause = PyObject_CallOneArg(st->RemoteTraceback, text);
	if (cause)
		PyException_SetCause(exc, cause); /* steals */
	note = PyUnicode_FromFormat("raised by the libarena task for item %llu (worker %u)",
				    (unsigned long long)c->index, c->worker);
	if (note) {
		PyObject *r = PyObject_CallMethod(exc, "add_note", "O", note);

		Py_XDECREF(r);
		Py_DECREF(note);
	}
	PyErr_Clear();
	return exc;
}

/* A view of len bytes of a result that holds its space until it dies. */
static ViewObject *result_view(PoolObject *self, modstate *st, const struct arena_cqe *c,
			       const void *p, size_t len, int hold)
{
	ViewObject *v = view_new(st, p, len);

	if (v && hold) {
		v->pool = (PoolObject *)Py_NewRef(self);
		v->cqe = *c;
		self->exports++;
	}
	return v;
}

/* Decodes one completion into *value; returns 1 for a result, 0 for an
 * exception instance, and sets *hold when a view now owns the result space.
 * The record comes from a worker: every field is checked against the
 * completion's validated length. */
static int decode(PoolObject *self, modstate *st, const struct arena_cqe *c,
		  PyObject **value, int *hold)
{
	const uint8_t *p = c->data;
	struct rec h;
	size_t n;
	int big;

	*hold = 0;
	if (c->status < 0) {
		*value = status_error(st, c);
		return 0;
	}
	if (c->len < sizeof(h))
		goto bad;
	memcpy(&h, p, sizeof(h));
	if (h.magic != REC_MAGIC || h.data_off < sizeof(h) || h.data_off > c->len)
		goto bad;
	n = c->len - h.data_off;
	big = (Py_ssize_t)n >= self->view_threshold;
	if (h.tag == REC_RAW) {
		if (!big) {
			*value = PyBytes_FromStringAndSize((const char *)p + h.data_off, (Py_ssize_t)n);
		} else {
			ViewObject *v = result_view(self, st, c, p + h.data_off, n, 1);

			*hold = v != NULL;
			*value = v ? PyMemoryView_FromObject((PyObject *)v) : NULL;
			Py_XDECREF(v);
		}
	} else if (h.tag == REC_ARRAY) {
		ViewObject *v;
		PyObject *mv;

		if (!need_numpy(st))
			goto err;
		v = result_view(self, st, c, p, c->len, big);
		if (!v)
			goto err;
		*hold = big;
		if (view_set_array(st, v, p, c->len) < 0) {
			Py_DECREF(v);
			goto err;
		}
		mv = PyMemoryView_FromObject((PyObject *)v);
		Py_DECREF(v);
		if (!mv)
			goto err;
		/* Small arrays are copied (the space goes back at once), large
		 * ones are read-only views holding the space. */
		*value = PyObject_CallOneArg(big ? st->asarray : st->array, mv);
		Py_DECREF(mv);
	} else if (h.tag == REC_PICKLE || h.tag == REC_ERROR) {
		PyObject *mv = PyMemoryView_FromMemory((char *)p + h.data_off, (Py_ssize_t)n, PyBUF_READ);
		PyObject *obj = mv ? PyObject_CallOneArg(st->loads, mv) : NULL;

		Py_XDECREF(mv);
		if (obj && h.tag == REC_ERROR) {
			*value = task_error(st, c, obj);
			Py_DECREF(obj);
			if (!*value)
				goto err;
			return 0;
		}
		*value = obj;
	} else {
		goto bad;
	}
	if (*value)
		return 1;
	goto err;
bad:
	set_error(st, -EBADMSG, "result record");
err:
	{
		PyObject *t, *v, *tb;

		PyErr_Fetch(&t, &v, &tb);
		PyErr_NormalizeException(&t, &v, &tb);
		Py_XDECREF(t);
		Py_XDECREF(tb);
		*value = v;
		return 0;
	}
}

struct reap_arg {
	struct arena_cqe *cqes;
	unsigned max;
};

static int reap_op(PoolObject *self, void *arg, int64_t t)
{
	struct reap_arg *ra = arg;

	return arena_pool_reap(self->p, ra->cqes, ra->max, t);
}

/*
 * Reaps up to max completions (waiting up to timeout_ns) and decodes them.
 * Those of iterator `it` (may be NULL) go straight into it; the others are
 * appended to *foreign as (uid, index, ok, value) tuples (the list is made
 * when needed).  Results small enough to be copied give their space back in
 * one release_many.  Returns the number reaped, 0 when the wait timed out,
 * -2 when the pool is stopped with nothing in flight, -1 with an exception.
 */
int reap_some(PoolObject *self, modstate *st, unsigned max, int64_t timeout_ns,
	      IterObject *it, PyObject **foreign)
{
	struct arena_cqe cqes[REAP_MAX], done[REAP_MAX];
	struct reap_arg ra = { cqes, max < 1 ? 1 : max > REAP_MAX ? REAP_MAX : max };
	unsigned ndone = 0;
	int r, k, failed = 0;

	r = wait_sliced(self, reap_op, &ra, timeout_ns);
	if (r == -EINTR)
		return -1;
	if (r == -EAGAIN || r == -ETIMEDOUT)
		return 0;
	if (r == -ENODATA)
		return -2;
	if (r < 0) {
		set_error(st, r, "reap");
		return -1;
	}
	for (k = 0; k < r; k++) {
		PyObject *value = NULL, *tup;
		int hold = 0, ok = 0;

		if (!failed)
			ok = decode(self, st, &cqes[k], &value, &hold);
		if (!hold)
			done[ndone++] = cqes[k];
		if (failed) {
			Py_XDECREF(value);
			continue;
		}
		if (it && iter_owns(it, cqes[k].user_data)) {
			iter_store(it, cqes[k].user_data, ok, value);   /* steals value */
			continue;
		}
		if (!*foreign && !(*foreign = PyList_New(0))) {
			Py_XDECREF(value);
			failed = 1;
			continue;
		}
		tup = Py_BuildValue("(KKON)", (unsigned long long)cqes[k].user_data,
				    (unsigned long long)cqes[k].index, ok ? Py_True : Py_False,
				    value ? value : Py_NewRef(Py_None));
		if (!tup || PyList_Append(*foreign, tup) < 0)
			failed = 1;
		Py_XDECREF(tup);
	}
	arena_pool_release_many(self->p, done, ndone);
	return failed ? -1 : r;
}

PyObject *Pool_reap(PoolObject *self, PyObject *args)
{
	modstate *st = state_of_type(Py_TYPE(self));
	long long timeout_ns = -1;
	PyObject *list = NULL;
	int max = REAP_MAX, r;

	if (!PyArg_ParseTuple(args, "|iL:reap", &max, &timeout_ns))
		return NULL;
	if (pool_check(self) < 0)
		return NULL;
	r = reap_some(self, st, (unsigned)(max < 1 ? 1 : max), timeout_ns, NULL, &list);
	if (r == -1) {
		Py_XDECREF(list);
		return NULL;
	}
	if (r == -2)
		Py_RETURN_NONE;
	return list ? list : PyList_New(0);
}
