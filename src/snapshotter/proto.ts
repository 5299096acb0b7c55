import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

/**
 * proto/ at the package root: this file is src/snapshotter/proto.ts (vitest) or
 * dist/snapshotter/proto.js (built), two levels below it either way.
 */
function protoDir(): string {
  return fileURLToPath(new URL('../../proto/', import.meta.url));
}

/**
 * Loads one of our .proto files (proto/…) as grpc-js service definitions. Field names as
 * written (snake_case), 64-bit integers as numbers (sizes and seconds fit), enums as their names.
 * google/protobuf/{empty,timestamp,field_mask}.proto come with proto-loader.
 */
export function loadProto(file: string): GrpcObject {
  const definition = loadSync(file, { includeDirs: [protoDir()], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  return loadPackageDefinition(definition);
}

/** Walks a dotted name (`containerd.services.snapshots.v1.Snapshots`) in a loaded package. */
export function serviceOf(pkg: GrpcObject, name: string): ServiceClientConstructor {
  let node: unknown = pkg;
  for (const part of name.split('.')) node = (node as Record<string, unknown>)[part];
  return node as ServiceClientConstructor;
}

export const SNAPSHOTS_PROTO = 'containerd/services/snapshots/v1/snapshots.proto';
export const SNAPSHOTS_SERVICE = 'containerd.services.snapshots.v1.Snapshots';
