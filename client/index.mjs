// enslavism browser client: MasterConnection lists the slaves, SlaveConnection
// opens WebRTC data channels to one of them, signalling through the master.
//
// Style rules (the master's build turns this module into a classic script):
// no imports; exports only as `export class|function|const NAME` at the start
// of a line.

const TYPE = Object.freeze({
	addSlaves: 1,
	removeSlaves: 2,
	offerToSlave: 3,
	answerFromSlave: 6,
	iceCandidateToSlave: 7,
	iceCandidateFromSlave: 10,
	rejectFromSlave: 12,
	updateSlaves: 15,
	ping: 16,
	pong: 17,
});

// Offered in the WebSocket handshake, V1 (0.9.0's messages) first: a 0.9.0
// master agrees to the first one offered, ours to V2, with live userData
// updates and pings.
const SUBPROTOCOL_V1 = 'enslavism.1';
const SUBPROTOCOL_V2 = 'enslavism.2';

// Unreliable channels: webrtc-rs treats a channel the browser opens in-band
// as reliable whatever it asked for, so channels with maxRetransmits or
// maxPacketLifeTime are opened as negotiated (agreed stream id) and listed in
// the offer, one attribute each; a slave that created them marks its answer.
// A slave that does not (enslavism 0.9.0) gets in-band channels instead.
const NEGOTIATED_CHANNEL_ATTRIBUTE = 'a=x-enslavism-channel:';
const NEGOTIATED_SUPPORT_LINE = 'a=x-enslavism-negotiated:1';
// Above the ids browsers give in-band channels first; any free id works.
const FIRST_NEGOTIATED_STREAM_ID = 256;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A frame of `type`, then `id` (u32, big-endian), then `rest`. */
function routedFrame(type, id, rest) {
	const frame = new Uint8Array(5 + rest.byteLength);
	frame[0] = type;
	new DataView(frame.buffer).setUint32(1, id);
	frame.set(rest, 5);
	return frame;
}

function encodeOffer(slaveId, sdp) {
	return routedFrame(TYPE.offerToSlave, slaveId, encoder.encode(sdp));
}

function encodeCandidate(slaveId, candidate) {
	const mid = encoder.encode(candidate.sdpMid ?? String(candidate.sdpMLineIndex ?? 0));
	if (mid.byteLength === 0 || mid.byteLength > 255) throw new RangeError('sdpMid must be 1 to 255 bytes');
	const line = encoder.encode(candidate.candidate);
	const rest = new Uint8Array(3 + mid.byteLength + line.byteLength);
	rest[0] = mid.byteLength;
	rest.set(mid, 1);
	new DataView(rest.buffer).setUint16(1 + mid.byteLength, candidate.sdpMLineIndex ?? 0);
	rest.set(line, 3 + mid.byteLength);
	return routedFrame(TYPE.iceCandidateToSlave, slaveId, rest);
}

/** Decodes a master → client frame; returns null for anything malformed. */
function decodeFrame(buffer) {
	const bytes = new Uint8Array(buffer);
	const view = new DataView(buffer);
	try {
		switch (bytes[0]) {
			case TYPE.addSlaves:
			case TYPE.updateSlaves: {
				const slaves = [];
				for (let offset = 1; offset < bytes.byteLength;) {
					const id = view.getUint32(offset);
					const length = view.getUint16(offset + 4);
					const end = offset + 6 + length;
					if (end > bytes.byteLength) return null;
					slaves.push({ id, userData: JSON.parse(decoder.decode(bytes.subarray(offset + 6, end))) });
					offset = end;
				}
				return { type: bytes[0], slaves };
			}
			case TYPE.removeSlaves:
				return { type: TYPE.removeSlaves, ids: JSON.parse(decoder.decode(bytes.subarray(1))) };
			case TYPE.answerFromSlave:
				return { type: TYPE.answerFromSlave, id: view.getUint32(1), sdp: decoder.decode(bytes.subarray(5)) };
			case TYPE.iceCandidateFromSlave: {
				const id = view.getUint32(1);
				const midLength = view.getUint8(5);
				if (midLength === 0) return { type: TYPE.iceCandidateFromSlave, id, candidate: null };
				const sdpMid = decoder.decode(bytes.subarray(6, 6 + midLength));
				const sdpMLineIndex = view.getUint16(6 + midLength);
				const candidate = decoder.decode(bytes.subarray(8 + midLength));
				return { type: TYPE.iceCandidateFromSlave, id, candidate: { candidate, sdpMid, sdpMLineIndex } };
			}
			case TYPE.rejectFromSlave:
				if (bytes.byteLength !== 5) return null;
				return { type: TYPE.rejectFromSlave, id: view.getUint32(1) };
			case TYPE.pong:
				if (bytes.byteLength !== 5) return null;
				return { type: TYPE.pong };
			default:
				return null;
		}
	} catch {
		// Out-of-range reads and bad JSON: the frame is malformed.
		return null;
	}
}

/** addEventListener/removeEventListener with listeners called with plain arguments, as in 0.9.0. */
class Emitter {
	#listeners = new Map();

	/** Calls `listener` each time `event` happens. */
	addEventListener(event, listener) {
		if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
		this.#listeners.get(event).add(listener);
	}

	/** Stops calling `listener` for `event`. */
	removeEventListener(event, listener) {
		this.#listeners.get(event)?.delete(listener);
	}

	_emit(event, ...args) {
		for (const listener of [...(this.#listeners.get(event) ?? [])]) {
			try {
				listener.apply(this, args);
			} catch (err) {
				// One faulty listener must not stop the others (nor our state updates).
				setTimeout(() => { throw err; });
			}
		}
	}
}

/** One slave of the list: opens data channels to it over WebRTC. */
export class SlaveConnection extends Emitter {
	/** @internal Created by MasterConnection. */
	constructor(id, userData, master) {
		super();
		/** The slave's id, given by the master. */
		this.id = id;
		/** What the slave registered with. */
		this.userData = userData;
		/** The MasterConnection this slave was listed by. */
		this.master = master;
		/** Open data channels by name. */
		this.dataChannels = {};
		this.slaveCon = undefined;
		this._pending = new Set();
		// Set while the master connection is being resynchronised and this
		// slave is not listed again yet: its id means nothing to the new master.
		this._orphaned = false;
		this._resetSession();
	}

	_resetSession() {
		this._remoteSet = false;
		this._queuedCandidates = [];
		// Unreliable channels are negotiated (see NEGOTIATED_* above): whether
		// this slave supports it is learnt from its first answer.
		this._negotiatedSupport = undefined;
		this._offerSent = false;
		this._channelSpecs = [];
		this._unconfirmed = [];
		this._nextStreamId = FIRST_NEGOTIATED_STREAM_ID;
		this._renegotiation = 'idle';
	}

	/** Starts a peer connection to the slave (channels created later share it). */
	connect() {
		if (this.slaveCon !== undefined) return;
		const pc = new RTCPeerConnection(this.master._rtcConfiguration);
		this.slaveCon = pc;
		this._resetSession();
		pc.addEventListener('icecandidate', (ev) => {
			// The end-of-candidates marker is not sent: 0.9.0 slaves cannot take it.
			if (this.slaveCon !== pc || !ev.candidate || !ev.candidate.candidate || this._orphaned) return;
			this.master._send(encodeCandidate(this.id, ev.candidate));
		});
		// Fired once, for the first channel; later in-band channels open on the
		// same SCTP association without a new offer.
		pc.addEventListener('negotiationneeded', () => {
			if (!this._offerSent) this._sendOffer(pc);
		});
		pc.addEventListener('connectionstatechange', () => {
			// A failed connection is dropped, so that the next channel reconnects.
			if (this.slaveCon === pc && pc.connectionState === 'failed') {
				this._failPending(new Error(`connection to slave ${this.id} failed`));
				this.close();
			}
		});
	}

	/** Closes the peer connection and every channel it opened; `connect()` may be called again. */
	close() {
		this._failPending(new Error(`connection to slave ${this.id} closed`));
		if (this.slaveCon !== undefined) {
			this.slaveCon.close();
			this.slaveCon = undefined;
			this.dataChannels = {};
		}
	}

	/**
	 * Opens a data channel named `dcName` (connecting first if needed).
	 * Resolves with the open RTCDataChannel; rejects if the slave refuses or
	 * the connection fails or closes first.
	 */
	createDataChannel(dcName, dcOptions) {
		return new Promise((resolve, reject) => {
			this.connect();
			const pending = { reject };
			this._pending.add(pending);
			const settle = (dc) => this._whenOpen(dc, dcName, pending, resolve);
			const unreliable = dcOptions != null && !dcOptions.negotiated
				&& (dcOptions.maxRetransmits != null || dcOptions.maxPacketLifeTime != null);
			try {
				if (!unreliable || this._negotiatedSupport === false) {
					settle(this.slaveCon.createDataChannel(dcName, dcOptions));
					return;
				}
				const id = this._nextStreamId++;
				const dc = this.slaveCon.createDataChannel(dcName, { ...dcOptions, negotiated: true, id });
				this._channelSpecs.push({
					id,
					label: dcName,
					ordered: dcOptions.ordered ?? true,
					maxRetransmits: dcOptions.maxRetransmits ?? null,
					maxPacketLifeTime: dcOptions.maxPacketLifeTime ?? null,
					protocol: dcOptions.protocol ?? '',
				});
				this._unconfirmed.push({
					id,
					dc,
					offered: false,
					confirm: (supported) => {
						if (supported) {
							settle(dc);
						} else {
							// A slave that does not know negotiated channels (0.9.0):
							// open the channel in-band instead.
							dc.close();
							const { negotiated, id: _, ...inBand } = dcOptions;
							settle(this.slaveCon.createDataChannel(dcName, inBand));
						}
					},
				});
				// The first offer lists it; after that, a new offer must.
				if (this._offerSent) this._renegotiate();
			} catch (err) {
				this._pending.delete(pending);
				reject(err);
			}
		});
	}

	/** Resolves `resolve(dc)` once `dc` is open (unless `pending` failed first). */
	_whenOpen(dc, dcName, pending, resolve) {
		const opened = () => {
			if (!this._pending.delete(pending)) return;
			this.dataChannels[dcName] = dc;
			resolve(dc);
		};
		dc.addEventListener('open', opened, { once: true });
		// On an established association some implementations (libwebrtc in
		// Node) open the channel at once and fire no 'open' event.
		if (dc.readyState === 'open') queueMicrotask(opened);
		dc.addEventListener('close', () => {
			if (this._pending.delete(pending)) pending.reject(new Error(`data channel ${dcName} closed before opening`));
			if (this.dataChannels[dcName] === dc) delete this.dataChannels[dcName];
		}, { once: true });
	}

	/** Sends an offer listing every negotiated channel of this session. */
	async _sendOffer(pc) {
		try {
			this._offerSent = true;
			if (this._renegotiation === 'idle') this._renegotiation = 'offering';
			const offer = await pc.createOffer();
			await pc.setLocalDescription(offer);
			if (this.slaveCon !== pc) return;
			for (const entry of this._unconfirmed) entry.offered = true;
			let sdp = offer.sdp;
			if (this._channelSpecs.length > 0) {
				if (!sdp.endsWith('\r\n')) sdp += '\r\n';
				for (const spec of this._channelSpecs) sdp += `${NEGOTIATED_CHANNEL_ATTRIBUTE}${JSON.stringify(spec)}\r\n`;
			}
			// An orphan's id belongs to the previous master: never send it.
			if (this._orphaned || !this.master._send(encodeOffer(this.id, sdp))) {
				const err = new Error('the master is not connected: cannot reach the slave');
				err.code = 'MASTER_UNAVAILABLE';
				throw err;
			}
		} catch (err) {
			// Only this connection's channels fail; a newer connection is not ours to touch.
			if (this.slaveCon === pc) {
				this._renegotiation = 'idle';
				this._failPending(err);
				// A connection that never got an answer is of no use: the next channel starts afresh.
				if (!this._remoteSet) this.close();
			}
		}
	}

	/** A new offer for channels created after the first offer: one offer in flight at a time. */
	_renegotiate() {
		if (this._renegotiation !== 'idle') {
			this._renegotiation = 'again'; // once the answer in flight is in
			return;
		}
		this._renegotiation = 'offering';
		// Channels created in the same task share the offer.
		queueMicrotask(() => {
			if (this.slaveCon !== undefined) this._sendOffer(this.slaveCon);
		});
	}

	_failPending(err) {
		const pending = [...this._pending];
		this._pending.clear();
		for (const p of pending) p.reject(err);
	}

	async _setRemoteDescription(sdp) {
		const pc = this.slaveCon;
		if (pc === undefined || pc.signalingState !== 'have-local-offer') return;
		try {
			await pc.setRemoteDescription({ type: 'answer', sdp });
			this._remoteSet = true;
			const supported = sdp.includes(NEGOTIATED_SUPPORT_LINE);
			this._negotiatedSupport = supported;
			// Without support every waiting channel falls back to in-band now.
			const answered = this._unconfirmed.filter((e) => e.offered || !supported);
			this._unconfirmed = this._unconfirmed.filter((e) => !answered.includes(e));
			for (const entry of answered) entry.confirm(supported);
			// A slave without negotiated channels (0.9.0) makes a new connection
			// for every offer: never send it a second one.
			const again = supported && (this._renegotiation === 'again' || this._unconfirmed.length > 0);
			this._renegotiation = 'idle';
			if (again) this._renegotiate();
			for (const c of this._queuedCandidates.splice(0)) await this._addIceCandidate(c);
		} catch (err) {
			if (this.slaveCon === pc) {
				this._renegotiation = 'idle';
				this._failPending(err);
			}
		}
	}

	async _addIceCandidate(candidate) {
		const pc = this.slaveCon;
		if (pc === undefined) return;
		if (!this._remoteSet) {
			this._queuedCandidates.push(candidate);
			return;
		}
		try {
			await pc.addIceCandidate(candidate ?? undefined);
		} catch {
			// A candidate the browser cannot use (another address family, say) is not fatal.
		}
	}

	_rejected() {
		const err = new Error(`slave ${this.id} rejected the connection`);
		err.code = 'REJECTED';
		this._failPending(err);
		if (this._remoteSet) {
			// A refused renegotiation (the master refuses offers sent too fast)
			// leaves the established connection and its channels alone: only the
			// channels that offer carried are dropped.
			const refused = this._unconfirmed.filter((e) => e.offered);
			this._unconfirmed = this._unconfirmed.filter((e) => !e.offered);
			this._channelSpecs = this._channelSpecs.filter((spec) => !refused.some((e) => e.id === spec.id));
			for (const entry of refused) entry.dc.close();
			this._renegotiation = 'idle';
		} else {
			this.close();
		}
		this._emit('rejected');
	}
}

/** First wait before reconnecting to the master; it doubles up to `reconnectMaxDelay`. */
const RECONNECT_INITIAL_DELAY = 250;

/** The connection to the master: the live list of slaves. */
export class MasterConnection extends Emitter {
	/**
	 * Connects to the master at `masterWsUrl` (e.g. `ws://localhost:8081`),
	 * or, given an array of URLs, to the first master of it that answers:
	 * when the connection drops, the next one is tried (round robin, the one
	 * that dropped last), and the list is brought up to date there.
	 * Options: `reconnect` (default true: when an established connection
	 * drops, connect again with backoff and bring the list up to date),
	 * `reconnectMaxDelay` (ms, default 2000) and `resyncGrace` (ms, default
	 * 5000: how long a slave missing after a reconnection may take to
	 * register again before it is removed). `iceServers` (STUN/TURN servers,
	 * as RTCIceServer objects) and `iceTransportPolicy` (`'all'` or
	 * `'relay'`) are passed to every RTCPeerConnection made to a slave.
	 * `deadMasterTimeout` (ms, default 15000; 0 turns it off): a master of
	 * ours that sends nothing for that long, pings included, is taken for
	 * gone (a cut cable, a frozen VM) and handled like a close.
	 */
	constructor(masterWsUrl, options = {}) {
		super();
		/** The listed slaves, indexed by id. */
		this.slaves = [];
		// The masters as given, in order of preference; the one in use, and the one tried now.
		this._masterUrls = (Array.isArray(masterWsUrl) ? masterWsUrl : [masterWsUrl]).map(String);
		if (this._masterUrls.length === 0) throw new TypeError('masterWsUrl must name at least one master');
		this._current = 0;
		this._attempt = 0;
		// Attempts left in this round of the list before the backoff is waited.
		this._left = this._masterUrls.length;
		this._reconnect = options.reconnect ?? true;
		this._reconnectMaxDelay = options.reconnectMaxDelay ?? 2000;
		this._resyncGrace = options.resyncGrace ?? 5000;
		this._deadMasterTimeout = options.deadMasterTimeout ?? 15000;
		/** @internal The RTCConfiguration of every connection to a slave. */
		this._rtcConfiguration = {};
		if (options.iceServers !== undefined) this._rtcConfiguration.iceServers = options.iceServers;
		if (options.iceTransportPolicy !== undefined) this._rtcConfiguration.iceTransportPolicy = options.iceTransportPolicy;
		// Slaves listed before a reconnection and not (yet) listed again.
		this._orphans = [];
		this._orphanTimer = undefined;
		this._delay = RECONNECT_INITIAL_DELAY;
		this._everOpen = false;
		this._closed = false;
		this._retry = undefined;
		this._open();
	}

	/** The master connected to (or last connected to, while reconnecting), as given. */
	get masterUrl() {
		return this._masterUrls[this._current];
	}

	/** Closes the connection to the master (no reconnection); open data channels stay open. */
	close() {
		this._closed = true;
		clearTimeout(this._retry);
		// Slaves still waiting to be listed again never will be.
		this._dropOrphans();
		this._masterSocket.close();
	}

	_open() {
		const url = this._masterUrls[this._attempt].replace(/\/+$/, '') + '/enslavism/clients';
		const socket = new WebSocket(url, [SUBPROTOCOL_V1, SUBPROTOCOL_V2]);
		this._masterSocket = socket;
		socket.binaryType = 'arraybuffer';
		// The first list after a reconnection replaces the whole list.
		const reconnecting = this._everOpen;
		let fresh = reconnecting;
		let opened = false;
		let ended = false;
		let watchdog;
		let lastHeard = 0;
		const end = (code, reason, wasClean) => {
			if (ended) return;
			ended = true;
			clearInterval(watchdog);
			const count = this._masterUrls.length;
			// The first connection tries every master in turn before it fails.
			if (!opened && !this._everOpen && !this._closed && this._attempt + 1 < count) {
				this._attempt += 1;
				this._open();
				return;
			}
			// Reported for a connection that was open, and for a first connection
			// that failed (a refusal); failed reconnection attempts are not news.
			if (opened || !reconnecting) this._emit('close', { code, reason, wasClean });
			// Never after close(), nor for a connection that was refused from the start.
			if (this._closed || !this._reconnect || !this._everOpen) return;
			// Round robin from the master after the one that dropped: within a
			// round the next one at once, the backoff before each round but the
			// first after a drop, which starts at once when there is another
			// master to go to (a lone master needs time to come back).
			let roundOver = false;
			if (opened) {
				this._left = count;
				roundOver = count === 1;
			} else if (--this._left === 0) {
				this._left = count;
				roundOver = true;
			}
			this._attempt = (this._attempt + 1) % count;
			this._retry = setTimeout(() => this._open(), roundOver ? this._delay : 0);
			if (roundOver) this._delay = Math.min(this._delay * 2, this._reconnectMaxDelay);
		};
		socket.addEventListener('open', () => {
			opened = true;
			this._current = this._attempt;
			this._delay = RECONNECT_INITIAL_DELAY;
			this._everOpen = true;
			if (socket.protocol === SUBPROTOCOL_V2 && this._deadMasterTimeout > 0) {
				// A ping a third of the timeout after the last frame heard: a live
				// master always answers well within the timeout.
				lastHeard = Date.now();
				const ping = new Uint8Array(5);
				ping[0] = TYPE.ping;
				watchdog = setInterval(() => {
					const silent = Date.now() - lastHeard;
					if (silent >= this._deadMasterTimeout) {
						// Closing waits for a master that will never answer: the
						// connection is over now, the socket's own close event ignored.
						end(1006, 'the master sent nothing for ' + this._deadMasterTimeout + ' ms', false);
						socket.close();
					} else if (silent >= this._deadMasterTimeout / 3) {
						this._send(ping);
					}
				}, Math.max(50, this._deadMasterTimeout / 6));
			}
		});
		socket.addEventListener('message', (ev) => {
			if (ended) return;
			lastHeard = Date.now();
			const resync = fresh;
			fresh = false;
			this._onFrame(ev.data, resync);
			// Once the list is up to date, not before.
			if (resync) this._emit('reconnected', { url: this.masterUrl });
		});
		socket.addEventListener('close', (ev) => end(ev.code, ev.reason, ev.wasClean));
	}

	/** Sends a frame; false when the master is not connected. */
	_send(frame) {
		if (this._masterSocket.readyState !== WebSocket.OPEN) return false;
		this._masterSocket.send(frame);
		return true;
	}

	/**
	 * Brings the list up to date after a reconnection. A slave listed under
	 * the id and userData a slave had before is that slave (masters in a
	 * cluster give a slave the same id on every master): its SlaveConnection
	 * is kept, with no event at all. (Both must match: a lone master that
	 * restarted gives ids afresh, to whichever slave comes first.)
	 * Otherwise ids are the new master's; a slave with the
	 * same userData as one listed before is the same slave (it registered
	 * again): its SlaveConnection is kept, with its open channels, under its
	 * new id (`slaverelisted`). Slaves may register again after this client
	 * is back, so the ones missing from the first list wait `resyncGrace` ms
	 * before they are removed.
	 */
	_resync(listed) {
		for (const slaveCo of this.slaves) {
			if (slaveCo === undefined) continue;
			slaveCo._orphaned = true;
			this._orphans.push(slaveCo);
		}
		this.slaves = [];
		this._addSlaves(listed);
		clearTimeout(this._orphanTimer);
		if (this._orphans.length > 0) this._orphanTimer = setTimeout(() => this._dropOrphans(), this._resyncGrace);
	}

	_addSlaves(listed) {
		// Orphans by their id, and by userData: only a userData that one
		// orphan alone has is proof enough that a newly listed slave is that one.
		// With none (every list but the first after a reconnection), nothing to match.
		const orphaned = this._orphans.length > 0;
		const orphansById = new Map();
		const orphansByData = new Map();
		for (const orphan of this._orphans) {
			const key = JSON.stringify(orphan.userData);
			orphansById.set(orphan.id, { orphan, key });
			if (!orphansByData.has(key)) orphansByData.set(key, new Set());
			orphansByData.get(key).add(orphan);
		}
		const take = (orphan, key) => {
			orphansById.delete(orphan.id);
			orphansByData.get(key).delete(orphan);
			orphan._orphaned = false;
		};
		for (const { id, userData } of listed) {
			if (this.slaves[id] !== undefined) {
				// Listed already: a 0.9.0 master lists a slave again when it
				// registers a second time (masters never reuse ids).
				this._updateSlave(id, userData);
				continue;
			}
			const key = orphaned ? JSON.stringify(userData) : null;
			const kept = orphaned ? orphansById.get(id) : undefined;
			if (kept !== undefined && kept.key === key) {
				// The same id and userData: the same slave (clustered masters), no flicker.
				take(kept.orphan, key);
				this.slaves[id] = kept.orphan;
				continue;
			}
			const same = orphaned ? orphansByData.get(key) : undefined;
			const orphan = same?.size === 1 ? same.values().next().value : null;
			if (orphan) {
				take(orphan, key);
				orphan.id = id;
				this.slaves[id] = orphan;
				this._emit('slaverelisted', orphan);
				continue;
			}
			const slaveCo = new SlaveConnection(id, userData, this);
			this.slaves[id] = slaveCo;
			this._emit('slaveadded', slaveCo);
		}
		if (orphaned) this._orphans = this._orphans.filter((orphan) => orphan._orphaned);
	}

	/** New userData for a listed slave: changed in place, its connection untouched. */
	_updateSlave(id, userData) {
		const slaveCo = this.slaves[id];
		if (slaveCo === undefined) return;
		slaveCo.userData = userData;
		this._emit('slaveupdated', slaveCo);
	}

	_dropOrphans() {
		clearTimeout(this._orphanTimer);
		for (const gone of this._orphans.splice(0)) {
			gone.close();
			this._emit('slaveremoved', gone);
		}
	}

	_onFrame(data, resync) {
		if (!(data instanceof ArrayBuffer)) return;
		const msg = decodeFrame(data);
		if (msg === null) return;
		if (resync && msg.type === TYPE.addSlaves) {
			this._resync(msg.slaves);
			return;
		}
		switch (msg.type) {
			case TYPE.addSlaves:
				this._addSlaves(msg.slaves);
				break;
			case TYPE.updateSlaves:
				for (const { id, userData } of msg.slaves) this._updateSlave(id, userData);
				break;
			case TYPE.removeSlaves:
				for (const id of msg.ids) {
					const slaveCo = this.slaves[id];
					if (slaveCo === undefined) continue;
					slaveCo.close();
					delete this.slaves[id];
					this._emit('slaveremoved', slaveCo);
				}
				break;
			case TYPE.answerFromSlave:
				this.slaves[msg.id]?._setRemoteDescription(msg.sdp);
				break;
			case TYPE.iceCandidateFromSlave:
				this.slaves[msg.id]?._addIceCandidate(msg.candidate);
				break;
			case TYPE.rejectFromSlave:
				this.slaves[msg.id]?._rejected();
				break;
		}
	}
}
