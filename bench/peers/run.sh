#!/usr/bin/env bash
# bench/peers/run.sh [--run] [--full] [PEER...]
#   PEER: hostpull hostpull-daemon containerd podman skopeo-umoci floor
#   default: hostpull hostpull-daemon containerd podman skopeo-umoci floor (with --full: no skopeo-umoci)
#
# One run, one private docker-registry, one set of images: every peer pulls and unpacks the same
# three composites (the steps of ../shared/bench/peers):
#   step 1 cold  GRD7.0-JDK11.0-MVN3.8
#   step 2 warm  GRD7.0-JDK11.0-MVN3.7   (only MVN3.7 is new)
#   step 3 warm  GRD7.0-JDK17.0-MVN3.8   (only JDK17.0 is new)
# By default the images are scaled down to about 45 MB of payload (process start-up weighs more
# there); with --full they are the full-size images of ../shared/bench/peers (209 MB gzip / 346 MB
# unpacked for step 1), built by its make-images.sh into $PEERBENCH/images (default
# /tmp/peerbench; built here if missing, against this run's registry, which takes about a
# minute plus the settle wait below).
# `floor` is the physical floor of a pull: for each layer not extracted before, in parallel,
# `curl blob | pigz -dc | tar -xf -` into a directory per digest (no verification, no store).
# With --run, each step instead runs `/bin/busybox echo ready` in a container of the composite and
# times the command from its start to the container's first line of output:
#   step 1 cold  GRD7.0-JDK11.0-MVN3.8
#   step 2 warm  GRD7.0-JDK17.0-MVN3.7   (JDK17.0 and MVN3.7 are new)
#   step 3 warm  GRD7.0-JDK11.0-MVN3.7   (a new combination whose every layer is already here)
#   step 4 again GRD7.0-JDK11.0-MVN3.7   (the same image once more)
# hostpull runs `hostpull run`, containerd `ctr image pull` + `ctr run --rm`, podman `podman run
# --rm`, skopeo-umoci `skopeo copy` + `umoci unpack` + `runc run`; all with runc.
# hostpull's server synthesises the composites and pushes them into the registry (prepare.mjs), so
# all tools fetch identical manifests and blobs from it. Per step it records wall time of the
# tool's command(s), bytes the registry served (its access log), disk used by the tool's whole
# state dir (du -B1) and, for hostpull, its peak RSS and CPU time; REPS repetitions (default 3
# with --full, else 1), each from an empty cache, the peers' order varied per repetition (a
# Williams design: each tool follows each other one about equally often).
# It prints medians per step as ratios to the floor (to hostpull without a floor, and for --run),
# and the disk after step 3.
#
# Needs root, docker-registry, containerd/ctr, podman, skopeo, umoci, runc, jq, curl, pigz, and
# the project built (npm run build; set SKIP_BUILD=1 to use dist/ as it is; HOSTPULL_CLI=PATH runs
# another build's dist/cli/hostpull, the command users run, e.g. to compare two versions; a
# main.js there runs with node, without the startup snapshot). Not run in CI.
# WORK (default /tmp/hostpull-peers) holds everything. On this machine / is ext4 without a
# journal: deleting thousands of files slows file creation for minutes afterwards, so nothing is
# deleted while measuring; old state goes to $WORK/trash, emptied at the very end (KEEP=1 keeps it).
# SETTLE_S (default 0, with --full 370) waits that long after the last mass delete (ours, or
# make-images.sh's) before measuring.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
W=${WORK:-/tmp/hostpull-peers}
MODE=pull FULL=0
while [[ ${1:-} == --* ]]; do
  case $1 in
    --run) MODE=run ;;
    --full) FULL=1 ;;
    *) echo "usage: $0 [--run] [--full] [PEER...]" >&2; exit 2 ;;
  esac
  shift
done
PEERS=("$@")
if ((${#PEERS[@]} == 0)); then
  if [[ $MODE == run ]]; then PEERS=(hostpull containerd podman skopeo-umoci)
  elif ((FULL)); then PEERS=(hostpull hostpull-daemon containerd podman floor)
  else PEERS=(hostpull hostpull-daemon containerd podman skopeo-umoci floor); fi
fi
if [[ $MODE == run && " ${PEERS[*]} " == *" floor "* ]]; then echo "the floor only pulls; it has no --run" >&2; exit 2; fi
if [[ $MODE == run && " ${PEERS[*]} " == *" hostpull-daemon "* ]]; then echo "hostpull-daemon only pulls; it has no --run" >&2; exit 2; fi
REPS=${REPS:-$((FULL ? 3 : 1))}
SETTLE_S=${SETTLE_S:-$((FULL ? 370 : 0))}
PEERBENCH=${PEERBENCH:-/tmp/peerbench}
PEERBENCH_SCRIPTS=${PEERBENCH_SCRIPTS:-$REPO/../shared/bench/peers}
# canonical (sorted) form
if [[ $MODE == run ]]; then
  TAGS=(GRD7.0-JDK11.0-MVN3.8 GRD7.0-JDK17.0-MVN3.7 GRD7.0-JDK11.0-MVN3.7 GRD7.0-JDK11.0-MVN3.7)
else
  TAGS=(GRD7.0-JDK11.0-MVN3.8 GRD7.0-JDK11.0-MVN3.7 GRD7.0-JDK17.0-MVN3.8)
fi
mkdir -p "$W/trash" "$W/registry/data"
RES=$W/results.csv
echo "peer,rep,step,tag,wall_s,bytes,requests,disk_bytes,rss_kb,cpu_s,info" > "$RES"
[[ $MODE == run ]] && RES=$W/results-run.csv && echo "peer,rep,step,tag,first_output_s,bytes,requests,disk_bytes,rss_kb,cpu_s,info" > "$RES"

source "$HERE/lib.sh"

REG_PID="" CTD_PID="" HD_PID=""
cleanup() {
  [[ -n $HD_PID ]] && kill "$HD_PID" 2>/dev/null && wait "$HD_PID" 2>/dev/null || true
  [[ -n $CTD_PID ]] && kill "$CTD_PID" 2>/dev/null && wait "$CTD_PID" 2>/dev/null || true
  [[ -n $REG_PID ]] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  umount_under "$W"
  if [[ -z ${KEEP:-} ]]; then rm -rf "$W/trash"; date +%s > "$W/.last-mass-delete"; fi
}
trap cleanup EXIT

# Waits until SETTLE_S seconds have passed since the last mass delete we know of.
settle() {
  local f last=0 t
  for f in "$W/.last-mass-delete" "$PEERBENCH/.last-mass-delete"; do
    [[ -f $f ]] && t=$(cat "$f") && ((t > last)) && last=$t
  done
  local wait_s=$((last + SETTLE_S - $(date +%s)))
  if ((SETTLE_S > 0 && wait_s > 0)); then echo "settling ${wait_s}s after the last mass delete (SETTLE_S=$SETTLE_S)"; sleep "$wait_s"; fi
  return 0
}

[[ -n ${SKIP_BUILD:-} ]] || (cd "$REPO" && npm run --silent build:ts)
HOSTPULL_CLI=${HOSTPULL_CLI:-$REPO/dist/cli/hostpull}
if [[ $HOSTPULL_CLI == *.js ]]; then HOSTPULL=(node "$HOSTPULL_CLI"); else HOSTPULL=("$HOSTPULL_CLI"); fi

# ---------------------------------------------------------------- registry (free loopback port)
start_registry

echo "preparing images in $REG ..."
if ((FULL)); then
  LAYERS=$PEERBENCH/images/layers
  if [[ ! -f $LAYERS/base.json || ! -f $LAYERS/GRD7.0.tar.gz ]]; then
    echo "building the full-size layers into $PEERBENCH/images with $PEERBENCH_SCRIPTS/make-images.sh ..."
    PB=$PEERBENCH REGISTRY=$REG SKIP_BUILD=0 "$PEERBENCH_SCRIPTS/make-images.sh" > "$W/make-images.log" 2>&1 || { cat "$W/make-images.log" >&2; exit 1; }
  fi
  node "$HERE/prepare.mjs" "$REG" --layers "$LAYERS" > "$W/images.json"
else
  node "$HERE/prepare.mjs" "$REG" > "$W/images.json"
fi
jq -c '.tags' "$W/images.json"

# ---------------------------------------------------------------- peers
HP=$W/hostpull
hostpull_wipe() { trash "$HP"; mkdir -p "$HP"; }
# /usr/bin/time for hostpull's peak RSS and CPU (user+sys) of the whole process.
hostpull_step() { /usr/bin/time -f '%M %U %S' -o "$W/.hostpull.time" "${HOSTPULL[@]}" --root "$HP" pull --no-daemon --json "$REG/hostpull:$1" > "$W/.hostpull.json"; }
hostpull_dir()  { echo "$HP"; }
# in-process pull time (phases.total) apart from the wall time, which includes starting Node
hostpull_info() {
  read -r RSS_KB user sys < "$W/.hostpull.time"
  CPU_S=$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')
  INFO="client_bytes=$(jq .bytesFetched "$W/.hostpull.json") layer_hits=$(jq .layerHits "$W/.hostpull.json") pull_ms=$(jq .phases.total "$W/.hostpull.json")"
}

# hostpull-daemon: the same pull served by a running `hostpull daemon` (how a node runs it, as a
# systemd service; containerd is measured the same way, `ctr` asking its daemon). The wall time
# is the CLI's, which asks the daemon over its socket; peak RSS and CPU are the daemon's (CPU: its
# time since the previous step, from /proc). A step the daemon did not serve (the CLI fell back to
# working in-process) fails the run: the daemon's pull counter must move. Both are read after the
# timed command, not inside it.
HD=$W/hostpull-daemon
HD_SOCK=$HD/daemon.sock
HD_PID=""
hostpull-daemon_stop() { if [[ -n $HD_PID ]]; then kill "$HD_PID"; wait "$HD_PID" 2>/dev/null || true; HD_PID=""; fi; }
hostpull_daemon_pulls() { curl -fsS --unix-socket "$HD_SOCK" http://hostpull/metrics | awk '/^hostpull_pulls_total/ {n += $2} END {print n + 0}'; }
hostpull_daemon_cpu_ticks() { awk '{print $14 + $15}' "/proc/$HD_PID/stat"; }
hostpull-daemon_wipe() {
  hostpull-daemon_stop
  trash "$HD"; mkdir -p "$HD"
  "${HOSTPULL[@]}" --root "$HD/root" daemon --socket "$HD_SOCK" >>"$W/hostpull-daemon.log" 2>&1 < /dev/null &
  HD_PID=$!
  for _ in $(seq 1 100); do
    if curl -fsS --unix-socket "$HD_SOCK" http://hostpull/v1/health >/dev/null 2>&1; then
      HD_PULLS=$(hostpull_daemon_pulls) HD_TICKS=$(hostpull_daemon_cpu_ticks)
      return 0
    fi
    sleep 0.1
  done
  echo "hostpull daemon did not start; see $W/hostpull-daemon.log" >&2; return 1
}
hostpull-daemon_step() { "${HOSTPULL[@]}" --root "$HD/root" pull --socket "$HD_SOCK" --json "$REG/hostpull:$1" > "$W/.hostpull-daemon.json"; }
hostpull-daemon_dir()  { echo "$HD/root"; }
hostpull-daemon_info() {
  local pulls ticks
  pulls=$(hostpull_daemon_pulls) ticks=$(hostpull_daemon_cpu_ticks)
  if ((pulls != HD_PULLS + 1)); then echo "FAILED: the daemon did not serve this pull (its pull counter went from $HD_PULLS to $pulls)" >&2; exit 1; fi
  RSS_KB=$(awk '/^VmHWM:/ {print $2}' "/proc/$HD_PID/status")
  CPU_S=$(awk -v a="$HD_TICKS" -v b="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b - a) / hz}')
  HD_PULLS=$pulls HD_TICKS=$ticks
  INFO="client_bytes=$(jq .bytesFetched "$W/.hostpull-daemon.json") layer_hits=$(jq .layerHits "$W/.hostpull-daemon.json") pull_ms=$(jq .phases.total "$W/.hostpull-daemon.json")"
}

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

FL=$W/floor
floor_wipe() { trash "$FL"; mkdir -p "$FL/layers" "$FL/meta"; }
# Manifest and config with curl, then every layer not extracted before, all at once, each
# streamed straight into tar: what a per-digest store must do at the very least.
floor_step() {
  local m=$FL/meta/$1.json d h pids=() pid rc=0
  curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' -o "$m" "http://$REG/v2/hostpull/manifests/$1"
  d=$(jq -r .config.digest "$m")
  curl -fsS -o "$FL/meta/${d#sha256:}.json" "http://$REG/v2/hostpull/blobs/$d"
  for d in $(jq -r '.layers[].digest' "$m"); do
    h=${d#sha256:}
    [[ -d $FL/layers/$h ]] && continue
    mkdir -p "$FL/layers/$h"
    (curl -fsS "http://$REG/v2/hostpull/blobs/$d" | pigz -dc | tar -xf - -C "$FL/layers/$h") &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  return $rc
}
floor_dir()  { echo "$FL"; }
floor_info() { INFO="layers=$(ls "$FL/layers" | wc -l)"; }

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

# The peers' order in repetition $1 (from 1): a row of a Williams design (n rows shifting the
# sequence 0, 1, n-1, 2, n-2, ..., then the same rows reversed), so no tool always runs first,
# and over the repetitions each runs right after each other one about equally often: what a tool
# leaves behind, on the disk or in the page cache, is then not always the same one's handicap.
# (Rotating the list by one per repetition, as before, kept every tool behind the same neighbour:
# in-process hostpull always ran right after the floor, the daemon right after it.)
peer_order() {
  local n=${#PEERS[@]} j f
  local r=$((($1 - 1) % (2 * n)))
  local order=()
  for ((j = 0; j < n; j++)); do
    if ((j == 0)); then f=0; elif ((j % 2)); then f=$(((j + 1) / 2)); else f=$((n - j / 2)); fi
    order+=("${PEERS[$(((r + f) % n))]}")
  done
  if ((r >= n)); then for ((j = n - 1; j >= 0; j--)); do printf '%s\n' "${order[j]}"; done
  else printf '%s\n' "${order[@]}"; fi
}

settle
for rep in $(seq 1 "$REPS"); do
mapfile -t ORDER < <(peer_order "$rep")
echo "rep $rep order: ${ORDER[*]}"
for p in "${ORDER[@]}"; do
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
      echo "$p,$rep,$step,$tag,$first,$bytes,$nreq,$disk,,," >> "$RES"
      printf '%-13s rep %d run %d %-22s first output %7ss  fetched %10d B (%2d GETs)  disk %11d B\n' "$p" "$rep" "$step" "$tag" "$first" "$bytes" "$nreq" "$disk"
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
    INFO="" RSS_KB="" CPU_S=""; "${p}_info"
    echo "$p,$rep,$step,$tag,$(elapsed "$t0" "$t1"),$bytes,$nreq,$disk,$RSS_KB,$CPU_S,$INFO" >> "$RES"
    printf '%-13s rep %d step %d %-22s wall %7ss  fetched %10d B (%2d GETs)  disk %11d B  %s\n' "$p" "$rep" "$step" "$tag" "$(elapsed "$t0" "$t1")" "$bytes" "$nreq" "$disk" "${RSS_KB:+rss ${RSS_KB} KB cpu ${CPU_S}s }$INFO"
  done
done
done

echo
echo "Results in $RES (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
node "$HERE/summarize.mjs" "$RES"
