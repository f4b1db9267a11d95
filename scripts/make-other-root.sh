#!/usr/bin/env bash
# Builds, once, a minimal Debian 13 (trixie) root file system: another userland
# (glibc 2.41, its own dynamic loader) to replay traces in, and record traces in,
# with chroot. The portability trials (tests/integration/portable.rs) use it.
#
#   scripts/make-other-root.sh [DIR]
#
# DIR defaults to $RRTEST_OTHER_ROOT, else target/other-root/trixie in the
# repository. A finished root holds the marker file .rrtest-root-complete and
# is left alone (the script is idempotent); an unfinished one is rebuilt.
# The mirror is the one apt uses on this host (/etc/apt/sources.list*), else
# deb.debian.org; $RRTEST_DEBIAN_MIRROR overrides it.
# Needs root and debootstrap (apt-get install -y debootstrap). Exit status 0
# when the root is ready, 1 with a one-line reason on stderr otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

suite=trixie
dir="${1:-${RRTEST_OTHER_ROOT:-$PWD/target/other-root/$suite}}"
marker="$dir/.rrtest-root-complete"

fail() {
	echo "make-other-root: $*" >&2
	exit 1
}

if [[ -f "$marker" ]]; then
	echo "make-other-root: $dir is ready (built $(cat "$marker"))"
	exit 0
fi

[[ $(id -u) == 0 ]] || fail "must run as root (debootstrap and chroot need it)"
command -v debootstrap >/dev/null 2>&1 ||
	fail "debootstrap is not installed: run 'apt-get install -y debootstrap'"
[[ -e /usr/share/debootstrap/scripts/$suite ]] ||
	fail "this debootstrap does not know '$suite': install a newer debootstrap"

mirror="${RRTEST_DEBIAN_MIRROR:-}"
if [[ -z $mirror ]]; then
	# The first Debian mirror apt is set up with: deb822 'URIs:' or one-line 'deb URL suite'.
	mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -v '^\s*#' |
		sed -n -E 's/^URIs:\s*(\S+\/debian)\/?\s*$/\1/p; s/^deb\s+(\[[^]]*\]\s+)?(\S+\/debian)\/?\s+.*/\2/p' |
		head -n 1 || true)
fi
mirror="${mirror:-http://deb.debian.org/debian}"

partial="$dir.partial"
rm -rf "$partial"
mkdir -p "$(dirname "$dir")"
echo "make-other-root: debootstrap --variant=minbase $suite $dir from $mirror"
start=$(date +%s)
if ! debootstrap --variant=minbase "$suite" "$partial" "$mirror" >"$partial.log" 2>&1; then
	tail -n 5 "$partial.log" >&2 || true
	fail "debootstrap of $suite from $mirror failed (log: $partial.log); is the mirror reachable?"
fi
[[ -x $partial/usr/bin/true && -e $partial/lib64/ld-linux-x86-64.so.2 ]] ||
	fail "debootstrap finished but $partial lacks /usr/bin/true or the loader"
rm -rf "$dir"
mv "$partial" "$dir"
rm -f "$partial.log"
took=$(($(date +%s) - start))
glibc=$(chroot "$dir" getconf GNU_LIBC_VERSION 2>/dev/null || echo "glibc unknown")
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) in ${took}s from $mirror" >"$marker"
echo "make-other-root: $dir ready in ${took}s ($(du -sh "$dir" | cut -f1), $glibc)"
