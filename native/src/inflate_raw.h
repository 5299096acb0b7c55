#ifndef HOSTPULL_INFLATE_RAW_H
#define HOSTPULL_INFLATE_RAW_H
#include <node_api.h>

/* Adds inflateRawOpen and inflateRawRun to the addon's exports. */
void register_inflate_raw(napi_env env, napi_value exports);

#endif
