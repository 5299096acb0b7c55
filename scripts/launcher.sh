#!/bin/sh
# hostpull's command (dist/cli/hostpull after a build; package.json's bin). It starts Node from
# the CLI's startup snapshot, dist/cli/hostpull.blob (scripts/bundle.mjs), in which the modules a
# pull needs are loaded already, when the blob was made by this very node binary: the stamp
# beside it has that binary's mtime. Otherwise, or with HOSTPULL_NO_SNAPSHOT set, or with
# NODE_OPTIONS set (Node refuses a snapshot built under other V8 flags), it runs dist/cli/main.js,
# the same CLI loaded module by module. Only shell built-ins on the common path: this runs before
# every command.
self=$0
# npm links the command from node_modules/.bin: the build is where the link points.
if [ -L "$self" ]; then self=$(readlink -f -- "$self") || exit 127; fi
case $self in */*) dir=${self%/*} ;; *) dir=. ;; esac
node=$(command -v node) || { echo "hostpull: node is not on PATH" >&2; exit 127; }
# NODE_EXTRA_CA_CERTS has Node parse its bundled roots and the named file's certificates as it
# starts, TLS or not (~35 ms with Debian's bundle): hostpull reads the file at its first TLS
# connection instead and trusts the same certificates (src/registry/extra-ca.ts). Not under
# NODE_OPTIONS, which may choose other roots (--use-openssl-ca), nor over a file already named.
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -z "${NODE_OPTIONS:-}" ] && [ -z "${HOSTPULL_EXTRA_CA_CERTS:-}" ]; then
  HOSTPULL_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS
  export HOSTPULL_EXTRA_CA_CERTS
  unset NODE_EXTRA_CA_CERTS
fi
blob=$dir/hostpull.blob
stamp=$dir/hostpull.blob.node
if [ -z "${HOSTPULL_NO_SNAPSHOT:-}" ] && [ -z "${NODE_OPTIONS:-}" ] && [ -f "$blob" ] && [ -f "$stamp" ] &&
  ! [ "$node" -nt "$stamp" ] && ! [ "$node" -ot "$stamp" ]; then
  exec "$node" --snapshot-blob "$blob" "$dir/main.js" "$@"
fi
exec "$node" "$dir/main.js" "$@"
