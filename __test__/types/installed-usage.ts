// An application that installed the package, as __test__/types.test.js lays
// it out in a temporary folder (node_modules/enslavism is this checkout):
// each entry point resolves through package.json "exports", the classic
// script's globals through `/// <reference types>`. Type-checked only.

/// <reference types="enslavism/client/global" />

import { Master } from 'enslavism';
import { MasterConnection as ImportedMasterConnection } from 'enslavism/client';

const master = new Master(8081);
master.on('slaveregister', (slave) => console.log(slave.id, slave.userData));

// The global and the import are the same class.
const lobby: ImportedMasterConnection = new MasterConnection('ws://localhost:8081');
lobby.addEventListener('slaveadded', (slaveCo: SlaveConnection) => slaveCo.connect());

// @ts-expect-error: a listener of the wrong shape
lobby.addEventListener('slaveadded', (id: number) => id);
