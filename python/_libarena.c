/* SPDX-License-Identifier: MIT */
/*
 * _libarena: the CPython extension over libarena (include/arena.h).
 *
 * Small and mechanical on purpose; policy (futures, imap, spawn start-up)
 * lives in the pure-Python package python/libarena/.  Rules kept here:
 *  - multi-phase init, every Python object the module needs in its state;
 *  - every libarena errno becomes an exception in one function, set_error_ex();
 *  - every wait releases the GIL, in slices, checking signals between them;
 *  - a view of an item or of a result holds what it points at (the arena, or
 *    the pool and the result's space) through an export count: close() with
 *    live views defers the unmapping to the last view's death.
 *
 * Records: numpy arrays (in arenas and in results) and every result carry a
 * small header, struct rec, followed by the bytes at data_off.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <signal.h>
#include <time.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"

/*
 * Built against the library of the same checkout.  Parts of its API arrive
 * over time; mk/python.mk and setup.py look for them in include/arena.h:
 *   HAVE_WORKER_INIT  the worker-init hook (workers forked from one fork
 *                     server): Python's after-fork work runs there.
 *                     Without it, in each worker's first task.
 *   ARENA_POOL_EINTR  blocking waits return -EINTR on a signal (Ctrl-C at
 *                     once).  Without it, waits run in short slices.
 *   HAVE_SUBMIT_RANGE arena_pool_submit_range() for consecutive items.
 *   HAVE_KEEP_FDS     forked workers close the parent's fds but a list.
 */

/* ------------------------------------------------------------------------ */
/* Records                                                                   */
/* ------------------------------------------------------------------------ */

#define REC_MAGIC 0x3152414cu /* "LAR1" */
enum { REC_RAW = 1, REC_ARRAY = 2, REC_PICKLE = 3, REC_ERROR = 4 };
#define REC_MAX_DIM 32
#define REC_MAX_FMT 64

struct rec {
	uint32_t magic;
	uint8_t tag, ndim, fmt_len, _pad;
	uint32_t itemsize;
	uint32_t data_off;  /* from the record's start */
	/* uint64_t shape[ndim]; char fmt[fmt_len]; then data at data_off */
};
_Static_assert(sizeof(struct rec) == 16, "record header layout");

/* Kinds of arena (a trailer item names a non-raw kind). */
enum { KIND_BYTES = 0, KIND_PICKLE = 1, KIND_NDARRAY = 2 };
static const char *const kind_names[] = { "bytes", "pickle", "ndarray" };
static const char trailer_magic[16] = "\0LIBARENA-PY-1\0";
#define ARRAY_ALIGN 64

/* ------------------------------------------------------------------------ */
/* Module state                                                              */
/* ------------------------------------------------------------------------ */

typedef struct {
	PyTypeObject *Arena, *Pool, *View, *Iter;
	PyObject *ArenaError, *CorruptArenaError, *WorkerCrashed, *TaskTimeout,
		*ResultTooLarge, *RemoteTraceback, *TaskError;
	PyObject *dumps, *loads;          /* pickle */
	PyObject *ndarray;                /* numpy.ndarray once numpy is imported */
	PyObject *asarray, *array;        /* numpy.asarray / numpy.array */
	PyObject *format_exception;       /* traceback.format_exception */
	PyObject *CancelledError;         /* concurrent.futures.CancelledError */
} modstate;

static struct PyModuleDef libarena_module;

static modstate *state_of_type(PyTypeObject *t)
{
	PyObject *m = PyType_GetModuleByDef(t, &libarena_module);

	return m ? PyModule_GetState(m) : NULL;
}

/* numpy is optional: looked up (not imported) when an object might be an
 * array; asarray/array are taken at the same time. */
static PyObject *ndarray_type(modstate *st)
{
	PyObject *np;

	if (st->ndarray)
		return st->ndarray;
	np = PyDict_GetItemString(PyImport_GetModuleDict(), "numpy"); /* borrowed */
	if (!np)
		return NULL;
	st->ndarray = PyObject_GetAttrString(np, "ndarray");
	st->asarray = PyObject_GetAttrString(np, "asarray");
	st->array = PyObject_GetAttrString(np, "array");
	if (!st->ndarray || !st->asarray || !st->array) {
		PyErr_Clear();
		Py_CLEAR(st->ndarray);
		Py_CLEAR(st->asarray);
		Py_CLEAR(st->array);
	}
	return st->ndarray;
}

static PyObject *need_numpy(modstate *st)
{
	PyObject *np;

	if (st->asarray)
		return st->asarray;
	np = PyImport_ImportModule("numpy");
	if (!np)
		return NULL;
	Py_DECREF(np);
	ndarray_type(st);
	if (!st->asarray)
		PyErr_SetString(PyExc_ImportError, "numpy is needed for array items");
	return st->asarray;
}

/* ------------------------------------------------------------------------ */
/* Errors: the one place where a libarena errno becomes an exception          */
/* ------------------------------------------------------------------------ */

/* Where an error code comes from changes what it means. */
enum err_ctx {
	ERR_CALL,   /* a library call failed */
	ERR_FILE,   /* a call on a file: filename kept, as open() does */
	ERR_TASK,   /* a completion's status: the task's own outcome */
};

/*
 * Sets the exception for libarena error code err (negative errno) and
 * returns NULL.  what names the operation ("submit", "task for item 7"),
 * filename is for ERR_FILE.  Builtins where Python has one (IndexError,
 * ValueError, MemoryError, TimeoutError, FileNotFoundError...), else
 * ArenaError or a subclass, with errno set and libarena's meaning in
 * strerror.
 */
static PyObject *set_error_ex(modstate *st, int err, const char *what, enum err_ctx ctx,
			      PyObject *filename)
{
	PyObject *type, *args, *exc, *msg;
	const char *meaning = arena_strerror(err);
	int e = -err;

	if (ctx == ERR_FILE && e != EBADMSG && e != EPROTONOSUPPORT && e != EPERM) {
		errno = e;
		return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, filename);
	}
	switch (e) {
	case ERANGE:
		PyErr_Format(PyExc_IndexError, "%s: %s", what, meaning);
		return NULL;
	case EINVAL:
		PyErr_Format(PyExc_ValueError, "%s: %s", what, meaning);
		return NULL;
	case ENOMEM:
		PyErr_Format(PyExc_MemoryError, "%s: %s", what, meaning);
		return NULL;
	case EPIPE:
		PyErr_Format(PyExc_ValueError, "%s: the pool is stopped", what);
		return NULL;
	case ECANCELED:
		PyErr_Format(st->CancelledError, "%s: %s", what, meaning);
		return NULL;
	case EBADMSG:
	case EPROTONOSUPPORT:
		type = st->CorruptArenaError;
		break;
	case EOWNERDEAD:
	case ECHILD:
		type = st->WorkerCrashed;
		break;
	case EMSGSIZE:
		type = st->ResultTooLarge;
		break;
	case ETIMEDOUT:
		/* a task's: the deadline killed it max_attempts times */
		type = ctx == ERR_TASK ? st->TaskTimeout : PyExc_TimeoutError;
		if (ctx == ERR_TASK)
			meaning = "ran past task_timeout (its worker was killed each time)";
		break;
	case EPERM:
	case EROFS:
		type = st->ArenaError;
		break;
	default:
		/* Plain system errors: OSError picks its subclass by errno. */
		type = PyExc_OSError;
		break;
	}
	/* OSError(errno, strerror); strerror carries the operation too. */
	msg = PyUnicode_FromFormat("%s: %s", what, meaning);
	args = msg ? Py_BuildValue("(iN)", e, msg) : NULL;
	if (!args)
		return NULL;
	exc = PyObject_Call(type, args, NULL);
	Py_DECREF(args);
	if (exc) {
		PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
		Py_DECREF(exc);
	}
	return NULL;
}

static PyObject *set_error(modstate *st, int err, const char *what)
{
	return set_error_ex(st, err, what, ERR_CALL, NULL);
}

static PyObject *set_file_error(modstate *st, int err, PyObject *path)
{
	return set_error_ex(st, err, "open", ERR_FILE, path);
}

/* ------------------------------------------------------------------------ */
/* View: a zero-copy buffer that holds its owner                             */
/* ------------------------------------------------------------------------ */

typedef struct ArenaObject ArenaObject;
typedef struct PoolObject PoolObject;

typedef struct {
	PyObject_HEAD
	ArenaObject *arena;   /* owner for an item, or NULL */
	PoolObject *pool;     /* owner for a result, or NULL */
	struct arena_cqe cqe; /* the result's space, released at death */
	const char *ptr;
	Py_ssize_t len, itemsize;
	int ndim;
	Py_ssize_t shape[REC_MAX_DIM];
	char format[REC_MAX_FMT + 1];
} ViewObject;

struct ArenaObject {
	PyObject_HEAD
	struct arena *a;
	int borrowed;         /* a spawned worker's arena: not ours to close */
	int closing;
	Py_ssize_t exports;   /* live views */
	Py_ssize_t count;     /* visible items (without the trailer) */
	int kind;
	PyObject *weakrefs;
};

static void arena_finish_close(ArenaObject *self)
{
	if (self->a && !self->borrowed)
		arena_close(self->a);
	self->a = NULL;
}

static void pool_view_released(PoolObject *p, const struct arena_cqe *c);

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

static PyType_Spec View_spec = {
	.name = "libarena._libarena._View",
	.basicsize = sizeof(ViewObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = View_slots,
};

static ViewObject *view_new(modstate *st, const void *ptr, size_t len)
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

/* Parses an array record of len bytes at p into the view's shape and format.
 * The record may come from another process: every field is checked against
 * len before use.  Returns 0, or -1 with an exception set. */
static int view_set_array(modstate *st, ViewObject *v, const uint8_t *p, size_t len)
{
	struct rec h;
	uint64_t n = 1, shape[REC_MAX_DIM];
	size_t need;
	int i;

	if (len < sizeof(h))
		goto bad;
	memcpy(&h, p, sizeof(h));
	need = sizeof(h) + (size_t)h.ndim * 8 + h.fmt_len;
	if (h.magic != REC_MAGIC || h.tag != REC_ARRAY || h.ndim > REC_MAX_DIM ||
	    h.fmt_len == 0 || h.fmt_len > REC_MAX_FMT || h.itemsize == 0 ||
	    need > h.data_off || h.data_off > len)
		goto bad;
	memcpy(shape, p + sizeof(h), (size_t)h.ndim * 8);
	for (i = 0; i < h.ndim; i++) {
		if (shape[i] > (uint64_t)PY_SSIZE_T_MAX ||
		    (shape[i] && n > UINT64_MAX / shape[i]))
			goto bad;
		n *= shape[i];
		v->shape[i] = (Py_ssize_t)shape[i];
	}
	if (n > (uint64_t)PY_SSIZE_T_MAX / h.itemsize || n * h.itemsize != len - h.data_off)
		goto bad;
	memcpy(v->format, p + sizeof(h) + (size_t)h.ndim * 8, h.fmt_len);
	v->format[h.fmt_len] = 0;
	if (memchr(v->format, 0, h.fmt_len))
		goto bad;
	v->ptr = (const char *)p + h.data_off;
	v->len = (Py_ssize_t)(len - h.data_off);
	v->itemsize = h.itemsize;
	v->ndim = h.ndim;
	return 0;
bad:
	set_error(st, -EBADMSG, "array record");
	return -1;
}

/* Writes an array record for buffer b at out (cap bytes), data aligned to
 * align.  Returns the record's size; the caller checks it against cap. */
static size_t rec_array_size(const Py_buffer *b, size_t align)
{
	size_t hdr = sizeof(struct rec) + (size_t)b->ndim * 8 + strlen(b->format ? b->format : "B");

	return ((hdr + align - 1) & ~(align - 1)) + (size_t)b->len;
}

static int rec_array_write(const Py_buffer *b, uint8_t *out, size_t align)
{
	const char *fmt = b->format ? b->format : "B";
	size_t fl = strlen(fmt), hdr = sizeof(struct rec) + (size_t)b->ndim * 8 + fl;
	struct rec h = { .magic = REC_MAGIC, .tag = REC_ARRAY, .ndim = (uint8_t)b->ndim,
			 .fmt_len = (uint8_t)fl, .itemsize = (uint32_t)b->itemsize };
	int i;

	if (b->ndim > REC_MAX_DIM || fl > REC_MAX_FMT || fl == 0)
		return -1;
	h.data_off = (uint32_t)((hdr + align - 1) & ~(align - 1));
	memcpy(out, &h, sizeof(h));
	for (i = 0; i < b->ndim; i++) {
		uint64_t d = (uint64_t)b->shape[i];

		memcpy(out + sizeof(h) + (size_t)i * 8, &d, 8);
	}
	memcpy(out + sizeof(h) + (size_t)b->ndim * 8, fmt, fl);
	memset(out + hdr, 0, h.data_off - hdr);
	return PyBuffer_ToContiguous(out + h.data_off, b, b->len, 'C');
}

/* ------------------------------------------------------------------------ */
/* Arena                                                                     */
/* ------------------------------------------------------------------------ */

static int arena_check_open(ArenaObject *self)
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

static PyObject *Arena_new_from(PyTypeObject *cls, struct arena *a, int borrowed)
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

static PyType_Spec Arena_spec = {
	.name = "libarena.Arena",
	.basicsize = sizeof(ArenaObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
	.slots = Arena_slots,
};

/* ------------------------------------------------------------------------ */
/* Pool                                                                      */
/* ------------------------------------------------------------------------ */

/* What a worker needs; lives in the Pool object, copied into each forked
 * worker with the rest of the parent's memory. */
struct task_ctx {
	modstate *st;
	PyObject *func, *arena_obj;    /* func(arena, i) */
	PyObject *arena_type;          /* spawn: type for the worker's arena */
	pid_t ready_pid;               /* the process whose Python is set up */
	PyThreadState *ts;             /* that process's thread, between tasks */
	/* A result too large for the free slice is kept for the retry with the
	 * whole area, so the task function runs once. */
	PyObject *pending;
	uint64_t pending_seq;
};

struct PoolObject {
	PyObject_HEAD
	struct arena_pool *p;
	ArenaObject *arena;
	struct task_ctx cx;
	Py_ssize_t view_threshold;
	Py_ssize_t exports;   /* result views alive */
	int closing;
	pid_t owner_pid;
	uint64_t next_uid;    /* user data of the next task (every caller's) */
	int calls;            /* threads waiting in the library (GIL released) */
	char **spawn_argv;    /* spawn mode: the workers' argv (kept for restarts) */
	PyObject *spawn_list; /* the bytes it points into */
	PyObject *weakrefs;
};

/* The slice in which a blocking call waits before it looks for signals.
 * With ARENA_POOL_EINTR a signal ends a wait at once; the slice only bounds
 * the case of a signal that came just before the wait began. */
#ifdef ARENA_POOL_EINTR
#define WAIT_SLICE_NS (100 * 1000 * 1000LL)
#else
#define WAIT_SLICE_NS (20 * 1000 * 1000LL)
#endif

static void pool_finish_close(PoolObject *self)
{
	if (!self->p)
		return;
	if (self->owner_pid == getpid()) {
		struct arena_pool *p = self->p;

		/* Another thread may be waiting in the pool (close() from a
		 * thread other than the consumer's): it leaves at the end of
		 * its slice, seeing `closing`; destroy only then. */
		self->closing = 1;
		while (self->calls > 0) {
			struct timespec ts = { 0, 1000 * 1000 };

			Py_BEGIN_ALLOW_THREADS
			arena_pool_stop(p, ARENA_STOP_CANCEL, 0);
			nanosleep(&ts, NULL);
			Py_END_ALLOW_THREADS
		}
		Py_BEGIN_ALLOW_THREADS
		arena_pool_destroy(p);
		Py_END_ALLOW_THREADS
	}
	self->p = NULL;
	/* The pool was one of the arena's users (see Pool_init). */
	if (--self->arena->exports == 0 && self->arena->closing)
		arena_finish_close(self->arena);
}

/* A result view died: its space goes back to its worker. */
static void pool_view_released(PoolObject *p, const struct arena_cqe *c)
{
	if (p->p && p->owner_pid == getpid())
		arena_pool_release(p->p, c);
	if (--p->exports == 0 && p->closing)
		pool_finish_close(p);
}


/* --- worker side ---------------------------------------------------------- */

/* gc.freeze() in a forked worker: the objects inherited from the parent move
 * to the permanent generation (a splice of list heads, O(1)), so the
 * worker's collections never write to their headers and their pages stay
 * shared.  Without it one full collection in each worker copies every page
 * that holds a container object of the parent. */
static void freeze_inherited(void)
{
	PyObject *gc = PyImport_ImportModule("gc"), *r = NULL;

	if (gc)
		r = PyObject_CallMethod(gc, "freeze", NULL);
	Py_XDECREF(r);
	Py_XDECREF(gc);
	PyErr_Clear();
}

/* Enters Python in a worker.  The first task in a forked worker makes the
 * process a proper Python process: the thread that forked becomes the
 * interpreter's current thread and PyOS_AfterFork_Child() runs (locks, the
 * GIL, threading, random's reseed, os.register_at_fork callbacks).
 * Today's library forks a replacement worker from whichever thread is in a
 * pool call; that thread's state is found from its thread-local slot. */
static void worker_enter(struct task_ctx *cx)
{
	pid_t me = getpid();

	if (cx->ready_pid != me) {
		PyThreadState *ts = PyGILState_GetThisThreadState();

		PyThreadState_Swap(ts);
		PyOS_AfterFork_Child();
		freeze_inherited();
		cx->ready_pid = me;
		cx->pending = NULL; /* the parent's reference, not ours */
		return;
	}
	PyEval_RestoreThread(cx->ts);
}

static void worker_leave(struct task_ctx *cx)
{
	cx->ts = PyEval_SaveThread();
}

#ifdef HAVE_WORKER_INIT
/* In every forked worker, before its first task: the same set-up as
 * worker_enter's first time, then the GIL is let go until a task comes. */
static int py_worker_init(void *arg, unsigned worker)
{
	struct task_ctx *cx = arg;

	worker_enter(cx);
	worker_leave(cx);
	return 0;
}
#endif

static int put_plain(uint8_t *out, size_t cap, int tag, const void *d, size_t len)
{
	struct rec h = { .magic = REC_MAGIC, .tag = (uint8_t)tag, .itemsize = 1,
			 .data_off = sizeof(struct rec) };

	if (cap < sizeof(h) || len > cap - sizeof(h) || len > INT32_MAX - 64)
		return -EMSGSIZE;
	memcpy(out, &h, sizeof(h));
	memcpy(out + sizeof(h), d, len);
	return (int)(sizeof(h) + len);
}

/* The exception being raised, as a pickled (exc, traceback text); when the
 * exception itself cannot be pickled, (None, "module.Type", message, text). */
static int put_error(modstate *st, uint8_t *out, size_t cap)
{
	PyObject *t, *v, *tb, *lines = NULL, *text = NULL, *payload = NULL;
	int rc;

	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	if (tb)
		PyException_SetTraceback(v, tb);
	if (st->format_exception)
		lines = PyObject_CallFunctionObjArgs(st->format_exception, t, v, tb ? tb : Py_None, NULL);
	if (lines) {
		PyObject *sep = PyUnicode_FromString("");

		text = sep ? PyUnicode_Join(sep, lines) : NULL;
		Py_XDECREF(sep);
	}
	if (!text) {
		PyErr_Clear();
		text = PyUnicode_FromString("(no traceback)");
	}
	/* SystemExit, KeyboardInterrupt and the like would end the consumer
	 * if raised there as they are: they travel as TaskError. */
	if (PyErr_GivenExceptionMatches(t, PyExc_Exception))
		payload = PyObject_CallFunction(st->dumps, "(OO)i", v, text, 5);
	if (!payload) {
		PyObject *name = PyUnicode_FromString(((PyTypeObject *)t)->tp_name);
		PyObject *msg = PyObject_Str(v);

		PyErr_Clear();
		payload = PyObject_CallFunction(st->dumps, "(OOOO)i", Py_None,
						name ? name : Py_None, msg ? msg : Py_None, text, 5);
		Py_XDECREF(name);
		Py_XDECREF(msg);
	}
	if (payload)
		rc = put_plain(out, cap, REC_ERROR, PyBytes_AS_STRING(payload),
			       (size_t)PyBytes_GET_SIZE(payload));
	else
		rc = -EBADMSG;
	PyErr_Clear();
	Py_XDECREF(payload);
	Py_XDECREF(text);
	Py_XDECREF(lines);
	Py_XDECREF(t);
	Py_XDECREF(v);
	Py_XDECREF(tb);
	return rc;
}

/* The task's return value as a record: bytes-likes raw, numpy arrays raw with
 * dtype and shape, anything else pickled.  -EMSGSIZE when it does not fit;
 * -1 with an exception set when it cannot be encoded. */
static int put_result(modstate *st, PyObject *res, uint8_t *out, size_t cap)
{
	PyObject *nd, *s;
	Py_buffer b;
	int rc;

	if (PyBytes_CheckExact(res))
		return put_plain(out, cap, REC_RAW, PyBytes_AS_STRING(res), (size_t)PyBytes_GET_SIZE(res));
	nd = ndarray_type(st);
	if (nd && PyObject_TypeCheck(res, (PyTypeObject *)nd)) {
		if (PyObject_GetBuffer(res, &b, PyBUF_RECORDS_RO) == 0) {
			size_t need = rec_array_size(&b, 16);

			if (need > cap || need > INT32_MAX)
				rc = -EMSGSIZE;
			else if (rec_array_write(&b, out, 16) == 0)
				rc = (int)need;
			else
				rc = -2;
			PyBuffer_Release(&b);
			if (rc != -2)
				return rc;
		}
		PyErr_Clear(); /* object dtype, odd strides: pickled below */
	} else if (PyObject_CheckBuffer(res)) {
		if (PyObject_GetBuffer(res, &b, PyBUF_SIMPLE) == 0) {
			rc = put_plain(out, cap, REC_RAW, b.buf, (size_t)b.len);
			PyBuffer_Release(&b);
			return rc;
		}
		PyErr_Clear();
	}
	s = PyObject_CallFunction(st->dumps, "Oi", res, 5);
	if (!s)
		return -1;
	rc = put_plain(out, cap, REC_PICKLE, PyBytes_AS_STRING(s), (size_t)PyBytes_GET_SIZE(s));
	Py_DECREF(s);
	return rc;
}

static PyObject *call_task(struct task_ctx *cx, const struct arena_task *t)
{
	PyObject *i, *r;

	if (!cx->arena_obj) {
		/* A spawned worker: its arena is the library's; wrap it. */
		cx->arena_obj = Arena_new_from((PyTypeObject *)cx->arena_type,
					       (struct arena *)t->arena, 1);
		if (!cx->arena_obj)
			return NULL;
	}
	i = PyLong_FromUnsignedLongLong(t->index);
	if (!i)
		return NULL;
	r = PyObject_CallFunctionObjArgs(cx->func, cx->arena_obj, i, NULL);
	Py_DECREF(i);
	return r;
}

static int py_task(struct arena_task *t)
{
	struct task_ctx *cx = t->arg;
	PyObject *res;
	int rc;

	worker_enter(cx);
	if (cx->pending && cx->pending_seq == t->user_data) {
		res = cx->pending;  /* the retry with the whole area */
		cx->pending = NULL;
	} else {
		Py_CLEAR(cx->pending);
		res = call_task(cx, t);
	}
	if (!res) {
		rc = put_error(cx->st, t->out, t->out_cap);
	} else {
		rc = put_result(cx->st, res, t->out, t->out_cap);
		if (rc == -EMSGSIZE) {
			cx->pending = res;
			cx->pending_seq = t->user_data;
			res = NULL;
		} else if (rc == -1) {
			rc = put_error(cx->st, t->out, t->out_cap);
		}
		Py_XDECREF(res);
	}
	worker_leave(cx);
	return rc;
}

/* --- consumer side -------------------------------------------------------- */

/* Waits in slices, releasing the GIL, so that a signal handler (Ctrl-C) runs
 * between them.  op is called with a slice's timeout; it returns like the
 * library's waits.  Returns op's result or -EINTR with an exception set. */
typedef int (*wait_op)(PoolObject *self, void *arg, int64_t timeout_ns);

static int wait_sliced(PoolObject *self, wait_op op, void *arg, int64_t timeout_ns)
{
	int64_t left = timeout_ns;
	int r;

	for (;;) {
		int64_t slice = (left < 0 || left > WAIT_SLICE_NS) ? WAIT_SLICE_NS : left;

		if (timeout_ns == 0)
			slice = 0;
		if (!self->p || self->closing) {
			/* closed by another thread while we waited */
			PyErr_SetString(PyExc_ValueError, "the pool was closed");
			return -EINTR;
		}
		if (slice == 0) {
			/* Never waits: keep the GIL (dropping it on every
			 * put() hands it to the consumer thread each time). */
			r = op(self, arg, 0);
		} else {
			self->calls++;
			Py_BEGIN_ALLOW_THREADS
			r = op(self, arg, slice);
			Py_END_ALLOW_THREADS
			self->calls--;
		}
		if (r == -EINTR) {
			/* ARENA_POOL_EINTR: a handler ran; Python's runs now */
			if (PyErr_CheckSignals() < 0)
				return -EINTR;
			continue;
		}
		if (r != -ETIMEDOUT || timeout_ns == 0)
			return r;
		if (left >= 0) {
			left -= slice;
			if (left <= 0)
				return r;
		}
		if (PyErr_CheckSignals() < 0)
			return -EINTR;
	}
}

static int pool_check(PoolObject *self)
{
	if (!self->p || self->closing) {
		PyErr_SetString(PyExc_ValueError, "operation on a closed pool");
		return -1;
	}
	if (self->owner_pid != getpid()) {
		PyErr_SetString(PyExc_RuntimeError, "a pool can be used only by the process that created it");
		return -1;
	}
	return 0;
}

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

#define REAP_MAX 256

struct reap_arg {
	struct arena_cqe *cqes;
	unsigned max;
};

static int reap_op(PoolObject *self, void *arg, int64_t t)
{
	struct reap_arg *ra = arg;

	return arena_pool_reap(self->p, ra->cqes, ra->max, t);
}

typedef struct IterObject IterObject;
static int iter_owns(IterObject *it, uint64_t uid);
static void iter_store(IterObject *it, uint64_t uid, int ok, PyObject *value);

/*
 * Reaps up to max completions (waiting up to timeout_ns) and decodes them.
 * Those of iterator `it` (may be NULL) go straight into it; the others are
 * appended to *foreign as (uid, index, ok, value) tuples (the list is made
 * when needed).  Results small enough to be copied give their space back in
 * one release_many.  Returns the number reaped, 0 when the wait timed out,
 * -2 when the pool is stopped with nothing in flight, -1 with an exception.
 */
static int reap_some(PoolObject *self, modstate *st, unsigned max, int64_t timeout_ns,
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

static PyObject *Pool_reap(PoolObject *self, PyObject *args)
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

#define SUBMIT_MAX 256

struct submit_arg {
	struct arena_sqe *sqes;
	unsigned n;
};

static int submit_op(PoolObject *self, void *arg, int64_t t)
{
	struct submit_arg *sa = arg;
	int r = arena_pool_submit(self->p, sa->sqes, sa->n, t);

	return r == 0 ? -ETIMEDOUT : r;
}

static PyObject *Pool_submit(PoolObject *self, PyObject *args)
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

struct range_arg {
	uint64_t first, uid;
	uint32_t count;
};

static int range_op(PoolObject *self, void *arg, int64_t t)
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

static PyObject *Pool_submit_range(PoolObject *self, PyObject *args)
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

/* --- the streaming iterator (imap, imap_unordered) ----------------------- */

/* An iterator owns a block of user data values, so that whoever reaps its
 * completions (it, or another thread pumping futures) knows where they go. */
#define ITER_UID_BLOCK (1ull << 40)

enum { SLOT_FREE = 0, SLOT_RUNNING, SLOT_OK, SLOT_EXC };

struct slot {
	PyObject *value;
	uint64_t index;
	int state;
};

struct IterObject {
	PyObject_HEAD
	PoolObject *pool;
	PyObject *src;          /* iterator of indices, or NULL: the range */
	PyObject *foreign;      /* callable(list): completions of other users */
	uint64_t next, stop;    /* the range still to submit */
	uint64_t uid0;          /* seq s has user data uid0 + s */
	uint64_t head, tail;    /* seqs [head, tail) submitted, not yielded */
	uint64_t *ready;        /* unordered: seqs done, in completion order */
	uint32_t nready, ready_head;
	uint32_t depth;         /* window: tasks not yet handed out */
	uint32_t cap;           /* slots */
	int ordered, with_index, src_done;
	int stream;             /* fed by put(), read by get() */
	int getting;            /* a get() is waiting (it reaps for put()) */
	int empty_wait;         /* a get() waits for a put() on `evt` */
	PyThread_type_lock evt; /* put() -> get(): something to wait for */
	int room_wait;          /* a put() waits for a get() on `room` */
	PyThread_type_lock room; /* get() -> put(): the window has room */
	uint64_t *held;         /* indices taken from src, not yet submitted */
	uint32_t nheld;
	PyObject *err_t, *err_v, *err_tb; /* an error to raise after a result */
	struct slot *slots;     /* seq s at slots[s % depth] */
	PyObject *weakrefs;
};

static int iter_owns(IterObject *it, uint64_t uid)
{
	return uid >= it->uid0 && uid - it->uid0 >= it->head && uid - it->uid0 < it->tail;
}

static void iter_store(IterObject *it, uint64_t uid, int ok, PyObject *value)
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
static int iter_take(IterObject *it, PyObject **out)
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

/* --- streams: put() from a producer thread, get() from a consumer -------- */

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

static PyObject *Iter_put(IterObject *it, PyObject *arg)
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

static PyObject *Iter_get(IterObject *it, PyObject *args, PyObject *kw)
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

static PyType_Spec Iter_spec = {
	.name = "libarena._libarena._Iter",
	.basicsize = sizeof(IterObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = Iter_slots,
};

/* _Pool.iterate(indices, ordered, with_index, depth, foreign) */
static PyObject *Pool_iterate(PoolObject *self, PyObject *args)
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

static PyObject *Pool_take_uids(PoolObject *self, PyObject *arg)
{
	unsigned long long n = PyLong_AsUnsignedLongLong(arg), u;

	if (n == (unsigned long long)-1 && PyErr_Occurred())
		return NULL;
	u = self->next_uid;
	self->next_uid += n;
	return PyLong_FromUnsignedLongLong(u);
}

static int stop_op(PoolObject *self, void *arg, int64_t t)
{
	return arena_pool_stop(self->p, *(uint32_t *)arg, t);
}

static PyObject *Pool_stop(PoolObject *self, PyObject *args)
{
	modstate *st = state_of_type(Py_TYPE(self));
	int cancel = 0, r;
	long long timeout_ns = -1;
	uint32_t flags;

	if (!PyArg_ParseTuple(args, "|pL:stop", &cancel, &timeout_ns))
		return NULL;
	if (pool_check(self) < 0)
		return NULL;
	flags = cancel ? ARENA_STOP_CANCEL : ARENA_STOP_DRAIN;
	r = wait_sliced(self, stop_op, &flags, timeout_ns);
	if (r == -EINTR)
		return NULL;
	if (r < 0)
		return set_error(st, r, "stop");
	Py_RETURN_NONE;
}

static PyObject *Pool_close(PoolObject *self, PyObject *unused)
{
	uint32_t flags = ARENA_STOP_CANCEL;

	if (!self->p || self->closing || self->owner_pid != getpid())
		Py_RETURN_NONE;
	self->closing = 1;
	if (self->exports == 0) {
		pool_finish_close(self);
		Py_RETURN_NONE;
	}
	/* Result views are alive: stop the workers (a worker waiting for
	 * space that a view holds gives up under CANCEL); the last view
	 * unmaps the channel. */
	Py_BEGIN_ALLOW_THREADS
	arena_pool_stop(self->p, flags, 5LL * 1000 * 1000 * 1000);
	Py_END_ALLOW_THREADS
	Py_RETURN_NONE;
}

static PyObject *Pool_worker_pids(PoolObject *self, PyObject *unused)
{
	struct arena_pool_stats s;
	PyObject *l;
	unsigned i;

	if (pool_check(self) < 0)
		return NULL;
	arena_pool_stats(self->p, &s);
	l = PyList_New(0);
	for (i = 0; l && i < s.workers; i++) {
		int pid = arena_pool_worker_pid(self->p, i);
		PyObject *o = PyLong_FromLong(pid > 0 ? pid : 0);

		if (!o || PyList_Append(l, o) < 0)
			Py_CLEAR(l);
		Py_XDECREF(o);
	}
	return l;
}

static PyObject *Pool_stats(PoolObject *self, PyObject *unused)
{
	struct arena_pool_stats s;

	if (pool_check(self) < 0)
		return NULL;
	arena_pool_stats(self->p, &s);
	return Py_BuildValue("{sKsKsKsKsKsKsKsKsIsIsI}",
			     "submitted", (unsigned long long)s.submitted,
			     "completed", (unsigned long long)s.completed,
			     "reaped", (unsigned long long)s.reaped,
			     "crashes", (unsigned long long)s.crashes,
			     "tasks_rerun", (unsigned long long)s.tasks_rerun,
			     "tasks_failed", (unsigned long long)s.tasks_failed,
			     "workers_restarted", (unsigned long long)s.workers_restarted,
			     "hangs_killed", (unsigned long long)s.hangs_killed,
			     "workers", s.workers, "depth", s.depth, "uring", (unsigned)s.uring);
}

static char **argv_from(PyObject *list)
{
	Py_ssize_t n = PyList_GET_SIZE(list), i;
	char **v = PyMem_Calloc((size_t)n + 1, sizeof(char *));

	if (!v) {
		PyErr_NoMemory();
		return NULL;
	}
	for (i = 0; i < n; i++) {
		PyObject *b = PyList_GET_ITEM(list, i);

		if (!PyBytes_Check(b)) {
			PyMem_Free(v);
			PyErr_SetString(PyExc_TypeError, "spawn argv must be a list of bytes");
			return NULL;
		}
		v[i] = PyBytes_AS_STRING(b);
	}
	return v;
}

static int Pool_init(PoolObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "arena", "func", "workers", "depth", "max_attempts",
				  "result_bytes", "task_timeout_ns", "view_threshold",
				  "spawn_argv", "keep_fds", NULL };
	modstate *st = state_of_type(Py_TYPE(self));
	struct arena_pool_opts o = { 0 };
	unsigned workers = 0, depth = 0, attempts = 0;
	unsigned long long result_bytes = 0, deadline = 0;
	Py_ssize_t threshold = 65536;
	PyObject *arena, *func, *argv = Py_None, *keep = Py_None;
	int keep_fds[64];
	unsigned nkeep = 0;
	char **cargv = NULL;
	int r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O|IIIKKnOO:_Pool", kwlist, st->Arena, &arena,
					 &func, &workers, &depth, &attempts, &result_bytes,
					 &deadline, &threshold, &argv, &keep))
		return -1;
	if (keep != Py_None) {
		PyObject *seq = PySequence_Fast(keep, "keep_fds must be a sequence of fds");
		Py_ssize_t k;

		if (!seq)
			return -1;
		if (PySequence_Fast_GET_SIZE(seq) > 64) {
			Py_DECREF(seq);
			PyErr_SetString(PyExc_ValueError, "keep_fds: at most 64 fds");
			return -1;
		}
		for (k = 0; k < PySequence_Fast_GET_SIZE(seq); k++) {
			int fd = PyObject_AsFileDescriptor(PySequence_Fast_GET_ITEM(seq, k));

			if (fd < 0) {
				Py_DECREF(seq);
				return -1;
			}
			keep_fds[nkeep++] = fd;
		}
		Py_DECREF(seq);
	}
	if (self->p) {
		PyErr_SetString(PyExc_RuntimeError, "_Pool already initialised");
		return -1;
	}
	if (arena_check_open((ArenaObject *)arena) < 0)
		return -1;
	if (!PyCallable_Check(func)) {
		PyErr_SetString(PyExc_TypeError, "func must be callable");
		return -1;
	}
	if (argv != Py_None) {
		if (!PyList_Check(argv) || PyList_GET_SIZE(argv) < 1) {
			PyErr_SetString(PyExc_TypeError, "spawn_argv must be a non-empty list of bytes");
			return -1;
		}
		cargv = argv_from(argv);
		if (!cargv)
			return -1;
	}
	self->arena = (ArenaObject *)Py_NewRef(arena);
	self->cx.st = st;
	self->cx.func = Py_NewRef(func);
	self->cx.arena_obj = Py_NewRef(arena);
	self->view_threshold = threshold < 1 ? 1 : threshold;
	self->owner_pid = getpid();
	o.workers = workers;
	o.depth = depth;
	o.max_attempts = attempts;
	o.result_bytes = result_bytes;
	o.task_deadline_ns = deadline;
	o.task = py_task;
	o.task_arg = &self->cx;
#ifdef ARENA_POOL_EINTR
	o.flags |= ARENA_POOL_EINTR;
#endif
#ifdef HAVE_KEEP_FDS
	/* Forked workers close every fd of ours but these (and 0, 1, 2). */
	o.keep_fds = nkeep ? keep_fds : NULL;
	o.nkeep_fds = nkeep;
#else
	(void)keep_fds;
	if (nkeep) {
		PyErr_SetString(PyExc_ValueError, "keep_fds: this libarena keeps every fd");
		return -1;
	}
#endif
#ifdef HAVE_WORKER_INIT
	if (!cargv) {   /* forked workers only: exec'd ones run _worker.main */
		o.worker_init = py_worker_init;
		o.worker_init_arg = &self->cx;
	}
#endif
	if (cargv) {
		o.worker_path = cargv[0];
		o.worker_argv = cargv;
		r = arena_pool_create(&self->p, self->arena->a, &o);
		/* posix_spawn copied what it needed for the first workers;
		 * replacements need argv again: keep it with the pool. */
		self->spawn_argv = cargv;
		self->spawn_list = Py_NewRef(argv);
	} else {
		/* The workers fork here, from this thread, with the GIL held:
		 * Python's fork protocol around it, the child half in each
		 * worker's first task (worker_enter). */
		PyOS_BeforeFork();
		r = arena_pool_create(&self->p, self->arena->a, &o);
		PyOS_AfterFork_Parent();
	}
	if (r < 0) {
		self->p = NULL;
		set_error(st, r, "pool create");
		return -1;
	}
	/* The arena must outlive the pool: arena.close() now only marks it. */
	self->arena->exports++;
	return 0;
}

static void Pool_dealloc(PoolObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);

	PyObject_GC_UnTrack(self);
	if (self->weakrefs)
		PyObject_ClearWeakRefs((PyObject *)self);
	/* Views hold a reference: none is alive here. */
	pool_finish_close(self);
	Py_CLEAR(self->cx.func);
	Py_CLEAR(self->cx.arena_obj);
	Py_CLEAR(self->cx.pending);
	Py_CLEAR(self->arena);
	Py_CLEAR(self->spawn_list);
	PyMem_Free(self->spawn_argv);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static int Pool_traverse(PoolObject *self, visitproc visit, void *arg)
{
	Py_VISIT(Py_TYPE(self));
	Py_VISIT(self->cx.func);
	return 0;
}

static int Pool_clear(PoolObject *self)
{
	/* A cycle through func: the workers go first, then the function. */
	if (self->exports == 0)
		pool_finish_close(self);
	Py_CLEAR(self->cx.func);
	return 0;
}

static PyObject *Pool_enter(PoolObject *self, PyObject *unused)
{
	return Py_NewRef(self);
}

static PyObject *Pool_exit(PoolObject *self, PyObject *args)
{
	return Pool_close(self, NULL);
}

static PyObject *Pool_get_closed(PoolObject *self, void *c)
{
	return PyBool_FromLong(!self->p || self->closing);
}

static PyMethodDef Pool_methods[] = {
	{ "submit", (PyCFunction)Pool_submit, METH_VARARGS,
	  "submit(indices, first_uid, timeout_ns=-1) -> int\n\n"
	  "Submits tasks for the item indices; task k gets user data first_uid + k.\n"
	  "Returns how many were submitted (fewer when the timeout expired)." },
	{ "submit_range", (PyCFunction)Pool_submit_range, METH_VARARGS,
	  "submit_range(first, count, first_uid, timeout_ns=-1) -> int\n\n"
	  "Submits tasks for items first .. first+count-1 (user data first_uid + k).\n"
	  "Returns how many were submitted (fewer when the timeout expired)." },
	{ "iterate", (PyCFunction)Pool_iterate, METH_VARARGS,
	  "iterate(indices, ordered, with_index, depth, foreign) -> iterator\n\n"
	  "Results of the tasks for indices (None: every item), at most depth in flight;\n"
	  "completions of other users go to foreign(list of (uid, index, ok, value))." },
	{ "take_uids", (PyCFunction)Pool_take_uids, METH_O,
	  "take_uids(n) -> int: the first of n fresh user data values" },
	{ "reap", (PyCFunction)Pool_reap, METH_VARARGS,
	  "reap(max=256, timeout_ns=-1) -> list | None\n\n"
	  "Completions as (uid, index, ok, value) tuples; value is the result or\n"
	  "the exception.  [] when the timeout expired, None when the pool is\n"
	  "stopped and nothing is in flight." },
	{ "stop", (PyCFunction)Pool_stop, METH_VARARGS,
	  "stop(cancel=False, timeout_ns=-1)\n\nNo more submissions; drains (or cancels) queued tasks." },
	{ "close", (PyCFunction)Pool_close, METH_NOARGS,
	  "close()\n\nStops the workers and reaps them; live result views keep the channel mapped." },
	{ "worker_pids", (PyCFunction)Pool_worker_pids, METH_NOARGS, "worker_pids() -> list of int (0: not running)" },
	{ "stats", (PyCFunction)Pool_stats, METH_NOARGS, "stats() -> dict of counters" },
	{ "__enter__", (PyCFunction)Pool_enter, METH_NOARGS, NULL },
	{ "__exit__", (PyCFunction)Pool_exit, METH_VARARGS, NULL },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef Pool_getset[] = {
	{ "closed", (getter)Pool_get_closed, NULL, "True after close()", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyMemberDef Pool_members[] = {
	{ "__weaklistoffset__", T_PYSSIZET, offsetof(PoolObject, weakrefs), READONLY, NULL },
	{ NULL, 0, 0, 0, NULL },
};

static PyType_Slot Pool_slots[] = {
	{ Py_tp_doc, "_Pool(arena, func, workers=0, depth=0, max_attempts=0, result_bytes=0, "
		     "task_timeout_ns=0, view_threshold=65536, spawn_argv=None)\n\n"
		     "The low-level pool under libarena.Pool (use that)." },
	{ Py_tp_init, Pool_init },
	{ Py_tp_dealloc, Pool_dealloc },
	{ Py_tp_traverse, Pool_traverse },
	{ Py_tp_clear, Pool_clear },
	{ Py_tp_methods, Pool_methods },
	{ Py_tp_getset, Pool_getset },
	{ Py_tp_members, Pool_members },
	{ 0, NULL },
};

static PyType_Spec Pool_spec = {
	.name = "libarena._libarena._Pool",
	.basicsize = sizeof(PoolObject),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.slots = Pool_slots,
};

/* ------------------------------------------------------------------------ */
/* Spawned workers                                                           */
/* ------------------------------------------------------------------------ */

static PyObject *worker_main(PyObject *module, PyObject *args)
{
	modstate *st = PyModule_GetState(module);
	struct task_ctx cx = { 0 };
	PyObject *func, *arena_type;
	int r;

	if (!PyArg_ParseTuple(args, "OO!:worker_main", &func, &PyType_Type, &arena_type))
		return NULL;
	if (!PyType_IsSubtype((PyTypeObject *)arena_type, st->Arena)) {
		PyErr_SetString(PyExc_TypeError, "arena_type must be a subclass of Arena");
		return NULL;
	}
	cx.st = st;
	cx.func = func;
	cx.arena_type = arena_type;
	cx.ready_pid = getpid();
	cx.ts = PyEval_SaveThread();
	r = arena_worker_main(py_task, &cx);
	PyEval_RestoreThread(cx.ts);
	Py_CLEAR(cx.pending);
	if (cx.arena_obj) {
		/* the library closes its arena: views must not outlive it */
		((ArenaObject *)cx.arena_obj)->a = NULL;
		Py_CLEAR(cx.arena_obj);
	}
	if (r < 0)
		return set_error(st, r, "worker");
	return PyLong_FromLong(r);
}

static PyObject *mod_strerror(PyObject *module, PyObject *arg)
{
	int e = PyLong_AsLong(arg);

	if (e == -1 && PyErr_Occurred())
		return NULL;
	return PyUnicode_FromString(arena_strerror(e > 0 ? -e : e));
}

static PyMethodDef module_methods[] = {
	{ "worker_main", worker_main, METH_VARARGS,
	  "worker_main(func, arena_type) -> int\n\n"
	  "In a spawned worker: runs func(arena, i) for each task until the pool stops." },
	{ "strerror", mod_strerror, METH_O, "strerror(errno) -> str: libarena's meaning of an error code" },
	{ NULL, NULL, 0, NULL },
};

/* ------------------------------------------------------------------------ */
/* Module                                                                    */
/* ------------------------------------------------------------------------ */

static PyObject *new_exc(PyObject *m, const char *name, PyObject *base, const char *doc)
{
	PyObject *e = PyErr_NewExceptionWithDoc(name, doc, base, NULL);

	if (e && PyModule_AddObjectRef(m, strrchr(name, '.') + 1, e) < 0)
		Py_CLEAR(e);
	return e;
}

static PyObject *import_attr(const char *mod, const char *attr)
{
	PyObject *m = PyImport_ImportModule(mod), *a;

	if (!m)
		return NULL;
	a = PyObject_GetAttrString(m, attr);
	Py_DECREF(m);
	return a;
}

static int module_exec(PyObject *m)
{
	modstate *st = PyModule_GetState(m);
	PyObject *base;

	st->View = (PyTypeObject *)PyType_FromModuleAndSpec(m, &View_spec, NULL);
	st->Arena = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Arena_spec, NULL);
	st->Pool = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Pool_spec, NULL);
	st->Iter = (PyTypeObject *)PyType_FromModuleAndSpec(m, &Iter_spec, NULL);
	if (!st->View || !st->Arena || !st->Pool || !st->Iter)
		return -1;
	if (PyModule_AddType(m, st->Arena) < 0 || PyModule_AddType(m, st->Pool) < 0)
		return -1;
	st->ArenaError = new_exc(m, "libarena.ArenaError", PyExc_OSError,
		"An error from libarena; errno is set, strerror says libarena's meaning.");
	if (!st->ArenaError)
		return -1;
	st->CorruptArenaError = new_exc(m, "libarena.CorruptArenaError", st->ArenaError,
		"A corrupt or unknown arena/channel/result record (EBADMSG, EPROTONOSUPPORT).");
	st->WorkerCrashed = new_exc(m, "libarena.WorkerCrashed", st->ArenaError,
		"The task killed its worker max_attempts times (EOWNERDEAD), or no worker is left.");
	st->ResultTooLarge = new_exc(m, "libarena.ResultTooLarge", st->ArenaError,
		"The task's result does not fit in its worker's result area (EMSGSIZE): raise result_bytes.");
	if (!st->CorruptArenaError || !st->WorkerCrashed || !st->ResultTooLarge)
		return -1;
	base = PyTuple_Pack(2, st->WorkerCrashed, PyExc_TimeoutError);
	if (!base)
		return -1;
	st->TaskTimeout = new_exc(m, "libarena.TaskTimeout", base,
		"The task ran past task_timeout max_attempts times (each time its worker was killed).");
	Py_DECREF(base);
	st->TaskError = new_exc(m, "libarena.TaskError", PyExc_Exception,
		"A task raised an exception that could not be pickled: args are (type name, message).");
	st->RemoteTraceback = new_exc(m, "libarena.RemoteTraceback", PyExc_Exception,
		"The traceback of an exception raised in a worker, as text (set as __cause__).");
	if (!st->TaskTimeout || !st->TaskError || !st->RemoteTraceback)
		return -1;
	st->dumps = import_attr("pickle", "dumps");
	st->loads = import_attr("pickle", "loads");
	st->format_exception = import_attr("traceback", "format_exception");
	st->CancelledError = import_attr("concurrent.futures", "CancelledError");
	if (!st->dumps || !st->loads || !st->format_exception || !st->CancelledError)
		return -1;
	if (PyModule_AddIntConstant(m, "VERSION_MAJOR", ARENA_VERSION_MAJOR) < 0 ||
	    PyModule_AddIntConstant(m, "VERSION_MINOR", ARENA_VERSION_MINOR) < 0)
		return -1;
	return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg)
{
	modstate *st = PyModule_GetState(m);

	Py_VISIT(st->View);
	Py_VISIT(st->Arena);
	Py_VISIT(st->Pool);
	Py_VISIT(st->Iter);
	Py_VISIT(st->ArenaError);
	Py_VISIT(st->CorruptArenaError);
	Py_VISIT(st->WorkerCrashed);
	Py_VISIT(st->TaskTimeout);
	Py_VISIT(st->ResultTooLarge);
	Py_VISIT(st->RemoteTraceback);
	Py_VISIT(st->TaskError);
	Py_VISIT(st->dumps);
	Py_VISIT(st->loads);
	Py_VISIT(st->ndarray);
	Py_VISIT(st->asarray);
	Py_VISIT(st->array);
	Py_VISIT(st->format_exception);
	Py_VISIT(st->CancelledError);
	return 0;
}

static int module_clear(PyObject *m)
{
	modstate *st = PyModule_GetState(m);

	Py_CLEAR(st->View);
	Py_CLEAR(st->Arena);
	Py_CLEAR(st->Pool);
	Py_CLEAR(st->Iter);
	Py_CLEAR(st->ArenaError);
	Py_CLEAR(st->CorruptArenaError);
	Py_CLEAR(st->WorkerCrashed);
	Py_CLEAR(st->TaskTimeout);
	Py_CLEAR(st->ResultTooLarge);
	Py_CLEAR(st->RemoteTraceback);
	Py_CLEAR(st->TaskError);
	Py_CLEAR(st->dumps);
	Py_CLEAR(st->loads);
	Py_CLEAR(st->ndarray);
	Py_CLEAR(st->asarray);
	Py_CLEAR(st->array);
	Py_CLEAR(st->format_exception);
	Py_CLEAR(st->CancelledError);
	return 0;
}

static void module_free(void *m)
{
	module_clear(m);
}

static PyModuleDef_Slot module_slots[] = {
	{ Py_mod_exec, module_exec },
	{ 0, NULL },
};

static struct PyModuleDef libarena_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "libarena._libarena",
	.m_doc = "The C half of libarena (use the libarena package).",
	.m_size = sizeof(modstate),
	.m_methods = module_methods,
	.m_slots = module_slots,
	.m_traverse = module_traverse,
	.m_clear = module_clear,
	.m_free = module_free,
};

PyMODINIT_FUNC PyInit__libarena(void)
{
	return PyModuleDef_Init(&libarena_module);
}
