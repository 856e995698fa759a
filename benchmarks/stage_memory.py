"""Wall time and peak resident memory of every stage a command runs, e.g. `dvc repro`.

Runs the command, samples its process tree every --interval seconds, and attributes each
`stages.<name> --task <task>` process (with its children: accelerate ranks, compilers) to that stage: the peak of the tree's
summed RSS, and the time from its first to its last sample. Sampling can miss a peak shorter than the interval.
Prints a table and, with --json, writes it; exits with the command's status. From the repository root, e.g.:
    python -m benchmarks.stage_memory --json stage_memory.json -- dvc repro
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time

import psutil

STAGE = re.compile(r"stages[/.](\w+)(?:\.py)?\s+(?:(\w+)\s+)?--task\s+(\S+)")


def stage_of(proc: psutil.Process) -> str | None:
    """'finetune_teacher@sst2' (train.py's subcommand: 'train_student@sst2') for a stage process, else None."""
    try:
        match = STAGE.search(" ".join(proc.cmdline()))
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    if not match:
        return None
    script, sub, task = match.groups()
    name = f"train_{sub}" if script == "train" and sub else script
    return f"{name}@{task}"


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return total


def sample(root: psutil.Process, stats: dict, now: float) -> None:
    """One pass: the outermost stage process of each stage found under root, its tree's RSS."""
    seen = set()
    try:
        procs = [root, *root.children(recursive=True)]  # the command itself may be a stage
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        name = stage_of(proc)
        if name is None or name in seen:
            continue
        try:
            if proc is not root and stage_of(proc.parent()) == name:  # a child of the stage process: in its tree
                continue
        except (psutil.NoSuchProcess, AttributeError):
            pass
        seen.add(name)
        rss = tree_rss(proc)
        entry = stats.setdefault(name, {"peak_rss_mb": 0.0, "first_s": now, "last_s": now})
        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], rss / 2**20)
        entry["last_s"] = now


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between samples")
    ap.add_argument("--json", help="also write the table here")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the command to run after --")
    start = time.perf_counter()
    child = subprocess.Popen(command)
    root = psutil.Process(child.pid)
    stats: dict = {}
    while child.poll() is None:
        sample(root, stats, time.perf_counter() - start)
        time.sleep(args.interval)
    wall = time.perf_counter() - start
    rows = [{"stage": k, "peak_rss_mb": round(v["peak_rss_mb"], 1), "seconds": round(v["last_s"] - v["first_s"], 1)}
            for k, v in stats.items()]
    print(f"{'stage':40} {'peak RSS MB':>12} {'seconds':>9}")
    for r in rows:
        print(f"{r['stage']:40} {r['peak_rss_mb']:12.1f} {r['seconds']:9.1f}")
    print(f"command: {' '.join(command)}; exit {child.returncode}; wall {wall:.1f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"command": command, "exit": child.returncode, "wall_s": round(wall, 1), "stages": rows},
                      fh, indent=2)
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
