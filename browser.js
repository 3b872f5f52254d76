'use strict';

// As ws does: there is nothing to do in a browser, which has its own
// WebSocket.
module.exports = function () {
  throw new Error(
    'ws-native does not work in the browser. Browser clients must use the ' +
      'native WebSocket object'
  );
};
