#!/usr/bin/env bash
# Every serving configuration of docs/performance.md (Serving) three times, one after another
# (ROUND=k writes runs 3k-2..3k, so that rounds at other hours sit beside each other),
# alone on the machine; the indexes are built by the commands there.
set -euo pipefail
export HASHSEARCH_CACHE=${HASHSEARCH_CACHE:-/tmp/hscache}
D=../shared/data/cifar10-jpg.tar.gz
ROUND=${ROUND:-1}
for i in 1 2 3; do
  n=$(( (ROUND - 1) * 3 + i ))
  for cfg in "/tmp/ix48 1 full-1search" "/tmp/ixfast48 1 fast-1search" "/tmp/ixfast48 2 fast-2search" \
      "/tmp/ixfast48-noflip 0 fast-noflip-thread" "/tmp/ixfast48-noflip 1 fast-noflip-1search" \
      "/tmp/ixfast48-noflip 2 fast-noflip-2search"; do
    set -- $cfg
    python benchmarks/load.py --index $1 --workers $2 --data $D --out docs/load/$3-run$n.json > /tmp/load-$3-run$n.log 2>&1 \
      || { echo "$3 run $n failed: /tmp/load-$3-run$n.log"; exit 1; }
    echo "$3 run $n done"
  done
done
