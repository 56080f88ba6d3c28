/* tslint:disable */
/* eslint-disable */

/**
 * The browser MQTT client.
 */
export class TabMqClient {
    private constructor();
    free(): void;
    [Symbol.dispose](): void;
    /**
     * Forgets the device id (and disconnects); `connect` then reports `device-id-needed`.
     */
    clearDeviceId(): Promise<any>;
    /**
     * The MQTT client id: `{namespace}-{deviceId}`.
     */
    clientId(): string | undefined;
    /**
     * Connects (and keeps reconnecting with backoff). Resolves with `{ sessionPresent }`
     * at CONNACK; rejects with kind `device-id-needed`, `refused` or `takeover`.
     */
    connect(): Promise<any>;
    /**
     * Opens the namespace's IndexedDB database, reads the device id and restores the
     * pending session. Does not connect.
     */
    static create(options: any): Promise<TabMqClient>;
    /**
     * The stored device id, or `undefined` when the user has not chosen one yet.
     */
    deviceId(): string | undefined;
    /**
     * Disconnects on purpose; pending messages stay saved for the next `connect`.
     */
    disconnect(): void;
    /**
     * Removes an event handler.
     */
    off(event: string, handler: Function): void;
    /**
     * Adds an event handler. Events: `connect`, `message`, `disconnect`, `reconnecting`,
     * `offline`, `online`, `takeover`, `pending`, `device-id-needed`, `error`.
     */
    on(event: string, handler: Function): void;
    /**
     * Messages saved and not yet acknowledged: `{ topic, qos, state, bytes }`, in flight first.
     */
    pending(): Array<any>;
    /**
     * Publishes `payload` (string or Uint8Array) to `topic`. Options: `qos`, `retain`,
     * `messageExpiry`, `contentType`, `responseTopic`, `correlationData`,
     * `userProperties`. The message is saved in IndexedDB before it is sent (and while
     * offline); the promise resolves once acknowledged per its QoS.
     */
    publish(topic: string, payload: any, options: any): Promise<any>;
    /**
     * Validates and stores the device id; the next `connect` uses it (and its own
     * saved session). Disconnects first if connected under another id.
     */
    setDeviceId(device_id: string): Promise<any>;
    /**
     * Subscribes to one filter or an array of them. Options: `qos`, `noLocal`,
     * `retainAsPublished`, `retainHandling`. Resolves with the reason code per filter.
     */
    subscribe(filters: any, options: any): Promise<any>;
    /**
     * A readable device id to offer the user, such as `sunny-otter-42`.
     */
    static suggestDeviceId(): string;
    /**
     * Unsubscribes from one filter or an array of them.
     */
    unsubscribe(filters: any): Promise<any>;
    /**
     * Whether the client is connected now.
     */
    readonly connected: boolean;
}

export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

export interface InitOutput {
    readonly memory: WebAssembly.Memory;
    readonly __wbg_tabmqclient_free: (a: number, b: number) => void;
    readonly tabmqclient_clearDeviceId: (a: number) => any;
    readonly tabmqclient_clientId: (a: number, b: number) => void;
    readonly tabmqclient_connect: (a: number) => any;
    readonly tabmqclient_connected: (a: number) => number;
    readonly tabmqclient_create: (a: any) => any;
    readonly tabmqclient_deviceId: (a: number, b: number) => void;
    readonly tabmqclient_disconnect: (a: number) => void;
    readonly tabmqclient_off: (a: number, b: number, c: number, d: any) => void;
    readonly tabmqclient_on: (a: number, b: number, c: number, d: any) => void;
    readonly tabmqclient_pending: (a: number) => any;
    readonly tabmqclient_publish: (a: number, b: number, c: number, d: any, e: any) => any;
    readonly tabmqclient_setDeviceId: (a: number, b: number, c: number) => any;
    readonly tabmqclient_subscribe: (a: number, b: any, c: any) => any;
    readonly tabmqclient_suggestDeviceId: (a: number) => void;
    readonly tabmqclient_unsubscribe: (a: number, b: any) => any;
    readonly __wasm_bindgen_func_elem_2224: (a: number, b: number, c: number, d: any) => void;
    readonly __wasm_bindgen_func_elem_2236: (a: number, b: number, c: any, d: any) => void;
    readonly __wasm_bindgen_func_elem_1191: (a: number, b: number, c: any) => void;
    readonly __wasm_bindgen_func_elem_535: (a: number, b: number, c: any) => void;
    readonly __wasm_bindgen_func_elem_535_19: (a: number, b: number, c: any) => void;
    readonly __wasm_bindgen_func_elem_535_20: (a: number, b: number, c: any) => void;
    readonly __wasm_bindgen_func_elem_534: (a: number, b: number) => void;
    readonly __wbindgen_export: (a: number, b: number) => number;
    readonly __wbindgen_export2: (a: number, b: number, c: number, d: number) => number;
    readonly __wbindgen_export3: (a: number, b: number, c: number) => void;
    readonly __wbindgen_export4: (a: number) => void;
    readonly __wbindgen_export5: () => number;
    readonly __wbindgen_externrefs: WebAssembly.Table;
    readonly __wbindgen_export6: (a: number, b: number) => void;
    readonly __wbindgen_add_to_stack_pointer: (a: number) => number;
    readonly __wbindgen_export7: (a: number) => void;
    readonly __wbindgen_start: () => void;
}

export type SyncInitInput = BufferSource | WebAssembly.Module;

/**
 * Instantiates the given `module`, which can either be bytes or
 * a precompiled `WebAssembly.Module`.
 *
 * @param {{ module: SyncInitInput }} module - Passing `SyncInitInput` directly is deprecated.
 *
 * @returns {InitOutput}
 */
export function initSync(module: { module: SyncInitInput } | SyncInitInput): InitOutput;

/**
 * If `module_or_path` is {RequestInfo} or {URL}, makes a request and
 * for everything else, calls `WebAssembly.instantiate` directly.
 *
 * @param {{ module_or_path: InitInput | Promise<InitInput> }} module_or_path - Passing `InitInput` directly is deprecated.
 *
 * @returns {Promise<InitOutput>}
 */
export default function __wbg_init (module_or_path?: { module_or_path: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>): Promise<InitOutput>;
