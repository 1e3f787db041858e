/**
 * A lean lightningd for benchmarks: it spawns a plugin as lightningd does (working directory
 * the lightning dir, JSON-RPC over stdin/stdout, messages ending in `\n\n`) and times each
 * request from the moment its bytes are handed to the pipe until the answer's bytes arrive.
 * Unlike tests/support/fake_lightningd.ts it runs no database: nothing but the plugin's own
 * work sits between send and answer.
 *
 * @module
 */
import { MessageFramer } from "../lib/plugin/framing.ts";
import { launchArgs, launchPlan } from "../lib/cli/launcher.ts";
import { RUNTIME_FLAGS } from "../lib/cli/runtime_flags.ts";

const NULL_PLUGIN = new URL("./null_plugin.ts", import.meta.url).pathname;
export const CLN_BACKUP_PLUGIN = new URL("../plugin.ts", import.meta.url).pathname;

/** How to start a plugin: the `deno` arguments and the lightning dir it runs in. */
export interface PluginCommand {
  args: string[];
  lightningDir: string;
}

/** cln-backup as `init`'s launcher starts it: least privilege, no config, no lock file. */
export function clnBackupCommand(lightningDir: string, backupPath: string): PluginCommand {
  return {
    args: launchArgs(
      launchPlan({ lightningDir, backendUrl: `file://${backupPath}`, plugin: CLN_BACKUP_PLUGIN }),
    ),
    lightningDir,
  };
}

/** The protocol floor, started with the same flags (it needs no permission at all). */
export function nullPluginCommand(lightningDir: string): PluginCommand {
  return {
    args: ["run", ...RUNTIME_FLAGS, "--no-prompt", "--no-config", "--no-lock", NULL_PLUGIN],
    lightningDir,
  };
}

export interface Answer {
  message: Record<string, unknown>;
  /** When its last bytes arrived (performance.now()). */
  at: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class PluginProcess {
  /** When `spawn` was called (performance.now()). */
  readonly spawnedAt: number;
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #pending = new Map<string, (answer: Answer) => void>();
  #reading: Promise<void>;
  #stderr: Promise<string>;
  #exited = false;
  #nextId = 1;

  private constructor(command: PluginCommand) {
    this.spawnedAt = performance.now();
    this.#child = new Deno.Command(Deno.execPath(), {
      args: command.args,
      cwd: command.lightningDir,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { LIGHTNINGD_PLUGIN: "1", LIGHTNINGD_VERSION: "v26.06.6", DENO_NO_UPDATE_CHECK: "1" },
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#stderr = new Response(this.#child.stderr).text();
    this.#reading = this.#read();
  }

  static spawn(command: PluginCommand): PluginProcess {
    return new PluginProcess(command);
  }

  get pid(): number {
    return this.#child.pid;
  }

  async #read(): Promise<void> {
    const framer = new MessageFramer();
    const reader = this.#child.stdout.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const at = performance.now();
        for (const bytes of framer.push(value)) {
          const message = JSON.parse(decoder.decode(bytes)) as Record<string, unknown>;
          if (message.id === undefined || message.method !== undefined) continue;
          const key = String(message.id);
          const resolve = this.#pending.get(key);
          this.#pending.delete(key);
          resolve?.({ message, at });
        }
      }
    } finally {
      this.#exited = true;
      for (const resolve of this.#pending.values()) resolve({ message: {}, at: NaN });
      this.#pending.clear();
    }
  }

  /**
   * Sends one framed request whose id is `id` and waits for its answer; the answer's
   * round trip is `answer.at - sentAt`. Throws when the plugin exits without answering.
   */
  async send(id: string, bytes: Uint8Array): Promise<{ answer: Answer; sentAt: number }> {
    if (this.#exited) throw new Error(`plugin exited: ${await this.#stderr}`);
    const answer = new Promise<Answer>((resolve) => this.#pending.set(id, resolve));
    const sentAt = performance.now();
    await this.#writer.write(bytes);
    const got = await answer;
    if (Number.isNaN(got.at)) throw new Error(`plugin exited: ${await this.#stderr}`);
    return { answer: got, sentAt };
  }

  /** Sends a request built from `method` and `params`. */
  async request(method: string, params: unknown): Promise<Answer> {
    const id = `cln:${method}#${this.#nextId++}`;
    const text = JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n\n";
    return (await this.send(id, encoder.encode(text))).answer;
  }

  getmanifest(): Promise<Answer> {
    return this.request("getmanifest", { "allow-deprecated-apis": false });
  }

  init(lightningDir: string, options: Record<string, unknown> = {}): Promise<Answer> {
    return this.request("init", {
      options,
      configuration: {
        "lightning-dir": lightningDir,
        "rpc-file": "lightning-rpc",
        startup: true,
        network: "regtest",
      },
    });
  }

  /** A field of /proc/<pid>/status in KiB (`VmRSS`, `VmHWM`). */
  memoryKiB(field: "VmRSS" | "VmHWM" | "RssAnon"): number {
    return procStatusKiB(`/proc/${this.pid}/status`, field);
  }

  /** Sends `shutdown`, closes stdin and waits for the exit. */
  async stop(): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      const shutdown = { jsonrpc: "2.0", method: "shutdown", params: { shutdown: {} } };
      await this.#writer.write(encoder.encode(JSON.stringify(shutdown) + "\n\n")).catch(() => {});
    }
    await this.#writer.close().catch(() => {});
    const status = await this.#child.status;
    await this.#reading;
    await this.#stderr;
    return status;
  }
}

/** Reads one `kB` field of a /proc status file. */
export function procStatusKiB(path: string, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(Deno.readTextFileSync(path));
  if (!match) throw new Error(`no ${field} in ${path}`);
  return Number(match[1]);
}
