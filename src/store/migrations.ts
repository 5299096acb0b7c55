/**
 * Schema migrations, applied in order by PRAGMA user_version (DESIGN §3 "On disk"). Append only:
 * a released migration is never edited, so every store on every node converges to one schema.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: content, images, layers, pull records, download leases.
  `
  CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    media_type  TEXT,
    created_at  INTEGER NOT NULL,
    last_used   INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE images (
    reference        TEXT PRIMARY KEY,
    registry         TEXT NOT NULL,
    repository       TEXT NOT NULL,
    tag              TEXT,
    manifest_digest  TEXT NOT NULL,
    index_digest     TEXT,
    config_digest    TEXT NOT NULL,
    resolved_at      INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX images_by_manifest ON images(manifest_digest);

  -- The layers of a manifest in manifest order; a manifest digest fixes its layers forever.
  CREATE TABLE manifest_layers (
    manifest_digest  TEXT NOT NULL,
    position         INTEGER NOT NULL,
    blob_digest      TEXT NOT NULL,
    diff_id          TEXT NOT NULL,
    media_type       TEXT NOT NULL,
    size             INTEGER NOT NULL,
    PRIMARY KEY (manifest_digest, position)
  ) STRICT;
  CREATE INDEX manifest_layers_by_blob ON manifest_layers(blob_digest);

  -- One unpacked layer = one directory layers/<id>. Keyed by diff_id (the uncompressed content),
  -- never by chainID, so a layer is unpacked once whatever sits below it in an image.
  CREATE TABLE layers (
    id               INTEGER PRIMARY KEY,
    diff_id          TEXT NOT NULL UNIQUE,
    blob_digest      TEXT NOT NULL,
    unpacked_size    INTEGER NOT NULL,
    entries          INTEGER NOT NULL,
    owned_paths      TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    last_used        INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE pulls (
    id               INTEGER PRIMARY KEY,
    reference        TEXT NOT NULL,
    manifest_digest  TEXT,
    started_at       INTEGER NOT NULL,
    finished_at      INTEGER NOT NULL,
    ok               INTEGER NOT NULL,
    up_to_date       INTEGER NOT NULL,
    bytes_fetched    INTEGER NOT NULL,
    bytes_reused     INTEGER NOT NULL,
    layer_hits       INTEGER NOT NULL,
    layer_misses     INTEGER NOT NULL,
    phases           TEXT NOT NULL,
    error            TEXT
  ) STRICT;

  -- Cross-process single-flight: the holder of a lease downloads (and unpacks) that blob; others
  -- wait for its row to appear. A lease whose pid is dead or whose heartbeat is stale is taken over.
  CREATE TABLE leases (
    key           TEXT PRIMARY KEY,
    pid           INTEGER NOT NULL,
    token         TEXT NOT NULL,
    acquired_at   INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL
  ) STRICT;
  `,
  // 2: which rootfs uses which unpacked layers (GC never removes a layer a mount uses). A mount
  // with an owner pid is stale once that process is gone (same pid *and* start time, because
  // pids are reused); a mount without one lives until it is released explicitly.
  `
  CREATE TABLE mounts (
    id               TEXT PRIMARY KEY,
    owner_pid        INTEGER,
    owner_start      TEXT,
    created_at       INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE mount_layers (
    mount_id         TEXT NOT NULL REFERENCES mounts(id) ON DELETE CASCADE,
    diff_id          TEXT NOT NULL,
    PRIMARY KEY (mount_id, diff_id)
  ) STRICT;
  CREATE INDEX mount_layers_by_diff ON mount_layers(diff_id);
  `,
  // 3: containerd snapshots (src/snapshotter): chains are rows. A committed snapshot points at an
  // unpacked layer by diff_id, so one layer directory serves every chain it appears in; an active
  // or view snapshot (and a committed one whose layer is not known yet) owns snapshots/<id>/.
  // `name` is containerd's backend key (<ns>/<seq>/<key>) or, for a layer hostpull made present
  // itself, the chainID containerd asked for (shared by every namespace). GC keeps a layer while a
  // snapshot row names its diff_id.
  `
  CREATE TABLE snapshots (
    name         TEXT PRIMARY KEY,
    id           INTEGER NOT NULL UNIQUE,
    kind         TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
    parent       TEXT,
    diff_id      TEXT,
    labels       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX snapshots_by_parent ON snapshots(parent);
  CREATE INDEX snapshots_by_diff ON snapshots(diff_id);
  CREATE INDEX layers_by_blob ON layers(blob_digest);

  -- How each layer containerd asked for became present: fetched by hostpull, reused from the
  -- store, or applied by containerd (and why it was not handled remotely). Append-only, like pulls.
  CREATE TABLE snapshot_layer_events (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    chain_id     TEXT NOT NULL,
    diff_id      TEXT,
    blob_digest  TEXT,
    outcome      TEXT NOT NULL CHECK (outcome IN ('fetched', 'reused', 'applied')),
    bytes        INTEGER NOT NULL,
    reason       TEXT
  ) STRICT;
  `,
  // 4: the pull log keeps a bounded history; what it forgets is folded into one row of totals
  // first, so the counters of `hostpull stats` and /metrics still only go up.
  `
  CREATE TABLE pull_totals (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    pulls             INTEGER NOT NULL,
    failed_pulls      INTEGER NOT NULL,
    up_to_date_pulls  INTEGER NOT NULL,
    bytes_fetched     INTEGER NOT NULL,
    bytes_reused      INTEGER NOT NULL,
    layer_hits        INTEGER NOT NULL,
    layer_misses      INTEGER NOT NULL
  ) STRICT;
  INSERT INTO pull_totals VALUES (1, 0, 0, 0, 0, 0, 0, 0);
  `,
  // 5: what each unpacked layer does to the tree (its footprint: JSON of archive/layer-footprint.ts),
  // so a layer unpacked under one image is checked against another image's package claim without
  // unpacking it again; and a checksum of the unpacked tree for `hostpull verify`. NULL for layers
  // unpacked before: such a layer is unpacked again when a claim must be checked against it.
  `
  ALTER TABLE layers ADD COLUMN footprint TEXT;
  ALTER TABLE layers ADD COLUMN tree_checksum TEXT;
  `,
  // 6: lazy pulling. How each layer reached this node (whole, lazy, lazy then completed) and why
  // one was not lazy, for stats and /metrics; and the spans a composite's first start read, which
  // the next lazy start of that composite fetches first.
  `
  CREATE TABLE lazy_layers (
    blob_digest      TEXT PRIMARY KEY,
    diff_id          TEXT NOT NULL,
    mode             TEXT NOT NULL CHECK (mode IN ('whole', 'lazy', 'lazy-completed')),
    reason           TEXT,
    toc_digest       TEXT,
    bytes_lazy       INTEGER NOT NULL DEFAULT 0,
    updated_at       INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE prefetch_lists (
    image            TEXT NOT NULL,
    blob_digest      TEXT NOT NULL,
    spans            TEXT NOT NULL,
    recorded_at      INTEGER NOT NULL,
    PRIMARY KEY (image, blob_digest)
  ) STRICT;
  `,
  // 7: the snapshotter records a layer it serves lazily as such, not as fetched with 0 bytes.
  // SQLite cannot alter a CHECK, so the table is copied. The earlier rows of lazy layers are
  // recognised by what only they had: fetched, 0 bytes, and a layer that arrived lazily.
  `
  CREATE TABLE snapshot_layer_events_7 (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    chain_id     TEXT NOT NULL,
    diff_id      TEXT,
    blob_digest  TEXT,
    outcome      TEXT NOT NULL CHECK (outcome IN ('fetched', 'reused', 'applied', 'lazy')),
    bytes        INTEGER NOT NULL,
    reason       TEXT
  ) STRICT;
  INSERT INTO snapshot_layer_events_7 (id, at, chain_id, diff_id, blob_digest, outcome, bytes, reason)
    SELECT id, at, chain_id, diff_id, blob_digest,
           CASE WHEN outcome = 'fetched' AND bytes = 0
                 AND blob_digest IN (SELECT blob_digest FROM lazy_layers WHERE mode <> 'whole') THEN 'lazy'
                ELSE outcome END,
           bytes, reason
      FROM snapshot_layer_events;
  DROP TABLE snapshot_layer_events;
  ALTER TABLE snapshot_layer_events_7 RENAME TO snapshot_layer_events;
  `,
  // 8: what a pull in flight holds for GC until its image is recorded (pull-holds.ts): digests
  // (blob digests and diffIDs) under the pull's lease row `pull:<token>` in `leases`.
  `
  CREATE TABLE pull_holds (
    lease   TEXT NOT NULL,
    digest  TEXT NOT NULL,
    PRIMARY KEY (lease, digest)
  ) STRICT;
  CREATE INDEX pull_holds_by_digest ON pull_holds(digest);
  `,
  // 9: a committed snapshot's fs/ on its way to layers/<layer_id> (LayerStore.adopt). The rename
  // and the layer row commit together, so a process killed in between leaves layers/<layer_id>
  // without a row — for an unpack, a leftover; for an adoption, containerd's only copy of the
  // snapshot. This row, committed before the rename, lets reconcile put the directory back. It
  // also reserves layer_id, so no commit takes that id (and sets its directory aside) meanwhile.
  // Its owner is pid + start time (pids are reused: a restarted daemon may get the same one).
  `
  CREATE TABLE layer_adoptions (
    layer_id       INTEGER PRIMARY KEY,
    snapshot_name  TEXT NOT NULL,
    snapshot_id    INTEGER NOT NULL,
    diff_id        TEXT NOT NULL,
    owner_pid      INTEGER NOT NULL,
    owner_start    TEXT NOT NULL,
    created_at     INTEGER NOT NULL
  ) STRICT;
  `,
];
