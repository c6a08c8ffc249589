#ifndef AUTHINFOD_CLINUX_SHIM_H
#define AUTHINFOD_CLINUX_SHIM_H
/* Linux interfaces the Glibc Swift module does not export. */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <stddef.h>
#include <malloc.h>

/* libFuzzer's driver; defined only in the `make fuzz` build of authinfod-fuzz (-sanitize=fuzzer). */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const unsigned char *data, size_t size));
#endif
