/*
 * One raw deflate stretch inflated on libuv's threadpool with ISA-L, into a buffer the caller
 * sized: a span of a seekable layer (src/lazy), which starts at a full flush and ends at the next
 * one (or at the stream's last block), so it inflates on its own. ISA-L rather than Node's zlib:
 * about twice the speed, on the CPU a starting container needs (mvn -v inflates ~70 MB of JDK
 * spans while its JVM starts).
 */
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <isa-l/igzip_lib.h>

#include "inflate_error.h"
#include "inflate_raw.h"

typedef struct {
  struct inflate_state inflater;
  const uint8_t *in;
  size_t in_len;
  uint8_t *out;
  size_t out_cap, out_len;
  const char *error; /* static text */
  napi_ref in_ref, out_ref;
  napi_deferred deferred;
  napi_async_work work;
} job_t;

static void execute(napi_env env, void *data) {
  (void)env;
  job_t *j = data;
  isal_inflate_init(&j->inflater);
  j->inflater.next_in = (uint8_t *)j->in;
  j->inflater.avail_in = (uint32_t)j->in_len;
  j->inflater.next_out = j->out;
  j->inflater.avail_out = (uint32_t)j->out_cap;
  int r = isal_inflate(&j->inflater);
  j->out_len = j->out_cap - j->inflater.avail_out;
  if (r != ISAL_DECOMP_OK) j->error = inflate_error_text(r);
}

static void complete(napi_env env, napi_status status, void *data) {
  job_t *j = data;
  const char *failure = status != napi_ok ? "inflate job cancelled" : j->error;
  if (failure) {
    napi_value msg, err;
    napi_create_string_utf8(env, failure, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, j->deferred, err);
  } else {
    napi_value produced;
    napi_create_double(env, (double)j->out_len, &produced);
    napi_resolve_deferred(env, j->deferred, produced);
  }
  napi_delete_async_work(env, j->work);
  napi_delete_reference(env, j->in_ref);
  napi_delete_reference(env, j->out_ref);
  free(j);
}

static napi_value fail(napi_env env, job_t *j, const char *msg) {
  free(j);
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/*
 * inflateRaw(input, output) -> Promise<number>: inflates the raw deflate data of `input` into
 * `output` until the input is used up, the stream's last block ends or the output is full;
 * resolves to the bytes written. Both buffers are held until it settles and must not change.
 */
static napi_value js_inflate_raw(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *in = NULL, *out = NULL;
  size_t in_len = 0, out_cap = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || napi_get_buffer_info(env, argv[0], &in, &in_len) != napi_ok ||
      napi_get_buffer_info(env, argv[1], &out, &out_cap) != napi_ok) {
    napi_throw_type_error(env, NULL, "inflateRaw: expected (Buffer, Buffer)");
    return NULL;
  }
  if (in_len > UINT32_MAX || out_cap > UINT32_MAX) {
    napi_throw_range_error(env, NULL, "inflateRaw: a buffer over 4 GiB");
    return NULL;
  }
  job_t *j = calloc(1, sizeof *j);
  if (!j) return fail(env, NULL, "inflateRaw: out of memory");
  j->in = in;
  j->in_len = in_len;
  j->out = out;
  j->out_cap = out_cap;
  napi_value promise, name;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) return fail(env, j, "inflateRaw: cannot create a promise");
  napi_create_string_utf8(env, "hostpull:inflateRaw", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, execute, complete, j, &j->work) != napi_ok) return fail(env, j, "inflateRaw: cannot create the job");
  napi_create_reference(env, argv[0], 1, &j->in_ref);
  napi_create_reference(env, argv[1], 1, &j->out_ref);
  if (napi_queue_async_work(env, j->work) != napi_ok) {
    napi_delete_async_work(env, j->work);
    napi_delete_reference(env, j->in_ref);
    napi_delete_reference(env, j->out_ref);
    return fail(env, j, "inflateRaw: cannot queue the job");
  }
  return promise;
}

void register_inflate_raw(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "inflateRaw", NAPI_AUTO_LENGTH, js_inflate_raw, NULL, &fn) == napi_ok) napi_set_named_property(env, exports, "inflateRaw", fn);
}
