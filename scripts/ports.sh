#!/usr/bin/env bash
# Sourced by scripts/up.sh: on a shared machine another account can listen on a loopback port first and answer
# like the server Sprout means to start (a health check passes, then logins arrive). So a port is taken only when
# it is free or already held by the service this state directory started, and nothing is sent to a server before
# it is known to be that process's.
#   owns_port PGID PORT    true when a process of group PGID, of this account, listens on TCP port PORT (/proc)
#   claim_port NAME PORT   exit unless PORT is free (on 127.0.0.1 and on ::1, where `localhost` may lead), or
#                          held by the running service NAME of $RUN/NAME.pid
#   check_port NAME PORT   exit unless the service NAME started here listens on PORT (up.sh then stops the rest)
# They read $BIN and $RUN.

owns_port() {
  "$BIN/python" - "$1" "$2" <<'PY'
import os
import sys

group, port = int(sys.argv[1]), int(sys.argv[2])
sockets = set()
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:  # this account's own processes only: a reused pid of another account's is not ours, even for root
        if os.getpgid(int(pid)) == group and os.stat(f"/proc/{pid}").st_uid == os.getuid():
            sockets |= {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        continue
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for row in open(table).read().splitlines()[1:]:
        fields = row.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port \
                and f"socket:[{fields[9]}]" in sockets:  # 0A: LISTEN
            sys.exit(0)
sys.exit(1)
PY
}

_port_listens() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || (exec 3<>"/dev/tcp/::1/$1") 2>/dev/null; }

claim_port() {
  local pid
  if [ -f "$RUN/$1.pid" ] && pid=$(cat "$RUN/$1.pid") && kill -0 "$pid" 2>/dev/null; then
    owns_port "$pid" "$2" && return
  fi
  if _port_listens "$2"; then
    echo "Port $2 (for $1) is already in use by another program: refusing to start there (another account's" \
         "server would receive the logins). Stop it, or choose another port (see scripts/up.sh)." >&2
    exit 1
  fi
}

check_port() {
  local pid
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) && owns_port "$pid" "$2" && return
  echo "Port $2 is not held by the $1 started here (another program took it?): stopping. See $RUN/$1.log" >&2
  exit 1
}
