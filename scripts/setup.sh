#!/usr/bin/env bash
# Everything both README commands need, idempotent: system packages (Debian), the Python venv with
# the project installed, and the Maven-fetched jars. A second run with nothing changed does nothing
# but check, and downloads nothing.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# --- 1. Debian packages -------------------------------------------------------------------------
need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
# The metrics test runs Prometheus against the live platform; the fleet map test drives a browser.
command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
python_ok() { "$1" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)' 2>/dev/null; }
PYTHON=""
for candidate in "${PYTHON_BIN:-}" python3.11 python3.12 python3; do
  if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
    PYTHON=$candidate; break
  fi
done
[ -n "$PYTHON" ] || need+=(python3 python3-venv)
if [ -n "$PYTHON" ] && ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then need+=(python3-venv); fi

if [ ${#need[@]} -gt 0 ]; then
  say "installing Debian packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  # Keep apt from starting a system-wide mosquitto or prometheus (both packages ship a service):
  # ours run on demand, on loopback, from `telemetry infra up` / infra/prometheus.py.
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  trap '[ -n "$made_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [ -z "$PYTHON" ]; then
    for candidate in python3.11 python3.12 python3; do
      if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then PYTHON=$candidate; break; fi
    done
  fi
fi
[ -n "$PYTHON" ] || { echo "setup: no Python 3.11 or 3.12 found" >&2; exit 1; }

# --- 2. Python venv with the project (editable) -------------------------------------------------
# Both distributions: the edge agent (edge_agent/, what a vehicle installs) is a dependency of the
# project, found by pip in the same command; a change to either pyproject reinstalls.
stamp_value=$(cat pyproject.toml edge_agent/pyproject.toml | sha256sum | cut -c1-16)
stamp_file="$VENV/.fleet-telemetry-installed"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp_value" ]; then
  say "installing Python packages into $VENV (apache-flink is large: a few minutes the first time)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ./edge_agent -e '.[dev]'
  echo "$stamp_value" > "$stamp_file"
fi

# --- 3. JVM jars from connectors/jvm/pom.xml + our fleet-flink jar (cached per pom and source content)
"$VENV/bin/telemetry" jars fetch

# --- 4. kustomize for deploy/flink-k8s (`telemetry deploy`, the manifest tests) ------------------
# Built from the Go module proxy into the venv's bin/ (fleet/deploy/kustomize.py looks there first);
# the version is fleet/deploy/kustomize.py's KUSTOMIZE_VERSION (a test checks they agree).
KUSTOMIZE_VERSION=v5.8.2
if [ "$("$VENV/bin/kustomize" version 2>/dev/null)" != "$KUSTOMIZE_VERSION" ]; then
  command -v go >/dev/null 2>&1 || { echo "setup: Go (1.22 or newer) is needed to build kustomize $KUSTOMIZE_VERSION" >&2; exit 1; }
  say "building kustomize $KUSTOMIZE_VERSION (go install: about half a minute the first time)"
  GOBIN="$(cd "$VENV/bin" && pwd)" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi
