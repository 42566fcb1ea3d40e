// Every documented part of the browser client (README "Browser API",
// client/index.d.ts), imported as a bundler does. Type-checked only
// (`tsc --noEmit`), never run. `// @ts-expect-error` marks misuse that the
// typings must refuse.

import { MasterConnection, SlaveConnection, type MasterConnectionOptions } from 'enslavism/client';

/** Compiles only when `A` and `B` are the same type (not merely assignable, and not `any`). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
function expectType<A, B>(_proof: Equal<A, B>): void {}

const options: MasterConnectionOptions = {
	reconnect: true,
	reconnectMaxDelay: 2000,
	resyncGrace: 5000,
	deadMasterTimeout: 15000,
	iceServers: [{ urls: 'turn:turn.example.com:3478', username: 'player', credential: 'secret' }],
	iceTransportPolicy: 'relay',
};
const masterCon = new MasterConnection(`ws://${location.host}`, options);
new MasterConnection('ws://localhost:8081');
// Masters to fail over to, in order of preference.
const failover = new MasterConnection(['ws://a.example:8081', 'ws://b.example:8081'], { reconnectMaxDelay: 1000 });
const inUse: string = failover.masterUrl;
console.log(inUse);

masterCon.addEventListener('slaveadded', async (slaveCo) => {
	expectType<SlaveConnection, typeof slaveCo>(true);
	const { id, userData, master, dataChannels, slaveCon } = slaveCo;
	expectType<MasterConnection, typeof master>(true);
	expectType<Record<string, RTCDataChannel>, typeof dataChannels>(true);
	expectType<RTCPeerConnection | undefined, typeof slaveCon>(true);
	console.log('slave', id, userData);
	slaveCo.addEventListener('rejected', () => console.log('refused'));
	slaveCo.connect();
	try {
		const dc = await slaveCo.createDataChannel('state', { ordered: false, maxRetransmits: 0 });
		expectType<RTCDataChannel, typeof dc>(true);
		dc.binaryType = 'arraybuffer';
		dc.addEventListener('message', (ev) => console.log('from the slave:', ev.data));
		dc.send('What have I wrought!');
		const reliable: RTCDataChannel = await slaveCo.createDataChannel('chat');
		reliable.close();
	} catch (err) {
		console.log('no connection:', (err as Error & { code?: string }).code === 'REJECTED');
	}
	slaveCo.close();
});
const onRemoved = (slaveCo: SlaveConnection) => console.log('slave', slaveCo.id, 'left');
masterCon.addEventListener('slaveremoved', onRemoved);
masterCon.removeEventListener('slaveremoved', onRemoved);
masterCon.addEventListener('slaveupdated', (slaveCo) => slaveCo.userData);
masterCon.addEventListener('slaverelisted', (slaveCo) => slaveCo.id);
masterCon.addEventListener('close', ({ code, reason, wasClean }) => {
	const facts: [number, string, boolean] = [code, reason, wasClean];
	console.log('master connection closed', facts);
});
masterCon.addEventListener('reconnected', () => {});
masterCon.addEventListener('reconnected', ({ url }) => console.log('now on', url));
for (const slaveCo of masterCon.slaves) {
	// A sparse array, indexed by id.
	if (slaveCo instanceof SlaveConnection) console.log(slaveCo.userData);
}
masterCon.close();

// @ts-expect-error: no such event
masterCon.addEventListener('slavesadded', () => {});
// @ts-expect-error: a slaveadded listener gets a SlaveConnection
masterCon.addEventListener('slaveadded', (slaveCo: string) => slaveCo);
// @ts-expect-error: the close event is { code, reason, wasClean }
masterCon.addEventListener('close', (code: number) => code);
// @ts-expect-error: deadMasterTimeout is in ms
new MasterConnection('ws://localhost:8081', { deadMasterTimeout: '15s' });
// @ts-expect-error: 'all' or 'relay'
new MasterConnection('ws://localhost:8081', { iceTransportPolicy: 'any' });
// @ts-expect-error: the masters' URLs are strings
new MasterConnection(['ws://a.example:8081', 8082]);
// @ts-expect-error: 'reconnected' gets { url }
masterCon.addEventListener('reconnected', (url: number) => url);
// @ts-expect-error: a slot of the list may be empty
masterCon.slaves[0].connect();
// @ts-expect-error: a SlaveConnection is made by the MasterConnection
new SlaveConnection();
// @ts-expect-error: close() returns nothing to wait for
await masterCon.close().then(() => {});
