#!/usr/bin/env bash
# Sets up QEMU 10 (Debian 13 "trixie") in a debootstrap chroot, for local interop runs, without
# touching the host's packages. Prints the JMIGRATE_QEMU10 value to export afterwards.
#
#   scripts/qemu10-chroot.sh [DIR]        (default DIR=/var/tmp/jmigrate-trixie; needs root)
#   export JMIGRATE_QEMU10=DIR            then: mvn -B verify -Pinterop
#
# The interop tests run QEMU 10 as `chroot DIR qemu-system-x86_64 ...` with /proc, /sys, /dev and
# /dev/shm bind-mounted (this script mounts them; `scripts/qemu10-chroot.sh --umount` undoes it),
# and they keep guest RAM files in /dev/shm so both sides see them.
set -euo pipefail

if [[ "${1:-}" == "--umount" ]]; then
  root="${2:-/var/tmp/jmigrate-trixie}"
  for m in /dev/shm /dev /sys /proc; do mountpoint -q "$root$m" && umount "$root$m" || true; done
  exit 0
fi

root="${1:-/var/tmp/jmigrate-trixie}"
mirror="http://deb.debian.org/debian"
apt_opts=(-o Acquire::Check-Valid-Until=false)

if [[ $EUID -ne 0 ]]; then
  echo "qemu10-chroot.sh: needs root (debootstrap, chroot, mount)" >&2
  exit 1
fi
command -v debootstrap >/dev/null || { apt-get update -qq; apt-get install -y -qq debootstrap; }

if [[ ! -f "$root/etc/debian_version" ]]; then
  mkdir -p "$root"
  script=/usr/share/debootstrap/scripts/trixie
  [[ -e "$script" ]] || script=/usr/share/debootstrap/scripts/sid
  debootstrap --variant=minbase trixie "$root" "$mirror" "$script"
fi

mp() { mountpoint -q "$root$1"; }
mp /proc || mount -t proc proc "$root/proc"
mp /sys || mount --bind /sys "$root/sys"
mp /dev || mount --bind /dev "$root/dev"
mkdir -p "$root/dev/shm"
mp /dev/shm || mount --bind /dev/shm "$root/dev/shm"

if [[ ! -x "$root/usr/bin/qemu-system-x86_64" ]]; then
  chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update
  chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y \
    --no-install-recommends qemu-system-x86
fi
chroot "$root" qemu-system-x86_64 --version | head -1
echo "export JMIGRATE_QEMU10=$root"
