/*
 * The N-API surface of ws-native: the only file that includes node_api.h.
 *
 * Exported functions mirror the commands of loop.h (binding.<verb> in JS is
 * wsn_binding_<verb>-shaped here as a static `<verb>_fn`). Frames are built
 * on the JS thread while the data is at hand: the payload is copied (and
 * masked, for clients) straight into the command record, and the header is
 * written right-aligned before it, so the loop thread only links the record
 * into the connection's outbox.
 *
 * Events come back in batches: the loop calls notify() when its published
 * batch goes from empty to non-empty; here that is one
 * napi_call_threadsafe_function (thread mode) or a direct call from the
 * loop's check handle (main-loop mode). deliver() turns the whole batch into
 * one Buffer plus an array of external Buffers for large messages and calls
 * the JS dispatcher once.
 */
#include <node_api.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "handshake.h"
#include "loop.h"
#include "rand.h"
#include "tls.h"
#include "topics.h"

typedef struct {
  napi_env env;
  wsn_loop_t loop;
  int started;        /* the loop runs */
  int stopped;        /* shutdown ran */
  int main_mode;      /* on Node's loop instead of our thread */
  int live;           /* servers and sockets JS counts as open */
  napi_threadsafe_function tsfn;
  napi_ref dispatcher;
  napi_ref slab;      /* the Buffer batches are copied into for JS */
  int delivering;     /* the dispatcher is running */
  napi_async_context async_ctx;
  napi_async_cleanup_hook_handle cleanup;
  wsn_rand_pool_t rand; /* JS thread: client masks */
  /* CLOSED / SERVER_CLOSED records of a batch that could not be delivered,
   * waiting for the next delivery (see deliver_endings). */
  wsn_buf_t endings;
  /* Test only: WSN_TEST_FAIL_DELIVERY=N (read once in start) makes the Nth
   * non-empty delivery fail as if out of memory, so the failure path can be
   * tested. 0: never. */
  unsigned long fail_delivery_at;
  unsigned long deliveries;
  /* Thread mode: the commands of the current JS turn, pushed to the loop
   * together at its end (one lock, one wake-up), or sooner past a bound. */
  wsn_cmd_t *turn_head, *turn_tail;
  size_t turn_bytes;
  unsigned turn_count;
  int turn_flush_queued;  /* a microtask will push them */
  napi_ref queue_microtask; /* globalThis.queueMicrotask */
  napi_ref turn_flush;      /* the native function it is given */
  /* JS thread: small records the loop recycled, for the next frames
   * (wsn_loop_cmd_small). */
  wsn_cmd_t *spares;
} wsn_binding_t;

/* A turn's commands leave early past these (a long synchronous loop of
 * sends must not hold megabytes, nor delay its first frames without end). */
#define TURN_MAX_BYTES (256 * 1024)
#define TURN_MAX_COMMANDS 1024

#define CHECK(call)                                                         \
  do {                                                                      \
    if ((call) != napi_ok) return NULL;                                     \
  } while (0)

static napi_value throw_error(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static wsn_binding_t *get_binding(napi_env env) {
  wsn_binding_t *b = NULL;
  napi_get_instance_data(env, (void **)&b);
  return b;
}

/* ---- commands: one push per JS turn ------------------------------------ */

/* Pushes the turn's commands to the loop, in order. */
static void turn_flush(wsn_binding_t *b) {
  if (b->turn_head == NULL) return;
  wsn_loop_push_list(&b->loop, b->turn_head, b->turn_tail);
  b->turn_head = b->turn_tail = NULL;
  b->turn_bytes = 0;
  b->turn_count = 0;
}

/* The microtask queued by the turn's first command. */
static napi_value turn_flush_fn(napi_env env, napi_callback_info info) {
  (void)info;
  wsn_binding_t *b = get_binding(env);
  b->turn_flush_queued = 0;
  if (!b->stopped) turn_flush(b);
  return NULL;
}

/*
 * Every command JS gives the loop goes through here. Main-loop mode runs it
 * at once (wsn_loop_push). Thread mode keeps the commands of one JS turn
 * (a dispatched batch of events and its echoes, say) and pushes them
 * together from a microtask at the turn's end: one lock and at most one
 * wake-up of the I/O thread per turn instead of per send, and the I/O
 * thread writes them together. Order is kept, for every command; a turn
 * that queues a lot pushes early (TURN_MAX_*). If the microtask cannot be
 * queued, the command is pushed at once.
 */
static void enqueue(napi_env env, wsn_binding_t *b, wsn_cmd_t *cmd) {
  if (b->main_mode || b->stopped) {
    wsn_loop_push(&b->loop, cmd);
    return;
  }
  cmd->next = NULL;
  if (b->turn_tail) b->turn_tail->next = cmd;
  else b->turn_head = cmd;
  b->turn_tail = cmd;
  b->turn_bytes += cmd->len;
  b->turn_count++;
  if (b->turn_bytes > TURN_MAX_BYTES || b->turn_count > TURN_MAX_COMMANDS) {
    turn_flush(b);
    return;
  }
  if (b->turn_flush_queued) return;
  napi_value qm, fn, global;
  if (b->queue_microtask == NULL || b->turn_flush == NULL ||
      napi_get_reference_value(env, b->queue_microtask, &qm) != napi_ok ||
      napi_get_reference_value(env, b->turn_flush, &fn) != napi_ok ||
      napi_get_global(env, &global) != napi_ok ||
      napi_call_function(env, global, qm, 1, &fn, NULL) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value e;
      napi_get_and_clear_last_exception(env, &e);
    }
    turn_flush(b);
    return;
  }
  b->turn_flush_queued = 1;
}

static int get_args(napi_env env, napi_callback_info info, size_t n,
                    napi_value *argv) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok)
    return -1;
  for (size_t i = argc; i < n; i++) napi_get_undefined(env, &argv[i]);
  return 0;
}

static double get_double(napi_env env, napi_value v, double dflt) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return dflt;
  return d;
}

static wsn_id_t get_id(napi_env env, napi_value v) {
  double d = get_double(env, v, 0);
  if (!(d > 0) || d > 9007199254740991.0) return 0;
  return (wsn_id_t)d;
}

/* Copies a JS string's UTF-8 into a new malloc'd, NUL-terminated string. */
static char *get_string(napi_env env, napi_value v, size_t *len) {
  size_t n;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) return NULL;
  char *s = malloc(n + 1);
  if (s == NULL) return NULL;
  napi_get_value_string_utf8(env, v, s, n + 1, &n);
  if (len) *len = n;
  return s;
}

/* The bytes of a Buffer, typed array, DataView or ArrayBuffer. */
static int get_bytes(napi_env env, napi_value v, const uint8_t **data,
                     size_t *len) {
  bool is;
  void *p = NULL;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count;
    napi_value ab;
    size_t offset;
    if (napi_get_typedarray_info(env, v, &type, &count, &p, &ab, &offset) != napi_ok)
      return -1;
    size_t size = 1;
    switch (type) {
      case napi_int16_array: case napi_uint16_array: size = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array:
        size = 4; break;
      case napi_float64_array: case napi_bigint64_array:
      case napi_biguint64_array: size = 8; break;
      default: size = 1;
    }
    *data = p;
    *len = count * size;
    return 0;
  }
  if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    napi_value ab;
    size_t offset;
    if (napi_get_dataview_info(env, v, len, &p, &ab, &offset) != napi_ok) return -1;
    *data = p;
    return 0;
  }
  if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    if (napi_get_arraybuffer_info(env, v, &p, len) != napi_ok) return -1;
    *data = p;
    return 0;
  }
  return -1;
}

static napi_value make_number(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

static napi_value undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

/* ---- delivery ---------------------------------------------------------- */

static void free_external(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* The batch goes to JS in one Buffer that is reused from batch to batch
 * (the slab of STYLE.md's udx-native): a new multi-megabyte Buffer per
 * batch would wait for V8's GC, which does not hurry for external memory,
 * and a flood of tiny events would then grow the process by tens of MB.
 * JS copies every payload out before the next batch can overwrite it. A
 * slab grown by one big batch is given back when batches are small again.
 * `delivering` guards against a nested delivery (which would overwrite the
 * slab under the running dispatcher): that one gets a Buffer of its own. */
#define WSN_SLAB_MIN (64 * 1024)
static int slab_fill(wsn_binding_t *b, napi_env env, const wsn_buf_t *batch,
                     napi_value *out) {
  void *data = NULL;
  if (b->delivering) {
    return napi_create_buffer_copy(env, batch->len, batch->base, &data, out) ==
                   napi_ok ? 0 : -1;
  }
  napi_value slab = NULL;
  if (b->slab) napi_get_reference_value(env, b->slab, &slab);
  size_t cap = 0;
  if (slab && napi_get_buffer_info(env, slab, &data, &cap) != napi_ok)
    slab = NULL;
  if (slab == NULL || cap < batch->len ||
      (cap > 16 * WSN_SLAB_MIN && batch->len < WSN_SLAB_MIN)) {
    size_t want = batch->len > WSN_SLAB_MIN ? batch->len : WSN_SLAB_MIN;
    if (napi_create_buffer(env, want, &data, &slab) != napi_ok) return -1;
    if (b->slab) napi_delete_reference(env, b->slab);
    b->slab = NULL;
    if (napi_create_reference(env, slab, 1, &b->slab) != napi_ok) return -1;
  }
  memcpy(data, batch->base, batch->len);
  *out = slab;
  return 0;
}

/* Calls the JS dispatcher with (records, externals, length). */
static void call_dispatcher(wsn_binding_t *b, napi_env env, napi_value *argv) {
  napi_value fn, recv, result;
  if (napi_get_reference_value(env, b->dispatcher, &fn) != napi_ok || !fn)
    return;
  b->delivering++;
  if (b->main_mode) {
    /* napi_make_callback needs an object receiver. */
    napi_get_global(env, &recv);
    napi_status st = napi_make_callback(env, b->async_ctx, recv, fn, 3, argv, &result);
    if (st == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  } else {
    napi_get_undefined(env, &recv);
    napi_call_function(env, recv, fn, 3, argv, &result);
  }
  b->delivering--;
}

/* Delivers b->endings (records only, no externals); on success empties it.
 * These records are small and few, so this can work when a whole batch
 * could not be copied. */
static void deliver_endings(wsn_binding_t *b, napi_env env) {
  if (b->endings.len == 0) return;
  napi_value argv[3];
  void *copy;
  if (napi_create_buffer_copy(env, b->endings.len, b->endings.base, &copy,
                              &argv[0]) != napi_ok ||
      napi_create_array(env, &argv[1]) != napi_ok)
    return; /* kept for the next delivery */
  argv[2] = make_number(env, (double)b->endings.len);
  wsn_buf_free(&b->endings);
  call_dispatcher(b, env, argv);
}

/* A batch could not be handed to JS (out of memory). Its external blocks
 * are freed (no JS Buffer owns them). The records that end an id (CLOSED,
 * SERVER_CLOSED) are what JS cannot do without: it releases the socket or
 * server and its hold on the process only then, so they are delivered
 * alone, now or with the next batch. Every other event of a connection is
 * lost; rather than let that socket go on with a gap (a lost message, open
 * or 'connection' event), it is terminated, so JS sees it close (1006).
 * Events of servers (listening, a listen error) cannot be replayed and are
 * lost. The records stay intact for wsn_loop_credit (delivered counts). */
static void delivery_failed(wsn_binding_t *b, napi_env env, wsn_buf_t *batch) {
  wsn_batch_free_externals(batch);
  wsn_id_t last = 0;
  uint8_t *p = batch->base, *end = batch->base + batch->len;
  while (p < end) {
    wsn_event_t *ev = (wsn_event_t *)p;
    size_t adv = wsn_event_size(ev);
    wsn_id_t id = wsn_id_make(ev->slot, ev->gen);
    switch (ev->type) {
      case WSN_EV_CLOSED:
      case WSN_EV_SERVER_CLOSED:
        /* No payload: append the header only. */
        if (wsn_buf_append(&b->endings, ev, sizeof(*ev)) == 0)
          ((wsn_event_t *)(b->endings.base + b->endings.len - sizeof(*ev)))->len = 0;
        break;
      case WSN_EV_LISTENING:
      case WSN_EV_LISTEN_ERROR:
      case WSN_EV_TLS_CLIENT_ERROR:
        break; /* a server's: not a connection to terminate */
      default:
        /* A no-op if the id is already gone (a CLOSED follows). */
        if (id != last && !b->stopped) {
          wsn_cmd_t *cmd = wsn_cmd_new(WSN_CMD_TERMINATE, id, 0);
          if (cmd) enqueue(env, b, cmd);
          last = id;
        }
        break;
    }
    p += adv;
  }
  deliver_endings(b, env);
}

/* Lets go of the Buffers whose bytes the loop has written (RELEASE
 * records), whatever becomes of the rest of the batch. */
static void release_refs(napi_env env, const wsn_buf_t *batch) {
  const uint8_t *p = batch->base, *end = batch->base + batch->len;
  while (p < end) {
    const wsn_event_t *ev = (const wsn_event_t *)p;
    if (ev->type == WSN_EV_RELEASE)
      napi_delete_reference(env, (napi_ref)(uintptr_t)ev->c);
    p += wsn_event_size(ev);
  }
}

static void deliver(wsn_binding_t *b, napi_env env) {
  /* Endings left by a failed delivery go first, in order. */
  deliver_endings(b, env);
  uint32_t releases = 0;
  wsn_buf_t batch = wsn_loop_take_events(&b->loop, &releases);
  if (releases) release_refs(env, &batch);
  if (batch.len == 0) {
    wsn_buf_free(&batch);
    return;
  }
  napi_value argv[3];
  b->deliveries++;
  if (b->deliveries == b->fail_delivery_at ||
      slab_fill(b, env, &batch, &argv[0]) != 0 ||
      napi_create_array(env, &argv[1]) != napi_ok)
    goto fail;
  argv[2] = make_number(env, (double)batch.len);
  {
    /* Large messages leave as external Buffers, in record order. */
    uint32_t n = 0;
    uint8_t *p = batch.base, *end = batch.base + batch.len;
    while (p < end) {
      wsn_event_t *ev = (wsn_event_t *)p;
      size_t adv = wsn_event_size(ev);
      if (ev->type == WSN_EV_MESSAGE && (ev->a & WSN_MSG_EXTERNAL)) {
        void *block = (void *)(uintptr_t)ev->c;
        napi_value ext;
        napi_status st = napi_create_external_buffer(env, ev->len, block,
                                                     free_external, NULL, &ext);
        if (st != napi_ok) {
          /* napi_no_external_buffers_allowed (Electron): copy instead. */
          if (napi_create_buffer_copy(env, ev->len, block, NULL, &ext) != napi_ok)
            goto fail; /* block is still ours: freed with the rest */
          free(block);
        }
        ev->c = 0;
        napi_set_element(env, argv[1], n++, ext);
      }
      p += adv;
    }
  }
  call_dispatcher(b, env, argv);
  goto ack;
fail:
  delivery_failed(b, env, &batch);
ack:;
  /* The records are done with: each connection is credited what its
   * events were charged, and the memory goes back for reuse. */
  if (b->stopped) {
    wsn_batch_free_externals(&batch);
    wsn_buf_free(&batch);
    return;
  }
  wsn_loop_credit(&b->loop, &batch);
}

static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)js_cb;
  (void)data;
  if (env == NULL) return; /* the tsfn is closing: nothing to free */
  deliver(context, env);
}

static void notify_thread(void *ctx) {
  wsn_binding_t *b = ctx;
  napi_call_threadsafe_function(b->tsfn, NULL, napi_tsfn_nonblocking);
}

static void notify_main(void *ctx) {
  wsn_binding_t *b = ctx;
  napi_handle_scope scope;
  if (napi_open_handle_scope(b->env, &scope) != napi_ok) return;
  deliver(b, b->env);
  napi_close_handle_scope(b->env, scope);
}

/* ---- lifetime ---------------------------------------------------------- */

static void main_stopped(void *arg) {
  wsn_binding_t *b = arg;
  wsn_loop_destroy(&b->loop);
  if (b->cleanup) {
    napi_async_cleanup_hook_handle h = b->cleanup;
    b->cleanup = NULL;
    napi_remove_async_cleanup_hook(h);
  }
}

/* The one shutdown routine: idempotent, bounded, never calls into JS. */
static void shutdown_binding(wsn_binding_t *b, int exiting) {
  if (!b->started || b->stopped) return;
  b->stopped = 1;
  if (b->main_mode) {
    if (exiting) {
      /* process.exit(): the loop never runs again, so close callbacks
       * cannot be awaited; the OS reclaims sockets and memory. */
      wsn_loop_stop_main(&b->loop, NULL, NULL);
      return;
    }
    wsn_loop_stop_main(&b->loop, main_stopped, b);
  } else {
    turn_flush(b); /* what JS queued this turn goes before the stop */
    wsn_loop_stop_threaded(&b->loop);
    wsn_loop_destroy(&b->loop);
    napi_release_threadsafe_function(b->tsfn, napi_tsfn_abort);
    if (b->cleanup) {
      napi_async_cleanup_hook_handle h = b->cleanup;
      b->cleanup = NULL;
      napi_remove_async_cleanup_hook(h);
    }
  }
}

static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle;
  wsn_binding_t *b = arg;
  if (b->stopped) {
    if (b->cleanup) {
      napi_async_cleanup_hook_handle h = b->cleanup;
      b->cleanup = NULL;
      napi_remove_async_cleanup_hook(h);
    }
    return;
  }
  shutdown_binding(b, 0);
}

static void finalize_binding(napi_env env, void *data, void *hint) {
  (void)hint;
  wsn_binding_t *b = data;
  if (b->dispatcher) napi_delete_reference(env, b->dispatcher);
  if (b->slab) napi_delete_reference(env, b->slab);
  if (b->queue_microtask) napi_delete_reference(env, b->queue_microtask);
  if (b->turn_flush) napi_delete_reference(env, b->turn_flush);
  /* Commands of a turn that never ended (the environment went first). */
  while (b->turn_head) {
    wsn_cmd_t *next = b->turn_head->next;
    free(b->turn_head);
    b->turn_head = next;
  }
  if (b->main_mode && b->async_ctx) napi_async_destroy(env, b->async_ctx);
  wsn_buf_free(&b->endings);
  wsn_loop_spares_free(b->spares);
  free(b);
}

/* start(dispatcher, mainMode): starts the loop on first use. */
static napi_value start_fn(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  CHECK(get_args(env, info, 2, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_binding_t *b = get_binding(env);
  if (b->started) return undefined(env);
  bool main_mode = false;
  napi_get_value_bool(env, argv[1], &main_mode);
  const char *fail_at = getenv("WSN_TEST_FAIL_DELIVERY"); /* test only */
  if (fail_at) b->fail_delivery_at = strtoul(fail_at, NULL, 10);
  b->main_mode = main_mode;
  CHECK(napi_create_reference(env, argv[0], 1, &b->dispatcher));
  napi_value name;
  napi_create_string_utf8(env, "ws-native", NAPI_AUTO_LENGTH, &name);
  if (main_mode) {
    uv_loop_t *node_loop;
    CHECK(napi_get_uv_event_loop(env, &node_loop));
    CHECK(napi_async_init(env, NULL, name, &b->async_ctx));
    if (wsn_loop_start(&b->loop, 0, node_loop, notify_main, b) != 0)
      return throw_error(env, "ws-native: cannot start the I/O loop");
  } else {
    CHECK(napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL,
                                          NULL, b, call_js, &b->tsfn));
    /* The tsfn keeps the process alive only while JS counts live handles
     * (ref/unref below). */
    napi_unref_threadsafe_function(env, b->tsfn);
    if (wsn_loop_start(&b->loop, 1, NULL, notify_thread, b) != 0)
      return throw_error(env, "ws-native: cannot start the I/O thread");
    /* The turn's commands leave from a microtask (see enqueue). */
    napi_value global, qm, fn;
    napi_valuetype qt = napi_undefined;
    if (napi_get_global(env, &global) == napi_ok &&
        napi_get_named_property(env, global, "queueMicrotask", &qm) == napi_ok &&
        napi_typeof(env, qm, &qt) == napi_ok && qt == napi_function &&
        napi_create_function(env, "wsnFlushTurn", NAPI_AUTO_LENGTH,
                             turn_flush_fn, NULL, &fn) == napi_ok) {
      napi_create_reference(env, qm, 1, &b->queue_microtask);
      napi_create_reference(env, fn, 1, &b->turn_flush);
    }
  }
  b->started = 1;
  /* Registered after the tsfn, so it runs before the tsfn's own hook. */
  napi_add_async_cleanup_hook(env, on_env_cleanup, b, &b->cleanup);
  return undefined(env);
}

static napi_value shutdown_fn(napi_env env, napi_callback_info info) {
  (void)info;
  shutdown_binding(get_binding(env), 1);
  return undefined(env);
}

/* ref()/unref(): JS's count of live servers and sockets went 0->1 / 1->0.
 * Thread mode refs the tsfn; main-loop mode refs the prepare handle, which
 * keeps Node's loop running (and draining commands) while anything is open
 * without making it spin. */
static napi_value ref_fn(napi_env env, napi_callback_info info) {
  (void)info;
  wsn_binding_t *b = get_binding(env);
  if (!b->started || b->stopped || b->live++ != 0) return undefined(env);
  if (b->main_mode) uv_ref((uv_handle_t *)&b->loop.prepare);
  else napi_ref_threadsafe_function(env, b->tsfn);
  return undefined(env);
}

static napi_value unref_fn(napi_env env, napi_callback_info info) {
  (void)info;
  wsn_binding_t *b = get_binding(env);
  if (!b->started || b->stopped || b->live == 0 || --b->live != 0)
    return undefined(env);
  if (b->main_mode) uv_unref((uv_handle_t *)&b->loop.prepare);
  else napi_unref_threadsafe_function(env, b->tsfn);
  return undefined(env);
}

static int usable(napi_env env, wsn_binding_t *b) {
  if (!b->started || b->stopped) {
    napi_throw_error(env, NULL, "ws-native: the I/O loop is not running");
    return 0;
  }
  return 1;
}

/* ---- servers ----------------------------------------------------------- */

/* [maxPendingAutoPongs, maxFragments, maxBufferedChunks, idleTimeout in
 * ms, sendPings (1/0)], each already `| 0`-ed (the first three, as ws does)
 * or validated by JS (lib/limits.js); <= 0 turns that limit off. */
static void get_limits(napi_env env, napi_value arr, wsn_limits_t *l) {
  memset(l, 0, sizeof(*l));
  uint32_t *f[5] = {&l->max_pending_pongs, &l->max_fragments,
                    &l->max_buffered_chunks, &l->idle_timeout_ms,
                    &l->send_pings};
  napi_value v;
  for (uint32_t i = 0; i < 5; i++) {
    if (napi_get_element(env, arr, i, &v) != napi_ok) continue;
    double d = get_double(env, v, 0);
    *f[i] = d > 0 && d <= UINT32_MAX ? (uint32_t)d : 0;
  }
}

/* listen(host, port, backlog, maxPayload, path, flags, handshakeTimeout,
 * limits, tls) -> id; tls: a tlsServerContext() external, or undefined */
static napi_value listen_fn(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  CHECK(get_args(env, info, 9, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_binding_t *b = get_binding(env);
  if (!usable(env, b)) return NULL;
  size_t host_len = 0, path_len = 0;
  char *host = get_string(env, argv[0], &host_len);
  char *path = get_string(env, argv[4], &path_len);
  if (host == NULL || path == NULL) {
    free(host);
    free(path);
    return throw_error(env, "ws-native: bad listen arguments");
  }
  wsn_id_t id = wsn_slots_alloc(&b->loop.slots);
  wsn_cmd_t *cmd = id ? wsn_cmd_new(WSN_CMD_LISTEN, id,
                                    sizeof(wsn_listen_args_t) + host_len + path_len)
                      : NULL;
  if (cmd == NULL) {
    free(host);
    free(path);
    return throw_error(env, "ws-native: out of memory");
  }
  wsn_listen_args_t a;
  memset(&a, 0, sizeof(a));
  a.port = (uint32_t)get_double(env, argv[1], 0);
  a.backlog = (int32_t)get_double(env, argv[2], 511);
  a.settings.max_payload = (uint64_t)get_double(env, argv[3], 0);
  a.settings.flags = (uint32_t)get_double(env, argv[5], 0);
  a.settings.path_len = (uint32_t)path_len;
  get_limits(env, argv[7], &a.settings.limits);
  a.handshake_timeout_ms = (uint32_t)get_double(env, argv[6], 0);
  a.host_len = (uint32_t)host_len;
  /* The command takes a reference here, while the context is surely
   * alive; the server keeps it (the external may be collected first). */
  void *tls_ctx = NULL;
  if (napi_get_value_external(env, argv[8], &tls_ctx) == napi_ok &&
      tls_ctx != NULL) {
    wsn_tls_ctx_ref(tls_ctx);
    a.tls = tls_ctx;
  }
  memcpy(cmd->data, &a, sizeof(a));
  memcpy(cmd->data + sizeof(a), host, host_len);
  memcpy(cmd->data + sizeof(a) + host_len, path, path_len);
  free(host);
  free(path);
  enqueue(env, b, cmd);
  return make_number(env, (double)id);
}

/* Pushes a command with no data for id; arg as given. */
static napi_value simple_cmd(napi_env env, napi_callback_info info,
                             uint32_t type) {
  napi_value argv[2];
  CHECK(get_args(env, info, 2, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_binding_t *b = get_binding(env);
  if (!b->started || b->stopped) return undefined(env);
  wsn_id_t id = get_id(env, argv[0]);
  if (id == 0) return undefined(env);
  wsn_cmd_t *cmd = wsn_cmd_new(type, id, 0);
  if (cmd == NULL) return throw_error(env, "ws-native: out of memory");
  cmd->arg = (uint64_t)get_double(env, argv[1], 0);
  enqueue(env, b, cmd);
  /* Flow control and teardown do not wait for the turn's end: a paused
   * reader must stop the socket's reading now (the I/O thread reads on
   * until the command arrives), and the commands before it go with it, so
   * order is kept. */
  if (type == WSN_CMD_PAUSE || type == WSN_CMD_TERMINATE ||
      type == WSN_CMD_SERVER_CLOSE)
    turn_flush(b);
  return undefined(env);
}

/* serverClose(id): stops accepting before it returns, as
 * net.Server.close() does: on Linux, shutdown(SHUT_RD) on a listening
 * socket stops listening at once (a new connect is refused) and resets the
 * connections waiting in its accept queue. The queued SERVER_CLOSE then
 * closes the handle on the loop, as before; elsewhere (shutdown fails) that
 * command is what stops accepting. */
static napi_value server_close_fn(napi_env env, napi_callback_info info) {
  wsn_binding_t *b = get_binding(env);
  napi_value argv[1];
  size_t argc = 1;
  if (b->started && !b->stopped &&
      napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok &&
      argc >= 1) {
    wsn_id_t id = get_id(env, argv[0]);
    wsn_slot_t *sl = id ? wsn_slots_get(&b->loop.slots, id) : NULL;
    /* Taken once: the loop closes the fd only after it cleared the slot
     * (stop, a failed listen) or after our SERVER_CLOSE (pushed below). */
    int32_t fd1 = sl ? atomic_exchange(&sl->listen_fd, 0) : 0;
    if (fd1 > 0) shutdown(fd1 - 1, SHUT_RD);
  }
  return simple_cmd(env, info, WSN_CMD_SERVER_CLOSE);
}
/* serverSettings(id, maxPayload, path, flags, limits): what a `{ port }`
 * server applies to its next handshakes (JS sends it again whenever an
 * option ws reads at each handshake changes). */
static napi_value server_settings_fn(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  CHECK(get_args(env, info, 5, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_binding_t *b = get_binding(env);
  if (!b->started || b->stopped) return undefined(env);
  wsn_id_t id = get_id(env, argv[0]);
  if (id == 0) return undefined(env);
  size_t path_len = 0;
  char *path = get_string(env, argv[2], &path_len);
  wsn_server_settings_t st;
  wsn_cmd_t *cmd = path ? wsn_cmd_new(WSN_CMD_SERVER_SETTINGS, id,
                                      sizeof(st) + path_len)
                        : NULL;
  if (cmd == NULL) {
    free(path);
    return throw_error(env, "ws-native: out of memory");
  }
  memset(&st, 0, sizeof(st));
  st.max_payload = (uint64_t)get_double(env, argv[1], 0);
  st.flags = (uint32_t)get_double(env, argv[3], 0);
  st.path_len = (uint32_t)path_len;
  get_limits(env, argv[4], &st.limits);
  memcpy(cmd->data, &st, sizeof(st));
  memcpy(cmd->data + sizeof(st), path, path_len);
  free(path);
  enqueue(env, b, cmd);
  return undefined(env);
}
static napi_value terminate_fn(napi_env env, napi_callback_info info) {
  return simple_cmd(env, info, WSN_CMD_TERMINATE);
}
static napi_value pause_fn(napi_env env, napi_callback_info info) {
  return simple_cmd(env, info, WSN_CMD_PAUSE);
}
static napi_value resume_fn(napi_env env, napi_callback_info info) {
  return simple_cmd(env, info, WSN_CMD_RESUME);
}

/* sockopt(id, which, value): ws._socket's setKeepAlive (value: on | delay
 * seconds << 1), setNoDelay and ref/unref (WSN_SOCKOPT_*), run on the
 * loop thread, which owns the socket. */
static napi_value sockopt_fn(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  CHECK(get_args(env, info, 3, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_binding_t *b = get_binding(env);
  if (!b->started || b->stopped) return undefined(env);
  wsn_id_t id = get_id(env, argv[0]);
  uint32_t which = (uint32_t)get_double(env, argv[1], 0);
  if (id == 0 || which < WSN_SOCKOPT_KEEPALIVE || which > WSN_SOCKOPT_REF)
    return undefined(env);
  wsn_cmd_t *cmd = wsn_cmd_new(WSN_CMD_SOCKOPT, id, 0);
  if (cmd == NULL) return throw_error(env, "ws-native: out of memory");
  cmd->flags = which;
  double v = get_double(env, argv[2], 0);
  cmd->arg = v > 0 && v < 9007199254740992.0 ? (uint64_t)v : 0;
  enqueue(env, b, cmd);
  return undefined(env);
}

/* ---- permessage-deflate ------------------------------------------------ */

/* A JS option value in deflate.h's encoding: undefined/null -> UNSET,
 * false -> FALSE, true -> TRUE, a number -> itself (JS checked it). */
static int pmd_value(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_boolean) {
    bool x = false;
    napi_get_value_bool(env, v, &x);
    return x ? WSN_PMD_TRUE : WSN_PMD_FALSE;
  }
  if (t == napi_number) return (int)get_double(env, v, 0);
  return WSN_PMD_UNSET;
}

/* [serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits,
 *  clientMaxWindowBits, threshold, level, memLevel, strategy] */
static void get_pmd_options(napi_env env, napi_value arr,
                            wsn_pmd_options_t *o) {
  wsn_pmd_options_init(o);
  napi_value v;
  int f[8];
  for (uint32_t i = 0; i < 8; i++) {
    f[i] = napi_get_element(env, arr, i, &v) == napi_ok ? pmd_value(env, v)
                                                         : WSN_PMD_UNSET;
  }
  o->server_no_context_takeover = f[0];
  o->client_no_context_takeover = f[1];
  o->server_max_window_bits = f[2];
  o->client_max_window_bits = f[3];
  if (f[4] >= 0) o->threshold = (uint64_t)f[4];
  if (f[5] != WSN_PMD_UNSET) o->level = f[5];
  if (f[6] > 0) o->mem_level = f[6];
  if (f[7] > 0) o->strategy = f[7];
}

/* A wsn_pmd_setup_t passed back from JS (a Buffer), or zero. */
static void get_setup(napi_env env, napi_value v, wsn_pmd_setup_t *s) {
  const uint8_t *p;
  size_t n;
  memset(s, 0, sizeof(*s));
  if (get_bytes(env, v, &p, &n) == 0 && n == sizeof(*s)) memcpy(s, p, n);
}

static napi_value make_setup(napi_env env, const wsn_pmd_setup_t *s) {
  napi_value buf;
  void *data;
  napi_create_buffer_copy(env, sizeof(*s), s, &data, &buf);
  return buf;
}

static napi_value make_string(napi_env env, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s ? s : "", NAPI_AUTO_LENGTH, &v);
  return v;
}

/* [serverNCT, clientNCT, serverMWB, clientMWB] as JS values (0: absent). */
static napi_value make_params(napi_env env, const wsn_pmd_params_t *p) {
  napi_value arr;
  napi_create_array_with_length(env, 4, &arr);
  napi_set_element(env, arr, 0, make_number(env, p->server_no_context_takeover));
  napi_set_element(env, arr, 1, make_number(env, p->client_no_context_takeover));
  napi_set_element(env, arr, 2, make_number(env, p->server_max_window_bits));
  napi_set_element(env, arr, 3, make_number(env, p->client_max_window_bits));
  return arr;
}

/* pmdOffer(options) -> the client's Sec-WebSocket-Extensions value */
static napi_value pmd_offer_fn(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  CHECK(get_args(env, info, 1, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_pmd_options_t o;
  get_pmd_options(env, argv[0], &o);
  char out[WSN_PMD_HEADER_MAX];
  if (wsn_pmd_offer(&o, out, sizeof(out)) == 0) out[0] = 0;
  return make_string(env, out);
}

/* chunkedDecode(state, bytes) -> data length * 4 + WSN_HTTP_CHUNKED_*: the
 * next bytes of an unexpected response's chunked body, decoded in place (the
 * data moves to the front of `bytes`). `state` is the body's
 * wsn_http_chunked_t, kept by JS in a zeroed Buffer of at least its size. */
static napi_value chunked_decode_fn(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  CHECK(get_args(env, info, 2, argv) == 0 ? napi_ok : napi_generic_failure);
  const uint8_t *st, *data;
  size_t st_len, len;
  if (get_bytes(env, argv[0], &st, &st_len) != 0 ||
      st_len < sizeof(wsn_http_chunked_t) ||
      get_bytes(env, argv[1], &data, &len) != 0)
    return throw_error(env, "chunkedDecode: bad arguments");
  /* Copied in and out: a Buffer's bytes need not be aligned for it. */
  wsn_http_chunked_t ch;
  memcpy(&ch, st, sizeof(ch));
  size_t out = 0;
  int r = wsn_http_chunked_decode(&ch, (uint8_t *)data, len, &out);
  memcpy((uint8_t *)st, &ch, sizeof(ch));
  return make_number(env, (double)out * 4 + r);
}

/* pmdNegotiate(options, value, isServer) -> [result, headerOrMessage,
 * setup, params]. Server: result WSN_PMD_OK (header = the response value),
 * WSN_PMD_NONE, or < 0 (message = ws's 400 text). Client: checks the 101's
 * answer; < 0 with ws's handshake error message. */
static napi_value pmd_negotiate_fn(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  CHECK(get_args(env, info, 3, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_pmd_setup_t s;
  memset(&s, 0, sizeof(s));
  get_pmd_options(env, argv[0], &s.opts);
  size_t n = 0;
  char *value = get_string(env, argv[1], &n);
  bool is_server = false;
  napi_get_value_bool(env, argv[2], &is_server);
  if (value == NULL) return throw_error(env, "ws-native: out of memory");
  wsn_pmd_error_t err;
  memset(&err, 0, sizeof(err));
  int r = is_server
              ? wsn_pmd_accept_offer(&s.opts, value, n, &s.params, &err)
              : wsn_pmd_accept_response(&s.opts, value, n, &s.params, &err);
  free(value);
  char header[WSN_PMD_HEADER_MAX] = "";
  if (r == WSN_PMD_OK) {
    s.enabled = 1;
    if (is_server && wsn_pmd_format(&s.params, header, sizeof(header)) == 0)
      header[0] = 0;
  }
  napi_value out;
  napi_create_array_with_length(env, 4, &out);
  napi_set_element(env, out, 0, make_number(env, r));
  napi_set_element(env, out, 1, make_string(env, r < 0 ? err.message : header));
  napi_set_element(env, out, 2, make_setup(env, &s));
  napi_set_element(env, out, 3, make_params(env, &s.params));
  return out;
}

/* accept(id, response, setup) / reject(id, response): JS's answer to a
 * handshake C handed over: the whole 101 (then frames, with the agreed
 * compression), or an error response (then the socket closes). */
static napi_value response_cmd(napi_env env, napi_callback_info info,
                               uint32_t type) {
  napi_value argv[3];
  CHECK(get_args(env, info, 3, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_binding_t *b = get_binding(env);
  if (!usable(env, b)) return NULL;
  wsn_id_t id = get_id(env, argv[0]);
  size_t n = 0;
  char *resp = get_string(env, argv[1], &n);
  size_t pre = type == WSN_CMD_ACCEPT ? sizeof(wsn_pmd_setup_t) : 0;
  wsn_cmd_t *cmd = resp ? wsn_cmd_new(type, id, pre + n) : NULL;
  if (cmd) {
    if (pre) {
      wsn_pmd_setup_t s;
      get_setup(env, argv[2], &s);
      memcpy(cmd->data, &s, sizeof(s));
    }
    memcpy(cmd->data + pre, resp, n);
    enqueue(env, b, cmd);
  }
  free(resp);
  if (cmd == NULL) return throw_error(env, "ws-native: out of memory");
  return undefined(env);
}

static napi_value accept_fn(napi_env env, napi_callback_info info) {
  return response_cmd(env, info, WSN_CMD_ACCEPT);
}

static napi_value reject_fn(napi_env env, napi_callback_info info) {
  return response_cmd(env, info, WSN_CMD_REJECT);
}

/* adopt(fd, head, response, maxPayload, flags, setup, limits) -> [id, jsFd]
 *
 * Takes over a socket a Node http server accepted, after JS did the
 * handshake. fd >= 0: a plain TCP (or pipe) socket; it is duplicated here
 * (JS then destroys Node's handle, which closes only the original) and the
 * duplicate moves to the loop; jsFd is -1. fd < 0: a socket that cannot be
 * taken over (TLS, any Duplex): a socketpair links it to the loop, which
 * gets one end; JS pipes the stream to and from the other end, jsFd. */
static napi_value adopt_fn(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  CHECK(get_args(env, info, 7, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_binding_t *b = get_binding(env);
  if (!usable(env, b)) return NULL;
  const uint8_t *head = NULL;
  size_t hl = 0, rl = 0;
  if (get_bytes(env, argv[1], &head, &hl) != 0)
    return throw_error(env, "ws-native: head must be a Buffer");
  char *resp = get_string(env, argv[2], &rl);
  int src = (int)get_double(env, argv[0], -1);
  int loop_fd = -1, js_fd = -1;
  if (src >= 0) {
    loop_fd = fcntl(src, F_DUPFD_CLOEXEC, 0);
  } else {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
      loop_fd = sv[0];
      js_fd = sv[1];
    }
  }
  if (loop_fd < 0) {
    free(resp);
    return throw_error(env, "ws-native: cannot take over the socket");
  }
  wsn_id_t id = resp ? wsn_slots_alloc(&b->loop.slots) : 0;
  wsn_adopt_args_t a;
  wsn_cmd_t *cmd = id ? wsn_cmd_new(WSN_CMD_ADOPT, id, sizeof(a) + hl + rl) : NULL;
  if (cmd == NULL) {
    if (id) wsn_slots_free(&b->loop.slots, id);
    free(resp);
    close(loop_fd);
    if (js_fd >= 0) close(js_fd);
    return throw_error(env, "ws-native: out of memory");
  }
  memset(&a, 0, sizeof(a));
  a.fd = loop_fd;
  a.max_payload = (uint64_t)get_double(env, argv[3], 0);
  a.flags = (uint32_t)get_double(env, argv[4], 0);
  a.head_len = (uint32_t)hl;
  a.response_len = (uint32_t)rl;
  get_setup(env, argv[5], &a.pmd);
  get_limits(env, argv[6], &a.limits);
  memcpy(cmd->data, &a, sizeof(a));
  if (hl) memcpy(cmd->data + sizeof(a), head, hl);
  memcpy(cmd->data + sizeof(a) + hl, resp, rl);
  free(resp);
  enqueue(env, b, cmd);
  napi_value out;
  napi_create_array_with_length(env, 2, &out);
  napi_set_element(env, out, 0, make_number(env, (double)id));
  napi_set_element(env, out, 1, make_number(env, (double)js_fd));
  return out;
}

/* ---- clients ----------------------------------------------------------- */

/* ---- TLS contexts ------------------------------------------------------ */

static void finalize_tls_ctx(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  wsn_tls_ctx_release(data);
}

/* Optional string/Buffer argument as bytes (NULL if absent). The string
 * case is malloc'd into *owned. */
static const uint8_t *opt_bytes(napi_env env, napi_value v, size_t *len,
                                char **owned) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  *len = 0;
  if (t == napi_string) {
    *owned = get_string(env, v, len);
    return (const uint8_t *)*owned;
  }
  const uint8_t *p;
  if (t == napi_object && get_bytes(env, v, &p, len) == 0) return p;
  return NULL;
}

/* tlsContext(ca, cert, key, passphrase, pfx, rejectUnauthorized) -> an
 * external holding a client SSL_CTX (released when collected). Errors are
 * thrown with Node's code and message (a bad key or certificate). */
static napi_value make_tls_context(napi_env env, napi_callback_info info,
                                   int server) {
  napi_value argv[6];
  CHECK(get_args(env, info, 6, argv) == 0 ? napi_ok : napi_generic_failure);
  char *owned[5] = {0};
  wsn_tls_ctx_options_t o;
  memset(&o, 0, sizeof(o));
  o.ca = (const char *)opt_bytes(env, argv[0], &o.ca_len, &owned[0]);
  o.cert = (const char *)opt_bytes(env, argv[1], &o.cert_len, &owned[1]);
  o.key = (const char *)opt_bytes(env, argv[2], &o.key_len, &owned[2]);
  size_t pl = 0;
  o.passphrase = (const char *)opt_bytes(env, argv[3], &pl, &owned[3]);
  if (o.passphrase && owned[3] == NULL) o.passphrase = NULL; /* strings only */
  o.pfx = opt_bytes(env, argv[4], &o.pfx_len, &owned[4]);
  bool reject = true;
  napi_get_value_bool(env, argv[5], &reject);
  o.reject_unauthorized = reject;
  wsn_tls_error_t err;
  memset(&err, 0, sizeof(err));
  wsn_tls_ctx_t *ctx = server ? wsn_tls_server_ctx_new(&o, &err)
                              : wsn_tls_ctx_new(&o, &err);
  for (int i = 0; i < 5; i++) free(owned[i]);
  if (ctx == NULL) {
    napi_value msg, code, error;
    napi_create_string_utf8(env, err.message ? err.message : "TLS error",
                            NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, err.code, NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, err.code[0] ? code : NULL, msg, &error);
    wsn_tls_error_clear(&err);
    napi_throw(env, error);
    return NULL;
  }
  napi_value ext;
  if (napi_create_external(env, ctx, finalize_tls_ctx, NULL, &ext) != napi_ok) {
    wsn_tls_ctx_release(ctx);
    return NULL;
  }
  return ext;
}

static napi_value tls_context_fn(napi_env env, napi_callback_info info) {
  return make_tls_context(env, info, 0);
}

/* tlsServerContext(ca, cert, key, passphrase, pfx) -> an external holding a
 * server SSL_CTX, for listen(); same errors as tlsContext. */
static napi_value tls_server_context_fn(napi_env env,
                                        napi_callback_info info) {
  return make_tls_context(env, info, 1);
}

/* connect(host, port, key, request, maxPayload, flags, offer, tls, limits)
 * -> id;
 * offer: the permessage-deflate options offered (lib/pmd.js's array), if
 * any; tls: [context, servername, verifyHost] for wss://. */
static napi_value connect_fn(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  CHECK(get_args(env, info, 9, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_binding_t *b = get_binding(env);
  if (!usable(env, b)) return NULL;
  size_t hl = 0, kl = 0, rl = 0;
  char *host = get_string(env, argv[0], &hl);
  char *key = get_string(env, argv[2], &kl);
  char *req = get_string(env, argv[3], &rl);
  wsn_id_t id = wsn_slots_alloc(&b->loop.slots);
  wsn_connect_args_t a;
  wsn_cmd_t *cmd = NULL;
  if (host && key && req && id)
    cmd = wsn_cmd_new(WSN_CMD_CONNECT, id, sizeof(a) + hl + kl + rl);
  if (cmd) {
    memset(&a, 0, sizeof(a));
    a.port = (uint32_t)get_double(env, argv[1], 80);
    a.max_payload = (uint64_t)get_double(env, argv[4], 0);
    a.flags = (uint32_t)get_double(env, argv[5], 0);
    get_limits(env, argv[8], &a.limits);
    bool offered = false;
    napi_is_array(env, argv[6], &offered);
    if (offered) {
      get_pmd_options(env, argv[6], &a.pmd.opts);
      a.pmd.offered = 1;
    }
    bool secure = false;
    napi_is_array(env, argv[7], &secure);
    if (secure) {
      /* The session is made here, while the context is surely alive (it
       * holds a reference); the loop thread only uses it. */
      napi_value v;
      void *ctx = NULL;
      napi_get_element(env, argv[7], 0, &v);
      napi_get_value_external(env, v, &ctx);
      napi_get_element(env, argv[7], 1, &v);
      char *sni = get_string(env, v, NULL);
      napi_get_element(env, argv[7], 2, &v);
      char *vhost = get_string(env, v, NULL);
      a.tls = ctx && sni && vhost
                  ? wsn_tls_session_new(ctx, sni[0] ? sni : NULL, vhost)
                  : NULL;
      free(sni);
      free(vhost);
      if (a.tls == NULL) {
        free(cmd);
        cmd = NULL;
      }
    }
  }
  if (cmd) {
    a.host_len = (uint32_t)hl;
    a.key_len = (uint32_t)kl;
    a.request_len = (uint32_t)rl;
    uint8_t *p = cmd->data;
    memcpy(p, &a, sizeof(a));
    memcpy(p + sizeof(a), host, hl);
    memcpy(p + sizeof(a) + hl, key, kl);
    memcpy(p + sizeof(a) + hl + kl, req, rl);
    enqueue(env, b, cmd);
  }
  free(host);
  free(key);
  free(req);
  if (cmd == NULL) {
    if (id) wsn_slots_free(&b->loop.slots, id);
    return throw_error(env, "ws-native: cannot connect (out of memory)");
  }
  return make_number(env, (double)id);
}

/* ---- frames ------------------------------------------------------------ */

#define SEND_FIN 1u
#define SEND_MASK 2u
#define SEND_ACK 4u
#define SEND_COMPRESS 8u /* compress on the loop thread (permessage-deflate) */

/* Finishes a record whose payload sits at data + 14: writes the header
 * right-aligned before it and masks the payload if asked. */
static size_t finish_frame(wsn_binding_t *b, wsn_cmd_t *cmd, size_t len,
                           int opcode, uint32_t flags, int payload_masked_by_copy,
                           const uint8_t *src) {
  uint8_t mask[4];
  int masked = (flags & SEND_MASK) != 0;
  if (masked) wsn_rand_fill(&b->rand, mask, 4);
  size_t h = wsn_frame_header_size(len, masked);
  uint8_t *payload = cmd->data + 14;
  if (src) {
    if (masked) wsn_frame_mask_copy(payload, src, len, mask);
    else if (len) memcpy(payload, src, len);
  } else if (masked && !payload_masked_by_copy) {
    wsn_frame_mask(payload, len, mask, 0);
  }
  wsn_frame_header(payload - h, (flags & SEND_FIN) != 0, 0, opcode, len,
                   masked ? mask : NULL);
  cmd->off = 14 - h;
  cmd->len = h + len;
  if (flags & SEND_ACK) cmd->flags |= WSN_SEND_WANT_ACK;
  return h + len;
}

/* Builds a frame record from a string or bytes. */
static wsn_cmd_t *build_frame(napi_env env, wsn_binding_t *b, wsn_id_t id,
                              uint32_t type, napi_value data, int opcode,
                              uint32_t flags, size_t *frame_len) {
  napi_valuetype t;
  napi_typeof(env, data, &t);
  wsn_cmd_t *cmd;
  if (t == napi_string) {
    size_t units;
    if (napi_get_value_string_utf16(env, data, NULL, 0, &units) != napi_ok)
      return NULL;
    /* A UTF-16 unit never needs more than 3 UTF-8 bytes; for long strings
     * the exact length is cheaper than a 3x allocation. */
    size_t cap = units * 3;
    if (units > 4096 &&
        napi_get_value_string_utf8(env, data, NULL, 0, &cap) != napi_ok)
      return NULL;
    cmd = wsn_loop_cmd_small(&b->loop, &b->spares, type, id, 14 + cap + 1);
    if (cmd == NULL) return NULL;
    size_t n = 0;
    napi_get_value_string_utf8(env, data, (char *)cmd->data + 14, cap + 1, &n);
    *frame_len = finish_frame(b, cmd, n, opcode, flags, 0, NULL);
    return cmd;
  }
  /* (strings above are never compressed: send() passes them as Buffers
   * when it asks for compression) */
  const uint8_t *p = NULL;
  size_t n = 0;
  if (t != napi_undefined && t != napi_null && get_bytes(env, data, &p, &n) != 0) {
    napi_throw_type_error(env, NULL, "ws-native: data must be a string or bytes");
    return NULL;
  }
  if (flags & SEND_COMPRESS) {
    /* The loop thread compresses and frames it (wsn_outbox_compress in outbox.c);
     * JS counts it at its uncompressed frame size. */
    cmd = wsn_cmd_new(type, id, n);
    if (cmd == NULL) return NULL;
    if (n) memcpy(cmd->data, p, n);
    cmd->flags = WSN_SEND_COMPRESS | (uint32_t)opcode << WSN_SEND_OPCODE_SHIFT |
                 ((flags & SEND_FIN) ? WSN_SEND_FIN : 0) |
                 ((flags & SEND_ACK) ? WSN_SEND_WANT_ACK : 0);
    *frame_len = n + wsn_frame_header_size(n, (flags & SEND_MASK) != 0);
    cmd->arg = *frame_len;
    return cmd;
  }
  if (type == WSN_CMD_SEND && n >= WSN_SEND_EXTERNAL_MIN &&
      !(flags & SEND_MASK)) {
    /* A large payload sent unmasked (a server's) is written from the
     * caller's memory, as ws hands its Buffer to socket.write: no copy,
     * no multi-megabyte allocation per message. A reference keeps it alive
     * until the loop has written it (RELEASE, see release_refs). */
    napi_ref ref;
    cmd = wsn_cmd_new(type, id, sizeof(wsn_cmd_ext_t) + 14);
    if (cmd == NULL) return NULL;
    if (napi_create_reference(env, data, 1, &ref) != napi_ok) {
      free(cmd);
      return NULL;
    }
    wsn_cmd_ext_t x = {p, n, ref};
    memcpy(cmd->data, &x, sizeof(x));
    size_t h = wsn_frame_header(cmd->data + sizeof(x), (flags & SEND_FIN) != 0,
                                0, opcode, n, NULL);
    cmd->off = sizeof(x);
    cmd->len = h + n;
    cmd->flags |= WSN_CMD_EXTERNAL |
                  ((flags & SEND_ACK) ? WSN_SEND_WANT_ACK : 0);
    *frame_len = h + n;
    return cmd;
  }
  cmd = wsn_loop_cmd_small(&b->loop, &b->spares, type, id, 14 + n);
  if (cmd == NULL) return NULL;
  *frame_len = finish_frame(b, cmd, n, opcode, flags, 0, n ? p : NULL);
  return cmd;
}

/* send(id, data, opcode, flags) -> bytes queued (frame size) */
static napi_value send_fn(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  CHECK(get_args(env, info, 4, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_binding_t *b = get_binding(env);
  if (!usable(env, b)) return NULL;
  wsn_id_t id = get_id(env, argv[0]);
  int opcode = (int)get_double(env, argv[2], WSN_OP_BINARY);
  uint32_t flags = (uint32_t)get_double(env, argv[3], SEND_FIN);
  size_t frame_len = 0;
  wsn_cmd_t *cmd = build_frame(env, b, id, WSN_CMD_SEND, argv[1], opcode,
                               flags, &frame_len);
  if (cmd == NULL) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, NULL, "ws-native: out of memory");
    return NULL;
  }
  enqueue(env, b, cmd);
  return make_number(env, (double)frame_len);
}

/* sendFrame(id, list, flags) -> bytes queued. `list` holds the pieces of
 * one complete frame that JS framed itself (ws's Sender.frame, for
 * socket.io's frame-once broadcast): they are copied as they are into one
 * record, no header added. Only SEND_ACK of `flags` applies. */
static napi_value send_frame_fn(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  CHECK(get_args(env, info, 3, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_binding_t *b = get_binding(env);
  if (!usable(env, b)) return NULL;
  wsn_id_t id = get_id(env, argv[0]);
  uint32_t flags = (uint32_t)get_double(env, argv[2], 0);
  uint32_t count = 0;
  bool is_array = false;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &count) != napi_ok) {
    napi_throw_type_error(env, NULL, "ws-native: the frame must be an array");
    return NULL;
  }
  /* Two passes: the sizes first (for one allocation), then the copies. An
   * element getter could run JS and change a piece in between: the second
   * pass checks every size again. */
  size_t total = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value v;
    const uint8_t *p = NULL;
    size_t n = 0;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok ||
        get_bytes(env, v, &p, &n) != 0) {
      napi_throw_type_error(env, NULL, "ws-native: frame pieces must be bytes");
      return NULL;
    }
    total += n;
  }
  if (total == 0) {
    napi_throw_type_error(env, NULL, "ws-native: the frame is empty");
    return NULL;
  }
  wsn_cmd_t *cmd = wsn_cmd_new(WSN_CMD_SEND, id, total);
  if (cmd == NULL) return throw_error(env, "ws-native: out of memory");
  size_t off = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value v;
    const uint8_t *p = NULL;
    size_t n = 0;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok ||
        get_bytes(env, v, &p, &n) != 0 || n > total - off) {
      free(cmd);
      napi_throw_type_error(env, NULL, "ws-native: the frame changed while read");
      return NULL;
    }
    if (n) memcpy(cmd->data + off, p, n);
    off += n;
  }
  if (off != total) {
    free(cmd);
    napi_throw_type_error(env, NULL, "ws-native: the frame changed while read");
    return NULL;
  }
  if (flags & SEND_ACK) cmd->flags |= WSN_SEND_WANT_ACK;
  enqueue(env, b, cmd);
  return make_number(env, (double)total);
}

/* close(id, code, reasonBuffer, flags) -> bytes queued. code < 0: empty
 * payload (ws's close() without a code). */
static napi_value close_fn(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  CHECK(get_args(env, info, 4, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_binding_t *b = get_binding(env);
  if (!usable(env, b)) return NULL;
  wsn_id_t id = get_id(env, argv[0]);
  int code = (int)get_double(env, argv[1], -1);
  uint32_t flags = (uint32_t)get_double(env, argv[3], 0) | SEND_FIN;
  const uint8_t *reason = NULL;
  size_t reason_len = 0;
  if (code >= 0) get_bytes(env, argv[2], &reason, &reason_len);
  if (reason_len > 123) reason_len = 123; /* JS validated; keep it a control frame */
  uint8_t payload[125];
  size_t n = 0;
  if (code >= 0) {
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    if (reason_len) memcpy(payload + 2, reason, reason_len);
    n = 2 + reason_len;
  }
  wsn_cmd_t *cmd = wsn_cmd_new(WSN_CMD_CLOSE, id, 14 + n);
  if (cmd == NULL) return throw_error(env, "ws-native: out of memory");
  size_t frame_len = finish_frame(b, cmd, n, WSN_OP_CLOSE, flags, 0, n ? payload : NULL);
  enqueue(env, b, cmd);
  return make_number(env, (double)frame_len);
}

/* ---- topics (docs/topics.md) ------------------------------------------ */

/* subscribe(id, hub, topic) and unsubscribe(id, hub, topic): in order with
 * the socket's sends. JS checked the arguments. */
static napi_value topic_cmd(napi_env env, napi_callback_info info,
                            uint32_t type) {
  napi_value argv[3];
  CHECK(get_args(env, info, 3, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_binding_t *b = get_binding(env);
  if (!b->started || b->stopped) return undefined(env);
  wsn_id_t id = get_id(env, argv[0]);
  size_t n;
  if (id == 0 ||
      napi_get_value_string_utf8(env, argv[2], NULL, 0, &n) != napi_ok)
    return undefined(env);
  wsn_cmd_t *cmd = wsn_cmd_new(type, id, n + 1);
  if (cmd == NULL) return throw_error(env, "ws-native: out of memory");
  napi_get_value_string_utf8(env, argv[2], (char *)cmd->data, n + 1, &n);
  cmd->len = n;
  cmd->arg = (uint32_t)get_double(env, argv[1], 0);
  enqueue(env, b, cmd);
  return undefined(env);
}

static napi_value subscribe_fn(napi_env env, napi_callback_info info) {
  return topic_cmd(env, info, WSN_CMD_SUBSCRIBE);
}

static napi_value unsubscribe_fn(napi_env env, napi_callback_info info) {
  return topic_cmd(env, info, WSN_CMD_UNSUBSCRIBE);
}

/* Thread mode: publishes the I/O thread has not run yet. Past this many,
 * publish() waits until half are done: the fan-out of one publish costs
 * the I/O thread a record per subscriber, and a JS loop publishing faster
 * than that would grow the command queue without end. Main-loop mode needs
 * no bound: there the fan-out runs inside publish(). */
#define PUB_PENDING_MAX 256u
#define PUB_WAIT_MAX_MS 5000

/* Pushes this turn's commands and waits (sleeping 100 µs at a time) for
 * the loop to work the queue down; gives up after PUB_WAIT_MAX_MS (a
 * stopping loop runs no more commands). */
static void publish_wait(wsn_binding_t *b) {
  turn_flush(b);
  for (int i = 0; i < PUB_WAIT_MAX_MS * 10 && !b->stopped &&
                  atomic_load(&b->loop.pub_pending) > PUB_PENDING_MAX / 2;
       i++)
    usleep(100);
}

/* publish(skipId, hub, topic, data, flags, maxBackpressure, threshold) ->
 * the frame's size, which JS counts for each subscriber. One command for
 * all subscribers: the frame (a server's: unmasked) is built here once,
 * its header right-aligned before the payload as finish_frame does. */
static napi_value publish_fn(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  CHECK(get_args(env, info, 7, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_binding_t *b = get_binding(env);
  if (!usable(env, b)) return NULL;
  size_t topic_len, n = 0;
  if (napi_get_value_string_utf8(env, argv[2], NULL, 0, &topic_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "ws-native: the topic must be a string");
    return NULL;
  }
  napi_valuetype t;
  napi_typeof(env, argv[3], &t);
  const uint8_t *p = NULL;
  if (t == napi_string) {
    if (napi_get_value_string_utf8(env, argv[3], NULL, 0, &n) != napi_ok)
      return NULL;
  } else if (get_bytes(env, argv[3], &p, &n) != 0) {
    napi_throw_type_error(env, NULL, "ws-native: data must be a string or bytes");
    return NULL;
  }
  wsn_publish_args_t a;
  memset(&a, 0, sizeof(a));
  size_t at = sizeof(a) + topic_len + 14; /* where the payload goes */
  wsn_cmd_t *cmd = wsn_cmd_new(WSN_CMD_PUBLISH, get_id(env, argv[0]),
                               at + n + 1);
  if (cmd == NULL) return throw_error(env, "ws-native: out of memory");
  napi_get_value_string_utf8(env, argv[2], (char *)cmd->data + sizeof(a),
                             topic_len + 1, &topic_len);
  if (t == napi_string)
    napi_get_value_string_utf8(env, argv[3], (char *)cmd->data + at, n + 1, &n);
  else if (n)
    memcpy(cmd->data + at, p, n);
  a.flags = (uint32_t)get_double(env, argv[4], 0);
  int opcode = (a.flags & WSN_PUB_BINARY) ? WSN_OP_BINARY : WSN_OP_TEXT;
  size_t h = wsn_frame_header_size(n, 0);
  wsn_frame_header(cmd->data + at - h, 1, 0, opcode, n, NULL);
  double mb = get_double(env, argv[5], -1);
  double th = get_double(env, argv[6], 0);
  a.hub = (uint32_t)get_double(env, argv[1], 0);
  a.topic_len = (uint32_t)topic_len;
  a.max_backpressure = mb >= 0 && mb < 1.8e19 ? (uint64_t)mb : UINT64_MAX;
  a.threshold = th > 0 && th < 1.8e19 ? (uint64_t)th : 0;
  a.counted = h + n;
  a.header_len = (uint32_t)h;
  memcpy(cmd->data, &a, sizeof(a));
  cmd->off = at - h;
  cmd->len = h + n;
  atomic_fetch_add(&b->loop.pub_pending, 1);
  enqueue(env, b, cmd);
  if (!b->main_mode && atomic_load(&b->loop.pub_pending) > PUB_PENDING_MAX)
    publish_wait(b);
  return make_number(env, (double)(h + n));
}

/* written(id) -> bytes of this connection handed to the kernel, or -1. */
static napi_value written_fn(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  CHECK(get_args(env, info, 1, argv) == 0 ? napi_ok : napi_generic_failure);
  wsn_binding_t *b = get_binding(env);
  if (!b->started || b->stopped) return make_number(env, -1);
  wsn_slot_t *sl = wsn_slots_get(&b->loop.slots, get_id(env, argv[0]));
  if (sl == NULL) return make_number(env, -1);
  return make_number(env, (double)atomic_load(&sl->written));
}

/* ---- module ------------------------------------------------------------ */

static void set_number(napi_env env, napi_value obj, const char *name, double v) {
  napi_set_named_property(env, obj, name, make_number(env, v));
}

static void set_string(napi_env env, napi_value obj, const char *name,
                       const char *v) {
  napi_value s;
  napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, obj, name, s);
}

/* Constants JS must not hard-code: event types, record layout, flags, and
 * the error table (udx-native exports its layouts the same way). */
static napi_value make_constants(napi_env env) {
  napi_value c, errors;
  napi_create_object(env, &c);
#define EV(name) set_number(env, c, "EV_" #name, WSN_EV_##name)
  EV(LISTENING); EV(LISTEN_ERROR); EV(SERVER_CLOSED); EV(CONNECTION);
  EV(HANDSHAKE); EV(OPEN); EV(MESSAGE); EV(PING); EV(PONG); EV(CLOSE_FRAME);
  EV(ERROR); EV(SOCKET_ERROR); EV(CLOSED); EV(WRITTEN); EV(DATA);
  EV(TLS_ERROR); EV(FRAGMENTS); EV(ADDRESS);
  EV(TLS_CLIENT_ERROR); EV(DROPPED);
#undef EV
  set_number(env, c, "PUB_BINARY", WSN_PUB_BINARY);
  set_number(env, c, "PUB_COMPRESS", WSN_PUB_COMPRESS);
  set_number(env, c, "PUB_CLOSE_ON_LIMIT", WSN_PUB_CLOSE_ON_LIMIT);
  set_number(env, c, "TOPIC_MAX", WSN_TOPIC_MAX);
  set_number(env, c, "SOCKOPT_KEEPALIVE", WSN_SOCKOPT_KEEPALIVE);
  set_number(env, c, "SOCKOPT_NODELAY", WSN_SOCKOPT_NODELAY);
  set_number(env, c, "SOCKOPT_REF", WSN_SOCKOPT_REF);
  set_number(env, c, "EVENT_SIZE", sizeof(wsn_event_t));
  set_number(env, c, "OFF_TYPE", offsetof(wsn_event_t, type));
  set_number(env, c, "OFF_SLOT", offsetof(wsn_event_t, slot));
  set_number(env, c, "OFF_GEN", offsetof(wsn_event_t, gen));
  set_number(env, c, "OFF_LEN", offsetof(wsn_event_t, len));
  set_number(env, c, "OFF_A", offsetof(wsn_event_t, a));
  set_number(env, c, "OFF_B", offsetof(wsn_event_t, b));
  set_number(env, c, "OFF_C", offsetof(wsn_event_t, c));
  set_number(env, c, "SLOT_BITS", WSN_SLOT_BITS);
  set_number(env, c, "MSG_BINARY", WSN_MSG_BINARY);
  set_number(env, c, "MSG_EXTERNAL", WSN_MSG_EXTERNAL);
  set_number(env, c, "SEND_FIN", SEND_FIN);
  set_number(env, c, "SEND_MASK", SEND_MASK);
  set_number(env, c, "SEND_ACK", SEND_ACK);
  set_number(env, c, "SERVER_NEEDS_JS", WSN_SERVER_NEEDS_JS);
  set_number(env, c, "SERVER_NO_AUTO_PONG", WSN_SERVER_NO_AUTO_PONG);
  set_number(env, c, "SERVER_SKIP_UTF8", WSN_SERVER_SKIP_UTF8);
  set_number(env, c, "ADOPT_CLIENT", WSN_ADOPT_CLIENT);
  set_number(env, c, "SEND_COMPRESS", SEND_COMPRESS);
  set_number(env, c, "PMD_OK", WSN_PMD_OK);
  set_number(env, c, "PMD_NONE", WSN_PMD_NONE);
  set_number(env, c, "CONN_NO_AUTO_PONG", WSN_CONN_NO_AUTO_PONG);
  set_number(env, c, "CONN_SKIP_UTF8", WSN_CONN_SKIP_UTF8);
  set_number(env, c, "HS_OK", WSN_HS_OK);
  set_number(env, c, "HS_NOT_101", WSN_HS_NOT_101);
  set_number(env, c, "HS_BAD_UPGRADE", WSN_HS_BAD_UPGRADE);
  set_number(env, c, "HS_BAD_ACCEPT", WSN_HS_BAD_ACCEPT);
  set_number(env, c, "HS_BAD_RESPONSE", WSN_HS_BAD_RESPONSE);
  set_number(env, c, "CHUNKED_END", WSN_HTTP_CHUNKED_END);
  set_number(env, c, "CHUNKED_BAD", WSN_HTTP_CHUNKED_BAD);
  set_number(env, c, "CHUNKED_STATE_SIZE", sizeof(wsn_http_chunked_t));
  napi_create_object(env, &errors);
#define ERR(name, code, ctor, prefix, msg, close)                        \
  do {                                                                  \
    napi_value e;                                                       \
    napi_create_object(env, &e);                                        \
    set_string(env, e, "code", code);                                   \
    set_string(env, e, "ctor", ctor);                                   \
    set_number(env, e, "prefix", prefix);                               \
    set_string(env, e, "message", msg);                                 \
    set_number(env, e, "closeCode", close);                             \
    char key[16];                                                       \
    snprintf(key, sizeof(key), "%d", (int)WSN_E_##name);                \
    napi_set_named_property(env, errors, key, e);                       \
  } while (0);
  WSN_ERRORS(ERR)
#undef ERR
  napi_set_named_property(env, c, "errors", errors);
  return c;
}

static napi_value init(napi_env env, napi_value exports) {
  wsn_binding_t *b = calloc(1, sizeof(*b));
  if (b == NULL) return throw_error(env, "ws-native: out of memory");
  b->env = env;
  wsn_rand_init(&b->rand);
  if (napi_set_instance_data(env, b, finalize_binding, NULL) != napi_ok) {
    free(b);
    return NULL;
  }
  napi_property_descriptor props[] = {
#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}
      FN("start", start_fn),         FN("shutdown", shutdown_fn),
      FN("ref", ref_fn),             FN("unref", unref_fn),
      FN("listen", listen_fn),       FN("serverClose", server_close_fn),
      FN("serverSettings", server_settings_fn), FN("accept", accept_fn),
      FN("reject", reject_fn),       FN("connect", connect_fn),
      FN("send", send_fn),           FN("close", close_fn),
      FN("sendFrame", send_frame_fn),
      FN("terminate", terminate_fn), FN("pause", pause_fn),
      FN("resume", resume_fn),       FN("written", written_fn),
      FN("adopt", adopt_fn),         FN("pmdOffer", pmd_offer_fn),
      FN("pmdNegotiate", pmd_negotiate_fn), FN("tlsContext", tls_context_fn),
      FN("tlsServerContext", tls_server_context_fn),
      FN("sockopt", sockopt_fn),
      FN("chunkedDecode", chunked_decode_fn),
      FN("subscribe", subscribe_fn), FN("unsubscribe", unsubscribe_fn),
      FN("publish", publish_fn),
#undef FN
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  napi_set_named_property(env, exports, "constants", make_constants(env));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
