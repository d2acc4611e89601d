/*
 * idealcast: the floor for a coalescing MQTT fan-out, for bench/fanout.mjs --floor.
 *
 * Not a broker: it answers CONNECT with CONNACK, SUBSCRIBE with SUBACK (every client that
 * subscribes gets everything, whatever its filter), PINGREQ with PINGRESP, and copies the whole
 * PUBLISH packets of each read from a publisher to every subscriber in one write each — what a
 * broker that batches per read could do at best, with no routing, no authorisation, no
 * allocation per message. Plain TCP, loopback, epoll, one thread.
 *
 *   idealcast PORT      prints "listening" once it accepts connections
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#define MAX_CLIENTS 65536
#define BUF (1 << 20)

struct conn {
  int fd;
  int subscriber;
  unsigned char *in;  /* bytes read, not yet a whole packet */
  size_t in_len;
};

static struct conn *conns[MAX_CLIENTS];
static int subscribers[MAX_CLIENTS];
static int n_subscribers;
static unsigned char out[BUF];

static void die (const char *what) { perror(what); exit(1); }

/* writes everything, waiting for the socket when it is full (subscribers read promptly) */
static int write_all (int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) { struct pollfd pfd = { fd, POLLOUT, 0 }; poll(&pfd, 1, 1000); continue; }
      return -1;
    }
    p += w; n -= (size_t)w;
  }
  return 0;
}

static void drop (struct conn *c) {
  if (c->subscriber) {
    for (int i = 0; i < n_subscribers; i++) if (subscribers[i] == c->fd) { subscribers[i] = subscribers[--n_subscribers]; break; }
  }
  close(c->fd);
  conns[c->fd] = NULL;
  free(c->in);
  free(c);
}

/* a whole packet's length (fixed header included) if `p` holds one, else 0 */
static size_t whole (const unsigned char *p, size_t n) {
  size_t len = 0, mult = 1, i = 1;
  for (;;) {
    if (i >= n) return 0;
    len += (p[i] & 0x7f) * mult;
    if (!(p[i++] & 0x80)) break;
    mult *= 128;
    if (i > 4) return 0;
  }
  return i + len <= n ? i + len : 0;
}

static void readable (struct conn *c) {
  ssize_t r = read(c->fd, c->in + c->in_len, BUF - c->in_len);
  if (r <= 0) { if (r < 0 && (errno == EAGAIN || errno == EINTR)) return; drop(c); return; }
  c->in_len += (size_t)r;
  size_t at = 0, out_len = 0, size;
  while ((size = whole(c->in + at, c->in_len - at)) > 0) {
    unsigned char *p = c->in + at;
    switch (p[0] >> 4) {
      case 1: { static const unsigned char connack[] = { 0x20, 2, 0, 0 }; write_all(c->fd, connack, 4); break; }
      case 8: {
        size_t id_at = 1; /* past the remaining length: the packet id */
        while (p[id_at] & 0x80) id_at++;
        id_at++;
        unsigned char suback[] = { 0x90, 3, p[id_at], p[id_at + 1], 0 };
        write_all(c->fd, suback, 5);
        if (!c->subscriber) { c->subscriber = 1; subscribers[n_subscribers++] = c->fd; }
        break;
      }
      case 3: memcpy(out + out_len, p, size); out_len += size; break;
      case 12: { static const unsigned char pingresp[] = { 0xd0, 0 }; write_all(c->fd, pingresp, 2); break; }
      case 14: drop(c); return;
      default: break;
    }
    at += size;
  }
  memmove(c->in, c->in + at, c->in_len - at);
  c->in_len -= at;
  if (out_len > 0) {
    for (int i = 0; i < n_subscribers; i++) {
      if (write_all(subscribers[i], out, out_len) < 0) { drop(conns[subscribers[i]]); i--; }
    }
  }
}

int main (int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: idealcast PORT\n"); return 2; }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  if (listen(lfd, 4096) < 0) die("listen");
  int ep = epoll_create1(0);
  struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd };
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  printf("listening\n");
  fflush(stdout);
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        int cfd;
        while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          if (cfd >= MAX_CLIENTS) { close(cfd); continue; }
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn *c = calloc(1, sizeof *c);
          c->fd = cfd;
          c->in = malloc(BUF);
          conns[cfd] = c;
          struct epoll_event cev = { .events = EPOLLIN, .data.fd = cfd };
          epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
        }
      } else if (conns[fd] != NULL) {
        readable(conns[fd]);
      }
    }
  }
}
