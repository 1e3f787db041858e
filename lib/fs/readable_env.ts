/**
 * The environment as far as this process may read it: a variable it has no permission for
 * reads as unset, where `Deno.env.get` would throw. The plugin's launcher grants no
 * environment, and backup-cli only the variables each command needs.
 *
 * @module
 */
import type { EnvReader } from "./user_path.ts";

/** Reads `name`, or `undefined` where it is unset or this process may not read it. */
export const readableEnv: EnvReader = {
  get(name: string): string | undefined {
    const granted = Deno.permissions.querySync({ name: "env", variable: name }).state;
    return granted === "granted" ? Deno.env.get(name) : undefined;
  },
};
