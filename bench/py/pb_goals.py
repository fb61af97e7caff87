# SPDX-License-Identifier: MIT
"""pybench: the issue's goals, met or missed, from the rows of one run.
A goal whose rows did not run (a peer or the module missing) is "not
measured", never met."""
from pb_report import fmt_dur, fmt_kb, speedup

# The consumer's RSS over the batches counts as flat when it grew by less
# than one batch.
FLAT_RSS_KB = 4096


def _row(rows, wl, mode):
    r = next((x for x in rows if x.workload == wl and x.mode == mode), None)
    return r if r is not None and r.ok and not r.skipped and r.tasks else None


def _goal(out, name, value, text, met):
    out.append({"goal": name, "value": value, "measured": text, "met": met})


def _ratio(out, rows, wl, base, at_least):
    a = _row(rows, wl, "arena")
    x = speedup(rows, a, base) if a and _row(rows, wl, base) else None
    _goal(out, "%s: arena >= %gx %s" % (wl, at_least, base), x,
          "%.1fx" % x if x else "not measured", None if x is None else x >= at_least)


def evaluate(rows, mem):
    out = []
    a = _row(rows, "seed", "arena")
    per = a.per_task_ns() if a else None
    fl = _row(rows, "seed", "floor")
    floor = " (the shape's own floor, no pool: %s)" % fmt_dur(fl.per_task_ns()) if fl else ""
    _goal(out, "seed: arena <= 5 us per item (Python get_item)", per,
          fmt_dur(per) + floor if per else "not measured", None if per is None else per <= 5000)
    for base, k in (("pool", 20), ("torch", 20), ("manager", 500)):
        _ratio(out, rows, "seed", base, k)
    im = _row(rows, "seed", "arena-imap")
    x = (a.per_task_ns() / im.per_task_ns()) if a and im else None
    _goal(out, "seed: arena-imap at least as fast as arena", x,
          "%.2fx (%s vs %s)" % (x, fmt_dur(im.per_task_ns()), fmt_dur(a.per_task_ns())) if x
          else "not measured", None if x is None else x >= 1.0)
    _ratio(out, rows, "batches", "torch", 2)
    _ratio(out, rows, "batches", "pool", 5)
    b = _row(rows, "batches", "arena")
    g = b.consumer_rss_kb[1] - b.consumer_rss_kb[0] if b and b.consumer_rss_kb else None
    anon = b.consumer_anon_kb[1] - b.consumer_anon_kb[0] if b and b.consumer_anon_kb else None
    _goal(out, "batches: consumer RSS flat over the batches (arena)", g,
          ("%+d KiB over the last %d of %d batches (private anonymous: %+d KiB; whole "
           "run: %+d KiB)" % (g, b.tasks - b.tasks // 2, b.tasks, anon,
                             b.consumer_rss_samples_kb[-1] - b.consumer_rss_samples_kb[0]))
          if g is not None else "not measured", None if g is None else g < FLAT_RSS_KB)
    nocopy = None
    if b:
        nocopy = next((n for n in b.notes if n.startswith("no-copy:")), None)
    _goal(out, "batches: no copy of a batch on the consumer side (arena)", nocopy,
          nocopy or "not measured", None if nocopy is None else nocopy.startswith("no-copy: yes"))
    _memory_goals(out, mem)
    return out


def _memory_goals(out, mem):
    reads = {r["kind"]: r for r in (mem or {}).get("read_all", [])}
    lst, ar = reads.get("list"), reads.get("arena")
    if lst and ar and lst["ok"] and ar["ok"]:
        lg = max(lst["worker_private_dirty_growth_kib"])
        ag = max(ar["worker_private_dirty_growth_kib"])
        # Flat: each worker's growth under 5% of what the list costs each.
        met = ag < max(1024, min(lst["worker_private_dirty_growth_kib"]) // 20)
        _goal(out, "memory: workers' Private_Dirty flat with the arena, grows with the list",
              [ag, lg], "arena %s vs list %s per worker (largest)" % (fmt_kb(ag), fmt_kb(lg)), met)
    else:
        _goal(out, "memory: workers' Private_Dirty flat with the arena, grows with the list",
              None, "not measured", None)
    st = [r for r in (mem or {}).get("start", []) if r["kind"] == "arena"]
    if len(st) >= 2:
        lo = min(st, key=lambda r: r["dataset_bytes"])
        hi = max(st, key=lambda r: r["dataset_bytes"])
        # Independent of the size: within 2x, or within 20 ms (noise).
        met = hi["start_s"] <= 2 * lo["start_s"] or hi["start_s"] - lo["start_s"] < 0.020
        _goal(out, "start: arena pool start independent of the dataset's size",
              [lo["start_s"], hi["start_s"]], "%s (%s) vs %s (%s)" % (
                  fmt_dur(lo["start_s"] * 1e9), fmt_kb(lo["dataset_bytes"] // 1024),
                  fmt_dur(hi["start_s"] * 1e9), fmt_kb(hi["dataset_bytes"] // 1024)), met)
    else:
        _goal(out, "start: arena pool start independent of the dataset's size", None,
              "not measured", None)


def print_goals(f, goals):
    print("\nGoals (issue 16), from this run:", file=f)
    for g in goals:
        v = {True: "met", False: "MISSED", None: "not measured"}[g["met"]]
        print("  %-13s %s: %s" % (v, g["goal"], g["measured"]), file=f)
