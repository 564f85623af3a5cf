/* The plain Linux peer of the Kubernetes timings (scripts/try-kubernetes.sh): a static
 * HTTP server that answers every request with "hello", listening on 127.0.0.1:PORT
 * (PORT from argv[1]). Run under runc in a pod, it is the floor a container start
 * costs on the same node. Exits 0 on SIGTERM. */
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

int main(int argc, char **argv) {
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 64) != 0) return 1;
    static const char reply[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n";
    for (;;) {
        int c = accept(s, 0, 0);
        if (c < 0) continue;
        char buf[4096];
        (void)read(c, buf, sizeof buf);
        (void)write(c, reply, sizeof reply - 1);
        close(c);
    }
}
