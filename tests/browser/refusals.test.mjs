// A refusal that retrying cannot fix ends the attempts: with `sessions.takeover = "reject"`
// a second device with a connected id is refused (MQTT 5: 0x85; 3.1.1: return code 2,
// reported as 0x85 too), `connect()` rejects with kind `refused`, the `refused` event
// names the code, and the client makes no further attempt until the app calls connect().
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, openHarness, createClient } from './harness.mjs';


let broker;
let browser;
before(async () => { ({ broker, browser } = await setUp({ configText: '[sessions]\ntakeover = "reject"\n' })); });
after(async () => {
  await browser?.close();
  await broker?.stop();
});

for (const version of ['5.0', '3.1.1']) {
  test(`a refused CONNACK stops the client after one attempt (MQTT ${version})`, async () => {
    const namespace = `reject-${version}`;
    const holder = await openHarness(await browser.newContext(), broker);
    await createClient(holder, broker, { namespace, deviceId: 'taken', version });
    await holder.evaluate(() => window.client.connect());

    const newcomer = await openHarness(await browser.newContext(), broker);
    await createClient(newcomer, broker, { namespace, deviceId: 'taken', version });
    const before = await broker.metric('connects_refused_total');
    const error = await newcomer.evaluate(() => window.client.connect().then(() => null, (e) => ({ kind: e.kind, reasonCode: e.reasonCode })));
    assert.deepEqual(error, { kind: 'refused', reasonCode: 0x85 });
    const refused = await newcomer.evaluate(() => window.events.filter((e) => e.name === 'refused'));
    assert.deepEqual(refused.map((e) => e.detail.reasonCode), [0x85]);

    // Observe: with backoff starting at 100 ms, retries would reach the broker within a
    // second; in three there must be none.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    assert.equal(await broker.metric('connects_refused_total'), before + 1, 'the refused attempt only');
    assert.equal(await newcomer.evaluate(() => window.events.filter((e) => e.name === 'reconnecting').length), 0);
    assert.equal(await holder.evaluate(() => window.client.connected), true);
    for (const page of [holder, newcomer]) await page.context().close();
  });
}
