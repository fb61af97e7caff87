/* SPDX-License-Identifier: MIT */
/*
 * arena-bench: the workload (the seed's sequence), checksums, clocks,
 * latency statistics, counted I/O, process memory and the in-flight gate.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static const char seed_string[] = "test_string";
static const int64_t seed_list[] = { 1, 3, 4 };
#define SEED_N (sizeof(seed_list) / sizeof(seed_list[0]))

const char *mode_name(enum bench_mode m)
{
	static const char *const names[MODE_COUNT] = { "copy", "proxy", "pipe", "arena" };
	return (unsigned)m < MODE_COUNT ? names[m] : "?";
}

uint64_t fnv1a64(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer; vDSO, no syscall. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void *big_alloc(size_t len, size_t *mapped, bool dontfork)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t n = (len + pg - 1) / pg * pg;
	void *p;

	if (n == 0)
		n = pg;
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* Timestamps and hashes belong to the parent: a forked worker that
	 * inherited them would show them in its RSS and blur the comparison. */
	if (dontfork && madvise(p, n, MADV_DONTFORK) < 0) {
		munmap(p, n);
		return NULL;
	}
	*mapped = n;
	return p;
}

void big_free(void *p, size_t mapped)
{
	if (p)
		munmap(p, mapped);
}

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static size_t record_len(uint64_t slen)
{
	return 4 + slen + 4 + SEED_N * 8;
}

/* Writes one record; the string is "test_string" cut or padded with '.' to
 * slen bytes, so --item-size changes only the payload's size. */
static void record_write(uint8_t *p, uint64_t slen)
{
	size_t seed_len = sizeof(seed_string) - 1;

	put_u32(p, (uint32_t)slen);
	p += 4;
	memcpy(p, seed_string, slen < seed_len ? slen : seed_len);
	if (slen > seed_len)
		memset(p + seed_len, '.', slen - seed_len);
	p += slen;
	put_u32(p, SEED_N);
	memcpy(p + 4, seed_list, sizeof(seed_list));
}

int workload_build(struct workload *wl, uint64_t items, uint64_t item_size)
{
	size_t rec = record_len(item_size);

	memset(wl, 0, sizeof(*wl));
	if (items == 0 || item_size > UINT32_MAX || rec > SIZE_MAX / items)
		return -EINVAL;
	wl->count = items;
	wl->max_item = rec;
	wl->blob_len = rec * items;
	wl->blob = big_alloc(wl->blob_len, &wl->blob_map, false);
	wl->off = big_alloc((items + 1) * sizeof(uint64_t), &wl->off_map, false);
	wl->hash = big_alloc(items * sizeof(uint64_t), &wl->hash_map, true);
	if (!wl->blob || !wl->off || !wl->hash) {
		int r = -errno;
		workload_free(wl);
		return r ? r : -ENOMEM;
	}
	/* Every item is the same tuple, as in the seed; each is still its own
	 * record so that fetching item i really reads item i. */
	for (uint64_t i = 0; i < items; i++) {
		wl->off[i] = i * rec;
		record_write(wl->blob + i * rec, item_size);
		wl->hash[i] = fnv1a64(wl->blob + i * rec, rec);
	}
	wl->off[items] = wl->blob_len;
	return 0;
}

void workload_free(struct workload *wl)
{
	big_free(wl->blob, wl->blob_map);
	big_free(wl->off, wl->off_map);
	big_free(wl->hash, wl->hash_map);
	memset(wl, 0, sizeof(*wl));
}

int workload_set_inherit(struct workload *wl, bool inherit)
{
	int adv = inherit ? MADV_DOFORK : MADV_DONTFORK;

	if (madvise(wl->blob, wl->blob_map, adv) < 0 ||
	    madvise(wl->off, wl->off_map, adv) < 0)
		return -errno;
	return 0;
}

uint64_t workload_expected(const struct workload *wl, uint64_t ntasks)
{
	uint64_t sum = 0;

	for (uint64_t t = 0; t < ntasks; t++)
		sum += wl->hash[t % wl->count];
	return sum;
}

int sequence_parse(const uint8_t *buf, size_t len, uint64_t *count, uint64_t **offp)
{
	uint64_t n, *off;
	size_t pos = 8;

	if (len < 8)
		return -EBADMSG;
	memcpy(&n, buf, 8);
	if (n > (len - 8) / 8 + 1)   /* a record is at least 8 bytes */
		return -EBADMSG;
	off = malloc((n + 1) * sizeof(*off));
	if (!off)
		return -ENOMEM;
	/* The deserialization the seed pays per task: walk every record and
	 * check it, building the table that indexing needs. */
	for (uint64_t i = 0; i < n; i++) {
		uint64_t slen, cnt;

		off[i] = pos - 8;
		if (len - pos < 4)
			goto bad;
		slen = get_u32(buf + pos);
		if (len - pos - 4 < slen + 4)
			goto bad;
		cnt = get_u32(buf + pos + 4 + slen);
		if ((len - pos - 8 - slen) / 8 < cnt)
			goto bad;
		pos += 8 + slen + cnt * 8;
	}
	off[n] = pos - 8;
	*count = n;
	*offp = off;
	return 0;
bad:
	free(off);
	return -EBADMSG;
}

struct sys_counters *counters_map(void)
{
	void *p = mmap(NULL, sizeof(struct sys_counters), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;   /* zero-filled by the kernel */
}

void counters_unmap(struct sys_counters *c)
{
	if (c)
		munmap(c, sizeof(*c));
}

int io_write_all(int fd, const struct iovec *iov_in, int iovcnt, _Atomic uint64_t *ctr)
{
	struct iovec iov[8];

	if (iovcnt > 8)
		return -EINVAL;
	memcpy(iov, iov_in, (size_t)iovcnt * sizeof(*iov));
	while (iovcnt > 0) {
		ssize_t n;

		count_call(ctr);
		n = writev(fd, iov, iovcnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* A pipe write larger than its buffer may come back short. */
		while (iovcnt > 0 && (size_t)n >= iov[0].iov_len) {
			n -= (ssize_t)iov[0].iov_len;
			memmove(iov, iov + 1, (size_t)--iovcnt * sizeof(*iov));
		}
		if (iovcnt > 0) {
			iov[0].iov_base = (char *)iov[0].iov_base + n;
			iov[0].iov_len -= (size_t)n;
		}
	}
	return 0;
}

int rbuf_init(struct rbuf *r, size_t cap)
{
	r->buf = malloc(cap);
	r->cap = r->buf ? cap : 0;
	r->head = r->tail = 0;
	return r->buf ? 0 : -ENOMEM;
}

void rbuf_free(struct rbuf *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = r->head = r->tail = 0;
}

int rbuf_reserve(struct rbuf *r, size_t n)
{
	size_t have = rbuf_avail(r);

	if (r->head > 0 && (r->cap - r->head < n || r->tail == r->cap)) {
		memmove(r->buf, r->buf + r->head, have);
		r->head = 0;
		r->tail = have;
	}
	if (r->cap < n) {
		size_t cap = r->cap * 2 > n ? r->cap * 2 : n;
		uint8_t *b = realloc(r->buf, cap);

		if (!b)
			return -ENOMEM;
		r->buf = b;
		r->cap = cap;
	}
	return 0;
}

ssize_t rbuf_fill(struct rbuf *r, int fd, _Atomic uint64_t *ctr)
{
	int err;

	if (r->tail == r->cap && (err = rbuf_reserve(r, rbuf_avail(r) + 4096)) < 0)
		return err;
	for (;;) {
		ssize_t n;

		count_call(ctr);
		n = read(fd, r->buf + r->tail, r->cap - r->tail);
		if (n >= 0) {
			r->tail += (size_t)n;
			return n;
		}
		if (errno != EINTR)
			return -errno;
	}
}

int rbuf_need(struct rbuf *r, int fd, size_t n, _Atomic uint64_t *ctr)
{
	int err = rbuf_reserve(r, n);

	if (err < 0)
		return err;
	while (rbuf_avail(r) < n) {
		ssize_t got = rbuf_fill(r, fd, ctr);

		if (got < 0)
			return (int)got;
		if (got == 0)
			return rbuf_avail(r) == 0 ? 1 : -EPIPE;
	}
	return 0;
}

/* Finds "key:   123 kB" in a /proc file. */
static int proc_field_kb(const char *path, const char *key, uint64_t *kb)
{
	char line[256];
	size_t klen = strlen(key);
	FILE *f = fopen(path, "re");
	int r = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			*kb = strtoull(line + klen + 1, NULL, 10);
			r = 0;
			break;
		}
	}
	fclose(f);
	return r;
}

int proc_mem_read(pid_t pid, struct proc_mem *m)
{
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((r = proc_field_kb(path, "VmHWM", &m->hwm_kb)) < 0 ||
	    (r = proc_field_kb(path, "VmRSS", &m->rss_kb)) < 0)
		return r;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	return proc_field_kb(path, "Pss", &m->pss_kb);
}

int proc_mapping_pss(pid_t pid, const uintptr_t *starts, unsigned n, const char *name,
		     uint64_t *kb)
{
	char path[64], line[512];
	FILE *f;
	int in = 0;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	if (!(f = fopen(path, "re")))
		return -errno;
	*kb = 0;
	while (fgets(line, sizeof(line), f)) {
		uintptr_t lo, hi;
		int used = 0;

		/* A mapping's first line: "lo-hi perms offset dev inode  path". */
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %*s %*s %*s %*s %n", &lo, &hi,
			   &used) == 2 && used > 0) {
			in = 0;
			for (unsigned k = 0; k < n; k++)
				in |= starts[k] && lo == starts[k];
			if (name && strstr(line + used, name))
				in = 1;
		} else if (in && strncmp(line, "Pss:", 4) == 0) {
			*kb += strtoull(line + 4, NULL, 10);
		}
	}
	fclose(f);
	return 0;
}

int child_reap(pid_t pid, const char *what, char *err, size_t errlen)
{
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			snprintf(err, errlen, "waitpid %s: %s", what, strerror(errno));
			return -errno;
		}
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st))
		snprintf(err, errlen, "%s exited with %d", what, WEXITSTATUS(st));
	else
		snprintf(err, errlen, "%s killed by signal %d", what, WTERMSIG(st));
	return -ECHILD;
}

int gate_init(struct gate *g, unsigned depth)
{
	int r;

	memset(g, 0, sizeof(*g));
	g->depth = depth;
	if ((r = pthread_mutex_init(&g->lock, NULL)) != 0)
		return -r;
	if ((r = pthread_cond_init(&g->cond, NULL)) != 0) {
		pthread_mutex_destroy(&g->lock);
		return -r;
	}
	return 0;
}

void gate_destroy(struct gate *g)
{
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
}

int gate_acquire(struct gate *g)
{
	int r = 0;

	pthread_mutex_lock(&g->lock);
	while (g->inflight >= g->depth && !g->aborted) {
		/* Announce ourselves so the consumer signals only when someone
		 * sleeps: the same rule as the pool's futex wakes. */
		g->producer_waiting = true;
		g->waits++;
		pthread_cond_wait(&g->cond, &g->lock);
	}
	if (g->aborted)
		r = -ECANCELED;
	else
		g->inflight++;
	pthread_mutex_unlock(&g->lock);
	return r;
}

void gate_release(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->inflight--;
	if (g->producer_waiting) {
		g->producer_waiting = false;
		g->wakes++;
		pthread_cond_signal(&g->cond);
	}
	pthread_mutex_unlock(&g->lock);
}

void gate_abort(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->aborted = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

void progress_start(struct progress *pg, const char *mode, unsigned rep,
		    unsigned reps, uint64_t total)
{
	pg->on = isatty(STDERR_FILENO);
	pg->mode = mode;
	pg->rep = rep;
	pg->reps = reps;
	pg->total = total;
	pg->start_ns = pg->last_ns = now_ns();
}

void progress_tick(struct progress *pg, uint64_t done)
{
	uint64_t t;

	if (!pg->on)
		return;
	t = now_ns();
	if (t - pg->last_ns < 200000000ull)   /* 5 updates a second at most */
		return;
	pg->last_ns = t;
	fprintf(stderr, "\r\033[K%-5s rep %u/%u  %" PRIu64 "/%" PRIu64 " tasks  %.1f s",
		pg->mode, pg->rep, pg->reps, done, pg->total,
		(double)(t - pg->start_ns) / 1e9);
}

void progress_end(struct progress *pg)
{
	if (pg->on)
		fputs("\r\033[K", stderr);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static uint64_t percentile(const uint64_t *v, uint64_t n, unsigned pct)
{
	uint64_t rank = (n * pct + 99) / 100;
	return v[rank ? rank - 1 : 0];
}

int run_finish(struct bench_run *run, struct mode_result *res)
{
	uint64_t n = run->ntasks, first = UINT64_MAX, last = 0;
	double sum = 0;
	size_t mapped;
	uint64_t *lat = big_alloc(n * sizeof(*lat), &mapped, true);

	if (!lat)
		return -ENOMEM;
	for (uint64_t t = 0; t < n; t++) {
		lat[t] = run->done_ns[t] - run->submit_ns[t];
		sum += (double)lat[t];
		if (run->submit_ns[t] < first)
			first = run->submit_ns[t];
		if (run->done_ns[t] > last)
			last = run->done_ns[t];
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	res->tasks = n;
	res->total_ns = last - first;
	res->mean_ns = sum / (double)n;
	res->p50_ns = percentile(lat, n, 50);
	res->p99_ns = percentile(lat, n, 99);
	res->max_ns = lat[n - 1];
	big_free(lat, mapped);
	res->expected = workload_expected(run->wl, n);
	if (res->checksum != res->expected) {
		snprintf(res->err, sizeof(res->err),
			 "wrong results: checksum %016" PRIx64 ", expected %016" PRIx64,
			 res->checksum, res->expected);
		return -EBADMSG;
	}
	return 0;
}
