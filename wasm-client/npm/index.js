// tabmq: the browser MQTT client. Loads the WebAssembly module once, then creates clients.
import init, { TabMqClient } from './dist/tabmq_client.js';

let ready;

/** Loads the WebAssembly module (once) and creates a client. See index.d.ts. */
export async function createClient(options) {
  ready ??= init({ module_or_path: new URL('./dist/tabmq_client_bg.wasm', import.meta.url) });
  await ready;
  return TabMqClient.create(options);
}

/** A readable device id to offer the user, such as `sunny-otter-42`. */
export async function suggestDeviceId() {
  ready ??= init({ module_or_path: new URL('./dist/tabmq_client_bg.wasm', import.meta.url) });
  await ready;
  return TabMqClient.suggestDeviceId();
}

export { TabMqClient };
