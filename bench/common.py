"""What the benchmark drivers share: the options that pick the VMMs' guest,
and reading a VMM's memory use and CPU time."""
import os


def add_vm_args(ap, memory="512", cpus="1"):
    """--rounds, and the guest every VMM boots: memory, vCPUs, kvio, kernel, initramfs, timeout."""
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory", default=memory, help="guest RAM in MiB")
    ap.add_argument("--cpus", default=cpus)
    ap.add_argument("--kvio", default="build/kvio")
    ap.add_argument("--kernel", default="build/guest/vmlinuz")
    ap.add_argument("--initrd", default="build/guest/initramfs.cpio.gz")
    ap.add_argument("--timeout", type=float, default=600, help="seconds a VM may run")


def proc_status(pid, keys):
    """The kB fields named in keys from /proc/PID/status, as a dict (a field the
    kernel does not show is left out), or None once the process is gone."""
    parts = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in keys:
                    parts[key] = int(value.split()[0])
    except (OSError, ValueError):
        return None
    return parts


def proc_cpu_seconds(pid):
    """(CPU seconds, of which running a guest) of all of PID's threads so far,
    or None once the process is gone. A vCPU thread's time in KVM_RUN counts
    as guest time, and the kernel counts guest time in user time as well."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    # Fields after the command's name: utime, stime and guest_time are 14, 15 and 43 of stat(5).
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, int(fields[40]) / tick
