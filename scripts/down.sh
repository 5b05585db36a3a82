#!/usr/bin/env bash
# `make down`: stop what `make up` started (the processes whose pid files it wrote), nothing else.
set -uo pipefail
cd "$(dirname "$0")/.."
HOME_DIR=${SPROUT_HOME:-.sprout}
RUN=$HOME_DIR/run
for pidfile in "$RUN"/*.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  # each service was started as the leader of its own process group: stop the whole group
  if kill -0 -- "-$pid" 2>/dev/null; then
    kill -INT -- "-$pid" 2>/dev/null; kill -TERM -- "-$pid" 2>/dev/null
    for _ in $(seq 30); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 -- "-$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
    echo "stopped $(basename "$pidfile" .pid) (process group $pid)"
  fi
  rm -f "$pidfile"
done

# PostgreSQL of the real stack runs detached under pg_ctl: stop it the same way (its cluster: stack/pgdata says
# where, as root outside the owner-only state directory).
PGDATA=$(cat "$HOME_DIR/stack/pgdata" 2>/dev/null || echo "$HOME_DIR/stack/pg")
if [ -f "$PGDATA/postmaster.pid" ]; then
  for d in "$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/x)")" /usr/local/bin \
           $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    [ -x "$d/pg_ctl" ] || continue
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$d/pg_ctl" -D "$PGDATA" -m fast -w stop
    else "$d/pg_ctl" -D "$PGDATA" -m fast -w stop; fi && echo "stopped postgresql"
    break
  done
fi
