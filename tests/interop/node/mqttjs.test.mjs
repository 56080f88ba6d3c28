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
