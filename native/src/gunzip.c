/*
 * Streaming gunzip that hashes what it inflates, on libuv's threadpool.
 *
 * Why not Node's zlib stream: per layer it allocates a fresh output buffer per chunk (page
 * faults, then V8 external-memory GCs), computes the gzip CRC-32 of every byte (redundant: the
 * blob's sha256 and the diffID's sha256 are both checked), and leaves the diffID's sha256 to the
 * JS thread that also parses the tar and writes the files, the bottleneck of a cold pull. Here
 * one threadpool job inflates into a buffer the caller lends and reuses, hashes those bytes on
 * the same pool thread, and checks the gzip framing itself (raw inflate, so no CRC-32).
 *
 * The deflate body is inflated by Intel's ISA-L (igzip, Debian's libisal2, linked here): about
 * twice zlib's speed on this machine's layers (GRD7.0's 122 MB: 0.24 s of CPU against pigz's
 * 0.42 s), and inflating is the largest share of a cold pull's CPU. The sha256 is OpenSSL's, from
 * the node binary, which exports its symbols (Node's headers ship openssl/).
 *
 * Framing accepted (RFC 1952): one or more members back to back, then nothing or zero bytes
 * only (padding, as Node's gunzip allows). Each member: magic, method 8, no reserved flag bits,
 * the optional fields skipped, the deflate body, and the trailer's ISIZE checked against what the
 * member inflated to (the CRC-32 is not computed: see above).
 */
#include <node_api.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <isa-l/igzip_lib.h>

#include "gunzip.h"
#include "inflate_error.h"

enum state {
  ST_MAGIC1,
  ST_MAGIC2,
  ST_METHOD,
  ST_FLAGS,
  ST_FIXED,   /* MTIME, XFL, OS: 6 bytes */
  ST_XLEN,    /* FEXTRA's length: 2 bytes */
  ST_EXTRA,   /* FEXTRA's data */
  ST_NAME,    /* FNAME: up to a zero byte */
  ST_COMMENT, /* FCOMMENT: up to a zero byte */
  ST_HCRC,    /* FHCRC: 2 bytes */
  ST_BODY,
  ST_TRAILER, /* CRC32, ISIZE: 8 bytes */
  ST_BETWEEN, /* after a member: another member, zero padding or the end */
  ST_PADDING, /* zero bytes only, up to the end */
};

#define FLAG_HCRC 0x02
#define FLAG_EXTRA 0x04
#define FLAG_NAME 0x08
#define FLAG_COMMENT 0x10
#define FLAG_RESERVED 0xe0

typedef struct {
  struct inflate_state inflater; /* ISA-L's: no heap of its own, nothing to free */
  EVP_MD_CTX *md;
  enum state state;
  uint8_t flags;      /* header flags not handled yet */
  uint32_t count;     /* bytes of the current fixed-size part read (or left, for FEXTRA) */
  uint8_t part[8];    /* XLEN or the trailer, gathered across inputs */
  uint64_t member_out;
  uint32_t members;
  const char *error;  /* static text */
  bool released;      /* close() ran: the digest is freed */
  /* The job in flight: set on the JS thread, used on a pool thread, settled on the JS thread. */
  bool busy;
  const uint8_t *in;
  size_t in_len, in_pos;
  uint8_t *out;
  size_t out_cap, out_len;
  napi_ref self_ref, in_ref, out_ref;
  napi_deferred deferred;
  napi_async_work work;
} gunzip_t;

static void release(gunzip_t *g) {
  if (g->released) return;
  g->released = true;
  if (g->md) EVP_MD_CTX_free(g->md);
  g->md = NULL;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  release(data);
  free(data);
}

/* The state after a header part: the next optional field still flagged, else the body. */
static bool next_header_part(gunzip_t *g) {
  g->count = 0;
  if (g->flags & FLAG_EXTRA) {
    g->flags &= ~FLAG_EXTRA;
    g->state = ST_XLEN;
  } else if (g->flags & FLAG_NAME) {
    g->flags &= ~FLAG_NAME;
    g->state = ST_NAME;
  } else if (g->flags & FLAG_COMMENT) {
    g->flags &= ~FLAG_COMMENT;
    g->state = ST_COMMENT;
  } else if (g->flags & FLAG_HCRC) {
    g->flags &= ~FLAG_HCRC;
    g->state = ST_HCRC;
  } else {
    isal_inflate_init(&g->inflater); /* raw deflate: the framing is ours */
    g->member_out = 0;
    g->state = ST_BODY;
  }
  return true;
}

/* `b` must be `want`: then the framing moves on to `next`, else it fails with `error`. */
static bool expect_byte(gunzip_t *g, uint8_t b, uint8_t want, enum state next, const char *error) {
  if (b != want) {
    g->error = error;
    return false;
  }
  g->state = next;
  return true;
}

/* One byte of framing (everything but the deflate body). False with g->error set on bad input. */
static bool frame_byte(gunzip_t *g, uint8_t b) {
  switch (g->state) {
    case ST_BETWEEN:
      if (b == 0) {
        g->state = ST_PADDING;
        return true;
      }
      return expect_byte(g, b, 0x1f, ST_MAGIC2, "trailing garbage after the gzip stream");
    case ST_PADDING:
      return expect_byte(g, b, 0, ST_PADDING, "trailing garbage after the gzip stream");
    case ST_MAGIC1:
      return expect_byte(g, b, 0x1f, ST_MAGIC2, "incorrect header check");
    case ST_MAGIC2:
      return expect_byte(g, b, 0x8b, ST_METHOD, "incorrect header check");
    case ST_METHOD:
      return expect_byte(g, b, 8 /* deflate */, ST_FLAGS, "unknown compression method");
    case ST_FLAGS:
      if (b & FLAG_RESERVED) {
        g->error = "unknown header flags set";
        return false;
      }
      g->flags = b;
      g->count = 0;
      g->state = ST_FIXED;
      return true;
    case ST_FIXED:
      return ++g->count < 6 || next_header_part(g);
    case ST_XLEN:
      g->part[g->count++] = b;
      if (g->count < 2) return true;
      g->count = (uint32_t)g->part[0] | (uint32_t)g->part[1] << 8;
      g->state = ST_EXTRA;
      return g->count > 0 || next_header_part(g);
    case ST_EXTRA:
      return --g->count > 0 || next_header_part(g);
    case ST_NAME:
    case ST_COMMENT:
      return b != 0 || next_header_part(g);
    case ST_HCRC:
      return ++g->count < 2 || next_header_part(g);
    case ST_TRAILER: {
      g->part[g->count++] = b;
      if (g->count < 8) return true;
      uint32_t isize = (uint32_t)g->part[4] | (uint32_t)g->part[5] << 8 | (uint32_t)g->part[6] << 16 | (uint32_t)g->part[7] << 24;
      if (isize != (uint32_t)g->member_out) {
        g->error = "incorrect length check";
        return false;
      }
      g->members++;
      g->state = ST_BETWEEN;
      return true;
    }
    case ST_BODY:
      break;
  }
  g->error = "internal error: framing byte in the body";
  return false;
}

/* Runs on a pool thread: inflate until the input is used up or the output is full. */
static void execute(napi_env env, void *data) {
  (void)env;
  gunzip_t *g = data;
  while (g->error == NULL && g->out_len < g->out_cap && g->in_pos < g->in_len) {
    if (g->state != ST_BODY) {
      frame_byte(g, g->in[g->in_pos++]);
      continue;
    }
    size_t avail_in = g->in_len - g->in_pos, avail_out = g->out_cap - g->out_len;
    /* ISA-L counts in uint32_t: hand over at most 1 GiB at a time. */
    struct inflate_state *st = &g->inflater;
    st->next_in = (uint8_t *)(g->in + g->in_pos);
    st->avail_in = (uint32_t)(avail_in < (1u << 30) ? avail_in : (1u << 30));
    st->next_out = g->out + g->out_len;
    st->avail_out = (uint32_t)(avail_out < (1u << 30) ? avail_out : (1u << 30));
    uint32_t in_before = st->avail_in, out_before = st->avail_out;
    int r = isal_inflate(st);
    size_t consumed = in_before - st->avail_in, produced = out_before - st->avail_out;
    if (produced > 0 && EVP_DigestUpdate(g->md, g->out + g->out_len, produced) != 1) g->error = "sha256 update failed";
    g->in_pos += consumed;
    g->out_len += produced;
    g->member_out += produced;
    if (r != ISAL_DECOMP_OK) {
      g->error = inflate_error_text(r);
    } else if (st->block_state == ISAL_BLOCK_FINISH) {
      /*
       * ISA-L reads up to 8 bytes ahead into its bit buffer and keeps them when the deflate
       * stream ends: they are the trailer's first bytes, from this input or an earlier one, so
       * they are taken from the bit buffer (past the unused bits of the stream's last byte).
       */
      uint32_t unused_bits = (uint32_t)st->read_in_length % 8, ahead = (uint32_t)st->read_in_length / 8;
      uint64_t bits = st->read_in >> unused_bits;
      g->count = 0;
      g->state = ST_TRAILER;
      for (uint32_t i = 0; i < ahead && g->error == NULL; i++) frame_byte(g, (uint8_t)(bits >> (8 * i)));
    } else if (consumed == 0 && produced == 0) {
      /* Input and room were both there: the inflater cannot go on (a caller would ask again forever). */
      g->error = "inflate made no progress";
    }
  }
}

static void complete(napi_env env, napi_status status, void *data) {
  gunzip_t *g = data;
  g->busy = false;
  napi_deferred deferred = g->deferred;
  const char *failure = status != napi_ok ? "gunzip job cancelled" : g->error;
  if (failure) {
    napi_value msg, err;
    napi_create_string_utf8(env, failure, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, deferred, err);
  } else {
    napi_value result, consumed, produced;
    napi_create_array_with_length(env, 2, &result);
    napi_create_double(env, (double)g->in_pos, &consumed);
    napi_create_double(env, (double)g->out_len, &produced);
    napi_set_element(env, result, 0, consumed);
    napi_set_element(env, result, 1, produced);
    napi_resolve_deferred(env, deferred, result);
  }
  napi_delete_async_work(env, g->work);
  napi_delete_reference(env, g->in_ref);
  napi_delete_reference(env, g->out_ref);
  napi_delete_reference(env, g->self_ref);
  g->in = g->out = NULL;
}

static napi_value throw_msg(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static gunzip_t *get_handle(napi_env env, napi_value v) {
  void *data = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &data) != napi_ok || !data) {
    napi_throw_type_error(env, NULL, "expected a gunzip handle");
    return NULL;
  }
  return data;
}

/* The handle a call takes as its only argument, with no job of it running (else NULL, thrown). */
static gunzip_t *idle_handle_arg(napi_env env, napi_callback_info info, const char *fn) {
  size_t argc = 1;
  napi_value argv[1];
  char msg[96];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    snprintf(msg, sizeof msg, "%s: expected (handle)", fn);
    throw_msg(env, msg);
    return NULL;
  }
  gunzip_t *g = get_handle(env, argv[0]);
  if (g && g->busy) {
    snprintf(msg, sizeof msg, "%s: a job of this handle is still running", fn);
    throw_msg(env, msg);
    return NULL;
  }
  return g;
}

/* gunzipOpen() -> handle */
static napi_value js_gunzip_open(napi_env env, napi_callback_info info) {
  (void)info;
  gunzip_t *g = calloc(1, sizeof *g);
  if (!g) return throw_msg(env, "gunzipOpen: out of memory");
  g->state = ST_MAGIC1;
  g->md = EVP_MD_CTX_new();
  if (!g->md || EVP_DigestInit_ex(g->md, EVP_sha256(), NULL) != 1) {
    release(g);
    free(g);
    return throw_msg(env, "gunzipOpen: cannot start a sha256 digest");
  }
  napi_value handle;
  if (napi_create_external(env, g, finalize, NULL, &handle) != napi_ok) {
    release(g);
    free(g);
    return throw_msg(env, "gunzipOpen: cannot create the handle");
  }
  return handle;
}

/*
 * gunzipRun(handle, input, offset, output) -> Promise<[consumed, produced]>: inflates input from
 * `offset` into `output` from 0 on a pool thread, until the input is used up or the output is
 * full. `consumed` is the input offset reached. Both buffers are held until it settles; one job
 * per handle at a time.
 */
static napi_value js_gunzip_run(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) return throw_msg(env, "gunzipRun: expected (handle, input, offset, output)");
  gunzip_t *g = get_handle(env, argv[0]);
  if (!g) return NULL;
  if (g->busy) return throw_msg(env, "gunzipRun: a job of this handle is still running");
  if (g->released) return throw_msg(env, "gunzipRun: the handle is closed");
  void *in = NULL, *out = NULL;
  size_t in_len = 0, out_cap = 0;
  int64_t offset = 0;
  if (napi_get_buffer_info(env, argv[1], &in, &in_len) != napi_ok || napi_get_value_int64(env, argv[2], &offset) != napi_ok ||
      napi_get_buffer_info(env, argv[3], &out, &out_cap) != napi_ok) {
    napi_throw_type_error(env, NULL, "gunzipRun: expected (handle, Buffer, number, Buffer)");
    return NULL;
  }
  if (offset < 0 || (uint64_t)offset > in_len || out_cap == 0) return throw_msg(env, "gunzipRun: offset outside the input, or an empty output");
  napi_value promise, name;
  if (napi_create_promise(env, &g->deferred, &promise) != napi_ok) return throw_msg(env, "gunzipRun: cannot create a promise");
  napi_create_string_utf8(env, "hostpull:gunzip", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, execute, complete, g, &g->work) != napi_ok) return throw_msg(env, "gunzipRun: cannot create the job");
  napi_create_reference(env, argv[0], 1, &g->self_ref);
  napi_create_reference(env, argv[1], 1, &g->in_ref);
  napi_create_reference(env, argv[3], 1, &g->out_ref);
  g->in = in;
  g->in_len = in_len;
  g->in_pos = (size_t)offset;
  g->out = out;
  g->out_cap = out_cap;
  g->out_len = 0;
  g->busy = true;
  if (napi_queue_async_work(env, g->work) != napi_ok) {
    g->busy = false;
    napi_delete_async_work(env, g->work);
    napi_delete_reference(env, g->self_ref);
    napi_delete_reference(env, g->in_ref);
    napi_delete_reference(env, g->out_ref);
    return throw_msg(env, "gunzipRun: cannot queue the job");
  }
  return promise;
}

/*
 * gunzipEnd(handle) -> sha256 hex of everything inflated. Throws when the stream is not complete
 * (it stopped inside a member) or held no member at all.
 */
static napi_value js_gunzip_end(napi_env env, napi_callback_info info) {
  gunzip_t *g = idle_handle_arg(env, info, "gunzipEnd");
  if (!g) return NULL;
  if (g->released) return throw_msg(env, "gunzipEnd: the handle is closed");
  if (g->error) return throw_msg(env, g->error);
  if ((g->state != ST_BETWEEN && g->state != ST_PADDING) || g->members == 0) return throw_msg(env, "unexpected end of file");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(g->md, md, &len) != 1 || len != 32) return throw_msg(env, "gunzipEnd: sha256 failed");
  char hex[65];
  for (unsigned int i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  release(g);
  napi_value s;
  napi_create_string_utf8(env, hex, 64, &s);
  return s;
}

/* gunzipClose(handle): frees the digest now (once no job runs); idempotent. */
static napi_value js_gunzip_close(napi_env env, napi_callback_info info) {
  gunzip_t *g = idle_handle_arg(env, info, "gunzipClose");
  if (!g) return NULL;
  release(g);
  return NULL;
}

static void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) == napi_ok) napi_set_named_property(env, exports, name, fn);
}

void register_gunzip(napi_env env, napi_value exports) {
  export_fn(env, exports, "gunzipOpen", js_gunzip_open);
  export_fn(env, exports, "gunzipRun", js_gunzip_run);
  export_fn(env, exports, "gunzipEnd", js_gunzip_end);
  export_fn(env, exports, "gunzipClose", js_gunzip_close);
}
