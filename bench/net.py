#!/usr/bin/env python3
"""Network benchmark: iperf3 TCP from the guest to the host and back (-R)
through each NIC model and backend, in kvio and in QEMU (same kernel, initrd,
vCPUs, memory and options), plus iperf3 over a veth pair between two network
namespaces as the host's own limit. Several rounds, the VMMs alternating which
goes first; prints medians and ratios. Everything runs in network namespaces
this script creates and removes. Needs real KVM: run on the host, it runs
each round in a testbed of its own (tests/testbed/run), the runs going to a
JSON-lines file the table is made from."""
import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time

import common  # bench/common.py: the options every driver has

NS = f"kvio-bench-{os.getpid()}"
HOST = "10.0.2.2"
DIRECTIONS = ("guest->host", "host->guest")
TESTBED_ATTEMPTS = 3
TESTBED_FAILED = (124, 125)  # tests/testbed/run: timed out, or L1 failed
QUIET_LIMIT = 300

# (row, model, backend, vhost, kvio's extra --net options). kvio's user
# networking runs a 65520-byte MTU by default; virtio/user-1500 is the same
# row at QEMU's MTU, so that one comparison is like for like.
ROWS = [("e1000/tap", "e1000", "tap", False, ""),
        ("virtio/tap", "virtio", "tap", False, ""),
        ("virtio/user", "virtio", "user", False, ""),
        ("virtio/user-1500", "virtio", "user", False, ",mtu=1500"),
        ("virtio/tap+vhost", "virtio", "tap", True, "")]


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout.decode()


def netns(*cmd, check=True):
    return sh("ip", "netns", "exec", NS, *cmd, check=check)


def make_namespace(backend):
    sh("ip", "netns", "add", NS)
    netns("ip", "link", "set", "lo", "up")
    if backend == "tap":
        netns("ip", "tuntap", "add", "dev", "kvtap0", "mode", "tap")
        netns("ip", "addr", "add", f"{HOST}/24", "dev", "kvtap0")
        netns("ip", "link", "set", "kvtap0", "up")


def drop_namespace():
    sh("ip", "netns", "del", NS, check=False)


def iperf_server(addr):
    """One iperf3 server in the namespace: the guest runs both directions against it."""
    proc = subprocess.Popen(["ip", "netns", "exec", NS, "iperf3", "-s", "-B", addr],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc


def guest_command(seconds):
    """iperf3's receiver-side Mbit/s for each direction, as '=DIR= N', with a
    '=mark=' line as each transfer starts and after the last, where the host
    reads the VMM's CPU time."""
    rate = "sed -n 's/.* \\([0-9.]*\\) Mbits.sec.*receiver$/\\1/p'"
    return (f"sleep 1; echo =mark=; g=$(iperf3 -c {HOST} -t {seconds} -f m | {rate}); "
            f"echo =mark=; h=$(iperf3 -c {HOST} -t {seconds} -f m -R | {rate}); "
            f"echo =mark=; echo =guest-host= $g; echo =host-guest= $h")


def vmm_command(system, model, backend, vhost, extra, args, cmdline):
    if system == "kvio":
        net = ("tap=kvtap0" + (",vhost=on" if vhost else "")) if backend == "tap" else "user"
        return [args.kvio, "run", "--kernel", args.kernel, "--initrd", args.initrd, "--memory", args.memory,
                "--cpus", args.cpus, "--net", f"{net},model={model}{extra}", "--append", cmdline]
    netdev = (f"tap,id=n0,ifname=kvtap0,script=no,downscript=no,vhost={'on' if vhost else 'off'}"
              if backend == "tap" else "user,id=n0")
    device = "e1000" if model == "e1000" else "virtio-net-pci"
    return ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-M", "q35", "-m", args.memory,
            "-smp", args.cpus, "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
            "-kernel", args.kernel, "-initrd", args.initrd, "-append", "console=ttyS0 " + cmdline,
            "-netdev", netdev, "-device", f"{device},netdev=n0"]


def vmm_cpu_seconds(pid):
    """(CPU seconds, of which the guest's) of the VMM and of the vhost-net
    workers it owns: before Linux 6.4 those are kernel threads named vhost-PID,
    outside the process."""
    own = common.proc_cpu_seconds(pid)
    if own is None:
        return None
    cpu, guest = own
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != f"vhost-{pid}":
                    continue
        except OSError:
            continue
        cpu += (common.proc_cpu_seconds(int(entry)) or (0, 0))[0]
    return cpu, guest


def run_guest(system, row, args):
    """Both directions' Mbit/s, and for each transfer the VMM's CPU seconds
    (all its threads) and how many of them were the guest's."""
    _, model, backend, vhost, extra = row
    ip = "dhcp" if backend == "user" else "10.0.2.15/24"
    cmdline = f"quiet kvio.ip={ip} kvio.run=\"{guest_command(args.seconds)}\""
    make_namespace(backend)
    server = iperf_server("127.0.0.1" if backend == "user" else HOST)
    proc, timer, timed_out, lines, marks = None, None, threading.Event(), [], []
    try:
        # ip netns exec execs the VMM in place, so proc.pid is the VMM's.
        proc = subprocess.Popen(["ip", "netns", "exec", NS] + vmm_command(system, model, backend, vhost, extra, args, cmdline),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        timer = threading.Timer(args.timeout, lambda: (timed_out.set(), proc.kill()))
        timer.start()
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            if line.startswith("=mark="):
                marks.append(vmm_cpu_seconds(proc.pid))
            lines.append(line)
        proc.wait()
    finally:
        if timer:
            timer.cancel()
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        server.kill()
        server.wait()
        drop_namespace()
    if timed_out.is_set():
        raise RuntimeError(f"killed after {args.timeout:.0f} s")
    out = "\n".join(lines)
    res = []
    for marker in ("=guest-host= ", "=host-guest= "):
        vals = [l[len(marker):].split() for l in lines if l.startswith(marker)]
        if not vals or not vals[0]:
            raise RuntimeError(f"no {marker.strip()} result (exit {proc.returncode}): {out[-300:]!r}")
        res.append(float(vals[0][0]))
    if len(marks) != 3 or None in marks:
        raise RuntimeError(f"no CPU time for each transfer (exit {proc.returncode}): {out[-300:]!r}")
    return tuple(res), [tuple(marks[i + 1][k] - marks[i][k] for i in range(2)) for k in range(2)]


def run_veth(args):
    """The host's limit: iperf3 between two namespaces over a veth pair."""
    peer = NS + "-b"
    sh("ip", "netns", "add", NS)
    sh("ip", "netns", "add", peer)
    try:
        sh("ip", "link", "add", "kvveth0", "netns", NS, "type", "veth", "peer", "name", "kvveth1", "netns", peer)
        for ns, dev, addr in ((NS, "kvveth0", HOST), (peer, "kvveth1", "10.0.2.15")):
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{addr}/24", "dev", dev)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        server = iperf_server(HOST)
        try:
            res = []
            for extra in ([], ["-R"]):
                out = sh("ip", "netns", "exec", peer, "iperf3", "-c", HOST, "-t", str(args.seconds), "-f", "m", *extra)
                line = [l for l in out.splitlines() if l.endswith("receiver")][0]
                res.append(float(line.split("Mbits/sec")[0].split()[-1]))
        finally:
            server.kill()
            server.wait()
    finally:
        sh("ip", "netns", "del", peer, check=False)
        drop_namespace()
    return tuple(res)


def run_round(rnd, rows, args):
    """One round (the VMMs alternate which goes first), appended to args.results
    as JSON lines as each run ends."""
    systems = ("kvio", "qemu") if rnd % 2 == 0 else ("qemu", "kvio")

    def record(**entry):
        with open(args.results, "a") as f:
            f.write(json.dumps(dict(round=rnd + 1, **entry)) + "\n")

    def show(row, system, res, tail=""):
        print(f"round {rnd + 1} {row:17s} {system:4s} guest->host {res[0]:8.1f} Mbit/s  "
              f"host->guest {res[1]:8.1f} Mbit/s{tail}", flush=True)

    if not os.path.exists("/dev/vhost-net"):
        print("no /dev/vhost-net here: the vhost row is left out", flush=True)
        rows = [r for r in rows if not r[3]]
        record(row="(no vhost-net)")
    for row in rows:
        for system in systems:
            start = time.monotonic()
            try:
                res, (cpu, guest) = run_guest(system, row, args)
            except (RuntimeError, subprocess.SubprocessError) as e:
                print(f"round {rnd + 1} {row[0]:17s} {system:4s} FAILED: {e}", flush=True)
                continue
            record(row=row[0], system=system, rates=res, cpu=cpu, guest=guest)
            show(row[0], system, res, f"  CPU {cpu[0]:.1f}, {cpu[1]:.1f} s (guest {guest[0]:.1f}, {guest[1]:.1f})"
                 f"  ({time.monotonic() - start:.0f} s)")
    res = run_veth(args)
    record(row="veth (limit)", system="host", rates=res)
    show("veth (limit)", "", res)


def report(rows, args):
    runs = [json.loads(line) for line in open(args.results)]
    results = {(r[0], s): [e for e in runs if e["row"] == r[0] and e["system"] == s]
               for r in rows for s in ("kvio", "qemu")}
    limit = [e["rates"] for e in runs if e["row"] == "veth (limit)"]

    def med(samples, i):
        return statistics.median(s[i] for s in samples) if samples else float("nan")

    def rate(row, system, i):
        return med([e["rates"] for e in results[(row, system)]], i)

    def cpu_per_gb(entries, i, vmm_only):
        """CPU seconds per GB moved, median over the runs that timed it; vmm_only
        leaves out the guest's own time on its vCPUs."""
        per_gb = [(e["cpu"][i] - (e["guest"][i] if vmm_only else 0)) / (e["rates"][i] * args.seconds / 8000)
                  for e in entries if "guest" in e and e["rates"][i]]
        return statistics.median(per_gb) if per_gb else float("nan")

    def per_round(row, i):
        """kvio/QEMU of each round that has both runs: the L1 changes between rounds more than the VMMs differ."""
        by_round = {s: {e["round"]: e["rates"][i] for e in results[(row, s)]} for s in ("kvio", "qemu")}
        return ", ".join(f"{by_round['kvio'][r] / by_round['qemu'][r]:.2f}"
                         for r in sorted(by_round["kvio"]) if by_round["qemu"].get(r))

    lim = [med(limit, i) for i in range(2)]
    print()
    print("| row | direction | kvio Mbit/s | QEMU Mbit/s | kvio/QEMU | kvio/limit | QEMU/limit | kvio/QEMU per round |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        for i, direction in enumerate(DIRECTIONS):
            k, q = rate(row[0], "kvio", i), rate(row[0], "qemu", i)
            print(f"| {row[0]} | {direction} | {k:.0f} | {q:.0f} | {k / q:.2f} | {k / lim[i]:.3f} | {q / lim[i]:.3f} "
                  f"| {per_round(row[0], i)} |")
    for i, direction in enumerate(DIRECTIONS):
        print(f"| veth (limit) | {direction} | {lim[i]:.0f} | | | | | |")
    print()
    print("| row | direction | kvio CPU s/GB | QEMU CPU s/GB | kvio/QEMU | kvio VMM-only s/GB | QEMU VMM-only s/GB | kvio/QEMU |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        for i, direction in enumerate(DIRECTIONS):
            cells = []
            for vmm_only in (False, True):
                k, q = (cpu_per_gb(results[(row[0], s)], i, vmm_only) for s in ("kvio", "qemu"))
                cells.append(f"{k:.1f} | {q:.1f} | {k / q if q else float('nan'):.2f}")
            print(f"| {row[0]} | {direction} | {' | '.join(cells)} |")
    print()
    if {"e1000/tap", "virtio/tap"} <= {r[0] for r in rows}:
        base = {i: rate("e1000/tap", "kvio", i) for i in range(2)}
        virt = {i: rate("virtio/tap", "kvio", i) for i in range(2)}
        print("kvio virtio/tap over e1000/tap: " + ", ".join(
            f"{d} {virt[i] / base[i]:.1f}x" for i, d in enumerate(DIRECTIONS)))
    print(f"(medians of {args.rounds} rounds, iperf3 TCP {args.seconds} s per direction, {args.cpus} vCPU, "
          f"{args.memory} MiB; CPU: all the VMM's threads during each iperf3 run, and VMM-only without the guest's time in KVM_RUN; failed runs: " + ", ".join(
              f"{r} {s} {args.rounds - len(v)}" for (r, s), v in results.items() if len(v) < args.rounds) + ")")


def main():
    ap = argparse.ArgumentParser()
    common.add_vm_args(ap)
    ap.add_argument("--seconds", type=int, default=10, help="per iperf3 direction")
    ap.add_argument("--rows", default=",".join(r[0] for r in ROWS), help="comma-separated subset of the rows")
    ap.add_argument("--results", help="JSON lines of every run, appended to (default: a new file in build/)")
    ap.add_argument("--round", type=int, help=argparse.SUPPRESS)  # run this one round here (bench/net's own use)
    args = ap.parse_args()

    rows = [r for r in ROWS if r[0] in args.rows.split(",")]
    if args.round is not None:
        run_round(args.round, rows, args)
        return
    # Each round in a testbed of its own, run again if the testbed dies (the
    # nested one's L1 now and then hangs): a hang costs one round, not all.
    args.results = args.results or time.strftime("build/bench-net-%Y%m%d-%H%M%S.jsonl")
    open(args.results, "a").close()
    forwarded = sys.argv[1:]
    # A hung L1 that stays busy is caught only by the testbed's timeout: one round's worth.
    env = dict(os.environ)
    env.setdefault("KVIO_TESTBED_TIMEOUT", str(300 + len(rows) * 2 * (2 * args.seconds + 120)))
    for rnd in range(args.rounds):
        for attempt in range(TESTBED_ATTEMPTS):
            rc = run_quietly_watched(["tests/testbed/run", sys.executable, __file__, *forwarded,
                                      "--results", args.results, "--round", str(rnd)], env)
            if rc not in TESTBED_FAILED:
                break
            print(f"round {rnd + 1}: the testbed failed (exit {rc}); again", flush=True)
            drop_round(args.results, rnd + 1)
    if any(json.loads(line)["row"] == "(no vhost-net)" for line in open(args.results)):
        rows = [r for r in rows if not r[3]]
    print(f"(every run: {args.results})")
    report(rows, args)


def run_quietly_watched(cmd, env):
    """Run one round's testbed, passing its output on. A run prints within a
    minute or so; a testbed silent for QUIET_LIMIT seconds has an L1 that hung
    while busy (the testbed itself notices only an idle one) and is stopped.
    Returns the exit status, 124 if stopped."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=QUIET_LIMIT)
        except queue.Empty:
            print(f"(no output for {QUIET_LIMIT} s: stopping the testbed)", flush=True)
            proc.terminate()  # tests/testbed/run stops its L1 on SIGTERM
            proc.wait()
            return 124
        if line is None:
            return proc.wait()
        sys.stdout.write(line.decode(errors="replace"))
        sys.stdout.flush()


def drop_round(path, rnd):
    """A round the testbed cut short is run again whole: its partial runs go."""
    with open(path) as f:
        kept = [line for line in f if json.loads(line)["round"] != rnd]
    with open(path, "w") as f:
        f.writelines(kept)


if __name__ == "__main__":
    main()
