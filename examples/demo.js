'use strict';
// `npm start`: the demo master and its page. (The Rust slave arrives with the
// slave issue; until then, any enslavism 0.9.0 slave can register with it:
// see README.)
require('./master.js');
