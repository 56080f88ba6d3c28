// A `message` handler that returns a promise holds the acknowledgement until it settles:
// a page that dies while it is pending gets the message again, flagged `duplicate` with
// the same id; once it has settled, the broker has its acknowledgement and sends it no more.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { setUp, openHarness, createClient } from './harness.mjs';

let broker;
let browser;
before(async () => { ({ broker, browser } = await setUp()); });
after(async () => { await browser?.close(); await broker?.stop(); });

/**
 * Connects a reader whose handler records each message and returns a promise that settles
 * only when the test calls `window.release()`. With a receive maximum of 1, the broker sends
 * the next message only once the previous one is acknowledged.
 */
async function startReader(page, namespace) {
  await createClient(page, broker, { namespace, deviceId: 'reader', receiveMaximum: 1 });
  await page.evaluate(async () => {
    const held = [];
    window.release = () => held.splice(0).forEach((resolve) => resolve());
    window.client.on('message', (m) => {
      const seen = JSON.parse(localStorage.getItem('seen') ?? '[]');
      seen.push({ text: m.text, id: m.id, duplicate: m.duplicate });
      localStorage.setItem('seen', JSON.stringify(seen));
      return new Promise((resolve) => held.push(resolve));
    });
    await window.client.connect();
    await window.client.subscribe('held/#', { qos: 2 });
  });
}

const seen = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('seen') ?? '[]'));
const seenCount = (page, count) => page.waitForFunction((n) => JSON.parse(localStorage.getItem('seen') ?? '[]').length >= n, count);

for (const qos of [1, 2]) {
  test(`a handler's pending promise holds the QoS ${qos} acknowledgement; a settled one releases it`, async () => {
    const namespace = `held-${qos}`;
    const context = await browser.newContext();
    const page = await openHarness(context, broker);
    await startReader(page, namespace);
    const publisher = await mqtt.connectAsync(broker.wsUrl, { protocolVersion: 5, clientId: `${namespace}-pub` });
    await publisher.publishAsync('held/1', 'first', { qos });
    await publisher.publishAsync('held/2', 'second', { qos });
    await seenCount(page, 1);
    // Settling the first handler acknowledges it: only then may the broker send the second.
    await page.evaluate(() => window.release());
    await seenCount(page, 2);

    // The second handler never settles: the page dies with it unacknowledged.
    await page.reload();
    await page.waitForFunction(() => window.harnessReady === true);
    await startReader(page, namespace);
    await seenCount(page, 3);
    await page.evaluate(() => window.release());
    await publisher.publishAsync('held/3', 'third', { qos });
    await seenCount(page, 4);
    const list = await seen(page);
    assert.deepEqual(list.map((m) => m.text), ['first', 'second', 'second', 'third'], 'the settled one is not sent again');
    assert.equal(list[2].id, list[1].id, 'the redelivery keeps its id');
    assert.deepEqual(list.map((m) => m.duplicate), [false, false, true, false]);
    await publisher.endAsync();
    await context.close();
  });
}
