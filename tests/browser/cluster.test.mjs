// The npm client against a cluster of tabmq nodes on a real NATS cluster: a device id
// connecting on another node takes the session over and the older device gets the
// `takeover` event, as on one node; a client given several node URLs moves to the next
// one when its node dies, keeping its session and the messages published meanwhile.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, openHarness, createClient, waitForMessages } from './harness.mjs';
import { startBroker } from '../support/broker.mjs';
import { startNatsCluster } from '../support/nats.mjs';

const www = path.join(path.dirname(fileURLToPath(import.meta.url)), 'www');
let nats;
let nodes = [];
let browser;

before(async () => {
  rmSync(path.join(www, 'pkg'), { recursive: true, force: true });
  cpSync(path.join(www, '../../../www/pkg'), path.join(www, 'pkg'), { recursive: true });
  nats = await startNatsCluster('browser');
  for (const index of [0, 1, 2]) {
    nodes.push(await startBroker({ www, configText: nats.nodeConfig(`node-${index}`, index) }));
  }
  const executablePath = execFileSync('which', ['chromium']).toString().trim();
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
});
after(async () => {
  await browser?.close();
  for (const node of nodes) await node.stop().catch(() => {});
  await nats?.stop();
});

test('a device id connecting on another node takes over; the older device gets one takeover event', async () => {
  const [node0, node1] = nodes;
  const first = await openHarness(await browser.newContext(), node0);
  await createClient(first, node0, { namespace: 'cluster-takeover', deviceId: 'shared-laptop' });
  await first.evaluate(() => window.client.connect());

  const second = await openHarness(await browser.newContext(), node1);
  await createClient(second, node1, { namespace: 'cluster-takeover', deviceId: 'shared-laptop' });
  const connack = await second.evaluate(() => window.client.connect());
  assert.equal(connack.sessionPresent, true, 'the newcomer resumes the session from the other node');

  await first.waitForFunction(() => window.events.some((e) => e.name === 'takeover'));
  const takeover = await first.evaluate(() => window.events.find((e) => e.name === 'takeover'));
  assert.equal(takeover.detail.confirmed, true);
  assert.equal(await first.evaluate(() => window.client.connected), false);
  assert.equal(await second.evaluate(() => window.client.connected), true);
  assert.equal(await first.evaluate(() => window.events.filter((e) => e.name === 'reconnecting').length), 0);
});

test('a client given several node URLs moves to the next when its node dies, keeping its session', async () => {
  const [, node1, node2] = nodes;
  const page = await openHarness(await browser.newContext(), node2);
  await createClient(page, node1, {
    namespace: 'cluster-failover',
    deviceId: 'roaming',
    url: [node1.wsUrl, node2.wsUrl],
  });
  await page.evaluate(() => window.client.connect());
  await page.evaluate(() => window.client.subscribe('failover/#', { qos: 1 }));
  const connectionsBefore = await node2.metric('connections');

  await node1.kill();
  // Published on node 2 while the client is between nodes: kept for its session.
  const publisher = await openHarness(await browser.newContext(), node2);
  await createClient(publisher, node2, { namespace: 'cluster-failover-pub', deviceId: 'sender' });
  await publisher.evaluate(() => window.client.connect());
  for (let n = 0; n < 5; n += 1) {
    await publisher.evaluate((n) => window.client.publish('failover/x', `m-${n}`, { qos: 1 }), n);
  }

  await page.waitForFunction(() => window.events.filter((e) => e.name === 'connect').length >= 2, null, { timeout: 30_000 });
  const reconnect = await page.evaluate(() => window.events.filter((e) => e.name === 'connect')[1]);
  assert.equal(reconnect.detail.sessionPresent, true, 'the session came along to node 2');
  assert.ok(await node2.metric('connections') > connectionsBefore, 'the client is on node 2 now');
  const messages = await waitForMessages(page, 5, 30_000);
  assert.deepEqual(messages.map((m) => m.text), ['m-0', 'm-1', 'm-2', 'm-3', 'm-4']);
});
