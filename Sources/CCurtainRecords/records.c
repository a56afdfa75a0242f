#include "curtain_records.h"

// The static linker defines __start_/__stop_ for a section whose name is a C identifier. Weak, so that an
// executable with no record at all still links (both are then NULL).
extern const char __start_curtain_remote[] __attribute__((weak));
extern const char __stop_curtain_remote[] __attribute__((weak));

const void *curtain_records_start(void) { return __start_curtain_remote; }
const void *curtain_records_stop(void) { return __stop_curtain_remote; }
