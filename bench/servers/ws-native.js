'use strict';

// Echo server on ws-native (the package root, which exports like ws). See
// echo.js. The loop mode, WS_NATIVE_LOOP=thread (default: socket I/O on a
// background thread) or main (on Node's main libuv loop), is read by
// ws-native itself from the environment run.js gives this process.
require('./echo')(require('../..'));
