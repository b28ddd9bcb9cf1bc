"""What the benchmark drivers share: the options that pick the VMMs' guest."""


def add_vm_args(ap, memory="512", cpus="1"):
    """--rounds, and the guest every VMM boots: memory, vCPUs, kvio, kernel, initramfs, timeout."""
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory", default=memory, help="guest RAM in MiB")
    ap.add_argument("--cpus", default=cpus)
    ap.add_argument("--kvio", default="build/kvio")
    ap.add_argument("--kernel", default="build/guest/vmlinuz")
    ap.add_argument("--initrd", default="build/guest/initramfs.cpio.gz")
    ap.add_argument("--timeout", type=float, default=600, help="seconds a VM may run")
