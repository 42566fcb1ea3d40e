// The demo page: lists every slave, opens a data channel to each and
// exchanges a greeting.
document.cookie = 'username=getkey';

const list = document.getElementById('slaves');
const log = (line) => { document.getElementById('log').textContent += `${line}\n`; };
const masterCon = new MasterConnection(`ws://${location.host}`);

masterCon.addEventListener('slaveadded', (slaveCo) => {
	const item = document.createElement('li');
	item.id = `slave-${slaveCo.id}`;
	item.textContent = `#${slaveCo.id}: ${JSON.stringify(slaveCo.userData)}`;
	list.append(item);
	slaveCo.addEventListener('rejected', () => log(`slave ${slaveCo.id} rejected the connection`));
	slaveCo.createDataChannel('test').then((dc) => {
		dc.addEventListener('message', (msg) => log(`slave ${slaveCo.id} says: ${msg.data}`));
		dc.send('What have I wrought!');
	}).catch((err) => log(`slave ${slaveCo.id}: ${err.message}`));
});

masterCon.addEventListener('slaveremoved', (slaveCo) => {
	document.getElementById(`slave-${slaveCo.id}`)?.remove();
	log(`slave ${slaveCo.id} left`);
});

masterCon.addEventListener('close', ({ code }) => log(`connection to the master closed (${code})`));
