'use strict';

// The chat example in a real browser: examples/chat/server.js serves its
// page and takes WebSocket upgrades on one port ({ server }), and two tabs of
// headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// chat through it with the browser's own WebSocket. A page of another
// origin (another port) cannot open the chat's WebSocket: the server
// refuses its Origin with 403 (cross-site WebSocket hijacking).

const assert = require('node:assert/strict');
const { once } = require('events');
const fs = require('fs');
const http = require('http');

const { WebSocketServer } = require('./helpers/impl');

const CHROMIUM = '/usr/bin/chromium';

/** A GET on the chat server: `{ status, type, body }`. */
function get(port, path) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode,
            type: res.headers['content-type'],
            body: Buffer.concat(chunks).toString()
          })
        );
      })
      .on('error', reject);
  });
}

/** The texts of the `li` elements of one class in a tab's message list. */
function texts(page, kind) {
  return page.$$eval(`#messages li.${kind}`, (els) => els.map((e) => e.textContent));
}

describe('chat example in a browser (playwright-core + Chromium)', function () {
  this.timeout(60000);

  let chromium;
  let browser = null;
  let chat = null;
  let other = null; // the other site's http server
  const logs = [];

  /** Headless Chromium, launched once for the tests of this file. */
  async function launch() {
    if (browser === null) {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox']
      });
    }
    return browser;
  }

  before(function () {
    if (!fs.existsSync(CHROMIUM)) {
      this.skip(); // no browser: apt-get install chromium (.ci/run does)
    }
    ({ chromium } = require('playwright-core'));
  });

  after(async function () {
    if (browser) await browser.close();
    if (chat) await chat.close();
    if (other) {
      other.closeAllConnections();
      await new Promise((resolve) => other.close(resolve));
    }
  });

  it('serves the page, and two tabs chat through /chat with join/leave notices', async function () {
    chat = require('../examples/chat/server').start({
      port: 0,
      host: '127.0.0.1',
      WebSocketServer,
      logger: {
        log: (line) => logs.push(line),
        error: (line) => logs.push(`error: ${line}`)
      }
    });
    await once(chat.server, 'listening');
    const { port } = chat.server.address();
    assert.ok(chat.wss instanceof WebSocketServer);

    // The page and the 404, from the same port.
    const page = await get(port, '/');
    assert.equal(page.status, 200);
    assert.equal(page.type, 'text/html; charset=utf-8');
    assert.match(page.body, /new WebSocket\(url, \['superchat', 'chat'\]\)/);
    assert.equal((await get(port, '/nope')).status, 404);

    const context = await (await launch()).newContext();
    const url = `http://127.0.0.1:${port}/`;

    const a = await context.newPage();
    a.setDefaultTimeout(15000);
    await a.goto(url);
    await a.waitForSelector('#state[data-state="open"]');
    await a.locator('#messages li.system', { hasText: 'guest-1 joined' }).waitFor();

    const b = await context.newPage();
    b.setDefaultTimeout(15000);
    await b.goto(url);
    await b.waitForSelector('#state[data-state="open"]');
    assert.equal(await b.textContent('#state'), 'open');
    await b.locator('#messages li.system', { hasText: 'guest-2 joined' }).waitFor();
    await a.locator('#messages li.system', { hasText: 'guest-2 joined' }).waitFor();
    assert.equal(chat.wss.clients.size, 2);
    for (const ws of chat.wss.clients) assert.equal(ws.protocol, 'superchat');

    // A sends; both tabs show it (the room echoes to the sender too).
    await a.fill('#input', 'hello from tab A <b>not bold</b>');
    await a.click('#send');
    await b.locator('#messages li.message', { hasText: 'hello from tab A' }).waitFor();
    await a.locator('#messages li.message', { hasText: 'hello from tab A' }).waitFor();
    assert.equal(await a.inputValue('#input'), '');
    assert.deepEqual(await texts(b, 'message'), ['hello from tab A <b>not bold</b>']);
    assert.equal(await b.locator('#messages b').count(), 0);

    // B answers with Enter.
    await b.fill('#input', 'hi A');
    await b.press('#input', 'Enter');
    await a.locator('#messages li.message', { hasText: 'hi A' }).waitFor();
    assert.deepEqual(await texts(a, 'message'), [
      'hello from tab A <b>not bold</b>',
      'hi A'
    ]);
    assert.deepEqual(await texts(a, 'system'), ['guest-1 joined', 'guest-2 joined']);
    assert.deepEqual(await texts(b, 'system'), ['guest-2 joined']);

    // B leaves: A sees the notice.
    await b.close();
    await a.locator('#messages li.system', { hasText: 'guest-2 left' }).waitFor();
    assert.equal(chat.wss.clients.size, 1);

    // Shutting the server down closes A's connection with 1001.
    await chat.close();
    await a.waitForSelector('#state[data-state="closed"]');
    assert.equal(await a.textContent('#state'), 'closed (1001 Server shutting down)');
    assert.ok(!chat.server.listening);

    assert.ok(logs.some((l) => /^guest-1 connected from 127\.0\.0\.1 \(superchat\)$/.test(l)), logs.join('\n'));
    assert.ok(logs.includes('guest-2 left (1001)'), logs.join('\n'));
    assert.ok(logs.includes(`Chat server listening on http://localhost:${port}/`), logs.join('\n'));
    assert.deepEqual(logs.filter((l) => l.startsWith('error')), []);
    await context.close();
    chat = null;
  });

  it('refuses the chat to a page of another origin (403), and serves its own page', async function () {
    logs.length = 0;
    chat = require('../examples/chat/server').start({
      port: 0,
      host: '127.0.0.1',
      WebSocketServer,
      logger: {
        log: (line) => logs.push(line),
        error: (line) => logs.push(`error: ${line}`)
      }
    });
    await once(chat.server, 'listening');
    const { port } = chat.server.address();

    // Another site: a page on another port of the same host is another
    // origin. Its script opens the chat's WebSocket as the chat page does
    // and reports what happened.
    const page = `<!doctype html><meta charset="utf-8"><title>other site</title><script>
      window.result = new Promise((resolve) => {
        const events = [];
        const ws = new WebSocket('ws://127.0.0.1:${port}/chat', ['superchat', 'chat']);
        ws.onopen = () => events.push('open');
        ws.onerror = () => events.push('error');
        ws.onclose = (e) => { events.push('close ' + e.code); resolve(events); };
      });
    </script>`;
    other = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(page);
    });
    other.listen(0, '127.0.0.1');
    await once(other, 'listening');
    const otherPort = other.address().port;

    const context = await (await launch()).newContext();
    const evil = await context.newPage();
    evil.setDefaultTimeout(15000);
    await evil.goto(`http://127.0.0.1:${otherPort}/`);
    // The browser sees the handshake fail: no open, an error, close 1006.
    assert.deepEqual(await evil.evaluate(() => window.result), ['error', 'close 1006']);
    assert.equal(chat.wss.clients.size, 0);
    assert.ok(logs.includes(`refused a connection from origin http://127.0.0.1:${otherPort}`), logs.join('\n'));
    assert.ok(!logs.some((l) => / connected from /.test(l)), logs.join('\n'));

    // The same browser, on the chat's own page, gets in.
    const own = await context.newPage();
    own.setDefaultTimeout(15000);
    await own.goto(`http://127.0.0.1:${port}/`);
    await own.waitForSelector('#state[data-state="open"]');
    await own.locator('#messages li.system', { hasText: 'guest-1 joined' }).waitFor();
    assert.equal(chat.wss.clients.size, 1);

    await context.close();
    await chat.close();
    chat = null;
  });
});
