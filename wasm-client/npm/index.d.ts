import type { TabMqClient } from './dist/tabmq_client.js';
export type { TabMqClient };

/** Options of `createClient`. */
export interface ClientOptions {
  /** Broker URL, e.g. `ws://localhost:8080/mqtt`. */
  url: string;
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
