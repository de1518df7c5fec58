#ifndef CCRASHMARKS_H
#define CCRASHMARKS_H

/// Files whose first byte is set to 'C' when the process dies of a crash signal (SIGSEGV,
/// SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGABRT: a Swift trap, a failed precondition, a bad
/// pointer in C). A SIGKILL leaves no mark: only a crash counts against the record in hand.

/// Registers an open file descriptor to be marked; installs the signal handlers on first use.
/// Returns 0, or -1 when the table (64 entries) is full.
int ccrashmarks_register(int fd);

/// Stops marking a descriptor (before it is closed).
void ccrashmarks_unregister(int fd);

#endif
