/**
 * The backup plugin's behaviour: lightningd's requests in, answers out.
 *
 * The path of one change: `db_write` params, {@linkcode checkFirstWrite} on the first one,
 * {@linkcode Backend.append} (durable on return), then `continue`. Any doubt answers a
 * non-`continue` result instead, which makes lightningd stop without committing.
 *
 * @module
 */
import type { Backend } from "../backends/backend.ts";
import { bumpedFrom } from "../backup/bump.ts";
import { checkFirstWrite } from "../backup/version_check.ts";
import { ErrorCode, type JsonRpcId, type JsonRpcOutgoing, type JsonRpcRequest } from "./jsonrpc.ts";
import type { LogLevel } from "./jsonrpc.ts";
import { LatencyWindow } from "./latency.ts";
import { manifest } from "./manifest.ts";

/** What the plugin needs from its surroundings; tests give fakes. */
export interface PluginContext {
  /** The backup, or why there is none (then every `db_write` is refused). */
  backend: Backend | { error: string };
  send(message: JsonRpcOutgoing): void;
  /** Milliseconds, monotonic. */
  now(): number;
}

/** Tells lightningd to stop without committing (anything but `continue` does). */
const ABORT = "abort";

function isDbWrite(params: unknown): params is { data_version: number; writes: string[] } {
  const p = params as Record<string, unknown> | null;
  return typeof p === "object" && p !== null && Number.isSafeInteger(p.data_version) &&
    (p.data_version as number) >= 0 && Array.isArray(p.writes) &&
    p.writes.every((w) => typeof w === "string");
}

export class BackupPlugin {
  #checked = false;
  /** Set once the backup cannot be trusted: every later `db_write` is refused with it. */
  #stopped: string | undefined;
  #writes = 0;
  #latency = new LatencyWindow();
  #closed = false;

  constructor(readonly context: PluginContext) {
    if ("error" in context.backend) this.#stop(context.backend.error);
  }

  log(level: LogLevel, message: string): void {
    this.context.send({ jsonrpc: "2.0", method: "log", params: { level, message } });
  }

  /** Handles one request or notification; `true` when the plugin should exit now. */
  async handle(request: JsonRpcRequest, receivedAt: number): Promise<boolean> {
    const { id, method, params } = request;
    switch (method) {
      case "db_write":
        if (id === undefined) return false;
        await this.#dbWrite(id, params, receivedAt);
        return false;
      case "getmanifest":
        if (id !== undefined) this.#result(id, manifest());
        return false;
      case "init":
        this.#init(params);
        if (id !== undefined) this.#result(id, {});
        return false;
      case "backup-status":
        if (id !== undefined) this.#result(id, this.status());
        return false;
      case "shutdown":
        return true;
    }
    if (id !== undefined) {
      this.log("unusual", `answering a request for unknown method "${method}" with an error`);
      this.error(id, ErrorCode.MethodNotFound, `Unknown method "${method}"`);
    }
    return false;
  }

  async #dbWrite(id: JsonRpcId, params: unknown, receivedAt: number): Promise<void> {
    if (!isDbWrite(params)) {
      this.log("broken", "refusing a db_write whose params are not {data_version, writes}");
      this.#result(id, { result: ABORT, message: "malformed db_write" });
      return;
    }
    const verdict = this.#stopped ?? await this.#store(params.data_version, params.writes);
    if (verdict !== undefined) {
      this.#result(id, { result: ABORT, message: verdict });
      return;
    }
    this.#result(id, { result: "continue" });
    this.#writes++;
    this.#latency.add(this.context.now() - receivedAt);
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
        const verdict = checkFirstWrite(state, { dataVersion: version, bumpedFrom: from });
        if (verdict.action === "stop") return this.#stop(verdict.message);
        this.log("info", verdict.message);
        if (verdict.action === "rewind") await backend.rewind();
        this.#checked = true;
      } else if ((from ?? version) !== state.version) {
        return this.#stop(
          `Cannot continue: the node wrote on top of version ${from ?? version} but the ` +
            `backup is at ${state.version}; stop the node and check it with "deno task status"`,
        );
      }
      await backend.append({ version, statements: writes });
    } catch (error) {
      return this.#stop(`Cannot store change ${version}: ${(error as Error).message}`);
    }
    return undefined;
  }

  #stop(message: string): string {
    this.#stopped = message;
    this.log("broken", message);
    return message;
  }

  #init(params: unknown): void {
    const options = (params as { options?: Record<string, unknown> } | null)?.options ?? {};
    if (options["backup-destination"] !== undefined) {
      this.log(
        "unusual",
        "The `backup-destination` option is deprecated and unused: the destination is " +
          "the backend_url in backup.lock in the lightning dir; remove the option from " +
          "your configuration",
      );
    }
    const backend = this.context.backend;
    if (!("error" in backend)) {
      this.log("info", `backing up to ${backend.url} at version ${backend.state().version}`);
    }
  }

  /** What `backup-status` answers. */
  status(): Record<string, unknown> {
    const backend = this.context.backend;
    const state = "error" in backend ? undefined : backend.state();
    const ms = (v: number | undefined) => v === undefined ? null : Math.round(v * 1000) / 1000;
    return {
      backend_url: "error" in backend ? null : backend.url,
      ok: this.#stopped === undefined,
      error: this.#stopped ?? null,
      version: state?.version ?? null,
      previous_version: state?.rewindVersion ?? null,
      records: state?.records ?? null,
      backup_bytes: state?.bytes ?? null,
      connection: state?.connection ?? null,
      writes_since_start: this.#writes,
      last_hook_ms: ms(this.#latency.last),
      p99_hook_ms: ms(this.#latency.quantile(0.99)),
    };
  }

  error(id: JsonRpcId | null, code: number, message: string): void {
    this.context.send({ jsonrpc: "2.0", id, error: { code, message } });
  }

  #result(id: JsonRpcId, result: unknown): void {
    this.context.send({ jsonrpc: "2.0", id, result });
  }

  /** Closes the backup; everything acknowledged is already durable. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!("error" in this.context.backend)) this.context.backend.close();
  }
}
