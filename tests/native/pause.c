/* The pod sandbox ("pause") container of the CRI tests: holds the pod's namespaces,
 * reaps orphans, exits 0 on SIGTERM or SIGINT. Built static by the test harness
 * (gcc -static) and imported as an image, since no public registry is reachable. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, 0, WNOHANG) > 0) {
    }
}

int main(void) {
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    signal(SIGCHLD, reap);
    for (;;) pause();
}
