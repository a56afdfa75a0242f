#ifndef CURTAIN_RECORDS_H
#define CURTAIN_RECORDS_H

/// The bounds of the `curtain_remote` section of the executable: the records `@Remote` places there, one
/// per remote function or spawnable actor type linked in. Both are NULL when nothing was placed there.
const void *_Nullable curtain_records_start(void);
/// One past the last record of the `curtain_remote` section (see `curtain_records_start`).
const void *_Nullable curtain_records_stop(void);

#endif
