/**
 * The backup plugin's behaviour: lightningd's requests in, answers out.
 *
 * Two kinds of work, kept apart:
 *
 * - **The hook's path**, `db_write`: the params checked, {@linkcode checkFirstWrite} on the
 *   first one, {@linkcode Backend.append} (durable on return), then `continue`. Any doubt
 *   answers a non-`continue` result instead, which makes lightningd stop without committing.
 *   lightningd stands still until the answer, so this path does nothing else: no call to
 *   lightningd's RPC (that would deadlock), no waiting on anything but the backup's own I/O.
 *   Hooks run one at a time in the order they came: the serve loop awaits each one before it
 *   reads the next message.
 * - **Everything else** (RPC methods, `setconfig`, `init`, `getmanifest`) never runs on the
 *   hook's path. A method call is started and the serve loop reads on: its answer goes out
 *   whenever it settles, in any order. lightningd keeps sending `db_write` while a call is
 *   pending (126 hooks during a 3 s call in the rpc-options recording) and each is answered
 *   at once. A long method that touches the backup interleaves with appends at its own
 *   awaits and must never hold anything the hook's path waits for.
 *
 * @module
 */
import type { Backend } from "../backends/backend.ts";
import { bumpedFrom } from "../backup/bump.ts";
import { checkFirstWrite } from "../backup/version_check.ts";
import { type BackupSetup, keyFileAdvice } from "../backup/setup_advice.ts";
import { BackupKeyError } from "../backends/file/encryption.ts";
import {
  ErrorCode,
  type JsonRpcError,
  type JsonRpcId,
  type JsonRpcOutgoing,
  type JsonRpcRequest,
  type LogLevel,
  type Parsed,
  RpcError,
} from "./jsonrpc.ts";
import { LatencyWindow } from "./latency.ts";
import { launcherDenied } from "../fs/launcher_denied.ts";
import { manifest, PLUGIN_OPTIONS } from "./manifest.ts";
import { bindParams, type RpcMethod } from "./methods.ts";
import { Options, type OptionSpec } from "./options.ts";
import { COMPACTION_OPTIONS, compactionPolicy, POLICY_SETTING } from "./compaction_options.ts";
import type { CompactionService } from "../compact/compactor.ts";
import type { CompactionResult } from "../compact/compact.ts";
import type { CompactionPolicy } from "../compact/policy.ts";
import { StoppingError } from "../backends/stopping.ts";
import { cliCommand } from "../fs/advised_command.ts";
import { shellQuote } from "../fs/shell_quote.ts";

/** What the plugin needs from its surroundings; tests give fakes. */
export interface PluginContext {
  /** The backup, or why there is none (then every `db_write` is refused). */
  backend: Backend | { error: string };
  /** The node's set-up, which the advice of a stop at the first write names. */
  setup?: BackupSetup;
  /** Sends one message to lightningd. */
  send(message: JsonRpcOutgoing): void;
  /** Milliseconds, monotonic. */
  now(): number;
  /** The option table; the plugin's own ({@linkcode PLUGIN_OPTIONS}) unless given. */
  options?: readonly OptionSpec[];
  /** Methods beside the plugin's own (tests stand in for ones not built yet). */
  methods?: readonly RpcMethod[];
  /** Compaction for this backup (see compaction_for.ts); absent when the plugin does not compact. */
  compaction?: (policy: () => CompactionPolicy) => CompactionService;
  /**
   * Test seam, never set in production: a method call waits for the promise this returns
   * before it runs, so a test can hold a call while it sends hooks.
   */
  hold?(method: string, signal: AbortSignal): Promise<void> | undefined;
  /**
   * The plugin's lifetime, aborted by {@linkcode BackupPlugin.close}; the backend was opened
   * with its signal, so that a change's waits end then (lib/backends/stopping.ts). The
   * plugin's own unless given.
   */
  lifetime?: AbortController;
  /** Writes a line to stderr (lightningd's log), for when stdout may be gone. */
  stderr?(line: string): void;
}

/** The error code of a failed `backup-compact` (JSON-RPC's range for a server's own errors). */
const COMPACTION_FAILED = -32000;

/** Tells lightningd to stop without committing (anything but `continue` does). */
const ABORT = "abort";

function isDbWrite(params: unknown): params is { data_version: number; writes: string[] } {
  const p = params as Record<string, unknown> | null;
  return typeof p === "object" && p !== null && Number.isSafeInteger(p.data_version) &&
    (p.data_version as number) >= 0 && Array.isArray(p.writes) &&
    p.writes.every((w) => typeof w === "string");
}

/**
 * Why a statement cannot be stored exactly, if it cannot: statements are stored as UTF-8
 * joined by NUL bytes, so a NUL would split one, and a lone surrogate (from a `\ud800`-style
 * escape) has no UTF-8 form.
 */
function unstorable(writes: string[]): string | undefined {
  for (let i = 0; i < writes.length; i++) {
    const which = `statement ${i + 1} of ${writes.length}`;
    if (writes[i].includes("\0")) return `${which} holds a NUL character`;
    if (!writes[i].isWellFormed()) return `${which} holds a lone UTF-16 surrogate`;
  }
  return undefined;
}

/**
 * `message` with nothing JSON escapes: lightningd passes a `setconfig` refusal on by copying
 * the message token's text, escapes included, and escaping it again (plugin_setconfig_done),
 * so a `"` would reach the caller as `\"`. Double quotes become single ones; other
 * characters JSON escapes (backslash, control characters) become `?`.
 */
function asEscapeFree(message: string): string {
  // deno-lint-ignore no-control-regex
  return message.replaceAll('"', "'").replace(/[\\\x00-\x1f\x7f]/g, "?");
}

/** Answers lightningd's hooks, notifications and RPC calls for one backup. */
export class BackupPlugin {
  #checked = false;
  /** Set once the backup cannot be trusted: every later `db_write` is refused with it. */
  #stopped: string | undefined;
  #writes = 0;
  #latency = new LatencyWindow();
  #closed = false;
  readonly #options: Options;
  readonly #methods: Map<string, RpcMethod>;
  /** Method calls still running; aborted and awaited on close. */
  readonly #calls = new Set<Promise<void>>();
  readonly #exiting: AbortController;
  /** The `db_write` being stored, until it is answered: close waits for it to end. */
  #hook: { version: unknown; done: Promise<void> } | undefined;
  readonly #compaction: CompactionService | undefined;
  /** The compaction policy the options in force make; remade when they change, not per hook. */
  #policy: CompactionPolicy;
  /**
   * `init` brought the operator's options. The hooks before it (always some: lightningd opens
   * and migrates its database first) see only the defaults, which must not start a
   * compaction the operator turned off, nor one that keeps fewer snapshots than asked.
   */
  #optionsKnown = false;

  /**
   * Takes the backup, the transport and the options from `context`; when the backend is an error,
   * every `db_write` is refused with it.
   */
  constructor(readonly context: PluginContext) {
    this.#exiting = context.lifetime ?? new AbortController();
    if ("error" in context.backend) this.#stop(context.backend.error);
    this.#options = new Options(context.options ?? PLUGIN_OPTIONS);
    this.#policy = this.#policyFromOptions();
    this.#compaction = context.compaction?.(() => this.#policy);
    const own: RpcMethod[] = [{
      name: "backup-status",
      usage: "",
      description: "Show the backup's URL, version, size, the db_write hook's latency and " +
        "the plugin's options",
      params: [],
      run: () => this.status(),
    }, {
      name: "backup-compact",
      usage: "",
      description: "Fold the backup's old changes into a new snapshot, beside the node's " +
        "writes (they never wait for it); answers with the sizes before and after",
      params: [],
      run: () => this.#compact(),
    }];
    this.#methods = new Map([...own, ...context.methods ?? []].map((m) => [m.name, m]));
  }

  /** Sends lightningd a `log` notification. */
  log(level: LogLevel, message: string): void {
    this.context.send({ jsonrpc: "2.0", method: "log", params: { level, message } });
  }

  /**
   * Handles one request or notification; `true` when the plugin should exit now. Resolves
   * once a `db_write` is answered, but as soon as a method call has started.
   */
  async handle(request: JsonRpcRequest, receivedAt: number): Promise<boolean> {
    const { id, method, params } = request;
    if (method === "db_write") {
      if (id === undefined) {
        this.log("unusual", "ignoring a db_write without an id: it cannot be answered");
      } else {
        const done = this.#dbWrite(id, params, receivedAt);
        this.#hook = { version: (params as { data_version?: unknown })?.data_version, done };
        await done.finally(() => this.#hook = undefined);
      }
      return false;
    }
    if (method === "shutdown") return true;
    if (id === undefined) return false;
    switch (method) {
      case "getmanifest":
        this.#result(id, manifest(this.#options, [...this.#methods.values()]));
        return false;
      case "init":
        this.#init(params);
        this.#result(id, {});
        return false;
      case "setconfig":
        this.#setconfig(id, params);
        return false;
    }
    const rpc = this.#methods.get(method);
    if (rpc !== undefined) {
      this.#call(id, rpc, params);
    } else {
      this.log("unusual", `answering a request for unknown method "${method}" with an error`);
      this.error(id, { code: ErrorCode.MethodNotFound, message: `Unknown method "${method}"` });
    }
    return false;
  }

  /** A message that held numbers that are not JSON, read as lightningd reads them: one log line. */
  readLiterals(method: string, literals: readonly { written: string; read: number }[]): void {
    const written = literals.map((l) => l.written).join(", ");
    const read = literals.map((l) => l.read).join(", ");
    this.log(
      "unusual",
      `${method}'s options hold numbers that are not JSON (${written}): read as lightningd ` +
        `reads them (${read}); write them in plain decimal in lightningd's config`,
    );
  }

  /** A message that is not a request: one log line, and an answer when it has an id. */
  malformed(parsed: Extract<Parsed, { ok: false }>, bytes: number): void {
    const { id, method, error } = parsed;
    this.log("unusual", `ignoring a malformed message of ${bytes} bytes: ${error}`);
    if (id === undefined) return;
    if (method === "db_write") {
      const message = `Refusing a malformed db_write (${error}): it cannot be stored exactly; ` +
        "stop the node and report this";
      this.log("broken", message);
      this.#result(id, { result: ABORT, message });
    } else {
      this.error(id, { code: ErrorCode.InvalidRequest, message: `Invalid request: ${error}` });
    }
  }

  /** Starts a method call; its answer goes out when it settles. */
  #call(id: JsonRpcId, method: RpcMethod, params: unknown): void {
    const signal = this.#exiting.signal;
    let outcome: unknown;
    try {
      const args = bindParams(method, params);
      const held = this.context.hold?.(method.name, signal);
      outcome = held ? held.then(() => method.run(args, signal)) : method.run(args, signal);
    } catch (error) {
      this.#failed(id, method, error);
      return;
    }
    if (!(outcome instanceof Promise)) {
      this.#result(id, outcome);
      return;
    }
    const call: Promise<void> = outcome.then(
      (result) => {
        if (!signal.aborted) this.#result(id, result);
      },
      (error) => {
        if (!signal.aborted) this.#failed(id, method, error);
      },
    ).finally(() => this.#calls.delete(call));
    this.#calls.add(call);
  }

  #failed(id: JsonRpcId, method: RpcMethod, error: unknown): void {
    if (error instanceof RpcError) {
      this.error(id, error.toJSON());
      return;
    }
    const message = `${method.name} failed: ${(error as Error)?.message ?? String(error)}`;
    this.log("broken", message);
    this.error(id, { code: ErrorCode.InternalError, message });
  }

  /** Why compaction option `name` has no effect on this backup, when it has none. */
  #ignored(name: string): string | undefined {
    const setting = POLICY_SETTING.get(name);
    return setting === undefined ? undefined : this.#compaction?.ignores?.(setting);
  }

  #policyFromOptions(): CompactionPolicy {
    return compactionPolicy((name) => this.#options.get(name));
  }

  #setconfig(id: JsonRpcId, params: unknown): void {
    try {
      const { config: name, spec, value: given } = this.#options.parse(params);
      const ignored = this.#ignored(name);
      // Back to its default, an option this backup ignores is as if unset: taken.
      if (ignored !== undefined && given !== spec.default) {
        throw new RpcError(ErrorCode.InvalidParams, `Cannot set option "${name}": ${ignored}`);
      }
      const value = this.#options.set(params);
      this.#policy = this.#policyFromOptions();
      this.log("info", `option "${name}" is now ${JSON.stringify(value)}`);
      this.#result(id, {});
    } catch (error) {
      if (!(error instanceof RpcError)) throw error;
      this.log("unusual", error.message);
      this.error(id, { code: error.code, message: asEscapeFree(error.message) });
    }
  }

  async #dbWrite(id: JsonRpcId, params: unknown, receivedAt: number): Promise<void> {
    if (!isDbWrite(params)) {
      this.log("broken", "refusing a db_write whose params are not {data_version, writes}");
      this.#result(id, { result: ABORT, message: "malformed db_write" });
      return;
    }
    const bad = unstorable(params.writes);
    if (bad !== undefined) {
      const message = `Refusing change ${params.data_version}: ${bad}, which the backup ` +
        "cannot store exactly; stop the node and report this";
      this.log("broken", message);
      this.#result(id, { result: ABORT, message });
      return;
    }
    const verdict = this.#stopped ?? await this.#store(params.data_version, params.writes);
    // lightningd is gone: no answer, and none is needed (it never committed this change).
    if (this.#exiting.signal.aborted) return;
    if (verdict !== undefined) {
      this.#result(id, { result: ABORT, message: verdict });
      return;
    }
    this.#result(id, { result: "continue" });
    this.#writes++;
    this.#latency.add(this.context.now() - receivedAt);
    // After the answer: a compaction, if one is due, starts on its own thread.
    if (!this.#optionsKnown) return;
    this.#compaction?.maybeCompact()?.then(
      (result) => this.#logCompaction(result, "by itself"),
      (error) => this.log("unusual", error.message),
    );
  }

  #logCompaction(result: CompactionResult, how: string): void {
    this.log(
      "info",
      `compacted the backup ${how} in ${result.seconds} s: ${result.versions_folded} ` +
        `change(s) folded, ${result.bytes_freed} bytes freed`,
    );
  }

  async #compact(): Promise<unknown> {
    // First: a plugin without a backup has no compaction either, and its reason says what to do.
    if (this.#stopped !== undefined) {
      // Its "Cannot start backup: " once: the cause and what to do are the same.
      const cause = this.#stopped.replace(/^Cannot (start|open) backup: /, "");
      throw new RpcError(COMPACTION_FAILED, `Cannot compact backup: ${cause}`);
    }
    if (this.#compaction === undefined) {
      throw new RpcError(
        COMPACTION_FAILED,
        "Cannot compact backup: this backup is not compacted by the plugin",
      );
    }
    try {
      const result = await this.#compaction.compact();
      this.#logCompaction(result, "on request");
      return result;
    } catch (error) {
      this.log("unusual", (error as Error).message);
      throw new RpcError(COMPACTION_FAILED, (error as Error).message);
    }
  }

  /** Stores one change; returns why it was refused, if it was. */
  async #store(version: number, writes: string[]): Promise<string | undefined> {
    const backend = this.context.backend as Backend;
    const from = bumpedFrom(writes);
    if (from !== undefined && version !== from + 1) {
      // Stored, it would make a backup that no longer restores to the node's state.
      return this.#stop(
        `Cannot continue: a db_write reports data_version ${version} but its bump goes from ` +
          `${from} to ${from + 1}; stop the node and report this`,
      );
    }
    try {
      if (!this.#checked) await backend.ready?.();
      const state = backend.state();
      if (!this.#checked) {
        const verdict = checkFirstWrite(
          state,
          { dataVersion: version, bumpedFrom: from },
          this.context.setup,
        );
        if (verdict.action === "stop") return this.#stop(verdict.message);
        if (verdict.action === "append" && verdict.cutTail) {
          this.log("unusual", await backend.cutTail());
        }
        this.log("info", verdict.message);
        if (verdict.action === "rewind") await backend.rewind();
        this.#checked = true;
      } else if ((from ?? version) !== state.version) {
        return this.#stop(
          `Cannot continue: the node wrote on top of version ${from ?? version} but the ` +
            `backup is at ${state.version}; stop the node and check it with "${
              cliCommand(
                "status",
                this.context.setup ? shellQuote(this.context.setup.url) : "<url>",
              )
            }"`,
        );
      }
      await backend.append({ version, statements: writes });
    } catch (error) {
      if (error instanceof StoppingError) return error.message;
      // A remote backup's key is checked once it is reached: said as a file backup's is.
      if (error instanceof BackupKeyError && this.context.setup) {
        return this.#stop(keyFileAdvice(this.context.setup.dir, error.dir, error));
      }
      const why = launcherDenied(error) ?? (error as Error).message;
      // A backend's own "Cannot store change N: ..." is said once.
      const said = `Cannot store change ${version}: `;
      return this.#stop(`${said}${why.startsWith(said) ? why.slice(said.length) : why}`);
    }
    return undefined;
  }

  #stop(message: string): string {
    this.#stopped = message;
    this.log("broken", message);
    return message;
  }

  #init(params: unknown): void {
    const given = (params as { options?: unknown } | null)?.options;
    for (const problem of this.#options.init(given)) this.log("unusual", problem);
    this.#policy = this.#policyFromOptions();
    this.#optionsKnown = true;
    // init sends every option's default, set or not: only other values were set.
    for (const spec of COMPACTION_OPTIONS) {
      const ignored = this.#ignored(spec.name);
      const value = this.#options.get(spec.name);
      if (ignored === undefined || value === spec.default) continue;
      this.log(
        "unusual",
        `Ignoring option "${spec.name}" (${JSON.stringify(value)}): ${ignored}; remove it ` +
          "from lightningd's config",
      );
    }
    if (this.#options.get("backup-destination") !== undefined) {
      this.log(
        "unusual",
        "The `backup-destination` option is deprecated and unused: the destination is " +
          "the backend_url in backup.lock in the lightning dir; remove the option from " +
          "your configuration",
      );
    }
    const backend = this.context.backend;
    if (!("error" in backend)) {
      const started = () =>
        this.log("info", `backing up to ${backend.url} at version ${backend.state().version}`);
      // A remote backup's version is known once connected; a failure is logged where met.
      const ready = backend.ready?.();
      if (ready === undefined) started();
      else ready.then(started, () => {});
    }
  }

  /** What `backup-status` answers. */
  status(): Record<string, unknown> {
    const backend = this.context.backend;
    const state = "error" in backend ? undefined : backend.state();
    const ms = (v: number | undefined) => v === undefined ? null : Math.round(v * 1000) / 1000;
    return {
      backend_url: "error" in backend ? null : backend.url,
      ok: this.#stopped === undefined && state?.failure === undefined,
      error: this.#stopped ?? state?.failure ?? null,
      version: state?.version ?? null,
      previous_version: state?.rewindVersion ?? null,
      records: state?.records ?? null,
      backup_bytes: state?.bytes ?? null,
      encrypted: state ? state.encrypted === true : null,
      connection: state?.connection ?? null,
      destinations: state?.destinations ?? null,
      alarm: state?.alarm ?? null,
      async_destinations: state?.asyncDestinations ?? null,
      writes_since_start: this.#writes,
      last_hook_ms: ms(this.#latency.last),
      p99_hook_ms: ms(this.#latency.quantile(0.99)),
      options: this.#options.values(),
      compaction: this.#compaction?.status() ?? null,
    };
  }

  /** Answers the request `id` with `error` (`null` when its id could not be read). */
  error(id: JsonRpcId | null, error: JsonRpcError): void {
    this.context.send({ jsonrpc: "2.0", id, error });
  }

  #result(id: JsonRpcId, result: unknown): void {
    this.context.send({ jsonrpc: "2.0", id, result });
  }

  /**
   * Aborts the method calls still running and a `db_write` still waiting for the backup
   * (their callers get no answer: lightningd is going), waits for them to settle, and closes
   * the backup. Everything acknowledged is already durable; the change that waited was never
   * answered `continue`, so lightningd never committed it.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const hook = this.#hook;
    if (hook !== undefined) {
      this.context.stderr?.(
        `cln-backup: lightningd closed the plugin's input while change ${hook.version} waited ` +
          `for the backup: stopping without answering it (lightningd never committed it)`,
      );
    }
    this.#exiting.abort();
    this.#compaction?.stop();
    await Promise.allSettled([...this.#calls, hook?.done]);
    if (!("error" in this.context.backend)) this.context.backend.close();
  }
}
