#!/bin/bash
# Manual measurement (README, "Restarts, state roots and catch-up"): data
# growth of validator 0 over 60 s of a 4-validator loopback network.
#   scripts/measure-idle.sh BIN DIR PORT          idle (after a restart of all four)
#   scripts/measure-idle.sh BIN DIR PORT trickle  at 1 tx/s under plume devnet
# Needs curl and python3. Traffic stays on 127.0.0.1.
set -u
BIN=$1; DIR=$2; PORT=$3; MODE=${4:-idle}
h() { curl -s -X POST -d '{"jsonrpc":"2.0","id":1,"method":"plume_status","params":[]}' http://127.0.0.1:$((PORT+100))/ | python3 -c "import sys,json; print(json.load(sys.stdin)['result']['height'])"; }
rm -rf "$DIR"
if [ "$MODE" = trickle ]; then
  ($BIN devnet --duration 80 --rate 1 --dir "$DIR" --base-port $PORT > "$DIR.devnet.log" 2>&1 &)
  sleep 12
else
  timeout 60 $BIN devnet --duration 1 --rate 10 --dir "$DIR" --base-port $PORT > "$DIR.devnet.log" 2>&1
  for i in 0 1 2 3; do ($BIN start --home "$DIR/v$i" > "$DIR/run$i.log" 2>&1 &); done
  sleep 10
fi
s0=$(du -sb "$DIR/v0/data" | cut -f1); h0=$(h)
sleep 60
s1=$(du -sb "$DIR/v0/data" | cut -f1); h1=$(h)
echo "$BIN ($MODE): blocks $h0 -> $h1 in 60 s; data $s0 -> $s1 bytes; growth $(( (s1-s0) * 60 )) bytes/hour"
if [ "$MODE" = trickle ]; then sleep 15; else pkill -TERM -f "start --home $DIR/v"; sleep 2; fi
