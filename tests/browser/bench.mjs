// Browser-side benchmark: tabmq's wasm client against MQTT.js (npm `mqtt`, its browser
// bundle) in the same headless Chromium page, against the same tabmq broker. Measures
// QoS 1 publish throughput (all acknowledged, 50 awaiting acknowledgement at a time) and
// QoS 1 receive throughput live (a Node MQTT.js feeder publishes the same way: that feeder
// and the broker bound it) and catching up (the messages queued for the page's persistent
// session while it was away: the client alone bounds it), alternating the two clients, and
// prints medians and bundle sizes.
//
// Run by `cargo xtask bench` (TABMQ_BIN set to the release broker). Options:
//   node bench.mjs [--messages 5000] [--repeat 3] [--out file.md]
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { setUp, openHarness } from './harness.mjs';

const require = createRequire(import.meta.url);
const mqtt = require('mqtt');

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1] : fallback;
};
const MESSAGES = Number(option('messages', 5000));
const REPEAT = Number(option('repeat', 3));
const OUT = option('out', null);
const PAYLOAD = 'x'.repeat(64);
// Publications awaiting their PUBACK at once, per publisher. MQTT.js does not hold back to
// the broker's Receive Maximum (100 here): a larger burst gets it disconnected (0x93).
const IN_FLIGHT = 50;

// The browser bundle people load from a CDN (not in the package's exports map).
const mqttBundle = path.join(here, 'node_modules/mqtt/dist/mqtt.min.js');
cpSync(mqttBundle, path.join(here, 'www/mqtt.min.js'));

// Queues long enough that a subscriber slower than the feeder loses nothing (the default
// of 1,000 queued messages would drop the rest, and a run would never complete).
const config = path.join(mkdtempSync(path.join(os.tmpdir(), 'tabmq-bench-')), 'tabmq.toml');
writeFileSync(config, '[limits]\nmax_queued_messages = 1000000\nmax_queued_bytes = 1073741824\n[log]\nlevel = "warn"\n');
const { broker, browser } = await setUp({ config });

/** Opens a page with one connected client of `kind` as `window.benchClient`. */
async function openClient(kind, id) {
  const context = await browser.newContext();
  const page = await openHarness(context, broker);
  if (kind === 'MQTT.js') await page.addScriptTag({ url: 'mqtt.min.js' });
  await page.evaluate(async ({ kind, id, url }) => {
    if (kind === 'tabmq') {
      const client = await window.tabmq.createClient({ url, namespace: `bench-${id}` });
      await client.setDeviceId('bench');
      await client.connect();
      window.benchClient = {
        publish: (topic, payload) => client.publish(topic, payload, { qos: 1 }),
        subscribe: (topic) => client.subscribe(topic, { qos: 1 }),
        onMessage: (handler) => client.on('message', handler),
      };
    } else {
      const client = window.mqtt.connect(url, { protocolVersion: 5, clientId: `bench-${id}`, clean: true });
      await new Promise((resolve) => client.once('connect', resolve));
      window.benchClient = {
        publish: (topic, payload) => client.publishAsync(topic, payload, { qos: 1 }),
        subscribe: (topic) => client.subscribeAsync(topic, { qos: 1 }),
        onMessage: (handler) => client.on('message', handler),
      };
    }
  }, { kind, id, url: broker.wsUrl });
  return { page, context };
}

/** QoS 1 messages per second published by the page, all acknowledged. */
async function publishRate(kind, id) {
  const { page, context } = await openClient(kind, id);
  const seconds = await page.evaluate(async ({ count, payload, window: limit }) => {
    const started = performance.now();
    let next = 0;
    const lane = async () => {
      while (next < count) {
        next += 1;
        await window.benchClient.publish('bench/browser-pub', payload);
      }
    };
    await Promise.all(Array.from({ length: limit }, lane));
    return (performance.now() - started) / 1000;
  }, { count: MESSAGES, payload: PAYLOAD, window: IN_FLIGHT });
  await context.close();
  return MESSAGES / seconds;
}

/** Publishes MESSAGES QoS 1 messages to `topic` from Node, IN_FLIGHT awaiting PUBACK at a time. */
async function feed(feeder, topic) {
  let next = 0;
  const lane = async () => {
    while (next < MESSAGES) {
      next += 1;
      await feeder.publishAsync(topic, PAYLOAD, { qos: 1 });
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
}

/** QoS 1 messages per second received by the page from a Node MQTT.js publisher. */
async function receiveRate(kind, id) {
  const { page, context } = await openClient(kind, id);
  const topic = `bench/browser-recv/${id}`;
  await page.evaluate(async ({ topic, count }) => {
    window.received = new Promise((resolve) => {
      let seen = 0;
      let first = 0;
      window.benchClient.onMessage(() => {
        seen += 1;
        if (seen === 1) first = performance.now();
        if (seen === count) resolve((performance.now() - first) / 1000);
      });
    });
    await window.benchClient.subscribe(topic);
  }, { topic, count: MESSAGES });
  const feeder = await mqtt.connectAsync(broker.wsUrl, { protocolVersion: 5, clientId: `feeder-${id}` });
  await feed(feeder, topic);
  const seconds = await page.evaluate(() => Promise.race([
    window.received,
    new Promise((resolve, reject) => setTimeout(() => reject(new Error('not every message arrived within 120 s')), 120_000)),
  ]));
  await feeder.endAsync();
  await context.close();
  return (MESSAGES - 1) / seconds;
}

/**
 * QoS 1 messages per second received by a page catching up: its persistent session was
 * subscribed, then offline while a feeder queued the messages at the broker; timed from
 * `connect` to the last message. Unlike the live rate, no publisher limits it.
 */
async function catchUpRate(kind, id) {
  const context = await browser.newContext();
  const page = await openHarness(context, broker);
  const topic = `bench/browser-catch-up/${id}`;
  if (kind === 'MQTT.js') await page.addScriptTag({ url: 'mqtt.min.js' });
  await page.evaluate(async ({ kind, id, url, topic }) => {
    const options = { protocolVersion: 5, clientId: `catch-up-${id}`, clean: false, properties: { sessionExpiryInterval: 3600 } };
    window.catchUp = async (count) => {
      let seen = 0;
      let done;
      const finished = new Promise((resolve) => { done = resolve; });
      const started = performance.now();
      const onMessage = () => { seen += 1; if (seen === count) done((performance.now() - started) / 1000); };
      if (kind === 'tabmq') {
        window.catchUpClient.on('message', onMessage);
        await window.catchUpClient.connect();
      } else {
        const client = window.mqtt.connect(url, options);
        client.on('message', onMessage);
      }
      return finished;
    };
    if (kind === 'tabmq') {
      const client = await window.tabmq.createClient({ url, namespace: `catch-up-${id}` });
      await client.setDeviceId('bench');
      await client.connect();
      await client.subscribe(topic, { qos: 1 });
      await client.disconnect();
      window.catchUpClient = client;
    } else {
      const client = window.mqtt.connect(url, options);
      await new Promise((resolve) => client.once('connect', resolve));
      await client.subscribeAsync(topic, { qos: 1 });
      await client.endAsync();
    }
  }, { kind, id, url: broker.wsUrl, topic });
  const feeder = await mqtt.connectAsync(broker.wsUrl, { protocolVersion: 5, clientId: `catch-up-feeder-${id}` });
  await feed(feeder, topic);
  await feeder.endAsync();
  const seconds = await page.evaluate((count) => Promise.race([
    window.catchUp(count),
    new Promise((resolve, reject) => setTimeout(() => reject(new Error('not every message arrived within 120 s')), 120_000)),
  ]), MESSAGES);
  await context.close();
  return MESSAGES / seconds;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const rates = { tabmq: { publish: [], receive: [], catchUp: [] }, 'MQTT.js': { publish: [], receive: [], catchUp: [] } };
let run = 0;
for (let round = 0; round < REPEAT; round++) {
  const order = round % 2 === 0 ? ['tabmq', 'MQTT.js'] : ['MQTT.js', 'tabmq'];
  for (const kind of order) {
    process.stderr.write(`\rbrowser bench: round ${round + 1}/${REPEAT}, ${kind}        `);
    rates[kind].publish.push(await publishRate(kind, `${run++}`));
    rates[kind].receive.push(await receiveRate(kind, `${run++}`));
    rates[kind].catchUp.push(await catchUpRate(kind, `${run++}`));
  }
}
process.stderr.write('\n');

const gzip = (files) => files.reduce((sum, file) => sum + gzipSync(readFileSync(file), { level: 9 }).length, 0);
const pkg = path.join(here, 'www/pkg');
const ours = gzip([path.join(pkg, 'index.js'), path.join(pkg, 'tabmq_client_bg.wasm')]);
const theirs = gzip([mqttBundle]);
const row = (kind, size) => `| ${kind} | ${median(rates[kind].publish).toFixed(0)} | ${median(rates[kind].receive).toFixed(0)} | ${median(rates[kind].catchUp).toFixed(0)} | ${(size / 1024).toFixed(1)} KiB |`;
const report = [
  `Chromium ${browser.version()}, ${MESSAGES} QoS 1 messages of 64 B per run (${IN_FLIGHT} awaiting PUBACK at a time), median of ${REPEAT} runs per client, alternating.`,
  '',
  '| client | publish msg/s (acknowledged) | receive msg/s, live | receive msg/s, catching up | bundle, gzip -9 |',
  '|---|---|---|---|---|',
  row('tabmq', ours),
  row('MQTT.js', theirs),
  '',
].join('\n');
console.log(report);
if (OUT) writeFileSync(OUT, report);

rmSync(path.join(here, 'www/mqtt.min.js'), { force: true });
rmSync(path.dirname(config), { recursive: true, force: true });
await browser.close();
await broker.stop();
