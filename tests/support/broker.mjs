// Starts the real tabmq broker (TABMQ_BIN) on free loopback ports for one test file.
// Shared by the MQTT.js interop tests and the browser tests.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, openSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A loopback port no one listens on now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function waitForPort(port) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const open = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.end(); resolve(true); });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`broker never listened on ${port}`);
}

/**
 * Starts a broker; `www` is the folder it serves over HTTP (none by default), `config` a
 * TOML configuration file, or `configText` the text of one (command-line flags still set
 * listeners and storage).
 */
export async function startBroker({ www = '', config = null, configText = null } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tabmq-node-'));
  if (configText !== null) {
    config = path.join(dir, 'tabmq.toml');
    writeFileSync(config, configText);
  }
  const ws = await freePort();
  const tcp = await freePort();
  const log = openSync(path.join(dir, 'broker.log'), 'a');
  let child;
  const launch = async () => {
    child = spawn(process.env.TABMQ_BIN, [
      ...(config ? ['--config', config] : []),
      '--ws', `127.0.0.1:${ws}`, '--tcp', `127.0.0.1:${tcp}`, '--www', www, '--data-dir', path.join(dir, 'data'),
    ], { stdio: ['ignore', 'ignore', log] });
    await waitForPort(ws);
    await waitForPort(tcp);
  };
  await launch();
  const broker = {
    wsUrl: `ws://127.0.0.1:${ws}/mqtt`,
    httpUrl: `http://127.0.0.1:${ws}`,
    /** Stops the broker with SIGTERM and waits for it to exit. */
    async halt() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.on('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
    /** Kills the broker with SIGKILL, as a crash would. */
    async kill() {
      const exited = new Promise((resolve) => child.on('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
    /** Starts it again on the same ports and data. */
    restart: launch,
    /** A Prometheus metric's value (name without the tabmq_ prefix). */
    async metric(name) {
      const body = await (await fetch(`http://127.0.0.1:${ws}/metrics`)).text();
      const line = body.split('\n').find((l) => l.startsWith(`tabmq_${name} `));
      return Number(line.split(' ')[1]);
    },
    async stop() {
      await broker.halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return broker;
}
