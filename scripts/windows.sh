#!/usr/bin/env bash
# ringport for Windows (x86_64-pc-windows-gnu), built on Debian 12 and run under Wine 8.0.
#
#   scripts/windows.sh setup          install the packages, build the bcryptprimitives.dll
#                                     stand-in, prepare the Wine prefix
#   scripts/windows.sh build [ARGS]   cargo build for the Windows target (ARGS go to cargo)
#   scripts/windows.sh test [ARGS]    cargo test for the Windows target, run under Wine; without
#                                     ARGS the whole workspace (--workspace)
#   scripts/windows.sh cargo ARGS     any cargo command with the Windows environment
#   scripts/windows.sh clean          stop wineserver, remove the prefix and the Windows target dir
#
# build, test and cargo run setup first (quick when already done) and stop wineserver at the end.
#
# The Windows build uses Debian's Rust 1.96 (rustc-web, cargo-web: /usr/bin/cargo, /usr/bin/rustc)
# with its std source (rust-web-src) and -Zbuild-std, because rustup cannot download targets here.
# Only the commands of this script see Debian's cargo first on PATH: the rustup toolchain of the
# Linux build is left alone. The recipe and its pitfalls: shared/windows/NOTES.md.
#
# Environment:
#   RINGPORT_WINDOWS_TARGET_DIR  cargo target dir of the Windows build (default target/windows);
#                                kept apart from the Linux one, whose build scripts are built by
#                                another rustc
#   RINGPORT_WINE_DIR            the Wine prefix and the DLL stand-in (default target/wine)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
target=x86_64-pc-windows-gnu
target_dir="${RINGPORT_WINDOWS_TARGET_DIR:-$repo/target/windows}"
wine_dir="${RINGPORT_WINE_DIR:-$repo/target/wine}"
prefix="$wine_dir/prefix"
packages=(rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 wine wine64)

log() { printf '== windows: %s\n' "$*" >&2; }

# The environment of every Wine and Windows-cargo command; exported only in this script's process.
wine_env() {
  export WINEPREFIX="$prefix" WINEARCH=win64 WINEDEBUG="${WINEDEBUG:--all}"
}

setup_packages() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return
  log "installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "windows.sh: the packages ${missing[*]} are missing; run 'scripts/windows.sh setup' as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

setup_dll() {
  # Wine 8.0 lacks bcryptprimitives.dll, which Rust std >= 1.78 imports (ProcessPrng): without it
  # every Rust .exe exits at once with code 53. The stand-in is built from our own source.
  local src="$repo/scripts/windows/bcryptprimitives.c" dll="$wine_dir/bcryptprimitives.dll"
  mkdir -p "$wine_dir"
  if [[ ! -f $dll || $src -nt $dll ]]; then
    log "building the bcryptprimitives.dll stand-in"
    x86_64-w64-mingw32-gcc -O2 -shared -o "$dll.tmp" "$src" -lbcrypt
    mv "$dll.tmp" "$dll"
  fi
}

setup_prefix() {
  wine_env
  local sys32="$prefix/drive_c/windows/system32"
  if [[ ! -f $prefix/.ringport-ready ]]; then
    log "preparing the Wine prefix $prefix"
    rm -rf "$prefix"
    mkdir -p "$prefix"
    # The first init prints a harmless syswow64\rundll32.exe error (no wine32 is installed).
    wine wineboot --init >/dev/null 2>&1 || true
    wineserver -w
    [[ -d $sys32 ]] || { echo "windows.sh: wineboot did not create $sys32" >&2; exit 1; }
    touch "$prefix/.ringport-ready"
  fi
  if ! cmp -s "$wine_dir/bcryptprimitives.dll" "$sys32/bcryptprimitives.dll"; then
    cp "$wine_dir/bcryptprimitives.dll" "$sys32/bcryptprimitives.dll"
  fi
}

setup() {
  setup_packages
  setup_dll
  setup_prefix
}

# Debian's cargo for the Windows target. PATH puts /usr/bin first so that cargo's subcommands
# (clippy) are Debian's and not rustup's proxies; RUSTC_BOOTSTRAP lets the stable toolchain take
# -Zbuild-std; `test` is in -Zbuild-std so that a test after a build rebuilds nothing.
wcargo() {
  wine_env
  local cmd="$1"
  shift
  local zflags=()
  case "$cmd" in
    build | test | run | check | clippy | doc | rustc) zflags=(--target "$target" -Zbuild-std=std,panic_abort,test) ;;
  esac
  env RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc PATH="/usr/bin:$PATH" \
    CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
    CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$repo/scripts/wine-run.sh" \
    CARGO_TARGET_DIR="$target_dir" \
    /usr/bin/cargo "$cmd" "${zflags[@]}" "$@"
}

stop_wine() {
  wine_env
  if command -v wineserver >/dev/null 2>&1 && [[ -d $prefix ]]; then
    wineserver -k 2>/dev/null || true
  fi
}

cd "$repo"
cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  setup)
    setup
    stop_wine
    ;;
  build)
    setup
    trap stop_wine EXIT
    wcargo build "$@"
    ;;
  test)
    setup
    trap stop_wine EXIT
    # One wineserver for the whole run: by default it exits a few seconds after the last
    # program, and a program started while it is going away cannot start (see wine-run.sh).
    wine_env
    wineserver -p
    # The whole workspace by default: the port's, the server's, the stress client's and the
    # CLI's tests run on IOCP; those that are Linux's by nature (network namespaces, seccomp,
    # SO_REUSEPORT, /proc, ulimit, signals, bench) are compiled out with a cfg saying why.
    [[ $# -eq 0 ]] && set -- --workspace
    wcargo test "$@"
    ;;
  cargo)
    setup
    trap stop_wine EXIT
    wcargo "$@"
    ;;
  clean)
    stop_wine
    rm -rf "$wine_dir" "$target_dir"
    ;;
  *)
    echo "usage: scripts/windows.sh setup|build|test|cargo|clean [cargo args]" >&2
    exit 2
    ;;
esac
