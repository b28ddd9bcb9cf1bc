#!/usr/bin/env bash
# Packs a busybox initramfs (busybox + /init + kernel modules in load order); shared
# by guest/build.sh and tests/testbed/run so both guests load modules the same way.
#
# Usage: mkinitramfs.sh --out FILE.cpio.gz --kernel-tree DIR --kver VERSION \
#          --busybox DIR --init FILE --modules LIST [--extra DIR]
#   --kernel-tree: an unpacked linux-image package, depmod already run on it
#   --busybox:     an unpacked busybox-static package
#   --modules:     module names, one a line, '#' comments
#   --extra:       a directory whose contents are copied over the image
# The image gets /etc/modules.load: absolute .ko paths in insmod order.
set -euo pipefail

die() { echo "mkinitramfs: $*" >&2; exit 1; }

out='' tree='' kver='' bbtree='' init='' modlist='' extra=''
while (($#)); do
	case $1 in
	--out) out=${2-} ;;
	--kernel-tree) tree=${2-} ;;
	--kver) kver=${2-} ;;
	--busybox) bbtree=${2-} ;;
	--init) init=${2-} ;;
	--modules) modlist=${2-} ;;
	--extra) extra=${2-} ;;
	*) die "unknown argument: $1" ;;
	esac
	shift 2 || die "missing value for $1"
done
[[ $out && $tree && $kver && $bbtree && $init && $modlist ]] || die "missing arguments (see header)"
tree=$(cd "$tree" && pwd -P)
moddir=$tree/lib/modules/$kver
[[ -f $moddir/modules.dep ]] || die "$moddir/modules.dep missing (run depmod -b)"
bb=$bbtree/bin/busybox
[[ -x $bb ]] || die "$bb missing"

# Stage next to the output so the final mv is atomic for concurrent readers.
stage=$(mktemp -d "$out.stage.XXXXXX")
trap 'rm -rf "$stage" "$stage.cpio.gz"' EXIT

mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,root,mnt}
cp "$bb" "$stage/bin/busybox"
# Symlinks made now rather than by `busybox --install` at boot, to save guest time.
while read -r applet; do
	[[ -e $stage/$applet || -L $stage/$applet ]] || ln -s /bin/busybox "$stage/$applet"
done < <("$bb" --list-full)
install -m 0755 "$init" "$stage/init"
# The kernel's built-in initramfs already has /dev/console; this is belt and braces.
mknod -m 0600 "$stage/dev/console" c 5 1 2>/dev/null || true

# -C /dev/null: the host's modprobe.d (blacklists, options) must not shape the guest.
declare -A seen=()
load=()
while read -r name _; do
	[[ -z $name || $name == \#* ]] && continue
	deps=$(modprobe -C /dev/null --show-depends -d "$tree" -S "$kver" "$name") ||
		die "module $name not found for kernel $kver"
	while read -r verb path _; do
		[[ $verb == insmod ]] || continue # "builtin NAME": nothing to load
		rel=${path#"$tree"/}
		[[ ${seen[$rel]+x} ]] && continue
		seen[$rel]=1
		mkdir -p "$stage/$(dirname "$rel")"
		# busybox insmod cannot read compressed modules.
		case $rel in
		*.ko) cp "$path" "$stage/$rel" ;;
		*.ko.xz) xz -dc "$path" >"$stage/${rel%.xz}"; rel=${rel%.xz} ;;
		*.ko.zst) zstd -qdc "$path" >"$stage/${rel%.zst}"; rel=${rel%.zst} ;;
		*.ko.gz) gzip -dc "$path" >"$stage/${rel%.gz}"; rel=${rel%.gz} ;;
		*) die "unexpected module file $path" ;;
		esac
		load+=("/$rel")
	done <<<"$deps"
done <"$modlist"
printf '%s\n' "${load[@]}" >"$stage/etc/modules.load"

# --remove-destination: an extra binary (mke2fs) replaces the busybox applet
# link of the same name, which dangles on a host without /bin/busybox.
[[ -z $extra ]] || cp -a --remove-destination "$extra/." "$stage/"

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -6n >"$stage.cpio.gz"
mv -f "$stage.cpio.gz" "$out"
