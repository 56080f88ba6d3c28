// The demo page's flows in headless Chromium, each saving a screenshot to
// target/screenshots/: first visit, publish and receive, pending messages across a
// broker restart, a second tab as follower, and a second device taking over.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';
import { startBroker } from '../support/broker.mjs';
import { CHROMIUM_ARGS } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const shots = path.join(root, 'target/screenshots');
mkdirSync(shots, { recursive: true });

let broker;
let browser;
before(async () => {
  broker = await startBroker({ www: path.join(root, 'www') });
  const executablePath = execFileSync('which', ['chromium']).toString().trim();
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
});
after(async () => { await browser?.close(); await broker?.stop(); });

// Every browser context a test opens is closed after it, even when it fails, so that a
// failing flow does not leave connections behind for the next one to count.
const contexts = [];
afterEach(async () => {
  await Promise.all(contexts.splice(0).map((context) => context.close().catch(() => {})));
});
async function newContext() {
  const context = await browser.newContext();
  contexts.push(context);
  return context;
}

async function openDemo(context) {
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(String(error)));
  page.on('console', (message) => { if (message.type() === 'error') page.errors.push(message.text()); });
  await page.setViewportSize({ width: 1000, height: 900 });
  await page.goto(`${broker.httpUrl}/`);
  return page;
}

const stateText = (page) => page.locator('#state').textContent();

async function nameDevice(page, name) {
  await page.waitForSelector('#device-dialog[open]');
  if (name) await page.fill('#device-input', name);
  await page.press('#device-input', 'Enter');
  await page.waitForFunction(() => document.getElementById('state').textContent.startsWith('connected'));
  // The page subscribes once connected; the broker has it on disk when SUBACK comes.
  await page.waitForFunction(() => document.getElementById('messaging-status').textContent.startsWith('Subscribed'));
}

test('first visit asks for a device name once; the next visit skips it', async () => {
  const context = await newContext();
  const page = await openDemo(context);
  await page.waitForSelector('#device-dialog[open]');
  const suggested = await page.inputValue('#device-input');
  assert.match(suggested, /^[a-z]+-[a-z]+-\d\d$/, 'a readable suggestion');
  await page.screenshot({ path: path.join(shots, 'demo-first-visit.png') });
  await page.fill('#device-input', 'not valid!');
  await page.press('#device-input', 'Enter');
  assert.match(await page.locator('#device-error').textContent(), /device id|letters/i, 'invalid names are explained');
  await nameDevice(page, 'first-visit');
  assert.equal(await page.locator('#client-id').textContent(), 'demo-first-visit');
  assert.equal(await stateText(page), 'connected, new session');

  await page.reload();
  await page.waitForFunction(() => document.getElementById('state').textContent.startsWith('connected'));
  assert.equal(await page.locator('#device-dialog').getAttribute('open'), null, 'no prompt on the next visit');
  assert.equal(await stateText(page), 'connected, session resumed');

  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at phone width (${overflow} px too wide)`);
  await page.screenshot({ path: path.join(shots, 'demo-phone.png'), fullPage: true });
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('publish and receive show up in the message log', async () => {
  const context = await newContext();
  const page = await openDemo(context);
  await nameDevice(page, 'messenger');
  await page.fill('#payload-input', 'hello from the demo');
  await page.selectOption('#pub-qos', '2');
  await page.press('#payload-input', 'Enter');
  await page.waitForFunction(() => document.getElementById('log').rows.length === 1);
  const cells = await page.locator('#log tr:first-child td').allTextContents();
  assert.deepEqual(cells.slice(1), ['demo/chat', '1', 'no', 'hello from the demo'], 'delivered at the subscription QoS, min(2, 1)');
  await page.waitForFunction(() => document.getElementById('messaging-status').textContent.startsWith('Delivered'));
  await page.screenshot({ path: path.join(shots, 'demo-messaging.png') });
  assert.deepEqual(page.errors.filter((e) => !e.includes('WebSocket')), []);
  await context.close();
});

test('the pending panel fills while the broker is down and drains when it returns', async () => {
  const context = await newContext();
  const page = await openDemo(context);
  await nameDevice(page, 'offline-writer');
  await broker.halt();
  await page.waitForFunction(() => !document.getElementById('state').textContent.startsWith('connected'));
  for (const text of ['one', 'two', 'three']) {
    await page.fill('#payload-input', text);
    await page.press('#payload-input', 'Enter');
  }
  await page.waitForFunction(() => document.getElementById('pending-list').children.length === 3);
  assert.match(await page.locator('#pending-count').textContent(), /^3 message/);
  await page.screenshot({ path: path.join(shots, 'demo-pending-filled.png') });

  await broker.restart();
  await page.waitForFunction(() => document.getElementById('pending-count').textContent === 'Nothing pending.', null, { timeout: 30_000 });
  // QoS 1 is at least once: a reconnect while the broker starts may repeat a message.
  await page.waitForFunction(() => {
    const texts = [...document.querySelectorAll('#log td.message')].map((td) => td.textContent);
    return ['one', 'two', 'three'].every((text) => texts.includes(text));
  });
  const texts = (await page.locator('#log td.message').allTextContents()).reverse();
  assert.deepEqual([...new Set(texts)], ['one', 'two', 'three'], 'delivered in order');
  await page.screenshot({ path: path.join(shots, 'demo-pending-drained.png') });
  await context.close();
});

test('a second tab is a follower relayed through the first', async () => {
  const context = await newContext();
  const first = await openDemo(context);
  await nameDevice(first, 'two-tabs');
  const second = await openDemo(context);
  await second.waitForFunction(() => document.getElementById('role').textContent === 'relayed through another tab');
  // The follower reports the leader's real session-present flag: a first visit is a new session.
  await second.waitForFunction(() => document.getElementById('state').textContent === 'connected, new session');
  assert.equal(await first.locator('#state').textContent(), 'connected, new session');
  assert.equal(await first.locator('#role').textContent(), 'holds the connection');
  assert.equal(await broker.metric('connections'), 1);
  await second.fill('#payload-input', 'from the second tab');
  await second.press('#payload-input', 'Enter');
  for (const page of [first, second]) {
    await page.waitForFunction(() => [...document.querySelectorAll('#log td.message')].some((td) => td.textContent === 'from the second tab'));
  }
  await second.screenshot({ path: path.join(shots, 'demo-follower-tab.png') });
  assert.deepEqual([...first.errors, ...second.errors], []);
  await context.close();
});

test('a second device with the same name shows the takeover banner once, and the session can be taken back', async () => {
  const laptop = await openDemo(await newContext());
  await nameDevice(laptop, 'shared-name');
  const phone = await openDemo(await newContext());
  await nameDevice(phone, 'shared-name');
  await laptop.waitForSelector('#takeover-banner:not([hidden])');
  assert.equal(await stateText(laptop), 'taken over');
  await laptop.screenshot({ path: path.join(shots, 'demo-takeover.png') });
  assert.equal(await phone.locator('#takeover-banner').isHidden(), true);

  // The laptop stepped aside and stays aside: one connection at the broker, the phone's.
  await waitForConnections(1);
  assert.equal(await stateText(laptop), 'taken over');
  assert.equal(await stateText(phone), 'connected, session resumed');

  await laptop.click('#takeback-button');
  await laptop.waitForFunction(() => document.getElementById('state').textContent.startsWith('connected'));
  await phone.waitForSelector('#takeover-banner:not([hidden])');
  assert.equal(await laptop.locator('#takeover-banner').isHidden(), true);
  await waitForConnections(1);
  await laptop.context().close();
  await phone.context().close();
});

/** Polls the broker's metrics until it reports `count` connections (or times out). */
async function waitForConnections(count, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let seen;
  while (Date.now() < deadline) {
    seen = await broker.metric('connections');
    if (seen === count) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`broker reports ${seen} connections, expected ${count}`);
}
