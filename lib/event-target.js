'use strict';

// The WHATWG-style event layer ws 8 puts on top of EventEmitter: event
// classes, the addEventListener/removeEventListener mixin and the
// on<type> attributes. WebSocket keeps emitting plain EventEmitter events
// ('message' (data, isBinary), 'close' (code, reason), 'error' (err),
// 'open'); listeners registered here are wrappers that build the event
// object at dispatch time, so EventEmitter users pay nothing for it.

// Hidden state lives behind module-private symbols so that user code can
// neither read nor forge it (for example, no caller can register a
// listener that the on<type> attributes would mistake for their own).
const kCode = Symbol('kCode');
const kData = Symbol('kData');
const kError = Symbol('kError');
const kMessage = Symbol('kMessage');
const kReason = Symbol('kReason');
const kTarget = Symbol('kTarget');
const kType = Symbol('kType');
const kWasClean = Symbol('kWasClean');

// Marks a wrapper as the one installed by an on<type> attribute setter.
const kForOnEventAttribute = Symbol('kIsForOnEventAttribute');
// Points from a wrapper back to the handler the user gave us.
const kListener = Symbol('kListener');

/**
 * Makes the named accessors of a prototype enumerable, as ws does, so that
 * event objects show their fields when logged or spread with for...in.
 *
 * @param {Object} proto The prototype holding the getters
 * @param {string[]} names The accessor names
 */
function makeEnumerable(proto, names) {
  for (const name of names) {
    Object.defineProperty(proto, name, { enumerable: true });
  }
}

/**
 * A minimal DOM-like event.
 */
class Event {
  /**
   * @param {string} type The event name
   */
  constructor(type) {
    // The target is set by the dispatching wrapper, never by the caller,
    // which is why there is no constructor option for it.
    this[kTarget] = null;
    this[kType] = type;
  }

  /**
   * The object the event was dispatched on (the websocket), or null.
   *
   * @type {*}
   */
  get target() {
    return this[kTarget];
  }

  /**
   * The event name.
   *
   * @type {string}
   */
  get type() {
    return this[kType];
  }
}

makeEnumerable(Event.prototype, ['target', 'type']);

/**
 * The event dispatched when the connection closes.
 *
 * @extends Event
 */
class CloseEvent extends Event {
  /**
   * @param {string} type The event name
   * @param {Object} [options]
   * @param {number} [options.code=0] The close status code
   * @param {string} [options.reason=''] The close reason
   * @param {boolean} [options.wasClean=false] Whether the closing handshake
   *     completed in both directions
   */
  constructor(type, options = {}) {
    super(type);
    // Only `undefined` falls back to the default (not null or other falsy
    // values), matching WebIDL dictionary defaults and ws.
    this[kCode] = options.code === undefined ? 0 : options.code;
    this[kReason] = options.reason === undefined ? '' : options.reason;
    this[kWasClean] = options.wasClean === undefined ? false : options.wasClean;
  }

  /**
   * @type {number}
   */
  get code() {
    return this[kCode];
  }

  /**
   * @type {string}
   */
  get reason() {
    return this[kReason];
  }

  /**
   * @type {boolean}
   */
  get wasClean() {
    return this[kWasClean];
  }
}

makeEnumerable(CloseEvent.prototype, ['code', 'reason', 'wasClean']);

/**
 * The event dispatched when an error occurs.
 *
 * @extends Event
 */
class ErrorEvent extends Event {
  /**
   * @param {string} type The event name
   * @param {Object} [options]
   * @param {*} [options.error=null] The error that caused the event
   * @param {string} [options.message=''] The error message
   */
  constructor(type, options = {}) {
    super(type);
    this[kError] = options.error === undefined ? null : options.error;
    this[kMessage] = options.message === undefined ? '' : options.message;
  }

  /**
   * @type {*}
   */
  get error() {
    return this[kError];
  }

  /**
   * @type {string}
   */
  get message() {
    return this[kMessage];
  }
}

makeEnumerable(ErrorEvent.prototype, ['error', 'message']);

/**
 * The event dispatched when a message arrives.
 *
 * @extends Event
 */
class MessageEvent extends Event {
  /**
   * @param {string} type The event name
   * @param {Object} [options]
   * @param {*} [options.data=null] The message payload
   */
  constructor(type, options = {}) {
    super(type);
    this[kData] = options.data === undefined ? null : options.data;
  }

  /**
   * @type {*}
   */
  get data() {
    return this[kData];
  }
}

makeEnumerable(MessageEvent.prototype, ['data']);

// For each supported event type, how to turn the EventEmitter arguments
// WebSocket emits into the DOM-style event. `this` is the websocket. Types
// missing here are silently ignored by addEventListener, as in ws.
const eventBuilders = {
  /**
   * @param {(Buffer|ArrayBuffer|Buffer[]|Blob)} data The payload
   * @param {boolean} isBinary Whether it came in binary frames
   * @return {MessageEvent}
   */
  message(data, isBinary) {
    // Text arrives as a Buffer too; DOM listeners expect a string.
    return new MessageEvent('message', {
      data: isBinary ? data : data.toString()
    });
  },

  /**
   * @param {number} code The close code
   * @param {Buffer} reason The close reason bytes
   * @return {CloseEvent}
   */
  close(code, reason) {
    return new CloseEvent('close', {
      code,
      reason: reason.toString(),
      // Clean means the close handshake finished both ways; the websocket
      // tracks each direction separately.
      wasClean: this._closeFrameReceived && this._closeFrameSent
    });
  },

  /**
   * @param {Error} error The error
   * @return {ErrorEvent}
   */
  error(error) {
    return new ErrorEvent('error', { error, message: error.message });
  },

  /**
   * @return {Event}
   */
  open() {
    return new Event('open');
  }
};

/**
 * Invokes a DOM-style listener, which may be a function or an object with a
 * `handleEvent` method (the EventListener interface).
 *
 * @param {(Function|Object)} handler The user's listener
 * @param {*} thisArg `this` for function listeners (the websocket)
 * @param {Event} event The event to deliver
 */
function invokeHandler(handler, thisArg, event) {
  if (typeof handler === 'object' && handler.handleEvent) {
    // Per the DOM, handleEvent is called with the listener object as this.
    handler.handleEvent.call(handler, event);
  } else {
    handler.call(thisArg, event);
  }
}

/**
 * The EventTarget methods, mixed into an EventEmitter subclass prototype.
 * Not meant to be used on its own.
 *
 * @mixin
 */
const EventTarget = {
  /**
   * Registers a DOM-style listener.
   *
   * @param {string} type 'open', 'message', 'close' or 'error'; anything
   *     else is ignored
   * @param {(Function|Object)} handler A function or an object with a
   *     `handleEvent` method
   * @param {Object} [options]
   * @param {boolean} [options.once=false] Remove the listener after its
   *     first call
   * @public
   */
  addEventListener(type, handler, options = {}) {
    // The DOM never registers the same listener twice for a type. The
    // listener owned by an on<type> attribute does not count, and the
    // attribute itself may always install its handler, so `ws.onmessage = f`
    // and `ws.addEventListener('message', f)` coexist. `options` is read
    // per listener, and only after the type check below, so odd arguments
    // (e.g. null options) fail or pass exactly where they do in ws.
    for (const listener of this.listeners(type)) {
      if (
        !options[kForOnEventAttribute] &&
        !listener[kForOnEventAttribute] &&
        listener[kListener] === handler
      ) {
        return;
      }
    }

    const build = Object.prototype.hasOwnProperty.call(eventBuilders, type)
      ? eventBuilders[type]
      : undefined;
    if (build === undefined) return;

    const forAttribute = !!options[kForOnEventAttribute];

    /**
     * Receives the EventEmitter arguments and forwards a DOM-style event.
     *
     * @param {...*} args What WebSocket emitted
     */
    const wrapper = function (...args) {
      const event = build.apply(this, args);
      event[kTarget] = this;
      invokeHandler(handler, this, event);
    };

    wrapper[kForOnEventAttribute] = forAttribute;
    wrapper[kListener] = handler;

    if (options.once) {
      this.once(type, wrapper);
    } else {
      this.on(type, wrapper);
    }
  },

  /**
   * Removes a listener added with addEventListener. Plain EventEmitter
   * listeners and the on<type> attribute's listener are left alone.
   *
   * @param {string} type The event type
   * @param {(Function|Object)} handler The listener to remove
   * @public
   */
  removeEventListener(type, handler) {
    for (const listener of this.listeners(type)) {
      if (listener[kListener] === handler && !listener[kForOnEventAttribute]) {
        this.removeListener(type, listener);
        // A handler can be registered only once per type, so stop here.
        return;
      }
    }
  }
};

/**
 * Defines the onopen, onerror, onclose and onmessage attributes on a
 * prototype whose instances are EventEmitters with the EventTarget mixin.
 * Each attribute owns at most one listener, kept apart from those added by
 * addEventListener so that neither API can remove the other's.
 *
 * @param {Object} proto The prototype, e.g. WebSocket.prototype
 */
function defineEventHandlerAttributes(proto) {
  for (const type of ['open', 'error', 'close', 'message']) {
    // configurable: ws's class declares placeholder getters that this
    // replaces, which leaves the final descriptors configurable.
    Object.defineProperty(proto, `on${type}`, {
      configurable: true,
      enumerable: true,

      /**
       * @return {(Function|null)} The handler set through this attribute
       */
      get() {
        for (const listener of this.listeners(type)) {
          if (listener[kForOnEventAttribute]) return listener[kListener];
        }
        return null;
      },

      /**
       * Replaces the attribute's handler; a non-function just clears it.
       *
       * @param {*} handler The new handler
       */
      set(handler) {
        for (const listener of this.listeners(type)) {
          if (listener[kForOnEventAttribute]) {
            this.removeListener(type, listener);
            break;
          }
        }

        if (typeof handler !== 'function') return;

        this.addEventListener(type, handler, { [kForOnEventAttribute]: true });
      }
    });
  }
}

module.exports = {
  CloseEvent,
  ErrorEvent,
  Event,
  EventTarget,
  MessageEvent,
  defineEventHandlerAttributes
};
