/* SPDX-License-Identifier: MIT */
/*
 * arena-inspect (tools/arena-inspect.c, its own code included here) and
 * arena_channel_inspect, plus chan_map (how an exec'd worker validates the
 * channel it is given) on mutated channel and arena images.  Input: byte 0 =
 * mode (bit 0: --json, bit 1: seal the memfd against shrink, grow, write),
 * then the image bytes.
 * Properties: no sanitizer report; when chan_map accepts the image, every
 * worker's blocks, SQ, CQ and result area lie inside the mapping.
 */
#define _GNU_SOURCE
#include "fuzz_util.h"

int arena_inspect_main(int argc, char **argv);
#define main arena_inspect_main
#include "../../tools/arena-inspect.c"
#undef main

static void check_layout(int fd, int writable)
{
	struct chan c;
	unsigned i;

	memset(&c, 0, sizeof(c));
	if (chan_map(&c, fd, writable) < 0)
		return;
	FUZZ_CHECK(c.workers >= 1 && c.workers <= CHAN_MAX_WORKERS);
	for (i = 0; i < c.workers; i++) {
		FUZZ_CHECK(fuzz_inside(c.base, c.size, chan_w(&c, i), sizeof(struct chan_worker)));
		FUZZ_CHECK(fuzz_inside(c.base, c.size, chan_sq(&c, i),
				       (uint64_t)(c.sq_mask + 1) * sizeof(struct chan_sqe)));
		FUZZ_CHECK(fuzz_inside(c.base, c.size, chan_cq(&c, i),
				       (uint64_t)(c.cq_mask + 1) * sizeof(struct chan_cqe)));
		FUZZ_CHECK(fuzz_inside(c.base, c.size, chan_res(&c, i), c.res_bytes));
		fuzz_touch(chan_w(&c, i), sizeof(struct chan_worker));
		fuzz_touch(chan_res(&c, i), 1);
		fuzz_touch(chan_res(&c, i) + c.res_bytes - 1, 1);
	}
	chan_unmap(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;
	int fd;

	if (size < 1 || size > (1u << 18))
		return 0;
	if (!quiet) {
		/* the tool prints; keep the fuzzer's output readable */
		if (!freopen("/dev/null", "w", stdout))
			abort();
		quiet = 1;
	}
	json = data[0] & 1;
	fd = fuzz_memfd(data + 1, size - 1, data[0] & 2);
	if (fd < 0)
		return 0;
	{
		/* its complaints about bad images go to stderr: not here */
		int saved = dup(2), null = open("/dev/null", O_WRONLY | O_CLOEXEC);

		dup2(null, 2);
		inspect_fd(fd, "fuzz", 1);
		dup2(saved, 2);
		close(saved);
		close(null);
	}
	check_layout(fd, 0);
	check_layout(fd, 1);
	close(fd);
	return 0;
}
