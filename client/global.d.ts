// The globals that `<script src="/enslavism/client.js">` defines, for
// TypeScript code of a page that loads the client as a classic script (and
// does not import it). Reference this file once, e.g.
//   /// <reference types="enslavism/client/global" />
// or `"types": ["enslavism/client/global"]` in tsconfig.json. The classes are
// those of client/index.d.ts (`import … from 'enslavism/client'`).

/** The connection to the master: the live list of slaves (see client/index.d.ts). */
declare var MasterConnection: typeof import('./index.js').MasterConnection;
type MasterConnection = import('./index.js').MasterConnection;

/** One slave of the list; opens WebRTC data channels to it (see client/index.d.ts). */
declare var SlaveConnection: typeof import('./index.js').SlaveConnection;
type SlaveConnection = import('./index.js').SlaveConnection;

/** Options of a MasterConnection. */
type MasterConnectionOptions = import('./index.js').MasterConnectionOptions;
