#ifndef DITKIT_CZIP_SHIM_H
#define DITKIT_CZIP_SHIM_H
#include <zip.h>
#endif
