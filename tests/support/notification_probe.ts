/**
 * A stand-in plugin that tells which notifications lightningd sent it: it subscribes to the
 * topics in `PROBE_SUBSCRIPTIONS` (a JSON list), answers every request (`db_write` with
 * `continue`), and logs `heard <method>` for each notification, in order. It exits on
 * `shutdown` or end of input. For the fake lightningd's own tests.
 *
 * @module
 */
import { MessageFramer } from "../../lib/plugin/framing.ts";

const subscriptions: string[] = JSON.parse(Deno.env.get("PROBE_SUBSCRIPTIONS") ?? "[]");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function send(message: Record<string, unknown>): Promise<void> {
  const bytes = encoder.encode(JSON.stringify({ jsonrpc: "2.0", ...message }) + "\n\n");
  for (let at = 0; at < bytes.length;) at += await Deno.stdout.write(bytes.subarray(at));
}

function answer(method: string): unknown {
  switch (method) {
    case "getmanifest":
      return { options: [], rpcmethods: [], subscriptions, hooks: [{ name: "db_write" }] };
    case "db_write":
      return { result: "continue" };
    default:
      return {};
  }
}

const framer = new MessageFramer();
for await (const chunk of Deno.stdin.readable) {
  for (const bytes of framer.push(chunk)) {
    const { id, method } = JSON.parse(decoder.decode(bytes));
    if (id !== undefined) {
      await send({ id, result: answer(method) });
      continue;
    }
    await send({ method: "log", params: { level: "info", message: `heard ${method}` } });
    if (method === "shutdown") Deno.exit(0);
  }
}
