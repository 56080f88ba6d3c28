// MQTT.js against a broker with a password file (written by `tabmq passwd`) and an ACL,
// over WebSocket, MQTT 3.1.1 and 5.0: the right password connects, a wrong one is refused
// with the code each version has for it, and the ACL answers SUBSCRIBE in the SUBACK.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { startBroker } from '../../support/broker.mjs';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tabmq-mqttjs-security-'));
const passwords = path.join(dir, 'passwords');
const acl = path.join(dir, 'acl');
const config = path.join(dir, 'tabmq.toml');

let broker;
before(async () => {
  execFileSync(process.env.TABMQ_BIN, ['passwd', passwords, 'alice'], { input: 'wonderland\n' });
  writeFileSync(acl, 'user alice\ntopic readwrite chat/#\n');
  writeFileSync(config, `[auth]\npassword_file = "${passwords}"\n[authz]\nacl_file = "${acl}"\n`);
  broker = await startBroker({ config });
});
after(async () => {
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
});

function connect(options) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(broker.wsUrl, { reconnectPeriod: 0, connectTimeout: 10_000, ...options });
    client.once('connect', () => resolve(client));
    client.once('error', (error) => {
      client.end(true);
      reject(error);
    });
  });
}

const close = (client) => new Promise((resolve) => client.end(false, {}, resolve));

for (const protocolVersion of [4, 5]) {
  test(`password and ACL, protocol ${protocolVersion}`, async () => {
    const alice = await connect({ protocolVersion, clientId: `alice-${protocolVersion}`, username: 'alice', password: 'wonderland' });
    const granted = await alice.subscribeAsync('chat/room', { qos: 1 });
    assert.deepEqual(granted.map((g) => g.qos), [1]);
    // MQTT.js turns a refused filter into an error naming the SUBACK's code.
    const refused = await alice.subscribeAsync('secrets/#', { qos: 1 }).then(() => 'granted', (error) => error.message);
    assert.equal(refused, protocolVersion === 5 ? 'Subscribe error: Not authorized' : 'Subscribe error: Unspecified error');
    await close(alice);

    const wrong = await connect({ protocolVersion, clientId: `guess-${protocolVersion}`, username: 'alice', password: 'guess' }).then(
      () => null,
      (error) => error.code,
    );
    // MQTT.js reports CONNACK's code: 5.0 0x86 (134), 3.1.1 return code 4.
    assert.equal(wrong, protocolVersion === 5 ? 134 : 4);

    const anonymous = await connect({ protocolVersion, clientId: `anon-${protocolVersion}` }).then(() => null, (error) => error.code);
    assert.equal(anonymous, protocolVersion === 5 ? 135 : 5);
  });
}
