/* SPDX-License-Identifier: MIT */
/*
 * The Arena type: a sealed, read-only sequence of items in one memfd, built
 * here from Python objects (or opened from a file or an fd), read by index
 * as zero-copy views.
 */
#include "_libarena.h"

/* Kinds of arena (a trailer item names a non-raw kind). */
enum { KIND_BYTES = 0, KIND_PICKLE = 1, KIND_NDARRAY = 2 };
static const char *const kind_names[] = { "bytes", "pickle", "ndarray" };
static const char trailer_magic[16] = "\0LIBARENA-PY-1\0";
#define ARRAY_ALIGN 64

void arena_finish_close(ArenaObject *self)
{
	if (self->a && !self->borrowed)
		arena_close(self->a);
	self->a = NULL;
}

int arena_check_open(ArenaObject *self)
{
	if (!self->a || self->closing) {
		PyErr_SetString(PyExc_ValueError, "operation on a closed arena");
		return -1;
	}
	return 0;
}

/* Reads the trailer that names a non-raw kind; sets count and kind. */
static void arena_read_kind(ArenaObject *self)
{
	uint64_t n = arena_count(self->a);
	const void *d;
	size_t len;

	self->kind = KIND_BYTES;
	self->count = (Py_ssize_t)n;
	if (n == 0 || arena_get(self->a, n - 1, &d, &len) < 0)
		return;
	if (len == sizeof(trailer_magic) + 1 && !memcmp(d, trailer_magic, sizeof(trailer_magic)) &&
	    ((const uint8_t *)d)[16] <= KIND_NDARRAY) {
		self->kind = ((const uint8_t *)d)[16];
		self->count = (Py_ssize_t)n - 1;
	}
}

static int append_one(modstate *st, ArenaObject *self, PyObject *item)
{
	Py_buffer b;
	int r;

	if (self->kind == KIND_PICKLE) {
		PyObject *s = PyObject_CallFunction(st->dumps, "Oi", item, 5);

		if (!s)
			return -1;
		r = arena_append(self->a, PyBytes_AS_STRING(s), (size_t)PyBytes_GET_SIZE(s), NULL);
		Py_DECREF(s);
	} else if (self->kind == KIND_NDARRAY) {
		void *dst;

		if (PyObject_GetBuffer(item, &b, PyBUF_RECORDS_RO) < 0)
			return -1;
		r = arena_append_uninit(self->a, rec_array_size(&b, ARRAY_ALIGN), NULL, &dst);
		if (r == 0 && rec_array_write(&b, dst, ARRAY_ALIGN) < 0) {
			PyBuffer_Release(&b);
			if (!PyErr_Occurred())
				PyErr_SetString(PyExc_ValueError, "array has too many dimensions or an odd dtype");
			return -1;
		}
		PyBuffer_Release(&b);
	} else {
		if (PyObject_GetBuffer(item, &b, PyBUF_C_CONTIGUOUS) < 0)
			return -1;
		r = arena_append(self->a, b.buf, (size_t)b.len, NULL);
		PyBuffer_Release(&b);
	}
	if (r < 0) {
		set_error(st, r, "append");
		return -1;
	}
	return 0;
}

static int kind_of(modstate *st, PyObject *item)
{
	PyObject *nd = ndarray_type(st);

	if (nd && PyObject_TypeCheck(item, (PyTypeObject *)nd))
		return KIND_NDARRAY;
	return PyObject_CheckBuffer(item) ? KIND_BYTES : KIND_PICKLE;
}

static int Arena_init(ArenaObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "items", "kind", "name", NULL };
	modstate *st = state_of_type(Py_TYPE(self));
	PyObject *items = NULL, *it = NULL, *x;
	const char *kind = NULL, *name = NULL;
	struct arena_create_opts o = { 0 };
	int r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O$zz:Arena", kwlist, &items, &kind, &name))
		return -1;
	if (self->a) {
		PyErr_SetString(PyExc_RuntimeError, "Arena already initialised");
		return -1;
	}
	self->kind = -1;
	if (kind) {
		for (r = 0; r <= KIND_NDARRAY; r++)
			if (!strcmp(kind, kind_names[r]))
				self->kind = r;
		if (self->kind < 0) {
			PyErr_Format(PyExc_ValueError,
				     "kind must be 'bytes', 'pickle' or 'ndarray', not '%s'", kind);
			return -1;
		}
	}
	if (items) {
		it = PyObject_GetIter(items);
		if (!it)
			return -1;
	}
	/* The first item names the kind, and the kind the alignment. */
	x = it ? PyIter_Next(it) : NULL;
	if (!x && PyErr_Occurred()) {
		Py_DECREF(it);
		return -1;
	}
	if (x && self->kind < 0)
		self->kind = kind_of(st, x);
	o.name = name ? name : "libarena";
	o.align = self->kind == KIND_NDARRAY ? ARRAY_ALIGN : 0;
	r = arena_create(&self->a, &o);
	if (r < 0) {
		Py_XDECREF(x);
		Py_XDECREF(it);
		set_error(st, r, "create");
		return -1;
	}
	for (; x; x = PyIter_Next(it)) {
		r = append_one(st, self, x);
		Py_DECREF(x);
		if (r < 0)
			break;
	}
	Py_XDECREF(it);
	if (PyErr_Occurred())
		goto fail;
	if (self->kind < 0)
		self->kind = KIND_BYTES;
	if (self->kind != KIND_BYTES) {
		char t[sizeof(trailer_magic) + 1];

		memcpy(t, trailer_magic, sizeof(trailer_magic));
		t[16] = (char)self->kind;
		r = arena_append(self->a, t, sizeof(t), NULL);
		if (r < 0) {
			set_error(st, r, "append");
			goto fail;
		}
	}
	r = arena_seal(self->a);
	if (r < 0) {
		set_error(st, r, "seal");
		goto fail;
	}
	arena_read_kind(self);
	return 0;
fail:
	arena_close(self->a);
	self->a = NULL;
	return -1;
}

PyObject *Arena_new_from(PyTypeObject *cls, struct arena *a, int borrowed)
{
	ArenaObject *self = (ArenaObject *)cls->tp_alloc(cls, 0);

	if (!self) {
		if (!borrowed)
			arena_close(a);
		return NULL;
	}
	self->a = a;
	self->borrowed = borrowed;
	arena_read_kind(self);
	return (PyObject *)self;
}

static PyObject *Arena_open(PyTypeObject *cls, PyObject *path)
{
	modstate *st = state_of_type(cls);
	PyObject *bytes;
	struct arena *a;
	int r;

	if (!PyUnicode_FSConverter(path, &bytes))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = arena_open_file(&a, PyBytes_AS_STRING(bytes));
	Py_END_ALLOW_THREADS
	Py_DECREF(bytes);
	if (r < 0)
		return set_file_error(st, r, path);
	return Arena_new_from(cls, a, 0);
}

static PyObject *Arena_from_fd(PyTypeObject *cls, PyObject *arg)
{
	modstate *st = state_of_type(cls);
	struct arena *a;
	int fd = PyObject_AsFileDescriptor(arg), r;

	if (fd < 0)
		return NULL;
	r = arena_open_fd(&a, fd, 0);
	if (r < 0)
		return set_error(st, r, "from_fd");
	return Arena_new_from(cls, a, 0);
}

static PyObject *Arena_save(ArenaObject *self, PyObject *path)
{
	modstate *st = state_of_type(Py_TYPE(self));
	PyObject *bytes;
	int r;

	if (arena_check_open(self) < 0 || !PyUnicode_FSConverter(path, &bytes))
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	r = arena_save(self->a, PyBytes_AS_STRING(bytes));
	Py_END_ALLOW_THREADS
	Py_DECREF(bytes);
	if (r < 0)
		return set_file_error(st, r, path);
	Py_RETURN_NONE;
}

static PyObject *Arena_fileno(ArenaObject *self, PyObject *unused)
{
	if (arena_check_open(self) < 0)
		return NULL;
	return PyLong_FromLong(arena_fd(self->a));
}

static PyObject *Arena_close(ArenaObject *self, PyObject *unused)
{
	/* Live views keep the mapping: the last one to go unmaps it. */
	self->closing = 1;
	if (self->exports == 0)
		arena_finish_close(self);
	Py_RETURN_NONE;
}

static PyObject *Arena_enter(ArenaObject *self, PyObject *unused)
{
	if (arena_check_open(self) < 0)
		return NULL;
	return Py_NewRef(self);
}

static PyObject *Arena_exit(ArenaObject *self, PyObject *args)
{
	return Arena_close(self, NULL);
}

static Py_ssize_t Arena_len(ArenaObject *self)
{
	if (arena_check_open(self) < 0)
		return -1;
	return self->count;
}

/* Item i's bytes as a view holding the arena. */
static ViewObject *arena_view(modstate *st, ArenaObject *self, Py_ssize_t i)
{
	const void *d;
	size_t len;
	ViewObject *v;
	int r;

	if (arena_check_open(self) < 0)
		return NULL;
	if (i < 0)
		i += self->count;
	if (i < 0 || i >= self->count) {
		PyErr_SetString(PyExc_IndexError, "arena index out of range");
		return NULL;
	}
	r = arena_get(self->a, (uint64_t)i, &d, &len);
	if (r < 0)
		return (ViewObject *)set_error(st, r, "get");
	v = view_new(st, d ? d : "", len);
	if (!v)
		return NULL;
	v->arena = (ArenaObject *)Py_NewRef(self);
	self->exports++;
	if (self->kind == KIND_NDARRAY && view_set_array(st, v, d, len) < 0) {
		Py_DECREF(v);
		return NULL;
	}
	return v;
}

static PyObject *Arena_item(ArenaObject *self, Py_ssize_t i)
{
	modstate *st = state_of_type(Py_TYPE(self));
	ViewObject *v = arena_view(st, self, i);
	PyObject *mv, *r;

	if (!v)
		return NULL;
	if (self->kind == KIND_PICKLE) {
		/* Unpickle straight from the mapping: no bytes copy first. */
		mv = PyMemoryView_FromObject((PyObject *)v);
		Py_DECREF(v);
		if (!mv)
			return NULL;
		r = PyObject_CallOneArg(st->loads, mv);
		Py_DECREF(mv);
		return r;
	}
	mv = PyMemoryView_FromObject((PyObject *)v);
	Py_DECREF(v);
	if (!mv || self->kind != KIND_NDARRAY)
		return mv;
	if (!need_numpy(st)) {
		Py_DECREF(mv);
		return NULL;
	}
	r = PyObject_CallOneArg(st->asarray, mv);
	Py_DECREF(mv);
	return r;
}

static PyObject *Arena_subscript(ArenaObject *self, PyObject *key)
{
	Py_ssize_t i;

	if (!PyIndex_Check(key)) {
		PyErr_Format(PyExc_TypeError, "arena indices must be integers, not %.200s",
			     Py_TYPE(key)->tp_name);
		return NULL;
	}
	i = PyNumber_AsSsize_t(key, PyExc_IndexError);
	if (i == -1 && PyErr_Occurred())
		return NULL;
	return Arena_item(self, i);
}

static PyObject *Arena_view(ArenaObject *self, PyObject *key)
{
	modstate *st = state_of_type(Py_TYPE(self));
	Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
	ViewObject *v;
	PyObject *mv;

	if (i == -1 && PyErr_Occurred())
		return NULL;
	v = arena_view(st, self, i);
	if (!v)
		return NULL;
	if (v->ndim != 1 || v->itemsize != 1) {
		/* the raw bytes of an array item: its data part, flat */
		v->ndim = 1;
		v->itemsize = 1;
		v->shape[0] = v->len;
		strcpy(v->format, "B");
	}
	mv = PyMemoryView_FromObject((PyObject *)v);
	Py_DECREF(v);
	return mv;
}

static PyObject *Arena_get_kind(ArenaObject *self, void *c)
{
	return PyUnicode_FromString(kind_names[self->kind < 0 ? 0 : self->kind]);
}

static PyObject *Arena_get_closed(ArenaObject *self, void *c)
{
	return PyBool_FromLong(!self->a || self->closing);
}

static PyObject *Arena_get_nbytes(ArenaObject *self, void *c)
{
	if (arena_check_open(self) < 0)
		return NULL;
	return PyLong_FromUnsignedLongLong(arena_size(self->a));
}

static PyObject *Arena_reduce(ArenaObject *self, PyObject *unused)
{
	PyErr_SetString(PyExc_TypeError,
			"an Arena cannot be pickled: pass it to a Pool, or send its fileno()");
	return NULL;
}

static void Arena_dealloc(ArenaObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);

	PyObject_GC_UnTrack(self);
	if (self->weakrefs)
		PyObject_ClearWeakRefs((PyObject *)self);
	/* Views hold a reference: none is alive here. */
	arena_finish_close(self);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static int Arena_traverse(ArenaObject *self, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(self));
	return 0;
}

static PyMethodDef Arena_methods[] = {
	{ "open", (PyCFunction)Arena_open, METH_O | METH_CLASS,
	  "Arena.open(path) -> Arena\n\nLoads an image written by save() into a new sealed arena." },
	{ "from_fd", (PyCFunction)Arena_from_fd, METH_O | METH_CLASS,
	  "Arena.from_fd(fd) -> Arena\n\nOpens a sealed arena memfd received from elsewhere (the fd is duplicated)." },
	{ "save", (PyCFunction)Arena_save, METH_O,
	  "save(path)\n\nWrites the arena's image to a file (Arena.open reads it back)." },
	{ "fileno", (PyCFunction)Arena_fileno, METH_NOARGS,
	  "fileno() -> int\n\nThe sealed memfd (owned by the arena: do not close it)." },
	{ "view", (PyCFunction)Arena_view, METH_O,
	  "view(i) -> memoryview\n\nItem i's stored bytes, zero copy and read-only (for any kind)." },
	{ "close", (PyCFunction)Arena_close, METH_NOARGS,
	  "close()\n\nUnmaps the arena; if item views are alive, the last one to go unmaps it." },
	{ "__enter__", (PyCFunction)Arena_enter, METH_NOARGS, NULL },
	{ "__exit__", (PyCFunction)Arena_exit, METH_VARARGS, NULL },
	{ "__reduce__", (PyCFunction)Arena_reduce, METH_NOARGS, NULL },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef Arena_getset[] = {
	{ "kind", (getter)Arena_get_kind, NULL, "'bytes', 'pickle' or 'ndarray'", NULL },
	{ "closed", (getter)Arena_get_closed, NULL, "True after close()", NULL },
	{ "nbytes", (getter)Arena_get_nbytes, NULL, "size of the image in bytes", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyMemberDef Arena_members[] = {
	{ "__weaklistoffset__", T_PYSSIZET, offsetof(ArenaObject, weakrefs), READONLY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

PyDoc_STRVAR(Arena_doc,
"Arena(items=(), *, kind=None, name=None)\n\n"
"A sealed, read-only sequence of items in one memfd, shared with worker\n"
"processes without copies.  items is an iterable of bytes-like objects\n"
"(kind 'bytes': items come back as read-only memoryviews), numpy arrays\n"
"(kind 'ndarray': stored raw with dtype and shape, returned as read-only\n"
"zero-copy arrays) or any picklable objects (kind 'pickle': pickled once,\n"
"here, and unpickled on each access).  kind is taken from the first item\n"
"unless given.\n\n"
"len(arena), arena[i] (negative i counts from the end; IndexError beyond),\n"
"iteration, view(i), save(path) / Arena.open(path), fileno(), close(), and\n"
"`with Arena(...) as a:`.  A view keeps the mapping alive: close() with live\n"
"views is safe, the last view unmaps.");

static PyType_Slot Arena_slots[] = {
	{ Py_tp_doc, (void *)Arena_doc },
	{ Py_tp_init, Arena_init },
	{ Py_tp_dealloc, Arena_dealloc },
	{ Py_tp_traverse, Arena_traverse },
	{ Py_tp_methods, Arena_methods },
	{ Py_tp_getset, Arena_getset },
	{ Py_tp_members, Arena_members },
	{ Py_sq_length, Arena_len },
	{ Py_sq_item, Arena_item },
	{ Py_mp_length, Arena_len },
	{ Py_mp_subscript, Arena_subscript },
	{ 0, NULL },
};

PyType_Spec Arena_spec = {
	.name = "libarena.Arena",
	.basicsize = sizeof(ArenaObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
	.slots = Arena_slots,
};
