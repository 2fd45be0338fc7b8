#!/usr/bin/env python3
"""Turns one run of `cargo bench -p coffer-benches --bench report` into BENCHMARKS.md.

Reads the manifest the harness wrote (each group's rows in order, the row each one is
compared against, its throughput unit) and criterion's estimates for each row, and writes
one table per group: the median time per operation with its 95% confidence interval, the
throughput where the row has one, each operation's p50 and p99 latency for rows run by
concurrent callers, and the ratio to the row it is compared with. It also
records the machine, the software and the servers the run used, and the command to
reproduce it. Called by scripts/bench-report; standard library only.
"""

import argparse
import json
import os
import platform
import subprocess
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path


def run(*cmd):
    """A command's first output line, or None if it is missing or fails."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if lines else None


def load_results(root):
    """(group, function, parameter) -> criterion's median estimate, for every row run."""
    results = {}
    for info in Path(root).glob("**/new/benchmark.json"):
        bench = json.loads(info.read_text())
        estimates = json.loads((info.parent / "estimates.json").read_text())
        key = (bench["group_id"], bench["function_id"], bench["value_str"])
        results[key] = estimates["median"]
    return results


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns / scale < 100 else f"{ns / scale:.0f} {unit}"
    return f"{ns:.3g} ns" if ns < 100 else f"{ns:.0f} ns"


def fmt_throughput(throughput, ns):
    if not throughput:
        return ""
    if "bytes" in throughput:
        per_s = throughput["bytes"] / (ns / 1e9)
        for unit, scale in (("GiB/s", 2**30), ("MiB/s", 2**20), ("KiB/s", 2**10)):
            if per_s >= scale:
                return f"{per_s / scale:.3g} {unit}"
        return f"{per_s:.3g} B/s"
    per_s = throughput["elements"] / (ns / 1e9)
    return f"{per_s / 1000:.3g}k/s" if per_s >= 1000 else f"{per_s:.3g}/s"


def fmt_ratio(ratio):
    if ratio >= 1:
        return f"{ratio:.2f}×" if ratio < 10 else f"{ratio:.1f}×"
    return f"{ratio:.2g}× ({1 / ratio:.0f}× faster)" if ratio < 0.5 else f"{ratio:.2f}×"


def cpu():
    model, count, flags, hypervisor = None, 0, set(), False
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "processor":
                count += 1
            elif key == "model name" and model is None:
                model = value
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    hypervisor = "hypervisor" in flags
    features = [name for flag, name in (("aes", "AES-NI"), ("vaes", "VAES"),
                                        ("pclmulqdq", "PCLMULQDQ"), ("sha_ni", "SHA-NI"),
                                        ("avx2", "AVX2"), ("avx512f", "AVX-512F"))
                if flag in flags]
    text = f"{model or platform.processor() or 'unknown'}, {count or os.cpu_count()} logical CPUs"
    if features:
        text += "; " + ", ".join(features)
    if hypervisor:
        text += "; a virtual machine"
    return text


def memory():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def os_name():
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))}, Linux {platform.release()}"
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


def locked_version(name):
    try:
        lines = Path("Cargo.lock").read_text().splitlines()
    except OSError:
        return "?"
    for i, line in enumerate(lines):
        if line == f'name = "{name}"' and i + 1 < len(lines):
            return lines[i + 1].split('"')[1]
    return "?"


def servers():
    rows = []
    pg = os.environ.get("COFFER_TEST_POSTGRES_URL")
    if pg:
        version = run("psql", pg, "-tAc", "SHOW server_version")
        where = urllib.parse.urlsplit(pg).netloc.rpartition("@")[2]
        rows.append(("PostgreSQL", f"{version or '?'} on {where}"))
    my = os.environ.get("COFFER_TEST_MYSQL_URL")
    if my:
        url = urllib.parse.urlsplit(my)
        version = run("mariadb", "--protocol=tcp", "-h", url.hostname or "127.0.0.1",
                      "-P", str(url.port or 3306), "-u", url.username or "root", "-N",
                      "-e", "SELECT VERSION()")
        rows.append(("MariaDB", f"{version or '?'} on {url.hostname}:{url.port or 3306}"))
    addr = os.environ.get("COFFER_TEST_VAULT_ADDR")
    if addr:
        version = "?"
        try:
            with urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=5) as res:
                version = json.load(res).get("version", "?")
        except (OSError, ValueError):
            pass
        rows.append(("OpenBao", f"{version} dev server (in-memory storage) on "
                                f"{urllib.parse.urlsplit(addr).netloc}"))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--criterion", required=True)
    parser.add_argument("--command", required=True)
    parser.add_argument("--started", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    manifest = json.loads(Path(args.manifest).read_text())
    results = load_results(args.criterion)
    commit = run("git", "rev-parse", "--short=12", "HEAD") or "unknown"
    if run("git", "status", "--porcelain", "--untracked-files=no"):
        commit += " with uncommitted changes"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    out = ["# Benchmarks", ""]
    out.append(
        f"Written by `scripts/bench-report` from one run started {args.started} at commit "
        f"`{commit}`. Each figure is criterion's median time per operation, with the 95% "
        "confidence interval of that median. A ratio divides a row's median by the median "
        "of the row named beside it, measured in the same run on the same machine: below "
        "1 the row is faster. Absolute times drift between runs and machines; the ratios "
        "hold better. The hardware floors these compare with were measured on the same "
        "machines with pgbench and similar tools."
    )
    out += ["", "## Machine", "", "| | |", "|---|---|"]
    machine = [
        ("CPU", cpu()),
        ("Memory", memory()),
        ("OS", os_name()),
        ("Rust", f"{run('rustc', '-V') or '?'}, `cargo bench` (release profile)"),
        ("Crates", ", ".join(f"{c} {locked_version(c)}"
                             for c in ("aes-gcm", "sqlx", "reqwest", "moka", "criterion"))),
        *servers(),
        ("Load average (1 min) at the end", f"{load:.2f}" if load is not None else "?"),
    ]
    out += [f"| {k} | {v} |" for k, v in machine]
    out += ["", "## Reproduce", "", "```sh", args.command, "```", "",
            "It starts the servers as the tests do (`scripts/services.sh`), runs "
            "`cargo bench -p coffer-benches --bench report`, writes this file and stops what it started. "
            "Criterion's own report of the same harness: `source scripts/services.sh && "
            "services_start && cargo bench -p coffer-benches --bench report`."]

    missing = []
    for group in manifest["groups"]:
        name = group["group"]
        rows = []
        medians = {}
        for row in group["rows"]:
            key = (name, row["function"], row["parameter"])
            est = results.get(key)
            if est is None:
                missing.append("/".join(k for k in key if k))
                continue
            medians[(row["function"], row["parameter"])] = est["point_estimate"]
            rows.append((row, est))
        if not rows:
            continue
        has_param = any(row["parameter"] for row, _ in rows)
        has_tp = any(row["throughput"] for row, _ in rows)
        has_lat = any("p50_ns" in row for row, _ in rows)
        concurrent = all((row["parameter"] or "").endswith(("caller", "callers"))
                         for row, _ in rows)
        out += ["", f"## {name}", "", group["about"], ""]
        head = ([("callers" if concurrent else "size")] if has_param else []) + \
               ["", "median" if not concurrent else "time per op", "95% CI"] + \
               (["ops/s" if concurrent else "throughput"] if has_tp else []) + \
               (["p50", "p99"] if has_lat else []) + ["compared with", "ratio"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for row, est in rows:
            ns = est["point_estimate"]
            ci = est["confidence_interval"]
            cells = [row["parameter"] or ""] if has_param else []
            cells += [row["function"], f"**{fmt_time(ns)}**",
                      f"{fmt_time(ci['lower_bound'])} – {fmt_time(ci['upper_bound'])}"]
            if has_tp:
                cells.append(fmt_throughput(row["throughput"], ns))
            if has_lat:
                cells += [fmt_time(row["p50_ns"]) if "p50_ns" in row else "",
                          fmt_time(row["p99_ns"]) if "p99_ns" in row else ""]
            base = medians.get((row["baseline"], row["parameter"])) if row["baseline"] else None
            if base:
                cells += [row["baseline"], fmt_ratio(ns / base)]
            else:
                cells += ["", ""]
            out.append("| " + " | ".join(cells) + " |")
    if missing:
        out += ["", "## Not measured in this run", ""]
        out += [f"- {m}" for m in missing]
    out.append("")
    Path(args.out).write_text("\n".join(out))
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"bench_report: {sum(1 for _ in results)} results, written {generated}")


if __name__ == "__main__":
    main()
