/**
 * The recorded lightningd runs in tests/fixtures (copies of the shared fixtures; see its README).
 *
 * @module
 */

export const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
export const SCENARIOS = ["fresh-start", "restart", "activity"] as const;
export type Scenario = typeof SCENARIOS[number];

export interface Fixture {
  name: Scenario;
  /** The exact bytes lightningd wrote to the plugin's stdin. */
  raw: Uint8Array;
  /** The sizes of the reads the recording plugin got. */
  chunks: number[];
  /** The node's database after the run. */
  database: string;
  summary: Record<string, number | string>;
}

export function loadFixture(name: Scenario): Fixture {
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
