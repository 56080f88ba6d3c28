// Starts the real tabmq broker (TABMQ_BIN) on free loopback ports for one test file.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, openSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

function freePort() {
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

export async function startBroker() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tabmq-node-'));
  const ws = await freePort();
  const tcp = await freePort();
  const log = openSync(path.join(dir, 'broker.log'), 'w');
  const child = spawn(process.env.TABMQ_BIN, [
    '--ws', `127.0.0.1:${ws}`, '--tcp', `127.0.0.1:${tcp}`, '--www', '', '--data-dir', path.join(dir, 'data'),
  ], { stdio: ['ignore', 'ignore', log] });
  await waitForPort(ws);
  await waitForPort(tcp);
  return {
    wsUrl: `ws://127.0.0.1:${ws}/mqtt`,
    async stop() {
      const exited = new Promise((resolve) => child.on('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
