#!/usr/bin/env python3
"""vhost-user benchmark. Network: iperf3 TCP between two guests (VM to VM,
both directions) through kvio-switch, and through two taps on a Linux bridge
in a network namespace, for kvio guests and for QEMU guests. Block: fio in
the guest through kvio-blkd with kvio as the frontend, through kvio's
in-process virtio-blk, and through kvio-blkd with QEMU as the frontend.
Several rounds, alternating the order; prints medians and ratios. Needs real
KVM: bench/vhost-user runs it in the testbed."""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (bench/common.py: the options every driver has)
import blk  # noqa: E402  (bench/blk.py: the fio jobs, the guest command and its parser)

NS = f"kvio-bench-vu-{os.getpid()}"
DIRECTIONS = ("A->B", "B->A")
MACS = ("52:54:00:00:00:0a", "52:54:00:00:00:0b")
ADDRS = ("10.0.3.1", "10.0.3.2")

# (row, frontend, path)
NET_ROWS = [("kvio/kvio-switch", "kvio", "switch"),
            ("kvio/tap+bridge", "kvio", "bridge"),
            ("qemu/kvio-switch", "qemu", "switch"),
            ("qemu/tap+bridge", "qemu", "bridge")]


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout.decode()


def netns(*cmd, check=True):
    return sh("ip", "netns", "exec", NS, *cmd, check=check)


def make_bridge():
    """Two taps on a bridge, nothing else, in a namespace of our own."""
    sh("ip", "netns", "add", NS)
    netns("ip", "link", "set", "lo", "up")
    netns("ip", "link", "add", "kvbr0", "type", "bridge")
    netns("ip", "link", "set", "kvbr0", "up")
    for tap in ("kvtap0", "kvtap1"):
        netns("ip", "tuntap", "add", "dev", tap, "mode", "tap")
        netns("ip", "link", "set", tap, "master", "kvbr0")
        netns("ip", "link", "set", tap, "up")


def drop_namespace():
    sh("ip", "netns", "del", NS, check=False)


def vm_command(frontend, path, index, args, sockdir, cmdline):
    """Guest index (0 = A, 1 = B) on the switch's port or on kvtapN."""
    mac = MACS[index]
    if frontend == "kvio":
        net = f"vhost-user={sockdir}/port{index}.sock" if path == "switch" else f"tap=kvtap{index}"
        cmd = [args.kvio, "run", "--kernel", args.kernel, "--initrd", args.initrd, "--memory", args.memory,
               "--cpus", args.cpus, "--net", f"{net},mac={mac}", "--append", cmdline]
    else:
        if path == "switch":
            netdev = ["-chardev", f"socket,id=sw,path={sockdir}/port{index}.sock",
                      "-netdev", "vhost-user,id=n0,chardev=sw"]
        else:
            netdev = ["-netdev", f"tap,id=n0,ifname=kvtap{index},script=no,downscript=no"]
        cmd = ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-M", "q35", "-m", args.memory,
               "-smp", args.cpus, "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
               "-object", f"memory-backend-memfd,id=mem,size={args.memory}M,share=on", "-numa", "node,memdev=mem",
               *netdev, "-device", f"virtio-net-pci,netdev=n0,mac={mac}",
               "-kernel", args.kernel, "-initrd", args.initrd, "-append", "console=ttyS0 " + cmdline]
    return (["ip", "netns", "exec", NS] + cmd) if path == "bridge" else cmd


def wait_for(path, text, timeout, proc):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with open(path, errors="replace") as f:
            if text in f.read():
                return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"no {text!r} in {path}")


def run_pair(frontend, path, args):
    """Guest B serves iperf3; guest A runs it both ways. Returns (A->B, B->A) Mbit/s."""
    rate = "sed -n 's/.* \\([0-9.]*\\) Mbits.sec.*receiver$/\\1/p'"
    a_cmd = (f"quiet kvio.ip={ADDRS[0]}/24 kvio.run=\"sleep 1; "
             f"echo =ab= $(iperf3 -c {ADDRS[1]} -t {args.seconds} -f m | {rate}); "
             f"echo =ba= $(iperf3 -c {ADDRS[1]} -t {args.seconds} -f m -R | {rate})\"")
    b_cmd = f"quiet kvio.ip={ADDRS[1]}/24 kvio.run=\"iperf3 -s -D; echo =served=; sleep 100000\""
    with tempfile.TemporaryDirectory(prefix="kvio-bench-vu-") as sockdir:
        procs = []
        try:
            if path == "switch":
                sw = subprocess.Popen(["build/kvio-switch", "--dir", sockdir, "--ports", "2"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(sw)
                time.sleep(1)
            else:
                make_bridge()
            b_log = os.path.join(sockdir, "b.log")
            with open(b_log, "w") as out:
                b = subprocess.Popen(vm_command(frontend, path, 1, args, sockdir, b_cmd),
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            procs.append(b)
            wait_for(b_log, "=served=", args.timeout, b)
            a = subprocess.run(vm_command(frontend, path, 0, args, sockdir, a_cmd), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=args.timeout)
        finally:
            for p in reversed(procs):
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if path == "bridge":
                drop_namespace()
    out = a.stdout.decode(errors="replace")
    res = []
    for marker in ("=ab= ", "=ba= "):
        vals = [l[len(marker):].split() for l in out.splitlines() if l.startswith(marker)]
        if not vals or not vals[0]:
            raise RuntimeError(f"no {marker.strip()} result (exit {a.returncode}): {out[-300:]!r}")
        res.append(float(vals[0][0]))
    return tuple(res)


BLK_ROWS = ["kvio/kvio-blkd", "kvio/in-process", "qemu/kvio-blkd"]


def blk_command(row, args, sock, cmdline):
    if row == "kvio/in-process":
        disk = ["--disk", args.image]
    else:
        disk = ["--disk", f"vhost-user={sock}"]
    if row.startswith("kvio/"):
        return [args.kvio, "run", "--kernel", args.kernel, "--initrd", args.initrd, "--memory", args.memory,
                "--cpus", args.cpus, *disk, "--append", cmdline]
    return ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-M", "q35", "-m", args.memory,
            "-smp", args.cpus, "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
            "-object", f"memory-backend-memfd,id=mem,size={args.memory}M,share=on", "-numa", "node,memdev=mem",
            "-chardev", f"socket,id=blk,path={sock}", "-device", "vhost-user-blk-pci,chardev=blk,num-queues=1",
            "-kernel", args.kernel, "-initrd", args.initrd, "-append", "console=ttyS0 " + cmdline]


def run_blk_row(row, args):
    cmdline = f"quiet kvio.run=\"{blk.guest_command(args.runtime)}\""
    with tempfile.TemporaryDirectory(prefix="kvio-bench-vu-") as d:
        sock = os.path.join(d, "blk.sock")
        daemon = None
        if row != "kvio/in-process":
            daemon = subprocess.Popen(["build/kvio-blkd", "--socket", sock, "--image", args.image],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(40):
                if os.path.exists(sock):
                    break
                time.sleep(0.25)
        try:
            return blk.run_guest(blk_command(row, args, sock, cmdline), args.timeout)
        finally:
            if daemon:
                daemon.terminate()
                daemon.wait()


def bench_blk(args):
    with open(args.image, "wb") as img, open("/dev/urandom", "rb") as rnd:
        for _ in range(args.image_mib):
            img.write(rnd.read(1 << 20))
    results = {r: [] for r in BLK_ROWS}
    for rnd in range(args.rounds):
        for row in (BLK_ROWS if rnd % 2 == 0 else list(reversed(BLK_ROWS))):
            start = time.monotonic()
            try:
                res = run_blk_row(row, args)
            except (RuntimeError, ValueError, subprocess.SubprocessError) as e:
                print(f"round {rnd + 1} {row:16s} FAILED: {e}", flush=True)
                continue
            results[row].append(res)
            print(f"round {rnd + 1} {row:16s} " + "  ".join(
                f"{job} {res[job][0]:6.0f} IOPS" for job, _, _, _ in blk.JOBS)
                + f"  ({time.monotonic() - start:.0f} s)", flush=True)
    os.unlink(args.image)

    def med(row, job):
        return statistics.median(x[job][0] for x in results[row]) if results[row] else float("nan")

    print()
    print("| job | kvio+kvio-blkd IOPS | kvio in-process IOPS | QEMU+kvio-blkd IOPS | blkd/in-process | "
          "kvio/QEMU on blkd |")
    print("|---|---|---|---|---|---|")
    for job, _, _, _ in blk.JOBS:
        k, i, q = med("kvio/kvio-blkd", job), med("kvio/in-process", job), med("qemu/kvio-blkd", job)
        print(f"| {job} | {k:.0f} | {i:.0f} | {q:.0f} | {k / i:.2f} | {k / q:.2f} |")
    print(f"(medians of {args.rounds} rounds, {args.runtime} s per job, {args.cpus} vCPU, {args.memory} MiB, "
          f"{args.image_mib} MiB image, guest fio O_DIRECT, host side buffered; failed runs: "
          + ", ".join(f"{r} {args.rounds - len(v)}" for r, v in results.items() if len(v) < args.rounds) + ")")


def main():
    ap = argparse.ArgumentParser()
    common.add_vm_args(ap)
    ap.add_argument("--seconds", type=int, default=10, help="per iperf3 direction")
    ap.add_argument("--rows", default=",".join(r[0] for r in NET_ROWS), help="comma-separated subset of the rows")
    ap.add_argument("--blk", action="store_true", help="the block rows (fio) instead of the network rows")
    ap.add_argument("--runtime", type=int, default=10, help="--blk: seconds per fio job")
    ap.add_argument("--image-mib", type=int, default=512)
    ap.add_argument("--image", default="/tmp/kvio-bench-vu.img")
    args = ap.parse_args()

    if args.blk:
        bench_blk(args)
        return
    rows = [r for r in NET_ROWS if r[0] in args.rows.split(",")]
    results = {r[0]: [] for r in rows}
    for rnd in range(args.rounds):
        order = rows if rnd % 2 == 0 else list(reversed(rows))
        for row in order:
            start = time.monotonic()
            try:
                res = run_pair(row[1], row[2], args)
            except (RuntimeError, subprocess.SubprocessError, OSError) as e:
                print(f"round {rnd + 1} {row[0]:17s} FAILED: {e}", flush=True)
                continue
            results[row[0]].append(res)
            print(f"round {rnd + 1} {row[0]:17s} A->B {res[0]:8.1f} Mbit/s  B->A {res[1]:8.1f} Mbit/s  "
                  f"({time.monotonic() - start:.0f} s)", flush=True)

    def med(row, i):
        samples = results.get(row, [])
        return statistics.median(s[i] for s in samples) if samples else float("nan")

    print()
    print("| VM to VM | A->B Mbit/s | B->A Mbit/s | over tap+bridge (same VMM) |")
    print("|---|---|---|---|")
    for row in rows:
        vmm = row[0].split("/")[0]
        bridge = f"{vmm}/tap+bridge"
        ratio = " / ".join(f"{med(row[0], i) / med(bridge, i):.2f}" for i in range(2))
        print(f"| {row[0]} | {med(row[0], 0):.0f} | {med(row[0], 1):.0f} | {ratio} |")
    print(f"(medians of {args.rounds} rounds, iperf3 TCP {args.seconds} s per direction, {args.cpus} vCPU, "
          f"{args.memory} MiB per guest; failed runs: " + ", ".join(
              f"{r} {args.rounds - len(v)}" for r, v in results.items() if len(v) < args.rounds) + ")")


if __name__ == "__main__":
    main()
