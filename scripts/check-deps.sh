#!/usr/bin/env bash
# Architecture checks on the dependency graph (run by CI):
# - the client SDK, the protocol crate, the compliance engine and the
#   fund-flow index pull in
#   no LMDB (heed), no glommio, no tokio and no netstack: a light client,
#   relayer or regulator tool builds without the node;
# - nothing depends on the benchmarks, and the validator binary's crate
#   does not depend on the simulator;
# - no import circle between the files of the node, protocol, client,
#   mempool, execution and consensus crates (scripts/check_imports.py).
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
for crate in plume-client plume-protocol plume-compliance plume-index; do
  tree=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}')
  for banned in heed lmdb-master-sys glommio tokio plume-netstack plume-storage; do
    if grep -q "^$banned " <<<"$tree"; then
      echo "check-deps: $crate depends on $banned" >&2
      fail=1
    fi
  done
done
for crate in plume-node plume-sim plume-client plume-execution; do
  tree=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}')
  if grep -q '^plume-benches ' <<<"$tree"; then
    echo "check-deps: $crate depends on plume-benches" >&2
    fail=1
  fi
done
if cargo tree -p plume-node -e normal --prefix none --format '{p}' | grep -q '^plume-sim '; then
  echo "check-deps: plume-node depends on plume-sim" >&2
  fail=1
fi
# No import circles between the files of the crates the architecture names.
python3 scripts/check_imports.py node protocol client mempool execution consensus compliance index || fail=1
if [ "$fail" -ne 0 ]; then exit 1; fi
echo "check-deps: ok (plume-client, plume-protocol, plume-compliance and plume-index: no heed, glommio, tokio or netstack)"
