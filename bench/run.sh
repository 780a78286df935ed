#!/usr/bin/env bash
# Builds and runs the side-by-side benchmarks and keeps bench/RESULTS.md.
# Uses DATABASE_URL when set, otherwise a throwaway cluster; installs wrk
# (the web workload's load generator) when it is missing.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
server=$(psql "${DATABASE_URL:-postgres://postgres@127.0.0.1/postgres}" -Atc 'SHOW server_version' 2>/dev/null || echo "a throwaway cluster")
export BENCH_MACHINE="$(nproc) cores (${cpu:-unknown CPU}), $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -sr), PostgreSQL ${server} on the same machine over TCP loopback, rustc $(rustc --version | cut -d' ' -f2), release build"
export BENCH_RESULTS="$PWD/RESULTS.md"

cargo build --release
./target/release/gino-bench
