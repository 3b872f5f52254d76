'use strict';

// Echo server on the reference implementation, ws. See echo.js.
require('./echo')(require('ws'));
