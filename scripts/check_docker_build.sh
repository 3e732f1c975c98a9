#!/usr/bin/env bash
# Checks that the Dockerfile's build stage compiles from what it copies, without a Docker engine:
# lays out exactly the build stage's COPY sources in an empty directory and runs the stage's own
# `cargo build` line there (target/ shared with the checkout's, so dependencies build once).
# Usage: scripts/check_docker_build.sh [Dockerfile]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dockerfile="${1:-$root/Dockerfile}"
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT

# The build stage: from the first FROM to the next one.
stage="$(awk 'NR==1,0 { if (/^FROM /) { n++ } if (n == 1) print }' "$dockerfile")"
workdir="$(printf '%s\n' "$stage" | awk '/^WORKDIR /{ print $2 }' | tail -1)"
[ -n "$workdir" ] || { echo "no WORKDIR in the build stage" >&2; exit 1; }

copied=0
while read -r _ args; do
    # COPY a b ... dest (no --from: those come from other stages)
    case "$args" in --from=*) continue ;; esac
    read -r -a parts <<< "$args"
    dest="${parts[-1]}"
    unset 'parts[-1]'
    for src in "${parts[@]}"; do
        [ -e "$root/$src" ] || { echo "COPY source missing from the repository: $src" >&2; exit 1; }
        case "$dest" in
            */) target="$ctx/${dest#./}$(basename "$src")" ;;
            *) target="$ctx/${dest#./}" ;;
        esac
        mkdir -p "$(dirname "$target")"
        cp -R "$root/$src" "$target"
        copied=$((copied + 1))
    done
done < <(printf '%s\n' "$stage" | grep '^COPY ')
[ "$copied" -gt 0 ] || { echo "the build stage copies nothing" >&2; exit 1; }

build="$(printf '%s\n' "$stage" | grep '^RUN .*cargo build' | sed 's/^RUN //')"
[ -n "$build" ] || { echo "no cargo build in the build stage" >&2; exit 1; }
echo "build context (as WORKDIR $workdir):"; (cd "$ctx" && find . -maxdepth 1 | sort | sed 's/^/  /')
mkdir -p "$root/target"
ln -s "$root/target" "$ctx/target"
echo "running: $build"
(cd "$ctx" && bash -c "$build")
echo "the Docker build stage compiles from its own COPY lines"
