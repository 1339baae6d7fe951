#!/bin/sh
# Install Lineproof into a new virtual environment from the wheels next to this script, with no network.
# Usage: sh install-from-wheelhouse.sh [TARGET_VENV]   (default: ~/lineproof-venv). Needs Python 3.11+.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
TARGET=${1:-"$HOME/lineproof-venv"}
python3 -m venv "$TARGET"
"$TARGET/bin/pip" install --no-index --find-links "$HERE" lineproof
echo "Installed. Start Lineproof with: $TARGET/bin/lineproof gui"
