#!/usr/bin/env python3
"""Block benchmark: fio in the guest on one raw image, through kvio's virtio-blk
and QEMU's virtio-blk-pci (same kernel, initrd, vCPUs and memory), and the same
fio binary on the host on the same file as the limit. Several rounds, the VMMs
alternating which goes first; prints medians and ratios. Needs real KVM:
bench/blk runs it in the testbed."""
import argparse
import os
import statistics
import subprocess
import time

import common  # bench/common.py: the options every driver has

# (name, fio --rw, block size, queue depth)
JOBS = [("randread-4k-qd32", "randread", "4k", 32),
        ("randwrite-4k-qd32", "randwrite", "4k", 32),
        ("seqread-1m-qd8", "read", "1M", 8)]

# Fields of fio's terse format v3 (0-based): read KiB/s and IOPS, write KiB/s and IOPS.
READ_BW, READ_IOPS, WRITE_BW, WRITE_IOPS = 6, 7, 47, 48


def fio_args(filename, rw, bs, depth, runtime, direct):
    return ["--name=kvio-bench", f"--filename={filename}", f"--rw={rw}", f"--bs={bs}", f"--iodepth={depth}",
            "--ioengine=io_uring", f"--direct={direct}", "--time_based", f"--runtime={runtime}",
            "--ramp_time=2", "--randrepeat=0", "--norandommap", "--output-format=terse", "--terse-version=3"]


def parse_terse(line, rw):
    f = line.strip().split(";")
    if len(f) < WRITE_IOPS + 1 or f[0] != "3":
        raise ValueError(f"not a fio terse v3 line: {line[:120]!r}")
    if rw == "randwrite":
        return float(f[WRITE_IOPS]), float(f[WRITE_BW]) / 1024
    return float(f[READ_IOPS]), float(f[READ_BW]) / 1024


# Guest-side counters around each job: requests vda completed (reads + writes
# from /sys/block/vda/stat) and interrupts the virtio devices raised.
GUEST_COUNTERS = ("ios() { set -- $(cat /sys/block/vda/stat); echo $(($1 + $5)); }; "
                  "irqs() { grep virtio /proc/interrupts | "
                  "awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i} END {print s + 0}'; }")


def guest_command(runtime):
    """One shell line for kvio.run=: each job prints '=NAME= <terse line>' and
    '=NAME-counts= <interrupts> <requests>'."""
    parts = [GUEST_COUNTERS]
    for name, rw, bs, depth in JOBS:
        args = " ".join(fio_args("/dev/vda", rw, bs, depth, runtime, 1))
        parts.append(f"i=$(irqs); o=$(ios); echo ={name}= $(fio {args}); "
                     f"echo ={name}-counts= $(($(irqs) - i)) $(($(ios) - o))")
    return "; ".join(parts)


def run_guest(cmd, timeout):
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout)
    out = proc.stdout.decode(errors="replace")
    results = {}
    for name, rw, _, _ in JOBS:
        marker = f"={name}= "
        lines = [l for l in out.splitlines() if l.startswith(marker)]
        if not lines:
            raise RuntimeError(f"no {name} result (exit {proc.returncode}): {out[-400:]}")
        iops, mib = parse_terse(lines[0][len(marker):], rw)
        counts = [l.split()[1:] for l in out.splitlines() if l.startswith(f"={name}-counts= ")]
        irq_per_req = int(counts[0][0]) / max(int(counts[0][1]), 1) if counts and len(counts[0]) == 2 else float("nan")
        results[name] = (iops, mib, irq_per_req)
    return results


def run_native(fio, image, runtime):
    results = {}
    for name, rw, bs, depth in JOBS:
        out = subprocess.run([fio] + fio_args(image, rw, bs, depth, runtime, 0), check=True,
                             stdout=subprocess.PIPE).stdout.decode()
        results[name] = parse_terse(out.splitlines()[-1], rw) + (float("nan"),)
    return results


def main():
    ap = argparse.ArgumentParser()
    common.add_vm_args(ap)
    ap.add_argument("--runtime", type=int, default=10, help="seconds per fio job")
    ap.add_argument("--image-mib", type=int, default=512)
    ap.add_argument("--fio", default="build/guest/src/fio/fio", help="the guest's fio, static, run on the host too")
    ap.add_argument("--image", default="/tmp/kvio-bench-blk.img")
    args = ap.parse_args()

    # Random data, so reads touch real pages rather than holes.
    with open(args.image, "wb") as img, open("/dev/urandom", "rb") as rnd:
        for _ in range(args.image_mib):
            img.write(rnd.read(1 << 20))

    cmdline = f"quiet kvio.run=\"{guest_command(args.runtime)}\""
    systems = {
        "kvio": [args.kvio, "run", "--kernel", args.kernel, "--initrd", args.initrd, "--memory", args.memory,
                 "--cpus", args.cpus, "--disk", args.image, "--append", cmdline],
        # Buffered on the host, like kvio: the testbed's tmpfs has no O_DIRECT (cache=none).
        "qemu": ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-M", "q35", "-m", args.memory,
                 "-smp", args.cpus, "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
                 "-kernel", args.kernel, "-initrd", args.initrd, "-append", "console=ttyS0 " + cmdline,
                 "-drive", f"file={args.image},if=none,id=disk0,format=raw,cache=writeback,aio=io_uring",
                 "-device", "virtio-blk-pci,drive=disk0"],
    }
    results = {n: [] for n in list(systems) + ["native"]}
    for r in range(args.rounds):
        order = list(systems) if r % 2 == 0 else list(reversed(systems))
        for name in order + ["native"]:
            start = time.monotonic()
            try:
                if name == "native":
                    res = run_native(args.fio, args.image, args.runtime)
                else:
                    res = run_guest(systems[name], args.timeout)
            except (RuntimeError, ValueError, subprocess.SubprocessError) as e:
                print(f"round {r + 1} {name:6s} FAILED: {e}", flush=True)
                continue
            results[name].append(res)
            print(f"round {r + 1} {name:6s} " + "  ".join(
                f"{job} {res[job][0]:6.0f} IOPS {res[job][1]:7.1f} MiB/s {res[job][2]:4.2f} irq/req"
                for job, _, _, _ in JOBS)
                + f"  ({time.monotonic() - start:.0f} s)", flush=True)
    os.unlink(args.image)

    if not all(results.values()):
        raise SystemExit("a system produced no results; no medians")
    med = {n: {job: tuple(statistics.median(x[job][i] for x in rs) for i in range(3))
               for job, _, _, _ in JOBS} for n, rs in results.items()}
    print()
    print(f"| {'job':18s} | {'kvio IOPS':>10s} | {'QEMU IOPS':>10s} | {'native IOPS':>11s} "
          f"| {'kvio/QEMU':>9s} | {'kvio/native':>11s} | {'irq/req kvio':>12s} | {'irq/req QEMU':>12s} |")
    print(f"|{'-' * 20}|{'-' * 12}|{'-' * 12}|{'-' * 13}|{'-' * 11}|{'-' * 13}|{'-' * 14}|{'-' * 14}|")
    for job, _, _, _ in JOBS:
        k, q, n = med["kvio"][job][0], med["qemu"][job][0], med["native"][job][0]
        print(f"| {job:18s} | {k:10.0f} | {q:10.0f} | {n:11.0f} | {k / q:9.2f} | {k / n:11.2f} "
              f"| {med['kvio'][job][2]:12.2f} | {med['qemu'][job][2]:12.2f} |")
    print()
    print(f"(medians of {args.rounds} rounds, {args.runtime} s per job, {args.cpus} vCPU, {args.memory} MiB, "
          f"{args.image_mib} MiB image; guest fio O_DIRECT on /dev/vda, host side buffered for both VMMs "
          f"and for native fio; failed runs: "
          + ", ".join(f"{n} {args.rounds - len(rs)}" for n, rs in results.items()) + ")")


if __name__ == "__main__":
    main()
