#!/bin/bash
# stop-s3.sh DIR [--wipe]
#
# Stops the server that start-s3.sh started in DIR (SIGTERM, then SIGKILL
# after 10 s).  The data stays in DIR unless --wipe is given; start-s3.sh
# DIR PORT brings the same data back up.  Exit 0 also when nothing ran.
set -uo pipefail

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 DIR [--wipe]" >&2; exit 2; }
DIR=$1
WIPE=${2:-}
[ -d "$DIR" ] || { echo "$0: no such directory: $DIR" >&2; exit 1; }
DIR=$(cd "$DIR" && pwd -P)

# our_server PID: PID is alive (not a zombie: an orphaned server is reaped
# by PID 1 a while after it exits, but a zombie holds no port nor file) and
# is the s3lite.py of this DIR (not some other process that reused the pid).
our_server() {
    local st
    st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$st" ] && [ "$st" != Z ] &&
        tr '\0' ' ' 2>/dev/null < "/proc/$1/cmdline" | grep -qF "$DIR/s3lite.py"
}

pids=
for p in $(cat "$DIR/pids" 2>/dev/null); do
    case $p in ''|*[!0-9]*) continue ;; esac
    if our_server "$p"; then
        pids="$pids $p"
        kill -TERM "$p" 2>/dev/null || true
    fi
done
for p in $pids; do
    for _ in $(seq 1 500); do
        our_server "$p" || break
        sleep 0.02
    done
    if our_server "$p"; then
        echo "$0: pid $p ignored SIGTERM; sending SIGKILL" >&2
        kill -KILL "$p" 2>/dev/null || true
    fi
done
rm -f "$DIR/pids" "$DIR/ready" "$DIR/env"

if [ "$WIPE" = --wipe ]; then
    rm -rf "$DIR"
fi
exit 0
