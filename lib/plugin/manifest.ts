/**
 * What the plugin tells lightningd about itself in answer to `getmanifest`.
 *
 * @module
 */

export function manifest(): Record<string, unknown> {
  return {
    options: [{
      name: "backup-destination",
      type: "string",
      description: "UNUSED, kept so old configurations still start: the destination is the " +
        "backend_url in backup.lock in the lightning dir",
    }],
    rpcmethods: [{
      name: "backup-status",
      usage: "",
      description: "Show the backup's URL, version, size, and the db_write hook's latency",
    }],
    subscriptions: ["shutdown"],
    // db_write must be hooked from lightningd's start, and the plugin must not be stopped.
    hooks: [{ name: "db_write" }],
    dynamic: false,
  };
}
