// Starts a local NATS cluster with JetStream for one test file: three nats-server
// processes ($NATS_SERVER, which `cargo xtask test` installs) on free loopback ports.
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { freePort } from './broker.mjs';

async function healthy(monitor) {
  try {
    const response = await fetch(`http://127.0.0.1:${monitor}/healthz`);
    return response.ok && (await response.text()).includes('"ok"');
  } catch {
    return false;
  }
}

/** Starts the servers and waits until each reports itself healthy, JetStream included. */
export async function startNatsCluster(name) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `tabmq-nats-${name}-`));
  const routes = await Promise.all([0, 1, 2].map(freePort));
  const servers = [];
  const clients = [];
  const monitors = [];
  for (const [index, route] of routes.entries()) {
    const [client, monitor] = [await freePort(), await freePort()];
    const log = openSync(path.join(dir, `n${index}.log`), 'a');
    const child = spawn(process.env.NATS_SERVER ?? 'nats-server', [
      '-a', '127.0.0.1', '-p', String(client), '-m', String(monitor),
      '-n', `${name}-${index}`, '--cluster_name', name,
      '-cluster', `nats://127.0.0.1:${route}`,
      '-routes', routes.map((port) => `nats://127.0.0.1:${port}`).join(','),
      '-js', '-sd', path.join(dir, `n${index}`),
    ], { stdio: ['ignore', 'ignore', log] });
    servers.push(child);
    clients.push(`nats://127.0.0.1:${client}`);
    monitors.push(monitor);
  }
  const deadline = Date.now() + 30_000;
  for (const monitor of monitors) {
    while (!(await healthy(monitor))) {
      if (Date.now() > deadline) throw new Error(`NATS never became healthy; logs in ${dir}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    /** The `[cluster]` config section of a tabmq node named `nodeId` on server `index`. */
    nodeConfig: (nodeId, index) => `[cluster]\nnats = ["${clients[index]}"]\nnode_id = "${nodeId}"\n`,
    async stop() {
      await Promise.all(servers.map((child) => {
        const exited = new Promise((resolve) => child.on('exit', resolve));
        child.kill('SIGKILL');
        return exited;
      }));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
