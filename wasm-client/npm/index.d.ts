
/** Options of `createClient`. */
export interface ClientOptions {
  /** Broker URL, e.g. `ws://localhost:8080/mqtt`, or the URLs of a cluster's nodes: each
   * connection attempt takes the next one (the session goes along). */
  url: string | string[];
  /** App namespace: names the IndexedDB database and prefixes the client id. */
  namespace: string;
  /** MQTT version, default `"5.0"`. */
  version?: '5.0' | '3.1.1';
  /** Keep-alive in seconds, default 60. */
  keepAlive?: number;
  /** Discard the broker's stored session at connect, default false. */
  cleanStart?: boolean;
  /** MQTT 5 session expiry interval in seconds, default 86400. */
  sessionExpiry?: number;
  username?: string;
  password?: string;
  /** The signed-in user, for apps that have one: the client id becomes
   * `{namespace}-{user}-{deviceId}` (so a broker's `client_id_pattern` can tie ids to users),
   * and the CONNECT user name defaults to it. */
  user?: string;
  /** Called before every connect and reconnect for the CONNECT's user name and password,
   * such as a fresh JWT from the app's backend; they replace `username` and `password`. */
  credentials?: () => Promise<{ username?: string; password?: string }> | { username?: string; password?: string };
  /** Published by the broker if this client goes away without disconnecting. */
  will?: { topic: string; payload: string; qos?: 0 | 1 | 2; retain?: boolean; delaySeconds?: number };
  /** QoS 1/2 messages the broker may send ahead of the app's handler (MQTT 5 receive maximum), default 100. */
  receiveMaximum?: number;
  /** Wait before the one retry after a flap-guard refusal (CONNACK 0x9F), default 30000 ms. */
  flapCooldownMs?: number;
  /** Reconnect backoff: exponential from `initialMs` to `maxMs` with jitter, reset after `stableMs` connected. */
  backoff?: { initialMs?: number; maxMs?: number; stableMs?: number };
}

/** Options of `publish`. */
export interface PublishOptions {
  qos?: 0 | 1 | 2;
  retain?: boolean;
  /** MQTT 5 message expiry, seconds. */
  messageExpiry?: number;
  contentType?: string;
  responseTopic?: string;
  correlationData?: string;
  /** `[name, value]` pairs (order and repeats kept), or an object of strings. */
  userProperties?: [string, string][] | Record<string, string>;
}

/** Options of `subscribe`. */
export interface SubscribeOptions {
  qos?: 0 | 1 | 2;
  noLocal?: boolean;
  retainAsPublished?: boolean;
  /** 0: send retained messages at subscribe, 1: only for a new subscription, 2: never. */
  retainHandling?: 0 | 1 | 2;
}

/** A received message (`message` event). */
export interface Message {
  /** The same for every redelivery of this message (see the package README): deduplicate with it. */
  id: string;
  /** The broker's DUP flag: this may be a redelivery of a message handed over before. */
  duplicate: boolean;
  topic: string;
  payload: Uint8Array;
  /** The payload decoded as UTF-8. */
  text: string;
  qos: 0 | 1 | 2;
  retain: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Uint8Array;
  userProperties: [string, string][];
}

/** A message waiting in IndexedDB (`pending()`). */
export interface PendingMessage {
  topic: string;
  qos: 0 | 1 | 2;
  state: 'queued' | 'awaiting-puback' | 'awaiting-pubrec' | 'awaiting-pubcomp';
  bytes: number;
}

/** Payloads of the events `client.on(name, handler)` delivers. */
export interface ClientEvents {
  connect: { sessionPresent: boolean };
  message: Message;
  disconnect: { reason: string; reasonCode?: number; closeCode: number; closeReason: string };
  reconnecting: { attempt: number; delayMs: number };
  offline: undefined;
  online: undefined;
  /** Another connection took this session over; reconnecting has stopped. */
  takeover: { confirmed: boolean };
  /** The broker refused the connection for a reason retrying cannot fix; reconnecting has stopped. */
  refused: { reasonCode: number };
  role: { role: 'leader' | 'follower' };
  pending: { count: number };
  'device-id-needed': { kind: 'device-id-needed' };
  error: { kind: string; message: string };
}

/** Errors thrown or rejected by the client carry a `kind`. */
export interface TabMqError extends Error {
  kind: 'device-id-needed' | 'invalid-device-id' | 'invalid-options' | 'storage' | 'request' | 'refused' | 'takeover' | 'disconnected';
  reasonCode?: number;
}

/** Loads the WebAssembly module (once) and creates a client; it does not connect yet. */
export function createClient(options: ClientOptions): Promise<TabMqClient>;

/** A readable device id to offer the user, such as `sunny-otter-42`. */
export function suggestDeviceId(): Promise<string>;

/** The browser MQTT client. Only one tab of a browser holds the connection of a client id
 * (the leader); the others relay through it. */
export class TabMqClient {
  private constructor();
  /** Opens the namespace's IndexedDB database, reads the device id and joins the other
   * tabs of its client id. Does not connect. */
  static create(options: ClientOptions): Promise<TabMqClient>;
  /** The stored device id, or `undefined` when the user has not chosen one yet. */
  deviceId(): string | undefined;
  /** The MQTT client id: `{namespace}-{deviceId}`. */
  clientId(): string | undefined;
  /** Validates and stores the device id, then uses it: the connection of the old id ends,
   * its tab lock is released, and `connect` connects under the new one. */
  setDeviceId(deviceId: string): Promise<void>;
  /** Forgets the device id (and disconnects); `connect` then reports `device-id-needed`. */
  clearDeviceId(): Promise<void>;
  /** Connects (and keeps reconnecting with backoff). Rejects with kind `device-id-needed`,
   * `refused` (with `reasonCode`) or `takeover`. */
  connect(): Promise<{ sessionPresent: boolean }>;
  /** Publishes `payload` to `topic`. The message is in IndexedDB before it is sent (and
   * while offline); the promise resolves once acknowledged per its QoS. */
  publish(topic: string, payload: string | Uint8Array, options?: PublishOptions): Promise<void>;
  /** Subscribes to one filter or an array of them; resolves with the reason code per filter. */
  subscribe(filters: string | string[], options?: SubscribeOptions): Promise<number[]>;
  /** Unsubscribes from one filter or an array of them. */
  unsubscribe(filters: string | string[]): Promise<number[]>;
  /** Disconnects on purpose; pending messages stay saved for the next `connect`. In a
   * follower tab, only this tab stops wanting the shared connection. */
  disconnect(): Promise<void>;
  /** Disconnects and gives up this tab's part for good: its tab lock is released (the
   * next tab leads) and later calls are refused. */
  close(): Promise<void>;
  /** Messages accepted and not yet acknowledged, in flight first (a follower: the leader's). */
  pending(): PendingMessage[];
  /** Whether the connection (this tab's, or the leader's for a follower) is up. */
  readonly connected: boolean;
  /** `"leader"` (this tab holds the connection), `"follower"`, or `undefined` before it is known. */
  readonly role: 'leader' | 'follower' | undefined;
  /** Adds an event handler. A `message` handler may return a promise: the message is
   * acknowledged, and the next one handed over, once it settles. */
  on<K extends keyof ClientEvents>(event: K, handler: (detail: ClientEvents[K]) => unknown): void;
  /** Removes an event handler. */
  off<K extends keyof ClientEvents>(event: K, handler: (detail: ClientEvents[K]) => unknown): void;
}
