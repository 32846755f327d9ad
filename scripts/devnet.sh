#!/usr/bin/env bash
# The main job: build Plume in release mode and set up a local 4-validator
# network's homes and genesis, then measure this machine's crypto ceiling.
#
# What it does NOT do yet: start the validators. The runtime that runs them
# (`plume start` / `plume devnet`) is not built yet (issue 7); this script
# says so at the end instead of pretending.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
N=${PLUME_VALIDATORS:-4}
DIR=${PLUME_DEVNET_DIR:-./devnet}
echo "== building plume (release, fat LTO: a few minutes on 2 cores)"
cargo build --release -p plume-node
PLUME=./target/release/plume
rm -rf "$DIR"
mkdir -p "$DIR"
args=()
for i in $(seq 0 $((N - 1))); do
  "$PLUME" init --home "$DIR/v$i" --moniker "v$i" \
    --listen-addr "127.0.0.1:$((26600 + i))" --api-addr "127.0.0.1:$((26700 + i))" >/dev/null
  args+=(--validator "$DIR/v$i/validator.json")
done
# Give the first validator's account an initial balance.
acct=$("$PLUME" keys show --home "$DIR/v0" | awk '/account address/ {print $3}')
"$PLUME" genesis new --chain-id plume-devnet "${args[@]}" --alloc "$acct=1000000000000" --out "$DIR/genesis.json"
"$PLUME" genesis validate "$DIR/genesis.json"
echo "== crypto benchmark (one pinned core)"
"$PLUME" bench crypto --json "$DIR/bench-crypto.json"
echo
echo "Homes and genesis for $N validators are in $DIR."
echo "Starting the validators is not built yet (issue 7: plume start / plume devnet)."
