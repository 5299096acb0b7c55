/**
 * Every error code hostpull throws, with what it means and how it surfaces at each edge: the
 * HTTP status (the server's OCI API and the daemon's unix-socket API answer with the same one),
 * the distribution-spec code in the server's error body, the gRPC status containerd gets from the
 * snapshotter, and the CLI's exit code. The one table (like containerd's errdefs): `HostpullError`
 * takes only these codes, so the compiler refuses a code without a row, and
 * test/unit/errors/error-codes.test.ts refuses a row that nothing throws.
 *
 * Defaults: `oci` is derived from the status (see {@link ociCodeOf}), `grpc` is UNKNOWN, `exit` is 1.
 * A status of 500 means "a fault of ours or of this host": the server answers it without the
 * message (it may name local paths); the daemon, whose callers are local, sends the message.
 */

/** The distribution-spec error codes (and the few of our own) the server writes into error bodies. */
export type OciErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'DENIED'
  | 'DIGEST_INVALID'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'PAGINATION_NUMBER_INVALID'
  | 'SIZE_INVALID'
  | 'TAG_INVALID'
  | 'UNAUTHORIZED'
  | 'UNSUPPORTED'
  // Not in the spec; registries commonly use them.
  | 'NOT_FOUND'
  | 'RANGE_INVALID'
  | 'UPSTREAM_ERROR'
  | 'UNAVAILABLE'
  | 'INTERNAL';

/** gRPC status names containerd maps to its errdefs (grpc-js `status` has the numbers). */
export type GrpcStatusName = 'INVALID_ARGUMENT' | 'NOT_FOUND' | 'ALREADY_EXISTS' | 'FAILED_PRECONDITION' | 'RESOURCE_EXHAUSTED' | 'UNAVAILABLE' | 'UNKNOWN';

export interface ErrorCodeRow {
  /** What happened, in words a user reads in docs and logs. */
  meaning: string;
  /** HTTP status of the server's and the daemon's answer. */
  http: number;
  /** Code in the server's OCI error body. Default: from the status. */
  oci?: OciErrorCode;
  /** Status of the snapshotter's gRPC answer. Default UNKNOWN. */
  grpc?: GrpcStatusName;
  /** Exit code of a CLI command that fails with it. Default 1. */
  exit?: number;
}

export const ERROR_CODES = {
  // ── Any part ───────────────────────────────────────────────────────────────────────────────
  USAGE: {
    meaning: 'a command line, flag or environment value is malformed',
    http: 400, oci: 'UNSUPPORTED', exit: 2,
  },
  INTERNAL: {
    meaning: 'a bug: something threw an error that is not a HostpullError',
    http: 500,
  },
  ABORTED: {
    meaning: 'the operation was cancelled (Ctrl-C, a client that went away, a stop)',
    http: 499,
  },

  // ── References, digests, the OCI data model (oci/) ────────────────────────────────────────
  REFERENCE_INVALID: {
    meaning: 'an image reference does not parse',
    http: 400, oci: 'NAME_INVALID',
  },
  NAME_INVALID: {
    meaning: 'a repository name breaks the distribution spec',
    http: 400, oci: 'NAME_INVALID',
  },
  TAG_INVALID: {
    meaning: 'a tag (or a composite tag) breaks the spec or names no valid code names',
    http: 400, oci: 'TAG_INVALID',
  },
  DIGEST_INVALID: {
    meaning: 'a digest is not algorithm:hex of the right length',
    http: 400, oci: 'DIGEST_INVALID',
  },
  NO_SERVER: {
    meaning: 'a short reference (a composite tag alone) with no hostpull server configured',
    http: 400, oci: 'NAME_INVALID',
  },
  MANIFEST_INVALID: {
    meaning: 'a manifest or index fails validation',
    http: 502, oci: 'MANIFEST_INVALID',
  },
  MANIFEST_UNSUPPORTED: {
    meaning: 'a manifest of a kind hostpull does not read (Docker schema 1, a non-image config…)',
    http: 502, oci: 'MANIFEST_INVALID',
  },
  CONFIG_INVALID: {
    meaning: 'an image config fails validation or is over its size limit',
    http: 502, oci: 'MANIFEST_INVALID',
  },
  LAYER_UNSUPPORTED: {
    meaning: 'a layer media type hostpull cannot unpack (foreign, unknown compression)',
    http: 422, oci: 'MANIFEST_INVALID',
  },
  PLATFORM_UNAVAILABLE: {
    meaning: 'an index has no manifest for this host\'s platform',
    http: 404, oci: 'MANIFEST_UNKNOWN',
  },

  // ── Registries (registry/): what the upstream answered or did ─────────────────────────────
  UNAUTHORIZED: {
    meaning: 'credentials are missing or refused (HTTP 401)',
    http: 401, oci: 'UNAUTHORIZED',
  },
  AUTH_FILE_INVALID: {
    meaning: 'a registry credential file (auth.json) cannot be read, parsed or written',
    http: 500,
  },
  NOT_LOGGED_IN: {
    meaning: 'logout: the credential file holds no login for that registry',
    http: 404,
  },
  DENIED: {
    meaning: 'access is refused (HTTP 403)',
    http: 403, oci: 'DENIED',
  },
  MANIFEST_UNKNOWN: {
    meaning: 'no manifest by that tag or digest',
    http: 404, oci: 'MANIFEST_UNKNOWN',
  },
  BLOB_UNKNOWN: {
    meaning: 'no blob by that digest',
    http: 404, oci: 'BLOB_UNKNOWN',
  },
  NAME_UNKNOWN: {
    meaning: 'no repository by that name',
    http: 404, oci: 'NAME_UNKNOWN',
  },
  NOT_FOUND: {
    meaning: 'nothing at that path, or no catalog entry by that code name',
    http: 404, oci: 'NOT_FOUND',
  },
  UNSUPPORTED: {
    meaning: 'an operation the server does not offer (a write to the read API…)',
    http: 405, oci: 'UNSUPPORTED',
  },
  RANGE_NOT_SATISFIED: {
    meaning: 'a byte range lies outside the blob (HTTP 416)',
    http: 416, oci: 'RANGE_INVALID',
  },
  TOO_MANY_REQUESTS: {
    meaning: 'the registry throttles us (HTTP 429) and kept doing so past the retry budget',
    http: 503, oci: 'UNAVAILABLE',
  },
  REGISTRY_UNAVAILABLE: {
    meaning: 'a registry cannot be reached or answers 5xx, past the retry budget',
    http: 503, oci: 'UNAVAILABLE',
  },
  REGISTRY_ERROR: {
    meaning: 'a registry answered an unexpected status',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  INSECURE_REGISTRY: {
    meaning: 'plain http to a registry that is neither loopback nor listed as insecure',
    http: 400, oci: 'DENIED',
  },
  MANIFEST_TOO_LARGE: {
    meaning: 'a manifest body over the size limit',
    http: 502, oci: 'MANIFEST_INVALID',
  },
  BLOB_UPLOAD_INVALID: {
    meaning: 'a blob upload the registry refused or answered without a location',
    http: 502, oci: 'BLOB_UPLOAD_INVALID',
  },
  BLOB_UPLOAD_UNKNOWN: {
    meaning: 'the registry lost a blob upload in progress',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  MANIFEST_BLOB_UNKNOWN: {
    meaning: 'the registry refused a manifest whose blobs it does not have',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  MANIFEST_UNVERIFIED: {
    meaning: 'the registry refused a manifest signature',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  SIZE_INVALID: {
    meaning: 'the registry refused a content length',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  DIGEST_MISMATCH: {
    meaning: 'bytes do not hash to the digest that names them',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  SIZE_MISMATCH: {
    meaning: 'a blob is longer or shorter than its descriptor says',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  BLOB_FETCH_FAILED: {
    meaning: 'a layer download failed for a reason below HTTP (I/O, a stream error)',
    http: 502, oci: 'UPSTREAM_ERROR',
  },

  // ── The virtual image server (server/) and publishing (publish/) ──────────────────────────
  BAD_REQUEST: {
    meaning: 'a malformed HTTP request or request body',
    http: 400, oci: 'UNSUPPORTED',
  },
  PAGINATION_INVALID: {
    meaning: 'a tags list asked with an `n` that is not a count in range',
    http: 400, oci: 'PAGINATION_NUMBER_INVALID',
  },
  METHOD_NOT_ALLOWED: {
    meaning: 'an HTTP method the route does not take',
    http: 405, oci: 'UNSUPPORTED',
  },
  TOO_LARGE: {
    meaning: 'a request body over its limit',
    http: 413, oci: 'SIZE_INVALID',
  },
  URI_TOO_LONG: {
    meaning: 'a request URL longer than any valid one',
    http: 414, oci: 'NAME_INVALID',
  },
  HEADERS_TOO_LARGE: {
    meaning: 'request headers over Node\'s limit',
    http: 431, oci: 'UNSUPPORTED',
  },
  CATALOG_INVALID: {
    meaning: 'a catalog file or entry does not parse',
    http: 400, oci: 'MANIFEST_INVALID',
  },
  PACKAGE_REFUSED: {
    meaning: 'a package image breaks the rules for registration (layers, claim, diff_id)',
    http: 400, oci: 'MANIFEST_INVALID',
  },
  PACKAGE_INVALID: {
    meaning: 'a registered package image became unusable in the upstream',
    http: 502, oci: 'MANIFEST_INVALID',
  },
  ENV_CONFLICT: {
    meaning: 'two packages of a composite set one variable to different values',
    http: 400, oci: 'TAG_INVALID',
  },
  BLOB_TOO_LARGE: {
    meaning: 'an upstream blob (a package config, a prefetch list) over the size that is read of it',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  UPSTREAM_ERROR: {
    meaning: 'the upstream (registry or OCI layout) holds something invalid',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  LOCK_TIMEOUT: {
    meaning: 'the OCI layout\'s lock was not free in time',
    http: 503, oci: 'UNAVAILABLE',
  },
  LISTEN_FAILED: {
    meaning: 'the server cannot listen on its address',
    http: 500,
  },
  SERVER_UNAVAILABLE: {
    meaning: 'the hostpull server cannot be reached (publish, catalog)',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  SERVER_ERROR: {
    meaning: 'the hostpull server answered an error (publish, catalog)',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  PUBLISH_FAILED: {
    meaning: 'a package directory cannot be packed (a file changed, a device node)',
    http: 400, oci: 'UNSUPPORTED',
  },

  // ── Archives (archive/, unpack/): one verdict on both sides ───────────────────────────────
  LAYER_INVALID: {
    meaning: 'a layer archive is malformed (checksum, truncation, unknown type, bad compression)',
    http: 422, oci: 'MANIFEST_INVALID',
  },
  LAYER_AMBIGUOUS: {
    meaning: 'tar readers would disagree about what a layer contains',
    http: 422, oci: 'MANIFEST_INVALID',
  },
  LAYER_UNSAFE: {
    meaning: 'a layer entry is not allowed (`..`, outside its package prefix, a device node…)',
    http: 422, oci: 'MANIFEST_INVALID',
  },
  LAYER_QUOTA_EXCEEDED: {
    meaning: 'a layer exceeds a bound (entries, bytes, expansion ratio, disk reserve)',
    http: 422, oci: 'MANIFEST_INVALID',
  },
  LAYER_PREFIX_INVALID: {
    meaning: 'a package prefix that is not a clean path below /',
    http: 400, oci: 'MANIFEST_INVALID',
  },
  LAYER_READ_FAILED: {
    meaning: 'reading a layer stream failed for a reason that is not the archive\'s',
    http: 500,
  },
  LAYER_TARGET_INVALID: {
    meaning: 'the directory a layer is unpacked into is not an empty directory',
    http: 500,
  },
  LAYER_WRITE_FAILED: {
    meaning: 'writing an entry of a layer failed on this host',
    http: 500,
  },
  DIFFID_MISMATCH: {
    meaning: 'an unpacked layer does not hash to the config\'s diff_id',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  UNPACK_FAILED: {
    meaning: 'unpacking a stored layer blob failed for a reason that is not the archive\'s',
    http: 500,
  },

  // ── The content store (store/) ────────────────────────────────────────────────────────────
  STORE_OPEN_FAILED: {
    meaning: 'the store database cannot be opened',
    http: 500,
  },
  STORE_TOO_NEW: {
    meaning: 'the store was written by a newer hostpull',
    http: 500,
  },
  STORE_FULL: {
    meaning: 'the store\'s filesystem is full',
    http: 507, grpc: 'RESOURCE_EXHAUSTED',
  },
  STORE_SYNC_FAILED: {
    meaning: 'flushing an unpacked layer to disk (--sync-fs) failed; the layer is not recorded',
    http: 500,
  },
  STORE_CORRUPT: {
    meaning: 'a stored blob no longer matches its digest (it is quarantined)',
    http: 500,
  },
  INGEST_CLOSED: {
    meaning: 'a write to a partial download that was already closed',
    http: 500,
  },
  IMAGE_UNKNOWN: {
    meaning: 'the image is not in the store',
    http: 404, oci: 'MANIFEST_UNKNOWN',
  },
  LAYER_MISSING: {
    meaning: 'a layer an image or snapshot needs is not unpacked (removed by gc, or never pulled)',
    http: 409, grpc: 'FAILED_PRECONDITION',
  },

  // ── Rootfs, mounts and the native addon (rootfs/, native/, container/) ────────────────────
  LAYER_CONFLICT: {
    meaning: 'two package layers write the same path',
    http: 409,
  },
  TOO_MANY_LAYERS: {
    meaning: 'more layers than one overlay mount takes',
    http: 422,
  },
  INVALID_MOUNT: {
    meaning: 'a planned overlay or bind mount is malformed (no layers, unknown option, a view without a directory)',
    http: 400, grpc: 'INVALID_ARGUMENT',
  },
  ALREADY_MOUNTED: {
    meaning: 'the target is already a mount point',
    http: 409,
  },
  NOT_MOUNTED: {
    meaning: 'the target is not a mount point made by `hostpull mount`',
    http: 409,
  },
  NATIVE_MISSING: {
    meaning: 'the native addon is not built or not loadable',
    http: 500,
  },
  SYSCALL_FAILED: {
    meaning: 'a system call of the native addon failed (the errno is in details)',
    http: 500,
  },

  // ── Runtime bundles and runs (runtime/, rootless/) ────────────────────────────────────────
  NO_COMMAND: {
    meaning: 'no command to run: the image has none and none was given, or one with NUL',
    http: 400,
  },
  ENV_INVALID: {
    meaning: 'an environment entry is not KEY=VALUE',
    http: 400,
  },
  USER_INVALID: {
    meaning: 'a user is not user[:group] or an id is out of range',
    http: 400,
  },
  USER_NOT_FOUND: {
    meaning: 'the user is not in the image\'s /etc/passwd',
    http: 422,
  },
  GROUP_NOT_FOUND: {
    meaning: 'the group is not in the image\'s /etc/group',
    http: 422,
  },
  MOUNT_INVALID: {
    meaning: 'a mount the image or user asks the runtime for has a relative source or a bad destination',
    http: 400,
  },
  CWD_INVALID: {
    meaning: 'the working directory is not a clean absolute path inside the container',
    http: 400,
  },
  HOSTNAME_INVALID: {
    meaning: 'a host name that is not valid',
    http: 400,
  },
  NAME_IN_USE: {
    meaning: 'hostpull run --name: a running or kept container has that name',
    http: 409,
  },
  STOP_TIMEOUT: {
    meaning: 'hostpull stop: the container got SIGKILL but its hostpull run did not remove it in time',
    http: 504,
  },
  CONTAINER_NOT_RUNNING: {
    meaning: 'exec into a container that is not running (exited, stale, or prepared for an orchestrator)',
    http: 409,
  },
  CONTAINER_RUNNING: {
    meaning: 'hostpull rm of a container that is still running, or of a rootfs prepared for an orchestrator',
    http: 409,
  },
  CONTAINER_ID_INVALID: {
    meaning: 'a container id with characters a runtime refuses',
    http: 400,
  },
  PATH_LOOP: {
    meaning: 'symlinks in the rootfs loop or nest too deep',
    http: 422,
  },
  ROOTFS_INVALID: {
    meaning: 'a file the bundle needs from the rootfs is not a regular file or is too big',
    http: 422,
  },
  BUNDLE_INVALID: {
    meaning: 'a runtime bundle cannot be read or contradicts the run',
    http: 500,
  },
  TTY_UNAVAILABLE: {
    meaning: 'a terminal was asked for but stdin is not one',
    http: 400,
  },
  RUNTIME_NOT_FOUND: {
    meaning: 'no OCI runtime (runc, crun) found',
    http: 500,
  },
  RUNTIME_UNSUPPORTED: {
    meaning: 'a runtime other than runc or crun',
    http: 400,
  },
  RUNTIME_UNUSABLE: {
    meaning: 'the runtime cannot run containers on this host',
    http: 500,
  },
  RUNTIME_FAILED: {
    meaning: 'the runtime failed to create or run the container',
    http: 500, exit: 125,
  },
  COMMAND_NOT_FOUND: {
    meaning: 'the container\'s command (or an exec\'s) is not on the container\'s PATH or not there at all',
    http: 422, exit: 127,
  },
  COMMAND_NOT_EXECUTABLE: {
    meaning: 'the container\'s command (or an exec\'s) cannot be executed: no permission, a directory, not a program',
    http: 422, exit: 126,
  },
  ROOTLESS_UNAVAILABLE: {
    meaning: 'runs without root cannot work here (no user namespaces, no unshare)',
    http: 500,
  },
  ROOTLESS_USER_UNSUPPORTED: {
    meaning: 'a rootless run asked for a container user other than root',
    http: 400,
  },
  ROOTLESS_MOUNT_UNSUPPORTED: {
    meaning: '`mount` without root (its mount would end with its namespace)',
    http: 400,
  },
  ROOTLESS_HELPER_MISSING: {
    meaning: 'the rootless helper script is not built',
    http: 500,
  },
  ROOTLESS_HELPER_FAILED: {
    meaning: 'the rootless helper exited without a result',
    http: 500,
  },
  ROOTLESS_CHILD_FAILED: {
    meaning: 'the rootless helper failed with an error that is not a HostpullError',
    http: 500,
  },
  CHANNEL_INVALID: {
    meaning: 'the rootless helper\'s channel carried something that is not a message',
    http: 500,
  },

  // ── Lazy layers (lazy/) and the tables of contents of seekable layers ─────────────────────
  TOC_INVALID: {
    meaning: 'a seekable layer\'s table of contents does not parse, contradicts itself, or a span inflates to another size than it says',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  TOC_MISMATCH: {
    meaning: 'a layer\'s tar disagrees with its table of contents: the background completion refuses the blob',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  LAZY_REFUSED: {
    meaning: 'a layer cannot be mounted lazily (not gzip, its TOC describes another layer, or an entry the unpack would refuse); it is pulled whole',
    http: 422, oci: 'MANIFEST_INVALID',
  },
  LAZY_FETCH_FAILED: {
    meaning: 'a span of a lazy layer could not be fetched and verified within the retry budget: the read got EIO',
    http: 502, oci: 'UPSTREAM_ERROR',
  },
  LAZY_TIMEOUT: {
    meaning: 'no verified span data arrived within the bound of one attempt or of one read: the read got EIO',
    http: 504, oci: 'UNAVAILABLE',
  },
  LAZY_CLOSED: {
    meaning: 'a lazy layer was closed (its last container went, the daemon stopped) while a read or fetch waited',
    http: 503, oci: 'UNAVAILABLE',
  },
  LAZY_HELPER_FAILED: {
    meaning: 'the FUSE helper process of lazy layers did not start, or failed a request in a way of its own',
    http: 500,
  },
  LAZY_HELPER_GONE: {
    meaning: 'the FUSE helper process exited: the lazy layers it served are gone',
    http: 500,
  },
  LAZY_MOUNT_FAILED: {
    meaning: 'a lazy layer\'s FUSE file system could not be mounted (no root, no /dev/fuse, no fusermount)',
    http: 500,
  },
  LAZY_UNMOUNT_FAILED: {
    meaning: 'a lazy layer\'s FUSE file system could not be unmounted',
    http: 500,
  },

  // ── The daemon and its client (daemon/) ───────────────────────────────────────────────────
  DAEMON_STOPPING: {
    meaning: 'the daemon is stopping and takes no new work (or stopped before this finished)',
    http: 503, grpc: 'UNAVAILABLE',
  },
  DAEMON_GONE: {
    meaning: 'the daemon exited or closed the connection during a request',
    http: 502,
  },
  DAEMON_ERROR: {
    meaning: 'the daemon answered something that is not its error JSON',
    http: 502,
  },
  DAEMON_RUNNING: {
    meaning: 'another daemon already answers on the socket',
    http: 409,
  },
  SOCKET_PATH_IN_USE: {
    meaning: 'the socket path exists and is not a socket',
    http: 409,
  },
  CLIENT_GONE: {
    meaning: 'the client closed the connection before its answer',
    http: 499,
  },

  // ── containerd snapshots (snapshotter/) ───────────────────────────────────────────────────
  SNAPSHOT_NOT_FOUND: {
    meaning: 'no snapshot by that key',
    http: 404, grpc: 'NOT_FOUND',
  },
  SNAPSHOT_EXISTS: {
    meaning: 'a snapshot by that key exists already',
    http: 409, grpc: 'ALREADY_EXISTS',
  },
  SNAPSHOT_NOT_ACTIVE: {
    meaning: 'an operation that needs an active (or view) snapshot',
    http: 409, grpc: 'FAILED_PRECONDITION',
  },
  SNAPSHOT_HAS_CHILDREN: {
    meaning: 'removing a snapshot that others build on',
    http: 409, grpc: 'FAILED_PRECONDITION',
  },
  SNAPSHOT_CONTENT_MISSING: {
    meaning: 'a committed snapshot whose layer left the store',
    http: 409, grpc: 'FAILED_PRECONDITION',
  },
  SNAPSHOT_PARENT_NOT_COMMITTED: {
    meaning: 'a snapshot prepared on a parent that is not committed',
    http: 400, grpc: 'INVALID_ARGUMENT',
  },
  SNAPSHOT_INVALID: {
    meaning: 'an update of a snapshot field other than its labels',
    http: 400, grpc: 'INVALID_ARGUMENT',
  },
  FILTER_INVALID: {
    meaning: 'a containerd filter expression does not parse',
    http: 400, grpc: 'INVALID_ARGUMENT',
  },

  // ── bench/ and demo/ ──────────────────────────────────────────────────────────────────────
  TRACE_INVALID: {
    meaning: 'a bench trace file line does not parse or names an unknown code name',
    http: 400,
  },
  BENCH_REGISTRY: {
    meaning: 'the bench\'s own docker-registry did not start',
    http: 500,
  },
  BENCH_SERVER: {
    meaning: 'the bench\'s server answered an error',
    http: 502,
  },
  DEMO_NEEDS_ROOT: {
    meaning: 'the demo runs as root only',
    http: 400,
  },
  DEMO_NOT_BUILT: {
    meaning: 'the demo needs the built CLI',
    http: 500,
  },
  DEMO_MISSING_TOOL: {
    meaning: 'a tool the demo builds packages with is missing',
    http: 500,
  },
  DEMO_TOOL_FAILED: {
    meaning: 'a tool the demo ran failed',
    http: 500,
  },
  DEMO_APT_FAILED: {
    meaning: 'apt could not fetch the demo\'s packages',
    http: 500,
  },
  DEMO_BUILD_FAILED: {
    meaning: 'building a demo package failed',
    http: 500,
  },
  DEMO_SERVER_FAILED: {
    meaning: 'the demo\'s `hostpull serve` did not start',
    http: 500,
  },
  DEMO_STEP_FAILED: {
    meaning: 'a step of the demo walkthrough did not do what it shows',
    http: 500,
  },
} as const satisfies Record<string, ErrorCodeRow>;

/** The closed set of error codes. */
export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** The row of `code`, with the defaults filled in. */
export function errorRow(code: ErrorCode): Required<ErrorCodeRow> {
  const row: ErrorCodeRow = ERROR_CODES[code];
  return { meaning: row.meaning, http: row.http, oci: row.oci ?? ociCodeOf(row.http), grpc: row.grpc ?? 'UNKNOWN', exit: row.exit ?? 1 };
}

/** The OCI code a status gets when its row names none. */
function ociCodeOf(status: number): OciErrorCode {
  if (status === 503) return 'UNAVAILABLE';
  if (status === 502) return 'UPSTREAM_ERROR';
  if (status === 404) return 'NOT_FOUND';
  return status >= 500 ? 'INTERNAL' : 'UNSUPPORTED';
}
