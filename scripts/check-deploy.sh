#!/usr/bin/env bash
# Checks deploy/ on this machine, without an image registry or a running systemd:
#  1. systemd-analyze verify on both units (any warning fails: verify exits 0 on unknown keys), in a
#     temp root holding the system's units and the built binary at the unit's ExecStart path, and
#     `systemd-analyze security --offline` keeping each unit's exposure at or below 2.5;
#  2. promtool check rules deploy/alerts.yml;
#  3. the Containerfile's layout (scripts/check-image-layout.py: stages, user, stripped binary,
#     volume, health check run against the binary started as the image would).
# The example configs and the metric names in alerts.yml are checked by `cargo test --test all -- deploy::`.
#   BIN=target/debug/telemetry-server bash scripts/check-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-$PWD/target/debug/telemetry-server}"
[ -x "$BIN" ] || { echo "check-deploy: no binary at $BIN (cargo build first)"; exit 1; }

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib/systemd" "$root/usr/local/bin" "$root/etc/systemd/system"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"   # sysinit.target etc. for default dependencies
for unit in deploy/systemd/*.service; do
  exec_path="$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")"
  [ "$exec_path" = /usr/local/bin/telemetry-server ] || { echo "check-deploy: $unit runs $exec_path"; exit 1; }
  cp "$unit" "$root/etc/systemd/system/"
done
install -m 0755 "$BIN" "$root/usr/local/bin/telemetry-server"
for unit in deploy/systemd/*.service; do
  name="$(basename "$unit")"
  out="$(systemd-analyze verify --root="$root" "/etc/systemd/system/$name" 2>&1)" || { echo "$out"; echo "check-deploy: FAIL verify $name"; exit 1; }
  [ -z "$out" ] || { echo "$out"; echo "check-deploy: FAIL verify $name printed warnings"; exit 1; }
  score="$(systemd-analyze security --offline=true --root="$root" "/etc/systemd/system/$name" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
  systemd-analyze security --offline=true --threshold=25 --root="$root" "/etc/systemd/system/$name" >/dev/null 2>&1 \
    || { echo "check-deploy: FAIL $name exposure $score is above 2.5"; exit 1; }
  echo "check-deploy: ok: systemd-analyze verify $name, exposure $score"
done

promtool check rules deploy/alerts.yml
python3 scripts/check-image-layout.py "$BIN"
echo "check-deploy: all checks passed"
