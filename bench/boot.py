#!/usr/bin/env python3
"""Boot benchmark: kvio against QEMU (microvm and q35), same kernel, initrd,
command line, memory and CPUs, alternating, several rounds. Prints medians
and kvio/QEMU ratios. Needs real KVM: bench/boot runs it in the testbed."""
import argparse
import os
import statistics
import subprocess
import threading
import time

import common  # bench/common.py: what the drivers share

READY = b"kvio-guest: ready"


def rss_parts(pid):
    """(RssAnon+RssFile, VmHWM) in KiB. Guest RAM is a memfd for both kvio
    (--shared-memory) and QEMU here, so it shows as RssShmem and the first
    number is the VMM's own."""
    parts = common.proc_status(pid, ("RssAnon", "RssFile", "VmHWM"))
    if parts is None:
        return None
    return parts.get("RssAnon", 0) + parts.get("RssFile", 0), parts.get("VmHWM", 0)


def run_once(cmd, timeout):
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ready = {}
    output = []

    def reader():
        for line in proc.stdout:
            output.append(line)
            if READY in line and "t" not in ready:
                ready["t"] = time.monotonic() - start

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    own_peak = hwm = 0
    deadline = start + timeout
    while proc.poll() is None:
        sample = rss_parts(proc.pid)
        if sample:
            own_peak = max(own_peak, sample[0])
            hwm = max(hwm, sample[1])
        if time.monotonic() > deadline:
            proc.kill()
            break
        time.sleep(0.01)
    exit_time = time.monotonic() - start
    t.join(timeout=5)
    if "t" not in ready or proc.returncode != 0:
        tail = b"".join(output[-5:]).decode(errors="replace").strip()
        return f"no ready line or exit status {proc.returncode}: {tail[-300:]}"
    return ready["t"], exit_time, hwm, own_peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--memory", default="256")
    ap.add_argument("--cpus", default="1")
    ap.add_argument("--kvio", default="build/kvio")
    ap.add_argument("--kernel", default="build/guest/vmlinuz")
    ap.add_argument("--initrd", default="build/guest/initramfs.cpio.gz")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()

    guest_cmdline = "quiet kvio.run=true"
    # A memfd backend, like kvio's, so guest RAM shows apart from QEMU's own memory.
    qemu_common = ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-m", args.memory, "-smp", args.cpus,
                   "-object", f"memory-backend-memfd,id=ram,size={args.memory}M", "-machine", "memory-backend=ram",
                   "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
                   "-kernel", args.kernel, "-initrd", args.initrd,
                   "-append", "console=ttyS0 " + guest_cmdline]
    systems = {
        "kvio": [args.kvio, "run", "--shared-memory", "--kernel", args.kernel, "--initrd", args.initrd,
                 "--memory", args.memory, "--cpus", args.cpus, "--append", guest_cmdline],
        "qemu-microvm": qemu_common[:1] + ["-M", "microvm"] + qemu_common[1:],
        "qemu-q35": qemu_common[:1] + ["-M", "q35"] + qemu_common[1:],
    }
    results = {name: [] for name in systems}
    failures = {name: 0 for name in systems}
    names = list(systems)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            outcome = run_once(systems[name], args.timeout)
            if isinstance(outcome, str):
                failures[name] += 1
                print(f"round {r + 1} {name:13s} FAILED: {outcome}", flush=True)
                continue
            ready, exited, hwm, own = outcome
            results[name].append(outcome)
            print(f"round {r + 1} {name:13s} ready {ready * 1000:7.0f} ms  exit {exited * 1000:7.0f} ms  "
                  f"peak RSS {hwm / 1024:6.1f} MiB  own {own / 1024:6.1f} MiB", flush=True)

    if not all(results.values()):
        raise SystemExit("a system never booted; no medians")
    med = {n: tuple(statistics.median(x[i] for x in results[n]) for i in range(4)) for n in names}
    print()
    print(f"| {'system':13s} | {'ready (ms)':>10s} | {'exit (ms)':>9s} | {'peak RSS (MiB)':>14s} "
          f"| {'RSS minus guest RAM (MiB)':>25s} |")
    print(f"|{'-' * 15}|{'-' * 12}|{'-' * 11}|{'-' * 16}|{'-' * 27}|")
    for n in names:
        print(f"| {n:13s} | {med[n][0] * 1000:10.0f} | {med[n][1] * 1000:9.0f} | {med[n][2] / 1024:14.1f} "
              f"| {med[n][3] / 1024:25.1f} |")
    print()
    for peer in names[1:]:
        k, p = med["kvio"], med[peer]
        print(f"kvio/{peer}: ready {k[0] / p[0]:.2f}, exit {k[1] / p[1]:.2f}, peak RSS {k[2] / p[2]:.2f}, "
              f"RSS minus guest RAM {k[3] / p[3]:.2f}")
    print(f"(medians of {args.rounds} rounds, {args.cpus} vCPU, {args.memory} MiB; failed runs: "
          + ", ".join(f"{n} {failures[n]}" for n in names) + ")")


if __name__ == "__main__":
    main()
