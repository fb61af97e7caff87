/* SPDX-License-Identifier: MIT */
/*
 * _Iter, the iterator under imap() and imap_unordered(): a window of at most
 * depth tasks in flight, refilled from a range or an iterator of indices, with
 * results handed out in order or as they complete.  The same object is a
 * stream (Pool.stream()) when fed by put(): see stream.c.
 */
#include "_libarena.h"

/* An iterator owns a block of user data values, so that whoever reaps its
 * completions (it, or another thread pumping futures) knows where they go. */
#define ITER_UID_BLOCK (1ull << 40)

int iter_owns(IterObject *it, uint64_t uid)
{
	return uid >= it->uid0 && uid - it->uid0 >= it->head && uid - it->uid0 < it->tail;
}

void iter_store(IterObject *it, uint64_t uid, int ok, PyObject *value)
{
	uint64_t s = uid - it->uid0;
	struct slot *sl = &it->slots[s % it->cap];

	if (sl->state != SLOT_RUNNING) {   /* delivered twice: not possible, drop */
		Py_XDECREF(value);
		return;
	}
	sl->value = value ? value : Py_NewRef(Py_None);
	sl->state = ok ? SLOT_OK : SLOT_EXC;
	if (!it->ordered)
		it->ready[(it->ready_head + it->nready++) % it->cap] = s;
}

/* Fills free slots from the source: one call for a range, one submit for a
 * batch of indices; never blocks (a full pool is reaped instead). */
static int iter_refill(IterObject *it)
{
	PoolObject *p = it->pool;
	modstate *st = state_of_type(Py_TYPE(p));
	struct arena_sqe sqes[SUBMIT_MAX];
	uint64_t s = it->tail;
	unsigned n = 0, k;
	int r;

	/* Consecutive free slots from the tail (ordered: the window is the
	 * slots; unordered: a slot frees when its result is yielded). */
	while (n < it->depth && n < SUBMIT_MAX && it->slots[(s + n) % it->cap].state == SLOT_FREE &&
	       s + n - it->head < it->depth)
		n++;
	if (n == 0 || (it->src_done && !it->nheld))
		return 0;
	if (!it->src) {
		struct range_arg ra;

		if (it->next >= it->stop) {
			it->src_done = 1;
			return 0;
		}
		if (n > it->stop - it->next)
			n = (unsigned)(it->stop - it->next);
		ra = (struct range_arg){ it->next, it->uid0 + s, n };
		r = range_op(p, &ra, 0);
		if (r == -EAGAIN || r == -ETIMEDOUT)
			return 0;
		if (r < 0) {
			set_error(st, r, "submit");
			return -1;
		}
		for (k = 0; k < (unsigned)r; k++) {
			struct slot *sl = &it->slots[(s + k) % it->cap];

			sl->state = SLOT_RUNNING;
			sl->index = it->next + k;
		}
		it->next += (unsigned)r;
		it->tail += (unsigned)r;
		return 0;
	}
	for (k = 0; k < n; k++) {
		uint64_t i;

		if (k < it->nheld) {
			i = it->held[k];
		} else {
			PyObject *o;
			long long v;

			if (it->src_done)
				break;
			o = PyIter_Next(it->src);
			if (!o) {
				if (PyErr_Occurred())
					goto keep;
				it->src_done = 1;
				break;
			}
			v = PyLong_AsLongLong(o);
			Py_DECREF(o);
			if (v == -1 && PyErr_Occurred())
				goto keep;
			if (v < 0 || v >= p->arena->count) {
				PyErr_Format(PyExc_IndexError, "item index %lld out of range", v);
				goto keep;
			}
			i = (uint64_t)v;
		}
		sqes[k] = (struct arena_sqe){ .index = i, .user_data = it->uid0 + s + k };
	}
	if (k == 0)
		return 0;
	{
		struct submit_arg sa = { sqes, k };

		r = submit_op(p, &sa, 0);
	}
	if (r == -EAGAIN || r == -ETIMEDOUT)
		r = 0;
	if (r < 0) {
		set_error(st, r, "submit");
		r = 0;
		goto keep;
	}
	for (n = 0; n < (unsigned)r; n++) {
		struct slot *sl = &it->slots[(s + n) % it->cap];

		sl->state = SLOT_RUNNING;
		sl->index = sqes[n].index;
	}
	it->tail += (unsigned)r;
	/* The pool was full (other users): what was not taken waits here,
	 * in order, for the next call. */
	for (n = (unsigned)r; n < k; n++)
		it->held[n - r] = sqes[n].index;
	it->nheld = k - (unsigned)r;
	return 0;
keep:
	/* An error from the source: what was taken is kept for later. */
	for (n = 0; n < k; n++)
		it->held[n] = sqes[n].index;
	it->nheld = k;
	return -1;
}

/* Takes the next yieldable result, if any: 1 and *out (a result or a raised
 * exception), 0 when none is ready. */
int iter_take(IterObject *it, PyObject **out)
{
	struct slot *sl;
	uint64_t s;
	int ok;

	if (it->ordered) {
		if (it->head == it->tail)
			return 0;
		s = it->head;
		sl = &it->slots[s % it->cap];
		if (sl->state != SLOT_OK && sl->state != SLOT_EXC)
			return 0;
		it->head++;
	} else {
		if (!it->nready)
			return 0;
		s = it->ready[it->ready_head];
		it->ready_head = (it->ready_head + 1) % it->cap;
		it->nready--;
		sl = &it->slots[s % it->cap];
		/* the window's head moves past every seq already yielded */
	}
	ok = sl->state == SLOT_OK;
	*out = sl->value;
	sl->value = NULL;
	sl->state = SLOT_FREE;
	if (it->room_wait) {
		it->room_wait = 0;
		PyThread_release_lock(it->room);
	}
	if (!it->ordered)
		while (it->head < it->tail && it->slots[it->head % it->cap].state == SLOT_FREE)
			it->head++;
	if (!ok) {
		PyObject *e = *out;

		PyErr_SetObject((PyObject *)Py_TYPE(e), e);
		Py_DECREF(e);
		*out = NULL;
		return 1;
	}
	if (it->with_index) {
		PyObject *t = Py_BuildValue("(KN)", (unsigned long long)sl->index, *out);

		*out = t;
	}
	return 1;
}

static PyObject *Iter_next(IterObject *it)
{
	modstate *st = state_of_type(Py_TYPE(it->pool));
	PyObject *out = NULL;

	if (it->err_t) {
		/* the error that came up while the last result was returned */
		PyErr_Restore(it->err_t, it->err_v, it->err_tb);
		it->err_t = it->err_v = it->err_tb = NULL;
		return NULL;
	}
	for (;;) {
		PyObject *foreign = NULL;
		int r;

		if (iter_take(it, &out)) {
			/* out is NULL when the task's exception is raised */
			if (out && iter_refill(it) < 0)
				PyErr_Fetch(&it->err_t, &it->err_v, &it->err_tb);
			return out;
		}
		if (pool_check(it->pool) < 0)
			return NULL;
		if (iter_refill(it) < 0)
			return NULL;
		if (it->head == it->tail && it->src_done && !it->nheld)
			return NULL;   /* StopIteration */
		r = reap_some(it->pool, st, REAP_MAX, WAIT_SLICE_NS, it, &foreign);
		if (foreign) {
			PyObject *x = PyObject_CallOneArg(it->foreign, foreign);

			Py_DECREF(foreign);
			if (!x)
				return NULL;
			Py_DECREF(x);
		}
		if (r == -1)
			return NULL;
		if (r == -2) {
			PyErr_SetString(PyExc_ValueError, "the pool was stopped");
			return NULL;
		}
	}
}

static PyObject *Iter_pending(IterObject *it, void *c)
{
	return PyLong_FromUnsignedLongLong(it->tail - it->head);
}

static PyObject *Iter_owns(IterObject *it, PyObject *arg)
{
	unsigned long long uid = PyLong_AsUnsignedLongLong(arg);

	if (uid == (unsigned long long)-1 && PyErr_Occurred())
		return NULL;
	return PyBool_FromLong(iter_owns(it, uid));
}

static PyObject *Iter_deliver(IterObject *it, PyObject *args)
{
	unsigned long long uid;
	int ok;
	PyObject *value;

	if (!PyArg_ParseTuple(args, "KpO:deliver", &uid, &ok, &value))
		return NULL;
	if (iter_owns(it, uid))
		iter_store(it, uid, ok, Py_NewRef(value));
	Py_RETURN_NONE;
}

static void Iter_dealloc(IterObject *it)
{
	PyTypeObject *tp = Py_TYPE(it);
	uint32_t k;

	PyObject_GC_UnTrack(it);
	if (it->weakrefs)
		PyObject_ClearWeakRefs((PyObject *)it);
	if (it->slots)
		for (k = 0; k < it->cap; k++)
			Py_XDECREF(it->slots[k].value);
	PyMem_Free(it->slots);
	PyMem_Free(it->ready);
	PyMem_Free(it->held);
	if (it->evt)
		PyThread_free_lock(it->evt);
	if (it->room)
		PyThread_free_lock(it->room);
	Py_XDECREF(it->err_t);
	Py_XDECREF(it->err_v);
	Py_XDECREF(it->err_tb);
	Py_XDECREF(it->src);
	Py_XDECREF(it->foreign);
	Py_XDECREF(it->pool);
	tp->tp_free(it);
	Py_DECREF(tp);
}

static int Iter_traverse(IterObject *it, visitproc visit, void *arg)
{
	uint32_t k;

	Py_VISIT(Py_TYPE(it));
	Py_VISIT(it->src);
	Py_VISIT(it->foreign);
	Py_VISIT(it->pool);
	if (it->slots)
		for (k = 0; k < it->cap; k++)
			Py_VISIT(it->slots[k].value);
	return 0;
}

static PyMethodDef Iter_methods[] = {
	{ "owns", (PyCFunction)Iter_owns, METH_O, "owns(uid) -> bool: a task of this iterator in flight" },
	{ "deliver", (PyCFunction)Iter_deliver, METH_VARARGS,
	  "deliver(uid, ok, value): a completion of ours reaped by someone else" },
	{ "put", (PyCFunction)Iter_put, METH_O,
	  "put(i)\n\nSubmits the task for item i; blocks while depth tasks are in flight\n"
	  "(the GIL released).  One producer thread." },
	{ "get", (PyCFunction)(void (*)(void))Iter_get, METH_VARARGS | METH_KEYWORDS,
	  "get(timeout=None) -> result\n\nThe next result in put() order (a task's exception is\n"
	  "raised for that item only).  One consumer thread." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef Iter_getset[] = {
	{ "pending", (getter)Iter_pending, NULL, "tasks put (or submitted) and not yet returned", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyMemberDef Iter_members[] = {
	{ "__weaklistoffset__", T_PYSSIZET, offsetof(IterObject, weakrefs), READONLY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

static PyType_Slot Iter_slots[] = {
	{ Py_tp_doc, "Results of a Pool, streamed with a bounded number of tasks in flight." },
	{ Py_tp_dealloc, Iter_dealloc },
	{ Py_tp_traverse, Iter_traverse },
	{ Py_tp_iter, PyObject_SelfIter },
	{ Py_tp_iternext, Iter_next },
	{ Py_tp_methods, Iter_methods },
	{ Py_tp_getset, Iter_getset },
	{ Py_tp_members, Iter_members },
	{ 0, NULL },
};

PyType_Spec Iter_spec = {
	.name = "libarena._libarena._Iter",
	.basicsize = sizeof(IterObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = Iter_slots,
};

/* _Pool.iterate(indices, ordered, with_index, depth, foreign) */
PyObject *Pool_iterate(PoolObject *self, PyObject *args)
{
	modstate *st = state_of_type(Py_TYPE(self));
	PyObject *indices, *foreign;
	int ordered, with_index;
	unsigned depth;
	IterObject *it;

	if (!PyArg_ParseTuple(args, "OppIO:iterate", &indices, &ordered, &with_index, &depth, &foreign))
		return NULL;
	if (pool_check(self) < 0)
		return NULL;
	if (depth < 1 || depth > (1u << 20)) {
		PyErr_SetString(PyExc_ValueError, "depth out of range");
		return NULL;
	}
	it = PyObject_GC_New(IterObject, st->Iter);
	if (!it)
		return NULL;
	memset((char *)it + sizeof(PyObject), 0, sizeof(*it) - sizeof(PyObject));
	it->pool = (PoolObject *)Py_NewRef(self);
	it->foreign = Py_NewRef(foreign);
	it->ordered = ordered;
	it->with_index = with_index;
	/* A stream's window also holds results reaped and not yet taken, so
	 * that depth tasks stay in flight behind a slow one. */
	it->depth = indices == Py_Ellipsis ? 2 * depth : depth;
	it->cap = it->depth;
	it->uid0 = self->next_uid;
	self->next_uid += ITER_UID_BLOCK;
	it->slots = PyMem_Calloc(it->cap, sizeof(*it->slots));
	it->ready = PyMem_Calloc(it->cap, sizeof(*it->ready));
	it->held = PyMem_Calloc(depth < SUBMIT_MAX ? depth : SUBMIT_MAX, sizeof(*it->held));
	PyObject_GC_Track(it);
	if (!it->slots || !it->ready || !it->held) {
		Py_DECREF(it);
		return PyErr_NoMemory();
	}
	if (indices == Py_Ellipsis) {
		it->stream = 1;       /* fed by put() */
		it->src_done = 1;
		it->evt = PyThread_allocate_lock();
		it->room = PyThread_allocate_lock();
		if (!it->evt || !PyThread_acquire_lock(it->evt, 0) ||
		    !it->room || !PyThread_acquire_lock(it->room, 0)) {
			Py_DECREF(it);
			return PyErr_NoMemory();
		}
	} else if (indices == Py_None) {
		it->next = 0;
		it->stop = (uint64_t)self->arena->count;
	} else if (PyRange_Check(indices)) {
		/* consecutive items go as ranges: no list of ints */
		PyObject *r = PyObject_GetAttrString(indices, "step");
		long step = r ? PyLong_AsLong(r) : 0;
		Py_XDECREF(r);
		if (step == 1) {
			PyObject *a = PyObject_GetAttrString(indices, "start");
			PyObject *b = PyObject_GetAttrString(indices, "stop");
			long long lo = a ? PyLong_AsLongLong(a) : -1, hi = b ? PyLong_AsLongLong(b) : -1;

			Py_XDECREF(a);
			Py_XDECREF(b);
			if (PyErr_Occurred()) {
				Py_DECREF(it);
				return NULL;
			}
			if (hi < lo)
				hi = lo;
			if (lo < 0 || hi > self->arena->count) {
				Py_DECREF(it);
				PyErr_SetString(PyExc_IndexError, "item range out of range");
				return NULL;
			}
			it->next = (uint64_t)lo;
			it->stop = (uint64_t)hi;
			return (PyObject *)it;
		}
		PyErr_Clear();
		goto general;
	} else {
general:
		it->src = PyObject_GetIter(indices);
		if (!it->src) {
			Py_DECREF(it);
			return NULL;
		}
	}
	return (PyObject *)it;
}
