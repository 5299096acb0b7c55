#ifndef HOSTPULL_CHECKSUM_H
#define HOSTPULL_CHECKSUM_H
#include <node_api.h>

/* Adds crc32 to the addon's exports. */
void register_checksum(napi_env env, napi_value exports);

#endif
