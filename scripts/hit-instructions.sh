#!/usr/bin/env bash
# Instructions per hit under callgrind: deterministic, unlike wall-clock time
# on a shared VM. Prints one line per variant and the ratios to raw moka.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
cargo bench --bench hit_instructions --no-run 2>/dev/null
bin=$(ls -t target/release/deps/hit_instructions-* | grep -v '\.d$' | head -1)
instructions() { # variant hits
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
declare -A per_hit
for variant in moka moka_ttl herdcache herdcache_policies herdcache_tags herdcache_three_tags cached quick herdcache_quick hashmap; do
  low=$(instructions "$variant" 100000)
  high=$(instructions "$variant" 300000)
  per_hit[$variant]=$(( (high - low) / 200000 ))
  echo "$variant: ${per_hit[$variant]} instructions per hit"
done
awk -v h="${per_hit[herdcache]}" -v p="${per_hit[herdcache_policies]}" -v g="${per_hit[herdcache_tags]}" -v g3="${per_hit[herdcache_three_tags]}" -v m="${per_hit[moka]}" -v t="${per_hit[moka_ttl]}" -v c="${per_hit[cached]}" \
  -v q="${per_hit[quick]}" -v hq="${per_hit[herdcache_quick]}" \
  'BEGIN { printf "herdcache / moka = %.2f, herdcache / moka with the same ttl = %.2f, every policy / moka = %.2f, two tags / moka = %.2f, three tags / moka = %.2f, cached crate / moka = %.2f, herdcache quick tier / raw quick_cache = %.2f\n", h / m, h / t, p / m, g / m, g3 / m, c / m, hq / q }'
