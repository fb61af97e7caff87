/* SPDX-License-Identifier: MIT */
/*
 * arena-bench: the results as a table for people, JSON and CSV for scripts,
 * and a self-contained SVG chart (no script, no external font or style).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

static bool shown(const struct bench_report *r, enum bench_mode m)
{
	return r->res[m].ran;
}

static bool good(const struct bench_report *r, enum bench_mode m)
{
	return r->res[m].ran && r->res[m].ok;
}

double report_speedup(const struct bench_report *r, enum bench_mode m,
		      enum bench_mode base)
{
	double mine, theirs;

	if (!good(r, m) || !good(r, base) || !r->res[m].tasks || !r->res[base].tasks ||
	    !r->res[m].total_ns)
		return 0;
	/* Per task (total / tasks, the "per task" column), because copy runs
	 * far fewer tasks than the others. */
	mine = (double)r->res[m].total_ns / (double)r->res[m].tasks;
	theirs = (double)r->res[base].total_ns / (double)r->res[base].tasks;
	return theirs / mine;
}

static double tasks_per_s(const struct mode_result *m)
{
	return m->total_ns ? (double)m->tasks * 1e9 / (double)m->total_ns : 0;
}

static double sys_per_task(const struct mode_result *m)
{
	uint64_t sum = m->sys_producer + m->sys_consumer + m->sys_worker + m->sys_server;
	return m->tasks ? (double)sum / (double)m->tasks : 0;
}

static const char *fmt_dur(char *buf, size_t len, double ns)
{
	if (ns < 1e3)
		snprintf(buf, len, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, len, "%.1f us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, len, "%.1f ms", ns / 1e6);
	else
		snprintf(buf, len, "%.2f s", ns / 1e9);
	return buf;
}

static const char *fmt_kb(char *buf, size_t len, uint64_t kb)
{
	if (kb >= 10240)
		snprintf(buf, len, "%.0f MiB", (double)kb / 1024);
	else if (kb >= 1024)
		snprintf(buf, len, "%.1f MiB", (double)kb / 1024);
	else
		snprintf(buf, len, "%" PRIu64 " KiB", kb);
	return buf;
}

static const char *fmt_x(char *buf, size_t len, double x)
{
	if (x <= 0)
		snprintf(buf, len, "-");
	else if (x < 10)
		snprintf(buf, len, "%.2fx", x);
	else
		snprintf(buf, len, "%.0fx", x);
	return buf;
}

void report_table(FILE *f, const struct bench_report *r)
{
	const struct bench_opts *o = r->opt;
	char b[12][32];

	fprintf(f, "arena-bench: %" PRIu64 " items of %zu B (%s sequence), %u workers, "
		"depth %u; ", r->wl->count, r->wl->max_item,
		fmt_kb(b[0], 32, r->wl->blob_len / 1024), o->workers, o->depth);
	if (o->reps > 1)
		fprintf(f, "the median of %u runs by total time\n\n", o->reps);
	else
		fprintf(f, "one run per mode\n\n");
	fprintf(f, "%-6s %7s %9s %9s %9s %9s %10s %8s %8s %8s %9s %9s %9s %9s  %s\n",
		"mode", "tasks", "total", "per task", "p50", "p99", "tasks/s",
		"vs copy", "vs proxy", "sys/task", "w.peakRSS", "w.PSS", "w.seqPSS",
		"all PSS", "check");
	for (int m = 0; m < MODE_COUNT; m++) {
		const struct mode_result *x = &r->res[m];

		if (!shown(r, m))
			continue;
		if (!x->ok) {
			fprintf(f, "%-6s %7" PRIu64 "  FAILED: %s\n", mode_name(m),
				x->tasks, x->err);
			continue;
		}
		fprintf(f, "%-6s %7" PRIu64 " %9s %9s %9s %9s %10.0f %8s %8s %8.2f %9s %9s %9s %9s  %s\n",
			mode_name(m), x->tasks,
			fmt_dur(b[0], 32, (double)x->total_ns),
			fmt_dur(b[1], 32, (double)x->total_ns / (double)x->tasks),
			fmt_dur(b[2], 32, (double)x->p50_ns),
			fmt_dur(b[3], 32, (double)x->p99_ns),
			tasks_per_s(x),
			fmt_x(b[4], 32, report_speedup(r, m, MODE_COPY)),
			fmt_x(b[5], 32, report_speedup(r, m, MODE_PROXY)),
			sys_per_task(x),
			fmt_kb(b[6], 32, x->worker_hwm_kb),
			fmt_kb(b[7], 32, x->worker_pss_kb),
			x->seq_pss_kb == SEQ_PSS_NONE ? "-" : fmt_kb(b[9], 32, x->seq_pss_kb),
			fmt_kb(b[8], 32, x->helpers_pss_kb),
			"ok");
	}
	if (shown(r, MODE_ARENA) && r->res[MODE_ARENA].ok) {
		const struct mode_result *x = &r->res[MODE_ARENA];

		fprintf(f, "\narena: memory read from %u of %u workers", x->mem_read, x->nworkers);
		if (o->kill_ms)
			fprintf(f, " (under fire: %" PRIu64 " SIGKILLs, %" PRIu64 " crashes seen, %"
				PRIu64 " tasks re-run)", x->kills, x->crashes, x->tasks_rerun);
		fputc('\n', f);
	}
	fprintf(f, "\nper task = total / tasks; p50/p99 = round trip of one task, from the "
		"producer's submit\n(waiting for a free slot included) to the consumer "
		"receiving it; vs copy/proxy = per-task\nspeed-up; sys/task: copy/proxy/pipe "
		"= read/write/poll calls in every process + gate\nwaits/wakes; arena = futex "
		"waits+wakes from arena_pool_stats; w.peakRSS = largest worker\nVmHWM, w.PSS "
		"= mean worker Pss, w.seqPSS = the part of it in the sequence's own\nmappings "
		"(arena: its memfd; pipe: the inherited copy; copy workers get a new copy\nper "
		"task in their heap), all PSS = workers + proxy server, read before they exit.\n");
}

/* JSON string body with the characters JSON forbids escaped. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_num_or_null(FILE *f, double x)
{
	if (x > 0)
		fprintf(f, "%.4g", x);
	else
		fputs("null", f);
}

static int close_report(FILE *f)
{
	int err = ferror(f) ? -EIO : 0;

	if (fclose(f) != 0 && !err)
		err = -errno;
	return err;
}

int report_json(const char *path, const struct bench_report *r)
{
	const struct bench_opts *o = r->opt;
	FILE *f = fopen(path, "we");
	bool first = true;

	if (!f)
		return -errno;
	fprintf(f, "{\n  \"workload\": {\"items\": %" PRIu64 ", \"item_size\": %" PRIu64
		", \"record_bytes\": %zu, \"sequence_bytes\": %zu, \"workers\": %u, "
		"\"depth\": %u, \"tasks\": %" PRIu64 ", \"copy_tasks\": %" PRIu64 "},\n",
		o->items, o->item_size, r->wl->max_item, r->wl->blob_len, o->workers,
		o->depth, o->tasks, o->copy_tasks);
	fprintf(f, "  \"reps\": %u,\n  \"stat\": \"%s\",\n  \"modes\": [", o->reps,
		o->reps > 1 ? "median by total time" : "single run");
	for (int m = 0; m < MODE_COUNT; m++) {
		const struct mode_result *x = &r->res[m];

		if (!shown(r, m))
			continue;
		fprintf(f, "%s\n    {\"mode\": \"%s\", \"ok\": %s, \"error\": ",
			first ? "" : ",", mode_name(m), x->ok ? "true" : "false");
		first = false;
		if (x->ok)
			fputs("null", f);
		else
			json_str(f, x->err);
		fprintf(f, ", \"tasks\": %" PRIu64 ", \"setup_s\": %.6f, \"total_s\": %.6f, "
			"\"per_task_ns\": %.1f, \"mean_latency_ns\": %.1f, \"p50_ns\": %" PRIu64
			", \"p99_ns\": %" PRIu64 ", \"max_ns\": %" PRIu64 ", \"tasks_per_s\": %.1f, ",
			x->tasks, (double)x->setup_ns / 1e9, (double)x->total_ns / 1e9,
			x->tasks ? (double)x->total_ns / (double)x->tasks : 0, x->mean_ns,
			x->p50_ns, x->p99_ns, x->max_ns, tasks_per_s(x));
		fputs("\"speedup_vs_copy\": ", f);
		json_num_or_null(f, report_speedup(r, m, MODE_COPY));
		fputs(", \"speedup_vs_proxy\": ", f);
		json_num_or_null(f, report_speedup(r, m, MODE_PROXY));
		fprintf(f, ", \"syscalls_per_task\": %.3f, \"syscalls\": {\"what\": ",
			sys_per_task(x));
		json_str(f, x->sys_what ? x->sys_what : "");
		fprintf(f, ", \"producer\": %" PRIu64 ", \"consumer\": %" PRIu64
			", \"workers\": %" PRIu64 ", \"server\": %" PRIu64 "}, "
			"\"worker_peak_rss_kib\": %" PRIu64 ", \"worker_pss_kib\": %" PRIu64
			", \"helpers_pss_kib\": %" PRIu64 ", \"worker_seq_pss_kib\": ",
			x->sys_producer, x->sys_consumer, x->sys_worker, x->sys_server,
			x->worker_hwm_kb, x->worker_pss_kb, x->helpers_pss_kb);
		if (x->seq_pss_kb == SEQ_PSS_NONE)
			fputs("null", f);
		else
			fprintf(f, "%" PRIu64, x->seq_pss_kb);
		fprintf(f, ", \"checksum\": \"%016" PRIx64 "\", \"expected\": \"%016" PRIx64
			"\", \"rep_total_s\": [", x->checksum, x->expected);
		for (unsigned i = 0; i < x->reps; i++)
			fprintf(f, "%s%.6f", i ? ", " : "", (double)x->rep_total_ns[i] / 1e9);
		fprintf(f, "], \"worker_crashes\": %" PRIu64 ", \"tasks_rerun\": %" PRIu64,
			x->crashes, x->tasks_rerun);
		if (m == MODE_ARENA)
			fprintf(f, ", \"kills\": %" PRIu64 ", \"workers_memory_read\": %u",
				x->kills, x->mem_read);
		fputs(", \"tasks_per_worker\": [", f);
		for (unsigned i = 0; i < x->nworkers; i++)
			fprintf(f, "%s%" PRIu64, i ? ", " : "", x->tasks_per_worker[i]);
		fputs("]}", f);
	}
	fputs("\n  ]\n}\n", f);
	return close_report(f);
}

int report_csv(const char *path, const struct bench_report *r)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fputs("mode,ok,tasks,total_s,per_task_ns,mean_latency_ns,p50_ns,p99_ns,"
	      "tasks_per_s,speedup_vs_copy,speedup_vs_proxy,syscalls_per_task,"
	      "worker_peak_rss_kib,worker_pss_kib,helpers_pss_kib,items,item_size,"
	      "workers,depth,reps,worker_seq_pss_kib,error\n", f);
	for (int m = 0; m < MODE_COUNT; m++) {
		const struct mode_result *x = &r->res[m];

		if (!shown(r, m))
			continue;
		fprintf(f, "%s,%d,%" PRIu64 ",%.6f,%.1f,%.1f,%" PRIu64 ",%" PRIu64
			",%.1f,%.4g,%.4g,%.3f,%" PRIu64 ",%" PRIu64 ",%" PRIu64
			",%" PRIu64 ",%" PRIu64 ",%u,%u,%u,",
			mode_name(m), x->ok, x->tasks, (double)x->total_ns / 1e9,
			x->tasks ? (double)x->total_ns / (double)x->tasks : 0, x->mean_ns,
			x->p50_ns, x->p99_ns, tasks_per_s(x),
			report_speedup(r, m, MODE_COPY), report_speedup(r, m, MODE_PROXY),
			sys_per_task(x), x->worker_hwm_kb, x->worker_pss_kb,
			x->helpers_pss_kb, r->opt->items, r->opt->item_size,
			r->opt->workers, r->opt->depth, r->opt->reps);
		if (x->seq_pss_kb != SEQ_PSS_NONE)
			fprintf(f, "%" PRIu64, x->seq_pss_kb);
		fputc(',', f);
		/* Quoted, with inner quotes doubled (RFC 4180). */
		fputc('"', f);
		for (const char *s = x->ok ? "" : x->err; *s; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputs("\"\n", f);
	}
	return close_report(f);
}

/* ---- SVG ---------------------------------------------------------------- */

#define SVG_W 1080
#define SVG_H 440
#define PANEL_W 480
#define PANEL_H 260
#define PANEL_Y 80

static const char *const mode_color[MODE_COUNT] = {
	"#c0392b", "#e67e22", "#2980b9", "#27ae60"
};

struct series {
	const char *label;
	const char *color;   /* NULL: the mode's color */
	const char *opacity;
	double v[MODE_COUNT];
};

/* One log-scale bar chart with decade grid lines; bars grouped per mode. */
static void svg_panel(FILE *f, const struct bench_report *r, int x0, const char *title,
		      const char *(*fmt)(char *, size_t, double),
		      const struct series *s, int ns)
{
	double lo = INFINITY, hi = 0;
	int nm = 0, col = 0;
	char buf[32];

	for (int m = 0; m < MODE_COUNT; m++)
		if (good(r, m)) {
			nm++;
			for (int k = 0; k < ns; k++)
				if (s[k].v[m] > 0) {
					lo = fmin(lo, s[k].v[m]);
					hi = fmax(hi, s[k].v[m]);
				}
		}
	fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"h\">%s</text>\n", x0, PANEL_Y - 30, title);
	if (nm == 0 || hi <= 0) {
		fprintf(f, "<text x=\"%d\" y=\"%d\">no data</text>\n", x0, PANEL_Y + 20);
		return;
	}
	double d0 = floor(log10(lo)), d1 = ceil(log10(hi));

	if (d1 <= d0)
		d1 = d0 + 1;
	int ax = x0 + 60, aw = PANEL_W - 60, base = PANEL_Y + PANEL_H;
#define YPOS(v) (base - (log10(v) - d0) / (d1 - d0) * PANEL_H)
	for (double d = d0; d <= d1; d++) {
		double y = YPOS(pow(10, d));

		fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" class=\"g\"/>\n",
			ax, y, ax + aw, y);
		fprintf(f, "<text x=\"%d\" y=\"%.1f\" class=\"a\">%s</text>\n", ax - 6, y + 4,
			fmt(buf, sizeof(buf), pow(10, d)));
	}
	int slot = aw / nm, bw = (slot - 12) / ns;

	for (int m = 0; m < MODE_COUNT; m++) {
		if (!good(r, m))
			continue;
		int sx = ax + col++ * slot + 6;

		for (int k = 0; k < ns; k++) {
			double v = s[k].v[m];
			double y = v > 0 ? YPOS(v) : base;
			int bx = sx + k * bw;

			fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" "
				"fill=\"%s\" fill-opacity=\"%s\"><title>%s %s: %s</title></rect>\n",
				bx, y, bw - 2, base - y, s[k].color ? s[k].color : mode_color[m],
				s[k].opacity, mode_name(m), s[k].label, fmt(buf, sizeof(buf), v));
			fprintf(f, "<text x=\"%d\" y=\"%.1f\" class=\"v\">%s</text>\n",
				bx + bw / 2, y - 4, fmt(buf, sizeof(buf), v));
		}
		fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"m\">%s</text>\n",
			sx + (slot - 12) / 2, base + 18, mode_name(m));
	}
#undef YPOS
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"x\"/>\n",
		ax, base, ax + aw, base);
	if (ns > 1)
		for (int k = 0; k < ns; k++)
			fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"#555\" "
				"fill-opacity=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n",
				ax + k * 150, base + 34, s[k].opacity, ax + k * 150 + 16,
				base + 44, s[k].label);
}

static const char *svg_dur(char *b, size_t n, double ns) { return fmt_dur(b, n, ns); }
/* Memory in MiB, so that the decades read 0.1, 1, 10, 100 MiB. */
static const char *svg_mib(char *b, size_t n, double mib)
{
	snprintf(b, n, mib < 10 ? "%.2g MiB" : "%.0f MiB", mib);
	return b;
}

int report_svg(const char *path, const struct bench_report *r)
{
	struct series t = { .label = "per task", .opacity = "1" };
	struct series mem[2] = { { .label = "worker peak RSS", .opacity = "0.45" },
				 { .label = "worker PSS", .opacity = "1" } };
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	for (int m = 0; m < MODE_COUNT; m++) {
		const struct mode_result *x = &r->res[m];

		t.v[m] = x->tasks ? (double)x->total_ns / (double)x->tasks : 0;
		mem[0].v[m] = (double)x->worker_hwm_kb / 1024;
		mem[1].v[m] = (double)x->worker_pss_kb / 1024;
	}
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
		SVG_W, SVG_H, SVG_W, SVG_H);
	fputs("<style>.h{font-size:15px;font-weight:bold}.a{text-anchor:end;fill:#555}"
	      ".v{text-anchor:middle;font-size:10px}.m{text-anchor:middle}"
	      ".g{stroke:#ddd}.x{stroke:#333}</style>\n"
	      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n", f);
	fprintf(f, "<text x=\"20\" y=\"24\" class=\"h\">arena-bench: %" PRIu64
		" items of %zu B, %u workers, depth %u (log scales)</text>\n",
		r->wl->count, r->wl->max_item, r->opt->workers, r->opt->depth);
	svg_panel(f, r, 20, "Time per task (total / tasks)", svg_dur, &t, 1);
	svg_panel(f, r, 20 + PANEL_W + 60, "Memory of one worker (largest peak RSS, mean PSS)",
		  svg_mib, mem, 2);
	fprintf(f, "<text x=\"20\" y=\"%d\" fill=\"#555\">tasks: copy %" PRIu64
		", proxy/pipe/arena %" PRIu64 "; %s of %u rep(s)</text>\n", SVG_H - 12,
		r->opt->copy_tasks, r->opt->tasks, r->opt->reps > 1 ? "median" : "result",
		r->opt->reps);
	fputs("</svg>\n", f);
	return close_report(f);
}
