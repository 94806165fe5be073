// conn-pairs.c: the floor tune's verify rate is measured against (host-facts "minimal C epoll
// program"): raw epoll, no websocket framing, a fake upgrade of one request and one 101 response,
// server and client processes on one host over loopback. Not part of tune; built by
// bench/c-baseline/run.
//
// Usage: conn-pairs N [SERVERS] [CLIENTS] [INFLIGHT]
//   N connections, SERVERS listener processes on one SO_REUSEPORT port of 127.0.0.1, CLIENTS
//   client processes, each with INFLIGHT connects at a time, sources 127.0.1.x (one per client),
//   IP_BIND_ADDRESS_NO_PORT. Prints time to open all, rate, Slab and MemFree deltas, then closes
//   one client process at a time (batches) and waits for the servers to see every close.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static const char REQ[] = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
static const char RESP[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

struct shared { volatile long established; volatile long closed_seen; volatile long errors; };
static struct shared *sh;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static long meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r"); char line[256]; long v = -1; size_t k = strlen(key);
    while (fgets(line, sizeof line, f)) if (!strncmp(line, key, k) && line[k] == ':') { v = atol(line + k + 1) * 1024; break; }
    fclose(f); return v;
}

static void server(int lfd) {
    int ep = epoll_create1(0); char buf[4096];
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) { if (errno != EAGAIN) __sync_fetch_and_add(&sh->errors, 1); break; }
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
            } else {
                ssize_t r = read(fd, buf, sizeof buf);
                if (r > 0) { if (write(fd, RESP, sizeof RESP - 1) < 0) __sync_fetch_and_add(&sh->errors, 1); }
                else if (r == 0 || errno != EAGAIN) { close(fd); __sync_fetch_and_add(&sh->closed_seen, 1); }
            }
        }
    }
}

static volatile sig_atomic_t go_close;
static void on_usr1(int s) { (void)s; go_close = 1; }

static void client(int idx, long want, int inflight, int port) {
    int ep = epoll_create1(0); char buf[4096];
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(port)};
    dst.sin_addr.s_addr = htonl(0x7f000001);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000100 + 1 + idx % 250 + (idx / 250) * 256);
    int *fds = calloc(want, sizeof(int)); long opened = 0, done = 0, pending = 0;
    struct epoll_event evs[512];
    while (done < want) {
        while (pending < inflight && opened < want) {
            int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (s < 0) { perror("socket"); exit(1); }
            int one = 1;
            setsockopt(s, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            if (bind(s, (void *)&src, sizeof src) < 0) { perror("bind"); exit(1); }
            if (connect(s, (void *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) { __sync_fetch_and_add(&sh->errors, 1); close(s); continue; }
            // Loopback: the handshake is done when connect returns; write at once.
            if (write(s, REQ, sizeof REQ - 1) < 0) {
                struct epoll_event e = {.events = EPOLLOUT, .data.fd = s}; epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
            } else {
                struct epoll_event e = {.events = EPOLLIN, .data.fd = s}; epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
            }
            fds[opened++] = s; pending++;
        }
        int n = epoll_wait(ep, evs, 512, 1000);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (evs[i].events & EPOLLOUT) {
                if (write(fd, REQ, sizeof REQ - 1) > 0) { struct epoll_event e = {.events = EPOLLIN, .data.fd = fd}; epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e); }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r > 0) {
                // Established: keep the fd open, stop watching it (an idle connection).
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                done++; pending--; __sync_fetch_and_add(&sh->established, 1);
            } else if (r == 0 || errno != EAGAIN) { __sync_fetch_and_add(&sh->errors, 1); done++; pending--; }
        }
    }
    while (!go_close) pause();
    for (long i = 0; i < opened; i++) close(fds[i]);
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s N [SERVERS] [CLIENTS] [INFLIGHT]\n", argv[0]); return 2; }
    long n = atol(argv[1]); int ns = argc > 2 ? atoi(argv[2]) : 80, nc = argc > 3 ? atoi(argv[3]) : 80;
    int inflight = argc > 4 ? atoi(argv[4]) : 1024;
    struct rlimit rl; getrlimit(RLIMIT_NOFILE, &rl);
    if (n / nc + 16 > (long)rl.rlim_cur || n / ns + 16 > (long)rl.rlim_cur) {
        fprintf(stderr, "%ld connections over %d servers / %d clients is more than RLIMIT_NOFILE %ld per process: use more processes\n",
                n, ns, nc, (long)rl.rlim_cur);
        return 2;
    }
    sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    signal(SIGUSR1, on_usr1);
    int port = 0; pid_t *srv = calloc(ns, sizeof(pid_t)), *cli = calloc(nc, sizeof(pid_t));
    for (int i = 0; i < ns; i++) {
        int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
        setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)}; a.sin_addr.s_addr = htonl(0x7f000001);
        if (bind(l, (void *)&a, sizeof a) < 0) { perror("bind listener"); return 1; }
        if (!port) { socklen_t len = sizeof a; getsockname(l, (void *)&a, &len); port = ntohs(a.sin_port); }
        listen(l, 65535);
        if (!(srv[i] = fork())) { prctl(PR_SET_PDEATHSIG, SIGKILL); server(l); }
        close(l);
    }
    long slab0 = meminfo("Slab"), free0 = meminfo("MemFree");
    double t0 = now();
    for (int i = 0; i < nc; i++) {
        long want = n / nc + (i < n % nc);
        if (!(cli[i] = fork())) { prctl(PR_SET_PDEATHSIG, SIGKILL); client(i, want, inflight, port); }
    }
    long last = 0; double tl = t0;
    while (sh->established + sh->errors < n) {
        usleep(100000);
        double t = now();
        if (t - tl >= 5) { long e = sh->established; fprintf(stderr, "%.0f s: %ld open, %.1fk/s\n", t - t0, e, (e - last) / (t - tl) / 1000); last = e; tl = t; }
    }
    double t1 = now();
    long slab1 = meminfo("Slab"), free1 = meminfo("MemFree");
    printf("opened %ld (errors %ld) in %.2f s: %.0f connections/s; Slab +%.2f GB (%.0f B/pair), MemFree -%.2f GB\n",
           sh->established, sh->errors, t1 - t0, sh->established / (t1 - t0), (slab1 - slab0) / 1e9,
           (double)(slab1 - slab0) / n, (free0 - free1) / 1e9);
    fflush(stdout);
    double c0 = now();
    for (int i = 0; i < nc; i++) { kill(cli[i], SIGUSR1); waitpid(cli[i], NULL, 0); }
    while (sh->closed_seen < sh->established) usleep(100000);
    printf("closed in %.1f s (one client process at a time)\n", now() - c0);
    for (int i = 0; i < ns; i++) { kill(srv[i], SIGKILL); waitpid(srv[i], NULL, 0); }
    return 0;
}
