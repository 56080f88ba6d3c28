// Two "devices" (browser contexts) with the same device id: the older one gets one
// takeover event and stops; the broker's connection count proves there is no loop.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, openHarness, createClient } from './harness.mjs';

let broker;
let browser;
before(async () => { ({ broker, browser } = await setUp()); });
after(async () => { await browser?.close(); await broker?.stop(); });

const OBSERVE_MS = 30_000;

for (const version of ['5.0', '3.1.1']) {
  test(`a second device with the same id takes over once, with no reconnect loop (MQTT ${version})`, async () => {
    const namespace = `takeover-${version}`;
    const first = await openHarness(await browser.newContext(), broker);
    await createClient(first, broker, { namespace, deviceId: 'shared-laptop', version });
    await first.evaluate(() => window.client.connect());

    const second = await openHarness(await browser.newContext(), broker);
    await createClient(second, broker, { namespace, deviceId: 'shared-laptop', version });
    const before = await broker.metric('connections_total');
    const connack = await second.evaluate(() => window.client.connect());
    assert.equal(connack.sessionPresent, true, 'the newcomer resumes the session');

    await first.waitForFunction(() => window.events.some((e) => e.name === 'takeover'));
    const takeover = await first.evaluate(() => window.events.find((e) => e.name === 'takeover'));
    assert.equal(takeover.detail.confirmed, true);

    // Observe: neither side reconnects, the broker sees no new connections.
    await new Promise((resolve) => setTimeout(resolve, OBSERVE_MS));
    const afterCount = await broker.metric('connections_total');
    assert.equal(afterCount - before, 1, 'only the second device connected');
    assert.equal(await first.evaluate(() => window.events.filter((e) => e.name === 'takeover').length), 1);
    assert.equal(await first.evaluate(() => window.events.filter((e) => e.name === 'reconnecting').length), 0);
    assert.equal(await second.evaluate(() => window.client.connected), true);
    assert.equal(await first.evaluate(() => window.client.connected), false);
  });
}
