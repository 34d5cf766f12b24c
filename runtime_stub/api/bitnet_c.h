/* bitnet_c.h: the same C API as bitnet.h, under the name some users include. */
#ifndef BITNET_C_H
#define BITNET_C_H
#include "bitnet.h"
#endif
