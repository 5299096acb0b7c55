/*
 * fuse_channel: the transport of hostpull's own FUSE server (src/lazy/fuse-session.ts).
 *
 * A thread per mount reads requests from its /dev/fuse fd and hands each one, as a Buffer, to a
 * JS function on the event loop (a thread-safe function: requests that arrive together are
 * delivered in one wake-up). The protocol itself (INIT, LOOKUP, READ…) is decoded and answered
 * in TypeScript, which writes each reply to the same fd itself: a reply need not wait for the
 * thread, and a slow read (a span being fetched) holds up no other request.
 *
 * One request is answered here, on the thread: a READ whose bytes are all in spans that JS has
 * fetched, verified, inflated and lent to the channel (fuseChannelSpan). JS still hears of it,
 * marked as answered, for its bookkeeping (the learned read order, read-ahead). Measured on a
 * second node's `mvn -v`: its reads waited 0.3-0.45 s in all for the event loop, busy fetching
 * and inflating the spans of later reads, and 0.1-0.15 s more being served there.
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

#define FUSE_READ 15
#define IN_HEADER 40
#define OUT_HEADER 16
/* A read this many pieces long (spans far smaller than a read) is left to JS. */
#define MAX_PIECES 16

/* A span's inflated bytes, lent by JS: `ref` keeps the Buffer alive, and it is deleted on the event loop only. */
typedef struct {
  const uint8_t *data;
  napi_ref ref;
} span_t;

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
      uint32_t len = OUT_HEADER + (uint32_t)length;
      int32_t error = 0;
      memcpy(header, &len, 4);
      memcpy(header + 4, &error, 4);
      memcpy(header + 8, &unique, 8);
      iov[0].iov_base = header;
      iov[0].iov_len = OUT_HEADER;
      /* A failure is the request's (ENOENT: interrupted) or the connection's, which the read loop
       * hears next: either way nobody else is to answer it. */
      ssize_t r;
      do r = writev(ch->fd, iov, count);
      while (r < 0 && errno == EINTR);
      answered = true;
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

/* On the event loop: takes back every lent span and, once both holders let go, frees the channel. */
static void let_go(napi_env env, channel_t *ch) {
  pthread_mutex_lock(&ch->lock);
  take_back_all(env, ch);
  bool last = --ch->holders == 0;
  pthread_mutex_unlock(&ch->lock);
  if (!last) return;
  pthread_mutex_destroy(&ch->lock);
  free_layout(ch);
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
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  void *data = NULL;
  size_t length = 0;
  bool is_buffer = false;
  if (t != napi_null && (napi_is_buffer(env, argv[2], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[2], &data, &length) != napi_ok)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fuseChannelSpan: bytes must be a Buffer or null");
    return NULL;
  }
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
      {"fuseBackingOpen", NULL, js_fuse_backing_open, NULL, NULL, NULL, napi_default_jsproperty, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
