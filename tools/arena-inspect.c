/* SPDX-License-Identifier: MIT */
/*
 * arena-inspect: prints what an arena image or a live arena/channel fd holds.
 *
 *   arena-inspect [--json] FILE
 *   arena-inspect [--json] --pid PID --fd N [--channel-fd M]
 *
 * A FILE is an image saved with arena_save() (or any path that opens an
 * arena or a channel, such as /proc/PID/fd/N).  With --pid the fds are taken
 * from the live process with pidfd_getfd(), or opened through
 * /proc/PID/fd/N when that is not allowed.  Each fd is recognised as an arena
 * or a channel by validating it as one, then the other; nothing is written.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <arena.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

static int json;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: arena-inspect [--json] FILE\n"
		"       arena-inspect [--json] --pid PID --fd N [--channel-fd M]\n"
		"\n"
		"Prints an arena's header (items, sizes, offsets, alignment, version,\n"
		"flags, seals) or a pool channel's layout and occupancy (ring depths,\n"
		"tasks queued and completions not yet reaped per worker, worker states\n"
		"and pids, statistics).  Each fd or file is recognised as an arena or a\n"
		"channel automatically.\n"
		"\n"
		"  FILE             an image saved with arena_save(), or a path such as\n"
		"                   /proc/PID/fd/N\n"
		"  --pid PID        the process holding the fds\n"
		"  --fd N           its fd to inspect (arena or channel)\n"
		"  --channel-fd M   a second fd of the same process (arena or channel)\n"
		"  --json           one JSON object instead of text\n"
		"  --help           this text\n"
		"\n"
		"Exit status: 0 ok, 1 bad input (cannot open, neither arena nor channel),\n"
		"2 bad usage.\n");
}

/* A non-negative decimal number that fits an int, nothing else. */
static int parse_int(const char *s, int *out)
{
	char *end;
	long v;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v > INT_MAX)
		return -1;
	*out = (int)v;
	return 0;
}

/* fd N of process pid: pidfd_getfd first (needs ptrace rights), else reopen
 * it through /proc (a memfd can be reopened read-only by its path). */
static int grab_fd(int pid, int fd, char *how, size_t how_len)
{
	long pfd = syscall(SYS_pidfd_open, pid, 0);
	int e = 0, r;

	if (pfd >= 0) {
		long got = syscall(SYS_pidfd_getfd, (int)pfd, fd, 0);

		e = errno;
		close((int)pfd);
		if (got >= 0) {
			snprintf(how, how_len, "pidfd_getfd");
			return (int)got;
		}
		if (e == EBADF) {
			fprintf(stderr, "arena-inspect: pid %d has no fd %d\n", pid, fd);
			return -1;
		}
	} else {
		e = errno;
		if (e == ESRCH) {
			fprintf(stderr, "arena-inspect: no process %d\n", pid);
			return -1;
		}
	}
	{
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
		r = open(path, O_RDONLY | O_CLOEXEC);
		if (r < 0) {
			fprintf(stderr, "arena-inspect: fd %d of pid %d: pidfd_getfd: %s; "
				"open %s: %s\n", fd, pid, strerror(e), path, strerror(errno));
			return -1;
		}
		snprintf(how, how_len, "%s", path);
	}
	return r;
}

static void seal_names(uint32_t s, char *buf, size_t len)
{
	static const struct { uint32_t bit; const char *name; } names[] = {
		{ F_SEAL_SEAL, "seal" }, { F_SEAL_SHRINK, "shrink" },
		{ F_SEAL_GROW, "grow" }, { F_SEAL_WRITE, "write" },
		{ F_SEAL_FUTURE_WRITE, "future_write" }, { F_SEAL_EXEC, "exec" },
	};
	size_t i, n = 0;

	buf[0] = 0;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(s & names[i].bit))
			continue;
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "," : "", names[i].name);
		s &= ~names[i].bit;
		if (n >= len)
			return;
	}
	if (s && n < len)
		n += (size_t)snprintf(buf + n, len - n, "%s0x%x", n ? "," : "", s);
	if (!n)
		snprintf(buf, len, "none");
}

static const char *state_name(uint32_t s)
{
	switch (s) {
	case ARENA_WORKER_EMPTY: return "empty";
	case ARENA_WORKER_RUNNING: return "running";
	case ARENA_WORKER_SLEEPING: return "sleeping";
	case ARENA_WORKER_EXITED: return "exited";
	default: return "unknown";
	}
}

static const char *stop_name(uint32_t s)
{
	switch (s) {
	case 0: return "running";
	case 1: return "draining";
	case 2: return "cancelling";
	default: return "unknown";
	}
}

/* A JSON string: the source names are paths, escape what JSON needs. */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void print_arena(const struct arena *a, const char *src, int first)
{
	struct arena_info in;
	char seals[128];

	arena_info(a, &in);
	seal_names(in.seals, seals, sizeof(seals));
	if (json) {
		printf("%s\"arena\": {\"source\": ", first ? "" : ", ");
		json_str(src);
		printf(", \"items\": %" PRIu64 ", \"size\": %" PRIu64
		       ", \"data_size\": %" PRIu64 ", \"data_off\": %" PRIu64
		       ", \"table_off\": %" PRIu64 ", \"align\": %u, \"version\": %u"
		       ", \"flags\": %u, \"complete\": %s, \"seals\": %u, \"seal_names\": \"%s\""
		       ", \"sealed\": %s}",
		       in.count, in.size, in.data_size, in.data_off, in.table_off,
		       in.align, in.version, in.flags, (in.flags & 1u) ? "true" : "false",
		       in.seals, seals, arena_is_sealed(a) ? "true" : "false");
		return;
	}
	printf("arena (%s)\n", src);
	printf("  items:      %" PRIu64 "\n", in.count);
	printf("  size:       %" PRIu64 " bytes\n", in.size);
	printf("  data:       %" PRIu64 " bytes at offset %" PRIu64 "\n", in.data_size, in.data_off);
	printf("  table:      offset %" PRIu64 " (%" PRIu64 " bytes)\n", in.table_off,
	       in.count * 16);
	printf("  align:      %u\n", in.align);
	printf("  version:    %u\n", in.version);
	printf("  flags:      0x%x%s\n", in.flags, (in.flags & 1u) ? " (complete)" : "");
	printf("  seals:      %s%s\n", seals,
	       arena_is_sealed(a) ? " (immutable)" : " (NOT sealed: may change)");
}

static void print_channel(const struct arena_channel_info *ci, const char *src, int first)
{
	uint64_t done = 0, sq = 0, cq = 0, used = 0;
	unsigned i, n = ci->workers < 64 ? ci->workers : 64;

	for (i = 0; i < n; i++) {
		done += ci->w[i].tasks_done;
		sq += ci->w[i].sq_pending;
		cq += ci->w[i].cq_pending;
		used += ci->w[i].result_used;
	}
	if (json) {
		printf("%s\"channel\": {\"source\": ", first ? "" : ", ");
		json_str(src);
		printf(", \"version\": %u, \"workers\": %u, \"sq_depth\": %u, \"cq_depth\": %u"
		       ", \"result_bytes\": %" PRIu64 ", \"size\": %" PRIu64
		       ", \"stop\": \"%s\", \"consumer_waiters\": %u"
		       ", \"sq_pending\": %" PRIu64 ", \"cq_pending\": %" PRIu64
		       ", \"tasks_done\": %" PRIu64 ", \"result_used\": %" PRIu64
		       ", \"worker\": [",
		       ci->version, ci->workers, ci->sq_depth, ci->cq_depth,
		       ci->result_bytes, ci->size, stop_name(ci->stopping),
		       ci->consumer_waiters, sq, cq, done, used);
		for (i = 0; i < n; i++) {
			const struct arena_channel_worker_info *w = &ci->w[i];

			printf("%s{\"id\": %u, \"pid\": %d, \"state\": \"%s\", \"sq_pending\": %u"
			       ", \"cq_pending\": %u, \"tasks_done\": %" PRIu64
			       ", \"waits\": %" PRIu64 ", \"wakes\": %" PRIu64
			       ", \"task_ns\": %" PRIu64 ", \"result_used\": %" PRIu64 "}",
			       i ? ", " : "", i, w->pid, state_name(w->state), w->sq_pending,
			       w->cq_pending, w->tasks_done, w->waits, w->wakes, w->task_ns,
			       w->result_used);
		}
		printf("]}");
		return;
	}
	printf("channel (%s)\n", src);
	printf("  version:    %u\n", ci->version);
	printf("  workers:    %u\n", ci->workers);
	printf("  rings:      sq depth %u, cq depth %u\n", ci->sq_depth, ci->cq_depth);
	printf("  results:    %" PRIu64 " bytes per worker\n", ci->result_bytes);
	printf("  size:       %" PRIu64 " bytes\n", ci->size);
	printf("  state:      %s, %u consumer waiter(s)\n", stop_name(ci->stopping),
	       ci->consumer_waiters);
	printf("  queued:     %" PRIu64 " task(s) not taken, %" PRIu64
	       " completion(s) not reaped, %" PRIu64 " result byte(s) held\n", sq, cq, used);
	printf("  tasks done: %" PRIu64 "\n", done);
	printf("  %-3s %-8s %-9s %6s %6s %12s %10s %10s %10s %12s\n", "id", "pid", "state",
	       "sq", "cq", "tasks", "waits", "wakes", "task_ns", "result_used");
	for (i = 0; i < n; i++) {
		const struct arena_channel_worker_info *w = &ci->w[i];

		printf("  %-3u %-8d %-9s %6u %6u %12" PRIu64 " %10" PRIu64 " %10" PRIu64
		       " %10" PRIu64 " %12" PRIu64 "\n",
		       i, w->pid, state_name(w->state), w->sq_pending, w->cq_pending,
		       w->tasks_done, w->waits, w->wakes, w->task_ns, w->result_used);
	}
}

/* Recognises fd as an arena or a channel and prints it.  0 or 1 (error). */
static int inspect_fd(int fd, const char *src, int first)
{
	struct arena_channel_info ci;
	struct arena *a = NULL;
	int ra, rc;

	ra = arena_open_fd(&a, fd, ARENA_OPEN_UNSEALED);
	if (ra == 0) {
		print_arena(a, src, first);
		arena_close(a);
		return 0;
	}
	rc = arena_channel_inspect(fd, &ci);
	if (rc == 0) {
		print_channel(&ci, src, first);
		return 0;
	}
	if (json)
		printf("}\n"); /* close what was printed, keep stdout parseable */
	fprintf(stderr, "arena-inspect: %s is neither an arena (%s) nor a channel (%s)\n",
		src, arena_strerror(ra), arena_strerror(rc));
	return 1;
}

int main(int argc, char **argv)
{
	const char *file = NULL;
	int pid = -1, fd = -1, cfd = -1, i, r = 0;
	char src[256], how[128];

	for (i = 1; i < argc; i++) {
		const char *o = argv[i];

		if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(o, "--json")) {
			json = 1;
		} else if (!strcmp(o, "--pid") || !strcmp(o, "--fd") || !strcmp(o, "--channel-fd")) {
			int *dst = o[2] == 'p' ? &pid : o[2] == 'f' ? &fd : &cfd;

			if (i + 1 >= argc || parse_int(argv[i + 1], dst) < 0) {
				fprintf(stderr, "arena-inspect: %s wants a non-negative number\n", o);
				return 2;
			}
			i++;
		} else if (o[0] == '-' && o[1]) {
			fprintf(stderr, "arena-inspect: unknown option '%s'\n", o);
			usage(stderr);
			return 2;
		} else if (!file) {
			file = o;
		} else {
			fprintf(stderr, "arena-inspect: one FILE only\n");
			return 2;
		}
	}
	if (file ? (pid >= 0 || fd >= 0 || cfd >= 0) : (pid < 0 || fd < 0)) {
		fprintf(stderr, "arena-inspect: give FILE, or --pid and --fd\n");
		usage(stderr);
		return 2;
	}
	if (file) {
		int f = open(file, O_RDONLY | O_CLOEXEC);

		if (f < 0) {
			fprintf(stderr, "arena-inspect: %s: %s\n", file, strerror(errno));
			return 1;
		}
		if (json)
			printf("{");
		r = inspect_fd(f, file, 1);
		close(f);
		if (json && r == 0)
			printf("}\n");
		return r;
	}
	{
		int fds[2] = { fd, cfd }, k;

		if (json)
			printf("{\"pid\": %d", pid);
		for (k = 0; k < 2 && r == 0; k++) {
			int g;

			if (fds[k] < 0)
				continue;
			g = grab_fd(pid, fds[k], how, sizeof(how));
			if (g < 0) {
				if (json)
					printf("}\n");
				return 1;
			}
			snprintf(src, sizeof(src), "pid %d fd %d via %s", pid, fds[k], how);
			r = inspect_fd(g, src, 0);
			close(g);
			if (!json && r == 0 && k == 0 && cfd >= 0)
				putchar('\n');
		}
		if (json && r == 0)
			printf("}\n");
	}
	return r;
}
