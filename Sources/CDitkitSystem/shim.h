#ifndef DITKIT_CSYSTEM_SHIM_H
#define DITKIT_CSYSTEM_SHIM_H
/* System calls that Swift's Glibc module does not export (they need _GNU_SOURCE). */
#include <sys/types.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>

/* copy_file_range(2): copies inside the kernel; returns bytes copied or -1 with errno set. */
static inline long ditkit_copy_file_range(int fd_in, long long *off_in, int fd_out, unsigned long length) {
#ifdef SYS_copy_file_range
    return syscall(SYS_copy_file_range, fd_in, off_in, fd_out, (void *)0, length, 0u);
#else
    errno = ENOSYS;
    return -1;
#endif
}

/* renameat2(2) with RENAME_EXCHANGE: swaps two paths atomically (neither follows a final symlink); -1 with errno
   ENOSYS or EINVAL where the kernel or file system cannot. */
static inline int ditkit_rename_exchange(const char *a, const char *b) {
#ifdef SYS_renameat2
    return (int)syscall(SYS_renameat2, -100 /* AT_FDCWD */, a, -100, b, 1u << 1 /* RENAME_EXCHANGE */);
#else
    errno = ENOSYS;
    return -1;
#endif
}
#endif
