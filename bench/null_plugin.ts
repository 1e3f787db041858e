/**
 * The protocol floor: a plugin that hooks `db_write` and answers `continue` at once. It
 * reads and frames stdin exactly as cln-backup does (same 1 MiB reads, same
 * {@linkcode MessageFramer}, same {@linkcode parseMessage}) and writes its answers the same
 * way, so what cln-backup costs beyond it is the backup itself.
 *
 * @module
 */
import { MessageFramer } from "../lib/plugin/framing.ts";
import { type JsonRpcOutgoing, parseMessage } from "../lib/plugin/jsonrpc.ts";
import { frame } from "../lib/plugin/stdio.ts";

function send(message: JsonRpcOutgoing): void {
  const bytes = frame(message);
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

const MANIFEST = {
  options: [],
  rpcmethods: [],
  subscriptions: ["shutdown"],
  hooks: [{ name: "db_write" }],
  dynamic: false,
};

/** Answers one message; `true` when the plugin should exit. */
function handle(bytes: Uint8Array): boolean {
  const parsed = parseMessage(bytes);
  if (!parsed.ok) return false;
  const { id, method } = parsed.request;
  if (method === "shutdown") return true;
  if (id === undefined) return false;
  if (method === "db_write") send({ jsonrpc: "2.0", id, result: { result: "continue" } });
  else if (method === "getmanifest") send({ jsonrpc: "2.0", id, result: MANIFEST });
  else send({ jsonrpc: "2.0", id, result: {} });
  return false;
}

async function main(): Promise<void> {
  const framer = new MessageFramer();
  const buffer = new Uint8Array(1 << 20);
  for (;;) {
    const n = await Deno.stdin.read(buffer);
    if (n === null) return;
    for (const bytes of framer.push(buffer.subarray(0, n))) {
      if (handle(bytes)) return;
    }
  }
}

await main();
Deno.exit(0);
