// The browser client's globals, as a page that loads
// `<script src="/enslavism/client.js">` uses them: this file imports nothing
// (a classic script). Type-checked only (`tsc --noEmit`), never run.

/// <reference path="../../client/global.d.ts" />

const lobby = new MasterConnection(`ws://${location.host}`, { deadMasterTimeout: 0 });
const lobbyOptions: MasterConnectionOptions = { reconnect: false };
const chosen: SlaveConnection[] = [];
lobby.addEventListener('slaveadded', async (slaveCo) => {
	chosen.push(slaveCo);
	const dc: RTCDataChannel = await slaveCo.createDataChannel('state', { ordered: false, maxPacketLifeTime: 100 });
	dc.send('hi');
});
lobby.addEventListener('close', (event) => console.log(event.code, lobbyOptions));
const isListed = (value: unknown): value is SlaveConnection => value instanceof SlaveConnection;
console.log(isListed(chosen[0]), window.MasterConnection === MasterConnection);

// @ts-expect-error: a listener of the wrong shape
lobby.addEventListener('slaveremoved', (id: number) => id);
// @ts-expect-error: the master's URL is a string
new MasterConnection(8081);
