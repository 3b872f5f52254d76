// Type definitions for ws-native.
//
// The shape follows @types/ws 8.18 (a class WebSocket merged with a namespace,
// `export =`), so that code written against @types/ws type-checks unchanged
// with 'ws-native', and a ws-native WebSocket or WebSocketServer can be given
// to a library typed against @types/ws (graphql-ws's useServer, say). What
// ws-native adds beyond ws is marked "ws-native only" below. The ESM entry's
// types (wrapper.d.mts) re-export these declarations.

/// <reference types="node" />

import { EventEmitter } from "events";
import {
    Agent,
    ClientRequest,
    ClientRequestArgs,
    IncomingMessage,
    OutgoingHttpHeaders,
    Server as HTTPServer,
} from "http";
import { Server as HTTPSServer } from "https";
import { createConnection } from "net";
import { Duplex, DuplexOptions } from "stream";
import { SecureContextOptions } from "tls";
import { URL } from "url";
import { ZlibOptions } from "zlib";

/**
 * What send() accepts: a string, binary data, or anything Buffer.from()
 * takes (ws converts it the same way; a number is sent as its decimal text).
 */
type SendData =
    | string
    | number
    | Blob
    | ArrayBuffer
    | SharedArrayBuffer
    | ArrayBufferView
    | readonly unknown[]
    | { valueOf(): ArrayBuffer | SharedArrayBuffer | Uint8Array | readonly number[] | string }
    | { [Symbol.toPrimitive](hint: string): string };

/** What publish() accepts: as send(), but no Blob. */
type PublishData = Exclude<SendData, Blob>;

/** The binaryType values @types/ws knows ('blob' is accepted too: see binaryType). */
type BinaryType = "nodebuffer" | "arraybuffer" | "fragments";

/** A WebSocket: a client (`new WebSocket(url)`) or a server's connection. */
declare class WebSocket extends EventEmitter {
    /** The connection is not yet open. */
    static readonly CONNECTING: 0;
    /** The connection is open and ready to communicate. */
    static readonly OPEN: 1;
    /** The connection is closing. */
    static readonly CLOSING: 2;
    /** The connection is closed. */
    static readonly CLOSED: 3;

    /** The connection is not yet open. */
    readonly CONNECTING: 0;
    /** The connection is open and ready to communicate. */
    readonly OPEN: 1;
    /** The connection is closing. */
    readonly CLOSING: 2;
    /** The connection is closed. */
    readonly CLOSED: 3;

    /**
     * How binary messages are given to 'message' listeners. Assigning 'blob'
     * works too (as in ws 8.18+; the data is then a Blob); it is left out of
     * the type read back so that a WebSocket stays assignable to @types/ws's.
     */
    get binaryType(): BinaryType;
    set binaryType(type: BinaryType | "blob");
    /** Bytes accepted by send() and not yet written to the socket. */
    readonly bufferedAmount: number;
    /** The negotiated extensions (for example "permessage-deflate"). */
    readonly extensions: string;
    /** Whether the socket is paused (see pause()). */
    readonly isPaused: boolean;
    /** The subprotocol the server chose, or "". */
    readonly protocol: string;
    /** The state of the connection. */
    readonly readyState:
        | typeof WebSocket.CONNECTING
        | typeof WebSocket.OPEN
        | typeof WebSocket.CLOSING
        | typeof WebSocket.CLOSED;
    /** The URL of a client; undefined at run time for a server's connection. */
    readonly url: string;

    /**
     * ws-native only: true once send() has returned false, until 'drain'
     * (as Writable#writableNeedDrain).
     */
    readonly writableNeedDrain: boolean;

    /**
     * ws-native only: the topics this socket is subscribed to, as a new
     * array (always empty for a client).
     */
    readonly topics: string[];

    onopen: ((event: WebSocket.Event) => void) | null;
    onerror: ((event: WebSocket.ErrorEvent) => void) | null;
    onclose: ((event: WebSocket.CloseEvent) => void) | null;
    onmessage: ((event: WebSocket.MessageEvent) => void) | null;

    /** A server's connection (a WebSocketServer makes these). */
    constructor(address: null);
    /** A client connecting to `address` (ws:, wss:, ws+unix:, http:, https:). */
    constructor(address: string | URL, options?: WebSocket.ClientOptions | ClientRequestArgs);
    constructor(
        address: string | URL,
        protocols?: string | string[],
        options?: WebSocket.ClientOptions | ClientRequestArgs,
    );

    /** Starts the closing handshake. */
    close(code?: number, data?: string | Buffer): void;
    /** Sends a ping (at most 125 bytes of data). */
    ping(data?: any, mask?: boolean, cb?: (err: Error) => void): void;
    /** Sends a pong (at most 125 bytes of data). */
    pong(data?: any, mask?: boolean, cb?: (err: Error) => void): void;
    /**
     * Sends a message. `cb` is called once it is written (or with the error).
     *
     * ws-native: returns false once bufferedAmount has passed the high-water
     * mark (the highWaterMark option), as Writable#write() does; wait for
     * 'drain' before sending more. Code that ignores the result (as ws's, whose
     * send returns nothing) is unaffected.
     */
    send(data: SendData, cb?: (err?: Error) => void): boolean;
    send(data: SendData, options: WebSocket.SendOptions, cb?: (err?: Error) => void): boolean;
    /** Closes the connection at once, without a closing handshake. */
    terminate(): void;
    /**
     * Stops emitting 'message', 'ping' and 'pong' (and reading from the
     * socket). A no-op while CONNECTING or once CLOSED.
     */
    pause(): void;
    /** Resumes a paused socket. A no-op while CONNECTING or once CLOSED. */
    resume(): void;

    /**
     * ws-native only, for the sockets a WebSocketServer made (a client
     * throws): subscribes to `topic`, so that publish() to it reaches this
     * socket. Subscribing twice is a no-op; a closed socket leaves its topics
     * by itself.
     */
    subscribe(topic: string): void;
    /** ws-native only: leaves `topic` (a no-op if not subscribed; a client throws). */
    unsubscribe(topic: string): void;
    /** ws-native only: whether this socket is subscribed to `topic`. */
    isSubscribed(topic: string): boolean;
    /**
     * ws-native only (a client throws): sends `data` once to every subscriber
     * of `topic` but this socket (the frame is built once). Returns the
     * number of open subscribers it was queued to; one past the server's
     * maxBackpressure is then skipped and gets a 'dropped' event.
     */
    publish(topic: string, data: PublishData, options?: WebSocket.PublishOptions): number;

    // HTML5 WebSocket style events
    addEventListener<K extends keyof WebSocket.WebSocketEventMap>(
        type: K,
        listener:
            | ((event: WebSocket.WebSocketEventMap[K]) => void)
            | { handleEvent(event: WebSocket.WebSocketEventMap[K]): void },
        options?: WebSocket.EventListenerOptions,
    ): void;
    removeEventListener<K extends keyof WebSocket.WebSocketEventMap>(
        type: K,
        listener:
            | ((event: WebSocket.WebSocketEventMap[K]) => void)
            | { handleEvent(event: WebSocket.WebSocketEventMap[K]): void },
    ): void;

    // EventEmitter events, typed by WebSocket.WebSocketEvents.
    on<K extends keyof WebSocket.WebSocketEvents>(
        event: K,
        listener: (this: WebSocket, ...args: WebSocket.WebSocketEvents[K]) => void,
    ): this;
    on(event: string | symbol, listener: (this: WebSocket, ...args: any[]) => void): this;
    once<K extends keyof WebSocket.WebSocketEvents>(
        event: K,
        listener: (this: WebSocket, ...args: WebSocket.WebSocketEvents[K]) => void,
    ): this;
    once(event: string | symbol, listener: (this: WebSocket, ...args: any[]) => void): this;
    off<K extends keyof WebSocket.WebSocketEvents>(
        event: K,
        listener: (this: WebSocket, ...args: WebSocket.WebSocketEvents[K]) => void,
    ): this;
    off(event: string | symbol, listener: (this: WebSocket, ...args: any[]) => void): this;
    addListener<K extends keyof WebSocket.WebSocketEvents>(
        event: K,
        listener: (...args: WebSocket.WebSocketEvents[K]) => void,
    ): this;
    addListener(event: string | symbol, listener: (...args: any[]) => void): this;
    removeListener<K extends keyof WebSocket.WebSocketEvents>(
        event: K,
        listener: (...args: WebSocket.WebSocketEvents[K]) => void,
    ): this;
    removeListener(event: string | symbol, listener: (...args: any[]) => void): this;
}

// The class under another name, for the namespace below, where `WebSocket`
// names the namespace's own member.
declare const WebSocketClass: typeof WebSocket;
interface WebSocketClass extends WebSocket {}

declare namespace WebSocket {
    /** A received message: a Buffer, or per binaryType an ArrayBuffer or Buffer[]. */
    type RawData = Buffer | ArrayBuffer | Buffer[];

    /** A message as MessageEvent#data gives it (text messages are strings). */
    type Data = string | Buffer | ArrayBuffer | Buffer[];

    /** Certificate and key data. */
    type CertMeta = string | string[] | Buffer | Buffer[];

    /** What verifyClient is given about a handshake. */
    interface VerifyClientInfo<Request extends IncomingMessage = IncomingMessage> {
        /** The Origin (or Sec-WebSocket-Origin) header. */
        origin: string;
        /** Whether the connection is TLS. */
        secure: boolean;
        req: Request;
    }

    /** A synchronous verifyClient: true accepts the handshake, false answers 401. */
    type VerifyClientCallbackSync<Request extends IncomingMessage = IncomingMessage> = (
        info: VerifyClientInfo<Request>,
    ) => boolean;

    /** An asynchronous verifyClient: calls back with the verdict (and the refusal's status, message, headers). */
    type VerifyClientCallbackAsync<Request extends IncomingMessage = IncomingMessage> = (
        info: VerifyClientInfo<Request>,
        callback: (res: boolean, code?: number, message?: string, headers?: OutgoingHttpHeaders) => void,
    ) => void;

    /**
     * Called with the handshake request before it is sent; it must call
     * request.end() itself.
     */
    type FinishRequestCallback = (request: ClientRequest, websocket: WebSocket) => void;

    /** send()'s options. */
    interface SendOptions {
        /** Whether to mask the data (clients always mask). */
        mask?: boolean | undefined;
        /** Whether the data is binary (default: not a string). */
        binary?: boolean | undefined;
        /** Whether to compress it when permessage-deflate is on (default true). */
        compress?: boolean | undefined;
        /** Whether this is the last fragment of the message (default true). */
        fin?: boolean | undefined;
    }

    /** ws-native only: publish()'s options, as send() takes them. */
    interface PublishOptions {
        /** Whether the data is binary (default: not a string). */
        binary?: boolean | undefined;
        /** Whether to compress it for subscribers that negotiated permessage-deflate (default true). */
        compress?: boolean | undefined;
    }

    /** ws-native only: options of both clients and servers. */
    interface NativeOptions {
        /**
         * ws 8.23's limit (not in @types/ws 8.18): a ping that finds this many
         * automatic pongs unwritten terminates the connection. Default 60; 0
         * turns it off.
         */
        maxPendingAutoPongs?: number | undefined;
        /**
         * ws 8.23's option (not in @types/ws 8.18): ms to wait for the closing
         * handshake after close() before the socket is destroyed. Default 30000.
         */
        closeTimeout?: number | undefined;
        /**
         * ws-native only: once more than this many bytes wait to be written,
         * the next send() fails the connection (error WSN_ERR_SEND_BUFFER_FULL,
         * close 1006). Default 64 MiB; Infinity turns it off.
         */
        maxBufferedAmount?: number | undefined;
        /**
         * ws-native only: send() returns false once bufferedAmount reaches this
         * (bytes), and 'drain' follows once all is written. Default 65536.
         */
        highWaterMark?: number | undefined;
        /**
         * ws-native only: seconds without data from the peer before the
         * connection is closed (1006); pings are sent before then unless
         * sendPings is false. 0 or absent: off.
         */
        idleTimeout?: number | undefined;
        /** ws-native only: whether idleTimeout sends pings to keep a live peer. Default true. */
        sendPings?: boolean | undefined;
    }

    /** A client's options (with Node's TLS options for wss://). */
    interface ClientOptions extends SecureContextOptions, NativeOptions {
        protocol?: string | undefined;
        followRedirects?: boolean | undefined;
        /** Ignored by ws-native (masks come from OpenSSL's RAND_bytes); typed for @types/ws code. */
        generateMask?(mask: Buffer): void;
        handshakeTimeout?: number | undefined;
        maxRedirects?: number | undefined;
        perMessageDeflate?: boolean | PerMessageDeflateOptions | undefined;
        localAddress?: string | undefined;
        protocolVersion?: number | undefined;
        headers?: { [key: string]: string } | undefined;
        origin?: string | undefined;
        agent?: Agent | undefined;
        host?: string | undefined;
        family?: number | undefined;
        checkServerIdentity?(servername: string, cert: CertMeta): boolean;
        rejectUnauthorized?: boolean | undefined;
        allowSynchronousEvents?: boolean | undefined;
        autoPong?: boolean | undefined;
        maxPayload?: number | undefined;
        maxBufferedChunks?: number | undefined;
        maxFragments?: number | undefined;
        skipUTF8Validation?: boolean | undefined;
        createConnection?: typeof createConnection | undefined;
        finishRequest?: FinishRequestCallback | undefined;
    }

    /** permessage-deflate's parameters and zlib options. */
    interface PerMessageDeflateOptions {
        serverNoContextTakeover?: boolean | undefined;
        clientNoContextTakeover?: boolean | undefined;
        serverMaxWindowBits?: number | undefined;
        clientMaxWindowBits?: number | undefined;
        zlibDeflateOptions?:
            | {
                flush?: number | undefined;
                finishFlush?: number | undefined;
                chunkSize?: number | undefined;
                windowBits?: number | undefined;
                level?: number | undefined;
                memLevel?: number | undefined;
                strategy?: number | undefined;
                dictionary?: Buffer | Buffer[] | DataView | undefined;
                info?: boolean | undefined;
            }
            | undefined;
        zlibInflateOptions?: ZlibOptions | undefined;
        /** Messages smaller than this (bytes) are not compressed. */
        threshold?: number | undefined;
        concurrencyLimit?: number | undefined;
    }

    /**
     * ws's WebSocket as an event's `target` and createWebSocketStream()'s
     * argument see it: the class without ws-native's additions. TypeScript
     * checks a function-typed property such as `onopen` in both directions,
     * so a type that names ws-native's class there would make a ws-native
     * WebSocket (and WebSocketServer) unassignable to @types/ws's, which
     * libraries typed against @types/ws need (graphql-ws's useServer).
     */
    interface WebSocketBase extends EventEmitter {
        readonly CONNECTING: 0;
        readonly OPEN: 1;
        readonly CLOSING: 2;
        readonly CLOSED: 3;
        readonly binaryType: BinaryType;
        readonly bufferedAmount: number;
        readonly extensions: string;
        readonly isPaused: boolean;
        readonly protocol: string;
        readonly readyState: 0 | 1 | 2 | 3;
        readonly url: string;
        close(code?: number, data?: string | Buffer): void;
        ping(data?: any, mask?: boolean, cb?: (err: Error) => void): void;
        pong(data?: any, mask?: boolean, cb?: (err: Error) => void): void;
        send(data: SendData, cb?: (err?: Error) => void): boolean | void;
        send(data: SendData, options: SendOptions, cb?: (err?: Error) => void): boolean | void;
        terminate(): void;
        pause(): void;
        resume(): void;
    }

    /** The event of 'open' (event-target style). */
    interface Event {
        type: string;
        target: WebSocketBase;
    }

    /** The event of 'error' (event-target style). */
    interface ErrorEvent {
        error: any;
        message: string;
        type: string;
        target: WebSocketBase;
    }

    /** The event of 'close' (event-target style). */
    interface CloseEvent {
        wasClean: boolean;
        code: number;
        reason: string;
        type: string;
        target: WebSocketBase;
    }

    /** The event of 'message' (event-target style). */
    interface MessageEvent {
        data: Data;
        type: string;
        target: WebSocketBase;
    }

    /** addEventListener()'s events. */
    interface WebSocketEventMap {
        open: Event;
        error: ErrorEvent;
        close: CloseEvent;
        message: MessageEvent;
    }

    interface EventListenerOptions {
        once?: boolean | undefined;
    }

    /** A WebSocket's EventEmitter events and their listeners' arguments. */
    interface WebSocketEvents {
        close: [code: number, reason: Buffer];
        error: [error: Error];
        upgrade: [request: IncomingMessage];
        message: [data: RawData, isBinary: boolean];
        open: [];
        ping: [data: Buffer];
        pong: [data: Buffer];
        redirect: [url: string, request: ClientRequest];
        "unexpected-response": [request: ClientRequest, response: IncomingMessage];
        /** ws-native only: all that was buffered is written, after send() returned false. */
        drain: [];
        /**
         * ws-native only: a message published to `topic` was not sent to this
         * socket because its buffered bytes were past maxBackpressure.
         */
        dropped: [data: Buffer, isBinary: boolean, topic: string];
    }

    /**
     * What a server's `WebSocket` option (and its type parameter) takes: a
     * class the server can instantiate for each connection, normally
     * WebSocket or a subclass. Kept structural rather than `typeof WebSocket`:
     * a generic parameter constrained to ws-native's class would make a
     * ws-native WebSocketServer unassignable to @types/ws's (whose
     * WebSocket lacks ws-native's additions), and libraries typed against
     * @types/ws take one (graphql-ws's useServer).
     */
    type WebSocketConstructor = new (address: null, ...rest: any[]) => EventEmitter & {
        readonly readyState: number;
        close(code?: number, data?: string | Buffer): void;
        terminate(): void;
    };

    /** ws-native only: the `tls` option of a `{ port }` server (TLS in C). */
    type ServerTlsOptions = Pick<SecureContextOptions, "key" | "cert" | "ca" | "passphrase" | "pfx">;

    /** A WebSocketServer's options: one of port, server or noServer. */
    interface ServerOptions<
        U extends WebSocketConstructor = typeof WebSocketClass,
        V extends typeof IncomingMessage = typeof IncomingMessage,
    > extends NativeOptions {
        host?: string | undefined;
        port?: number | undefined;
        backlog?: number | undefined;
        server?: HTTPServer<V> | HTTPSServer<V> | undefined;
        verifyClient?:
            | VerifyClientCallbackAsync<InstanceType<V>>
            | VerifyClientCallbackSync<InstanceType<V>>
            | undefined;
        handleProtocols?: (protocols: Set<string>, request: InstanceType<V>) => string | false;
        path?: string | undefined;
        noServer?: boolean | undefined;
        allowSynchronousEvents?: boolean | undefined;
        autoPong?: boolean | undefined;
        clientTracking?: boolean | undefined;
        perMessageDeflate?: boolean | PerMessageDeflateOptions | undefined;
        maxPayload?: number | undefined;
        maxBufferedChunks?: number | undefined;
        maxFragments?: number | undefined;
        skipUTF8Validation?: boolean | undefined;
        WebSocket?: U | undefined;

        /**
         * ws-native only, with `port`: ms a client has to complete its upgrade
         * request (and the TLS handshake); then 408. Default 60000; 0 is off.
         */
        handshakeTimeout?: number | undefined;
        /**
         * ws-native only, with `port`: serve wss:// with TLS in C. Takes key,
         * cert, ca, passphrase and pfx; any other TLS option throws (use
         * `{ server: https.createServer(...) }` for those).
         */
        tls?: ServerTlsOptions | undefined;
        /**
         * ws-native only: a topic subscriber whose buffered bytes are past this
         * is skipped for a published message (a 'dropped' event on it).
         * Default 1 MiB.
         */
        maxBackpressure?: number | undefined;
        /**
         * ws-native only: terminate such a subscriber (close 1006) instead of
         * skipping it. Default false.
         */
        closeOnBackpressureLimit?: boolean | undefined;
    }

    /** What address() returns for a server listening on a TCP port. */
    interface AddressInfo {
        address: string;
        family: string;
        port: number;
    }

    /** ws-native only: the peer of a connection that failed before its upgrade request. */
    interface TlsClientErrorPeer {
        remoteAddress?: string | undefined;
        remotePort?: number | undefined;
        remoteFamily?: string | undefined;
    }

    /** A WebSocketServer's events and their listeners' arguments. */
    interface ServerEvents<
        T extends WebSocketConstructor = typeof WebSocketClass,
        U extends typeof IncomingMessage = typeof IncomingMessage,
    > {
        connection: [websocket: InstanceType<T>, request: InstanceType<U>];
        error: [error: Error];
        headers: [headers: string[], request: InstanceType<U>];
        close: [];
        listening: [];
        wsClientError: [error: Error, socket: Duplex, request: InstanceType<U>];
        /**
         * ws-native only, `{ port, tls }`: a connection failed before its
         * upgrade request (TLS handshake, plain HTTP to the TLS port).
         */
        tlsClientError: [error: Error, peer: TlsClientErrorPeer];
    }

    /** The WebSocket server (also exported as WebSocketServer). */
    class Server<
        T extends WebSocketConstructor = typeof WebSocketClass,
        U extends typeof IncomingMessage = typeof IncomingMessage,
    > extends EventEmitter {
        options: ServerOptions<T, U>;
        path: string;
        /** The connected sockets (undefined at run time with clientTracking: false). */
        clients: Set<InstanceType<T>>;

        constructor(options?: ServerOptions<T, U>, callback?: () => void);

        address(): AddressInfo | string | null;
        close(cb?: (err?: Error) => void): void;
        handleUpgrade(
            request: InstanceType<U>,
            socket: Duplex,
            upgradeHead: Buffer,
            callback: (client: InstanceType<T>, request: InstanceType<U>) => void,
        ): void;
        shouldHandle(request: InstanceType<U>): boolean | Promise<boolean>;

        /**
         * ws-native only: sends `data` once to every subscriber of `topic`.
         * Returns the number of sockets it was queued to.
         */
        publish(topic: string, data: PublishData, options?: PublishOptions): number;
        /** ws-native only: how many of this server's sockets are subscribed to `topic`. */
        subscriberCount(topic: string): number;

        on<K extends keyof ServerEvents<T, U>>(
            event: K,
            listener: (this: Server<T>, ...args: ServerEvents<T, U>[K]) => void,
        ): this;
        on(event: string | symbol, listener: (this: Server<T>, ...args: any[]) => void): this;
        once<K extends keyof ServerEvents<T, U>>(
            event: K,
            listener: (this: Server<T>, ...args: ServerEvents<T, U>[K]) => void,
        ): this;
        once(event: string | symbol, listener: (this: Server<T>, ...args: any[]) => void): this;
        off<K extends keyof ServerEvents<T, U>>(
            event: K,
            listener: (this: Server<T>, ...args: ServerEvents<T, U>[K]) => void,
        ): this;
        off(event: string | symbol, listener: (this: Server<T>, ...args: any[]) => void): this;
        addListener<K extends keyof ServerEvents<T, U>>(
            event: K,
            listener: (...args: ServerEvents<T, U>[K]) => void,
        ): this;
        addListener(event: string | symbol, listener: (...args: any[]) => void): this;
        removeListener<K extends keyof ServerEvents<T, U>>(
            event: K,
            listener: (...args: ServerEvents<T, U>[K]) => void,
        ): this;
        removeListener(event: string | symbol, listener: (...args: any[]) => void): this;
    }

    const WebSocketServer: typeof Server;
    interface WebSocketServer extends Server {}
    const WebSocket: typeof WebSocketClass;
    interface WebSocket extends WebSocketClass {}

    /** Wraps a WebSocket in a Duplex stream (messages in, sends out). */
    function createWebSocketStream(websocket: WebSocketBase, options?: DuplexOptions): Duplex;

    // ws's internals (Sender, Receiver, PerMessageDeflate, extension,
    // subprotocol) are on require('ws-native') at run time but not typed here,
    // as @types/ws leaves them out: a value in this namespace is a static of
    // `typeof WebSocket`, and one @types/ws lacks would make ws-native's
    // WebSocketServer unassignable to @types/ws's (graphql-ws's useServer
    // takes one). The ESM entry types them (wrapper.d.mts).
}

export = WebSocket;
