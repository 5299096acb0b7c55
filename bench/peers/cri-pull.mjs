#!/usr/bin/env node
// cri-pull.mjs CONTAINERD_SOCKET REF — pulls REF through containerd's CRI ImageService over gRPC,
// the way a kubelet does (our own runtime.v1 definition from proto/), and prints
// {"ref", "imageRef", "ms"}: ms is PullImage alone, timed after the connection is up, so Node's
// start-up and module loading are not in it.
import { join } from 'node:path';

const repo = new URL('../../', import.meta.url).pathname;
const { credentials } = await import('@grpc/grpc-js');
const { loadProto, serviceOf } = await import(join(repo, 'dist/snapshotter/proto.js'));

const [socket, ref] = process.argv.slice(2);
if (!socket || !ref) {
  console.error('usage: cri-pull.mjs CONTAINERD_SOCKET REF');
  process.exit(2);
}
const Images = serviceOf(loadProto('cri/runtime/v1/api.proto'), 'runtime.v1.ImageService');
const client = new Images(`unix:${socket}`, credentials.createInsecure());
await new Promise((resolve, reject) => client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())));
const t0 = performance.now();
const res = await new Promise((resolve, reject) =>
  client.PullImage({ image: { image: ref } }, { deadline: Date.now() + 600_000 }, (err, r) => (err ? reject(err) : resolve(r))),
);
const ms = performance.now() - t0;
client.close();
process.stdout.write(`${JSON.stringify({ ref, imageRef: res.image_ref, ms: Math.round(ms * 10) / 10 })}\n`);
