/* SPDX-License-Identifier: MIT */
/*
 * Array records (struct rec in _libarena.h): written from a buffer by the
 * arena (array items) and by the workers (array results), parsed into a view
 * by whoever reads them.  A record read may come from another process.
 */
#include "_libarena.h"

/* Parses an array record of len bytes at p into the view's shape and format.
 * The record may come from another process: every field is checked against
 * len before use.  Returns 0, or -1 with an exception set. */
int view_set_array(modstate *st, ViewObject *v, const uint8_t *p, size_t len)
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
size_t rec_array_size(const Py_buffer *b, size_t align)
{
	size_t hdr = sizeof(struct rec) + (size_t)b->ndim * 8 + strlen(b->format ? b->format : "B");

	return ((hdr + align - 1) & ~(align - 1)) + (size_t)b->len;
}

int rec_array_write(const Py_buffer *b, uint8_t *out, size_t align)
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
