// The per-device id: a readable name the user picks once per browser. The MQTT client id
// is `{namespace}-{deviceId}`: stable while the device id is kept, distinct between apps
// (namespaces) on one broker.

import { clientError } from './wire.js';

const MAX_CHARS = 64;
/** Letters, digits, `-`, `_` and `.` (as Rust's `char::is_alphanumeric`: any script). */
const NAME = /^[\p{Alphabetic}\p{N}._-]+$/u;

/** Whether `text` is a name of at most 64 letters, digits, `-`, `_` and `.`. */
export const isName = (text) => NAME.test(text) && [...text].length <= MAX_CHARS;

/** `deviceId` trimmed, or an `invalid-device-id` error that says what is wrong. */
export function checkDeviceId(deviceId) {
  const trimmed = String(deviceId).trim();
  const invalid = (why) => clientError('invalid-device-id', `invalid device id: ${why}`);
  if (!trimmed) throw invalid('the device id is empty');
  if ([...trimmed].length > MAX_CHARS) throw invalid(`the device id is longer than ${MAX_CHARS} characters`);
  const bad = [...trimmed].find((c) => !NAME.test(c));
  if (bad) throw invalid(`the device id may only hold letters, digits, '-', '_' and '.' (found '${bad}')`);
  return trimmed;
}

const ADJECTIVES = 'amber brave calm dapper eager fuzzy gentle happy jolly keen lucky mellow nimble quiet rapid sunny';
const NOUNS = 'badger comet dolphin falcon gecko heron koala lynx maple otter panda quartz raven tiger walrus zebra';
const pick = (words) => {
  const list = words.split(' ');
  return list[Math.floor(Math.random() * list.length)];
};

/** A readable device id to offer the user, such as `sunny-otter-42`. */
export const suggestDeviceId = () => `${pick(ADJECTIVES)}-${pick(NOUNS)}-${10 + Math.floor(Math.random() * 90)}`;
