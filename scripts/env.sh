# Sourced by ./kedge, ./test.sh and .ci/run: puts Node >= 24 on PATH (installing it from the npm
# registry's `node` package when the machine's Node is older) and installs the npm dependencies.
kedge_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kedge_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(kedge_node_major)" -lt 24 ]; then
  kedge_node_dir="${KEDGE_NODE_DIR:-$HOME/.cache/kedge/node24}"
  if [ ! -x "$kedge_node_dir/node_modules/.bin/node" ]; then
    echo "kedge: Node $(node -v 2>/dev/null || echo none) is too old; installing Node 24 into $kedge_node_dir" >&2
    mkdir -p "$kedge_node_dir"
    npm install --no-save --no-package-lock --loglevel=error --prefix "$kedge_node_dir" node@24 >&2 || return 1
  fi
  export PATH="$kedge_node_dir/node_modules/.bin:$PATH"
fi
if [ ! -f "$kedge_root/node_modules/.package-lock.json" ] ||
  [ "$kedge_root/package-lock.json" -nt "$kedge_root/node_modules/.package-lock.json" ]; then
  # npm install, not npm ci: npm 11.19 writes lock files that its own `npm ci` then rejects (optional
  # platform packages of @biomejs/biome); install still honours the versions the lock file pins.
  (cd "$kedge_root" && npm install --loglevel=error --no-fund --no-audit >&2) || return 1
fi
