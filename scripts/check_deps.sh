#!/usr/bin/env bash
# The folder tree is the architecture: every src/<folder>/README.md says what the folder may
# depend on ("May depend on: ..."), and this check fails when a non-test source file includes a
# project folder its README does not name. Test files and test doubles (*_test.cc, fake_*) may
# include what their tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for dir in src/*/; do
  folder=$(basename "$dir")
  readme="${dir}README.md"
  if [ ! -f "$readme" ]; then
    echo "check_deps: $readme is missing" >&2
    status=1
    continue
  fi
  allowed=$(tr '\n' ' ' <"$readme" | grep -o 'May depend on:[^.]*' || true)
  if [ -z "$allowed" ]; then
    echo "check_deps: $readme has no \"May depend on:\" sentence" >&2
    status=1
    continue
  fi
  case "$allowed" in *everything*) continue ;; esac
  for file in "$dir"*.cc "$dir"*.h; do
    [ -e "$file" ] || continue
    case "$(basename "$file")" in *_test.cc | fake_*) continue ;; esac
    for used in $(grep -ho '^#include "[a-z0-9_]*/' "$file" | sed 's/#include "//; s|/||' | sort -u); do
      [ "$used" = "$folder" ] && continue
      [ -d "src/$used" ] || continue # generated code (protos) lives in the build tree
      if ! grep -qw "$used" <<<"$allowed"; then
        echo "check_deps: $file includes $used/, which $readme does not allow" >&2
        status=1
      fi
    done
  done
done
[ "$status" -eq 0 ] && echo "check_deps: every include agrees with its folder README"
exit "$status"
