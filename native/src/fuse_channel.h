#ifndef HOSTPULL_FUSE_CHANNEL_H
#define HOSTPULL_FUSE_CHANNEL_H
#include <node_api.h>

/* Adds fuseChannel, fuseChannelLayout, fuseChannelSpan and fuseBackingOpen to the addon's exports. */
void register_fuse_channel(napi_env env, napi_value exports);

#endif
