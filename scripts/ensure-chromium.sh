#!/usr/bin/env bash
# The page tests (tests/e2e) drive Debian's chromium through Playwright's Python package,
# with Chinese fonts so the zh-CN screenshots show text. Installs what is missing with
# apt-get (as root, or with sudo); fails when it cannot.
set -u
packages="chromium fonts-noto-cjk"
missing=""
for package in $packages; do
  dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -n "$missing" ]; then
  as_root=""
  [ "$(id -u)" = "0" ] || as_root="sudo"
  echo "Installing for the page tests (apt-get):$missing"
  $as_root apt-get update -qq || true
  # shellcheck disable=SC2086
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || {
    echo "Could not install:$missing" >&2
    exit 1
  }
fi
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null)"
