#!/usr/bin/env python3
"""Balloon benchmark: the VMM's host RSS over time while the guest allocates
memory, frees it, and is ballooned, in kvio and in QEMU (same kernel, initrd,
vCPUs, memory and command line; virtio-balloon with free page reporting in
both). The guest fills a tmpfs, prints a marker, deletes the file, prints
another; the driver samples /proc/PID/status every --interval seconds, watches
the console for the markers, and at the end of the free phase balloons the
guest down to --balloon-mib and back to full over QMP (the same client for both
VMMs: QEMU -qmp unix:PATH, kvio --monitor unix:PATH). Several rounds, the VMMs
alternating which goes first; prints per-phase medians and kvio/QEMU ratios and
plots one round's RSS against time (PNG, when matplotlib is installed). Needs
real KVM: bench/balloon runs it in the testbed."""
import argparse
import json
import os
import queue
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time

import common  # bench/common.py: what the drivers share

MIB = 1 << 20
# Guest console markers, in the order the guest prints them.
MARKERS = ("=idle=", "=alloc=", "=allocated=", "=freeing=", "=freed=")
# (key, table label); the label's MiB figures are filled in from the options.
PHASES = [("idle", "boot idle"),
          ("allocated", "after allocating {alloc} MiB"),
          ("freed", "after freeing it (free page reporting)"),
          ("ballooned", "balloon to {balloon} MiB guest size"),
          ("deflated", "balloon back to {memory} MiB")]
TIMES = [("settle", "RSS settles after the free (s)"),
         ("inflate", "inflate to {balloon} MiB (s)"),
         ("deflate", "deflate back to {memory} MiB (s)")]


def guest_command(args):
    """One shell line for kvio.run= (no double quotes: /init cuts the command at the next one).
    tmpfs defaults to half of RAM, so /dev/shm is made room for the allocation first."""
    return (f"mount -o remount,size={args.alloc_mib + 64}M /dev/shm; echo =idle=; sleep {args.idle}; "
            f"echo =alloc=; dd if=/dev/zero of=/dev/shm/fill bs=1M count={args.alloc_mib} 2>/dev/null "
            f"|| echo =dd-failed=; echo =allocated=; sleep {args.hold}; "
            f"echo =freeing=; rm /dev/shm/fill; echo =freed=; sleep 100000")


def vmm_command(system, args, sock, cmdline):
    if system == "kvio":
        return [args.kvio, "run", "--kernel", args.kernel, "--initrd", args.initrd, "--memory", str(args.memory),
                "--cpus", args.cpus, "--balloon", "--monitor", f"unix:{sock}", "--append", cmdline]
    # Guest RAM anonymous (QEMU's default) unless --qemu-memfd; kvio's is always a memfd.
    mem = (["-object", f"memory-backend-memfd,id=ram,size={args.memory}M", "-machine", "memory-backend=ram"]
           if args.qemu_memfd else [])
    return ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host", "-M", "q35", "-m", str(args.memory), *mem,
            "-smp", args.cpus, "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
            "-kernel", args.kernel, "-initrd", args.initrd, "-append", "console=ttyS0 " + cmdline,
            "-device", "virtio-balloon-pci,free-page-reporting=on",
            "-qmp", f"unix:{sock},server=on,wait=off"]


class QMP:
    """A minimal QMP client: one command at a time; events are kept aside."""

    def __init__(self, path, timeout, proc):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError as e:
                self.sock.close()
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"cannot connect to the monitor at {path}: {e}")
                time.sleep(0.2)
        self.sock.settimeout(timeout)
        self.file = self.sock.makefile("rb")
        self.events = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise RuntimeError(f"no QMP greeting: {greeting}")
        self.command("qmp_capabilities")

    def _read(self):
        line = self.file.readline()
        if not line:
            raise RuntimeError("the monitor closed the connection")
        return json.loads(line)

    def command(self, name, arguments=None):
        msg = {"execute": name}
        if arguments is not None:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\r\n")
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
            elif "return" in reply:
                return reply["return"]
            elif "error" in reply:
                raise RuntimeError(f"{name}: {reply['error']}")

    def close(self):
        self.file.close()
        self.sock.close()


def rss(pid):
    """(VmRSS, RssAnon, RssShmem) in KiB, or None once the process is gone."""
    parts = common.proc_status(pid, ("VmRSS", "RssAnon", "RssShmem"))
    if not parts or "VmRSS" not in parts:
        return None
    return parts["VmRSS"], parts.get("RssAnon", 0), parts.get("RssShmem", 0)


class Run:
    """One VMM process: its RSS samples and console markers, timed from its start."""

    def __init__(self, cmd, interval):
        self.start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.samples = []  # (t, VmRSS, RssAnon, RssShmem), KiB
        self.events = {}   # phase or marker -> t
        self.markers = queue.Queue()
        self.output = []
        self.interval = interval
        self.threads = [threading.Thread(target=self._sample, daemon=True),
                        threading.Thread(target=self._read, daemon=True)]
        for t in self.threads:
            t.start()

    def now(self):
        return time.monotonic() - self.start

    def _sample(self):
        tick = time.monotonic()
        while self.proc.poll() is None:
            s = rss(self.proc.pid)
            if s:
                self.samples.append((self.now(),) + s)
            tick += self.interval
            time.sleep(max(0.0, tick - time.monotonic()))

    def _read(self):
        for line in self.proc.stdout:
            self.output.append(line)
            text = line.decode(errors="replace").strip()
            for m in MARKERS + ("=dd-failed=",):
                if text.startswith(m) and text[len(m):].strip() == "":
                    self.markers.put((self.now(), m))

    def wait_marker(self, marker, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                t, m = self.markers.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"VMM exited ({self.proc.returncode}) before {marker}: {self.tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no {marker} within {timeout:.0f} s: {self.tail()}")
                continue
            if m == "=dd-failed=":
                raise RuntimeError(f"the guest could not allocate: {self.tail()}")
            self.events[m] = t
            if m == marker:
                return t

    def tail(self):
        return repr(b"".join(self.output[-6:]).decode(errors="replace")[-400:])

    def level(self, end, span=2.0):
        """Median VmRSS (KiB) and its anon/shmem parts over the span seconds before end."""
        window = [s for s in self.samples if end - span <= s[0] <= end] or \
                 [max((s for s in self.samples if s[0] <= end), key=lambda s: s[0])]
        return tuple(statistics.median(s[i] for s in window) for i in (1, 2, 3))

    def wait_stable(self, since, least, most, window, band_kib):
        """Waits until VmRSS has varied by at most band_kib over the last window
        seconds, no sooner than least and no later than most seconds after since."""
        while True:
            t = self.now()
            if self.proc.poll() is not None:
                raise RuntimeError(f"VMM exited ({self.proc.returncode}): {self.tail()}")
            recent = [s[1] for s in self.samples if s[0] >= max(since, t - window)]
            if t - since >= least and recent and t - since >= window and max(recent) - min(recent) <= band_kib:
                return t
            if t - since >= most:
                return t
            time.sleep(self.interval)

    def stop(self, qmp):
        """quit over QMP, then SIGTERM, then SIGKILL; only this process."""
        if qmp:
            try:
                qmp.command("quit")
            except (RuntimeError, OSError, ValueError):
                pass
        for action in (None, self.proc.terminate, self.proc.kill):
            if action:
                action()
            try:
                self.proc.wait(timeout=20)
                break
            except subprocess.TimeoutExpired:
                continue
        for t in self.threads:
            t.join(timeout=5)


def balloon_to(qmp, run, target, timeout):
    """Sets the guest's target size and waits for query-balloon's actual to reach it.
    Returns the seconds that took."""
    t0 = run.now()
    qmp.command("balloon", {"value": target})
    deadline = time.monotonic() + timeout
    while True:
        actual = qmp.command("query-balloon")["actual"]
        if abs(actual - target) < MIB:
            return run.now() - t0
        if time.monotonic() > deadline:
            raise RuntimeError(f"balloon: actual {actual // MIB} MiB, not {target // MIB}, after {timeout:.0f} s")
        if run.proc.poll() is not None:
            raise RuntimeError(f"VMM exited ({run.proc.returncode}) while ballooning: {run.tail()}")
        time.sleep(0.5)


def settle_time(run, since, until, band_kib):
    """Seconds from since to the first sample after which VmRSS stays within
    band_kib of where it ended (the median of its last 2 s before until)."""
    final = run.level(until)[0]
    window = [s for s in run.samples if since <= s[0] <= until]
    settled = since
    for t, v, _, _ in window:
        if abs(v - final) > band_kib:
            settled = t
    return max(0.0, settled - since)


def run_once(system, args, tmpdir):
    sock = os.path.join(tmpdir, f"{system}.qmp")
    cmdline = f"quiet kvio.run=\"{guest_command(args)}\""
    run = Run(vmm_command(system, args, sock, cmdline), args.interval)
    qmp = None
    res = {}
    try:
        run.wait_marker("=idle=", args.timeout)
        qmp = QMP(sock, 30, run.proc)
        run.wait_marker("=alloc=", args.idle + 120)
        res["idle"] = run.level(run.events["=alloc="])
        run.wait_marker("=allocated=", args.timeout)
        run.wait_marker("=freeing=", args.hold + 120)
        res["allocated"] = run.level(run.events["=freeing="])
        t_freed = run.wait_marker("=freed=", 120)
        band = args.band_mib * 1024
        t_end = run.wait_stable(t_freed, args.settle_min, args.settle_max, args.stable_window, band)
        run.events["free settled"] = t_end
        res["freed"] = run.level(t_end)
        res["settle"] = settle_time(run, t_freed, t_end, band)

        # (event, how long it took, where RSS settled, guest size)
        for event, took, done, mib in (("balloon", "inflate", "ballooned", args.balloon_mib),
                                       ("deflate", "deflate", "deflated", args.memory)):
            run.events[event] = run.now()
            res[took] = balloon_to(qmp, run, mib * MIB, args.balloon_timeout)
            run.events[done] = run.now()
            t_end = run.wait_stable(run.now(), args.stable_window, args.settle_max, args.stable_window, band)
            res[done] = run.level(t_end)
            run.events[event + " settled"] = t_end
    finally:
        run.stop(qmp)
        if qmp:
            qmp.close()
        if os.path.exists(sock):
            os.unlink(sock)
    return res, run.samples, run.events


def plot(path, traces, args):
    """traces: {system: (samples, events)}. One line per VMM, VmRSS in MiB against seconds."""
    # Its font cache goes to a directory of ours: HOME may be read-only (the testbed's is).
    confdir = tempfile.mkdtemp(prefix="kvio-bench-mpl-")
    os.environ.setdefault("MPLCONFIGDIR", confdir)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not found (Debian: python3-matplotlib): no plot written")
        shutil.rmtree(confdir, ignore_errors=True)
        return
    colors = {"kvio": "tab:blue", "qemu": "tab:orange"}
    names = {"kvio": "kvio", "qemu": "QEMU"}
    # Where the guest began a phase, or the driver sent the balloon command.
    labels = {"=alloc=": "alloc", "=freeing=": "free", "balloon": f"balloon {args.balloon_mib} MiB",
              "deflate": "balloon full"}
    fig, ax = plt.subplots(figsize=(10, 5.5))
    top = max((s[1] for samples, _ in traces.values() for s in samples), default=0) / 1024
    for system, (samples, events) in traces.items():
        ax.plot([s[0] for s in samples], [s[1] / 1024 for s in samples], color=colors[system],
                label=f"{names[system]} VmRSS")
        # On this VMM's own clock; labels staggered so that close ones stay apart.
        for i, (key, text) in enumerate(labels.items()):
            if key in events:
                t = events[key]
                ax.axvline(t, color=colors[system], linestyle=":", linewidth=0.8)
                y = top * (1.08 - 0.05 * (i % 2) - (0.1 if system == "qemu" else 0))
                ax.text(t, y, " " + text, color=colors[system], fontsize=8, va="top")
    ax.set_xlabel("seconds since the VMM started")
    ax.set_ylabel("host RSS (MiB)")
    ax.set_ylim(0, top * 1.12)
    ax.set_title(f"Guest {args.memory} MiB, {args.cpus} vCPUs: allocate {args.alloc_mib} MiB, free it "
                 f"(free page reporting), balloon to {args.balloon_mib} MiB and back")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="center right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)
    shutil.rmtree(confdir, ignore_errors=True)
    print(f"plot: {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--systems", default="kvio,qemu", help="comma-separated subset of kvio,qemu")
    ap.add_argument("--memory", type=int, default=1024, help="guest RAM, MiB")
    ap.add_argument("--cpus", default="2")
    ap.add_argument("--alloc-mib", type=int, default=700, help="what the guest writes to its tmpfs")
    ap.add_argument("--balloon-mib", type=int, default=256, help="guest size to balloon down to")
    ap.add_argument("--idle", type=int, default=8, help="seconds the booted guest idles first")
    ap.add_argument("--hold", type=int, default=8, help="seconds the guest holds the allocation")
    ap.add_argument("--interval", type=float, default=0.5, help="RSS sampling period, s")
    ap.add_argument("--settle-min", type=float, default=15, help="least time to watch RSS after the free, s")
    ap.add_argument("--settle-max", type=float, default=90, help="most time to wait for RSS to settle, s")
    ap.add_argument("--stable-window", type=float, default=5,
                    help="RSS counts as settled once it moved at most --band-mib over this many s")
    ap.add_argument("--band-mib", type=float, default=8)
    ap.add_argument("--balloon-timeout", type=float, default=180, help="s for query-balloon to reach a target")
    ap.add_argument("--qemu-memfd", action="store_true", help="QEMU guest RAM in a memfd backend, like kvio's")
    ap.add_argument("--kvio", default="build/kvio")
    ap.add_argument("--kernel", default="build/guest/vmlinuz")
    ap.add_argument("--initrd", default="build/guest/initramfs.cpio.gz")
    ap.add_argument("--png", default="bench/results/balloon.png", help="the plot ('' for none)")
    ap.add_argument("--timeout", type=float, default=300, help="s for the guest to boot or allocate")
    args = ap.parse_args()

    systems = [s for s in ("kvio", "qemu") if s in args.systems.split(",")]
    results = {s: [] for s in systems}
    traces = {}
    tmpdir = tempfile.mkdtemp(prefix="kvio-bench-balloon-")
    try:
        for r in range(args.rounds):
            order = systems if r % 2 == 0 else list(reversed(systems))
            for system in order:
                start = time.monotonic()
                try:
                    res, samples, events = run_once(system, args, tmpdir)
                except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
                    print(f"round {r + 1} {system:4s} FAILED: {e}", flush=True)
                    continue
                results[system].append(res)
                traces.setdefault(system, (samples, events))
                print(f"round {r + 1} {system:4s} " + "  ".join(
                    f"{k} {res[k][0] / 1024:.0f} (anon {res[k][1] / 1024:.0f} shmem {res[k][2] / 1024:.0f})"
                    for k, _ in PHASES) + " MiB  " + "  ".join(f"{k} {res[k]:.1f} s" for k, _ in TIMES)
                    + f"  ({time.monotonic() - start:.0f} s)", flush=True)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

    def med(system, key, i=None):
        vals = [x[key] if i is None else x[key][i] for x in results.get(system, [])]
        return statistics.median(vals) if vals else float("nan")

    def ratio(k, q):
        return f"{k / q:.2f}" if q and q == q and k == k else "-"

    def num(x, fmt):
        return "-" if x != x else format(x, fmt)

    fill = {"alloc": args.alloc_mib, "balloon": args.balloon_mib, "memory": args.memory}
    print()
    print("| phase | kvio RSS (MiB) | QEMU RSS (MiB) | kvio/QEMU |")
    print("|---|---|---|---|")
    for key, label in PHASES:
        k, q = med("kvio", key, 0) / 1024, med("qemu", key, 0) / 1024
        print(f"| {label.format(**fill)} | {num(k, '.0f')} | {num(q, '.0f')} | {ratio(k, q)} |")
    for key, label in TIMES:
        k, q = med("kvio", key), med("qemu", key)
        print(f"| {label.format(**fill)} | {num(k, '.1f')} | {num(q, '.1f')} | {ratio(k, q)} |")
    print()
    print(f"(medians of {args.rounds} rounds, guest {args.memory} MiB, {args.cpus} vCPUs, "
          f"RSS sampled every {args.interval} s, each phase's figure the median of its last 2 s; "
          f"guest RAM is {'shared memory for both' if args.qemu_memfd else 'anonymous memory for both'}; "
          f"settled = within {args.band_mib:g} MiB for {args.stable_window:g} s; failed runs: "
          + ", ".join(f"{s} {args.rounds - len(v)}" for s, v in results.items()) + ")")
    if args.png and traces:
        plot(args.png, traces, args)


if __name__ == "__main__":
    main()
