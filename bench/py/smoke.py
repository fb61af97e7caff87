#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A smoke test of pybench (make pybench-check, part of make check): every
mode at tiny counts (speed is not checked, only that it runs and checks its
results), valid JSON and CSV with a row per mode, a missing peer skipped
and said so, bad options refused with exit 2.  A few seconds.
Exit 0 ok, 1 failed."""
import csv
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PYBENCH = os.path.join(HERE, "pybench.py")
SEED = ["floor", "copy", "manager", "pool", "pool-imap", "shm", "torch", "arena",
        "arena-futures", "arena-bytes", "arena-imap", "adapter"]
BATCHES = ["pool", "shm-slots", "torch", "arena", "adapter"]
fails = []


def check(cond, what):
    print("pybench smoke: %s: %s" % ("ok" if cond else "FAILED", what))
    if not cond:
        fails.append(what)
    return cond


def run(args, env=None, timeout=300):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, PYBENCH] + args, capture_output=True, text=True,
                          env=e, timeout=timeout)


def importable(mod, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", "import " + mod], capture_output=True,
                          env=e).returncode == 0


def full_run(tmp):
    j, c = os.path.join(tmp, "r.json"), os.path.join(tmp, "r.csv")
    p = run(["--quick", "--json", j, "--csv", c])
    if not check(p.returncode == 0, "--quick runs every workload, exit 0"):
        print(p.stdout + p.stderr)
        return
    with open(j) as f:
        doc = json.load(f)       # raises on invalid JSON: a failure
    modes = {(m["workload"], m["mode"]): m for m in doc["modes"]}
    want = [("seed", m) for m in SEED] + [("batches", m) for m in BATCHES]
    check(sorted(modes) == sorted(want), "one JSON entry per mode")
    has_torch = importable("torch")
    has_arena = importable("libarena")
    for key in want:
        m = modes.get(key)
        if not m:
            continue
        peer = key[1].split("-")[0]
        if peer == "adapter":
            peer = "arena" if key[0] == "seed" or has_torch else "torch"
        must_run = peer not in ("torch", "arena") or (peer == "torch" and has_torch) or \
            (peer == "arena" and has_arena)
        if m["skipped"]:
            # pybench also finds the module in build/python by itself.
            check(not must_run and m["error"], "%s %s skipped with a reason" % key)
        else:
            lat = m["p50_ns"] is None and key[1] in ("arena-imap", "adapter") or \
                m["p99_ns"] >= m["p50_ns"] > 0
            check(m["ok"] and not m["skipped"] and m["tasks"] > 0 and m["bad_items"] == 0
                  and m["per_task_ns"] > 0 and lat,
                  "%s %s ran and returned the right items" % key)
    mem = doc["memory"]
    check(mem["read_all"] and mem["read_all"][0]["kind"] == "list" and mem["read_all"][0]["ok"]
          and len(mem["read_all"][0]["worker_private_dirty_growth_kib"]) == 5,
          "read-all with a list: five workers measured")
    check(len([s for s in mem["start"] if s["kind"] == "pool"]) == 2, "pool start time, two sizes")
    if "arena" in [r["kind"] for r in mem["read_all"]] or has_arena:
        ar = [r for r in mem["read_all"] if r["kind"] == "arena"]
        check(ar and ar[0]["ok"] and len(ar[0]["worker_private_dirty_growth_kib"]) == 5
              and len(ar[0]["worker_shared_file_private_dirty_kib"]) == 5,
              "read-all with an arena: five workers measured, the arena's mapping apart")
        check(len([s for s in mem["start"] if s["kind"] == "arena"]) == 2,
              "arena pool start time, two sizes")
    check(len(doc["goals"]) >= 10 and all(g["met"] in (True, False, None) for g in doc["goals"]),
          "goals listed")
    with open(c) as f:
        rows = list(csv.DictReader(f))
    check(len(rows) == len(want) and all(r["mode"] for r in rows), "one CSV row per mode")
    for w in ("pybench seed:", "pybench batches:", "Goals (issue 16)", "w.seqPSS"):
        check(w in p.stdout, "the table shows %r" % w)


def missing_torch(tmp):
    # A torch that fails to import, first on the path: the row is skipped.
    fake = os.path.join(tmp, "fake")
    os.makedirs(os.path.join(fake, "torch"))
    with open(os.path.join(fake, "torch", "__init__.py"), "w") as f:
        f.write("raise ImportError('torch hidden by the smoke test')\n")
    env = {"PYTHONPATH": fake + os.pathsep + os.environ.get("PYTHONPATH", "")}
    j = os.path.join(tmp, "m.json")
    p = run(["--quick", "--workloads", "seed,batches", "--modes", "pool,torch", "--json", j],
            env=env)
    if not check(p.returncode == 0, "a missing torch is not a failure (exit 0)"):
        print(p.stdout + p.stderr)
        return
    with open(j) as f:
        doc = json.load(f)
    t = [m for m in doc["modes"] if m["mode"] == "torch"]
    check(len(t) == 2 and all(m["skipped"] and "torch hidden" in m["error"] for m in t),
          "torch rows skipped, with the reason")
    check("skipped: torch not importable" in p.stdout, "the table says torch was skipped")


def bad_options():
    for args in (["--workers", "0"], ["--modes", "pool,bogus"], ["--items", "x"],
                 ["--no-such-option"], ["--start-sizes", "1M,zz"]):
        p = run(args)
        check(p.returncode == 2 and p.stderr, "%s: exit 2 with a message" % " ".join(args))
    p = run(["--help"])
    check(p.returncode == 0 and "--modes" in p.stdout and "shm-slots" in p.stdout, "--help")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        full_run(tmp)
        missing_torch(tmp)
        bad_options()
    print("pybench smoke: %s" % ("FAILED: " + "; ".join(fails) if fails else "all ok"))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
