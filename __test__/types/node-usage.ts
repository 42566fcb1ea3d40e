// Every documented part of the Node API (README "Node.js API", index.d.ts),
// as an application uses it. Type-checked only (`tsc --noEmit`), never run.
// `// @ts-expect-error` marks misuse that the typings must refuse.

import * as http from 'node:http';
import * as https from 'node:https';
import {
	ClientConnection, DataChannel, Master, MasterConnection, PeerSocket, Slave, SlaveConnection, diagnostics, setLogger,
	type ConnectionStats, type Logger, type MasterStats, type MonitoringRequest, type SlaveStats, type TrafficStats,
	type AuthData, type AuthInfo, type DataChannelErrorEvent, type DataChannelEvent, type DataChannelMessageEvent,
	type MasterCloseEvent, type MasterConnectionOptions, type MasterOptions, type RegisteredSlave, type RejectFunction,
	type SlaveOptions, type TlsIdentity, type ClusterOptions, type RemoteSlave,
} from 'enslavism';

/** Compiles only when `A` and `B` are the same type (not merely assignable, and not `any`). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
function expectType<A, B>(_proof: Equal<A, B>): void {}

declare const pem: string;
declare const key: Buffer;

// ---- Master ----------------------------------------------------------------

const options: MasterOptions = {
	host: '127.0.0.1',
	maxMessageSize: 262144,
	outboundQueueLength: 1024,
	handshakeTimeout: 10000,
	authTimeout: 10000,
	heartbeatInterval: 5000,
	heartbeatTimeout: 10000,
	maxConnections: 50000,
	maxUserDataSize: 65535,
	maxUserDataUpdatesPerSecond: 10,
	maxOffersPerSecond: 10,
	maxCandidatesPerSecond: 200,
};
const identity: TlsIdentity = { key, cert: pem };
const master = new Master(8080, options);
const ownTls = new Master(8443, { tls: identity });
ownTls.setTLS({ key: pem, cert: key });
const attached = new Master(http.createServer((req, res) => res.end('Hello world')));
const secure = new Master(https.createServer({ key, cert: pem }).listen(443), { maxConnections: 10 });

expectType<number | null, typeof master.port>(true);
const counts: { slaves: number; clients: number } = master.peerCounts;
for (const [id, slave] of master.slaves) {
	expectType<number, typeof id>(true);
	expectType<RegisteredSlave, typeof slave>(true);
}
const closed: Promise<void> = master.close();

// ---- monitoring --------------------------------------------------------------

const monitored = new Master(8082, {
	metrics: true,
	status: true,
	metricsAuth: (req: MonitoringRequest) => req.headers.authorization === 'Bearer token' && req.socket.remoteAddress !== undefined,
});
new Master(8083, { metrics: true, metricsAuth: async () => true });
const stats: MasterStats = monitored.stats();
const framesIn: number = stats.framesIn + stats.bytesOut + stats.offers + stats.refusedHandshakes + stats.droppedPeers;
const metricsText: string = monitored.metrics();
// @ts-expect-error: metrics is a switch
new Master(8084, { metrics: 'yes' });
// @ts-expect-error: metricsAuth answers a boolean
new Master(8085, { metricsAuth: () => 'yes' });

// ---- several masters, one lobby ---------------------------------------------
const cluster: ClusterOptions = { redis: 'redis://127.0.0.1:6379', name: 'eu', slaveTtl: 6000, relayTimeout: 10_000, redisTimeout: 2000 };
const clustered = new Master(8086, { cluster });
clustered.on('clusterconnect', (node: number) => console.log(node));
clustered.on('clusterdisconnect', (reason: string) => console.warn(reason));
clustered.on('remoteslaveregister', (s: RemoteSlave) => console.log(s.id, s.node, s.userData));
clustered.on('remoteslaveupdate', (s) => console.log(s.userData));
clustered.on('remoteslaveunregister', (s) => console.log(s.id));
const remote: RemoteSlave | undefined = clustered.remoteSlaves.get(0);
const remoteCount: number = clustered.stats().remoteSlaves + (remote?.node ?? 0);
// @ts-expect-error: the Redis URL is required
new Master(8087, { cluster: { name: 'eu' } });

// ---- logs --------------------------------------------------------------------

const logger: Logger = (level, target, message, fields) => console.log(level.toUpperCase(), target, message, fields.id);
setLogger(logger, { filter: 'enslavism=debug' });
setLogger((level: 'error' | 'warn' | 'info' | 'debug' | 'trace') => level);
setLogger(null);
// @ts-expect-error: a logger is a function
setLogger(console);
// @ts-expect-error: the filter is a string
setLogger(logger, { filter: 3 });

master.on('slaveauth', (authData, reject, info) => {
	expectType<AuthData, typeof authData>(true);
	expectType<RejectFunction, typeof reject>(true);
	expectType<AuthInfo, typeof info>(true);
	if (authData.username !== 'getkey' || authData.password !== 'secret') reject('Invalid credentials!');
});
master.on('clientauth', async (authData, reject, { remoteAddress, remotePort, headers }) => {
	const banned: boolean = remoteAddress === '10.0.0.1' && remotePort > 0 && headers['user-agent'] === 'bot';
	if (banned) reject();
});
master.once('clientauth', () => Promise.resolve(42));
master.on('slaveconnection', (ws) => {
	expectType<PeerSocket, typeof ws>(true);
	const { remoteAddress, remotePort, remoteFamily } = ws._socket;
	const family: 'IPv4' | 'IPv6' = remoteFamily;
	const kind: 'slave' | 'client' = ws.kind;
	console.log(ws.id, remoteAddress, remotePort, family, kind);
	if (ws.readyState === PeerSocket.OPEN) {
		ws.send('text');
		ws.send(Buffer.from([1]));
		ws.send(new Uint8Array(4).buffer);
		ws.send(new DataView(new ArrayBuffer(2)), (err) => { if (err) console.log(err.message); });
		ws.send(new Uint16Array(2), {}, (err?: Error) => err);
	}
	ws.on('close', (code, reason) => {
		expectType<number, typeof code>(true);
		expectType<string, typeof reason>(true);
	});
	ws.close(4000, 'bye');
	ws.close();
	ws.terminate();
});
master.on('clientconnection', (ws: PeerSocket) => ws.once('close', () => {}));
master.on('slaveregister', (slave) => {
	expectType<RegisteredSlave, typeof slave>(true);
	console.log(`Registered server ${slave.id} from ${slave.remoteAddress}:${slave.remotePort}`, slave.userData);
});
master.on('slaveupdate', (slave) => slave.userData);
master.once('slaveunregister', (slave: RegisteredSlave) => slave.id);
master.on('listening', () => console.log(master.port));
master.on('error', (err) => {
	const code: string | undefined = err.code;
	console.log(code, err.message);
});
const onListening = () => {};
master.on('listening', onListening).off('listening', onListening);
// Other events (EventEmitter's own) still take any listener.
master.on('newListener', (event: string | symbol) => event);

// @ts-expect-error: options are numbers
new Master(8080, { heartbeatTimeout: '10s' });
// @ts-expect-error: no such option
new Master(8080, { maxConection: 10 });
// @ts-expect-error: not a port nor a server
new Master('8080');
// @ts-expect-error: tls wants PEM strings or Buffers
new Master(8443, { tls: { key: 1, cert: pem } });
// @ts-expect-error: a slaveregister listener gets a RegisteredSlave
master.on('slaveregister', (slave: string) => slave);
// @ts-expect-error: an auth listener's first argument is the cookies object
master.on('slaveauth', (authData: number) => authData);
// @ts-expect-error: the master's 'error' listener gets an Error
master.on('error', (err: string) => err);
// @ts-expect-error: once is typed as on is
master.once('slaveconnection', (ws: RegisteredSlave) => ws);
// @ts-expect-error: read-only
master.port = 8081;
// @ts-expect-error: a PeerSocket is made by the master
new PeerSocket();

// ---- Slave -----------------------------------------------------------------

async function runSlave(): Promise<void> {
	const slaveOptions: SlaveOptions = {
		iceAddresses: ['0.0.0.0'],
		udpPort: 40000,
		iceServers: [{ urls: 'stun:stun.example.com:3478' }, { urls: ['turn:turn.example.com'], username: 'u', credential: 'c' }],
		publicAddresses: ['203.0.113.7'],
		ca: [pem, key],
		connectTimeout: 10000,
		offerTimeout: 10000,
		maxMessageSize: 16384,
		iceDisconnectedTimeout: 5000,
		iceFailedTimeout: 10000,
		peerSetupTimeout: 30000,
		iceNudge: true,
		reconnect: true,
		reconnectMaxDelay: 2000,
		heartbeatInterval: 5000,
		heartbeatTimeout: 10000,
		metricsPort: 9464,
		metricsHost: '127.0.0.1',
		metricsPerConnection: true,
	};
	const slave = await new Slave('ws://localhost:8081', { name: 'my game', players: 0 }, { username: 'getkey', password: 'secret' }, slaveOptions);
	expectType<Slave, typeof slave>(true);
	const ranged = await new Slave('wss://example.com', ['any', 'json'], undefined, { portRange: [40000, 40010], ca: pem });
	const bare: Promise<Slave> = new Slave('ws://localhost:8081', null);
	// Masters to fail over to, in order of preference.
	const failover = await new Slave(['ws://a.example:8081', 'ws://b.example:8081'], { name: 'my game' });
	const registeredWith: string = failover.masterUrl;
	console.log(registeredWith);
	console.log(ranged instanceof Slave, bare);

	const ports: number[] = slave.udpPorts;
	const metricsPort: number | null = slave.metricsPort;
	const slaveStats: SlaveStats = slave.stats();
	const p99: number | null = slaveStats.setupMs.p99;
	const exposition: string = slave.metrics();
	console.log(metricsPort, p99, exposition, slaveStats.connections + slaveStats.channels + slaveStats.messagesIn + slaveStats.bytesOut);
	const current: unknown = slave.userData;
	await slave.setUserData({ name: 'my game', players: slave.connections.length });
	console.log(ports, current);

	slave.on('offer', (reject, { clientId }) => {
		expectType<number, typeof clientId>(true);
		if (clientId === 13) reject();
	});
	slave.on('connection', (clientCo) => {
		expectType<ClientConnection, typeof clientCo>(true);
		const owner: Slave = clientCo.slave;
		const open: Record<string, DataChannel> = clientCo.dataChannels;
		console.log(clientCo.id, owner, open);
		clientCo.on('datachannel', (dc) => {
			expectType<DataChannel, typeof dc>(true);
			useChannel(dc);
		});
		clientCo.once('close', () => console.log('gone'));
		clientCo.getStats().then((stats: ConnectionStats) => {
			const rtt: number | null = stats.rttMs;
			const channelStats: TrafficStats | undefined = clientCo.dataChannels.game?.stats();
			console.log(rtt, stats.packetsIn, stats.selectedCandidatePair, channelStats?.messagesIn);
		});
	});
	slave.on('disconnected', ({ code, reason }) => console.log(code, reason));
	slave.once('reconnected', () => {});
	slave.on('reconnected', ({ url }) => console.log('registered with', url));
	slave.on('error', (err) => {
		const code: string = err.code;
		console.log(code);
	});
	await slave.close();

	// @ts-expect-error: authData is an object of strings
	await new Slave('ws://localhost:8081', {}, { password: 5 });
	// @ts-expect-error: metricsPerConnection is a boolean
	await new Slave('ws://localhost:8081', {}, {}, { metricsPerConnection: 1 });
	// @ts-expect-error: portRange is [first, last]
	await new Slave('ws://localhost:8081', {}, {}, { portRange: [40000] });
	// @ts-expect-error: iceNudge is a boolean
	await new Slave('ws://localhost:8081', {}, {}, { iceNudge: 'yes' });
	// @ts-expect-error: the master's URL is a string
	await new Slave(new URL('ws://localhost:8081'), {});
	// @ts-expect-error: so is each of several
	await new Slave(['ws://localhost:8081', new URL('ws://localhost:8082')], {});
	// @ts-expect-error: 'reconnected' gets { url }
	slave.on('reconnected', (url: string) => url);
	// @ts-expect-error: an offer listener gets reject() first
	slave.on('offer', (info: { clientId: number }) => info);
	// @ts-expect-error: 'disconnected' gets { code, reason }
	slave.on('disconnected', (code: number) => code);
	// @ts-expect-error: read-only
	slave.userData = {};
}

/** What a slave or a Node client does with a channel. */
function useChannel(dc: DataChannel): void {
	const facts: [string, string, boolean, number | null, number | null, number | null, boolean] = [
		dc.label, dc.protocol, dc.ordered, dc.maxRetransmits, dc.maxPacketLifeTime, dc.id, dc.negotiated,
	];
	const state: 'connecting' | 'open' | 'closing' | 'closed' = dc.readyState;
	const queued: number = dc.bufferedAmount;
	dc.bufferedAmountLowThreshold = 65536;
	dc.binaryType = 'arraybuffer';
	console.log(facts, state, queued);

	dc.on('open', () => dc.send('hallo welt'));
	dc.on('message', (ev) => {
		expectType<DataChannelMessageEvent, typeof ev>(true);
		expectType<string | ArrayBuffer, typeof ev.data>(true);
		const echo: DataChannel = ev.target;
		echo.send(typeof ev.data === 'string' ? ev.data : new Uint8Array(ev.data).reverse());
	});
	dc.once('close', (ev) => expectType<DataChannelEvent, typeof ev>(true));
	dc.on('error', (ev) => {
		expectType<DataChannelErrorEvent, typeof ev>(true);
		const code: string = ev.error.code;
		console.log(code);
	});
	dc.on('bufferedamountlow', () => dc.send(Buffer.alloc(100)));
	dc.addEventListener('message', (ev) => console.log(ev.data), { once: true });
	const handler = { handleEvent: (ev: DataChannelMessageEvent) => console.log(ev.data) };
	dc.addEventListener('message', handler);
	dc.removeEventListener('message', handler);
	dc.addEventListener('error', (ev) => console.log(ev.error.message));
	dc.onopen = (ev) => console.log(ev.type);
	dc.onmessage = (ev) => console.log(ev.data);
	dc.onclose = null;
	dc.onerror = (ev) => console.log(ev.error);
	dc.onbufferedamountlow = () => {};
	dc.send(new Float32Array(2));
	dc.close();

	// @ts-expect-error: a message event's data is a string or an ArrayBuffer
	dc.on('message', (ev: { data: number }) => ev);
	// @ts-expect-error: so is addEventListener's
	dc.addEventListener('message', (ev: { data: Blob }) => ev);
	// @ts-expect-error: only ArrayBuffers
	dc.binaryType = 'blob';
	// @ts-expect-error: numbers are not sent
	dc.send(42);
	// @ts-expect-error: read-only
	dc.readyState = 'closed';
	// @ts-expect-error: a DataChannel is made by the slave or the client
	new DataChannel();
}

// ---- MasterConnection (Node) ----------------------------------------------

async function runClient(): Promise<void> {
	const clientOptions: MasterConnectionOptions = {
		iceAddresses: ['10.0.0.5'],
		iceServers: [{ urls: 'turn:turn.example.com:3478', username: 'player', credential: 'secret' }],
		authData: { token: 'abc' },
		ca: pem,
		reconnect: true,
		reconnectMaxDelay: 2000,
		resyncGrace: 5000,
		connectTimeout: 10000,
		signallingTimeout: 10000,
	};
	const masterCon = new MasterConnection('ws://localhost:8081', clientOptions);
	masterCon.on('slaveadded', async (slaveCo) => {
		expectType<SlaveConnection, typeof slaveCo>(true);
		const { id, userData, master: lister, dataChannels } = slaveCo;
		const listed: MasterConnection = lister;
		console.log(id, userData, listed, dataChannels);
		slaveCo.on('rejected', () => console.log('refused'));
		slaveCo.addEventListener('rejected', () => {});
		slaveCo.connect();
		const dc = await slaveCo.createDataChannel('inputs', { ordered: false, maxRetransmits: 0 });
		expectType<DataChannel, typeof dc>(true);
		const timed = await slaveCo.createDataChannel('state', { ordered: false, maxPacketLifeTime: 150, protocol: 'fx' });
		const reliable = await slaveCo.createDataChannel('chat');
		useChannel(dc);
		useChannel(timed);
		useChannel(reliable);
		slaveCo.close();
	});
	masterCon.on('slaveremoved', (slaveCo) => slaveCo.id);
	masterCon.on('slaverelisted', (slaveCo) => slaveCo.id);
	masterCon.addEventListener('slaveupdated', (slaveCo) => slaveCo.userData);
	masterCon.on('close', (event) => {
		expectType<MasterCloseEvent, typeof event>(true);
		const { code, reason, wasClean, error } = event;
		console.log(code, reason, wasClean, error?.code);
	});
	masterCon.once('reconnected', () => {});
	masterCon.on('reconnected', ({ url }) => console.log('now on', url, masterCon.masterUrl));
	const failoverCon = new MasterConnection(['ws://a.example:8081', 'ws://b.example:8081'], clientOptions);
	const inUse: string | null = failoverCon.masterUrl;
	console.log(inUse);
	masterCon.on('error', (err) => err.message);
	for (const slaveCo of masterCon.slaves) {
		// A sparse array, indexed by id.
		if (slaveCo !== undefined) console.log(slaveCo.userData);
	}
	await masterCon.close();

	// @ts-expect-error: reconnect is a boolean
	new MasterConnection('ws://localhost:8081', { reconnect: 'yes' });
	// @ts-expect-error: authData is an object of strings
	new MasterConnection('ws://localhost:8081', { authData: { token: 5 } });
	// @ts-expect-error: a slaveadded listener gets a SlaveConnection
	masterCon.on('slaveadded', (slaveCo: string) => slaveCo);
	// @ts-expect-error: so does addEventListener's
	masterCon.addEventListener('slaveremoved', (id: number) => id);
	// @ts-expect-error: the close event is { code, reason, wasClean, error? }
	masterCon.on('close', (code: number, reason: string) => [code, reason]);
	// @ts-expect-error: a slot of the list may be empty
	masterCon.slaves[0].id;
}

// ---- diagnostics -----------------------------------------------------------

const engineTasks: number = diagnostics().engineTasks + diagnostics().droppedLogRecords;

export { attached, closed, counts, engineTasks, framesIn, metricsText, ownTls, runClient, runSlave, secure };
