/*
 * Experiment, not part of the build: sets TCP_NODELAY on every socket a process accepts.
 *
 * kg_runtime::server::serve hands tonic a `TcpListenerStream`, and tonic ignores its
 * `tcp_nodelay` setting for `serve_with_incoming*` (tonic 0.14 docs), so the services answer with
 * Nagle's algorithm on: a reply written in two parts (HTTP/2 DATA larger than h2's 256-byte
 * chain threshold, then the trailers) waits for the client's delayed ACK, about 40 ms on Linux.
 * Running the bench with this shim shows what setting TCP_NODELAY on accepted sockets changes
 * (see docs/performance.md, "Findings"):
 *
 *   gcc -shared -fPIC -O2 -o /tmp/nodelay.so bench/experiments/nodelay.c -ldl
 *   LD_PRELOAD=/tmp/nodelay.so target/release/kg-bench --quick --out-dir /tmp --out-name nodelay
 *
 * The environment reaches every child: the four services, the echo server, PostgreSQL and Redis
 * (both already set TCP_NODELAY themselves) and kg-bench's own local website.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void nodelay(int fd) {
    if (fd >= 0) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* fails on non-TCP */
    }
}

int accept4(int s, struct sockaddr *addr, socklen_t *len, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    int fd = real(s, addr, len, flags);
    nodelay(fd);
    return fd;
}

int accept(int s, struct sockaddr *addr, socklen_t *len) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    int fd = real(s, addr, len);
    nodelay(fd);
    return fd;
}
