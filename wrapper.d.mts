// Types of the ESM entry (wrapper.mjs): the same declarations as index.d.ts,
// so a WebSocket from `import` and one from `require` are the same type.
// Names exported as values are those wrapper.mjs exports; the rest are
// types only (as @types/ws's index.d.mts exports them).

import { Duplex, Writable } from "stream";
import WebSocket from "./index.js";

export default WebSocket;
export { WebSocket };

// Values (and their types), as wrapper.mjs exports them.
export import WebSocketServer = WebSocket.WebSocketServer;
export import createWebSocketStream = WebSocket.createWebSocketStream;

// Types only: wrapper.mjs has no `Server` export (use WebSocketServer).
import Server = WebSocket.Server;
export type { Server };

export import AddressInfo = WebSocket.AddressInfo;
export import CertMeta = WebSocket.CertMeta;
export import ClientOptions = WebSocket.ClientOptions;
export import CloseEvent = WebSocket.CloseEvent;
export import Data = WebSocket.Data;
export import ErrorEvent = WebSocket.ErrorEvent;
export import Event = WebSocket.Event;
export import EventListenerOptions = WebSocket.EventListenerOptions;
export import FinishRequestCallback = WebSocket.FinishRequestCallback;
export import MessageEvent = WebSocket.MessageEvent;
export import PerMessageDeflateOptions = WebSocket.PerMessageDeflateOptions;
export import RawData = WebSocket.RawData;
export import ServerOptions = WebSocket.ServerOptions;
export import VerifyClientCallbackAsync = WebSocket.VerifyClientCallbackAsync;
export import VerifyClientCallbackSync = WebSocket.VerifyClientCallbackSync;
export import VerifyClientInfo = WebSocket.VerifyClientInfo;
export import WebSocketEventMap = WebSocket.WebSocketEventMap;

// ws-native's own.
export import NativeOptions = WebSocket.NativeOptions;
export import PublishOptions = WebSocket.PublishOptions;
export import SendOptions = WebSocket.SendOptions;
export import ServerEvents = WebSocket.ServerEvents;
export import ServerTlsOptions = WebSocket.ServerTlsOptions;
export import TlsClientErrorPeer = WebSocket.TlsClientErrorPeer;
export import WebSocketBase = WebSocket.WebSocketBase;
export import WebSocketConstructor = WebSocket.WebSocketConstructor;
export import WebSocketEvents = WebSocket.WebSocketEvents;

// ws's internals, which wrapper.mjs exports as ws's does (index.d.ts says
// why the CommonJS side leaves them untyped, as @types/ws does).

/** Sender.frame()'s options. */
export interface FrameOptions {
    fin?: boolean | undefined;
    generateMask?: ((mask: Buffer) => void) | undefined;
    mask?: boolean | undefined;
    maskBuffer?: Buffer | undefined;
    opcode: number;
    readOnly?: boolean | undefined;
    rsv1?: boolean | undefined;
}

/**
 * ws's frame writer. Sender.frame() builds ws's frame list byte for byte
 * (socket.io frames a broadcast once with it and hands the list to each
 * socket's `_sender.sendFrame()`). `new Sender(stream)` writes frames to
 * a stream, without compression.
 */
export declare class Sender {
    constructor(socket: Duplex, extensions?: object, generateMask?: (mask: Buffer) => void);
    static frame(data: Buffer | string, options: FrameOptions): Buffer[];
    sendFrame(list: Buffer[], cb?: (err?: Error) => void): void;
    close(code?: number, data?: string | Buffer, mask?: boolean, cb?: (err?: Error) => void): void;
    ping(data: any, mask: boolean, cb?: (err?: Error) => void): void;
    pong(data: any, mask: boolean, cb?: (err?: Error) => void): void;
    send(data: any, options: WebSocket.SendOptions, cb?: (err?: Error) => void): void;
}

/**
 * ws's frame parser. In ws-native frames are parsed in C: it exists by
 * name, and constructing one throws.
 */
export declare class Receiver extends Writable {
    constructor(options?: object);
}

/**
 * ws's permessage-deflate class. In ws-native it runs in C: it exists
 * for its extensionName, and constructing one throws (use the
 * perMessageDeflate option).
 */
export declare class PerMessageDeflate {
    static readonly extensionName: "permessage-deflate";
    constructor(options?: WebSocket.PerMessageDeflateOptions, isServer?: boolean, maxPayload?: number);
}

/** A parsed Sec-WebSocket-Extensions header: extension name -> offers -> parameters. */
export type ExtensionOffers = Record<string, Array<Record<string, Array<string | true>>>>;

/** ws's Sec-WebSocket-Extensions parser and formatter. */
export declare const extension: {
    parse(header: string): ExtensionOffers;
    format(extensions: Record<string, object | object[]>): string;
};

/** ws's Sec-WebSocket-Protocol parser. */
export declare const subprotocol: {
    parse(header: string): Set<string>;
};
