#!/usr/bin/env bash
# Install the ec2batch agent into its own virtualenv from wheels uploaded beforehand: no network needed.
set -o nounset -o errexit -o pipefail

WHEELS="${EC2BATCH_WHEELS:?set EC2BATCH_WHEELS to the folder holding the ec2batch wheel and its dependencies}"
PREFIX=/opt/ec2batch

[[ -d "$WHEELS" ]] || { echo "no wheel folder at $WHEELS" >&2; exit 1; }
ls "$WHEELS"/ec2batch-*.whl >/dev/null || { echo "no ec2batch wheel in $WHEELS" >&2; exit 1; }

PYTHON=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    PYTHON="$candidate"; break
  fi
done
if [[ -z "$PYTHON" ]] && command -v dnf >/dev/null; then  # Amazon Linux 2023 ships 3.9 as python3
  dnf install -y python3.11
  PYTHON=python3.11
fi
[[ -n "$PYTHON" ]] || { echo "Python >= 3.11 is required for the agent" >&2; exit 1; }

"$PYTHON" -m venv "$PREFIX"
"$PREFIX/bin/pip" install --quiet --no-index --find-links "$WHEELS" ec2batch
"$PREFIX/bin/ec2batch-agent" --help >/dev/null 2>&1 || true  # entry point exists; it runs only under systemd
echo "agent installed: $("$PREFIX/bin/python" -c 'import ec2batch; print(ec2batch.__version__)') with $("$PYTHON" --version)"
