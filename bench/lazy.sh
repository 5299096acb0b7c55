#!/usr/bin/env bash
# bench/lazy.sh — lazy pulling and seekable publishing on the demo's real packages (not a test).
# Needs root (FUSE, overlay, runc) and the demo's trees: run `npm run demo` once first.
# Results: stdout (JSON) and $WORK/results.json (default /var/tmp/hostpull-bench-lazy).
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build:ts
exec node bench/lazy.mjs "$@"
