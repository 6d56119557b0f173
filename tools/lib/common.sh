# Shared by tools/run-demo and tools/run-tests: messages, Debian packages,
# the build. Sourced, not run.

say () {
  printf '\033[1m==> %s\033[0m\n' "$*"
}

die () {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# What calldockerd needs to build and run (Debian bookworm names).
CD_BUILD_PACKAGES="build-essential meson ninja-build pkg-config git python3 gettext
  libglib2.0-dev libsoup-3.0-dev libjson-glib-dev libpq-dev libhiredis-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  libsodium-dev libjwt-dev libcurl4-openssl-dev libssl-dev libmaxminddb-dev"
CD_RUNTIME_PACKAGES="postgresql-15 redis-server gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-nice gstreamer1.0-espeak tzdata"
# What the test run needs on top: the formatter, clang and its sanitizer and
# libFuzzer runtimes, and coturn (turnserver, which test-turn runs itself with
# its own configuration; it needs no coturn service, which Debian starts and
# enables on systemd hosts: `systemctl disable --now coturn` if unwanted),
# MaxMind::DB::Writer (the tests write a small GeoIP database with it), and
# OpenStack Swift (tests/s3 runs it with s3api as a real S3-compatible
# server for the S3 blob store's tests).
CD_TEST_PACKAGES="clang clang-format libclang-rt-14-dev curl procps coturn
  libmaxmind-db-writer-perl python3-swift"

# The browser test: Debian's Chromium (Node.js and npm are expected on the
# machine: Debian's own nodejs is too old for playwright-core).
CD_BROWSER_PACKAGES="chromium"

# ensure_node_modules DIR: npm ci in DIR when node_modules is missing or
# package-lock.json changed since the last install; no browser downloads.
ensure_node_modules () {
  lock_sum=$(sha256sum "$1/package-lock.json" | cut -d' ' -f1)
  stamp="$1/node_modules/.calldocker-lock-sha256"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ]; then
    say "npm packages in $1: up to date"
    return 0
  fi
  say "Installing npm packages in $1 (npm ci)"
  (cd "$1" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund) || return 1
  echo "$lock_sum" >"$stamp"
}

# ensure_packages PKG...: installs the ones not installed yet, nothing else.
ensure_packages () {
  missing=""
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing="$missing $pkg"
    fi
  done
  if [ -z "$missing" ]; then
    say "Debian packages: all $# present"
    return 0
  fi
  say "Installing Debian packages:$missing"
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
  elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    die "not root and no sudo: run as root, or install:$missing"
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null ||
    die "apt-get update failed"
  # shellcheck disable=SC2086
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing ||
    die "apt-get install failed for:$missing"
}

# build DIR [meson options...]: configures once, then builds.
build () {
  dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    say "Configuring $dir ($*)"
    meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || {
      cat "$dir.setup.log" >&2
      die "meson setup $dir failed"
    }
    rm -f "$dir.setup.log"
  fi
  say "Building $dir"
  ninja -C "$dir" >"$dir.log" 2>&1 || {
    tail -n 60 "$dir.log" >&2
    die "build in $dir failed (full log: $dir.log)"
  }
  rm -f "$dir.log"
}
