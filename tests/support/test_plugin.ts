/**
 * The plugin with its test seams set, for tests only (production runs plugin.ts, which sets
 * none): `CLN_BACKUP_TEST_PLUGIN` holds a {@linkcode TestPluginConfig} as JSON. It serves
 * exactly as the plugin does; only the option table, a hold on one method, and stand-ins for
 * the recording plugin's methods differ.
 *
 * @module
 */
import { runPlugin } from "../../lib/plugin/main.ts";
import { RpcError } from "../../lib/plugin/jsonrpc.ts";
import type { RpcMethod } from "../../lib/plugin/methods.ts";
import type { TestPluginConfig } from "./fake_lightningd.ts";

const config: TestPluginConfig = JSON.parse(Deno.env.get("CLN_BACKUP_TEST_PLUGIN") ?? "{}");

/** The recording plugin's other methods (fixtures/cln-v26.06.6/rpc-options). */
const STAND_INS: RpcMethod[] = [{
  name: "backup-compact",
  usage: "",
  description: "stand-in for the compaction issue's method: answers {} once released",
  params: [],
  run: () => ({}),
}, {
  name: "backup-fail",
  usage: "[reason]",
  description: "answers the recorded error",
  params: ["reason"],
  run: () => {
    throw new RpcError(1400, "recorder: backup-fail always fails", { reason: "test" });
  },
}];

await runPlugin((context) => {
  const hold = config.hold;
  let release = () => {};
  const reached = new Promise<void>((resolve) => release = resolve);
  const backend = context.backend;
  return {
    ...context,
    options: config.options ?? context.options,
    methods: config.standIns ? STAND_INS : [],
    send(message) {
      context.send(message);
      const result = (message as { result?: { result?: unknown } }).result?.result;
      if (
        hold !== undefined && result === "continue" && !("error" in backend) &&
        backend.state().version >= hold.version
      ) release();
    },
    hold: (method, signal) =>
      hold?.method !== method ? undefined : new Promise<void>((resolve, reject) => {
        reached.then(resolve);
        signal.addEventListener("abort", () => reject(signal.reason));
      }),
  };
});
Deno.exit(0);
