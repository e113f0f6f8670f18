#!/usr/bin/env bash
# The test command: brings in Node 24 and the npm packages if needed, then runs every test.
# Arguments narrow the run to test files whose path contains one of them: ./test.sh store
set -euo pipefail
source "$(dirname "$0")/scripts/env.sh"
cd "$kedge_root"
exec npm test -- "$@"
