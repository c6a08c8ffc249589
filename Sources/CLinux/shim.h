#ifndef AUTHINFOD_CLINUX_SHIM_H
#define AUTHINFOD_CLINUX_SHIM_H
/* Linux interfaces the Glibc Swift module does not export. */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <stddef.h>
#include <malloc.h>
#include <spawn.h>

#include <sys/socket.h>

/* <sys/socket.h> declares it only under _GNU_SOURCE. */
extern int accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);

/* glibc 2.34+; <spawn.h> declares it only under _GNU_SOURCE. */
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);

/* libFuzzer's driver; defined only in the `make fuzz` build of authinfod-fuzz (-sanitize=fuzzer). */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const unsigned char *data, size_t size));
#endif
