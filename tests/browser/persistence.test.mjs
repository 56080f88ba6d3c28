// Pending QoS state in IndexedDB: reloads in the middle of publishing and of
// receiving lose nothing and never duplicate QoS 2; messages published while the
// broker is down are delivered, in order, once it is back.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, openHarness, createClient, waitForMessages } from './harness.mjs';

let broker;
let browser;
before(async () => { ({ broker, browser } = await setUp()); });
after(async () => { await browser?.close(); await broker?.stop(); });

const COUNT = 60;

async function reloadAndReconnect(page, options) {
  await page.reload();
  await page.waitForFunction(() => window.harnessReady === true);
  await createClient(page, broker, options);
  return page.evaluate(() => window.client.connect());
}

for (const qos of [1, 2]) {
  test(`reloading while publishing at QoS ${qos} loses nothing${qos === 2 ? ' and duplicates nothing' : ''}`, async () => {
    const namespace = `reload-pub-${qos}`;
    const subscriberContext = await browser.newContext();
    const subscriber = await openHarness(subscriberContext, broker);
    await createClient(subscriber, broker, { namespace, deviceId: 'receiver' });
    await subscriber.evaluate(async (qos) => {
      await window.client.connect();
      await window.client.subscribe('reload/#', { qos });
    }, qos);

    const publisherContext = await browser.newContext();
    const publisher = await openHarness(publisherContext, broker);
    await createClient(publisher, broker, { namespace, deviceId: 'sender' });
    await publisher.evaluate(() => window.client.connect());
    await publisher.evaluate(({ count, qos }) => {
      for (let n = 0; n < count; n++) window.client.publish('reload/t', `m${n}`, { qos }).catch(() => {});
    }, { count: COUNT, qos });
    // Reload as soon as the first messages arrive, with the rest still in flight.
    await waitForMessages(subscriber, 1);
    const connack = await reloadAndReconnect(publisher, { namespace, deviceId: 'sender' });
    assert.equal(connack.sessionPresent, true);

    const received = await waitForMessages(subscriber, COUNT);
    const texts = new Set(received.map((m) => m.text));
    for (let n = 0; n < COUNT; n++) assert.ok(texts.has(`m${n}`), `m${n} was lost`);
    if (qos === 2) assert.equal(received.length, COUNT, 'QoS 2 delivered exactly once');
    await publisher.waitForFunction(() => window.client.pending().length === 0);
    await publisherContext.close();
    await subscriberContext.close();
  });

  test(`reloading while receiving at QoS ${qos} loses nothing${qos === 2 ? ' and duplicates nothing' : ''}`, async () => {
    const namespace = `reload-sub-${qos}`;
    const subscriberContext = await browser.newContext();
    const subscriber = await openHarness(subscriberContext, broker);
    await createClient(subscriber, broker, { namespace, deviceId: 'receiver', record: true });
    await subscriber.evaluate(async (qos) => {
      await window.client.connect();
      await window.client.subscribe('inbox/#', { qos });
    }, qos);
    const publisherContext = await browser.newContext();
    const publisher = await openHarness(publisherContext, broker);
    await createClient(publisher, broker, { namespace, deviceId: 'sender' });
    await publisher.evaluate(async ({ count, qos }) => {
      await window.client.connect();
      for (let n = 0; n < count; n++) window.client.publish('inbox/t', `m${n}`, { qos }).catch(() => {});
    }, { count: COUNT, qos });
    await waitForMessages(subscriber, 5);
    await reloadAndReconnect(subscriber, { namespace, deviceId: 'receiver', record: true });
    await subscriber.waitForFunction((count) => new Set(JSON.parse(localStorage.getItem('seen') ?? '[]')).size >= count, COUNT, { timeout: 20_000 });
    await publisher.waitForFunction(() => window.client.pending().length === 0);
    const seen = await subscriber.evaluate(() => JSON.parse(localStorage.getItem('seen')));
    if (qos === 2) assert.equal(seen.length, COUNT, `QoS 2 handed to the app exactly once (got ${seen.length})`);
    assert.equal(new Set(seen).size, COUNT);
    await publisherContext.close();
    await subscriberContext.close();
  });
}

test('messages published while the broker is down are delivered in order when it returns', async () => {
  const namespace = 'offline';
  const subscriberContext = await browser.newContext();
  const subscriber = await openHarness(subscriberContext, broker);
  await createClient(subscriber, broker, { namespace, deviceId: 'receiver' });
  await subscriber.evaluate(async () => {
    await window.client.connect();
    await window.client.subscribe('offline/#', { qos: 1 });
  });
  const publisherContext = await browser.newContext();
  const publisher = await openHarness(publisherContext, broker);
  await createClient(publisher, broker, { namespace, deviceId: 'sender' });
  await publisher.evaluate(() => window.client.connect());

  await broker.halt();
  await publisher.waitForFunction(() => window.events.some((e) => e.name === 'disconnect'));
  await publisher.evaluate(() => {
    for (let n = 0; n < 10; n++) window.client.publish('offline/t', `o${n}`, { qos: 1 }).catch(() => {});
  });
  await publisher.waitForFunction(() => window.client.pending().length === 10);
  const pending = await publisher.evaluate(() => window.client.pending());
  assert.ok(pending.every((p) => p.state === 'queued' && p.topic === 'offline/t'));

  await broker.restart();
  const received = await waitForMessages(subscriber, 10, 30_000);
  assert.deepEqual(received.map((m) => m.text), Array.from({ length: 10 }, (_, n) => `o${n}`));
  await publisher.waitForFunction(() => window.client.pending().length === 0);
  assert.ok(await publisher.evaluate(() => window.events.some((e) => e.name === 'reconnecting')));
  await publisherContext.close();
  await subscriberContext.close();
});
