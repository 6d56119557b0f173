#!/bin/bash
# start-s3.sh DIR [PORT]
#
# Starts a throwaway S3-compatible server (OpenStack Swift 2.30 + s3api, from
# Debian's python3-swift) whose config, rings, data and log all live in DIR,
# listening on 127.0.0.1:PORT (PORT 0 or none: a free port is picked).
# Starting again on an existing DIR keeps its data (use it for "back up").
#
# Needs: apt-get install --no-install-recommends python3-swift curl
#
# Environment (optional):
#   S3_ACCESS_KEY (default s3test)      S3_SECRET_KEY (default s3testsecret)
#   S3_REGION     (default us-east-1)   S3_BUCKET (default test-bucket;
#                                        empty: create no bucket)
#   S3_LOG_LEVEL  (default INFO; DEBUG logs every backend request)
#   S3_START_TIMEOUT (seconds, default 30)
#
# Prints KEY=VALUE lines (also saved in DIR/env):
#   S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY S3_REGION S3_BUCKET S3_PID S3_PORT
# Stop with: stop-s3.sh DIR
set -euo pipefail

usage() { echo "usage: $0 DIR [PORT]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
DIR=$1
PORT=${2:-0}
case $PORT in ''|*[!0-9]*) usage ;; esac

ACCESS_KEY=${S3_ACCESS_KEY:-s3test}
SECRET_KEY=${S3_SECRET_KEY:-s3testsecret}
REGION=${S3_REGION:-us-east-1}
BUCKET=${S3_BUCKET-test-bucket}
LOG_LEVEL=${S3_LOG_LEVEL:-INFO}
TIMEOUT=${S3_START_TIMEOUT:-30}
PY=/usr/bin/python3   # Debian's python, never a pyenv/venv one from PATH

case $ACCESS_KEY in *:*) echo "$0: S3_ACCESS_KEY must not contain ':'" >&2; exit 2 ;; esac
[ -x "$PY" ] && "$PY" -c 'import swift' 2>/dev/null || {
    echo "$0: python3-swift is not installed (apt-get install python3-swift)" >&2; exit 1; }

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)

# A server of this DIR still running? (zombies and reused pids don't count)
our_server() {
    local st
    st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$st" ] && [ "$st" != Z ] &&
        tr '\0' ' ' 2>/dev/null < "/proc/$1/cmdline" | grep -qF "$DIR/s3lite.py"
}
for p in $(cat "$DIR/pids" 2>/dev/null); do
    case $p in ''|*[!0-9]*) continue ;; esac
    if our_server "$p"; then
        echo "$0: already running in $DIR (pid $p); stop-s3.sh it first" >&2
        exit 1
    fi
done
rm -f "$DIR/pids" "$DIR/ready" "$DIR/port" "$DIR/env"
mkdir -p "$DIR/data/_acct" "$DIR/data/_cont" "$DIR/data/_obj"

# swift.conf holds the hash path prefix/suffix: made once, kept for the life
# of DIR (objects would not be found again with another one).
if [ ! -s "$DIR/swift.conf" ]; then
    rnd() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
    cat > "$DIR/swift.conf.tmp" <<EOF
[swift-hash]
swift_hash_path_prefix = $(rnd)
swift_hash_path_suffix = $(rnd)

[storage-policy:0]
name = Policy-0
default = yes
EOF
    mv "$DIR/swift.conf.tmp" "$DIR/swift.conf"
fi

for kind in account container object; do
    cat > "$DIR/$kind-server.conf" <<EOF
[DEFAULT]
swift_dir = $DIR
devices = $DIR/data
mount_check = false
log_level = $LOG_LEVEL
fallocate_reserve = 0

[pipeline:main]
pipeline = $kind-server

[app:$kind-server]
use = egg:swift#$kind
log_requests = $( [ "$LOG_LEVEL" = DEBUG ] && echo true || echo false )
EOF
done
cat >> "$DIR/object-server.conf" <<EOF
# same process as the container server: the update is quick
container_update_timeout = 5
EOF

cat > "$DIR/proxy-server.conf" <<EOF
[DEFAULT]
swift_dir = $DIR
log_level = $LOG_LEVEL

[pipeline:main]
# (with S3_LOG_LEVEL=DEBUG a 2nd proxy-logging also logs internal subrequests)
pipeline = catch_errors gatekeeper healthcheck proxy-logging listing_formats s3api s3liteauth copy slo dlo versioned_writes $( [ "$LOG_LEVEL" = DEBUG ] && echo proxy-logging ) proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
# one node only: never put it in error-limit quarantine
error_suppression_limit = 1000000
error_suppression_interval = 1

[filter:s3api]
use = egg:swift#s3api
location = $REGION
# path-style always works; virtual-host style for BUCKET.localhost:PORT
storage_domain = localhost
# S3's own minimum part size (all parts but the last)
min_segment_size = 5242880
allowable_clock_skew = 900

[filter:s3liteauth]
paste.filter_factory = s3lite:auth_filter_factory
access_key = $ACCESS_KEY
secret_key = $SECRET_KEY
account = AUTH_s3

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes
EOF

cat > "$DIR/s3lite.py" <<'S3LITE_PY'
#!/usr/bin/python3 -Es
# s3lite.py DIR PORT
#
# A throwaway S3 endpoint for tests: OpenStack Swift (Debian's python3-swift)
# with its s3api middleware, run as ONE process on ONE port.
#
# The proxy, account, container and object servers are all loaded in this
# process and served by one eventlet WSGI server on 127.0.0.1:PORT.  The rings
# point every backend at that same port; backend requests are told apart by
# their first path segment, the ring device name (_acct, _cont, _obj), which
# can never be a valid S3 bucket name.  Everything (swift.conf, rings,
# configs, data, log) lives in DIR; nothing is read from /etc/swift.
#
# PORT 0 picks a free port; the port in use is written to DIR/port.  The
# process id goes to DIR/pids and DIR/ready appears once requests are served.
import os
import sys


def auth_filter_factory(global_conf, **local_conf):
    """Paste filter: one static S3 key pair -> one Swift account.

    Stands in for tempauth (whose S3 access keys must look like
    "account:user", which curl's --user cannot pass).
    """
    conf = dict(global_conf)
    conf.update(local_conf)
    access_key = conf['access_key']
    secret_key = conf['secret_key']
    account = conf.get('account', 'AUTH_s3')

    def allow(req):
        return None

    def filt(app):
        def s3lite_auth(env, start_response):
            details = env.get('s3api.auth_details')
            if details is None:
                # Swift's own pre-authorized internal subrequests
                # (e.g. s3api's container-info lookups) carry this flag.
                if env.get('swift.authorize_override'):
                    return app(env, start_response)
                if env.get('PATH_INFO') == '/info':
                    return app(env, start_response)
                # anonymous access is never allowed
                body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
                        b'<Code>AccessDenied</Code><Message>Access Denied'
                        b' (unsigned request)</Message></Error>')
                start_response('403 Forbidden', [
                    ('Content-Type', 'application/xml'),
                    ('Content-Length', str(len(body)))])
                return [body]
            if details.get('access_key') != access_key or \
                    not details['check_signature'](secret_key):
                start_response('401 Unauthorized', [('Content-Length', '0')])
                return [b'']
            # s3api addresses the account as /v1/<access key>/...
            parts = env['PATH_INFO'].split('/', 3)
            if len(parts) >= 3 and parts[1] == 'v1' and \
                    parts[2] == access_key:
                parts[2] = account
                env['PATH_INFO'] = '/'.join(parts)
            env['REMOTE_USER'] = account
            env['swift.authorize_override'] = True
            env['swift.authorize'] = allow
            return app(env, start_response)
        return s3lite_auth
    return filt


DEVICES = (('account', '_acct'), ('container', '_cont'), ('object', '_obj'))
PART_POWER = 6   # must stay the same for a given DIR (data placement)


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: s3lite.py DIR PORT')
    top = os.path.abspath(sys.argv[1])
    want_port = int(sys.argv[2])
    os.environ['TZ'] = 'UTC+0'
    # only 127.0.0.1 is ever resolved: skip eventlet's dnspython resolver
    os.environ.setdefault('EVENTLET_NO_GREENDNS', 'yes')
    import time
    time.tzset()
    t0 = time.time()
    marks = []

    import logging
    import signal
    import warnings
    # eventlet's note on capitalize_response_headers=False (which Swift
    # needs so that S3 clients get "ETag", not "Etag")
    warnings.filterwarnings('ignore', category=DeprecationWarning)
    import eventlet
    import eventlet.wsgi
    from swift.common import utils

    # all Swift config comes from DIR, never /etc/swift
    utils.SWIFT_CONF_FILE = os.path.join(top, 'swift.conf')
    utils.HASH_PATH_PREFIX = utils.HASH_PATH_SUFFIX = b''
    utils.validate_configuration()
    from swift.common import constraints, storage_policy
    constraints.reload_constraints()
    storage_policy.reload_storage_policies()

    # Swift logs to syslog (or UDP localhost:514); send it to DIR/server.log
    log_file = logging.FileHandler(os.path.join(top, 'server.log'))

    def file_handler(*args, **kwargs):
        return log_file
    utils.ThreadSafeSysLogHandler = file_handler

    utils.eventlet_monkey_patch()
    eventlet.hubs.use_hub(utils.get_hub())

    # no SO_REUSEPORT: a second server on the same port must fail loudly
    sock = eventlet.listen(('127.0.0.1', want_port), backlog=128,
                           reuse_port=False)
    port = sock.getsockname()[1]
    marks.append(('imports', time.time()))

    from swift.common.ring import RingBuilder
    for kind, dev in DEVICES:
        os.makedirs(os.path.join(top, 'data', dev), exist_ok=True)
        builder = RingBuilder(PART_POWER, 1, 1)
        builder.add_dev({'id': 0, 'region': 1, 'zone': 1,
                         'ip': '127.0.0.1', 'port': port, 'device': dev,
                         'weight': 1.0, 'meta': ''})
        builder.rebalance(seed=1)
        # (RingData.save writes a temp file and renames it into place)
        builder.get_ring().save(os.path.join(top, '%s.ring.gz' % kind))

    marks.append(('rings', time.time()))
    from swift.common.wsgi import loadapp
    from swift.common.http_protocol import SwiftHttpProtocol
    backends = {}
    for kind, dev in DEVICES:
        backends[dev] = loadapp(os.path.join(top, '%s-server.conf' % kind),
                                global_conf={'log_name': kind + '-server'})
    proxy = loadapp(os.path.join(top, 'proxy-server.conf'),
                    global_conf={'log_name': 'proxy-server'})

    marks.append(('apps', time.time()))

    def dispatch(env, start_response):
        path = env.get('PATH_INFO', '')
        first = path[1:path.find('/', 1)] if path.count('/') > 1 else ''
        return backends.get(first, proxy)(env, start_response)

    def stop(signum, frame):
        sys.stderr.write('s3lite: signal %d, exiting\n' % signum)
        sys.stderr.flush()
        log_file.flush()
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # A signal may land on one of eventlet's pool threads; the wakeup fd
    # makes the hub (main thread) wake up and run the handler at once.
    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)
    os.set_blocking(wfd, False)
    signal.set_wakeup_fd(wfd)

    def drain_wakeups():
        from eventlet.hubs import trampoline
        while True:
            trampoline(rfd, read=True)
            try:
                os.read(rfd, 512)
            except BlockingIOError:
                pass
    eventlet.spawn_n(drain_wakeups)

    def put(name, text):
        tmp = os.path.join(top, '.' + name)
        with open(tmp, 'w') as f:
            f.write(text)
        os.rename(tmp, os.path.join(top, name))
    put('port', '%d\n' % port)
    put('pids', '%d\n' % os.getpid())
    last = t0
    steps = []
    for name, t in marks:
        steps.append('%s %.2fs' % (name, t - last))
        last = t
    sys.stderr.write('s3lite: pid %d serving on 127.0.0.1:%d after %.2fs '
                     '(%s)\n' % (os.getpid(), port, time.time() - t0,
                                  ', '.join(steps)))
    sys.stderr.flush()
    put('ready', '%d\n' % port)

    eventlet.wsgi.server(
        sock, dispatch, utils.NullLogger(),
        custom_pool=eventlet.GreenPool(1024),
        protocol=SwiftHttpProtocol, socket_timeout=60,
        capitalize_response_headers=False)


if __name__ == '__main__':
    main()
S3LITE_PY

# The server writes DIR/pids itself and DIR/ready when it serves requests.
LOG_FROM=$(( $(stat -c %s "$DIR/server.log" 2>/dev/null || echo 0) + 1 ))
"$PY" -E -s -B "$DIR/s3lite.py" "$DIR" "$PORT" </dev/null >>"$DIR/server.log" 2>&1 &
PID=$!

deadline=$(( $(date +%s) + TIMEOUT ))
until [ -e "$DIR/ready" ]; do
    if ! our_server "$PID"; then
        echo "$0: server exited during start; last lines of $DIR/server.log:" >&2
        tail -c +"$LOG_FROM" "$DIR/server.log" | tail -n 20 >&2
        exit 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "$0: server not ready after ${TIMEOUT}s; see $DIR/server.log" >&2
        kill "$PID" 2>/dev/null || true
        exit 1
    fi
    sleep 0.02
done
PORT=$(cat "$DIR/port")
ENDPOINT="http://127.0.0.1:$PORT"

# One signed S3 request proves the whole chain (S3 -> proxy -> backends).
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
if [ -n "$BUCKET" ]; then
    code=$(curl -sS -o "$DIR/.bucket-reply" -w '%{http_code}' -X PUT \
        --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
        -H "x-amz-content-sha256: $EMPTY_SHA256" "$ENDPOINT/$BUCKET") || code=000
    case $code in
        200) ;;
        # kept from an earlier run of this DIR
        409) grep -q BucketAlreadyOwnedByYou "$DIR/.bucket-reply" || code=bad ;;
    esac
else
    code=$(curl -sS -o "$DIR/.bucket-reply" -w '%{http_code}' \
        --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
        -H "x-amz-content-sha256: $EMPTY_SHA256" "$ENDPOINT/") || code=000
fi
case $code in
    200|409) rm -f "$DIR/.bucket-reply" ;;
    *) echo "$0: S3 check request failed (HTTP $code):" >&2
       cat "$DIR/.bucket-reply" >&2 2>/dev/null || true
       echo >&2; tail -c +"$LOG_FROM" "$DIR/server.log" | tail -n 20 >&2
       kill "$PID" 2>/dev/null || true
       exit 1 ;;
esac

cat > "$DIR/env" <<EOF
S3_ENDPOINT=$ENDPOINT
S3_ACCESS_KEY=$ACCESS_KEY
S3_SECRET_KEY=$SECRET_KEY
S3_REGION=$REGION
S3_BUCKET=$BUCKET
S3_PORT=$PORT
S3_PID=$(cat "$DIR/pids")
EOF
cat "$DIR/env"
