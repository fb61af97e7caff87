# SPDX-License-Identifier: MIT
"""pybench: the results as a table for people, JSON and CSV for scripts,
with arena-bench's columns (per task, p50, p99, tasks/s, speed-ups, CPU per
task, workers' peak RSS / PSS / dataset PSS, all PSS)."""
import csv
import json

# The speed-up columns of each workload: per-task time of that mode over
# this one's, from the same run.
BASELINES = {
    "seed": ["copy", "manager", "pool", "torch", "floor"],
    "batches": ["pool", "torch"],
}


def fmt_dur(ns):
    if ns is None:
        return "-"
    if ns < 1e3:
        return "%.0f ns" % ns
    if ns < 1e6:
        return "%.1f us" % (ns / 1e3)
    if ns < 1e9:
        return "%.1f ms" % (ns / 1e6)
    return "%.2f s" % (ns / 1e9)


def fmt_kb(kb):
    if kb is None:
        return "-"
    if kb >= 10240:
        return "%.0f MiB" % (kb / 1024)
    if kb >= 1024:
        return "%.1f MiB" % (kb / 1024)
    return "%d KiB" % kb


def fmt_x(x):
    if not x:
        return "-"
    return "%.2fx" % x if x < 10 else "%.0fx" % x


def good(r):
    return r.ok and not r.skipped and r.tasks


def speedup(rows, r, base):
    """Per-task time of mode `base` over r's (None unless both ran ok)."""
    b = next((x for x in rows if x.workload == r.workload and x.mode == base), None)
    if not b or not good(b) or not good(r) or not r.per_task_ns():
        return None
    return b.per_task_ns() / r.per_task_ns()


def _crss(r):
    if not r.consumer_rss_kb:
        return "-"
    first, last, _ = r.consumer_rss_kb
    d = last - first
    return ("+" if d >= 0 else "-") + fmt_kb(abs(d))


def table(f, cfg, rows, env):
    for wl in ("seed", "batches"):
        mine = [r for r in rows if r.workload == wl]
        if not mine:
            continue
        if wl == "seed":
            print("pybench seed: %d items ('test_string', [1, 3, 4]), %d workers, depth %d; "
                  "one run per mode" % (cfg.items, cfg.workers, cfg.depth), file=f)
        else:
            print("pybench batches: 4 MiB float32 batches (64 items of 64 KiB stacked by the "
                  "task, %d items), %d workers, depth %d; one run per mode"
                  % (cfg.batch_dataset, cfg.workers, cfg.depth), file=f)
        bases = BASELINES[wl]
        head = "%-13s %7s %9s %9s %9s %9s %9s " % ("mode", "tasks", "total", "per task",
                                                     "p50", "p99", "tasks/s")
        head += " ".join("%8s" % ("vs " + ("mgr" if b == "manager" else b)) for b in bases)
        head += " %9s %9s %9s %9s %9s" % ("cpu/task", "w.peakRSS", "w.PSS", "w.seqPSS", "all PSS")
        if wl == "batches":
            head += " %9s" % "c.RSS+"
        print("\n" + head + "  check", file=f)
        for r in mine:
            if r.skipped:
                print("%-13s %7s  skipped: %s" % (r.mode, "-", r.error), file=f)
                continue
            if not r.ok:
                print("%-13s %7d  FAILED: %s" % (r.mode, r.tasks, r.error), file=f)
                continue
            line = "%-13s %7d %9s %9s %9s %9s %9.0f " % (
                r.mode, r.tasks, fmt_dur(r.total_ns), fmt_dur(r.per_task_ns()),
                fmt_dur(r.percentile(50)), fmt_dur(r.percentile(99)), r.tasks_per_s())
            line += " ".join("%8s" % fmt_x(speedup(rows, r, b)) for b in bases)
            line += " %9s %9s %9s %9s %9s" % (
                fmt_dur(r.cpu_per_task_ns()), fmt_kb(r.worker_hwm_kb), fmt_kb(r.worker_pss_kb),
                fmt_kb(r.worker_seq_pss_kb), fmt_kb(r.helpers_pss_kb))
            if wl == "batches":
                line += " %9s" % _crss(r)
            print(line + "  ok", file=f)
        print(file=f)
    print("per task = total / tasks; total = first submit to last result received; "
          "p50/p99 = one task's\nround trip (submit to the consumer holding the result); "
          "vs X = X's per-task time over\nthis row's, same run; cpu/task = CPU time of the "
          "parent (every thread), the workers and\nany server during the timed run, per "
          "task; w.peakRSS = largest worker VmHWM, w.PSS = mean\nworker Pss, w.seqPSS = "
          "the part of it in the dataset's own mapping (shm segment, arena\nmemfd; '-' = "
          "in the heap), all PSS = workers + server, read after the last task;\n"
          "c.RSS+ = the consumer's RSS growth over the second half of the run (in the first,\n"
          "the pipeline's buffers are touched for the first time; JSON: every sample).", file=f)
    print("Machine: %s; load average before the run %s; Python %s%s." % (
        env["machine"], " ".join("%.2f" % x for x in env["loadavg"]), env["python"],
        "; torch " + env["torch"] if env.get("torch") else ""), file=f)


def memory_table(f, mem):
    if not mem:
        return
    print("\nWorkers reading every item of a dataset of %d objects ('test_string_i', [1, 3, 4]):"
          % mem["read_all"][0]["items"], file=f)
    print("%-8s %8s %14s %18s %16s  %s" % ("dataset", "workers", "parent RSS+",
                                          "w.PrivDirty+ each", "all workers", "check"), file=f)
    for r in mem["read_all"]:
        g = r["worker_private_dirty_growth_kib"]
        each = "%s..%s" % (fmt_kb(min(g)), fmt_kb(max(g))) if g else "-"
        print("%-8s %8d %14s %18s %16s  %s" % (
            r["kind"], r["workers"], fmt_kb(r.get("parent_dataset_rss_kib")), each,
            fmt_kb(r["total_private_dirty_growth_kib"]), "ok" if r["ok"] else "FAILED"), file=f)
    for r in mem["read_all"]:
        shm = r.get("worker_shared_file_private_dirty_kib") or []
        if any(shm):
            print("(%s: %s..%s a worker more in its shared mapping, pages that worker "
                  "alone had mapped: shared memory, not copies)"
                  % (r["kind"], fmt_kb(min(shm)), fmt_kb(max(shm))), file=f)
    if mem.get("arena_skipped"):
        print("arena: skipped (%s)" % mem["arena_skipped"], file=f)
    print("\nPool(5) start, until its first result, with the dataset held by the parent:",
          file=f)
    for r in mem["start"]:
        print("  %-6s %10s  %s" % (r["kind"], fmt_kb(r["dataset_bytes"] // 1024),
                                  fmt_dur(r["start_s"] * 1e9)), file=f)


def _mode_json(rows, r):
    return {
        "workload": r.workload, "mode": r.mode, "what": r.what, "ok": bool(r.ok),
        "skipped": r.skipped, "error": r.error, "tasks": r.tasks,
        "setup_s": r.setup_ns / 1e9, "total_s": r.total_ns / 1e9,
        "per_task_ns": r.per_task_ns(), "mean_latency_ns": r.mean_latency(),
        "p50_ns": r.percentile(50), "p99_ns": r.percentile(99),
        "max_ns": r.lat[-1] if r.lat else None, "tasks_per_s": r.tasks_per_s(),
        "speedup_vs": {b: speedup(rows, r, b) for b in BASELINES[r.workload]},
        "cpu_per_task_ns": r.cpu_per_task_ns(),
        "cpu_s": {"parent": r.cpu_parent_ns / 1e9, "workers": r.cpu_workers_ns / 1e9,
                  "server": r.cpu_server_ns / 1e9},
        "worker_peak_rss_kib": r.worker_hwm_kb, "worker_pss_kib": r.worker_pss_kb,
        "worker_seq_pss_kib": r.worker_seq_pss_kb, "helpers_pss_kib": r.helpers_pss_kb,
        "consumer_rss_kib": (dict(zip(("base", "last", "max"), r.consumer_rss_kb),
                                  samples=r.consumer_rss_samples_kb)
                             if r.consumer_rss_kb else None),
        "consumer_rss_anon_kib": (dict(zip(("base", "last", "max"), r.consumer_anon_kb))
                                  if r.consumer_anon_kb else None),
        "bad_items": r.bad_items, "notes": r.notes,
    }


def to_json(path, cfg, rows, mem, env, goals):
    doc = {
        "tool": "pybench", "env": env,
        "workloads": {
            "seed": {"items": cfg.items, "workers": cfg.workers, "depth": cfg.depth,
                     "tasks": cfg.tasks, "copy_tasks": cfg.copy_tasks,
                     "manager_tasks": cfg.manager_tasks},
            "batches": {"items": cfg.batch_dataset, "item_bytes": 65536, "batch_bytes": 4 << 20,
                        "items_per_batch": 64, "batches": cfg.batches, "workers": cfg.workers,
                        "depth": cfg.depth},
        },
        "stat": "single run", "modes": [_mode_json(rows, r) for r in rows],
        "memory": mem, "goals": goals,
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.write("\n")


CSV_FIELDS = ["workload", "mode", "ok", "skipped", "tasks", "total_s", "per_task_ns",
              "mean_latency_ns", "p50_ns", "p99_ns", "tasks_per_s", "speedup_vs_copy",
              "speedup_vs_manager", "speedup_vs_pool", "speedup_vs_torch", "speedup_vs_floor",
              "cpu_per_task_ns",
              "worker_peak_rss_kib", "worker_pss_kib", "worker_seq_pss_kib", "helpers_pss_kib",
              "consumer_rss_growth_kib", "workers", "depth", "error"]


def to_csv(path, cfg, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS)
        for r in rows:
            sp = {b: speedup(rows, r, b) for b in ("copy", "manager", "pool", "torch", "floor")}
            crss = r.consumer_rss_kb[1] - r.consumer_rss_kb[0] if r.consumer_rss_kb else ""
            w.writerow([
                r.workload, r.mode, int(bool(r.ok)), int(r.skipped), r.tasks,
                "%.6f" % (r.total_ns / 1e9), "%.1f" % r.per_task_ns(),
                _blank(r.mean_latency()), _blank(r.percentile(50)), _blank(r.percentile(99)),
                "%.1f" % r.tasks_per_s(), _blank(sp["copy"]), _blank(sp["manager"]),
                _blank(sp["pool"]), _blank(sp["torch"]), _blank(sp["floor"]),
                "%.1f" % r.cpu_per_task_ns(),
                _blank(r.worker_hwm_kb), _blank(r.worker_pss_kb), _blank(r.worker_seq_pss_kb),
                _blank(r.helpers_pss_kb), crss, cfg.workers, cfg.depth, r.error or ""])


def _blank(x):
    if x is None:
        return ""
    return "%.4g" % x if isinstance(x, float) else x
