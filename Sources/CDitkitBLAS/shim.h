#ifndef DITKIT_CBLAS_SHIM_H
#define DITKIT_CBLAS_SHIM_H
#include <cblas.h>
#endif
