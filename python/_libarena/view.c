/* SPDX-License-Identifier: MIT */
/*
 * _View, the object under every memoryview the module hands out: a read-only
 * span of an arena item or of a result.  It holds what it points at (the
 * arena, or the pool and the result's space) until it dies.
 */
#include "_libarena.h"

static void View_dealloc(ViewObject *v)
{
	PyTypeObject *tp = Py_TYPE(v);

	if (v->arena) {
		if (--v->arena->exports == 0 && v->arena->closing)
			arena_finish_close(v->arena);
		Py_DECREF(v->arena);
	}
	if (v->pool) {
		pool_view_released(v->pool, &v->cqe);
		Py_DECREF(v->pool);
	}
	tp->tp_free(v);
	Py_DECREF(tp);
}

static int View_getbuffer(ViewObject *v, Py_buffer *view, int flags)
{
	if (flags & PyBUF_WRITABLE) {
		PyErr_SetString(PyExc_BufferError, "libarena views are read-only");
		return -1;
	}
	view->obj = Py_NewRef(v);
	view->buf = (void *)v->ptr;
	view->len = v->len;
	view->readonly = 1;
	view->itemsize = v->itemsize;
	view->format = (flags & PyBUF_FORMAT) ? v->format : NULL;
	view->ndim = v->ndim;
	view->shape = (flags & PyBUF_ND) ? v->shape : NULL;
	view->strides = NULL; /* C-contiguous */
	view->suboffsets = NULL;
	view->internal = NULL;
	if (!(flags & PyBUF_ND) && v->ndim > 1) {
		view->ndim = 1;
		view->itemsize = 1;
	}
	if (!(flags & PyBUF_ND))
		view->ndim = 1;
	return 0;
}

static PyType_Slot View_slots[] = {
	{ Py_tp_dealloc, View_dealloc },
	{ Py_bf_getbuffer, View_getbuffer },
	{ Py_tp_doc, "A read-only span of an arena item or a result (internal)." },
	{ 0, NULL },
};

PyType_Spec View_spec = {
	.name = "libarena._libarena._View",
	.basicsize = sizeof(ViewObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = View_slots,
};

ViewObject *view_new(modstate *st, const void *ptr, size_t len)
{
	ViewObject *v = PyObject_New(ViewObject, st->View);

	if (!v)
		return NULL;
	v->arena = NULL;
	v->pool = NULL;
	v->ptr = ptr;
	v->len = (Py_ssize_t)len;
	v->itemsize = 1;
	v->ndim = 1;
	v->shape[0] = (Py_ssize_t)len;
	strcpy(v->format, "B");
	return v;
}
