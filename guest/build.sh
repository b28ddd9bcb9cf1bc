#!/usr/bin/env bash
# Builds kvio's default guest, OUTDIR/vmlinuz + OUTDIR/initramfs.cpio.gz, from Debian
# packages unpacked with dpkg -x (nothing is installed on the host). Usage: build.sh [OUTDIR]
#
# Outputs in OUTDIR (default: build/guest under the project root):
#   vmlinuz, initramfs.cpio.gz  the guest
#   kernel-version              e.g. 6.1.0-56-amd64
#   kernel/                     the unpacked linux-image package, depmod run
#                               (kernel/lib/modules/VERSION); tests/testbed reuses it
#   busybox/                    the unpacked busybox-static package
#   debs/                       downloaded packages, kept as a cache
# Needs: apt (with package lists), dpkg, dpkg-dev, kmod (depmod, modprobe), cpio, gzip,
# and a C toolchain (fio is built from source).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(dirname "$here")
out=${1:-$root/build/guest}

# --- Guest tools hook -------------------------------------------------------
# To put a tool such as iperf3 or fio into the guest: list in GUEST_PACKAGES the
# Debian packages holding the binary and those of its libraries the host may lack
# (dependencies are not followed), and the binary's path in GUEST_BINARIES, e.g.
#   GUEST_PACKAGES=(iperf3 libiperf0 libsctp1)   GUEST_BINARIES=(/usr/bin/iperf3)
# Each package is downloaded and unpacked like the kernel; add_binary copies the
# binary and every library ldd resolves, from the unpacked packages first, then
# from the host (the same Debian release, so its libc matches).
# mkfs.ext4 for the virtio-blk tests, lspci for the virtio-pci ones, iperf3 for
# bench/net and ethtool for multiqueue (with the libraries they link that a
# minimal host may lack).
GUEST_PACKAGES=(e2fsprogs libext2fs2 libcom-err2 libblkid1 libuuid1 pciutils libpci3 libkmod2 libudev1 zlib1g
	iperf3 libiperf0 libsctp1 libssl3 ethtool libmnl0)
GUEST_BINARIES=(/sbin/mke2fs /sbin/mkfs.ext4 /usr/bin/lspci /usr/bin/iperf3 /sbin/ethtool)
# fio for bench/blk is built from Debian's source package (see build_fio): the
# binary package links about 80 MB of libraries (ceph, gluster, ICU...) for
# engines the guest never uses.
# ----------------------------------------------------------------------------

die() { echo "guest/build.sh: $*" >&2; exit 1; }
log() { echo "guest/build.sh: $*" >&2; }

inputs=("$here/build.sh" "$here/init" "$here/udhcpc.script" "$here/modules.list" "$here/mkinitramfs.sh")
outputs=(vmlinuz initramfs.cpio.gz)

up_to_date() {
	local o i
	for o in "${outputs[@]}"; do
		[[ -e $out/$o ]] || return 1
		for i in "${inputs[@]}"; do [[ $out/$o -nt $i ]] || return 1; done
	done
	[[ -f $out/kernel-version && -f $out/kernel/lib/modules/$(<"$out/kernel-version")/modules.dep ]]
}
up_to_date && exit 0

for tool in apt-get apt-cache dpkg depmod modprobe cpio gzip; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install apt dpkg kmod cpio gzip)"
done
mkdir -p "$out/debs"
out=$(cd "$out" && pwd -P)
# Concurrent builds (make and tests/testbed/run at once) would share the .tmp paths.
exec 9>"$out/.lock"
flock 9
up_to_date && exit 0

# linux-image-amd64 is a metapackage; its one Depends is the current ABI's image.
kernel_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1
}
kpkg=$(kernel_pkg)
if [[ -z $kpkg && $EUID -eq 0 ]]; then
	log "no package lists, running apt-get update"
	apt-get update -qq >&2
	kpkg=$(kernel_pkg)
fi
[[ $kpkg ]] || die "cannot resolve linux-image-amd64 (run apt-get update)"
kver=${kpkg#linux-image-}

# Prints the path of PKG's candidate .deb in debs/, downloading it if not cached.
fetch() {
	local pkg=$1 ver debs
	ver=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
	[[ $ver && $ver != "(none)" ]] || die "package $pkg not available"
	debs=("$out/debs/${pkg}_${ver//:/%3a}_"*.deb)
	if [[ ! -f ${debs[0]} ]]; then
		log "downloading $pkg $ver"
		# As root apt wants to drop to _apt, which cannot write here.
		(cd "$out/debs" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2)
		debs=("$out/debs/${pkg}_${ver//:/%3a}_"*.deb)
		[[ -f ${debs[0]} ]] || die "download of $pkg failed"
	fi
	echo "${debs[0]}"
}

# Unpacks DEB into OUTDIR/DIR unless DIR already came from DEB; fails if it did nothing.
unpack() {
	local deb=$1 dir=$out/$2
	[[ -f $dir/.kvio-deb && $(<"$dir/.kvio-deb") == "${deb##*/}" ]] && return 1
	log "unpacking ${deb##*/}"
	rm -rf "$dir.tmp"
	dpkg -x "$deb" "$dir.tmp"
	echo "${deb##*/}" >"$dir.tmp/.kvio-deb"
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
}

kdeb=$(fetch "$kpkg")
if unpack "$kdeb" kernel || [[ ! -f $out/kernel/lib/modules/$kver/modules.dep ]]; then
	# The package ships no modules.dep (its postinst makes it); -C: ignore host config.
	depmod -C /dev/null -b "$out/kernel" "$kver"
fi
bbdeb=$(fetch busybox-static)
unpack "$bbdeb" busybox || true

extra=$out/extra.tmp
rm -rf "$extra"
mkdir -p "$extra"
trap 'rm -rf "$extra"' EXIT

# Copies BINARY (a path as installed) and the libraries it needs into the image.
add_binary() {
	local bin=$1 src='' p libpath=() lib dest
	for p in "${GUEST_PACKAGES[@]}"; do
		[[ -e $out/pkgs/$p$bin ]] && src=$out/pkgs/$p$bin
		for lib in lib usr/lib lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
			[[ -d $out/pkgs/$p/$lib ]] && libpath+=("$out/pkgs/$p/$lib")
		done
	done
	[[ $src ]] || die "$bin is in none of GUEST_PACKAGES"
	install -D -m 0755 "$src" "$extra$bin"
	# ldd lines: "libx.so => /path (addr)" or "/lib64/ld-linux-x86-64.so.2 (addr)".
	(IFS=:; LD_LIBRARY_PATH="${libpath[*]}" ldd "$src" || true) | while read -r a b c _; do
		if [[ $b == "=>" && $c == /* ]]; then lib=$c; elif [[ $a == /* ]]; then lib=$a; else continue; fi
		# A library from an unpacked package goes where the package would install it.
		dest=$lib
		if [[ $lib == "$out/pkgs/"* ]]; then
			dest=${lib#"$out/pkgs/"}
			dest=/${dest#*/}
		fi
		mkdir -p "$extra$(dirname "$dest")"
		cp -L "$lib" "$extra$dest"
	done
}
# Downloads the source package PKG (the version apt would install) into
# OUTDIR/src and unpacks it into OUTDIR/src/PKG; prints that directory. The
# host's apt sources have no deb-src lines, so apt gets a private copy of them
# (same mirrors and keyring, Types: deb-src) and private lists.
fetch_source() {
	local pkg=$1 ver dir=$out/src apt_opts
	ver=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
	[[ $ver && $ver != "(none)" ]] || die "package $pkg not available"
	if [[ ! -f $dir/$pkg/.kvio-version || $(<"$dir/$pkg/.kvio-version") != "$ver" ]]; then
		mkdir -p "$dir/apt/parts" "$dir/apt/lists/partial"
		: >"$dir/apt/sources.list"
		for f in /etc/apt/sources.list.d/*.sources; do
			[[ -f $f ]] && sed 's/^Types: deb$/Types: deb-src/' "$f" >"$dir/apt/parts/${f##*/}"
		done
		[[ -f /etc/apt/sources.list ]] && sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"$dir/apt/sources.list"
		apt_opts=(-q -o "Dir::Etc::SourceList=$dir/apt/sources.list" -o "Dir::Etc::SourceParts=$dir/apt/parts"
			-o "Dir::State::Lists=$dir/apt/lists" -o APT::Sandbox::User=root)
		log "downloading the source of $pkg $ver"
		apt-get "${apt_opts[@]}" update >&2 || die "apt-get update (deb-src) failed"
		rm -rf "${dir:?}/$pkg" "$dir/dl"
		mkdir -p "$dir/dl"
		(cd "$dir/dl" && apt-get "${apt_opts[@]}" source --download-only "$pkg=$ver" >&2) ||
			die "cannot download the source of $pkg"
		dpkg-source -x "$dir/dl/"*.dsc "$dir/$pkg" >&2 || die "cannot unpack the source of $pkg"
		rm -rf "$dir/dl"
		echo "$ver" >"$dir/$pkg/.kvio-version"
	fi
	echo "$dir/$pkg"
}

# fio, static and stripped, with only the engines a block benchmark needs
# (io_uring, psync and friends are built in; the network-storage ones are off).
build_fio() {
	local src
	src=$(fetch_source fio)
	if [[ ! -x $src/fio || $src/fio -ot $src/.kvio-version ]]; then
		log "building fio"
		(cd "$src" && ./configure --build-static --disable-native --disable-numa --disable-rdma \
			--disable-rados --disable-rbd --disable-http --disable-gfapi --disable-libnfs --disable-pmem \
			--disable-xnvme --disable-libzbc --disable-tcmalloc --disable-dfs --disable-lex &&
			make -j"$(nproc)" fio) >"$out/src/fio-build.log" 2>&1 || die "fio build failed (see $out/src/fio-build.log)"
	fi
	install -D -m 0755 "$src/fio" "$extra/usr/bin/fio"
	strip "$extra/usr/bin/fio"
}
command -v dpkg-source >/dev/null || die "dpkg-source not found (apt-get install dpkg-dev)"
build_fio

if ((${#GUEST_PACKAGES[@]})); then
	mkdir -p "$out/pkgs"
	for p in "${GUEST_PACKAGES[@]}"; do
		deb=$(fetch "$p")
		[[ -f $out/pkgs/$p/.kvio-deb && $(<"$out/pkgs/$p/.kvio-deb") == "${deb##*/}" ]] && continue
		rm -rf "$out/pkgs/$p"
		dpkg -x "$deb" "$out/pkgs/$p"
		echo "${deb##*/}" >"$out/pkgs/$p/.kvio-deb"
	done
	for b in "${GUEST_BINARIES[@]}"; do add_binary "$b"; done
fi
# busybox udhcpc hands leases to this script (kvio.ip=dhcp).
install -D -m 0755 "$here/udhcpc.script" "$extra/etc/udhcpc/default.script"

log "packing initramfs for $kver"
"$here/mkinitramfs.sh" --out "$out/initramfs.cpio.gz" --kernel-tree "$out/kernel" \
	--kver "$kver" --busybox "$out/busybox" --init "$here/init" \
	--modules "$here/modules.list" --extra "$extra"
cp "$out/kernel/boot/vmlinuz-$kver" "$out/vmlinuz.tmp"
mv -f "$out/vmlinuz.tmp" "$out/vmlinuz"
# Rewritten only on a kernel change: tests/testbed keys its own caches on its mtime.
if [[ ! -f $out/kernel-version || $(<"$out/kernel-version") != "$kver" ]]; then
	echo "$kver" >"$out/kernel-version.tmp"
	mv -f "$out/kernel-version.tmp" "$out/kernel-version"
fi
log "built $out/vmlinuz and $out/initramfs.cpio.gz"
