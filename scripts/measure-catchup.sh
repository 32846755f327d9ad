#!/bin/bash
# Manual measurement (README, "Restarts, state roots and catch-up"). Needs curl
# and python3; traffic stays on 127.0.0.1.
# usage: scripts/measure-catchup.sh BIN DIR PORT GAP -> catch-up time of a validator GAP blocks behind
# The gap is made with back-to-back blocks (idle_block_interval_ms = 0); the
# others are then restarted with the default 1 s heartbeat, so the rate is
# that of catch-up, not of a chase.
BIN=$1; DIR=$2; PORT=$3; GAP=$4
export RUST_LOG=${RUST_LOG:-info,plume_node::roles::exec=debug}
st() { curl -s -m 2 -X POST -d '{"jsonrpc":"2.0","id":1,"method":"plume_status","params":[]}' http://127.0.0.1:$((PORT+100+$1))/ | python3 -c "import sys,json; print(json.load(sys.stdin)['result']['height'])" 2>/dev/null || echo 0; }
idle() { for f in $DIR/genesis.json $DIR/v*/genesis.json; do python3 - "$f" $1 <<'PY'
import json,sys
p=sys.argv[1]; g=json.load(open(p)); g['params']['idle_block_interval_ms']=int(sys.argv[2]); json.dump(g,open(p,'w'),indent=2)
PY
done; }
rm -rf $DIR
timeout 60 $BIN devnet --duration 1 --rate 10 --dir $DIR --base-port $PORT > $DIR.devnet.log 2>&1
idle 0
for i in 0 1 2 3; do ($BIN start --home $DIR/v$i > $DIR/run$i.log 2>&1 &); done
sleep 5
pkill -TERM -f "start --home $DIR/v3"; sleep 2
h3=$(st 0)
t0=$(date +%s)
while [ $(st 0) -lt $((h3+GAP)) ]; do sleep 2; done
t1=$(date +%s)
pkill -TERM -f "start --home $DIR/v"; sleep 3
idle 1000
for i in 0 1 2; do ($BIN start --home $DIR/v$i > $DIR/run$i.b.log 2>&1 &); done
sleep 3
target=$(st 0)
echo "others made $((target-h3)) blocks in $((t1-t0)) s"
s=$(date +%s.%N)
($BIN start --home $DIR/v3 > $DIR/run3b.log 2>&1 &)
while [ $(st 3) -lt $target ]; do sleep 0.2; done
e=$(date +%s.%N)
python3 -c "d=$e-$s; print(f'caught up {$target-$h3} blocks in {d:.1f} s: {($target-$h3)/d:.0f} blocks/s (including process start)')"
pkill -TERM -f "start --home $DIR/v"
sleep 2
