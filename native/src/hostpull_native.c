/*
 * hostpull_native: the Linux syscalls that Node 20 lacks and that hostpull needs to unpack layers
 * (mknod for overlay whiteouts, l*xattr for security.capability and trusted.overlay.*) and to
 * assemble a rootfs (mount/umount2, and the new mount API for overlays with many lower layers);
 * fuse_channel.c adds the transport of the lazy views' FUSE server.
 *
 * Plain Node-API (no node-addon-api) so the addon is ABI-stable across Node versions.
 * Every function is synchronous: each is one or a few syscalls that do not block on I/O for long.
 * On failure a JS Error is thrown with .code (errno name, e.g. "ENOENT"), .errno (positive number),
 * .syscall and .path, and a message "<syscall> <path>: <CODE> (<strerror>)".
 */
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fuse_channel.h"
#include "checksum.h"
#include "gunzip.h"
#include "inflate_raw.h"

/* Values handed to fsconfig(FSCONFIG_SET_STRING) are copied with strndup_user(value, 256) in
 * fs/fsopen.c: a path of 256 bytes or more fails with EINVAL. Such paths are passed as an
 * O_PATH fd instead (FSCONFIG_SET_FD, which overlayfs accepts for layer keys since Linux 6.13). */
#define FSCONFIG_STRING_MAX 256

/* Throws the pending N-API error as a JS error if the call failed; used for "cannot happen" paths. */
#define NAPI_CALL(env, call)                                                   \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      throw_napi_status(env);                                                  \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static void throw_napi_status(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  napi_throw_error(env, "ERR_NAPI",
                   info && info->error_message ? info->error_message : "N-API call failed");
}

static void set_string_prop(napi_env env, napi_value obj, const char *key, const char *value) {
  napi_value v;
  if (napi_create_string_utf8(env, value, NAPI_AUTO_LENGTH, &v) == napi_ok)
    napi_set_named_property(env, obj, key, v);
}

static void set_number_prop(napi_env env, napi_value obj, const char *key, double value) {
  napi_value v;
  if (napi_create_double(env, value, &v) == napi_ok) napi_set_named_property(env, obj, key, v);
}

/*
 * Builds and throws the errno error. `detail` (may be NULL) is appended to the message, e.g. the
 * overlayfs reasons read from the fs context log. Returns NULL so callers can `return throw_errno(...)`.
 */
static napi_value throw_errno_detail(napi_env env, int err, const char *syscall, const char *path,
                                     const char *detail) {
  const char *name = strerrorname_np(err);
  char namebuf[32];
  if (name == NULL) {
    snprintf(namebuf, sizeof namebuf, "E%d", err);
    name = namebuf;
  }
  const char *desc = strerror(err);
  size_t len = strlen(syscall) + (path ? strlen(path) : 0) + strlen(name) + strlen(desc) +
               (detail ? strlen(detail) : 0) + 16;
  char *msg = malloc(len);
  if (msg == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  snprintf(msg, len, "%s%s%s: %s (%s)%s%s", syscall, path ? " " : "", path ? path : "", name, desc,
           detail ? ": " : "", detail ? detail : "");
  napi_value code_v, msg_v, error;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code_v) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v) != napi_ok ||
      napi_create_error(env, code_v, msg_v, &error) != napi_ok) {
    free(msg);
    throw_napi_status(env);
    return NULL;
  }
  free(msg);
  set_number_prop(env, error, "errno", err);
  set_string_prop(env, error, "syscall", syscall);
  if (path) set_string_prop(env, error, "path", path);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  return throw_errno_detail(env, err, syscall, path, NULL);
}

static bool is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  return t == napi_null || t == napi_undefined;
}

/* Copies a JS string into a malloc'd C string. With `nullable`, null/undefined give *out = NULL.
 * Throws a TypeError naming `what` and returns false on a wrong type or an embedded NUL. */
static bool get_cstring(napi_env env, napi_value v, bool nullable, const char *what, char **out) {
  *out = NULL;
  if (nullable && is_nullish(env, v)) return true;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be a string%s", what, nullable ? " or null" : "");
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return false;
  char *s = malloc(len + 1);
  if (s == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return false;
  }
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  if (strlen(s) != len) {
    free(s);
    char msg[160];
    snprintf(msg, sizeof msg, "%s must not contain NUL bytes", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
    return false;
  }
  *out = s;
  return true;
}

static bool get_int64(napi_env env, napi_value v, const char *what, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be a number", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  return napi_get_value_int64(env, v, out) == napi_ok;
}

/* Fetches exactly `n` arguments (missing ones read as undefined). */
static bool get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv) {
  size_t argc = n;
  return napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* mount(source|null, target, fstype|null, flags, data|null) */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  char *source = NULL, *target = NULL, *fstype = NULL, *data = NULL;
  int64_t flags = 0;
  napi_value result = NULL;
  if (get_cstring(env, argv[0], true, "source", &source) &&
      get_cstring(env, argv[1], false, "target", &target) &&
      get_cstring(env, argv[2], true, "fstype", &fstype) && get_int64(env, argv[3], "flags", &flags) &&
      get_cstring(env, argv[4], true, "data", &data)) {
    if (mount(source, target, fstype, (unsigned long)flags, data) != 0)
      throw_errno(env, errno, "mount", target);
    else
      result = undefined(env);
  }
  free(source);
  free(target);
  free(fstype);
  free(data);
  return result;
}

/* umount2(target, flags) */
static napi_value js_umount2(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  char *target = NULL;
  int64_t flags = 0;
  napi_value result = NULL;
  if (get_cstring(env, argv[0], false, "target", &target) && get_int64(env, argv[1], "flags", &flags)) {
    if (umount2(target, (int)flags) != 0)
      throw_errno(env, errno, "umount2", target);
    else
      result = undefined(env);
  }
  free(target);
  return result;
}

/* mknod(path, mode, dev): mode includes the file type bits (S_IFCHR...). */
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  char *path = NULL;
  int64_t mode = 0, dev = 0;
  napi_value result = NULL;
  if (get_cstring(env, argv[0], false, "path", &path) && get_int64(env, argv[1], "mode", &mode) &&
      get_int64(env, argv[2], "dev", &dev)) {
    if (mknod(path, (mode_t)mode, (dev_t)dev) != 0)
      throw_errno(env, errno, "mknod", path);
    else
      result = undefined(env);
  }
  free(path);
  return result;
}

/* makedev(major, minor) -> number (glibc's 64-bit encoding; below 2^53 for any real device). */
static napi_value js_makedev(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  int64_t maj = 0, min = 0;
  if (!get_int64(env, argv[0], "major", &maj) || !get_int64(env, argv[1], "minor", &min)) return NULL;
  napi_value r;
  NAPI_CALL(env, napi_create_int64(env, (int64_t)makedev((unsigned)maj, (unsigned)min), &r));
  return r;
}

static napi_value js_major(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int64_t dev = 0;
  if (!get_int64(env, argv[0], "dev", &dev)) return NULL;
  napi_value r;
  NAPI_CALL(env, napi_create_uint32(env, major((dev_t)dev), &r));
  return r;
}

static napi_value js_minor(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int64_t dev = 0;
  if (!get_int64(env, argv[0], "dev", &dev)) return NULL;
  napi_value r;
  NAPI_CALL(env, napi_create_uint32(env, minor((dev_t)dev), &r));
  return r;
}

/* lsetxattr(path, name, value: Buffer|Uint8Array, flags) */
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  char *path = NULL, *name = NULL;
  int64_t flags = 0;
  napi_value result = NULL;
  if (get_cstring(env, argv[0], false, "path", &path) && get_cstring(env, argv[1], false, "name", &name) &&
      get_int64(env, argv[3], "flags", &flags)) {
    bool is_typed = false;
    napi_is_typedarray(env, argv[2], &is_typed);
    if (!is_typed) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "value must be a Buffer or Uint8Array");
    } else {
      napi_typedarray_type type;
      size_t length = 0;
      void *data = NULL;
      napi_value ab;
      size_t offset = 0;
      if (napi_get_typedarray_info(env, argv[2], &type, &length, &data, &ab, &offset) != napi_ok ||
          type != napi_uint8_array) {
        napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "value must be a Buffer or Uint8Array");
      } else if (lsetxattr(path, name, length ? data : "", length, (int)flags) != 0) {
        throw_errno(env, errno, "lsetxattr", path);
      } else {
        result = undefined(env);
      }
    }
  }
  free(path);
  free(name);
  return result;
}

/* One call of the value (name != NULL) or name-list (name == NULL) read; the two take the same
 * size probe and retry, so they share read_xattr below. */
static ssize_t xattr_read_call(const char *path, const char *name, char *buf, size_t size) {
  return name ? lgetxattr(path, name, buf, size) : llistxattr(path, buf, size);
}

/* Reads an attribute's value, or the list of names, into a malloc'd *out and returns its length;
 * -1 with errno set on failure. Size probe then read: the value can grow in between (ERANGE), so
 * a few attempts; one that keeps growing ends with ERANGE. */
static ssize_t read_xattr(const char *path, const char *name, char **out) {
  *out = NULL;
  for (int attempt = 0; attempt < 8; attempt++) {
    ssize_t size = xattr_read_call(path, name, NULL, 0);
    if (size < 0) return -1;
    char *buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf == NULL) {
      errno = ENOMEM;
      return -1;
    }
    ssize_t got = size > 0 ? xattr_read_call(path, name, buf, (size_t)size) : 0;
    if (got >= 0) {
      *out = buf;
      return got;
    }
    int err = errno;
    free(buf);
    errno = err;
    if (err != ERANGE) return -1;
  }
  errno = ERANGE;
  return -1;
}

/* lgetxattr(path, name) -> Buffer | null (null when the attribute is absent: ENODATA). */
static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  char *path = NULL, *name = NULL;
  napi_value result = NULL;
  if (get_cstring(env, argv[0], false, "path", &path) && get_cstring(env, argv[1], false, "name", &name)) {
    char *buf;
    ssize_t got = read_xattr(path, name, &buf);
    if (got < 0 && errno == ENODATA) {
      napi_get_null(env, &result);
    } else if (got < 0) {
      throw_errno(env, errno, "lgetxattr", path);
    } else {
      void *copy;
      if (napi_create_buffer_copy(env, (size_t)got, buf, &copy, &result) != napi_ok) {
        result = NULL;
        throw_napi_status(env);
      }
    }
    free(buf);
  }
  free(path);
  free(name);
  return result;
}

/* llistxattr(path) -> string[] */
static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  char *path = NULL;
  napi_value result = NULL;
  if (get_cstring(env, argv[0], false, "path", &path)) {
    char *buf;
    ssize_t got = read_xattr(path, NULL, &buf);
    napi_value arr;
    if (got < 0) {
      throw_errno(env, errno, "llistxattr", path);
    } else if (napi_create_array(env, &arr) != napi_ok) {
      throw_napi_status(env);
    } else {
      uint32_t i = 0;
      for (ssize_t off = 0; off < got;) {
        size_t n = strnlen(buf + off, (size_t)(got - off));
        napi_value s;
        if (n > 0) {
          napi_create_string_utf8(env, buf + off, n, &s);
          napi_set_element(env, arr, i++, s);
        }
        off += (ssize_t)n + 1;
      }
      result = arr;
    }
    free(buf);
  }
  free(path);
  return result;
}

/* lremovexattr(path, name) */
static napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  char *path = NULL, *name = NULL;
  napi_value result = NULL;
  if (get_cstring(env, argv[0], false, "path", &path) && get_cstring(env, argv[1], false, "name", &name)) {
    if (lremovexattr(path, name) != 0)
      throw_errno(env, errno, "lremovexattr", path);
    else
      result = undefined(env);
  }
  free(path);
  free(name);
  return result;
}

/* ---- new mount API: overlayMount ------------------------------------------------------------ */

/* Drains the fs context log (one message per read(), "e "/"w "/"i " prefixed) into a
 * "; "-separated string. Returns a malloc'd string or NULL when the log is empty. */
static char *read_fs_log(int fsfd) {
  char *out = NULL;
  size_t out_len = 0;
  char msg[1024];
  for (int i = 0; i < 64; i++) {
    ssize_t n = read(fsfd, msg, sizeof msg - 1);
    if (n <= 0) break; /* ENODATA once the log is empty */
    msg[n] = '\0';
    while (n > 0 && msg[n - 1] == '\n') msg[--n] = '\0';
    char *grown = realloc(out, out_len + (size_t)n + 3);
    if (grown == NULL) break;
    out = grown;
    if (out_len > 0) {
      memcpy(out + out_len, "; ", 2);
      out_len += 2;
    }
    memcpy(out + out_len, msg, (size_t)n + 1);
    out_len += (size_t)n;
  }
  return out;
}

/* Throws the error of a failed fsconfig/fsmount/move_mount, naming the key and value and adding the
 * kernel's reasons from the fs context log. */
static napi_value throw_fs_error(napi_env env, int err, int fsfd, const char *syscall, const char *path,
                                 const char *key, const char *value) {
  char *log = fsfd >= 0 ? read_fs_log(fsfd) : NULL;
  size_t len = (key ? strlen(key) : 0) + (value ? strlen(value) : 0) + (log ? strlen(log) : 0) + 32;
  char *detail = malloc(len);
  if (detail == NULL) {
    free(log);
    return throw_errno(env, err, syscall, path);
  }
  detail[0] = '\0';
  if (key) snprintf(detail, len, "%s%s%s", key, value ? "=" : "", value ? value : "");
  if (log) {
    size_t used = strlen(detail);
    snprintf(detail + used, len - used, "%skernel: %s", used ? "; " : "", log);
  }
  throw_errno_detail(env, err, syscall, path, detail[0] ? detail : NULL);
  /* Attach the key/value/log as properties too, for structured logging. */
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value error;
    if (napi_get_and_clear_last_exception(env, &error) == napi_ok) {
      if (key) set_string_prop(env, error, "key", key);
      if (value) set_string_prop(env, error, "value", value);
      if (log) set_string_prop(env, error, "fsLog", log);
      napi_throw(env, error);
    }
  }
  free(detail);
  free(log);
  return NULL;
}

/* fsconfig for a path-valued key: a string when it fits fsconfig's 256-byte limit, else an O_PATH fd. */
static int fsconfig_path(int fsfd, const char *key, const char *path) {
  if (strlen(path) < FSCONFIG_STRING_MAX) return fsconfig(fsfd, FSCONFIG_SET_STRING, key, path, 0);
  int dirfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) return -1;
  int rc = fsconfig(fsfd, FSCONFIG_SET_FD, key, NULL, dirfd);
  int saved = errno;
  close(dirfd);
  errno = saved;
  return rc;
}

/* Reads an optional string property; false (exception pending) on a wrong type. */
static bool get_opt_string_prop(napi_env env, napi_value obj, const char *key, char **out) {
  *out = NULL;
  bool has = false;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok) return false;
  if (!has) return true;
  napi_value v;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return false;
  return get_cstring(env, v, true, key, out);
}

/* Reads a string[] property into a malloc'd array of malloc'd strings. */
static bool get_string_array_prop(napi_env env, napi_value obj, const char *key, bool required,
                                  char ***out, uint32_t *count) {
  *out = NULL;
  *count = 0;
  napi_value v;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return false;
  if (!required && is_nullish(env, v)) return true;
  bool is_array = false;
  napi_is_array(env, v, &is_array);
  if (!is_array) {
    char msg[160];
    snprintf(msg, sizeof msg, "options.%s must be an array of strings", key);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  uint32_t n = 0;
  napi_get_array_length(env, v, &n);
  char **arr = calloc(n ? n : 1, sizeof(char *));
  if (arr == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return false;
  }
  *out = arr;
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    if (napi_get_element(env, v, i, &el) != napi_ok) return false;
    if (!get_cstring(env, el, false, key, &arr[i])) return false;
    *count = i + 1;
  }
  *count = n;
  return true;
}

static void free_string_array(char **arr, uint32_t n) {
  if (arr == NULL) return;
  for (uint32_t i = 0; i < n; i++) free(arr[i]);
  free(arr);
}

/*
 * overlayMount(target, { lowerdirs, upperdir?, workdir?, options?, readonly?, source?, mountAttributes? })
 * lowerdirs are top-most first (the order of the classic lowerdir=a:b:c string). Each one is
 * handed to the kernel separately with "lowerdir+" (Linux >= 6.8), so the one-page limit of the
 * mount(2) option string does not apply; the kernel still caps a stack at 500 layers.
 * options: "key=value" is set as a string, a bare "key" as a flag (e.g. "userxattr").
 * mountAttributes: MOUNT_ATTR_* bits for fsmount (nosuid, nodev...: per-mount, not fs parameters).
 */
static napi_value js_overlay_mount(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  char *target = NULL, *upperdir = NULL, *workdir = NULL, *source = NULL;
  char **lowers = NULL, **options = NULL;
  uint32_t nlowers = 0, noptions = 0;
  bool readonly = false;
  int64_t attrs = 0;
  int fsfd = -1, mfd = -1;
  napi_value result = NULL;
  napi_valuetype t;

  if (!get_cstring(env, argv[0], false, "target", &target)) goto out;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_object) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "options must be an object");
    goto out;
  }
  if (!get_string_array_prop(env, argv[1], "lowerdirs", true, &lowers, &nlowers)) goto out;
  if (!get_string_array_prop(env, argv[1], "options", false, &options, &noptions)) goto out;
  if (!get_opt_string_prop(env, argv[1], "upperdir", &upperdir)) goto out;
  if (!get_opt_string_prop(env, argv[1], "workdir", &workdir)) goto out;
  if (!get_opt_string_prop(env, argv[1], "source", &source)) goto out;
  {
    napi_value ro;
    if (napi_get_named_property(env, argv[1], "readonly", &ro) == napi_ok && !is_nullish(env, ro))
      napi_get_value_bool(env, ro, &readonly);
    napi_value at;
    if (napi_get_named_property(env, argv[1], "mountAttributes", &at) == napi_ok && !is_nullish(env, at) &&
        !get_int64(env, at, "options.mountAttributes", &attrs))
      goto out;
  }
  if (nlowers == 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "options.lowerdirs must not be empty");
    goto out;
  }

  fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
  if (fsfd < 0) {
    throw_errno(env, errno, "fsopen", "overlay");
    goto out;
  }
  if (fsconfig(fsfd, FSCONFIG_SET_STRING, "source", source ? source : "overlay", 0) != 0) {
    throw_fs_error(env, errno, fsfd, "fsconfig", target, "source", source ? source : "overlay");
    goto out;
  }
  for (uint32_t i = 0; i < noptions; i++) {
    char *eq = strchr(options[i], '=');
    int rc;
    if (eq) {
      *eq = '\0';
      rc = fsconfig(fsfd, FSCONFIG_SET_STRING, options[i], eq + 1, 0);
    } else {
      rc = fsconfig(fsfd, FSCONFIG_SET_FLAG, options[i], NULL, 0);
    }
    if (rc != 0) {
      throw_fs_error(env, errno, fsfd, "fsconfig", target, options[i], eq ? eq + 1 : NULL);
      goto out;
    }
    if (eq) *eq = '=';
  }
  for (uint32_t i = 0; i < nlowers; i++) {
    if (fsconfig_path(fsfd, "lowerdir+", lowers[i]) != 0) {
      throw_fs_error(env, errno, fsfd, "fsconfig", lowers[i], "lowerdir+", lowers[i]);
      goto out;
    }
  }
  if (upperdir && fsconfig_path(fsfd, "upperdir", upperdir) != 0) {
    throw_fs_error(env, errno, fsfd, "fsconfig", upperdir, "upperdir", upperdir);
    goto out;
  }
  if (workdir && fsconfig_path(fsfd, "workdir", workdir) != 0) {
    throw_fs_error(env, errno, fsfd, "fsconfig", workdir, "workdir", workdir);
    goto out;
  }
  if (readonly && fsconfig(fsfd, FSCONFIG_SET_FLAG, "ro", NULL, 0) != 0) {
    throw_fs_error(env, errno, fsfd, "fsconfig", target, "ro", NULL);
    goto out;
  }
  if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0) {
    throw_fs_error(env, errno, fsfd, "fsconfig", target, "FSCONFIG_CMD_CREATE", NULL);
    goto out;
  }
  mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, (unsigned)attrs | (readonly ? MOUNT_ATTR_RDONLY : 0));
  if (mfd < 0) {
    throw_fs_error(env, errno, fsfd, "fsmount", target, NULL, NULL);
    goto out;
  }
  if (move_mount(mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    throw_errno(env, errno, "move_mount", target);
    goto out;
  }
  result = undefined(env);

out:
  /* Closing the detached mount fd after a failed move_mount releases the mount. */
  if (mfd >= 0) close(mfd);
  if (fsfd >= 0) close(fsfd);
  free(target);
  free(upperdir);
  free(workdir);
  free(source);
  free_string_array(lowers, nlowers);
  free_string_array(options, noptions);
  return result;
}

/* ---- aligned memory for O_DIRECT ------------------------------------------------------------ */

static void free_aligned(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* alignedBuffer(size, alignment) -> ArrayBuffer whose memory starts at a multiple of alignment
 * (a power of two), as O_DIRECT writes need; freed when the ArrayBuffer is collected. Node 20
 * cannot allocate such memory itself: malloc'd ArrayBuffers are only 16-byte aligned. */
static napi_value js_aligned_buffer(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  int64_t size = 0, alignment = 0;
  if (!get_int64(env, argv[0], "size", &size) || !get_int64(env, argv[1], "alignment", &alignment)) return NULL;
  if (size <= 0 || alignment < (int64_t)sizeof(void *) || (alignment & (alignment - 1)) != 0) {
    napi_throw_range_error(env, NULL, "alignedBuffer: size must be positive and alignment a power of two");
    return NULL;
  }
  void *data = NULL;
  int err = posix_memalign(&data, (size_t)alignment, (size_t)size);
  if (err != 0) return throw_errno(env, err, "posix_memalign", NULL);
  napi_value ab;
  if (napi_create_external_arraybuffer(env, data, (size_t)size, free_aligned, NULL, &ab) != napi_ok) {
    free(data);
    throw_napi_status(env);
    return NULL;
  }
  return ab;
}

/* ---- module init ------------------------------------------------------------------------------ */

static void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) == napi_ok)
    napi_set_named_property(env, exports, name, fn);
}

#define EXPORT_CONST(c) set_number_prop(env, constants, #c, (double)(c))

static napi_value init(napi_env env, napi_value exports) {
  export_fn(env, exports, "mount", js_mount);
  export_fn(env, exports, "umount2", js_umount2);
  export_fn(env, exports, "mknod", js_mknod);
  export_fn(env, exports, "makedev", js_makedev);
  export_fn(env, exports, "major", js_major);
  export_fn(env, exports, "minor", js_minor);
  export_fn(env, exports, "lsetxattr", js_lsetxattr);
  export_fn(env, exports, "lgetxattr", js_lgetxattr);
  export_fn(env, exports, "llistxattr", js_llistxattr);
  export_fn(env, exports, "lremovexattr", js_lremovexattr);
  export_fn(env, exports, "overlayMount", js_overlay_mount);
  export_fn(env, exports, "alignedBuffer", js_aligned_buffer);
  register_fuse_channel(env, exports);
  register_gunzip(env, exports);
  register_checksum(env, exports);
  register_inflate_raw(env, exports);

  napi_value constants;
  if (napi_create_object(env, &constants) != napi_ok) return exports;
  EXPORT_CONST(MS_RDONLY);
  EXPORT_CONST(MS_NOSUID);
  EXPORT_CONST(MS_NODEV);
  EXPORT_CONST(MS_NOEXEC);
  EXPORT_CONST(MS_SYNCHRONOUS);
  EXPORT_CONST(MS_REMOUNT);
  EXPORT_CONST(MS_DIRSYNC);
  EXPORT_CONST(MS_NOATIME);
  EXPORT_CONST(MS_NODIRATIME);
  EXPORT_CONST(MS_BIND);
  EXPORT_CONST(MS_MOVE);
  EXPORT_CONST(MS_REC);
  EXPORT_CONST(MS_SILENT);
  EXPORT_CONST(MS_UNBINDABLE);
  EXPORT_CONST(MS_PRIVATE);
  EXPORT_CONST(MS_SLAVE);
  EXPORT_CONST(MS_SHARED);
  EXPORT_CONST(MS_RELATIME);
  EXPORT_CONST(MS_STRICTATIME);
  EXPORT_CONST(MS_LAZYTIME);
  EXPORT_CONST(MNT_FORCE);
  EXPORT_CONST(MNT_DETACH);
  EXPORT_CONST(MNT_EXPIRE);
  EXPORT_CONST(UMOUNT_NOFOLLOW);
  EXPORT_CONST(MOUNT_ATTR_RDONLY);
  EXPORT_CONST(MOUNT_ATTR_NOSUID);
  EXPORT_CONST(MOUNT_ATTR_NODEV);
  EXPORT_CONST(MOUNT_ATTR_NOEXEC);
  EXPORT_CONST(MOUNT_ATTR_NOATIME);
  EXPORT_CONST(MOUNT_ATTR_STRICTATIME);
  EXPORT_CONST(MOUNT_ATTR_NODIRATIME);
  EXPORT_CONST(XATTR_CREATE);
  EXPORT_CONST(XATTR_REPLACE);
  EXPORT_CONST(S_IFMT);
  EXPORT_CONST(S_IFCHR);
  EXPORT_CONST(S_IFBLK);
  EXPORT_CONST(S_IFIFO);
  EXPORT_CONST(S_IFSOCK);
  EXPORT_CONST(S_IFREG);
  EXPORT_CONST(S_IFDIR);
  EXPORT_CONST(S_IFLNK);
  napi_set_named_property(env, exports, "constants", constants);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
