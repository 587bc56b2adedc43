#!/usr/bin/env bash
# Headless Chromium + its WebDriver for the browser tests (tests/integration/test_ui_browser.py).
# Installs the Debian packages only when one of them is missing, so `make test` stays fast.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
DRIVER=/usr/bin/chromedriver

if [[ -x "$CHROMIUM" && -x "$DRIVER" ]]; then
    echo "install_browser: $("$CHROMIUM" --version 2>/dev/null | head -n1) and chromedriver already installed"
    exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_browser: need root (or sudo) to apt-get install chromium chromium-driver" >&2
        exit 1
    fi
fi

echo "install_browser: installing chromium and chromium-driver with apt-get"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium chromium-driver
"$CHROMIUM" --version 2>/dev/null | head -n1
"$DRIVER" --version
