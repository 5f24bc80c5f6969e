/*
 * LD_PRELOAD shim for the kill test: counts the calls a program makes to the
 * steps of a file save (fwrite, fflush, fsync, rename) and kills the process
 * with SIGKILL, which nothing can catch or clean up after, at call
 * $VIT_KILL_AT. With $VIT_KILL_COUNT set instead, it writes the number of
 * such calls to that file when the process exits normally.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static long kill_at = -1, calls;

static void step(void) {
    if (__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED) == kill_at) kill(getpid(), SIGKILL);
}

__attribute__((constructor)) static void init(void) {
    const char *at = getenv("VIT_KILL_AT");
    if (at) kill_at = atol(at);
}

__attribute__((destructor)) static void report(void) {
    const char *out = getenv("VIT_KILL_COUNT");
    if (!out) return;
    FILE *f = fopen(out, "w");
    if (f) {
        fprintf(f, "%ld\n", calls);
        fclose(f);
    }
}

#define REAL(name) static __typeof__(name) *real_##name; \
    if (!real_##name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

size_t fwrite(const void *p, size_t size, size_t n, FILE *f) {
    REAL(fwrite);
    step();
    return real_fwrite(p, size, n, f);
}
int fflush(FILE *f) {
    REAL(fflush);
    step();
    return real_fflush(f);
}
int fsync(int fd) {
    REAL(fsync);
    step();
    return real_fsync(fd);
}
int rename(const char *from, const char *to) {
    REAL(rename);
    step();
    return real_rename(from, to);
}
