#!/bin/bash
# Manual measurement (README, "Restarts, state roots and catch-up"). Needs curl
# and python3; traffic stays on 127.0.0.1.
# usage: scripts/measure-restart.sh BIN DIR PORT -> whole-network restart time to the next final block
BIN=$1; DIR=$2; PORT=$3
st() { curl -s -m 1 -X POST -d '{"jsonrpc":"2.0","id":1,"method":"plume_status","params":[]}' http://127.0.0.1:$((PORT+100+$1))/ | python3 -c "import sys,json; print(json.load(sys.stdin)['result']['height'])" 2>/dev/null || echo -1; }
rm -rf $DIR
timeout 60 $BIN devnet --duration 3 --rate 200 --dir $DIR --base-port $PORT > $DIR.devnet.log 2>&1
for r in 1 2 3 4 5; do
  h=-1
  s=$(date +%s.%N)
  for i in 0 1 2 3; do ($BIN start --home $DIR/v$i > $DIR/run$i.$r.log 2>&1 &); done
  while [ $(st 0) -lt 0 ]; do sleep 0.05; done
  up=$(date +%s.%N); h0=$(st 0)
  while [ $(st 0) -le $h0 ]; do sleep 0.05; done
  e=$(date +%s.%N)
  python3 -c "print(f'round $r: API up after {$up-$s:.2f} s, next final block {$e-$up:.2f} s later (height $h0 -> next), total {$e-$s:.2f} s')"
  sleep 2
  pkill -TERM -f "start --home $DIR/v"; sleep 2
done
