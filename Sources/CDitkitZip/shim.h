#ifndef DITKIT_CZIP_SHIM_H
#define DITKIT_CZIP_SHIM_H
#include <zip.h>
#include <zlib.h>  /* crc32: libzip-dev depends on zlib1g-dev */
#endif
