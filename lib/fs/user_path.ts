/**
 * Paths and environment as the operator gave them, for the CLI.
 *
 * @module
 */
import { resolve } from "node:path";

/**
 * Where the CLI reads its environment: the process's, or in a test a stand-in, as tests run
 * in parallel in one process and must not set each other's.
 */
export type EnvReader = Pick<Deno.Env, "get">;

/**
 * Resolves a path the operator typed. `deno task` runs commands in the project directory
 * and passes the operator's directory in INIT_CWD, so relative paths resolve against that.
 */
export function userPath(path: string, env: EnvReader = Deno.env): string {
  return resolve(env.get("INIT_CWD") ?? Deno.cwd(), path);
}
