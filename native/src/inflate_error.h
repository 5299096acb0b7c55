#ifndef HOSTPULL_INFLATE_ERROR_H
#define HOSTPULL_INFLATE_ERROR_H
#include <isa-l/igzip_lib.h>

/* An ISA-L inflate error as zlib words it (the messages a bad layer or span has always had). */
static inline const char *inflate_error_text(int r) {
  switch (r) {
    case ISAL_INVALID_BLOCK:
      return "invalid block type";
    case ISAL_INVALID_SYMBOL:
      return "invalid code";
    case ISAL_INVALID_LOOKBACK:
      return "invalid distance too far back";
    default:
      return "invalid deflate data";
  }
}

#endif
