#!/usr/bin/env bash
# The main job: build Plume in release mode and run a local network of four
# validators (`plume devnet`): it creates their homes and genesis, starts
# them as separate processes, drives signed transfers and delivery-versus-
# payment settlements through the JSON-RPC API, prints progress every second
# and ends with a summary (blocks and transactions final, tx/s, finality
# p50/p99, and whether every validator has the same state root).
#
# Environment: PLUME_VALIDATORS (4), PLUME_DURATION seconds (20),
# PLUME_RATE tx/s (1000), PLUME_DEVNET_DIR (./devnet). Ctrl-C stops cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
echo "== building plume, plume-bench, plume-sim (release, fat LTO: several minutes on 2 cores)"
cargo build --release -p plume-node -p plume-benches -p plume-sim
exec ./target/release/plume devnet \
  --validators "${PLUME_VALIDATORS:-4}" \
  --duration "${PLUME_DURATION:-20}" \
  --rate "${PLUME_RATE:-1000}" \
  --dir "${PLUME_DEVNET_DIR:-./devnet}"
