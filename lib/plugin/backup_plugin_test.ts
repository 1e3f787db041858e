/**
 * Dispatch of method calls, in process: answers in any order, errors as lightning-cli prints
 * them, and calls still running when the plugin closes. The plugin runs without a backup
 * here; the hook's path is tested through the real process in tests/.
 */
import { BackupPlugin } from "./backup_plugin.ts";
import { type JsonRpcOutgoing, RpcError } from "./jsonrpc.ts";
import type { RpcMethod } from "./methods.ts";
import { assertEquals } from "../../tests/support/assert.ts";
import type { Backend, Change } from "../backends/backend.ts";
import { bumpStatement } from "../../tests/support/statements.ts";
import type { CompactionService } from "../compact/compactor.ts";
import type { CompactionPolicy } from "../compact/policy.ts";

function plugin(methods: RpcMethod[]): { plugin: BackupPlugin; sent: JsonRpcOutgoing[] } {
  const sent: JsonRpcOutgoing[] = [];
  const backend = { error: "no backup in this test" };
  return {
    plugin: new BackupPlugin({ backend, send: (m) => sent.push(m), now: () => 0, methods }),
    sent,
  };
}

type Answer = Exclude<JsonRpcOutgoing, { method: string }>;
const answers = (sent: JsonRpcOutgoing[]) => sent.filter((m): m is Answer => !("method" in m));

function method(name: string, run: RpcMethod["run"]): RpcMethod {
  return { name, usage: "", description: "", params: [], run };
}

Deno.test("dispatch: a slow call does not hold a later one; each answer when it settles", async () => {
  let finish = (_: unknown) => {};
  const { plugin: p, sent } = plugin([
    method("slow", () => new Promise((resolve) => finish = resolve)),
    method("fast", () => ({ fast: true })),
  ]);
  await p.handle({ jsonrpc: "2.0", id: 1, method: "slow" }, 0);
  await p.handle({ jsonrpc: "2.0", id: 2, method: "fast" }, 0);
  assertEquals(answers(sent), [{ jsonrpc: "2.0", id: 2, result: { fast: true } }]);
  finish({ slow: true });
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals(answers(sent).map((m) => m.id), [2, 1]);
  await p.close();
});

Deno.test("dispatch: RpcError keeps code, message and data; any other error is -32603", async () => {
  const { plugin: p, sent } = plugin([
    method("fails", () => {
      throw new RpcError(1400, "it fails", { reason: "test" });
    }),
    method("fails-later", () => Promise.reject(new RpcError(1401, "later"))),
    method("breaks", () => {
      throw new TypeError("x is undefined");
    }),
    method("breaks-later", () => Promise.reject(new Error("disk gone"))),
  ]);
  for (const [id, name] of ["fails", "fails-later", "breaks", "breaks-later"].entries()) {
    await p.handle({ jsonrpc: "2.0", id, method: name }, 0);
  }
  await new Promise((resolve) => setTimeout(resolve, 0));
  const errors = answers(sent).map((m) => "error" in m && [m.id, m.error]);
  errors.sort((a, b) => Number(a && a[0]) - Number(b && b[0]));
  assertEquals(errors, [
    [0, { code: 1400, message: "it fails", data: { reason: "test" } }],
    [1, { code: 1401, message: "later" }],
    [2, { code: -32603, message: "breaks failed: x is undefined" }],
    [3, { code: -32603, message: "breaks-later failed: disk gone" }],
  ]);
  const broken = sent.filter((m) => "method" in m && m.method === "log").map((m) =>
    "params" in m && (m.params as { message: string }).message
  );
  assertEquals(broken.slice(-2), [
    "breaks failed: x is undefined",
    "breaks-later failed: disk gone",
  ]);
  await p.close();
});

Deno.test("dispatch: close aborts running calls, waits for them, and answers none", async () => {
  let aborted = false;
  const { plugin: p, sent } = plugin([
    method(
      "long",
      (_, signal) =>
        new Promise((_, reject) =>
          signal.addEventListener("abort", () => {
            aborted = true;
            reject(signal.reason);
          })
        ),
    ),
  ]);
  await p.handle({ jsonrpc: "2.0", id: 1, method: "long" }, 0);
  await p.close();
  assertEquals(aborted, true);
  assertEquals(answers(sent), []);
});

Deno.test('db_write: a backend\'s own "Cannot store change N" is said once in the refusal', async () => {
  const sent: JsonRpcOutgoing[] = [];
  let version = 1;
  const backend = {
    state: () => ({ version, records: version, tail: undefined }),
    append: (change: Change) => {
      if (change.version === 3) {
        return Promise.reject(new Error(`Cannot store change 3: "3" exists with other contents`));
      }
      version = change.version;
      return Promise.resolve();
    },
    rewind: () => Promise.resolve(),
    cutTail: () => Promise.resolve(""),
    close: () => {},
  } as unknown as Backend;
  const p = new BackupPlugin({ backend, send: (m) => sent.push(m), now: () => 0, methods: [] });
  for (const data_version of [2, 3]) {
    const params = { data_version, writes: [bumpStatement(data_version - 1)] };
    await p.handle({ jsonrpc: "2.0", id: data_version, method: "db_write", params }, 0);
  }
  const broken = sent.filter((m) => "method" in m && m.method === "log")
    .map((m) => (m as { params: { level: string; message: string } }).params)
    .filter((l) => l.level === "broken").map((l) => l.message);
  assertEquals(broken, [`Cannot store change 3: "3" exists with other contents`]);
  await p.close();
});

/** A backup that stores every change, at `version` to start with. */
function storingBackend(version: number): Backend {
  return {
    url: "file:///fake",
    state: () => ({ version, records: version, tail: undefined }),
    append: (change: Change) => {
      version = change.version;
      return Promise.resolve();
    },
    rewind: () => Promise.resolve(),
    cutTail: () => Promise.resolve(""),
    close: () => {},
  } as unknown as Backend;
}

Deno.test("compaction: none starts by itself before init brings the operator's options", async () => {
  // The policy in force each time a hook asked the service whether a compaction is due.
  const asked: CompactionPolicy[] = [];
  const service = (policy: () => CompactionPolicy): CompactionService => ({
    compact: () => Promise.reject(new Error("not in this test")),
    maybeCompact: () => {
      asked.push(policy());
      return undefined;
    },
    due: () => false,
    status: () => ({ running: null, last: null, next_due_at_bytes: null, sealed_log_bytes: 0 }),
    stop: () => {},
  });
  const sent: JsonRpcOutgoing[] = [];
  const p = new BackupPlugin({
    backend: storingBackend(1),
    send: (m) => sent.push(m),
    now: () => 0,
    compaction: service,
  });
  const dbWrite = (data_version: number) =>
    p.handle({
      jsonrpc: "2.0",
      id: `cln:db_write#${data_version}`,
      method: "db_write",
      params: { data_version, writes: [bumpStatement(data_version - 1)] },
    }, 0);
  // lightningd sends its first hooks before init (3 on a restart, many on a migration).
  for (const version of [2, 3, 4]) await dbWrite(version);
  assertEquals(asked, []);
  await p.handle({
    jsonrpc: "2.0",
    id: "cln:init#5",
    method: "init",
    params: { options: { "backup-compact-auto": false, "backup-retain-snapshots": 3 } },
  }, 0);
  await dbWrite(5);
  assertEquals(asked, [{ auto: false, ratioPercent: 100, minBytes: 64 * 1024 * 1024, retain: 3 }]);
  assertEquals(answers(sent).filter((m) => "result" in m && m.id !== "cln:init#5").length, 4);
  await p.close();
});
