// The app's arguments, checked field by field (errors name the field) and written for
// the wasm module: the client options and the requests.

import { isName } from './device-id.js';
import { Writer, clientError } from './wire.js';

const SECONDS = 'a whole number of seconds';
const MILLISECONDS = 'a whole number of milliseconds';
const QOS = '0, 1 or 2';
const PAIRS = 'an array of [name, value] string pairs or an object of strings';
const U32 = 2 ** 32 - 1;

/** A field reader of the object `value` (absent: every field absent); `fail` throws. */
function fields(value, path, fail) {
  if (value != null && typeof value !== 'object') fail(`${path || 'options'} must be an object`);
  const name = (key) => (path ? `${path}.${key}` : key);
  const get = (key, valid, expected) => {
    const field = value?.[key];
    if (field == null) return undefined;
    if (!valid(field)) fail(`${name(key)} must be ${expected}`);
    return field;
  };
  const int = (key, max, expected) =>
    get(key, (v) => Number.isInteger(v) && v >= 0 && v <= max, expected);
  return {
    str: (key) => get(key, (v) => typeof v === 'string', 'a string'),
    bool: (key) => get(key, (v) => typeof v === 'boolean', 'true or false'),
    int,
    qos: (key) => int(key, 2, QOS),
    object: (key) => (value?.[key] == null ? undefined : fields(value[key], name(key), fail)),
    pairs(key) {
      const field = value?.[key];
      if (field == null) return [];
      const pairs = Array.isArray(field) ? field : typeof field === 'object' ? Object.entries(field) : null;
      const pair = (p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string';
      if (!pairs?.every(pair)) fail(`${name(key)} must be ${PAIRS}`);
      return pairs;
    },
  };
}

const invalidOptions = (message) => {
  throw clientError('invalid-options', `invalid options: ${message}`);
};
const invalidRequest = (message) => {
  throw clientError('request', `request refused: ${message}`);
};

const VERSIONS = { '5.0': 5, 5: 5, '3.1.1': 4, 4: 4 };

/** The options of `createClient` as the module reads them, the broker URLs, the namespace
 * and the `credentials` function. */
export function writeOptions(options) {
  const o = fields(options, '', invalidOptions);
  const will = o.object('will');
  const backoff = o.object('backoff') ?? fields(undefined, 'backoff', invalidOptions);
  const urls = [options?.url].flat();
  if (!urls[0] || !urls.every((url) => /^wss?:\/\//.test(url))) invalidOptions('url must be ws:// or wss:// URLs');
  const namespace = o.str('namespace') ?? invalidOptions('namespace must be a string');
  if (!isName(namespace)) invalidOptions("namespace must be a name of letters, digits, '-', '_' or '.'");
  const version = VERSIONS[o.str('version') ?? '5.0'] ?? invalidOptions('version must be "5.0" or "3.1.1"');
  const user = o.str('user');
  if (user !== undefined && !isName(user)) invalidOptions("user must be a name of letters, digits, '-', '_' or '.'");
  const credentials = options?.credentials;
  if (credentials != null && typeof credentials !== 'function') invalidOptions('credentials must be a function');
  const writer = new Writer(version)
    .str(namespace)
    .opt(user, (w, v) => w.str(v))
    .n(o.int('keepAlive', 65535, 'a whole number of seconds up to 65535') ?? 60)
    .bool(o.bool('cleanStart') ?? false)
    .n(o.int('sessionExpiry', U32, SECONDS) ?? 86400)
    .opt(o.str('username'), (w, v) => w.str(v))
    .opt(o.str('password'), (w, v) => w.str(v))
    .opt(will, (w, will) =>
      w
        .str(will.str('topic') ?? invalidOptions('will.topic must be a string'))
        .str(will.str('payload') ?? '')
        .u8(will.qos('qos') ?? 0)
        .bool(will.bool('retain') ?? false)
        .opt(will.int('delaySeconds', U32, SECONDS), (x, v) => x.n(v)))
    .n(o.int('receiveMaximum', 65535, 'a whole number from 1 to 65535') || 100)
    .n(backoff.int('initialMs', U32, MILLISECONDS) ?? 500)
    .n(backoff.int('maxMs', U32, MILLISECONDS) ?? 30000)
    .n(backoff.int('stableMs', U32, MILLISECONDS) ?? 10000)
    .n(o.int('flapCooldownMs', U32, MILLISECONDS) ?? 30000);
  return [writer.done(), urls, namespace, credentials];
}

const encoder = new TextEncoder();

/** `publish(topic, payload, options)` as a request. */
export function writePublish(writer, topic, payload, options) {
  if (typeof topic !== 'string') invalidRequest('topic must be a string');
  if (typeof payload === 'string') payload = encoder.encode(payload);
  else if (!(payload instanceof Uint8Array)) invalidRequest('payload must be a string or a Uint8Array');
  const o = fields(options, '', invalidRequest);
  const qos = o.qos('qos') ?? 0;
  const retain = o.bool('retain') ?? false;
  const expiry = o.int('messageExpiry', U32, SECONDS);
  const contentType = o.str('contentType');
  const responseTopic = o.str('responseTopic');
  const correlation = o.str('correlationData');
  const pairs = o.pairs('userProperties');
  writer
    .u8(4)
    .str(topic)
    .bytes(payload)
    .u8(qos)
    .bool(retain)
    .opt(expiry, (w, v) => w.n(v))
    .opt(contentType, (w, v) => w.str(v))
    .opt(responseTopic, (w, v) => w.str(v))
    .opt(correlation, (w, v) => w.str(v))
    .n(pairs.length);
  for (const [name, value] of pairs) writer.str(name).str(value);
}

const filterList = (filters) =>
  (typeof filters === 'string' ? [filters] : Array.from(filters ?? [])).filter((f) => typeof f === 'string');

const writeFilters = (writer, filters) => {
  const list = filterList(filters);
  writer.n(list.length);
  for (const filter of list) writer.str(filter);
  return writer;
};

/** `subscribe(filters, options)` as a request. */
export function writeSubscribe(writer, filters, options) {
  const o = fields(options, '', invalidRequest);
  const qos = o.qos('qos') ?? 0;
  const noLocal = o.bool('noLocal') ?? false;
  const retainAsPublished = o.bool('retainAsPublished') ?? false;
  const retainHandling = o.int('retainHandling', 2, QOS) ?? 0;
  writeFilters(writer.u8(5), filters).u8(qos).bool(noLocal).bool(retainAsPublished).u8(retainHandling);
}

/** `unsubscribe(filters)` as a request. */
export const writeUnsubscribe = (writer, filters) => writeFilters(writer.u8(6), filters);
