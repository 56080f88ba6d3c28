// Shared set-up of the browser tests: the broker serving the harness page and the
// built package, and Debian's Chromium driven by playwright-core.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startBroker } from '../support/broker.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const www = path.join(here, 'www');

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run',
];

/**
 * Starts a broker serving the harness (with `config`, a TOML file, or `configText`, the
 * text of one, if given), and a browser launched with `CHROMIUM_ARGS` and `args`.
 */
export async function setUp({ config = null, configText = null, args = [] } = {}) {
  rmSync(path.join(www, 'pkg'), { recursive: true, force: true });
  cpSync(path.join(here, '../../www/pkg'), path.join(www, 'pkg'), { recursive: true });
  const broker = await startBroker({ www, config, configText });
  const executablePath = execFileSync('which', ['chromium']).toString().trim();
  const browser = await chromium.launch({ executablePath, args: [...CHROMIUM_ARGS, ...args] });
  return { broker, browser };
}

/**
 * A browser with a profile on disk (its own process). DevTools storage overrides, such as
 * a quota, apply to a profile's default storage, not to the throwaway `newContext()` ones.
 */
export async function persistentContext() {
  const executablePath = execFileSync('which', ['chromium']).toString().trim();
  const profile = mkdtempSync(path.join(os.tmpdir(), 'tabmq-profile-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath, args: CHROMIUM_ARGS });
  const close = context.close.bind(context);
  context.close = async () => { await close(); rmSync(profile, { recursive: true, force: true }); };
  return context;
}

/**
 * A new page (tab) in `context` with the harness loaded (from `origin`, the broker's own
 * by default) and console errors collected.
 */
export async function openHarness(context, broker, origin = broker.httpUrl) {
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') page.errors.push(message.text());
  });
  await page.goto(`${origin}/harness.html`);
  await page.waitForFunction(() => window.harnessReady === true);
  return page;
}

/**
 * Creates a client in the page as `window.client`, with `deviceId` set (unless null),
 * recording every event in `window.events`.
 */
export async function createClient(page, broker, { namespace = 'test', deviceId = 'device-a', version = '5.0', record = false, url = broker.wsUrl, ...rest } = {}) {
  await page.evaluate(async ({ url, namespace, deviceId, version, record, rest }) => {
    window.events = [];
    window.messages = [];
    const client = await window.tabmq.createClient({ url, namespace, version, backoff: { initialMs: 100, maxMs: 1000 }, ...rest });
    for (const name of ['connect', 'disconnect', 'reconnecting', 'takeover', 'refused', 'offline', 'online', 'error', 'device-id-needed']) {
      client.on(name, (detail) => window.events.push({ name, detail: detail ?? null }));
    }
    client.on('message', (m) => window.messages.push({ topic: m.topic, text: m.text, qos: m.qos, retain: m.retain }));
    if (record) {
      // Every message handed to the app is recorded durably, as an app would, across reloads.
      client.on('message', (m) => {
        const seen = JSON.parse(localStorage.getItem('seen') ?? '[]');
        seen.push(m.text);
        localStorage.setItem('seen', JSON.stringify(seen));
      });
    }
    if (deviceId !== null) await client.setDeviceId(deviceId);
    window.client = client;
  }, { url, namespace, deviceId, version, record, rest });
}

/** Waits until the page has received `count` messages; returns them. */
export async function waitForMessages(page, count, timeout = 15_000) {
  await page.waitForFunction((n) => window.messages.length >= n, count, { timeout });
  return page.evaluate(() => window.messages);
}
