/*
 * One raw deflate stretch inflated on libuv's threadpool with ISA-L, into a buffer the caller
 * sized: a span of a seekable layer (src/lazy), which starts at a full flush and ends at the next
 * one (or at the stream's last block), so it inflates on its own. ISA-L rather than Node's zlib:
 * about twice the speed, on the CPU a starting container needs (mvn -v inflates ~70 MB of JDK
 * spans while its JVM starts).
 *
 * In steps (inflateRawOpen, then inflateRawRun), each job stopping once the output holds a given
 * number of bytes, so that a read that waits for the first bytes of a span is answered before
 * the rest of the span is inflated; a span wanted whole is one step to the end.
 */
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <isa-l/igzip_lib.h>

#include "inflate_error.h"
#include "inflate_raw.h"

/*
 * A stretch inflated in steps: ISA-L's state between the jobs, and how far input and output
 * have got. The caller passes the same two buffers to every step, so the output written so far
 * stays where the inflater's back-references look for it. The state (87 KB, most of it ISA-L's
 * own output window) is freed by the step that ends the stretch, not left to the handle's
 * garbage collection: a lazy layer read whole goes through hundreds of spans.
 */
typedef struct {
  struct inflate_state *inflater; /* NULL once the stretch has ended */
  const char *error;              /* the failure that ended it, static text */
  size_t in_used, out_used;
  bool busy;
} stepwise_t;

/* Tells a stepwise handle from any other external (a gunzip handle, say) passed by mistake. */
static const napi_type_tag STEPWISE_TAG = {0x6f9c2a51d8e34b07ULL, 0xa3b1e58c0d7f4926ULL};

typedef struct {
  stepwise_t *st;
  const uint8_t *in;
  size_t in_len;
  uint8_t *out;
  size_t limit;
  const char *error; /* static text */
  napi_ref handle_ref, in_ref, out_ref;
  napi_deferred deferred;
  napi_async_work work;
} step_t;

static void stepwise_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  stepwise_t *st = data;
  free(st->inflater);
  free(st);
}

/* inflateRawOpen() -> handle: a stretch's inflation, not started. */
static napi_value js_inflate_raw_open(napi_env env, napi_callback_info info) {
  (void)info;
  stepwise_t *st = calloc(1, sizeof *st);
  if (st) st->inflater = malloc(sizeof *st->inflater);
  if (!st || !st->inflater) {
    free(st);
    napi_throw_error(env, NULL, "inflateRawOpen: out of memory");
    return NULL;
  }
  isal_inflate_init(st->inflater);
  napi_value handle;
  if (napi_create_external(env, st, stepwise_finalize, NULL, &handle) != napi_ok) {
    free(st->inflater);
    free(st);
    napi_throw_error(env, NULL, "inflateRawOpen: cannot create the handle");
    return NULL;
  }
  napi_type_tag_object(env, handle, &STEPWISE_TAG);
  return handle;
}

/*
 * Runs on with avail_in 0 too once the input is used up: a step that stopped at its limit may
 * hold bytes it decoded in ISA-L's own buffer, which the next step writes out. A step that stops
 * short of its limit has nothing more to give (the input is used up or the stream ended), and
 * ends the stretch, as a failure does.
 */
static void step_execute(napi_env env, void *data) {
  (void)env;
  step_t *j = data;
  stepwise_t *st = j->st;
  struct inflate_state *z = st->inflater;
  j->error = st->error;
  if (!z || st->out_used >= j->limit) return;
  z->next_in = (uint8_t *)j->in + st->in_used;
  z->avail_in = (uint32_t)(j->in_len - st->in_used);
  z->next_out = j->out + st->out_used;
  z->avail_out = (uint32_t)(j->limit - st->out_used);
  int r = isal_inflate(z);
  st->in_used = (size_t)(z->next_in - j->in);
  st->out_used = (size_t)(z->next_out - j->out);
  if (r != ISAL_DECOMP_OK) j->error = st->error = inflate_error_text(r);
  if (r != ISAL_DECOMP_OK || st->out_used < j->limit) {
    free(z);
    st->inflater = NULL;
  }
}

static void step_complete(napi_env env, napi_status status, void *data) {
  step_t *j = data;
  j->st->busy = false;
  const char *failure = status != napi_ok ? "inflate job cancelled" : j->error;
  if (failure) {
    napi_value msg, err;
    napi_create_string_utf8(env, failure, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, j->deferred, err);
  } else {
    napi_value produced;
    napi_create_double(env, (double)j->st->out_used, &produced);
    napi_resolve_deferred(env, j->deferred, produced);
  }
  napi_delete_async_work(env, j->work);
  napi_delete_reference(env, j->handle_ref);
  napi_delete_reference(env, j->in_ref);
  napi_delete_reference(env, j->out_ref);
  free(j);
}

/*
 * inflateRawRun(handle, input, output, until) -> Promise<number>: inflates on from where the
 * handle's last step stopped until `output` holds `until` bytes (or is full), the input is used
 * up or the deflate stream ends; resolves to the bytes the output holds. One step per handle at a
 * time, always with the same two buffers; they and the handle are held until it settles.
 */
static napi_value js_inflate_raw_run(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  void *data = NULL, *in = NULL, *out = NULL;
  size_t in_len = 0, out_cap = 0;
  double until = 0;
  bool tagged = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 || napi_check_object_type_tag(env, argv[0], &STEPWISE_TAG, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, argv[0], &data) != napi_ok || napi_get_buffer_info(env, argv[1], &in, &in_len) != napi_ok ||
      napi_get_buffer_info(env, argv[2], &out, &out_cap) != napi_ok || napi_get_value_double(env, argv[3], &until) != napi_ok) {
    napi_throw_type_error(env, NULL, "inflateRawRun: expected (handle, Buffer, Buffer, number)");
    return NULL;
  }
  stepwise_t *st = data;
  if (in_len > UINT32_MAX || out_cap > UINT32_MAX) {
    napi_throw_range_error(env, NULL, "inflateRawRun: a buffer over 4 GiB");
    return NULL;
  }
  if (st->busy) {
    napi_throw_error(env, NULL, "inflateRawRun: a step of this handle is still running");
    return NULL;
  }
  if (st->in_used > in_len || st->out_used > out_cap) {
    napi_throw_error(env, NULL, "inflateRawRun: not the buffers of the handle's earlier steps");
    return NULL;
  }
  step_t *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "inflateRawRun: out of memory");
    return NULL;
  }
  j->st = st;
  j->in = in;
  j->in_len = in_len;
  j->out = out;
  /* Not a positive number (NaN too): a step that inflates nothing. */
  j->limit = !(until > 0) ? 0 : until >= (double)out_cap ? out_cap : (size_t)until;
  napi_value promise, name;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok || napi_create_string_utf8(env, "hostpull:inflateRawRun", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, step_execute, step_complete, j, &j->work) != napi_ok) {
    free(j);
    napi_throw_error(env, NULL, "inflateRawRun: cannot create the job");
    return NULL;
  }
  napi_create_reference(env, argv[0], 1, &j->handle_ref);
  napi_create_reference(env, argv[1], 1, &j->in_ref);
  napi_create_reference(env, argv[2], 1, &j->out_ref);
  if (napi_queue_async_work(env, j->work) != napi_ok) {
    napi_delete_async_work(env, j->work);
    napi_delete_reference(env, j->handle_ref);
    napi_delete_reference(env, j->in_ref);
    napi_delete_reference(env, j->out_ref);
    free(j);
    napi_throw_error(env, NULL, "inflateRawRun: cannot queue the job");
    return NULL;
  }
  st->busy = true;
  return promise;
}

void register_inflate_raw(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "inflateRawOpen", NAPI_AUTO_LENGTH, js_inflate_raw_open, NULL, &fn) == napi_ok) napi_set_named_property(env, exports, "inflateRawOpen", fn);
  if (napi_create_function(env, "inflateRawRun", NAPI_AUTO_LENGTH, js_inflate_raw_run, NULL, &fn) == napi_ok) napi_set_named_property(env, exports, "inflateRawRun", fn);
}
