#include "ccrashmarks.h"

#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define CCRASHMARKS_MAX 64

static _Atomic int ccrashmarks_fds[CCRASHMARKS_MAX];
static atomic_flag ccrashmarks_installed = ATOMIC_FLAG_INIT;
static const int ccrashmarks_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGABRT};

/// Async-signal-safe: pwrite and signal/raise only.
static void ccrashmarks_handler(int sig) {
    for (int i = 0; i < CCRASHMARKS_MAX; i++) {
        int fd = atomic_load(&ccrashmarks_fds[i]);
        if (fd > 0) { (void)!pwrite(fd - 1, "C", 1, 0); }
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void ccrashmarks_install(void) {
    if (atomic_flag_test_and_set(&ccrashmarks_installed)) return;
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = ccrashmarks_handler;
    sigemptyset(&action.sa_mask);
    /// SA_ONSTACK: a stack overflow (deep recursion) still gets to write its marks, on the
    /// alternate stack the Swift runtime sets up for its threads, where there is one.
    action.sa_flags = SA_ONSTACK | SA_RESETHAND;
    for (unsigned i = 0; i < sizeof(ccrashmarks_signals) / sizeof(ccrashmarks_signals[0]); i++) {
        sigaction(ccrashmarks_signals[i], &action, NULL);
    }
}

int ccrashmarks_register(int fd) {
    ccrashmarks_install();
    for (int i = 0; i < CCRASHMARKS_MAX; i++) {
        int expected = 0;
        /// Stored as fd + 1 so that 0 means a free slot.
        if (atomic_compare_exchange_strong(&ccrashmarks_fds[i], &expected, fd + 1)) return 0;
    }
    return -1;
}

void ccrashmarks_unregister(int fd) {
    for (int i = 0; i < CCRASHMARKS_MAX; i++) {
        int expected = fd + 1;
        if (atomic_compare_exchange_strong(&ccrashmarks_fds[i], &expected, 0)) return;
    }
}
