/**
 * A fake lightningd that drives the real plugin process as lightningd v26 does (see
 * ../shared/DESIGN.md section 1): the plugin runs with the lightning dir as its working
 * directory; messages end with `\n\n` and may be chunked any way; each database transaction
 * runs on a real SQLite database, is reported by `db_write` before it commits, and commits
 * only on `continue`; any other answer, or the plugin dying meanwhile, aborts the node. An
 * RPC call forwarded to the plugin is not waited for: hooks go on while it is pending. A
 * notification goes only to a plugin that subscribed to it, once it answered `init`
 * ({@linkcode FakeLightningd.delivers}).
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { MessageFramer } from "../../lib/plugin/framing.ts";
import { isPragmaOnly } from "../../lib/sqlite/apply.ts";
import type { OptionSpec } from "../../lib/plugin/options.ts";
import { LAUNCHER_NAME } from "../../lib/cli/launcher.ts";
import { prng } from "./prng.ts";
import { bumpStatement } from "./statements.ts";

const PLUGIN_PATH = new URL("../../plugin.ts", import.meta.url).pathname;
/** The plugin with test seams (tests/support/test_plugin.ts); see {@linkcode TestPluginConfig}. */
const TEST_PLUGIN_PATH = new URL("./test_plugin.ts", import.meta.url).pathname;
export const DATABASE_NAME = "lightningd.sqlite3";
/** How long lightningd waits for plugins to exit after `shutdown` before it closes their pipes. */
const SHUTDOWN_GRACE_MS = 30_000;

/** What tests/support/test_plugin.ts reads from `CLN_BACKUP_TEST_PLUGIN`. */
export interface TestPluginConfig {
  /** Another option table than the plugin's own. */
  options?: OptionSpec[];
  /** Hold each call of `method` until a db_write that brings the backup to `version` is answered. */
  hold?: { method: string; version: number };
  /** Register the recording plugin's `backup-compact` and `backup-fail`. */
  standIns?: boolean;
}

/** The options to spawn the test plugin with `config`. */
export function testPlugin(
  config: TestPluginConfig,
): Pick<FakeLightningdOptions, "command" | "env"> {
  return {
    command: [Deno.execPath(), "run", "-A", TEST_PLUGIN_PATH],
    env: { CLN_BACKUP_TEST_PLUGIN: JSON.stringify(config) },
  };
}

/**
 * The plugin as lightningd runs it for the node in `dir` once init set it up: its launcher,
 * with no PATH (the launcher names its deno; lightningd's PATH may have none).
 */
export function throughLauncher(dir: string): Pick<FakeLightningdOptions, "command" | "env"> {
  return { command: [`${dir}/${LAUNCHER_NAME}`], env: { PATH: "/nonexistent" } };
}

/** How the fake cuts what it writes into `write()`s. */
export type Chunking =
  | { kind: "whole" }
  | { kind: "sizes"; sizes: number[] }
  | { kind: "random"; seed: number; max: number }
  | { kind: "bytes"; size: number };

export interface FakeLightningdOptions {
  lightningDir: string;
  /** The plugin's command line; by default `deno run -A plugin.ts`. */
  command?: string[];
  chunking?: Chunking;
  env?: Record<string, string>;
}

export type Outcome = "committed" | "aborted";

interface Pending {
  /** The request's method: the answers to `getmanifest` and `init` set what the plugin hears. */
  method?: string;
  resolve(message: Record<string, unknown>): void;
  reject(error: Error): void;
}

function chunkSizes(chunking: Chunking): () => number {
  switch (chunking.kind) {
    case "whole":
      return () => Infinity;
    case "bytes":
      return () => chunking.size;
    case "random": {
      const next = prng(chunking.seed);
      return () => 1 + Math.floor(next() * chunking.max);
    }
    case "sizes": {
      let i = 0;
      return () => chunking.sizes[i++] ?? Infinity;
    }
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class FakeLightningd {
  readonly db: DatabaseSync;
  /** `log` notifications the plugin sent, in order. */
  readonly logs: { level: string; message: string }[] = [];
  /** Every message the plugin wrote, parsed. */
  readonly received: Record<string, unknown>[] = [];
  /** Lines on the plugin's stdout that were not JSON-RPC (lightningd would kill it). */
  readonly garbage: string[] = [];
  /** Set once the node stopped itself because the plugin refused or died. */
  aborted: string | undefined;

  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #pending = new Map<string, Pending>();
  #nextId = 1;
  #nextChunk: () => number;
  #carry = 0;
  #stderr: Promise<string>;
  #reading: Promise<void>;
  #exited = false;
  /** db_writes awaiting their answer: each rolls back on the database before close closes it. */
  #hooks = new Set<Promise<Outcome>>();
  /** The topics of the plugin's `getmanifest` answer. */
  #subscriptions: readonly string[] = [];
  /** The plugin answered `init` (lightningd's INIT_COMPLETE). */
  #initComplete = false;

  private constructor(readonly options: FakeLightningdOptions) {
    this.db = new DatabaseSync(`${options.lightningDir}/${DATABASE_NAME}`);
    this.db.exec("PRAGMA foreign_keys = ON");
    const command = options.command ?? [Deno.execPath(), "run", "-A", PLUGIN_PATH];
    this.#child = new Deno.Command(command[0], {
      args: command.slice(1),
      cwd: options.lightningDir,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { LIGHTNINGD_PLUGIN: "1", LIGHTNINGD_VERSION: "v26.06.6", ...options.env },
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#nextChunk = chunkSizes(options.chunking ?? { kind: "whole" });
    this.#stderr = new Response(this.#child.stderr).text();
    this.#reading = this.#read();
  }

  /** Starts the plugin process; nothing is sent yet. */
  static spawn(options: FakeLightningdOptions): FakeLightningd {
    return new FakeLightningd(options);
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** What the plugin wrote to stderr (lightningd's log); complete once it exited. */
  stderr(): Promise<string> {
    return this.#stderr;
  }

  async #read(): Promise<void> {
    const framer = new MessageFramer();
    try {
      for await (const chunk of this.#child.stdout) {
        for (const bytes of framer.push(chunk)) {
          const text = decoder.decode(bytes);
          let message: Record<string, unknown>;
          try {
            message = JSON.parse(text);
          } catch {
            this.garbage.push(text);
            continue;
          }
          if (message.jsonrpc !== "2.0") this.garbage.push(text);
          this.received.push(message);
          if (message.method === "log") {
            this.logs.push(message.params as { level: string; message: string });
          }
          if (message.id !== undefined && message.method === undefined) {
            const pending = this.#pending.get(JSON.stringify(message.id));
            this.#pending.delete(JSON.stringify(message.id));
            if (pending?.method !== undefined) this.#answered(pending.method, message);
            pending?.resolve(message);
          }
        }
      }
    } finally {
      this.#exited = true;
      for (const pending of this.#pending.values()) {
        pending.reject(new Error("plugin exited without answering"));
      }
      this.#pending.clear();
    }
  }

  /** Takes in an answer to `getmanifest` or `init` as lightningd does (lightningd/plugin.c). */
  #answered(method: string, message: Record<string, unknown>): void {
    const result = message.result as Record<string, unknown> | undefined;
    if (method === "getmanifest") {
      const topics = result?.subscriptions;
      this.#subscriptions = Array.isArray(topics)
        ? topics.filter((t): t is string => typeof t === "string")
        : [];
    } else if (method === "init") {
      // A plugin that answers with `disable` is killed, never INIT_COMPLETE.
      this.#initComplete = result !== undefined && result.disable === undefined;
    }
  }

  /**
   * Whether lightningd sends notification `topic` to the plugin (plugin_subscriptions_contains
   * and is_asterix_notification in CLN): only once it answered `init`, and only to a topic it
   * subscribed to or to `*`, which covers every topic but `log`.
   */
  delivers(topic: string): boolean {
    return this.#initComplete &&
      (this.#subscriptions.includes(topic) ||
        (topic !== "log" && this.#subscriptions.includes("*")));
  }

  /**
   * Writes bytes in the configured chunking. Bytes for a plugin that has exited are dropped,
   * as lightningd does: a plugin may exit on `shutdown` before the `\n\n` after it is
   * written, and a request it will never answer shows as its missing answer.
   */
  async write(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      if (this.#carry === 0) this.#carry = this.#nextChunk();
      const n = Math.min(this.#carry, bytes.length - at);
      try {
        await this.#writer.write(bytes.slice(at, at + n));
      } catch (error) {
        if (error instanceof Deno.errors.BrokenPipe) return;
        throw error;
      }
      at += n;
      this.#carry -= n;
    }
  }

  #expect(id: unknown, method?: string): Promise<Record<string, unknown>> {
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
      if (this.#exited) reject(new Error("plugin exited without answering"));
      else this.#pending.set(JSON.stringify(id), { method, resolve, reject });
    });
    // A write to a dead plugin throws before the answer is awaited; the caller sees that.
    answer.catch(() => {});
    return answer;
  }

  /** Sends a request and waits for its answer. */
  request(method: string, params: unknown, id?: unknown): Promise<Record<string, unknown>> {
    id ??= `cln:${method}#${this.#nextId++}`;
    const bytes = encoder.encode(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n\n");
    return this.forward(id, bytes, method);
  }

  /** Sends a request's bytes as they are (a forwarded call is its caller's bytes) and waits for the answer to `id`. */
  async forward(id: unknown, bytes: Uint8Array, method?: string): Promise<Record<string, unknown>> {
    const answer = this.#expect(id, method);
    await this.write(bytes);
    return await answer;
  }

  /**
   * Sends a request and, while it is pending, runs `hooks` transactions from `next`, as
   * lightningd does; asserts that each hook is answered before the request returns, then
   * waits for its answer.
   */
  async whilePending(
    method: string,
    params: unknown,
    hooks: number,
    next: (i: number) => string[],
  ): Promise<Record<string, unknown>> {
    const id = `cli:${method}#1/cln:${method}#${this.#nextId++}`;
    const answered = () => this.received.findIndex((m) => m.id === id && m.method === undefined);
    const continues = (upTo: number) =>
      this.received.slice(0, upTo).filter((m) =>
        (m.result as Record<string, unknown> | undefined)?.result === "continue"
      ).length;
    const before = continues(this.received.length);
    const answer = this.#expect(id);
    await this.write(
      encoder.encode(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n\n"),
    );
    for (let i = 0; i < hooks; i++) {
      if (answered() !== -1) throw new Error(`${method} returned after ${i} of ${hooks} hooks`);
      const outcome = await this.transaction(next(i));
      if (outcome !== "committed") throw new Error(`hook ${i}: ${this.aborted}`);
    }
    const result = await answer;
    const answeredFirst = continues(answered()) - before;
    if (answeredFirst !== hooks) {
      throw new Error(`${method} returned after only ${answeredFirst} of the ${hooks} hooks`);
    }
    return result;
  }

  /**
   * `lightning-cli setconfig CONFIG VAL` for a plugin option, as lightningd runs it
   * (plugin_set_dynamic_opt and plugin_setconfig_done in lightningd/plugin.c): `val` goes to
   * the plugin as the caller's text; a refusal reaches the caller as `{code, message}` where
   * `message` is the plugin's message token as it stands in the plugin's JSON, escapes and
   * all (lightningd copies the token's text and escapes it again), and `data` is dropped.
   */
  async setconfig(
    config: string,
    val?: string,
  ): Promise<{ result: unknown } | { error: { code: number; message: string } }> {
    const id = `cli:setconfig#1/cln:setconfig#${this.#nextId++}`;
    const answer = await this.request(
      "setconfig",
      val === undefined ? { config } : { config, val },
      id,
    );
    if (answer.error === undefined) return { result: answer.result };
    const { code, message } = answer.error as { code: number; message: string };
    return { error: { code, message: JSON.stringify(message).slice(1, -1) } };
  }

  /**
   * Sends notification `method` if lightningd would ({@linkcode delivers}); tells whether it
   * did. To test a plugin against notifications lightningd never sends it, {@linkcode write}
   * their bytes.
   */
  async notify(method: string, params: Record<string, unknown> = {}): Promise<boolean> {
    if (!this.delivers(method)) return false;
    await this.write(
      encoder.encode(
        JSON.stringify({ jsonrpc: "2.0", method, params: { [method]: params } }) + "\n\n",
      ),
    );
    return true;
  }

  getmanifest(): Promise<Record<string, unknown>> {
    return this.request("getmanifest", { "allow-deprecated-apis": false });
  }

  init(options: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return this.request("init", {
      options,
      configuration: {
        "lightning-dir": this.options.lightningDir,
        "rpc-file": "lightning-rpc",
        startup: true,
        network: "regtest",
      },
    });
  }

  /**
   * For a test process, which never crashes: the node's commits skip their fsync and keep
   * their rollback journal in memory (ROLLBACK still works), instead of creating, writing and
   * removing a journal file per transaction. About a third of the fake's SQLite time.
   */
  volatileCommits(): void {
    this.db.exec("PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY");
  }

  /** The version the database holds. */
  dataVersion(): number {
    try {
      const row = this.db.prepare("SELECT intval FROM vars WHERE name = 'data_version'").get();
      return row === undefined ? 0 : Number(row.intval);
    } catch {
      return 0;
    }
  }

  /**
   * Runs one transaction as lightningd's `db_commit_transaction` does: the statements, the
   * version bump, `db_write` with both, then commit on `continue` or abort.
   */
  async transaction(statements: string[]): Promise<Outcome> {
    const from = this.dataVersion();
    const writes = [
      ...statements,
      bumpStatement(from),
    ];
    return await this.dbWrite(from + 1, writes);
  }

  /** Runs the transactions of `work` in turn until one is not committed; returns how many were. */
  async commitEach(work: string[][]): Promise<number> {
    let committed = 0;
    while (committed < work.length && await this.transaction(work[committed]) === "committed") {
      committed++;
    }
    return committed;
  }

  /** Runs recorded writes (already ending in their bump) and reports them in `db_write`. */
  dbWrite(dataVersion: number, writes: string[], id?: unknown): Promise<Outcome> {
    const hook = this.#dbWrite(dataVersion, writes, id);
    this.#hooks.add(hook);
    return hook.finally(() => this.#hooks.delete(hook));
  }

  async #dbWrite(dataVersion: number, writes: string[], id?: unknown): Promise<Outcome> {
    const outside = isPragmaOnly(writes);
    if (!outside) this.db.exec("BEGIN");
    for (const statement of writes) this.db.exec(statement);
    let answer: Record<string, unknown>;
    try {
      answer = await this.request("db_write", { data_version: dataVersion, writes }, id);
    } catch (error) {
      return this.#abort(outside, `plugin died during db_write: ${(error as Error).message}`);
    }
    const result = (answer.result as Record<string, unknown> | undefined)?.result;
    if (result !== "continue") {
      return this.#abort(outside, `Plugin returned failed db_write: ${JSON.stringify(answer)}`);
    }
    if (!outside) this.db.exec("COMMIT");
    return "committed";
  }

  #abort(outside: boolean, why: string): Outcome {
    if (!outside) this.db.exec("ROLLBACK");
    this.aborted = why;
    return "aborted";
  }

  /**
   * Replays a recorded stream of what lightningd sent: every byte as recorded, in the
   * configured chunking, running each `db_write` on the database and waiting for the
   * answers lightningd waits for. Stops at the first refused `db_write`. A recorded
   * notification the plugin would not get ({@linkcode delivers}) is left out: the recording
   * plugin subscribed to `*`.
   */
  async replay(raw: Uint8Array): Promise<Outcome> {
    const messages = splitMessages(raw);
    const waits = ({ id, method }: RecordedMessage["json"]) =>
      id !== undefined && ["db_write", "getmanifest", "init"].includes(method);
    const lastWait = messages.findLastIndex((m) => waits(m.json));
    // The calls after the last wait are answered before the replay ends: lightningd closes a
    // plugin's pipes only once it exited (see shutdown), never with a call of its pending.
    const calls: Promise<unknown>[] = [];
    let start = 0;
    const sendUpTo = async (end: number) => {
      await this.write(raw.subarray(start, end));
      start = end;
    };
    for (const [i, message] of messages.entries()) {
      const { method, id, params } = message.json;
      if (id === undefined) {
        if (this.delivers(method)) continue;
        await sendUpTo(i === 0 ? 0 : messages[i - 1].end);
        start = message.end;
        continue;
      }
      if (!waits(message.json)) {
        if (i > lastWait) calls.push(this.#expect(id));
        continue;
      }
      if (method !== "db_write") {
        const answer = this.#expect(id, method);
        await sendUpTo(message.end);
        await answer;
        continue;
      }
      // db_write: run the transaction, then send everything up to and including the hook.
      const outside = isPragmaOnly(params.writes);
      if (!outside) this.db.exec("BEGIN");
      for (const statement of params.writes) this.db.exec(statement);
      const answer = this.#expect(id);
      await sendUpTo(message.end);
      let reply: Record<string, unknown>;
      try {
        reply = await answer;
      } catch (error) {
        return this.#abort(outside, `plugin died during db_write: ${(error as Error).message}`);
      }
      if ((reply.result as Record<string, unknown> | undefined)?.result !== "continue") {
        return this.#abort(outside, `Plugin returned failed db_write: ${JSON.stringify(reply)}`);
      }
      if (!outside) this.db.exec("COMMIT");
    }
    await sendUpTo(raw.length);
    await Promise.all(calls);
    return "committed";
  }

  /**
   * Sends `shutdown` as `lightning-cli stop` does and waits for the plugin to exit with its
   * stdin still open: lightningd closes a plugin's pipes only once it has exited, or after
   * {@linkcode SHUTDOWN_GRACE_MS} ("failed to self-terminate in time, killing"). A plugin
   * that only exits at end of input would pass if the pipe closed at once; here it throws.
   * A plugin not subscribed to `shutdown` (or not past `init`) gets no notification:
   * lightningd frees it at once (shutdown_plugins), closing its pipes.
   */
  async stop(): Promise<Deno.CommandStatus> {
    if (!this.#exited && await this.notify("shutdown")) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<"late">((resolve) => {
        timer = setTimeout(() => resolve("late"), SHUTDOWN_GRACE_MS);
      });
      const gone = this.#child.status.then(() => "gone" as const);
      const outcome = await Promise.race([gone, grace]).finally(() => clearTimeout(timer));
      if (outcome === "late") {
        await this.close();
        throw new Error(`the plugin was still running ${SHUTDOWN_GRACE_MS} ms after shutdown`);
      }
    }
    return await this.close();
  }

  /** Closes the plugin's stdin (lightningd exiting) and waits for it to exit. */
  async close(): Promise<Deno.CommandStatus> {
    await this.#writer.close().catch(() => {});
    const status = await this.#child.status;
    await this.#reading;
    await Promise.allSettled(this.#hooks);
    this.db.close();
    return status;
  }

  /** Kills the plugin with SIGKILL and waits for it to be gone. */
  async kill(): Promise<Deno.CommandStatus> {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    return await this.close();
  }
}

export interface RecordedMessage {
  end: number;
  // deno-lint-ignore no-explicit-any
  json: any;
}

/**
 * Splits a recorded stdin stream into its messages, framed by JSON as the plugin does, with
 * where each one ends (after the whitespace that follows it).
 */
export function splitMessages(raw: Uint8Array): RecordedMessage[] {
  const messages: RecordedMessage[] = [];
  const framer = new MessageFramer((bytes) => {
    throw new Error(`a recorded stream holds ${bytes} bytes of garbage`);
  });
  for (const bytes of framer.push(raw)) {
    let end = bytes.byteOffset - raw.byteOffset + bytes.length;
    while ([0x0a, 0x0d, 0x20, 0x09].includes(raw[end])) end++;
    messages.push({ end, json: JSON.parse(decoder.decode(bytes)) });
  }
  return messages;
}
