/* hang_bt.c — debugging aid for the device runs (session 3b): an LD_PRELOAD library that prints
 * the backtrace of the thread receiving SIGUSR1 to stderr, so a test binary that hangs on a
 * machine without gdb can say where it waits. Build: gcc -shared -fPIC -O1 -o hang_bt.so hang_bt.c */
#define _GNU_SOURCE
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

static void on_usr1(int sig)
{
    (void)sig;
    void *frames[64];
    int n = backtrace(frames, 64);
    static const char head[] = "== hang_bt: backtrace of the signalled thread\n";
    if (write(2, head, sizeof head - 1) < 0)
        return;
    backtrace_symbols_fd(frames, n, 2);
}

__attribute__((constructor)) static void hang_bt_init(void)
{
    void *warm[2];
    backtrace(warm, 2); /* loads libgcc's unwinder now, not inside the handler */
    signal(SIGUSR1, on_usr1);
}
