#!/usr/bin/env bash
# Installs everything Plume's build and tests need on a fresh Debian machine:
# Debian packages (only those missing), the Rust components and cargo-nextest.
# Safe to run again; non-interactive (works with CI=true and no stdin).
set -euo pipefail

# libdpdk-dev: the DPDK transport (feature `dpdk`, on by default in the `plume` binary).
# poppler-utils: pdftotext, which the audit-report test reads the PDF with.
# chromium: the headless browser the observer dashboard test loads pages with.
# postgresql: the server binaries (initdb, pg_ctl) the index's PostgreSQL
#   tests start a private, throwaway server with (none is left running).
need_pkgs=(build-essential pkg-config iproute2 iptables procps libdpdk-dev poppler-utils chromium postgresql)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq </dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust with rustup first" >&2; exit 1; }
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest from crates.io"
  cargo install --locked cargo-nextest </dev/null
fi
