{
  "targets": [
    {
      "target_name": "hostpull_native",
      "sources": ["src/hostpull_native.c", "src/fuse_channel.c", "src/gunzip.c", "src/checksum.c", "src/inflate_raw.c"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "libraries": ["-lisal"]
    }
  ]
}
