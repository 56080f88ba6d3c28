// The `credentials` option against a broker that takes JWTs: the page's function fetches
// a fresh token before every connect and reconnect (here from the test, standing for the
// app's backend). A token that expires ends the connection (DISCONNECT 0xA0); the client
// reconnects with a new token and goes on. The `user` option names the client id
// `{namespace}-{user}-{deviceId}`, which the broker's client_id_pattern ties to the
// token's subject. A token the broker refuses stops the client after one attempt.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { setUp, openHarness } from './harness.mjs';

const SECRET = 'browser-test-secret-of-32-bytes-or-more';

const b64url = (value) => Buffer.from(value).toString('base64url');

/** An HS256 token for `sub`, valid for `ttl` seconds (or signed with the wrong key). */
function mint(sub, ttl, key = SECRET) {
  const head = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + ttl }))}`;
  return `${head}.${createHmac('sha256', key).update(head).digest('base64url')}`;
}

let broker;
let browser;
before(async () => { ({ broker, browser } = await setUp({ configText: `[auth.jwt]\nsecret = "${SECRET}"\n[authz]\nclient_id_pattern = "*-%u-*"\n` })); });
after(async () => {
  await browser?.close();
  await broker?.stop();
});

/** A page whose client fetches its credentials from `issue(call)` through `credentials`. */
async function pageWithTokens(issue) {
  const page = await openHarness(await browser.newContext(), broker);
  page.mints = 0;
  await page.exposeFunction('fetchToken', () => issue(++page.mints));
  await page.evaluate(async (url) => {
    window.events = [];
    window.messages = [];
    const client = await window.tabmq.createClient({
      url,
      namespace: 'chat',
      user: 'alice',
      backoff: { initialMs: 100, maxMs: 1000 },
      credentials: () => window.fetchToken(),
    });
    for (const name of ['connect', 'disconnect', 'refused', 'reconnecting']) {
      client.on(name, (detail) => window.events.push({ name, detail: detail ?? null }));
    }
    client.on('message', (m) => window.messages.push(m.text));
    await client.setDeviceId('laptop');
    window.client = client;
  }, broker.wsUrl);
  return page;
}

test('an expiring token is replaced by a fresh one on reconnect, and the client goes on', async () => {
  // The first token lives 2 s; the later ones an hour.
  const page = await pageWithTokens((call) => ({ password: mint('alice', call === 1 ? 2 : 3600) }));
  assert.equal(await page.evaluate(() => window.client.clientId()), 'chat-alice-laptop');
  await page.evaluate(() => window.client.connect());
  await page.evaluate(() => window.client.subscribe('rooms/1', { qos: 1 }));
  await page.waitForFunction(() => window.events.some((e) => e.name === 'disconnect'), null, { timeout: 15_000 });
  const dropped = await page.evaluate(() => window.events.find((e) => e.name === 'disconnect').detail);
  assert.equal(dropped.reasonCode, 0xa0, 'maximum connect time: the token expired');
  await page.waitForFunction(() => window.events.filter((e) => e.name === 'connect').length >= 2, null, { timeout: 15_000 });
  assert.ok(page.mints >= 2, `a fresh token per connect (${page.mints})`);
  await page.evaluate(() => window.client.publish('rooms/1', 'after the new token', { qos: 1 }));
  await page.waitForFunction(() => window.messages.includes('after the new token'));
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a token the broker refuses stops the client after one attempt', async () => {
  const page = await pageWithTokens(() => ({ password: mint('alice', 3600, 'not-the-secret-of-the-broker-at-all!') }));
  const error = await page.evaluate(() => window.client.connect().then(() => null, (e) => ({ kind: e.kind, reasonCode: e.reasonCode })));
  assert.deepEqual(error, { kind: 'refused', reasonCode: 0x86 });
  assert.equal(page.mints, 1);
  assert.equal(await page.evaluate(() => window.events.filter((e) => e.name === 'reconnecting').length), 0);
  await page.context().close();
});

test("another user's token cannot use alice's client id", async () => {
  const page = await pageWithTokens(() => ({ username: 'mallory', password: mint('mallory', 3600) }));
  const error = await page.evaluate(() => window.client.connect().then(() => null, (e) => ({ kind: e.kind, reasonCode: e.reasonCode })));
  assert.deepEqual(error, { kind: 'refused', reasonCode: 0x85 });
  await page.context().close();
});
