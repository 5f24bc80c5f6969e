#!/bin/bash
# libvit against itself: vit-bench of two or more builds (meson build
# folders, e.g. one of main and one of a branch), interleaved run by run so
# that a slow spell of the machine hits every build alike, then the median
# images/s per build and workload and each build's ratio to the first.
#
#   bench/ab.sh BUILD_A BUILD_B [BUILD_C ...] [--workloads a,b] [--threads N]
#               [--repeat R] [--steps S] [--warmup W]
set -u
workloads=fmnist-train,tiny-c32-train,seed-b16-train,b16-infer-b1,b16-infer-b16
threads=2 repeat=3 steps=5 warmup=2 builds=()
while [ $# -gt 0 ]; do
    case $1 in
        --workloads|--threads|--repeat|--steps|--warmup)
            [ $# -ge 2 ] || { echo "ab.sh: $1 needs a value" >&2; exit 2; } ;;&
        --workloads) workloads=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        -*) echo "ab.sh: unknown option '$1'" >&2; exit 2 ;;
        *) builds+=("$1"); shift ;;
    esac
done
[ ${#builds[@]} -ge 2 ] || { sed -n '6,7s/^#//p' "$0" >&2; exit 2; }
for b in "${builds[@]}"; do
    [ -x "$b/examples/vit-bench" ] || { echo "ab.sh: no $b/examples/vit-bench" >&2; exit 1; }
done
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for r in $(seq "$repeat"); do
    for w in ${workloads//,/ }; do
        for b in "${builds[@]}"; do
            line=$("$b/examples/vit-bench" --workload "$w" --threads "$threads" --steps "$steps" \
                --warmup "$warmup" --json) || { echo "ab.sh: $b failed on $w" >&2; exit 1; }
            echo "$b $line" | tee -a "$results" >&2
        done
    done
done
${PYTHON:-python3} - "$results" "${builds[@]}" <<'EOF'
import json, statistics, sys
path, builds = sys.argv[1], sys.argv[2:]
runs = {}
for line in open(path):
    build, record = line.split(" ", 1)
    r = json.loads(record)
    runs.setdefault(r["workload"], {}).setdefault(build, []).append(r)
print("| workload | " + " | ".join(f"{b} img/s" for b in builds) + " | " +
      " | ".join(f"{b} ÷ {builds[0]}" for b in builds[1:]) + " | peak MiB |")
print("|---|" + "---:|" * (2 * len(builds)))
for w, by in runs.items():
    ips = [statistics.median(r["img_per_s"] for r in by[b]) for b in builds]
    mib = "/".join(f'{statistics.median(r["peak_rss_mib"] for r in by[b]):.0f}' for b in builds)
    print(f"| {w} | " + " | ".join(f"{v:.3f}" for v in ips) + " | " +
          " | ".join(f"{v / ips[0]:.3f}" for v in ips[1:]) + f" | {mib} |")
EOF
