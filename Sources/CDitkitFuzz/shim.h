#ifndef DITKIT_FUZZ_SHIM_H
#define DITKIT_FUZZ_SHIM_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt FuzzerInterface.h), linked only by `-sanitize=fuzzer`: runs the fuzzing loop with
/// libFuzzer's command-line flags and calls `callback` once per input. Declared here, never defined: ditkit-fuzz
/// references it only when built with `-D DITKIT_LIBFUZZER` (see scripts/fuzz).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
