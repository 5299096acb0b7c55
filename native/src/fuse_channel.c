/*
 * fuse_channel: the transport of hostpull's own FUSE server (src/lazy/fuse-session.ts).
 *
 * A thread per mount reads requests from its /dev/fuse fd and hands each one, as a Buffer, to a
 * JS function on the event loop (a thread-safe function: requests that arrive together are
 * delivered in one wake-up). The protocol itself (INIT, LOOKUP, READ…) is decoded and answered
 * in TypeScript, which writes each reply to the same fd itself: a reply need not wait for the
 * thread, and a slow read (a span being fetched) holds up no other request.
 *
 * Some requests are answered here, on the thread. A READ whose bytes are all in spans that JS has
 * fetched, verified, inflated and lent to the channel (fuseChannelSpan): JS still hears of it,
 * marked as answered, for its bookkeeping (the learned read order, read-ahead). Measured on a
 * second node's `mvn -v`: its reads waited 0.3-0.45 s in all for the event loop, busy fetching
 * and inflating the spans of later reads, and 0.1-0.15 s more being served there. And, once JS
 * has given the mount's names (fuseChannelNames), LOOKUP, GETATTR and READLINK from them, OPEN of
 * the files JS marked as never passed through to a local copy, OPENDIR and RELEASEDIR (nothing to
 * decide there), and FLUSH, GETXATTR and LISTXATTR with ENOSYS (a lazy mount has no extended
 * attributes), and STATFS from the figures JS gave (fuseChannelStatfs): JS does not hear of these.
 * Measured on a second node's `mvn -v`: runc's setup of the container and the shell script that
 * starts the JVM waited for ~200 lookups and stats, some 20-40 ms each while the event loop was
 * busy with the spans coming in, and took 180 ms where they take 40 ms over unpacked layers.
 *
 * Why not libfuse: libfuse 2 (what fuse-native wraps) blocks one of its threads per request until
 * JS answers, resolves every inode to a path, and cannot negotiate what later kernels offer (reads
 * above 128 KiB, passthrough to a backing file). FUSE_DEV_IOC_BACKING_OPEN is here for
 * passthrough: an ioctl Node cannot make.
 */
#include <node_api.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fuse_channel.h"

/* Requests are small (a header and a name or a few numbers): the mount refuses writes, and the
 * largest request left, SETXATTR, is refused for a read-only mount before it is sent. The kernel
 * wants a buffer of at least 8 KiB + max_write (4 KiB, set by the INIT reply in fuse-session.ts). */
#define READ_BUFFER (64 * 1024)

/* linux/fuse.h (7.40): struct fuse_backing_map and the ioctl that registers a backing file. */
struct backing_map {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
#define FUSE_DEV_IOC_MAGIC 229
#define FUSE_DEV_IOC_BACKING_OPEN _IOW(FUSE_DEV_IOC_MAGIC, 1, struct backing_map)

#define FUSE_LOOKUP 1
#define FUSE_GETATTR 3
#define FUSE_READLINK 5
#define FUSE_OPEN 14
#define FUSE_READ 15
#define FUSE_STATFS 17
#define FUSE_GETXATTR 22
#define FUSE_LISTXATTR 23
#define FUSE_FLUSH 25
#define FUSE_OPENDIR 27
#define FUSE_RELEASEDIR 29
/* struct fuse_open_out's open_flags: FOPEN_KEEP_CACHE, FOPEN_CACHE_DIR (the view never changes). */
#define KEEP_CACHE (1u << 1)
#define CACHE_DIR (1u << 3)
#define IN_HEADER 40
#define OUT_HEADER 16
/* struct fuse_statfs_out: a struct fuse_kstatfs. */
#define STATFS_OUT 80
/* struct fuse_attr, as JS encodes it (fuse-protocol.ts): its first 8 bytes are the inode. */
#define ATTR 88
/* A record of fuseChannelNames' table: parent inode (u64), name length (u32), flags (u32), link
 * target length (u32), 4 bytes of padding, the node's fuse_attr, then the name and a symlink's
 * target, padded together to a multiple of 8. */
#define NAME_RECORD (24 + ATTR)
/* A record's flags: a read-only OPEN of this file is answered here (fh 0, page cache kept); every
 * name in this directory is in the table (a LOOKUP of any other is answered as missing). */
#define NAME_OPEN_HERE 1u
#define NAME_CHILDREN_KNOWN 2u
#define S_IFREG_BITS 0100000
#define S_IFLNK_BITS 0120000
#define S_IFMT_BITS 0170000
#define S_IFDIR_BITS 0040000
/* A read this many pieces long (spans far smaller than a read) is left to JS. */
#define MAX_PIECES 16

/* A span's inflated bytes, lent by JS: `ref` keeps the Buffer alive, and it is deleted on the event loop only. */
typedef struct {
  const uint8_t *data;
  napi_ref ref;
} span_t;

/* One table of names JS gave, kept for the records the hash and the inode index point into. */
struct names_table {
  struct names_table *next;
  uint8_t bytes[];
};

/* One name of the mount: parent inode and name, and its record in the names table. */
typedef struct {
  uint64_t parent;
  const uint8_t *name;
  uint32_t name_len;
  const uint8_t *record;
} name_t;

typedef struct {
  int fd;
  napi_threadsafe_function tsfn;
  /* The thread and the JS handle each hold one: the last to let go frees the channel. */
  int holders;
  /* Guards what follows: the thread reads it while JS lends and takes back spans. */
  pthread_mutex_t lock;
  /* The thread has ended: nothing more is lent. */
  bool ended;
  /* Per inode: where a file's data starts in the layer's tar, and its size (negative: not served here). */
  double *file_offset;
  double *file_size;
  uint32_t files;
  /* The spans' starts in the tar, ascending, and one past the last (spans + 1 of them). */
  double *span_start;
  span_t *span;
  uint32_t spans;
  /* The mount's names JS gave so far (fuseChannelNames): the tables (copied, chained), an
   * open-addressed hash of (parent, name) with a power-of-two number of slots (record NULL:
   * empty) and how many are used, each inode's record by inode number (NULL: unknown here), and
   * how long the kernel may keep an answer. */
  struct names_table *names_tables;
  name_t *name_slot;
  uint32_t name_slots;
  uint32_t names;
  const uint8_t **record_of;
  uint64_t inodes;
  uint64_t valid_seconds;
  /* STATFS's answer, once JS gave it (fuseChannelStatfs): the mount's figures never change. */
  bool statfs_known;
  uint8_t statfs_out[STATFS_OUT];
} channel_t;

/* One request read by the thread (data != NULL), or the end of the channel (data == NULL, with the
 * errno that ended it: 0 when the file system was unmounted). */
typedef struct {
  uint8_t *data;
  size_t size;
  int err;
  /* The request was answered on the thread (a READ served from lent spans). */
  bool answered;
} message_t;

static void free_request(napi_env env, void *data, void *hint) { free(data); }

/* On the event loop: onMessage(Buffer, answered) for a request, onMessage(null, errno) at the end. */
static void deliver(napi_env env, napi_value js_cb, void *context, void *data) {
  message_t *m = data;
  if (env == NULL) { /* the function is being torn down: nothing to call */
    free(m->data);
    free(m);
    return;
  }
  napi_value undefined, argv[2];
  napi_get_undefined(env, &undefined);
  int argc = 2;
  if (m->data != NULL) {
    if (napi_create_external_buffer(env, m->size, m->data, free_request, NULL, &argv[0]) != napi_ok) {
      free(m->data);
      napi_get_null(env, &argv[0]);
    }
    napi_get_boolean(env, m->answered, &argv[1]);
  } else {
    napi_get_null(env, &argv[0]);
    napi_create_int32(env, m->err, &argv[1]);
  }
  free(m);
  napi_call_function(env, undefined, js_cb, argc, argv, NULL);
}

static uint64_t le64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
  return v; /* x86-64 and arm64 are little-endian, as the FUSE protocol is on them */
}

static uint32_t le32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* The span holding tar byte `at` (the last whose start is at or before it); ch->spans when past the end. */
static uint32_t span_at(const channel_t *ch, double at) {
  uint32_t lo = 0, hi = ch->spans;
  if (ch->spans == 0 || at >= ch->span_start[ch->spans]) return ch->spans;
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (ch->span_start[mid] <= at) lo = mid;
    else hi = mid;
  }
  return lo;
}

static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, sizeof v); }

/*
 * Writes a reply in one writev(2): iov[0] is its header (OUT_HEADER bytes, filled in here), the
 * rest its body. A failure is the request's (ENOENT: interrupted) or the connection's, which the
 * read loop hears next: either way nobody else is to answer it.
 */
static void send_reply(channel_t *ch, struct iovec *iov, int count, int32_t error, uint64_t unique) {
  uint32_t len = 0;
  for (int k = 0; k < count; k++) len += (uint32_t)iov[k].iov_len;
  uint8_t *header = iov[0].iov_base;
  memcpy(header, &len, 4);
  memcpy(header + 4, &error, 4);
  put64(header + 8, unique);
  ssize_t r;
  do r = writev(ch->fd, iov, count);
  while (r < 0 && errno == EINTR);
}

/*
 * Answers a READ from lent spans, when every byte it asks for is in one: the reply is written
 * from the spans' own memory in one writev(2), under the lock so no span is taken back while it
 * is being written. False leaves the request to JS.
 */
static bool answer_read(channel_t *ch, const uint8_t *req, size_t n) {
  if (n < IN_HEADER + 24 || le32(req + 4) != FUSE_READ) return false;
  uint64_t unique = le64(req + 8), nodeid = le64(req + 16);
  double offset = (double)le64(req + IN_HEADER + 8);
  uint32_t size = le32(req + IN_HEADER + 16);
  bool answered = false;
  pthread_mutex_lock(&ch->lock);
  if (nodeid < ch->files && ch->file_size[nodeid] >= 0) {
    double file_size = ch->file_size[nodeid];
    double length = offset >= file_size ? 0 : file_size - offset < size ? file_size - offset : size;
    double start = ch->file_offset[nodeid] + offset, end = start + length;
    struct iovec iov[1 + MAX_PIECES];
    uint8_t header[OUT_HEADER];
    int count = 1;
    bool whole = true;
    for (uint32_t k = length > 0 ? span_at(ch, start) : ch->spans; k < ch->spans && ch->span_start[k] < end; k++) {
      if (ch->span[k].data == NULL || count == 1 + MAX_PIECES) {
        whole = false;
        break;
      }
      double from = start > ch->span_start[k] ? start : ch->span_start[k];
      double to = end < ch->span_start[k + 1] ? end : ch->span_start[k + 1];
      iov[count].iov_base = (void *)(ch->span[k].data + (size_t)(from - ch->span_start[k]));
      iov[count].iov_len = (size_t)(to - from);
      count++;
    }
    if (whole && length > 0 && ch->spans > 0 && (start < ch->span_start[0] || end > ch->span_start[ch->spans])) whole = false;
    if (whole) {
      iov[0] = (struct iovec){header, OUT_HEADER};
      send_reply(ch, iov, count, 0, unique);
      answered = true;
    }
  }
  pthread_mutex_unlock(&ch->lock);
  return answered;
}

/* FNV-1a over the parent inode and the name: the hash of the names table. */
static uint32_t name_hash(uint64_t parent, const uint8_t *name, uint32_t len) {
  uint32_t h = 2166136261u;
  for (int k = 0; k < 8; k++) h = (h ^ (uint8_t)(parent >> (8 * k))) * 16777619u;
  for (uint32_t k = 0; k < len; k++) h = (h ^ name[k]) * 16777619u;
  return h;
}

/* Where `name` in directory `parent` is in the hash `slot` (a power-of-two count of slots, with
 * room), by linear probing: the slot that holds it, or the empty one where it would go. */
static uint32_t slot_of_name(const name_t *slot, uint32_t slots, uint64_t parent, const uint8_t *name, uint32_t len) {
  uint32_t mask = slots - 1, h = name_hash(parent, name, len) & mask;
  while (slot[h].record != NULL && !(slot[h].parent == parent && slot[h].name_len == len && memcmp(slot[h].name, name, len) == 0)) h = (h + 1) & mask;
  return h;
}

/* The record of `name` in directory `parent`, or NULL when the table has no such name. */
static const uint8_t *find_name(const channel_t *ch, uint64_t parent, const uint8_t *name, uint32_t len) {
  return ch->name_slot[slot_of_name(ch->name_slot, ch->name_slots, parent, name, len)].record;
}

/* Inode `nodeid`'s record, or NULL when the table does not know it. */
static const uint8_t *record_of(const channel_t *ch, uint64_t nodeid) { return nodeid < ch->inodes ? ch->record_of[nodeid] : NULL; }

/* A record's parts (see NAME_RECORD). */
static uint32_t record_flags(const uint8_t *r) { return le32(r + 12); }
static const uint8_t *record_attr(const uint8_t *r) { return r + 24; }
static uint32_t record_type(const uint8_t *r) { return le32(record_attr(r) + 60) & S_IFMT_BITS; }
static const uint8_t *record_link(const uint8_t *r) { return r + NAME_RECORD + le32(r + 8); }
static uint32_t record_link_len(const uint8_t *r) { return le32(r + 16); }

/* Writes a reply: the header (filled in here, in `reply`), `body_len` bytes after it, then `tail_len` bytes from `tail`. */
static void write_reply(channel_t *ch, uint8_t *reply, uint32_t body_len, const uint8_t *tail, uint32_t tail_len, int32_t error, uint64_t unique) {
  struct iovec iov[2] = {{reply, OUT_HEADER + body_len}, {(void *)tail, tail_len}};
  send_reply(ch, iov, tail_len > 0 ? 2 : 1, error, unique);
}

/*
 * Answers from the names table as fuse-session.ts would: LOOKUP (a name found is a struct
 * fuse_entry_out, one missing from a known directory a negative entry, inode 0, the kernel keeps
 * as long), GETATTR, READLINK, a read-only OPEN of a file marked NAME_OPEN_HERE, OPENDIR and
 * RELEASEDIR; FLUSH and the xattr requests ENOSYS, which the kernel remembers for the mount; and
 * STATFS from the figures JS gave. False leaves the request to JS (no table or figures yet, an
 * inode or directory the table does not know, any other OPEN).
 */
static bool answer_name(channel_t *ch, const uint8_t *req, size_t n) {
  if (n < IN_HEADER) return false;
  uint32_t opcode = le32(req + 4);
  switch (opcode) {
  case FUSE_LOOKUP: case FUSE_GETATTR: case FUSE_READLINK: case FUSE_OPEN: case FUSE_OPENDIR: case FUSE_RELEASEDIR:
  case FUSE_FLUSH: case FUSE_GETXATTR: case FUSE_LISTXATTR: case FUSE_STATFS:
    break;
  default:
    return false;
  }
  uint64_t unique = le64(req + 8), nodeid = le64(req + 16);
  uint8_t reply[OUT_HEADER + (40 + ATTR > STATFS_OUT ? 40 + ATTR : STATFS_OUT)];
  memset(reply, 0, sizeof reply);
  uint8_t *body = reply + OUT_HEADER;
  bool answered = true;
  pthread_mutex_lock(&ch->lock);
  const uint8_t *r = record_of(ch, nodeid);
  if (opcode == FUSE_STATFS) {
    if (!ch->statfs_known) answered = false;
    else {
      memcpy(body, ch->statfs_out, STATFS_OUT);
      write_reply(ch, reply, STATFS_OUT, NULL, 0, 0, unique);
    }
  } else if (ch->names_tables == NULL) answered = false;
  else if (opcode == FUSE_FLUSH || opcode == FUSE_GETXATTR || opcode == FUSE_LISTXATTR) write_reply(ch, reply, 0, NULL, 0, -ENOSYS, unique);
  else if (opcode == FUSE_RELEASEDIR) write_reply(ch, reply, 0, NULL, 0, 0, unique);
  else if (opcode == FUSE_OPENDIR || opcode == FUSE_OPEN) {
    /* struct fuse_open_in: flags (open(2)'s), ...; struct fuse_open_out: fh, open_flags, backing id. */
    if (opcode == FUSE_OPEN &&
        (n < IN_HEADER + 8 || r == NULL || (record_flags(r) & NAME_OPEN_HERE) == 0 || record_type(r) != S_IFREG_BITS || (le32(req + IN_HEADER) & 3) != 0))
      answered = false;
    else {
      uint32_t flags = opcode == FUSE_OPEN ? KEEP_CACHE : KEEP_CACHE | CACHE_DIR;
      memcpy(body + 8, &flags, 4);
      write_reply(ch, reply, 16, NULL, 0, 0, unique);
    }
  } else if (opcode == FUSE_GETATTR) {
    /* struct fuse_attr_out: attr_valid, attr_valid_nsec, dummy, attr. */
    if (r == NULL) answered = false;
    else {
      put64(body, ch->valid_seconds);
      memcpy(body + 16, record_attr(r), ATTR);
      write_reply(ch, reply, 16 + ATTR, NULL, 0, 0, unique);
    }
  } else if (opcode == FUSE_READLINK) {
    if (r == NULL || record_type(r) != S_IFLNK_BITS) answered = false;
    else write_reply(ch, reply, 0, record_link(r), record_link_len(r), 0, unique);
  } else {
    /* LOOKUP: the name, NUL-terminated. struct fuse_entry_out: nodeid, generation, entry_valid,
     * attr_valid, their nanoseconds, attr. */
    const uint8_t *name = req + IN_HEADER;
    const uint8_t *nul = memchr(name, 0, n - IN_HEADER);
    if (nul == NULL || r == NULL || record_type(r) != S_IFDIR_BITS || (record_flags(r) & NAME_CHILDREN_KNOWN) == 0) answered = false;
    else {
      const uint8_t *found = find_name(ch, nodeid, name, (uint32_t)(nul - name));
      if (found != NULL) {
        memcpy(body, record_attr(found), 8);
        memcpy(body + 40, record_attr(found), ATTR);
      }
      put64(body + 16, ch->valid_seconds);
      put64(body + 24, ch->valid_seconds);
      write_reply(ch, reply, 40 + ATTR, NULL, 0, 0, unique);
    }
  }
  pthread_mutex_unlock(&ch->lock);
  return answered;
}

static void *read_requests(void *arg) {
  channel_t *ch = arg;
  uint8_t *buf = malloc(READ_BUFFER);
  int err = buf == NULL ? ENOMEM : 0;
  while (err == 0) {
    ssize_t n = read(ch->fd, buf, READ_BUFFER);
    if (n < 0) {
      /* ENOENT: the request was interrupted before we read it; EINTR/EAGAIN: try again. */
      if (errno == EINTR || errno == EAGAIN || errno == ENOENT) continue;
      err = errno;
      break;
    }
    if (answer_name(ch, buf, (size_t)n)) continue;
    message_t *m = malloc(sizeof *m);
    uint8_t *copy = malloc((size_t)n);
    if (m == NULL || copy == NULL) {
      free(m);
      free(copy);
      err = ENOMEM;
      break;
    }
    memcpy(copy, buf, (size_t)n);
    *m = (message_t){.data = copy, .size = (size_t)n, .err = 0, .answered = answer_read(ch, buf, (size_t)n)};
    napi_call_threadsafe_function(ch->tsfn, m, napi_tsfn_blocking);
  }
  free(buf);
  /* ENODEV: the connection is gone (unmounted, or aborted): a normal end. */
  message_t *end = malloc(sizeof *end);
  if (end != NULL) {
    *end = (message_t){.data = NULL, .size = 0, .err = err == ENODEV ? 0 : err, .answered = false};
    napi_call_threadsafe_function(ch->tsfn, end, napi_tsfn_blocking);
  }
  napi_release_threadsafe_function(ch->tsfn, napi_tsfn_release);
  return NULL;
}

/* On the event loop, under the lock: takes back every lent span, deleting its reference. */
static void take_back_all(napi_env env, channel_t *ch) {
  for (uint32_t k = 0; k < ch->spans; k++) {
    if (ch->span[k].ref != NULL) napi_delete_reference(env, ch->span[k].ref);
    ch->span[k] = (span_t){NULL, NULL};
  }
}

/* Frees the layout's tables (under the lock, or once nobody else can see the channel). */
static void free_layout(channel_t *ch) {
  free(ch->file_offset);
  free(ch->file_size);
  free(ch->span_start);
  free(ch->span);
}

/* Frees the names tables (likewise). */
static void free_names(channel_t *ch) {
  while (ch->names_tables != NULL) {
    struct names_table *next = ch->names_tables->next;
    free(ch->names_tables);
    ch->names_tables = next;
  }
  free(ch->name_slot);
  free(ch->record_of);
}

/* On the event loop: takes back every lent span and, once both holders let go, frees the channel. */
static void let_go(napi_env env, channel_t *ch) {
  pthread_mutex_lock(&ch->lock);
  take_back_all(env, ch);
  bool last = --ch->holders == 0;
  pthread_mutex_unlock(&ch->lock);
  if (!last) return;
  pthread_mutex_destroy(&ch->lock);
  free_layout(ch);
  free_names(ch);
  free(ch);
}

/* The thread has ended and its last message was delivered. */
static void thread_finished(napi_env env, void *data, void *hint) {
  channel_t *ch = data;
  pthread_mutex_lock(&ch->lock);
  ch->ended = true;
  pthread_mutex_unlock(&ch->lock);
  let_go(env, ch);
}

/* The JS handle was collected. */
static void handle_collected(napi_env env, void *data, void *hint) { let_go(env, data); }

static bool get_int(napi_env env, napi_value v, const char *what, int32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_int32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", what);
    return false;
  }
  return true;
}

static napi_value throw_code(napi_env env, int err, const char *what) {
  char msg[200];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, message, error, errno_v;
  napi_create_string_utf8(env, err == 0 ? "EINVAL" : strerrorname_np(err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, err, &errno_v);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_throw(env, error);
  return NULL;
}

/* fuseChannel(fd, onMessage) -> handle: starts the thread that reads `fd` (an open /dev/fuse,
 * mounted). The function keeps the process alive until the channel ends. The handle is for
 * fuseChannelLayout and fuseChannelSpan. */
static napi_value js_fuse_channel(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd;
  if (!get_int(env, argv[0], "fuseChannel: fd must be a number", &fd)) return NULL;
  napi_valuetype t;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fuseChannel: onMessage must be a function");
    return NULL;
  }
  channel_t *ch = calloc(1, sizeof *ch);
  if (ch == NULL) return throw_code(env, ENOMEM, "fuseChannel");
  ch->fd = fd;
  ch->holders = 2;
  pthread_mutex_init(&ch->lock, NULL);
  napi_value handle;
  if (napi_create_external(env, ch, handle_collected, NULL, &handle) != napi_ok) {
    pthread_mutex_destroy(&ch->lock);
    free(ch);
    return throw_code(env, ENOMEM, "fuseChannel: cannot create its handle");
  }
  napi_value name;
  napi_create_string_utf8(env, "hostpull-fuse-channel", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, ch, thread_finished, NULL, deliver, &ch->tsfn) != napi_ok) {
    ch->holders = 1; /* the handle's finalizer frees it */
    return throw_code(env, EINVAL, "fuseChannel: cannot create the thread-safe function");
  }
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* The thread only reads into its own buffer: a small stack is plenty. */
  pthread_attr_setstacksize(&attr, 64 * 1024);
  int err = pthread_create(&thread, &attr, read_requests, ch);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    napi_release_threadsafe_function(ch->tsfn, napi_tsfn_abort);
    return throw_code(env, err, "fuseChannel: pthread_create");
  }
  return handle;
}

static channel_t *get_channel(napi_env env, napi_value v, const char *what) {
  void *data = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", what);
    return NULL;
  }
  return data;
}

/* The arguments of a call on a channel (argv[0] is its handle): the channel, or NULL with an exception pending. */
static channel_t *channel_call(napi_env env, napi_callback_info info, size_t argc, napi_value *argv, const char *what) {
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  return get_channel(env, argv[0], what);
}

/* A Buffer argument's bytes; with `is_null`, null too (*is_null says which). False with an exception pending. */
static bool get_buffer(napi_env env, napi_value v, bool *is_null, const char *what, void **data, size_t *size) {
  *data = NULL;
  *size = 0;
  napi_valuetype t;
  if (is_null != NULL) *is_null = napi_typeof(env, v, &t) == napi_ok && t == napi_null;
  if (is_null != NULL && *is_null) return true;
  bool is = false;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is || napi_get_buffer_info(env, v, data, size) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", what);
    return false;
  }
  return true;
}

/* A copy of a Float64Array's values (count in *n), or NULL with an exception pending. */
static double *get_doubles(napi_env env, napi_value v, const char *what, size_t *n) {
  bool is;
  napi_typedarray_type type;
  void *data;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is || napi_get_typedarray_info(env, v, &type, n, &data, NULL, NULL) != napi_ok || type != napi_float64_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", what);
    return NULL;
  }
  double *copy = malloc((*n > 0 ? *n : 1) * sizeof *copy);
  if (copy == NULL) {
    throw_code(env, ENOMEM, what);
    return NULL;
  }
  memcpy(copy, data, *n * sizeof *copy);
  return copy;
}

/* fuseChannelLayout(handle, fileOffsets, fileSizes, spanStarts): what READs the thread may answer
 * (Float64Arrays: per inode a file's data offset in the tar and its size, negative for none; the
 * spans' starts and one past the last). Takes back every span lent before. */
static napi_value js_fuse_channel_layout(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  channel_t *ch = channel_call(env, info, 4, argv, "fuseChannelLayout: handle must come from fuseChannel");
  if (ch == NULL) return NULL;
  size_t files = 0, sizes = 0, starts = 0;
  double *offset = get_doubles(env, argv[1], "fuseChannelLayout: fileOffsets must be a Float64Array", &files);
  double *size = offset == NULL ? NULL : get_doubles(env, argv[2], "fuseChannelLayout: fileSizes must be a Float64Array", &sizes);
  double *start = size == NULL ? NULL : get_doubles(env, argv[3], "fuseChannelLayout: spanStarts must be a Float64Array", &starts);
  span_t *span = NULL;
  if (start != NULL) {
    bool ok = files == sizes && starts >= 1 && files <= UINT32_MAX && starts <= UINT32_MAX;
    for (size_t k = 1; ok && k < starts; k++) ok = start[k] > start[k - 1];
    if (!ok) napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fuseChannelLayout: one size per offset, and span starts that ascend");
    else if ((span = calloc(starts > 1 ? starts - 1 : 1, sizeof *span)) == NULL) throw_code(env, ENOMEM, "fuseChannelLayout");
  }
  if (span == NULL) { /* an exception is pending */
    free(offset);
    free(size);
    free(start);
    return NULL;
  }
  pthread_mutex_lock(&ch->lock);
  take_back_all(env, ch);
  free_layout(ch);
  ch->file_offset = offset;
  ch->file_size = size;
  ch->files = (uint32_t)files;
  ch->span_start = start;
  ch->span = span;
  ch->spans = (uint32_t)(starts - 1);
  pthread_mutex_unlock(&ch->lock);
  return NULL;
}

/* fuseChannelSpan(handle, index, bytes | null): lends span `index`'s inflated bytes to the thread
 * (a Buffer exactly the span's length, kept alive until taken back), or takes them back. */
static napi_value js_fuse_channel_span(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  channel_t *ch = channel_call(env, info, 3, argv, "fuseChannelSpan: handle must come from fuseChannel");
  if (ch == NULL) return NULL;
  int32_t index;
  if (!get_int(env, argv[1], "fuseChannelSpan: index must be a number", &index)) return NULL;
  void *data;
  size_t length;
  bool is_null;
  if (!get_buffer(env, argv[2], &is_null, "fuseChannelSpan: bytes must be a Buffer or null", &data, &length)) return NULL;
  bool is_buffer = !is_null;
  pthread_mutex_lock(&ch->lock);
  if (index < 0 || (uint32_t)index >= ch->spans) {
    pthread_mutex_unlock(&ch->lock);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fuseChannelSpan: no such span in the layout");
    return NULL;
  }
  span_t *s = &ch->span[index];
  if (is_buffer && (double)length != ch->span_start[index + 1] - ch->span_start[index]) {
    pthread_mutex_unlock(&ch->lock);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fuseChannelSpan: bytes are not the span's length");
    return NULL;
  }
  if (s->ref != NULL) napi_delete_reference(env, s->ref);
  *s = (span_t){NULL, NULL};
  /* Nothing is lent to a thread that has ended: nobody would take it back. */
  if (is_buffer && !ch->ended && napi_create_reference(env, argv[2], 1, &s->ref) == napi_ok) s->data = data;
  pthread_mutex_unlock(&ch->lock);
  return NULL;
}

/* Where each record of a names table starts (count of them in *count), checking that every one
 * lies within the table; NULL when one does not. Its inodes' largest in *max_inode. */
static size_t *name_records(const uint8_t *table, size_t size, size_t *count, uint64_t *max_inode) {
  size_t n = 0, cap = 1024;
  size_t *at = malloc(cap * sizeof *at);
  *max_inode = 0;
  for (size_t pos = 0; at != NULL && pos < size;) {
    if (size - pos < NAME_RECORD) goto bad;
    size_t len = (size_t)le32(table + pos + 8) + le32(table + pos + 16);
    size_t record = NAME_RECORD + ((len + 7) & ~(size_t)7);
    if (size - pos < record) goto bad;
    uint64_t inode = le64(table + pos + 24);
    if (inode == 0 || inode > UINT32_MAX) goto bad;
    if (inode > *max_inode) *max_inode = inode;
    if (n == cap) {
      size_t *grown = realloc(at, (cap *= 2) * sizeof *at);
      if (grown == NULL) {
        free(at);
        return NULL;
      }
      at = grown;
    }
    at[n++] = pos;
    pos += record;
  }
  *count = n;
  return at;
bad:
  free(at);
  *count = SIZE_MAX;
  return NULL;
}

/* Puts record `r` in the hash of `slot` (a power-of-two count of slots, with room): a name already
 * there is replaced. */
static bool hash_name(name_t *slot, uint32_t slots, const uint8_t *r) {
  name_t entry = {.parent = le64(r), .name = r + NAME_RECORD, .name_len = le32(r + 8), .record = r};
  uint32_t h = slot_of_name(slot, slots, entry.parent, entry.name, entry.name_len);
  bool added = slot[h].record == NULL;
  slot[h] = entry;
  return added;
}

/* fuseChannelNames(handle, table, validSeconds): more of the mount's names, which the thread
 * answers LOOKUP, GETATTR, READLINK and some OPENs from (a Buffer of records, see NAME_RECORD; a
 * record whose parent is 0 is only its inode's, the root's or a directory's whose children follow),
 * and how long the kernel may keep its answers. A name or inode given again is replaced. */
static napi_value js_fuse_channel_names(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  channel_t *ch = channel_call(env, info, 3, argv, "fuseChannelNames: handle must come from fuseChannel");
  if (ch == NULL) return NULL;
  void *data;
  size_t size;
  if (!get_buffer(env, argv[1], NULL, "fuseChannelNames: table must be a Buffer", &data, &size)) return NULL;
  int32_t valid;
  if (!get_int(env, argv[2], "fuseChannelNames: validSeconds must be a number", &valid)) return NULL;
  if (valid < 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fuseChannelNames: validSeconds must not be negative");
    return NULL;
  }
  size_t count = 0;
  uint64_t max_inode = 0;
  size_t *records = name_records(data, size, &count, &max_inode);
  if (records == NULL) {
    if (count == SIZE_MAX) napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fuseChannelNames: a record of the table is cut short or names inode 0");
    else throw_code(env, ENOMEM, "fuseChannelNames");
    return NULL;
  }
  struct names_table *table = malloc(sizeof *table + size);
  if (table == NULL) {
    free(records);
    return throw_code(env, ENOMEM, "fuseChannelNames");
  }
  memcpy(table->bytes, data, size);
  pthread_mutex_lock(&ch->lock);
  /* Room first (the inode index, and the hash at most half full), so nothing fails halfway. */
  bool room = true;
  if (max_inode >= ch->inodes) {
    uint64_t inodes = max_inode + 1 > 2 * ch->inodes ? max_inode + 1 : 2 * ch->inodes;
    const uint8_t **grown = realloc(ch->record_of, inodes * sizeof *grown);
    if (grown == NULL) room = false;
    else {
      memset(grown + ch->inodes, 0, (inodes - ch->inodes) * sizeof *grown);
      ch->record_of = grown;
      ch->inodes = inodes;
    }
  }
  if (room && 2 * ((uint64_t)ch->names + count) >= ch->name_slots) {
    uint64_t slots = ch->name_slots > 0 ? ch->name_slots : 64;
    while (slots <= 2 * ((uint64_t)ch->names + count)) slots *= 2;
    name_t *slot = slots > UINT32_MAX ? NULL : calloc(slots, sizeof *slot);
    if (slot == NULL) room = false;
    else {
      for (uint32_t k = 0; k < ch->name_slots; k++)
        if (ch->name_slot[k].record != NULL) hash_name(slot, (uint32_t)slots, ch->name_slot[k].record);
      free(ch->name_slot);
      ch->name_slot = slot;
      ch->name_slots = (uint32_t)slots;
    }
  }
  if (room) {
    for (size_t k = 0; k < count; k++) {
      const uint8_t *r = table->bytes + records[k];
      ch->record_of[le64(record_attr(r))] = r;
      if (le64(r) != 0 && hash_name(ch->name_slot, ch->name_slots, r)) ch->names++;
    }
    table->next = ch->names_tables;
    ch->names_tables = table;
    ch->valid_seconds = (uint64_t)valid;
  }
  pthread_mutex_unlock(&ch->lock);
  free(records);
  if (!room) {
    free(table);
    return throw_code(env, ENOMEM, "fuseChannelNames");
  }
  return NULL;
}

/* fuseChannelStatfs(handle, figures): the body of the mount's STATFS reply (a struct fuse_kstatfs,
 * STATFS_OUT bytes), which the thread answers with from now on. */
static napi_value js_fuse_channel_statfs(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  channel_t *ch = channel_call(env, info, 2, argv, "fuseChannelStatfs: handle must come from fuseChannel");
  if (ch == NULL) return NULL;
  void *data;
  size_t size;
  if (!get_buffer(env, argv[1], NULL, "fuseChannelStatfs: figures must be a Buffer", &data, &size)) return NULL;
  if (size != STATFS_OUT) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fuseChannelStatfs: figures must be a struct fuse_kstatfs (80 bytes)");
    return NULL;
  }
  pthread_mutex_lock(&ch->lock);
  memcpy(ch->statfs_out, data, STATFS_OUT);
  ch->statfs_known = true;
  pthread_mutex_unlock(&ch->lock);
  return NULL;
}

/* fuseBackingOpen(devFd, fileFd) -> backing id, for an OPEN reply with FOPEN_PASSTHROUGH. */
static napi_value js_fuse_backing_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t dev_fd, file_fd;
  if (!get_int(env, argv[0], "fuseBackingOpen: devFd must be a number", &dev_fd) ||
      !get_int(env, argv[1], "fuseBackingOpen: fileFd must be a number", &file_fd))
    return NULL;
  struct backing_map map = {.fd = file_fd, .flags = 0, .padding = 0};
  int id = ioctl(dev_fd, FUSE_DEV_IOC_BACKING_OPEN, &map);
  if (id < 0) return throw_code(env, errno, "ioctl FUSE_DEV_IOC_BACKING_OPEN");
  napi_value r;
  napi_create_int32(env, id, &r);
  return r;
}

void register_fuse_channel(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"fuseChannel", NULL, js_fuse_channel, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"fuseChannelLayout", NULL, js_fuse_channel_layout, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"fuseChannelSpan", NULL, js_fuse_channel_span, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"fuseChannelNames", NULL, js_fuse_channel_names, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"fuseChannelStatfs", NULL, js_fuse_channel_statfs, NULL, NULL, NULL, napi_default_jsproperty, NULL},
      {"fuseBackingOpen", NULL, js_fuse_backing_open, NULL, NULL, NULL, napi_default_jsproperty, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
