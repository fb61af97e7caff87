/* SPDX-License-Identifier: MIT */
/* Creating, mapping and validating the channel memfd (layout in channel.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena.h"
#include "channel.h"
#include "evc.h"

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

static uint64_t chan_page(void)
{
	long pg = sysconf(_SC_PAGESIZE);

	return pg > 0 ? (uint64_t)pg : 4096;
}

/*
 * Makes the page after each worker's result area inaccessible in this
 * process's mapping.  Every process that maps a channel does it (chan_create,
 * chan_map), so a worker's task that writes past its slice dies of SIGSEGV
 * and is handled as a crash.
 */
static int chan_guard(struct chan *c)
{
	uint64_t pg = chan_page();
	unsigned i;

	for (i = 0; i < c->workers; i++)
		if (mprotect(chan_res(c, i) + c->res_bytes, pg, PROT_NONE) < 0)
			return SYS_ERR();
	return 0;
}

/* Derives every offset from the few numbers that define a channel. */
static int layout(struct chan_hdr *h, const struct chan_params *prm)
{
	uint64_t sqd, cqd, rb, pg = chan_page();

	if (!prm->workers || prm->workers > CHAN_MAX_WORKERS || !prm->depth ||
	    prm->depth > (1u << 20))
		return -EINVAL;
	sqd = pow2_at_least(prm->depth);
	cqd = sqd;
	rb = round_up(prm->res_bytes, CACHELINE);
	if (!rb || rb > (1ull << 40))
		return -EINVAL;
	memset(h, 0, sizeof(*h));
	h->magic = CHAN_MAGIC;
	h->version = CHAN_VERSION;
	h->hdr_size = sizeof(*h);
	h->workers = prm->workers;
	h->sq_depth = (uint32_t)sqd;
	h->cq_depth = (uint32_t)cqd;
	/* Each worker's block starts on a page of its own. */
	h->worker_off = round_up(sizeof(struct chan_global), pg);
	h->sq_off = sizeof(struct chan_worker);
	h->cq_off = h->sq_off + sqd * sizeof(struct chan_sqe);
	/* The result area ends on a page, and a guard page follows (chan_guard):
	 * a task that writes past its slice faults instead of writing on the
	 * next worker's lines.  Areas of whole pages start on a page. */
	h->res_off = round_up(h->cq_off + cqd * sizeof(struct chan_cqe) + rb, pg) - rb;
	h->res_bytes = rb;
	h->worker_stride = h->res_off + rb + pg;
	h->size = h->worker_off + h->worker_stride * prm->workers;
	h->arena_size = prm->arena_size;
	h->parent_pid = (uint32_t)getpid();
	h->index_base = prm->index_base;
	return 0;
}

static void fill_view(struct chan *c, const struct chan_hdr *h)
{
	c->workers = h->workers;
	c->sq_mask = h->sq_depth - 1;
	c->cq_mask = h->cq_depth - 1;
	c->worker_off = h->worker_off;
	c->stride = h->worker_stride;
	c->sq_off = h->sq_off;
	c->cq_off = h->cq_off;
	c->res_off = h->res_off;
	c->res_bytes = h->res_bytes;
	c->res_mask = h->res_bytes && !(h->res_bytes & (h->res_bytes - 1)) ? h->res_bytes - 1 : 0;
}

int chan_create(struct chan *c, int *fd_out, const struct chan_params *prm)
{
	struct chan_hdr h;
	void *m;
	int fd, r;
	unsigned i;

	r = layout(&h, prm);
	if (r < 0)
		return r;
	fd = sys_memfd_create("arena-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return fd;
	/* Sparse: result areas cost memory only where results are written. */
	r = sys_ftruncate(fd, h.size);
	if (r == 0)
		r = sys_add_seals(fd, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	if (r == 0)
		r = sys_mmap(&m, h.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r < 0) {
		sys_close(fd);
		return r;
	}
	memset(c, 0, sizeof(*c));
	c->base = m;
	c->size = h.size;
	c->g = m;
	memcpy(&c->g->hdr, &h, sizeof(h));
	fill_view(c, &h);
	r = chan_guard(c);
	if (r < 0) {
		chan_unmap(c);
		sys_close(fd);
		return r;
	}
	for (i = 0; i < h.workers; i++) {
		struct chan_worker *w = chan_w(c, i);

		atomic_init(&w->prod.sq_tail, prm->index_base);
		atomic_init(&w->hot.sq_head, prm->index_base);
		atomic_init(&w->hot.cq_tail, prm->index_base);
		atomic_init(&w->cons.cq_head, prm->index_base);
	}
	*fd_out = fd;
	return 0;
}

/* Checks a header copy against the real size of the fd.  Trusts nothing. */
static int check_hdr(const struct chan_hdr *h, uint64_t real)
{
	struct chan_params prm;
	struct chan_hdr want;
	int r;

	if (h->magic != CHAN_MAGIC)
		return -EBADMSG;
	if (h->version != CHAN_VERSION)
		return -EPROTONOSUPPORT;
	if (h->hdr_size != sizeof(*h) || h->sq_depth != h->cq_depth ||
	    !h->sq_depth || (h->sq_depth & (h->sq_depth - 1)))
		return -EBADMSG;
	prm.workers = h->workers;
	prm.depth = h->sq_depth;
	prm.res_bytes = h->res_bytes;
	prm.arena_size = h->arena_size;
	prm.index_base = h->index_base;
	r = layout(&want, &prm);
	if (r < 0)
		return -EBADMSG;
	/* Every derived offset must be exactly what the layout gives. */
	if (want.worker_off != h->worker_off || want.worker_stride != h->worker_stride ||
	    want.sq_off != h->sq_off || want.cq_off != h->cq_off ||
	    want.res_off != h->res_off || want.res_bytes != h->res_bytes ||
	    want.size != h->size || h->size != real)
		return -EBADMSG;
	return 0;
}

int chan_map(struct chan *c, int fd, int writable)
{
	struct chan_hdr h;
	uint64_t size;
	void *m;
	int reg, r;

	r = sys_fstat_size(fd, &size, &reg);
	if (r < 0)
		return r;
	if (!reg)
		return -EINVAL;
	/* Unsealed, its owner (or any peer holding it) could shrink it under
	 * our mapping, and a later access would SIGBUS: refuse it. */
	r = sys_get_seals(fd);
	if (r < 0)
		return r == -EINVAL ? -EPERM : r;
	if ((r & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
		return -EPERM;
	if (size < sizeof(struct chan_global))
		return -EBADMSG;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return -EBADMSG;
	r = check_hdr(&h, size);
	if (r < 0)
		return r;
	r = sys_mmap(&m, size, writable ? PROT_READ | PROT_WRITE : PROT_READ,
		     MAP_SHARED, fd, 0);
	if (r < 0)
		return r;
	memset(c, 0, sizeof(*c));
	c->base = m;
	c->size = size;
	c->g = m;
	/* The view comes from the checked copy, never from the live header. */
	fill_view(c, &h);
	r = chan_guard(c);
	if (r < 0) {
		chan_unmap(c);
		return r;
	}
	return 0;
}

void chan_unmap(struct chan *c)
{
	if (c->base)
		munmap(c->base, c->size);
	c->base = NULL;
}

uint32_t chan_sq_tasks(const struct chan *c, unsigned i, uint32_t head, uint32_t tail)
{
	uint64_t n = 0;
	uint32_t k;

	if (tail - head > c->sq_mask + 1)
		return tail - head;
	for (k = head; k != tail; k++)
		n += __atomic_load_n(&chan_sq(c, i)[k & c->sq_mask].count, __ATOMIC_RELAXED);
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

int arena_channel_inspect(int fd, struct arena_channel_info *info)
{
	struct chan c;
	unsigned i;
	int r;

	if (!info || fd < 0)
		return -EINVAL;
	r = chan_map(&c, fd, 0);
	if (r < 0)
		return r;
	memset(info, 0, sizeof(*info));
	info->version = CHAN_VERSION;
	info->workers = c.workers;
	info->sq_depth = c.sq_mask + 1;
	info->cq_depth = c.cq_mask + 1;
	info->result_bytes = c.res_bytes;
	info->size = c.size;
	info->stopping = atomic_load_explicit(&c.g->ctl.stop, memory_order_relaxed);
	info->consumer_waiters = evc_sleepers(
		atomic_load_explicit(&c.g->cq_waiters.ann, memory_order_relaxed));
	for (i = 0; i < c.workers && i < 64; i++) {
		struct chan_worker *w = chan_w(&c, i);
		struct arena_channel_worker_info *o = &info->w[i];
		/* A snapshot of live counters: relaxed loads, figures may be a
		 * task apart from each other. */
		uint32_t sqt = atomic_load_explicit(&w->prod.sq_tail, memory_order_relaxed);
		uint32_t sqh = atomic_load_explicit(&w->hot.sq_head, memory_order_relaxed);
		uint32_t cqt = atomic_load_explicit(&w->hot.cq_tail, memory_order_relaxed);
		uint32_t cqh = atomic_load_explicit(&w->cons.cq_head, memory_order_relaxed);
		uint64_t alloc = atomic_load_explicit(&w->rec.res_alloc, memory_order_relaxed);
		uint64_t head = atomic_load_explicit(&w->cons.res_head, memory_order_relaxed);

		o->pid = (int32_t)atomic_load_explicit(&w->rec.pid, memory_order_relaxed);
		o->state = atomic_load_explicit(&w->rec.state, memory_order_relaxed);
		o->sq_pending = chan_sq_tasks(&c, i, sqh, sqt);
		o->cq_pending = cqt - cqh;
		o->tasks_done = atomic_load_explicit(&w->rec.tasks_done, memory_order_relaxed);
		o->waits = atomic_load_explicit(&w->rec.waits, memory_order_relaxed);
		o->wakes = atomic_load_explicit(&w->rec.wakes, memory_order_relaxed);
		o->task_ns = atomic_load_explicit(&w->rec.task_ns, memory_order_relaxed);
		o->result_used = alloc - head <= c.res_bytes ? alloc - head : 0;
	}
	chan_unmap(&c);
	return 0;
}
