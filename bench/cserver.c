/*
 * cserver: the C reference echo server, the machine's limit in bench/.
 *
 * As little as a correct WebSocket echo server can do: one thread, epoll
 * (level-triggered), non-blocking sockets, RFC 6455 server framing. It reads
 * into one shared buffer, unmasks each client frame in place and echoes it
 * with the same opcode and FIN bit (so a fragmented message comes back
 * fragmented the same way), answers pings with pongs and a close with a
 * close, and copies bytes into a connection's own buffer only when a frame
 * is split across reads or the socket does not take a whole reply: an idle
 * connection owns nothing but its small state. No permessage-deflate (an
 * offer is not accepted), no UTF-8 validation of text, no subprotocols: what
 * is left is the cost of the socket I/O and the framing, which is what the
 * libraries are measured against.
 *
 * The same protocol with bench/run.js as servers/echo.js: prints {"port":N}
 * once listening on 127.0.0.1 (port: argv[1] or $PORT, default 0 = any), a
 * stdin line "rss" prints {"rss":bytes}, stdin end exits 0.
 *
 * $BENCH_BROADCAST=N (bench S9): once N connections are open, every turn
 * of the loop also sends one $BENCH_SIZE-byte (default 64) text frame of
 * 'x' to each open connection, one send() each; a connection with more
 * than 1 MiB not yet taken by its socket is skipped for that message (the
 * policy of ws-native's default maxBackpressure), so memory stays bounded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BUF (256 * 1024)
#define HANDSHAKE_MAX 8192
/* ws's default maxPayload. */
#define MAX_PAYLOAD (100u * 1024 * 1024)

enum { ST_HANDSHAKE, ST_OPEN, ST_CLOSING };

struct conn {
  int fd;
  int state;
  bool want_out;  /* EPOLLOUT registered */
  bool dead;      /* a socket error or EOF: freed once its event is handled */
  uint8_t *in;    /* bytes of an incomplete frame or request, else NULL */
  size_t in_len, in_cap;
  uint8_t *out;   /* reply bytes the socket did not take yet, else NULL */
  size_t out_off, out_len, out_cap;
  size_t idx;     /* broadcast: its place in `opened` (+1; 0: not there) */
};

/* Broadcast mode: the open connections. */
static struct conn **opened;
static size_t nopened, capopened, bcast_want;
#define BCAST_MAX_PENDING (1024 * 1024)

static int ep;
static uint8_t rbuf[READ_BUF];
/* Replies to one read, written with one send(). */
static uint8_t *wbuf;
static size_t wlen, wcap;

static void die(const char *what) {
  fprintf(stderr, "cserver: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n);
  if (!p) {
    fprintf(stderr, "cserver: out of memory\n");
    exit(1);
  }
  return p;
}

/* Appends to a growable buffer; capacities double so appends stay O(1). */
static void append(uint8_t **buf, size_t *len, size_t *cap, const void *src, size_t n) {
  if (*len + n > *cap) {
    /* A first allocation takes the size asked for: most are one reply's
     * unsent tail, which is never appended to again before it is written. */
    size_t c = *cap ? *cap : (*len + n > 4096 ? *len + n : 4096);
    while (c < *len + n) c *= 2;
    *buf = xrealloc(*buf, c);
    *cap = c;
  }
  memcpy(*buf + *len, src, n);
  *len += n;
}

/* ---- SHA-1 and base64, for Sec-WebSocket-Accept ----------------------- */

static uint32_t rol(uint32_t x, int n) { return x << n | x >> (32 - n); }

/* len < 64 - 9 is all the handshake needs (24-byte key + 36-byte GUID = 60
 * bytes, two blocks), so a fixed 128-byte block buffer is enough. */
static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
  uint8_t m[128] = {0};
  size_t total = ((len + 8) / 64 + 1) * 64;
  memcpy(m, msg, len);
  m[len] = 0x80;
  uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; i++) m[total - 1 - i] = (uint8_t)(bits >> (8 * i));
  for (size_t off = 0; off < total; off += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t)m[off + 4 * i] << 24 | (uint32_t)m[off + 4 * i + 1] << 16 |
             (uint32_t)m[off + 4 * i + 2] << 8 | m[off + 4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5a827999;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ed9eba1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8f1bbcdc;
      } else {
        f = b ^ c ^ d;
        k = 0xca62c1d6;
      }
      uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = rol(b, 30);
      b = a;
      a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(h[i] >> (24 - 8 * j));
}

static void base64(const uint8_t *in, size_t n, char *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    out[o++] = tab[v >> 18 & 63];
    out[o++] = tab[v >> 12 & 63];
    out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? tab[v & 63] : '=';
  }
  out[o] = '\0';
}

/* ---- connections -------------------------------------------------------- */

static void conn_free(struct conn *c) {
  if (c->idx) {
    struct conn *last = opened[--nopened];
    opened[c->idx - 1] = last;
    last->idx = c->idx;
  }
  close(c->fd); /* also removes it from the epoll set */
  free(c->in);
  free(c->out);
  free(c);
}

static void set_out(struct conn *c, bool on) {
  if (c->want_out == on) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
  c->want_out = on;
}

/* Writes what is pending. */
static void flush_out(struct conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) c->dead = true;
      return;
    }
    c->out_off += (size_t)n;
  }
  free(c->out);
  c->out = NULL;
  c->out_off = c->out_len = c->out_cap = 0;
  set_out(c, false);
  if (c->state == ST_CLOSING) {
    /* Our close frame is out: half-close and let the client end it. */
    shutdown(c->fd, SHUT_WR);
  }
}

/* Sends p[0..n) now, keeping in c->out what the socket does not take;
 * behind bytes already pending it only queues. */
static void out_bytes(struct conn *c, const uint8_t *p, size_t n) {
  size_t off = 0;
  if (c->dead || n == 0) return;
  if (!c->out) {
    while (off < n) {
      ssize_t w = send(c->fd, p + off, n - off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        c->dead = true;
        return;
      }
      off += (size_t)w;
    }
  }
  if (off < n) {
    append(&c->out, &c->out_len, &c->out_cap, p + off, n - off);
    set_out(c, true);
  }
}

/* Sends wbuf, the replies to one read, with one send(). */
static void send_replies(struct conn *c) {
  out_bytes(c, wbuf, wlen);
  wlen = 0;
  if (c->state == ST_CLOSING && !c->out && !c->dead) shutdown(c->fd, SHUT_WR);
}

static void frame_header(uint8_t b0, uint64_t len) {
  uint8_t h[10];
  size_t n;
  h[0] = b0;
  if (len < 126) {
    h[1] = (uint8_t)len;
    n = 2;
  } else if (len < 65536) {
    h[1] = 126;
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    n = 4;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    n = 10;
  }
  append(&wbuf, &wlen, &wcap, h, n);
}

/* A close frame with `code` (protocol errors); the connection then only
 * waits for its end. */
static void fail(struct conn *c, uint16_t code) {
  uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
  frame_header(0x88, 2);
  append(&wbuf, &wlen, &wcap, p, 2);
  c->state = ST_CLOSING;
}

/* Unmasks 8 bytes at a time (the compiler turns the memcpys into plain
 * loads and stores): a byte loop costs a 1 MiB message about as much as its
 * socket I/O. */
static void unmask(uint8_t *p, size_t n, const uint8_t mask[4]) {
  uint8_t m[8];
  uint64_t m8;
  for (int i = 0; i < 8; i++) m[i] = mask[i & 3];
  memcpy(&m8, m, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    v ^= m8;
    memcpy(p + i, &v, 8);
  }
  for (; i < n; i++) p[i] ^= mask[i & 3];
}

/* Consumes the complete frames of buf[0..len) (masked client frames,
 * unmasked here in place) into replies in wbuf; returns the bytes used. */
static size_t frames(struct conn *c, uint8_t *buf, size_t len) {
  size_t pos = 0;
  while (c->state == ST_OPEN && len - pos >= 2) {
    uint8_t *f = buf + pos;
    size_t avail = len - pos;
    uint8_t b0 = f[0], op = b0 & 0x0f;
    uint64_t plen = f[1] & 0x7f;
    size_t hlen = 2;
    if ((f[1] & 0x80) == 0 || (b0 & 0x70) != 0) {
      fail(c, 1002); /* unmasked client frame, or RSV bits without an extension */
      break;
    }
    if (plen == 126) {
      if (avail < 4) break;
      plen = (uint64_t)f[2] << 8 | f[3];
      hlen = 4;
    } else if (plen == 127) {
      if (avail < 10) break;
      plen = 0;
      for (int i = 0; i < 8; i++) plen = plen << 8 | f[2 + i];
      hlen = 10;
    }
    if (plen > MAX_PAYLOAD) {
      fail(c, 1009);
      break;
    }
    if (op >= 8 && (plen > 125 || !(b0 & 0x80))) {
      fail(c, 1002);
      break;
    }
    if (avail < hlen + 4 + plen) break;
    uint8_t *mask = f + hlen, *p = mask + 4;
    unmask(p, (size_t)plen, mask);
    pos += hlen + 4 + (size_t)plen;
    switch (op) {
    case 0x0: case 0x1: case 0x2: /* data: echo as it came */
      if (plen >= 16384) {
        /* Large: no copy. The replies so far go first, then this frame
         * leaves from where it was read, its server header written over
         * the end of the client's (which is 4 bytes longer: the mask). */
        send_replies(c);
        size_t sh = plen < 65536 ? 4 : 10;
        uint8_t *h = p - sh;
        h[0] = b0;
        if (sh == 4) {
          h[1] = 126;
          h[2] = (uint8_t)(plen >> 8);
          h[3] = (uint8_t)plen;
        } else {
          h[1] = 127;
          for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)(plen >> (56 - 8 * i));
        }
        out_bytes(c, h, sh + (size_t)plen);
        break;
      }
      frame_header(b0, plen);
      append(&wbuf, &wlen, &wcap, p, (size_t)plen);
      break;
    case 0x8: /* close: answer with the same status code */
      frame_header(0x88, plen >= 2 ? 2 : 0);
      append(&wbuf, &wlen, &wcap, p, plen >= 2 ? 2 : 0);
      c->state = ST_CLOSING;
      break;
    case 0x9:
      frame_header(0x8a, plen);
      append(&wbuf, &wlen, &wcap, p, (size_t)plen);
      break;
    case 0xa:
      break;
    default:
      fail(c, 1002);
    }
  }
  /* A closing connection ignores whatever else comes. */
  return c->state == ST_OPEN ? pos : len;
}

/* The upgrade request in buf[0..len); returns the bytes it used, 0 if it is
 * not complete yet, or (size_t)-1 to drop the connection. */
static size_t handshake(struct conn *c, uint8_t *buf, size_t len) {
  uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
  if (!end) return len >= HANDSHAKE_MAX ? (size_t)-1 : 0;
  size_t used = (size_t)(end - buf) + 4;
  char key[64] = "";
  /* Header lines: find Sec-WebSocket-Key, case-insensitively. */
  for (uint8_t *line = memmem(buf, used, "\r\n", 2); line && line + 2 < end;) {
    line += 2;
    uint8_t *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
    static const char name[] = "sec-websocket-key:";
    size_t ll = (size_t)(eol - line);
    if (ll > sizeof name - 1 && strncasecmp((char *)line, name, sizeof name - 1) == 0) {
      uint8_t *v = line + sizeof name - 1, *ve = eol;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      if ((size_t)(ve - v) < sizeof key) {
        memcpy(key, v, (size_t)(ve - v));
        key[ve - v] = '\0';
      }
    }
    line = eol;
  }
  if (strncmp((char *)buf, "GET ", 4) != 0 || strlen(key) != 24) {
    static const char bad[] = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    append(&wbuf, &wlen, &wcap, bad, sizeof bad - 1);
    c->state = ST_CLOSING;
    return len;
  }
  char src[64 + 36];
  uint8_t digest[20];
  char accept[32];
  int n = snprintf(src, sizeof src, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
  sha1((uint8_t *)src, (size_t)n, digest);
  base64(digest, 20, accept);
  char resp[160];
  n = snprintf(resp, sizeof resp,
               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\n\r\n",
               accept);
  append(&wbuf, &wlen, &wcap, resp, (size_t)n);
  c->state = ST_OPEN;
  if (bcast_want) {
    if (nopened == capopened) {
      capopened = capopened ? capopened * 2 : 1024;
      opened = xrealloc(opened, capopened * sizeof *opened);
    }
    opened[nopened++] = c;
    c->idx = nopened;
  }
  return used;
}

/* The whole size of the frame that starts buf[0..len), or 0 if its header
 * is not complete yet. */
static size_t frame_size(const uint8_t *f, size_t len) {
  if (len < 2) return 0;
  uint64_t plen = f[1] & 0x7f;
  size_t hlen = 2;
  if (plen == 126) {
    if (len < 4) return 0;
    plen = (uint64_t)f[2] << 8 | f[3];
    hlen = 4;
  } else if (plen == 127) {
    if (len < 10) return 0;
    plen = 0;
    for (int i = 0; i < 8; i++) plen = plen << 8 | f[2 + i];
    hlen = 10;
  }
  if (plen > MAX_PAYLOAD) return 0;
  return hlen + 4 + (size_t)plen;
}

/* Processes data[0..len) (mutable: unmasked in place); keeps an incomplete
 * tail in c->in. */
static void consume(struct conn *c, uint8_t *data, size_t len) {
  size_t pos = 0;
  if (c->state == ST_HANDSHAKE) {
    size_t used = handshake(c, data, len);
    if (used == (size_t)-1) {
      c->state = ST_CLOSING;
      pos = len;
    } else if (used == 0) {
      pos = 0;
      goto keep;
    } else {
      pos = used;
    }
  }
  if (c->state == ST_OPEN) pos += frames(c, data + pos, len - pos);
  else pos = len;
keep:
  if (data == c->in) {
    /* Drop the used head of the connection's own buffer. */
    c->in_len = len - pos;
    if (c->in_len == 0) {
      free(c->in);
      c->in = NULL;
      c->in_cap = 0;
    } else if (pos) {
      memmove(c->in, c->in + pos, c->in_len);
    }
  } else if (pos < len) {
    append(&c->in, &c->in_len, &c->in_cap, data + pos, len - pos);
  }
  if (c->in && c->state == ST_OPEN) {
    /* A large frame's size is known from its header: reserve it whole, so
     * the rest is read straight into c->in (on_readable) without copies or
     * reallocations. */
    size_t need = frame_size(c->in, c->in_len);
    if (need > c->in_cap) {
      c->in = xrealloc(c->in, need);
      c->in_cap = need;
    }
  }
}

static void on_readable(struct conn *c) {
  if (c->in && c->state == ST_OPEN && c->in_cap > c->in_len && c->in_cap >= 64 * 1024) {
    /* The rest of a large frame: read it where it belongs. */
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      c->dead = true;
      return;
    }
    c->in_len += (size_t)n;
    consume(c, c->in, c->in_len);
    send_replies(c);
    return;
  }
  ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    c->dead = true;
    return;
  }
  if (c->state == ST_CLOSING) return;
  if (c->in) {
    /* The tail of a split frame waits in c->in: the new bytes join it. */
    append(&c->in, &c->in_len, &c->in_cap, rbuf, (size_t)n);
    consume(c, c->in, c->in_len);
  } else {
    consume(c, rbuf, (size_t)n);
  }
  send_replies(c);
}

static void on_accept(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN) return;
      if (errno == EMFILE || errno == ENFILE) {
        fprintf(stderr, "cserver: accept: %s\n", strerror(errno));
        return;
      }
      die("accept");
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
  }
}

/* stdin: "rss" lines, EOF = exit. */
static void on_stdin(void) {
  static char line[256];
  static size_t len;
  ssize_t n = read(0, line + len, sizeof line - 1 - len);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    exit(0);
  }
  len += (size_t)n;
  char *nl;
  while ((nl = memchr(line, '\n', len))) {
    *nl = '\0';
    if (strncmp(line, "rss", 3) == 0) {
      long pages = 0;
      FILE *f = fopen("/proc/self/statm", "r");
      if (f) {
        if (fscanf(f, "%*d %ld", &pages) != 1) pages = 0;
        fclose(f);
      }
      printf("{\"rss\":%ld}\n", pages * sysconf(_SC_PAGESIZE));
      fflush(stdout);
    }
    size_t used = (size_t)(nl - line) + 1;
    memmove(line, nl + 1, len - used);
    len -= used;
  }
  if (len == sizeof line - 1) len = 0; /* an overlong line: drop it */
}

int main(int argc, char **argv) {
  const char *ps = argc > 1 ? argv[1] : getenv("PORT");
  int port = ps ? atoi(ps) : 0;
  signal(SIGPIPE, SIG_IGN);
  /* Large frames get a buffer of their size each (consume): keep freed
   * memory in the heap instead of returning it to the kernel and faulting
   * fresh zeroed pages in for the next message, which S3 would measure. */
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024); /* glibc's maximum */
  mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd < 0) die("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  if (listen(lfd, 4096) < 0) die("listen");
  socklen_t al = sizeof a;
  if (getsockname(lfd, (struct sockaddr *)&a, &al) < 0) die("getsockname");
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  /* Listener and stdin are told apart from connections by these tags. */
  static int lfd_tag, stdin_tag;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &lfd_tag};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl");
  ev.data.ptr = &stdin_tag;
  /* A file or /dev/null cannot be polled (EPERM): then there is no "rss"
   * and no stdin end, and the server runs until killed. */
  if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0 && errno != EPERM) die("epoll_ctl stdin");
  printf("{\"port\":%d}\n", ntohs(a.sin_port));
  fflush(stdout);
  const char *bw = getenv("BENCH_BROADCAST");
  bcast_want = bw ? (size_t)atol(bw) : 0;
  const char *bs = getenv("BENCH_SIZE");
  size_t bsize = bs ? (size_t)atol(bs) : 64;
  uint8_t *bframe = NULL;
  size_t bflen = 0;
  if (bcast_want) {
    frame_header(0x81, bsize);
    bframe = xrealloc(NULL, wlen + bsize);
    memcpy(bframe, wbuf, wlen);
    memset(bframe + wlen, 'x', bsize);
    bflen = wlen + bsize;
    wlen = 0;
  }
  struct epoll_event evs[256];
  for (;;) {
    bool bcast = bcast_want && nopened >= bcast_want;
    int n = epoll_wait(ep, evs, 256, bcast ? 0 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == &lfd_tag) {
        on_accept(lfd);
      } else if (p == &stdin_tag) {
        on_stdin();
      } else {
        struct conn *c = p;
        if (evs[i].events & EPOLLOUT) flush_out(c);
        if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(c);
        if (c->dead) conn_free(c);
      }
    }
    if (!bcast) continue;
    /* One message to every open connection (backwards: conn_free moves
     * the last one into a freed place). */
    for (size_t i = nopened; i-- > 0;) {
      struct conn *c = opened[i];
      if (c->state != ST_OPEN || c->out_len - c->out_off > BCAST_MAX_PENDING) continue;
      out_bytes(c, bframe, bflen);
      if (c->dead) conn_free(c);
    }
  }
}
