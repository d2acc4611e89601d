/*
 * A lean fan-out load generator: many MQTT subscribers in one process on epoll, counting the
 * bytes of deliveries rather than parsing them (every PUBLISH of a run has the same size), so
 * the generator costs far less than the broker it measures. Built by bench/lib/native.mjs.
 *
 *   subscribers HOST PORT COUNT FILTER ID_PREFIX tcp|ws [PACKET_SIZE STAMP_OFFSET]
 *
 * Prints "ready" once every subscriber has its SUBACK, then the running total of delivered
 * bytes (MQTT bytes after the handshake; for WebSocket the frames' payload bytes) as a line
 * every 2 ms while it changes (SUBSCRIBERS_SWEEP_US in the environment: another interval, in
 * microseconds; it is also the pause between sweeps). Exits when its standard input closes.
 *
 * With PACKET_SIZE and STAMP_OFFSET (latency mode: every PUBLISH is PACKET_SIZE bytes and
 * carries the publisher's CLOCK_MONOTONIC time in nanoseconds, 8 bytes big-endian, at
 * STAMP_OFFSET) every delivery to every subscriber is timed, and on exit it prints
 * "latency P50_MS P99_MS SAMPLES DISCONNECTED"; a line on its standard input prints the same
 * for the deliveries since the last such line and starts counting anew (a step of a rate
 * search). Deliveries are then read as soon as they arrive. SUBSCRIBERS_QUANTILES=1 in the
 * environment also prints the whole distribution on standard error with each latency line.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { HANDSHAKE = 9 }; /* CONNACK (4) + SUBACK (5) */

struct sub {
  int fd;
  int upgraded;          /* WebSocket: the HTTP 101 has been read */
  char head[1024];       /* WebSocket: the HTTP response so far */
  size_t head_len;
  unsigned char hdr[10]; /* WebSocket: frame header bytes so far */
  size_t hdr_len;
  uint64_t remaining;    /* WebSocket: payload bytes of the current frame still to come */
  unsigned char hs[HANDSHAKE];
  size_t hs_len;         /* handshake bytes seen; counting starts after them */
  uint64_t at;           /* latency mode: position in the current PUBLISH */
  uint64_t stamp;        /* latency mode: the stamp's bytes so far */
};

static int ws;
static uint64_t total;
static uint64_t packet_size, stamp_offset; /* latency mode when packet_size > 0 */
static double *samples;
static size_t sample_count, sample_cap;
/* the pause between sweeps (SUBSCRIBERS_SWEEP_US, default 2 ms), also the least time between two reports */
static long sweep_ns = 2000000;
static unsigned disconnected; /* subscribers the broker closed since the last report */

static uint64_t now_ns (void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* latency mode: follows packet boundaries (all PUBLISHes have one size) to read each stamp */
static void stamps (struct sub *s, const unsigned char *p, size_t n) {
  uint64_t arrived = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t at = s->at;
    if (at >= stamp_offset && at < stamp_offset + 8) {
      s->stamp = (s->stamp << 8) | p[i];
      if (at == stamp_offset + 7) {
        if (!arrived) arrived = now_ns();
        if (sample_count == sample_cap) {
          sample_cap = sample_cap ? sample_cap * 2 : 1 << 16;
          samples = realloc(samples, sample_cap * sizeof *samples);
        }
        samples[sample_count++] = (double)(int64_t)(arrived - s->stamp) / 1e6;
        s->stamp = 0;
      }
    }
    s->at = at + 1 == packet_size ? 0 : at + 1;
  }
}

static int by_value (const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void print_latency (void) {
  if (packet_size == 0) return;
  qsort(samples, sample_count, sizeof *samples, by_value);
  double p50 = sample_count ? samples[sample_count / 2] : 0, p99 = sample_count ? samples[(size_t)(sample_count * 0.99)] : 0;
  printf("latency %.3f %.3f %zu %u\n", p50, p99, sample_count, disconnected);
  const char *quantiles = getenv("SUBSCRIBERS_QUANTILES");
  if (quantiles && strcmp(quantiles, "1") == 0 && sample_count) {
    /* the whole distribution, for a closer look (bench/README.md: where the time goes at 20 msg/s) */
    static const double qs[] = { 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999 };
    fprintf(stderr, "latency quantiles (ms):");
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) fprintf(stderr, " p%g %.3f", 100 * qs[i], samples[(size_t)(sample_count * qs[i])]);
    fprintf(stderr, " max %.3f\n", samples[sample_count - 1]);
  }
  sample_count = 0;
  disconnected = 0;
}

static void die (const char *what) { perror(what); exit(1); }

static size_t remaining_length (unsigned char *out, size_t n) {
  size_t i = 0;
  do { unsigned char b = n % 128; n /= 128; if (n) b |= 0x80; out[i++] = b; } while (n);
  return i;
}

/* CONNECT (3.1.1, clean, keepalive 0) + SUBSCRIBE (id 1, QoS 0) */
static size_t mqtt_handshake (unsigned char *out, const char *client_id, const char *filter) {
  size_t id = strlen(client_id), f = strlen(filter), o = 0;
  unsigned char body[600];
  size_t b = 0;
  memcpy(body, "\x00\x04MQTT\x04\x02\x00\x00", 10); b = 10;
  body[b++] = id >> 8; body[b++] = id & 0xff; memcpy(body + b, client_id, id); b += id;
  out[o++] = 0x10; o += remaining_length(out + o, b); memcpy(out + o, body, b); o += b;
  b = 0;
  body[b++] = 0; body[b++] = 1; body[b++] = f >> 8; body[b++] = f & 0xff; memcpy(body + b, filter, f); b += f; body[b++] = 0;
  out[o++] = 0x82; o += remaining_length(out + o, b); memcpy(out + o, body, b); o += b;
  return o;
}

static void write_all (int fd, const void *data, size_t n) {
  const char *p = data;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EAGAIN || errno == EINTR) continue; die("write"); }
    p += w; n -= (size_t)w;
  }
}

/* handshake bytes are checked, later bytes counted */
static void payload (struct sub *s, const unsigned char *p, size_t n) {
  while (n > 0 && s->hs_len < HANDSHAKE) { s->hs[s->hs_len++] = *p++; n--; }
  if (s->hs_len == HANDSHAKE && (s->hs[0] != 0x20 || s->hs[4] != 0x90)) {
    fprintf(stderr, "unexpected handshake\n");
    exit(1);
  }
  total += n;
  if (packet_size > 0 && n > 0) stamps(s, p, n);
}

static void frames (struct sub *s, const unsigned char *p, size_t n) {
  while (n > 0) {
    if (s->remaining > 0) {
      size_t take = n < s->remaining ? n : (size_t)s->remaining;
      payload(s, p, take);
      s->remaining -= take; p += take; n -= take;
      continue;
    }
    s->hdr[s->hdr_len++] = *p++; n--;
    if (s->hdr_len < 2) continue;
    unsigned len7 = s->hdr[1] & 0x7f;
    size_t need = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
    if (s->hdr_len < need) continue;
    if (len7 == 126) s->remaining = ((uint64_t)s->hdr[2] << 8) | s->hdr[3];
    else if (len7 == 127) { s->remaining = 0; for (int i = 2; i < 10; i++) s->remaining = (s->remaining << 8) | s->hdr[i]; }
    else s->remaining = len7;
    s->hdr_len = 0;
  }
}

static void send_mqtt_handshake (struct sub *s, const char *prefix, int index, const char *filter) {
  char id[256];
  unsigned char pkt[1024], frame[1100];
  snprintf(id, sizeof id, "%s-%d", prefix, index);
  size_t n = mqtt_handshake(pkt, id, filter);
  if (!ws) { write_all(s->fd, pkt, n); return; }
  /* a client frame must be masked; a zero mask leaves the bytes as they are */
  size_t o = 0;
  frame[o++] = 0x82;
  if (n < 126) frame[o++] = 0x80 | n; else { frame[o++] = 0x80 | 126; frame[o++] = n >> 8; frame[o++] = n & 0xff; }
  memset(frame + o, 0, 4); o += 4;
  memcpy(frame + o, pkt, n); o += n;
  write_all(s->fd, frame, o);
}

int main (int argc, char **argv) {
  if (argc != 7 && argc != 9) { fprintf(stderr, "usage: subscribers HOST PORT COUNT FILTER ID_PREFIX tcp|ws [PACKET_SIZE STAMP_OFFSET]\n"); return 2; }
  if (argc == 9) { packet_size = strtoull(argv[7], NULL, 10); stamp_offset = strtoull(argv[8], NULL, 10); }
  const char *host = argv[1], *filter = argv[4], *prefix = argv[5];
  int port = atoi(argv[2]), count = atoi(argv[3]);
  ws = strcmp(argv[6], "ws") == 0;
  if (getenv("SUBSCRIBERS_SWEEP_US")) sweep_ns = 1000 * atol(getenv("SUBSCRIBERS_SWEEP_US"));
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct sub *subs = calloc((size_t)count, sizeof *subs);
  int ep = epoll_create1(0);
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
  inet_pton(AF_INET, host, &addr.sin_addr);
  struct epoll_event events[256];
  unsigned char buf[65536];
  int ready = 0;

  /* connect in batches of 100, each batch handshaken before the next (listen backlogs) */
  for (int start = 0; start < count; start += 100) {
    int end = start + 100 < count ? start + 100 : count;
    for (int i = start; i < end; i++) {
      struct sub *s = &subs[i];
      s->fd = socket(AF_INET, SOCK_STREAM, 0);
      if (s->fd < 0) die("socket");
      if (connect(s->fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
      int one = 1;
      setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (ws) {
        char req[512];
        int n = snprintf(req, sizeof req, "GET /mqtt HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n", host, port);
        write_all(s->fd, req, (size_t)n);
      } else {
        send_mqtt_handshake(s, prefix, i, filter);
      }
      fcntl(s->fd, F_SETFL, O_NONBLOCK);
      struct epoll_event ev = { .events = EPOLLIN, .data.ptr = s };
      if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) die("epoll_ctl");
    }
    while (ready < end) {
      int n = epoll_wait(ep, events, 256, 10000);
      if (n == 0) { fprintf(stderr, "handshake timed out (%d of %d ready)\n", ready, count); return 1; }
      for (int e = 0; e < n; e++) {
        struct sub *s = events[e].data.ptr;
        ssize_t r = read(s->fd, buf, sizeof buf);
        if (r <= 0) { if (r < 0 && errno == EAGAIN) continue; fprintf(stderr, "connection closed during handshake\n"); return 1; }
        size_t off = 0, was = s->hs_len;
        if (ws && !s->upgraded) {
          size_t take = (size_t)r < sizeof s->head - s->head_len ? (size_t)r : sizeof s->head - s->head_len - 1;
          memcpy(s->head + s->head_len, buf, take);
          s->head_len += take;
          s->head[s->head_len] = 0;
          char *end_of_head = strstr(s->head, "\r\n\r\n");
          if (!end_of_head) continue;
          if (strncmp(s->head, "HTTP/1.1 101", 12) != 0) { fprintf(stderr, "upgrade refused: %.60s\n", s->head); return 1; }
          s->upgraded = 1;
          off = (size_t)(end_of_head + 4 - s->head) - (s->head_len - take);
          send_mqtt_handshake(s, prefix, (int)(s - subs), filter);
        }
        if (ws) frames(s, buf + off, (size_t)r - off); else payload(s, buf + off, (size_t)r - off);
        if (was < HANDSHAKE && s->hs_len == HANDSHAKE) ready++;
      }
    }
  }
  total = 0; /* deliveries that raced the last handshakes are not counted */
  sample_count = 0;
  printf("ready\n");

  struct epoll_event in = { .events = EPOLLIN, .data.ptr = NULL };
  fcntl(0, F_SETFL, O_NONBLOCK);
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in);
  uint64_t reported = 0;
  uint64_t last = now_ns();
  for (;;) {
    int n = epoll_wait(ep, events, 256, 2);
    for (int e = 0; e < n; e++) {
      struct sub *s = events[e].data.ptr;
      if (!s) {
        ssize_t r = read(0, buf, sizeof buf);
        if (r == 0) { print_latency(); return 0; }
        if (r > 0) print_latency();
        continue;
      }
      ssize_t r = read(s->fd, buf, sizeof buf);
      if (r == 0) { fprintf(stderr, "a subscriber was disconnected\n"); disconnected++; epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL); close(s->fd); continue; }
      if (r < 0) continue;
      if (ws) frames(s, buf, (size_t)r); else payload(s, buf, (size_t)r);
    }
    /* let deliveries pile up between sweeps: fewer, larger reads keep this process cheap; the
       sockets' buffers hold far more than a sweep's worth, so the broker never waits on us. A
       closed-loop publisher does: it sees deliveries only in the reports, so with a small window
       the sweep paces a broker that keeps up (bench/README.md, "who sets the pace") */
    if (n > 0 && packet_size == 0) { struct timespec pause = { 0, sweep_ns }; nanosleep(&pause, NULL); }
    uint64_t t = now_ns();
    if (total != reported && t - last >= (uint64_t)sweep_ns) {
      printf("%llu\n", (unsigned long long)total);
      reported = total;
      last = t;
    }
  }
}
