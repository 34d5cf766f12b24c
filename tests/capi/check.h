/* CHECK(cond, fmt, ...) for the C API test programs: prints the failed condition and a
 * message, counts it in `failures`, and goes on. */
#ifndef BITNETC_TESTS_CAPI_CHECK_H
#define BITNETC_TESTS_CAPI_CHECK_H
#include <stdio.h>

static int failures = 0;
#define CHECK(cond, ...)                     \
  do {                                       \
    if (!(cond)) {                           \
      fprintf(stderr, "FAILED %s: ", #cond); \
      fprintf(stderr, __VA_ARGS__);          \
      fprintf(stderr, "\n");                 \
      ++failures;                            \
    }                                        \
  } while (0)

#endif
