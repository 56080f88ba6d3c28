// The app's API. Arguments are checked and written here; every request goes to the
// session machine through the one driver.

import { Machine, initSync } from '../dist/tabmq_client.js';
import { checkDeviceId } from './device-id.js';
import { Driver } from './driver.js';
import { writeOptions, writePublish, writeSubscribe, writeUnsubscribe } from './options.js';
import { Storage } from './storage.js';
import { Reader, Writer, clientError, readPending } from './wire.js';

let ready;

/** Loads the WebAssembly module, once. */
function load() {
  ready ??= (async () => {
    // Compiled here rather than by the glue's loader, whose fallbacks and warnings this
    // package does not need: streaming where the server sends `application/wasm`.
    const response = await fetch(new URL('./tabmq_client_bg.wasm', import.meta.url));
    const module = await WebAssembly.compileStreaming(response.clone()).catch(async () =>
      WebAssembly.compile(await response.arrayBuffer()),
    );
    initSync({ module });
  })();
  ready.catch(() => {
    ready = undefined; // a failed load is tried again by the next createClient
  });
  return ready;
}

const ROLES = [undefined, 'leader', 'follower'];
const random = (bits) => Math.floor(Math.random() * 2 ** bits);

/** What `machine` says now: device id, client id, connected, role, pending list. */
function view(machine) {
  const r = new Reader(machine.view());
  const str = (x) => x.str();
  return { deviceId: r.opt(str), clientId: r.opt(str), connected: r.bool(), role: ROLES[r.u8()], pending: readPending(r) };
}

/** The browser MQTT client. See index.d.ts. */
export class TabMqClient {
  /**
   * Opens the namespace's IndexedDB database, reads the device id and joins the other
   * tabs of its client id. Does not connect.
   */
  static async create(options) {
    await load();
    const [bytes, urls, namespace, credentials] = writeOptions(options);
    const tab = `tab-${random(52).toString(16)}`;
    let storage;
    let deviceId;
    try {
      storage = await Storage.open(namespace);
      deviceId = await storage.deviceId();
    } catch (error) {
      throw clientError('storage', `storage failure: ${error?.message ?? error}`);
    }
    const setup = new Writer().rest(bytes).str(tab).opt(deviceId, (w, id) => w.str(id)).n(random(53));
    const machine = Machine.create(setup.done());
    return new TabMqClient(new Driver(machine, storage, urls, tab, credentials));
  }

  constructor(driver) {
    this.driver = driver;
  }

  /** The stored device id, or `undefined` when the user has not chosen one yet. */
  deviceId() {
    return view(this.driver.machine).deviceId;
  }

  /** The MQTT client id: `{namespace}-{deviceId}`. */
  clientId() {
    return view(this.driver.machine).clientId;
  }

  /** Validates and stores the device id, then uses it (the old id's connection ends). */
  setDeviceId(deviceId) {
    return this.driver.request((w) => w.u8(3).u8(1).str(checkDeviceId(deviceId)));
  }

  /** Forgets the device id (and disconnects). */
  clearDeviceId() {
    return this.driver.request((w) => w.u8(3).u8(0));
  }

  /** Connects, and keeps reconnecting with backoff; resolves with `{ sessionPresent }`. */
  connect() {
    return this.driver.request((w) => w.u8(0));
  }

  /** Publishes; the message is in IndexedDB before it is sent. */
  publish(topic, payload, options) {
    return this.driver.request((w) => writePublish(w, topic, payload, options));
  }

  /** Subscribes to one filter or an array of them; resolves with a reason code per filter. */
  subscribe(filters, options) {
    return this.driver.request((w) => writeSubscribe(w, filters, options));
  }

  /** Unsubscribes from one filter or an array of them. */
  unsubscribe(filters) {
    return this.driver.request((w) => writeUnsubscribe(w, filters));
  }

  /** Disconnects on purpose; pending messages stay saved for the next `connect`. */
  disconnect() {
    return this.driver.request((w) => w.u8(1));
  }

  /** Disconnects and gives up this tab's part for good (the next tab leads). */
  close() {
    return this.driver.request((w) => w.u8(2));
  }

  /** Messages accepted and not yet acknowledged, in flight first. */
  pending() {
    return view(this.driver.machine).pending;
  }

  /** Whether the connection (this tab's, or the leader's for a follower) is up. */
  get connected() {
    return view(this.driver.machine).connected;
  }

  /** `"leader"`, `"follower"`, or `undefined` before it is known. */
  get role() {
    return view(this.driver.machine).role;
  }

  /** Adds an event handler. */
  on(event, handler) {
    this.driver.handlers.push([event, handler]);
  }

  /** Removes an event handler. */
  off(event, handler) {
    this.driver.handlers = this.driver.handlers.filter(([e, h]) => e !== event || h !== handler);
  }
}
