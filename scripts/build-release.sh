#!/usr/bin/env bash
# Builds cargo-rrtest's release archive for one target: the recipe of
# .github/workflows/release.yml, which runs it for x86_64-unknown-linux-musl
# (a static binary). Locally, without the musl target, it builds the same way
# for the host (x86_64-unknown-linux-gnu).
#
#   scripts/build-release.sh [TARGET] [OUT_DIR]
#
# TARGET defaults to the host's; OUT_DIR to target/dist. The binary is the
# release profile's, stripped; the preload library is embedded in it
# (cargo-rrtest/build.rs), so the archive needs nothing else. Writes
#   OUT_DIR/cargo-rrtest-VERSION-TARGET.tar.gz
#     holding cargo-rrtest-VERSION-TARGET/{cargo-rrtest,README.md}
#   OUT_DIR/cargo-rrtest-VERSION-TARGET.tar.gz.sha256  (`sha256sum -c` reads it)
# and prints the archive's path as its last line. These names are the ones
# [package.metadata.binstall] in cargo-rrtest/Cargo.toml and action.yml use.
# The host target builds into target/release (shared with any other release
# build); another target into target/TARGET/release.
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
target="${1:-$host}"
out="${2:-$PWD/target/dist}"

fail() {
	echo "build-release: $*" >&2
	exit 1
}

# The version cargo-rrtest is built with (`cargo pkgid` ends in `@VERSION` or `#VERSION`).
version=$(cargo pkgid -p cargo-rrtest | sed -E 's/.*[#@]//')
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || fail "cannot read cargo-rrtest's version (got '$version')"

args=(build --release --locked -p cargo-rrtest --bin cargo-rrtest)
bin_dir="target/release"
if [[ $target != "$host" ]]; then
	args+=(--target "$target")
	bin_dir="target/$target/release"
fi
if [[ $target == *-linux-musl ]]; then
	# Static, whatever the toolchain's default for the target.
	export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
fi
# Stripped: the symbols are half the binary and nobody debugs a release here.
export CARGO_PROFILE_RELEASE_STRIP=symbols
echo "build-release: cargo ${args[*]} (version $version)" >&2
cargo "${args[@]}" >&2

bin="${CARGO_TARGET_DIR:-$PWD/target}/${bin_dir#target/}/cargo-rrtest"
[[ -x $bin ]] || fail "$bin was not built"
if [[ $target == *-linux-musl ]] && file "$bin" | grep -q 'dynamically linked'; then
	fail "$bin is dynamically linked; a musl release must be static"
fi

name="cargo-rrtest-$version-$target"
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/$name"
install -m 0755 "$bin" "$stage/$name/cargo-rrtest"
install -m 0644 README.md "$stage/$name/README.md"
# The same bytes for the same binary: fixed owner, order and times, and no
# name or time in the gzip header.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime='@0' \
	-C "$stage" -cf - "$name" | gzip -n -9 >"$out/$name.tar.gz"
(cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
echo "build-release: $(cat "$out/$name.tar.gz.sha256")" >&2
echo "$out/$name.tar.gz"
