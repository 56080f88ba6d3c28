// The byte format between this driver and the wasm module (see `src/wire/` in the
// crate): bytes, LEB128 integers, booleans, byte strings, UTF-8 strings, optional values.
// Requests are written here; actions, events, messages and outcomes are read here.

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Writes values into a growing buffer. */
export class Writer {
  constructor(tag) {
    this.buf = new Uint8Array(64);
    this.len = 0;
    if (tag !== undefined) this.u8(tag);
  }

  room(count) {
    if (this.len + count <= this.buf.length) return;
    const grown = new Uint8Array(Math.max(this.buf.length * 2, this.len + count));
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }

  u8(value) {
    this.room(1);
    this.buf[this.len++] = value;
    return this;
  }

  bool(value) {
    return this.u8(value ? 1 : 0);
  }

  n(value) {
    while (value > 127) {
      this.u8((value % 128) | 128);
      value = Math.floor(value / 128);
    }
    return this.u8(value);
  }

  rest(bytes) {
    this.room(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
    return this;
  }

  bytes(bytes) {
    return this.n(bytes.length).rest(bytes);
  }

  str(text) {
    return this.bytes(encoder.encode(text));
  }

  /** `value` with `write` after a presence byte, or an absence byte. */
  opt(value, write) {
    if (value == null) return this.u8(0);
    write(this.u8(1), value);
    return this;
  }

  done() {
    return this.buf.subarray(0, this.len);
  }
}

/** Reads values from bytes the module wrote. */
export class Reader {
  constructor(bytes) {
    this.buf = bytes;
    this.at = 0;
  }

  u8() {
    return this.buf[this.at++];
  }

  bool() {
    return this.u8() === 1;
  }

  n() {
    let value = 0;
    let scale = 1;
    let byte;
    do {
      byte = this.u8();
      value += (byte & 127) * scale;
      scale *= 128;
    } while (byte & 128);
    return value;
  }

  bytes() {
    const length = this.n();
    return this.buf.subarray(this.at, (this.at += length));
  }

  str() {
    return decoder.decode(this.bytes());
  }

  opt(read) {
    return this.bool() ? read(this) : undefined;
  }

  rest() {
    const rest = this.buf.subarray(this.at);
    this.at = this.buf.length;
    return rest;
  }
}

/** A JS `Error` with the client's `kind` (and `reasonCode` for refusals). */
export function clientError(kind, message, reasonCode) {
  const error = new Error(message);
  error.kind = kind;
  if (reasonCode !== undefined) error.reasonCode = reasonCode;
  return error;
}

const readError = (r) => clientError(r.str(), r.str(), r.opt((x) => x.n()));

/** How a request ended: `[true, value]` or `[false, error]`. */
export function readOutcome(r) {
  switch (r.u8()) {
    case 0: return [true, undefined];
    case 1: return [true, { sessionPresent: r.bool() }];
    case 2: return [true, Array.from(r.bytes())];
    default: return [false, readError(r)];
  }
}

const EVENTS = [
  (r) => ['connect', { sessionPresent: r.bool() }],
  (r) => ['disconnect', { reason: r.str(), reasonCode: r.opt((x) => x.n()), closeCode: r.n(), closeReason: r.str() }],
  (r) => ['reconnecting', { attempt: r.n(), delayMs: r.n() }],
  () => ['offline', undefined],
  () => ['online', undefined],
  (r) => ['takeover', { confirmed: r.bool() }],
  (r) => ['refused', { reasonCode: r.n() }],
  (r) => ['pending', { count: r.n() }],
  (r) => ['role', { role: r.bool() ? 'follower' : 'leader' }],
  () => ['device-id-needed', { kind: 'device-id-needed' }],
  (r) => ['error', { kind: r.str(), message: r.str() }],
];

/** An event's name and the object its handlers receive. */
export const readEvent = (r) => EVENTS[r.u8()](r);

/** The object a `message` handler receives. */
export function readMessage(r) {
  const id = r.str();
  const duplicate = r.bool();
  const topic = r.str();
  const payload = r.bytes().slice();
  const message = {
    id,
    duplicate,
    topic,
    payload,
    text: decoder.decode(payload),
    qos: r.u8(),
    retain: r.bool(),
  };
  r.opt((x) => x.n()); // message expiry: the broker's business
  message.contentType = r.opt((x) => x.str());
  message.responseTopic = r.opt((x) => x.str());
  message.correlationData = r.opt((x) => x.bytes().slice());
  message.userProperties = Array.from({ length: r.n() }, () => [r.str(), r.str()]);
  return message;
}

const STATES = ['queued', 'awaiting-puback', 'awaiting-pubrec', 'awaiting-pubcomp'];

/** The list `pending()` returns. */
export function readPending(r) {
  return Array.from({ length: r.n() }, () => ({ topic: r.str(), qos: r.u8(), state: STATES[r.u8()], bytes: r.n() }));
}
