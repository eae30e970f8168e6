#!/usr/bin/env bash
# Build time of a crate of 200 #[cached] functions: generates it in a
# temporary folder (depending on this checkout by path), builds it once for
# its dependencies, then times three rebuilds of the crate alone.
#
#   scripts/build-time.sh                                   # ttl only
#   scripts/build-time.sh 'ttl = "60s", swr = "30s", fail_safe = "10m"'
set -euo pipefail
attrs=${1:-'ttl = "60s"'}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/src"
cat > "$dir/Cargo.toml" <<TOML
[package]
name = "build-time"
version = "0.1.0"
edition = "2021"

[dependencies]
herdcache = { path = "$root" }
tokio = { version = "1", features = ["rt-multi-thread", "macros", "time"] }

[workspace]
TOML
{
  echo "use herdcache::cached;"
  for i in $(seq 0 199); do
    cat <<RUST

#[cached($attrs)]
pub async fn lookup_$i(id: u64, region: &str) -> Result<String, std::io::Error> {
    if id == u64::MAX {
        return Err(std::io::Error::other("no such id"));
    }
    let parts: Vec<String> = (0..id % 7).map(|n| format!("{region}-{n}")).collect();
    tokio::task::yield_now().await;
    Ok(format!("$i:{id}:{}", parts.join(",")))
}
RUST
  done
} > "$dir/src/lib.rs"
cd "$dir"
cargo build -q
for run in 1 2 3; do
  touch src/lib.rs
  start=$(date +%s.%N)
  cargo build -q
  end=$(date +%s.%N)
  echo "rebuild $run: $(echo "$end - $start" | bc) s"
done
