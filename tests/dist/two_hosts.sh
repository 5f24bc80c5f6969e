#!/bin/sh
# Data-parallel training across two "hosts" made on this machine: two network
# namespaces joined by a veth pair, 10.213.7.1 and 10.213.7.2, each with its
# own host name (a UTS namespace). mpirun runs in the first and starts its
# daemon in the second through a launch agent (--mca plm_rsh_agent) that
# runs the command there with `ip netns exec` instead of ssh; the ranks talk
# TCP over the veth pair only. Nothing leaves the machine.
#   two_hosts.sh DIST_TRAIN DATA
# Trains 5 steps on 2 ranks, one per host, and compares the losses with one
# rank on the same global batch (dist_train checks that both hosts hold the
# same parameter bits after every step). Needs root (CAP_SYS_ADMIN and
# CAP_NET_ADMIN); exits 77 with the reason where namespaces cannot be made.
# The namespaces are removed however the run ends.
set -eu
dist_train=${1:?usage: two_hosts.sh DIST_TRAIN DATA}
data=${2:?usage: two_hosts.sh DIST_TRAIN DATA}
tag="vit$$"
ns_a="$tag-a" ns_b="$tag-b"
addr_a=10.213.7.1 addr_b=10.213.7.2 net=10.213.7.0/24
tmp=$(mktemp -d)

cleanup() {
    for ns in "$ns_a" "$ns_b"; do
        # Processes this script started inside its namespaces, by their ids.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

skip() { echo "SKIP: two_hosts: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "network namespaces need root"
command -v ip >/dev/null || skip "ip (iproute2) is not installed"
command -v unshare >/dev/null || skip "unshare (util-linux) is not installed"
ip netns add "$ns_a" 2>"$tmp/err" || skip "cannot create a network namespace here: $(cat "$tmp/err")"
ip netns add "$ns_b"
ip link add "$tag-va" type veth peer name "$tag-vb" 2>"$tmp/err" || skip "cannot create a veth pair: $(cat "$tmp/err")"
ip link set "$tag-va" netns "$ns_a"
ip link set "$tag-vb" netns "$ns_b"
ip -n "$ns_a" addr add "$addr_a/24" dev "$tag-va"
ip -n "$ns_b" addr add "$addr_b/24" dev "$tag-vb"
for ns in "$ns_a" "$ns_b"; do
    ip -n "$ns" link set lo up
done
ip -n "$ns_a" link set "$tag-va" up
ip -n "$ns_b" link set "$tag-vb" up

# The launch agent: "agent HOST COMMAND..." as ssh would be called; runs the
# command in HOST's namespace under HOST's own name.
cat >"$tmp/agent" <<EOF
#!/bin/sh
host=\$1
shift
case "\$host" in
    $addr_a) ns=$ns_a name=vit-host-a ;;
    $addr_b) ns=$ns_b name=vit-host-b ;;
    *) echo "agent: unknown host \$host" >&2; exit 255 ;;
esac
exec ip netns exec "\$ns" unshare --uts sh -c "hostname \$name; \$*"
EOF
chmod +x "$tmp/agent"
printf '%s slots=1\n%s slots=1\n' "$addr_a" "$addr_b" >"$tmp/hosts"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
args="--data $data --steps 5 --global-batch 48"
mpirun -np 1 --mca btl tcp,self --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
    "$dist_train" $args >"$tmp/one.json" 2>"$tmp/one.err" || { cat "$tmp/one.err"; echo "FAIL: one rank"; exit 1; }
echo "two_hosts: mpirun on $addr_a (namespace $ns_a), a rank on each of $addr_a and $addr_b"
rc=0
timeout 300 ip netns exec "$ns_a" unshare --uts sh -c "hostname vit-host-a; exec mpirun -np 2 --hostfile $tmp/hosts \
    --map-by node --mca plm_rsh_agent $tmp/agent --mca btl tcp,self --mca btl_tcp_if_include $net \
    --mca oob_tcp_if_include $net --mca orte_keep_fqdn_hostnames 1 \
    $dist_train $args --print-host" >"$tmp/two.json" 2>"$tmp/two.err" || rc=$?
cat "$tmp/two.err"
[ "$rc" -eq 0 ] || { echo "FAIL: two hosts: exit status $rc"; exit 1; }
/usr/bin/python3 - "$tmp/one.json" "$tmp/two.json" <<'PY'
import json, sys
one, two = ([json.loads(l) for l in open(p) if l.startswith("{")] for p in sys.argv[1:3])
assert len(one) == len(two) == 5, (one, two)
worst = max(abs(a["loss"] - b["loss"]) for a, b in zip(one, two))
print(f"two_hosts: 5 steps, largest |loss(2 hosts) - loss(1 rank)| = {worst:.3g}")
if worst > 1e-5:
    sys.exit("FAIL: the losses differ by more than 1e-5")
PY
grep -q "rank 1 of 2 on vit-host-b" "$tmp/two.err" || { echo "FAIL: rank 1 did not run on the second host"; exit 1; }
echo "PASS: two_hosts"
