'use strict';

// Unit tests for lib/event-target.js. The same suite runs against ws's own
// lib/event-target.js (and ws's on<type> attributes), so every expectation
// here is checked against the reference implementation, not just ours.

const assert = require('node:assert/strict');
const EventEmitter = require('node:events');
const path = require('node:path');

const ours = require('../lib/event-target');

/**
 * Loads ws's event layer by file path: ws's package "exports" hides
 * ws/lib/*, so the subpath require only works in older layouts.
 *
 * @return {(Object|null)} ws's event-target module and its WebSocket, or
 *     null when ws is not installed
 */
function loadReference() {
  let dir;
  try {
    dir = path.dirname(require.resolve('ws/package.json'));
  } catch {
    return null;
  }
  let mod;
  try {
    mod = require('ws/lib/event-target');
  } catch {
    mod = require(path.join(dir, 'lib', 'event-target.js'));
  }
  return { mod, WebSocket: require(path.join(dir, 'lib', 'websocket.js')) };
}

/**
 * Builds an EventEmitter subclass carrying an event layer, standing in for
 * WebSocket.
 *
 * @param {Object} mod An event-target module
 * @param {Function} defineAttributes Installs on<type> on a prototype
 * @return {Function} The class
 */
function makeTarget(mod, defineAttributes) {
  class FakeSocket extends EventEmitter {
    constructor() {
      super();
      // What the close wrapper reads to compute wasClean.
      this._closeFrameReceived = false;
      this._closeFrameSent = false;
    }
  }
  defineAttributes(FakeSocket.prototype);
  FakeSocket.prototype.addEventListener = mod.EventTarget.addEventListener;
  FakeSocket.prototype.removeEventListener =
    mod.EventTarget.removeEventListener;
  return FakeSocket;
}

const implementations = [
  {
    name: 'ws-native',
    mod: ours,
    defineAttributes: ours.defineEventHandlerAttributes
  }
];

const reference = loadReference();
if (reference) {
  implementations.push({
    name: 'ws (reference)',
    mod: reference.mod,
    // ws defines the attributes inline in websocket.js; copying its
    // descriptors gives the reference behaviour on our stand-in class.
    defineAttributes(proto) {
      for (const type of ['open', 'error', 'close', 'message']) {
        const desc = Object.getOwnPropertyDescriptor(
          reference.WebSocket.prototype,
          `on${type}`
        );
        Object.defineProperty(proto, `on${type}`, desc);
      }
    }
  });
}

for (const { name, mod, defineAttributes } of implementations) {
  const { CloseEvent, ErrorEvent, Event, MessageEvent } = mod;

  describe(`event-target: ${name}`, function () {
    let Target;
    let t;

    beforeEach(function () {
      Target = makeTarget(mod, defineAttributes);
      t = new Target();
    });

    describe('event classes', function () {
      it('defaults only undefined options and exposes enumerable getters',
        function () {
          const close = new CloseEvent('close');
          assert.equal(close.type, 'close');
          assert.equal(close.target, null);
          assert.equal(close.code, 0);
          assert.equal(close.reason, '');
          assert.equal(close.wasClean, false);
          assert.ok(close instanceof Event);

          const nulls = new CloseEvent('close', {
            code: null, reason: null, wasClean: null
          });
          assert.equal(nulls.code, null);
          assert.equal(nulls.reason, null);
          assert.equal(nulls.wasClean, null);

          const err = new ErrorEvent('error');
          assert.equal(err.error, null);
          assert.equal(err.message, '');

          const msg = new MessageEvent('message');
          assert.equal(msg.data, null);
          assert.equal(new MessageEvent('message', { data: 0 }).data, 0);

          // for...in walks the enumerable prototype accessors.
          const keys = [];
          for (const key in new CloseEvent('close')) keys.push(key);
          assert.deepEqual(keys.sort(),
            ['code', 'reason', 'target', 'type', 'wasClean']);
          assert.deepEqual(Object.keys(new Event('x')), []);
        });

      it('has read-only attributes', function () {
        const e = new MessageEvent('message', { data: 'a' });
        assert.throws(() => {
          e.data = 'b';
        }, TypeError);
        assert.equal(e.data, 'a');
      });
    });

    describe('addEventListener', function () {
      it('wraps message arguments in a MessageEvent', function () {
        const seen = [];
        t.addEventListener('message', function (event) {
          seen.push({ self: this, event });
        });
        const bin = Buffer.from([1, 2, 3]);
        t.emit('message', Buffer.from('héllo'), false);
        t.emit('message', bin, true);

        assert.equal(seen.length, 2);
        assert.ok(seen[0].event instanceof MessageEvent);
        assert.equal(seen[0].event.type, 'message');
        assert.equal(seen[0].event.data, 'héllo');
        assert.equal(seen[0].event.target, t);
        assert.equal(seen[0].self, t);
        // Binary data is handed over as is, not copied or converted.
        assert.equal(seen[1].event.data, bin);
      });

      it('wraps close arguments in a CloseEvent with wasClean', function () {
        const seen = [];
        t.addEventListener('close', (event) => seen.push(event));

        t.emit('close', 1006, Buffer.alloc(0));
        t._closeFrameReceived = true;
        t.emit('close', 1000, Buffer.from('bye'));
        t._closeFrameSent = true;
        t.emit('close', 4000, Buffer.from('done'));

        assert.ok(seen[0] instanceof CloseEvent);
        assert.deepEqual(
          seen.map((e) => [e.type, e.code, e.reason, e.wasClean, e.target]),
          [
            ['close', 1006, '', false, t],
            ['close', 1000, 'bye', false, t],
            ['close', 4000, 'done', true, t]
          ]
        );
      });

      it('wraps errors in an ErrorEvent and open in a plain Event',
        function () {
          const seen = [];
          t.addEventListener('error', (event) => seen.push(event));
          t.addEventListener('open', (event) => seen.push(event));

          const error = new RangeError('Invalid WebSocket frame');
          t.emit('error', error);
          t.emit('open');

          assert.ok(seen[0] instanceof ErrorEvent);
          assert.equal(seen[0].type, 'error');
          assert.equal(seen[0].error, error);
          assert.equal(seen[0].message, 'Invalid WebSocket frame');
          assert.equal(seen[0].target, t);

          assert.equal(Object.getPrototypeOf(seen[1]), Event.prototype);
          assert.equal(seen[1].type, 'open');
          assert.equal(seen[1].target, t);
        });

      it('calls handleEvent on listener objects with the object as this',
        function () {
          const seen = [];
          const listener = {
            handleEvent(event) {
              seen.push([this, event.type, event.target]);
            }
          };
          t.addEventListener('open', listener);
          t.emit('open');
          assert.deepEqual(seen, [[listener, 'open', t]]);
        });

      it('throws at dispatch for an object without handleEvent', function () {
        t.addEventListener('open', {});
        assert.throws(() => t.emit('open'), TypeError);
      });

      it('does not add the same listener twice', function () {
        let calls = 0;
        const f = () => calls++;
        t.addEventListener('open', f);
        t.addEventListener('open', f);
        t.addEventListener('open', f, { once: true });
        assert.equal(t.listenerCount('open'), 1);
        t.emit('open');
        t.emit('open');
        assert.equal(calls, 2);
      });

      it('removes a once listener after its first call', function () {
        let calls = 0;
        const f = () => calls++;
        t.addEventListener('message', f, { once: true });
        // A once listener still counts for the duplicate check.
        t.addEventListener('message', f);
        t.emit('message', Buffer.from('a'), false);
        t.emit('message', Buffer.from('b'), false);
        assert.equal(calls, 1);
        assert.equal(t.listenerCount('message'), 0);
      });

      it('ignores unsupported event types', function () {
        t.addEventListener('ping', () => {});
        t.addEventListener('foo', () => {});
        assert.equal(t.listenerCount('ping'), 0);
        assert.equal(t.listenerCount('foo'), 0);
      });

      it('is not confused by plain EventEmitter listeners', function () {
        const order = [];
        const f = (arg) => order.push(arg instanceof Event ? 'event' : 'raw');
        t.on('open', f);
        t.addEventListener('open', f);
        t.emit('open');
        assert.deepEqual(order, ['raw', 'event']);
      });
    });

    describe('removeEventListener', function () {
      it('removes only listeners added with addEventListener', function () {
        const calls = [];
        const f = (e) => calls.push(e instanceof Event ? 'event' : 'raw');
        t.on('open', f);
        t.addEventListener('open', f);
        t.onopen = f;

        t.removeEventListener('open', f);
        t.emit('open');
        // The raw listener and the attribute survive.
        assert.deepEqual(calls, ['raw', 'event']);
        assert.equal(t.onopen, f);

        // Nothing more to remove: a second call is a no-op.
        t.removeEventListener('open', f);
        assert.equal(t.listenerCount('open'), 2);
      });

      it('removes listener objects and once listeners', function () {
        const obj = { handleEvent() {} };
        const g = () => {};
        t.addEventListener('error', obj);
        t.addEventListener('error', g, { once: true });
        t.removeEventListener('error', obj);
        t.removeEventListener('error', g);
        assert.equal(t.listenerCount('error'), 0);
      });

      it('ignores unknown handlers', function () {
        t.addEventListener('close', () => {});
        t.removeEventListener('close', () => {});
        t.removeEventListener('nope', () => {});
        assert.equal(t.listenerCount('close'), 1);
      });
    });

    describe('on<type> attributes', function () {
      it('are enumerable accessors on the prototype', function () {
        for (const type of ['open', 'error', 'close', 'message']) {
          const desc =
            Object.getOwnPropertyDescriptor(Target.prototype, `on${type}`);
          assert.equal(typeof desc.get, 'function');
          assert.equal(typeof desc.set, 'function');
          assert.equal(desc.enumerable, true);
          assert.equal(desc.configurable, true);
          assert.equal(t[`on${type}`], null);
        }
      });

      it('deliver events and replace the previous handler', function () {
        const seen = [];
        const first = (e) => seen.push(['first', e.data]);
        const second = function (e) {
          seen.push(['second', e.data, this === t]);
        };

        t.onmessage = first;
        assert.equal(t.onmessage, first);
        t.emit('message', Buffer.from('1'), false);

        t.onmessage = second;
        assert.equal(t.onmessage, second);
        assert.equal(t.listenerCount('message'), 1);
        t.emit('message', Buffer.from('2'), false);

        assert.deepEqual(seen, [['first', '1'], ['second', '2', true]]);
      });

      it('are cleared by setting a non-function', function () {
        for (const value of [null, undefined, 42, 'f', { handleEvent() {} }]) {
          t.onclose = () => {};
          t.onclose = value;
          assert.equal(t.onclose, null);
          assert.equal(t.listenerCount('close'), 0);
        }
      });

      it('return only the handler set through the attribute', function () {
        const f = () => {};
        t.addEventListener('error', f);
        t.on('error', f);
        assert.equal(t.onerror, null);

        // The attribute may hold a handler also added with
        // addEventListener; both then run.
        let calls = 0;
        const g = () => calls++;
        t.addEventListener('open', g);
        t.onopen = g;
        assert.equal(t.onopen, g);
        t.emit('open');
        assert.equal(calls, 2);

        // Clearing the attribute leaves the addEventListener one in place.
        t.onopen = null;
        t.emit('open');
        assert.equal(calls, 3);
      });

      it('are independent per type and per instance', function () {
        const other = new Target();
        const f = () => {};
        t.onopen = f;
        assert.equal(t.onmessage, null);
        assert.equal(other.onopen, null);
      });

      it('read back null after removeAllListeners', function () {
        t.onmessage = () => {};
        t.removeAllListeners('message');
        assert.equal(t.onmessage, null);
      });
    });
  });
}

describe('event-target: module shape', function () {
  it('exports the names ws exports, plus defineEventHandlerAttributes',
    function () {
      const expected = reference
        ? Object.keys(reference.mod)
        : ['CloseEvent', 'ErrorEvent', 'Event', 'EventTarget', 'MessageEvent'];
      assert.deepEqual(
        Object.keys(ours).filter((k) => k !== 'defineEventHandlerAttributes')
          .sort(),
        [...expected].sort()
      );
      assert.equal(typeof ours.defineEventHandlerAttributes, 'function');
      assert.deepEqual(Object.keys(ours.EventTarget),
        ['addEventListener', 'removeEventListener']);
    });
});
