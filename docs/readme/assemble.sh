#!/usr/bin/env bash
# Assembles README.md from the per-area sections in docs/readme, in the order
# listed in docs/readme/ORDER (missing files are skipped).
set -euo pipefail
cd "$(dirname "$0")"
{
  first=1
  while read -r f; do
    [ -f "$f" ] || continue
    [ $first -eq 1 ] || printf '\n'
    first=0
    cat "$f"
  done < ORDER
} > ../../README.md
