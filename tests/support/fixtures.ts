/**
 * The recorded lightningd runs in tests/fixtures (copies of the shared fixtures; see its README).
 *
 * @module
 */

import type { OptionSpec, OptionValue } from "../../lib/plugin/options.ts";

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

/** rpc-options' driver.json: the options its plugin declared, each call and its answer. */
export interface RpcOptionsDriver {
  options: OptionSpec[];
  errors: Record<string, { code: number; message: string; data?: unknown }>;
}

export function loadRpcOptionsDriver(): RpcOptionsDriver {
  return JSON.parse(Deno.readTextFileSync(`${FIXTURES}cln-v26.06.6/${RPC_OPTIONS}/driver.json`));
}

/** `init`'s `params.options` in rpc-options. */
export const RECORDED_INIT_OPTIONS: Readonly<Record<string, OptionValue>> = {
  "rec-int": 42,
  "rec-bool": false,
  "rec-string": "s3://bucket/a b",
  "rec-flag": true,
  "rec-default": 7,
  "rec-dyn": 10,
};

/** The values in force once rpc-options' `setconfig rec-dyn 20` is applied. */
export const RECORDED_OPTIONS_IN_FORCE: Readonly<Record<string, OptionValue | null>> = {
  ...RECORDED_INIT_OPTIONS,
  "rec-flag-unset": false,
  "rec-nodefault": null,
  "rec-dyn": 20,
};
