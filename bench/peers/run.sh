#!/usr/bin/env bash
# bench/peers/run.sh [--run] [PEER...]    PEER: hostpull containerd podman skopeo-umoci (default: all, in that order)
#
# One run, one private docker-registry, one set of images: every peer pulls and unpacks the same
# three composites (the steps of ../shared/bench/peers, scaled down to about 45 MB of payload):
#   step 1 cold  GRD7.0-JDK11.0-MVN3.8
#   step 2 warm  GRD7.0-JDK11.0-MVN3.7   (only MVN3.7 is new)
#   step 3 warm  GRD7.0-JDK17.0-MVN3.8   (only JDK17.0 is new)
# With --run, each step instead runs `/bin/busybox echo ready` in a container of the composite and
# times the command from its start to the container's first line of output:
#   step 1 cold  GRD7.0-JDK11.0-MVN3.8
#   step 2 warm  GRD7.0-JDK17.0-MVN3.7   (JDK17.0 and MVN3.7 are new)
#   step 3 warm  GRD7.0-JDK11.0-MVN3.7   (a new combination whose every layer is already here)
#   step 4 again GRD7.0-JDK11.0-MVN3.7   (the same image once more)
# hostpull runs `hostpull run`, containerd `ctr image pull` + `ctr run --rm`, podman `podman run
# --rm`, skopeo-umoci `skopeo copy` + `umoci unpack` + `runc run`; all with runc.
# hostpull's server synthesises the composites and pushes them into the registry (prepare.mjs), so
# all four tools fetch identical manifests and blobs from it. Per step it prints wall time of the
# tool's command(s), bytes the registry served (its access log), and disk used by the tool's whole
# state dir (du -B1), then the same figures as ratios to hostpull.
#
# Needs root, docker-registry, containerd/ctr, podman, skopeo, umoci, runc, jq, and the project
# built (npm run build; set SKIP_BUILD=1 to use dist/ as it is). Not run in CI.
# WORK (default /tmp/hostpull-peers) holds everything. On this machine / is ext4 without a
# journal: deleting thousands of files slows file creation for minutes afterwards, so nothing is
# deleted while measuring; old state goes to $WORK/trash, emptied at the very end (KEEP=1 keeps it).
# SETTLE_S (default 0) waits that long after the last emptying of the trash before measuring.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
W=${WORK:-/tmp/hostpull-peers}
MODE=pull
if [[ ${1:-} == --run ]]; then MODE=run; shift; fi
PEERS=("$@"); ((${#PEERS[@]})) || PEERS=(hostpull containerd podman skopeo-umoci)
# canonical (sorted) form
if [[ $MODE == run ]]; then
  TAGS=(GRD7.0-JDK11.0-MVN3.8 GRD7.0-JDK17.0-MVN3.7 GRD7.0-JDK11.0-MVN3.7 GRD7.0-JDK11.0-MVN3.7)
else
  TAGS=(GRD7.0-JDK11.0-MVN3.8 GRD7.0-JDK11.0-MVN3.7 GRD7.0-JDK17.0-MVN3.8)
fi
mkdir -p "$W/trash" "$W/registry/data"
RES=$W/results.csv
echo "peer,step,tag,wall_s,bytes,requests,disk_bytes,info" > "$RES"
[[ $MODE == run ]] && RES=$W/results-run.csv && echo "peer,step,tag,first_output_s,bytes,requests,disk_bytes,info" > "$RES"

source "$HERE/lib.sh"

REG_PID="" CTD_PID=""
cleanup() {
  [[ -n $CTD_PID ]] && kill "$CTD_PID" 2>/dev/null && wait "$CTD_PID" 2>/dev/null || true
  [[ -n $REG_PID ]] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  umount_under "$W"
  if [[ -z ${KEEP:-} ]]; then rm -rf "$W/trash"; date +%s > "$W/.last-mass-delete"; fi
}
trap cleanup EXIT

if [[ -f $W/.last-mass-delete && ${SETTLE_S:-0} -gt 0 ]]; then
  wait_s=$(( $(cat "$W/.last-mass-delete") + SETTLE_S - $(date +%s) ))
  if (( wait_s > 0 )); then echo "settling ${wait_s}s after the last mass delete"; sleep "$wait_s"; fi
fi

[[ -n ${SKIP_BUILD:-} ]] || (cd "$REPO" && npm run --silent build:ts)
HOSTPULL=(node "$REPO/dist/cli/main.js")

# ---------------------------------------------------------------- registry (free loopback port)
start_registry

echo "preparing images in $REG ..."
node "$HERE/prepare.mjs" "$REG" > "$W/images.json"
jq -c '.tags' "$W/images.json"

# ---------------------------------------------------------------- peers
HP=$W/hostpull
hostpull_wipe() { trash "$HP"; mkdir -p "$HP"; }
hostpull_step() { "${HOSTPULL[@]}" --root "$HP" pull --no-daemon --json "$REG/hostpull:$1" > "$W/.hostpull.json"; }
hostpull_dir()  { echo "$HP"; }
# in-process pull time (phases.total) apart from the wall time, which includes starting Node
hostpull_info() { INFO="client_bytes=$(jq .bytesFetched "$W/.hostpull.json") layer_hits=$(jq .layerHits "$W/.hostpull.json") pull_ms=$(jq .phases.total "$W/.hostpull.json")"; }

CD=$W/containerd
CSOCK=$CD/containerd.sock
containerd_wipe() {
  if [[ -n $CTD_PID ]]; then kill "$CTD_PID"; wait "$CTD_PID" 2>/dev/null || true; CTD_PID=""; fi
  umount_under "$CD"; trash "$CD"; mkdir -p "$CD"
  cat > "$CD/config.toml" <<TOML
version = 2
root = "$CD/root"
state = "$CD/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CSOCK"
[ttrpc]
  address = "$CSOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CD/opt"
TOML
  /usr/bin/containerd --config "$CD/config.toml" >>"$CD/containerd.log" 2>&1 < /dev/null &
  CTD_PID=$!
  for _ in $(seq 1 100); do ctr --address "$CSOCK" version >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "containerd did not start; see $CD/containerd.log" >&2; return 1
}
containerd_step() { ctr --address "$CSOCK" -n bench image pull --plain-http "$REG/hostpull:$1"; }
containerd_dir()  { echo "$CD/root"; }
containerd_info() { INFO="snapshots=$(ctr --address "$CSOCK" -n bench snapshots ls | tail -n +2 | wc -l)"; }

PM=$W/podman
PODMAN=(podman --root "$PM/root" --runroot "$PM/runroot" --storage-driver overlay --events-backend file --cgroup-manager cgroupfs --log-level error)
podman_wipe() { umount_under "$PM"; trash "$PM"; mkdir -p "$PM"; }
podman_step() { "${PODMAN[@]}" pull -q --tls-verify=false "$REG/hostpull:$1"; }
podman_dir()  { echo "$PM/root"; }
podman_info() { INFO="layers=$(jq length "$PM/root/overlay-layers/layers.json" 2>/dev/null || echo '?')"; }

SU=$W/skopeo-umoci
skopeo-umoci_wipe() { trash "$SU"; mkdir -p "$SU/bundles"; }
skopeo-umoci_step() {
  local t0 t1
  t0=$(now)
  skopeo copy -q --src-tls-verify=false "docker://$REG/hostpull:$1" "oci:$SU/layout:$1"
  t1=$(now)
  umoci unpack --image "$SU/layout:$1" "$SU/bundles/$1"
  echo "copy_s=$(elapsed "$t0" "$t1") unpack_s=$(elapsed "$t1" "$(now)")" > "$SU/.split"
}
skopeo-umoci_dir()  { echo "$SU"; }
skopeo-umoci_info() { INFO=$(cat "$SU/.split"); }

# --run: each peer's way to start `/bin/busybox echo ready` in a container of the composite.
RUNC_ROOT=$W/runc-state
hostpull_run() { "${HOSTPULL[@]}" --root "$HP" run "$REG/hostpull:$1" -- /bin/busybox echo ready; }
containerd_run() {
  ctr --address "$CSOCK" -n bench image pull --plain-http "$REG/hostpull:$1" >&2
  ctr --address "$CSOCK" -n bench run --rm "$REG/hostpull:$1" "bench-$2" /bin/busybox echo ready
}
# podman asks runc for higher rlimits than conmon may set here (EPERM at container init): ask for less.
podman_run() { "${PODMAN[@]}" run --rm -q --tls-verify=false --runtime runc --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 "$REG/hostpull:$1" /bin/busybox echo ready; }
skopeo-umoci_run() {
  local b=$SU/bundles/$1-$2
  skopeo copy -q --src-tls-verify=false "docker://$REG/hostpull:$1" "oci:$SU/layout:$1" >&2
  umoci unpack --image "$SU/layout:$1" "$b" >&2
  jq '.process.terminal = false | .process.args = ["/bin/busybox", "echo", "ready"]' "$b/config.json" > "$b/config.json.new"
  mv "$b/config.json.new" "$b/config.json"
  runc --root "$RUNC_ROOT" run --bundle "$b" "bench-su-$2"
}
# Seconds from now until "$@" prints its first line (which must be "ready"); fails if it fails.
first_output() {
  local t0 t1
  t0=$(now)
  t1=$("$@" | { IFS= read -r line && [[ $line == ready ]] && now; cat > /dev/null; }) || return 1
  [[ -n $t1 ]] || return 1
  elapsed "$t0" "$t1"
}

for p in "${PEERS[@]}"; do
  "${p}_wipe"
  sync
  step=0
  for tag in "${TAGS[@]}"; do
    step=$((step + 1))
    sync
    mark=$(reg_lines)
    t0=$(now)
    if [[ $MODE == run ]]; then
      if ! first=$(first_output "${p}_run" "$tag" "$step" 2> "$W/$p-run$step.log"); then
        echo "FAILED: $p run step $step ($tag); see $W/$p-run$step.log" >&2
        cat "$W/$p-run$step.log" >&2
        exit 1
      fi
      sleep 0.3
      read -r bytes nreq < <(reg_bytes "$mark")
      disk=$(du_bytes "$("${p}_dir")")
      echo "$p,$step,$tag,$first,$bytes,$nreq,$disk," >> "$RES"
      printf '%-13s run %d %-22s first output %7ss  fetched %10d B (%2d GETs)  disk %11d B\n' "$p" "$step" "$tag" "$first" "$bytes" "$nreq" "$disk"
      continue
    fi
    if ! "${p}_step" "$tag" > "$W/$p-step$step.log" 2>&1; then
      echo "FAILED: $p step $step ($tag); see $W/$p-step$step.log" >&2
      cat "$W/$p-step$step.log" >&2
      exit 1
    fi
    t1=$(now)
    sleep 0.3 # the registry logs a request just after answering it
    read -r bytes nreq < <(reg_bytes "$mark")
    disk=$(du_bytes "$("${p}_dir")")
    INFO=""; "${p}_info"
    echo "$p,$step,$tag,$(elapsed "$t0" "$t1"),$bytes,$nreq,$disk,$INFO" >> "$RES"
    printf '%-13s step %d %-22s wall %7ss  fetched %10d B (%2d GETs)  disk %11d B  %s\n' "$p" "$step" "$tag" "$(elapsed "$t0" "$t1")" "$bytes" "$nreq" "$disk" "$INFO"
  done
done

echo
echo "Ratios to hostpull (peer / hostpull) per step; results in $RES"
time_col=wall; [[ $MODE == run ]] && time_col=first-out
awk -F, -v tc="$time_col" 'NR > 1 { k = $2; if ($1 == "hostpull") { hw[k] = $4; hb[k] = $5; hd[k] = $7 } row[++n] = $0 }
  END {
    printf "%-13s %-5s %10s %10s %10s\n", "peer", "step", tc, "fetched", "disk"
    for (i = 1; i <= n; i++) {
      split(row[i], f, ",")
      k = f[2]
      if (!(k in hw)) { printf "%-13s %-5s %10s %10s %10s\n", f[1], k, "-", "-", "-"; continue }
      printf "%-13s %-5s %9.2fx %9.2fx %9.2fx\n", f[1], k, (hw[k] > 0 ? f[4] / hw[k] : 0), (hb[k] > 0 ? f[5] / hb[k] : 0), (hd[k] > 0 ? f[7] / hd[k] : 0)
    }
  }' "$RES"
