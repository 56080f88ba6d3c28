// MQTT.js (npm `mqtt`) in Node over WebSocket: QoS 1 and 2 round trips, persistent
// session resume with queued messages, retained messages, and the will.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { startBroker } from '../../support/broker.mjs';

let broker;
before(async () => { broker = await startBroker(); });
after(async () => { await broker.stop(); });

function connect(options) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(broker.wsUrl, { reconnectPeriod: 0, connectTimeout: 10_000, ...options });
    client.once('connect', (connack) => resolve({ client, connack }));
    client.once('error', reject);
  });
}

function nextMessage(client, topic) {
  return new Promise((resolve) => {
    const handler = (received, payload, packet) => {
      if (received === topic) {
        client.off('message', handler);
        resolve({ payload: payload.toString(), packet });
      }
    };
    client.on('message', handler);
  });
}

const close = (client) => new Promise((resolve) => client.end(false, {}, resolve));

for (const protocolVersion of [4, 5]) {
  test(`QoS 1 and 2 round trips, protocol ${protocolVersion}`, async () => {
    const { client } = await connect({ protocolVersion, clientId: `rt-${protocolVersion}` });
    await client.subscribeAsync('rt/#', { qos: 2 });
    for (const qos of [1, 2]) {
      const arrival = nextMessage(client, `rt/${qos}`);
      await client.publishAsync(`rt/${qos}`, `payload-${qos}`, { qos });
      const { payload, packet } = await arrival;
      assert.equal(payload, `payload-${qos}`);
      assert.equal(packet.qos, qos);
    }
    await close(client);
  });

  test(`persistent session resumes with queued messages, protocol ${protocolVersion}`, async () => {
    const clientId = `resume-${protocolVersion}`;
    const persistent = protocolVersion === 5
      ? { clean: false, properties: { sessionExpiryInterval: 3600 } }
      : { clean: false };
    const first = await connect({ protocolVersion, clientId, ...persistent });
    assert.equal(first.connack.sessionPresent, false);
    await first.client.subscribeAsync('queue/t', { qos: 1 });
    await close(first.client);

    const { client: publisher } = await connect({ protocolVersion, clientId: `pub-${clientId}` });
    for (const n of [1, 2, 3]) await publisher.publishAsync('queue/t', `q${n}`, { qos: 1 });
    await close(publisher);

    // The listener is attached before CONNACK: queued messages follow it at once.
    const client = mqtt.connect(broker.wsUrl, { reconnectPeriod: 0, protocolVersion, clientId, ...persistent });
    const received = [];
    const allThree = new Promise((resolve) => {
      client.on('message', (topic, payload) => {
        received.push(payload.toString());
        if (received.length === 3) resolve();
      });
    });
    const second = await new Promise((resolve, reject) => {
      client.once('connect', (connack) => resolve({ client, connack }));
      client.once('error', reject);
    });
    assert.equal(second.connack.sessionPresent, true);
    await allThree;
    assert.deepEqual(received, ['q1', 'q2', 'q3']);
    await close(second.client);
  });

  test(`retained message is delivered to a new subscriber, protocol ${protocolVersion}`, async () => {
    const { client: publisher } = await connect({ protocolVersion, clientId: `ret-pub-${protocolVersion}` });
    await publisher.publishAsync(`retained/${protocolVersion}`, 'kept', { qos: 1, retain: true });
    await close(publisher);
    const { client } = await connect({ protocolVersion, clientId: `ret-sub-${protocolVersion}` });
    const arrival = nextMessage(client, `retained/${protocolVersion}`);
    await client.subscribeAsync(`retained/${protocolVersion}`, { qos: 1 });
    const { payload, packet } = await arrival;
    assert.equal(payload, 'kept');
    assert.equal(packet.retain, true);
    await close(client);
  });

  test(`will is published when the connection drops, protocol ${protocolVersion}`, async () => {
    const { client: watcher } = await connect({ protocolVersion, clientId: `will-watch-${protocolVersion}` });
    await watcher.subscribeAsync(`will/${protocolVersion}`, { qos: 1 });
    const { client: dying } = await connect({
      protocolVersion,
      clientId: `will-${protocolVersion}`,
      will: { topic: `will/${protocolVersion}`, payload: Buffer.from('gone'), qos: 1, retain: false },
    });
    const arrival = nextMessage(watcher, `will/${protocolVersion}`);
    dying.stream.destroy(); // an abrupt close, no DISCONNECT
    const { payload } = await arrival;
    assert.equal(payload, 'gone');
    dying.end(true);
    await close(watcher);
  });
}

test('server topic aliases: MQTT.js resolves them, within its maximum, named again after a reconnect', async () => {
  const clientId = 'aliased-mqttjs';
  const options = { protocolVersion: 5, clientId, properties: { topicAliasMaximum: 3 } };
  const hot = ['fleet/truck-17/engine/oil-temperature', 'fleet/truck-17/engine/rpm'];
  const topics = [];
  for (let round = 0; round < 8; round++) topics.push(...hot, `fleet/once/${round}`);

  // What crossed the wire, recorded before MQTT.js resolves the alias.
  const receiveAll = async (count) => {
    const { client } = await connect(options);
    await client.subscribeAsync('fleet/#', { qos: 1 });
    const wire = [];
    client.on('packetreceive', (packet) => {
      if (packet.cmd === 'publish') wire.push({ topic: packet.topic, alias: packet.properties?.topicAlias });
    });
    const resolved = [];
    const done = new Promise((resolve) => {
      client.on('message', (topic) => { resolved.push(topic); if (resolved.length === count) resolve(); });
    });
    return { client, wire, resolved, done };
  };

  const first = await receiveAll(topics.length);
  const { client: publisher } = await connect({ protocolVersion: 5, clientId: 'alias-publisher-js' });
  for (const topic of topics) await publisher.publishAsync(topic, 'm', { qos: 1 });
  await first.done;
  assert.deepEqual(first.resolved, topics, 'every message, its topic resolved, in order');
  const aliases = first.wire.map((w) => w.alias).filter((a) => a !== undefined);
  assert.ok(aliases.length > 0, 'aliases assigned');
  assert.ok(aliases.every((a) => a >= 1 && a <= 3), `within the maximum: ${aliases}`);
  const aliasOnly = first.wire.filter((w) => w.alias !== undefined && w.topic === '').length;
  assert.equal(aliasOnly, 12, 'the two busy topics from their third use on');
  await close(first.client);

  const second = await receiveAll(1);
  await publisher.publishAsync(hot[0], 'm', { qos: 1 });
  await second.done;
  assert.equal(second.wire[0].topic, hot[0], 'a new connection: the topic in full first');
  await close(second.client);
  await close(publisher);
});
