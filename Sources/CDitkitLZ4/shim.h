#ifndef DITKIT_CLZ4_SHIM_H
#define DITKIT_CLZ4_SHIM_H
/* LZ4 block format (LZ4_decompress_safe, LZ4_compress_default): the blocks of HDF5 filter 32004 (Cerebras .mdl). */
#include <lz4.h>
#endif
