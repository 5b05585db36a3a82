#!/usr/bin/env bash
# `make down`: stop what `make up` started (the processes whose pid files it wrote), nothing else.
set -uo pipefail
cd "$(dirname "$0")/.."
RUN=${SPROUT_HOME:-.sprout}/run
for pidfile in "$RUN"/*.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" && echo "stopped $(basename "$pidfile" .pid) (pid $pid)"
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$pidfile"
done
