#!/usr/bin/env bash
# `bash scripts/run.sh CMD ARGS...`: runs CMD with Node >= 24 on PATH (see env.sh), so the npm scripts work
# when npm itself was started by an older machine Node (dependency-cruiser and the tests need 24).
set -euo pipefail
source "$(dirname "$0")/env.sh"
exec "$@"
