#!/usr/bin/env bash
# bench/fuse-overhead/fuse-overhead.sh [N] — what a FUSE hop costs `mvn -v` (not a test).
#
# Issue 14's lazy start of JDK17.0-MVN3.8 spends most of its time in the JVM reading its files
# through FUSE. This separates that cost from everything lazy (span fetches, verification,
# inflation, prefetch): the demo's layers, already unpacked, are stacked in one read-only overlay
#   direct   straight from layers/<id>
#   session  through hostpull's own FUSE server (passthrough-session.mjs: the lazy helper's
#            JavaScript hop with nothing to fetch, every read answered by it)
#   kernel   the same server, each file opened with FUSE passthrough to its source (what the
#            helper does for a file it holds a complete copy of): the kernel reads it directly
#   c        through a libfuse 2 passthrough written in C (passthrough.c: no JavaScript)
# and `mvn -v` runs in a chroot of it. N rounds (default 7) alternate the four; each mount is
# fresh, so the FUSE page cache starts empty (the layers' own files stay in the page cache for
# all four: only the hop differs). Prints the times sorted and the medians as ratios to direct.
#
# Needs root, gcc, `npm run demo` once (its store /var/tmp/hostpull-demo/client holds the layers)
# and a build (dist/). Installs Debian's libfuse-dev (libfuse 2's headers) for the C passthrough
# if it is missing. Everything is mounted under $WORK (default /var/tmp/hostpull-bench-fuse) and
# unmounted on exit.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
N=${1:-7}
W=${WORK:-/var/tmp/hostpull-bench-fuse}
STORE=${HOSTPULL_DEMO_STORE:-/var/tmp/hostpull-demo/client}
HP=(node "$REPO/dist/cli/main.js" --root "$STORE")
mkdir -p "$W"

ref=$("${HP[@]}" images --json | node -e 'const i = JSON.parse(require("fs").readFileSync(0, "utf8")).find((x) => x.reference.endsWith(":JDK17.0-MVN3.8")); if (!i) process.exit(1); console.log(i.reference)') ||
  { echo "no JDK17.0-MVN3.8 in $STORE: run \`npm run demo\` first" >&2; exit 2; }
# Layer directories, base first (as in the manifest).
mapfile -t LAYERS < <("${HP[@]}" inspect "$ref" | node -e 'for (const l of JSON.parse(require("fs").readFileSync(0, "utf8")).layers) console.log(l.unpackedAt)')

if ! dpkg-query -W -f='${Status}' libfuse-dev 2>/dev/null | grep -q 'install ok installed'; then
  echo "installing libfuse-dev (libfuse 2's headers, for the C passthrough)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libfuse-dev >/dev/null
fi
gcc -O2 -D_FILE_OFFSET_BITS=64 $(pkg-config --cflags fuse) -o "$W/passthrough" "$HERE/passthrough.c" $(pkg-config --libs fuse) -lpthread

ROOT=$W/rootfs
PIDS=()
cleanup() {
  mountpoint -q "$ROOT/proc" && umount "$ROOT/proc"
  mountpoint -q "$ROOT" && umount "$ROOT"
  for m in "$W"/mnt/*; do mountpoint -q "$m" && umount -l "$m"; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  PIDS=()
  wait 2>/dev/null || true
}
trap cleanup EXIT

# One start: mount the layers the way `mode` says, overlay them, time `mvn -v` in a chroot.
start() {
  local mode=$1 lower=() i
  mkdir -p "$ROOT"
  for i in "${!LAYERS[@]}"; do
    local src=${LAYERS[$i]} mnt=$W/mnt/$i
    mkdir -p "$mnt"
    case $mode in
      direct) lower=("$src" "${lower[@]}"); continue ;;
      session) node "$HERE/passthrough-session.mjs" "$src" "$mnt" 2>"$W/session-$i.log" & ;;
      kernel) node "$HERE/passthrough-session.mjs" --passthrough "$src" "$mnt" 2>"$W/kernel-$i.log" & ;;
      c) "$W/passthrough" "$src" "$mnt" 2>"$W/c-$i.log" & ;;
    esac
    PIDS+=($!)
    for _ in $(seq 200); do mountpoint -q "$mnt" && break; sleep 0.025; done
    mountpoint -q "$mnt" || { echo "$mode passthrough of $src did not mount" >&2; exit 1; }
    lower=("$mnt" "${lower[@]}")
  done
  mount -t overlay overlay -o "ro,lowerdir=$(IFS=:; echo "${lower[*]}")" "$ROOT"
  # The JVM finds libjli.so through $ORIGIN, which glibc resolves with /proc/self/exe.
  mount -t proc proc "$ROOT/proc"
  local t0 t1
  t0=$(date +%s%N)
  chroot "$ROOT" /usr/bin/env -i PATH=/opt/jdk-17.0/bin:/opt/mvn-3.8/bin:/usr/bin:/bin JAVA_HOME=/opt/jdk-17.0 MAVEN_HOME=/opt/mvn-3.8 mvn -v > "$W/out.txt" 2>&1
  t1=$(date +%s%N)
  grep -q 'Apache Maven' "$W/out.txt" || { echo "$mode: mvn -v printed no banner:" >&2; cat "$W/out.txt" >&2; exit 1; }
  cleanup
  echo $(((t1 - t0) / 1000000))
}

declare -A T
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 0; r < N; r++)); do
  for mode in direct session kernel c; do T[$mode]+="$(start $mode) "; done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
d=$(echo "${T[direct]}" | median)
for mode in direct session kernel c; do
  m=$(echo "${T[$mode]}" | median)
  printf '%-7s median %5d ms (%.2fx direct)   runs: %s\n' "$mode" "$m" "$(echo "$m $d" | awk '{print $1/$2}')" "$(echo "${T[$mode]}" | tr ' ' '\n' | grep . | sort -n | tr '\n' ' ')"
done
