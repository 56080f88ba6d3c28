// A page of another site cannot open the broker's MQTT WebSocket (cross-site WebSocket
// hijacking), while the broker's own page can. The other site is the same harness served
// by a second server at http://evil.test:PORT (Chromium resolves evil.test to loopback).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setUp, openHarness, createClient } from './harness.mjs';

const www = path.join(path.dirname(fileURLToPath(import.meta.url)), 'www');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };

let broker;
let browser;
let site;
before(async () => {
  ({ broker, browser } = await setUp({ args: ['--host-resolver-rules=MAP evil.test 127.0.0.1'] }));
  site = http.createServer(async (request, response) => {
    const file = path.join(www, path.normalize(new URL(request.url, 'http://x').pathname));
    try {
      const body = await readFile(file);
      response.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
});
after(async () => {
  await browser?.close();
  await broker?.stop();
  await new Promise((resolve) => site?.close(resolve));
});

test("another site's page is refused; the broker's own page connects", async () => {
  const context = await browser.newContext();
  const evil = await openHarness(context, broker, `http://evil.test:${site.address().port}`);
  await createClient(evil, broker, { namespace: 'origins', deviceId: 'x', backoff: { initialMs: 60_000, maxMs: 60_000 } });
  const before = await broker.metric('origin_refusals_total');
  await evil.evaluate(() => { window.client.connect().catch(() => {}); });
  await evil.waitForFunction(() => window.events.some((e) => e.name === 'disconnect'));
  assert.equal(await evil.evaluate(() => window.client.connected), false);
  assert.ok((await broker.metric('origin_refusals_total')) > before, 'the upgrade was refused for its origin');

  const own = await openHarness(context, broker);
  await createClient(own, broker, { namespace: 'origins-own', deviceId: 'y' });
  assert.deepEqual(await own.evaluate(() => window.client.connect()), { sessionPresent: false });
  await context.close();
});
