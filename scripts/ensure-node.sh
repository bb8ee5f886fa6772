#!/usr/bin/env bash
# The front-end packages (package.json / package-lock.json: the QR ponyfill the scan page
# serves, axe-core for the page tests) install with npm. Installs Debian's nodejs and npm
# with apt-get when missing (as root, or with sudo); fails when it cannot.
set -u
if ! command -v npm >/dev/null 2>&1; then
  as_root=""
  [ "$(id -u)" = "0" ] || as_root="sudo"
  echo "Installing for the front-end packages (apt-get): nodejs npm"
  $as_root apt-get update -qq || true
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null || {
    echo "Could not install nodejs and npm" >&2
    exit 1
  }
fi
echo "node: $(node --version) npm: $(npm --version)"
