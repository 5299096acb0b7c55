/*
 * fuse_channel: the transport of hostpull's own FUSE server (src/lazy/fuse-session.ts).
 *
 * A thread per mount reads requests from its /dev/fuse fd and hands each one, as a Buffer, to a
 * JS function on the event loop (a thread-safe function: requests that arrive together are
 * delivered in one wake-up). The protocol itself (INIT, LOOKUP, READ…) is decoded and answered
 * in TypeScript, which writes each reply to the same fd itself: a reply need not wait for the
 * thread, and a slow read (a span being fetched) holds up no other request.
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

typedef struct {
  int fd;
  napi_threadsafe_function tsfn;
} channel_t;

/* One request read by the thread (data != NULL), or the end of the channel (data == NULL, with the
 * errno that ended it: 0 when the file system was unmounted). */
typedef struct {
  uint8_t *data;
  size_t size;
  int err;
} message_t;

static void free_request(napi_env env, void *data, void *hint) { free(data); }

/* On the event loop: onMessage(Buffer) for a request, onMessage(null, errno) at the end. */
static void deliver(napi_env env, napi_value js_cb, void *context, void *data) {
  message_t *m = data;
  if (env == NULL) { /* the function is being torn down: nothing to call */
    free(m->data);
    free(m);
    return;
  }
  napi_value undefined, argv[2];
  napi_get_undefined(env, &undefined);
  int argc = 1;
  if (m->data != NULL) {
    if (napi_create_external_buffer(env, m->size, m->data, free_request, NULL, &argv[0]) != napi_ok) {
      free(m->data);
      napi_get_null(env, &argv[0]);
    }
  } else {
    napi_get_null(env, &argv[0]);
    napi_create_int32(env, m->err, &argv[1]);
    argc = 2;
  }
  free(m);
  napi_call_function(env, undefined, js_cb, argc, argv, NULL);
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
    *m = (message_t){.data = copy, .size = (size_t)n, .err = 0};
    napi_call_threadsafe_function(ch->tsfn, m, napi_tsfn_blocking);
  }
  free(buf);
  /* ENODEV: the connection is gone (unmounted, or aborted): a normal end. */
  message_t *end = malloc(sizeof *end);
  if (end != NULL) {
    *end = (message_t){.data = NULL, .size = 0, .err = err == ENODEV ? 0 : err};
    napi_call_threadsafe_function(ch->tsfn, end, napi_tsfn_blocking);
  }
  napi_release_threadsafe_function(ch->tsfn, napi_tsfn_release);
  return NULL;
}

static void free_channel(napi_env env, void *data, void *hint) { free(data); }

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

/* fuseChannel(fd, onMessage): starts the thread that reads `fd` (an open /dev/fuse, mounted). The
 * function keeps the process alive until the channel ends. */
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
  napi_value name;
  napi_create_string_utf8(env, "hostpull-fuse-channel", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, ch, free_channel, NULL, deliver, &ch->tsfn) != napi_ok) {
    free(ch);
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
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
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
      {"fuseBackingOpen", NULL, js_fuse_backing_open, NULL, NULL, NULL, napi_default_jsproperty, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
