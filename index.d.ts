// Type definitions for enslavism, the Node API of enslavism 0.9.0 on a Rust engine.

import { EventEmitter } from 'node:events';
import type { Server as HttpServer } from 'node:http';

/** Limits and timeouts of a master. Every field is optional. */
export interface MasterOptions {
	/**
	 * Address to listen on when the master has its own port (e.g. `'127.0.0.1'`).
	 * Default: every interface (`::`, or `0.0.0.0` where IPv6 is off), like `server.listen(port)`.
	 */
	host?: string;
	/** Largest WebSocket message a slave or client may send, in bytes; larger ones close it with 1009. Default 262144 (256 KiB). */
	maxMessageSize?: number;
	/** Frames queued for one peer before it is disconnected (close code 1008) as too slow. Default 1024. */
	outboundQueueLength?: number;
	/** Milliseconds a connection has to send its HTTP request headers (own port only). Default 10000. */
	handshakeTimeout?: number;
	/** Milliseconds the `slaveauth`/`clientauth` decision may take before the handshake is refused. Default 10000. */
	authTimeout?: number;
}

/**
 * The cookies of a WebSocket handshake, decoded. For a slave they are the
 * `authData` it was created with.
 */
export type AuthData = Record<string, string>;

/**
 * Refuses the handshake being decided: the peer gets HTTP 401 with `reason`
 * as the body (or `Unauthorized`). Must be called synchronously inside the
 * `slaveauth`/`clientauth` listener.
 */
export type RejectFunction = (reason?: string) => void;

/**
 * A connected slave or client, as `slaveconnection`/`clientconnection` show
 * it: a small ws-like view of a WebSocket the Rust engine owns. Its messages
 * are routed in Rust and never reach JS.
 */
export declare class PeerSocket extends EventEmitter {
	static readonly CONNECTING: 0;
	static readonly OPEN: 1;
	static readonly CLOSING: 2;
	static readonly CLOSED: 3;
	/** The id the master gave this peer (for slaves: the id clients see). */
	readonly id: number;
	/** `'slave'` or `'client'`. */
	readonly kind: 'slave' | 'client';
	/** Where the peer connects from. */
	readonly _socket: { readonly remoteAddress: string; readonly remotePort: number; readonly remoteFamily: 'IPv4' | 'IPv6' };
	/** 1 while open, 2 while closing, 3 once closed. */
	readonly readyState: 0 | 1 | 2 | 3;
	/**
	 * Sends `data` as one binary WebSocket message. Throws (or passes to
	 * `callback`) an `Error` with code `ERR_ENSLAVISM_CLOSED` when the socket is closed.
	 */
	send(data: string | Buffer | ArrayBuffer | ArrayBufferView, callback?: (err?: Error) => void): void;
	send(data: string | Buffer | ArrayBuffer | ArrayBufferView, options: object, callback?: (err?: Error) => void): void;
	/** Closes the WebSocket; `code` is 1000 or 3000–4999, `reason` at most 123 bytes. */
	close(code?: number, reason?: string): void;
	/** Same as `close()`. */
	terminate(): void;
	/** The WebSocket closed, with the code and reason of its close frame (1006: dropped without one). */
	on(event: 'close', listener: (code: number, reason: string) => void): this;
	on(event: string | symbol, listener: (...args: any[]) => void): this;
}

/**
 * The signalling server: knows every slave and every client, keeps each
 * client's slave list in sync and relays WebRTC signalling between them.
 * All routing runs in Rust.
 *
 * - `new Master(port[, options])` listens on its own HTTP server: it serves
 *   `GET /enslavism/client.js` and answers 404 to everything else.
 * - `new Master(httpServer[, options])` attaches to an existing `http.Server`:
 *   it serves `/enslavism/client.js`, passes every other request to the
 *   server's own `request` listeners, takes over WebSocket upgrades on
 *   `/enslavism/slaves` and `/enslavism/clients`, and leaves other upgrades to
 *   other `upgrade` listeners (or destroys them when there are none).
 *
 * Throws a `TypeError` (code `ERR_INVALID_ARG_TYPE`) for arguments of the
 * wrong type and a `RangeError` for out-of-range values.
 */
export declare class Master extends EventEmitter {
	constructor(port: number, options?: MasterOptions);
	constructor(httpServer: HttpServer, options?: MasterOptions);
	/** The port listened on (the master's own, or the attached server's); null before/without one. */
	readonly port: number | null;
	/** How many slaves (registered or not) and clients are connected. */
	readonly peerCounts: { slaves: number; clients: number };
	/**
	 * Closes every connection (close code 1001) and stops listening; an
	 * attached server stays open with its own listeners restored. Resolves
	 * once the port is free; the process can then exit by itself. Idempotent.
	 */
	close(): Promise<void>;

	/** A slave wants to connect; `authData` holds the cookies it sent (its `authData`). Accepted unless `reject` is called synchronously. */
	on(event: 'slaveauth', listener: (authData: AuthData, reject: RejectFunction) => void): this;
	/** A client wants to connect; `authData` holds its cookies. Accepted unless `reject` is called synchronously. */
	on(event: 'clientauth', listener: (authData: AuthData, reject: RejectFunction) => void): this;
	/** A slave is connected. */
	on(event: 'slaveconnection', listener: (ws: PeerSocket) => void): this;
	/** A client is connected. */
	on(event: 'clientconnection', listener: (ws: PeerSocket) => void): this;
	/** The master's own port is bound (own-port mode only). */
	on(event: 'listening', listener: () => void): this;
	/**
	 * A server error, e.g. the port is in use (`err.code === 'EADDRINUSE'`).
	 * Without a listener it becomes a process warning, never a crash.
	 */
	on(event: 'error', listener: (err: Error & { code?: string }) => void): this;
	on(event: string | symbol, listener: (...args: any[]) => void): this;
	once(event: 'slaveauth' | 'clientauth', listener: (authData: AuthData, reject: RejectFunction) => void): this;
	once(event: 'slaveconnection' | 'clientconnection', listener: (ws: PeerSocket) => void): this;
	once(event: 'listening', listener: () => void): this;
	once(event: 'error', listener: (err: Error & { code?: string }) => void): this;
	once(event: string | symbol, listener: (...args: any[]) => void): this;
}
