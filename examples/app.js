// The demo page: the master's live list of slaves in a table. "Connect" opens
// a data channel to a slave, then the page pings it every second and shows
// each echo with its round-trip time.
'use strict';

const PING_INTERVAL_MS = 1000;
const LOG_LINES = 12;

// Sent as a cookie with the WebSocket handshake: the master's clientauth
// listener gets it.
document.cookie = 'username=getkey';

const masterUrl = `ws://${location.host}`;
const masterCon = new MasterConnection(masterUrl);

const statusLine = document.getElementById('status');
const rows = document.getElementById('slaves');
const noSlaves = document.getElementById('no-slaves');
const logList = document.getElementById('log');
noSlaves.querySelector('code').textContent = `node examples/slave.js ${masterUrl} "My slave"`;
setStatus(`Slaves listed by the master at ${masterUrl}.`);

/**
 * What the page knows of each listed slave, by SlaveConnection (not by id:
 * a slave listed again after the master restarted keeps its SlaveConnection
 * under a new id).
 */
const slaves = new Map();

const nameOf = (slaveCo) => slaveCo.userData?.name ?? `slave ${slaveCo.id}`;

/** Adds a line to the on-page log; `kind` is 'sent', 'received', 'info' or 'error'. */
function log(text, kind = 'info') {
	const line = document.createElement('li');
	line.className = kind;
	const time = document.createElement('time');
	time.textContent = new Date().toLocaleTimeString();
	line.append(time, ' ', text);
	logList.append(line);
	while (logList.children.length > LOG_LINES) logList.firstElementChild.remove();
}

function setStatus(text, kind = 'ok') {
	statusLine.textContent = text;
	statusLine.className = kind;
}

/** Shows a slave's current state in its row. */
function render(slaveCo) {
	const slave = slaves.get(slaveCo);
	const { cells, button } = slave;
	cells.id.textContent = slaveCo.id;
	cells.name.textContent = nameOf(slaveCo);
	cells.players.textContent = slaveCo.userData?.connectedAmount ?? '?';
	cells.rtt.textContent = slave.rtt === undefined ? '–' : `${slave.rtt.toFixed(1)} ms`;
	button.textContent = { idle: 'Connect', connecting: 'Connecting…', open: 'Disconnect' }[slave.state];
	button.disabled = slave.state === 'connecting';
	slave.row.classList.toggle('connected', slave.state === 'open');
}

async function connect(slaveCo) {
	const slave = slaves.get(slaveCo);
	slave.state = 'connecting';
	render(slaveCo);
	let dc;
	try {
		dc = await slaveCo.createDataChannel('demo');
	} catch (err) {
		if (!slaves.has(slaveCo)) return; // it left meanwhile
		log(`${nameOf(slaveCo)}: ${err.code === 'REJECTED' ? 'refused the connection' : err.message}`, 'error');
		slave.state = 'idle';
		render(slaveCo);
		return;
	}
	slave.state = 'open';
	slave.channel = dc;
	dc.addEventListener('message', (ev) => received(slaveCo, ev.data));
	dc.addEventListener('close', () => disconnect(slaveCo, 'the channel closed'));
	slave.timer = setInterval(() => ping(slaveCo), PING_INTERVAL_MS);
	log(`Connected to ${nameOf(slaveCo)}`);
	render(slaveCo);
	ping(slaveCo);
}

/** Stops talking to a slave (`why` goes to the log); does nothing if not connected. */
function disconnect(slaveCo, why) {
	const slave = slaves.get(slaveCo);
	if (slave === undefined || slave.state !== 'open') return;
	slave.state = 'idle';
	clearInterval(slave.timer);
	slave.channel = undefined;
	slave.sentAt.clear();
	slave.rtt = undefined;
	slaveCo.close(); // closes the peer connection and its channels
	log(`Disconnected from ${nameOf(slaveCo)}: ${why}`);
	render(slaveCo);
}

function ping(slaveCo) {
	const slave = slaves.get(slaveCo);
	const seq = ++slave.seq;
	slave.sentAt.set(seq, performance.now());
	slave.channel.send(`ping ${seq}`);
	log(`→ ${nameOf(slaveCo)}: ping ${seq}`, 'sent');
}

function received(slaveCo, data) {
	const slave = slaves.get(slaveCo);
	if (slave === undefined) return;
	// An echoed ping: the time since it was sent is the round trip.
	const seq = Number(/^ping (\d+)$/.exec(data)?.[1]);
	const sentAt = slave.sentAt.get(seq);
	if (sentAt === undefined) {
		log(`← ${nameOf(slaveCo)}: ${data}`, 'received');
		return;
	}
	slave.sentAt.delete(seq);
	slave.rtt = performance.now() - sentAt;
	log(`← ${nameOf(slaveCo)}: ${data} (RTT ${slave.rtt.toFixed(1)} ms)`, 'received');
	render(slaveCo);
}

masterCon.addEventListener('slaveadded', (slaveCo) => {
	const row = rows.insertRow();
	const cells = {};
	for (const name of ['id', 'name', 'players', 'rtt']) {
		cells[name] = row.insertCell();
		cells[name].className = name;
	}
	const button = document.createElement('button');
	row.insertCell().append(button);
	button.addEventListener('click', () => {
		if (slaves.get(slaveCo).state === 'open') disconnect(slaveCo, 'you asked');
		else connect(slaveCo);
	});
	slaves.set(slaveCo, { row, cells, button, state: 'idle', channel: undefined, timer: undefined, seq: 0, sentAt: new Map(), rtt: undefined });
	noSlaves.hidden = true;
	render(slaveCo);
	log(`${nameOf(slaveCo)} joined the list`);
});

// New userData, here a new player count: the same slave, its channel untouched.
masterCon.addEventListener('slaveupdated', render);

masterCon.addEventListener('slaveremoved', (slaveCo) => {
	disconnect(slaveCo, 'it left');
	slaves.get(slaveCo).row.remove();
	slaves.delete(slaveCo);
	noSlaves.hidden = slaves.size > 0;
	log(`${nameOf(slaveCo)} left the list`);
});

// After the master came back: the same slave under a new id.
masterCon.addEventListener('slaverelisted', (slaveCo) => {
	render(slaveCo);
	log(`${nameOf(slaveCo)} is listed again, now as ${slaveCo.id}`);
});

// Open channels to slaves stay open while the master is away; the list
// reconnects by itself.
masterCon.addEventListener('close', ({ code }) => {
	setStatus(`Lost the connection to the master (code ${code}). Reconnecting…`, 'error');
	log(`The connection to the master closed (code ${code})`, 'error');
});
masterCon.addEventListener('reconnected', () => {
	setStatus(`Slaves listed by the master at ${masterUrl} (reconnected).`);
	log('Reconnected to the master');
});
