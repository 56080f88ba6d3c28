// tabmq: the browser MQTT client, the package's entry (bundled into dist/index.js).
import { TabMqClient } from './client.js';
import { suggestDeviceId as suggest } from './device-id.js';

/** Loads the WebAssembly module (once) and creates a client. See index.d.ts. */
export async function createClient(options) {
  return TabMqClient.create(options);
}

/** A readable device id to offer the user, such as `sunny-otter-42`. */
export async function suggestDeviceId() {
  return suggest();
}

export { TabMqClient };
