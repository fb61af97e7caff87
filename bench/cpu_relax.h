/* SPDX-License-Identifier: MIT */
/* The pause a spin loop makes between two looks, for the benchmarks (which
 * do not include the library's private headers; lib/evc.h has its own). */
#ifndef BENCH_CPU_RELAX_H
#define BENCH_CPU_RELAX_H

#include <stdatomic.h>

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

#endif
