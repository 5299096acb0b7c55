#ifndef HOSTPULL_GUNZIP_H
#define HOSTPULL_GUNZIP_H
#include <node_api.h>

/* Adds gunzipOpen, gunzipRun, gunzipEnd and gunzipClose to the addon's exports. */
void register_gunzip(napi_env env, napi_value exports);

#endif
