// A second, independent load generator for `tabmq-bench`'s fan-in case, built on MQTT.js:
// PUBLISHERS clients publish QoS 1 messages of PAYLOAD bytes over WebSocket to one
// subscriber, each keeping WINDOW messages unacknowledged. Prints deliveries per second.
//
//   node fanin-load.mjs ws://127.0.0.1:8080/mqtt [messages] [payload] [publishers] [window]
import mqtt from 'mqtt';

const [url, messages = '20000', payload = '4096', publishers = '10', window = '50'] = process.argv.slice(2);
if (!url) {
  console.error('usage: node fanin-load.mjs URL [messages] [payload] [publishers] [window]');
  process.exit(2);
}
const total = Number(messages);
const body = Buffer.alloc(Number(payload), 7);
const options = { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 10_000 };

const connect = (clientId) => new Promise((resolve, reject) => {
  const client = mqtt.connect(url, { ...options, clientId });
  client.once('connect', () => resolve(client));
  client.once('error', reject);
});

const subscriber = await connect('load-subscriber');
await subscriber.subscribeAsync('load/#', { qos: 1 });
let received = 0;
const allReceived = new Promise((resolve) => {
  subscriber.on('message', () => { received += 1; if (received === total) resolve(); });
});

const clients = await Promise.all(Array.from({ length: Number(publishers) }, (_, n) => connect(`load-publisher-${n}`)));
const started = performance.now();
const timeout = setTimeout(() => {
  console.log(`${received} of ${total} delivered in 60 s: ${(received / 60).toFixed(1)} msg/s (cut)`);
  process.exit(1);
}, 60_000);
await Promise.all(clients.map(async (client, n) => {
  const share = Math.floor(total / clients.length) + (n < total % clients.length ? 1 : 0);
  let next = 0;
  const lane = async () => {
    while (next < share) {
      next += 1;
      await client.publishAsync(`load/${n}`, body, { qos: 1 });
    }
  };
  await Promise.all(Array.from({ length: Number(window) }, lane));
}));
await allReceived;
clearTimeout(timeout);
const seconds = (performance.now() - started) / 1000;
console.log(`${total} messages of ${payload} B, ${publishers} publishers: ${(total / seconds).toFixed(0)} msg/s`);
await Promise.all([subscriber, ...clients].map((client) => client.endAsync()));
