// The demo page: the npm package used exactly as an app would use it.
import { createClient, suggestDeviceId } from './pkg/index.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const version = params.get('v') === '3.1.1' ? '3.1.1' : '5.0';
const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/mqtt`;
// With a broker that takes JWTs (README, "The demo with a token"): ?token=... is the password.
const token = params.get('token');

function setState(text, tone) {
  const badge = $('state');
  badge.textContent = text;
  badge.className = `badge ${tone ?? ''}`;
}

function say(text) {
  $('messaging-status').textContent = text;
}

let countdown;
function showReconnecting(delayMs) {
  clearInterval(countdown);
  const until = Date.now() + delayMs;
  const tick = () => {
    const seconds = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    setState(`reconnecting in ${seconds} s`, 'warn');
    if (seconds === 0) clearInterval(countdown);
  };
  tick();
  countdown = setInterval(tick, 250);
}

function logMessage(message) {
  const row = document.createElement('tr');
  const cells = [new Date().toLocaleTimeString(), message.topic, String(message.qos), message.retain ? 'yes' : 'no', message.text];
  for (const [index, text] of cells.entries()) {
    const cell = document.createElement('td');
    cell.textContent = text;
    if (index === 4) cell.className = 'message';
    row.append(cell);
  }
  $('log').prepend(row);
  while ($('log').rows.length > 200) $('log').deleteRow(-1);
}

function showPending(items) {
  $('pending-count').textContent = items.length === 0 ? 'Nothing pending.' : `${items.length} message(s) waiting for the broker.`;
  $('pending-list').replaceChildren(...items.slice(0, 50).map((item) => {
    const li = document.createElement('li');
    li.textContent = `${item.topic} · QoS ${item.qos} · ${item.state.replace('-', ' ')}`;
    return li;
  }));
}

async function askDeviceId(client, reason) {
  const dialog = $('device-dialog');
  const input = $('device-input');
  input.value = client.deviceId() ?? await suggestDeviceId();
  $('device-error').textContent = reason ?? '';
  dialog.showModal();
  input.select();
  return new Promise((resolve) => {
    $('device-form').onsubmit = async (event) => {
      event.preventDefault();
      try {
        await client.setDeviceId(input.value);
        dialog.close();
        resolve();
      } catch (error) {
        $('device-error').textContent = error.message;
      }
    };
  });
}

function showConnected({ sessionPresent }) {
  clearInterval(countdown);
  setState(sessionPresent ? 'connected, session resumed' : 'connected, new session', 'ok');
  $('takeover-banner').hidden = true;
}

async function connect(client) {
  $('client-id').textContent = client.clientId();
  setState('connecting');
  try {
    // A tab relayed through another one gets no `connect` event: it joins a live session.
    showConnected(await client.connect());
  } catch (error) {
    if (error.kind === 'device-id-needed') {
      await askDeviceId(client);
      return connect(client);
    }
    if (error.kind !== 'takeover') setState(`refused (${error.message})`, 'bad');
  }
}

async function subscribe(client, filter, qos) {
  try {
    const [code] = await client.subscribe(filter, { qos });
    say(code < 0x80 ? `Subscribed to ${filter} (QoS ${code}).` : `Subscription to ${filter} refused (code ${code}).`);
  } catch (error) {
    say(`Could not subscribe: ${error.message}`);
  }
}

async function main() {
  $('version').textContent = version;
  const credentials = token ? () => ({ password: token }) : undefined;
  const client = await createClient({ url, namespace: 'demo', version, credentials });
  client.on('connect', showConnected);
  client.on('disconnect', () => setState('disconnected', 'warn'));
  client.on('reconnecting', ({ delayMs }) => showReconnecting(delayMs));
  client.on('offline', () => setState('offline: waiting for the network', 'warn'));
  client.on('role', ({ role }) => {
    $('role').textContent = role === 'leader' ? 'holds the connection' : 'relayed through another tab';
  });
  client.on('takeover', () => {
    setState('taken over', 'bad');
    $('role').textContent = 'stepped aside: the session is in use elsewhere';
    $('takeover-banner').hidden = false;
    $('takeback-button').focus();
  });
  client.on('message', logMessage);
  client.on('pending', () => showPending(client.pending()));
  client.on('error', ({ message }) => say(`Problem: ${message}`));

  $('rename-button').onclick = async () => {
    await askDeviceId(client, 'Choose a name no other device uses.');
    $('takeover-banner').hidden = true;
    await connect(client);
  };
  $('takeback-button').onclick = async () => {
    $('takeover-banner').hidden = true;
    await connect(client);
  };
  $('subscribe-form').onsubmit = (event) => {
    event.preventDefault();
    return subscribe(client, $('filter-input').value, Number($('sub-qos').value));
  };
  $('publish-form').onsubmit = async (event) => {
    event.preventDefault();
    const topic = $('topic-input').value;
    const qos = Number($('pub-qos').value);
    const sending = client.publish(topic, $('payload-input').value, { qos, retain: $('retain-input').checked });
    $('payload-input').value = '';
    say(`Saved; sending to ${topic}…`);
    try {
      await sending;
      say(`Delivered to the broker (QoS ${qos}).`);
    } catch (error) {
      say(`Not delivered: ${error.message}`);
    }
  };

  showPending(client.pending());
  await connect(client);
  if (client.connected) await subscribe(client, $('filter-input').value, 1);
}

main().catch((error) => {
  setState('failed to start', 'bad');
  say(error.message);
});
