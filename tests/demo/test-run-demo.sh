#!/bin/sh
# tools/run-demo as a user runs it, in its own session: it becomes ready,
# /readyz answers 200, and Ctrl-C (SIGINT to the foreground process group)
# stops it with status 0 and leaves no PostgreSQL or Redis behind. TAP.
set -u
cd "$(dirname "$0")/../.."

work=$(mktemp -d /tmp/cd-demo-XXXXXX)
chmod 711 "$work" # the embedded PostgreSQL runs as 'postgres' when we are root
state=$work/state
out=$work/out
n=0
failed=0

ok () { n=$((n + 1)); echo "ok $n $1"; }
not_ok () {
  n=$((n + 1))
  echo "not ok $n $1"
  [ $failed = 1 ] || sed 's/^/# /' "$out" | tail -n 40
  failed=1
}
# every process below $1 (the embedded servers, PostgreSQL's backends)
descendants () {
  for child in $(pgrep -P "$1"); do
    echo "$child"
    descendants "$child"
  done
}
alive () {
  for p in $1; do
    if kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; then
      echo "$p"
    fi
  done
}

echo "TAP version 13"
# setsid: a session and process group of its own, as a terminal would give
setsid tools/run-demo --state-dir "$state" --listen 127.0.0.1:0 >"$out" 2>&1 &
pid=$!

i=0
while ! grep -q '^calldockerd: ready$' "$out" && kill -0 "$pid" 2>/dev/null && [ $i -lt 600 ]; do
  sleep 0.5
  i=$((i + 1))
done
if grep -q '^calldockerd: ready$' "$out"; then ok "run-demo becomes ready"; else not_ok "run-demo becomes ready"; fi

url=$(sed -n 's/^calldockerd: serving \([^ ]*\) .*/\1/p' "$out" | head -n 1)
status=$(curl -s -o /dev/null -w '%{http_code}' "${url}readyz" || true)
if [ "$status" = 200 ]; then ok "GET ${url}readyz answers 200"; else not_ok "readyz answered $status"; fi

admin_password=$(sed -n 's/^  company admin  *admin@demo.calldocker.demo  *//p' "$out" | head -n 1)
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "${url}api/v1/auth/login" \
  -H 'Content-Type: application/json' \
  -d "{\"email\":\"admin@demo.calldocker.demo\",\"password\":\"$admin_password\"}" || true)
if [ -n "$admin_password" ] && [ "$status" = 200 ]; then
  ok "the printed demo admin login works"
else
  not_ok "demo admin login answered $status"
fi

tree=$(descendants "$pid")
names=$(for p in $tree; do cat "/proc/$p/comm"; done | sort -u | tr '\n' ' ')
if echo "$names" | grep -q postgres && echo "$names" | grep -q redis; then
  ok "embedded servers run under calldockerd: $(echo "$tree" | wc -w) processes ($names)"
else
  not_ok "embedded servers not found under calldockerd ($names)"
fi

# Ctrl-C: SIGINT to the whole foreground process group
if kill -0 "$pid" 2>/dev/null; then
  kill -INT "-$pid"
fi
wait "$pid"
code=$?
if [ "$code" -eq 0 ]; then ok "Ctrl-C stops calldockerd with status 0"; else not_ok "exit status $code after Ctrl-C"; fi

i=0
while [ -n "$(alive "$tree")" ] && [ $i -lt 40 ]; do
  sleep 0.25
  i=$((i + 1))
done
left=$(alive "$tree")
if [ -z "$left" ]; then ok "no PostgreSQL or Redis process left"; else not_ok "left behind: $left"; fi

echo "1..$n"
rm -rf "$work"
exit $failed
