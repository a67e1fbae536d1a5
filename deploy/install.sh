#!/usr/bin/env bash
# Installs everything the platform needs on a Debian 12 machine, idempotently.
#
#   1. Debian packages (Mosquitto, PostgreSQL 15 + server headers, build tools, ARM toolchain, QEMU,
#      headless Chromium + chromedriver and a CJK font for the dashboard's browser tests)
#   2. a deb-src line for Debian's next release, reusing the mirror already configured here
#   3. TimescaleDB (Apache-2 edition) built from Debian's own source package
#   4. the MicroPython unix port (firmware tests, `agri node emulate`) and qemu port (flash tests;
#      patched in deploy/micropython/: a RAM filesystem, time, and a ROMFS partition)
#   5. a Python venv in .venv with the project installed (editable) and its dev tools
#
# Every step is skipped when its result is already present, so a second run takes seconds.
# On failure the script prints one line naming the step and the reason, and exits non-zero.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AGRI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agri}
VENV=${AGRI_VENV:-$ROOT/.venv}
PYTHON=${AGRI_PYTHON:-python3}
PG_MAJOR=15
TSDB_VERSION=2.19.3
MP_VERSION=1.25.0
NEWER_SUITE=trixie
LOGDIR="$CACHE/logs"
mkdir -p "$CACHE" "$LOGDIR"

APT_PACKAGES=(
  mosquitto mosquitto-clients
  postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-client-$PG_MAJOR
  build-essential cmake pkg-config libffi-dev dpkg-dev git
  gcc-multilib libffi-dev:i386
  gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
  chromium chromium-driver fonts-wqy-microhei
)

say() { printf '[install] %s\n' "$*"; }

# run_step NAME LOGFILE CMD...: runs CMD with its output in LOGFILE; on failure prints one line.
run_step() {
  local name=$1 log=$2; shift 2
  local t0=$SECONDS
  local rc
  # A subshell outside any `if`, so `set -e` applies inside the step's functions.
  set +e
  (set -e; "$@") >"$log" 2>&1
  rc=$?
  set -e
  if [ "$rc" != 0 ]; then
    local why
    why=$(grep -m1 -iE '(^E:|error|fatal|no such|not found|denied)' "$log" | cut -c1-200 || true)
    [ -n "$why" ] || why=$(tail -n1 "$log" | cut -c1-200)
    printf '[install] FAILED step "%s" (exit %s): %s (log: %s)\n' "$name" "$rc" "$why" "$log" >&2
    exit 1
  fi
  say "$name: done in $((SECONDS - t0))s"
}

need_root() {
  if [ "$(id -u)" != 0 ]; then
    printf '[install] FAILED step "%s": needs root for apt (run as root or with sudo)\n' "$1" >&2
    exit 1
  fi
}

# --- 1+2. apt --------------------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

src_list=/etc/apt/sources.list.d/agri-$NEWER_SUITE-src.sources
write_src_list() {
  # Reuse the URI of the configured Debian main archive; never hard-code a mirror host.
  local uri
  uri=$("$PYTHON" "$ROOT/deploy/apt_mirror.py") || return 1
  cat >"$src_list" <<SRC
# Added by agri-platform deploy/install.sh: source packages only (no binaries from $NEWER_SUITE).
Types: deb-src
URIs: $uri
Suites: $NEWER_SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
}

tsdb_installed() {
  [ -f "/usr/lib/postgresql/$PG_MAJOR/lib/timescaledb-$TSDB_VERSION.so" ] &&
    [ -f "/usr/share/postgresql/$PG_MAJOR/extension/timescaledb--$TSDB_VERSION.sql" ]
}
MP_DIR="$CACHE/micropython-$MP_VERSION"
MP_UNIX="$MP_DIR/ports/unix/build-standard/micropython"
# A 32-bit (-m32) unix port: pointers and object headers the size of a board's (ESP32, RP2040), so
# the firmware memory tests measure what a 32-bit board holds (firmware/unix/board.py maps ROMFS
# images with ffi: libffi-dev:i386, from Debian's i386 multiarch).
MP_UNIX32="$MP_DIR/ports/unix/build-32/micropython-32"
MP_QEMU="$MP_DIR/ports/qemu/build-MPS2_AN385/firmware.elf"
MP_STAMP="$CACHE/micropython-$MP_VERSION.patches"
mp_patch_hash() {
  { cat "$ROOT"/deploy/micropython/*.patch 2>/dev/null || true; } | sha256sum | cut -c1-16
}
mp_ready() { [ -x "$MP_UNIX" ] && [ -x "$MP_UNIX32" ] && [ -f "$MP_QEMU" ] && [ "$(cat "$MP_STAMP" 2>/dev/null)" = "$(mp_patch_hash)" ]; }

need_sources=0
tsdb_installed || need_sources=1
mp_ready || need_sources=1

if [ ${#missing[@]} -gt 0 ] || { [ $need_sources = 1 ] && [ ! -f "$src_list" ]; }; then
  need_root "apt"
  [ -f "$src_list" ] || run_step "apt deb-src line for $NEWER_SUITE" "$LOGDIR/apt-src.log" write_src_list
  # libffi-dev:i386 (the 32-bit unix port) needs i386 as a dpkg foreign architecture.
  dpkg --print-foreign-architectures | grep -qx i386 || dpkg --add-architecture i386
  run_step "apt-get update" "$LOGDIR/apt-update.log" apt-get update -q
  if [ ${#missing[@]} -gt 0 ]; then
    run_step "apt-get install (${#missing[@]} packages)" "$LOGDIR/apt-install.log" \
      env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
else
  say "apt packages: present"
fi

fetch_source() {  # fetch_source PKG DEST_DIR
  local pkg=$1 dest=$2 work="$CACHE/src-$1"
  rm -rf "$work" "$dest" && mkdir -p "$work"
  (cd "$work" && apt-get source -q --download-only "$pkg") || {
    # The deb-src index may be stale or missing (e.g. after the list was added by hand).
    apt-get update -q && (cd "$work" && apt-get source -q --download-only "$pkg")
  }
  (cd "$work" && dpkg-source --no-check -x ./*.dsc "$dest")
}

# --- 3. TimescaleDB ---------------------------------------------------------------------------
build_tsdb() {
  local src="$CACHE/timescaledb-$TSDB_VERSION"
  fetch_source timescaledb "$src"
  cd "$src"
  ./bootstrap -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
    -DPG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
  make -j"$(nproc)" -C build install
}
if tsdb_installed; then
  say "TimescaleDB $TSDB_VERSION: present"
else
  need_root "TimescaleDB build"
  run_step "TimescaleDB $TSDB_VERSION build" "$LOGDIR/timescaledb.log" build_tsdb
fi

# --- 4. MicroPython ---------------------------------------------------------------------------
# Our port patches (deploy/micropython/*.patch, applied with -p1 in the source tree). A copy of
# each applied patch is kept in $MP_DIR/.agri-patches, so a patch that changed or was removed is
# reverted with the exact text that was applied before the current set is applied.
# Sets MP_DIRTY_PORTS to the ports whose sources changed.
MP_DIRTY_PORTS=""
patch_ports() { grep -o '^+++ b/ports/[A-Za-z0-9_-]*' "$1" | cut -d/ -f3 | sort -u | tr '\n' ' '; }
apply_mp_patches() {
  local saved="$MP_DIR/.agri-patches" p name
  mkdir -p "$saved"
  for p in "$saved"/*.patch; do
    [ -e "$p" ] || continue
    name=$(basename "$p")
    if ! cmp -s "$p" "$ROOT/deploy/micropython/$name"; then
      patch -p1 -R -s <"$p"
      MP_DIRTY_PORTS="$MP_DIRTY_PORTS $(patch_ports "$p")"
      rm -f "$p"
    fi
  done
  for p in "$ROOT"/deploy/micropython/*.patch; do
    [ -e "$p" ] || continue
    name=$(basename "$p")
    [ -e "$saved/$name" ] && continue
    # Applied by an older install.sh (no saved copy): keep it, just record it.
    if ! patch -p1 -R --dry-run -s <"$p" >/dev/null 2>&1; then
      patch -p1 -N -s <"$p"
      MP_DIRTY_PORTS="$MP_DIRTY_PORTS $(patch_ports "$p")"
    fi
    cp "$p" "$saved/$name"
  done
}

build_mp() {
  [ -d "$MP_DIR/ports/unix" ] || fetch_source micropython "$MP_DIR"
  cd "$MP_DIR"
  # The Debian tarball strips the micropython-lib submodule; the build only checks it exists.
  mkdir -p lib/micropython-lib && touch lib/micropython-lib/README.md
  apply_mp_patches
  # Make does not track CFLAGS set in board .mk files: rebuild a port whose patches changed.
  for port in $MP_DIRTY_PORTS; do rm -rf "ports/$port"/build-*; done
  echo 'include("$(MPY_DIR)/extmod/asyncio")' >"$CACHE/mp-unix-manifest.py"
  make -j"$(nproc)" -C mpy-cross
  local unix_opts=(MICROPY_PY_BTREE=0 MICROPY_PY_SSL=0 MICROPY_SSL_AXTLS=0 MICROPY_SSL_MBEDTLS=0
    FROZEN_MANIFEST="$CACHE/mp-unix-manifest.py")
  make -j"$(nproc)" -C ports/unix "${unix_opts[@]}"
  make -j"$(nproc)" -C ports/unix "${unix_opts[@]}" MICROPY_FORCE_32BIT=1 BUILD=build-32 \
    PROG=micropython-32
  make -j"$(nproc)" -C ports/qemu BOARD=MPS2_AN385 FROZEN_MANIFEST=
  mp_patch_hash >"$MP_STAMP"
}
if mp_ready; then
  say "MicroPython $MP_VERSION unix + qemu ports: present"
else
  run_step "MicroPython $MP_VERSION unix + qemu ports build" "$LOGDIR/micropython.log" build_mp
fi
ln -sfn "$MP_UNIX" "$CACHE/micropython"
ln -sfn "$MP_UNIX32" "$CACHE/micropython-32"
ln -sfn "$MP_QEMU" "$CACHE/micropython-qemu.elf"

# --- 5. Python venv ---------------------------------------------------------------------------
venv_stamp="$VENV/.agri-installed"
want=$( (cat "$ROOT/pyproject.toml"; "$PYTHON" --version) | sha256sum | cut -c1-16)
install_venv() {
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]"
  echo "$want" >"$venv_stamp"
}
if [ "$(cat "$venv_stamp" 2>/dev/null)" = "$want" ] && [ -x "$VENV/bin/agri" ]; then
  say "Python venv $VENV: up to date"
else
  run_step "Python venv ($VENV) and pip install" "$LOGDIR/pip.log" install_venv
fi
say "ready: $VENV/bin/agri (MicroPython: $CACHE/micropython, 32-bit: $CACHE/micropython-32)"
