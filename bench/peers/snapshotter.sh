#!/usr/bin/env bash
# bench/peers/snapshotter.sh — containerd CRI pulls (as a kubelet makes them) with hostpull as
# containerd's snapshotter, against containerd with its own overlayfs snapshotter, in one run,
# on the full-size images of ../shared/bench/peers (its make-images.sh builds them: base +
# JDK11.0/JDK17.0 + MVN3.8/MVN3.7 + GRD7.0, 209 MB gzip / 346 MB unpacked per image).
#   step 1 cold      GRD7.0-JDK11.0-MVN3.8
#   step 2 warm      GRD7.0-JDK11.0-MVN3.7   (MVN3.7 is new)
#   step 3 warm      GRD7.0-JDK17.0-MVN3.8   (JDK17.0 is new)
#   step 4 new-combo GRD7.0-JDK17.0-MVN3.7   (every layer already on the node)
# The composites are synthesised by `hostpull serve` from make-images.sh's package images and
# pushed into the registry, so both peers pull the very same manifests and blobs from it.
# Per step: PullImage time (timed inside the client, after it connected), bytes the registry served
# (its access log), disk of the peer's whole state (containerd root, plus hostpull's store for
# hostpull), then hostpull's figures as ratios to containerd-overlayfs.
#
#   PEERS_DIR  ../shared/bench/peers (default: next to the project)   REPS  repetitions (default 1)
#   WORK       /tmp/hostpull-snapbench: everything, kept after the run (KEEP=1 keeps the trash too)
#   SKIP_BUILD=1 uses dist/ as it is.  SETTLE_S (default 370) waits that long after make-images.sh's
#   deletes before measuring (ext4 without a journal, see below).
# Needs root, docker-registry, containerd/ctr, runc, pigz/gzip, jq, node, and the project built.
# On this machine / is ext4 without a journal: nothing is deleted while measuring (old state goes
# to $WORK/trash, emptied at the end), see ../shared/bench/peers/README.md.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PEERS_DIR=${PEERS_DIR:-$REPO/../shared/bench/peers}
W=${WORK:-/tmp/hostpull-snapbench}
REPS=${REPS:-1}
TAGS=(GRD7.0-JDK11.0-MVN3.8 GRD7.0-JDK11.0-MVN3.7 GRD7.0-JDK17.0-MVN3.8 GRD7.0-JDK17.0-MVN3.7)
PEERS=(containerd-overlayfs containerd-hostpull)
[[ -x $PEERS_DIR/make-images.sh ]] || { echo "no make-images.sh in $PEERS_DIR (set PEERS_DIR)" >&2; exit 2; }
mkdir -p "$W/trash" "$W/registry"
RES=$W/results.csv
echo "peer,rep,step,tag,pull_s,bytes,requests,disk_bytes,info" > "$RES"

source "$HERE/lib.sh"

REG_PID="" CTD_PID="" HP_PID=""
stop_pid() { [[ -n $1 ]] && kill "$1" 2>/dev/null && { wait "$1" 2>/dev/null || true; }; return 0; }
cleanup() {
  stop_pid "$CTD_PID"; stop_pid "$HP_PID"; stop_pid "$REG_PID"
  umount_under "$W"
  [[ -z ${KEEP:-} ]] && rm -rf "$W/trash"
  return 0
}
trap cleanup EXIT

[[ -n ${SKIP_BUILD:-} ]] || (cd "$REPO" && npm run --silent build:ts)

# ---------------------------------------------------------------- registry + images
start_registry

echo "building and pushing the full-size images into $REG (make-images.sh) ..."
PB=$W/peerbench REGISTRY=$REG FX_COMPOSITES="" SKIP_BUILD=0 bash "$PEERS_DIR/make-images.sh" > "$W/make-images.log" 2>&1 || { cat "$W/make-images.log" >&2; exit 1; }
node --input-type=module -e '
  const { synthesizeComposites } = await import(process.argv[1]);
  const [registry, ...tags] = process.argv.slice(2);
  const codes = ["JDK11.0", "JDK17.0", "MVN3.8", "MVN3.7", "GRD7.0"];
  const entries = Object.fromEntries(codes.map((c) => [c, { image: `pkg/${c.toLowerCase()}:latest`, prefix: `/opt/${c}`, pathAdd: [`/opt/${c}/bin`], group: c.replace(/[0-9.]+$/, "") }]));
  console.log(JSON.stringify(await synthesizeComposites(registry, entries, "pkg/base:latest", tags)));
' "$HERE/synthesize-composites.mjs" "$REG" "${TAGS[@]}" > "$W/composites.json"
jq -c . "$W/composites.json"
# make-images.sh deleted its staging trees: wait out ext4's inode-reuse window before measuring.
last=$(cat "$W/peerbench/.last-mass-delete" 2>/dev/null || echo 0)
wait_s=$(( last + ${SETTLE_S:-370} - $(date +%s) ))
if (( wait_s > 0 )); then echo "settling ${wait_s}s after the last mass delete (SETTLE_S)"; sleep "$wait_s"; fi

# ---------------------------------------------------------------- peers
CD=$W/containerd HP=$W/hostpull
CSOCK=$CD/containerd.sock
containerd_config() {  # $1 snapshotter
  mkdir -p "$CD/certs.d/$REG" "$CD/cni/conf" "$CD/cni/bin"
  printf 'server = "http://%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$REG" "$REG" > "$CD/certs.d/$REG/hosts.toml"
  cat > "$CD/config.toml" <<TOML
version = 2
root = "$CD/root"
state = "$CD/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CSOCK"
[ttrpc]
  address = "$CSOCK.ttrpc"
[proxy_plugins.hostpull]
  type = "snapshot"
  address = "$HP/snapshotter.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CD/opt"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$1"
    disable_snapshot_annotations = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CD/cni/bin"
    conf_dir = "$CD/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$CD/certs.d"
TOML
}
start_containerd() {
  /usr/bin/containerd --config "$CD/config.toml" >>"$W/containerd.log" 2>&1 < /dev/null &
  CTD_PID=$!
  for _ in $(seq 1 100); do ctr --address "$CSOCK" version >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "containerd did not start; see $W/containerd.log" >&2; return 1
}
wipe() {
  stop_pid "$CTD_PID"; CTD_PID=""
  stop_pid "$HP_PID"; HP_PID=""
  umount_under "$CD"; umount_under "$HP"
  trash "$CD" "$HP"; mkdir -p "$CD" "$HP"
}
containerd-overlayfs_start() { wipe; containerd_config overlayfs; start_containerd; }
containerd-overlayfs_dirs() { echo "$CD/root"; }
containerd-hostpull_start() {
  wipe
  node "$REPO/dist/cli/main.js" --root "$HP/store" daemon --socket "$HP/hostpull.sock" --snapshotter-socket "$HP/snapshotter.sock" >>"$W/hostpull-daemon.log" 2>&1 &
  HP_PID=$!
  for _ in $(seq 1 100); do [[ -S $HP/snapshotter.sock ]] && break; sleep 0.1; done
  containerd_config hostpull; start_containerd
}
containerd-hostpull_dirs() { echo "$CD/root" "$HP/store"; }
snapshots() { ctr --address "$CSOCK" -n k8s.io snapshots --snapshotter "$1" ls | tail -n +2 | wc -l; }

for rep in $(seq 1 "$REPS"); do
  for p in "${PEERS[@]}"; do
    "${p}_start"
    sn=overlayfs; [[ $p == containerd-hostpull ]] && sn=hostpull
    step=0
    for tag in "${TAGS[@]}"; do
      step=$((step + 1))
      sync
      mark=$(reg_lines)
      out=$(node "$HERE/cri-pull.mjs" "$CSOCK" "$REG/hostpull:$tag") || { echo "FAILED: $p step $step ($tag)" >&2; tail -20 "$W/containerd.log" >&2; exit 1; }
      sleep 0.3 # the registry logs a request just after answering it
      read -r bytes nreq < <(reg_bytes "$mark")
      # shellcheck disable=SC2046
      disk=$(du_bytes $("${p}_dirs"))
      pull_s=$(jq -r '.ms / 1000' <<<"$out")
      info="snapshots=$(snapshots "$sn")"
      echo "$p,$rep,$step,$tag,$pull_s,$bytes,$nreq,$disk,$info" >> "$RES"
      printf '%-21s rep %d step %d %-22s pull %8.3fs  fetched %10d B (%2d GETs)  disk %11d B  %s\n' "$p" "$rep" "$step" "$tag" "$pull_s" "$bytes" "$nreq" "$disk" "$info"
    done
  done
done

echo
echo "containerd-hostpull / containerd-overlayfs per step (medians over $REPS rep(s)); results in $RES"
awk -F, 'NR > 1 { k = $1 SUBSEP $3; t[k] = t[k] " " $5; b[k] = $6; d[k] = $8 }
  function median(s,   a, n, i, j, x) { n = split(s, a, " "); for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x } return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  END {
    printf "%-5s %12s %12s %8s %12s %12s %8s %14s %14s %8s\n", "step", "overlayfs s", "hostpull s", "ratio", "ovl bytes", "hp bytes", "ratio", "ovl disk", "hp disk", "ratio"
    for (s = 1; s <= 4; s++) {
      o = "containerd-overlayfs" SUBSEP s; h = "containerd-hostpull" SUBSEP s
      to = median(t[o]); th = median(t[h])
      printf "%-5d %12.3f %12.3f %7.2fx %12d %12d %7.2fx %14d %14d %7.2fx\n", s, to, th, (to > 0 ? th / to : 0), b[o], b[h], (b[o] > 0 ? b[h] / b[o] : 0), d[o], d[h], (d[o] > 0 ? d[h] / d[o] : 0)
    }
  }' "$RES"
unpacked=$(jq '[.layers[].tar_size] | add' "$W/peerbench/images/images.json" 2>/dev/null || echo '?')
echo "unpacked size of the distinct layers (images.json): $unpacked B"
