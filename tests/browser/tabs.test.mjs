// Tabs of one browser share one connection: one leader holds the WebSocket, the other
// tabs relay through it; when the leader closes, a follower takes over the session.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setUp, openHarness, createClient, waitForMessages } from './harness.mjs';

let broker;
let browser;
before(async () => { ({ broker, browser } = await setUp()); });
after(async () => { await browser?.close(); await broker?.stop(); });

/**
 * A second device (its own browser context) with device id `phone` in `namespace`: it
 * subscribes to `filter`, then publishes `text` to `topic` at QoS 1.
 */
async function phoneSays(namespace, filter, topic, text) {
  const context = await browser.newContext();
  const page = await openHarness(context, broker);
  await createClient(page, broker, { namespace, deviceId: 'phone' });
  await page.evaluate(async ({ filter, topic, text }) => {
    await window.client.connect();
    await window.client.subscribe(filter, { qos: 1 });
    await window.client.publish(topic, text, { qos: 1 });
  }, { filter, topic, text });
  return { context, page };
}

test('two tabs with one device id share one connection; the follower takes over when the leader closes', async () => {
  const namespace = 'tabs';
  const context = await browser.newContext();
  const first = await openHarness(context, broker);
  await createClient(first, broker, { namespace, deviceId: 'desk' });
  await first.evaluate(async () => {
    await window.client.connect();
    await window.client.subscribe('room/#', { qos: 1 });
  });
  const second = await openHarness(context, broker);
  await createClient(second, broker, { namespace, deviceId: 'desk' });
  await second.evaluate(() => {
    // The follower answers pending() from the list the leader relays with each change.
    window.pendingSeen = [];
    window.client.on('pending', () => window.pendingSeen.push(window.client.pending().length));
    return window.client.connect();
  });

  assert.equal(await first.evaluate(() => window.client.role), 'leader');
  assert.equal(await second.evaluate(() => window.client.role), 'follower');
  assert.equal(await broker.metric('connections'), 1, 'exactly one connection for both tabs');

  // A message from elsewhere reaches both tabs once each.
  const { context: otherContext, page: other } = await phoneSays(namespace, 'room/#', 'room/1', 'from the phone');
  for (const tab of [first, second]) {
    const [message] = await waitForMessages(tab, 1);
    assert.equal(message.text, 'from the phone');
  }
  // Both tabs can publish; the follower's goes through the leader.
  await first.evaluate(() => window.client.publish('room/2', 'from the leader', { qos: 1 }));
  await second.evaluate(() => window.client.publish('room/3', 'from the follower', { qos: 2 }));
  const seen = (await waitForMessages(other, 3)).map((m) => m.text);
  assert.deepEqual(seen.slice(1).sort(), ['from the follower', 'from the leader']);
  assert.equal((await first.evaluate(() => window.messages.length)), 3);
  assert.equal((await second.evaluate(() => window.messages.length)), 3, 'each tab sees each message once');
  const pendingSeen = await second.evaluate(() => window.pendingSeen);
  assert.ok(pendingSeen.length > 0 && pendingSeen.every(Number.isInteger), `follower pending() lengths: ${pendingSeen}`);
  assert.equal(await second.evaluate(() => window.client.pending().length), 0, 'all acknowledged');

  // The leader's tab closes; what is published meanwhile reaches the new leader.
  await first.close();
  await other.evaluate(() => window.client.publish('room/4', 'while switching', { qos: 1 }));
  await second.waitForFunction(() => window.client.role === 'leader');
  const texts = (await waitForMessages(second, 4)).map((m) => m.text);
  assert.equal(texts[3], 'while switching');
  assert.equal(await second.evaluate(() => window.events.some((e) => e.name === 'takeover')), false);
  await second.waitForFunction(() => window.client.connected);
  assert.deepEqual(second.errors, []);
  await context.close();
  await otherContext.close();
});

test('with three tabs, the follower left after a leader change still receives and publishes through the new leader', async () => {
  const namespace = 'tabs3';
  const context = await browser.newContext();
  const tabs = [];
  for (let index = 0; index < 3; index++) {
    const tab = await openHarness(context, broker);
    await createClient(tab, broker, { namespace, deviceId: 'desk' });
    await tab.evaluate(async () => {
      await window.client.connect();
      await window.client.subscribe('hall/#', { qos: 1 });
    });
    tabs.push(tab);
  }
  const [first, second, third] = tabs;
  assert.deepEqual(await Promise.all(tabs.map((tab) => tab.evaluate(() => window.client.role))), ['leader', 'follower', 'follower']);

  await first.close();
  await second.waitForFunction(() => window.client.role === 'leader' && window.client.connected);
  await third.waitForFunction(() => window.client.connected);
  const { context: otherContext, page: other } = await phoneSays(namespace, 'hall/#', 'hall/1', 'after the switch');
  for (const tab of [second, third]) {
    const [message] = await waitForMessages(tab, 1);
    assert.equal(message.text, 'after the switch');
  }
  await third.evaluate(() => window.client.publish('hall/2', 'from the third tab', { qos: 1 }));
  const seen = (await waitForMessages(other, 2)).map((m) => m.text);
  assert.equal(seen[1], 'from the third tab');
  for (const tab of [second, third]) {
    assert.equal(await tab.evaluate(() => window.messages.length), 2, 'each tab sees each message once');
  }
  assert.equal(await broker.metric('connections'), 2, 'one connection for the desk, one for the phone');
  await context.close();
  await otherContext.close();
});

/** Two tabs of one browser with device id `desk` in `namespace`, both connected and subscribed to `filter`. */
async function twoTabs(namespace, filter) {
  const context = await browser.newContext();
  const tabs = [];
  for (let index = 0; index < 2; index++) {
    const tab = await openHarness(context, broker);
    await createClient(tab, broker, { namespace, deviceId: 'desk' });
    await tab.evaluate(async (filter) => {
      await window.client.connect();
      await window.client.subscribe(filter, { qos: 1 });
    }, filter);
    tabs.push(tab);
  }
  assert.deepEqual(await Promise.all(tabs.map((tab) => tab.evaluate(() => window.client.role))), ['leader', 'follower']);
  return { context, leader: tabs[0], follower: tabs[1] };
}

test('a follower that changes its device id, then the leader closing, raises no error anywhere', async () => {
  const { context, leader, follower } = await twoTabs('handover-1', 'h1/#');
  await follower.evaluate(() => window.client.setDeviceId('other'));
  await follower.waitForFunction(() => window.client.role === 'leader', null, { timeout: 10_000 });
  await leader.close();
  const connack = await follower.evaluate(() => window.client.connect());
  assert.equal(connack.sessionPresent, false, 'a new id is a new session');
  assert.equal(await follower.evaluate(() => window.client.clientId()), 'handover-1-other');
  await follower.evaluate(() => window.client.publish('h1/x', 'still works', { qos: 1 }));
  assert.deepEqual(follower.errors, []);
  await context.close();
});

test('a leader that changes its device id hands the old id to the follower, which connects and publishes', async () => {
  const { context, leader, follower } = await twoTabs('handover-2', 'h2/#');
  await leader.evaluate(() => window.client.setDeviceId('other'));
  await follower.waitForFunction(() => window.client.role === 'leader' && window.client.connected, null, { timeout: 10_000 });
  const published = await follower.evaluate(() => Promise.race([
    window.client.publish('h2/x', 'from the new leader', { qos: 1 }).then(() => 'acknowledged'),
    new Promise((resolve) => setTimeout(() => resolve('still pending after 10 s'), 10_000)),
  ]));
  assert.equal(published, 'acknowledged');
  await waitForConnections(1);
  assert.equal(await leader.evaluate(() => window.client.connected), false, 'the old leader waits for connect() under its new id');
  await leader.evaluate(() => window.client.connect());
  await waitForConnections(2);
  assert.deepEqual([...leader.errors, ...follower.errors], []);
  await context.close();
});

test('a leader page that crashes hands the connection to the follower, with nothing lost', async () => {
  const { context, leader, follower } = await twoTabs('handover-3', 'h3/#');
  const cdp = await context.newCDPSession(leader);
  // The renderer dies at once; the command itself never gets an answer.
  cdp.send('Page.crash').catch(() => {});
  await follower.waitForFunction(() => window.client.role === 'leader' && window.client.connected, null, { timeout: 15_000 });
  const { context: otherContext, page: other } = await phoneSays('handover-3', 'h3/#', 'h3/1', 'after the crash');
  const [message] = await waitForMessages(follower, 1);
  assert.equal(message.text, 'after the crash');
  await follower.evaluate(() => window.client.publish('h3/2', 'from the survivor', { qos: 1 }));
  const seen = (await waitForMessages(other, 2)).map((m) => m.text);
  assert.equal(seen[1], 'from the survivor');
  await waitForConnections(2);
  assert.deepEqual(follower.errors, []);
  await context.close();
  await otherContext.close();
});

test('close() releases the lock: the follower leads at once', async () => {
  const { context, leader, follower } = await twoTabs('handover-4', 'h4/#');
  await leader.evaluate(() => window.client.close());
  await follower.waitForFunction(() => window.client.role === 'leader' && window.client.connected, null, { timeout: 10_000 });
  const refused = await leader.evaluate(() => window.client.publish('h4/x', 'late').then(() => 'sent', (e) => e.kind));
  assert.equal(refused, 'request');
  await waitForConnections(1);
  assert.deepEqual([...leader.errors, ...follower.errors], []);
  await context.close();
});

/** Waits until the broker holds `count` connections. */
async function waitForConnections(count) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const now = await broker.metric('connections');
    if (now === count) return;
    if (Date.now() > deadline) assert.equal(now, count, 'connections at the broker');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
