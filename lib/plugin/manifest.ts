/**
 * What the plugin tells lightningd about itself in answer to `getmanifest`, and its own
 * option table.
 *
 * @module
 */
import type { RpcMethod } from "./methods.ts";
import type { Options, OptionSpec } from "./options.ts";
import { COMPACTION_OPTIONS } from "./compaction_options.ts";

/** The plugin's options. */
export const PLUGIN_OPTIONS: readonly OptionSpec[] = [{
  name: "backup-destination",
  type: "string",
  description: "UNUSED, kept so old configurations still start: the destination is the " +
    "backend_url in backup.lock in the lightning dir",
}, ...COMPACTION_OPTIONS];

export function manifest(options: Options, methods: readonly RpcMethod[]): Record<string, unknown> {
  return {
    options: options.manifest(),
    rpcmethods: methods.map(({ name, usage, description }) => ({ name, usage, description })),
    subscriptions: ["shutdown"],
    // db_write must be hooked from lightningd's start, and the plugin must not be stopped.
    hooks: [{ name: "db_write" }],
    dynamic: false,
  };
}
