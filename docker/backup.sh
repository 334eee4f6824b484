#!/usr/bin/env bash
# Back up the running compose deployment onto the host, keep the newest KEEP backups, and log
# each backup's audit chain head apart from the backups (for verify_audit --expect-head).
#   docker/backup.sh /srv/studyplatform-backups 14      # e.g. nightly from cron
# Restoring is described in docs/backup.md.
set -euo pipefail

dest=${1:?usage: docker/backup.sh HOST_FOLDER [KEEP]}
keep=${2:-14}
case $keep in '' | *[!0-9]*) echo "KEEP must be a number, not '$keep'" >&2; exit 2 ;; esac

compose=(docker compose -f "$(dirname "$0")/compose.yaml")
stamp=$(date -u +%Y%m%dT%H%M%SZ)
inside=/var/lib/studyplatform/backups/$stamp

mkdir -p "$dest"
"${compose[@]}" exec -T web python manage.py backup --out "$inside"
"${compose[@]}" cp "web:$inside" "$dest/$stamp"
"${compose[@]}" exec -T web rm -rf "$inside"

head=$(python3 -c 'import json, sys; h = json.load(open(sys.argv[1]))["audit_head"]; print(h["sequence"], h["hash"], sep=":")' "$dest/$stamp/manifest.json")
echo "$stamp $head" >> "$dest/audit-heads.log"
echo "backup $dest/$stamp, audit head $head"

# Keep the newest $keep backups (folder names sort by time).
find "$dest" -mindepth 1 -maxdepth 1 -type d -name '2*Z' | sort | head -n "-$keep" | xargs -r rm -rf
