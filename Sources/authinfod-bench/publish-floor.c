// publish-floor: a floor under authinfod's restart to READY on this machine. `make bench` builds
// it with the system C compiler and runs it right after the daemon's large restart, into a new
// folder on the same file system.
//
// It writes COUNT device files the way the contract asks for them and nothing else, plainly in
// C, on THREADS threads: for each file a temporary file created in the folder (O_EXCL) with mode
// 0640, the document written, closed, and renamed into place, relative to the folder held open
// (as the daemon's start does). Like the daemon (`CreationMode`), it sets the mode again with
// fchmod only where the file system, the umask or a default ACL on the folder could have made
// it otherwise. The documents are the daemon's size (about 130 bytes).
// What it leaves out, and the daemon does before READY: reading the config and the cache,
// planning every device, and the socket's documents.
//
// usage: publish-floor DIR COUNT THREADS   (DIR must not exist yet)
// Prints one line: "wall_seconds cpu_seconds kernel_seconds" for all COUNT files: the wall time
// from the folder's opening (just after it is made) to the last rename, the CPU of the whole
// process. (`make bench` times the program from outside, as it times the daemon from its launch:
// its own start, a few milliseconds, counts too.)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

enum { MAX_THREADS = 64 };

static int folder, count, threads, setsMode;

/// Stops with `what` and `name`, and the system's reason when there is one.
static void fail(const char *what, const char *name) {
    if (errno != 0) fprintf(stderr, "publish-floor: %s %s: %s\n", what, name, strerror(errno));
    else fprintf(stderr, "publish-floor: %s %s\n", what, name);
    exit(1);
}

static void *writeShare(void *argument) {
    long thread = (long)argument;
    char temporary[80], final[64], document[256];
    long now = time(NULL);
    for (int i = (int)thread; i < count; i += threads) {
        snprintf(final, sizeof final, "dev-%06d.json", i + 1);
        snprintf(temporary, sizeof temporary, ".%s.tmp", final);
        int length = snprintf(document, sizeof document,
                              "{\"device_id\":\"dev-%06d\",\"authinfo\":\"SIMAUTH-dev-%06d-1-N6vlmIoVlc4J25VmmPvhsK7Y\",\"fetched_at\":%ld,\"expires_at\":%ld}",
                              i + 1, i + 1, now, now + 3600);
        int file = openat(folder, temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (file < 0) fail("cannot create", temporary);
        if (write(file, document, length) != length || (setsMode && fchmod(file, 0640) != 0) || close(file) != 0) fail("cannot write", temporary);
        if (renameat(folder, temporary, folder, final) != 0) fail("cannot rename", temporary);
    }
    return NULL;
}

int main(int argc, char **argv) {
    errno = 0;  // what the loader left there is no reason for a usage error
    if (argc != 4) fail("usage:", "publish-floor DIR COUNT THREADS");
    count = atoi(argv[2]);
    threads = atoi(argv[3]);
    if (count <= 0) fail("bad COUNT (a number of files from 1):", argv[2]);
    if (threads <= 0 || threads > MAX_THREADS) fail("bad THREADS (from 1 to 64):", argv[3]);
    if (mkdir(argv[1], 0750) != 0) fail("cannot make the folder (it must not exist yet)", argv[1]);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    folder = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (folder < 0) fail("cannot open", argv[1]);
    // Read before any thread creates a file (setting the umask and back is safe only here).
    mode_t mask = umask(0);
    umask(mask);
    // The file systems whose new files follow the kernel's rules alone, as the daemon's list:
    // tmpfs, ext2/3/4, XFS, Btrfs.
    struct statfs fileSystem;
    int kernelRuled = fstatfs(folder, &fileSystem) == 0 &&
        (fileSystem.f_type == 0x01021994 || fileSystem.f_type == 0xEF53 || fileSystem.f_type == 0x58465342 || fileSystem.f_type == 0x9123683E);
    setsMode = !kernelRuled || (mask & 0640) != 0 || fgetxattr(folder, "system.posix_acl_default", NULL, 0) >= 0 ||
               (errno != ENODATA && errno != EOPNOTSUPP);
    pthread_t workers[MAX_THREADS];
    for (long i = 0; i < threads; i++)
        if ((errno = pthread_create(&workers[i], NULL, writeShare, (void *)i)) != 0) fail("cannot start a thread for", argv[1]);
    for (int i = 0; i < threads; i++) pthread_join(workers[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &end);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    double kernel = usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
    printf("%.6f %.6f %.6f\n", (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9,
           kernel + usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6, kernel);
    return 0;
}
