// Type definitions for the enslavism browser client, imported from a bundler
// (`import { MasterConnection } from 'enslavism/client'`). A page that loads
// `<script src="/enslavism/client.js">` gets the same classes as globals:
// their declarations are in client/global.d.ts.

/** addEventListener/removeEventListener whose listeners get plain arguments, as in 0.9.0. */
declare class Emitter<Events extends Record<string, (...args: any[]) => void>> {
	addEventListener<K extends keyof Events>(event: K, listener: Events[K]): void;
	removeEventListener<K extends keyof Events>(event: K, listener: Events[K]): void;
}

/** One slave of the list; opens WebRTC data channels to it, signalling through the master. */
export declare class SlaveConnection extends Emitter<{
	/** The slave refused the connection; pending `createDataChannel` promises are rejected too. */
	rejected: () => void;
}> {
	/** Made by the MasterConnection that lists the slave. */
	private constructor();
	/** The slave's id, given by the master (a slave listed again after a reconnection keeps this object under its new id). */
	readonly id: number;
	/**
	 * What the slave registered with; replaced in place when the slave
	 * updates it (`slaveupdated` on the MasterConnection).
	 */
	readonly userData: unknown;
	/** The MasterConnection this slave was listed by. */
	readonly master: MasterConnection;
	/** The open data channels, by name. */
	dataChannels: Record<string, RTCDataChannel>;
	/** The peer connection to the slave, from `connect()` (or the first channel) until `close()`. */
	readonly slaveCon: RTCPeerConnection | undefined;
	/** Starts the peer connection early; channels created later share it. */
	connect(): void;
	/** Closes the peer connection and every channel opened from it; `connect()` may be called again. */
	close(): void;
	/**
	 * Opens a data channel (connecting first if needed). Resolves with the open
	 * channel; rejects if the slave refuses (`err.code === 'REJECTED'`), if the
	 * master is not connected when an offer must be sent
	 * (`err.code === 'MASTER_UNAVAILABLE'`), or if the connection fails or is
	 * closed first.
	 */
	createDataChannel(dataChannelName: string, dcOptions?: RTCDataChannelInit): Promise<RTCDataChannel>;
}

/** The connection to the master: the live list of slaves. */
export declare class MasterConnection extends Emitter<{
	/** A slave joined the list. */
	slaveadded: (slaveCo: SlaveConnection) => void;
	/** A slave left the list; its connection was closed. */
	slaveremoved: (slaveCo: SlaveConnection) => void;
	/**
	 * A listed slave has new userData (`slaveCo.userData` is it now); its
	 * connection and open channels are not touched.
	 */
	slaveupdated: (slaveCo: SlaveConnection) => void;
	/**
	 * The WebSocket to the master closed (after an auth refusal, `code` is 1006
	 * and it never opened). Unless `close()` was called or the connection never
	 * opened, it reconnects by itself (option `reconnect`); failed attempts are
	 * not reported. A master that sent nothing for `deadMasterTimeout` ms is
	 * reported as a close too (code 1006), then reconnected to.
	 */
	close: (event: { code: number; reason: string; wasClean: boolean }) => void;
	/**
	 * Connected to a master again (`info.url`, as given: the same one or the
	 * next of the list), and the list brought up to date: a slave listed
	 * under the id it had (masters in a cluster give a slave the same id on
	 * every master) is the same slave, with no event (but `slaveupdated` if
	 * its userData changed); a slave that registered again with the same
	 * userData (one no other earlier slave had) keeps its SlaveConnection
	 * (and open channels) under its new id (`slaverelisted`); new slaves fire
	 * `slaveadded`; slaves that do not register again within `resyncGrace`
	 * fire `slaveremoved`.
	 */
	reconnected: (info: { url: string }) => void;
	/**
	 * A slave listed before a reconnection to the master is listed again (it
	 * registered again with the same userData): the same SlaveConnection,
	 * with its open channels, under its new id (`slaveCo.id`).
	 */
	slaverelisted: (slaveCo: SlaveConnection) => void;
}> {
	/**
	 * Connects to `masterWsUrl + '/enslavism/clients'`, e.g. `new MasterConnection('ws://localhost:8081')`.
	 * Given an array of URLs (masters to fail over to, in order of
	 * preference), to the first that answers; when the connection drops, to
	 * the next one (round robin, the one that dropped last; the backoff is
	 * waited between full rounds), and the list is brought up to date there.
	 */
	constructor(masterWsUrl: string | string[], options?: MasterConnectionOptions);
	/** The listed slaves, indexed by id (a sparse array: `undefined` where no slave has that id). */
	slaves: Array<SlaveConnection | undefined>;
	/** The master connected to (or last, while reconnecting), as given. */
	readonly masterUrl: string;
	/**
	 * Closes the connection to the master for good (no reconnection); open data
	 * channels stay open. Slaves still waiting to be listed again after a
	 * reconnection are removed (`slaveremoved`).
	 */
	close(): void;
}

/** Options of a MasterConnection. */
export interface MasterConnectionOptions {
	/** Reconnect (with backoff) when an established connection to the master drops. Default true. */
	reconnect?: boolean;
	/** Longest wait (ms) between reconnection attempts; the wait doubles from 250 ms. Default 2000. */
	reconnectMaxDelay?: number;
	/**
	 * After a reconnection, how long (ms) a slave missing from the new list may
	 * take to register again (same userData) before it is removed. Default 5000.
	 */
	resyncGrace?: number;
	/**
	 * How long (ms) a master may send nothing, not even an answer to the
	 * pings sent after a third of this, before it is taken for gone (a cut
	 * cable, a frozen VM) and handled like a close: reconnect, resync. Needs a
	 * master of ours (0.9.0 masters do not answer pings). 0 turns it off. Default 15000.
	 */
	deadMasterTimeout?: number;
	/** STUN/TURN servers for every connection to a slave (players behind strict NATs need TURN). Default none. */
	iceServers?: RTCIceServer[];
	/** `'relay'` connects through a TURN server only; default `'all'`. */
	iceTransportPolicy?: RTCIceTransportPolicy;
}
