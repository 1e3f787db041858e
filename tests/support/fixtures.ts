/**
 * The recorded lightningd runs in tests/fixtures (copies of the shared fixtures; see its README).
 *
 * @module
 */

export const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
/** The runs that chain on one node. */
export const SCENARIOS = ["fresh-start", "restart", "activity"] as const;
export type Scenario = typeof SCENARIOS[number];
/** A run of its own on an empty node: plugin options, setconfig and forwarded RPC calls. */
export const RPC_OPTIONS = "rpc-options";

export interface Fixture {
  name: Scenario | typeof RPC_OPTIONS;
  /** The exact bytes lightningd wrote to the plugin's stdin. */
  raw: Uint8Array;
  /** The sizes of the reads the recording plugin got. */
  chunks: number[];
  /** The node's database after the run. */
  database: string;
  summary: Record<string, number | string>;
}

export function loadFixture(name: Fixture["name"]): Fixture {
  const dir = `${FIXTURES}cln-v26.06.6/${name}`;
  return {
    name,
    raw: Deno.readFileSync(`${dir}/stdin.raw`),
    chunks: JSON.parse(Deno.readTextFileSync(`${dir}/chunks.json`)),
    database: `${dir}/lightningd.sqlite3`,
    summary: JSON.parse(Deno.readTextFileSync(`${dir}/summary.json`)),
  };
}

export const PRE_4090_BACKUP = `${FIXTURES}upstream/pre-4090-backup.dbak`;
