// The delivery promise under repetition: a page subscribed with a persistent session is
// reloaded in the middle of incoming QoS 1 and QoS 2 traffic from an MQTT.js publisher,
// many times, with 20 and with 50 messages in flight. Every outcome is counted: no
// message may be missing at the app, and a message may reach it twice only across the
// reload (handed over before it, acknowledged after), with the same id and the
// `duplicate` flag set.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { setUp, openHarness, createClient } from './harness.mjs';

let broker;
let browser;
before(async () => { ({ broker, browser } = await setUp()); });
after(async () => { await browser?.close(); await broker?.stop(); });

const TRIALS = 20;
const COUNT = 300;

/** Creates the client, records every message durably (as an app would) and connects. */
async function startReader(page, options) {
  await createClient(page, broker, options);
  await page.evaluate(async () => {
    window.client.on('message', (m) => {
      const seen = JSON.parse(localStorage.getItem('seen') ?? '[]');
      seen.push([m.text, m.id, m.duplicate]);
      localStorage.setItem('seen', JSON.stringify(seen));
    });
    await window.client.connect();
  });
}

/**
 * Publishes `{prefix}0` .. `{prefix}{COUNT - 1}` in order, 50 awaiting acknowledgement at a
 * time (MQTT.js does not hold itself to the broker's receive maximum of 100).
 */
async function publishNumbered(publisher, prefix, qos) {
  let next = 0;
  const lane = async () => {
    while (next < COUNT) {
      const n = next++;
      await publisher.publishAsync('trial/x', `${prefix}${n}`, { qos });
    }
  };
  await Promise.all(Array.from({ length: 50 }, lane));
}

const seenWith = (page, prefix) => page.evaluate((prefix) =>
  JSON.parse(localStorage.getItem('seen') ?? '[]').filter(([text]) => text.startsWith(prefix)), prefix);

for (const qos of [1, 2]) {
  for (const inFlight of [20, 50]) {
    test(`reloading in the middle of incoming QoS ${qos} traffic, ${inFlight} in flight, ${TRIALS} trials: nothing missing`, async () => {
      const namespace = `trials-${qos}-${inFlight}`;
      const options = { namespace, deviceId: 'reader', receiveMaximum: inFlight };
      const context = await browser.newContext();
      const page = await openHarness(context, broker);
      await startReader(page, options);
      await page.evaluate((qos) => window.client.subscribe('trial/#', { qos }), qos);
      const publisher = await mqtt.connectAsync(broker.wsUrl, { protocolVersion: 5, clientId: `${namespace}-pub`, reconnectPeriod: 0 });
      const tally = { trials: 0, midStream: 0, missing: 0, duplicates: 0, reloadsAfter: [] };
      try {
        for (let trial = 0; trial < TRIALS; trial++) {
          const prefix = `t${trial}-`;
          const reloadAfter = 1 + Math.floor(Math.random() * (COUNT / 3));
          const sent = publishNumbered(publisher, prefix, qos);
          await page.waitForFunction(([prefix, k]) =>
            JSON.parse(localStorage.getItem('seen') ?? '[]').filter(([text]) => text.startsWith(prefix)).length >= k,
          [prefix, reloadAfter], { timeout: 20_000 });
          await page.reload();
          const before = (await seenWith(page, prefix)).length;
          await page.waitForFunction(() => window.harnessReady === true);
          await startReader(page, options);
          await sent;
          await page.waitForFunction(([prefix, count]) =>
            new Set(JSON.parse(localStorage.getItem('seen') ?? '[]').filter(([text]) => text.startsWith(prefix)).map(([text]) => text)).size >= count,
          [prefix, COUNT], { timeout: 20_000 }).catch(() => {});
          const seen = await seenWith(page, prefix);
          const texts = new Set(seen.map(([text]) => text));
          tally.trials += 1;
          tally.missing += COUNT - texts.size;
          tally.reloadsAfter.push(before);
          if (before < COUNT) tally.midStream += 1;
          const firstAt = new Map();
          seen.forEach(([text, id, duplicate], index) => {
            if (!firstAt.has(text)) return firstAt.set(text, { index, id });
            tally.duplicates += 1;
            const first = firstAt.get(text);
            assert.ok(first.index < before && index >= before, `${text} handed over twice without a reload between (trial ${trial})`);
            assert.equal(id, first.id, `${text}: a redelivery keeps its id`);
            assert.equal(duplicate, true, `${text}: a redelivery is flagged duplicate`);
          });
          assert.ok(seen.length - texts.size <= inFlight, `at most the ${inFlight} in flight come twice`);
        }
      } finally {
        await publisher.endAsync();
        await context.close();
      }
      console.log(`# QoS ${qos}, ${inFlight} in flight: ${JSON.stringify({ ...tally, reloadsAfter: tally.reloadsAfter.join(',') })}`);
      assert.equal(tally.missing, 0, `messages missing at the app over ${tally.trials} trials`);
      assert.equal(tally.trials, TRIALS);
      assert.ok(tally.midStream >= TRIALS / 2, `only ${tally.midStream} of ${TRIALS} reloads fell in the middle of the traffic`);
    });
  }
}
