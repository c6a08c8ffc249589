#ifndef AUTHINFOD_CLINUX_SHIM_H
#define AUTHINFOD_CLINUX_SHIM_H
/* Linux interfaces the Glibc Swift module does not export. */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif
