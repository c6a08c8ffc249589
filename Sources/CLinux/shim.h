#ifndef AUTHINFOD_CLINUX_SHIM_H
#define AUTHINFOD_CLINUX_SHIM_H
/* Linux interfaces the Glibc Swift module does not export. */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <stddef.h>
#include <malloc.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/xattr.h>
#include <sys/vfs.h>
#include <sys/mount.h>

/* prctl is variadic, which Swift cannot call: no core dump, no ptrace by same-uid processes,
 * no /proc/self/mem for others. Returns 0, or -1 with errno. */
static inline int authinfod_forbid_core_dumps(void) {
    struct rlimit none = { 0, 0 };
    if (setrlimit(RLIMIT_CORE, &none) != 0) return -1;
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* Names the calling thread, as `top -H` and /proc/PID/task/TID/comm show it (15 bytes kept). */
static inline int authinfod_name_thread(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}

/* Declared here without their headers' other contents: including <sys/socket.h> or <spawn.h>
 * would move their types and constants into this module, away from Swift files that import
 * only Glibc. */

/* <sys/socket.h> declares it only under _GNU_SOURCE. `length` is a socklen_t *. */
struct sockaddr;
extern int accept4(int fd, struct sockaddr *address, unsigned int *length, int flags);

/* glibc 2.34+; <spawn.h> declares it only under _GNU_SOURCE. `actions` is a
 * posix_spawn_file_actions_t *. */
extern int posix_spawn_file_actions_addclosefrom_np(void *actions, int from);

/* libFuzzer's driver; defined only in the `make fuzz` build of authinfod-fuzz (-sanitize=fuzzer). */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const unsigned char *data, size_t size));
#endif
