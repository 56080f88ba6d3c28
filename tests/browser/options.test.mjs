// What the app passes in: invalid options and requests get typed errors that name the
// field; MQTT 5 message properties travel end to end; a full IndexedDB (storage quota)
// surfaces as an error, and what could not be saved is not sent.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, openHarness, createClient, persistentContext, waitForMessages } from './harness.mjs';

let broker;
let browser;
before(async () => { ({ broker, browser } = await setUp()); });
after(async () => { await browser?.close(); await broker?.stop(); });

test('invalid options and requests are refused with errors that name the field', async () => {
  const context = await browser.newContext();
  const page = await openHarness(context, broker);
  const refusals = await page.evaluate(async (url) => {
    const attempt = (options) => window.tabmq.createClient(options).then(
      () => 'accepted',
      (e) => `${e.kind}: ${e.message}`,
    );
    return [
      await attempt({ url, namespace: 'opts', keepAlive: -1 }),
      await attempt({ url, namespace: 'opts', keepAlive: 1.5 }),
      await attempt({ url, namespace: 'opts', will: { topic: 'w', qos: 3 } }),
      await attempt({ url, namespace: 'opts', backoff: { maxMs: 'soon' } }),
      await attempt({ url: 'http://example', namespace: 'opts' }),
      await attempt({ namespace: 'opts' }),
    ];
  }, broker.wsUrl);
  assert.deepEqual(refusals, [
    'invalid-options: invalid options: keepAlive must be a whole number of seconds up to 65535',
    'invalid-options: invalid options: keepAlive must be a whole number of seconds up to 65535',
    'invalid-options: invalid options: will.qos must be 0, 1 or 2',
    'invalid-options: invalid options: backoff.maxMs must be a whole number of milliseconds',
    'invalid-options: invalid options: url must be ws:// or wss:// URLs',
    'invalid-options: invalid options: url must be ws:// or wss:// URLs',
  ]);

  await createClient(page, broker, { namespace: 'opts' });
  await page.evaluate(() => window.client.connect());
  const requests = await page.evaluate(async () => {
    const kind = (promise) => promise.then(() => 'ok', (e) => `${e.kind}: ${e.message}`);
    return [
      await kind(window.client.publish('t', 'x', { qos: 3 })),
      await kind(window.client.publish('t', 42)),
      await kind(window.client.publish('t', 'x', { userProperties: [['only-a-name']] })),
      await kind(window.client.subscribe('t', { retainHandling: 7 })),
    ];
  });
  assert.deepEqual(requests, [
    'request: request refused: qos must be 0, 1 or 2',
    'request: request refused: payload must be a string or a Uint8Array',
    'request: request refused: userProperties must be an array of [name, value] string pairs or an object of strings',
    'request: request refused: retainHandling must be 0, 1 or 2',
  ]);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('MQTT 5 message properties reach the subscriber', async () => {
  const context = await browser.newContext();
  const page = await openHarness(context, broker);
  await createClient(page, broker, { namespace: 'props' });
  const received = await page.evaluate(async () => {
    const got = new Promise((resolve) => window.client.on('message', resolve));
    await window.client.connect();
    await window.client.subscribe('props/#', { qos: 1 });
    await window.client.publish('props/a', new Uint8Array([1, 2, 255]), {
      qos: 1,
      contentType: 'application/octet-stream',
      responseTopic: 'props/reply',
      correlationData: 'req-7',
      messageExpiry: 60,
      userProperties: { source: 'test', lang: 'en' },
    });
    const m = await got;
    return {
      payload: [...m.payload],
      contentType: m.contentType,
      responseTopic: m.responseTopic,
      correlationData: new TextDecoder().decode(m.correlationData),
      userProperties: m.userProperties,
    };
  });
  assert.deepEqual(received, {
    payload: [1, 2, 255],
    contentType: 'application/octet-stream',
    responseTopic: 'props/reply',
    correlationData: 'req-7',
    userProperties: [['source', 'test'], ['lang', 'en']],
  });
  await context.close();
});

test('a full IndexedDB raises storage errors, and the unsaved message is kept, not sent', async () => {
  const context = await persistentContext();
  try {
    const page = await openHarness(context, broker);
    // Room for the device id and small sessions only; set before the database is opened,
    // as Chromium reads the quota of an open database once.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: broker.httpUrl, quotaSize: 50_000 });
    await createClient(page, broker, { namespace: 'quota' });
    await page.evaluate(async () => {
      await window.client.connect();
      await window.client.subscribe('quota/#', { qos: 1 });
    });
    // Random text: Chromium compresses IndexedDB values, so a repeated character would fit.
    const payload = Array.from({ length: 200_000 }, () => String.fromCharCode(33 + Math.floor(Math.random() * 90))).join('');
    await page.evaluate((payload) => {
      window.outcome = window.client.publish('quota/big', payload, { qos: 1 })
        .then(() => 'acknowledged', (e) => e.kind);
    }, payload);
    await page.waitForFunction(() => window.events.some((e) => e.name === 'error'));
    const error = await page.evaluate(() => window.events.find((e) => e.name === 'error').detail);
    assert.equal(error.kind, 'storage');
    assert.match(error.message, /QuotaExceededError/);
    // Not durable, so not sent: the connection is dropped, and each reconnect tries the
    // save again (and reports again) instead of sending what a reload could lose.
    await page.waitForFunction(() => {
      const reconnect = window.events.findIndex((e) => e.name === 'reconnecting');
      return reconnect >= 0 && window.events.slice(reconnect).some((e) => e.name === 'error');
    });
    // One attempt per connection, not a loop of failing writes.
    const count = (name) => page.evaluate((n) => window.events.filter((e) => e.name === n).length, name);
    const [errors, reconnects] = [await count('error'), await count('reconnecting')];
    assert.ok(errors <= reconnects + 1, `${errors} storage errors for ${reconnects} reconnects`);
    assert.equal(await page.evaluate(() => window.messages.length), 0, 'nothing unsaved may leave');
    assert.equal(await page.evaluate(() => Promise.race([window.outcome, Promise.resolve('unsettled')])), 'unsettled');
    const pending = await page.evaluate(() => window.client.pending());
    assert.deepEqual(pending.map((m) => [m.topic, m.qos]), [['quota/big', 1]]);
  } finally {
    // A failed assertion must not leave this browser (a process of its own) running.
    await context.close();
  }
});
