// A page on a plain-http LAN address is not a secure context: no Web Locks there. The
// client still holds one connection per browser, through its IndexedDB lease.
// `lan.test` is mapped to 127.0.0.1 by Chromium's host resolver rules, so the page's
// origin is an ordinary non-localhost one, as a phone opening http://192.168.x.y:8080 has.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, openHarness, createClient, waitForMessages } from './harness.mjs';

let broker;
let browser;
before(async () => {
  ({ broker, browser } = await setUp({ args: ['--host-resolver-rules=MAP lan.test 127.0.0.1'] }));
});
after(async () => { await browser?.close(); await broker?.stop(); });

test('two tabs of an insecure page hold one connection, and the second leads when the first closes', async () => {
  const port = new URL(broker.httpUrl).port;
  const origin = `http://lan.test:${port}`;
  const url = `ws://lan.test:${port}/mqtt`;
  const context = await browser.newContext();
  const first = await openHarness(context, broker, origin);
  assert.deepEqual(await first.evaluate(() => [window.isSecureContext, typeof navigator.locks]), [false, 'undefined']);
  const options = { namespace: 'lan', deviceId: 'phone', url };
  await createClient(first, broker, options);
  await first.evaluate(async () => {
    await window.client.connect();
    await window.client.subscribe('lan/#', { qos: 1 });
  });
  assert.equal(await first.evaluate(() => window.client.role), 'leader');

  const second = await openHarness(context, broker, origin);
  await createClient(second, broker, options);
  await second.evaluate(() => window.client.connect());
  assert.equal(await second.evaluate(() => window.client.role), 'follower');
  assert.equal(await broker.metric('connections'), 1, 'one connection for both tabs');
  await second.evaluate(() => window.client.publish('lan/1', 'from the follower', { qos: 1 }));
  for (const tab of [first, second]) assert.equal((await waitForMessages(tab, 1))[0].text, 'from the follower');

  await first.close();
  await second.waitForFunction(() => window.client.role === 'leader' && window.client.connected, null, { timeout: 15_000 });
  await second.evaluate(() => window.client.publish('lan/2', 'after the hand-over', { qos: 1 }));
  assert.equal((await waitForMessages(second, 2))[1].text, 'after the hand-over');
  assert.equal(await broker.metric('connections'), 1);
  assert.deepEqual(second.errors, []);
  await context.close();
});
