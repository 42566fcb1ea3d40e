// Type definitions for enslavism, the Node API of enslavism 0.9.0 on a Rust engine.

import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';

/**
 * An event name other than the typed ones of `Events`. For those it is
 * `never`, so that a listener of the wrong shape for a documented event is an
 * error instead of a match for the untyped catch-all overload.
 */
export type OtherEvent<E, Events> = E extends keyof Events ? never : E;

/** Limits and timeouts of a master. Every field is optional. */
export interface MasterOptions {
	/**
	 * Address to listen on when the master has its own port (e.g. `'127.0.0.1'`).
	 * Default: every interface (`::`, or `0.0.0.0` where IPv6 is off), like `server.listen(port)`.
	 */
	host?: string;
	/** Largest WebSocket message a slave or client may send, in bytes; larger ones close it with 1009. Default 262144 (256 KiB). */
	maxMessageSize?: number;
	/** Frames waiting for one peer (queued, not yet being written) before it is disconnected (close code 1008) as too slow. Default 1024. */
	outboundQueueLength?: number;
	/** Milliseconds a connection has to send its HTTP request headers (own port only). Default 10000. */
	handshakeTimeout?: number;
	/** Milliseconds the `slaveauth`/`clientauth` decision may take before the handshake is refused. Default 10000. */
	authTimeout?: number;
	/** Milliseconds between pings to a quiet slave or client. Default 5000. */
	heartbeatInterval?: number;
	/** Milliseconds of silence (no frame, no pong) after which a peer is dropped (`close` 1006). Default 10000. */
	heartbeatTimeout?: number;
	/** Most connections at once (HTTP, handshaking and WebSocket); more are answered HTTP 503. Default 50000. */
	maxConnections?: number;
	/** Largest userData (bytes of JSON, at most 65535) a slave may register; over it the slave is closed with 1009 and a reason. Default 65535. */
	maxUserDataSize?: number;
	/**
	 * userData updates (`slave.setUserData`) one slave may make per second (a
	 * burst of as many is allowed); more are merged and applied when the rate
	 * allows, the latest winning. 0: no limit. Default 10.
	 */
	maxUserDataUpdatesPerSecond?: number;
	/** Offers one client may send per second (a burst of as many is allowed); more are answered with a rejection. 0: no limit. Default 10. */
	maxOffersPerSecond?: number;
	/** ICE candidates one client may send per second; more are dropped. 0: no limit. Default 200. */
	maxCandidatesPerSecond?: number;
	/**
	 * The certificate of the master's own port, which then speaks HTTPS and
	 * WSS only. Not with an attached server (an `https.Server` keeps its own
	 * TLS). An unusable one throws `ERR_ENSLAVISM_CERTIFICATE`.
	 */
	tls?: TlsIdentity;
	/** Serve the metrics ({@link Master.metrics}) at `GET /enslavism/metrics`. Default false (the path is a 404, or left to an attached server's handlers). */
	metrics?: boolean;
	/** Serve a status page at `GET /enslavism/status` (the live slave list and the master's figures) and its figures at `/enslavism/status.json`. Default false. */
	status?: boolean;
	/**
	 * Who may read the metrics and the status page: true (or a Promise of
	 * true) serves them; false, a throw, a rejection or no answer within
	 * `authTimeout` answers 403. Without it, anyone who reaches the port may.
	 */
	metricsAuth?: (req: MonitoringRequest) => boolean | Promise<boolean>;
	/** Share one lobby with the other masters of the same Redis and name (see {@link ClusterOptions}). */
	cluster?: ClusterOptions;
}

/**
 * The `cluster` option of a {@link Master}: masters with the same Redis and
 * name list every slave of any of them, under one id, and relay signalling
 * to each other. Values are checked by the engine (`ERR_OUT_OF_RANGE`,
 * `ERR_INVALID_ARG_VALUE`).
 */
export interface ClusterOptions {
	/** `redis://[user:password@]host:port[/db]`. */
	redis: string;
	/** The lobby's name: letters, digits, `-`, `_`, `.`, at most 64. Default `'default'`. */
	name?: string;
	/** Milliseconds a slave stays listed after its master last refreshed it (at least 400). Default 6000. */
	slaveTtl?: number;
	/** Milliseconds a relayed offer waits for its answer before the browser is told the slave refused. Default 10000. */
	relayTimeout?: number;
	/** Milliseconds connecting to Redis and each command may take. Default 2000. */
	redisTimeout?: number;
}

/**
 * A request for the metrics or the status page: Node's `IncomingMessage` on
 * an attached server; on the master's own port, an object with these fields.
 */
export interface MonitoringRequest {
	method?: string;
	url?: string;
	headers: IncomingHttpHeaders;
	socket: { remoteAddress?: string; remotePort?: number };
}

/** A master's figures ({@link Master.stats}): gauges now, counters since it started. */
export interface MasterStats {
	/** Connected slaves, registered or not. */
	slaves: number;
	/** Slaves registered with this master (listed to clients). */
	registeredSlaves: number;
	/** In a cluster, the other masters' slaves, listed to this master's clients too (0 otherwise). */
	remoteSlaves: number;
	/** Connected clients. */
	clients: number;
	/** WebSocket messages received (pings excepted). */
	framesIn: number;
	/** WebSocket messages written (pings excepted). */
	framesOut: number;
	/** Payload bytes of `framesIn`. */
	bytesIn: number;
	/** Payload bytes of `framesOut`. */
	bytesOut: number;
	/** Offers relayed from clients to slaves. */
	offers: number;
	/** Answers relayed from slaves to clients. */
	answers: number;
	/** ICE candidates relayed, both ways. */
	candidates: number;
	/** Offers refused: by the slave, or by the master on its behalf (slave gone, client over `maxOffersPerSecond`). */
	rejections: number;
	/** WebSocket handshakes refused: 401 (auth), 400 (not a handshake), 404 (another path); and connections answered 503 over `maxConnections`. */
	refusedHandshakes: number;
	/** Connections ended because of their peer: silent, not reading, over its queue, breaking the protocol, or gone without a close. */
	droppedPeers: number;
}

/** A certificate (the chain, leaf first) and its private key, in PEM. */
export interface TlsIdentity {
	key: string | Buffer;
	cert: string | Buffer;
}

/**
 * The cookies of a WebSocket handshake, decoded. For a slave they are the
 * `authData` it was created with.
 */
export type AuthData = Record<string, string>;

/**
 * Refuses the handshake being decided: the peer gets HTTP 401 with `reason`
 * as the body (or `Unauthorized`). Call it synchronously inside the
 * `slaveauth`/`clientauth` listener, or, if the listener returned a Promise,
 * before that Promise settles.
 */
export type RejectFunction = (reason?: string) => void;

/** Where a handshake being decided comes from: the third argument of `slaveauth`/`clientauth`. */
export interface AuthInfo {
	/** The peer's IP address (as `PeerSocket.remoteAddress`). */
	readonly remoteAddress: string;
	readonly remotePort: number;
	/** The request's headers, as Node's `req.headers` has them (lower-case names, repeats joined with `, `). */
	readonly headers: Record<string, string>;
}

/**
 * A `slaveauth`/`clientauth` listener. A synchronous one decides at once, as
 * in 0.9.0. One that is `async` or returns a Promise holds the handshake
 * until it settles (at most `authTimeout`, then 401): `reject()` called before
 * then, or a rejected Promise, refuses with 401.
 */
export type AuthListener = (authData: AuthData, reject: RejectFunction, info: AuthInfo) => void | Promise<unknown>;

/** The events of a {@link PeerSocket}, with their listeners. */
export interface PeerSocketEvents {
	/** The WebSocket closed, with the code and reason of its close frame (1006: dropped without one). */
	close: (code: number, reason: string) => void;
}

/**
 * A connected slave or client, as `slaveconnection`/`clientconnection` show
 * it: a small ws-like view of a WebSocket the Rust engine owns. Its messages
 * are routed in Rust and never reach JS.
 */
export declare class PeerSocket extends EventEmitter {
	/** Made by the master for its `…connection` events. */
	private constructor();
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
	/** See {@link PeerSocketEvents}. */
	on<E extends keyof PeerSocketEvents>(event: E, listener: PeerSocketEvents[E]): this;
	on<E extends string | symbol>(event: OtherEvent<E, PeerSocketEvents>, listener: (...args: any[]) => void): this;
	once<E extends keyof PeerSocketEvents>(event: E, listener: PeerSocketEvents[E]): this;
	once<E extends string | symbol>(event: OtherEvent<E, PeerSocketEvents>, listener: (...args: any[]) => void): this;
	off<E extends keyof PeerSocketEvents>(event: E, listener: PeerSocketEvents[E]): this;
	off<E extends string | symbol>(event: OtherEvent<E, PeerSocketEvents>, listener: (...args: any[]) => void): this;
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
	/** Attaches to an `http.Server` or an `https.Server` (Node keeps the TLS; the engine gets the plaintext through a socket pair). */
	constructor(httpServer: HttpServer | HttpsServer, options?: MasterOptions);
	/** The port listened on (the master's own, or the attached server's); null before/without one. */
	readonly port: number | null;
	/** How many slaves (registered or not) and clients are connected. */
	readonly peerCounts: { slaves: number; clients: number };
	/** The registered slaves, by the id clients see (the objects the `slave…register` events carry). */
	readonly slaves: Map<number, RegisteredSlave>;
	/** In a cluster, the other masters' slaves listed here too, by id (the objects the `remoteslave…` events carry). */
	readonly remoteSlaves: Map<number, RemoteSlave>;
	/** The master's figures, counted in the engine (one call, no per-message JS). Throws `ERR_ENSLAVISM_CLOSED` if it failed to start. */
	stats(): MasterStats;
	/** The master's metrics as an OpenMetrics text exposition (names prefixed `enslavism_master_`): what `/enslavism/metrics` serves with `metrics: true`. */
	metrics(): string;
	/**
	 * Presents a new certificate from the next TLS handshake on; open
	 * connections are kept. For a master started with `tls` (else throws
	 * `ERR_ENSLAVISM_NOT_TLS`); an unusable one throws
	 * `ERR_ENSLAVISM_CERTIFICATE` and the old certificate stays.
	 */
	setTLS(tls: TlsIdentity): void;
	/**
	 * Closes every connection (close code 1001) and stops listening; an
	 * attached server stays open with its own listeners restored. Resolves
	 * once the port is free; the process can then exit by itself. Idempotent.
	 */
	close(): Promise<void>;

	/** See {@link MasterEvents}. */
	on<E extends keyof MasterEvents>(event: E, listener: MasterEvents[E]): this;
	on<E extends string | symbol>(event: OtherEvent<E, MasterEvents>, listener: (...args: any[]) => void): this;
	once<E extends keyof MasterEvents>(event: E, listener: MasterEvents[E]): this;
	once<E extends string | symbol>(event: OtherEvent<E, MasterEvents>, listener: (...args: any[]) => void): this;
	off<E extends keyof MasterEvents>(event: E, listener: MasterEvents[E]): this;
	off<E extends string | symbol>(event: OtherEvent<E, MasterEvents>, listener: (...args: any[]) => void): this;
}

/** The events of a {@link Master}, with their listeners. */
export interface MasterEvents {
	/** A slave wants to connect; `authData` holds the cookies it sent (its `authData`). Accepted unless `reject` is called (see {@link AuthListener}). */
	slaveauth: AuthListener;
	/** A client wants to connect; `authData` holds its cookies. Accepted unless `reject` is called (see {@link AuthListener}). */
	clientauth: AuthListener;
	/** A slave is connected. */
	slaveconnection: (ws: PeerSocket) => void;
	/** A client is connected. */
	clientconnection: (ws: PeerSocket) => void;
	/** A slave registered: clients list it from now on. */
	slaveregister: (slave: RegisteredSlave) => void;
	/** A registered slave has new userData (`setUserData`, or a second registration; same id, `slave.userData` replaced in place). */
	slaveupdate: (slave: RegisteredSlave) => void;
	/** A registered slave is gone from every list: closed, dropped, or silent past `heartbeatTimeout`. */
	slaveunregister: (slave: RegisteredSlave) => void;
	/** In a cluster: connected to Redis and in sync; `node` is this master's node number (the top 12 bits of its client ids). */
	clusterconnect: (node: number) => void;
	/** In a cluster: Redis was lost. Own slaves and clients are still served; offers to other masters' slaves are refused until `clusterconnect`. */
	clusterdisconnect: (reason: string) => void;
	/** In a cluster: another master's slave is listed here too. */
	remoteslaveregister: (slave: RemoteSlave) => void;
	/** In a cluster: another master's slave has new userData, or is now another master's (`node`); replaced in place. */
	remoteslaveupdate: (slave: RemoteSlave) => void;
	/** In a cluster: another master's slave is gone from this master's list. */
	remoteslaveunregister: (slave: RemoteSlave) => void;
	/** The master's own port is bound (own-port mode only). */
	listening: () => void;
	/**
	 * A server error, e.g. the port is in use (`err.code === 'EADDRINUSE'`), or
	 * a bug caught in the engine (`ERR_ENSLAVISM_INTERNAL`: one peer was
	 * dropped, the rest goes on). Without a listener it becomes a process
	 * warning, never a crash.
	 */
	error: (err: Error & { code?: string }) => void;
}

/** A registered slave, as the master's `slave…register` events and `master.slaves` show it. */
export interface RegisteredSlave {
	/** The id clients see. */
	readonly id: number;
	/** Its userData (the latest registered). */
	userData: unknown;
	/** Where it connects from. */
	readonly remoteAddress: string;
	readonly remotePort: number;
}

/** Another master's slave, as `master.remoteSlaves` and the `remoteslave…` events show it. */
export interface RemoteSlave {
	/** The id clients see (the same on every master). */
	readonly id: number;
	/** Its userData (the latest). */
	userData: unknown;
	/** The node number of the master it is connected to. */
	readonly node: number;
}

/** A STUN or TURN server, as in `RTCIceServer`. */
export interface IceServer {
	urls: string | string[];
	username?: string;
	credential?: string;
}

/** How a slave sets up its peer connections. Every field is optional. */
export interface SlaveOptions {
	/**
	 * Local IP addresses announced as host candidates. One address is bound
	 * itself; several are served by one socket on the wildcard address.
	 * Default `['0.0.0.0']`: every non-loopback IPv4 interface, or `127.0.0.1`
	 * on a host that has no other. Loopback must otherwise be named
	 * explicitly (`'127.0.0.1'`).
	 */
	iceAddresses?: string[];
	/**
	 * The one UDP port every peer connection of this slave uses (for
	 * firewalls, Docker `-p 40000:40000/udp`). All WebRTC work then runs on
	 * one core. `0`: one shard on a free port. Default: one port per core,
	 * each chosen free once. Not with `portRange`.
	 */
	udpPort?: number;
	/**
	 * `[first, last]` UDP ports: one shard (socket and core's worth of work) per
	 * port, as many as there are cores; a port in use is skipped.
	 */
	portRange?: [number, number];
	/**
	 * STUN servers (`stun:`/`turn:` URLs over UDP): each shard asks them for
	 * its server-reflexive address and announces it. The slave does not relay
	 * through TURN.
	 */
	iceServers?: IceServer[];
	/**
	 * NAT 1:1: addresses announced in the slave's host candidates in place of
	 * the bound ones of the same family (a cloud VM's public IP). Default none.
	 */
	publicAddresses?: string[];
	/**
	 * CA certificates (PEM) trusted for a `wss://` master, beyond the Mozilla
	 * roots and the file named by `NODE_EXTRA_CA_CERTS`.
	 */
	ca?: string | Buffer | Array<string | Buffer>;
	/** Milliseconds to wait for the master's WebSocket handshake. Default 10000. */
	connectTimeout?: number;
	/** Milliseconds the `offer` decision may take before the offer is refused. Default 10000. */
	offerTimeout?: number;
	/**
	 * Largest message (bytes) a data channel carries each way, announced to
	 * browsers; from 1024 to 262144, default 65536. A larger message from a
	 * browser is dropped, and its channel closes with an `'error'`.
	 */
	maxMessageSize?: number;
	/** Milliseconds of ICE silence before a peer counts as disconnected. Default 5000. */
	iceDisconnectedTimeout?: number;
	/** Milliseconds after which a disconnected peer is released (`close`). Default 10000. */
	iceFailedTimeout?: number;
	/** Milliseconds a peer has to open its first data channel before it is released. Default 30000. */
	peerSetupTimeout?: number;
	/**
	 * @deprecated No effect since 0.10: the str0m engine answers the
	 * browser's first ICE check at once. Still accepted.
	 */
	iceNudge?: boolean;
	/** Reconnect to the master and register again when the link drops. Default true. */
	reconnect?: boolean;
	/** Longest wait (ms) between reconnection attempts; the wait doubles from 250 ms. Default 2000. */
	reconnectMaxDelay?: number;
	/** Milliseconds between pings to a quiet master. Default 5000. */
	heartbeatInterval?: number;
	/** Milliseconds of master silence (half-open link) after which the slave reconnects. Default 10000. */
	heartbeatTimeout?: number;
	/**
	 * TCP port on which the slave serves `slave.metrics()` itself, at
	 * `GET /metrics` (OpenMetrics media type); 0 picks a free port (see
	 * `slave.metricsPort`). A port in use rejects `new Slave` with `EADDRINUSE`.
	 * Default: no listener.
	 */
	metricsPort?: number;
	/** Address the metrics listener binds (only with `metricsPort`). Default `'0.0.0.0'`: every IPv4 interface. */
	metricsHost?: string;
	/**
	 * Adds per-connection series to the metrics (labels `connection`, the
	 * session, and `client`, the client's id): round-trip time, messages,
	 * bytes. Default false: a set of series per player is heavy to store.
	 */
	metricsPerConnection?: boolean;
}

/** Messages and bytes a data channel, a connection or a slave carried (payload bytes). */
export interface TrafficStats {
	/** Messages received from clients. */
	messagesIn: number;
	/** Messages handed to SCTP for clients. */
	messagesOut: number;
	/** Payload bytes received. */
	bytesIn: number;
	/** Payload bytes handed to SCTP. */
	bytesOut: number;
}

/** `slave.stats()`: gauges now, counters since the slave started. */
export interface SlaveStats extends TrafficStats {
	/** Peer connections held now (`slave.connections.length`). */
	connections: number;
	/** Data channels open now. */
	channels: number;
	/**
	 * Setup times (ms) of the connections set up so far, from the offer's
	 * arrival at the slave (the `offer` listener's decision included) to the
	 * connection's first open data channel. Estimated from a fixed-bucket
	 * histogram (within ~15%); null before the first setup.
	 */
	setupMs: { count: number; p50: number | null; p95: number | null; p99: number | null };
}

/** `clientCo.getStats()`: one connection's figures, from the engine. */
export interface ConnectionStats extends TrafficStats {
	/**
	 * Round trip (ms) of the latest ICE connectivity check on the selected
	 * pair (ICE checks every few seconds), null before one completed.
	 */
	rttMs: number | null;
	/** UDP datagrams received for this connection (STUN, DTLS, SCTP). */
	packetsIn: number;
	/** UDP datagrams sent. */
	packetsOut: number;
	/** Bytes of those datagrams received, headers and retransmissions included. */
	transportBytesIn: number;
	/** Bytes of those datagrams sent. */
	transportBytesOut: number;
	/** Always null: str0m 0.24 keeps SCTP's loss figures private. */
	packetsLost: number | null;
	/** Always null, for the same reason. */
	retransmissions: number | null;
	/** The candidate pair ICE selected, as `'ip:port'` strings (null before). */
	selectedCandidatePair: { local: string; remote: string } | null;
}

/** A DOM-like event passed to DataChannel listeners. */
export interface DataChannelEvent {
	readonly type: 'open' | 'message' | 'close' | 'error' | 'bufferedamountlow';
	readonly target: DataChannel;
	readonly currentTarget: DataChannel;
}

/** The event of a `message`. */
export interface DataChannelMessageEvent extends DataChannelEvent {
	readonly type: 'message';
	/** A string for a text message, an ArrayBuffer for a binary one. */
	readonly data: string | ArrayBuffer;
}

/** The event of an `error`. */
export interface DataChannelErrorEvent extends DataChannelEvent {
	readonly type: 'error';
	/** What went wrong (`code` `ERR_ENSLAVISM_CHANNEL`, e.g. "send queue full"). */
	readonly error: Error & { code: string };
}

/** The events of a {@link DataChannel}, with their listeners. */
export interface DataChannelEvents {
	/** On a slave: emitted right after `datachannel` (the client opened the channel), as in 0.9.0. */
	open: (ev: DataChannelEvent) => void;
	/** A message from the other end: `ev.data` is a string (text) or an ArrayBuffer (binary). */
	message: (ev: DataChannelMessageEvent) => void;
	/** The channel is closed, on both ends. */
	close: (ev: DataChannelEvent) => void;
	/** On a slave: the send queue passed 16 MiB (see {@link DataChannel.send}); `close` follows. */
	error: (ev: DataChannelErrorEvent) => void;
	/** `bufferedAmount` fell to `bufferedAmountLowThreshold`. */
	bufferedamountlow: (ev: DataChannelEvent) => void;
}

/** A listener function, or an object with a `handleEvent` method, as EventTarget takes them. */
export type DataChannelListener<E extends keyof DataChannelEvents> = DataChannelEvents[E] | { handleEvent: DataChannelEvents[E] };

/**
 * A data channel: on a slave, one a client opened; in a Node
 * {@link MasterConnection}, one opened to a slave. It has both shapes code in
 * the wild uses: EventEmitter (`on`, `once`, `off`) and EventTarget
 * (`addEventListener`, `removeEventListener`, `onopen`/`onmessage`/`onclose`/`onerror`).
 */
export declare class DataChannel extends EventEmitter {
	/** Made by the slave (`datachannel`) or by `SlaveConnection.createDataChannel`. */
	private constructor();
	/** The channel's name. */
	readonly label: string;
	/** The subprotocol ('' for none). */
	readonly protocol: string;
	/** Whether messages arrive in order. */
	readonly ordered: boolean;
	/** Retransmission limit of an unreliable channel, else null. */
	readonly maxRetransmits: number | null;
	/** Lifetime limit (ms) of an unreliable channel, else null. */
	readonly maxPacketLifeTime: number | null;
	/** The channel's number within its connection. */
	readonly id: number | null;
	/** True for a channel negotiated out of band: how the browser client opens unreliable channels. */
	readonly negotiated: boolean;
	/** `'open'` when announced, then `'closing'`, `'closed'`. */
	readonly readyState: 'connecting' | 'open' | 'closing' | 'closed';
	/**
	 * Bytes given to `send()` that SCTP has not delivered yet (acknowledged by
	 * the peer, or given up on). As in a browser, it grows at each send and
	 * falls only from one JS turn to a later one.
	 */
	readonly bufferedAmount: number;
	/**
	 * `bufferedamountlow` fires when `bufferedAmount` falls to this many bytes
	 * (an integer from 0 to 2³² − 1, else a RangeError). Default 0.
	 */
	bufferedAmountLowThreshold: number;
	/** Binary messages arrive as ArrayBuffers. */
	binaryType: 'arraybuffer';
	onopen: DataChannelEvents['open'] | null;
	onmessage: DataChannelEvents['message'] | null;
	onclose: DataChannelEvents['close'] | null;
	onerror: DataChannelEvents['error'] | null;
	onbufferedamountlow: DataChannelEvents['bufferedamountlow'] | null;
	/**
	 * Sends a message: a string as a text message; a Buffer, ArrayBuffer,
	 * TypedArray or DataView as a binary one. Throws an Error with code
	 * `ERR_ENSLAVISM_CHANNEL_CLOSED` when `readyState` is not 'open' (a message
	 * sent after the peer closed, before the 'close' event, is dropped). When
	 * `bufferedAmount` would pass 16 MiB (the peer is not taking what it is
	 * sent), the message and what is still queued are dropped, an `error`
	 * (code `ERR_ENSLAVISM_CHANNEL`) fires, and `close` follows once SCTP has
	 * delivered what it holds (at most 10 s); send() itself does not throw.
	 * An empty message is dropped, with a warning logged once per process:
	 * the WebRTC stack cannot send one yet (doc/upstream.md). The bytes are
	 * copied at once; what one JS turn sends reaches the engine together,
	 * when the turn ends (a close hands over what was sent before it first).
	 */
	send(data: string | Buffer | ArrayBuffer | ArrayBufferView): void;
	/**
	 * Closes the channel after what was already sent has been delivered (at
	 * most 10 s later): `readyState` is 'closing' until then, and `close` follows.
	 */
	close(): void;
	/**
	 * Messages and payload bytes each way since the channel opened, counted
	 * by the engine; once the channel closed, its figures at the close. A
	 * slave's channels only: on the Node MasterConnection's it throws
	 * `ERR_ENSLAVISM_UNSUPPORTED`.
	 */
	stats(): TrafficStats;
	/** EventTarget-style: `{ once: true }` removes the listener after its first call. See {@link DataChannelEvents}. */
	addEventListener<E extends keyof DataChannelEvents>(type: E, listener: DataChannelListener<E>, options?: { once?: boolean }): void;
	/** Removes a listener added with `addEventListener`. */
	removeEventListener<E extends keyof DataChannelEvents>(type: E, listener: DataChannelListener<E>): void;
	/** See {@link DataChannelEvents}. */
	on<E extends keyof DataChannelEvents>(event: E, listener: DataChannelEvents[E]): this;
	on<E extends string | symbol>(event: OtherEvent<E, DataChannelEvents>, listener: (...args: any[]) => void): this;
	once<E extends keyof DataChannelEvents>(event: E, listener: DataChannelEvents[E]): this;
	once<E extends string | symbol>(event: OtherEvent<E, DataChannelEvents>, listener: (...args: any[]) => void): this;
	off<E extends keyof DataChannelEvents>(event: E, listener: DataChannelEvents[E]): this;
	off<E extends string | symbol>(event: OtherEvent<E, DataChannelEvents>, listener: (...args: any[]) => void): this;
}

/** The events of a {@link ClientConnection}, with their listeners. */
export interface ClientConnectionEvents {
	/** The client opened a data channel. */
	datachannel: (dc: DataChannel) => void;
	/** The client's peer connection is gone (closed by the browser, failed, or timed out); the slave forgot it. */
	close: () => void;
}

/** One client connected to a slave. */
export declare class ClientConnection extends EventEmitter {
	/** Made by the slave for its `connection` event. */
	private constructor();
	/** The client's id, given by the master. */
	readonly id: number;
	/** The slave it is connected to. */
	readonly slave: Slave;
	/** The client's open data channels, by label. */
	readonly dataChannels: Record<string, DataChannel>;
	/**
	 * The connection's figures, asked of the engine shard that owns it.
	 * Rejects with `ERR_ENSLAVISM_CLOSED` once the connection is gone.
	 */
	getStats(): Promise<ConnectionStats>;
	/** See {@link ClientConnectionEvents}. */
	on<E extends keyof ClientConnectionEvents>(event: E, listener: ClientConnectionEvents[E]): this;
	on<E extends string | symbol>(event: OtherEvent<E, ClientConnectionEvents>, listener: (...args: any[]) => void): this;
	once<E extends keyof ClientConnectionEvents>(event: E, listener: ClientConnectionEvents[E]): this;
	once<E extends string | symbol>(event: OtherEvent<E, ClientConnectionEvents>, listener: (...args: any[]) => void): this;
	off<E extends keyof ClientConnectionEvents>(event: E, listener: ClientConnectionEvents[E]): this;
	off<E extends string | symbol>(event: OtherEvent<E, ClientConnectionEvents>, listener: (...args: any[]) => void): this;
}

/**
 * A game server: registers with a master and accepts WebRTC data channels from
 * browsers (str0m in Rust).
 *
 * `new Slave(masterWsUrl, userData[, authData[, options]])` returns a **Promise**
 * of the Slave, as in 0.9.0: it resolves once connected and registered, and
 * rejects with an Error otherwise (`code` `ERR_ENSLAVISM_REFUSED` and `status`
 * 401 when `slaveauth` refused it; `ERR_ENSLAVISM_UNREACHABLE`; `ERR_INVALID_URL`;
 * `EADDRINUSE` when `udpPort` is taken).
 * `masterWsUrl` may be an array of URLs, masters to fail over to: the slave
 * registers with the first that answers (when none does, it rejects with the
 * first's error; a malformed URL rejects with `ERR_INVALID_URL` naming it),
 * and when its link drops, with the next one (round robin, the one that
 * dropped last; `reconnectMaxDelay` is waited between full rounds), with its
 * latest userData.
 * `userData` (any JSON value, at most 65,535 bytes of JSON) is shown to every
 * client; `authData` (an object of strings) travels as cookies.
 */
export interface Slave extends EventEmitter {
	/** The connected clients. */
	readonly connections: ClientConnection[];
	/** The UDP ports peer connections arrive on, one per shard (see `udpPort`). */
	readonly udpPorts: number[];
	/** The port the metrics listener is bound to (`metricsPort`), or null without one. */
	readonly metricsPort: number | null;
	/** Counters since the start and gauges now, read from the engine (no JS runs per message). */
	stats(): SlaveStats;
	/**
	 * The same figures as an OpenMetrics text exposition (what Prometheus
	 * scrapes), every name prefixed `enslavism_slave_`: `connections`,
	 * `channels` (gauges), `messages_total`, `bytes_total` (label
	 * `direction`: `in`, `out`), `setup_seconds` (histogram); with
	 * `metricsPerConnection`, `connection_rtt_seconds`,
	 * `connection_messages_total`, `connection_bytes_total`.
	 */
	metrics(): string;
	/** The master registered with (or last, while reconnecting), as given to the constructor. */
	readonly masterUrl: string;
	/** The latest userData set (by the constructor or `setUserData`). */
	readonly userData: unknown;
	/**
	 * Replaces the userData every client's list shows (any JSON value, at most
	 * 65,535 bytes of JSON). Resolves once the master has it: a master of
	 * ours has then sent it to every client (`slaveupdated` in browsers, the
	 * open channels untouched). A 0.9.0 master gets a second registration:
	 * new clients see the new userData, 0.9.0 bundles get a second
	 * `slaveadded`, ours update in place. While the master is unreachable it
	 * resolves once the slave registers again, with the latest userData.
	 * Rejects with `ERR_ENSLAVISM_USERDATA_REFUSED` when the master refused
	 * it (over its `maxUserDataSize`; `userData` is the previous value
	 * again), `ERR_INVALID_ARG_TYPE`/`ERR_INVALID_ARG_VALUE` for no JSON or
	 * too much of it, `ERR_ENSLAVISM_NO_MASTER` once the master link is
	 * closed for good (`reconnect: false`), `ERR_ENSLAVISM_CLOSED` after `close()`.
	 * Calls in quick succession are merged: the master gets the latest.
	 */
	setUserData(userData: unknown): Promise<void>;
	/** Closes every client connection and the link to the master; resolves once done. */
	close(): Promise<void>;
	/** See {@link SlaveEvents}. */
	on<E extends keyof SlaveEvents>(event: E, listener: SlaveEvents[E]): this;
	on<E extends string | symbol>(event: OtherEvent<E, SlaveEvents>, listener: (...args: any[]) => void): this;
	once<E extends keyof SlaveEvents>(event: E, listener: SlaveEvents[E]): this;
	once<E extends string | symbol>(event: OtherEvent<E, SlaveEvents>, listener: (...args: any[]) => void): this;
	off<E extends keyof SlaveEvents>(event: E, listener: SlaveEvents[E]): this;
	off<E extends string | symbol>(event: OtherEvent<E, SlaveEvents>, listener: (...args: any[]) => void): this;
}

/** The events of a {@link Slave}, with their listeners. */
export interface SlaveEvents {
	/** A client offers a connection: call `reject()` synchronously to refuse it. `info.clientId` is the client's id. */
	offer: (reject: () => void, info: { clientId: number }) => void;
	/** A client is connected. */
	connection: (clientCo: ClientConnection) => void;
	/** The WebSocket to the master closed; open client connections go on, and the slave reconnects (option `reconnect`). */
	disconnected: (info: { code: number; reason: string }) => void;
	/** Registered with a master again after a disconnection: `info.url` is which (as given). */
	reconnected: (info: { url: string }) => void;
	/**
	 * A bug caught in the engine (`code` `ERR_ENSLAVISM_INTERNAL`): one client
	 * connection (or the master link) was lost, the rest goes on. Without a
	 * listener it becomes a process warning, never a crash.
	 */
	error: (err: Error & { code: string }) => void;
}

/** `new Slave(…)` gives a Promise of the Slave (0.9.0's shape). */
export interface SlaveConstructor {
	new (masterWsUrl: string | string[], userData: unknown, authData?: Record<string, string>, options?: SlaveOptions): Promise<Slave>;
	readonly prototype: Slave;
}

export declare const Slave: SlaveConstructor;

/** Options of a Node {@link MasterConnection}. Every field is optional. */
export interface MasterConnectionOptions {
	/**
	 * Local IP addresses the peer connections bind. Default `['0.0.0.0']` (every non-loopback IPv4 interface).
	 * Each connection uses the IPv4 ones when there are any, else the IPv6 ones.
	 */
	iceAddresses?: string[];
	/**
	 * STUN servers (`stun:`/`turn:` URLs over UDP) each connection asks for its server-reflexive
	 * address, trickled to the slave. The native client does not relay through TURN. Default none.
	 */
	iceServers?: IceServer[];
	/** Sent as cookies with the WebSocket handshake (what `clientauth` gets). */
	authData?: AuthData;
	/** CA certificates (PEM) trusted for a `wss://` master beyond the Mozilla roots and `NODE_EXTRA_CA_CERTS`. */
	ca?: string | Buffer | Array<string | Buffer>;
	/** Reconnect (with backoff) when the connection to the master drops. Default true. */
	reconnect?: boolean;
	/** Longest wait (ms) between reconnection attempts; the wait doubles from 250 ms. Default 2000. */
	reconnectMaxDelay?: number;
	/** After a reconnection, how long (ms) a slave missing from the new list may take to register again. Default 5000. */
	resyncGrace?: number;
	/** Milliseconds to wait for the master's handshake and first list. Default 10000. */
	connectTimeout?: number;
	/** Milliseconds a slave has to answer an offer, and a channel to open. Default 10000. */
	signallingTimeout?: number;
}

/** The events of a Node {@link SlaveConnection}, with their listeners. */
export interface SlaveConnectionEvents {
	/** The slave refused the connection; the pending `createDataChannel` promise rejects (`REJECTED`). */
	rejected: () => void;
}

/** Options of `SlaveConnection.createDataChannel` (Node). */
export interface DataChannelOptions {
	/** Whether messages arrive in order. Default true. */
	ordered?: boolean;
	/** Unreliable: at most this many retransmissions of a message (0 to 65535). */
	maxRetransmits?: number;
	/** Unreliable: a message is retransmitted for at most this many ms (0 to 65535). */
	maxPacketLifeTime?: number;
	/** The subprotocol. Default ''. */
	protocol?: string;
}

/** One slave of a Node MasterConnection's list (the browser bundle's `SlaveConnection`). */
export declare class SlaveConnection extends EventEmitter {
	/** Made by the MasterConnection that lists the slave. */
	private constructor();
	/** The slave's id, given by the master (a slave listed again after a reconnection keeps this object under its new id). */
	readonly id: number;
	/** What the slave registered with; replaced in place on an update (`slaveupdated`). */
	readonly userData: unknown;
	/** The MasterConnection that lists the slave. */
	readonly master: MasterConnection;
	/** The open data channels, by name. */
	dataChannels: Record<string, DataChannel>;
	/** Kept for the browser API: in Node the first channel connects. */
	connect(): void;
	/** Closes the peer connection and every channel opened from it; a later channel connects again. */
	close(): void;
	/**
	 * Opens a data channel (connecting first if needed) and resolves once it is
	 * open. Unreliable channels (`maxRetransmits` or `maxPacketLifeTime`) are
	 * negotiated, as the browser bundle does. Rejects with `code` `REJECTED`
	 * (the slave refused; `rejected` fires too), `MASTER_UNAVAILABLE`,
	 * `ERR_ENSLAVISM_TIMEOUT` or `ERR_ENSLAVISM_CONNECTION_CLOSED`.
	 */
	createDataChannel(dataChannelName: string, dcOptions?: DataChannelOptions): Promise<DataChannel>;
	/** See {@link SlaveConnectionEvents}. */
	on<E extends keyof SlaveConnectionEvents>(event: E, listener: SlaveConnectionEvents[E]): this;
	on<E extends string | symbol>(event: OtherEvent<E, SlaveConnectionEvents>, listener: (...args: any[]) => void): this;
	once<E extends keyof SlaveConnectionEvents>(event: E, listener: SlaveConnectionEvents[E]): this;
	once<E extends string | symbol>(event: OtherEvent<E, SlaveConnectionEvents>, listener: (...args: any[]) => void): this;
	off<E extends keyof SlaveConnectionEvents>(event: E, listener: SlaveConnectionEvents[E]): this;
	off<E extends string | symbol>(event: OtherEvent<E, SlaveConnectionEvents>, listener: (...args: any[]) => void): this;
	/** As the browser bundle: listeners get plain arguments. */
	addEventListener<E extends keyof SlaveConnectionEvents>(event: E, listener: SlaveConnectionEvents[E]): void;
	removeEventListener<E extends keyof SlaveConnectionEvents>(event: E, listener: SlaveConnectionEvents[E]): void;
}

/** How the connection to the master closed: the `close` event of a Node {@link MasterConnection}. */
export interface MasterCloseEvent {
	/** The WebSocket close code (1006: dropped, or never opened). */
	code: number;
	reason: string;
	/** True for code 1000. */
	wasClean: boolean;
	/**
	 * Why a connection that never opened failed: `code` `ERR_ENSLAVISM_UNREACHABLE`,
	 * `ERR_ENSLAVISM_REFUSED`, `ERR_ENSLAVISM_TLS` or `ERR_INVALID_URL`.
	 */
	error?: Error & { code: string };
}

/** The events of a Node {@link MasterConnection}, with their listeners. */
export interface MasterConnectionEvents {
	/** A slave joined the list. */
	slaveadded: (slaveCo: SlaveConnection) => void;
	/** A slave left the list; its connection was closed. */
	slaveremoved: (slaveCo: SlaveConnection) => void;
	/**
	 * A slave listed before a reconnection is listed again: the same
	 * SlaveConnection, under its new id. (One listed again under the id it
	 * had, as clustered masters do, is the same slave with no event at all,
	 * but `slaveupdated` if its userData changed.)
	 */
	slaverelisted: (slaveCo: SlaveConnection) => void;
	/** A listed slave has new userData (`slaveCo.userData`); its connection is not touched. */
	slaveupdated: (slaveCo: SlaveConnection) => void;
	/**
	 * The WebSocket to the master closed; the client reconnects unless told not to.
	 * A connection that never opened closes with code 1006 and `error`.
	 */
	close: (event: MasterCloseEvent) => void;
	/** Connected again, to `info.url` (as given), and the list brought up to date. */
	reconnected: (info: { url: string }) => void;
	/** Closing failed once the connection had ended by itself. Without a listener it becomes a process warning. */
	error: (err: Error & { code?: string }) => void;
}

/**
 * The browser bundle's `MasterConnection` in Node, on the engine's native
 * client: the live slave list and data channels to slaves, with neither
 * wrtc nor a browser (bots, load tests, server-to-server links).
 */
export declare class MasterConnection extends EventEmitter {
	/**
	 * Connects to `masterWsUrl + '/enslavism/clients'`. Given an array of
	 * URLs, to the first master that answers, and when the connection drops,
	 * to the next one (round robin, the one that dropped last;
	 * `reconnectMaxDelay` is waited between full rounds).
	 */
	constructor(masterWsUrl: string | string[], options?: MasterConnectionOptions);
	/** The listed slaves, indexed by id (a sparse array: `undefined` where no slave has that id). */
	slaves: Array<SlaveConnection | undefined>;
	/** The master connected to (or last, while reconnecting), as given; null until the first connection. */
	readonly masterUrl: string | null;
	/** Closes the connection to the master for good and every connection to a slave; resolves once done. */
	close(): Promise<void>;
	/** See {@link MasterConnectionEvents}. */
	on<E extends keyof MasterConnectionEvents>(event: E, listener: MasterConnectionEvents[E]): this;
	on<E extends string | symbol>(event: OtherEvent<E, MasterConnectionEvents>, listener: (...args: any[]) => void): this;
	once<E extends keyof MasterConnectionEvents>(event: E, listener: MasterConnectionEvents[E]): this;
	once<E extends string | symbol>(event: OtherEvent<E, MasterConnectionEvents>, listener: (...args: any[]) => void): this;
	off<E extends keyof MasterConnectionEvents>(event: E, listener: MasterConnectionEvents[E]): this;
	off<E extends string | symbol>(event: OtherEvent<E, MasterConnectionEvents>, listener: (...args: any[]) => void): this;
	/** As the browser bundle: listeners get plain arguments. */
	addEventListener<E extends keyof MasterConnectionEvents>(event: E, listener: MasterConnectionEvents[E]): void;
	removeEventListener<E extends keyof MasterConnectionEvents>(event: E, listener: MasterConnectionEvents[E]): void;
}

/** Figures for leak checks and monitoring. */
export interface Diagnostics {
	/** Tasks alive in the engine: each connection, channel and peer has a few; back to its baseline once they are gone. */
	readonly engineTasks: number;
	/** Log lines the `setLogger` logger lost because the main thread did not take them fast enough (at most 10,000 wait). */
	readonly droppedLogRecords: number;
}

/** Reads the engine's figures (cheap: no I/O). */
export declare function diagnostics(): Diagnostics;

/** A log line of the engine: its level, the Rust module it comes from, its message and its other fields (formatted). */
export type Logger = (level: 'error' | 'warn' | 'info' | 'debug' | 'trace', target: string, message: string, fields: Record<string, string>) => void;

/**
 * Sends the engine's logs to `logger`, in batches on the main thread (never
 * on the engine's hot path); `null` stops. `options.filter` chooses them
 * (tracing's EnvFilter syntax, as `ENSLAVISM_LOG`; default `ENSLAVISM_LOG`
 * if set, else `'warn,enslavism=info'`; the one filter also chooses what
 * `ENSLAVISM_LOG` prints on stderr); a bad one throws a `TypeError`
 * (`ERR_INVALID_ARG_VALUE`) and the logger in place stays. A logger does
 * not keep the process alive; one that throws loses that line only (a
 * process warning says so); at most 10,000 lines wait for the main thread,
 * more are dropped (`diagnostics().droppedLogRecords`).
 */
export declare function setLogger(logger: Logger | null, options?: { filter?: string }): void;
